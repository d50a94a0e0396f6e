//! Floods: a certificate's requests are rate limited before anything else, a flood of refusals
//! becomes a few entries with counts (and one security entry) without losing any, and every
//! case disclosed to an officer counts toward the bulk-viewing watch, whatever the channel.

use std::time::Duration;

use cgc_gateway::audit::entry::verify_line;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use hyper::Method;
use serde_json::Value;

use crate::helpers::{TestApp, full_case, pki, spawn_app_with};

const TERMINAL: &str = "terminal-kagacho-1";
const TERMINAL_URN: &str = "urn:cgc-gateway:terminal:kagacho:1";

fn entries(lines: &[String]) -> Vec<Value> {
    lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Entries are recorded in the background; waits (up to 5 s) until `done` holds for the log.
async fn wait_for(app: &TestApp, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..250 {
        let all = entries(&app.audit_lines().await);
        if done(&all) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not in the audit log within 5 s");
}

fn refusals_of<'a>(all: &'a [Value], principal: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|e| e["kind"] == "refusal" && e["actor"]["principal"] == principal)
        .collect()
}

fn security_with<'a>(all: &'a [Value], needle: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|e| e["kind"] == "security" && e.to_string().contains(needle))
        .collect()
}

/// How many refusals the entries stand for: one each, or their count.
fn refusals_recorded(refusals: &[&Value]) -> u64 {
    refusals.iter().map(|e| e["count"].as_u64().unwrap_or(1)).sum()
}

#[tokio::test]
async fn bad_token_flood_is_rate_limited_and_coalesced() {
    let app = spawn_app_with(|config, _| {
        config.limits.burst = 5;
        config.limits.per_minute = 60;
        config.limits.refusal_window_seconds = 60;
        config.limits.flood_refusals = 20;
    })
    .await;
    let before = app.audit_lines().await.len();
    let mut conn = app.client(TERMINAL).connect().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..200 {
        let reply = conn
            .send(Method::GET, "/v1/terminal/cases", Some("not.a.token"), None)
            .await
            .unwrap();
        if reply.status == 429 {
            assert_eq!(reply.headers["retry-after"], "1");
            assert_eq!(reply.headers["content-type"], "application/problem+json");
        }
        statuses.push(reply.status.as_u16());
    }
    // The certificate's burst reaches token verification; the rest is turned away first.
    assert_eq!(statuses[..5], [401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");

    // Two refusals recorded as they happened (the first 401, the first 429) and one security
    // entry for the flood; not 200 entries.
    let all = wait_for(&app, "the first refusals and the flood", |all| {
        refusals_of(all, TERMINAL_URN).len() == 2 && !security_with(all, "refusal flood").is_empty()
    })
    .await;
    let refused = refusals_of(&all, TERMINAL_URN);
    assert_eq!(
        refused
            .iter()
            .map(|e| (e["status"].as_u64().unwrap(), e.get("count").is_some()))
            .collect::<Vec<_>>(),
        [(401, false), (429, false)]
    );
    let flood = security_with(&all, "refusal flood");
    assert_eq!(flood.len(), 1);
    assert_eq!(flood[0]["actor"]["principal"], TERMINAL_URN);
    assert!(
        flood[0]["what"].as_str().unwrap().contains("21 refusals"),
        "{}",
        flood[0]
    );
    assert!(all.len() - before <= 3, "{} entries for the flood", all.len() - before);

    // When the window closes, the repeats are recorded as counts: all 200 are in the log.
    app.clock.advance(time::Duration::seconds(61));
    let all = wait_for(&app, "the counts of the closed window", |all| {
        refusals_recorded(&refusals_of(all, TERMINAL_URN)) == 200
    })
    .await;
    let refused = refusals_of(&all, TERMINAL_URN);
    let counted: Vec<(u64, u64)> = refused
        .iter()
        .filter_map(|e| Some((e["status"].as_u64().unwrap(), e["count"].as_u64()?)))
        .collect();
    assert_eq!(counted.len(), 2, "{refused:?}");
    assert!(
        counted.contains(&(401, 4)) && counted.contains(&(429, 194)),
        "{counted:?}"
    );
    assert!(refused.iter().all(|e| e["request"] == "GET /v1/terminal/cases"));
    // Each is an ordinary signed entry.
    let pem = std::fs::read_to_string(pki().join("audit/log-key.pem")).unwrap();
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
    let log = cgc_gateway::audit::LogKey::new(cgc_gateway::config::DEV_AUDIT_ORIGIN, key.clone()).unwrap();
    let keys = vec![(log.key_id_hex().to_owned(), key.verifying_key())];
    for (index, line) in app.audit_lines().await.iter().enumerate() {
        verify_line(line, index as u64, &keys).unwrap();
    }
}

#[tokio::test]
async fn every_principal_kind_is_rate_limited_per_certificate() {
    let app = spawn_app_with(|config, _| {
        config.limits.burst = 3;
        config.limits.per_minute = 6;
        config.limits.center_burst = 3;
        config.limits.center_per_minute = 6;
    })
    .await;
    for client in [
        "center-yokohama-central",
        "auditor-kanagawa-audit",
        "admin-14-pref-admin",
    ] {
        let client = app.client(client);
        for _ in 0..3 {
            assert_ne!(client.get("/v1/audit/checkpoint", None).await.unwrap().status, 429);
        }
        let reply = client.get("/v1/audit/checkpoint", None).await.unwrap();
        assert_eq!(reply.status, 429);
        assert_eq!(reply.headers["retry-after"], "10");
    }
    // Each certificate has its own bucket.
    assert_eq!(
        app.client(TERMINAL)
            .get("/v1/audit/checkpoint", None)
            .await
            .unwrap()
            .status,
        403
    );
}

#[tokio::test]
async fn refusal_counts_still_open_at_shutdown_are_recorded() {
    let app = spawn_app_with(|config, _| config.limits.refusal_window_seconds = 3600).await;
    let client = app.client(TERMINAL);
    for _ in 0..10 {
        assert_eq!(client.get("/v1/terminal/cases", None).await.unwrap().status, 401);
    }
    wait_for(&app, "the first refusal", |all| {
        refusals_of(all, TERMINAL_URN).len() == 1
    })
    .await;
    let ctx = app.app.context().clone();
    app.app.stop().await;
    let lines: Vec<String> = ctx
        .store
        .audit_entries(0, ctx.audit.size())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.line)
        .collect();
    let all = entries(&lines);
    let refused = refusals_of(&all, TERMINAL_URN);
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[1]["count"], 9);
    assert_eq!(refusals_recorded(&refused), 10);
}

