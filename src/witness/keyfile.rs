//! A witness's key files: the private key (`witness-key.txt`, mode 0600) and its verifier key
//! (`witness-verifier-key.txt`, for the gateway's configuration and the auditors). A key is never
//! overwritten: the witness's identity is its key.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::WitnessKey;

/// The private key file `keygen` writes.
pub const KEY_FILE: &str = "witness-key.txt";
/// The verifier key file `keygen` writes, for the gateway's configuration and the auditors.
pub const VERIFIER_KEY_FILE: &str = "witness-verifier-key.txt";

/// Writes a new key pair to `out` (created if needed) and returns the verifier key text. An
/// existing key is never overwritten: the witness's identity is its key.
pub fn keygen(out: &Path, name: &str) -> Result<String, String> {
    let key = WitnessKey::generate(name).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let verifier = key.verifier().to_text();
    write_new(&out.join(KEY_FILE), &key.private_key_text(), 0o600)?;
    write_new(&out.join(VERIFIER_KEY_FILE), &verifier, 0o644)?;
    Ok(verifier)
}

/// The witness key in `dir`, created by [`keygen`] if there is none yet (for `demo`, which
/// must keep its witness's identity across runs).
pub fn open_or_create_key(dir: &Path, name: &str) -> Result<WitnessKey, String> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        keygen(dir, name)?;
    }
    let key = read_witness_key(&path)?;
    if key.name() != name {
        return Err(format!(
            "{} is the key of {}, not of {name}",
            path.display(),
            key.name()
        ));
    }
    Ok(key)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let error = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(format!("{text}\n").as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)
}

pub fn read_witness_key(path: &Path) -> Result<WitnessKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // The message never quotes the file: it is a secret.
    WitnessKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
