//! The tree as C2SP tlog-tiles (https://c2sp.org/tlog-tiles): hash tiles of height 8 and entry
//! bundles, their paths, and the right edge of the tree — the only part of it the gateway keeps
//! in memory.
//!
//! A hash at tile level `L` is the root of a complete subtree of `256^L` leaves; tile `N` of
//! level `L` holds hashes `256·N ..` of that level, at most 256. A tile that is not yet full is
//! *partial*; since every hash in it is final, the partial tile of width `W` is the first `W`
//! hashes of the full tile it becomes. The store therefore keeps one row per tile that grows
//! until it is full, and any width up to the stored one can be served.

use std::collections::HashMap;

use super::merkle::{Hash, Nodes, ProofError, Tree, fold_right_edge};

/// Hashes per full tile.
pub const TILE_WIDTH: usize = 256;
/// Tree levels per tile level.
pub const TILE_HEIGHT: u32 = 8;
/// The largest tile level the spec allows.
pub const MAX_TILE_LEVEL: u8 = 63;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`
    Hashes { level: u8, index: u64, width: Option<u8> },
    /// `tile/entries/<N>[.p/<W>]`
    Entries { index: u64, width: Option<u8> },
}

impl TilePath {
    /// The path below the log's prefix, e.g. `tile/0/x001/x234/067.p/8`.
    pub fn to_path(&self) -> String {
        let (head, index, width) = match self {
            TilePath::Hashes { level, index, width } => (level.to_string(), *index, *width),
            TilePath::Entries { index, width } => ("entries".to_owned(), *index, *width),
        };
        let mut out = format!("tile/{head}/{}", encode_index(index));
        if let Some(w) = width {
            out.push_str(&format!(".p/{w}"));
        }
        out
    }

    /// Parses the part after `tile/`; only canonical paths are accepted (each path has exactly
    /// one spelling, as the spec requires for immutable, cacheable resources).
    pub fn parse_after_tile(rest: &str) -> Option<Self> {
        let (head, tail) = rest.split_once('/')?;
        let (index_part, width) = match tail.rsplit_once(".p/") {
            Some((index_part, w)) => (index_part, Some(parse_width(w)?)),
            None => (tail, None),
        };
        let index = parse_index(index_part)?;
        let path = if head == "entries" {
            TilePath::Entries { index, width }
        } else {
            let canonical = head == "0" || (!head.starts_with('0') && !head.is_empty());
            if !canonical || !head.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let level: u8 = head.parse().ok()?;
            if level > MAX_TILE_LEVEL {
                return None;
            }
            TilePath::Hashes { level, index, width }
        };
        Some(path)
    }

    /// How many hashes (or entries) the path asks for.
    pub fn width(&self) -> usize {
        match self {
            TilePath::Hashes { width, .. } | TilePath::Entries { width, .. } => width.map_or(TILE_WIDTH, usize::from),
        }
    }
}

/// `N` as zero-padded 3-digit path elements, all but the last prefixed with `x`:
/// 1234067 → `x001/x234/067`.
pub fn encode_index(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

fn parse_index(s: &str) -> Option<u64> {
    let mut n: u64 = 0;
    let elements: Vec<&str> = s.split('/').collect();
    let last = elements.len().checked_sub(1)?;
    for (i, element) in elements.iter().enumerate() {
        let digits = if i == last {
            Some(*element)
        } else {
            element.strip_prefix('x')
        }?;
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
    }
    // Leading x000 elements would be a second spelling of the same index.
    (encode_index(n) == s).then_some(n)
}

fn parse_width(w: &str) -> Option<u8> {
    if w.starts_with('0') || w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    w.parse::<u8>().ok().filter(|w| *w >= 1)
}

/// The tile coordinates of a hash: tile level `L`, tile index `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
}

/// The tile that holds tree node `(level, index)` (`MTH` of leaves `index·2^level ..`), and the
/// node's coordinates within that tile's own height-8 tree.
pub fn locate(level: u32, index: u64) -> Option<(TileId, u32, u64)> {
    let tile_level = u8::try_from(level / TILE_HEIGHT).ok()?;
    let within = level % TILE_HEIGHT;
    let span = TILE_HEIGHT - within;
    let tile = TileId {
        level: tile_level,
        index: index >> span,
    };
    Some((tile, within, index & ((1 << span) - 1)))
}

/// The right edge of the tree: for each tile level, the hashes of its rightmost tile that is
/// not yet full (fewer than 256). Everything left of it is in full tiles in the store, which
/// never change. Its size is bounded by the number of levels (8 tile levels hold 2^64 leaves),
/// not by the log.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    size: u64,
    partial: Vec<Tree>,
}

/// A tile that a push filled, to be stored (its 256 hashes), with the height-8 tree the edge
/// built over them: proofs of the commit that filled it use it without hashing it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullTile {
    pub id: TileId,
    tree: Tree,
}

