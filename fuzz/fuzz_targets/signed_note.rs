//! C2SP signed notes and tlog checkpoints (`audit::note`): what an auditor's `audit verify`, a
//! witness and the gateway's mirror read from the outside.
//!
//! Asserted beyond "no panic":
//! - an opened note's text is a prefix of the note, ends with a newline, and names each known
//!   verifier at most once;
//! - a checkpoint that parses prints back to a text that parses to the same checkpoint (to the
//!   very input when it has no extension lines), and, signed with the log's key, opens again
//!   to the same text;
//! - verifier and signer key texts that parse print back to exactly the input.
#![no_main]

use std::sync::OnceLock;

use cgc_gateway::audit::note::{Checkpoint, NoteSigner, NoteVerifier, open_note, sign_note};
use libfuzzer_sys::fuzz_target;

/// The reference key pair of C2SP signed-note (tests/testvectors/signed-note.txt).
const SIGNER: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

struct Keys {
    signer: NoteSigner,
    verifiers: Vec<NoteVerifier>,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let signer = NoteSigner::parse(SIGNER).expect("the reference signer key parses");
        let other =
            NoteSigner::new("log.example/other", ed25519_dalek::SigningKey::from_bytes(&[5; 32])).expect("a signer");
        Keys {
            verifiers: vec![signer.verifier(), other.verifier()],
            signer,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let k = keys();

    if let Ok(opened) = open_note(text, &k.verifiers) {
        assert!(text.starts_with(opened.text));
        assert!(opened.text.ends_with('\n'));
        assert!(!opened.verified_by.is_empty());
        for (i, v) in opened.verified_by.iter().enumerate() {
            assert!(*v < k.verifiers.len());
            assert!(!opened.verified_by.iter().skip(i + 1).any(|w| w == v));
        }
        let _ = Checkpoint::parse(opened.text);
    }

    if let Ok(checkpoint) = Checkpoint::parse(text) {
        let printed = checkpoint.to_text();
        assert_eq!(Checkpoint::parse(&printed).as_ref(), Ok(&checkpoint));
        if text.split('\n').count() == 4 {
            assert_eq!(printed, text);
        }
        let note = sign_note(&printed, &[&k.signer]).expect("a checkpoint can be signed");
        let opened = open_note(&note, &k.verifiers).expect("a signed checkpoint opens");
        assert_eq!(opened.text, printed);
        assert_eq!(opened.verified_by, vec![0]);
    }

    if let Ok(verifier) = NoteVerifier::parse(text) {
        assert_eq!(verifier.to_text(), text);
    }
    if let Ok(signer) = NoteSigner::parse(text) {
        assert_eq!(signer.private_key_text(), text);
    }
});
