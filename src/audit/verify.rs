//! Offline verification of an exported audit log folder (docs/audit-log.md §5) with only
//! public keys. This is the algorithm `docs/audit-log.md` §6 specifies for independent
//! verifiers; `audit verify` is a thin wrapper around [`verify_folder`].
//!
//! The folder's own `verifier-keys` file is never trusted: it only supplies validity ranges for
//! keys the auditor already trusts (given with `--key`) when the auditor gave none.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;

use super::entry::verify_line;
use super::merkle::{Hash, Tree, verify_consistency};
use super::note::{Checkpoint, NoteVerifier, open_note};

pub const ENTRIES_FILE: &str = "entries.jsonl";
pub const CHECKPOINT_FILE: &str = "checkpoint";
pub const CHECKPOINTS_DIR: &str = "checkpoints";
pub const VERIFIER_KEYS_FILE: &str = "verifier-keys";

/// The first problem found, naming where it is. Verification stops at the first finding so
/// that "the first bad entry" is exact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error("{file}: {reason}")]
    Folder { file: String, reason: String },
    #[error("key file line {line}: {reason}")]
    Keys { line: usize, reason: String },
    #[error("entry {index} (line {line} of entries.jsonl): {reason}", line = index + 1)]
    Entry { index: u64, reason: String },
    #[error("{name}: {reason}")]
    Checkpoint { name: String, reason: String },
    #[error("rollback: {0}")]
    Rollback(String),
    /// A required witness cosigned no checkpoint of the export.
    #[error("witness {0}: no checkpoint carries a valid cosignature by this witness")]
    Unwitnessed(String),
    /// Entries without a signature of their own (v2) that no longer hash to the root the
    /// checkpoint covering them signed: one of `from..to` was changed.
    #[error(
        "entries {from}..{to} (lines {} to {to} of entries.jsonl): one of them is not what {checkpoint} signed \
         (rewritten history or a fork)",
        from + 1
    )]
    Entries { from: u64, to: u64, checkpoint: String },
}

/// Which entries and checkpoints a key may sign: entries with `from <= index < to`, checkpoints
/// with `from <= size <= to` (the checkpoint at the hand-over size covers only the old key's
/// entries, so either key may sign it). `to = None`: still in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub from: u64,
    pub to: Option<u64>,
}

impl Validity {
    pub const ALWAYS: Validity = Validity { from: 0, to: None };

    pub fn covers_entry(&self, index: u64) -> bool {
        index >= self.from && self.to.is_none_or(|to| index < to)
    }

    pub fn covers_checkpoint(&self, size: u64) -> bool {
        size >= self.from && self.to.is_none_or(|to| size <= to)
    }
}

/// One line of a `verifier-keys` file (or of an auditor's `--key` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLine {
    pub verifier: NoteVerifier,
    pub validity: Option<Validity>,
    pub activated: Option<String>,
}

impl KeyLine {
    /// `<verifier key>[ from=<index>[ to=<index>]][ activated=<RFC 3339>]`.
    pub fn to_text(&self) -> String {
        let mut out = self.verifier.to_text();
        if let Some(v) = self.validity {
            out.push_str(&format!(" from={}", v.from));
            if let Some(to) = v.to {
                out.push_str(&format!(" to={to}"));
            }
        }
        if let Some(at) = &self.activated {
            out.push_str(&format!(" activated={at}"));
        }
        out
    }
}

/// Parses a key file: one key per line, blank lines and `#` comments ignored.
pub fn parse_key_lines(text: &str) -> Result<Vec<KeyLine>, Finding> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let bad = |reason: String| Finding::Keys { line, reason };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut parts = trimmed.split(' ');
        let key = parts.next().unwrap_or_default();
        let verifier = NoteVerifier::parse(key).map_err(|e| bad(e.to_string()))?;
        let (mut from, mut to, mut activated) = (None, None, None);
        for part in parts {
            match part.split_once('=') {
                Some(("from", v)) if from.is_none() => from = Some(parse_index(v).map_err(bad)?),
                Some(("to", v)) if to.is_none() => to = Some(parse_index(v).map_err(bad)?),
                Some(("activated", v)) if activated.is_none() => activated = Some(v.to_owned()),
                _ => return Err(bad(format!("unexpected {part:?} (expected from=, to=, activated=)"))),
            }
        }
        let validity = match (from, to) {
            (None, None) => None,
            (Some(from), to) => {
                if to.is_some_and(|to| to < from) {
                    return Err(bad("to= is below from=".into()));
                }
                Some(Validity { from, to })
            }
            (None, Some(_)) => return Err(bad("to= without from=".into())),
        };
        if out.iter().any(|k: &KeyLine| k.verifier == verifier) {
            return Err(bad("key listed twice".into()));
        }
        out.push(KeyLine {
            verifier,
            validity,
            activated,
        });
    }
    Ok(out)
}

