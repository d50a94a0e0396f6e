//! Terminal views: exactly the agreement's fields for each audience, nothing of cities that
//! have not opted in, no DV address anywhere.

use serde_json::json;

use crate::helpers::{TERMINALS, field_paths, full_case, listed, set, spawn_app};

const COVERING: &[&str] = &[
    "child.name",
    "child.name_kana",
    "child.sex",
    "child.birth_date",
    "child.address",
    "guardians.name",
    "guardians.relationship",
    "abuse",
    "risk_level",
    "status",
    "intake_at",
    "safety_confirmed_at",
    "flags.missing",
    "flags.dv",
    "center_contact",
];
const PREFECTURE: &[&str] = &[
    "child.name",
    "child.name_kana",
    "child.sex",
    "child.birth_date",
    "guardians.name",
    "flags.missing",
    "center_contact",
];

/// What lists, search and the stream show the covering station and HQ (the default summary;
/// the municipality code alone is the `child.address` key of the projection).
pub(crate) const SUMMARY: &[&str] = &[
    "child.name",
    "child.birth_date",
    "child.address",
    "abuse",
    "risk_level",
    "status",
    "intake_at",
    "safety_confirmed_at",
    "flags.missing",
    "flags.dv",
];
/// The default summary cut to the other stations' view.
const PREFECTURE_SUMMARY: &[&str] = &["child.name", "child.birth_date", "flags.missing"];

fn hq() -> Vec<&'static str> {
    let mut v = COVERING.to_vec();
    v.extend(["household", "care_setting"]);
    v
}

#[tokio::test]
async fn each_audience_gets_exactly_its_field_set() {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "FS-1", "141046")).await;
    for (terminal, expected, summary) in [
        ("terminal-kagacho-1", set(COVERING), set(SUMMARY)),
        ("terminal-tsurumi-1", set(PREFECTURE), set(PREFECTURE_SUMMARY)),
        ("terminal-atsugi-1", set(PREFECTURE), set(PREFECTURE_SUMMARY)),
        ("terminal-hq-1", set(&hq()), set(SUMMARY)),
    ] {
        let list = app.list(terminal).await.json().unwrap();
        let cases = list["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 1, "{terminal}");
        assert!(
            cases[0].get("case").is_none(),
            "{terminal}: a list carries no full view"
        );
        assert_eq!(field_paths(&cases[0]["summary"]), summary, "{terminal} list");
        if summary.contains("child.address") {
            assert_eq!(
                cases[0]["summary"]["child"]["address"],
                json!({"municipality_code": "141046"})
            );
        }
        let detail = app.detail(terminal, "yokohama-central:FS-1").await;
        assert_eq!(detail.status, 200, "{terminal}");
        let detail = detail.json().unwrap();
        assert_eq!(field_paths(&detail["case"]), expected, "{terminal} detail");
        // The bare case id works too when it is unambiguous.
        assert_eq!(app.detail(terminal, "FS-1").await.status, 200);
        // Receipt and clause ride along; assessment never leaves.
        assert!(detail["receipt"]["audit_index"].is_u64() && detail["receipt"]["checkpoint"].is_string());
        assert!(
            detail["receipt"]["clause"]
                .as_str()
                .unwrap()
                .starts_with("kanagawa-2026@v1/providers/141003/")
        );
        let text = serde_json::to_string(&detail).unwrap();
        for canary in ["ASSESSCANARY", "UPBRINGINGCANARY", "WELFARECANARY", "EMPLOYERCANARY"] {
            assert!(!text.contains(canary), "{terminal} saw {canary}");
        }
    }
}

