//! Case transfers between centers (転出・転入): the owning center requests one, the receiving
//! center accepts or declines it. On acceptance the case continues under the receiving center:
//! its current version is stored as the receiving center's (same case id and version), the old
//! case is moved (no longer current; its old center's pushes are refused), and the live hub
//! learns both (here directly, on other instances through the change log), so terminals see the
//! new owner under the agreement and consent state of the receiving center's operator. Every
//! step is an audit entry, durable before the step takes effect, and a `transfer` event on both
//! centers' streams; a step the store then refuses (a race lost) gets a `refused` entry after it.

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Centers;
use crate::audit::{Actor, AuditError, AuditLog, CaseRef, Event};
use crate::cases::CurrentCase;
use crate::cases::record::CaseId;
use crate::clock::SharedClock;
use crate::live::{Change, Hub};
use crate::registry::Registry;
use crate::store::{NewCase, SharedStore, StoreError, TransferDecided, TransferRequested, TransferRow};

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The calling center has no current case with that id.
    #[error("no such case")]
    NoSuchCase,
    /// `to_center` is not a center of the registry, or is the case's own center.
    #[error("{0}")]
    BadCenter(&'static str),
    /// No transfer has that id, or the caller is neither of its centers.
    #[error("no such transfer")]
    NotFound,
    /// Only the receiving center decides.
    #[error("only the receiving center accepts or declines a transfer")]
    NotReceiver,
    /// The transfer is not pending (its state), or another one of the case is.
    #[error("{detail}")]
    Conflict {
        detail: &'static str,
        state: Option<String>,
    },
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A transfer as the centers read it.
#[derive(Debug, Clone, Serialize)]
pub struct TransferView {
    pub id: i64,
    /// The case's reference under the center it leaves.
    #[serde(rename = "ref")]
    pub reference: String,
    pub case_id: String,
    pub from_center: String,
    pub to_center: String,
    /// `pending`, `accepted` or `declined`.
    pub state: String,
    /// For the center reading it: `outgoing` (its own case) or `incoming`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    pub requested_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// The entry of this step (absent in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_index: Option<u64>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl TransferView {
    fn of(row: &TransferRow, reader: Option<&str>, audit_index: Option<u64>) -> Self {
        Self {
            id: row.id,
            reference: format!("{}:{}", row.center_id, row.case_id),
            case_id: row.case_id.clone(),
            from_center: row.center_id.clone(),
            to_center: row.to_center.clone(),
            state: row.state.clone(),
            direction: reader.map(|c| if c == row.center_id { "outgoing" } else { "incoming" }),
            requested_at: rfc3339(row.requested_at),
            decided_at: row.decided_at.map(rfc3339),
            audit_index,
        }
    }
}

/// The transfer service.
pub struct Transfers {
    store: SharedStore,
    audit: AuditLog,
    hub: Arc<Hub>,
    clock: SharedClock,
    centers: Arc<Centers>,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers").finish_non_exhaustive()
    }
}

impl Transfers {
    pub fn new(store: SharedStore, audit: AuditLog, hub: Arc<Hub>, clock: SharedClock, centers: Arc<Centers>) -> Self {
        Self {
            store,
            audit,
            hub,
            clock,
            centers,
        }
    }

    /// `center_id` asks `to_center` to take over its case `case_id`.
    pub async fn request(
        &self,
        registry: &Registry,
        actor: Actor,
        center_id: &str,
        case_id: &str,
        to_center: &str,
    ) -> Result<TransferView, TransferError> {
        let case = self.hub.case(center_id, case_id).ok_or(TransferError::NoSuchCase)?;
        if registry.center(to_center).is_none() {
            return Err(TransferError::BadCenter("is not a center of the registry"));
        }
        if to_center == center_id {
            return Err(TransferError::BadCenter("is the case's own center"));
        }
        if self.hub.case(to_center, case_id).is_some() {
            return Err(TransferError::Conflict {
                detail: "the receiving center has a case with this id",
                state: None,
            });
        }
        if self
            .store
            .pending_transfers(center_id)
            .await?
            .iter()
            .any(|t| t.center_id == center_id && t.case_id == case_id)
        {
            return Err(pending_already());
        }
        let step = Event::Transfer {
            actor,
            step: "requested",
            transfer_id: None,
            case: case_ref(&case),
            to_center: to_center.to_owned(),
            refused_entry: None,
            reason: None,
        };
        let receipt = self.audit.record_one(step.clone()).await?;
        let now = self.clock.now();
        let mut row = TransferRow {
            id: 0,
            center_id: center_id.to_owned(),
            case_id: case_id.to_owned(),
            to_center: to_center.to_owned(),
            state: "pending".into(),
            requested_at: now,
            decided_at: None,
        };
        row.id = match self.store.request_transfer(&row).await? {
            TransferRequested::Requested(id) => id,
            TransferRequested::AlreadyPending(_) => {
                return Err(self
                    .refused(step, receipt.audit_index, "already_pending", pending_already())
                    .await);
            }
            TransferRequested::NoSuchCase => {
                return Err(self
                    .refused(step, receipt.audit_index, "no_such_case", TransferError::NoSuchCase)
                    .await);
            }
        };
        let view = TransferView::of(&row, None, Some(receipt.audit_index));
        self.tell(&view).await;
        Ok(view)
    }

