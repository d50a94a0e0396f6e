//! Two gateway instances on one PostgreSQL database, as behind a TCP load balancer: what is
//! acknowledged, changed or revoked on one governs the other at once; one audit log.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::Value;

use crate::admin::{PREF, YOKOHAMA, admin, step};
use crate::helpers::{TestApp, full_case, spawn_app_with};
use crate::live::{Sse, Stream, catch_up, open};

/// Two instances on a fresh database, or `None` without PostgreSQL (after a skip notice).
async fn two() -> Option<(TestApp, TestApp)> {
    two_on().await.map(|(a, b, _)| (a, b))
}

/// Two instances and the database URL they share.
pub(crate) async fn two_on() -> Option<(TestApp, TestApp, String)> {
    let url = crate::pg::database().await?;
    let a = spawn_app_with(|c, _| c.database_url = url.clone()).await;
    let b = spawn_app_with(|c, _| c.database_url = url.clone()).await;
    Some((a, b, url))
}

async fn synced(app: &TestApp, terminal: &str) -> Stream {
    let (status, mut s) = open(app, terminal, None).await;
    assert_eq!(status, 200);
    s.until_synced().await;
    s
}

async fn next_event(s: &mut Stream, within: Duration) -> Option<Sse> {
    s.next_within(within).await
}

#[tokio::test]
async fn a_case_pushed_to_one_instance_reaches_a_stream_on_the_other_within_a_second() {
    let Some((a, b)) = two().await else { return };
    let mut stream = synced(&b, "terminal-yokosuka-1").await;
    let pushed = Instant::now();
    a.push(&full_case("yokosuka", "MI-1", "142018")).await;
    let event = next_event(&mut stream, Duration::from_secs(1))
        .await
        .expect("stream ended");
    let latency = pushed.elapsed();
    assert_eq!(event.event, "case", "{event:?}");
    assert_eq!(event.data["ref"], "yokosuka:MI-1");
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    // And B's list and detail serve it.
    assert_eq!(b.detail("terminal-yokosuka-1", "yokosuka:MI-1").await.status, 200);
}

#[tokio::test]
async fn a_cursor_from_one_instance_resumes_on_the_other_without_a_reset() {
    let Some((a, b)) = two().await else { return };
    for id in ["MI-KEEP", "MI-UPD"] {
        a.push(&full_case("yokohama-central", id, "141046")).await;
    }
    let (_, mut s) = open(&a, "terminal-kagacho-1", None).await;
    let first = s.until_synced().await;
    let cursor = first.last().and_then(|e| e.id.clone()).unwrap();
    drop(s);
    let mut updated = full_case("yokohama-central", "MI-UPD", "141046");
    updated["version"] = serde_json::json!(2);
    b.push(&updated).await;
    a.push(&full_case("yokohama-central", "MI-NEW", "141046")).await;
    // The load balancer sends the reconnect to the other instance.
    let (status, mut s) = open(&b, "terminal-kagacho-1", Some(&cursor)).await;
    assert_eq!(status, 200);
    assert_eq!(
        catch_up(&s.until_synced().await),
        ["case yokohama-central:MI-NEW", "case yokohama-central:MI-UPD", "synced"]
    );
}

#[tokio::test]
async fn a_withdrawal_on_one_instance_withdraws_on_the_other() {
    let Some((a, b)) = two().await else { return };
    a.push(&full_case("yokohama-central", "MI-W", "141046")).await;
    let mut stream = synced(&b, "terminal-kagacho-1").await;
    let reply = step(&a, YOKOHAMA, "141003", "withdraw").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let event = next_event(&mut stream, Duration::from_secs(2))
        .await
        .expect("stream ended");
    assert_eq!(event.event, "withdraw", "{event:?}");
    assert_eq!(event.data["ref"], "yokohama-central:MI-W");
    assert_eq!(
        b.detail("terminal-kagacho-1", "yokohama-central:MI-W").await.status,
        404
    );
}

