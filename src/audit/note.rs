//! C2SP signed notes (Ed25519 only) and the tlog-checkpoint note body, compatible with Go's
//! golang.org/x/mod/sumdb/note.

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::{Hash, hash_from_slice};

const ALG_ED25519: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Bounds the work an untrusted note can cause; C2SP requires accepting at least 16.
pub const MAX_SIGNATURES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("invalid key name {0:?}")]
    InvalidName(String),
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("signature by {name}+{key_id:08x} does not verify")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("more than one signature by {name}+{key_id:08x}")]
    DuplicateSignature { name: String, key_id: u32 },
    #[error("signer {name}+{key_id:08x} given twice")]
    DuplicateSigner { name: String, key_id: u32 },
    #[error("a note needs at least one signer")]
    NoSigners,
    #[error("no signature from a known key")]
    NoKnownSignature,
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
}

fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(name)
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(key.as_bytes())
        .finalize()
        .into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

fn check_name(name: &str) -> Result<(), NoteError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '+';
    if name.is_empty() || name.contains(bad) {
        return Err(NoteError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// C2SP forbids ASCII control characters other than newline anywhere in a note.
fn check_chars(s: &str) -> Result<(), NoteError> {
    if s.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::MalformedNote("control character"));
    }
    Ok(())
}

fn key_text(name: &str, key_id: u32, key: &[u8; 32]) -> String {
    let mut data = Vec::with_capacity(33);
    data.push(ALG_ED25519);
    data.extend_from_slice(key);
    format!("{name}+{key_id:08x}+{}", STANDARD.encode(data))
}

/// Splits `<name>+<hex id>+<base64(0x01 ‖ 32 bytes)>`; base64 may itself contain '+'.
fn parse_key_text(text: &str) -> Result<(&str, u32, [u8; 32]), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hex), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::MalformedKey("expected name+id+key"));
    };
    check_name(name)?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f')) {
        return Err(NoteError::MalformedKey("key ID must be 8 lowercase hex digits"));
    }
    let id = u32::from_str_radix(hex, 16).map_err(|_| NoteError::MalformedKey("bad key ID"))?;
    let data = STANDARD
        .decode(data)
        .map_err(|_| NoteError::MalformedKey("bad base64"))?;
    let Some((&ALG_ED25519, key)) = data.split_first() else {
        return Err(NoteError::MalformedKey("not an Ed25519 key"));
    };
    let key = key
        .try_into()
        .map_err(|_| NoteError::MalformedKey("Ed25519 key must be 32 bytes"))?;
    Ok((name, id, key))
}

pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

// Hand-written so that no formatting path can ever print the secret key.
impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let key_id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(NoteError::MalformedKey("missing PRIVATE+KEY+ prefix"))?;
        let (name, id, seed) = parse_key_text(rest)?;
        let signer = Self::new(name, SigningKey::from_bytes(&seed))?;
        if signer.key_id != id {
            return Err(NoteError::MalformedKey("key ID does not match the key"));
        }
        Ok(signer)
    }

    pub fn private_key_text(&self) -> String {
        format!(
            "{PRIVATE_KEY_PREFIX}{}",
            key_text(&self.name, self.key_id, self.key.as_bytes())
        )
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    pub fn verifier_key_text(&self) -> String {
        self.verifier().to_text()
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    key_id: u32,
}

impl NoteVerifier {
    /// Parses `<name>+<hex id>+<base64(0x01 ‖ public key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_key_text(text)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| NoteError::MalformedKey("not an Ed25519 public key"))?;
        let verifier = Self::from_public(name, key)?;
        if verifier.key_id != id {
            return Err(NoteError::MalformedKey("key ID does not match the key"));
        }
        Ok(verifier)
    }

    pub fn from_public(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &key),
            key,
        })
    }

    pub fn to_text(&self) -> String {
        key_text(&self.name, self.key_id, self.key.as_bytes())
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// A note whose signatures have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote<'a> {
    /// The signed text, including its final newline.
    pub text: &'a str,
    /// Indices into the `verifiers` given to [`open_note`] whose signatures verified, in
    /// signature-line order.
    pub verified_by: Vec<usize>,
}