impl FullTile {
    /// Its 256 hashes.
    pub fn hashes(&self) -> &[Hash] {
        self.tree.leaves()
    }
}

impl Edge {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the edge of a tree of `size` leaves from its partial tiles: `partial(level,
    /// index)` returns the stored hashes of that tile (at least as many as the size needs).
    pub fn from_partials(size: u64, mut partial: impl FnMut(TileId) -> Option<Vec<Hash>>) -> Result<Self, ProofError> {
        let mut edge = Edge {
            size,
            partial: Vec::new(),
        };
        let mut level: u8 = 0;
        loop {
            let shift = u32::from(level) * TILE_HEIGHT;
            let hashes_at_level = size.checked_shr(shift).unwrap_or(0);
            if hashes_at_level == 0 {
                break;
            }
            let width = usize::try_from(hashes_at_level % TILE_WIDTH as u64).unwrap_or(0);
            let id = TileId {
                level,
                index: hashes_at_level / TILE_WIDTH as u64,
            };
            let tree = if width == 0 {
                Tree::new()
            } else {
                let stored = partial(id).unwrap_or_default();
                let hashes = stored.get(..width).ok_or(ProofError::MissingNode {
                    level: shift,
                    index: id.index,
                })?;
                Tree::from_leaf_hashes(hashes.iter().copied())
            };
            edge.partial.push(tree);
            level = level.checked_add(1).ok_or(ProofError::BeyondTree { size, len: size })?;
        }
        Ok(edge)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; tiles it fills are added to `filled`, lowest level first.
    pub fn push(&mut self, leaf: Hash, filled: &mut Vec<FullTile>) {
        self.size += 1;
        let mut carry = leaf;
        let mut level = 0usize;
        loop {
            if self.partial.len() <= level {
                self.partial.push(Tree::new());
            }
            let Some(tree) = self.partial.get_mut(level) else {
                return;
            };
            tree.push(carry);
            if tree.len() < TILE_WIDTH as u64 {
                return;
            }
            carry = tree.root();
            let full = std::mem::take(tree);
            let index = (self.size >> ((level as u32 + 1) * TILE_HEIGHT)).saturating_sub(1);
            filled.push(FullTile {
                id: TileId {
                    level: u8::try_from(level).unwrap_or(MAX_TILE_LEVEL),
                    index,
                },
                tree: full,
            });
            level += 1;
        }
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        let subtrees: Vec<Hash> = self.partial.iter().rev().flat_map(Tree::perfect_subtrees).collect();
        fold_right_edge(&subtrees)
    }

    /// The partial tiles with at least one hash, as stored: `(tile, hashes)`.
    pub fn partial_tiles(&self) -> impl Iterator<Item = (TileId, &[Hash])> {
        self.partial.iter().enumerate().filter_map(|(level, tree)| {
            let level = u8::try_from(level).ok()?;
            let index = self.size >> ((u32::from(level) + 1) * TILE_HEIGHT);
            (!tree.is_empty()).then(|| (TileId { level, index }, tree.leaves()))
        })
    }

    /// The partial tile `id`, if it is this edge's.
    fn partial_tree(&self, id: TileId) -> Option<&Tree> {
        let shift = (u32::from(id.level) + 1) * TILE_HEIGHT;
        if self.size.checked_shr(shift).unwrap_or(0) != id.index {
            return None;
        }
        self.partial.get(usize::from(id.level))
    }

    /// Whether the hashes of tile `id` are all in the edge (it is partial at this size).
    pub fn holds(&self, id: TileId) -> bool {
        self.partial_tree(id).is_some()
    }
}

/// Node hashes from the right edge plus whichever full tiles were loaded: the source the proof
/// algorithms of `merkle` run on. Each loaded tile is expanded once into its height-8 tree.
#[derive(Debug, Default)]
pub struct TileNodes<'a> {
    edge: Option<&'a Edge>,
    full: HashMap<TileId, Tree>,
}

impl<'a> TileNodes<'a> {
    pub fn new(edge: &'a Edge) -> Self {
        Self {
            edge: Some(edge),
            full: HashMap::new(),
        }
    }

    pub fn add_full(&mut self, id: TileId, hashes: &[Hash]) {
        self.full
            .entry(id)
            .or_insert_with(|| Tree::from_leaf_hashes(hashes.iter().copied()));
    }

    /// A tile that was just filled, with the tree the edge built over it.
    pub fn add_filled(&mut self, tile: &FullTile) {
        self.full.entry(tile.id).or_insert_with(|| tile.tree.clone());
    }

    pub fn has(&self, id: TileId) -> bool {
        self.full.contains_key(&id) || self.edge.is_some_and(|e| e.holds(id))
    }
}

