//! C2SP tlog-cosignature v1 (Ed25519): the witness's key pair, its key files, and the
//! timestamped note signature lines it adds to a log's checkpoint.
//!
//! A cosignature line is an ordinary C2SP signed-note signature line,
//! `— <witness name> <base64(key id ‖ timestamp ‖ signature)>`, but it signs
//! `"cosignature/v1\ntime <timestamp>\n" ‖ checkpoint body`, not the body alone, and its key id
//! is derived with the signature type byte 0x04 instead of the log's 0x01. A log's verifier
//! therefore never mistakes a cosignature for a log signature, and the other way round.

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signed-note signature type of timestamped Ed25519 cosignatures (C2SP signed-note).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
const HEADER: &str = "cosignature/v1\n";
const SIGNATURE_PREFIX: &str = "\u{2014} ";
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Key id, timestamp, Ed25519 signature.
const RAW_LEN: usize = 4 + 8 + 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error("invalid witness name {0:?}")]
    InvalidName(String),
    #[error("malformed witness key: {0}")]
    MalformedKey(&'static str),
    #[error("malformed cosignature line: {0}")]
    MalformedLine(&'static str),
    #[error("malformed checkpoint note: {0}")]
    MalformedNote(&'static str),
    #[error("the cosignature is by {found}, not by the witness {expected}")]
    OtherKey { expected: String, found: String },
    #[error("no cosignature by the witness {0}")]
    Missing(String),
    #[error("the cosignature by {0} does not verify")]
    InvalidSignature(String),
    #[error("cosignature timestamp {0} is beyond 2^63 - 1")]
    TimestampRange(u64),
}

/// Signed-note key names: non-empty, no Unicode space, no control character, no '+'.
fn check_name(name: &str) -> Result<(), CosignatureError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '+';
    if name.is_empty() || name.contains(bad) {
        return Err(CosignatureError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4]`, big-endian.
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(name)
        .chain_update([b'\n', ALG_COSIGNATURE_V1])
        .chain_update(key.as_bytes())
        .finalize()
        .into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

fn key_text(name: &str, key_id: u32, key: &[u8; 32]) -> String {
    let mut data = Vec::with_capacity(33);
    data.push(ALG_COSIGNATURE_V1);
    data.extend_from_slice(key);
    format!("{name}+{key_id:08x}+{}", STANDARD.encode(data))
}

/// Splits `<name>+<8 hex>+<base64(0x04 ‖ 32 bytes)>`; the base64 may itself contain '+'.
fn parse_key_text(text: &str) -> Result<(&str, u32, [u8; 32]), CosignatureError> {
    let bad = CosignatureError::MalformedKey;
    let mut parts = text.trim_end().splitn(3, '+');
    let (Some(name), Some(hex), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected name+id+key"));
    };
    check_name(name)?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f')) {
        return Err(bad("key ID must be 8 lowercase hex digits"));
    }
    let id = u32::from_str_radix(hex, 16).map_err(|_| bad("bad key ID"))?;
    let data = STANDARD.decode(data).map_err(|_| bad("bad base64"))?;
    let Some((&ALG_COSIGNATURE_V1, key)) = data.split_first() else {
        return Err(bad("not a cosignature/v1 (0x04) Ed25519 key"));
    };
    let key = key.try_into().map_err(|_| bad("Ed25519 key must be 32 bytes"))?;
    Ok((name, id, key))
}

/// `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint body.
pub fn signed_message(timestamp: u64, checkpoint_body: &str) -> Vec<u8> {
    format!("{HEADER}time {timestamp}\n{checkpoint_body}").into_bytes()
}

/// The witness's private key: its name and Ed25519 key.
pub struct WitnessKey {
    name: String,
    key: SigningKey,
    key_id: u32,
}

// Hand-written so that no formatting path can ever print the secret key.
impl std::fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl WitnessKey {
    pub fn new(name: &str, key: SigningKey) -> Result<Self, CosignatureError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &key.verifying_key()),
            key,
        })
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<Self, CosignatureError> {
        Self::new(name, SigningKey::generate(&mut rand_core::OsRng))
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(0x04 ‖ 32-byte seed)>` (surrounding
    /// whitespace and a final newline are allowed).
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(CosignatureError::MalformedKey("missing PRIVATE+KEY+ prefix"))?;
        let (name, id, seed) = parse_key_text(rest)?;
        let key = Self::new(name, SigningKey::from_bytes(&seed))?;
        if key.key_id != id {
            return Err(CosignatureError::MalformedKey("key ID does not match the key"));
        }
        Ok(key)
    }

    /// The private key file's text, without a final newline. Secret.
    pub fn private_key_text(&self) -> String {
        format!(
            "{PRIVATE_KEY_PREFIX}{}",
            key_text(&self.name, self.key_id, self.key.as_bytes())
        )
    }

    pub fn verifier(&self) -> WitnessVerifier {
        WitnessVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Cosigns a checkpoint body (the note text: the lines above the blank line, each with its
    /// newline) at `timestamp` (POSIX seconds).
    pub fn cosign(&self, checkpoint_body: &str, timestamp: u64) -> Result<CosignatureLine, CosignatureError> {
        if timestamp > i64::MAX.unsigned_abs() {
            return Err(CosignatureError::TimestampRange(timestamp));
        }
        let signature = self.key.sign(&signed_message(timestamp, checkpoint_body)).to_bytes();
        Ok(CosignatureLine {
            name: self.name.clone(),
            key_id: self.key_id,
            timestamp,
            signature,
        })
    }
}

/// A witness's public key, as auditors and the gateway configure it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessVerifier {
    name: String,
    key: VerifyingKey,
    key_id: u32,
}

impl WitnessVerifier {
    /// Parses the C2SP verifier key `<name>+<hex id>+<base64(0x04 ‖ public key)>` (surrounding
    /// whitespace and a final newline are allowed).
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let (name, id, key) = parse_key_text(text.trim())?;
        let key =
            VerifyingKey::from_bytes(&key).map_err(|_| CosignatureError::MalformedKey("not an Ed25519 public key"))?;
        let verifier = Self::from_public(name, key)?;
        if verifier.key_id != id {
            return Err(CosignatureError::MalformedKey("key ID does not match the key"));
        }
        Ok(verifier)
    }

    pub fn from_public(name: &str, key: VerifyingKey) -> Result<Self, CosignatureError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &key),
            key,
        })
    }

    /// The verifier key text, without a final newline.
    pub fn to_text(&self) -> String {
        key_text(&self.name, self.key_id, self.key.as_bytes())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `line` claims to be by this witness (name and key id); it may still not verify.
    pub fn names(&self, line: &CosignatureLine) -> bool {
        line.name == self.name && line.key_id == self.key_id
    }

    /// Checks that `line` is this witness's valid cosignature of `checkpoint_body`.
    pub fn verify(&self, line: &CosignatureLine, checkpoint_body: &str) -> Result<(), CosignatureError> {
        if !self.names(line) {
            return Err(CosignatureError::OtherKey {
                expected: format!("{}+{:08x}", self.name, self.key_id),
                found: format!("{}+{:08x}", line.name, line.key_id),
            });
        }
        let signature = Signature::from_bytes(&line.signature);
        self.key
            .verify_strict(&signed_message(line.timestamp, checkpoint_body), &signature)
            .map_err(|_| CosignatureError::InvalidSignature(self.name.clone()))
    }

    /// Finds and verifies this witness's cosignature among the signature lines of a signed
    /// checkpoint note. Other signature lines (the log's, other witnesses') are ignored here;
    /// the log's signature must be checked separately (`audit::note::open_note`).
    pub fn verify_note(&self, note: &str) -> Result<CosignatureLine, CosignatureError> {
        let (body, signatures) = split_note(note)?;
        let mut found = None;
        for raw in signatures.split('\n') {
            // Lines of other signature types or names are not ours to judge.
            let Ok(line) = CosignatureLine::parse(raw) else {
                continue;
            };
            if !self.names(&line) {
                continue;
            }
            if found.is_some() {
                return Err(CosignatureError::MalformedNote("two cosignatures by the same witness"));
            }
            self.verify(&line, body)?;
            found = Some(line);
        }
        found.ok_or_else(|| CosignatureError::Missing(self.name.clone()))
    }
}

/// Splits a signed note into its text (with the final newline) and its signature lines
/// (without the final newline). The last blank line is the separator.
pub fn split_note(note: &str) -> Result<(&str, &str), CosignatureError> {
    let bad = CosignatureError::MalformedNote;
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(bad("control character"));
    }
    let (text, rest) = note
        .rfind("\n\n")
        .and_then(|i| note.split_at_checked(i + 1))
        .ok_or(bad("no blank line before the signatures"))?;
    let signatures = rest
        .strip_prefix('\n')
        .and_then(|s| s.strip_suffix('\n'))
        .filter(|s| !s.is_empty())
        .ok_or(bad("no signatures"))?;
    Ok((text, signatures))
}

/// Appends cosignature lines to a signed note (which already ends with its last signature
/// line and newline).
pub fn append_cosignatures(note: &str, lines: &[CosignatureLine]) -> String {
    let mut out = note.to_owned();
    for line in lines {
        out.push_str(&line.to_line());
    }
    out
}

/// One parsed cosignature line.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureLine {
    pub name: String,
    pub key_id: u32,
    /// When the witness cosigned, POSIX seconds.
    pub timestamp: u64,
    pub signature: [u8; 64],
}

impl std::fmt::Debug for CosignatureLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosignatureLine")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl CosignatureLine {
    /// Parses `— <name> <base64(key id ‖ timestamp ‖ signature)>`, with or without the final
    /// newline.
    pub fn parse(line: &str) -> Result<Self, CosignatureError> {
        let bad = CosignatureError::MalformedLine;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let (name, b64) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|l| l.split_once(' '))
            .ok_or(bad("expected `— <name> <base64>`"))?;
        check_name(name)?;
        let raw = STANDARD.decode(b64).map_err(|_| bad("bad base64"))?;
        let raw: [u8; RAW_LEN] = raw
            .try_into()
            .map_err(|_| bad("not 76 bytes (key id, timestamp, Ed25519 signature)"))?;
        let (id, rest) = raw.split_first_chunk::<4>().ok_or(bad("too short"))?;
        let (time, signature) = rest.split_first_chunk::<8>().ok_or(bad("too short"))?;
        let timestamp = u64::from_be_bytes(*time);
        if timestamp > i64::MAX.unsigned_abs() {
            return Err(CosignatureError::TimestampRange(timestamp));
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: u32::from_be_bytes(*id),
            timestamp,
            signature: signature.try_into().map_err(|_| bad("signature is not 64 bytes"))?,
        })
    }

    /// The signature line, ending with a newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(RAW_LEN);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.timestamp.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, STANDARD.encode(raw))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    const BODY: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn witness() -> WitnessKey {
        WitnessKey::new("witness.example/w1", SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    #[test]
    fn the_spec_example_line_decodes_to_its_timestamp() {
        // The example of C2SP tlog-cosignature, whose signed message shows `time 1679315147`.
        let line = CosignatureLine::parse(
            "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==",
        )
        .unwrap();
        assert_eq!(line.name, "witness.example.com/w1");
        assert_eq!(line.key_id, 0x8d66cf3f);
        assert_eq!(line.timestamp, 1_679_315_147);
        assert_eq!(
            signed_message(line.timestamp, BODY),
            format!("cosignature/v1\ntime 1679315147\n{BODY}").into_bytes()
        );
    }

    /// docs/witness.md §4.4: its request, cosigned checkpoint and keys are what the code makes.
    #[test]
    fn the_documented_example_reproduces() {
        use crate::audit::merkle::{Tree, leaf_hash};
        use crate::audit::note::{Checkpoint, NoteSigner, sign_note};
        use crate::witness::protocol::AddCheckpoint;

        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/witness.md"));
        let tree = Tree::from_leaf_hashes((0..9).map(|i| leaf_hash(format!("entry {i}").as_bytes())));
        let log = NoteSigner::new(
            "dev.cgc-gateway.invalid/audit/kanagawa",
            SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let witness = WitnessKey::new("witness.pref-audit.example/w1", SigningKey::from_bytes(&[2; 32])).unwrap();
        let text = Checkpoint {
            origin: log.name().to_owned(),
            size: 9,
            root: tree.root_at(9).unwrap(),
        }
        .to_text();
        let note = sign_note(&text, &[&log]).unwrap();
        let request = AddCheckpoint {
            old: 5,
            proof: tree.consistency_proof(5, 9).unwrap(),
            note: note.clone(),
        };
        let line = witness.cosign(&text, 1_763_607_600).unwrap();
        let cosigned = append_cosignatures(&note, std::slice::from_ref(&line));
        for block in [
            request.to_body(),
            cosigned.trim_end().to_owned(),
            String::from_utf8(signed_message(1_763_607_600, &text)).unwrap(),
            format!("{}\n{}\n", log.verifier_key_text(), witness.verifier().to_text()),
        ] {
            assert!(
                doc.contains(&format!("```\n{block}")),
                "docs/witness.md lacks:\n{block}"
            );
        }
        witness.verifier().verify_note(&cosigned).unwrap();
    }

    #[test]
    fn a_cosignature_round_trips_and_verifies() {
        let w = witness();
        let line = w.cosign(BODY, 1_700_000_000).unwrap();
        let text = line.to_line();
        assert!(text.starts_with("— witness.example/w1 "));
        assert!(text.ends_with('\n'));
        let parsed = CosignatureLine::parse(&text).unwrap();
        assert_eq!(parsed, line);
        let verifier = WitnessVerifier::parse(&w.verifier().to_text()).unwrap();
        verifier.verify(&parsed, BODY).unwrap();

        let other_body = BODY.replace("20852163", "20852164");
        assert_eq!(
            verifier.verify(&parsed, &other_body),
            Err(CosignatureError::InvalidSignature("witness.example/w1".into()))
        );
        let mut later = parsed.clone();
        later.timestamp += 1;
        assert!(verifier.verify(&later, BODY).is_err());
        let stranger = WitnessKey::new("witness.example/w1", SigningKey::from_bytes(&[4; 32])).unwrap();
        assert!(matches!(
            stranger.verifier().verify(&parsed, BODY),
            Err(CosignatureError::OtherKey { .. })
        ));
    }

    #[test]
    fn key_ids_use_the_cosignature_type_byte() {
        let w = witness();
        let log_style: [u8; 32] = Sha256::new()
            .chain_update("witness.example/w1\n\x01")
            .chain_update(w.verifier().verifying_key().as_bytes())
            .finalize()
            .into();
        let ours: [u8; 32] = Sha256::new()
            .chain_update("witness.example/w1\n\x04")
            .chain_update(w.verifier().verifying_key().as_bytes())
            .finalize()
            .into();
        assert_eq!(w.key_id().to_be_bytes(), ours[..4]);
        assert_ne!(w.key_id().to_be_bytes(), log_style[..4]);
        let text = w.verifier().to_text();
        let (_, b64) = text.rsplit_once('+').unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap()[0], 0x04);
    }

    #[test]
    fn key_files_round_trip_and_reject_tampering() {
        let w = witness();
        let private = w.private_key_text();
        let again = WitnessKey::parse(&format!("{private}\n")).unwrap();
        assert_eq!(again.verifier(), w.verifier());
        assert!(!format!("{w:?}").contains(&private[40..]));
        let public = w.verifier().to_text();
        let id = format!("{:08x}", w.key_id());
        let (name_id, _) = public.rsplit_once('+').unwrap();
        for bad in [
            public.replace(&id, "00000000"),
            public.replace("w1", "w2"),
            format!("{name_id}+{}", STANDARD.encode([1; 33])),
            format!("{name_id}+{}", STANDARD.encode([4; 32])),
            private.clone(),
            "witness.example/w1".to_owned(),
        ] {
            assert!(WitnessVerifier::parse(&bad).is_err(), "{bad}");
        }
        assert!(WitnessKey::parse(&public).is_err());
        assert!(WitnessKey::parse(&private.replace(&id, "00000000")).is_err());
        for name in ["", "a b", "a+b", "tab\there"] {
            assert!(
                WitnessKey::new(name, SigningKey::from_bytes(&[1; 32])).is_err(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_rejected() {
        let good = witness().cosign(BODY, 5).unwrap().to_line();
        let (head, b64) = good.trim_end().rsplit_once(' ').unwrap();
        let raw = STANDARD.decode(b64).unwrap();
        let mut future = raw.clone();
        future[4] = 0x80;
        for bad in [
            String::new(),
            format!("- witness.example/w1 {b64}"),
            format!("{head}  {b64}"),
            format!("{head} {}", STANDARD.encode(&raw[..75])),
            format!("{head} {}", STANDARD.encode([raw.as_slice(), &[0]].concat())),
            format!("{head} {}", STANDARD.encode(&future)),
            format!("{head} {b64}!"),
        ] {
            assert!(CosignatureLine::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(witness().cosign(BODY, 1 << 63).is_err());
    }

    #[test]
    fn a_cosignature_is_found_in_a_note_among_other_signatures() {
        let w = witness();
        let log_line = "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let note = format!("{BODY}\n{log_line}");
        let verifier = w.verifier();
        assert_eq!(
            verifier.verify_note(&note),
            Err(CosignatureError::Missing("witness.example/w1".into()))
        );
        let line = w.cosign(BODY, 42).unwrap();
        let other = WitnessKey::new("witness.example/w2", SigningKey::from_bytes(&[9; 32]))
            .unwrap()
            .cosign(BODY, 43)
            .unwrap();
        let cosigned = append_cosignatures(&note, &[other.clone(), line.clone()]);
        assert_eq!(verifier.verify_note(&cosigned), Ok(line.clone()));
        let twice = append_cosignatures(&cosigned, std::slice::from_ref(&line));
        assert!(verifier.verify_note(&twice).is_err());
        let forged = append_cosignatures(&note, &[CosignatureLine { timestamp: 41, ..line }]);
        assert!(matches!(
            verifier.verify_note(&forged),
            Err(CosignatureError::InvalidSignature(_))
        ));
        assert!(verifier.verify_note(BODY).is_err());
    }
}
