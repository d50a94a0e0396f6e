//! A city consents to terms, not to an agreement id. A new version from the prefecture that
//! widens what a city shares (its scope, any audience's fields, DV addresses) asks the city
//! again, and its cases stay under the terms it agreed to until it consents and the prefecture
//! confirms; a narrowing applies at once. Over real mTLS, with the demo agreement.

use hyper::Method;
use serde_json::Value;

use crate::admin::{AGREEMENT, PREF, YOKOHAMA, admin, demo_agreement, state_of, step};
use crate::helpers::{TestApp, field_paths, full_case, listed, spawn_app};

/// Submits a version 2 of the demo agreement made by `edit`; returns the answer.
async fn submit_v2(app: &TestApp, edit: impl Fn(String) -> String) -> Value {
    let v2 = edit(demo_agreement().replacen("version = 1", "version = 2", 1));
    let reply = admin(app, PREF, Method::PUT, AGREEMENT, Some(&v2)).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json().unwrap()
}

fn provider(doc: &Value, operator: &str) -> Value {
    doc["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["operator"] == operator)
        .unwrap()
        .clone()
}

async fn agreement(app: &TestApp) -> Value {
    admin(app, PREF, Method::GET, AGREEMENT, None).await.json().unwrap()
}

async fn reconfirm(app: &TestApp) {
    assert_eq!(step(app, YOKOHAMA, "141003", "consent").await.status, 200);
    let reply = step(app, PREF, "141003", "confirm").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["confirmed_version"], 2);
}

/// A Yokohama case (Naka-ku, 加賀町's area) that meets none of the national criteria.
fn yokohama_outside_criteria(id: &str) -> Value {
    let mut case = full_case("yokohama-central", id, "141046");
    case["abuse"] = serde_json::json!({ "types": ["psychological"], "injury": false });
    case
}

#[tokio::test]
async fn a_wider_scope_waits_for_the_citys_consent_and_the_prefectures_confirmation() {
    let app = spawn_app().await;
    app.push(&yokohama_outside_criteria("YW-1")).await;
    app.push(&full_case("yokohama-central", "YN-1", "141046")).await;
    assert_eq!(
        listed(&app.list("terminal-kagacho-1").await),
        ["yokohama-central:YN-1".to_owned()].into()
    );

    let answer = submit_v2(&app, |t| {
        t.replacen(
            r#"scope = ["injury_neglect_sexual", "safety_unconfirmed_48h", "return_home"]"#,
            r#"scope = "all""#,
            1,
        )
    })
    .await;
    assert_eq!(answer["in_force"], true);
    assert_eq!(answer["reasked"][0]["operator"], "141003");
    assert_eq!(answer["reasked"][0]["widened"][0], "scope widened from criteria to all");
    assert!(
        app.audit_has(&["\"kind\":\"consent\"", "\"action\":\"reask\"", "141003"])
            .await
    );
    let doc = agreement(&app).await;
    let yokohama = provider(&doc, "141003");
    assert_eq!(yokohama["state"], "asked");
    assert_eq!(yokohama["sharing"], true, "{yokohama}");
    assert_eq!(yokohama["confirmed_version"], 1);

    // Version 2 is in force, but Yokohama agreed to the national criteria only.
    let list = app.list("terminal-kagacho-1").await;
    assert_eq!(listed(&list), ["yokohama-central:YN-1".to_owned()].into());
    assert_eq!(
        list.json().unwrap()["cases"][0]["receipt"]["clause"],
        "kanagawa-2026@v2/providers/141003/all/views/covering_station&consented@v1"
    );
    assert_eq!(
        app.detail("terminal-kagacho-1", "yokohama-central:YW-1").await.status,
        404
    );

    // The city's consent alone is not enough; the prefecture confirms.
    assert_eq!(step(&app, YOKOHAMA, "141003", "consent").await.status, 200);
    assert_eq!(listed(&app.list("terminal-kagacho-1").await).len(), 1);
    let reply = step(&app, PREF, "141003", "confirm").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["confirmed_version"], 2);
    assert_eq!(listed(&app.list("terminal-kagacho-1").await).len(), 2);

    // Restarted from the store, the terms stay as consented.
    let ctx = app.app.context().clone();
    let world = cgc_gateway::agreements::load_or_seed(
        &ctx.store,
        &ctx.audit,
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
        crate::helpers::NOW,
    )
    .await
    .unwrap();
    assert_eq!(world.consents.get("kanagawa-2026", "141003").confirmed, Some(2));
}

