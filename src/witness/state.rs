//! What the witness remembers: for each log origin, the latest checkpoint it cosigned. The
//! file is replaced atomically (temporary file, fsync, rename, fsync of the folder), so after a
//! crash it holds either the old or the new state, never a mixture; a cosignature is only
//! answered after its state is on disk.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

use crate::audit::merkle::{Hash, hash_from_slice};

/// The state file's name inside the witness's state folder.
pub const STATE_FILE: &str = "witness-state.json";
const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a witness state file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The latest checkpoint the witness cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    pub size: u64,
    pub root: Hash,
    /// The log-signed checkpoint note as received: evidence should the log ever sign another
    /// tree of the same size.
    pub note: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    size: u64,
    root: String,
    note: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    logs: BTreeMap<String, FileLog>,
}

/// The state of every log, keyed by origin, and the file that holds it.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    logs: BTreeMap<String, LogState>,
}

impl StateFile {
    /// Loads `<dir>/witness-state.json`, creating `dir` if needed; a missing file is an empty
    /// state (a witness that never cosigned).
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path,
                    logs: BTreeMap::new(),
                });
            }
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.clone(),
            reason,
        };
        let file: File = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != STATE_VERSION {
            return Err(corrupt(format!("unknown version {}", file.version)));
        }
        let mut logs = BTreeMap::new();
        for (origin, log) in file.logs {
            let root = STANDARD
                .decode(&log.root)
                .ok()
                .and_then(|b| hash_from_slice(&b).ok())
                .ok_or_else(|| corrupt(format!("root of {origin} is not the base64 of 32 bytes")))?;
            logs.insert(
                origin,
                LogState {
                    size: log.size,
                    root,
                    note: log.note,
                },
            );
        }
        Ok(Self { path, logs })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, origin: &str) -> Option<&LogState> {
        self.logs.get(origin)
    }

    /// Records `state` for `origin`: on disk first, then in memory, so that a failed write
    /// leaves both as they were.
    pub fn set(&mut self, origin: &str, state: LogState) -> Result<(), StateError> {
        let mut next = self.logs.clone();
        next.insert(origin.to_owned(), state);
        write_atomically(&self.path, &serialise(&next)?)?;
        self.logs = next;
        Ok(())
    }
}

fn serialise(logs: &BTreeMap<String, LogState>) -> Result<Vec<u8>, StateError> {
    let file = File {
        version: STATE_VERSION,
        logs: logs
            .iter()
            .map(|(origin, log)| {
                let entry = FileLog {
                    size: log.size,
                    root: STANDARD.encode(log.root),
                    note: log.note.clone(),
                };
                (origin.clone(), entry)
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| StateError::Corrupt {
        path: PathBuf::new(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Temporary file in the same folder, fsync, rename over `path`, fsync the folder.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), StateError> {
    let error = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let mut file = std::fs::File::create(&tmp).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(error)?;
    // The rename itself is only durable once the folder is.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn state(size: u64) -> LogState {
        LogState {
            size,
            root: [u8::try_from(size % 256).unwrap(); 32],
            note: format!("o\n{size}\n...\n\n— o sig\n"),
        }
    }

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = StateFile::open(dir.path()).unwrap();
        assert_eq!(file.get("a.example/log"), None);
        file.set("a.example/log", state(5)).unwrap();
        file.set("b.example/log", state(7)).unwrap();
        file.set("a.example/log", state(9)).unwrap();
        let again = StateFile::open(dir.path()).unwrap();
        assert_eq!(again.get("a.example/log"), Some(&state(9)));
        assert_eq!(again.get("b.example/log"), Some(&state(7)));
        assert!(!dir.path().join("witness-state.json.tmp").exists());
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = StateFile::open(dir.path()).unwrap();
        file.set("o", state(1)).unwrap();
        // A folder where the temporary file should go makes the write fail.
        std::fs::create_dir(dir.path().join("witness-state.json.tmp")).unwrap();
        assert!(file.set("o", state(2)).is_err());
        assert_eq!(file.get("o"), Some(&state(1)));
        assert_eq!(StateFile::open(dir.path()).unwrap().get("o"), Some(&state(1)));
    }

    #[test]
    fn a_corrupt_file_is_refused_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "",
            "{}",
            r#"{"version":2,"logs":{}}"#,
            r#"{"version":1,"logs":{"o":{"size":1,"root":"AAAA","note":""}}}"#,
        ] {
            std::fs::write(dir.path().join(STATE_FILE), bad).unwrap();
            assert!(
                matches!(StateFile::open(dir.path()), Err(StateError::Corrupt { .. })),
                "{bad}"
            );
        }
    }
}
