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
async fn two_on() -> Option<(TestApp, TestApp, String)> {
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

/// A server's configuration file naming the given database, over the test PKI.
fn server_config(dir: &std::path::Path, database_url: &str) -> std::path::PathBuf {
    use cgc_gateway::config::{ADMIN_AUDIENCE, DEV_AUDIT_ORIGIN, DEV_TOKEN_ISSUER, OFFICER_AUDIENCE};
    let pki = crate::helpers::pki();
    let p = |rel: &str| pki.join(rel).display().to_string();
    let text = format!(
        r#"listen = "127.0.0.1:0"
database_url = "{database_url}"
policies = "{policies}"

[tls]
server_cert = "{server_cert}"
server_key = "{server_key}"
center_ca = "{center_ca}"
terminal_ca = "{terminal_ca}"
admin_ca = "{admin_ca}"
auditor_ca = "{auditor_ca}"

[tokens]
issuer = "{DEV_TOKEN_ISSUER}"
public_key = "{issuer}"
officer_audience = "{OFFICER_AUDIENCE}"
admin_audience = "{ADMIN_AUDIENCE}"

[audit]
origin = "{DEV_AUDIT_ORIGIN}"
signing_key = "{log_key}"
"#,
        policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        server_cert = p("server.pem"),
        server_key = p("server-key.pem"),
        center_ca = p("ca/center-ca.pem"),
        terminal_ca = p("ca/terminal-ca.pem"),
        admin_ca = p("ca/admin-ca.pem"),
        auditor_ca = p("ca/auditor-ca.pem"),
        issuer = p("token-issuer/issuer-pub.pem"),
        log_key = p("audit/log-key.pem"),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn audit_export_reads_the_store_a_server_configuration_names() {
    let Some((a, _b, url)) = two_on().await else { return };
    a.push(&full_case("yokosuka", "MI-E", "142018")).await;
    assert_eq!(a.detail("terminal-yokosuka-1", "yokosuka:MI-E").await.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let config = server_config(dir.path(), &url);
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

/// A gateway process of its own (`cgc-gateway serve`), so that it can be killed outright.
struct Process {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Process {
    fn serve(config: &std::path::Path, addr: std::net::SocketAddr) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
            .args(["serve", "--config"])
            .arg(config)
            .env("CGC_GATEWAY_LISTEN", addr.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self { child, addr }
    }

    async fn ready(&self) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway process did not start");
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown, no flush, as a crash or an OOM kill.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_during_concurrent_ingest_and_disclosure_loses_nothing_acknowledged() {
    let Some(url) = crate::pg::database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = server_config(dir.path(), &url);
    let pki = crate::helpers::pki();
    // The process runs on the wall clock; its tokens must be valid now.
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc();
    let token = cgc_gateway::cli::dev_token(pki, "terminal-yokosuka-1", "K-1", time::Duration::hours(1), now).unwrap();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let receipts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, String)>::new()));
    for round in 0..3 {
        let process = Process::serve(&config, free_addr());
        process.ready().await;
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let center =
                cgc_gateway::client::GatewayClient::from_dev_certs(process.addr, pki, "center-yokosuka").unwrap();
            let terminal =
                cgc_gateway::client::GatewayClient::from_dev_certs(process.addr, pki, "terminal-yokosuka-1").unwrap();
            let (acked, receipts, token) = (acked.clone(), receipts.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let id = format!("K{round}-{worker}-{i}");
                    let mut case = full_case("yokosuka", &id, "142018");
                    case["updated_at"] =
                        Value::String(now.format(&time::format_description::well_known::Rfc3339).unwrap());
                    let Ok(reply) = center.put_json(&format!("/v1/cases/{id}"), &case).await else {
                        return;
                    };
                    if reply.status == 200 {
                        acked.lock().unwrap().push(id.clone());
                    }
                    let Ok(view) = terminal
                        .get(&format!("/v1/terminal/cases/yokosuka:{id}"), Some(&token))
                        .await
                    else {
                        return;
                    };
                    if view.status == 200 {
                        let r = view.json().unwrap()["receipt"].clone();
                        let index = r["index"].as_u64().or(r["audit_index"].as_u64()).unwrap();
                        let entry = r["entry"].as_str().unwrap_or_default().to_owned();
                        receipts.lock().unwrap().push((index, entry));
                    }
                }
            }));
        }
        // Let work pile up, then kill mid-flight.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        process.kill();
        for t in tasks {
            let _ = t.await;
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "too little work to prove anything: {}", acked.len());
    eprintln!("3 SIGKILLs: {} acknowledged updates checked", acked.len());
    let store = cgc_gateway::store::open(&url).await.unwrap();
    for id in &acked {
        assert!(
            store.current_case("yokosuka", id).await.unwrap().is_some(),
            "acknowledged {id} was lost"
        );
    }
    // Every receipted disclosure's entry is in the log, exactly as the receipt carries it.
    let receipts = receipts.lock().unwrap().clone();
    assert!(!receipts.is_empty());
    for (index, entry) in &receipts {
        let stored = store.audit_entries(*index, index + 1).await.unwrap();
        assert_eq!(stored.len(), 1, "receipted entry {index} missing");
        if !entry.is_empty() {
            assert_eq!(&stored[0].line, entry);
        }
    }
    // And the log verifies.
    let out = dir.path().join("export");
    cgc_gateway::audit::export::export(&store, &out).await.unwrap();
    let verified = cgc_gateway::audit::verify::verify_dir(&out, &pki.join("audit/verifier-key.txt"), None);
    assert!(verified.is_ok(), "{verified:?}");
}
