//! Disclosures per second through the real gateway: mTLS on loopback, officer tokens, the
//! policy evaluation, the audit log's durable group commit, SQLite with `synchronous=FULL`.
//!
//! Peer, measured in the same run on the same connections: a request the gateway answers
//! without policy or audit (an unknown path → 404 problem+json), i.e. the TLS + HTTP floor.
//!
//! `cargo bench --bench disclosures` (bounded: about 20 s).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cgc_gateway::app::Application;
use cgc_gateway::client::GatewayClient;
use cgc_gateway::clock::{Clock, SystemClock};
use cgc_gateway::config::{self, Config};
use cgc_gateway::dev::synth::Synth;
use hyper::Method;

const CONCURRENCY: usize = 16;
const PHASE: Duration = Duration::from_secs(5);
const CASES: usize = 100;

#[tokio::main]
async fn main() {
    let certs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    cgc_gateway::dev::pki::write_dev_pki(certs.path(), config::DEV_AUDIT_ORIGIN).unwrap();
    let policies = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut config = Config::development(certs.path(), data.path(), &policies, "127.0.0.1:0".parse().unwrap());
    // One terminal drives the whole load here; the per-terminal limit would cap it otherwise.
    config.limits.burst = u32::MAX;
    config.limits.per_minute = u32::MAX;
    let app = Application::build(&config, Arc::new(SystemClock)).await.unwrap();
    let addr = app.addr();

    // The prefecture shares every case, so every case is visible to the HQ terminal.
    let center = GatewayClient::from_dev_certs(addr, certs.path(), "center-kanagawa-central").unwrap();
    let mut synth = Synth::new(7);
    let mut refs = Vec::new();
    for i in 0..CASES {
        let mut case = synth.case("kanagawa-central", &format!("B-{i:05}"), "142123", 1, SystemClock.now());
        // Closed cases leave every view; every case here must stay visible.
        case["status"] = serde_json::json!("investigating");
        let reply = center.put_json(&format!("/v1/cases/B-{i:05}"), &case).await.unwrap();
        assert!(reply.status.is_success(), "{}", reply.text());
        refs.push(format!("kanagawa-central:B-{i:05}"));
    }
    let terminal = GatewayClient::from_dev_certs(addr, certs.path(), "terminal-hq-1").unwrap();
    let token = cgc_gateway::cli::dev_token(
        certs.path(),
        "terminal-hq-1",
        "bench",
        time::Duration::hours(1),
        SystemClock.now(),
    )
    .unwrap();
    let refs = Arc::new(refs);

    println!(
        "cgc-gateway disclosure benchmark: {CASES} cases, {CONCURRENCY} keep-alive mTLS connections, {} s per phase",
        PHASE.as_secs()
    );
    let floor = run(&terminal, &token, |_| "/v1/no-such-endpoint".to_owned(), 404, 0).await;
    println!("  floor (mTLS + HTTP, 404)      {floor:>10.0} requests/s");
    let refs2 = refs.clone();
    let detail = run(
        &terminal,
        &token,
        move |i| format!("/v1/terminal/cases/{}", refs2[i % refs2.len()]),
        200,
        1,
    )
    .await;
    println!(
        "  detail                        {detail:>10.0} disclosures/s   ({:.2} × floor requests/s)",
        detail / floor
    );
    let list = run(
        &terminal,
        &token,
        |_| "/v1/terminal/cases".to_owned(),
        200,
        CASES as u64,
    )
    .await;
    println!(
        "  list ({CASES} cases per request)  {list:>10.0} disclosures/s   ({:.0} lists/s, {:.2} × floor requests/s)",
        list / CASES as f64,
        list / floor
    );
    println!("  audit log size after the run: {} entries", app.context().audit.size());
    app.stop().await;
}

/// Runs `CONCURRENCY` connections for `PHASE`; returns disclosures (or requests, if
/// `per_request` is 0) per second.
async fn run(
    client: &GatewayClient,
    token: &str,
    path: impl Fn(usize) -> String + Send + Sync + 'static,
    status: u16,
    per_request: u64,
) -> f64 {
    let path = Arc::new(path);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONCURRENCY {
        let (client, token, path, done) = (client.clone(), token.to_owned(), path.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = client.connect().await.unwrap();
            let mut i = c;
            while start.elapsed() < PHASE {
                let reply = conn.send(Method::GET, &path(i), Some(&token), None).await.unwrap();
                assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
                done.fetch_add(per_request.max(1), Ordering::Relaxed);
                i += CONCURRENCY;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}
