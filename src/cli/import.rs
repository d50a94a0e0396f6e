//! `cgc-gateway import <file.csv>`: a CGC's machine sends a batch file to the gateway with its
//! center certificate, streamed in pieces with a progress bar on stderr, and prints the
//! gateway's report (`docs/batch-import.md`).

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use encoding_rs::{DecoderResult, UTF_8};
use hyper::Method;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::policy::gateway_addr;
use crate::client::GatewayClient;
use crate::ingest::batch::decode::Charset;

/// How much of the file is read and sent at a time.
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The CSV file: a header row of column names, then one case per row.
    file: PathBuf,
    #[arg(long, default_value = "https://localhost:8443")]
    gateway: String,
    #[arg(long, default_value = "certs-dev")]
    certs: PathBuf,
    /// The center's client, e.g. center-yokosuka (clients/<client>.pem and -key.pem).
    #[arg(long)]
    client: String,
    /// `UTF-8` or `Shift_JIS`; by default UTF-8 if the whole file is valid UTF-8, else Shift_JIS.
    #[arg(long, value_name = "CHARSET")]
    encoding: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs the import and prints the report; an error when any row was not stored or unchanged.
pub async fn run(args: ImportArgs) -> Result<(), String> {
    let charset = match &args.encoding {
        Some(label) => {
            Charset::from_label(label).ok_or_else(|| format!("--encoding {label}: use UTF-8 or Shift_JIS"))?
        }
        None => detect_charset(&args.file).await?,
    };
    let report = import(
        &args.file,
        &args.gateway,
        &args.certs,
        &args.client,
        charset,
        !args.quiet,
    )
    .await?;
    print!("{}", summary(&report));
    let refused = ["conflict", "transferred", "invalid", "forbidden"]
        .iter()
        .map(|k| report.get(*k).and_then(Value::as_u64).unwrap_or(0))
        .sum::<u64>();
    if refused > 0 {
        return Err(format!("{refused} row(s) were not imported"));
    }
    Ok(())
}

/// UTF-8 if the file is valid UTF-8 throughout (ASCII included), else Shift_JIS: Japanese text
/// in Shift_JIS is practically never valid UTF-8.
pub async fn detect_charset(file: &Path) -> Result<Charset, String> {
    let mut f = tokio::fs::File::open(file)
        .await
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut decoder = UTF_8.new_decoder();
    let mut buf = vec![0; CHUNK_BYTES];
    let mut text = String::with_capacity(CHUNK_BYTES * 2);
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let mut input = buf.get(..n).unwrap_or_default();
        loop {
            text.clear();
            let (result, read) = decoder.decode_to_string_without_replacement(input, &mut text, n == 0);
            input = input.get(read..).unwrap_or_default();
            match result {
                DecoderResult::Malformed(_, _) => return Ok(Charset::ShiftJis),
                DecoderResult::InputEmpty => break,
                DecoderResult::OutputFull => {}
            }
        }
        if n == 0 {
            return Ok(Charset::Utf8);
        }
    }
}

/// Sends `file` in `charset` to `gateway` as `client` of the PKI folder `certs`; returns the
/// gateway's report.
pub async fn import(
    file: &Path,
    gateway: &str,
    certs: &Path,
    client: &str,
    charset: Charset,
    progress: bool,
) -> Result<Value, String> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let total = f
        .metadata()
        .await
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .len();
    let http = GatewayClient::from_dev_certs(gateway_addr(gateway)?, certs, client).map_err(|e| e.to_string())?;
    let chunks = futures_util::stream::unfold(
        (f, Progress::new(total, progress)),
        |(mut f, mut progress)| async move {
            let mut buf = vec![0; CHUNK_BYTES];
            match f.read(&mut buf).await {
                Ok(0) => {
                    progress.done();
                    None
                }
                Ok(n) => {
                    buf.truncate(n);
                    progress.sent(n);
                    Some((Ok(Bytes::from(buf)), (f, progress)))
                }
                Err(e) => Some((Err(e), (f, progress))),
            }
        },
    );
    let content_type = format!("text/csv; charset={}", charset.name());
    let reply = http
        .send_stream(Method::POST, "/v1/cases/batch", &content_type, Some(total), chunks)
        .await
        .map_err(|e| e.to_string())?;
    let body = reply.json().map_err(|_| {
        format!(
            "the gateway answered {} without a report: {}",
            reply.status,
            reply.text()
        )
    })?;
    if reply.status.is_success() {
        Ok(body)
    } else {
        Err(format!(
            "the gateway refused the file ({}): {}",
            reply.status,
            problem(&body)
        ))
    }
}

