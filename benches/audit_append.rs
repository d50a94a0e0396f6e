//! Signed, durable appends per second through `AuditLog` with N concurrent requesters, next to
//! raw batched SQLite inserts (same schema, same `synchronous=FULL`, batches of N, no signing,
//! no channel), measured in the same run; and the latency the log adds to one disclosure.
//!
//! `cargo bench --bench audit_append` (about a minute). Results go in docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cgc_gateway::audit::merkle::leaf_hash;
use cgc_gateway::audit::{Actor, AuditLog, CaseRef, Channel, ClauseRef, Event, LogKey};
use cgc_gateway::clock::SystemClock;
use cgc_gateway::policy::fields::{FieldPath, FieldSet};
use cgc_gateway::store::{AuditRow, SharedStore};
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "bench.cgc-gateway.invalid/audit";
const RUN: Duration = Duration::from_secs(4);
const REQUESTERS: &[usize] = &[1, 4, 16, 64, 256];

fn event(n: u64) -> Event {
    Event::Disclosure {
        actor: Actor {
            principal: "urn:cgc-gateway:terminal:kagacho:1".into(),
            subject: Some(format!("officer-{}", n % 17)),
        },
        station: "kagacho".into(),
        case: CaseRef {
            center_id: "yokohama-central".into(),
            case_id: format!("CASE-{}", n % 997),
            version: 1,
        },
        fields: FieldSet::EMPTY
            .with(FieldPath::ChildName)
            .with(FieldPath::ChildSex)
            .with(FieldPath::ChildBirthDate)
            .with(FieldPath::Status),
        agreement: ClauseRef {
            agreement_id: "kanagawa-2026".into(),
            agreement_version: 1,
            clause: "providers.141003".into(),
            audience: "covering_station",
            criterion: Some("injury_neglect_sexual"),
        },
        channel: Channel::Detail,
    }
}

async fn store(dir: &std::path::Path) -> SharedStore {
    cgc_gateway::store::open(&format!("sqlite://{}", dir.join("gateway.db").display()))
        .await
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// N requesters, each recording one disclosure at a time, as request handlers do.
async fn through_log(n: usize, base: &std::path::Path) -> (f64, Duration, Duration) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = store(dir.path()).await;
    let key = LogKey::new(ORIGIN, SigningKey::from_bytes(&[3; 32])).unwrap();
    let log = AuditLog::open(store, key, ORIGIN.into(), Arc::new(SystemClock))
        .await
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for r in 0..n {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = r as u64;
            while start.elapsed() < RUN {
                let t = Instant::now();
                log.record_one(event(i)).await.unwrap();
                latencies.push(t.elapsed());
                i += n as u64;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    (
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    )
}

/// The same rows' shape, unsigned, inserted in batches of `batch` through the same store code
/// (one transaction per batch, `synchronous=FULL`).
async fn raw_sqlite(batch: usize, base: &std::path::Path) -> f64 {
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = store(dir.path()).await;
    let filler = "x".repeat(420); // about the length of a signed disclosure line
    let start = Instant::now();
    let mut index = 0u64;
    while start.elapsed() < RUN {
        let rows: Vec<AuditRow> = (index..index + batch as u64)
            .map(|i| {
                let line = format!("{{\"index\":{i},\"f\":\"{filler}\"}}");
                AuditRow {
                    index: i,
                    leaf_hash: leaf_hash(line.as_bytes()),
                    line,
                    kind: "disclosure".into(),
                    center_id: Some("yokohama-central".into()),
                    case_id: Some(format!("CASE-{}", i % 997)),
                }
            })
            .collect();
        store.append_audit(&rows).await.unwrap();
        index += batch as u64;
    }
    index as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // On disk (not tmpfs), so that fsync costs what it costs in production.
    let base = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    println!("| requesters | raw SQLite inserts/s (batch = N) | signed log appends/s | log / raw | p50 | p99 |");
    println!("|---:|---:|---:|---:|---:|---:|");
    runtime.block_on(async {
        for &n in REQUESTERS {
            let raw = raw_sqlite(n, &base).await;
            let (rate, p50, p99) = through_log(n, &base).await;
            println!(
                "| {n} | {raw:.0} | {rate:.0} | {:.2} | {:.2} ms | {:.2} ms |",
                rate / raw,
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    });
}
