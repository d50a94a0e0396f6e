//! What a CGC hears back about its cases: police responses recorded by terminals, and each
//! time a terminal opens one of its cases. Both are events of the center's stream
//! (`GET /v1/centers/{center_id}/stream`), stored durably in order (`Store::append_center_event`)
//! so that a stream resumes from its cursor across restarts and, on a shared PostgreSQL store,
//! every instance's center streams see every instance's events. A service: it owns its errors
//! and knows nothing of HTTP.

pub mod transfers;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use crate::audit::{AuditError, AuditLog, CaseRef, Channel, Event, Notice};
use crate::cases::record::CaseRecord;
use crate::cases::validate::FieldError;
use crate::clock::SharedClock;
use crate::identity::Principal;
use crate::store::{CenterEventRow, SharedStore, StoreError};
use crate::views::Recipient;

/// The longest note of a police response, in characters.
pub const MAX_NOTE_CHARS: usize = 200;
/// How far ahead of the gateway's clock a response's `at` may be (the terminal's clock skew).
const FUTURE_SKEW: time::Duration = time::Duration::minutes(5);
/// Events read from the store at once.
pub const PAGE: u32 = 100;

/// The kinds of police response (臨場・安全確認・保護・所在判明・その他).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    Visited,
    SafetyConfirmed,
    Protected,
    Found,
    Other,
}

impl ResponseKind {
    pub const ALL: [ResponseKind; 5] = [
        ResponseKind::Visited,
        ResponseKind::SafetyConfirmed,
        ResponseKind::Protected,
        ResponseKind::Found,
        ResponseKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseKind::Visited => "visited",
            ResponseKind::SafetyConfirmed => "safety_confirmed",
            ResponseKind::Protected => "protected",
            ResponseKind::Found => "found",
            ResponseKind::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CenterError {
    /// The response is malformed: every offending field by JSON pointer, never its value.
    #[error("invalid response")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A police response, as validated.
#[derive(Debug, Clone)]
pub struct NewResponse {
    pub kind: ResponseKind,
    pub at: OffsetDateTime,
    pub note: String,
}

impl NewResponse {
    /// Parses `{"kind", "at", "note"}`; `now` bounds `at`.
    pub fn parse(body: &[u8], now: OffsetDateTime) -> Result<Self, CenterError> {
        let invalid = |pointer: &str, message: &str| {
            CenterError::Invalid(vec![FieldError {
                pointer: pointer.into(),
                message: message.into(),
            }])
        };
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
            return Err(invalid("", "the body must be a JSON object"));
        };
        let mut errors = Vec::new();
        let mut push = |pointer: &str, message: String| {
            errors.push(FieldError {
                pointer: pointer.into(),
                message,
            })
        };
        for name in doc.keys() {
            if !matches!(name.as_str(), "kind" | "at" | "note") {
                push("", "only kind, at and note are accepted".into());
                break;
            }
        }
        let kind = match doc.get("kind").and_then(Value::as_str) {
            Some(k) => ResponseKind::parse(k).or_else(|| {
                push(
                    "/kind",
                    "must be visited, safety_confirmed, protected, found or other".into(),
                );
                None
            }),
            None => {
                push("/kind", "is required (a string)".into());
                None
            }
        };
        let at = match doc.get("at").and_then(Value::as_str) {
            Some(s) => match OffsetDateTime::parse(s, &Rfc3339) {
                Ok(t) if t > now + FUTURE_SKEW => {
                    push("/at", "must not be in the future".into());
                    None
                }
                Ok(t) => Some(t),
                Err(_) => {
                    push("/at", "must be an RFC 3339 time with its offset".into());
                    None
                }
            },
            None => {
                push("/at", "is required (an RFC 3339 time)".into());
                None
            }
        };
        let note = match doc.get("note") {
            None | Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) if s.chars().count() > MAX_NOTE_CHARS => {
                push("/note", format!("must be at most {MAX_NOTE_CHARS} characters"));
                None
            }
            Some(Value::String(s)) => match crate::text::check_free_text(s) {
                Ok(()) => Some(s.clone()),
                Err(why) => {
                    push("/note", why.into());
                    None
                }
            },
            Some(_) => {
                push("/note", "must be a string".into());
                None
            }
        };
        match (kind, at, note) {
            (Some(kind), Some(at), Some(note)) if errors.is_empty() => Ok(Self { kind, at, note }),
            _ => Err(CenterError::Invalid(errors)),
        }
    }
}

/// What a police response is, as the center receives it and as `sha256` in its audit entry
/// covers it (the bytes of this object exactly as sent).
#[derive(Debug, Serialize)]
struct ResponseBody<'a> {
    #[serde(rename = "ref")]
    reference: String,
    case_id: &'a str,
    case_version: u64,
    kind: &'static str,
    at: String,
    note: &'a str,
    station_id: &'a str,
    terminal_no: Option<u32>,
    officer: Option<&'a str>,
}

