//! What a terminal is shown of a case, by any channel (list, detail, search, stream): the
//! decision, the projection, and the disclosure entry that must be durable before anything
//! leaves. One place, so that no channel can skip the audit or widen a view.

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{Actor, AuditError, AuditLog, CaseRef, Channel, ClauseRef, Event, Receipt};
use crate::cases::CurrentCase;
use crate::cases::record::CaseRecord;
use crate::policy::{Decision, FieldSet, PolicyWorld, evaluate, project};

/// One case as a terminal sees it.
#[derive(Debug, Serialize)]
pub struct CaseView {
    /// `<center_id>:<case_id>`: case ids are unique per center only.
    #[serde(rename = "ref")]
    pub reference: String,
    pub center_id: String,
    pub case_id: String,
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The allowed fields, nothing else.
    pub case: serde_json::Map<String, serde_json::Value>,
    pub receipt: ViewReceipt,
}

/// The proof that this disclosure is in the audit log, checkable offline with the log's
/// verifier key (`cgc-gateway audit verify-receipt`, docs/audit-log.md §7).
#[derive(Debug, Clone, Serialize)]
pub struct ViewReceipt {
    pub audit_index: u64,
    /// The agreement clause that allowed this disclosure.
    pub clause: String,
    /// The audit entry's line, byte for byte.
    pub entry: String,
    /// The signed checkpoint of the commit that made the entry durable.
    pub checkpoint: String,
    /// The entry's inclusion proof in that checkpoint's tree (base64 hashes).
    pub inclusion_proof: Vec<String>,
}

impl ViewReceipt {
    pub fn new(receipt: Receipt, clause: String) -> Self {
        Self {
            audit_index: receipt.audit_index,
            clause,
            entry: receipt.entry,
            checkpoint: receipt.checkpoint,
            inclusion_proof: receipt.inclusion_proof,
        }
    }
}

/// `<center_id>:<case_id>`.
pub fn case_ref(record: &CaseRecord) -> String {
    format!("{}:{}", record.center_id, record.case_id)
}

/// A case a unit may see, before it is recorded.
#[derive(Debug, Clone)]
pub struct Visible {
    pub case: Arc<CurrentCase>,
    pub decision: Decision,
}

pub fn visible(world: &PolicyWorld, case: Arc<CurrentCase>, unit: &str, now: OffsetDateTime) -> Option<Visible> {
    evaluate(world, &case.record, unit, now).map(|decision| Visible { case, decision })
}

/// The audit entry for disclosing `disclosed` (allowed ∩ present) of `case` to `actor`.
pub fn disclosure_event(
    actor: Actor,
    station: &str,
    case: &CaseRecord,
    decision: &Decision,
    disclosed: FieldSet,
    channel: Channel,
) -> Event {
    Event::Disclosure {
        actor,
        station: station.to_owned(),
        case: CaseRef {
            center_id: case.center_id.to_string(),
            case_id: case.case_id.to_string(),
            version: case.version,
        },
        fields: disclosed,
        agreement: ClauseRef {
            agreement_id: decision.agreement_id.clone(),
            agreement_version: decision.agreement_version,
            clause: decision.clause.clone(),
            audience: decision.audience.as_str(),
            criterion: decision.criterion.map(|c| c.as_str()),
        },
        channel,
    }
}

/// Records every disclosure in one durable batch, then builds the views. Nothing is built
/// if the log refuses.
pub async fn disclose(
    audit: &AuditLog,
    actor: &Actor,
    station: &str,
    items: Vec<Visible>,
    channel: Channel,
) -> Result<Vec<CaseView>, AuditError> {
    let projected: Vec<_> = items
        .iter()
        .map(|v| project(&v.case.record, v.decision.fields))
        .collect();
    let events = items
        .iter()
        .zip(&projected)
        .map(|(v, (_, disclosed))| {
            disclosure_event(actor.clone(), station, &v.case.record, &v.decision, *disclosed, channel)
        })
        .collect();
    let receipts = audit.record(events).await?;
    Ok(items
        .into_iter()
        .zip(projected)
        .zip(receipts)
        .map(|((v, (case, _)), receipt)| {
            let r = &v.case.record;
            CaseView {
                reference: case_ref(r),
                center_id: r.center_id.to_string(),
                case_id: r.case_id.to_string(),
                version: r.version,
                updated_at: r.updated_at,
                case,
                receipt: ViewReceipt::new(receipt, v.decision.clause),
            }
        })
        .collect())
}
