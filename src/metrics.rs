//! Operational metrics in the Prometheus text exposition format (0.0.4), served over plain HTTP
//! on a listener of their own (`metrics_listen`, loopback by default; never the mTLS API).
//!
//! What is counted is shaped so that it cannot carry case data: requests are labelled by route
//! *template* (`/v1/terminal/cases/{case_ref}`, never the path), method and status; disclosures
//! by channel; the audit log by sizes. No label takes a value from a request's path, query,
//! headers or body, so no case id, name or address can reach a scrape.
//!
//! One registry per process ([`global`]), as in Prometheus's own clients: the few places that
//! count (the request layer, the disclosure service, the audit appender, the stream body, the
//! TLS accept loop) reach it without plumbing. Gauges that the application already knows (cases
//! in memory, the audit tree and its latest checkpoint, open connections) are read from it at
//! scrape time: the latest checkpoint's size and time say whether checkpoints keep up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request and disclosure latencies, in seconds.
const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Entries per durable audit batch.
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// The disclosure channels, as the audit log names them.
pub const CHANNELS: [(&str, &str); 5] = [
    ("list", "list"),
    ("detail", "detail"),
    ("search", "search"),
    ("stream", "stream"),
    ("print", "print"),
];

/// The process's registry.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);
    &METRICS
}

/// Fixed-bucket histogram; `sum` in `scale` units (nanoseconds for durations) so that it
/// accumulates exactly.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
    scale: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64], scale: f64) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0,
            scale,
        }
    }

    fn seconds() -> Self {
        Self::new(LATENCY_BOUNDS, 1e-9)
    }

    fn observe(&mut self, units: u64) {
        // Units to the exposed value: nanoseconds to seconds, or entries as they are.
        #[allow(clippy::cast_precision_loss)]
        let value = units as f64 * self.scale;
        let index = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get_mut(index) {
            *bucket += 1;
        }
        self.count += 1;
        self.sum = self.sum.saturating_add(units);
    }

    fn observe_duration(&mut self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.buckets) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{}le=\"{bound}\"}} {cumulative}",
                sep(labels)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{}le=\"+Inf\"}} {}",
            sep(labels),
            self.count
        );
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum as f64 * self.scale;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

fn sep(labels: &str) -> &'static str {
    if labels.is_empty() { "" } else { "," }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// A label value, escaped as the text format requires.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[derive(Debug, Clone)]
struct RouteStats {
    /// Responses per status class (`2xx`, …).
    classes: BTreeMap<&'static str, u64>,
    latency: Histogram,
}