/// The answer to the terminal that recorded a response.
#[derive(Debug, Serialize)]
pub struct ResponseReceipt {
    /// The response's id (its center event's sequence number).
    pub id: i64,
    pub receipt: ResponseAudit,
}

#[derive(Debug, Serialize)]
pub struct ResponseAudit {
    pub audit_index: u64,
    /// The audit entry's line, byte for byte.
    pub entry: String,
    pub checkpoint: String,
    pub inclusion_proof: Vec<String>,
}

/// A terminal opened one of a center's cases (after that disclosure's entry is durable).
#[derive(Debug, Clone)]
pub struct Opened<'a> {
    pub case: &'a CaseRecord,
    pub to: &'a Recipient,
    pub channel: Channel,
}

#[derive(Serialize)]
struct OpenedBody<'a> {
    #[serde(rename = "ref")]
    reference: &'a str,
    case_id: &'a str,
    station_id: &'a str,
    terminal_no: Option<u32>,
    officer: Option<&'a str>,
    channel: &'static str,
    audit_index: u64,
    at: &'a str,
}

/// One event of a center's stream: `kind` is its SSE event name, `data` its JSON.
#[derive(Debug, Clone)]
pub struct CenterEvent {
    pub seq: i64,
    pub kind: String,
    pub data: String,
}

impl CenterEvent {
    fn from_row(row: CenterEventRow) -> Self {
        // A response's id is its event's sequence number; its stored body lacks it.
        let data = if row.kind == "response" {
            let rest = row.body.strip_prefix('{').unwrap_or(&row.body);
            let sep = if rest.starts_with('}') { "" } else { "," };
            format!("{{\"id\":{}{sep}{rest}", row.seq)
        } else {
            row.body
        };
        Self {
            seq: row.seq,
            kind: row.kind,
            data,
        }
    }
}

fn terminal_no(to: &Recipient) -> Option<u32> {
    match Principal::parse_urn(&to.actor.principal) {
        Ok(Principal::Terminal { terminal_no, .. }) => Some(terminal_no),
        _ => None,
    }
}

/// The center-side service.
pub struct Centers {
    store: SharedStore,
    audit: AuditLog,
    clock: SharedClock,
    /// The newest event known here: changes when this instance appends one (at once) and when
    /// the follower finds that other instances did (on their NOTIFY wake-up, or polling);
    /// every change wakes this instance's center streams, which then read the store.
    appended: watch::Sender<i64>,
    /// How often a center stream looks for events by itself on a shared store (a fallback for
    /// a lost wake-up).
    poll: std::time::Duration,
}

impl std::fmt::Debug for Centers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Centers").finish_non_exhaustive()
    }
}

