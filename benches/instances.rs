//! Several gateway instances on PostgreSQL against one instance on SQLite, measured in one run
//! on one machine (a throwaway PostgreSQL cluster started by the benchmark itself):
//!
//! - push-to-event latency: a case pushed to instance A until a stream connected to instance B
//!   receives it (PostgreSQL), against a push and a stream on the same SQLite instance;
//! - disclosures/s: detail views, each a durable audit entry, from concurrent connections;
//! - ingest/s on PostgreSQL with the NOTIFY wake-up and without it (polling only).
//!
//! `cargo bench --bench instances -- [rounds] [seconds]` (defaults 1000 and 5: a p99 of 100 samples is their second largest).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[allow(dead_code)]
#[path = "../tests/api/pg.rs"]
mod pg;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cgc_gateway::app::Application;
use cgc_gateway::client::GatewayClient;
use cgc_gateway::clock::{Clock, SystemClock};
use cgc_gateway::config::{self, Config};
use http_body_util::BodyExt;
use hyper::Method;

fn case(id: &str, now: time::OffsetDateTime) -> serde_json::Value {
    let at = now.format(&time::format_description::well_known::Rfc3339).unwrap();
    serde_json::json!({
        "case_id": id, "center_id": "yokosuka", "version": 1, "updated_at": at,
        "child": { "name": "負荷　試験", "name_kana": "フカ　シケン", "sex": "unknown", "birth_date": "2019-01-01",
                   "address": { "municipality_code": "142018", "text": "BENCH" } },
        "abuse": { "types": ["physical"], "injury": true }, "status": "investigating",
        "intake_at": "2026-11-19T08:00:00+09:00", "safety_confirmed_at": "2026-11-19T09:00:00+09:00",
        "flags": { "dv": false, "missing": false }
    })
}

async fn gateway(certs: &Path, data: &Path, url: &str, notify: bool) -> Application {
    let policies = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut config = Config::development(certs, data, &policies, "127.0.0.1:0".parse().unwrap());
    config.database_url = url.to_owned();
    config.notify_changes = notify;
    config.limits.burst = u32::MAX;
    config.limits.per_minute = u32::MAX;
    config.limits.center_burst = u32::MAX;
    config.limits.center_per_minute = u32::MAX;
    config.limits.bulk_views = u64::MAX;
    config.connections.per_principal = 100_000;
    Application::build(&config, Arc::new(SystemClock)).await.unwrap()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn p50_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (pct(&v, 0.5), pct(&v, 0.99))
}

