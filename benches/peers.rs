//! The gateway against its peers, measured in the same run by the same load generator: nginx
//! answering `return 200` over mTLS, and nginx with the nchan module (Debian's
//! `libnginx-mod-nchan`) broadcasting Server-Sent Events over mTLS. Every line prints the
//! gateway's figure, the peer's and the ratio against the target of issue 11
//! (`docs/benchmarks.md` explains each line).
//!
//! The bench starts everything itself, as the current user, in a temporary folder: a dev PKI
//! (`dev::pki`), the gateway as its own process (`cgc-gateway demo --no-feed`, so that its RSS
//! and CPU time are its own), and one nginx (`nginx -p <tmp> -c <tmp>/nginx.conf`, `daemon
//! off`) on free loopback ports with the same server certificate and the terminals' CA. It
//! needs `apt-get install nginx libnginx-mod-nchan` (the packages' service is not used).
//!
//! `cargo bench --bench peers -- [--secs 5] [--conns 16] [--streams 1000,5000] [--rounds 10]
//! [--handshakes 4000] [--connect-concurrency 64] [--skip-live]`
//!
//! Defaults take about two to three minutes on two cores. `-- --callgrind 2000` instead runs the
//! gateway under valgrind's callgrind and profiles that many detail disclosures (the profile of
//! `docs/benchmarks.md`); `CGC_GATEWAY_BIN=<path>` runs another build of the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const UNITS: &[&str] = &[
    "kagacho",
    "tsurumi",
    "kawasaki",
    "sagamihara-minami",
    "yokosuka",
    "atsugi",
    "hq",
];
/// Cases pushed for the detail and list scenarios (all visible to the HQ terminal).
const CASES: usize = 100;
/// What an nchan message carries, so that its subscribers can tell it from other lines.
const MARK: &str = "BENCHMSG";

struct Args {
    secs: f64,
    conns: usize,
    streams: Vec<usize>,
    rounds: usize,
    handshakes: usize,
    connect_concurrency: usize,
    skip_live: bool,
    /// Profile this many detail requests under callgrind instead of the comparison.
    callgrind: Option<usize>,
}

impl Args {
    fn parse() -> Self {
        let mut a = Self {
            secs: 5.0,
            conns: 16,
            streams: vec![1000, 5000],
            rounds: 10,
            handshakes: 4000,
            connect_concurrency: 64,
            skip_live: false,
            callgrind: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
            match arg.as_str() {
                "--secs" => a.secs = value().parse().unwrap(),
                "--conns" => a.conns = value().parse().unwrap(),
                "--streams" => a.streams = value().split(',').map(|s| s.parse().unwrap()).collect(),
                "--rounds" => a.rounds = value().parse().unwrap(),
                "--handshakes" => a.handshakes = value().parse().unwrap(),
                "--connect-concurrency" => a.connect_concurrency = value().parse().unwrap(),
                "--skip-live" => a.skip_live = true,
                "--callgrind" => a.callgrind = Some(value().parse().unwrap()),
                // `cargo bench` passes `--bench`.
                _ => {}
            }
        }
        a
    }
}

/// A child process killed when the bench ends, however it ends.
struct Proc(Child);
impl Drop for Proc {
    /// Asks first (nginx's master stops its workers on TERM; a KILL would leave them running,
    /// orphaned), and kills only what has not stopped within two seconds.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `pid` and its children (nginx's workers).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // The fields after the command name (which may hold spaces): state, ppid, …
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// How long streams stay idle before the memory they hold is read.
const IDLE_SETTLE: Duration = Duration::from_millis(1500);

fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter().map(|p| status_field(*p, "VmRSS:")).sum()
}

