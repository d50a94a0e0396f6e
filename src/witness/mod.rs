//! Witnesses (C2SP tlog-witness, tlog-cosignature): independent parties that cosign the
//! audit log's checkpoints, each only after checking that the checkpoint extends, append-only,
//! the last one it cosigned. A log that showed one history to an auditor and another to a
//! witness would need two checkpoints of one size, or a checkpoint that no consistency proof
//! links to the witness's; the witness refuses both, loudly, and keeps the evidence.
//!
//! `cosignature` holds the keys and the signature lines, `protocol` the `add-checkpoint`
//! wire format, `state` the witness's durable memory, `service` the checks, `server` the HTTP
//! endpoint (`cgc-gateway witness serve`) and `client` the log's side. See docs/witness.md.

pub mod client;
pub mod cosigner;
pub mod keyfile;
pub mod protocol;
pub mod server;
pub mod service;
pub mod state;

/// The cosignature format lives with the log (`audit::cosignature`); re-exported here.
pub use crate::audit::cosignature;
pub use crate::audit::cosignature::{CosignatureLine, WitnessKey, WitnessVerifier, append_cosignatures};
pub use client::{WitnessEndpoint, WitnessError, add_checkpoint, cosign_checkpoint};
pub use server::WitnessServer;
pub use service::{Refusal, Witness, WitnessConfig};
