//! `cgc-gateway witness keygen|serve`: a C2SP tlog-witness for the gateway's audit log
//! (docs/witness.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Subcommand;

use crate::audit::note::NoteVerifier;
use crate::audit::verify::parse_key_lines;
use crate::clock::SystemClock;
use crate::witness::{Witness, WitnessConfig, WitnessServer};

pub use crate::witness::keyfile::{KEY_FILE, VERIFIER_KEY_FILE, keygen, open_or_create_key, read_witness_key};

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Creates a witness key: <out>/witness-key.txt (private) and
    /// <out>/witness-verifier-key.txt (public, for the gateway and the auditors).
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// The witness's name, a schema-less URL such as witness.pref-audit.example/w1.
        #[arg(long)]
        name: String,
    },
    /// Cosigns the checkpoints of the logs whose keys it is given, over HTTP
    /// (POST /add-checkpoint).
    Serve {
        /// The private key written by `witness keygen`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The address to serve plain HTTP on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7380")]
        listen: SocketAddr,
        /// The log's verifier key(s): a file of C2SP verifier keys, one per line (the format of
        /// certs-dev/audit/verifier-key.txt or of an export's verifier-keys). Repeatable.
        #[arg(long = "log-key", value_name = "FILE", required = true)]
        log_keys: Vec<PathBuf>,
        /// Where the witness keeps what it cosigned; default: the key's folder.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
    },
}

pub async fn run(command: WitnessCommand) -> Result<(), String> {
    match command {
        WitnessCommand::Keygen { out, name } => {
            let verifier = keygen(&out, &name)?;
            println!(
                "witness key written to {}; its verifier key ({}):\n{verifier}",
                out.join(KEY_FILE).display(),
                out.join(VERIFIER_KEY_FILE).display()
            );
            Ok(())
        }
        WitnessCommand::Serve {
            key,
            listen,
            log_keys,
            state,
        } => {
            let state_dir = match state {
                Some(dir) => dir,
                None => key.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            };
            let config = WitnessConfig {
                key: read_witness_key(&key)?,
                log_keys: read_log_keys(&log_keys)?,
                state_dir,
                clock: Arc::new(SystemClock),
            };
            let witness = Witness::open(config).map_err(|e| e.to_string())?;
            let verifier = witness.verifier().to_text();
            let logs: Vec<String> = witness.log_keys().iter().map(NoteVerifier::to_text).collect();
            let server = WitnessServer::start(Arc::new(witness), listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(addr = %server.addr(), witness = %verifier, logs = ?logs, "witness listening");
            shutdown_signal().await;
            tracing::info!("witness shutting down");
            server.stop().await;
            Ok(())
        }
    }
}

/// Every key of every file, in the grammar of `audit verify --key` (validity ranges are
/// accepted and not used: the witness trusts a log's keys for any size).
pub fn read_log_keys(paths: &[PathBuf]) -> Result<Vec<NoteVerifier>, String> {
    let mut keys = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let lines = parse_key_lines(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if lines.is_empty() {
            return Err(format!("{}: no verifier key", path.display()));
        }
        keys.extend(lines.into_iter().map(|l| l.verifier));
    }
    Ok(keys)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