#[tokio::test]
async fn a_change_on_one_instance_governs_the_very_next_request_on_the_other() {
    let Some((a, b)) = two().await else { return };
    a.push(&full_case("yokohama-central", "MI-N", "141046")).await;
    assert_eq!(
        b.detail("terminal-kagacho-1", "yokohama-central:MI-N").await.status,
        200
    );
    // No waiting for a wake-up: the withdrawal committed on A, B's next request sees it.
    assert_eq!(step(&a, YOKOHAMA, "141003", "withdraw").await.status, 200);
    assert_eq!(
        b.detail("terminal-kagacho-1", "yokohama-central:MI-N").await.status,
        404
    );
}

#[tokio::test]
async fn a_revocation_on_one_instance_cuts_the_stream_and_refuses_the_next_request_on_the_other() {
    let Some((a, b)) = two().await else { return };
    let mut stream = synced(&b, "terminal-kagacho-1").await;
    let reply = admin(&a, PREF, Method::POST, "/v1/admin/terminals/kagacho/1/revoke", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match stream.next_within(Duration::from_secs(2)).await {
            None => break,
            Some(e) => assert!(Instant::now() < deadline, "stream still open: {e:?}"),
        }
    }
    let refused = b.list("terminal-kagacho-1").await;
    assert_eq!(refused.status, 403, "{}", refused.text());
}

#[tokio::test]
async fn disclosures_on_both_instances_make_one_continuous_log_that_verifies() {
    let Some((a, b)) = two().await else { return };
    a.push(&full_case("yokosuka", "MI-A", "142018")).await;
    let mut tasks = Vec::new();
    for (app, n) in [(&a, 0), (&b, 1)] {
        for i in 0..10 {
            let client = app.client("terminal-yokosuka-1");
            let token = app.token("terminal-yokosuka-1", &format!("officer-{n}-{i}"));
            tasks.push(tokio::spawn(async move {
                client
                    .get("/v1/terminal/cases/yokosuka:MI-A", Some(&token))
                    .await
                    .unwrap()
            }));
        }
    }
    let mut indices = Vec::new();
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        let receipt: Value = reply.json().unwrap()["receipt"].clone();
        indices.push(receipt["index"].as_u64().or(receipt["audit_index"].as_u64()).unwrap());
    }
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 20, "one entry per disclosure: {indices:?}");

    // One log: continuous indices whatever the instance, and the export verifies.
    let store = &a.app.context().store;
    let stored = store.audit_len().await.unwrap();
    let lines: Vec<String> = store
        .audit_entries(0, stored)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.line)
        .collect();
    assert!(lines.len() >= 20);
    for (i, line) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["index"], i as u64, "{line}");
    }
    let out = tempfile::tempdir().unwrap();
    cgc_gateway::audit::export::export(store, &out.path().join("x"))
        .await
        .unwrap();
    let key = crate::helpers::pki().join("audit/verifier-key.txt");
    let report = cgc_gateway::audit::verify::verify_dir(&out.path().join("x"), &key, None);
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn audit_export_reads_the_store_a_server_configuration_names() {
    let Some((a, _b, url)) = two_on().await else { return };
    a.push(&full_case("yokosuka", "MI-E", "142018")).await;
    assert_eq!(a.detail("terminal-yokosuka-1", "yokosuka:MI-E").await.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let config = crate::crash::server_config(dir.path(), &url);
    let out = dir.path().join("export");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
        .args(["audit", "export", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let verified =
        cgc_gateway::audit::verify::verify_dir(&out, &crate::helpers::pki().join("audit/verifier-key.txt"), None);
    assert!(verified.is_ok(), "{verified:?}");
    let entries = std::fs::read_to_string(out.join("entries.jsonl")).unwrap();
    assert!(entries.contains("\"MI-E\""), "the disclosure is in the export");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_during_concurrent_ingest_and_disclosure_loses_nothing_acknowledged() {
    let Some(url) = crate::pg::database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    // The same rounds as on SQLite (`crash`), fewer: a PostgreSQL server is slower to write.
    let (acked, receipts) = crate::crash::kill_repeatedly(&url, dir.path(), 10, 4).await;
    assert!(acked > 20, "too little work to prove anything: {acked}");
    assert!(receipts > 0);
}
