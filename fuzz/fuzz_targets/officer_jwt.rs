//! Officers' bearer tokens (`auth::TokenVerifier::verify`): what any client puts after
//! `Authorization: Bearer`.
//!
//! The first input byte picks the mode:
//! - 0: the rest is the token, as a client sends it (the header and signature are checked before
//!   any claim is read, so this explores the JWT framing, base64 and header JSON); a token that
//!   passes (only a signed seed can) must satisfy every rule;
//! - 1: the rest is the claims JSON, signed with the issuer's key, so that claim parsing is
//!   reached; an accepted token must then satisfy every rule the gateway relies on;
//! - 2: structured claims (`exp`, `nbf` and the subject from the input) issued with
//!   `auth::issue_token` and verified again: the result must be exactly the one the rules give
//!   (the issuer and verifier are each other's inverse).
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cgc_gateway::auth::{
    AudClaim, Claims, Confirmation, TokenAudience, TokenError, TokenSettings, TokenVerifier, issue_token, x5t_s256,
};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use sha2::Digest;
use time::OffsetDateTime;

const NOW: i64 = 1_780_000_000;
const LEEWAY: i64 = 30;
const CERT: &[u8] = b"the client certificate of the connection";

struct Fixture {
    key: SigningKey,
    private_pem: String,
    verifier: TokenVerifier,
    cert_sha256: [u8; 32],
}

fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "https://idp.police.example".to_owned(),
        officer_audience: "cgc-gateway".to_owned(),
        admin_audience: "cgc-gateway-admin".to_owned(),
        leeway_seconds: LEEWAY.unsigned_abs(),
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7; 32]);
        let private_pem = key.to_pkcs8_pem(LineEnding::LF).expect("pkcs8").to_string();
        let public_pem = key.verifying_key().to_public_key_pem(LineEnding::LF).expect("spki");
        let verifier = TokenVerifier::from_public_pem(public_pem.as_bytes(), settings()).expect("verifier");
        Fixture {
            key,
            private_pem,
            verifier,
            cert_sha256: sha2::Sha256::digest(CERT).into(),
        }
    })
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).expect("a valid time")
}

fn sign_payload(payload: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let signature = fixture().key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn expected(claims: &Claims) -> Result<String, TokenError> {
    let now = NOW;
    // JWT NumericDates are read as unsigned by the signature library: a negative `exp` or `nbf`
    // makes the token malformed before any time rule applies.
    if claims.exp < 0 || claims.nbf < 0 {
        return Err(TokenError::Invalid);
    }
    if now >= claims.exp.saturating_add(LEEWAY) {
        return Err(TokenError::Expired);
    }
    if now.saturating_add(LEEWAY) < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    if !cgc_gateway::text::is_subject(&claims.sub) {
        return Err(TokenError::Invalid);
    }
    OffsetDateTime::from_unix_timestamp(claims.exp).map_err(|_| TokenError::Invalid)?;
    Ok(claims.sub.clone())
}

/// What an accepted officer token must satisfy, read independently of the verifier.
fn check_accepted(payload: &[u8], subject: &str, expires_at: OffsetDateTime) {
    let claims: Claims = serde_json::from_slice(payload).expect("accepted claims parse");
    assert_eq!(claims.iss, settings().issuer);
    match &claims.aud {
        AudClaim::One(a) => assert_eq!(a, &settings().officer_audience),
        AudClaim::Several(list) => assert!(list.contains(&settings().officer_audience)),
    }
    assert_eq!(claims.cnf.x5t_s256, x5t_s256(CERT));
    assert_eq!(expected(&claims).as_deref(), Ok(subject));
    assert_eq!(expires_at.unix_timestamp(), claims.exp);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode % 3 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(subject) = f.verifier.verify(token, TokenAudience::Officer, &f.cert_sha256, now()) {
                // Only a token signed with the issuer's key can pass (a seed is one): its claims
                // must then satisfy every rule.
                let payload = token.split('.').nth(1).expect("a JWT has a payload");
                let payload = URL_SAFE_NO_PAD.decode(payload).expect("an accepted payload decodes");
                check_accepted(&payload, &subject.subject, subject.expires_at);
            }
            let _ = f.verifier.verify(token, TokenAudience::Admin, &f.cert_sha256, now());
        }
        1 => {
            let token = sign_payload(rest);
            if let Ok(subject) = f.verifier.verify(&token, TokenAudience::Officer, &f.cert_sha256, now()) {
                check_accepted(rest, &subject.subject, subject.expires_at);
            }
        }
        _ => {
            let Some((times, sub)) = rest.split_first_chunk::<16>() else {
                return;
            };
            let Ok(sub) = std::str::from_utf8(sub) else {
                return;
            };
            let (exp, nbf) = times.split_at(8);
            let claims = Claims {
                iss: settings().issuer,
                sub: sub.to_owned(),
                aud: AudClaim::One(settings().officer_audience),
                exp: i64::from_be_bytes(exp.try_into().expect("8 bytes")),
                nbf: i64::from_be_bytes(nbf.try_into().expect("8 bytes")),
                iat: None,
                cnf: Confirmation {
                    x5t_s256: x5t_s256(CERT),
                },
            };
            let token = issue_token(f.private_pem.as_bytes(), &claims).expect("a token is issued");
            let got = f
                .verifier
                .verify(&token, TokenAudience::Officer, &f.cert_sha256, now())
                .map(|s| s.subject);
            assert_eq!(got, expected(&claims), "{claims:?}");
            // The same token on another connection, or for the other audience, is refused.
            assert!(
                f.verifier
                    .verify(&token, TokenAudience::Admin, &f.cert_sha256, now())
                    .is_err()
            );
            assert!(
                f.verifier
                    .verify(&token, TokenAudience::Officer, &[0; 32], now())
                    .is_err()
            );
        }
    }
});
