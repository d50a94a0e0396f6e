//! One audit entry: what happened, who, when — never the case contents — as one JSON line, the
//! Merkle leaf. The exact format is documented in `docs/audit-log.md`:
//!
//! `{"v":2,"index":N,"time":"…",<event members>}`
//!
//! A v2 entry carries no signature of its own: the checkpoint signed at the end of its group
//! commit authenticates it (with an inclusion proof). Entries written before v2 are
//! `{"v":1,"index":N,"time":"…","kid":"…",<event members>,"sig":"<base64>"}`, signed one by one
//! over `SIGNING_CONTEXT ‖ (the line with its final ,"sig":"…" member removed)`; they stay
//! verifiable with the key that signed them.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::merkle::{Hash, leaf_hash};
use super::note::{NoteSigner, NoteVerifier};
use crate::policy::fields::FieldSet;

/// The format version of the entries the gateway writes.
pub const ENTRY_VERSION: u8 = 2;

/// Domain separation of v1 entry signatures: one can never be mistaken for a note signature.
pub const SIGNING_CONTEXT: &[u8] = b"cgc-gateway audit entry v1\n";
const SIG_MEMBER: &str = ",\"sig\":\"";

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The certificate's principal URN.
    pub principal: String,
    /// The officer or administrator named by the bearer token, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseRef {
    pub center_id: String,
    pub case_id: String,
    pub version: u64,
}

/// The agreement clause that allowed a disclosure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClauseRef {
    pub agreement_id: String,
    pub agreement_version: u32,
    pub clause: String,
    pub audience: &'static str,
    /// The national criterion the case met, for criteria-scoped providers. Kept in the log
    /// only: it can reveal fields the recipient may not see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criterion: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    List,
    Detail,
    Search,
    Stream,
    /// An officer printed an opened case.
    Print,
    /// A missing-child alert on the terminal stream.
    Alert,
}

impl Channel {
    /// The channel's name in entries (`list`, `detail`, `search`, `stream`, `print`, `alert`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::List => "list",
            Channel::Detail => "detail",
            Channel::Search => "search",
            Channel::Stream => "stream",
            Channel::Print => "print",
            Channel::Alert => "alert",
        }
    }

    /// Which field set the channel discloses: lists, search and the stream (its alerts too)
    /// only the summary; the full view only to an officer who opens (or prints) one case.
    pub fn set(self) -> FieldSetKind {
        match self {
            Channel::List | Channel::Search | Channel::Stream | Channel::Alert => FieldSetKind::Summary,
            Channel::Detail | Channel::Print => FieldSetKind::View,
        }
    }
}

/// The agreement's field set a disclosure drew on (`summary` or `view`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSetKind {
    Summary,
    View,
}