impl Nodes for TileNodes<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let missing = ProofError::MissingNode { level, index };
        let (tile, within, at) = locate(level, index).ok_or(missing.clone())?;
        let tree = self
            .edge
            .and_then(|e| e.partial_tree(tile))
            .or_else(|| self.full.get(&tile))
            .ok_or(missing.clone())?;
        tree.node(within, at).map_err(|_| missing)
    }
}

/// A node source that answers with zeros and remembers which tiles were asked for: the proof
/// algorithms ask for the same nodes whatever the hashes are, so one dry run tells which full
/// tiles to load before the real one.
#[derive(Debug, Default)]
pub struct TileRecorder {
    tiles: std::cell::RefCell<Vec<TileId>>,
}

impl TileRecorder {
    pub fn tiles(self) -> Vec<TileId> {
        let mut tiles = self.tiles.into_inner();
        tiles.sort_unstable();
        tiles.dedup();
        tiles
    }
}

impl Nodes for TileRecorder {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let (tile, _, _) = locate(level, index).ok_or(ProofError::MissingNode { level, index })?;
        self.tiles.borrow_mut().push(tile);
        Ok([0; 32])
    }
}

/// The bytes of a hash tile: its hashes concatenated.
pub fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.iter().copied()).collect()
}

/// The hashes of a stored tile's bytes.
pub fn tile_hashes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(32) || bytes.len() > TILE_WIDTH * 32 {
        return None;
    }
    bytes.chunks_exact(32).map(|c| <Hash>::try_from(c).ok()).collect()
}

