//! What a terminal is shown of a case, by any channel, and the one way it is disclosed. Lists,
//! search and the stream show each case's summary (the agreement's `[summary]` set); only an
//! officer who opens a case (detail) or prints it gets its full view, each its own entry.
//! `Disclosures::record` writes the disclosure entries durably, then `Disclosures::record` writes the disclosure entries durably, then
//! counts them toward the bulk-viewing watch, and only then may anything leave. The views come
//! from the live hub, which evaluated and projected each case once per police unit; list,
//! detail and search never re-evaluate a case. A service: it owns its errors and knows nothing
//! of HTTP.

use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::{Actor, AuditError, AuditLog, CaseRef, Channel, ClauseRef, Event, FieldSetKind, Notice, Receipt};
use crate::cases::CurrentCase;
use crate::cases::record::CaseRecord;
use crate::centers::{Centers, Opened};
use crate::clock::SharedClock;
use crate::limits::BulkWatch;
use crate::live::{Hub, Start, Subscription, UnitCase, UnitEvent};
use crate::policy::{Decision, FieldPath, FieldSet, project};
use crate::search::Query;

/// One search hit as a terminal sees it: the case's summary, never its address.
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
    /// The allowed summary fields, nothing else.
    pub summary: serde_json::Map<String, serde_json::Value>,
    /// The field paths the hit's set allows ("not shared" differs from "not set").
    pub allowed: Vec<&'static str>,
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
    /// The receipt as JSON, as every channel writes it after a case's view.
    pub fn to_json(&self) -> String {
        // Sized for the escaped entry line (its quotes double) and checkpoint, so that the
        // buffer is not grown and copied again while it is written.
        let proof: usize = self.inclusion_proof.iter().map(|h| h.len() + 3).sum();
        let capacity = self.entry.len() * 5 / 4 + self.checkpoint.len() * 9 / 8 + self.clause.len() + proof + 96;
        let mut out = Vec::with_capacity(capacity);
        match serde_json::to_writer(&mut out, self) {
            Ok(()) => String::from_utf8(out).unwrap_or_else(|_| "null".into()),
            Err(_) => "null".into(),
        }
    }

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

/// Something about to be disclosed: the case, the decision that allows it, and the fields of
/// the channel's set that are both allowed and present (what the entry records).
pub trait Disclosing {
    fn record(&self) -> &CaseRecord;
    fn decision(&self) -> &Decision;
    fn disclosed(&self, set: FieldSetKind) -> FieldSet;
}

impl Disclosing for UnitCase {
    fn record(&self) -> &CaseRecord {
        &self.case.record
    }
    fn decision(&self) -> &Decision {
        &self.decision
    }
    fn disclosed(&self, set: FieldSetKind) -> FieldSet {
        match set {
            FieldSetKind::Summary => self.summary_disclosed,
            FieldSetKind::View => self.disclosed,
        }
    }
}

impl<T: Disclosing> Disclosing for Arc<T> {
    fn record(&self) -> &CaseRecord {
        (**self).record()
    }
    fn decision(&self) -> &Decision {
        (**self).decision()
    }
    fn disclosed(&self, set: FieldSetKind) -> FieldSet {
        (**self).disclosed(set)
    }
}

/// A case projected to a narrower field set than its unit's summary (a search hit).
struct Narrowed {
    case: Arc<CurrentCase>,
    decision: Decision,
    view: serde_json::Map<String, serde_json::Value>,
    disclosed: FieldSet,
}

impl Disclosing for Narrowed {
    fn record(&self) -> &CaseRecord {
        &self.case.record
    }
    fn decision(&self) -> &Decision {
        &self.decision
    }
    fn disclosed(&self, _: FieldSetKind) -> FieldSet {
        self.disclosed
    }
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
        set: channel.set(),
    }
}

/// Who receives a disclosure: a terminal of a station, with its officer.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub station_id: String,
    pub actor: Actor,
}

/// Why nothing was disclosed.
#[derive(Debug, thiserror::Error)]
pub enum DisclosureError {
    /// No case of this terminal's view has that reference (whether or not it exists).
    #[error("no such case")]
    NotFound,
    /// A bare case id names several cases of the view: the qualified references to use.
    #[error("ambiguous case reference")]
    Ambiguous(Vec<String>),
    /// The audit log could not record: nothing is disclosed (fail closed).
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Search results: at most `MAX_SEARCH_RESULTS` hits.
#[derive(Debug, Serialize)]
pub struct SearchResults {
    /// More cases matched than are answered; refine the query.
    pub truncated: bool,
    pub cases: Vec<CaseView>,
}

/// The most search hits answered: a name search, not a bulk export.
pub const MAX_SEARCH_RESULTS: usize = 50;

/// The disclosure service.
pub struct Disclosures {
    audit: AuditLog,
    hub: Arc<Hub>,
    bulk: BulkWatch,
    clock: SharedClock,
    /// Told of every case opened for a terminal, for the owning center's stream.
    centers: Arc<Centers>,
}

impl std::fmt::Debug for Disclosures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disclosures").finish_non_exhaustive()
    }
}

