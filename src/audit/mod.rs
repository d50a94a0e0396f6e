//! The audit log: every disclosure, administrative change, consent and refused access is an
//! entry appended to an RFC 9162 Merkle tree, stored as C2SP tlog-tiles, whose checkpoint is
//! signed (Ed25519, C2SP signed note) at every durable group commit; anyone holding the public
//! key can verify it, and each disclosure's receipt, offline. A disclosure leaves the gateway
//! only after its entry is durable; if the log cannot be written, nothing is disclosed.

pub mod cosignature;
pub mod entry;
pub mod export;
pub mod log;
pub mod merkle;
pub mod mirror;
pub mod note;
pub mod receipt;
pub mod tiles;
pub mod verify;

pub use entry::{Actor, CaseRef, Channel, ClauseRef, Event, FieldSetKind, LogKey, Receipt};
pub use log::{AuditError, AuditLog, Notice, Recorded};