#[tokio::test]
async fn wider_views_wait_for_consent_while_the_prefectures_own_cases_widen_at_once() {
    let app = spawn_app().await;
    // 鶴見 is another station for a Naka-ku case: the `prefecture_stations` audience.
    app.push(&full_case("yokohama-central", "YV-1", "141046")).await;
    app.push(&full_case("kanagawa-central", "KV-1", "141046")).await;
    let widened = [
        "assessment",
        "upbringing",
        "welfare_services",
        "guardians.employer",
        "child.address",
    ];
    let answer = submit_v2(&app, |t| {
        t.replacen(
            "prefecture_stations = [",
            r#"prefecture_stations = ["assessment", "upbringing", "welfare_services", "guardians.employer", "child.address", "#,
            1,
        )
    })
    .await;
    assert_eq!(
        answer["reasked"].as_array().unwrap().len(),
        2,
        "Yokohama and Yokosuka: {answer}"
    );
    assert_eq!(state_of(&agreement(&app).await, "141003"), "asked");

    let seen = |reply: cgc_gateway::client::Reply| {
        assert_eq!(reply.status, 200, "{}", reply.text());
        field_paths(&reply.json().unwrap()["case"])
    };
    let city = seen(app.detail("terminal-tsurumi-1", "yokohama-central:YV-1").await);
    for f in widened {
        assert!(!city.contains(f), "{f} reached a station before Yokohama consented");
    }
    assert!(city.contains("child.name"), "the agreed view still applies: {city:?}");
    // The prefecture's own cases need no one's consent.
    let own = seen(app.detail("terminal-tsurumi-1", "kanagawa-central:KV-1").await);
    for f in widened {
        assert!(own.contains(f), "{f} missing from the prefecture's own case");
    }

    reconfirm(&app).await;
    let city = seen(app.detail("terminal-tsurumi-1", "yokohama-central:YV-1").await);
    for f in widened {
        assert!(city.contains(f), "{f} missing after consent and confirmation");
    }
}

#[tokio::test]
async fn dv_addresses_to_more_audiences_wait_for_the_citys_consent() {
    let app = spawn_app().await;
    let mut dv = full_case("yokohama-central", "YD-1", "141046");
    dv["flags"]["dv"] = Value::Bool(true);
    app.push(&dv).await;
    let answer = submit_v2(&app, |t| {
        t.replacen(
            "address_audiences = []",
            r#"address_audiences = ["covering_station", "hq"]"#,
            1,
        )
    })
    .await;
    assert_eq!(
        answer["reasked"][0]["widened"],
        serde_json::json!([
            "covering_station newly sees DV-flagged addresses",
            "hq newly sees DV-flagged addresses"
        ])
    );
    for terminal in ["terminal-kagacho-1", "terminal-hq-1"] {
        let reply = app.detail(terminal, "yokohama-central:YD-1").await;
        assert!(
            !reply.text().contains("ADDRCANARY"),
            "DV address to {terminal} before consent"
        );
    }
    reconfirm(&app).await;
    for terminal in ["terminal-kagacho-1", "terminal-hq-1"] {
        let reply = app.detail(terminal, "yokohama-central:YD-1").await;
        assert!(reply.text().contains("ADDRCANARY-YD-1"), "{terminal}: {}", reply.text());
    }
}

#[tokio::test]
async fn a_narrowing_applies_at_once_and_asks_no_one() {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "YS-1", "141046")).await;
    let before = field_paths(
        &app.detail("terminal-kagacho-1", "yokohama-central:YS-1")
            .await
            .json()
            .unwrap()["case"],
    );
    assert!(before.contains("guardians.relationship") && before.contains("child.address"));
    let answer = submit_v2(&app, |t| {
        t.replacen(
            r#""guardians.name", "guardians.relationship",
  "abuse", "risk_level""#,
            r#""guardians.name",
  "abuse", "risk_level""#,
            1,
        )
        .replacen(
            r#""injury_neglect_sexual", "safety_unconfirmed_48h", "return_home"]"#,
            r#""injury_neglect_sexual"]"#,
            1,
        )
    })
    .await;
    assert_eq!(answer["reasked"], serde_json::json!([]));
    let doc = agreement(&app).await;
    assert_eq!(state_of(&doc, "141003"), "active");
    let after = field_paths(
        &app.detail("terminal-kagacho-1", "yokohama-central:YS-1")
            .await
            .json()
            .unwrap()["case"],
    );
    assert!(
        !after.contains("guardians.relationship"),
        "the narrowing waits: {after:?}"
    );
    assert!(after.contains("child.address"));
}