/// User + system CPU seconds of `pids`.
fn cpu_secs(pids: &[u32]) -> f64 {
    let ticks: u64 = pids
        .iter()
        .map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map(|(_, r)| r.to_owned()).unwrap_or_default();
            let f: Vec<&str> = after.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat; `after` starts at field 3.
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum();
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// Aborts a task when dropped: a connection's driver dies with its owner.
struct AbortOnDrop(JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One client identity towards one server: full handshakes only (no session resumption), so
/// that every new connection costs both sides what a terminal's first connection costs.
#[derive(Clone)]
struct Tls {
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
}

type Sender = SendRequest<Full<Bytes>>;

impl Tls {
    fn new(addr: SocketAddr, certs: &Path, client: &str) -> Self {
        let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let config = cgc_gateway::tls::client_config(
            &read(certs.join("ca/server-ca.pem")),
            &read(certs.join(format!("clients/{client}.pem"))),
            &read(certs.join(format!("clients/{client}-key.pem"))),
        )
        .unwrap();
        let mut config = (*config).clone();
        config.resumption = rustls::client::Resumption::disabled();
        Self {
            config: Arc::new(config),
            addr,
        }
    }

    async fn connect(&self) -> (Sender, AbortOnDrop) {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        (sender, AbortOnDrop(driver))
    }
}

async fn send(
    sender: &mut Sender,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Response<Incoming> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "localhost");
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    if !body.is_empty() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    sender.ready().await.unwrap();
    sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap()
}

async fn fetch(
    sender: &mut Sender,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Bytes) {
    let response = send(sender, method, path, headers, body).await;
    let status = response.status().as_u16();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// What a closed-loop load phase measured.
struct Load {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The load generator, the same for every server: `conns` keep-alive connections, each
/// sending the next request as soon as the answer is in, for `secs`.
async fn load(
    tls: &Tls,
    headers: Vec<(&'static str, String)>,
    path: impl Fn(usize) -> String + Send + Sync + 'static,
    expect: u16,
    conns: usize,
    secs: f64,
) -> Load {
    let path = Arc::new(path);
    let headers = Arc::new(headers);
    let phase = Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..conns {
        ready.push(tls.connect().await);
    }
    let start = Instant::now();
    for (c, (mut sender, driver)) in ready.into_iter().enumerate() {
        let (path, headers) = (path.clone(), headers.clone());
        tasks.push(tokio::spawn(async move {
            let _driver = driver;
            let mut lat = Vec::new();
            let mut i = c;
            while start.elapsed() < phase {
                let t0 = Instant::now();
                let (status, body) = fetch(&mut sender, Method::GET, &path(i), &headers, Vec::new()).await;
                assert_eq!(status, expect, "{}", String::from_utf8_lossy(&body));
                lat.push(t0.elapsed().as_secs_f64() * 1e3);
                i += conns;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = lat.len();
    let lat = sorted(lat);
    Load {
        per_sec: n as f64 / elapsed,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
    }
}

/// Splits a byte stream into lines.
#[derive(Default)]
struct Lines(Vec<u8>);
impl Lines {
    fn push(&mut self, data: &[u8]) -> Vec<String> {
        self.0.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(i) = self.0.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=i).collect();
            out.push(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Gateway,
    Nchan,
}

/// One open SSE stream; its reader reports each event's arrival on `events`.
struct Stream {
    _task: AbortOnDrop,
    /// The last event id the stream received (the gateway's cursor).
    cursor: Arc<Mutex<String>>,
}

/// Opens a stream and returns once it is ready: for the gateway when `synced` arrives (the
/// initial view or the catch-up after `Last-Event-ID` is disclosed), for nchan when the
/// subscription is answered.
async fn subscribe(
    server: Server,
    tls: Tls,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    events: mpsc::UnboundedSender<Instant>,
) -> Stream {
    let (mut sender, driver) = tls.connect().await;
    let mut headers = headers;
    headers.push(("accept", "text/event-stream".into()));
    let response = send(&mut sender, Method::GET, path, &headers, Vec::new()).await;
    assert_eq!(response.status(), 200, "subscribe {path}");
    let mut body = response.into_body();
    let cursor = Arc::new(Mutex::new(String::new()));
    let mut lines = Lines::default();
    let on_line = {
        let cursor = cursor.clone();
        move |line: &str, at: Instant| -> bool {
            match server {
                Server::Gateway => {
                    if let Some(id) = line.strip_prefix("id: ") {
                        *cursor.lock().unwrap() = id.to_owned();
                    }
                    if line == "event: case" {
                        let _ = events.send(at);
                    }
                    line == "event: synced"
                }
                Server::Nchan => {
                    if line.starts_with("data: ") && line.contains(MARK) {
                        let _ = events.send(at);
                    }
                    false
                }
            }
        }
    };
    if server == Server::Gateway {
        let mut synced = false;
        while !synced {
            let frame = body.frame().await.unwrap().unwrap();
            if let Ok(data) = frame.into_data() {
                for line in lines.push(&data) {
                    // Events of the catch-up are not what a push measures.
                    if line.starts_with("id: ") || line == "event: synced" {
                        synced |= on_line(&line, Instant::now());
                    }
                }
            }
        }
    }
    let task = tokio::spawn(async move {
        let _sender = sender;
        let _driver = driver;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                let now = Instant::now();
                for line in lines.push(&data) {
                    on_line(&line, now);
                }
            }
        }
    });
    Stream {
        _task: AbortOnDrop(task),
        cursor,
    }
}

/// Opens `n` streams, `concurrency` connecting at a time; returns them and the rate per second.
async fn open_streams<F, Fut>(n: usize, concurrency: usize, open: F) -> (Vec<Stream>, f64)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Stream>,
{
    let start = Instant::now();
    let streams: Vec<Stream> = futures_util::stream::iter(0..n)
        .map(open)
        .buffered(concurrency)
        .collect()
        .await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    (streams, rate)
}

/// Waits for `n` events after `t0`; returns each one's latency in ms.
async fn collect(rx: &mut mpsc::UnboundedReceiver<Instant>, n: usize, t0: Instant) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let at = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .expect("an event did not arrive within 120 s")
            .unwrap();
        out.push(at.saturating_duration_since(t0).as_secs_f64() * 1e3);
    }
    out
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

/// One line of the report: the gateway's figure, the peer's, their ratio and the target.
fn row(scenario: &str, gateway: String, peer: String, ratio: f64, target: &str, met: bool) {
    println!(
        "  {scenario:<46} {gateway:>14} {peer:>16}  {ratio:>7.3}×  {target:<9} {}",
        if met { "met" } else { "NOT MET" }
    );
}

fn header(title: &str) {
    println!("\n{title}");
    println!(
        "  {:<46} {:>14} {:>16}  {:>8}  {:<9} ",
        "scenario", "gateway", "peer", "ratio", "target"
    );
}

fn nginx_conf(dir: &Path, certs: &Path, port: u16) -> String {
    let user = if Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
    {
        // As root, nginx would hand its workers to `nobody`; keep them this user's.
        "user root;\n"
    } else {
        ""
    };
    let d = dir.display();
    let c = certs.display();
    format!(
        "{user}daemon off;
worker_processes auto;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
events {{ worker_connections 16000; }}
http {{
  access_log off;
  error_log {d}/error.log warn;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate {c}/server.pem;
    ssl_certificate_key {c}/server-key.pem;
    ssl_client_certificate {c}/ca/terminal-ca.pem;
    ssl_verify_client on;
    location = / {{ return 200 \"ok\\n\"; }}
    location = /sub {{ nchan_subscriber eventsource; nchan_subscriber_first_message newest; nchan_channel_id bench; }}
    location = /pub {{ nchan_publisher; nchan_channel_id bench; }}
  }}
}}
"
    )
}

fn start_nginx(dir: &Path, certs: &Path) -> (Proc, SocketAddr) {
    if !Path::new("/usr/sbin/nginx").exists() || !Path::new("/usr/lib/nginx/modules/ngx_nchan_module.so").exists() {
        panic!("the peers need Debian's nginx and nchan: apt-get install nginx libnginx-mod-nchan");
    }
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir, certs, port)).unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), ([127, 0, 0, 1], port).into())
}

/// Starts the gateway, under callgrind (instrumentation off until switched on) when
/// `callgrind_out` names the profile to write.
fn start_gateway(dir: &Path, certs: &Path, callgrind_out: Option<&Path>) -> (Proc, SocketAddr, SocketAddr) {
    let port = free_port();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    // `CGC_GATEWAY_BIN` runs another build (e.g. the one before a change) under the same load.
    let exe = std::env::var("CGC_GATEWAY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cgc-gateway").to_owned());
    let mut command = match callgrind_out {
        Some(out) => {
            let mut c = Command::new("valgrind");
            c.args(["--tool=callgrind", "--instr-atstart=no"])
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let child = command
        .args(["demo", "--no-feed", "--port", &port.to_string()])
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--certs")
        .arg(certs)
        .arg("--policies")
        .arg(&policies)
        .env("RUST_LOG", "warn")
        // Thousands of streams share seven terminal certificates here; lift their rate limit
        // and their share of connections.
        .env("CGC_GATEWAY_LIMITS_BURST", "100000000")
        .env("CGC_GATEWAY_LIMITS_PER_MINUTE", "1000000000")
        .env("CGC_GATEWAY_CONNECTIONS_PER_PRINCIPAL", "1000000")
        // Read by the bench for the audit log's group-commit sizes.
        .env("CGC_GATEWAY_METRICS_LISTEN", metrics.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), ([127, 0, 0, 1], port).into(), metrics)
}

/// The audit appender's group commits so far, from the gateway's `/metrics`: (entries, commits).
async fn audit_commits(metrics: SocketAddr) -> (f64, f64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("cgc_gateway_audit_batch_entries_sum"),
        value("cgc_gateway_audit_batch_entries_count"),
    )
}

/// Entries per group commit between two `audit_commits` readings.
fn per_commit(before: (f64, f64), after: (f64, f64)) -> String {
    let (entries, commits) = (after.0 - before.0, after.1 - before.1);
    format!(
        "{:.1} entries per commit ({entries:.0} in {commits:.0})",
        entries / commits.max(1.0)
    )
}

async fn wait_until_up(tls: &Tls) {
    // Long enough for a start under valgrind.
    for _ in 0..6000 {
        if TcpStream::connect(tls.addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not come up", tls.addr);
}

/// Full handshakes (plus one small request, so the server has processed the client's
/// certificate) per CPU-second of the server's processes.
async fn handshakes(
    tls: &Tls,
    pids: &[u32],
    path: &str,
    headers: &[(&'static str, String)],
    n: usize,
    concurrency: usize,
) -> f64 {
    let headers = Arc::new(headers.to_vec());
    let before = cpu_secs(pids);
    let path: Arc<str> = path.into();
    futures_util::stream::iter(0..n)
        .map(|_| {
            let (tls, headers, path) = (tls.clone(), headers.clone(), path.clone());
            async move {
                let (mut sender, _driver) = tls.connect().await;
                let _ = fetch(&mut sender, Method::GET, &path, &headers, Vec::new()).await;
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    // Let the servers finish closing the connections: that is part of the cost.
    tokio::time::sleep(Duration::from_millis(300)).await;
    n as f64 / (cpu_secs(pids) - before).max(0.01)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    cgc_gateway::dev::pki::write_dev_pki(&certs, cgc_gateway::config::DEV_AUDIT_ORIGIN).unwrap();
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir(&nginx_dir).unwrap();

    let profile = args.callgrind.map(|_| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("callgrind");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("callgrind.detail.{}", std::process::id()))
    });
    let (gateway, gw_addr, gw_metrics) = start_gateway(dir.path(), &certs, profile.as_deref());
    let (nginx, ng_addr) = start_nginx(&nginx_dir, &certs);
    let gw_pid = gateway.0.id();
    let gw = |client: &str| Tls::new(gw_addr, &certs, client);
    let ng = |client: &str| Tls::new(ng_addr, &certs, client);
    let token = |client: &str| {
        cgc_gateway::cli::dev_token(
            &certs,
            client,
            "bench",
            time::Duration::hours(2),
            cgc_gateway::clock::Clock::now(&cgc_gateway::clock::SystemClock),
        )
        .unwrap()
    };
    let hq = gw("terminal-hq-1");
    let hq_token = token("terminal-hq-1");
    let nginx_client = ng("terminal-hq-1");
    wait_until_up(&hq).await;
    wait_until_up(&nginx_client).await;
    // The demo opens its listener before its world is loaded; wait for a real answer.
    for _ in 0..400 {
        let (mut s, _d) = hq.connect().await;
        if fetch(
            &mut s,
            Method::GET,
            "/v1/terminal/cases",
            &bearer(&hq_token),
            Vec::new(),
        )
        .await
        .0 == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ng_pids = family(nginx.0.id());

    let center = gw("center-kanagawa-central");
    let (mut push, _push_driver) = center.connect().await;
    let mut refs = Vec::new();
    for i in 0..CASES {
        let id = format!("B-{i:05}");
        let (status, body) = fetch(
            &mut push,
            Method::PUT,
            &format!("/v1/cases/{id}"),
            &[],
            serde_json::to_vec(&case(&id)).unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        refs.push(format!("kanagawa-central:{id}"));
    }
    let (mut s, _d) = hq.connect().await;
    let (_, body) = fetch(
        &mut s,
        Method::GET,
        "/v1/terminal/cases",
        &bearer(&hq_token),
        Vec::new(),
    )
    .await;
    let listed = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["cases"]
        .as_array()
        .unwrap()
        .len();

    if let (Some(n), Some(out)) = (args.callgrind, &profile) {
        callgrind_detail(&hq, &hq_token, &refs, n, args.conns, (gw_pid, gw_metrics), out).await;
        callgrind_handshakes(&hq, n / 4, gw_pid, out).await;
        return;
    }

    println!(
        "cgc-gateway against its peers, same run, same load generator ({} keep-alive mTLS connections, {} s per phase)",
        args.conns, args.secs
    );
    println!("  gateway: cgc-gateway demo --no-feed (pid {gw_pid}); peers: nginx {ng_addr} (pids {ng_pids:?})");

    // Requests: nginx's return 200, the gateway's 404 floor, detail, list.
    let peer = load(&nginx_client, vec![], |_| "/".into(), 200, args.conns, args.secs).await;
    let floor = load(
        &hq,
        bearer(&hq_token),
        |_| "/v1/no-such-endpoint".into(),
        404,
        args.conns,
        args.secs,
    )
    .await;
    let refs = Arc::new(refs);
    let r = refs.clone();
    let commits_before_detail = audit_commits(gw_metrics).await;
    let detail = load(
        &hq,
        bearer(&hq_token),
        move |i| format!("/v1/terminal/cases/{}", r[i % r.len()]),
        200,
        args.conns,
        args.secs,
    )
    .await;
    let commits_after_detail = audit_commits(gw_metrics).await;
    let list = load(
        &hq,
        bearer(&hq_token),
        |_| "/v1/terminal/cases".into(),
        200,
        args.conns,
        args.secs,
    )
    .await;
    let commits_after_list = audit_commits(gw_metrics).await;
    let peer_again = load(&nginx_client, vec![], |_| "/".into(), 200, args.conns, args.secs).await;
    // The peer is measured before and after the gateway's phases; its mean is the reference.
    let peer_rate = (peer.per_sec + peer_again.per_sec) / 2.0;
    let peer_p99 = (peer.p99_ms + peer_again.p99_ms) / 2.0;
    header("requests (peer: nginx mTLS `return 200`, mean of a phase before and one after the gateway's)");
    println!(
        "  (nginx phases: {:.0} and {:.0} requests/s, p50 {:.2}/{:.2} ms, p99 {:.2}/{:.2} ms)",
        peer.per_sec, peer_again.per_sec, peer.p50_ms, peer_again.p50_ms, peer.p99_ms, peer_again.p99_ms
    );
    let ratio = floor.per_sec / peer_rate;
    row(
        "gateway 404 floor, requests/s",
        format!("{:.0}", floor.per_sec),
        format!("{peer_rate:.0}"),
        ratio,
        "(info)",
        true,
    );
    let ratio = detail.per_sec / peer_rate;
    row(
        "detail disclosure (durable signed entry), req/s",
        format!("{:.0}", detail.per_sec),
        format!("{peer_rate:.0}"),
        ratio,
        "≥ 0.5×",
        ratio >= 0.5,
    );
    let ratio = detail.p99_ms / peer_p99;
    row(
        "detail disclosure p99, ms",
        format!("{:.2}", detail.p99_ms),
        format!("{peer_p99:.2}"),
        ratio,
        "≤ 2×",
        ratio <= 2.0,
    );
    let per_case = list.per_sec * listed as f64;
    let ratio = per_case / peer_rate;
    row(
        &format!("list of {listed}: disclosed cases/s"),
        format!("{per_case:.0}"),
        format!("{peer_rate:.0}"),
        ratio,
        "≥ 0.5×",
        ratio >= 0.5,
    );
    println!(
        "  (gateway p50: detail {:.2} ms, list {:.2} ms ({:.0} lists/s); floor p99 {:.2} ms)",
        detail.p50_ms, list.p50_ms, list.per_sec, floor.p99_ms
    );
    println!(
        "  (audit group commits: detail {}; list {})",
        per_commit(commits_before_detail, commits_after_detail),
        per_commit(commits_after_detail, commits_after_list)
    );

    // Full handshakes per CPU-second of the server.
    let gw_hs = handshakes(&hq, &[gw_pid], "/v1/no-such-endpoint", &[], args.handshakes, args.conns).await;
    let ng_hs = handshakes(&nginx_client, &ng_pids, "/", &[], args.handshakes, args.conns).await;
    header(&format!(
        "handshakes ({} full mTLS handshakes, {} at a time, one request each)",
        args.handshakes, args.conns
    ));
    let ratio = gw_hs / ng_hs;
    row(
        "full mTLS handshakes per CPU-second",
        format!("{gw_hs:.0}"),
        format!("{ng_hs:.0}"),
        ratio,
        "≥ 3×",
        ratio >= 3.0,
    );

    if !args.skip_live {
        for &n in &args.streams {
            live(&args, n, &gw, &ng, &token, (gw_pid, gw_metrics), &ng_pids, &center).await;
        }
    }
    println!(
        "\ncross-instance push on PostgreSQL against one SQLite instance: `cargo bench --bench instances` (docs/benchmarks.md)"
    );
    drop(nginx);
    drop(gateway);
}

/// Sends `what` to the callgrind of the gateway's process `pid`.
fn callgrind_control(pid: u32, what: &[&str]) {
    let status = Command::new("callgrind_control")
        .args(what)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "callgrind_control {what:?}");
}

/// Instruction counts of `n` detail disclosures (after a warm-up), `conns` at a time: the
/// gateway runs under callgrind with instrumentation switched on only around them.
async fn callgrind_detail(
    hq: &Tls,
    token: &str,
    refs: &[String],
    n: usize,
    conns: usize,
    (pid, metrics): (u32, SocketAddr),
    out: &Path,
) {
    let control = |what: &[&str]| callgrind_control(pid, what);
    let mut senders = Vec::new();
    for _ in 0..conns {
        senders.push(hq.connect().await);
    }
    let round = |senders: &mut Vec<(Sender, AbortOnDrop)>, count: usize| {
        let work: Vec<_> = senders
            .drain(..)
            .enumerate()
            .map(|(c, (mut s, d))| {
                let (token, refs) = (token.to_owned(), refs.to_vec());
                tokio::spawn(async move {
                    let mut i = c;
                    while i < count {
                        let path = format!("/v1/terminal/cases/{}", refs[i % refs.len()]);
                        let (status, _) = fetch(&mut s, Method::GET, &path, &bearer(&token), Vec::new()).await;
                        assert_eq!(status, 200);
                        i += conns;
                    }
                    (s, d)
                })
            })
            .collect();
        async move {
            let mut back = Vec::new();
            for w in work {
                back.push(w.await.unwrap());
            }
            back
        }
    };
    // Warm-up: every connection has sent requests, caches are filled.
    let mut senders = round(&mut senders, conns * 20).await;
    let commits = audit_commits(metrics).await;
    control(&["-i", "on"]);
    let start = Instant::now();
    let senders = round(&mut senders, n).await;
    control(&["-i", "off"]);
    let commits = per_commit(commits, audit_commits(metrics).await);
    control(&["-d"]);
    drop(senders);
    // The dump is written by the gateway's process when it next runs: wait for it before the
    // process is stopped.
    let dir = out.parent().unwrap();
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let written = || {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&name))
    };
    for _ in 0..600 {
        if written() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "callgrind: {n} detail disclosures on {conns} connections in {:.1} s under valgrind ({commits}); profile in {} (wait for the gateway to exit)",
        start.elapsed().as_secs_f64(),
        out.display()
    );
    println!(
        "  per request: callgrind_annotate --inclusive=yes {} | head -60, and divide by {n}",
        out.display()
    );
}

/// Instruction counts of `n` full handshakes, each with one request for the 404 floor, as the
/// handshake phase makes them: a second profile (`<out>.2`) after `callgrind_detail`'s.
async fn callgrind_handshakes(tls: &Tls, n: usize, pid: u32, out: &Path) {
    let control = |what: &[&str]| callgrind_control(pid, what);
    handshakes(tls, &[pid], "/v1/no-such-endpoint", &[], 32, 16).await;
    control(&["-i", "on"]);
    handshakes(tls, &[pid], "/v1/no-such-endpoint", &[], n, 16).await;
    control(&["-i", "off"]);
    control(&["-d"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "callgrind: {n} full handshakes (one 404 request each), 16 at a time; profile in {}.2: divide by {n}",
        out.display()
    );
}

#[allow(clippy::too_many_arguments)]
async fn live(
    args: &Args,
    n: usize,
    gw: &dyn Fn(&str) -> Tls,
    ng: &dyn Fn(&str) -> Tls,
    token: &dyn Fn(&str) -> String,
    (gw_pid, gw_metrics): (u32, SocketAddr),
    ng_pids: &[u32],
    center: &Tls,
) {
    let clients: Vec<(Tls, String, Tls)> = UNITS
        .iter()
        .map(|u| {
            let name = format!("terminal-{u}-1");
            (gw(&name), token(&name), ng(&name))
        })
        .collect();
    let clients = Arc::new(clients);
    let cc = args.connect_concurrency;

    // The gateway: n streams over the seven units, each with its initial view.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let rss0 = rss_kib(&[gw_pid]);
    let open_gw = |last: Option<Vec<String>>| {
        let (clients, tx) = (clients.clone(), tx.clone());
        move |i: usize| {
            let (tls, tok, _) = clients[i % clients.len()].clone();
            let mut headers = bearer(&tok);
            if let Some(ids) = &last {
                headers.push(("last-event-id", ids[i].clone()));
            }
            subscribe(Server::Gateway, tls, "/v1/terminal/stream", headers, tx.clone())
        }
    };
    let (streams, gw_initial) = open_streams(n, cc, open_gw(None)).await;
    // Idle: sampled once the connection burst is over and what it freed could be returned.
    tokio::time::sleep(IDLE_SETTLE).await;
    let gw_kib = rss_kib(&[gw_pid]).saturating_sub(rss0) as f64 / n as f64;
    let mut gw_lat = Vec::new();
    let mut event_bytes = 0usize;
    // Connected now: the gateway closes a connection that sends no first request in time.
    let (mut push, _push_driver) = center.connect().await;
    let commits_before_push = audit_commits(gw_metrics).await;
    for r in 0..args.rounds {
        let id = format!("LIVE-{n}-{r}");
        let body = serde_json::to_vec(&case(&id)).unwrap();
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        let (status, reply) = fetch(&mut push, Method::PUT, &format!("/v1/cases/{id}"), &[], body).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        gw_lat.extend(collect(&mut rx, n, t0).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let push_commits = per_commit(commits_before_push, audit_commits(gw_metrics).await);
    if event_bytes == 0 {
        // The size of one case event, so that nchan broadcasts as much per subscriber.
        let (tls, tok, _) = clients[0].clone();
        let (mut s, _d) = tls.connect().await;
        let (_, body) = fetch(
            &mut s,
            Method::GET,
            "/v1/terminal/cases/kanagawa-central:B-00000",
            &bearer(&tok),
            Vec::new(),
        )
        .await;
        event_bytes = body.len();
    }
    // Every terminal reconnects at once, resuming by its cursor.
    let cursors: Vec<String> = streams.iter().map(|s| s.cursor.lock().unwrap().clone()).collect();
    drop(streams);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (streams, gw_resume) = open_streams(n, cc, open_gw(Some(cursors))).await;
    drop(streams);
    drop(tx);
    while rx.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_secs(1)).await;

    // nchan: n subscribers, the same broadcast as many times, a message of the event's size.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let rss0 = rss_kib(ng_pids);
    let open_ng = || {
        let (clients, tx) = (clients.clone(), tx.clone());
        move |i: usize| {
            let (_, _, tls) = clients[i % clients.len()].clone();
            subscribe(Server::Nchan, tls, "/sub", Vec::new(), tx.clone())
        }
    };
    let (subs, ng_initial) = open_streams(n, cc, open_ng()).await;
    tokio::time::sleep(IDLE_SETTLE).await;
    let ng_kib = rss_kib(ng_pids).saturating_sub(rss0) as f64 / n as f64;
    let publisher = clients[0].2.clone();
    let (mut pubs, _pd) = publisher.connect().await;
    let message = format!("{MARK}{}", "x".repeat(event_bytes.saturating_sub(MARK.len())));
    let mut ng_lat = Vec::new();
    for _ in 0..args.rounds {
        // Only what this publish delivers counts.
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        let (status, _) = fetch(&mut pubs, Method::POST, "/pub", &[], message.clone().into_bytes()).await;
        assert!((200..300).contains(&status), "nchan publish: {status}");
        ng_lat.extend(collect(&mut rx, n, t0).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(subs);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (subs, ng_resume) = open_streams(n, cc, open_ng()).await;
    drop(subs);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let gw_lat = sorted(gw_lat);
    let ng_lat = sorted(ng_lat);
    header(&format!(
        "live push to {n} streams, {} rounds (peer: nchan SSE broadcast over mTLS, {event_bytes}-byte message)",
        args.rounds
    ));
    let (g50, g99, n50, n99) = (
        pct(&gw_lat, 0.5),
        pct(&gw_lat, 0.99),
        pct(&ng_lat, 0.5),
        pct(&ng_lat, 0.99),
    );
    row(
        "push-to-event p50, ms",
        format!("{g50:.1}"),
        format!("{n50:.1}"),
        g50 / n50,
        "(info)",
        true,
    );
    row(
        "push-to-event p99, ms",
        format!("{g99:.1}"),
        format!("{n99:.1}"),
        g99 / n99,
        "≤ 1.0×",
        g99 <= n99,
    );
    println!("  (audit group commits during the pushes: {push_commits})");
    let ratio = gw_resume / ng_resume;
    row(
        &format!("{n} reconnecting, resume by cursor, per s"),
        format!("{gw_resume:.0}"),
        format!("{ng_resume:.0}"),
        ratio,
        "≥ 1.0×",
        ratio >= 1.0,
    );
    let ratio = gw_initial / ng_initial;
    row(
        &format!("{n} connecting with their initial view, per s"),
        format!("{gw_initial:.0}"),
        format!("{ng_initial:.0}"),
        ratio,
        "≥ 1.0×",
        ratio >= 1.0,
    );
    row(
        "idle stream memory, KiB (peer: nchan, info)",
        format!("{gw_kib:.1}"),
        format!("{ng_kib:.1}"),
        gw_kib / ng_kib,
        "≤ 40 KiB",
        gw_kib <= 40.0,
    );
}
