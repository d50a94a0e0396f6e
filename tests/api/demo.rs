//! `cgc-gateway demo` as a newcomer runs it: the built binary, started from a folder that is
//! not the repository, and the examples the README copies from `docs/examples/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use cgc_gateway::cases::validate::parse_case_bytes;
use cgc_gateway::cli::policy;
use cgc_gateway::client::GatewayClient;
use cgc_gateway::clock::{Clock, SystemClock};

use crate::helpers::{ClockExt, NOW, pki, spawn_app};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> PathBuf {
    repo().join("docs/examples").join(name)
}

/// The built binary, run in `cwd`, its output read line by line; killed when dropped.
pub struct Running {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Running {
    pub fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
            .args(args)
            .current_dir(cwd)
            .envs(env.iter().copied())
            // Whatever the developer's shell sets, the tests read the defaults.
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self { child, stdout, stderr }
    }

    /// Stdout lines up to and including the first that contains `needle`.
    pub fn stdout_until(&self, needle: &str) -> Vec<String> {
        read_until(&self.stdout, needle, "stdout")
    }

    /// Stderr (the log) lines up to and including the first that contains `needle`.
    pub fn stderr_until(&self, needle: &str) -> Vec<String> {
        read_until(&self.stderr, needle, "stderr")
    }

    /// Stops the process and returns the output lines not read yet, stdout's then stderr's.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader threads end with the pipes; wait for them to hand over what is left.
        let mut rest: Vec<String> = Vec::new();
        rest.extend(std::iter::from_fn(|| {
            self.stdout.recv_timeout(Duration::from_secs(5)).ok()
        }));
        rest.extend(std::iter::from_fn(|| {
            self.stderr.recv_timeout(Duration::from_secs(5)).ok()
        }));
        rest
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(from: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        // Raw lines (escape codes included): the log tests look for them.
        for line in BufReader::new(from).split(b'\n') {
            let Ok(line) = line else { break };
            if tx.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

fn read_until(rx: &Receiver<String>, needle: &str, what: &str) -> Vec<String> {
    // A debug build generating a PKI on a busy machine takes a while.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(needle);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("no `{needle}` on {what} in time; got {seen:#?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("{what} closed before `{needle}`; got {seen:#?}"),
        }
    }
}

/// A demo started in `cwd`, its welcome text read.
struct Demo {
    running: Running,
    welcome: String,
    port: u16,
    certs: PathBuf,
}

impl Demo {
    fn start(cwd: &Path, extra: &[&str]) -> Self {
        Self::start_with(cwd, extra, &[])
    }

    fn start_with(cwd: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec!["demo", "--port", "0", "--no-feed"];
        args.extend_from_slice(extra);
        let running = Running::start(cwd, &args, env);
        // The last line of the welcome text is the curl command's URL.
        let welcome = running.stdout_until("-H \"Authorization: Bearer $TOKEN\"").join("\n");
        let port = welcome
            .lines()
            .find_map(|l| l.trim().strip_prefix("web terminal   https://localhost:"))
            .and_then(|rest| rest.strip_suffix("/terminal/"))
            .unwrap_or_else(|| panic!("no URL in {welcome}"))
            .parse()
            .unwrap();
        Self {
            running,
            welcome,
            port,
            certs: cwd.join("certs-dev"),
        }
    }

    fn client(&self, name: &str) -> GatewayClient {
        GatewayClient::from_dev_certs(([127, 0, 0, 1], self.port).into(), &self.certs, name).unwrap()
    }