impl Centers {
    pub fn new(store: SharedStore, audit: AuditLog, clock: SharedClock, poll: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            audit,
            clock,
            appended: watch::channel(0).0,
            poll,
        })
    }

    /// How often a center stream on a shared store looks for events by itself.
    pub fn poll(&self) -> std::time::Duration {
        self.poll
    }

    /// Reads the newest center event in the store and wakes this instance's center streams if
    /// it is newer than any known here (events other instances stored).
    pub async fn look(&self) -> Result<(), StoreError> {
        let head = self.store.latest_center_event().await?;
        self.appended.send_if_modified(|known| {
            let newer = head > *known;
            if newer {
                *known = head;
            }
            newer
        });
        Ok(())
    }

    /// Changes whenever an event of any center is appended here or found from another instance.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.appended.subscribe()
    }

    /// Whether center events may be written by other instances (then streams also poll).
    pub fn shared(&self) -> bool {
        self.store.is_shared()
    }

    /// Appends an event to `center_id`'s stream and wakes this instance's streams.
    async fn append(&self, center_id: &str, kind: &str, body: String) -> Result<i64, StoreError> {
        let seq = self
            .store
            .append_center_event(&CenterEventRow {
                seq: 0,
                center_id: center_id.to_owned(),
                kind: kind.to_owned(),
                at: self.clock.now(),
                body,
            })
            .await?;
        self.appended.send_modify(|known| *known = seq.max(*known));
        Ok(seq)
    }

    /// The notice of every channel that opens one case for a terminal (detail, print): the
    /// owning center's `opened` event, stored in the same commit as the disclosure's entry
    /// (`AuditLog::record_noting`), so the center is told of every opening the log records and
    /// of no other. `entry` is the disclosure's position among the events recorded with it.
    pub fn opened(&self, o: Opened<'_>, entry: usize) -> Notice {
        let reference = o.case.reference();
        let case_id = o.case.case_id.to_string();
        let station_id = o.to.station_id.clone();
        let terminal_no = terminal_no(o.to);
        let officer = o.to.actor.subject.clone();
        let channel = o.channel.as_str();
        let at = self.clock.now();
        let at_text = at.format(&Rfc3339).unwrap_or_default();
        Notice {
            entry,
            center_id: o.case.center_id.to_string(),
            kind: "opened",
            at,
            body: Box::new(move |audit_index| {
                serde_json::to_string(&OpenedBody {
                    reference: &reference,
                    case_id: &case_id,
                    station_id: &station_id,
                    terminal_no,
                    officer: officer.as_deref(),
                    channel,
                    audit_index,
                    at: &at_text,
                })
                .unwrap_or_else(|_| "{}".into())
            }),
        }
    }

    /// Wakes this instance's center streams for events stored up to `seq` with an audit commit
    /// (`Recorded::notices_upto`).
    pub fn noted(&self, seq: Option<i64>) {
        if let Some(seq) = seq {
            self.appended.send_modify(|known| *known = seq.max(*known));
        }
    }

    /// Records a police response to `case` (which the terminal may see now): the audit entry
    /// first, durable, then the stored response, which is the center's `response` event.
    pub async fn record_response(
        &self,
        by: &Recipient,
        case: &CaseRecord,
        response: &NewResponse,
    ) -> Result<ResponseReceipt, CenterError> {
        let body = ResponseBody {
            reference: case.reference(),
            case_id: case.case_id.as_str(),
            case_version: case.version,
            kind: response.kind.as_str(),
            at: response.at.format(&Rfc3339).unwrap_or_default(),
            note: &response.note,
            station_id: &by.station_id,
            terminal_no: terminal_no(by),
            officer: by.actor.subject.as_deref(),
        };
        let body = serde_json::to_string(&body).map_err(|_| StoreError::Corrupt("a response cannot be written"))?;
        let sha256 = crate::agreements::sha256_hex(&body);
        let receipt = self
            .audit
            .record_one(Event::PoliceResponse {
                actor: by.actor.clone(),
                station: by.station_id.clone(),
                case: CaseRef {
                    center_id: case.center_id.to_string(),
                    case_id: case.case_id.to_string(),
                    version: case.version,
                },
                response: response.kind.as_str(),
                at: response.at.format(&Rfc3339).unwrap_or_default(),
                sha256,
            })
            .await?;
        let stored = format!(
            "{{\"audit_index\":{},\"recorded_at\":\"{}\",\"response\":{body}}}",
            receipt.audit_index,
            self.clock.now().format(&Rfc3339).unwrap_or_default()
        );
        let id = self.append(case.center_id.as_str(), "response", stored).await?;
        Ok(ResponseReceipt {
            id,
            receipt: ResponseAudit {
                audit_index: receipt.audit_index,
                entry: receipt.entry,
                checkpoint: receipt.checkpoint,
                inclusion_proof: receipt.inclusion_proof,
            },
        })
    }

    /// `center_id`'s stream events after `after`, at most `PAGE`.
    pub async fn events_after(&self, center_id: &str, after: i64) -> Result<Vec<CenterEvent>, StoreError> {
        let rows = self.store.center_events_after(center_id, None, after, PAGE).await?;
        Ok(rows.into_iter().map(CenterEvent::from_row).collect())
    }

    /// `center_id`'s police responses after id `after`, at most `PAGE`, each as its `response`
    /// event's data.
    pub async fn responses_after(&self, center_id: &str, after: i64) -> Result<Vec<CenterEvent>, StoreError> {
        let rows = self
            .store
            .center_events_after(center_id, Some("response"), after, PAGE)
            .await?;
        Ok(rows.into_iter().map(CenterEvent::from_row).collect())
    }

    /// The newest event of any center: where a stream opened without a cursor starts.
    pub async fn head(&self) -> Result<i64, StoreError> {
        self.store.latest_center_event().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-01T10:00:00+09:00";

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse(NOW, &Rfc3339).unwrap()
    }

    fn pointers(body: &str) -> Vec<String> {
        match NewResponse::parse(body.as_bytes(), now()) {
            Err(CenterError::Invalid(errors)) => errors.into_iter().map(|e| e.pointer).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_response_names_each_bad_field_and_accepts_a_good_one() {
        let ok = NewResponse::parse(
            br#"{"kind":"found","at":"2026-12-01T09:30:00+09:00","note":"\u5150\u7ae5\u3092\u767a\u898b"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(ok.kind, ResponseKind::Found);
        assert_eq!(pointers(r#"{"kind":"arrested","at":"yesterday"}"#), ["/kind", "/at"]);
        assert_eq!(
            pointers(r#"{"kind":"other","at":"2026-12-02T10:00:00+09:00"}"#),
            ["/at"]
        );
        let long = format!(r#"{{"kind":"other","at":"{NOW}","note":"{}"}}"#, "あ".repeat(201));
        assert_eq!(pointers(&long), ["/note"]);
        assert_eq!(
            pointers(r#"{"kind":"other","at":"2026-12-01T10:00:00+09:00","note":"a\u0000"}"#),
            ["/note"]
        );
        assert_eq!(pointers("[]"), [""]);
    }
}