fn parse_index(v: &str) -> Result<u64, String> {
    let canonical = v == "0" || (!v.is_empty() && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return Err(format!("{v:?} is not an index"));
    }
    v.parse().map_err(|_| format!("{v:?} is too large"))
}

/// An exported folder, read into memory. Entry lines are kept as bytes: a verifier must hash
/// exactly what is on disk, even when it is not valid UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folder {
    /// `entries.jsonl` split at `\n`, without the newlines.
    pub entries: Vec<Vec<u8>>,
    /// Whether `entries.jsonl` ended without a final newline (a torn or truncated file).
    pub unterminated: bool,
    pub checkpoint: Vec<u8>,
    /// `checkpoints/<name>` → content, by file name.
    pub checkpoints: BTreeMap<String, Vec<u8>>,
    pub verifier_keys: Vec<u8>,
}

impl Folder {
    pub fn read(dir: &Path) -> Result<Self, Finding> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| Finding::Folder {
                file: name.to_owned(),
                reason: e.to_string(),
            })
        };
        let raw = read(ENTRIES_FILE)?;
        let (entries, unterminated) = split_lines(&raw);
        let mut checkpoints = BTreeMap::new();
        let listing = std::fs::read_dir(dir.join(CHECKPOINTS_DIR)).map_err(|e| Finding::Folder {
            file: CHECKPOINTS_DIR.into(),
            reason: e.to_string(),
        })?;
        for item in listing {
            let item = item.map_err(|e| Finding::Folder {
                file: CHECKPOINTS_DIR.into(),
                reason: e.to_string(),
            })?;
            let name = item.file_name().to_string_lossy().into_owned();
            let content = read(&format!("{CHECKPOINTS_DIR}/{name}"))?;
            checkpoints.insert(name, content);
        }
        Ok(Self {
            entries,
            unterminated,
            checkpoint: read(CHECKPOINT_FILE)?,
            checkpoints,
            verifier_keys: read(VERIFIER_KEYS_FILE)?,
        })
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join(CHECKPOINTS_DIR))?;
        let mut entries = Vec::new();
        for (i, line) in self.entries.iter().enumerate() {
            entries.extend_from_slice(line);
            if i + 1 < self.entries.len() || !self.unterminated {
                entries.push(b'\n');
            }
        }
        std::fs::write(dir.join(ENTRIES_FILE), entries)?;
        std::fs::write(dir.join(CHECKPOINT_FILE), &self.checkpoint)?;
        for (name, content) in &self.checkpoints {
            std::fs::write(dir.join(CHECKPOINTS_DIR).join(name), content)?;
        }
        std::fs::write(dir.join(VERIFIER_KEYS_FILE), &self.verifier_keys)
    }
}

fn split_lines(raw: &[u8]) -> (Vec<Vec<u8>>, bool) {
    if raw.is_empty() {
        return (Vec::new(), false);
    }
    let unterminated = !raw.ends_with(b"\n");
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    (body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect(), unterminated)
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub checkpoints: usize,
    pub origin: String,
    pub root: Hash,
    /// Per key id: how many v1 entries it signed.
    pub entries_by_key: BTreeMap<String, u64>,
    /// How many v2 entries (authenticated by the checkpoints that cover them).
    pub entries_v2: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// The size of the trusted checkpoint that was shown consistent, if one was given.
    pub trusted_size: Option<u64>,
    /// Per required witness (its name): the largest checkpoint it cosigned.
    pub witnessed: BTreeMap<String, u64>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "OK: audit log {} verified", self.origin)?;
        writeln!(
            f,
            "  entries:     {} (every signature valid, indices 0..{})",
            self.entries, self.entries
        )?;
        writeln!(
            f,
            "  checkpoints: {} (every signature valid, every root matches, consecutive ones consistent)",
            self.checkpoints
        )?;
        writeln!(
            f,
            "  tree size:   {}, root {}",
            self.entries,
            STANDARD.encode(self.root)
        )?;
        for (kid, n) in &self.entries_by_key {
            writeln!(f, "  key {kid}: {n} v1 entries (signed one by one)")?;
        }
        if self.entries_v2 > 0 {
            writeln!(
                f,
                "  v2 entries:  {} (authenticated by the checkpoints)",
                self.entries_v2
            )?;
        }
        if let (Some(first), Some(last)) = (&self.first_time, &self.last_time) {
            writeln!(f, "  time span:   {first} .. {last}")?;
        }
        for (witness, size) in &self.witnessed {
            writeln!(f, "  witness:     {witness} cosigned the log up to size {size}")?;
        }
        if let Some(size) = self.trusted_size {
            writeln!(
                f,
                "  trusted checkpoint of size {size}: consistent (no rollback, no fork)"
            )?;
        }
        Ok(())
    }
}

