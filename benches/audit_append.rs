//! The audit log's two costs, each next to a peer measured in the same run:
//!
//! 1. Signed, durable appends per second through `AuditLog` with N concurrent requesters (one
//!    signed checkpoint per group commit, tiles, receipts with inclusion proofs), next to raw
//!    batched SQLite inserts (same schema, same `synchronous=FULL`, batches of N, no signing,
//!    no tiles, no channel); and the latency the log adds to one disclosure.
//! 2. Start-up time and memory against the log's size: a log of `--small` entries and one of
//!    `--large` entries are written, then each is opened by a fresh process (this binary, run
//!    again with `--open`), which reports how long `AuditLog::open` took and its RSS.
//!
//!    Peer: the same database opened as before tiles (every leaf hash read, the whole tree in
//!    memory), also in a fresh process.
//!
//! `cargo bench --bench audit_append [-- --large N --small N --skip-throughput --postgres]`
//! (`--postgres`: the throughput part also on a throwaway PostgreSQL cluster). Results go
//! in docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

// A throwaway PostgreSQL cluster for `--postgres` (the tests' own helper).
#[allow(dead_code)]
#[path = "../tests/api/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgc_gateway::audit::merkle::leaf_hash;
use cgc_gateway::audit::{Actor, AuditLog, CaseRef, Channel, ClauseRef, Event, FieldSetKind, LogKey};
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
        set: FieldSetKind::View,
    }
}

fn key() -> LogKey {
    LogKey::new(ORIGIN, SigningKey::from_bytes(&[3; 32])).unwrap()
}

async fn store(dir: &Path) -> SharedStore {
    cgc_gateway::store::open(&format!("sqlite://{}", dir.join("gateway.db").display()))
        .await
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A fresh store: a SQLite file under `base`, or a new database of `pg`.
async fn fresh(base: &Path, pg: Option<&pg::PgCluster>) -> (SharedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = match pg {
        Some(cluster) => cgc_gateway::store::open(&cluster.create_database().await)
            .await
            .unwrap(),
        None => store(dir.path()).await,
    };
    (store, dir)
}

/// N requesters, each recording one disclosure at a time, as request handlers do.
async fn through_log(n: usize, base: &Path, pg: Option<&pg::PgCluster>) -> (f64, Duration, Duration) {
    let (store, _dir) = fresh(base, pg).await;
    let log = AuditLog::open(store, key(), ORIGIN.into(), Arc::new(SystemClock))
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

fn raw_rows(from: u64, count: u64, filler: &str) -> Vec<AuditRow> {
    (from..from + count)
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
        .collect()
}

/// The same rows' shape, unsigned, inserted in batches of `batch` through the same store code
/// (one transaction per batch; SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`).
async fn raw_inserts(batch: usize, base: &Path, pg: Option<&pg::PgCluster>) -> f64 {
    let (store, _dir) = fresh(base, pg).await;
    let filler = "x".repeat(330); // about the length of a disclosure line
    let start = Instant::now();
    let mut index = 0u64;
    while start.elapsed() < RUN {
        store
            .append_audit(&raw_rows(index, batch as u64, &filler))
            .await
            .unwrap();
        index += batch as u64;
    }
    index as f64 / start.elapsed().as_secs_f64()
}

/// Writes a log of `size` entries through `AuditLog` in group commits of 4,096 (what a busy
/// gateway does), and the same number of raw rows in transactions of 4,096 into another
/// database: (signed appends/s, raw inserts/s) over the whole fill.
async fn fill(size: u64, dir: &Path) -> (f64, f64) {
    let log = AuditLog::open(store(dir).await, key(), ORIGIN.into(), Arc::new(SystemClock))
        .await
        .unwrap();
    let started = Instant::now();
    let mut next = 0u64;
    let mut last_report = Instant::now();
    while next < size {
        // Four requesters of 1,024 events each keep the appender's batches full.
        let mut waits = Vec::new();
        for _ in 0..4 {
            let end = (next + 1024).min(size);
            if next >= end {
                break;
            }
            let events: Vec<Event> = (next..end).map(event).collect();
            let log = log.clone();
            waits.push(tokio::spawn(async move { log.record(events).await.unwrap().len() }));
            next = end;
        }
        for w in waits {
            w.await.unwrap();
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            eprintln!("  … {next} of {size} entries written");
            last_report = Instant::now();
        }
    }
    let signed = size as f64 / started.elapsed().as_secs_f64();

    let raw_dir = tempfile::tempdir_in(dir.parent().unwrap()).unwrap();
    let raw_store = store(raw_dir.path()).await;
    let filler = "x".repeat(330);
    let started = Instant::now();
    let mut index = 0;
    while index < size {
        let count = 4096.min(size - index);
        raw_store.append_audit(&raw_rows(index, count, &filler)).await.unwrap();
        index += count;
    }
    let raw = size as f64 / started.elapsed().as_secs_f64();
    (signed, raw)
}

/// RSS and peak RSS of this process, in KiB, from /proc/self/status.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The child process: opens the log in `dir` and prints `open_ms rss_before rss_after peak`.
fn open_and_report(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = store(dir).await;
        let (before, _) = rss_kib();
        let started = Instant::now();
        let log = AuditLog::open(store, key(), ORIGIN.into(), Arc::new(SystemClock))
            .await
            .unwrap();
        let took = started.elapsed();
        // One proof, so that the first tiles read are part of what is measured.
        let size = log.size();
        log.inclusion_proof(size / 2, size).await.unwrap();
        let (after, peak) = rss_kib();
        println!("{} {} {} {} {}", took.as_secs_f64() * 1e3, before, after, peak, size);
    });
}

