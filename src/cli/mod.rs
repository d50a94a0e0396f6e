//! The `cgc-gateway` command line.

pub mod import;
pub mod policy;
pub mod witness;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::app::Application;
use crate::auth::{TokenAudience, TokenSettings, dev_claims, issue_token};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "cgc-gateway",
    version,
    about = "Police and child-guidance-center information-sharing gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the demo world on one machine: SQLite, dev certificates, a simulated CGC feed.
    Demo {
        /// The HTTPS port on localhost (0: any free port; the welcome text names it).
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Where the SQLite file and state live; kept between runs (see --reset).
        #[arg(long, value_name = "DIR", default_value = "demo-data")]
        data: PathBuf,
        /// The development PKI; generated if absent.
        #[arg(long, value_name = "DIR", default_value = "certs-dev")]
        certs: PathBuf,
        /// A policy folder (registry.toml, agreements/, consents.toml). Default: ./policies if
        /// present, else the demo policies built into the binary.
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
        /// Without the simulated CGC feed.
        #[arg(long)]
        no_feed: bool,
        /// Deletes the data folder first (only one created by demo) and starts a fresh world.
        #[arg(long)]
        reset: bool,
        /// Serves Prometheus metrics on http://127.0.0.1:<port>/metrics (0: any free port).
        #[arg(long, value_name = "PORT")]
        metrics_port: Option<u16>,
    },
    /// Runs the gateway from a configuration file.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Writes a development PKI (never for production).
    DevCerts {
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints a development JWT bound to a client's certificate.
    DevToken {
        #[arg(long, default_value = "certs-dev")]
        certs: PathBuf,
        /// A client of the dev PKI, e.g. terminal-kagacho-1 or admin-14-pref-admin.
        #[arg(long)]
        client: String,
        /// The officer's or administrator's id.
        #[arg(long)]
        subject: String,
        /// Lifetime in minutes (default: four hours, shorter than a shift).
        #[arg(long, default_value_t = crate::auth::DEV_TOKEN_TTL.whole_minutes())]
        ttl_minutes: i64,
    },
    /// Checks, simulates and applies sharing agreements.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Exports, verifies and mirrors the audit log, and checks receipts (docs/audit-log.md).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Runs a C2SP witness that cosigns audit checkpoints (docs/witness.md).
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
    /// Imports a CSV file of cases into a running gateway as a CGC (docs/batch-import.md).
    Import(import::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validates a policy folder or one file; prints file:line: what is wrong.
    Check {
        #[arg(default_value = "policies")]
        path: PathBuf,
    },
    /// What would a terminal see of a case under these policies?
    Simulate {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// A case record (JSON, as pushed to PUT /v1/cases; docs/api.md).
        #[arg(long)]
        case: PathBuf,
        /// A terminal client name, e.g. terminal-kagacho-1.
        #[arg(long)]
        terminal: String,
        /// The time to evaluate at (RFC 3339); now if absent.
        #[arg(long)]
        at: Option<String>,
    },
    /// Compares two agreement versions over every combination of provider, case class, audience
    /// and consent state; ends with the verdict. Exit 0: no new access; 1: new access; 2: a file
    /// is not a valid agreement.
    Diff {
        /// The version in force (or any earlier one).
        old: PathBuf,
        /// The proposed version.
        new: PathBuf,
    },
    /// Submits an agreement version to a running gateway.
    Apply {
        file: PathBuf,
        #[arg(long, default_value = "https://localhost:8443")]
        gateway: String,
        #[arg(long, default_value = "certs-dev")]
        certs: PathBuf,
        #[arg(long, default_value = "admin-14-pref-admin")]
        client: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Writes entries.jsonl, checkpoint, checkpoints/<size> and verifier-keys to a new folder.
    Export {
        /// A demo's data folder (the SQLite file is <data>/gateway.db).
        #[arg(long, required_unless_present_any = ["database_url", "config"], conflicts_with_all = ["database_url", "config"])]
        data: Option<PathBuf>,
        /// The store's URL instead of --data (may hold credentials; never printed).
        #[arg(long, conflicts_with = "config")]
        database_url: Option<String>,
        /// A server's configuration file: exports from the store its `database_url` names
        /// (SQLite or PostgreSQL), with the `CGC_GATEWAY_*` overrides the server would apply.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Checks an exported folder offline with only public keys; exits non-zero at the first
    /// bad entry or checkpoint, which it names.
    Verify {
        dir: PathBuf,
        /// The trusted verifier key(s): one C2SP verifier key per line, optionally with
        /// from=/to= validity (the format of verifier-keys).
        #[arg(long)]
        key: PathBuf,
        /// A checkpoint seen earlier: the folder must extend it (detects rollbacks and forks).
        #[arg(long)]
        trusted_checkpoint: Option<PathBuf>,
        /// A witness's verifier key file (`witness-verifier-key.txt`): some checkpoint of the
        /// folder must carry that witness's valid cosignature. Repeatable.
        #[arg(long = "witness-key", value_name = "FILE")]
        witness_keys: Vec<PathBuf>,
    },
    /// Checks one receipt offline (a disclosed case's `receipt` member, or
    /// `{index, entry, checkpoint, inclusion_proof}`): the checkpoint's signature, the entry's
    /// place, the inclusion proof.
    VerifyReceipt {
        file: PathBuf,
        /// The trusted verifier key(s), as for `audit verify`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Keeps an auditor's copy of the log in a folder: fetches only the tiles that are new
    /// since the last run, checks them, and checks that the log only grew since the checkpoint
    /// seen last time.
    Mirror {
        /// The gateway, e.g. https://gateway.example:8443
        #[arg(long)]
        from: String,
        #[arg(long)]
        out: PathBuf,
        /// The trusted verifier key(s), as for `audit verify`.
        #[arg(long)]
        key: PathBuf,
        /// The folder with ca/server-ca.pem and clients/<client>.pem + -key.pem.
        #[arg(long, default_value = "certs-dev")]
        certs: PathBuf,
        /// The auditor's client certificate name in that folder.
        #[arg(long, default_value = "auditor-kanagawa-audit")]
        client: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Its exit code is its answer (0 no new access, 1 new access, 2 a bad file), so it runs
    // before the runtime and outside the Ok/Err convention of the other commands.
    if let Command::Policy {
        command: PolicyCommand::Diff { old, new },
    } = &cli.command
    {
        return match policy::diff(old, new) {
            Ok((report, new_access)) => {
                print!("{report}");
                ExitCode::from(u8::from(new_access))
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        };
    }
    let (format, serve_config) = match startup(&cli.command) {
        Ok(found) => found,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, serve_config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The log format, and for `serve` its configuration: read before the first log line, since the
/// file chooses the format. Every other command takes it from `CGC_GATEWAY_LOG_FORMAT`.
fn startup(command: &Command) -> Result<(LogFormat, Option<Config>), String> {
    if let Command::Serve { config } = command {
        let config = Config::load(config).map_err(|e| e.to_string())?;
        return Ok((config.log_format, Some(config)));
    }
    let format = match std::env::var("CGC_GATEWAY_LOG_FORMAT") {
        Ok(v) => v
            .parse()
            .map_err(|e| format!("environment variable CGC_GATEWAY_LOG_FORMAT: {e}"))?,
        Err(_) => LogFormat::default(),
    };
    Ok((format, None))
}

async fn run(command: Command, serve_config: Option<Config>) -> Result<(), String> {
    match command {
        Command::Demo {
            port,
            data,
            certs,
            policies,
            no_feed,
            reset,
            metrics_port,
        } => {
            crate::dev::demo::run(crate::dev::demo::DemoOptions {
                port,
                data,
                certs,
                policies,
                feed: !no_feed,
                reset,
                metrics_port,
            })
            .await
        }
        Command::Serve { config } => {
            let config = match serve_config {
                Some(loaded) => loaded,
                None => Config::load(&config).map_err(|e| e.to_string())?,
            };
            let app = Application::build(&config, Arc::new(SystemClock))
                .await
                .map_err(|e| e.to_string())?;
            app.run_until_stopped().await;
            Ok(())
        }
        Command::DevCerts { out } => {
            crate::dev::pki::write_dev_pki(&out, config::DEV_AUDIT_ORIGIN).map_err(|e| e.to_string())?;
            println!(
                "development PKI written to {} (never use it outside development)",
                out.display()
            );
            Ok(())
        }
        Command::DevToken {
            certs,
            client,
            subject,
            ttl_minutes,
        } => {
            let token = dev_token(
                &certs,
                &client,
                &subject,
                time::Duration::minutes(ttl_minutes),
                SystemClock.now(),
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Policy { command } => run_policy(command).await,
        Command::Audit(command) => audit(command).await,
        Command::Witness(command) => witness::run(command).await,
        Command::Import(args) => import::run(args).await,
    }
}

async fn run_policy(command: PolicyCommand) -> Result<(), String> {
    match command {
        PolicyCommand::Check { path } => match policy::check(&path) {
            Ok(summary) => {
                println!("{summary}");
                Ok(())
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                Err(format!("{} problem(s) found", errors.len()))
            }
        },
        PolicyCommand::Simulate {
            policies,
            case,
            terminal,
            at,
        } => {
            let at = match at {
                Some(t) => time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("--at `{t}`: not an RFC 3339 time: {e}"))?,
                None => SystemClock.now(),
            };
            print!("{}", policy::simulate(&policies, &case, &terminal, at)?);
            Ok(())
        }
        // Handled in `main` (its exit code is the verdict).
        PolicyCommand::Diff { old, new } => match policy::diff(&old, &new)? {
            (report, false) => {
                print!("{report}");
                Ok(())
            }
            (report, true) => {
                print!("{report}");
                Err("new access".into())
            }
        },
        PolicyCommand::Apply {
            file,
            gateway,
            certs,
            client,
        } => {
            let answer = policy::apply(&file, &gateway, &certs, &client, SystemClock.now()).await?;
            println!("{answer}");
            Ok(())
        }
    }
}

async fn audit(command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::Export {
            data,
            database_url,
            config,
            out,
        } => {
            let url = match (database_url, config, data) {
                (Some(url), _, _) => url,
                (None, Some(config), _) => {
                    crate::config::Config::load(&config)
                        .map_err(|e| e.to_string())?
                        .database_url
                }
                (None, None, Some(data)) => format!("sqlite://{}", data.join("gateway.db").display()),
                (None, None, None) => return Err("give --config, --database-url or --data".into()),
            };
            if let Some(path) = url.strip_prefix("sqlite://") {
                // Opening would create an empty database; an export of nothing helps no one.
                if !Path::new(path).exists() {
                    return Err(format!("{path} does not exist"));
                }
            }
            let store = crate::store::open(&url).await.map_err(|e| e.to_string())?;
            let summary = crate::audit::export::export(&store, &out)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "exported {} entries, {} checkpoints and {} verifier keys to {}",
                summary.entries,
                summary.checkpoints,
                summary.keys,
                out.display()
            );
            if summary.pending > 0 {
                println!(
                    "{} newer entries are not yet covered by a checkpoint; the next export will include them",
                    summary.pending
                );
            }
            Ok(())
        }
        AuditCommand::Verify {
            dir,
            key,
            trusted_checkpoint,
            witness_keys,
        } => {
            let witnesses = witness_keys
                .iter()
                .map(|path| {
                    let text =
                        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    crate::audit::cosignature::WitnessVerifier::parse(text.trim())
                        .map_err(|e| format!("{}: {e}", path.display()))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let summary =
                crate::audit::verify::verify_dir_witnessed(&dir, &key, trusted_checkpoint.as_deref(), &witnesses)
                    .map_err(|finding| format!("verification FAILED: {finding}"))?;
            print!("{summary}");
            Ok(())
        }
        AuditCommand::Mirror {
            from,
            out,
            key,
            certs,
            client,
        } => {
            let trusted = trusted_keys(&key)?;
            let addr = policy::gateway_addr(&from)?;
            let http =
                crate::client::GatewayClient::from_dev_certs(addr, &certs, &client).map_err(|e| e.to_string())?;
            let summary = crate::audit::mirror::mirror(&http, &out, &trusted)
                .await
                .map_err(|e| format!("mirror FAILED: {e}"))?;
            print!("{summary}");
            Ok(())
        }
        AuditCommand::VerifyReceipt { file, key } => {
            let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
            let trusted = trusted_keys(&key)?;
            let verified = crate::audit::receipt::verify_receipt(&read(&file)?, &trusted)
                .map_err(|e| format!("verification FAILED: {e}"))?;
            print!("{verified}");
            Ok(())
        }
    }
}

/// The auditor's trusted keys from a key file (the grammar of `verifier-keys`).
fn trusted_keys(path: &Path) -> Result<Vec<crate::audit::verify::KeyLine>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    crate::audit::verify::parse_key_lines(&text).map_err(|e| e.to_string())
}

/// A development token for `client` of the dev PKI at `certs`.
pub fn dev_token(
    certs: &Path,
    client: &str,
    subject: &str,
    ttl: time::Duration,
    now: time::OffsetDateTime,
) -> Result<String, String> {
    let audience = if client.starts_with("terminal-") {
        TokenAudience::Officer
    } else if client.starts_with("admin-") {
        TokenAudience::Admin
    } else {
        return Err(format!(
            "{client}: tokens are for terminals (terminal-…) and administrators (admin-…)"
        ));
    };
    let cert_path = certs.join("clients").join(format!("{client}.pem"));
    let cert = CertificateDer::from_pem_file(&cert_path).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let key_path = certs.join("token-issuer").join("issuer-key.pem");
    let key = std::fs::read(&key_path).map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
    let settings = dev_token_settings();
    issue_token(&key, &dev_claims(&settings, audience, subject, &cert, now, ttl))
}

pub fn dev_token_settings() -> TokenSettings {
    TokenSettings {
        issuer: config::DEV_TOKEN_ISSUER.into(),
        officer_audience: config::OFFICER_AUDIENCE.into(),
        admin_audience: config::ADMIN_AUDIENCE.into(),
        leeway_seconds: 30,
    }
}
