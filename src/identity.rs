//! Who is on the other end of a connection: the principal named by the client certificate's
//! SAN URI (SPEC §3), parsed once per connection into a typed value.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::text::is_identifier;

const URN_PREFIX: &str = "urn:cgc-gateway:";

/// The kinds of principal; each has its own issuing CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalKind {
    Center,
    Terminal,
    Admin,
    Auditor,
}

impl PrincipalKind {
    pub const ALL: [PrincipalKind; 4] = [Self::Center, Self::Terminal, Self::Admin, Self::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Center => "center",
            Self::Terminal => "terminal",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connected party, as its certificate names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Center {
        center_id: String,
    },
    Terminal {
        station_id: String,
        terminal_no: u32,
    },
    /// `jurisdiction` is a prefecture code (`"14"`) or a municipality code (`"141003"`).
    Admin {
        jurisdiction: String,
        user: String,
    },
    Auditor {
        name: String,
    },
}

impl Principal {
    pub fn kind(&self) -> PrincipalKind {
        match self {
            Self::Center { .. } => PrincipalKind::Center,
            Self::Terminal { .. } => PrincipalKind::Terminal,
            Self::Admin { .. } => PrincipalKind::Admin,
            Self::Auditor { .. } => PrincipalKind::Auditor,
        }
    }

    /// Parses `urn:cgc-gateway:<kind>:...`.
    pub fn parse_urn(urn: &str) -> Result<Self, IdentityError> {
        let rest = urn.strip_prefix(URN_PREFIX).ok_or(IdentityError::NotOurUrn)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let ok = |s: &&str| is_identifier(s);
        match parts.as_slice() {
            ["center", id] if ok(id) => Ok(Self::Center {
                center_id: (*id).to_owned(),
            }),
            ["terminal", station, no] if ok(station) => {
                let terminal_no = no
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1 && no.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(IdentityError::Malformed)?;
                Ok(Self::Terminal {
                    station_id: (*station).to_owned(),
                    terminal_no,
                })
            }
            ["admin", jurisdiction, user] if is_jurisdiction(jurisdiction) && ok(user) => Ok(Self::Admin {
                jurisdiction: (*jurisdiction).to_owned(),
                user: (*user).to_owned(),
            }),
            ["auditor", name] if ok(name) => Ok(Self::Auditor {
                name: (*name).to_owned(),
            }),
            _ => Err(IdentityError::Malformed),
        }
    }
}

fn is_jurisdiction(s: &str) -> bool {
    crate::registry::codes::PrefectureCode::parse(s).is_ok()
        || crate::registry::codes::MunicipalityCode::parse(s).is_ok()
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Center { center_id } => write!(f, "{URN_PREFIX}center:{center_id}"),
            Self::Terminal {
                station_id,
                terminal_no,
            } => {
                write!(f, "{URN_PREFIX}terminal:{station_id}:{terminal_no}")
            }
            Self::Admin { jurisdiction, user } => write!(f, "{URN_PREFIX}admin:{jurisdiction}:{user}"),
            Self::Auditor { name } => write!(f, "{URN_PREFIX}auditor:{name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate could not be parsed")]
    BadCertificate,
    #[error("certificate names no cgc-gateway principal")]
    NoPrincipal,
    #[error("certificate names more than one cgc-gateway principal")]
    SeveralPrincipals,
    #[error("SAN URI is not a cgc-gateway URN")]
    NotOurUrn,
    #[error("cgc-gateway URN is malformed")]
    Malformed,
}

/// The identity of one TLS connection, established once after the handshake.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    pub principal: Principal,
    /// SHA-256 of the client certificate's DER: what an RFC 8705 `x5t#S256` binds a token to.
    pub cert_sha256: [u8; 32],
    /// The bearer token this connection has proved, so that its signature is verified once
    /// per connection (`auth::TokenVerifier::verify_on`).
    pub tokens: crate::auth::VerifiedTokens,
}

pub type SharedPeer = Arc<PeerIdentity>;

impl PeerIdentity {
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        Ok(Self {
            principal: principal_from_der(der)?,
            cert_sha256: Sha256::digest(der).into(),
            tokens: crate::auth::VerifiedTokens::default(),
        })
    }
}

/// Reads the one `urn:cgc-gateway:` SAN URI of a certificate.
pub fn principal_from_der(der: &[u8]) -> Result<Principal, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::BadCertificate)?;
    let mut found: Option<Principal> = None;
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                if let GeneralName::URI(uri) = name
                    && uri.starts_with(URN_PREFIX)
                {
                    if found.is_some() {
                        return Err(IdentityError::SeveralPrincipals);
                    }
                    found = Some(Principal::parse_urn(uri)?);
                }
            }
        }
    }
    found.ok_or(IdentityError::NoPrincipal)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urns_round_trip() {
        for urn in [
            "urn:cgc-gateway:center:yokohama-central",
            "urn:cgc-gateway:terminal:kagacho:1",
            "urn:cgc-gateway:admin:14:pref-admin",
            "urn:cgc-gateway:admin:141003:city-admin",
            "urn:cgc-gateway:auditor:kanagawa-audit",
        ] {
            assert_eq!(Principal::parse_urn(urn).unwrap().to_string(), urn);
        }
    }

    #[test]
    fn malformed_urns_are_refused() {
        for urn in [
            "urn:cgc-gateway:terminal:kagacho",
            "urn:cgc-gateway:terminal:kagacho:0",
            "urn:cgc-gateway:terminal:kagacho:+1",
            "urn:cgc-gateway:admin:141004:x",
            "urn:cgc-gateway:center:",
            "urn:cgc-gateway:police:x",
            "urn:other:center:x",
        ] {
            assert!(Principal::parse_urn(urn).is_err(), "{urn}");
        }
    }
}
