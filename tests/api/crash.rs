//! Crash safety (issue 13, item 3): the real gateway binary (`cgc-gateway serve`) is killed with
//! SIGKILL again and again while case systems push updates and terminals read them. After each
//! restart every acknowledged update is there, every disclosure a client received has its
//! entry in the log (the receipt's index holds the receipt's entry, byte for byte), and the
//! exported log passes `audit verify`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cgc_gateway::client::GatewayClient;
use serde_json::Value;

use crate::helpers::{full_case, pki};

/// A server's configuration file naming the given database, over the test PKI.
pub fn server_config(dir: &Path, database_url: &str) -> PathBuf {
    use cgc_gateway::config::{ADMIN_AUDIENCE, DEV_AUDIT_ORIGIN, DEV_TOKEN_ISSUER, OFFICER_AUDIENCE};
    let pki = pki();
    let p = |rel: &str| pki.join(rel).display().to_string();
    let text = format!(
        r#"listen = "127.0.0.1:0"
database_url = "{database_url}"
policies = "{policies}"
metrics_listen = "off"

[tls]
server_cert = "{server_cert}"
server_key = "{server_key}"
center_ca = "{center_ca}"
terminal_ca = "{terminal_ca}"
admin_ca = "{admin_ca}"
auditor_ca = "{auditor_ca}"

[tokens]
issuer = "{DEV_TOKEN_ISSUER}"
public_key = "{issuer}"
officer_audience = "{OFFICER_AUDIENCE}"
admin_audience = "{ADMIN_AUDIENCE}"

[audit]
origin = "{DEV_AUDIT_ORIGIN}"
signing_key = "{log_key}"
"#,
        policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
        server_cert = p("server.pem"),
        server_key = p("server-key.pem"),
        center_ca = p("ca/center-ca.pem"),
        terminal_ca = p("ca/terminal-ca.pem"),
        admin_ca = p("ca/admin-ca.pem"),
        auditor_ca = p("ca/auditor-ca.pem"),
        issuer = p("token-issuer/issuer-pub.pem"),
        log_key = p("audit/log-key.pem"),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A gateway process of its own (`cgc-gateway serve`), so that it can be killed outright.
pub struct Process {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl Process {
    pub fn serve(config: &Path, addr: std::net::SocketAddr) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
            .args(["serve", "--config"])
            .arg(config)
            .env("CGC_GATEWAY_LISTEN", addr.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self { child, addr }
    }

    /// Waits until the gateway accepts connections (it binds only once its state is loaded).
    pub async fn ready(&mut self) {
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the gateway process exited at start-up: {status}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the gateway process did not start within 10 s");
    }

    pub fn kill(mut self) {
        // SIGKILL: no shutdown, no flush, as a crash or an OOM kill.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

pub fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// What the clients were told: the highest acknowledged version of each case, and every
/// receipt (audit index, entry line) that came with a disclosure.
#[derive(Default)]
struct Told {
    /// Pushes answered 200.
    acks: usize,
    acked: HashMap<String, u64>,
    receipts: Vec<(u64, String)>,
}

/// Runs `kills` rounds on the store at `url`: start the gateway, let `workers` case systems push
/// and terminals read for a while (a different while each round, so that kills land
/// everywhere: at start-up, mid-commit, between requests), SIGKILL it, restart, and check.
/// Returns how many updates were acknowledged and disclosures receipted.
pub async fn kill_repeatedly(url: &str, dir: &Path, kills: usize, workers: usize) -> (usize, usize) {
    let config = server_config(dir, url);
    let pki = pki();
    // The process runs on the wall clock; its tokens and timestamps must be valid now.
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc();
    let updated_at = now.format(&time::format_description::well_known::Rfc3339).unwrap();
    let token = cgc_gateway::cli::dev_token(pki, "terminal-yokosuka-1", "K-1", time::Duration::hours(1), now).unwrap();
    let told = Arc::new(Mutex::new(Told::default()));
    // The next version each worker pushes of its cases: never reused, so that a push whose
    // answer was lost in a kill cannot turn into a conflict later.
    let versions = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let mut store = None;
    // The exports are checked and thrown away: in memory where the machine has a tmpfs (an
    // export writes a file per checkpoint). The store itself stays on disk.
    let exports = tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir_in(dir))
        .unwrap();
    let started = Instant::now();
    let (mut starting, mut checking) = (Duration::ZERO, Duration::ZERO);
    for round in 0..=kills {
        let t0 = Instant::now();
        let mut process = Process::serve(&config, free_addr());
        process.ready().await;
        starting += t0.elapsed();
        let store = match &store {
            Some(s) => s,
            None => store.insert(cgc_gateway::store::open(url).await.unwrap()),
        };
        // After the restart: nothing told to a client is missing.
        let t0 = Instant::now();
        check(store, &told, exports.path(), round, pki).await;
        checking += t0.elapsed();
        if round == kills {
            // The restarted gateway itself serves the last acknowledged versions.
            check_served(&process, &told, &token).await;
            process.kill();
            break;
        }
        let mut tasks = Vec::new();
        for worker in 0..workers {
            let center = GatewayClient::from_dev_certs(process.addr, pki, "center-yokosuka").unwrap();
            let terminal = GatewayClient::from_dev_certs(process.addr, pki, "terminal-yokosuka-1").unwrap();
            let (told, versions, token, updated_at) =
                (told.clone(), versions.clone(), token.clone(), updated_at.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let id = format!("CR-{worker}-{}", i % 3);
                    let version = {
                        let mut v = versions.lock().unwrap();
                        let next = v.entry(id.clone()).or_insert(0);
                        *next += 1;
                        *next
                    };
                    let mut case = full_case("yokosuka", &id, "142018");
                    case["version"] = Value::from(version);
                    case["updated_at"] = Value::String(updated_at.clone());
                    let Ok(reply) = center.put_json(&format!("/v1/cases/{id}"), &case).await else {
                        return;
                    };
                    if reply.status == 200 {
                        let mut t = told.lock().unwrap();
                        t.acks += 1;
                        let acked = t.acked.entry(id.clone()).or_insert(0);
                        *acked = (*acked).max(version);
                    } else {
                        assert_eq!(reply.status, 503, "{}", reply.text());
                    }
                    let Ok(view) = terminal
                        .get(&format!("/v1/terminal/cases/yokosuka:{id}"), Some(&token))
                        .await
                    else {
                        return;
                    };
                    if view.status == 200 {
                        let r = view.json().unwrap()["receipt"].clone();
                        let index = r["audit_index"].as_u64().unwrap();
                        let entry = r["entry"].as_str().unwrap().to_owned();
                        told.lock().unwrap().receipts.push((index, entry));
                    }
                }
            }));
        }
        // 0 to 190 ms of work: some kills land while the process is still starting its work.
        tokio::time::sleep(Duration::from_millis((round as u64 * 37) % 200)).await;
        process.kill();
        for t in tasks {
            t.await.unwrap();
        }
    }
    let told = told.lock().unwrap();
    eprintln!(
        "{kills} SIGKILLs in {:.1} s ({:.1} s starting, {:.1} s checking): {} acknowledged updates of {} cases, {} receipts, all checked after every restart",
        started.elapsed().as_secs_f64(),
        starting.as_secs_f64(),
        checking.as_secs_f64(),
        told.acks,
        told.acked.len(),
        told.receipts.len()
    );
    (told.acks, told.receipts.len())
}

/// Every acknowledged version (or a later one) is stored, every receipted entry is in the log
/// as received, and the exported log verifies.
async fn check(store: &cgc_gateway::store::SharedStore, told: &Mutex<Told>, exports: &Path, round: usize, pki: &Path) {
    let (acked, receipts) = {
        let t = told.lock().unwrap();
        (t.acked.clone(), t.receipts.clone())
    };
    // Read whole (two queries), so that every round checks everything told so far.
    let stored: HashMap<String, u64> = store
        .current_cases()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.case_id, c.version))
        .collect();
    for (id, version) in &acked {
        let stored = stored.get(id).copied().unwrap_or(0);
        assert!(
            stored >= *version,
            "round {round}: {id} acknowledged at {version}, stored {stored}"
        );
    }
    let end = receipts.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let log = store.audit_entries(0, end).await.unwrap();
    for (index, entry) in &receipts {
        let row = log
            .get(*index as usize)
            .unwrap_or_else(|| panic!("round {round}: receipted entry {index} is not in the log"));
        assert_eq!(row.index, *index);
        assert_eq!(
            &row.line, entry,
            "round {round}: entry {index} differs from its receipt"
        );
    }
    let out = exports.join(format!("export-{round}"));
    cgc_gateway::audit::export::export(store, &out).await.unwrap();
    let verified = cgc_gateway::audit::verify::verify_dir(&out, &pki.join("audit/verifier-key.txt"), None);
    assert!(verified.is_ok(), "round {round}: {verified:?}");
    std::fs::remove_dir_all(&out).unwrap();
}

