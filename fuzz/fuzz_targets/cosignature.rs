//! C2SP tlog-cosignature lines and witness keys (`audit::cosignature`): what the gateway reads
//! back from witnesses and what auditors configure.
//!
//! Asserted beyond "no panic":
//! - a cosignature line that parses prints back to the input (plus the final newline) and
//!   parses to the same line; a witness verifier key prints back to the trimmed input;
//! - `split_note` is undone by joining its parts;
//! - a note the witness has not cosigned yet, once cosigned and appended, verifies to that very
//!   cosignature (cosign, append and verify are consistent).
#![no_main]

use std::sync::OnceLock;

use cgc_gateway::audit::cosignature::{
    CosignatureError, CosignatureLine, WitnessKey, WitnessVerifier, append_cosignatures, split_note,
};
use cgc_gateway::audit::note::Checkpoint;
use libfuzzer_sys::fuzz_target;

fn witness() -> &'static WitnessKey {
    static W: OnceLock<WitnessKey> = OnceLock::new();
    W.get_or_init(|| {
        WitnessKey::new("witness.example/w1", ed25519_dalek::SigningKey::from_bytes(&[3; 32])).expect("a witness key")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(line) = CosignatureLine::parse(text) {
        let printed = line.to_line();
        let expected = if text.ends_with('\n') {
            text.to_owned()
        } else {
            format!("{text}\n")
        };
        assert_eq!(printed, expected);
        assert_eq!(CosignatureLine::parse(&printed).as_ref(), Ok(&line));
    }
    if let Ok(verifier) = WitnessVerifier::parse(text) {
        // Surrounding whitespace is allowed (key files end with a newline).
        assert_eq!(verifier.to_text(), text.trim());
    }

    let w = witness();
    let verifier = w.verifier();
    let result = verifier.verify_note(text);
    if let Ok((body, signatures)) = split_note(text) {
        assert_eq!(format!("{body}\n{signatures}\n"), text);
        if let Ok(line) = &result {
            assert_eq!(verifier.verify(line, body), Ok(()));
        }
        if matches!(result, Err(CosignatureError::Missing(_))) && Checkpoint::parse(body).is_ok() {
            let line = w.cosign(body, 1_780_000_000).expect("a checkpoint can be cosigned");
            let cosigned = append_cosignatures(text, std::slice::from_ref(&line));
            assert_eq!(verifier.verify_note(&cosigned), Ok(line));
        }
    } else {
        assert!(result.is_err());
    }
});
