//! Batch import through the real gateway: a Shift_JIS CSV file of N rows (100,000 by default)
//! streamed from disk in 64 KiB pieces over mTLS on loopback to the in-process gateway
//! (SQLite file, `synchronous=FULL`, every row durable before the report).
//!
//! Three phases, each with the process's peak resident memory (VmHWM, reset just before the
//! phase) against its resident memory before it:
//!
//! - peer: N/10 cases of the same content pushed one by one with `PUT` on one keep-alive
//!   connection, as a CGC system does without the batch endpoint;
//! - the file imported (every row stored): rows/s; memory grows by what the gateway keeps for
//!   every stored case (the live hub's projected views), as it does for the `PUT`s;
//! - the same file again (every row unchanged): nothing new is kept, so the growth is the
//!   import's own (the reader's one row and the report's entry per row).
//!
//! `cargo bench --bench batch_import [-- ROWS]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use cgc_gateway::app::Application;
use cgc_gateway::client::GatewayClient;
use cgc_gateway::clock::SystemClock;
use cgc_gateway::config::{self, Config};
use hyper::Method;
use serde_json::json;

const HEADER: &str = "case_id,center_id,version,updated_at,child.name,child.name_kana,child.sex,child.birth_date,\
child.address.municipality_code,child.address.text,guardians.1.name,guardians.1.relationship,household,\
abuse.types,abuse.injury,risk_level,status,intake_at,flags.dv,flags.missing,assessment.progress,\
center_contact.name,center_contact.phone";

