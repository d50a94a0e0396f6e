//! The appender: a single task owns the tree's growth. Requests queue on a channel; the task
//! takes everything queued, seals it, writes it in one durable transaction (group commit), and
//! only then extends the tree and answers. A failed write answers every waiter with an error
//! and consumes no index: fail closed, nothing half-recorded.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, oneshot};

use super::entry::{Event, LogKey, Receipt, Sealed};
use super::merkle::{Hash, ProofError, Tree};
use super::note::{Checkpoint, sign_note};
use crate::clock::SharedClock;
use crate::store::{AuditKeyRow, AuditRow, CheckpointRow, SharedStore, StoreError};

/// How many entries one durable write may carry.
const MAX_BATCH: usize = 4096;
/// How often a new checkpoint is considered while entries arrive (SPEC: at least once a second).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log is unavailable")]
    Unavailable,
    #[error("audit store: {0}")]
    Store(#[from] StoreError),
    #[error("audit proof: {0}")]
    Proof(#[from] ProofError),
    #[error("audit: {0}")]
    Other(String),
}

struct Job {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<Vec<Receipt>, AuditError>>,
}

struct Shared {
    tree: RwLock<Tree>,
    latest_checkpoint: RwLock<Option<CheckpointRow>>,
    key: LogKey,
    origin: String,
    store: SharedStore,
    clock: SharedClock,
}

#[derive(Clone)]
pub struct AuditLog {
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("origin", &self.shared.origin)
            .field("size", &self.size())
            .finish()
    }
}

impl AuditLog {
    /// Rebuilds the tree from the store and starts the appender and the checkpoint publisher.
    pub async fn open(store: SharedStore, key: LogKey, origin: String, clock: SharedClock) -> Result<Self, AuditError> {
        let tree = Tree::from_leaf_hashes(store.audit_leaf_hashes().await?);
        record_key_takeover(&store, &key, tree.len(), &clock).await?;
        let latest = store.latest_checkpoint().await?;
        let shared = Arc::new(Shared {
            tree: RwLock::new(tree),
            latest_checkpoint: RwLock::new(latest),
            key,
            origin,
            store,
            clock,
        });
        let (jobs, rx) = mpsc::channel(1024);
        tokio::spawn(append_loop(shared.clone(), rx));
        let log = Self { jobs, shared };
        log.publish_checkpoint().await?;
        tokio::spawn(checkpoint_loop(log.clone()));
        Ok(log)
    }

    /// Records `events` durably, in order; returns one receipt per event. Callers disclose
    /// nothing until this returns `Ok`.
    pub async fn record(&self, events: Vec<Event>) -> Result<Vec<Receipt>, AuditError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { events, reply })
            .await
            .map_err(|_| AuditError::Unavailable)?;
        rx.await.map_err(|_| AuditError::Unavailable)?
    }

    pub async fn record_one(&self, event: Event) -> Result<Receipt, AuditError> {
        self.record(vec![event])
            .await?
            .into_iter()
            .next()
            .ok_or(AuditError::Unavailable)
    }

    /// Records an event whose loss must not fail the request (a refusal): logged if it fails.
    pub fn record_in_background(&self, event: Event) {
        let log = self.clone();
        tokio::spawn(async move {
            if let Err(e) = log.record_one(event).await {
                tracing::error!(error = %e, "could not record a refusal in the audit log");
            }
        });
    }

    pub fn size(&self) -> u64 {
        read(&self.shared.tree).len()
    }

    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    pub fn key(&self) -> &LogKey {
        &self.shared.key
    }

    pub fn store(&self) -> &SharedStore {
        &self.shared.store
    }

    pub fn root_at(&self, size: u64) -> Result<Hash, AuditError> {
        Ok(read(&self.shared.tree).root_at(size)?)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        Ok(read(&self.shared.tree).inclusion_proof(index, size)?)
    }

    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        Ok(read(&self.shared.tree).consistency_proof(old, new)?)
    }

    pub fn latest_checkpoint(&self) -> Option<CheckpointRow> {
        read(&self.shared.latest_checkpoint).clone()
    }

    /// Signs and stores a checkpoint for the current size if none exists for it yet.
    pub async fn publish_checkpoint(&self) -> Result<(), AuditError> {
        let (size, root) = {
            let tree = read(&self.shared.tree);
            (tree.len(), tree.root())
        };
        if self.latest_checkpoint().is_some_and(|c| c.tree_size >= size) {
            return Ok(());
        }
        let text = Checkpoint {
            origin: self.shared.origin.clone(),
            size,
            root,
        }
        .to_text();
        let note = sign_note(&text, &[self.shared.key.note_signer()]).map_err(|e| AuditError::Other(e.to_string()))?;
        let published_at = self.shared.clock.now().format(&Rfc3339).unwrap_or_default();
        let row = CheckpointRow {
            tree_size: size,
            note,
            published_at,
        };
        self.shared.store.put_checkpoint(&row).await?;
        *write(&self.shared.latest_checkpoint) = Some(row);
        Ok(())
    }
}