/// Two cases the Atsugi terminal sees.
async fn two_cases(app: &TestApp) {
    for id in ["BL-1", "BL-2"] {
        app.push(&full_case("kanagawa-central", id, "142123")).await;
    }
}

#[tokio::test]
async fn list_views_count_toward_bulk_viewing() {
    let app = spawn_app_with(|config, _| config.limits.bulk_views = 30).await;
    two_cases(&app).await;
    let token = app.token("terminal-atsugi-1", "officer-7");
    let client = app.client("terminal-atsugi-1");
    for _ in 0..20 {
        let reply = client.get("/v1/terminal/cases", Some(&token)).await.unwrap();
        assert_eq!(reply.json().unwrap()["cases"].as_array().unwrap().len(), 2);
    }
    let all = wait_for(&app, "a bulk-viewing security entry", |all| {
        !security_with(all, "officer-7").is_empty()
    })
    .await;
    let security = security_with(&all, "officer-7");
    assert_eq!(security.len(), 1, "once per window");
    // Crossed at the 16th list: 32 disclosures, above 30.
    let what = security[0]["what"].as_str().unwrap();
    assert!(
        what.contains("bulk viewing") && what.contains("32 case disclosures"),
        "{what}"
    );
}

#[tokio::test]
async fn a_streams_initial_view_and_live_events_count_toward_bulk_viewing() {
    let app = spawn_app_with(|config, _| config.limits.bulk_views = 4).await;
    two_cases(&app).await;
    for id in ["BL-3", "BL-4"] {
        app.push(&full_case("kanagawa-central", id, "142123")).await;
    }
    let (status, mut stream) = crate::live::open(&app, "terminal-atsugi-1", None).await;
    assert_eq!(status, 200);
    let initial = stream.until_synced().await;
    assert_eq!(initial.iter().filter(|e| e.event == "case").count(), 4);
    // One more case, pushed live: the fifth disclosure crosses the threshold of 4.
    app.push(&full_case("kanagawa-central", "BL-5", "142123")).await;
    assert_eq!(stream.next().await.unwrap().event, "case");
    let all = wait_for(&app, "a bulk-viewing security entry", |all| {
        !security_with(all, "bulk viewing").is_empty()
    })
    .await;
    let security = security_with(&all, "bulk viewing");
    assert_eq!(security[0]["actor"]["subject"], "officer-1");
    assert!(
        security[0]["what"].as_str().unwrap().contains("5 case disclosures"),
        "{}",
        security[0]
    );
}

#[tokio::test]
async fn a_case_system_has_a_budget_of_its_own() {
    let app = spawn_app_with(|config, _| {
        config.limits.burst = 3;
        config.limits.per_minute = 6;
        config.limits.center_burst = 10;
        config.limits.center_per_minute = 60;
    })
    .await;
    let center = app.client("center-yokohama-central");
    for _ in 0..10 {
        assert_ne!(center.get("/v1/audit/checkpoint", None).await.unwrap().status, 429);
    }
    assert_eq!(center.get("/v1/audit/checkpoint", None).await.unwrap().status, 429);
    let auditor = app.client("auditor-kanagawa-audit");
    for _ in 0..3 {
        assert_ne!(auditor.get("/v1/audit/checkpoint", None).await.unwrap().status, 429);
    }
    assert_eq!(auditor.get("/v1/audit/checkpoint", None).await.unwrap().status, 429);
}
