//! The log's side of C2SP tlog-witness: send a signed checkpoint and a consistency proof to a
//! witness, get back its verified cosignature.
//!
//! How the gateway is meant to use it, per configured witness:
//!
//! 1. Keep, per witness, the size it last cosigned (start with 0 when unknown).
//! 2. For each new checkpoint call [`cosign_checkpoint`] with that size and a function that
//!    returns the consistency proof from any size to the checkpoint's (`AuditLog::consistency_proof`).
//!    A witness whose size the gateway got wrong (after a gateway restart, say) answers 409 with
//!    its size; `cosign_checkpoint` retries once from there.
//! 3. On success, append the returned line to the published checkpoint
//!    ([`super::cosignature::append_cosignatures`]) and remember the new size.
//! 4. On an error with [`WitnessError::is_transient`] (down, slow, failing) go on publishing and
//!    disclosing; try again with the next checkpoint. On [`WitnessError::is_alarm`] (the witness
//!    saw a fork, or holds a larger tree than the log) raise the alarm: the log has signed
//!    something that contradicts what the witness cosigned.
//!
//! Submit to one witness one checkpoint at a time, in order of size: a smaller checkpoint sent
//! after a larger one was cosigned is refused like a rollback.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::cosignature::{CosignatureError, CosignatureLine, WitnessVerifier, split_note};
use super::protocol::{ADD_CHECKPOINT_PATH, AddCheckpoint, SIZE_CONTENT_TYPE, parse_size};
use crate::audit::merkle::Hash;
use crate::audit::note::Checkpoint;

/// How long one `add-checkpoint` exchange (connect, send, answer) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Cosignature lines are about 130 bytes; a witness's answer is never near this.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// A witness's error text is untrusted; only this much of it is kept.
const MAX_MESSAGE_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("invalid witness URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),
    #[error("no consistency proof to give the witness: {0}")]
    Proof(String),
    #[error("witness unreachable: {0}")]
    Unreachable(String),
    #[error("the witness did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the witness failed (HTTP {status}): {message}")]
    ServerError { status: u16, message: String },
    /// 409 with the witness's size: the client's `old` was not what the witness cosigned last.
    #[error("the witness last cosigned size {size}")]
    Conflict { size: u64 },
    /// The witness has cosigned a larger tree than the checkpoint offered: the log rolled back.
    #[error("ROLLBACK: the witness cosigned size {witness_size}, beyond this checkpoint's {size}")]
    AheadOfLog { witness_size: u64, size: u64 },
    /// 409 without a size: the witness cosigned another tree of this size.
    #[error("FORK: the witness cosigned another tree of this size: {0}")]
    Fork(String),
    /// 422: the proof does not lead from what the witness cosigned to this checkpoint.
    #[error("the witness rejects the consistency proof (a fork, or a wrong proof): {0}")]
    InconsistentProof(String),
    /// 400, 403, 404 and other refusals: a malformed request, an unknown log or key.
    #[error("the witness refused the checkpoint (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the witness's answer holds no valid cosignature of this checkpoint: {0}")]
    BadCosignature(CosignatureError),
    #[error("the witness's answer is malformed: {0}")]
    BadAnswer(&'static str),
}

impl WitnessError {
    /// The witness is down, slow or failing: carry on without its cosignature and try again
    /// with the next checkpoint. Nothing about the log is in doubt.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_) | Self::Timeout(_) | Self::ServerError { .. } | Self::Conflict { .. }
        )
    }

    /// The witness refuses because of what the log signed (two trees of one size, a proof that
    /// does not lead from its tree, a smaller tree than it cosigned): someone must look.
    pub fn is_alarm(&self) -> bool {
        matches!(
            self,
            Self::Fork(_) | Self::InconsistentProof(_) | Self::AheadOfLog { .. }
        )
    }
}

/// A witness the log asks for cosignatures: its submission URL and its verifier key.
#[derive(Debug, Clone)]
pub struct WitnessEndpoint {
    url: String,
    host: String,
    port: u16,
    authority: String,
    path: String,
    verifier: WitnessVerifier,
    timeout: Duration,
}

