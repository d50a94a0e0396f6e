//! Assembles the gateway: configuration in, a running server out. Tests build it on port 0
//! with a throwaway database and talk to it over real TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::{AuditLog, LogKey};
use crate::auth::{TokenSettings, TokenVerifier};
use crate::cases::CurrentCase;
use crate::cases::validate::parse_recorded_case_bytes;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::limits::{BulkWatch, RateLimiter, RefusalCoalescer};
use crate::live::{Hub, HubSettings};
use crate::store;
use crate::tls::TlsState;
use crate::tls::serve::{Connections, serve};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("{0}")]
    Agreements(#[from] crate::agreements::AgreementError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

pub use crate::http::context::{AppContext, Ctx};

/// A running gateway.
pub struct Application {
    addr: SocketAddr,
    /// Where `/metrics` is served, if anywhere.
    metrics_addr: Option<SocketAddr>,
    metrics: Option<JoinHandle<()>>,
    ctx: Ctx,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    refusal_flush: JoinHandle<()>,
}

impl Application {
    pub async fn build(config: &Config, clock: SharedClock) -> Result<Self, AppError> {
        let hosts = crate::http::host::Hosts::new(&config.hosts).map_err(AppError::Other)?;
        let tls = Arc::new(TlsState::load(config.tls_files())?);
        let store = store::open_with(&config.database_url, config.notify_changes).await?;
        let mut cases = Vec::new();
        // Read before anything is loaded: changes committed meanwhile are applied again, never
        // missed.
        let change_head = store.latest_change().await?;
        for stored in store.current_cases().await? {
            match parse_recorded_case_bytes(stored.body.as_bytes()) {
                Ok((_, record)) => cases.push(Arc::new(CurrentCase {
                    record,
                    seq: stored.seq,
                    change: stored.change,
                })),
                // Still stored and never lost; it just cannot be shown until the rules accept it.
                Err(_) => tracing::error!(seq = stored.seq, "a stored case no longer validates; it is not served"),
            }
        }
        let key = LogKey::from_pem_file(&config.audit.origin, &config.audit.signing_key).map_err(AppError::Other)?;
        let audit = AuditLog::open(store.clone(), key, config.audit.origin.clone(), clock.clone()).await?;
        // Agreements and consents live in the store once imported; the files seed it once.
        let world = crate::agreements::load_or_seed(&store, &audit, &config.policies, clock.now()).await?;
        let issuer_pem = std::fs::read(&config.tokens.public_key)
            .map_err(|e| AppError::Other(format!("cannot read {}: {e}", config.tokens.public_key.display())))?;
        let tokens = TokenVerifier::from_public_pem(
            &issuer_pem,
            TokenSettings {
                issuer: config.tokens.issuer.clone(),
                officer_audience: config.tokens.officer_audience.clone(),
                admin_audience: config.tokens.admin_audience.clone(),
                leeway_seconds: config.tokens.leeway_seconds,
            },
        )
        .map_err(AppError::Other)?;
        let world = Arc::new(world);
        let live = Hub::start(clock.clone(), world.clone(), cases, change_head, HubSettings::default());
        // Transferred cases: their old references name them under their new centers.
        for (center_id, case_id, to) in store.moved_cases().await? {
            live.apply(crate::live::Change::Moved {
                from: (center_id, case_id.clone()),
                to: (to, case_id),
                change: 0,
            });
        }
        let agreements = Arc::new(crate::agreements::Agreements::new(
            store.clone(),
            audit.clone(),
            clock.clone(),
            live.clone(),
            world,
        ));
        // Never zero: a zero interval would spin.
        let change_poll = std::time::Duration::from_millis(config.change_poll_ms.max(10));
        let centers = crate::centers::Centers::new(store.clone(), audit.clone(), clock.clone(), change_poll * 2);
        let transfers = crate::centers::transfers::Transfers::new(
            store.clone(),
            audit.clone(),
            live.clone(),
            clock.clone(),
            centers.clone(),
        );
        let disclosures = crate::views::Disclosures::new(
            audit.clone(),
            live.clone(),
            BulkWatch::new(
                time::Duration::minutes(config.limits.bulk_window_minutes),
                config.limits.bulk_views,
            ),
            clock.clone(),
            centers.clone(),
        );
        let connections = Arc::new(Connections::new(config.connection_limits()));
        let revocations =
            crate::revocations::Revocations::load(store.clone(), audit.clone(), clock.clone(), connections.clone())
                .await?;
        let ingest = crate::ingest::Ingest::new(store.clone(), live.clone(), clock.clone(), config.limits.json());
        let access = Arc::new(crate::access::Access::new(
            revocations,
            RateLimiter::new(config.limits.burst, config.limits.per_minute),
            RateLimiter::new(config.limits.center_burst, config.limits.center_per_minute),
            RateLimiter::new(config.limits.burst, config.limits.per_minute),
            RefusalCoalescer::new(
                time::Duration::seconds(config.limits.refusal_window_seconds),
                config.limits.flood_refusals,
            ),
            audit.clone(),
            clock.clone(),
        ));
        // Every instance follows the change log: with other instances it is how their writes
        // arrive; alone, it tells the hub how far the log is applied, which makes stream cursors
        // resumable after a restart.
        let shared = store.is_shared();
        let follower = Arc::new(crate::follow::Follower::new(
            store.clone(),
            live.clone(),
            agreements.clone(),
            access.clone(),
            centers.clone(),
            change_poll,
            change_head,
        ));
        let dev_token_issuer = match &config.dev_token_issuer_key {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| AppError::Other(format!("cannot read {}: {e}", path.display())))?)
            }
            None => None,
        };
        let ctx = Arc::new(AppContext {
            clock,
            store,
            agreements,
            audit,
            tokens,
            tls: tls.clone(),
            connections,
            access,
            follower: shared.then(|| follower.clone()),
            ingest,
            batch_body_bytes: config.limits.batch_body_bytes,
            requests: config.limits.requests(),
            disclosures,
            centers,
            transfers,
            live,
            dev_token_issuer,
            terminal_idle_lock_minutes: config.terminal.idle_lock_minutes,
        });
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| AppError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AppError::Listen {
            addr: config.listen,
            source,
        })?;
        spawn_reload_on_hangup(ctx.clone());
        let router =
            crate::http::router(ctx.clone(), hosts).layer(axum::middleware::from_fn(crate::metrics::track_request));
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(follower.run(rx.clone()));
        let (metrics_addr, metrics) = match config.metrics_listen {
            Some(at) => {
                let listener = TcpListener::bind(at)
                    .await
                    .map_err(|source| AppError::Listen { addr: at, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| AppError::Listen { addr: at, source })?;
                tracing::info!(addr = %bound, "metrics listening (plain HTTP: keep it off public networks)");
                let from = ctx.clone();
                let gauges: crate::metrics::GaugeSource = Arc::new(move || crate::metrics::Gauges {
                    audit_size: from.audit.size(),
                    checkpoint: from.audit.latest_checkpoint(),
                    cases: from.live.case_count(),
                    connections: from.connections.len(),
                });
                let task = tokio::spawn(crate::metrics::serve(listener, gauges, rx.clone()));
                (Some(bound), Some(task))
            }
            None => (None, None),
        };
        let witnesses = config
            .audit
            .witnesses
            .iter()
            .map(|w| {
                let verifier = crate::audit::cosignature::WitnessVerifier::parse(&w.verifier_key)
                    .map_err(|e| AppError::Other(format!("witness verifier key: {e}")))?;
                crate::witness::WitnessEndpoint::new(&w.url, verifier)
                    .map_err(|e| AppError::Other(format!("witness: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::witness::cosigner::spawn_cosigners(ctx.audit.clone(), witnesses, rx.clone());
        let refusal_flush = {
            let (ctx, rx) = (ctx.clone(), rx.clone());
            tokio::spawn(async move { ctx.access.flush_refusals(rx).await })
        };
        let task = tokio::spawn(serve(
            listener,
            tls,
            ctx.connections.clone(),
            router,
            crate::http::request_timed_out,
            rx,
        ));
        tracing::info!(%addr, cases = ctx.live.case_count(), audit_entries = ctx.audit.size(), "gateway listening");
        Ok(Self {
            addr,
            metrics_addr,
            metrics,
            ctx,
            shutdown,
            task,
            refusal_flush,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the metrics listener, if `metrics_listen` opened one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn context(&self) -> &Ctx {
        &self.ctx
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await;
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(metrics) = self.metrics {
            let _ = metrics.await;
        }
        // Records the counts of refusal windows still open.
        let _ = self.refusal_flush.await;
    }
}

/// `kill -HUP` reloads certificates and CRLs.
fn spawn_reload_on_hangup(ctx: Ctx) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            if let Err(e) = ctx.reload_tls() {
                tracing::error!(error = %e, "TLS reload failed; the previous material stays in force");
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