/// What an entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A case's fields left the gateway towards a terminal.
    Disclosure {
        actor: Actor,
        station: String,
        case: CaseRef,
        fields: FieldSet,
        agreement: ClauseRef,
        channel: Channel,
        /// Which of the agreement's sets the fields were cut to (`summary` for lists, search
        /// and the stream; `view` for an opened or printed case).
        set: FieldSetKind,
    },
    /// A request was refused. `request` is the route, never a value from the request body.
    Refusal {
        actor: Actor,
        request: String,
        status: u16,
        reason: String,
        /// Present when the entry stands for several refusals: repeats of an already recorded
        /// refusal (same actor, request and status) within one window, counted instead of
        /// recorded one by one; `reason` is then the last one's.
        #[serde(skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// Unusual activity worth an auditor's attention.
    Security { actor: Actor, what: String },
    /// A version of a sharing agreement was accepted (or imported from the policy files at
    /// first start). Recorded before the version can take effect.
    AgreementVersion {
        actor: Actor,
        agreement_id: String,
        version: u32,
        /// Hex SHA-256 of the exact document stored.
        sha256: String,
        effective_from: String,
    },
    /// A step of a city provider's opt-in (or its state imported at first start). Recorded
    /// before the new state takes effect.
    Consent {
        actor: Actor,
        agreement_id: String,
        operator: String,
        action: String,
        from: String,
        to: String,
        /// The agreement version whose terms the city has consented to after this step
        /// (absent when none), and the one confirmed by the prefecture: its cases are shared
        /// under the confirmed terms, never beyond the version in force.
        #[serde(skip_serializing_if = "Option::is_none")]
        consented_version: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        confirmed_version: Option<u32>,
    },
    /// An administrator revoked a terminal (`target` its principal URN) or an officer (`target`
    /// the token subject). Recorded before the revocation takes effect.
    Revocation {
        actor: Actor,
        target_kind: &'static str,
        target: String,
    },
    /// A step of a case transfer between centers: `requested` by the owning center, then
    /// `accepted` or `declined` by the receiving one. Recorded before the step takes effect;
    /// when the store then refuses the step (a race lost: decided meanwhile, the case changed),
    /// a `refused` entry follows, naming the entry of the step that did not take effect.
    Transfer {
        actor: Actor,
        step: &'static str,
        /// Absent on a request (the transfer is stored after its entry).
        #[serde(skip_serializing_if = "Option::is_none")]
        transfer_id: Option<i64>,
        /// The case under the center it leaves, at the version it is transferred at.
        case: CaseRef,
        to_center: String,
        /// On `refused`: the index of the entry whose step did not take effect.
        #[serde(skip_serializing_if = "Option::is_none")]
        refused_entry: Option<u64>,
        /// On `refused`: why (`already_pending`, `no_such_case`, `not_pending`, `case_changed`,
        /// `id_taken`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    /// A police terminal recorded its response to a case for the owning center. The note is not
    /// in the log; `sha256` is the digest of the response exactly as stored and sent to the
    /// center, so the center can check it against the log.
    PoliceResponse {
        actor: Actor,
        station: String,
        case: CaseRef,
        response: &'static str,
        /// When the police acted, as the officer gave it (RFC 3339).
        at: String,
        sha256: String,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Disclosure { .. } => "disclosure",
            Event::Refusal { .. } => "refusal",
            Event::Security { .. } => "security",
            Event::AgreementVersion { .. } => "agreement_version",
            Event::Consent { .. } => "consent",
            Event::Revocation { .. } => "revocation",
            Event::PoliceResponse { .. } => "police_response",
            Event::Transfer { .. } => "transfer",
        }
    }

    /// The case an entry is about, for the owning center's "who saw my case".
    pub fn case(&self) -> Option<(&str, &str)> {
        match self {
            Event::Disclosure { case, .. } | Event::PoliceResponse { case, .. } | Event::Transfer { case, .. } => {
                Some((&case.center_id, &case.case_id))
            }
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    v: u8,
    index: u64,
    time: &'a str,
    #[serde(flatten)]
    event: &'a Event,
}

/// What proves that an entry is in the log, offline, with only the log's verifier key: the
/// entry's exact line, the checkpoint (signed note) of the group commit that made it durable,
/// and the RFC 9162 inclusion proof of the line in that checkpoint's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The entry's index (its leaf index).
    #[serde(rename = "index", alias = "audit_index")]
    pub audit_index: u64,
    /// The entry's line, byte for byte.
    pub entry: String,
    /// The checkpoint note, byte for byte.
    pub checkpoint: String,
    /// Standard base64 of each 32-byte hash, leaf side first.
    pub inclusion_proof: Vec<String>,
}

/// A sealed entry, ready to be stored.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub index: u64,
    pub line: String,
    pub leaf_hash: Hash,
}

/// Seals `event` as entry `index`, recorded at `time`, in the current format (v2).
pub fn seal(index: u64, time: OffsetDateTime, event: &Event) -> Result<Sealed, serde_json::Error> {
    seal_at(index, &entry_time(time), event)
}

