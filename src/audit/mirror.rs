//! `audit mirror`: an auditor's own copy of the log, which the operator cannot rewrite. Each run
//! fetches the latest checkpoint and only the tiles and entry bundles that are new since the
//! previous run, checks every one of them against the tiles below it and the entries, checks
//! that the tree they make has the signed root, and that the checkpoint seen last time is the
//! root of a prefix of that same tree (so the log only grew). Only then does it record the new
//! checkpoint. The folder is itself laid out as a C2SP tlog-tiles log (`checkpoint`,
//! `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`), so it can be served as is.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::merkle::{Hash, Nodes, ProofError, Tree, leaf_hash, root_at};
use super::note::{Checkpoint, NoteVerifier, open_note};
use super::tiles::{TILE_HEIGHT, TILE_WIDTH, TileId, TilePath, split_bundle, tile_bytes, tile_hashes};
use super::verify::{KeyLine, Validity};
use crate::client::{Connection, GatewayClient};

/// Where the gateway serves the log.
const PREFIX: &str = "/v1/audit/";
const CHECKPOINT_FILE: &str = "checkpoint";
const CHECKPOINTS_DIR: &str = "checkpoints";

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("fetching {path}: {reason}")]
    Fetch { path: String, reason: String },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("{0}")]
    Invalid(String),
    #[error("rollback or fork: {0}")]
    Rollback(String),
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSummary {
    pub origin: String,
    pub size: u64,
    pub previous: Option<u64>,
    pub tiles_fetched: usize,
    pub bundles_fetched: usize,
}

impl std::fmt::Display for MirrorSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "OK: mirror of {} at tree size {}", self.origin, self.size)?;
        match self.previous {
            Some(p) => writeln!(f, "  consistent with the checkpoint of size {p} seen before")?,
            None => writeln!(f, "  first run")?,
        }
        writeln!(
            f,
            "  fetched {} hash tiles and {} entry bundles, each checked",
            self.tiles_fetched, self.bundles_fetched
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MirrorError + '_ {
    move |e| MirrorError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Opens a checkpoint note with the trusted keys: signed by one of them, whose name is the
/// origin and whose validity (if given) covers the size.
pub fn open_checkpoint(note: &str, trusted: &[KeyLine]) -> Result<Checkpoint, MirrorError> {
    let bad = |e: String| MirrorError::Checkpoint(e);
    let verifiers: Vec<NoteVerifier> = trusted.iter().map(|k| k.verifier.clone()).collect();
    let opened = open_note(note, &verifiers).map_err(|e| bad(e.to_string()))?;
    let checkpoint = Checkpoint::parse(opened.text).map_err(|e| bad(e.to_string()))?;
    let signer = opened
        .verified_by
        .first()
        .and_then(|i| trusted.get(*i))
        .ok_or_else(|| bad("no signature by a trusted key".into()))?;
    if signer.verifier.name() != checkpoint.origin {
        return Err(bad("signed by the key of another log".into()));
    }
    if !signer
        .validity
        .unwrap_or(Validity::ALWAYS)
        .covers_checkpoint(checkpoint.size)
    {
        return Err(bad("the signing key is not valid for this tree size".into()));
    }
    Ok(checkpoint)
}

struct Fetcher<'a> {
    client: &'a GatewayClient,
    conn: Option<Connection>,
}

impl Fetcher<'_> {
    async fn get(&mut self, path: &str) -> Result<Vec<u8>, MirrorError> {
        let full = format!("{PREFIX}{path}");
        let fail = |reason: String| MirrorError::Fetch {
            path: full.clone(),
            reason,
        };
        // One connection for the run; a connection the server closed is opened again once.
        for attempt in 0..2 {
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self
                    .conn
                    .insert(self.client.connect().await.map_err(|e| fail(e.to_string()))?),
            };
            match conn.send(hyper::Method::GET, &full, None, None).await {
                Ok(reply) if reply.status.is_success() => return Ok(reply.body.to_vec()),
                Ok(reply) => return Err(fail(format!("status {}", reply.status))),
                Err(e) if attempt == 0 => {
                    tracing::debug!(error = %e, "reconnecting");
                    self.conn = None;
                }
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        Err(fail("no connection".into()))
    }
}

fn hashes_at_level(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * TILE_HEIGHT).unwrap_or(0)
}

/// The file of a tile path inside the mirror folder.
fn file_of(out: &Path, path: &TilePath) -> PathBuf {
    out.join(path.to_path())
}