/// An entry bundle: each entry as a big-endian uint16 length and its bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, usize> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).map_err(|_| entry.len())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries; `None` if it is malformed.
pub fn split_bundle(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (entry, rest) = rest.split_at_checked(len)?;
        out.push(entry);
        bytes = rest;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::super::merkle::{
        consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root_at, verify_consistency,
        verify_inclusion,
    };
    use super::*;

    /// RFC 9162 MTH written out independently of `merkle::Tree`.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    #[test]
    fn paths_are_encoded_as_the_spec_lays_them_out() {
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        let p = TilePath::Hashes {
            level: 0,
            index: 1_234_067,
            width: Some(8),
        };
        assert_eq!(p.to_path(), "tile/0/x001/x234/067.p/8");
        assert_eq!(TilePath::parse_after_tile("0/x001/x234/067.p/8"), Some(p));
        let e = TilePath::Entries { index: 5, width: None };
        assert_eq!(e.to_path(), "tile/entries/005");
        assert_eq!(TilePath::parse_after_tile("entries/005"), Some(e));
        assert_eq!(
            TilePath::parse_after_tile("63/000"),
            Some(TilePath::Hashes {
                level: 63,
                index: 0,
                width: None
            })
        );
        for bad in [
            "0/5",
            "0/0005",
            "0/x000/005",
            "0/001/002",
            "x0/000",
            "01/000",
            "64/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/08",
            "0/000.p/",
            "0/000.p",
            "entries/x1/000",
            "0/",
            "0",
            "-1/000",
            "0/000.p/1/2",
            "entry/000",
            "0/x1/234",
        ] {
            assert_eq!(TilePath::parse_after_tile(bad), None, "{bad}");
        }
    }

    /// The spec's example: a tree of 70,000 leaves is 273 full level-0 tiles, a partial level-0
    /// tile of width 112, one full level-1 tile, a partial level-1 tile of width 17 and a partial
    /// level-2 tile of width 1; a tree of 256 is one full level-0 tile and a level-1 tile of 1.
    #[test]
    fn the_spec_examples_have_the_tiles_it_lists() {
        let all = leaves(70_000);
        let mut edge = Edge::new();
        let mut full = Vec::new();
        for (i, leaf) in all.iter().enumerate() {
            edge.push(*leaf, &mut full);
            if i == 255 {
                assert_eq!(full.len(), 1);
                let partial: Vec<_> = edge.partial_tiles().map(|(id, h)| (id, h.len())).collect();
                assert_eq!(partial, vec![(TileId { level: 1, index: 0 }, 1)]);
            }
        }
        let level0 = full.iter().filter(|t| t.id.level == 0).count();
        let level1 = full.iter().filter(|t| t.id.level == 1).count();
        assert_eq!((level0, level1, full.len()), (273, 1, 274));
        let partial: Vec<_> = edge.partial_tiles().map(|(id, h)| (id, h.len())).collect();
        assert_eq!(
            partial,
            vec![
                (TileId { level: 0, index: 273 }, 112),
                (TileId { level: 1, index: 1 }, 17),
                (TileId { level: 2, index: 0 }, 1),
            ]
        );
        // Every hash of every tile is the MTH the spec defines for it.
        for tile in &full {
            let span = 256usize.pow(u32::from(tile.id.level));
            for (i, h) in tile.hashes().iter().enumerate() {
                let start = (tile.id.index as usize * 256 + i) * span;
                assert_eq!(*h, mth(&all[start..start + span]), "{:?} hash {i}", tile.id);
            }
        }
        for (id, hashes) in edge.partial_tiles() {
            let span = 256usize.pow(u32::from(id.level));
            for (i, h) in hashes.iter().enumerate() {
                let start = (id.index as usize * 256 + i) * span;
                assert_eq!(*h, mth(&all[start..start + span]), "{id:?} hash {i}");
            }
        }
        assert_eq!(edge.root(), mth(&all));
    }

    #[test]
    fn proofs_from_tiles_match_the_in_memory_tree_and_verify() {
        let all = leaves(70_000);
        let tree = Tree::from_leaf_hashes(all.iter().copied());
        let mut edge = Edge::new();
        let mut full = Vec::new();
        for (n, leaf) in all.iter().enumerate() {
            edge.push(*leaf, &mut full);
            let size = n as u64 + 1;
            if size < 600 || size.is_multiple_of(4_999) || size == 65_536 || size == 70_000 {
                assert_eq!(edge.root(), tree.root_at(size).unwrap(), "size {size}");
            }
        }
        let mut nodes = TileNodes::new(&edge);
        for t in &full {
            nodes.add_full(t.id, t.hashes());
        }
        for (index, size) in [
            (0, 1),
            (0, 70_000),
            (69_999, 70_000),
            (65_535, 65_536),
            (255, 300),
            (12_345, 67_890),
        ] {
            let proof = inclusion_proof(&nodes, index, size).unwrap();
            assert_eq!(proof, tree.inclusion_proof(index, size).unwrap());
            let root = root_at(&nodes, size).unwrap();
            assert_eq!(root, mth(&all[..size as usize]));
            verify_inclusion(&all[index as usize], index, size, &proof, &root).unwrap();
        }
        for (old, new) in [
            (1, 70_000),
            (256, 65_536),
            (300, 69_999),
            (65_536, 70_000),
            (70_000, 70_000),
        ] {
            let proof = consistency_proof(&nodes, old, new).unwrap();
            assert_eq!(proof, tree.consistency_proof(old, new).unwrap());
            verify_consistency(old, new, &proof, &mth(&all[..old as usize]), &mth(&all[..new as usize])).unwrap();
        }
        // A dry run names exactly the tiles the real one reads.
        let recorder = TileRecorder::default();
        inclusion_proof(&recorder, 12_345, 67_890).unwrap();
        let wanted = recorder.tiles();
        let mut only = TileNodes::new(&edge);
        for t in full.iter().filter(|t| wanted.contains(&t.id)) {
            only.add_full(t.id, t.hashes());
        }
        assert_eq!(
            inclusion_proof(&only, 12_345, 67_890),
            tree.inclusion_proof(12_345, 67_890)
        );
    }

    #[test]
    fn the_edge_rebuilds_from_stored_partial_tiles() {
        let all = leaves(66_000);
        let mut edge = Edge::new();
        let mut stored: HashMap<TileId, Vec<Hash>> = HashMap::new();
        let mut full = Vec::new();
        for leaf in &all {
            edge.push(*leaf, &mut full);
        }
        for t in full {
            stored.insert(t.id, t.hashes().to_vec());
        }
        for (id, h) in edge.partial_tiles() {
            stored.insert(id, h.to_vec());
        }
        let rebuilt = Edge::from_partials(66_000, |id| stored.get(&id).cloned()).unwrap();
        assert_eq!(rebuilt.root(), edge.root());
        assert_eq!(rebuilt.size(), 66_000);
        // A smaller size reads prefixes of the same tiles.
        let smaller = Edge::from_partials(65_537, |id| stored.get(&id).cloned()).unwrap();
        assert_eq!(smaller.root(), mth(&all[..65_537]));
        assert!(Edge::from_partials(66_000, |_| None).is_err());
        assert_eq!(Edge::from_partials(0, |_| None).unwrap().root(), empty_root());
    }

    #[test]
    fn entry_bundles_are_length_prefixed_entries() {
        let bundle = entry_bundle([b"ab".as_slice(), b"".as_slice(), &[7u8; 300]]).unwrap();
        assert_eq!(&bundle[..4], &[0, 2, b'a', b'b']);
        assert_eq!(&bundle[4..6], &[0, 0]);
        assert_eq!(&bundle[6..8], &[1, 44]);
        assert_eq!(bundle.len(), 8 + 300);
        let split = split_bundle(&bundle).unwrap();
        assert_eq!(split.len(), 3);
        assert_eq!(split[2], &[7u8; 300]);
        assert!(split_bundle(&bundle[..bundle.len() - 1]).is_none());
        assert!(entry_bundle([vec![0u8; 70_000].as_slice()]).is_err());
    }
}