    /// The refs a terminal lists, as the README's `jq -r '.cases[].ref'` prints them.
    async fn refs(&self, terminal: &str) -> Vec<String> {
        let token = cgc_gateway::cli::dev_token(
            &self.certs,
            terminal,
            "K-1234",
            time::Duration::minutes(5),
            SystemClock.now(),
        )
        .unwrap();
        let reply = self
            .client(terminal)
            .get("/v1/terminal/cases", Some(&token))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json().unwrap()["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["ref"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn demo_runs_from_any_folder_and_reset_starts_a_fresh_world() {
    let cwd = tempfile::tempdir().unwrap();
    let demo = Demo::start(cwd.path(), &[]);
    assert!(demo.welcome.contains("built-in demo policies"), "{}", demo.welcome);
    assert!(demo.welcome.contains("demo-data (a fresh world)"), "{}", demo.welcome);
    // The commands it prints run the binary itself, not `cargo run` (no Cargo.toml here).
    assert!(!demo.welcome.contains("cargo run"), "{}", demo.welcome);
    assert!(
        demo.welcome.contains(env!("CARGO_BIN_EXE_cgc-gateway")),
        "{}",
        demo.welcome
    );
    assert!(demo.refs("terminal-kagacho-1").await.is_empty());

    // The README's push, with the shipped example case.
    let case = std::fs::read(example("case.json")).unwrap();
    let case: serde_json::Value = serde_json::from_slice(&case).unwrap();
    let reply = demo
        .client("center-yokosuka")
        .put_json("/v1/cases/YKS-2026-0001", &case)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(demo.refs("terminal-kagacho-1").await, ["yokosuka:YKS-2026-0001"]);
    // The demo's own witness cosigns its checkpoints (its key in <certs>/audit/).
    let witness = std::fs::read_to_string(demo.certs.join("audit/witness-verifier-key.txt")).unwrap();
    let witness = cgc_gateway::witness::WitnessVerifier::parse(witness.trim()).unwrap();
    let auditor = demo.client("auditor-kanagawa-audit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let note = auditor.get("/v1/audit/checkpoint", None).await.unwrap().text();
        if witness.verify_note(&note).is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo's checkpoint is not cosigned: {note}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(demo);

    // The world is kept between runs, and the welcome says so.
    let demo = Demo::start(cwd.path(), &[]);
    assert!(
        demo.welcome.contains("kept from earlier runs: 1 cases"),
        "{}",
        demo.welcome
    );
    assert_eq!(demo.refs("terminal-kagacho-1").await, ["yokosuka:YKS-2026-0001"]);
    drop(demo);

    let demo = Demo::start(cwd.path(), &["--reset", "--metrics-port", "0"]);
    assert!(demo.welcome.contains("demo-data (a fresh world)"), "{}", demo.welcome);
    assert!(demo.refs("terminal-kagacho-1").await.is_empty());

    // `--metrics-port`: plain HTTP on loopback, announced in the welcome text.
    let url = demo
        .welcome
        .lines()
        .find_map(|l| l.trim().strip_prefix("metrics        http://"))
        .and_then(|rest| rest.split_once("/metrics"))
        .map(|(addr, _)| addr.to_owned())
        .unwrap_or_else(|| panic!("no metrics URL in {}", demo.welcome));
    let addr: std::net::SocketAddr = url.parse().unwrap();
    assert!(addr.ip().is_loopback());
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut scrape = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut tcp, &mut scrape)
        .await
        .unwrap();
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    assert!(
        scrape
            .contains("cgc_gateway_http_requests_total{route=\"/v1/terminal/cases\",method=\"GET\",status=\"2xx\"} 1"),
        "{scrape}"
    );
}

#[test]
fn reset_leaves_a_folder_demo_did_not_create_alone() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("demo-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("keep.txt"), "not the demo's").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
        .args(["demo", "--port", "0", "--no-feed", "--reset"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a demo data folder"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(data.join("keep.txt")).unwrap(),
        "not the demo's"
    );
    // Refused before anything was generated.
    assert!(!cwd.path().join("certs-dev").exists());
}

#[tokio::test]
async fn the_readme_examples_are_accepted_as_shipped() {
    // The case the README pushes is valid, and its id is the one in the README's URL.
    let body = std::fs::read(example("case.json")).unwrap();
    let (value, _) = parse_case_bytes(&body, NOW).unwrap_or_else(|errors| panic!("{errors:?}"));
    assert_eq!(value["case_id"], "YKS-2026-0001");
    assert_eq!(value["center_id"], "yokosuka");

    // `policy check` and `policy simulate` as the README runs them, from the repository root.
    let bin = env!("CARGO_BIN_EXE_cgc-gateway");
    let check = Command::new(bin)
        .args(["policy", "check", "docs/examples/kanagawa-2026-v2.toml"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let simulate = Command::new(bin)
        .args([
            "policy",
            "simulate",
            "--case",
            "docs/examples/case.json",
            "--terminal",
            "terminal-kagacho-1",
            "--at",
            "2026-11-21T08:00:00+09:00",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&simulate.stdout);
    assert!(
        simulate.status.success(),
        "{}",
        String::from_utf8_lossy(&simulate.stderr)
    );
    assert!(out.contains("sees case yokosuka:YKS-2026-0001"), "{out}");

    // `policy apply` of the example version 2 puts it in force.
    let app = spawn_app().await;
    let gateway = format!("https://127.0.0.1:{}", app.app.addr().port());
    let answer = policy::apply(
        &example("kanagawa-2026-v2.toml"),
        &gateway,
        pki(),
        "admin-14-pref-admin",
        app.clock.now_at(),
    )
    .await
    .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (answer["version"].clone(), answer["in_force"].clone()),
        (2.into(), true.into())
    );
}

#[test]
fn docs_stand_on_their_own() {
    let mut docs = vec![repo().join("README.md"), repo().join("policies/README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    for path in &docs {
        let text = std::fs::read_to_string(path).unwrap();
        // The specification the project was built from is not in the repository.
        assert!(!text.contains("SPEC"), "{} cites SPEC", path.display());
    }
    // Every repository file the README names exists (`case.json` and `new.toml` did not).
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut named = 0;
    for word in readme.split(|c: char| c.is_whitespace() || "`()<>,;|@=\"".contains(c)) {
        let word = word.trim_end_matches(['.', ':']);
        if ["docs/", "policies/", "tests/", "src/"]
            .iter()
            .any(|p| word.starts_with(p))
            && !word.contains('*')
            && !word.contains('{')
            // Written by the browser test.
            && !word.starts_with("tests/e2e/artifacts")
        {
            named += 1;
            assert!(repo().join(word).exists(), "README names {word}, which does not exist");
        }
    }
    assert!(named > 10, "{named}");
}

/// Everything a demo wrote while a case was pushed, listed and viewed, then it was stopped.
async fn demo_output(env: &[(&str, &str)]) -> Vec<String> {
    let cwd = tempfile::tempdir().unwrap();
    let demo = Demo::start_with(cwd.path(), &[], env);
    let mut output: Vec<String> = demo.welcome.lines().map(str::to_owned).collect();
    output.extend(demo.running.stderr_until("gateway listening"));
    let case: serde_json::Value = serde_json::from_slice(&std::fs::read(example("case.json")).unwrap()).unwrap();
    let reply = demo
        .client("center-yokosuka")
        .put_json("/v1/cases/YKS-2026-0001", &case)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(demo.refs("terminal-kagacho-1").await, ["yokosuka:YKS-2026-0001"]);
    // A refusal is logged too: a request with no token.
    let reply = demo
        .client("terminal-kagacho-1")
        .get("/v1/terminal/cases/yokosuka:YKS-2026-0001", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    output.extend(demo.running.stop());
    output
}

/// What a log line must never hold: the example case's names, address and ids.
const CASE_DATA: &[&str] = &["山田", "ヤマダ", "架空町", "YKS-2026-0001", "佐藤", "046-000-0000"];

#[tokio::test]
async fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let output = demo_output(&[]).await;
    assert!(output.iter().any(|l| l.contains("gateway listening")), "{output:#?}");
    for line in &output {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_without_case_data() {
    let output = demo_output(&[("CGC_GATEWAY_LOG_FORMAT", "json")]).await;
    let welcome_end = output.iter().position(|l| l.contains("Authorization: Bearer")).unwrap();
    let log: Vec<&String> = output.iter().skip(welcome_end + 1).filter(|l| !l.is_empty()).collect();
    assert!(log.len() >= 3, "{log:#?}");
    for line in &log {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["level"].is_string() && event["message"].is_string(), "{line}");
        assert!(event["timestamp"].is_string() && event["target"].is_string(), "{line}");
        for needle in CASE_DATA {
            assert!(!line.contains(needle), "case data `{needle}` in the log: {line}");
        }
    }
    assert!(
        log.iter().any(|l| l.contains("\"message\":\"gateway listening\"")),
        "{log:#?}"
    );
}

#[test]
fn serve_takes_the_log_format_from_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki().display().to_string();
    let config = format!(
        r#"
listen = "127.0.0.1:0"
database_url = "sqlite://{db}"
policies = "{policies}"
log_format = "json"

[tls]
server_cert = "{pki}/server.pem"
server_key = "{pki}/server-key.pem"
center_ca = "{pki}/ca/center-ca.pem"
terminal_ca = "{pki}/ca/terminal-ca.pem"
admin_ca = "{pki}/ca/admin-ca.pem"
auditor_ca = "{pki}/ca/auditor-ca.pem"

[tokens]
issuer = "https://idp.example"
public_key = "{pki}/token-issuer/issuer-pub.pem"
officer_audience = "cgc-gateway:terminal"
admin_audience = "cgc-gateway:admin"

[audit]
origin = "{origin}"
signing_key = "{pki}/audit/log-key.pem"
"#,
        db = dir.path().join("gateway.db").display(),
        policies = repo().join("policies").display(),
        origin = cgc_gateway::config::DEV_AUDIT_ORIGIN,
    );
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).unwrap();
    let running = Running::start(dir.path(), &["serve", "--config", "gateway.toml"], &[]);
    let log = running.stderr_until("gateway listening");
    let rest = running.stop();
    for line in log.iter().chain(&rest).filter(|l| !l.is_empty()) {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["level"].is_string(), "{line}");
    }
}
