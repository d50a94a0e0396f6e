//! Batch import through the real gateway: a Shift_JIS CSV file of N rows (100,000 by default)
//! streamed by `cgc-gateway import`'s own code over mTLS on loopback to the in-process gateway
//! (SQLite file, `synchronous=FULL`, every row durable before the report).
//!
//! Reports rows/s and the process's peak resident memory during the import (VmHWM, reset just
//! before it) against its resident memory before, for N and for N/10 rows: what grows with the
//! file is the report (one entry per row), not what is read.
//!
//! `cargo bench --bench batch_import [-- ROWS]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use cgc_gateway::app::Application;
use cgc_gateway::cases::batch::decode::Charset;
use cgc_gateway::clock::SystemClock;
use cgc_gateway::config::{self, Config};

const HEADER: &str = "case_id,center_id,version,updated_at,child.name,child.name_kana,child.sex,child.birth_date,\
child.address.municipality_code,child.address.text,guardians.1.name,guardians.1.relationship,household,\
abuse.types,abuse.injury,risk_level,status,intake_at,flags.dv,flags.missing,assessment.progress,\
center_contact.name,center_contact.phone";

#[tokio::main]
async fn main() {
    let rows: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let certs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    cgc_gateway::devpki::write_dev_pki(certs.path(), config::DEV_AUDIT_ORIGIN).unwrap();
    let policies = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = Config::development(certs.path(), data.path(), &policies, "127.0.0.1:0".parse().unwrap());
    let app = Application::build(&config, Arc::new(SystemClock)).await.unwrap();
    let gateway = format!("https://{}", app.addr());

    println!("cgc-gateway batch import benchmark: Shift_JIS CSV over mTLS, SQLite synchronous=FULL");
    for (n, prefix) in [(rows / 10, "S"), (rows, "L")] {
        let file = data.path().join(format!("batch-{n}.csv"));
        let bytes = write_file(&file, n, prefix);
        let rss_before = status_kib("VmRSS");
        reset_peak();
        let start = Instant::now();
        let report = cgc_gateway::cli::import::import(
            &file,
            &gateway,
            certs.path(),
            "center-yokosuka",
            Charset::ShiftJis,
            false,
        )
        .await
        .unwrap();
        let secs = start.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM");
        assert_eq!(
            report["stored"].as_u64(),
            Some(n as u64),
            "{}",
            &report.to_string()[..500]
        );
        drop(report);
        println!(
            "  {n:>7} rows ({:>6.1} MiB): {:>6.1} s, {:>7.0} rows/s; RSS before {:>6.1} MiB, peak {:>6.1} MiB (+{:.1} MiB)",
            bytes as f64 / 1048576.0,
            secs,
            n as f64 / secs,
            rss_before as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak.saturating_sub(rss_before) as f64 / 1024.0,
        );
    }
    app.stop().await;
}

/// Writes `n` rows to `path` in Shift_JIS, row by row (never the whole file in memory).
fn write_file(path: &std::path::Path, n: usize, prefix: &str) -> u64 {
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
            "{prefix}{i:07},yokosuka,1,2026-11-20T09:00:00+09:00,髙橋　陽菜,タカハシ　ヒナ,female,2019-05-04,142018,\
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