/// Audit entries of one case read, at most, to tell whether a unit was ever shown it.
const SHOWN_PAGES: usize = 20;
const SHOWN_PAGE: u32 = 1000;

impl Disclosures {
    /// Subscribes `unit` to its live view from `cursor`, settling what a portable resume leaves
    /// uncertain (`Subscription::uncertain`): each such case the unit was ever disclosed, by
    /// the audit log, is withdrawn; the others it never saw are not named. When the log cannot
    /// tell within bounds, the stream starts over with the full view instead.
    pub async fn subscribe(
        &self,
        unit: &str,
        cursor: Option<crate::live::Cursor>,
    ) -> Result<Subscription, DisclosureError> {
        let mut sub = self.hub.subscribe(unit, cursor);
        if sub.uncertain.is_empty() {
            return Ok(sub);
        }
        let mut events = Vec::new();
        for (center, case) in std::mem::take(&mut sub.uncertain) {
            match self.shown_to(unit, &center, &case).await? {
                Some(true) => events.push(UnitEvent::Withdraw {
                    reference: format!("{center}:{case}"),
                }),
                Some(false) => {}
                None => return Ok(self.hub.subscribe(unit, None)),
            }
        }
        if let Start::Resume(rest) = &mut sub.start {
            events.append(rest);
            *rest = events;
        }
        Ok(sub)
    }

    /// Whether the audit log holds a disclosure of this case to `unit`; `None` if it could not
    /// tell within `SHOWN_PAGES`.
    async fn shown_to(&self, unit: &str, center: &str, case: &str) -> Result<Option<bool>, AuditError> {
        let store = self.audit.store();
        let mut from = 0;
        for _ in 0..SHOWN_PAGES {
            let rows = store.audit_entries_for_case(center, case, from, SHOWN_PAGE).await?;
            let shown = rows.iter().any(|r| {
                r.kind == "disclosure"
                    && serde_json::from_str::<serde_json::Value>(&r.line)
                        .is_ok_and(|v| v.get("station").and_then(serde_json::Value::as_str) == Some(unit))
            });
            if shown {
                return Ok(Some(true));
            }
            match rows.last() {
                Some(last) if rows.len() == SHOWN_PAGE as usize => from = last.index + 1,
                _ => return Ok(Some(false)),
            }
        }
        Ok(None)
    }

    pub fn new(audit: AuditLog, hub: Arc<Hub>, bulk: BulkWatch, clock: SharedClock, centers: Arc<Centers>) -> Self {
        Self {
            audit,
            hub,
            bulk,
            clock,
            centers,
        }
    }

    /// The one case of the station's view that `reference` names now (`<center>:<case>`, or a
    /// bare case id naming one case of the view). Nothing is disclosed.
    pub fn resolve(&self, to: &Recipient, reference: &str) -> Result<Arc<UnitCase>, DisclosureError> {
        let mut found = self.hub.find(&to.station_id, reference);
        if found.len() > 1 {
            // Only cases this terminal may see are named, so the answer leaks nothing.
            return Err(DisclosureError::Ambiguous(
                found.iter().map(|c| c.reference.clone()).collect(),
            ));
        }
        found.pop().ok_or(DisclosureError::NotFound)
    }

    /// The one way anything is disclosed, by every channel: one entry per item, written in one
    /// durable batch, then counted toward the recipient's bulk-viewing watch. Callers send
    /// nothing unless this returns `Ok`; the receipts are in `items`' order.
    pub async fn record<T: Disclosing>(
        &self,
        to: &Recipient,
        items: &[T],
        channel: Channel,
    ) -> Result<Vec<ViewReceipt>, AuditError> {
        self.record_noting(to, items, channel, Vec::new()).await
    }

    /// `record`, with center events stored in the same durable commit as the entries (a case
    /// opened: its center is told with the record of it, or neither happens); this instance's
    /// center streams are woken once it is durable.
    async fn record_noting<T: Disclosing>(
        &self,
        to: &Recipient,
        items: &[T],
        channel: Channel,
        notices: Vec<Notice>,
    ) -> Result<Vec<ViewReceipt>, AuditError> {
        let events = items
            .iter()
            .map(|i| {
                disclosure_event(
                    to.actor.clone(),
                    &to.station_id,
                    i.record(),
                    i.decision(),
                    i.disclosed(channel.set()),
                    channel,
                )
            })
            .collect();
        let started = std::time::Instant::now();
        let recorded = self.audit.record_noting(events, notices).await?;
        self.centers.noted(recorded.notices_upto);
        let receipts = recorded.receipts;
        crate::metrics::global().disclosed(channel.as_str(), receipts.len(), started.elapsed());
        self.watch_bulk(to, receipts.len());
        Ok(items
            .iter()
            .zip(receipts)
            .map(|(i, r)| ViewReceipt::new(r, i.decision().clause.clone()))
            .collect())
    }