#[tokio::test]
async fn a_dv_case_address_appears_in_no_response() {
    let app = spawn_app().await;
    let mut case = full_case("yokosuka", "DV-1", "142018");
    case["flags"]["dv"] = json!(true);
    app.push(&case).await;
    for terminal in TERMINALS {
        let list = app.list(terminal).await;
        assert_eq!(listed(&list).len(), 1, "{terminal}: Yokosuka shares all cases");
        let detail = app.detail(terminal, "yokosuka:DV-1").await;
        assert_eq!(detail.status, 200);
        for body in [list.text(), detail.text()] {
            assert!(!body.contains("ADDRCANARY"), "{terminal} saw the DV address");
            assert!(
                !body.contains("municipality_code"),
                "{terminal} saw the DV municipality"
            );
            assert!(!body.contains("\"address\""), "{terminal} saw an address key");
        }
    }
    // The covering station still sees the rest of its view.
    let detail = app.detail("terminal-yokosuka-1", "yokosuka:DV-1").await.json().unwrap();
    let mut expected = set(COVERING);
    expected.remove("child.address");
    assert_eq!(field_paths(&detail["case"]), expected);
}

#[tokio::test]
async fn cities_that_have_not_opted_in_appear_nowhere() {
    let app = spawn_app().await;
    app.push(&full_case("kawasaki-central", "KW-1", "141313")).await;
    app.push(&full_case("sagamihara", "SG-1", "141534")).await;
    app.push(&full_case("kanagawa-central", "KC-1", "142123")).await;
    for terminal in TERMINALS {
        let list = app.list(terminal).await;
        assert_eq!(listed(&list), set(&["kanagawa-central:KC-1"]), "{terminal}");
        for r in ["kawasaki-central:KW-1", "sagamihara:SG-1", "KW-1", "SG-1"] {
            let reply = app.detail(terminal, r).await;
            assert_eq!(reply.status, 404, "{terminal} {r}");
            // Indistinguishable from a case that does not exist.
            let missing = app.detail(terminal, "kawasaki-central:NO-SUCH").await;
            assert_eq!(reply.json().unwrap(), missing.json().unwrap());
        }
    }
}

#[tokio::test]
async fn a_criteria_only_provider_shows_only_cases_that_meet_a_criterion() {
    let app = spawn_app().await;
    let mut quiet = full_case("yokohama-central", "YQ-1", "141046");
    quiet["abuse"] = json!({ "types": ["psychological"], "injury": false });
    app.push(&quiet).await;
    let mut neglect = full_case("yokohama-central", "YN-1", "141011");
    neglect["abuse"] = json!({ "types": ["neglect"], "injury": false });
    app.push(&neglect).await;
    let mut home = quiet.clone();
    home["case_id"] = json!("YH-1");
    home["status"] = json!("returned_home");
    app.push(&home).await;
    for terminal in TERMINALS {
        assert_eq!(
            listed(&app.list(terminal).await),
            set(&["yokohama-central:YN-1", "yokohama-central:YH-1"]),
            "{terminal}"
        );
        assert_eq!(app.detail(terminal, "yokohama-central:YQ-1").await.status, 404);
    }
    // The quiet case starts meeting a criterion with its next version: it appears.
    quiet["version"] = json!(2);
    quiet["abuse"]["injury"] = json!(true);
    app.push(&quiet).await;
    assert!(listed(&app.list("terminal-kagacho-1").await).contains("yokohama-central:YQ-1"));
}

#[tokio::test]
async fn the_48_hour_criterion_takes_effect_when_the_time_passes() {
    let app = spawn_app().await;
    let mut case = full_case("yokohama-central", "Y48-1", "141046");
    case["abuse"] = json!({ "types": ["psychological"], "injury": false });
    case["safety_confirmed_at"] = json!(null);
    case["intake_at"] = json!("2026-11-18T13:00:00+09:00"); // 47 h before NOW
    app.push(&case).await;
    assert!(listed(&app.list("terminal-kagacho-1").await).is_empty());
    app.clock.advance(time::Duration::hours(1));
    assert_eq!(
        listed(&app.list("terminal-kagacho-1").await),
        set(&["yokohama-central:Y48-1"])
    );
}

#[tokio::test]
async fn closed_cases_leave_every_view() {
    let app = spawn_app().await;
    let mut case = full_case("kanagawa-central", "CL-1", "142123");
    app.push(&case).await;
    assert_eq!(listed(&app.list("terminal-atsugi-1").await).len(), 1);
    case["version"] = json!(2);
    case["status"] = json!("closed");
    app.push(&case).await;
    assert!(listed(&app.list("terminal-atsugi-1").await).is_empty());
}