struct Key {
    verifier: NoteVerifier,
    kid: String,
    validity: Validity,
}

/// Verifies `folder` against the auditor's `trusted` keys and, if given, a checkpoint the
/// auditor saw earlier (`trusted_checkpoint`): the folder must extend it, never roll back.
pub fn verify_folder(
    folder: &Folder,
    trusted: &[KeyLine],
    trusted_checkpoint: Option<&[u8]>,
) -> Result<Summary, Finding> {
    if trusted.is_empty() {
        return Err(Finding::Keys {
            line: 0,
            reason: "no trusted key given".into(),
        });
    }
    let listed = std::str::from_utf8(&folder.verifier_keys)
        .map_err(|_| folder_finding(VERIFIER_KEYS_FILE, "not UTF-8"))
        .and_then(|t| parse_key_lines(t).map_err(|e| folder_finding(VERIFIER_KEYS_FILE, &e.to_string())))?;
    let keys: Vec<Key> = trusted
        .iter()
        .map(|t| Key {
            kid: format!("{:08x}", t.verifier.key_id()),
            validity: t
                .validity
                .or_else(|| {
                    listed
                        .iter()
                        .find(|l| l.verifier == t.verifier)
                        .and_then(|l| l.validity)
                })
                .unwrap_or(Validity::ALWAYS),
            verifier: t.verifier.clone(),
        })
        .collect();

    let (tree, stats) = verify_entries(folder, &keys)?;
    let size = tree.len();
    let (checkpoints, origin) = verify_checkpoints(folder, &keys, &tree)?;

    let latest_name = format!("{CHECKPOINTS_DIR}/{size}");
    match checkpoints.last() {
        Some((last, _)) if *last == size => {}
        Some((last, _)) => {
            return Err(Finding::Checkpoint {
                name: format!("{CHECKPOINTS_DIR}/{last}"),
                reason: format!("the latest checkpoint covers {last} entries, the folder holds {size}"),
            });
        }
        None => return Err(folder_finding(CHECKPOINTS_DIR, "no checkpoint")),
    }
    if folder.checkpoints.get(&size.to_string()) != Some(&folder.checkpoint) {
        return Err(Finding::Checkpoint {
            name: CHECKPOINT_FILE.into(),
            reason: format!("differs from {latest_name}, the latest checkpoint"),
        });
    }

    let trusted_size = match trusted_checkpoint {
        Some(note) => Some(check_trusted(note, &keys, &tree, &origin)?),
        None => None,
    };
    Ok(Summary {
        entries: size,
        checkpoints: checkpoints.len(),
        origin,
        root: tree.root(),
        entries_by_key: stats.by_key,
        entries_v2: stats.v2,
        first_time: stats.first_time,
        last_time: stats.last_time,
        trusted_size,
        witnessed: BTreeMap::new(),
    })
}

fn folder_finding(file: &str, reason: &str) -> Finding {
    Finding::Folder {
        file: file.to_owned(),
        reason: reason.to_owned(),
    }
}

#[derive(Default)]
struct EntryStats {
    by_key: BTreeMap<String, u64>,
    v2: u64,
    first_time: Option<String>,
    last_time: Option<String>,
}