    /// The pending transfers from or to `center_id`.
    pub async fn pending(&self, center_id: &str) -> Result<Vec<TransferView>, TransferError> {
        Ok(self
            .store
            .pending_transfers(center_id)
            .await?
            .iter()
            .map(|t| TransferView::of(t, Some(center_id), None))
            .collect())
    }

    /// The receiving center `center_id` accepts (or declines) transfer `id`.
    pub async fn decide(
        &self,
        actor: Actor,
        center_id: &str,
        id: i64,
        accept: bool,
    ) -> Result<TransferView, TransferError> {
        let mut row = self.store.transfer(id).await?.ok_or(TransferError::NotFound)?;
        if row.to_center != center_id {
            return Err(if row.center_id == center_id {
                TransferError::NotReceiver
            } else {
                TransferError::NotFound
            });
        }
        if row.state != "pending" {
            return Err(not_pending(&row.state));
        }
        let case = self
            .hub
            .case(&row.center_id, &row.case_id)
            .ok_or(TransferError::Conflict {
                detail: "the case is no longer current at its center",
                state: None,
            })?;
        let step = Event::Transfer {
            actor,
            step: if accept { "accepted" } else { "declined" },
            transfer_id: Some(id),
            case: case_ref(&case),
            to_center: row.to_center.clone(),
            refused_entry: None,
            reason: None,
        };
        let receipt = self.audit.record_one(step.clone()).await?;
        let now = self.clock.now();
        let copy = if accept {
            let mut record = case.record.clone();
            record.center_id = CaseId::parse(&row.to_center)
                .map_err(|_| StoreError::Corrupt("a transfer names an invalid center id"))?;
            let body = serde_json::to_string(&record).map_err(|_| StoreError::Corrupt("a case cannot be written"))?;
            Some((record, body))
        } else {
            None
        };
        let decided = self
            .store
            .decide_transfer(
                id,
                copy.as_ref().map(|(record, body)| NewCase {
                    center_id: &row.to_center,
                    case_id: &row.case_id,
                    version: record.version,
                    body,
                    received_at: now,
                }),
                now,
            )
            .await?;
        match decided {
            TransferDecided::Done { stored } => {
                if let (Some(moved), Some((record, _))) = (stored, copy) {
                    let to = (row.to_center.clone(), row.case_id.clone());
                    self.hub.apply(Change::Moved {
                        from: (row.center_id.clone(), row.case_id.clone()),
                        to,
                        change: moved.old_change,
                    });
                    self.hub.apply(Change::Case(Arc::new(CurrentCase {
                        record,
                        seq: moved.seq,
                        change: moved.change,
                    })));
                }
            }
            TransferDecided::NotPending => {
                return Err(self
                    .refused(step, receipt.audit_index, "not_pending", not_pending("decided"))
                    .await);
            }
            TransferDecided::CaseChanged => {
                let conflict = TransferError::Conflict {
                    detail: "the case changed meanwhile; accept again",
                    state: Some("pending".into()),
                };
                return Err(self.refused(step, receipt.audit_index, "case_changed", conflict).await);
            }
            TransferDecided::IdTaken => {
                let conflict = TransferError::Conflict {
                    detail: "the receiving center has a case with this id",
                    state: Some("pending".into()),
                };
                return Err(self.refused(step, receipt.audit_index, "id_taken", conflict).await);
            }
        }
        row.state = if accept { "accepted" } else { "declined" }.into();
        row.decided_at = Some(now);
        let view = TransferView::of(&row, None, Some(receipt.audit_index));
        self.tell(&view).await;
        Ok(view)
    }

    /// The store refused a step whose entry (`entry`, of event `step`) is durable already: a
    /// `refused` entry says so, so that the log does not claim a step that never took effect.
    /// The refusal is the answer either way; if its entry cannot be written, that is logged.
    async fn refused(&self, step: Event, entry: u64, reason: &'static str, refusal: TransferError) -> TransferError {
        let Event::Transfer {
            actor,
            transfer_id,
            case,
            to_center,
            ..
        } = step
        else {
            return refusal;
        };
        let event = Event::Transfer {
            actor,
            step: "refused",
            transfer_id,
            case,
            to_center,
            refused_entry: Some(entry),
            reason: Some(reason),
        };
        if let Err(e) = self.audit.record_one(event).await {
            tracing::error!(error = %e, entry, "a refused transfer step's entry stands without its refusal");
        }
        refusal
    }

    /// A `transfer` event on both centers' streams.
    async fn tell(&self, view: &TransferView) {
        let body = serde_json::to_string(view).unwrap_or_else(|_| "{}".into());
        for center in [&view.from_center, &view.to_center] {
            if let Err(e) = self.centers.append(center, "transfer", body.clone()).await {
                tracing::error!(error = %e, "could not tell a center of a transfer step");
            }
        }
    }
}

fn case_ref(case: &CurrentCase) -> CaseRef {
    CaseRef {
        center_id: case.record.center_id.to_string(),
        case_id: case.record.case_id.to_string(),
        version: case.record.version,
    }
}

fn pending_already() -> TransferError {
    TransferError::Conflict {
        detail: "a transfer of this case is already pending",
        state: Some("pending".into()),
    }
}

fn not_pending(state: &str) -> TransferError {
    TransferError::Conflict {
        detail: "the transfer is no longer pending",
        state: Some(state.to_owned()),
    }
}
