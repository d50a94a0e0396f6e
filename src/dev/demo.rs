//! `cgc-gateway demo`: the demo world (Kanagawa) on one machine — dev certificates generated
//! if absent, an embedded SQLite database, and a simulated feed of synthetic cases that the
//! demo centers push over real mTLS, exactly as a CGC case system would.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::app::Application;
use crate::client::GatewayClient;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{self, Config};
use crate::dev::synth::Synth;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub port: u16,
    pub data: PathBuf,
    pub certs: PathBuf,
    /// A policy folder; `None`: `./policies` if there is one, else the built-in demo policies.
    pub policies: Option<PathBuf>,
    pub feed: bool,
    /// Deletes the data folder first (only one that `demo` created).
    pub reset: bool,
    /// Serves `/metrics` on this loopback port (`0`: any free port).
    pub metrics_port: Option<u16>,
}

/// The demo registry, agreement and consents, built into the binary so that `demo` runs from
/// any folder. Paths are relative to a policy folder.
pub const BUILT_IN_POLICIES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../policies/README.md")),
    ("registry.toml", include_str!("../../policies/registry.toml")),
    ("consents.toml", include_str!("../../policies/consents.toml")),
    (
        "agreements/kanagawa-2026.toml",
        include_str!("../../policies/agreements/kanagawa-2026.toml"),
    ),
];

/// The file that marks a folder as a demo's data folder: `--reset` deletes no other folder.
pub const DEMO_DATA_MARKER: &str = ".cgc-gateway-demo";

const DEMO_DATA_MARKER_TEXT: &str = "\
This folder holds the state of a `cgc-gateway demo` world (its SQLite database and the built-in \
demo policies). It is kept between runs; `cgc-gateway demo --reset` deletes it and starts a \
fresh world. Never put real data here.
";

/// Where the demo's policies came from, for the welcome text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// `--policies <dir>`.
    Given(PathBuf),
    /// `./policies`, e.g. in the repository.
    WorkingDir(PathBuf),
    /// The built-in files, written to this folder under the data folder.
    BuiltIn(PathBuf),
}

impl PolicySource {
    pub fn dir(&self) -> &Path {
        match self {
            Self::Given(dir) | Self::WorkingDir(dir) | Self::BuiltIn(dir) => dir,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Given(dir) => format!("{} (--policies)", dir.display()),
            Self::WorkingDir(dir) => format!(
                "{} (found in the current folder; --policies <dir> to choose)",
                dir.display()
            ),
            Self::BuiltIn(dir) => format!("built-in demo policies, written to {}", dir.display()),
        }
    }
}

/// Picks the policy folder: `given`, else `./policies` if it holds a registry, else the
/// built-in policies written to `<data>/policies` (rewritten each start, so they are always
/// the binary's own).
pub fn resolve_policies(given: Option<&Path>, data: &Path) -> Result<PolicySource, String> {
    if let Some(dir) = given {
        return Ok(PolicySource::Given(dir.to_owned()));
    }
    let here = Path::new("policies");
    if here.join("registry.toml").is_file() {
        return Ok(PolicySource::WorkingDir(here.to_owned()));
    }
    let dir = data.join("policies");
    write_built_in_policies(&dir)?;
    Ok(PolicySource::BuiltIn(dir))
}

/// Writes [`BUILT_IN_POLICIES`] under `dir`.
pub fn write_built_in_policies(dir: &Path) -> Result<(), String> {
    for (name, text) in BUILT_IN_POLICIES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// What `prepare_data` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFolder {
    /// Created now (or was empty): a fresh world.
    Fresh,
    /// A demo data folder from an earlier run: its world continues.
    Continued,
    /// A folder `demo` did not create (an older demo's, or anything else): used as it is, but
    /// never deleted by `--reset`.
    Unmarked,
}

