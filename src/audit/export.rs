//! `audit export`: writes the folder of docs/audit-log.md §5 from the store. The export is a
//! snapshot at the latest published checkpoint: entries appended after it are left for the
//! next export, so the folder's `checkpoint` always covers exactly its `entries.jsonl`.

use std::io::Write;
use std::path::Path;

use super::note::NoteVerifier;
use super::verify::{CHECKPOINT_FILE, CHECKPOINTS_DIR, ENTRIES_FILE, KeyLine, VERIFIER_KEYS_FILE, Validity};
use crate::store::{AuditKeyRow, SharedStore, StoreError};

/// Entries read from the store per query, so that a large log never sits in memory at once.
const PAGE: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0} exists and is not empty; export into a new folder")]
    NotEmpty(String),
    #[error("no checkpoint has been published yet")]
    NoCheckpoint,
    #[error("the store is inconsistent: {0}")]
    Inconsistent(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub entries: u64,
    pub checkpoints: usize,
    pub keys: usize,
    /// Entries stored after the latest checkpoint, not exported this time.
    pub pending: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The `verifier-keys` file for a key history (oldest first): each key valid from its first
/// index to the next key's.
pub fn verifier_keys_text(history: &[AuditKeyRow]) -> Result<String, ExportError> {
    let mut out = String::new();
    for (i, row) in history.iter().enumerate() {
        let verifier = NoteVerifier::parse(&row.verifier_key)
            .map_err(|e| ExportError::Inconsistent(format!("stored verifier key {}: {e}", row.key_id)))?;
        let line = KeyLine {
            verifier,
            validity: Some(Validity {
                from: row.first_index,
                to: history.get(i + 1).map(|next| next.first_index),
            }),
            activated: row
                .activated_at
                .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok()),
        };
        out.push_str(&line.to_text());
        out.push('\n');
    }
    Ok(out)
}

pub async fn export(store: &SharedStore, out: &Path) -> Result<ExportSummary, ExportError> {
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ExportError::NotEmpty(out.display().to_string()));
    }
    let checkpoints_dir = out.join(CHECKPOINTS_DIR);
    std::fs::create_dir_all(&checkpoints_dir).map_err(io(&checkpoints_dir))?;

    // Checkpoints first: every entry they cover is already durable, so reading the entries
    // afterwards can never come up short even while the gateway keeps appending.
    let checkpoints = store.checkpoints().await?;
    let latest = checkpoints.last().ok_or(ExportError::NoCheckpoint)?;
    let size = latest.tree_size;

    let entries_path = out.join(ENTRIES_FILE);
    let file = std::fs::File::create(&entries_path).map_err(io(&entries_path))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut next = 0;
    while next < size {
        let end = size.min(next.saturating_add(PAGE));
        let rows = store.audit_entries(next, end).await?;
        for row in rows {
            if row.index != next {
                return Err(ExportError::Inconsistent(format!("entry {next} is missing")));
            }
            writer.write_all(row.line.as_bytes()).map_err(io(&entries_path))?;
            writer.write_all(b"\n").map_err(io(&entries_path))?;
            next += 1;
        }
        if next < end {
            return Err(ExportError::Inconsistent(format!("entry {next} is missing")));
        }
    }
    writer.flush().map_err(io(&entries_path))?;
    writer
        .into_inner()
        .map_err(|e| ExportError::Io {
            path: entries_path.display().to_string(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io(&entries_path))?;

    // Each checkpoint as published: the log's note, then the witnesses' cosignatures of it.
    let mut cosigned: std::collections::BTreeMap<u64, String> = std::collections::BTreeMap::new();
    for (size, line) in store.all_cosignatures().await? {
        cosigned.entry(size).or_default().push_str(&line);
    }
    let published = |row: &crate::store::CheckpointRow| {
        let mut note = row.note.clone();
        if let Some(lines) = cosigned.get(&row.tree_size) {
            note.push_str(lines);
        }
        note
    };
    for row in &checkpoints {
        let path = checkpoints_dir.join(row.tree_size.to_string());
        std::fs::write(&path, published(row)).map_err(io(&path))?;
    }
    let path = out.join(CHECKPOINT_FILE);
    std::fs::write(&path, published(latest)).map_err(io(&path))?;

    let history = store.audit_keys().await?;
    let path = out.join(VERIFIER_KEYS_FILE);
    std::fs::write(&path, verifier_keys_text(&history)?).map_err(io(&path))?;

    let stored = store.audit_len().await?;
    Ok(ExportSummary {
        entries: size,
        checkpoints: checkpoints.len(),
        keys: history.len(),
        pending: stored.saturating_sub(size),
    })
}
