//! The witness's judgement of one `add-checkpoint` request, without HTTP: is the checkpoint
//! signed by a log it follows, and does it extend, append-only, the tree it cosigned last? If
//! so, the new state is made durable and only then cosigned.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD};
use tokio::sync::Mutex;

use super::cosignature::{CosignatureLine, WitnessKey, WitnessVerifier};
use super::protocol::{AddCheckpoint, MalformedRequest};
use super::state::{LogState, StateError, StateFile, write_atomically};
use crate::audit::merkle::{empty_root, verify_consistency};
use crate::audit::note::{Checkpoint, NoteError, NoteVerifier, open_note};
use crate::clock::SharedClock;

/// Where refused forks and inconsistent checkpoints are kept, inside the state folder.
pub const EVIDENCE_DIR: &str = "evidence";

/// Why the witness does not cosign; each maps to the status code C2SP tlog-witness assigns.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Malformed(#[from] MalformedRequest),
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(NoteError),
    #[error("old size {old} is beyond the checkpoint's size {size}")]
    OldBeyondCheckpoint { old: u64, size: u64 },
    #[error("this witness does not follow the log {0:?}")]
    UnknownLog(String),
    #[error("the checkpoint is not signed by a trusted key of its log: {0}")]
    NotSigned(NoteError),
    /// The client's `old` is not the size the witness cosigned last; it answers with its own.
    #[error("the witness's latest cosigned size for this log is {witness_size}")]
    WrongOldSize { witness_size: u64 },
    /// A checkpoint of the size the witness cosigned, with another root: the log forked.
    #[error("fork: the log signed a tree of size {size} other than the one this witness cosigned")]
    Fork { size: u64 },
    #[error("the consistency proof from size {old} to size {size} does not verify")]
    InconsistentProof { old: u64, size: u64 },
    #[error("the witness cannot record its state")]
    Persist(#[source] StateError),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::MalformedCheckpoint(_) | Self::OldBeyondCheckpoint { .. } => 400,
            Self::NotSigned(_) => 403,
            Self::UnknownLog(_) => 404,
            Self::WrongOldSize { .. } | Self::Fork { .. } => 409,
            Self::InconsistentProof { .. } => 422,
            Self::Persist(_) | Self::Internal(_) => 500,
        }
    }
}

/// What a witness needs to run.
pub struct WitnessConfig {
    pub key: WitnessKey,
    /// The verifier keys of the logs it follows (several per origin during a key rotation).
    pub log_keys: Vec<NoteVerifier>,
    /// Holds `witness-state.json` and `evidence/`.
    pub state_dir: PathBuf,
    pub clock: SharedClock,
}

impl std::fmt::Debug for WitnessConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessConfig")
            .field("key", &self.key)
            .field("log_keys", &self.log_keys)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

