//! Administrators' revocations of terminals and officers (SPEC §2–3): recorded in the audit log
//! before they take effect, kept in the store, enforced on every request, and cutting what is
//! open at once — the terminal's connections, the officer's streams. A service: it owns its
//! errors and knows nothing of HTTP.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::agreements::Administrator;
use crate::audit::{AuditError, AuditLog, Event};
use crate::clock::SharedClock;
use crate::identity::Principal;
use crate::policy::PolicyWorld;
use crate::registry::codes::PrefectureCode;
use crate::store::{RevocationRow, SharedStore, StoreError};
use crate::tls::serve::Connections;

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

/// The revoked terminals (principal URNs) and officers (token subjects) in force, and the one
/// way to add to them.
pub struct Revocations {
    revoked: RwLock<HashSet<(String, String)>>,
    /// Bumped on every officer revocation: open streams re-check their officer.
    officers_epoch: watch::Sender<u64>,
    store: SharedStore,
    audit: AuditLog,
    clock: SharedClock,
    connections: Arc<Connections>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations").finish_non_exhaustive()
    }
}

impl Revocations {
    /// The revocations kept in `store`.
    pub async fn load(
        store: SharedStore,
        audit: AuditLog,
        clock: SharedClock,
        connections: Arc<Connections>,
    ) -> Result<Self, StoreError> {
        let rows = store.revocations().await?;
        Ok(Self {
            revoked: RwLock::new(rows.into_iter().map(|r| (r.kind, r.subject)).collect()),
            officers_epoch: watch::channel(0).0,
            store,
            audit,
            clock,
            connections,
        })
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

    /// Takes in the revocations other gateway instances stored: each new one takes effect as
    /// if made here (a terminal's connections cut, an officer's streams ended).
    pub async fn reload(&self) -> Result<(), StoreError> {
        for row in self.store.revocations().await? {
            if self.contains(&row.kind, &row.subject) {
                continue;
            }
            self.insert(&row.kind, row.subject.clone());
            if row.kind == "terminal" {
                let cut = self.connections.cut_where(|p| p.principal.to_string() == row.subject);
                tracing::info!(cut, "a terminal revoked on another instance");
            }
        }
        Ok(())
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
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The administrator may not revoke this; the reason is safe to show.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("no such station")]
    NotFound,
    /// The audit log could not record it: nothing was revoked (fail closed; retry).
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Revocations {
    /// Revokes `target` on behalf of the administrator of a prefecture whose police force is in
    /// the registry `world`: terminals of that force's stations; officers of the police identity
    /// provider. An administrator certificate for any other jurisdiction (a city, a prefecture
    /// without a force here) revokes nothing, however valid it is.
    pub async fn revoke(
        &self,
        world: &PolicyWorld,
        caller: &Administrator,
        target: Target,
    ) -> Result<Revoked, RevocationError> {
        let prefecture = revoking_prefecture(world, caller)?;
        check_scope(world, prefecture, &target)?;
        let (kind, subject) = (target.kind(), target.subject());
        if self.contains(kind, &subject) {
            return Ok(Revoked {
                kind,
                target: subject,
                newly_revoked: false,
                connections_cut: 0,
                audit_index: None,
            });
        }
        // Recorded first: a revocation that the log cannot hold does not happen (the admin
        // retries).
        let receipt = self
            .audit
            .record_one(Event::Revocation {
                actor: caller.actor.clone(),
                target_kind: kind,
                target: subject.clone(),
            })
            .await?;
        let row = RevocationRow {
            kind: kind.to_owned(),
            subject: subject.clone(),
            revoked_by: caller.actor.principal.clone(),
            revoked_at: self.clock.now(),
        };
        let newly_revoked = self.store.add_revocation(&row).await?;
        self.insert(kind, subject.clone());
        let connections_cut = match &target {
            Target::Terminal { .. } => self.connections.cut_where(|p| p.principal.to_string() == subject),
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
}

/// One revocation as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Revocation {
    /// `terminal` or `officer`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub station_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_no: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub officer_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: time::OffsetDateTime,
    /// The administrator's principal URN.
    pub revoked_by: String,
}

impl Revocations {
    /// Every revocation an administrator may make, oldest first, read from the store (so that
    /// every instance answers alike): the terminals of its prefecture's police force, and
    /// officers. Anyone who may not revoke is refused, as for a revocation.
    pub async fn list(&self, world: &PolicyWorld, caller: &Administrator) -> Result<Vec<Revocation>, RevocationError> {
        let prefecture = revoking_prefecture(world, caller)?;
        let own_station = |station_id: &str| {
            world
                .registry
                .unit(station_id)
                .and_then(|u| world.registry.force(&u.force))
                .is_some_and(|f| f.prefecture == prefecture)
        };
        let rows = self.store.revocations().await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let (station_id, terminal_no, officer_id) = match row.kind.as_str() {
                    "terminal" => match Principal::parse_urn(&row.subject) {
                        Ok(Principal::Terminal {
                            station_id,
                            terminal_no,
                        }) if own_station(&station_id) => (Some(station_id), Some(terminal_no), None),
                        _ => return None,
                    },
                    "officer" => (None, None, Some(row.subject)),
                    _ => return None,
                };
                Some(Revocation {
                    kind: row.kind,
                    station_id,
                    terminal_no,
                    officer_id,
                    revoked_at: row.revoked_at,
                    revoked_by: row.revoked_by,
                })
            })
            .collect())
    }
}

