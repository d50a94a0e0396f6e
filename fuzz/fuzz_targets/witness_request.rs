//! The witness's `add-checkpoint` request body (`witness::protocol::AddCheckpoint::parse`): the
//! bytes any client may post to a witness.
//!
//! A request that parses must serialize back to exactly the body it came from (`to_body` is the
//! parser's inverse), within the protocol's bounds.
#![no_main]

use cgc_gateway::witness::protocol::{AddCheckpoint, MAX_PROOF_LINES, parse_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AddCheckpoint::parse(data) {
        assert!(request.proof.len() <= MAX_PROOF_LINES);
        assert!(!request.note.is_empty());
        assert_eq!(request.to_body().as_bytes(), data);
        assert_eq!(AddCheckpoint::parse(request.to_body().as_bytes()), Ok(request.clone()));
        assert_eq!(parse_size(&request.old.to_string()), Some(request.old));
    }
});