pub fn sign_note(text: &str, signers: &[&NoteSigner]) -> Result<String, NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::MalformedNote("text must end with a newline"));
    }
    check_chars(text)?;
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    let mut note = format!("{text}\n");
    for (i, signer) in signers.iter().enumerate() {
        let duplicate = signers
            .iter()
            .take(i)
            .any(|s| s.name == signer.name && s.key_id == signer.key_id);
        if duplicate {
            return Err(NoteError::DuplicateSigner {
                name: signer.name.clone(),
                key_id: signer.key_id,
            });
        }
        let mut sig = signer.key_id.to_be_bytes().to_vec();
        sig.extend_from_slice(&signer.key.sign(text.as_bytes()).to_bytes());
        for part in [SIGNATURE_PREFIX, &signer.name, " ", &STANDARD.encode(sig), "\n"] {
            note.push_str(part);
        }
    }
    Ok(note)
}

/// Verifies `note` against the known `verifiers`. Signatures by other keys are ignored, as
/// C2SP requires (they may be witnesses or rotated keys), but a known key's bad signature fails
/// the whole note.
pub fn open_note<'a>(note: &'a str, verifiers: &[NoteVerifier]) -> Result<OpenedNote<'a>, NoteError> {
    check_chars(note)?;
    // Signature lines are never empty, so the last blank line is the separator.
    let (text, rest) = note
        .rfind("\n\n")
        .and_then(|i| note.split_at_checked(i + 1))
        .ok_or(NoteError::MalformedNote("no blank line before the signatures"))?;
    let sigs = rest
        .strip_prefix('\n')
        .and_then(|s| s.strip_suffix('\n'))
        .filter(|s| !s.is_empty())
        .ok_or(NoteError::MalformedNote("no signatures"))?;

    let mut verified_by: Vec<usize> = Vec::new();
    for (count, line) in sigs.split('\n').enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let (name, b64) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|l| l.split_once(' '))
            .ok_or(NoteError::MalformedNote("bad signature line"))?;
        check_name(name)?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::MalformedNote("bad signature base64"))?;
        let (id, sig) = match raw.split_first_chunk::<4>() {
            Some((id, sig)) if !sig.is_empty() => (u32::from_be_bytes(*id), sig),
            _ => return Err(NoteError::MalformedNote("signature too short")),
        };
        let Some((index, verifier)) = verifiers
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == name && v.key_id == id)
        else {
            continue;
        };
        let (name, key_id) = (name.to_owned(), id);
        if verified_by.contains(&index) {
            return Err(NoteError::DuplicateSignature { name, key_id });
        }
        let valid =
            Signature::from_slice(sig).is_ok_and(|sig| verifier.key.verify_strict(text.as_bytes(), &sig).is_ok());
        if !valid {
            return Err(NoteError::InvalidSignature { name, key_id });
        }
        verified_by.push(index);
    }
    if verified_by.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok(OpenedNote { text, verified_by })
}