/// An entry's `time` member, as `seal` writes it.
pub fn entry_time(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

/// `seal` with the time already formatted by `entry_time` (once per group commit).
pub fn seal_at(index: u64, time: &str, event: &Event) -> Result<Sealed, serde_json::Error> {
    let line = serde_json::to_string(&Envelope {
        v: ENTRY_VERSION,
        index,
        time,
        event,
    })?;
    Ok(Sealed {
        index,
        leaf_hash: leaf_hash(line.as_bytes()),
        line,
    })
}

/// The log's signing key: signs checkpoints (and, before v2, signed entries).
pub struct LogKey {
    note: NoteSigner,
    key_id_hex: String,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("key_id", &self.key_id_hex)
            .finish_non_exhaustive()
    }
}

impl LogKey {
    pub fn new(origin: &str, signing: SigningKey) -> Result<Self, String> {
        let note = NoteSigner::new(origin, signing.clone()).map_err(|e| e.to_string())?;
        let key_id_hex = format!("{:08x}", note.key_id());
        Ok(Self { note, key_id_hex })
    }

    pub fn from_pem_file(origin: &str, path: &Path) -> Result<Self, String> {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let signing = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| format!("{}: not an Ed25519 PKCS#8 key: {e}", path.display()))?;
        Self::new(origin, signing)
    }

    pub fn key_id_hex(&self) -> &str {
        &self.key_id_hex
    }

    pub fn note_signer(&self) -> &NoteSigner {
        &self.note
    }

    pub fn verifier(&self) -> NoteVerifier {
        self.note.verifier()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry is not a JSON object ending in a \"sig\" member")]
    Shape,
    #[error("entry has an unknown format version")]
    Version,
    #[error("a v2 entry carries no \"sig\" or \"kid\" member")]
    V2Shape,
    #[error("entry JSON is malformed")]
    Json,
    #[error("entry names index {found}, expected {expected}")]
    Index { expected: u64, found: u64 },
    #[error("entry is signed by unknown key {0}")]
    UnknownKey(String),
    #[error("entry signature does not verify")]
    Signature,
}

/// Checks one line: its shape and its position, and for a v1 line its signature by one of
/// `keys` (`(key id hex, public key)`). Returns the parsed entry. A v2 line is authenticated by
/// the checkpoints that cover it, not here.
pub fn verify_line(
    line: &str,
    expected_index: u64,
    keys: &[(String, VerifyingKey)],
) -> Result<serde_json::Value, EntryError> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|_| EntryError::Json)?;
    let obj = value.as_object().ok_or(EntryError::Shape)?;
    match obj.get("v").and_then(serde_json::Value::as_u64) {
        Some(1) => {
            verify_v1(line, obj, expected_index, keys)?;
            Ok(value)
        }
        Some(2) => {
            if !line.starts_with("{\"v\":2,\"index\":") || obj.contains_key("sig") || obj.contains_key("kid") {
                return Err(EntryError::V2Shape);
            }
            check_index(obj, expected_index)?;
            Ok(value)
        }
        _ => Err(EntryError::Version),
    }
}

fn check_index(obj: &serde_json::Map<String, serde_json::Value>, expected: u64) -> Result<(), EntryError> {
    let index = obj
        .get("index")
        .and_then(serde_json::Value::as_u64)
        .ok_or(EntryError::Shape)?;
    if index != expected {
        return Err(EntryError::Index { expected, found: index });
    }
    Ok(())
}