/// A problem+json answer in a few lines: its detail, then each named column.
fn problem(body: &Value) -> String {
    let mut out = body
        .get("detail")
        .or_else(|| body.get("title"))
        .and_then(Value::as_str)
        .unwrap_or("no detail")
        .to_owned();
    for e in body.get("errors").and_then(Value::as_array).into_iter().flatten() {
        let column = e
            .get("column")
            .or_else(|| e.get("pointer"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let detail = e.get("detail").and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!("\n  {column}: {detail}"));
    }
    out
}

/// The counts, then one line per row that was not stored or unchanged.
pub fn summary(report: &Value) -> String {
    let n = |k: &str| report.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = format!(
        "rows {}: stored {}, unchanged {}, conflict {}, transferred {}, invalid {}, forbidden {}\n",
        n("rows"),
        n("stored"),
        n("unchanged"),
        n("conflict"),
        n("transferred"),
        n("invalid"),
        n("forbidden")
    );
    for r in report.get("results").and_then(Value::as_array).into_iter().flatten() {
        let outcome = r.get("outcome").and_then(Value::as_str).unwrap_or("");
        if matches!(outcome, "stored" | "unchanged") {
            continue;
        }
        let row = r.get("row").and_then(Value::as_u64).unwrap_or(0);
        let case = r
            .get("case_id")
            .and_then(Value::as_str)
            .map(|id| format!(" ({id})"))
            .unwrap_or_default();
        out.push_str(&format!("row {row}{case}: {outcome}"));
        if let Some(v) = r.get("stored_version").and_then(Value::as_u64) {
            out.push_str(&format!(" (version {v} is stored)"));
        }
        if let Some(to) = r.get("to_center").and_then(Value::as_str) {
            out.push_str(&format!(" (to center {to}, which pushes it now)"));
        }
        out.push('\n');
        for e in r.get("errors").and_then(Value::as_array).into_iter().flatten() {
            let column = e.get("column").and_then(Value::as_str).unwrap_or("(row)");
            let detail = e.get("detail").and_then(Value::as_str).unwrap_or("");
            out.push_str(&format!("  {column}: {detail}\n"));
        }
    }
    out
}

/// A text progress bar on stderr, redrawn when the percentage changes.
struct Progress {
    total: u64,
    sent: u64,
    shown: Option<u64>,
    enabled: bool,
}

impl Progress {
    fn new(total: u64, enabled: bool) -> Self {
        Self {
            total,
            sent: 0,
            shown: None,
            enabled,
        }
    }

    fn sent(&mut self, n: usize) {
        self.sent = self.sent.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        let percent = self
            .sent
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100)
            .min(100);
        if self.enabled && self.shown != Some(percent) {
            self.shown = Some(percent);
            let filled = usize::try_from(percent / 5).unwrap_or(20);
            let bar = format!("{}{}", "#".repeat(filled), "-".repeat(20usize.saturating_sub(filled)));
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\rsending [{bar}] {percent:>3}%  {} / {}",
                mib(self.sent),
                mib(self.total)
            );
            let _ = err.flush();
        }
    }

    fn done(&mut self) {
        if self.enabled {
            eprintln!("\nsent; waiting for the gateway's report (rows are stored as they arrive)");
        }
    }
}

fn mib(bytes: u64) -> String {
    // Display only: a float is fine here.
    #[allow(clippy::cast_precision_loss)]
    let m = bytes as f64 / (1024.0 * 1024.0);
    format!("{m:.1} MiB")
}