#[tokio::main]
async fn main() {
    let rows: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let certs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    cgc_gateway::dev::pki::write_dev_pki(certs.path(), config::DEV_AUDIT_ORIGIN).unwrap();
    let policies = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut config = Config::development(certs.path(), data.path(), &policies, "127.0.0.1:0".parse().unwrap());
    // The peer's PUTs would hit the per-certificate rate limit at once (the batch is one request).
    config.limits.burst = u32::MAX;
    config.limits.per_minute = u32::MAX;
    config.limits.center_burst = u32::MAX;
    config.limits.center_per_minute = u32::MAX;
    let app = Application::build(&config, Arc::new(SystemClock)).await.unwrap();
    let file = data.path().join("batch.csv");
    let bytes = write_file(&file, rows);
    println!(
        "cgc-gateway batch import benchmark: {rows} rows ({:.1} MiB of Shift_JIS CSV), mTLS, SQLite synchronous=FULL",
        bytes as f64 / 1048576.0
    );

    let puts = rows / 10;
    let center = GatewayClient::from_dev_certs(app.addr(), certs.path(), "center-yokosuka").unwrap();
    let phase = Phase::start();
    let mut conn = center.connect().await.unwrap();
    for i in 0..puts {
        let id = format!("P{i:07}");
        let body = serde_json::to_vec(&case_json(&id, i)).unwrap();
        let reply = conn
            .send(Method::PUT, &format!("/v1/cases/{id}"), None, Some(body))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    phase.report(&format!("peer: {puts} PUTs, one connection"), puts);

    for (label, outcome) in [
        ("import (all stored)", "stored"),
        ("same file again (all unchanged)", "unchanged"),
    ] {
        let phase = Phase::start();
        let reply = center
            .send_stream(
                Method::POST,
                "/v1/cases/batch",
                "text/csv; charset=Shift_JIS",
                Some(bytes),
                file_chunks(&file).await,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", &reply.text()[..500.min(reply.body.len())]);
        // Only the counts: a `Value` of 100,000 results would weigh more than the import.
        let counts: Counts = serde_json::from_slice(&reply.body).unwrap();
        let done = if outcome == "stored" {
            counts.stored
        } else {
            counts.unchanged
        };
        assert_eq!((counts.rows, done), (rows as u64, rows as u64));
        let report_bytes = reply.body.len();
        drop(reply);
        phase.report(label, rows);
        println!("{:>40}report: {:.1} MiB of JSON", "", report_bytes as f64 / 1048576.0);
    }
    app.stop().await;
}

#[derive(serde::Deserialize)]
struct Counts {
    rows: u64,
    stored: u64,
    unchanged: u64,
}

/// The file in 64 KiB pieces, read as they are sent.
async fn file_chunks(
    path: &std::path::Path,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await.unwrap();
    futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}

struct Phase {
    start: Instant,
    rss_before: u64,
}

impl Phase {
    fn start() -> Self {
        let rss_before = status_kib("VmRSS");
        reset_peak();
        Self {
            start: Instant::now(),
            rss_before,
        }
    }

    fn report(self, label: &str, rows: usize) {
        let secs = self.start.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM");
        let grown = peak.saturating_sub(self.rss_before);
        println!(
            "  {label:<36} {:>7.0} rows/s ({secs:>6.1} s); RSS before {:>6.1} MiB, peak {:>6.1} MiB: +{:>6.1} MiB, {:>6.0} bytes/row",
            rows as f64 / secs,
            self.rss_before as f64 / 1024.0,
            peak as f64 / 1024.0,
            grown as f64 / 1024.0,
            grown as f64 * 1024.0 / rows as f64,
        );
    }
}

/// The case of row `i`, as JSON (the peer's `PUT` body).
fn case_json(id: &str, i: usize) -> serde_json::Value {
    json!({
        "case_id": id, "center_id": "yokosuka", "version": 1, "updated_at": "2026-11-20T09:00:00+09:00",
        "child": { "name": "髙橋　陽菜", "name_kana": "タカハシ　ヒナ", "sex": "female", "birth_date": "2019-05-04",
                   "address": { "municipality_code": "142018", "text": format!("横須賀市小川町{}-1 ｺｰﾎﾟ①号室", i % 50) } },
        "guardians": [ { "name": "髙橋　健一", "relationship": "father" } ],
        "household": "父母と本児の3人世帯。祖母(ｿﾎﾞ)が近所に住む",
        "abuse": { "types": ["physical", "neglect"], "injury": true },
        "risk_level": "high", "status": "investigating", "intake_at": "2026-11-19T08:00:00+09:00",
        "flags": { "dv": false, "missing": false },
        "assessment": { "progress": format!("11月19日 家庭訪問。\n㈱ﾖｺｽｶ商事に勤務（№{i}）") },
        "center_contact": { "name": "佐藤　一郎", "phone": "046-822-0000" }
    })
}

/// Writes `n` rows to `path` in Shift_JIS, row by row (never the whole file in memory).
fn write_file(path: &std::path::Path, n: usize) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut line = String::new();
    let write = |out: &mut std::io::BufWriter<std::fs::File>, text: &str| {
        let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(text);
        assert!(!unmappable);
        out.write_all(&bytes).unwrap();
    };
    write(&mut out, &format!("{HEADER}\r\n"));
    for i in 0..n {
        line.clear();
        line.push_str(&format!(
            "L{i:07},yokosuka,1,2026-11-20T09:00:00+09:00,髙橋　陽菜,タカハシ　ヒナ,female,2019-05-04,142018,\
横須賀市小川町{}-1 ｺｰﾎﾟ①号室,髙橋　健一,father,\"父母と本児の3人世帯。祖母(ｿﾎﾞ)が近所に住む\",physical;neglect,true,high,\
investigating,2026-11-19T08:00:00+09:00,false,false,\"11月19日 家庭訪問。\n㈱ﾖｺｽｶ商事に勤務（№{i}）\",佐藤　一郎,046-822-0000\r\n",
            i % 50
        ));
        write(&mut out, &line);
    }
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// A line of /proc/self/status, in KiB.
fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` 5), so the peak is the import's.
fn reset_peak() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("  (cannot reset the peak; it includes everything before the import)");
    }
}