#[derive(Debug)]
struct Locked {
    /// Keyed by route template and method.
    routes: BTreeMap<(String, &'static str), RouteStats>,
    /// Every response with a 4xx or 5xx status, by status.
    refusals: BTreeMap<u16, u64>,
    disclosure_latency: Histogram,
    audit_batches: Histogram,
}

impl Default for Locked {
    fn default() -> Self {
        Self {
            routes: BTreeMap::new(),
            refusals: BTreeMap::new(),
            disclosure_latency: Histogram::seconds(),
            audit_batches: Histogram::new(BATCH_BOUNDS, 1.0),
        }
    }
}

/// Counters, gauges and histograms of one process.
#[derive(Debug, Default)]
pub struct Metrics {
    locked: Mutex<Locked>,
    disclosures: [AtomicU64; 5],
    audit_entries: AtomicU64,
    streams_open: AtomicI64,
    tls_refused: AtomicU64,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Locked> {
        // A panic elsewhere while counting leaves numbers, not broken invariants.
        self.locked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One answered request: its route template (`None`: no route matched), method, status
    /// and the time to its response head.
    pub fn request(&self, route: Option<&str>, method: &Method, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let mut locked = self.lock();
        let stats = locked
            .routes
            .entry((route.unwrap_or("unmatched").to_owned(), method))
            .or_insert_with(|| RouteStats {
                classes: BTreeMap::new(),
                latency: Histogram::seconds(),
            });
        *stats.classes.entry(status_class(status)).or_default() += 1;
        stats.latency.observe_duration(elapsed);
        if status >= 400 {
            *locked.refusals.entry(status).or_default() += 1;
        }
    }

    /// `cases` cases disclosed by `channel` (`list`, `detail`, `search`, `stream`, `print`), recorded
    /// durably in `elapsed`.
    pub fn disclosed(&self, channel: &str, cases: usize, elapsed: Duration) {
        if let Some(i) = CHANNELS.iter().position(|(c, _)| *c == channel)
            && let Some(counter) = self.disclosures.get(i)
        {
            counter.fetch_add(u64::try_from(cases).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        self.lock().disclosure_latency.observe_duration(elapsed);
    }

    /// The audit appender made a batch of `entries` durable.
    pub fn audit_appended(&self, entries: usize) {
        let entries = u64::try_from(entries).unwrap_or(u64::MAX);
        self.audit_entries.fetch_add(entries, Ordering::Relaxed);
        self.lock().audit_batches.observe(entries);
    }

    /// A TLS handshake was refused or timed out (no certificate, an unknown CA, …).
    pub fn tls_handshake_refused(&self) {
        self.tls_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A live stream opened; it counts as open until the guard is dropped.
    pub fn stream_opened(&'static self) -> OpenStream {
        self.streams_open.fetch_add(1, Ordering::Relaxed);
        OpenStream { metrics: self }
    }

    /// The text exposition of everything, with the gauges `ctx` knows.
    pub fn render(&self, gauges: Option<&Gauges>) -> String {
        let mut out = String::with_capacity(8192);
        let locked = self.lock().clone_view();

        header(
            &mut out,
            "cgc_gateway_http_requests_total",
            "counter",
            "Answered requests by route template, method and status class.",
        );
        for ((route, method), stats) in &locked.routes {
            for (class, count) in &stats.classes {
                let _ = writeln!(
                    out,
                    "cgc_gateway_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{class}\"}} {count}",
                    label(route)
                );
            }
        }
        header(
            &mut out,
            "cgc_gateway_http_request_duration_seconds",
            "histogram",
            "Time to the response head by route template and method (a stream's head, not its life).",
        );
        for ((route, method), stats) in &locked.routes {
            let labels = format!("route=\"{}\",method=\"{method}\"", label(route));
            stats
                .latency
                .render(&mut out, "cgc_gateway_http_request_duration_seconds", &labels);
        }
        header(
            &mut out,
            "cgc_gateway_http_refusals_total",
            "counter",
            "Responses with a 4xx or 5xx status, by status.",
        );
        for (status, count) in &locked.refusals {
            let _ = writeln!(out, "cgc_gateway_http_refusals_total{{status=\"{status}\"}} {count}");
        }
        header(
            &mut out,
            "cgc_gateway_tls_handshake_refusals_total",
            "counter",
            "TLS handshakes refused or timed out (no client certificate, an unknown CA, a revoked certificate).",
        );
        let _ = writeln!(
            out,
            "cgc_gateway_tls_handshake_refusals_total {}",
            self.tls_refused.load(Ordering::Relaxed)
        );

        header(
            &mut out,
            "cgc_gateway_disclosures_total",
            "counter",
            "Cases disclosed to terminals, each recorded in the audit log first, by channel.",
        );
        for ((_, name), counter) in CHANNELS.iter().zip(&self.disclosures) {
            let _ = writeln!(
                out,
                "cgc_gateway_disclosures_total{{channel=\"{name}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "cgc_gateway_disclosure_record_duration_seconds",
            "histogram",
            "Time to record a disclosure durably in the audit log before anything is sent.",
        );
        locked
            .disclosure_latency
            .render(&mut out, "cgc_gateway_disclosure_record_duration_seconds", "");

        header(
            &mut out,
            "cgc_gateway_audit_appends_total",
            "counter",
            "Audit entries made durable.",
        );
        let _ = writeln!(
            out,
            "cgc_gateway_audit_appends_total {}",
            self.audit_entries.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "cgc_gateway_audit_batch_entries",
            "histogram",
            "Entries per durable audit batch (group commit).",
        );
        locked
            .audit_batches
            .render(&mut out, "cgc_gateway_audit_batch_entries", "");

        header(
            &mut out,
            "cgc_gateway_streams_open",
            "gauge",
            "Live terminal streams open now.",
        );
        let _ = writeln!(
            out,
            "cgc_gateway_streams_open {}",
            self.streams_open.load(Ordering::Relaxed)
        );

        if let Some(g) = gauges {
            header(
                &mut out,
                "cgc_gateway_audit_tree_size",
                "gauge",
                "Entries in the audit log.",
            );
            let _ = writeln!(out, "cgc_gateway_audit_tree_size {}", g.audit_size);
            if let Some(checkpoint) = &g.checkpoint {
                header(
                    &mut out,
                    "cgc_gateway_audit_checkpoint_size",
                    "gauge",
                    "Tree size of the latest checkpoint; behind the tree size while entries wait for one.",
                );
                let _ = writeln!(out, "cgc_gateway_audit_checkpoint_size {}", checkpoint.tree_size);
                {
                    let at = checkpoint.published_at;
                    header(
                        &mut out,
                        "cgc_gateway_audit_checkpoint_timestamp_seconds",
                        "gauge",
                        "When the latest checkpoint was published (Unix time).",
                    );
                    let _ = writeln!(
                        out,
                        "cgc_gateway_audit_checkpoint_timestamp_seconds {}",
                        at.unix_timestamp()
                    );
                }
            }
            header(
                &mut out,
                "cgc_gateway_cases",
                "gauge",
                "Current case versions held for the live views.",
            );
            let _ = writeln!(out, "cgc_gateway_cases {}", g.cases);
            header(
                &mut out,
                "cgc_gateway_connections_open",
                "gauge",
                "Open mTLS connections.",
            );
            let _ = writeln!(out, "cgc_gateway_connections_open {}", g.connections);
        }
        out
    }
}

impl Locked {
    /// A copy to render from, so the lock is not held while formatting.
    fn clone_view(&self) -> Self {
        Self {
            routes: self.routes.clone(),
            refusals: self.refusals.clone(),
            disclosure_latency: self.disclosure_latency.clone(),
            audit_batches: self.audit_batches.clone(),
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Methods are labels only from a fixed set: a client can send any token as a method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Counts a live stream as open while it lives.
#[derive(Debug)]
pub struct OpenStream {
    metrics: &'static Metrics,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.metrics.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The request layer (outermost, after routing so that the route template is known).
pub async fn track_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    global().request(route.as_deref(), &method, response.status().as_u16(), started.elapsed());
    response
}

/// The gauges read from the running gateway at each scrape (never a case's contents).
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub audit_size: u64,
    pub checkpoint: Option<crate::store::CheckpointRow>,
    pub cases: usize,
    pub connections: usize,
}

/// Where a scrape reads the gauges from (the app wires it; this module knows no app).
pub type GaugeSource = std::sync::Arc<dyn Fn() -> Gauges + Send + Sync>;

/// The metrics listener's router: `GET /metrics`, nothing else.
pub fn router(gauges: GaugeSource) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(gauges)
}

async fn scrape(State(gauges): State<GaugeSource>) -> Response {
    let mut response = global().render(Some(&gauges())).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// Serves [`router`] over plain HTTP on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gauges: GaugeSource,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let stopped = async move {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, router(gauges))
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(error = %e, ?addr, "the metrics listener stopped");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut h = Histogram::seconds();
        h.observe_duration(Duration::from_micros(500));
        h.observe_duration(Duration::from_millis(30));
        h.observe_duration(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "route=\"/a\"");
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"0.025\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_sum{route=\"/a\"} 60.0305\n"), "{out}");
        assert!(out.contains("x_seconds_count{route=\"/a\"} 3\n"), "{out}");
    }

    #[test]
    fn requests_are_labelled_by_template_class_and_a_fixed_method_set() {
        let m = Metrics::default();
        m.request(
            Some("/v1/terminal/cases/{case_ref}"),
            &Method::GET,
            200,
            Duration::from_millis(2),
        );
        m.request(
            Some("/v1/terminal/cases/{case_ref}"),
            &Method::GET,
            404,
            Duration::from_millis(2),
        );
        m.request(
            None,
            &Method::from_bytes(b"X-SECRET-VERB").unwrap(),
            405,
            Duration::ZERO,
        );
        let out = m.render(None);
        assert!(
            out.contains("cgc_gateway_http_requests_total{route=\"/v1/terminal/cases/{case_ref}\",method=\"GET\",status=\"2xx\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("status=\"4xx\"} 1\n"), "{out}");
        assert!(out.contains("route=\"unmatched\",method=\"other\""), "{out}");
        assert!(!out.contains("X-SECRET-VERB"), "{out}");
        assert!(
            out.contains("cgc_gateway_http_refusals_total{status=\"404\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("cgc_gateway_http_refusals_total{status=\"405\"} 1\n"),
            "{out}"
        );
    }

    #[test]
    fn streams_are_open_while_their_guard_lives() {
        static M: LazyLock<Metrics> = LazyLock::new(Metrics::default);
        let a = M.stream_opened();
        let b = M.stream_opened();
        assert!(M.render(None).contains("cgc_gateway_streams_open 2\n"));
        drop(a);
        drop(b);
        assert!(M.render(None).contains("cgc_gateway_streams_open 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
