//! The appender: a single task owns the tree's growth. Requests queue on a channel; the task
//! takes everything queued, seals it, and writes it in one durable transaction (group commit)
//! together with the tiles it changes and a checkpoint signed over the new tree; only then does
//! it extend the in-memory right edge and answer, each entry with a receipt that proves it
//! against that checkpoint. A failed write answers every waiter with an error and consumes no
//! index: fail closed, nothing half-recorded.
//!
//! Memory and start-up do not grow with the log: the task keeps only the right edge of the tree
//! (the partial tiles, a few kilobytes), and proofs read the full tiles they need from the store.

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::{mpsc, oneshot};

use super::entry::{Event, LogKey, Receipt, Sealed, entry_time, seal_at};
use super::merkle::{self, Hash, Nodes, ProofError};
use super::note::{Checkpoint, sign_note};
use super::tiles::{Edge, FullTile, TILE_HEIGHT, TileId, TileNodes, TileRecorder, tile_bytes, tile_hashes};
use crate::clock::SharedClock;
use crate::store::{
    AuditCommit, AuditKeyRow, AuditRow, AuditTileRow, CenterEventRow, CheckpointRow, SharedStore, StoreError,
};

/// How many entries one durable write may carry.
const MAX_BATCH: usize = 4096;
/// Entries read per query when tiles are built for a log written before tiles existed.
const BACKFILL_PAGE: u64 = 16_384;

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
    notices: Vec<Notice>,
    reply: oneshot::Sender<Result<Recorded, AuditError>>,
}