/// Writes `bytes` at `path` through a temporary file, so a file is either whole or absent.
fn store_tile(out: &Path, tile: &TilePath, bytes: &[u8]) -> Result<PathBuf, MirrorError> {
    let path = file_of(out, tile);
    let dir = path
        .parent()
        .ok_or_else(|| MirrorError::Invalid("bad tile path".into()))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("incoming");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// After a successful run: drops the older partial versions of the tiles it wrote.
fn prune_partials(out: &Path, written: &[TilePath]) {
    for tile in written {
        let full = match *tile {
            TilePath::Hashes { level, index, .. } => TilePath::Hashes {
                level,
                index,
                width: None,
            },
            TilePath::Entries { index, .. } => TilePath::Entries { index, width: None },
        };
        let keep = file_of(out, tile);
        let partials = PathBuf::from(format!("{}.p", file_of(out, &full).display()));
        if let Ok(listing) = std::fs::read_dir(&partials) {
            for item in listing.flatten() {
                if item.path() != keep {
                    let _ = std::fs::remove_file(item.path());
                }
            }
        }
    }
}

/// The tile paths of a tree of `size` leaves at `level`: `(index, width)`, width 256 = full.
fn tiles_at(size: u64, level: u8) -> impl Iterator<Item = (u64, usize)> {
    let count = hashes_at_level(size, level);
    let full = count / TILE_WIDTH as u64;
    let partial = usize::try_from(count % TILE_WIDTH as u64).unwrap_or(0);
    (0..full)
        .map(|n| (n, TILE_WIDTH))
        .chain((partial > 0).then_some((full, partial)))
}

fn path_for(level: Option<u8>, index: u64, width: usize) -> TilePath {
    let width = (width < TILE_WIDTH).then(|| u8::try_from(width).unwrap_or(u8::MAX));
    match level {
        Some(level) => TilePath::Hashes { level, index, width },
        None => TilePath::Entries { index, width },
    }
}

/// Node hashes from the mirror's files for a tree of `size` leaves.
struct LocalTiles<'a> {
    out: &'a Path,
    size: u64,
    cache: RefCell<HashMap<TileId, Tree>>,
}

impl LocalTiles<'_> {
    fn load(&self, id: TileId) -> Option<Tree> {
        let count = hashes_at_level(self.size, id.level);
        let width = usize::try_from(count.saturating_sub(id.index * TILE_WIDTH as u64))
            .unwrap_or(TILE_WIDTH)
            .min(TILE_WIDTH);
        let bytes = std::fs::read(file_of(self.out, &path_for(Some(id.level), id.index, width))).ok()?;
        Some(Tree::from_leaf_hashes(tile_hashes(&bytes)?))
    }
}

impl Nodes for LocalTiles<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let missing = ProofError::MissingNode { level, index };
        let (tile, within, at) = super::tiles::locate(level, index).ok_or(missing.clone())?;
        let mut cache = self.cache.borrow_mut();
        let tree = match cache.entry(tile) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(self.load(tile).ok_or(missing.clone())?),
        };
        tree.node(within, at).map_err(|_| missing)
    }
}

/// The root of full tile `(level, index)` from the mirror's file.
fn full_tile_root(out: &Path, level: u8, index: u64) -> Result<Hash, MirrorError> {
    let path = file_of(out, &path_for(Some(level), index, TILE_WIDTH));
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let hashes = tile_hashes(&bytes)
        .filter(|h| h.len() == TILE_WIDTH)
        .ok_or_else(|| MirrorError::Invalid(format!("{} is not a full tile", path.display())))?;
    Ok(Tree::from_leaf_hashes(hashes).root())
}

