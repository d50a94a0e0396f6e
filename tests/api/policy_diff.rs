//! The policy diff and the view simulation over real mTLS, as the administrator's console uses
//! them: two stored versions, a proposal against the latest, and what a terminal would see of
//! a case by field names only.

use hyper::Method;
use serde_json::{Value, json};

use crate::admin::{AGREEMENT, PREF, YOKOHAMA, admin, demo_agreement, problem};
use crate::helpers::{full_case, spawn_app};

fn v2() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/kanagawa-2026-v2.toml"
    ))
    .unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

#[tokio::test]
async fn two_stored_versions_diff_to_the_new_provider_with_its_clause() {
    let app = spawn_app().await;
    let put = admin(&app, PREF, Method::PUT, AGREEMENT, Some(&v2())).await;
    assert_eq!(put.status, 201, "{}", put.text());
    // A city provider of the agreement reads the diff as it reads the agreement.
    for who in [PREF, YOKOHAMA] {
        let reply = admin(&app, who, Method::GET, &format!("{AGREEMENT}/diff?from=1&to=2"), None).await;
        assert_eq!(reply.status, 200, "{who}: {}", reply.text());
        let d = reply.json().unwrap();
        assert_eq!(
            (d["agreement_id"].as_str(), d["from"].as_u64(), d["to"].as_u64()),
            (Some("kanagawa-2026"), Some(1), Some(2))
        );
        assert_eq!(d["verdict"], "new_access");
        assert_eq!(d["losses"], json!([]));
        let gains = d["gains"].as_array().unwrap();
        assert!(!gains.is_empty());
        for g in gains {
            assert_eq!(g["provider"], "141500");
            assert_eq!(g["provider_name"], "相模原市");
            assert_eq!(g["clause"], "providers[operator=141500]");
            assert_eq!(g["consent"], "active");
            assert_ne!(g["criterion"], "all");
        }
        let hq = gains
            .iter()
            .find(|g| g["audience"] == "hq" && g["dv"] == false && g["criterion"] == "return_home")
            .unwrap();
        assert!(strings(&hq["fields"]).contains(&"household"));
        let hq_dv = gains.iter().find(|g| g["audience"] == "hq" && g["dv"] == true).unwrap();
        assert!(!strings(&hq_dv["fields"]).contains(&"child.address"), "no DV address");
    }
    // Backwards, the same combinations are losses and nothing is gained.
    let back = admin(&app, PREF, Method::GET, &format!("{AGREEMENT}/diff?from=2&to=1"), None).await;
    let back = back.json().unwrap();
    assert_eq!(back["verdict"], "no_new_access");
    assert_eq!(back["gains"], json!([]));
    assert!(!back["losses"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_proposal_is_compared_with_the_latest_version_and_nothing_is_stored() {
    let app = spawn_app().await;
    let same = demo_agreement().replacen("version = 1", "version = 2", 1);
    let path = format!("{AGREEMENT}/diff");
    let reply = admin(&app, PREF, Method::POST, &path, Some(&same)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let d = reply.json().unwrap();
    assert_eq!(d["from"], 1);
    assert_eq!(d["to"], Value::Null);
    assert_eq!(d["verdict"], "no_new_access");
    assert_eq!((d["gains"].clone(), d["losses"].clone()), (json!([]), json!([])));

    let wider = same.replacen("hq = [", "hq = [\"assessment\", ", 1);
    let d = admin(&app, PREF, Method::POST, &path, Some(&wider))
        .await
        .json()
        .unwrap();
    assert_eq!(d["verdict"], "new_access");
    for g in d["gains"].as_array().unwrap() {
        assert_eq!(
            (g["clause"].as_str(), g["audience"].as_str()),
            (Some("views.hq"), Some("hq"))
        );
        assert_eq!(strings(&g["fields"]), ["assessment"]);
    }
    // Only compared: the agreement still has one version.
    let doc = admin(&app, PREF, Method::GET, AGREEMENT, None).await.json().unwrap();
    assert_eq!(doc["latest_version"], 1);

    // A document that is no agreement, or another agreement's, is named like a PUT's.
    let p = problem(&admin(&app, PREF, Method::POST, &path, Some("id = ")).await, 400);
    assert!(p["detail"].as_str().unwrap().starts_with("body:"), "{p}");
    let other = same.replacen("id = \"kanagawa-2026\"", "id = \"other\"", 1);
    let p = problem(&admin(&app, PREF, Method::POST, &path, Some(&other)).await, 400);
    assert!(p["detail"].as_str().unwrap().contains("not the id in the URL"), "{p}");
}

#[tokio::test]
async fn diff_parameters_and_unknown_versions_are_refused_by_name() {
    let app = spawn_app().await;
    let p = problem(
        &admin(&app, PREF, Method::GET, &format!("{AGREEMENT}/diff?from=1"), None).await,
        400,
    );
    assert_eq!(p["errors"][0]["pointer"], "?to");
    let p = problem(
        &admin(
            &app,
            PREF,
            Method::GET,
            &format!("{AGREEMENT}/diff?from=1&to=2&x=1"),
            None,
        )
        .await,
        400,
    );
    assert_eq!(p["errors"][0]["pointer"], "?x");
    problem(
        &admin(&app, PREF, Method::GET, &format!("{AGREEMENT}/diff?from=1&to=9"), None).await,
        404,
    );
    problem(
        &admin(
            &app,
            PREF,
            Method::GET,
            "/v1/admin/agreements/nothing/diff?from=1&to=1",
            None,
        )
        .await,
        404,
    );
}

#[tokio::test]
async fn simulate_names_the_fields_a_terminal_would_see_and_never_a_value() {
    let app = spawn_app().await;
    assert_eq!(
        app.push(&full_case("yokohama-central", "SIM-1", "141046")).await.status,
        200
    );
    let ask = |station: &str, document: Option<String>| {
        json!({
            "station_id": station, "terminal_no": 1,
            "center_id": "yokohama-central", "case_id": "SIM-1", "document": document,
        })
        .to_string()
    };
    let reply = admin(
        &app,
        PREF,
        Method::POST,
        "/v1/admin/simulate",
        Some(&ask("kagacho", None)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    assert!(
        !text.contains("山田") && !text.contains("ADDRCANARY"),
        "no case value: {text}"
    );
    let s = reply.json().unwrap();
    assert_eq!(s["visible"], true);
    assert_eq!(
        s["clause"],
        "kanagawa-2026@v1/providers/141003/criteria/views/covering_station"
    );
    assert!(strings(&s["fields"]).contains(&"child.address"));
    let summary = strings(&s["summary_fields"]);
    assert!(summary.contains(&"risk_level") && summary.contains(&"child.address.municipality_code"));
    assert!(!summary.contains(&"child.address") && !summary.contains(&"guardians.name"));

    // Under a draft that drops the risk level from every view and summary that had it.
    let draft = demo_agreement()
        .replacen("version = 1", "version = 2", 1)
        .replace("\"abuse\", \"risk_level\", \"status\"", "\"abuse\", \"status\"");
    let s = admin(
        &app,
        PREF,
        Method::POST,
        "/v1/admin/simulate",
        Some(&ask("kagacho", Some(draft))),
    )
    .await;
    let s = s.json().unwrap();
    assert_eq!(s["visible"], true);
    assert!(s["clause"].as_str().unwrap().starts_with("kanagawa-2026@v2/"));
    assert!(!strings(&s["fields"]).contains(&"risk_level"));
    // Nothing was stored.
    let doc = admin(&app, PREF, Method::GET, AGREEMENT, None).await.json().unwrap();
    assert_eq!(doc["latest_version"], 1);

    // A Kawasaki case (not opted in) is invisible, without a reason that could tell its facts.
    assert_eq!(
        app.push(&full_case("kawasaki-central", "SIM-2", "141313")).await.status,
        200
    );
    let body = ask("kawasaki", None)
        .replace("yokohama-central", "kawasaki-central")
        .replace("SIM-1", "SIM-2");
    let s = admin(&app, PREF, Method::POST, "/v1/admin/simulate", Some(&body))
        .await
        .json()
        .unwrap();
    assert_eq!(
        s,
        json!({"visible": false, "clause": null, "fields": [], "summary_fields": []})
    );

    problem(
        &admin(
            &app,
            PREF,
            Method::POST,
            "/v1/admin/simulate",
            Some(&ask("ginza", None)),
        )
        .await,
        404,
    );
    let unknown = ask("kagacho", None).replace("SIM-1", "SIM-404");
    problem(
        &admin(&app, PREF, Method::POST, "/v1/admin/simulate", Some(&unknown)).await,
        404,
    );
    // A city's administrator does not administer the police force's terminals.
    problem(
        &admin(
            &app,
            YOKOHAMA,
            Method::POST,
            "/v1/admin/simulate",
            Some(&ask("kagacho", None)),
        )
        .await,
        403,
    );
    let p = problem(
        &admin(
            &app,
            PREF,
            Method::POST,
            "/v1/admin/simulate",
            Some(r#"{"station_id": "kagacho", "terminal_no": 0, "extra": 1}"#),
        )
        .await,
        400,
    );
    let pointers: Vec<_> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/extra", "/center_id", "/case_id", "/terminal_no"]);
}