/// The body of a C2SP tlog-checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// Parses the note text; extension lines after the root are allowed and ignored.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = NoteError::MalformedCheckpoint;
        let body = text.strip_suffix('\n').ok_or(bad("text must end with a newline"))?;
        // The text of a checkpoint is the text of a signed note: what parses here must be
        // signable and must read the same to every verifier (no hidden CR, tab or NUL).
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(bad("control character"));
        }
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(bad("fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(bad("empty origin"));
        }
        if lines.any(str::is_empty) {
            return Err(bad("empty extension line"));
        }
        // u64::from_str alone would accept "+1" and "007".
        let canonical = size == "0" || (!size.starts_with('0') && !size.is_empty());
        if !canonical || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("tree size must be decimal without leading zeros"));
        }
        let size = size.parse().map_err(|_| bad("tree size too large"))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|b| hash_from_slice(&b).ok())
            .ok_or(bad("root must be the base64 of 32 bytes"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::super::merkle::{empty_root, leaf_hash};
    use super::*;

    const REFERENCE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/testvectors/signed-note.txt"
    ));

    struct Reference {
        verifier: String,
        signer: String,
        note: String,
    }

    fn reference() -> Reference {
        let field = |prefix: &str| {
            REFERENCE
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap()
                .to_owned()
        };
        let (_, after) = REFERENCE.split_once("-----BEGIN NOTE-----\n").unwrap();
        let (note, _) = after.split_once("-----END NOTE-----").unwrap();
        Reference {
            verifier: field("verifier-key: "),
            signer: field("signer-key: "),
            note: note.to_owned(),
        }
    }

    fn text_of(note: &str) -> &str {
        &note[..note.rfind("\n\n").unwrap() + 1]
    }

    fn other_signer(name: &str) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[7; 32])).unwrap()
    }

    #[test]
    fn reproduces_and_opens_the_reference_note() {
        let r = reference();
        let signer = NoteSigner::parse(&r.signer).unwrap();
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.verifier_key_text(), r.verifier);
        assert_eq!(signer.private_key_text(), r.signer);
        let text = text_of(&r.note);
        assert_eq!(sign_note(text, &[&signer]).unwrap(), r.note);

        let verifier = NoteVerifier::parse(&r.verifier).unwrap();
        assert_eq!(verifier.to_text(), r.verifier);
        assert_eq!(verifier, signer.verifier());
        let opened = open_note(&r.note, std::slice::from_ref(&verifier)).unwrap();
        assert_eq!(opened.text, text);
        assert_eq!(opened.verified_by, vec![0]);
        assert!(!format!("{signer:?}").contains(&r.signer[30..]));
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let r = reference();
        let verifiers = [NoteVerifier::parse(&r.verifier).unwrap()];
        let mut checked = 0;
        for pos in 0..r.note.len() {
            for bit in 0..8 {
                let mut bytes = r.note.clone().into_bytes();
                bytes[pos] ^= 1 << bit;
                // Invalid UTF-8 cannot even become a &str, which is a rejection too.
                if let Ok(s) = String::from_utf8(bytes) {
                    assert!(open_note(&s, &verifiers).is_err(), "byte {pos} bit {bit}");
                    checked += 1;
                }
            }
        }
        assert!(checked > r.note.len() * 4);
    }

    #[test]
    fn signatures_by_unknown_keys_are_ignored_but_not_enough() {
        let r = reference();
        let verifiers = [NoteVerifier::parse(&r.verifier).unwrap()];
        let text = text_of(&r.note);
        let stranger = other_signer("stranger.example");
        let alone = sign_note(text, &[&stranger]).unwrap();
        assert_eq!(open_note(&alone, &verifiers), Err(NoteError::NoKnownSignature));

        // Same name as the known key but another key ID: still just unknown.
        let impostor = other_signer("PeterNeumann");
        let reference_signer = NoteSigner::parse(&r.signer).unwrap();
        let both = sign_note(text, &[&impostor, &stranger, &reference_signer]).unwrap();
        assert_eq!(open_note(&both, &verifiers).unwrap().verified_by, vec![0]);
        assert_eq!(open_note(&both, &[]), Err(NoteError::NoKnownSignature));
    }

    #[test]
    fn malformed_or_bad_signature_lines_are_rejected() {
        let r = reference();
        let verifiers = [NoteVerifier::parse(&r.verifier).unwrap()];
        let sig_line = r.note.lines().last().unwrap();
        let (_, good_b64) = sig_line.rsplit_once(' ').unwrap();
        let raw = STANDARD.decode(good_b64).unwrap();
        let truncated = STANDARD.encode(&raw[..40]);
        let zeroed = STANDARD.encode([&raw[..4], &[0; 64]].concat());
        for extra in [
            "garbage\n".to_owned(),
            "— PeterNeumann\n".to_owned(),
            "— PeterNeumann not!base64\n".to_owned(),
            "— PeterNeumann AAAA\n".to_owned(),
            format!("— PeterNeumann {good_b64} \n"),
            format!("— Peter+Neumann {good_b64}\n"),
            format!("—  {good_b64}\n"),
            format!("- PeterNeumann {good_b64}\n"),
            format!("— PeterNeumann {good_b64}\r\n"),
            format!("— PeterNeumann {truncated}\n"),
            format!("— PeterNeumann {zeroed}\n"),
            format!("{sig_line}\n"),
        ] {
            let note = format!("{}{extra}", r.note);
            assert!(open_note(&note, &verifiers).is_err(), "{extra:?}");
        }
        let dup = format!("{}{sig_line}\n", r.note);
        assert!(matches!(
            open_note(&dup, &verifiers),
            Err(NoteError::DuplicateSignature { .. })
        ));
        let bad = format!("{}\n— PeterNeumann {zeroed}\n", text_of(&r.note));
        assert!(matches!(
            open_note(&bad, &verifiers),
            Err(NoteError::InvalidSignature { .. })
        ));
        let no_blank = r.note.replacen("\n\n", "\n", 1);
        assert!(open_note(&no_blank, &verifiers).is_err());
        let no_final_newline = r.note.trim_end_matches('\n');
        assert!(open_note(no_final_newline, &verifiers).is_err());
        assert!(open_note(text_of(&r.note), &verifiers).is_err());
    }

    #[test]
    fn signature_count_is_bounded() {
        let r = reference();
        let verifiers = [NoteVerifier::parse(&r.verifier).unwrap()];
        let filler = "— stranger.example AAAAAAAA\n";
        let at_limit = format!("{}{}", r.note, filler.repeat(MAX_SIGNATURES - 1));
        assert!(open_note(&at_limit, &verifiers).is_ok());
        let over = format!("{at_limit}{filler}");
        assert_eq!(open_note(&over, &verifiers), Err(NoteError::TooManySignatures));
    }

    #[test]
    fn signing_rejects_bad_input() {
        let a = other_signer("a.example");
        assert!(sign_note("no newline", &[&a]).is_err());
        assert!(sign_note("carriage\r\n", &[&a]).is_err());
        assert_eq!(sign_note("x\n", &[]), Err(NoteError::NoSigners));
        assert!(matches!(
            sign_note("x\n", &[&a, &a]),
            Err(NoteError::DuplicateSigner { .. })
        ));
        let key = SigningKey::from_bytes(&[1; 32]);
        for name in ["", "a b", "a+b", "tab\there", "nbsp\u{a0}"] {
            assert!(NoteSigner::new(name, key.clone()).is_err(), "{name:?}");
        }
        // Blank lines inside the text survive, since the last blank line is the separator.
        let text = "one\n\ntwo\n\n";
        let note = sign_note(text, &[&a]).unwrap();
        assert_eq!(open_note(&note, &[a.verifier()]).unwrap().text, text);
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let r = reference();
        let (name_id, b64) = r.verifier.rsplit_once('+').unwrap();
        for bad in [
            r.verifier.replace("c74f20a3", "c74f20a4"),
            r.verifier.replace("c74f20a3", "C74F20A3"),
            r.verifier.replace("c74f20a3", "c74f20a"),
            r.verifier.replace("PeterNeumann", "PeterNeumanm"),
            format!("{name_id}+{}", STANDARD.encode([2; 33])),
            format!("{name_id}+{}", STANDARD.encode([1; 32])),
            format!("{name_id}+{b64}=="),
            "PeterNeumann+c74f20a3".to_owned(),
            r.signer.clone(),
        ] {
            assert!(NoteVerifier::parse(&bad).is_err(), "{bad}");
        }
        assert!(NoteSigner::parse(&r.verifier).is_err());
        assert!(NoteSigner::parse(&r.signer.replace("c74f20a3", "00000000")).is_err());
    }

    #[test]
    fn checkpoint_round_trips_through_a_signed_note() {
        let cp = Checkpoint {
            origin: "cgc.example/audit".to_owned(),
            size: 1234,
            root: crate_root(),
        };
        let text = cp.to_text();
        assert_eq!(Checkpoint::parse(&text), Ok(cp.clone()));
        let signer = other_signer("cgc.example/audit");
        let note = sign_note(&text, &[&signer]).unwrap();
        let opened = open_note(&note, &[signer.verifier()]).unwrap();
        assert_eq!(Checkpoint::parse(opened.text), Ok(cp.clone()));
        let extended = format!("{text}ext one\next two\n");
        assert_eq!(Checkpoint::parse(&extended), Ok(cp));
        let empty = Checkpoint {
            origin: "o".to_owned(),
            size: 0,
            root: empty_root(),
        };
        assert_eq!(Checkpoint::parse(&empty.to_text()), Ok(empty));
    }

    /// Found by `cargo fuzz` (target `signed_note`): a checkpoint whose origin held a control
    /// character parsed, but no note can carry it, so it could never be signed or opened.
    #[test]
    fn a_checkpoint_with_a_control_character_is_refused() {
        let root = STANDARD.encode(crate_root());
        for origin in ["cgc\u{1}.example/audit", "cgc.example/audit\r", "o\tp", "o\0"] {
            let text = format!("{origin}\n1042\n{root}\n");
            assert_eq!(
                Checkpoint::parse(&text),
                Err(NoteError::MalformedCheckpoint("control character")),
                "{origin:?}"
            );
        }
        let extension = format!("o\n1\n{root}\next\u{7}\n");
        assert!(Checkpoint::parse(&extension).is_err());
    }

    fn crate_root() -> Hash {
        leaf_hash(b"root")
    }

    #[test]
    fn checkpoint_parse_errors() {
        let root = STANDARD.encode(crate_root());
        let short = STANDARD.encode([0; 31]);
        for bad in [
            String::new(),
            format!("o\n1\n{root}"),
            "o\n1\n".to_owned(),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n1 \n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n1\n{short}\n"),
            format!("o\n1\n{root}x\n"),
            "o\n1\n\n".to_owned(),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        let max = format!("o\n18446744073709551615\n{root}\n");
        assert_eq!(Checkpoint::parse(&max).unwrap().size, u64::MAX);
    }
}