/// Deletes the data folder if `reset` (only when it carries [`DEMO_DATA_MARKER`]), then makes
/// sure it exists, marking it when `demo` creates it.
pub fn prepare_data(data: &Path, reset: bool) -> Result<DataFolder, String> {
    let marker = data.join(DEMO_DATA_MARKER);
    if reset && data.exists() {
        if !marker.is_file() {
            return Err(format!(
                "--reset: {} is not a demo data folder (it has no {DEMO_DATA_MARKER} file), so it is left alone; \
                 delete it yourself if it only holds demo data",
                data.display()
            ));
        }
        std::fs::remove_dir_all(data).map_err(|e| format!("--reset: cannot delete {}: {e}", data.display()))?;
    }
    let empty = match std::fs::read_dir(data) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(format!("cannot read {}: {e}", data.display())),
    };
    if empty {
        std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        std::fs::write(&marker, DEMO_DATA_MARKER_TEXT)
            .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
        Ok(DataFolder::Fresh)
    } else if marker.is_file() {
        Ok(DataFolder::Continued)
    } else {
        Ok(DataFolder::Unmarked)
    }
}

/// The demo centers and the municipalities their children live in.
pub const DEMO_CENTERS: &[(&str, &[&str])] = &[
    ("kanagawa-central", &["142123"]),
    ("yokohama-central", &["141046", "141011"]),
    ("kawasaki-central", &["141313"]),
    ("sagamihara", &["141534"]),
    ("yokosuka", &["142018"]),
];

/// Makes sure a dev PKI exists at `certs`.
pub fn ensure_dev_certs(certs: &Path) -> Result<(), String> {
    if certs.join("ca").join("terminal-ca.pem").exists() {
        return Ok(());
    }
    tracing::info!(dir = %certs.display(), "generating development certificates");
    crate::dev::pki::write_dev_pki(certs, config::DEV_AUDIT_ORIGIN).map_err(|e| e.to_string())
}

pub async fn run(options: DemoOptions) -> Result<(), String> {
    // Before anything is generated: a refused reset must leave everything as it was.
    let folder = prepare_data(&options.data, options.reset)?;
    ensure_dev_certs(&options.certs)?;
    let policies = resolve_policies(options.policies.as_deref(), &options.data)?;
    let mut config = Config::development(
        &options.certs,
        &options.data,
        policies.dir(),
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, options.port)),
    );
    config
        .apply_env(|name| std::env::var(name).ok())
        .map_err(|e| e.to_string())?;
    if let Some(port) = options.metrics_port {
        config.metrics_listen = Some(std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
    }
    let clock: SharedClock = Arc::new(SystemClock);
    // One local witness, as an audit committee would run one: its key and verifier key in
    // <certs>/audit/, its state in the data folder; the gateway asks it to cosign every
    // checkpoint.
    let witness = start_witness(&options, clock.clone()).await?;
    // The demo's sign-in button: development tokens, bound to the calling terminal's cert.
    config.dev_token_issuer_key = Some(options.certs.join("token-issuer").join("issuer-key.pem"));
    config.audit.witnesses.push(crate::config::WitnessConfig {
        url: format!("http://{}", witness.addr()),
        verifier_key: witness_verifier_text(&options.certs)?,
    });
    let app = Application::build(&config, clock.clone())
        .await
        .map_err(|e| e.to_string())?;
    let addr = app.addr();
    let world = World {
        folder,
        policies,
        cases: app.context().live.case_count(),
        audit_entries: app.context().audit.size(),
    };
    print_welcome(&options, &world, addr.port(), app.metrics_addr());
    if options.feed {
        let certs = options.certs.clone();
        tokio::spawn(async move {
            if let Err(e) = feed(addr, &certs, clock, Duration::from_secs(4)).await {
                tracing::error!(error = %e, "the simulated CGC feed stopped");
            }
        });
    }
    app.run_until_stopped().await;
    witness.stop().await;
    Ok(())
}

/// The demo's witness name (a schema-less URL, as C2SP key names are).
const DEMO_WITNESS: &str = "witness.dev.cgc-gateway.invalid/demo";