/// Key rotation: the configured key signs from the current tree size on. The history (public
/// keys only) is what `audit export` writes as `verifier-keys`, so entries and checkpoints
/// signed by earlier keys stay verifiable. A log that predates the history was signed by the
/// configured key from its first entry.
async fn record_key_takeover(
    store: &SharedStore,
    key: &LogKey,
    size: u64,
    clock: &SharedClock,
) -> Result<(), AuditError> {
    let history = store.audit_keys().await?;
    let verifier_key = key.verifier().to_text();
    if history.last().is_some_and(|k| k.verifier_key == verifier_key) {
        return Ok(());
    }
    if history.iter().any(|k| k.verifier_key == verifier_key) {
        // Re-activating a retired key would make its validity ranges overlap and let a key
        // that may have been retired for cause sign again.
        return Err(AuditError::Other(format!(
            "signing key {} was retired; configure a new key",
            key.key_id_hex()
        )));
    }
    let first_index = if history.is_empty() { 0 } else { size };
    store
        .add_audit_key(&AuditKeyRow {
            first_index,
            key_id: key.key_id_hex().to_owned(),
            verifier_key,
            activated_at: clock.now().format(&Rfc3339).unwrap_or_default(),
        })
        .await?;
    tracing::info!(key_id = key.key_id_hex(), first_index, "audit signing key takes over");
    Ok(())
}

async fn append_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut count = first.events.len();
        let mut jobs = vec![first];
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let start = read(&shared.tree).len();
        let now = shared.clock.now();
        let sealed = seal_batch(&shared, &jobs, start, now);
        let outcome = match sealed {
            Ok(sealed) => {
                let rows: Vec<AuditRow> = sealed
                    .iter()
                    .map(|(event, s)| AuditRow {
                        index: s.receipt.audit_index,
                        line: s.line.clone(),
                        leaf_hash: s.leaf_hash,
                        kind: event.kind().to_owned(),
                        center_id: event.case().map(|(c, _)| c.to_owned()),
                        case_id: event.case().map(|(_, c)| c.to_owned()),
                    })
                    .collect();
                match shared.store.append_audit(&rows).await {
                    Ok(()) => {
                        crate::metrics::global().audit_appended(rows.len());
                        let mut tree = write(&shared.tree);
                        for row in &rows {
                            tree.push(row.leaf_hash);
                        }
                        Ok(sealed.into_iter().map(|(_, s)| s.receipt).collect::<Vec<_>>())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, entries = rows.len(), "audit write failed; the requests waiting on it disclose nothing");
                        Err(())
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit entry could not be sealed");
                Err(())
            }
        };
        match outcome {
            Ok(receipts) => {
                let mut receipts = receipts.into_iter();
                for job in jobs {
                    let mine: Vec<Receipt> = receipts.by_ref().take(job.events.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(()) => {
                for job in jobs {
                    let _ = job.reply.send(Err(AuditError::Unavailable));
                }
            }
        }
    }
}

fn seal_batch<'a>(
    shared: &Shared,
    jobs: &'a [Job],
    start: u64,
    now: time::OffsetDateTime,
) -> Result<Vec<(&'a Event, Sealed)>, serde_json::Error> {
    jobs.iter()
        .flat_map(|j| j.events.iter())
        .zip(start..)
        .map(|(event, index)| Ok((event, shared.key.seal(index, now, event)?)))
        .collect()
}

async fn checkpoint_loop(log: AuditLog) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = log.publish_checkpoint().await {
            tracing::error!(error = %e, "checkpoint could not be published");
        }
        if log.jobs.is_closed() {
            break;
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
