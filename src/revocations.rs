//! Administrators' revocations of terminals and officers (SPEC §2–3): recorded in the audit log
//! before they take effect, kept in the store, enforced on every request, and cutting what is
//! open at once — the terminal's connections, the officer's streams.

use std::collections::HashSet;
use std::sync::RwLock;

use tokio::sync::watch;

use crate::app::AppContext;
use crate::audit::Event;
use crate::http::error::ApiError;
use crate::http::extract::AdminCaller;
use crate::identity::Principal;
use crate::registry::codes::PrefectureCode;
use crate::store::{RevocationRow, StoreError};

/// What an administrator revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Terminal { station_id: String, terminal_no: u32 },
    Officer { subject: String },
}

impl Target {
    fn kind(&self) -> &'static str {
        match self {
            Target::Terminal { .. } => "terminal",
            Target::Officer { .. } => "officer",
        }
    }

    fn subject(&self) -> String {
        match self {
            Target::Terminal {
                station_id,
                terminal_no,
            } => Principal::Terminal {
                station_id: station_id.clone(),
                terminal_no: *terminal_no,
            }
            .to_string(),
            Target::Officer { subject } => subject.clone(),
        }
    }
}

/// The revoked terminals (principal URNs) and officers (token subjects) in force.
#[derive(Debug)]
pub struct Revocations {
    revoked: RwLock<HashSet<(String, String)>>,
    /// Bumped on every officer revocation: open streams re-check their officer.
    officers_epoch: watch::Sender<u64>,
}

impl Revocations {
    pub fn from_rows(rows: Vec<RevocationRow>) -> Self {
        Self {
            revoked: RwLock::new(rows.into_iter().map(|r| (r.kind, r.subject)).collect()),
            officers_epoch: watch::channel(0).0,
        }
    }

    pub fn terminal_revoked(&self, principal: &Principal) -> bool {
        matches!(principal, Principal::Terminal { .. }) && self.contains("terminal", &principal.to_string())
    }

    pub fn officer_revoked(&self, subject: &str) -> bool {
        self.contains("officer", subject)
    }

    /// Changes whenever an officer is revoked.
    pub fn watch_officers(&self) -> watch::Receiver<u64> {
        self.officers_epoch.subscribe()
    }

    fn contains(&self, kind: &str, subject: &str) -> bool {
        let set = match self.revoked.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        set.contains(&(kind.to_owned(), subject.to_owned()))
    }

    fn insert(&self, kind: &str, subject: String) {
        match self.revoked.write() {
            Ok(mut g) => g.insert((kind.to_owned(), subject)),
            Err(poisoned) => poisoned.into_inner().insert((kind.to_owned(), subject)),
        };
        if kind == "officer" {
            self.officers_epoch.send_modify(|e| *e = e.wrapping_add(1));
        }
    }
}

/// The outcome of a revocation, as the admin API answers it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Revoked {
    pub kind: &'static str,
    pub target: String,
    /// False if it was already revoked (the call is idempotent).
    pub newly_revoked: bool,
    /// Open connections cut at once (terminal revocations).
    pub connections_cut: usize,
    pub audit_index: Option<u64>,
}

/// Why a revocation was not carried out.
#[derive(Debug)]
pub enum Refusal {
    Forbidden(String),
    NotFound,
    Failed(ApiError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Failed(e.into())
    }
}

/// Revokes `target` on behalf of a prefectural administrator: terminals of their own force's
/// stations; officers of the police identity provider (prefecture administrators only).
pub async fn revoke(ctx: &AppContext, caller: &AdminCaller, target: Target) -> Result<Revoked, Refusal> {
    let Ok(prefecture) = PrefectureCode::parse(&caller.jurisdiction) else {
        return Err(Refusal::Forbidden(
            "only a prefecture's administrator revokes terminals and officers".into(),
        ));
    };
    if let Target::Terminal { station_id, .. } = &target {
        let world = ctx.policy();
        let unit = world.registry.unit(station_id).ok_or(Refusal::NotFound)?;
        let force = world.registry.force(&unit.force).ok_or(Refusal::NotFound)?;
        if force.prefecture != prefecture {
            return Err(Refusal::Forbidden(
                "the station belongs to another prefecture's police".into(),
            ));
        }
    }
    let (kind, subject) = (target.kind(), target.subject());
    if ctx.revocations.contains(kind, &subject) {
        return Ok(Revoked {
            kind,
            target: subject,
            newly_revoked: false,
            connections_cut: 0,
            audit_index: None,
        });
    }
    // Recorded first: a revocation that the log cannot hold does not happen (the admin retries).
    let receipt = ctx
        .audit
        .record_one(Event::Revocation {
            actor: caller.actor(),
            target_kind: kind,
            target: subject.clone(),
        })
        .await
        .map_err(|e| Refusal::Failed(e.into()))?;
    let row = RevocationRow {
        kind: kind.to_owned(),
        subject: subject.clone(),
        revoked_by: caller.actor().principal,
        revoked_at: ctx.clock.now(),
    };
    let newly_revoked = ctx.store.add_revocation(&row).await?;
    ctx.revocations.insert(kind, subject.clone());
    let connections_cut = match &target {
        Target::Terminal { .. } => ctx.connections.cut_where(|p| p.principal.to_string() == subject),
        Target::Officer { .. } => 0,
    };
    tracing::info!(kind, connections_cut, "revoked by an administrator");
    Ok(Revoked {
        kind,
        target: subject,
        newly_revoked,
        connections_cut,
        audit_index: Some(receipt.audit_index),
    })
}
