//! One audit entry: what happened, who, when — never the case contents — as one JSON line
//! that carries its own signature. The exact format is documented in `docs/audit-log.md`:
//!
//! `{"v":1,"index":N,"time":"…","kid":"…",<event members>,"sig":"<base64>"}`
//!
//! The signed message is `SIGNING_CONTEXT ‖ (the line with its final ,"sig":"…" member
//! removed)`; the Merkle leaf is the whole line.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::merkle::{Hash, leaf_hash};
use super::note::{NoteSigner, NoteVerifier};
use crate::policy::fields::FieldSet;

/// Domain separation: an entry signature can never be mistaken for a note signature.
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
        }
    }

    /// The case an entry is about, for the owning center's "who saw my case".
    pub fn case(&self) -> Option<(&str, &str)> {
        match self {
            Event::Disclosure { case, .. } => Some((&case.center_id, &case.case_id)),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    v: u8,
    index: u64,
    time: &'a str,
    kid: &'a str,
    #[serde(flatten)]
    event: &'a Event,
}

/// The receipt a disclosed case carries: where its entry sits in the log and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub audit_index: u64,
    pub key_id: String,
    pub signature: String,
}

/// A sealed entry, ready to be stored.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub line: String,
    pub leaf_hash: Hash,
    pub receipt: Receipt,
}

/// The log's signing key: signs entries and checkpoints.
pub struct LogKey {
    signing: SigningKey,
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
        Ok(Self {
            signing,
            note,
            key_id_hex,
        })
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

    /// Seals `event` as entry `index`, recorded at `time`.
    pub fn seal(&self, index: u64, time: OffsetDateTime, event: &Event) -> Result<Sealed, serde_json::Error> {
        let time = time.format(&Rfc3339).unwrap_or_default();
        let body = serde_json::to_string(&Envelope {
            v: 1,
            index,
            time: &time,
            kid: &self.key_id_hex,
            event,
        })?;
        let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
        message.extend_from_slice(SIGNING_CONTEXT);
        message.extend_from_slice(body.as_bytes());
        let signature = STANDARD.encode(self.signing.sign(&message).to_bytes());
        let mut line = body;
        line.pop(); // the closing brace; the signature member goes last
        line.push_str(SIG_MEMBER);
        line.push_str(&signature);
        line.push_str("\"}");
        let leaf_hash = leaf_hash(line.as_bytes());
        Ok(Sealed {
            receipt: Receipt {
                audit_index: index,
                key_id: self.key_id_hex.clone(),
                signature,
            },
            leaf_hash,
            line,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry is not a JSON object ending in a \"sig\" member")]
    Shape,
    #[error("entry JSON is malformed")]
    Json,
    #[error("entry names index {found}, expected {expected}")]
    Index { expected: u64, found: u64 },
    #[error("entry is signed by unknown key {0}")]
    UnknownKey(String),
    #[error("entry signature does not verify")]
    Signature,
}

/// Checks one line: its shape, its position, and its signature by one of `keys`
/// (`(key id hex, public key)`). Returns the parsed entry.
pub fn verify_line(
    line: &str,
    expected_index: u64,
    keys: &[(String, VerifyingKey)],
) -> Result<serde_json::Value, EntryError> {
    let at = line.rfind(SIG_MEMBER).ok_or(EntryError::Shape)?;
    let (body_head, sig_part) = line.split_at(at);
    let sig_b64 = sig_part
        .strip_prefix(SIG_MEMBER)
        .and_then(|s| s.strip_suffix("\"}"))
        .ok_or(EntryError::Shape)?;
    let signature = STANDARD.decode(sig_b64).map_err(|_| EntryError::Shape)?;
    let signature = ed25519_dalek::Signature::from_slice(&signature).map_err(|_| EntryError::Shape)?;
    let body = format!("{body_head}}}");
    let value: serde_json::Value = serde_json::from_str(line).map_err(|_| EntryError::Json)?;
    let obj = value.as_object().ok_or(EntryError::Shape)?;
    let index = obj
        .get("index")
        .and_then(serde_json::Value::as_u64)
        .ok_or(EntryError::Shape)?;
    if index != expected_index {
        return Err(EntryError::Index {
            expected: expected_index,
            found: index,
        });
    }
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
    key.verify(&message, &signature).map_err(|_| EntryError::Signature)?;
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key() -> LogKey {
        LogKey::new("test.example/log", SigningKey::from_bytes(&[7u8; 32])).unwrap()
    }

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

    #[test]
    fn sealed_line_verifies_and_any_change_is_caught() {
        let k = key();
        let s = k.seal(5, OffsetDateTime::UNIX_EPOCH, &event()).unwrap();
        let keys = vec![(k.key_id_hex().to_owned(), k.signing.verifying_key())];
        let v = verify_line(&s.line, 5, &keys).unwrap();
        assert_eq!(v["kind"], "refusal");
        assert_eq!(
            verify_line(&s.line, 6, &keys),
            Err(EntryError::Index { expected: 6, found: 5 })
        );
        let tampered = s.line.replace("404", "403");
        assert_eq!(verify_line(&tampered, 5, &keys), Err(EntryError::Signature));
        assert!(s.line.ends_with("\"}") && s.line.starts_with("{\"v\":1,\"index\":5,"));
        // A single refusal carries no count member at all.
        assert!(!s.line.contains("count"));
    }

    #[test]
    fn a_coalesced_refusal_carries_its_count_and_verifies() {
        let k = key();
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
        let s = k.seal(6, OffsetDateTime::UNIX_EPOCH, &coalesced).unwrap();
        assert!(
            s.line.contains(",\"reason\":\"not visible\",\"count\":1999,\"sig\":"),
            "{}",
            s.line
        );
        let keys = vec![(k.key_id_hex().to_owned(), k.signing.verifying_key())];
        assert_eq!(verify_line(&s.line, 6, &keys).unwrap()["count"], 1999);
    }
}
