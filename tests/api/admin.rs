//! The admin API of sharing agreements (SPEC §6) over real mTLS: versions, the city opt-in,
//! who may do what (every 403), time through the injected clock, and the audit entries.

use cgc_gateway::client::Reply;
use hyper::Method;
use serde_json::{Value, json};
use time::Duration;

use crate::helpers::{TestApp, full_case, listed, spawn_app};

pub(crate) const PREF: &str = "admin-14-pref-admin";
pub(crate) const YOKOHAMA: &str = "admin-141003-city-admin";
const KAWASAKI: &str = "admin-141305-city-admin";
pub(crate) const AGREEMENT: &str = "/v1/admin/agreements/kanagawa-2026";

pub(crate) fn demo_agreement() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/agreements/kanagawa-2026.toml"
    ))
    .unwrap()
}

pub(crate) async fn admin(app: &TestApp, who: &str, method: Method, path: &str, body: Option<&str>) -> Reply {
    let token = app.token(who, who);
    app.client(who)
        .send(method, path, Some(&token), body.map(|b| b.as_bytes().to_vec()))
        .await
        .unwrap()
}

pub(crate) async fn step(app: &TestApp, who: &str, operator: &str, action: &str) -> Reply {
    admin(
        app,
        who,
        Method::POST,
        &format!("{AGREEMENT}/providers/{operator}/{action}"),
        None,
    )
    .await
}

pub(crate) fn problem(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    reply.json().unwrap()
}