fn verify_entries(folder: &Folder, keys: &[Key]) -> Result<(Tree, EntryStats), Finding> {
    let mut tree = Tree::new();
    let mut stats = EntryStats::default();
    let last = folder.entries.len().saturating_sub(1);
    for (i, bytes) in folder.entries.iter().enumerate() {
        let index = tree.len();
        let bad = |reason: String| Finding::Entry { index, reason };
        if folder.unterminated && i == last {
            return Err(bad("the file ends without a newline (torn or truncated)".into()));
        }
        let line = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let valid: Vec<(String, VerifyingKey)> = keys
            .iter()
            .filter(|k| k.validity.covers_entry(index))
            .map(|k| (k.kid.clone(), *k.verifier.verifying_key()))
            .collect();
        let value = verify_line(line, index, &valid).map_err(|e| {
            let outside = matches!(&e, super::entry::EntryError::UnknownKey(kid) if keys.iter().any(|k| k.kid == *kid));
            if outside {
                bad(format!("{e} (a trusted key, but not valid for this index)"))
            } else {
                bad(e.to_string())
            }
        })?;
        match value.get("kid").and_then(serde_json::Value::as_str) {
            // A v1 entry after a v2 one: the format only ever moves forward.
            Some(_) if stats.v2 > 0 => return Err(bad("a v1 entry after v2 entries".into())),
            Some(kid) => *stats.by_key.entry(kid.to_owned()).or_default() += 1,
            None => stats.v2 += 1,
        }
        if let Some(time) = value.get("time").and_then(serde_json::Value::as_str) {
            if stats.first_time.is_none() {
                stats.first_time = Some(time.to_owned());
            }
            stats.last_time = Some(time.to_owned());
        }
        tree.push(super::merkle::leaf_hash(bytes));
    }
    Ok((tree, stats))
}

/// Opens a checkpoint note as the gateway writes it: exactly one signature line, by a trusted
/// key valid for its size, whose name is the checkpoint's origin.
fn open_checkpoint(name: &str, raw: &[u8], keys: &[Key]) -> Result<Checkpoint, Finding> {
    let bad = |reason: String| Finding::Checkpoint {
        name: name.to_owned(),
        reason,
    };
    let note = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8".into()))?;
    let verifiers: Vec<NoteVerifier> = keys.iter().map(|k| k.verifier.clone()).collect();
    let opened = open_note(note, &verifiers).map_err(|e| bad(e.to_string()))?;
    let checkpoint = Checkpoint::parse(opened.text).map_err(|e| bad(e.to_string()))?;
    // The gateway signs each checkpoint exactly once under the log's name; other lines are
    // witnesses' cosignatures (checked by `verify_witnessed` when asked).
    let signatures = note.get(opened.text.len()..).unwrap_or_default();
    let by_log = signatures
        .lines()
        .filter(|l| l.strip_prefix("\u{2014} ").and_then(|r| r.split(' ').next()) == Some(checkpoint.origin.as_str()))
        .count();
    if by_log != 1 {
        return Err(bad("must carry exactly one signature line by the log's key".into()));
    }
    let signer = opened
        .verified_by
        .first()
        .and_then(|i| keys.get(*i))
        .ok_or_else(|| bad("no signature from a trusted key".into()))?;
    if checkpoint.origin != signer.verifier.name() {
        return Err(bad(format!(
            "origin {:?} is not the signing key's name {:?}",
            checkpoint.origin,
            signer.verifier.name()
        )));
    }
    if !signer.validity.covers_checkpoint(checkpoint.size) {
        return Err(bad(format!(
            "signed by key {} which is not valid for tree size {}",
            signer.kid, checkpoint.size
        )));
    }
    Ok(checkpoint)
}