/// The restarted process serves each case at its acknowledged version or later.
async fn check_served(process: &Process, told: &Mutex<Told>, token: &str) {
    let acked = told.lock().unwrap().acked.clone();
    let terminal = GatewayClient::from_dev_certs(process.addr, pki(), "terminal-yokosuka-1").unwrap();
    for (id, version) in &acked {
        let view = terminal
            .get(&format!("/v1/terminal/cases/yokosuka:{id}"), Some(token))
            .await
            .unwrap();
        assert_eq!(view.status, 200, "{}", view.text());
        let served = view.json().unwrap()["version"].as_u64();
        assert!(
            served >= Some(*version),
            "{id}: acknowledged {version}, served {served:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_100_times_during_ingest_and_disclosure_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let (acked, receipts) = kill_repeatedly(&url, dir.path(), 100, 2).await;
    assert!(acked > 100, "too little work to prove anything: {acked} acknowledged");
    assert!(receipts > 100, "too little work to prove anything: {receipts} receipts");
    // And the real `audit verify` command accepts the log the real `audit export` writes.
    let config = dir.path().join("gateway.toml");
    let out = dir.path().join("export");
    let cli = |args: &[&str]| {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    };
    cli(&[
        "audit",
        "export",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let key = pki().join("audit/verifier-key.txt");
    cli(&["audit", "verify", out.to_str().unwrap(), "--key", key.to_str().unwrap()]);
}