    /// Counts disclosures to an officer; crossing the threshold writes one security entry per
    /// window (in the background: the disclosures themselves are already recorded).
    fn watch_bulk(&self, to: &Recipient, count: usize) {
        let officer = to.actor.subject.as_deref().unwrap_or(&to.actor.principal);
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        let Some(total) = self.bulk.observe(officer, count, self.clock.now()) else {
            return;
        };
        let event = Event::Security {
            actor: to.actor.clone(),
            what: format!(
                "unusual bulk viewing: {total} case disclosures to this officer within {} min exceeded the configured threshold",
                self.bulk.window().whole_minutes()
            ),
        };
        let audit = self.audit.clone();
        tokio::spawn(async move {
            if let Err(e) = audit.record(vec![event]).await {
                tracing::error!(error = %e, "could not record a bulk-viewing security entry");
            }
        });
    }

    /// `GET /v1/terminal/cases`: the station's whole view, as a JSON document
    /// `{"as_of": …, "cases": [<case>…]}`, each case's summary as the stream sends it, with its
    /// receipt.
    pub async fn list(&self, to: &Recipient) -> Result<String, DisclosureError> {
        let now = self.clock.now();
        let cases = self.hub.view(&to.station_id);
        let receipts = self.record(to, &cases, Channel::List).await?;
        let receipts: Vec<String> = receipts.iter().map(ViewReceipt::to_json).collect();
        let size: usize = cases
            .iter()
            .zip(&receipts)
            .map(|(c, r)| c.summary_head.len() + r.len() + 16)
            .sum();
        let mut out = String::with_capacity(size + 64);
        out.push_str("{\"as_of\":\"");
        out.push_str(&now.format(&Rfc3339).unwrap_or_default());
        out.push_str("\",\"cases\":[");
        for (i, (case, receipt)) in cases.iter().zip(&receipts).enumerate() {
            if i > 0 {
                out.push(',');
            }
            case.write_summary(&mut out, receipt);
        }
        out.push_str("]}");
        Ok(out)
    }

    /// `GET /v1/terminal/cases/{ref}`: one case of the station's view, by `<center>:<case>` or
    /// by a bare case id when that names one case of the view: its full view, as an officer
    /// opens it (channel `detail`).
    pub async fn detail(&self, to: &Recipient, reference: &str) -> Result<String, DisclosureError> {
        self.open(to, reference, Channel::Detail).await
    }

    /// `POST /v1/terminal/cases/{ref}/print`: the same body as the detail, recorded as a print
    /// of its own before it is answered.
    pub async fn print(&self, to: &Recipient, reference: &str) -> Result<String, DisclosureError> {
        self.open(to, reference, Channel::Print).await
    }

    /// An officer opens (or prints) a case: its full view, recorded together with the owning
    /// center's `opened` event.
    async fn open(&self, to: &Recipient, reference: &str, channel: Channel) -> Result<String, DisclosureError> {
        let case = self.resolve(to, reference)?;
        let opened = Opened {
            case: &case.case.record,
            to,
            channel,
        };
        let notice = self.centers.opened(opened, 0);
        let receipts = self
            .record_noting(to, std::slice::from_ref(&case), channel, vec![notice])
            .await?;
        let receipt = receipts.first().ok_or(AuditError::Unavailable)?;
        let receipt = receipt.to_json();
        let mut out = String::with_capacity(case.head.len() + receipt.len() + 16);
        case.write_with_receipt(&mut out, &receipt);
        Ok(out)
    }

    /// `GET /v1/terminal/search?q=`: cases of the station's view whose names (as the view
    /// grants them) match, each as its summary without the address.
    pub async fn search(&self, to: &Recipient, query: &Query) -> Result<SearchResults, DisclosureError> {
        let mut hits: Vec<Narrowed> = self
            .hub
            .view(&to.station_id)
            .into_iter()
            .filter(|c| query.matches(&c.case.record, c.decision.fields))
            .take(MAX_SEARCH_RESULTS + 1)
            .map(|c| {
                let mut decision = c.decision.clone();
                // Never an address in a search result, not even its municipality.
                decision.fields = decision
                    .summary
                    .without(FieldPath::ChildAddress)
                    .without(FieldPath::ChildMunicipality);
                let (view, disclosed) = project(&c.case.record, decision.fields);
                Narrowed {
                    case: c.case.clone(),
                    decision,
                    view,
                    disclosed,
                }
            })
            .collect();
        let truncated = hits.len() > MAX_SEARCH_RESULTS;
        hits.truncate(MAX_SEARCH_RESULTS);
        let receipts = self.record(to, &hits, Channel::Search).await?;
        let cases = hits
            .into_iter()
            .zip(receipts)
            .map(|(h, receipt)| {
                let r = &h.case.record;
                CaseView {
                    reference: r.reference(),
                    center_id: r.center_id.to_string(),
                    case_id: r.case_id.to_string(),
                    version: r.version,
                    updated_at: r.updated_at,
                    summary: h.view,
                    allowed: h.decision.fields.iter().map(FieldPath::as_str).collect(),
                    receipt,
                }
            })
            .collect();
        Ok(SearchResults { truncated, cases })
    }
}