pub(crate) fn state_of(doc: &Value, operator: &str) -> String {
    doc["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["operator"] == operator)
        .unwrap()["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The first case of HQ's list, opened (lists carry only the summary).
async fn opened(app: &TestApp, list: &Value) -> Value {
    let reference = list["cases"][0]["ref"].as_str().unwrap();
    app.detail("terminal-hq-1", reference).await.json().unwrap()
}

#[tokio::test]
async fn prefecture_and_provider_cities_read_the_agreement_with_its_history() {
    let app = spawn_app().await;
    for who in [PREF, YOKOHAMA, KAWASAKI] {
        let reply = admin(&app, who, Method::GET, AGREEMENT, None).await;
        assert_eq!(reply.status, 200, "{who}: {}", reply.text());
        let doc = reply.json().unwrap();
        assert_eq!(doc["current_version"], 1);
        assert_eq!(doc["latest_version"], 1);
        assert_eq!(state_of(&doc, "14"), "active");
        assert_eq!(state_of(&doc, "141003"), "active");
        assert_eq!(state_of(&doc, "142018"), "active");
        assert_eq!(state_of(&doc, "141305"), "asked");
        let v1 = &doc["versions"][0];
        assert_eq!(v1["version"], 1);
        assert_eq!(v1["in_force"], true);
        assert_eq!(v1["document"], demo_agreement());
        assert_eq!(v1["sha256"], cgc_gateway::agreements::sha256_hex(&demo_agreement()));
        // The imported consent states are the first steps of the history.
        let history = doc["consent_history"].as_array().unwrap();
        assert_eq!(history.len(), 3);
        assert!(history.iter().all(|s| s["action"] == "seed"));
    }
    let seeded = cgc_gateway::agreements::sha256_hex(&demo_agreement());
    assert!(app.audit_has(&["\"kind\":\"agreement_version\"", &seeded]).await);
    assert_eq!(
        admin(&app, PREF, Method::GET, "/v1/admin/agreements/tokyo-2026", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn agreement_read_is_forbidden_to_others() {
    let app = spawn_app().await;
    // A second agreement of which Kawasaki is not a provider.
    let pilot = demo_agreement()
        .replace("id = \"kanagawa-2026\"", "id = \"kanagawa-pilot\"")
        .replace(
            "effective_from = 2026-04-01T00:00:00+09:00",
            "effective_from = 2030-04-01T00:00:00+09:00",
        );
    let start = pilot.find("# 神奈川県（県所管").unwrap();
    let end = pilot.find("[views]").unwrap();
    let pilot = format!(
        "{}[[providers]]\noperator = \"141500\"\nscope = \"all\"\n\n{}",
        &pilot[..start],
        &pilot[end..]
    );
    let reply = admin(
        &app,
        PREF,
        Method::PUT,
        "/v1/admin/agreements/kanagawa-pilot",
        Some(&pilot),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let p = problem(
        &admin(&app, KAWASAKI, Method::GET, "/v1/admin/agreements/kanagawa-pilot", None).await,
        403,
    );
    assert!(p["detail"].as_str().unwrap().contains("prefecture 14"), "{p}");
    assert!(
        app.audit_has(&[
            "\"kind\":\"refusal\"",
            "admin:141305",
            "GET /v1/admin/agreements/{agreement_id}"
        ])
        .await
    );

    // Not an administrator at all: a terminal (with a valid officer token) and a center.
    let token = app.token("terminal-kagacho-1", "officer-1");
    let reply = app
        .client("terminal-kagacho-1")
        .get(AGREEMENT, Some(&token))
        .await
        .unwrap();
    problem(&reply, 403);
    let reply = app
        .client("center-yokohama-central")
        .get(AGREEMENT, None)
        .await
        .unwrap();
    problem(&reply, 403);
    // An administrator certificate with an officer's token, or none.
    let officer = app.token("terminal-kagacho-1", "officer-1");
    let reply = app.client(PREF).get(AGREEMENT, Some(&officer)).await.unwrap();
    problem(&reply, 401);
    let reply = app.client(PREF).get(AGREEMENT, None).await.unwrap();
    problem(&reply, 401);
}

#[tokio::test]
async fn only_the_prefecture_submits_versions_and_they_take_effect_at_their_date() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "V-1", "142123")).await;
    let from = "2026-12-01T00:00:00+09:00";
    let v2 = demo_agreement()
        .replacen("version = 1", "version = 2", 1)
        .replacen(
            "effective_from = 2026-04-01T00:00:00+09:00",
            &format!("effective_from = {from}"),
            1,
        )
        .replacen("\"household\", \"care_setting\",", "\"household\",", 1);

    for who in [YOKOHAMA, KAWASAKI] {
        let p = problem(&admin(&app, who, Method::PUT, AGREEMENT, Some(&v2)).await, 403);
        assert!(p["detail"].as_str().unwrap().contains("prefecture 14"), "{p}");
    }
    let token = app.token("terminal-hq-1", "officer-1");
    let reply = app
        .client("terminal-hq-1")
        .send(Method::PUT, AGREEMENT, Some(&token), Some(v2.clone().into_bytes()))
        .await
        .unwrap();
    problem(&reply, 403);

    let reply = admin(&app, PREF, Method::PUT, AGREEMENT, Some(&v2)).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let accepted = reply.json().unwrap();
    assert_eq!(accepted["version"], 2);
    assert_eq!(accepted["in_force"], false);
    let sha = cgc_gateway::agreements::sha256_hex(&v2);
    assert_eq!(accepted["sha256"], sha.as_str());
    assert!(
        app.audit_has(&["\"kind\":\"agreement_version\"", "admin:14:pref-admin", &sha])
            .await
    );

    let doc = admin(&app, PREF, Method::GET, AGREEMENT, None).await.json().unwrap();
    assert_eq!(
        (doc["current_version"].clone(), doc["latest_version"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(doc["versions"].as_array().unwrap().len(), 2);
    assert_eq!(doc["versions"][1]["document"], v2.as_str());
    assert!(
        doc["versions"][1]["submitted_by"]
            .as_str()
            .unwrap()
            .contains("admin:14:pref-admin")
    );

    // Before its date the terminals still see version 1's view.
    let hq = app.list("terminal-hq-1").await.json().unwrap();
    assert_eq!(
        hq["cases"][0]["receipt"]["clause"],
        "kanagawa-2026@v1/providers/14/all/views/hq"
    );
    assert!(opened(&app, &hq).await["case"].get("care_setting").is_some());
    // The clock passes the date: version 2 applies, with no other change.
    app.clock
        .set(time::OffsetDateTime::parse(from, &time::format_description::well_known::Rfc3339).unwrap());
    let hq = app.list("terminal-hq-1").await.json().unwrap();
    assert_eq!(
        hq["cases"][0]["receipt"]["clause"],
        "kanagawa-2026@v2/providers/14/all/views/hq"
    );
    assert!(opened(&app, &hq).await["case"].get("care_setting").is_none());
    let doc = admin(&app, PREF, Method::GET, AGREEMENT, None).await.json().unwrap();
    assert_eq!(doc["current_version"], 2);
    assert!(
        app.audit_has(&["\"kind\":\"disclosure\"", "kanagawa-2026@v2/providers/14/all/views/hq"])
            .await
    );
}

#[tokio::test]
async fn invalid_versions_are_refused_with_what_is_wrong() {
    let app = spawn_app().await;
    let put = |body: String| {
        let app = &app;
        async move { admin(app, PREF, Method::PUT, AGREEMENT, Some(&body)).await }
    };
    // Not above the latest version.
    let p = problem(&put(demo_agreement()).await, 409);
    assert_eq!(p["latest_version"], 1);
    let v2 = demo_agreement().replacen("version = 1", "version = 2", 1);
    // An unknown field path, named with its line.
    let bad = v2.replacen("\"risk_level\"", "\"risk_score\"", 1);
    let p = problem(&put(bad.clone()).await, 400);
    let line = bad.lines().position(|l| l.contains("risk_score")).unwrap() + 1;
    assert_eq!(p["line"], line);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field path `risk_score`"),
        "{p}"
    );
    // An unknown key; an unknown operator; a bad date; the id of another agreement.
    let p = problem(
        &put(v2.replacen("version = 2", "version = 2\nstatus = \"draft\"", 1)).await,
        400,
    );
    assert!(p["detail"].as_str().unwrap().contains("status"), "{p}");
    let p = problem(
        &put(v2.replacen("operator = \"142018\"", "operator = \"142019\"", 1)).await,
        400,
    );
    assert!(p["detail"].as_str().unwrap().contains("142019"), "{p}");
    let p = problem(
        &put(v2.replacen("2026-04-01T00:00:00+09:00", "2026-04-01T00:00:00", 1)).await,
        400,
    );
    assert!(p["detail"].as_str().unwrap().contains("UTC offset"), "{p}");
    let p = problem(&put(v2.replacen("kanagawa-2026", "kanagawa-2027", 1)).await, 400);
    assert!(p["detail"].as_str().unwrap().contains("not the id in the URL"), "{p}");
    // A provider already covered by another agreement over the same time.
    let other = v2
        .replacen("id = \"kanagawa-2026\"", "id = \"kanagawa-other\"", 1)
        .replacen("version = 2", "version = 1", 1);
    let reply = admin(
        &app,
        PREF,
        Method::PUT,
        "/v1/admin/agreements/kanagawa-other",
        Some(&other),
    )
    .await;
    let p = problem(&reply, 400);
    assert!(p["detail"].as_str().unwrap().contains("overlaps"), "{p}");
    // Nothing of the refused documents was stored.
    let doc = admin(&app, PREF, Method::GET, AGREEMENT, None).await.json().unwrap();
    assert_eq!(doc["latest_version"], 1);
}

#[tokio::test]
async fn city_opt_in_needs_the_citys_consent_and_the_prefectures_confirmation() {
    let app = spawn_app().await;
    app.push(&full_case("kawasaki-central", "K-1", "141313")).await;
    assert!(listed(&app.list("terminal-kawasaki-1").await).is_empty());

    // Only Kawasaki may consent for Kawasaki.
    for who in [PREF, YOKOHAMA] {
        let p = problem(&step(&app, who, "141305", "consent").await, 403);
        assert!(p["detail"].as_str().unwrap().contains("city 141305"), "{who}: {p}");
    }
    let reply = step(&app, KAWASAKI, "141305", "consent").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let state = reply.json().unwrap();
    assert_eq!(
        (state["state"].clone(), state["sharing"].clone()),
        (json!("consented"), json!(false))
    );
    assert!(
        listed(&app.list("terminal-kawasaki-1").await).is_empty(),
        "consented, not confirmed"
    );

    // Only the prefecture confirms.
    for who in [KAWASAKI, YOKOHAMA] {
        let p = problem(&step(&app, who, "141305", "confirm").await, 403);
        assert!(p["detail"].as_str().unwrap().contains("prefecture 14"), "{who}: {p}");
    }
    let state = step(&app, PREF, "141305", "confirm").await.json().unwrap();
    assert_eq!(
        (state["state"].clone(), state["sharing"].clone()),
        (json!("active"), json!(true))
    );
    assert_eq!(
        listed(&app.list("terminal-kawasaki-1").await)
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["kawasaki-central:K-1".to_owned()]
    );

    // Withdrawal is effective at once, and only Kawasaki may withdraw.
    problem(&step(&app, PREF, "141305", "withdraw").await, 403);
    let state = step(&app, KAWASAKI, "141305", "withdraw").await.json().unwrap();
    assert_eq!(state["state"], "withdrawn");
    for terminal in ["terminal-kawasaki-1", "terminal-hq-1"] {
        assert!(listed(&app.list(terminal).await).is_empty(), "{terminal}");
    }
    assert_eq!(
        app.detail("terminal-kawasaki-1", "kawasaki-central:K-1").await.status,
        404
    );

    // Invalid transitions name the current state.
    let p = problem(&step(&app, PREF, "141305", "confirm").await, 409);
    assert_eq!(p["current_state"], "withdrawn");
    assert!(p["detail"].as_str().unwrap().contains("`withdrawn`"), "{p}");
    let p = problem(&step(&app, KAWASAKI, "141305", "decline").await, 409);
    assert_eq!(p["current_state"], "withdrawn");

    // The whole history is readable by both sides, and each step is in the audit log.
    for who in [PREF, KAWASAKI] {
        let doc = admin(&app, who, Method::GET, AGREEMENT, None).await.json().unwrap();
        let steps: Vec<(String, String)> = doc["consent_history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["operator"] == "141305")
            .map(|s| {
                (
                    s["action"].as_str().unwrap().to_owned(),
                    s["to"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected = [
            ("seed", "asked"),
            ("consent", "consented"),
            ("confirm", "active"),
            ("withdraw", "withdrawn"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect();
        assert_eq!(steps, expected, "{who}");
        assert_eq!(state_of(&doc, "141305"), "withdrawn");
    }
    for action in ["consent", "confirm", "withdraw"] {
        assert!(
            app.audit_has(&["\"kind\":\"consent\"", &format!("\"action\":\"{action}\""), "141305"])
                .await
        );
    }
    assert!(
        app.audit_has(&["\"kind\":\"refusal\"", "admin:141003", "/providers/{operator}/{action}"])
            .await
    );
}

#[tokio::test]
async fn decline_keeps_a_city_out_and_unknown_providers_are_not_found() {
    let app = spawn_app().await;
    app.push(&full_case("kawasaki-central", "K-2", "141313")).await;
    let state = step(&app, KAWASAKI, "141305", "decline").await.json().unwrap();
    assert_eq!(state["state"], "declined");
    problem(&step(&app, PREF, "141305", "confirm").await, 409);
    assert!(listed(&app.list("terminal-kawasaki-1").await).is_empty());
    // The prefecture's own cases need no consent; Sagamihara is no provider; no such action.
    problem(&step(&app, PREF, "14", "confirm").await, 404);
    problem(&step(&app, PREF, "141500", "confirm").await, 404);
    problem(&step(&app, KAWASAKI, "141305", "approve").await, 404);
}

#[tokio::test]
async fn yokohama_withdrawal_removes_its_cases_from_the_very_next_request() {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "Y-1", "141046")).await;
    app.push(&full_case("kanagawa-central", "P-1", "142123")).await;
    assert_eq!(listed(&app.list("terminal-hq-1").await).len(), 2);
    assert_eq!(step(&app, YOKOHAMA, "141003", "withdraw").await.status, 200);
    let after = listed(&app.list("terminal-hq-1").await);
    assert_eq!(
        after.into_iter().collect::<Vec<_>>(),
        vec!["kanagawa-central:P-1".to_owned()]
    );
    let reply = app.detail("terminal-kagacho-1", "yokohama-central:Y-1").await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn forty_eight_hours_without_safety_confirmation_shares_a_yokohama_case() {
    let app = spawn_app().await;
    let mut case = full_case("yokohama-central", "S-1", "141046");
    case["abuse"] = json!({"types": ["psychological"], "injury": false});
    case["safety_confirmed_at"] = Value::Null;
    case["intake_at"] = json!("2026-11-20T11:00:00+09:00");
    app.push(&case).await;
    assert!(listed(&app.list("terminal-kagacho-1").await).is_empty());
    app.clock.advance(Duration::hours(46));
    assert!(listed(&app.list("terminal-kagacho-1").await).is_empty());
    app.clock.advance(Duration::hours(1));
    let list = app.list("terminal-kagacho-1").await.json().unwrap();
    assert_eq!(list["cases"][0]["ref"], "yokohama-central:S-1");
    assert_eq!(
        list["cases"][0]["receipt"]["clause"],
        "kanagawa-2026@v1/providers/141003/criteria/views/covering_station"
    );
}

#[tokio::test]
async fn consent_state_and_versions_survive_a_restart_from_the_store() {
    let app = spawn_app().await;
    assert_eq!(step(&app, KAWASAKI, "141305", "consent").await.status, 200);
    let v2 = demo_agreement().replacen("version = 1", "version = 2", 1);
    assert_eq!(admin(&app, PREF, Method::PUT, AGREEMENT, Some(&v2)).await.status, 201);
    // Restart on the same data: the store, not the files, is the source of truth.
    let ctx = app.app.context().clone();
    let world = cgc_gateway::agreements::load_or_seed(
        &ctx.store,
        &ctx.audit,
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
        crate::helpers::NOW,
    )
    .await
    .unwrap();
    assert_eq!(world.consents.state("kanagawa-2026", "141305").as_str(), "consented");
    assert_eq!(world.agreements.iter().filter(|a| a.id() == "kanagawa-2026").count(), 2);
}