/// Push-to-event latencies (ms): pushes to `ingest`, a stream on `watch`.
async fn push_to_event(certs: &Path, ingest: &Application, watch: &Application, tag: &str, rounds: usize) -> Vec<f64> {
    let token = cgc_gateway::cli::dev_token(
        certs,
        "terminal-yokosuka-1",
        "bench",
        time::Duration::hours(1),
        SystemClock.now(),
    )
    .unwrap();
    let terminal = GatewayClient::from_dev_certs(watch.addr(), certs, "terminal-yokosuka-1").unwrap();
    let mut conn = terminal.connect().await.unwrap();
    let response = conn
        .send_streaming(Method::GET, "/v1/terminal/stream", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut buf = String::new();
    let mut next_event = async |buf: &mut String, want: &str| loop {
        if let Some(i) = buf.find("\n\n") {
            let frame: String = buf.drain(..i + 2).collect();
            if frame.contains(want) {
                return;
            }
            continue;
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("no event within 10 s")
            .expect("stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buf.push_str(std::str::from_utf8(&data).unwrap());
        }
    };
    next_event(&mut buf, "event: synced").await;
    let center = GatewayClient::from_dev_certs(ingest.addr(), certs, "center-yokosuka").unwrap();
    let mut out = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let id = format!("{tag}-{i}");
        let started = Instant::now();
        let reply = center
            .put_json(&format!("/v1/cases/{id}"), &case(&id, SystemClock.now()))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        next_event(&mut buf, &format!("\"ref\":\"yokosuka:{id}\"")).await;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

/// Requests/s over `connections` concurrent connections for `seconds`.
async fn throughput<F, Fut>(connections: usize, seconds: u64, make: impl Fn(usize) -> F) -> f64
where
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let mut call = make(c);
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                if call(i).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn disclosures_per_second(certs: &Path, app: &Application, seconds: u64) -> f64 {
    let center = GatewayClient::from_dev_certs(app.addr(), certs, "center-yokosuka").unwrap();
    let id = format!("D-{}", app.addr().port());
    center
        .put_json(&format!("/v1/cases/{id}"), &case(&id, SystemClock.now()))
        .await
        .unwrap();
    let token = cgc_gateway::cli::dev_token(
        certs,
        "terminal-yokosuka-1",
        "bench",
        time::Duration::hours(1),
        SystemClock.now(),
    )
    .unwrap();
    let path = format!("/v1/terminal/cases/yokosuka:{id}");
    let addr = app.addr();
    let certs = certs.to_owned();
    throughput(16, seconds, move |_| {
        let client = GatewayClient::from_dev_certs(addr, &certs, "terminal-yokosuka-1").unwrap();
        let (token, path) = (token.clone(), path.clone());
        move |_| {
            let (client, token, path) = (client.clone(), token.clone(), path.clone());
            async move { client.get(&path, Some(&token)).await.is_ok_and(|r| r.status == 200) }
        }
    })
    .await
}

async fn ingest_per_second(certs: &Path, app: &Application, tag: &str, seconds: u64) -> f64 {
    let addr = app.addr();
    let certs = certs.to_owned();
    let tag = tag.to_owned();
    throughput(8, seconds, move |c| {
        let client = GatewayClient::from_dev_certs(addr, &certs, "center-yokosuka").unwrap();
        let tag = tag.clone();
        move |i| {
            let (client, id) = (client.clone(), format!("{tag}-{c}-{i}"));
            async move {
                client
                    .put_json(&format!("/v1/cases/{id}"), &case(&id, SystemClock.now()))
                    .await
                    .is_ok_and(|r| r.status == 200)
            }
        }
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    cgc_gateway::dev::pki::write_dev_pki(&certs, config::DEV_AUDIT_ORIGIN).unwrap();
    let cluster = pg::PgCluster::start().expect("PostgreSQL is needed (apt-get install postgresql)");
    let sqlite_url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let pg_url = cluster.create_database().await;
    let pg_quiet_url = cluster.create_database().await;

    let single = gateway(&certs, dir.path(), &sqlite_url, true).await;
    let a = gateway(&certs, dir.path(), &pg_url, true).await;
    let b = gateway(&certs, dir.path(), &pg_url, true).await;
    let quiet = gateway(&certs, dir.path(), &pg_quiet_url, false).await;

    let (s50, s99) = p50_p99(push_to_event(&certs, &single, &single, "S", rounds).await);
    let (p50, p99) = p50_p99(push_to_event(&certs, &a, &b, "P", rounds).await);
    let (q50, q99) = p50_p99(push_to_event(&certs, &quiet, &quiet, "Q", rounds).await);
    println!("push-to-event over {rounds} pushes (ms):");
    println!("  SQLite, one instance (push and stream on it)      p50 {s50:7.2}  p99 {s99:7.2}");
    println!(
        "  PostgreSQL, push to A, stream on B (NOTIFY)       p50 {p50:7.2}  p99 {p99:7.2}  ({:.2}x / {:.2}x SQLite)",
        p50 / s50,
        p99 / s99
    );
    println!("  PostgreSQL, one instance, NOTIFY off             p50 {q50:7.2}  p99 {q99:7.2}");

    let ds = disclosures_per_second(&certs, &single, seconds).await;
    let dp = disclosures_per_second(&certs, &a, seconds).await;
    println!("detail disclosures/s, 16 connections, {seconds} s each (each a durable audit entry):");
    println!("  SQLite      {ds:9.0}");
    println!("  PostgreSQL  {dp:9.0}  ({:.2}x SQLite)", dp / ds);

    let is = ingest_per_second(&certs, &single, "IS", seconds).await;
    let inn = ingest_per_second(&certs, &a, "IN", seconds).await;
    let iq = ingest_per_second(&certs, &quiet, "IQ", seconds).await;
    println!("ingest (PUT, durable before the answer), 8 connections, {seconds} s each:");
    println!("  SQLite                      {is:9.0}/s");
    println!("  PostgreSQL with NOTIFY      {inn:9.0}/s  ({:.2}x without)", inn / iq);
    println!("  PostgreSQL without NOTIFY   {iq:9.0}/s");
    drop(cluster);
}