/// The peer: what start-up cost before tiles, in a child process too — every leaf hash read
/// and the whole tree built in memory. Prints the same fields.
fn open_legacy_and_report(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = store(dir).await;
        let (before, _) = rss_kib();
        let started = Instant::now();
        let tree = cgc_gateway::audit::merkle::Tree::from_leaf_hashes(store.audit_leaf_hashes().await.unwrap());
        let took = started.elapsed();
        let size = tree.len();
        tree.inclusion_proof(size / 2, size).unwrap();
        let (after, peak) = rss_kib();
        println!("{} {} {} {} {}", took.as_secs_f64() * 1e3, before, after, peak, size);
    });
}

struct Opened {
    ms: f64,
    rss_before: u64,
    rss_after: u64,
    peak: u64,
}

fn open_in_child(dir: &Path, mode: &str) -> Opened {
    // Twice, and the second counts: the first warms the page cache, as a restart would find it.
    let mut last = None;
    for _ in 0..2 {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .arg(mode)
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let v: Vec<f64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
        last = Some(Opened {
            ms: v[0],
            rss_before: v[1] as u64,
            rss_after: v[2] as u64,
            peak: v[3] as u64,
        });
    }
    last.unwrap()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(dir) = arg(&args, "--open") {
        open_and_report(Path::new(&dir));
        return;
    }
    if let Some(dir) = arg(&args, "--open-legacy") {
        open_legacy_and_report(Path::new(&dir));
        return;
    }
    let small: u64 = arg(&args, "--small").map_or(10_000, |v| v.parse().unwrap());
    let large: u64 = arg(&args, "--large").map_or(1_000_000, |v| v.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // On disk (not tmpfs), so that fsync costs what it costs in production.
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    if !args.iter().any(|a| a == "--skip-throughput") {
        let cluster = args
            .iter()
            .any(|a| a == "--postgres")
            .then(|| pg::PgCluster::start().expect("--postgres needs PostgreSQL (apt-get install postgresql)"));
        let backends: Vec<(&str, Option<&pg::PgCluster>)> = match &cluster {
            Some(c) => vec![("SQLite", None), ("PostgreSQL", Some(c))],
            None => vec![("SQLite", None)],
        };
        for (name, pg) in backends {
            println!(
                "| requesters | raw {name} inserts/s (batch = N) | signed log appends/s | log / raw | p50 | p99 |"
            );
            println!("|---:|---:|---:|---:|---:|---:|");
            runtime.block_on(async {
                for &n in REQUESTERS {
                    let raw = raw_inserts(n, &base, pg).await;
                    let (rate, p50, p99) = through_log(n, &base, pg).await;
                    println!(
                        "| {n} | {raw:.0} | {rate:.0} | {:.2} | {:.2} ms | {:.2} ms |",
                        rate / raw,
                        p50.as_secs_f64() * 1e3,
                        p99.as_secs_f64() * 1e3
                    );
                }
            });
            println!();
        }
    }

    println!(
        "| entries | fill: signed appends/s (commits of 4,096) | raw inserts/s (batches of 4,096) | log / raw | open | RSS before open | RSS after open + 1 proof | peak RSS | peer: full read (before tiles) | its peak RSS | database |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for size in [small, large] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let started = Instant::now();
        let (signed, raw) = runtime.block_on(fill(size, dir.path()));
        eprintln!("  {size} entries written in {:.0} s", started.elapsed().as_secs_f64());
        let opened = open_in_child(dir.path(), "--open");
        let legacy = open_in_child(dir.path(), "--open-legacy");
        let db = std::fs::metadata(dir.path().join("gateway.db")).map_or(0, |m| m.len());
        println!(
            "| {size} | {signed:.0} | {raw:.0} | {:.2} | {:.1} ms | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} ms | {:.1} MiB | {:.0} MiB |",
            signed / raw,
            opened.ms,
            opened.rss_before as f64 / 1024.0,
            opened.rss_after as f64 / 1024.0,
            opened.peak as f64 / 1024.0,
            legacy.ms,
            legacy.peak as f64 / 1024.0,
            db as f64 / (1024.0 * 1024.0)
        );
    }
}
