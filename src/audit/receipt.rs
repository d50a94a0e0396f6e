//! Offline verification of one receipt (docs/audit-log.md §7) with only the log's verifier
//! key: the checkpoint is signed by a trusted key, the entry sits at the receipt's index, and
//! the inclusion proof leads from the entry's leaf hash to the checkpoint's root. What
//! `cgc-gateway audit verify-receipt` runs, and what a terminal or a court re-implements.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::entry::verify_line;
use super::merkle::{Hash, hash_from_slice, leaf_hash, verify_inclusion};
use super::note::{Checkpoint, NoteVerifier, open_note};
use super::verify::{KeyLine, Validity};

/// A receipt file: the receipt of a disclosure as the terminal API gives it (`audit_index`
/// and `clause` included) or the bare `{index, entry, checkpoint, inclusion_proof}`.
#[derive(Debug, Clone, Deserialize)]
struct ReceiptFile {
    #[serde(alias = "audit_index")]
    index: u64,
    entry: String,
    checkpoint: String,
    inclusion_proof: Vec<String>,
    /// When present, it must be the clause the entry records.
    clause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("receipt does not verify: {0}")]
pub struct ReceiptError(pub String);

fn bad(reason: impl Into<String>) -> ReceiptError {
    ReceiptError(reason.into())
}

/// What a verified receipt establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    pub index: u64,
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
    /// The entry's `kind`, e.g. `disclosure`.
    pub kind: String,
    pub time: Option<String>,
}

impl std::fmt::Display for VerifiedReceipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "OK: entry {} ({}) is in audit log {}",
            self.index, self.kind, self.origin
        )?;
        if let Some(time) = &self.time {
            writeln!(f, "  recorded:   {time}")?;
        }
        writeln!(
            f,
            "  checkpoint: tree size {}, root {} (signature valid)",
            self.tree_size,
            STANDARD.encode(self.root)
        )?;
        writeln!(f, "  inclusion proof: valid")
    }
}

/// Verifies a receipt (its JSON bytes) against the auditor's `trusted` keys.
pub fn verify_receipt(json: &[u8], trusted: &[KeyLine]) -> Result<VerifiedReceipt, ReceiptError> {
    let receipt: ReceiptFile = serde_json::from_slice(json).map_err(|e| bad(format!("not a receipt: {e}")))?;
    if trusted.is_empty() {
        return Err(bad("no trusted key given"));
    }
    let verifiers: Vec<NoteVerifier> = trusted.iter().map(|k| k.verifier.clone()).collect();
    let opened = open_note(&receipt.checkpoint, &verifiers).map_err(|e| bad(format!("checkpoint: {e}")))?;
    let checkpoint = Checkpoint::parse(opened.text).map_err(|e| bad(format!("checkpoint: {e}")))?;
    let signer = opened
        .verified_by
        .first()
        .and_then(|i| trusted.get(*i))
        .ok_or_else(|| bad("checkpoint: no signature by a trusted key"))?;
    if signer.verifier.name() != checkpoint.origin {
        return Err(bad("checkpoint: signed by a key of another log"));
    }
    let validity = signer.validity.unwrap_or(Validity::ALWAYS);
    if !validity.covers_checkpoint(checkpoint.size) {
        return Err(bad("checkpoint: the key is not valid for its tree size"));
    }
    if receipt.index >= checkpoint.size {
        return Err(bad(format!(
            "index {} is not below the checkpoint's size {}",
            receipt.index, checkpoint.size
        )));
    }
    // A v1 entry also carries its own signature, by a key valid for its index.
    let entry_keys: Vec<(String, ed25519_dalek::VerifyingKey)> = trusted
        .iter()
        .filter(|k| k.validity.unwrap_or(Validity::ALWAYS).covers_entry(receipt.index))
        .map(|k| (format!("{:08x}", k.verifier.key_id()), *k.verifier.verifying_key()))
        .collect();
    let entry = verify_line(&receipt.entry, receipt.index, &entry_keys).map_err(|e| bad(format!("entry: {e}")))?;
    let proof = receipt
        .inclusion_proof
        .iter()
        .map(|h| {
            STANDARD
                .decode(h)
                .ok()
                .and_then(|b| hash_from_slice(&b).ok())
                .ok_or_else(|| bad("inclusion proof: not base64 of 32-byte hashes"))
        })
        .collect::<Result<Vec<Hash>, _>>()?;
    verify_inclusion(
        &leaf_hash(receipt.entry.as_bytes()),
        receipt.index,
        checkpoint.size,
        &proof,
        &checkpoint.root,
    )
    .map_err(|e| bad(format!("inclusion proof: {e}")))?;
    let recorded_clause = entry
        .get("agreement")
        .and_then(|a| a.get("clause"))
        .and_then(serde_json::Value::as_str);
    if let Some(clause) = &receipt.clause
        && recorded_clause != Some(clause.as_str())
    {
        return Err(bad("clause: not the clause the entry records"));
    }
    Ok(VerifiedReceipt {
        index: receipt.index,
        origin: checkpoint.origin,
        tree_size: checkpoint.size,
        root: checkpoint.root,
        kind: entry
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        time: entry.get("time").and_then(serde_json::Value::as_str).map(str::to_owned),
    })
}
