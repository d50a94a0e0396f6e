//! A client-certificate verifier that binds the kind of principal a certificate names to the
//! CA configured for that kind: a CGC's CA cannot mint a police terminal.
//!
//! A chain it has verified is remembered (by the SHA-256 of its exact bytes, with the window in
//! which all its certificates are valid), so a terminal that connects again costs one signature
//! check (its proof of the private key, which the handshake always makes) instead of two: the
//! CA's signature over the same bytes, under the same CAs and CRLs, cannot have changed (a CRL's
//! own `nextUpdate` is not enforced, `tls::server_config`, so its answer does not depend on the
//! clock either). The clock is checked against the window on every handshake; a reload of CAs or
//! CRLs builds a new verifier, which remembers nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::identity::{PrincipalKind, principal_from_der};

#[derive(Debug)]
pub struct KindBoundVerifier {
    by_kind: Vec<(PrincipalKind, Arc<dyn ClientCertVerifier>)>,
    /// Used for the handshake signature checks, which do not depend on the CA.
    any: Arc<dyn ClientCertVerifier>,
    hints: Vec<DistinguishedName>,
    /// Chains verified in full by this verifier: digest of the chain → the seconds (Unix time)
    /// from which and until which every certificate of it is valid.
    verified: Mutex<HashMap<[u8; 32], (i64, i64)>>,
}

/// Chains remembered at most; when full, the memory starts over (a prefecture's terminals and
/// staff fit many times over).
const VERIFIED_KEPT: usize = 16_384;

/// The digest of a chain as presented: each certificate's length and bytes, in order.
fn chain_digest(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for cert in std::iter::once(end_entity).chain(intermediates) {
        h.update((cert.len() as u64).to_be_bytes());
        h.update(cert.as_ref());
    }
    h.finalize().into()
}

/// The window in which every certificate of the chain is valid, in Unix seconds.
fn validity(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Option<(i64, i64)> {
    let mut window = (i64::MIN, i64::MAX);
    for cert in std::iter::once(end_entity).chain(intermediates) {
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
        let v = parsed.validity();
        window = (
            window.0.max(v.not_before.timestamp()),
            window.1.min(v.not_after.timestamp()),
        );
    }
    Some(window)
}

impl KindBoundVerifier {
    pub fn new(by_kind: Vec<(PrincipalKind, Arc<dyn ClientCertVerifier>)>) -> Result<Self, String> {
        let any = by_kind
            .first()
            .map(|(_, v)| v.clone())
            .ok_or("no client CA configured")?;
        for (i, (kind, _)) in by_kind.iter().enumerate() {
            if by_kind.iter().skip(i + 1).any(|(k, _)| k == kind) {
                return Err(format!("client CA for {kind} configured twice"));
            }
        }
        let hints = by_kind
            .iter()
            .flat_map(|(_, v)| v.root_hint_subjects().to_vec())
            .collect();
        Ok(Self {
            by_kind,
            any,
            hints,
            verified: Mutex::new(HashMap::new()),
        })
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (i64, i64)>> {
        match self.verified.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl ClientCertVerifier for KindBoundVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let digest = chain_digest(end_entity, intermediates);
        let at = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if let Some(&(from, until)) = self.remembered().get(&digest) {
            // The same bytes under the same CAs and CRLs: only the clock can refuse them now.
            // (webpki's own bounds: valid from not_before, through not_after inclusive.)
            return if at < from {
                Err(Error::InvalidCertificate(CertificateError::NotValidYet))
            } else if at > until {
                Err(Error::InvalidCertificate(CertificateError::Expired))
            } else {
                Ok(ClientCertVerified::assertion())
            };
        }
        let verified = self.verify_in_full(end_entity, intermediates, now)?;
        if let Some(window) = validity(end_entity, intermediates) {
            let mut remembered = self.remembered();
            if remembered.len() >= VERIFIED_KEPT {
                remembered.clear();
            }
            remembered.insert(digest, window);
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.any.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.any.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.any.supported_verify_schemes()
    }
}

impl KindBoundVerifier {
    /// The whole check: the principal's kind picks the CA, which verifies the chain (signatures,
    /// validity, key usage, CRLs).
    fn verify_in_full(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let kind = principal_from_der(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))?
            .kind();
        let verifier = self
            .by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v)
            .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
        verifier.verify_client_cert(end_entity, intermediates, now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rustls_pki_types::pem::PemObject;

    use super::*;
    use crate::config::{Config, DEV_AUDIT_ORIGIN};

    fn der(path: &std::path::Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).unwrap()
    }

    /// A chain verified once is accepted again on the clock alone, refused outside its validity
    /// (however often it was accepted before), and a new verifier (a reload) remembers nothing.
    #[test]
    fn a_remembered_chain_is_still_held_to_its_validity_and_a_reload_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        crate::dev::pki::write_dev_pki(&certs, DEV_AUDIT_ORIGIN).unwrap();
        let config = Config::development(&certs, dir.path(), dir.path(), ([127, 0, 0, 1], 0).into());
        let sessions = rustls::server::ServerSessionMemoryCache::new(4);
        let verifier = super::super::server_config(&config.tls_files(), sessions.clone())
            .unwrap()
            .verifier;
        let terminal = der(&certs.join("clients").join("terminal-atsugi-1.pem"));
        let (_, parsed) = X509Certificate::from_der(terminal.as_ref()).unwrap();
        let (from, until) = (
            parsed.validity().not_before.timestamp(),
            parsed.validity().not_after.timestamp(),
        );
        let at = |secs: i64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(secs).unwrap()));

        verifier.verify_client_cert(&terminal, &[], at(from + 60)).unwrap();
        assert_eq!(verifier.remembered().len(), 1);
        verifier.verify_client_cert(&terminal, &[], at(until)).unwrap();
        assert!(matches!(
            verifier.verify_client_cert(&terminal, &[], at(until + 1)),
            Err(Error::InvalidCertificate(CertificateError::Expired))
        ));
        assert!(matches!(
            verifier.verify_client_cert(&terminal, &[], at(from - 1)),
            Err(Error::InvalidCertificate(CertificateError::NotValidYet))
        ));
        // Another chain (the same certificate with an extra one presented) is verified in full.
        let ca = der(&certs.join("ca").join("terminal-ca.pem"));
        verifier.verify_client_cert(&terminal, &[ca], at(from + 60)).unwrap();
        assert_eq!(verifier.remembered().len(), 2);

        let reloaded = super::super::server_config(&config.tls_files(), sessions)
            .unwrap()
            .verifier;
        assert!(reloaded.remembered().is_empty());
        // What fails verification is never remembered: a forged signature fails every time.
        let center = der(&certs.join("clients").join("center-kanagawa-central.pem"));
        reloaded.verify_client_cert(&center, &[], at(from + 60)).unwrap();
        let forged = {
            let mut bytes = terminal.as_ref().to_vec();
            if let Some(last) = bytes.last_mut() {
                *last ^= 1;
            }
            CertificateDer::from(bytes)
        };
        assert!(reloaded.verify_client_cert(&forged, &[], at(from + 60)).is_err());
        assert!(reloaded.verify_client_cert(&forged, &[], at(from + 60)).is_err());
        assert_eq!(reloaded.remembered().len(), 1);
    }
}
