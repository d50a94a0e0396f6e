//! Throwaway PostgreSQL clusters: Debian's server binaries (`/usr/lib/postgresql/<ver>/bin`),
//! `initdb` in a temporary folder, `pg_ctl` on a free loopback port, `fsync=on` as in
//! production. Run as root (as CI does), the cluster runs as the `postgres` user.
//!
//! `database()` gives each test a fresh database on one cluster shared by the test run;
//! `PgCluster::start()` gives a test a cluster of its own, which it may stop and start.
//! Without PostgreSQL installed both fail under `CI` and otherwise print a skip notice and
//! return `None`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running cluster; stopped (immediately) and removed on drop.
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    /// Removed on drop; `None` for the shared cluster, which its watchdog removes.
    owned_dir: Option<tempfile::TempDir>,
}

impl PgCluster {
    /// A cluster of the test's own, or `None` (after a skip notice) without PostgreSQL.
    pub fn start() -> Option<Self> {
        let bin = installed("a PostgreSQL cluster")?;
        let temp = tempfile::Builder::new().prefix("cgc-pg-").tempdir().unwrap();
        let mut cluster = Self::init(bin, temp.path().to_path_buf());
        cluster.owned_dir = Some(temp);
        Some(cluster)
    }

    fn init(bin: PathBuf, dir: PathBuf) -> Self {
        let as_postgres = running_as_root();
        if as_postgres {
            run(Command::new("chown").args(["postgres:postgres"]).arg(&dir));
        }
        let port = free_port();
        let cluster = Self {
            dir,
            bin,
            port,
            as_postgres,
            owned_dir: None,
        };
        let data = cluster.data();
        run(cluster
            .tool("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data));
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command running one of the server binaries, as `postgres` when we are root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    fn pg_ctl_start(&self) {
        let server_options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=400",
            self.port,
            self.dir.display()
        );
        run(self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-o", &server_options, "start"]));
    }

    /// Starts the server again after `stop`.
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// Stops the server at once, as a crash or an operator would: clients see their connections
    /// cut.
    pub fn stop(&self) {
        run(self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"]));
    }

    /// The URL of a new, empty database on this cluster.
    pub async fn create_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = sqlx::PgPool::connect(&self.url("postgres")).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        self.url(&name)
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.owned_dir.is_some() {
            let _ = self
                .tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A fresh database on the cluster shared by this test run, or `None` (after a skip notice)
/// without PostgreSQL.
pub async fn database() -> Option<String> {
    static SHARED: OnceLock<Option<PgCluster>> = OnceLock::new();
    let cluster = SHARED.get_or_init(shared_cluster).as_ref()?;
    Some(cluster.create_database().await)
}

/// Statics are never dropped, so a watchdog process stops the shared cluster and removes its
/// folder once this test process has exited.
fn shared_cluster() -> Option<PgCluster> {
    let bin = installed("the PostgreSQL store tests")?;
    let dir = tempfile::Builder::new().prefix("cgc-pg-").tempdir().unwrap().keep();
    let cluster = PgCluster::init(bin, dir);
    let pg_ctl = format!("{}/pg_ctl", cluster.bin.display());
    let stop_line = format!(
        "{}{pg_ctl} -D {} -m immediate stop",
        if cluster.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        },
        cluster.data().display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop_line} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = cluster.dir.display(),
    );
    // Never waited for: it is meant to outlive this process.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some(cluster)
}

/// The folder of the newest installed server binaries, or `None` after a skip notice.
fn installed(what: &str) -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .max_by_key(|bin| version_of(bin));
    if found.is_none() {
        let why = "PostgreSQL is not installed (apt-get install -y postgresql)";
        assert!(std::env::var_os("CI").is_none(), "{what} cannot run under CI: {why}");
        eprintln!("SKIPPED {what}: {why}");
    }
    found
}

fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(|v| v.file_name())
        .and_then(|v| v.to_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