/// A center event stored in the same transaction as the entry it follows: durable with it or
/// not at all. Its body names the entry's index, which is known only once the entry is sealed
/// (and changes if the commit is sealed again at a moved end), so the body is made from it.
pub struct Notice {
    /// Which of the recorded events it follows, by position.
    pub entry: usize,
    pub center_id: String,
    pub kind: &'static str,
    pub at: time::OffsetDateTime,
    pub body: Box<dyn Fn(u64) -> String + Send + Sync>,
}

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notice")
            .field("entry", &self.entry)
            .field("center_id", &self.center_id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What a durable commit answers a job.
#[derive(Debug)]
pub struct Recorded {
    /// One per event, in order.
    pub receipts: Vec<Receipt>,
    /// The `seq` of the commit's last center event, if it carried any (a wake-up bound for
    /// center streams: every notice of the job is at or below it).
    pub notices_upto: Option<i64>,
}

struct Shared {
    /// Replaced whole after each durable commit, so readers take a consistent snapshot.
    edge: RwLock<Arc<Edge>>,
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
    /// Reads the right edge of the tree from the store (building the tiles once for a log
    /// that predates them) and starts the appender.
    pub async fn open(store: SharedStore, key: LogKey, origin: String, clock: SharedClock) -> Result<Self, AuditError> {
        let size = store.audit_len().await?;
        let edge = match load_edge(&store, size).await {
            Ok(edge) => edge,
            Err(AuditError::Proof(_)) => {
                tracing::info!(
                    entries = size,
                    "building the audit log's tiles (once, for a log written before them)"
                );
                build_tiles(&store, size).await?;
                load_edge(&store, size).await?
            }
            Err(e) => return Err(e),
        };
        record_key_takeover(&store, &key, size, &clock).await?;
        let latest = store.latest_checkpoint().await?;
        let shared = Arc::new(Shared {
            edge: RwLock::new(Arc::new(edge)),
            latest_checkpoint: RwLock::new(latest),
            key,
            origin,
            store,
            clock,
        });
        let (jobs, rx) = mpsc::channel(1024);
        tokio::spawn(append_loop(shared.clone(), rx));
        let log = Self { jobs, shared };
        // Every commit signs its checkpoint; this covers an empty log and one written before.
        log.publish_checkpoint().await?;
        Ok(log)
    }

    /// Records `events` durably, in order; returns one receipt per event. Callers disclose
    /// nothing until this returns `Ok`.
    pub async fn record(&self, events: Vec<Event>) -> Result<Vec<Receipt>, AuditError> {
        Ok(self.record_noting(events, Vec::new()).await?.receipts)
    }

    /// Records `events` and stores `notices` in the same durable commit: both or neither.
    pub async fn record_noting(&self, events: Vec<Event>, notices: Vec<Notice>) -> Result<Recorded, AuditError> {
        if events.is_empty() {
            return Ok(Recorded {
                receipts: Vec::new(),
                notices_upto: None,
            });
        }
        if notices.iter().any(|n| n.entry >= events.len()) {
            return Err(AuditError::Other("a notice follows no recorded event".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { events, notices, reply })
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

    pub fn size(&self) -> u64 {
        self.edge().size()
    }

    fn edge(&self) -> Arc<Edge> {
        read(&self.shared.edge).clone()
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

    pub async fn root_at(&self, size: u64) -> Result<Hash, AuditError> {
        let edge = self.checked_edge(size)?;
        with_tiles(&self.shared.store, &edge, &[], |n| merkle::root_at(n, size)).await
    }

    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        let edge = self.checked_edge(size)?;
        with_tiles(&self.shared.store, &edge, &[], |n| {
            merkle::inclusion_proof(n, index, size)
        })
        .await
    }

    /// The receipt of a stored entry against the latest checkpoint: what a reader verifies
    /// offline. `None` when no checkpoint covers it yet.
    pub async fn receipt_of(&self, index: u64, line: String) -> Result<Option<Receipt>, AuditError> {
        let Some(checkpoint) = self.latest_checkpoint().filter(|c| c.tree_size > index) else {
            return Ok(None);
        };
        let proof = self.inclusion_proof(index, checkpoint.tree_size).await?;
        Ok(Some(Receipt {
            audit_index: index,
            entry: line,
            checkpoint: checkpoint.note,
            inclusion_proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
        }))
    }

    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        let edge = self.checked_edge(new)?;
        with_tiles(&self.shared.store, &edge, &[], |n| {
            merkle::consistency_proof(n, old, new)
        })
        .await
    }

    fn checked_edge(&self, size: u64) -> Result<Arc<Edge>, AuditError> {
        let edge = self.edge();
        if size > edge.size() {
            return Err(ProofError::BeyondTree { size, len: edge.size() }.into());
        }
        Ok(edge)
    }

    /// Hash tile `index` of `level` at `width` hashes (256: full), if the tree has it.
    pub async fn tile(&self, level: u8, index: u64, width: usize) -> Result<Option<Vec<u8>>, AuditError> {
        let edge = self.edge();
        let id = TileId { level, index };
        let available = hashes_at_level(edge.size(), level).saturating_sub(index.saturating_mul(256));
        if available < width as u64 {
            return Ok(None);
        }
        if let Some((_, hashes)) = edge.partial_tiles().find(|(t, _)| *t == id) {
            return Ok(hashes.get(..width).map(tile_bytes));
        }
        let stored = self.shared.store.audit_tile(level, index).await?;
        Ok(stored.and_then(|b| b.get(..width * 32).map(<[u8]>::to_vec)))
    }

    /// The latest checkpoint as published: the log's signed note followed by the witnesses'
    /// cosignatures of it recorded so far (C2SP tlog-cosignature lines).
    pub async fn published_checkpoint(&self) -> Result<Option<String>, AuditError> {
        let Some(row) = self.latest_checkpoint() else {
            return Ok(None);
        };
        let lines = self.shared.store.cosignatures(row.tree_size).await?;
        Ok(Some(row.note + &lines.concat()))
    }

    pub fn latest_checkpoint(&self) -> Option<CheckpointRow> {
        read(&self.shared.latest_checkpoint).clone()
    }

    /// Signs and stores a checkpoint for the current size if none exists for it yet. Group
    /// commits sign their own; this is for a log that has none for its size (empty, or
    /// written before every commit was signed).
    pub async fn publish_checkpoint(&self) -> Result<(), AuditError> {
        let edge = self.edge();
        if self.latest_checkpoint().is_some_and(|c| c.tree_size >= edge.size()) {
            return Ok(());
        }
        let row = sign_checkpoint(&self.shared, edge.size(), edge.root())?;
        self.shared.store.put_checkpoint(&row).await?;
        advance_latest(&self.shared, row);
        Ok(())
    }
}

/// How many hashes tile level `level` has in a tree of `size` leaves.
fn hashes_at_level(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * TILE_HEIGHT).unwrap_or(0)
}

/// The one place a checkpoint is made: the C2SP checkpoint of `(size, root)` as a signed note.
/// Cosignatures (witnesses) attach here.
fn sign_checkpoint(shared: &Shared, size: u64, root: Hash) -> Result<CheckpointRow, AuditError> {
    let text = Checkpoint {
        origin: shared.origin.clone(),
        size,
        root,
    }
    .to_text();
    let note = sign_note(&text, &[shared.key.note_signer()]).map_err(|e| AuditError::Other(e.to_string()))?;
    Ok(CheckpointRow {
        tree_size: size,
        note,
        published_at: shared.clock.now(),
    })
}

/// The latest checkpoint only moves forward.
fn advance_latest(shared: &Shared, row: CheckpointRow) {
    let mut latest = write(&shared.latest_checkpoint);
    if latest.as_ref().is_none_or(|l| l.tree_size < row.tree_size) {
        *latest = Some(row);
    }
}

/// The right edge of a tree of `size` leaves, from the stored partial tiles (one per level).
async fn load_edge(store: &SharedStore, size: u64) -> Result<Edge, AuditError> {
    let mut partials = Vec::new();
    let mut level: u8 = 0;
    while hashes_at_level(size, level) > 0 {
        let count = hashes_at_level(size, level);
        if !count.is_multiple_of(256) {
            let id = TileId {
                level,
                index: count / 256,
            };
            if let Some(hashes) = store
                .audit_tile(level, id.index)
                .await?
                .as_deref()
                .and_then(tile_hashes)
            {
                partials.push((id, hashes));
            }
        }
        level += 1;
    }
    Ok(Edge::from_partials(size, |id| {
        partials.iter().find(|(t, _)| *t == id).map(|(_, h)| h.clone())
    })?)
}

/// Builds and stores every tile of a log written before tiles existed, page by page.
async fn build_tiles(store: &SharedStore, size: u64) -> Result<(), AuditError> {
    let mut edge = Edge::new();
    while edge.size() < size {
        let start = edge.size();
        let rows = store
            .audit_entries(start, size.min(start.saturating_add(BACKFILL_PAGE)))
            .await?;
        if rows.is_empty() {
            return Err(StoreError::Corrupt("audit log has a gap").into());
        }
        let mut filled = Vec::new();
        for row in rows {
            if row.index != edge.size() {
                return Err(StoreError::Corrupt("audit log has a gap").into());
            }
            edge.push(row.leaf_hash, &mut filled);
        }
        let commit = AuditCommit {
            tiles: tile_rows(start, &edge, &filled),
            ..AuditCommit::default()
        };
        store.append_audit_commit(&commit).await?;
    }
    Ok(())
}

/// The tiles a commit from `before` leaves to `edge` changed: those it filled, and the partial
/// tile of every level that gained a hash.
fn tile_rows(before: u64, edge: &Edge, filled: &[FullTile]) -> Vec<AuditTileRow> {
    let mut rows: Vec<AuditTileRow> = filled
        .iter()
        .map(|t| AuditTileRow {
            level: t.id.level,
            index: t.id.index,
            hashes: tile_bytes(t.hashes()),
        })
        .collect();
    for (id, hashes) in edge.partial_tiles() {
        if hashes_at_level(before, id.level) != hashes_at_level(edge.size(), id.level) {
            rows.push(AuditTileRow {
                level: id.level,
                index: id.index,
                hashes: tile_bytes(hashes),
            });
        }
    }
    rows
}

/// Runs `f` over the nodes of `edge`'s tree: a dry run names the full tiles it needs, which are
/// taken from `known` (just written) or read from the store, then the real run.
async fn with_tiles<T>(
    store: &SharedStore,
    edge: &Edge,
    known: &[FullTile],
    f: impl Fn(&dyn Nodes) -> Result<T, ProofError>,
) -> Result<T, AuditError> {
    let recorder = TileRecorder::default();
    f(&recorder)?;
    let mut nodes = TileNodes::new(edge);
    for id in recorder.tiles() {
        if nodes.has(id) {
            continue;
        }
        if let Some(t) = known.iter().find(|t| t.id == id) {
            nodes.add_filled(t);
            continue;
        }
        let hashes = store
            .audit_tile(id.level, id.index)
            .await?
            .as_deref()
            .and_then(tile_hashes)
            .filter(|h| h.len() == 256)
            .ok_or(StoreError::Corrupt("a full audit tile is missing"))?;
        nodes.add_full(id, &hashes);
    }
    Ok(f(&nodes)?)
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
            activated_at: Some(clock.now()),
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
        match commit_continuing(&shared, &jobs).await {
            Ok((receipts, notices_upto)) => {
                let mut receipts = receipts.into_iter();
                for job in jobs {
                    let mine: Vec<Receipt> = receipts.by_ref().take(job.events.len()).collect();
                    let _ = job.reply.send(Ok(Recorded {
                        receipts: mine,
                        notices_upto,
                    }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = count, "audit commit failed; the requests waiting on it disclose nothing");
                for job in jobs {
                    let _ = job.reply.send(Err(AuditError::Unavailable));
                }
            }
        }
    }
}

/// How often a commit is sealed again after finding that the log has grown meanwhile.
const CATCH_UP_ATTEMPTS: usize = 8;

/// `commit`, continuing the log as it is stored: when another gateway instance sharing the
/// store (or a commit of ours whose answer was lost) has appended meanwhile, the store refuses
/// the batch untouched; the right edge is read again from the stored tiles and the batch
/// sealed at the new end. Indices stay continuous across instances: one log, one tree.
async fn commit_continuing(shared: &Shared, jobs: &[Job]) -> Result<(Vec<Receipt>, Option<i64>), AuditError> {
    let mut attempts = 0;
    loop {
        match commit(shared, jobs).await {
            Err(AuditError::Store(StoreError::AuditBehind { stored })) if attempts < CATCH_UP_ATTEMPTS => {
                attempts += 1;
                let edge = load_edge(&shared.store, stored).await?;
                tracing::debug!(stored, "the audit log grew elsewhere; sealing again at its end");
                *write(&shared.edge) = Arc::new(edge);
                if let Some(row) = shared.store.latest_checkpoint().await? {
                    advance_latest(shared, row);
                }
            }
            other => return other,
        }
    }
}

/// One group commit: entries, tiles, checkpoint and the jobs' notices in one transaction; then
/// the edge moves and the receipts are built against the checkpoint.
async fn commit(shared: &Shared, jobs: &[Job]) -> Result<(Vec<Receipt>, Option<i64>), AuditError> {
    let before = read(&shared.edge).clone();
    let start = before.size();
    let time = entry_time(shared.clock.now());
    let sealed: Vec<(&Event, Sealed)> = jobs
        .iter()
        .flat_map(|j| j.events.iter())
        .zip(start..)
        .map(|(event, index)| Ok((event, seal_at(index, &time, event)?)))
        .collect::<Result<_, serde_json::Error>>()
        .map_err(|e| AuditError::Other(format!("entry could not be sealed: {e}")))?;
    let mut edge = (*before).clone();
    let mut filled = Vec::new();
    for (_, s) in &sealed {
        edge.push(s.leaf_hash, &mut filled);
    }
    let checkpoint = sign_checkpoint(shared, edge.size(), edge.root())?;
    // The lines move into the rows, and from the rows into the receipts: never copied.
    let entries = sealed
        .into_iter()
        .map(|(event, s)| AuditRow {
            index: s.index,
            line: s.line,
            leaf_hash: s.leaf_hash,
            kind: event.kind().to_owned(),
            center_id: event.case().map(|(c, _)| c.to_owned()),
            case_id: event.case().map(|(_, c)| c.to_owned()),
        })
        .collect();
    let commit = AuditCommit {
        entries,
        tiles: tile_rows(start, &edge, &filled),
        checkpoint: Some(checkpoint.clone()),
        center_events: notice_rows(start, jobs),
    };
    let notices_upto = shared.store.append_audit_commit(&commit).await?;
    crate::metrics::global().audit_appended(commit.entries.len());

    // Durable: from here the tree has these entries, whatever happens to the receipts.
    let edge = Arc::new(edge);
    *write(&shared.edge) = edge.clone();
    advance_latest(shared, checkpoint.clone());

    let size = edge.size();
    let proofs = with_tiles(&shared.store, &edge, &filled, |nodes| {
        (start..size)
            .map(|i| merkle::inclusion_proof(nodes, i, size))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let receipts = commit
        .entries
        .into_iter()
        .zip(proofs)
        .map(|(row, proof)| Receipt {
            audit_index: row.index,
            entry: row.line,
            checkpoint: checkpoint.note.clone(),
            inclusion_proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
        })
        .collect();
    Ok((receipts, notices_upto))
}

/// The jobs' notices as center events, each naming the index its entry is sealed at when the
/// commit's first entry is at `start`.
fn notice_rows(start: u64, jobs: &[Job]) -> Vec<CenterEventRow> {
    let mut rows = Vec::new();
    let mut first = start;
    for job in jobs {
        rows.extend(job.notices.iter().map(|n| CenterEventRow {
            seq: 0,
            center_id: n.center_id.clone(),
            kind: n.kind.to_owned(),
            at: n.at,
            body: (n.body)(first.saturating_add(n.entry as u64)),
        }));
        first = first.saturating_add(job.events.len() as u64);
    }
    rows
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
