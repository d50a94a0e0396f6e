//! The demo's development tokens (`POST /v1/dev/token`): what the police identity provider
//! would issue, bound to the calling certificate. An officer token for a terminal (the web
//! terminal's sign-in button), an administrator token for an administrator (the console's).
//! Routed only when `demo` hands the gateway an issuer key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use crate::auth::{AudClaim, Claims, Confirmation, DEV_TOKEN_TTL, TokenSettings, issue_token};
use crate::identity::{Principal, PrincipalKind};

/// Why no development token was issued.
#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    #[error("development tokens are for terminals and administrators")]
    WrongKind,
    #[error("1-64 characters: letters, digits, - _ .")]
    Subject,
    #[error("token issuer: {0}")]
    Issuer(String),
}

/// A signed token for `subject` on the certificate whose SHA-256 is `cert_sha256`, and when it
/// expires (Unix seconds).
pub fn issue(
    issuer_key_pem: &[u8],
    settings: &TokenSettings,
    principal: &Principal,
    cert_sha256: &[u8; 32],
    subject: &str,
    now: OffsetDateTime,
) -> Result<(String, i64), DevTokenError> {
    let audience = match principal.kind() {
        PrincipalKind::Terminal => settings.officer_audience.clone(),
        PrincipalKind::Admin => settings.admin_audience.clone(),
        PrincipalKind::Center | PrincipalKind::Auditor => return Err(DevTokenError::WrongKind),
    };
    let subject = subject.trim();
    if subject.is_empty()
        || subject.len() > 64
        || !subject.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(DevTokenError::Subject);
    }
    let claims = Claims {
        iss: settings.issuer.clone(),
        sub: subject.to_owned(),
        aud: AudClaim::One(audience),
        exp: (now + DEV_TOKEN_TTL).unix_timestamp(),
        nbf: now.unix_timestamp(),
        iat: Some(now.unix_timestamp()),
        cnf: Confirmation {
            x5t_s256: URL_SAFE_NO_PAD.encode(cert_sha256),
        },
    };
    let token = issue_token(issuer_key_pem, &claims).map_err(DevTokenError::Issuer)?;
    Ok((token, claims.exp))
}
