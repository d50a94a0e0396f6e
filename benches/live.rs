//! Live terminals under load: push-to-event latency with N connected streams and the memory
//! an idle stream costs the gateway, against a peer measured in the same run (a plain list
//! request). The gateway runs as its own process (`cgc-gateway demo --no-feed`), so its RSS
//! is its own; the streams and pushes come from this process over real mTLS on loopback.
//!
//! `cargo bench --bench live -- [streams] [rounds]` (defaults 1000 and 30).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cgc_gateway::client::GatewayClient;
use http_body_util::BodyExt;
use hyper::Method;
use tokio::sync::mpsc;

const UNITS: &[&str] = &[
    "kagacho",
    "tsurumi",
    "kawasaki",
    "sagamihara-minami",
    "yokosuka",
    "atsugi",
    "hq",
];

struct Gateway(Child);
impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (pct(&v, 0.5), pct(&v, 0.99))
}

fn case(id: &str) -> serde_json::Value {
    serde_json::json!({
        "case_id": id, "center_id": "kanagawa-central", "version": 1,
        "updated_at": "2026-11-20T09:00:00+09:00",
        "child": { "name": "負荷　試験", "name_kana": "フカ　シケン", "sex": "unknown", "birth_date": "2019-01-01",
                   "address": { "municipality_code": "142123", "text": "BENCH" } },
        "abuse": { "types": ["physical"], "injury": true }, "status": "investigating",
        "intake_at": "2026-11-19T08:00:00+09:00", "safety_confirmed_at": "2026-11-19T09:00:00+09:00",
        "flags": { "dv": false, "missing": false }
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let streams: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(30);

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    cgc_gateway::dev::pki::write_dev_pki(&certs, cgc_gateway::config::DEV_AUDIT_ORIGIN).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let gateway = Gateway(
        Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
            .args(["demo", "--no-feed", "--port", &port.to_string()])
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--certs")
            .arg(&certs)
            .arg("--policies")
            .arg(&policies)
            .env("RUST_LOG", "warn")
            // A thousand streams share a few terminal certificates here; lift their rate limit
            // and their share of connections.
            .env("CGC_GATEWAY_LIMITS_BURST", "1000000")
            .env("CGC_GATEWAY_LIMITS_PER_MINUTE", "100000000")
            .env("CGC_GATEWAY_CONNECTIONS_PER_PRINCIPAL", "100000")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = gateway.0.id();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let client = |name: &str| GatewayClient::from_dev_certs(addr, &certs, name).unwrap();
    let token = |name: &str| {
        cgc_gateway::cli::dev_token(
            &certs,
            name,
            "bench",
            time::Duration::hours(2),
            cgc_gateway::clock::Clock::now(&cgc_gateway::clock::SystemClock),
        )
        .unwrap()
    };
    let hq = client("terminal-hq-1");
    let hq_token = token("terminal-hq-1");
    for _ in 0..200 {
        if hq.get("/v1/terminal/cases", Some(&hq_token)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let center = client("center-kanagawa-central");
    for i in 0..20 {
        let r = center
            .put_json(&format!("/v1/cases/SEED-{i}"), &case(&format!("SEED-{i}")))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(pid);

    // Connect the streams, spread over every unit.
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..streams {
        let unit = UNITS[i % UNITS.len()];
        let name = format!("terminal-{unit}-1");
        let mut conn = client(&name).connect().await.unwrap();
        let response = conn
            .send_streaming(Method::GET, "/v1/terminal/stream", Some(&token(&name)), None)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut buf = String::new();
        while !buf.contains("event: synced") {
            let f = body.frame().await.unwrap().unwrap();
            if let Ok(d) = f.into_data() {
                buf.push_str(std::str::from_utf8(&d).unwrap());
            }
        }
        let tx = tx.clone();
        handles.push(tokio::spawn(async move {
            let _conn = conn;
            while let Some(Ok(f)) = body.frame().await {
                if let Ok(d) = f.into_data() {
                    let n = std::str::from_utf8(&d).unwrap_or("").matches("event: case").count();
                    let now = Instant::now();
                    for _ in 0..n {
                        let _ = tx.send(now);
                    }
                }
            }
        }));
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(pid);
    let per_stream_kib = (rss_after.saturating_sub(rss_before)) as f64 / streams as f64;

    // Push-to-event latency: one shared case per round, seen by every stream.
    let mut push_to_event = Vec::new();
    let mut ack = Vec::new();
    for r in 0..rounds {
        let id = format!("BENCH-{r}");
        let body = case(&id);
        let t0 = Instant::now();
        let reply = center.put_json(&format!("/v1/cases/{id}"), &body).await.unwrap();
        ack.push(t0.elapsed().as_secs_f64() * 1e3);
        assert_eq!(reply.status, 200);
        for _ in 0..streams {
            let t = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap();
            push_to_event.push(t.duration_since(t0).as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The peer: a plain list request (evaluation, projection, one audit batch of 20+ cases),
    // measured with the same streams connected.
    let mut list = Vec::new();
    let mut conn = hq.connect().await.unwrap();
    for _ in 0..rounds.max(30) {
        let t0 = Instant::now();
        let r = conn
            .send(Method::GET, "/v1/terminal/cases", Some(&hq_token), None)
            .await
            .unwrap();
        list.push(t0.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.status, 200);
    }
    let (e50, e99) = summary(push_to_event);
    let (a50, a99) = summary(ack);
    let (l50, l99) = summary(list);
    println!(
        "live terminals: {streams} streams over {} units, {rounds} pushes",
        UNITS.len()
    );
    println!("  connect + initial view     {connect_secs:.1} s for all streams");
    println!("  push ack (PUT, durable)     p50 {a50:.2} ms   p99 {a99:.2} ms");
    println!("  push-to-event (all streams) p50 {e50:.2} ms   p99 {e99:.2} ms");
    println!("  peer: list request          p50 {l50:.2} ms   p99 {l99:.2} ms");
    println!(
        "  ratio push-to-event / list  p50 {:.2}x  p99 {:.2}x",
        e50 / l50,
        e99 / l99
    );
    println!(
        "  gateway RSS                 {rss_before} KiB -> {rss_after} KiB: {per_stream_kib:.1} KiB per idle stream (incl. its TLS connection)"
    );
    for h in handles {
        h.abort();
    }
    drop(gateway);
    let _ = Path::new(".");
}
