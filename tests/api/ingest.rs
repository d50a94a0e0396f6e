//! Case ingest: version rules, ownership, and errors that name every bad field.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{full_case, spawn_app};

#[tokio::test]
async fn an_identical_re_push_is_idempotent() {
    let app = spawn_app().await;
    let case = full_case("yokohama-central", "IDEM-1", "141046");
    let first = app.push(&case).await.json().unwrap();
    assert_eq!(first["outcome"], "stored");
    let again = app.push(&case).await.json().unwrap();
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(again["version"], 1);
}

#[tokio::test]
async fn a_different_body_at_the_same_or_an_older_version_is_409() {
    let app = spawn_app().await;
    let center = app.client("center-yokohama-central");
    let mut case = full_case("yokohama-central", "VER-1", "141046");
    case["version"] = json!(3);
    app.push(&case).await;

    let mut same_version = case.clone();
    same_version["risk_level"] = json!("low");
    let reply = center.put_json("/v1/cases/VER-1", &same_version).await.unwrap();
    assert_eq!(reply.status, 409);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(reply.json().unwrap()["stored_version"], 3);

    let mut older = case.clone();
    older["version"] = json!(2);
    let reply = center.put_json("/v1/cases/VER-1", &older).await.unwrap();
    assert_eq!(reply.status, 409);
    assert_eq!(reply.json().unwrap()["stored_version"], 3);

    // Nothing accepted was overwritten: the stored version is still 3, risk still high.
    let stored = app.app.context().live.case("yokohama-central", "VER-1").unwrap();
    assert_eq!(stored.record.version, 3);
    assert_eq!(
        stored.record.risk_level,
        Some(cgc_gateway::cases::record::RiskLevel::High)
    );

    let mut newer = case.clone();
    newer["version"] = json!(4);
    newer["risk_level"] = json!("low");
    assert_eq!(app.push(&newer).await.json().unwrap()["outcome"], "stored");
    // The older version pushed again, identical to what was stored at 3, is still idempotent.
    assert_eq!(
        center.put_json("/v1/cases/VER-1", &case).await.unwrap().json().unwrap()["outcome"],
        "unchanged"
    );
}

#[tokio::test]
async fn a_center_writes_only_its_own_cases() {
    let app = spawn_app().await;
    let case = full_case("yokohama-central", "OWN-1", "141046");
    let reply = app
        .client("center-kawasaki-central")
        .put_json("/v1/cases/OWN-1", &case)
        .await
        .unwrap();
    assert_eq!(reply.status, 403);
    assert!((app.app.context().live.case_count() == 0));
}

#[tokio::test]
async fn a_bad_case_is_refused_naming_every_bad_field() {
    let app = spawn_app().await;
    let mut case = full_case("yokohama-central", "BAD-1", "141046");
    case["child"]["address"]["municipality_code"] = json!("141047"); // wrong check digit
    case["surprise"] = json!("unexpected"); // unknown field
    case["version"] = json!("1"); // wrong type
    case["child"]["birth_date"] = json!("2019-02-30"); // no such date
    case["status"] = json!("unknown-status"); // not an enum value
    let reply = app
        .client("center-yokohama-central")
        .put_json("/v1/cases/BAD-1", &case)
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let problem = reply.json().unwrap();
    let pointers: BTreeSet<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        BTreeSet::from([
            "/child/address/municipality_code",
            "/surprise",
            "/version",
            "/child/birth_date",
            "/status"
        ])
    );
    // The error names what is wrong, never the case's values.
    let text = reply.text();
    assert!(
        !text.contains("山田") && !text.contains("ADDRCANARY") && !text.contains("unexpected"),
        "{text}"
    );
    assert!((app.app.context().live.case_count() == 0));
}

#[tokio::test]
async fn malformed_json_and_mismatched_ids_are_400() {
    let app = spawn_app().await;
    let center = app.client("center-yokohama-central");
    let reply = center
        .send(
            hyper::Method::PUT,
            "/v1/cases/X-1",
            None,
            Some(b"{\"case_id\": ".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    let case = full_case("yokohama-central", "X-1", "141046");
    let reply = center.put_json("/v1/cases/X-2", &case).await.unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json().unwrap()["errors"][0]["pointer"], "/case_id");
    let reply = center.put_json("/v1/cases/bad%20id", &case).await.unwrap();
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn an_accepted_case_survives_a_restart() {
    let app = spawn_app().await;
    let case = full_case("yokohama-central", "DUR-1", "141046");
    app.push(&case).await;
    let data = app.data;
    app.app.stop().await;
    // A new gateway over the same SQLite file serves the case.
    let clock = std::sync::Arc::new(cgc_gateway::clock::ManualClock::new(crate::helpers::NOW));
    let policies = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = cgc_gateway::config::Config::development(
        crate::helpers::pki(),
        data.path(),
        &policies,
        "127.0.0.1:0".parse().unwrap(),
    );
    let again = cgc_gateway::app::Application::build(&config, clock).await.unwrap();
    assert_eq!(
        again
            .context()
            .live
            .case("yokohama-central", "DUR-1")
            .unwrap()
            .record
            .version,
        1
    );
    again.stop().await;
}