async fn start_witness(options: &DemoOptions, clock: SharedClock) -> Result<crate::witness::WitnessServer, String> {
    let audit_dir = options.certs.join("audit");
    let key = crate::witness::keyfile::open_or_create_key(&audit_dir, DEMO_WITNESS)?;
    let log_key_path = audit_dir.join("verifier-key.txt");
    let log_key_text =
        std::fs::read_to_string(&log_key_path).map_err(|e| format!("cannot read {}: {e}", log_key_path.display()))?;
    let log_key = crate::audit::note::NoteVerifier::parse(log_key_text.trim()).map_err(|e| e.to_string())?;
    let state_dir = options.data.join("witness");
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let witness = crate::witness::Witness::open(crate::witness::WitnessConfig {
        key,
        log_keys: vec![log_key],
        state_dir,
        clock,
    })
    .map_err(|e| e.to_string())?;
    crate::witness::WitnessServer::start(
        Arc::new(witness),
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .map_err(|e| format!("cannot start the demo's witness: {e}"))
}

fn witness_verifier_text(certs: &std::path::Path) -> Result<String, String> {
    let path = certs.join("audit").join(crate::witness::keyfile::VERIFIER_KEY_FILE);
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// What the welcome text says about the state the demo starts from.
struct World {
    folder: DataFolder,
    policies: PolicySource,
    cases: usize,
    audit_entries: u64,
}

fn print_welcome(options: &DemoOptions, world: &World, port: u16, metrics: Option<std::net::SocketAddr>) {
    let certs = options.certs.display();
    let data = options.data.display();
    // The running binary, so that the commands work from any folder (not only `cargo run` in
    // the repository).
    let bin = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "cgc-gateway".into());
    println!();
    println!("cgc-gateway demo (Kanagawa) — development certificates, never for real data");
    println!();
    println!("  web terminal   https://localhost:{port}/terminal/");
    println!("  API            https://localhost:{port}/v1/terminal/cases");
    println!("  browser cert   {certs}/clients/terminal-kagacho-1.p12   (password: demo)");
    println!("  admin console  https://localhost:{port}/admin/    with {certs}/clients/admin-14-pref-admin.p12");
    println!("  CGC's page     https://localhost:{port}/center/   with {certs}/clients/center-yokohama-central.p12");
    println!("  server CA      {certs}/ca/server-ca.pem");
    if let Some(metrics) = metrics {
        println!("  metrics        http://{metrics}/metrics   (plain HTTP, loopback only)");
    }
    println!("  policies       {}", world.policies.describe());
    match world.folder {
        DataFolder::Fresh => println!("  data           {data} (a fresh world)"),
        DataFolder::Continued => println!(
            "  data           {data} (kept from earlier runs: {} cases, {} audit entries; --reset starts a fresh world)",
            world.cases, world.audit_entries
        ),
        DataFolder::Unmarked => println!(
            "  data           {data} ({} cases, {} audit entries; not created by demo, so --reset will not delete it)",
            world.cases, world.audit_entries
        ),
    }
    println!();
    println!("  Without the browser certificate imported, the browser shows only a connection error");
    println!("  (ERR_BAD_SSL_CLIENT_AUTH_CERT, SSL_ERROR_HANDSHAKE_FAILURE_ALERT): the gateway admits no");
    println!("  client without a certificate. Import the .p12 above, then reload.");
    println!();
    println!("  Try it (加賀町警察署 terminal 1, officer K-1234):");
    println!();
    println!("    TOKEN=$({bin} dev-token --certs {certs} --client terminal-kagacho-1 --subject K-1234)");
    println!("    curl --cacert {certs}/ca/server-ca.pem \\");
    println!(
        "         --cert {certs}/clients/terminal-kagacho-1.pem --key {certs}/clients/terminal-kagacho-1-key.pem \\"
    );
    println!("         -H \"Authorization: Bearer $TOKEN\" https://localhost:{port}/v1/terminal/cases");
    println!();
}

/// The simulated CGC feed: every center pushes a few cases, then new cases and updates keep
/// arriving every `every`.
pub async fn feed(addr: std::net::SocketAddr, certs: &Path, clock: SharedClock, every: Duration) -> Result<(), String> {
    let mut clients = Vec::new();
    for (center, municipalities) in DEMO_CENTERS {
        let client =
            GatewayClient::from_dev_certs(addr, certs, &format!("center-{center}")).map_err(|e| e.to_string())?;
        clients.push((*center, *municipalities, client));
    }
    let mut synth = Synth::new(clock.now().unix_timestamp().unsigned_abs());
    let mut pushed: Vec<(usize, serde_json::Value)> = Vec::new();
    let mut serial = 0u32;
    let stamp = clock.now().unix_timestamp().unsigned_abs() % 100_000;
    let mut push =
        async |synth: &mut Synth, pushed: &mut Vec<(usize, serde_json::Value)>, i: usize, update: Option<usize>| {
            let Some((center, municipalities, client)) = clients.get(i) else {
                return;
            };
            let now = clock.now();
            let case = match update.and_then(|u| pushed.get(u)) {
                Some((_, previous)) => synth.bump(previous, now),
                None => {
                    serial += 1;
                    let municipality = municipalities
                        .get(serial as usize % municipalities.len().max(1))
                        .copied()
                        .unwrap_or("142123");
                    synth.case(center, &format!("D{stamp}-{serial:04}"), municipality, 1, now)
                }
            };
            let Some(case_id) = case.get("case_id").and_then(|v| v.as_str()).map(str::to_owned) else {
                return;
            };
            match client.put_json(&format!("/v1/cases/{case_id}"), &case).await {
                Ok(reply) if reply.status.is_success() => match update {
                    Some(u) => {
                        if let Some(slot) = pushed.get_mut(u) {
                            slot.1 = case;
                        }
                    }
                    None => pushed.push((i, case)),
                },
                Ok(reply) => tracing::warn!(status = %reply.status, center, "demo feed push refused"),
                Err(e) => tracing::warn!(error = %e, center, "demo feed push failed"),
            }
        };
    for round in 0..4 {
        for i in 0..DEMO_CENTERS.len() {
            push(&mut synth, &mut pushed, i, None).await;
        }
        tracing::debug!(round, "demo feed seeded a round");
    }
    let mut tick = 0usize;
    loop {
        tokio::time::sleep(every).await;
        tick += 1;
        if tick.is_multiple_of(3) || pushed.is_empty() {
            push(&mut synth, &mut pushed, tick % DEMO_CENTERS.len(), None).await;
        } else {
            let u = (tick * 7) % pushed.len();
            let i = pushed.get(u).map_or(0, |(i, _)| *i);
            push(&mut synth, &mut pushed, i, Some(u)).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    /// Every file under `dir`, relative to it.
    fn files(dir: &Path, under: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, under, out);
            } else {
                out.push(path.strip_prefix(under).unwrap().display().to_string());
            }
        }
    }

    #[test]
    fn the_built_in_policies_are_the_repository_policies() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut on_disk = Vec::new();
        files(&repo, &repo, &mut on_disk);
        on_disk.sort();
        let mut built_in: Vec<String> = BUILT_IN_POLICIES.iter().map(|(n, _)| (*n).to_owned()).collect();
        built_in.sort();
        // A file added to policies/ must be built in too, or `demo` outside the repository
        // would run another world.
        assert_eq!(built_in, on_disk);
        let written = tempfile::tempdir().unwrap();
        write_built_in_policies(written.path()).unwrap();
        for (name, text) in BUILT_IN_POLICIES {
            assert_eq!(&std::fs::read_to_string(repo.join(name)).unwrap(), text, "{name}");
        }
        crate::policy::PolicyWorld::load(written.path()).unwrap();
    }

    #[test]
    fn given_policies_win_over_the_built_in_ones() {
        let data = tempfile::tempdir().unwrap();
        let given = Path::new("/somewhere/policies");
        assert_eq!(
            resolve_policies(Some(given), data.path()).unwrap(),
            PolicySource::Given(given.to_owned())
        );
        assert!(!data.path().join("policies").exists());
    }

    #[test]
    fn reset_deletes_only_a_folder_demo_created() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("demo-data");
        assert_eq!(prepare_data(&data, false).unwrap(), DataFolder::Fresh);
        std::fs::write(data.join("gateway.db"), b"state").unwrap();
        assert_eq!(prepare_data(&data, false).unwrap(), DataFolder::Continued);
        assert_eq!(prepare_data(&data, true).unwrap(), DataFolder::Fresh);
        assert!(!data.join("gateway.db").exists());
        assert!(data.join(DEMO_DATA_MARKER).is_file());

        // Anything else is used as it is and never deleted.
        let other = root.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("gateway.db"), b"not a demo").unwrap();
        assert_eq!(prepare_data(&other, false).unwrap(), DataFolder::Unmarked);
        let err = prepare_data(&other, true).unwrap_err();
        assert!(err.contains("not a demo data folder"), "{err}");
        assert_eq!(std::fs::read(other.join("gateway.db")).unwrap(), b"not a demo");
        assert!(!other.join(DEMO_DATA_MARKER).exists());
        // A reset of nothing is a fresh start.
        assert_eq!(prepare_data(&root.path().join("new"), true).unwrap(), DataFolder::Fresh);
    }
}