fn verify_checkpoints(folder: &Folder, keys: &[Key], tree: &Tree) -> Result<(Vec<(u64, Hash)>, String), Finding> {
    // Sorted by size, not by file name ("10" < "9" as text).
    let mut opened: Vec<(u64, String, Checkpoint)> = Vec::new();
    for (file, raw) in &folder.checkpoints {
        let name = format!("{CHECKPOINTS_DIR}/{file}");
        let checkpoint = open_checkpoint(&name, raw, keys)?;
        if checkpoint.size.to_string() != *file {
            return Err(Finding::Checkpoint {
                name,
                reason: format!("holds a checkpoint of size {}", checkpoint.size),
            });
        }
        opened.push((checkpoint.size, name, checkpoint));
    }
    opened.sort_by_key(|(size, _, _)| *size);
    let mut origin: Option<String> = None;
    let mut out: Vec<(u64, Hash)> = Vec::with_capacity(opened.len());
    for (size, name, checkpoint) in opened {
        let bad = |reason: String| Finding::Checkpoint {
            name: name.clone(),
            reason,
        };
        match &origin {
            Some(o) if *o != checkpoint.origin => {
                return Err(bad(format!("origin {:?} differs from {o:?}", checkpoint.origin)));
            }
            _ => origin = Some(checkpoint.origin.clone()),
        }
        let root = tree
            .root_at(size)
            .map_err(|_| bad(format!("covers {size} entries, the folder holds {}", tree.len())))?;
        if root != checkpoint.root {
            // Earlier checkpoints matched, so the changed entry lies after the previous one.
            let from = out.last().map_or(0, |(s, _)| *s);
            return Err(Finding::Entries {
                from,
                to: size,
                checkpoint: name.clone(),
            });
        }
        if let Some((old, old_root)) = out.last().copied().filter(|(old, _)| *old > 0) {
            // Both roots come from signed notes; the proof comes from the folder's entries.
            let proof = tree
                .consistency_proof(old, size)
                .map_err(|e| bad(format!("no consistency proof from size {old}: {e}")))?;
            verify_consistency(old, size, &proof, &old_root, &checkpoint.root)
                .map_err(|e| bad(format!("not consistent with the checkpoint of size {old}: {e}")))?;
        }
        out.push((size, checkpoint.root));
    }
    Ok((out, origin.unwrap_or_default()))
}

fn check_trusted(note: &[u8], keys: &[Key], tree: &Tree, origin: &str) -> Result<u64, Finding> {
    let checkpoint = open_checkpoint("trusted checkpoint", note, keys)?;
    if checkpoint.origin != origin {
        return Err(Finding::Checkpoint {
            name: "trusted checkpoint".into(),
            reason: format!("is for log {:?}, the folder for {origin:?}", checkpoint.origin),
        });
    }
    if checkpoint.size > tree.len() {
        return Err(Finding::Rollback(format!(
            "a checkpoint of size {} was seen before, the folder only reaches size {}",
            checkpoint.size,
            tree.len()
        )));
    }
    let root = tree
        .root_at(checkpoint.size)
        .map_err(|e| Finding::Rollback(e.to_string()))?;
    if root != checkpoint.root {
        return Err(Finding::Rollback(format!(
            "the folder's first {} entries are not those of the checkpoint seen before (a fork)",
            checkpoint.size
        )));
    }
    Ok(checkpoint.size)
}

/// `audit verify`: reads the folder and the key file from disk.
/// `verify_folder`, and then for each of `witnesses`: some checkpoint of the folder must carry
/// a valid cosignature by it (the checkpoints are already shown to be one history, so the
/// witness vouches for the log up to the largest size it cosigned).
pub fn verify_witnessed(
    folder: &Folder,
    summary: &mut Summary,
    witnesses: &[crate::audit::cosignature::WitnessVerifier],
) -> Result<(), Finding> {
    for witness in witnesses {
        let largest = folder
            .checkpoints
            .iter()
            .filter_map(|(name, raw)| {
                let note = std::str::from_utf8(raw).ok()?;
                witness.verify_note(note).ok()?;
                name.parse::<u64>().ok()
            })
            .max()
            .ok_or_else(|| Finding::Unwitnessed(witness.name().to_owned()))?;
        summary.witnessed.insert(witness.name().to_owned(), largest);
    }
    Ok(())
}

pub fn verify_dir(dir: &Path, key_file: &Path, trusted_checkpoint: Option<&Path>) -> Result<Summary, Finding> {
    verify_dir_witnessed(dir, key_file, trusted_checkpoint, &[])
}

/// `verify_dir` that also requires a cosignature by each of `witnesses`.
pub fn verify_dir_witnessed(
    dir: &Path,
    key_file: &Path,
    trusted_checkpoint: Option<&Path>,
    witnesses: &[crate::audit::cosignature::WitnessVerifier],
) -> Result<Summary, Finding> {
    let key_text = std::fs::read_to_string(key_file).map_err(|e| Finding::Keys {
        line: 0,
        reason: format!("cannot read {}: {e}", key_file.display()),
    })?;
    let trusted = parse_key_lines(&key_text)?;
    let seen = match trusted_checkpoint {
        Some(path) => Some(std::fs::read(path).map_err(|e| Finding::Checkpoint {
            name: "trusted checkpoint".into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?),
        None => None,
    };
    let folder = Folder::read(dir)?;
    let mut summary = verify_folder(&folder, &trusted, seen.as_deref())?;
    verify_witnessed(&folder, &mut summary, witnesses)?;
    Ok(summary)
}