/// Whether the administrator may revoke (and list revocations) at all.
pub fn may_revoke(world: &PolicyWorld, caller: &Administrator) -> bool {
    revoking_prefecture(world, caller).is_ok()
}

/// The prefecture of an administrator who may revoke: a prefecture's, whose police force is in
/// the registry `world`.
fn revoking_prefecture(world: &PolicyWorld, caller: &Administrator) -> Result<PrefectureCode, RevocationError> {
    let Ok(prefecture) = PrefectureCode::parse(&caller.jurisdiction) else {
        return Err(RevocationError::Forbidden(
            "only a prefecture's administrator revokes terminals and officers".into(),
        ));
    };
    force_here(world, prefecture)?;
    Ok(prefecture)
}

/// Officers carry no prefecture in their tokens: the scope is the administrator's, who must
/// answer for a police force this gateway serves.
fn force_here(world: &PolicyWorld, prefecture: PrefectureCode) -> Result<(), RevocationError> {
    if world.registry.force_of_prefecture(prefecture).is_none() {
        return Err(RevocationError::Forbidden(
            "the administrator's prefecture has no police force in the registry".into(),
        ));
    }
    Ok(())
}

/// Whether the administrator of `prefecture` may revoke `target` under the registry `world`.
fn check_scope(world: &PolicyWorld, prefecture: PrefectureCode, target: &Target) -> Result<(), RevocationError> {
    force_here(world, prefecture)?;
    if let Target::Terminal { station_id, .. } = target {
        let unit = world.registry.unit(station_id).ok_or(RevocationError::NotFound)?;
        let force = world.registry.force(&unit.force).ok_or(RevocationError::NotFound)?;
        if force.prefecture != prefecture {
            return Err(RevocationError::Forbidden(
                "the station belongs to another prefecture's police".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn world() -> PolicyWorld {
        PolicyWorld::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap()
    }

    fn officer() -> Target {
        Target::Officer {
            subject: "officer-1".into(),
        }
    }

    fn terminal(station_id: &str) -> Target {
        Target::Terminal {
            station_id: station_id.into(),
            terminal_no: 1,
        }
    }

    #[test]
    fn a_prefecture_without_a_police_force_in_the_registry_revokes_nothing() {
        let tokyo = PrefectureCode::parse("13").unwrap();
        for target in [officer(), terminal("kagacho"), terminal("no-such-station")] {
            assert!(
                matches!(
                    check_scope(&world(), tokyo, &target),
                    Err(RevocationError::Forbidden(_))
                ),
                "{target:?}"
            );
        }
    }

    #[test]
    fn the_prefecture_of_the_registrys_force_revokes_its_officers_and_terminals() {
        let kanagawa = PrefectureCode::parse("14").unwrap();
        assert!(check_scope(&world(), kanagawa, &officer()).is_ok());
        assert!(check_scope(&world(), kanagawa, &terminal("kagacho")).is_ok());
        assert!(matches!(
            check_scope(&world(), kanagawa, &terminal("no-such-station")),
            Err(RevocationError::NotFound)
        ));
    }
}