/// One run of the mirror into `out` (created if absent).
pub async fn mirror(client: &GatewayClient, out: &Path, trusted: &[KeyLine]) -> Result<MirrorSummary, MirrorError> {
    if trusted.is_empty() {
        return Err(MirrorError::Checkpoint("no trusted key given".into()));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut fetcher = Fetcher { client, conn: None };
    let note_bytes = fetcher.get(CHECKPOINT_FILE).await?;
    let note = String::from_utf8(note_bytes).map_err(|_| MirrorError::Checkpoint("not UTF-8".into()))?;
    let new = open_checkpoint(&note, trusted)?;

    let previous_path = out.join(CHECKPOINT_FILE);
    let previous = match std::fs::read_to_string(&previous_path) {
        Ok(text) => Some(open_checkpoint(&text, trusted)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&previous_path)(e)),
    };
    if let Some(old) = &previous {
        if old.origin != new.origin {
            return Err(MirrorError::Checkpoint(format!(
                "the gateway serves log {:?}, the mirror holds {:?}",
                new.origin, old.origin
            )));
        }
        if new.size < old.size {
            return Err(MirrorError::Rollback(format!(
                "the gateway's checkpoint is of size {}, a checkpoint of size {} was seen before",
                new.size, old.size
            )));
        }
    }

    let mut written: Vec<TilePath> = Vec::new();
    let result = fetch_and_check(&mut fetcher, out, &new, previous.as_ref(), &mut written).await;
    let (tiles_fetched, bundles_fetched) = match result {
        Ok(counts) => counts,
        Err(e) => {
            // Nothing unverified stays: the next run fetches these again.
            for tile in &written {
                let _ = std::fs::remove_file(file_of(out, tile));
            }
            return Err(e);
        }
    };
    prune_partials(out, &written);

    let history = out.join(CHECKPOINTS_DIR);
    std::fs::create_dir_all(&history).map_err(io(&history))?;
    let kept = history.join(new.size.to_string());
    std::fs::write(&kept, &note).map_err(io(&kept))?;
    let tmp = out.join("checkpoint.incoming");
    std::fs::write(&tmp, &note).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &previous_path).map_err(io(&previous_path))?;
    Ok(MirrorSummary {
        origin: new.origin,
        size: new.size,
        previous: previous.map(|p| p.size),
        tiles_fetched,
        bundles_fetched,
    })
}

async fn fetch_and_check(
    fetcher: &mut Fetcher<'_>,
    out: &Path,
    new: &Checkpoint,
    previous: Option<&Checkpoint>,
    written: &mut Vec<TilePath>,
) -> Result<(usize, usize), MirrorError> {
    let (mut tiles, mut bundles) = (0, 0);
    let mut level: u8 = 0;
    while hashes_at_level(new.size, level) > 0 {
        for (index, width) in tiles_at(new.size, level) {
            let tile_path = path_for(Some(level), index, width);
            if file_of(out, &tile_path).exists() {
                continue; // fetched and checked by an earlier run; tiles never change
            }
            let bytes = fetcher.get(&tile_path.to_path()).await?;
            let hashes = tile_hashes(&bytes)
                .filter(|h| h.len() == width)
                .ok_or_else(|| MirrorError::Invalid(format!("{}: not {width} hashes", tile_path.to_path())))?;
            if level == 0 {
                // Each leaf hash must be the hash of the entry at its place.
                let bundle_path = path_for(None, index, width);
                let bundle = fetcher.get(&bundle_path.to_path()).await?;
                let entries = split_bundle(&bundle)
                    .ok_or_else(|| MirrorError::Invalid(format!("{}: malformed", bundle_path.to_path())))?;
                let matches = entries.len() == width && entries.iter().zip(&hashes).all(|(e, h)| leaf_hash(e) == *h);
                if !matches {
                    return Err(MirrorError::Invalid(format!(
                        "{}: its entries do not hash to {}",
                        bundle_path.to_path(),
                        tile_path.to_path()
                    )));
                }
                store_tile(out, &bundle_path, &bundle)?;
                written.push(bundle_path);
                bundles += 1;
            } else {
                // Each hash must be the root of the full tile below it.
                for (i, h) in hashes.iter().enumerate() {
                    let below = index * TILE_WIDTH as u64 + i as u64;
                    if full_tile_root(out, level - 1, below)? != *h {
                        return Err(MirrorError::Invalid(format!(
                            "{}: hash {i} is not the root of tile {}/{below}",
                            tile_path.to_path(),
                            level - 1
                        )));
                    }
                }
            }
            store_tile(out, &tile_path, &tile_bytes(&hashes))?;
            written.push(tile_path);
            tiles += 1;
        }
        level += 1;
    }
    // The tiles make the tree the checkpoint signs, and the one seen before is its prefix.
    let local = LocalTiles {
        out,
        size: new.size,
        cache: RefCell::new(HashMap::new()),
    };
    let root = root_at(&local, new.size).map_err(|e| MirrorError::Invalid(format!("the mirror's tiles: {e}")))?;
    if root != new.root {
        return Err(MirrorError::Invalid(
            "the tiles do not make the tree the checkpoint signs".into(),
        ));
    }
    if let Some(old) = previous {
        let old_root =
            root_at(&local, old.size).map_err(|e| MirrorError::Invalid(format!("the mirror's tiles: {e}")))?;
        if old_root != old.root {
            return Err(MirrorError::Rollback(format!(
                "the first {} entries are no longer those of the checkpoint seen before",
                old.size
            )));
        }
    }
    Ok((tiles, bundles))
}
