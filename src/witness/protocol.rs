//! The C2SP tlog-witness `add-checkpoint` wire format, shared by the witness and its client.
//!
//! Request body:
//!
//! ```text
//! old <size>\n
//! <base64 hash>\n          (zero to 63 consistency proof lines)
//! \n
//! <the signed checkpoint note>
//! ```
//!
//! Answers: 200 with the cosignature line(s); 409 with `Content-Type: text/x.tlog.size` and
//! the witness's size (`<size>\n`) when `old` is not the size it last cosigned; 409 (another
//! type) for a checkpoint of the cosigned size with another root; 422 when the consistency
//! proof does not verify; 404 for an unknown origin; 403 when no trusted key signed; 400 for a
//! malformed body or `old` beyond the checkpoint's size.

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::audit::merkle::{Hash, hash_from_slice};

/// The path of the call, after the witness's submission prefix.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";
/// The content type of a 409 answer that carries the witness's size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The protocol's bound on consistency proof lines; a witness refuses more.
pub const MAX_PROOF_LINES: usize = 63;
/// The largest request body a witness reads: 63 proof lines and a checkpoint note with some
/// signatures fit many times over.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed add-checkpoint request: {0}")]
pub struct MalformedRequest(pub &'static str);

/// A parsed `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness cosigned last (0: none).
    pub old: u64,
    /// The RFC 9162 consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, byte for byte.
    pub note: String,
}

/// Parses a decimal size without sign or leading zeros (`0` itself is allowed).
pub fn parse_size(s: &str) -> Option<u64> {
    let canonical = s == "0" || (!s.is_empty() && !s.starts_with('0'));
    if !canonical || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl AddCheckpoint {
    pub fn parse(body: &[u8]) -> Result<Self, MalformedRequest> {
        let bad = MalformedRequest;
        let body = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let (head, note) = body
            .split_once("\n\n")
            .ok_or(bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(parse_size)
            .ok_or(bad("the first line must be `old <size>`"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|b| hash_from_slice(&b).ok())
                .ok_or(bad("a proof line must be the base64 of 32 bytes"))?;
            proof.push(hash);
        }
        if note.is_empty() {
            return Err(bad("no checkpoint"));
        }
        Ok(Self {
            old,
            proof,
            note: note.to_owned(),
        })
    }

    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old);
        for hash in &self.proof {
            body.push_str(&STANDARD.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.note);
        body
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    const NOTE: &str = "o\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— o AAAA\n";

    #[test]
    fn a_request_round_trips() {
        let req = AddCheckpoint {
            old: 3,
            proof: vec![[1; 32], [2; 32]],
            note: NOTE.to_owned(),
        };
        let body = req.to_body();
        assert!(body.starts_with("old 3\nAQEB"));
        assert_eq!(AddCheckpoint::parse(body.as_bytes()), Ok(req));
        let first = AddCheckpoint {
            old: 0,
            proof: vec![],
            note: NOTE.to_owned(),
        };
        assert_eq!(first.to_body(), format!("old 0\n\n{NOTE}"));
        assert_eq!(AddCheckpoint::parse(first.to_body().as_bytes()), Ok(first));
    }

    #[test]
    fn malformed_requests_are_rejected() {
        let hash = STANDARD.encode([1; 32]);
        let too_long = format!("old 3\n{}\n{NOTE}", format!("{hash}\n").repeat(64));
        for bad in [
            String::new(),
            format!("old 3\n{NOTE}"),
            format!("old 03\n\n{NOTE}"),
            format!("old +3\n\n{NOTE}"),
            format!("old -3\n\n{NOTE}"),
            format!("old\n\n{NOTE}"),
            format!("new 3\n\n{NOTE}"),
            format!("old 3 \n\n{NOTE}"),
            format!("old 3\n{}\n\n{NOTE}", STANDARD.encode([1; 31])),
            format!("old 3\nnot base64\n\n{NOTE}"),
            "old 3\n\n".to_owned(),
            too_long,
        ] {
            assert!(AddCheckpoint::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(AddCheckpoint::parse(&[b'o', b'l', b'd', b' ', 0xff]).is_err());
        let at_limit = format!("old 3\n{}\n{NOTE}", format!("{hash}\n").repeat(63));
        assert_eq!(AddCheckpoint::parse(at_limit.as_bytes()).unwrap().proof.len(), 63);
    }
}
