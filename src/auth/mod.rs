//! Officers' and administrators' bearer tokens (SPEC §3): JWTs from the police identity
//! provider, one pinned algorithm (EdDSA), `iss`/`aud`/`exp`/`nbf` required and checked against
//! the injected clock, and bound to the client certificate of the connection (RFC 8705
//! `cnf.x5t#S256`), so a token copied to another terminal is refused.
//!
//! A connection proves a token once: `VerifiedTokens` (one per connection) keeps the token whose
//! signature, claims and binding it has verified, and later requests that present the same bytes
//! on the same connection skip the Ed25519 verification. Expiry and not-before are checked against
//! the clock on every request, and revocations are the caller's check on every request.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

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
        self.verify_fully(token, audience, cert_sha256, now)
            .map(|v| v.subject())
    }

    /// `verify` for a request on the connection that owns `proved`: a token this connection
    /// has already proved (the same bytes, audience and certificate) is only checked against the
    /// clock again; any other token is verified in full and, if it holds, remembered instead.
    pub fn verify_on(
        &self,
        proved: &VerifiedTokens,
        token: &str,
        audience: TokenAudience,
        cert_sha256: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<TokenSubject, TokenError> {
        if let Some((subject, exp, nbf)) = proved.matching(token, audience, cert_sha256) {
            self.check_times(exp, nbf, now)?;
            return Ok(subject);
        }
        let verified = self.verify_fully(token, audience, cert_sha256, now)?;
        let subject = verified.subject();
        proved.remember(verified);
        Ok(subject)
    }

    fn check_times(&self, exp: i64, nbf: i64, now: OffsetDateTime) -> Result<(), TokenError> {
        let leeway = i64::try_from(self.settings.leeway_seconds).unwrap_or(0);
        let now_s = now.unix_timestamp();
        if now_s >= exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if now_s.saturating_add(leeway) < nbf {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    /// The signature, the claims, the times and the certificate binding, in that order.
    fn verify_fully(
        &self,
        token: &str,
        audience: TokenAudience,
        cert_sha256: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Verified, TokenError> {
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
        self.check_times(claims.exp, claims.nbf, now)?;
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
        Ok(Verified {
            token: token.into(),
            audience,
            cert_sha256: *cert_sha256,
            subject: claims.sub,
            expires_at,
            exp: claims.exp,
            nbf: claims.nbf,
        })
    }
}

/// A token whose signature, claims and certificate binding have been verified.
#[derive(Clone)]
struct Verified {
    token: Box<str>,
    audience: TokenAudience,
    cert_sha256: [u8; 32],
    subject: String,
    expires_at: OffsetDateTime,
    exp: i64,
    nbf: i64,
}

impl Verified {
    fn subject(&self) -> TokenSubject {
        TokenSubject {
            subject: self.subject.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// The token one connection has proved (`TokenVerifier::verify_on`). Each connection has its
/// own, dropped with it; nothing in it is shared with another connection. It holds the last
/// token proved, so a connection whose officer changes proves the new token once.
#[derive(Default)]
pub struct VerifiedTokens {
    last: Mutex<Option<Verified>>,
}

impl VerifiedTokens {
    /// The proved token's subject, `exp` and `nbf`, if `token` is byte for byte the one proved
    /// for this audience and certificate.
    fn matching(
        &self,
        token: &str,
        audience: TokenAudience,
        cert_sha256: &[u8; 32],
    ) -> Option<(TokenSubject, i64, i64)> {
        let last = self.lock();
        last.as_ref()
            .filter(|v| {
                v.audience == audience
                    && v.cert_sha256 == *cert_sha256
                    && constant_time_eq(v.token.as_bytes(), token.as_bytes())
            })
            .map(|v| (v.subject(), v.exp, v.nbf))
    }

    fn remember(&self, verified: Verified) {
        *self.lock() = Some(verified);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Verified>> {
        match self.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Clone for VerifiedTokens {
    fn clone(&self) -> Self {
        Self {
            last: Mutex::new(self.lock().clone()),
        }
    }
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself: it is a bearer secret.
        f.debug_struct("VerifiedTokens")
            .field("holds_one", &self.lock().is_some())
            .finish()
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

    struct Issuer {
        verifier: TokenVerifier,
        key_pem: Vec<u8>,
    }

    fn issuer() -> Issuer {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, KeypairBytes};
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let private = KeypairBytes {
            secret_key: key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
        let public = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let settings = TokenSettings {
            issuer: "https://idp.test".into(),
            officer_audience: "officers".into(),
            admin_audience: "admins".into(),
            leeway_seconds: 30,
        };
        Issuer {
            verifier: TokenVerifier::from_public_pem(public.as_bytes(), settings).unwrap(),
            key_pem: private.as_bytes().to_vec(),
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    /// An officer token bound to the certificate `cert`, valid from `NOW` for ten minutes.
    fn token(issuer: &Issuer, cert: &[u8], subject: &str) -> String {
        let claims = dev_claims(
            issuer.verifier.settings(),
            TokenAudience::Officer,
            subject,
            cert,
            at(NOW),
            time::Duration::minutes(10),
        );
        issue_token(&issuer.key_pem, &claims).unwrap()
    }

    fn sha256(der: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(der).into()
    }

    #[test]
    fn a_proved_token_is_refused_for_another_certificate() {
        let issuer = issuer();
        let (mine, theirs) = (sha256(b"terminal A"), sha256(b"terminal B"));
        let token = token(&issuer, b"terminal A", "K-1234");
        let proved = VerifiedTokens::default();
        let officer = TokenAudience::Officer;
        let v = &issuer.verifier;
        assert_eq!(
            v.verify_on(&proved, &token, officer, &mine, at(NOW)).unwrap().subject,
            "K-1234"
        );
        assert_eq!(
            v.verify_on(&proved, &token, officer, &theirs, at(NOW)),
            Err(TokenError::WrongCertificate)
        );
        // Even a record of proofs shared by mistake never carries one certificate's proof to
        // another: the binding is part of what must match.
        assert_eq!(
            v.verify_on(&proved, &token, officer, &theirs, at(NOW + 1)),
            Err(TokenError::WrongCertificate)
        );
        assert!(v.verify_on(&proved, &token, officer, &mine, at(NOW + 2)).is_ok());
        // On the other terminal's own connection, nothing is known: the same refusal.
        let elsewhere = VerifiedTokens::default();
        assert_eq!(
            v.verify_on(&elsewhere, &token, officer, &theirs, at(NOW)),
            Err(TokenError::WrongCertificate)
        );
    }

    #[test]
    fn a_proved_token_still_expires_and_is_not_valid_before_its_time() {
        let issuer = issuer();
        let cert = sha256(b"terminal A");
        let token = token(&issuer, b"terminal A", "K-1234");
        let proved = VerifiedTokens::default();
        let v = &issuer.verifier;
        let check = |now: i64| v.verify_on(&proved, &token, TokenAudience::Officer, &cert, at(now));
        assert!(check(NOW).is_ok());
        // exp is NOW + 600, with 30 s of leeway either way.
        assert!(check(NOW + 629).is_ok());
        assert_eq!(check(NOW + 630), Err(TokenError::Expired));
        assert_eq!(check(NOW + 86_400), Err(TokenError::Expired));
        assert_eq!(check(NOW - 31), Err(TokenError::NotYetValid));
        assert!(check(NOW - 30).is_ok());
        // The answers are those of a full verification at every time.
        for now in [NOW - 31, NOW, NOW + 629, NOW + 630] {
            assert_eq!(
                check(now),
                v.verify(&token, TokenAudience::Officer, &cert, at(now)),
                "{now}"
            );
        }
    }

    #[test]
    fn another_token_on_the_same_connection_is_verified_in_full() {
        let issuer = issuer();
        let cert = sha256(b"terminal A");
        let good = token(&issuer, b"terminal A", "K-1234");
        let proved = VerifiedTokens::default();
        let v = &issuer.verifier;
        let officer = TokenAudience::Officer;
        assert!(v.verify_on(&proved, &good, officer, &cert, at(NOW)).is_ok());

        // The same claims with one signature byte changed.
        let (signed, signature) = good.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
        sig[0] ^= 1;
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(
            v.verify_on(&proved, &forged, officer, &cert, at(NOW)),
            Err(TokenError::Invalid)
        );
        // A token of another issuer's key, for the same officer and certificate.
        let stranger = token(&self::issuer(), b"terminal A", "K-1234");
        assert_eq!(
            v.verify_on(&proved, &stranger, officer, &cert, at(NOW)),
            Err(TokenError::Invalid)
        );
        // The proved officer token is no administrator's token.
        assert_eq!(
            v.verify_on(&proved, &good, TokenAudience::Admin, &cert, at(NOW)),
            Err(TokenError::Invalid)
        );
        // A new officer's token on the connection is proved in full and then remembered.
        let next = token(&issuer, b"terminal A", "K-5678");
        assert_eq!(
            v.verify_on(&proved, &next, officer, &cert, at(NOW)).unwrap().subject,
            "K-5678"
        );
        assert_eq!(
            v.verify_on(&proved, &good, officer, &cert, at(NOW)).unwrap().subject,
            "K-1234"
        );
    }

    #[test]
    fn the_record_of_a_connection_never_prints_its_token() {
        let issuer = issuer();
        let token = token(&issuer, b"terminal A", "K-1234");
        let proved = VerifiedTokens::default();
        issuer
            .verifier
            .verify_on(&proved, &token, TokenAudience::Officer, &sha256(b"terminal A"), at(NOW))
            .unwrap();
        let shown = format!("{proved:?}");
        assert!(!shown.contains(&token) && !shown.contains("K-1234"), "{shown}");
    }

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