fn verify_v1(
    line: &str,
    obj: &serde_json::Map<String, serde_json::Value>,
    expected_index: u64,
    keys: &[(String, VerifyingKey)],
) -> Result<(), EntryError> {
    let at = line.rfind(SIG_MEMBER).ok_or(EntryError::Shape)?;
    let (body_head, sig_part) = line.split_at(at);
    let sig_b64 = sig_part
        .strip_prefix(SIG_MEMBER)
        .and_then(|s| s.strip_suffix("\"}"))
        .ok_or(EntryError::Shape)?;
    let signature = STANDARD.decode(sig_b64).map_err(|_| EntryError::Shape)?;
    let signature = ed25519_dalek::Signature::from_slice(&signature).map_err(|_| EntryError::Shape)?;
    let body = format!("{body_head}}}");
    check_index(obj, expected_index)?;
    let kid = obj
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .ok_or(EntryError::Shape)?;
    let key = keys
        .iter()
        .find(|(id, _)| id == kid)
        .map(|(_, k)| k)
        .ok_or_else(|| EntryError::UnknownKey(kid.to_owned()))?;
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(body.as_bytes());
    key.verify(&message, &signature).map_err(|_| EntryError::Signature)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    fn event() -> Event {
        Event::Refusal {
            actor: Actor {
                principal: "urn:cgc-gateway:terminal:kagacho:1".into(),
                subject: None,
            },
            request: "GET /v1/terminal/cases/{case_ref}".into(),
            status: 404,
            reason: "not visible".into(),
            count: None,
        }
    }

    /// A v1 line as gateways before v2 wrote them, built here by hand from the documented
    /// format rather than by the code under test.
    fn v1_line(signing: &SigningKey, kid: &str, index: u64) -> String {
        let body = format!(
            "{{\"v\":1,\"index\":{index},\"time\":\"1970-01-01T00:00:00Z\",\"kid\":\"{kid}\",\"kind\":\"refusal\",\"status\":404}}"
        );
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(body.as_bytes());
        let sig = STANDARD.encode(signing.sign(&message).to_bytes());
        format!("{}{SIG_MEMBER}{sig}\"}}", &body[..body.len() - 1])
    }

    #[test]
    fn a_v2_line_has_no_signature_and_its_position_is_checked() {
        let s = seal(5, OffsetDateTime::UNIX_EPOCH, &event()).unwrap();
        assert!(
            s.line
                .starts_with("{\"v\":2,\"index\":5,\"time\":\"1970-01-01T00:00:00Z\",\"kind\":\"refusal\",")
        );
        assert!(!s.line.contains("sig") && !s.line.contains("kid"));
        assert_eq!(s.leaf_hash, leaf_hash(s.line.as_bytes()));
        assert_eq!(verify_line(&s.line, 5, &[]).unwrap()["kind"], "refusal");
        assert_eq!(
            verify_line(&s.line, 6, &[]),
            Err(EntryError::Index { expected: 6, found: 5 })
        );
        let with_sig = s.line.replace("\"}", "\",\"sig\":\"AAAA\"}");
        assert_eq!(verify_line(&with_sig, 5, &[]), Err(EntryError::V2Shape));
        let v3 = s.line.replace("\"v\":2", "\"v\":3");
        assert_eq!(verify_line(&v3, 5, &[]), Err(EntryError::Version));
        // A single refusal carries no count member at all.
        assert!(!s.line.contains("count"));
    }

    #[test]
    fn v1_lines_still_verify_with_their_key_and_any_change_is_caught() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let k = LogKey::new("test.example/log", signing.clone()).unwrap();
        let keys = vec![(k.key_id_hex().to_owned(), signing.verifying_key())];
        let line = v1_line(&signing, k.key_id_hex(), 5);
        assert_eq!(verify_line(&line, 5, &keys).unwrap()["status"], 404);
        assert_eq!(
            verify_line(&line, 6, &keys),
            Err(EntryError::Index { expected: 6, found: 5 })
        );
        let tampered = line.replace("404", "403");
        assert_eq!(verify_line(&tampered, 5, &keys), Err(EntryError::Signature));
        assert!(matches!(verify_line(&line, 5, &[]), Err(EntryError::UnknownKey(_))));
    }

    #[test]
    fn a_coalesced_refusal_carries_its_count() {
        let coalesced = Event::Refusal {
            actor: Actor {
                principal: "urn:cgc-gateway:terminal:kagacho:1".into(),
                subject: None,
            },
            request: "GET /v1/terminal/cases".into(),
            status: 401,
            reason: "not visible".into(),
            count: Some(1999),
        };
        let s = seal(6, OffsetDateTime::UNIX_EPOCH, &coalesced).unwrap();
        assert!(
            s.line.ends_with(",\"reason\":\"not visible\",\"count\":1999}"),
            "{}",
            s.line
        );
        assert_eq!(verify_line(&s.line, 6, &[]).unwrap()["count"], 1999);
    }
}
