//! Officers' and administrators' bearer tokens (SPEC §3): JWTs from the police identity
//! provider, one pinned algorithm (EdDSA), `iss`/`aud`/`exp`/`nbf` required and checked against
//! the injected clock, and bound to the client certificate of the connection (RFC 8705
//! `cnf.x5t#S256`), so a token copied to another terminal is refused.

use std::collections::HashSet;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Which audience a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAudience {
    Officer,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("missing bearer token")]
    Missing,
    #[error("token is malformed or its signature does not verify")]
    Invalid,
    #[error("token has expired")]
    Expired,
    #[error("token is not yet valid")]
    NotYetValid,
    #[error("token is bound to another client certificate")]
    WrongCertificate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// A token's `aud`: one audience, or several (RFC 7519 §4.1.3), as many identity providers
/// issue it. The signature library checks that the expected audience is among them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AudClaim {
    One(String),
    Several(Vec<String>),
}

/// The claims this gateway requires. Typed integers: a string `exp` fails to decode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: AudClaim,
    pub exp: i64,
    pub nbf: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    pub cnf: Confirmation,
}

/// A verified token's subject: the officer or administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSubject {
    pub subject: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub officer_audience: String,
    pub admin_audience: String,
    pub leeway_seconds: u64,
}

pub struct TokenVerifier {
    key: DecodingKey,
    settings: TokenSettings,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub fn from_public_pem(pem: &[u8], settings: TokenSettings) -> Result<Self, String> {
        let key = DecodingKey::from_ed_pem(pem).map_err(|e| format!("token issuer public key: {e}"))?;
        Ok(Self { key, settings })
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Verifies a bearer token presented on a connection whose client certificate hashes to
    /// `cert_sha256`, at time `now`.
    pub fn verify(
        &self,
        token: &str,
        audience: TokenAudience,
        cert_sha256: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<TokenSubject, TokenError> {
        let aud = match audience {
            TokenAudience::Officer => &self.settings.officer_audience,
            TokenAudience::Admin => &self.settings.admin_audience,
        };
        let mut v = Validation::new(Algorithm::EdDSA);
        v.algorithms = vec![Algorithm::EdDSA];
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[aud]);
        v.required_spec_claims = ["exp", "nbf", "iss", "aud", "sub"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<HashSet<_>>();
        // Expiry is checked below against the injected clock, not the library's wall clock.
        v.validate_exp = false;
        v.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &v).map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        let leeway = i64::try_from(self.settings.leeway_seconds).unwrap_or(0);
        let now_s = now.unix_timestamp();
        if now_s >= claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if now_s.saturating_add(leeway) < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        let bound = URL_SAFE_NO_PAD
            .decode(claims.cnf.x5t_s256.as_bytes())
            .map_err(|_| TokenError::Invalid)?;
        if !constant_time_eq(&bound, cert_sha256) {
            return Err(TokenError::WrongCertificate);
        }
        // The subject is what revocations and audit entries name: it must read as what it is.
        if !crate::text::is_subject(&claims.sub) {
            return Err(TokenError::Invalid);
        }
        let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp).map_err(|_| TokenError::Invalid)?;
        Ok(TokenSubject {
            subject: claims.sub,
            expires_at,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The thumbprint an RFC 8705 token carries for a certificate.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(cert_der))
}

/// Issues a development token bound to `cert_der` (the `dev-token` command and tests).
pub fn issue_token(issuer_key_pem: &[u8], claims: &Claims) -> Result<String, String> {
    let key = EncodingKey::from_ed_pem(issuer_key_pem).map_err(|e| format!("token issuer key: {e}"))?;
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).map_err(|e| e.to_string())
}

/// How long a development officer token lives by default (the demo's sign-in button and
/// `dev-token`): well inside one shift, so that a token left on a shared terminal does not
/// outlive the officer's duty. The web terminal also locks itself when idle.
pub const DEV_TOKEN_TTL: time::Duration = time::Duration::hours(4);

/// The claims of a development token: valid from `now` for `ttl`.
pub fn dev_claims(
    settings: &TokenSettings,
    audience: TokenAudience,
    subject: &str,
    cert_der: &[u8],
    now: OffsetDateTime,
    ttl: time::Duration,
) -> Claims {
    let aud = AudClaim::One(match audience {
        TokenAudience::Officer => settings.officer_audience.clone(),
        TokenAudience::Admin => settings.admin_audience.clone(),
    });
    Claims {
        iss: settings.issuer.clone(),
        sub: subject.to_owned(),
        aud,
        exp: (now + ttl).unix_timestamp(),
        nbf: now.unix_timestamp(),
        iat: Some(now.unix_timestamp()),
        cnf: Confirmation {
            x5t_s256: x5t_s256(cert_der),
        },
    }
}

/// Reads a PEM file, naming the file on error.
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aud_is_one_string_or_an_array_of_strings() {
        let parse = |v| serde_json::from_value::<AudClaim>(v);
        assert_eq!(parse(json!("a")).unwrap(), AudClaim::One("a".into()));
        assert_eq!(
            parse(json!(["a", "b"])).unwrap(),
            AudClaim::Several(vec!["a".into(), "b".into()])
        );
        for bad in [json!(1), json!({"aud": "a"}), json!([1]), json!(null)] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        // Issued tokens keep the plain string form.
        assert_eq!(serde_json::to_value(AudClaim::One("a".into())).unwrap(), json!("a"));
    }
}