impl WitnessEndpoint {
    /// `url` is the witness's submission prefix, `http://host[:port][/prefix]`; the request
    /// goes to `<prefix>/add-checkpoint`. Plain HTTP only: the answer is checked against
    /// `verifier`, so the transport needs no trust.
    pub fn new(url: &str, verifier: WitnessVerifier) -> Result<Self, WitnessError> {
        let invalid = |reason| WitnessError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("the scheme must be http"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query is not allowed"));
        }
        let authority = uri.authority().ok_or(invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials are not allowed"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let prefix = uri.path().trim_end_matches('/');
        Ok(Self {
            url: url.to_owned(),
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: format!("{prefix}{ADD_CHECKPOINT_PATH}"),
            verifier,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Replaces [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn verifier(&self) -> &WitnessVerifier {
        &self.verifier
    }
}

/// One `add-checkpoint` call: asks `witness` to cosign `checkpoint_note` (the log-signed note,
/// byte for byte), given that it last cosigned size `old_size` and `proof` leads from there to
/// the checkpoint's size (empty when `old_size` is 0 or the checkpoint's size). Returns the
/// witness's cosignature, verified with its key against the checkpoint's text.
pub async fn add_checkpoint(
    witness: &WitnessEndpoint,
    old_size: u64,
    proof: &[Hash],
    checkpoint_note: &str,
) -> Result<CosignatureLine, WitnessError> {
    let (text, _) = split_note(checkpoint_note).map_err(|e| WitnessError::InvalidCheckpoint(e.to_string()))?;
    let body = AddCheckpoint {
        old: old_size,
        proof: proof.to_vec(),
        note: checkpoint_note.to_owned(),
    }
    .to_body();
    let (status, content_type, answer) = tokio::time::timeout(witness.timeout, post(witness, body))
        .await
        .map_err(|_| WitnessError::Timeout(witness.timeout))??;
    let message = || untrusted_text(&answer);
    match status {
        StatusCode::OK => cosignature_in(witness.verifier(), &answer, text),
        StatusCode::CONFLICT if content_type.starts_with(SIZE_CONTENT_TYPE) => {
            let size = std::str::from_utf8(&answer)
                .ok()
                .and_then(|s| s.strip_suffix('\n'))
                .and_then(parse_size)
                .ok_or(WitnessError::BadAnswer("a 409 size that is not `<decimal>\\n`"))?;
            Err(WitnessError::Conflict { size })
        }
        StatusCode::CONFLICT => Err(WitnessError::Fork(message())),
        StatusCode::UNPROCESSABLE_ENTITY => Err(WitnessError::InconsistentProof(message())),
        s if s.is_server_error() => Err(WitnessError::ServerError {
            status: s.as_u16(),
            message: message(),
        }),
        s => Err(WitnessError::Refused {
            status: s.as_u16(),
            message: message(),
        }),
    }
}

/// [`add_checkpoint`] that recovers from a wrong `old_size` (the witness answers 409 with its
/// size, e.g. after the gateway restarted): it asks `proof_from(size)` for a proof from the
/// witness's size and tries once more. Returns the cosignature; the witness's size is now the
/// checkpoint's. `proof_from(old)` must return the consistency proof from `old` to the
/// checkpoint's size (it is only called with `1 ≤ old < size`).
pub async fn cosign_checkpoint<E: std::fmt::Display>(
    witness: &WitnessEndpoint,
    old_size: u64,
    checkpoint_note: &str,
    proof_from: impl Fn(u64) -> Result<Vec<Hash>, E>,
) -> Result<CosignatureLine, WitnessError> {
    let (text, _) = split_note(checkpoint_note).map_err(|e| WitnessError::InvalidCheckpoint(e.to_string()))?;
    let size = Checkpoint::parse(text)
        .map_err(|e| WitnessError::InvalidCheckpoint(e.to_string()))?
        .size;
    let proof_for = |old: u64| -> Result<Vec<Hash>, WitnessError> {
        if old > size {
            return Err(WitnessError::AheadOfLog {
                witness_size: old,
                size,
            });
        }
        if old == 0 || old == size {
            return Ok(Vec::new());
        }
        proof_from(old).map_err(|e| WitnessError::Proof(e.to_string()))
    };
    let proof = proof_for(old_size)?;
    match add_checkpoint(witness, old_size, &proof, checkpoint_note).await {
        Err(WitnessError::Conflict { size: witness_size }) if witness_size != old_size => {
            let proof = proof_for(witness_size)?;
            add_checkpoint(witness, witness_size, &proof, checkpoint_note).await
        }
        other => other,
    }
}

async fn post(witness: &WitnessEndpoint, body: String) -> Result<(StatusCode, String, Bytes), WitnessError> {
    let unreachable = |e: &dyn std::fmt::Display| WitnessError::Unreachable(e.to_string());
    let tcp = TcpStream::connect((witness.host.as_str(), witness.port))
        .await
        .map_err(|e| unreachable(&e))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(&e))?;
    let connection = tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::POST)
        .uri(witness.path.as_str())
        .header(header::HOST, witness.authority.as_str())
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| unreachable(&e))?;
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| unreachable(&e))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((parts.status, content_type, body))
    }
    .await;
    drop(sender);
    connection.abort();
    result
}

/// The witness's cosignature among the lines of its answer, verified against `text`. Lines
/// by other keys are ignored, as C2SP requires.
fn cosignature_in(verifier: &WitnessVerifier, answer: &[u8], text: &str) -> Result<CosignatureLine, WitnessError> {
    let answer = std::str::from_utf8(answer).map_err(|_| WitnessError::BadAnswer("not UTF-8"))?;
    let mut last_error = CosignatureError::Missing(verifier.name().to_owned());
    for raw in answer.lines() {
        let Ok(line) = CosignatureLine::parse(raw) else {
            continue;
        };
        if !verifier.names(&line) {
            continue;
        }
        match verifier.verify(&line, text) {
            Ok(()) => return Ok(line),
            Err(e) => last_error = e,
        }
    }
    Err(WitnessError::BadCosignature(last_error))
}

/// A witness's error text, made safe to log: printable, short.
fn untrusted_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn verifier() -> WitnessVerifier {
        super::super::cosignature::WitnessKey::new("w.example", SigningKey::from_bytes(&[1; 32]))
            .unwrap()
            .verifier()
    }

    #[test]
    fn urls_are_checked() {
        let e = WitnessEndpoint::new("http://127.0.0.1:7380", verifier()).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 7380, "/add-checkpoint")
        );
        let e = WitnessEndpoint::new("http://witness.example/w1/", verifier()).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("witness.example", 80, "/w1/add-checkpoint")
        );
        assert_eq!(e.authority, "witness.example");
        let e = WitnessEndpoint::new("http://[::1]:9/", verifier()).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        for bad in [
            "",
            "127.0.0.1:7380",
            "https://witness.example",
            "ftp://witness.example",
            "http://user:pw@witness.example",
            "http://witness.example/?x=1",
            "http:///path",
        ] {
            assert!(WitnessEndpoint::new(bad, verifier()).is_err(), "{bad}");
        }
    }

    #[test]
    fn untrusted_text_is_tamed() {
        let long = "x".repeat(1000);
        assert_eq!(untrusted_text(long.as_bytes()).len(), MAX_MESSAGE_CHARS);
        assert_eq!(untrusted_text(b"fork\n\x1b[31m"), "fork  [31m");
    }
}
