//! The audit log (SPEC §8): every disclosure, administrative change, consent and refused
//! access is an entry, signed (Ed25519) and appended to an RFC 9162 Merkle tree whose signed
//! checkpoints anyone holding the public key can verify. A disclosure leaves the gateway only
//! after its entry is durable; if the log cannot be written, nothing is disclosed.

pub mod entry;
pub mod export;
pub mod log;
pub mod merkle;
pub mod note;
pub mod tiles;
pub mod verify;

pub use entry::{Actor, CaseRef, Channel, ClauseRef, Event, LogKey, Receipt};
pub use log::{AuditError, AuditLog};