pub struct Witness {
    key: WitnessKey,
    log_keys: Vec<NoteVerifier>,
    evidence_dir: PathBuf,
    clock: SharedClock,
    // Checking `old` and recording the new state happen under one lock, or two concurrent
    // requests could roll the state back (C2SP tlog-witness).
    state: Arc<Mutex<StateFile>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.key)
            .field("log_keys", &self.log_keys)
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// Loads the state (a missing file is a witness that never cosigned; a corrupt one is an
    /// error, never silently reset: a reset witness would cosign a fork).
    pub fn open(config: WitnessConfig) -> Result<Self, StateError> {
        let state = StateFile::open(&config.state_dir)?;
        Ok(Self {
            key: config.key,
            log_keys: config.log_keys,
            evidence_dir: config.state_dir.join(EVIDENCE_DIR),
            clock: config.clock,
            state: Arc::new(Mutex::new(state)),
        })
    }

    pub fn verifier(&self) -> WitnessVerifier {
        self.key.verifier()
    }

    pub fn log_keys(&self) -> &[NoteVerifier] {
        &self.log_keys
    }

    /// The latest cosigned state for `origin`, if any.
    pub async fn state_of(&self, origin: &str) -> Option<LogState> {
        self.state.lock().await.get(origin).cloned()
    }

    /// Handles one `add-checkpoint` request body; on success returns the cosignature line.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<CosignatureLine, Refusal> {
        let request = AddCheckpoint::parse(body)?;
        let (text, checkpoint) = self.open_checkpoint(&request.note)?;
        if request.old > checkpoint.size {
            return Err(Refusal::OldBeyondCheckpoint {
                old: request.old,
                size: checkpoint.size,
            });
        }

        let mut state = self.state.clone().lock_owned().await;
        let stored = state.get(&checkpoint.origin).cloned();
        if let Err(refusal) = judge(stored.as_ref(), &request, &checkpoint) {
            self.report(&refusal, stored.as_ref(), &request, &checkpoint);
            return Err(refusal);
        }
        let timestamp = u64::try_from(self.clock.now().unix_timestamp())
            .map_err(|_| Refusal::Internal("the clock is before 1970"))?;
        // Signed now but answered only once the state that backs it is durable.
        let cosignature = self
            .key
            .cosign(text, timestamp)
            .map_err(|_| Refusal::Internal("the clock is beyond 2^63 seconds"))?;
        let next = LogState {
            size: checkpoint.size,
            root: checkpoint.root,
            note: request.note.clone(),
        };
        let origin = checkpoint.origin.clone();
        let written = tokio::task::spawn_blocking(move || state.set(&origin, next)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "witness state not written; nothing cosigned");
                return Err(Refusal::Persist(e));
            }
            Err(e) => {
                tracing::error!(error = %e, "witness state writer failed; nothing cosigned");
                return Err(Refusal::Internal("state writer failed"));
            }
        }
        tracing::info!(origin = %checkpoint.origin, size = checkpoint.size, "checkpoint cosigned");
        Ok(cosignature)
    }

    /// Verifies the note's log signature and parses its checkpoint; returns the signed text.
    fn open_checkpoint<'a>(&self, note: &'a str) -> Result<(&'a str, Checkpoint), Refusal> {
        let origin = note.split('\n').next().unwrap_or_default();
        let trusted: Vec<NoteVerifier> = self.log_keys.iter().filter(|k| k.name() == origin).cloned().collect();
        if trusted.is_empty() {
            return Err(Refusal::UnknownLog(origin.to_owned()));
        }
        let opened = open_note(note, &trusted).map_err(|e| match e {
            NoteError::NoKnownSignature | NoteError::InvalidSignature { .. } | NoteError::DuplicateSignature { .. } => {
                Refusal::NotSigned(e)
            }
            other => Refusal::MalformedCheckpoint(other),
        })?;
        let checkpoint = Checkpoint::parse(opened.text).map_err(Refusal::MalformedCheckpoint)?;
        Ok((opened.text, checkpoint))
    }

    /// A second tree of the cosigned size, both signed by the log, is proof that the log forked;
    /// a proof that does not lead from the cosigned tree is a fork or a wrong proof (anyone can
    /// replay a signed checkpoint with a bad proof). Both are logged as errors with both trees,
    /// and the refused request is kept next to the checkpoint it contradicts. A checkpoint
    /// smaller than the cosigned one is only a warning: it may be an old one replayed; the log's
    /// own client is the one that knows it rolled back (`WitnessError::AheadOfLog`).
    fn report(&self, refusal: &Refusal, stored: Option<&LogState>, request: &AddCheckpoint, checkpoint: &Checkpoint) {
        let (stored_size, stored_root) = stored.map_or((0, empty_root()), |s| (s.size, s.root));
        let (stored_root, presented_root) = (STANDARD.encode(stored_root), STANDARD.encode(checkpoint.root));
        let origin = checkpoint.origin.as_str();
        match refusal {
            Refusal::Fork { .. } => {
                tracing::error!(
                    origin,
                    cosigned_size = stored_size,
                    cosigned_root = %stored_root,
                    presented_size = checkpoint.size,
                    presented_root = %presented_root,
                    "LOG FORK: the log signed two different trees of the same size; refused, evidence kept"
                );
                self.keep_evidence(stored, request, checkpoint);
            }
            Refusal::InconsistentProof { .. } => {
                tracing::error!(
                    origin,
                    cosigned_size = stored_size,
                    cosigned_root = %stored_root,
                    presented_size = checkpoint.size,
                    presented_root = %presented_root,
                    old = request.old,
                    "POSSIBLE LOG FORK: no valid proof that this signed checkpoint extends the cosigned one \
                     (a fork, or a wrong proof); refused, evidence kept"
                );
                self.keep_evidence(stored, request, checkpoint);
            }
            Refusal::WrongOldSize { .. } if checkpoint.size < stored_size => tracing::warn!(
                origin,
                cosigned_size = stored_size,
                presented_size = checkpoint.size,
                "a checkpoint smaller than the cosigned one (an old one replayed, or a log rolled back); refused"
            ),
            _ => tracing::info!(origin, old = request.old, size = checkpoint.size, %refusal, "checkpoint not cosigned"),
        }
    }

    /// One file per refused signed tree (origin, size, root), so that repeats cannot fill the
    /// disk: `evidence/<origin>-<size>-<root, hex>.txt`.
    fn keep_evidence(&self, stored: Option<&LogState>, request: &AddCheckpoint, checkpoint: &Checkpoint) {
        let origin: String = checkpoint
            .origin
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let root: String = checkpoint.root.iter().map(|b| format!("{b:02x}")).collect();
        let path = self
            .evidence_dir
            .join(format!("{origin}-{}-{root}.txt", checkpoint.size));
        if path.exists() {
            return;
        }
        let stored_note = stored.map_or("(none)\n", |s| s.note.as_str());
        let contents = format!(
            "# The checkpoint this witness had cosigned:\n{stored_note}\n# The request it refused:\n{}",
            request.to_body()
        );
        if let Err(e) = write_evidence(&self.evidence_dir, &path, contents.as_bytes()) {
            tracing::error!(error = %e, "cannot keep the evidence of a refused checkpoint");
        }
    }
}

fn write_evidence(dir: &Path, path: &Path, contents: &[u8]) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(|source| StateError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_atomically(path, contents)
}

/// The append-only rule of C2SP tlog-witness, given what was cosigned last for the origin
/// (nothing: size 0, the empty tree).
pub fn judge(stored: Option<&LogState>, request: &AddCheckpoint, checkpoint: &Checkpoint) -> Result<(), Refusal> {
    let (stored_size, stored_root) = stored.map_or((0, empty_root()), |s| (s.size, s.root));
    let (old, size) = (request.old, checkpoint.size);
    if old != stored_size {
        return Err(Refusal::WrongOldSize {
            witness_size: stored_size,
        });
    }
    if old == size {
        if !request.proof.is_empty() {
            return Err(Refusal::InconsistentProof { old, size });
        }
        if checkpoint.root != stored_root {
            return Err(Refusal::Fork { size });
        }
        return Ok(());
    }
    if old == 0 {
        // Nothing is proved from the empty tree: the first checkpoint is taken on its signature.
        if !request.proof.is_empty() {
            return Err(Refusal::InconsistentProof { old, size });
        }
        return Ok(());
    }
    verify_consistency(old, size, &request.proof, &stored_root, &checkpoint.root)
        .map_err(|_| Refusal::InconsistentProof { old, size })
}
