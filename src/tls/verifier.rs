//! A client-certificate verifier that binds the kind of principal a certificate names to the
//! CA configured for that kind: a CGC's CA cannot mint a police terminal.

use std::sync::Arc;

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
        Ok(Self { by_kind, any, hints })
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
