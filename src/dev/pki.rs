//! Development PKI behind `cgc-gateway dev-certs --out <dir>`.
//!
//! Everything written here is for development and tests only: the keys are unprotected on disk,
//! the PKCS#12 password is the well-known `demo`, and the CAs are throw-away. The file names are a
//! contract shared with `demo`, `dev-token` and the integration tests.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
    PrivateKey as P12PrivateKey, PrivateKeyChain,
};
use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

/// Password of every generated `.p12`; documented in `certs-dev/README.md`.
pub const DEMO_P12_PASSWORD: &str = "demo";

/// Organisation of every generated subject, so a development certificate is recognisable at a
/// glance in a browser's certificate picker or a log line.
const DEV_ORGANIZATION: &str = "cgc-gateway development";

/// CA kinds, in the order their files are written; `server` issues the gateway's TLS certificate,
/// the others one per principal kind (a certificate of one kind issued by another kind's CA is
/// refused).
pub const CA_KINDS: &[&str] = &["server", "center", "terminal", "admin", "auditor"];

const CA_VALIDITY: Duration = Duration::days(3653);
const LEAF_VALIDITY: Duration = Duration::days(731);
/// Back-dating absorbs clock skew between the machine that generated the PKI and the one
/// verifying it.
const BACKDATE: Duration = Duration::days(1);

pub use crate::identity::PrincipalKind;

/// Every demo principal: (file name under `clients/`, kind, SAN URI).
pub const DEMO_PRINCIPALS: &[(&str, PrincipalKind, &str)] = &[
    (
        "center-kanagawa-central",
        PrincipalKind::Center,
        "urn:cgc-gateway:center:kanagawa-central",
    ),
    (
        "center-yokohama-central",
        PrincipalKind::Center,
        "urn:cgc-gateway:center:yokohama-central",
    ),
    (
        "center-kawasaki-central",
        PrincipalKind::Center,
        "urn:cgc-gateway:center:kawasaki-central",
    ),
    (
        "center-sagamihara",
        PrincipalKind::Center,
        "urn:cgc-gateway:center:sagamihara",
    ),
    (
        "center-yokosuka",
        PrincipalKind::Center,
        "urn:cgc-gateway:center:yokosuka",
    ),
    (
        "terminal-kagacho-1",
        PrincipalKind::Terminal,
        "urn:cgc-gateway:terminal:kagacho:1",
    ),
    (
        "terminal-tsurumi-1",
        PrincipalKind::Terminal,
        "urn:cgc-gateway:terminal:tsurumi:1",
    ),
    (
        "terminal-kawasaki-1",
        PrincipalKind::Terminal,
        "urn:cgc-gateway:terminal:kawasaki:1",
    ),
    (
        "terminal-sagamihara-minami-1",
        PrincipalKind::Terminal,
        "urn:cgc-gateway:terminal:sagamihara-minami:1",
    ),
    (
        "terminal-yokosuka-1",
        PrincipalKind::Terminal,
        "urn:cgc-gateway:terminal:yokosuka:1",
    ),
    (
        "terminal-atsugi-1",
        PrincipalKind::Terminal,
        "urn:cgc-gateway:terminal:atsugi:1",
    ),
    (
        "terminal-hq-1",
        PrincipalKind::Terminal,
        "urn:cgc-gateway:terminal:hq:1",
    ),
    (
        "admin-14-pref-admin",
        PrincipalKind::Admin,
        "urn:cgc-gateway:admin:14:pref-admin",
    ),
    (
        "admin-141003-city-admin",
        PrincipalKind::Admin,
        "urn:cgc-gateway:admin:141003:city-admin",
    ),
    (
        "admin-141305-city-admin",
        PrincipalKind::Admin,
        "urn:cgc-gateway:admin:141305:city-admin",
    ),
    (
        "auditor-kanagawa-audit",
        PrincipalKind::Auditor,
        "urn:cgc-gateway:auditor:kanagawa-audit",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    #[error("cannot create directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot use {path} as a CA: {reason}")]
    InvalidCa { path: PathBuf, reason: String },
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("invalid certificate or key PEM: {0}")]
    Pem(String),
    #[error("PKCS#12 encoding failed: {0}")]
    Pkcs12(#[from] p12_keystore::error::Error),
    #[error("Ed25519 private key encoding failed: {0}")]
    Pkcs8(#[from] ed25519_dalek::pkcs8::Error),
    #[error("Ed25519 public key encoding failed: {0}")]
    Spki(#[from] ed25519_dalek::pkcs8::spki::Error),
    #[error("invalid note key name {0:?}: must be non-empty, without '+' or whitespace")]
    InvalidKeyName(String),
}

/// A certificate authority able to issue development certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The issuer holds the private key; keep it out of logs and panic messages.
        f.debug_struct("Authority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A freshly issued certificate and its private key.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A fresh self-signed CA valid from a day before the current time for ten years.
    ///
    /// Reads the clock; code that must be reproducible uses [`Authority::new_ca_at`].
    pub fn new_ca(common_name: &str) -> Result<Self, DevPkiError> {
        Self::new_ca_at(common_name, wall_clock())
    }

    /// A fresh self-signed CA valid from `now - 1 day` to `now + 10 years`.
    pub fn new_ca_at(common_name: &str, now: OffsetDateTime) -> Result<Self, DevPkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name);
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        // Path length 0: these CAs issue end-entity certificates only, so a leaked leaf key can
        // never be turned into a sub-CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A CA previously written by [`write_dev_pki`] (or any CA whose subject uses UTF8String,
    /// PrintableString or IA5String attributes) and its PKCS#8 PEM key.
    pub fn load(cert_pem_path: &Path, key_pem_path: &Path) -> Result<Self, DevPkiError> {
        let cert_pem = read_to_string(cert_pem_path)?;
        let key_pem = read_to_string(key_pem_path)?;
        let invalid = |reason: String| DevPkiError::InvalidCa {
            path: cert_pem_path.to_path_buf(),
            reason,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        let params = issuer_params(&cert).map_err(invalid)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| DevPkiError::InvalidCa {
            path: key_pem_path.to_path_buf(),
            reason: format!("not a PKCS#8 PEM private key: {e}"),
        })?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(DevPkiError::InvalidCa {
                path: key_pem_path.to_path_buf(),
                reason: format!("key does not match {}", cert_pem_path.display()),
            });
        }
        let cert_der = pem.contents.clone();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            cert_der,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// PKCS#8 PEM of the CA's private key.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A client certificate (EKU clientAuth) whose subject CN is `common_name` and whose only SAN
    /// is the URI `san_uri`. Any validity is accepted, so tests can mint expired or
    /// not-yet-valid certificates.
    pub fn issue_client(
        &self,
        common_name: &str,
        san_uri: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<IssuedCert, DevPkiError> {
        let mut params = leaf_params(common_name, not_before, not_after);
        params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(san_uri)?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params)
    }

    /// A server certificate (EKU serverAuth) for the given names, valid from a day before the
    /// current time for two years.
    ///
    /// Reads the clock; code that must be reproducible uses [`Authority::issue_server_at`].
    pub fn issue_server(&self, dns_names: &[&str], ips: &[IpAddr]) -> Result<IssuedCert, DevPkiError> {
        self.issue_server_at(dns_names, ips, wall_clock())
    }

    /// A server certificate valid from `now - 1 day` to `now + 2 years`.
    pub fn issue_server_at(
        &self,
        dns_names: &[&str],
        ips: &[IpAddr],
        now: OffsetDateTime,
    ) -> Result<IssuedCert, DevPkiError> {
        let common_name = dns_names.first().copied().unwrap_or("cgc-gateway development server");
        let mut params = leaf_params(common_name, now - BACKDATE, now + LEAF_VALIDITY);
        params.subject_alt_names = dns_names
            .iter()
            .map(|name| Ok(SanType::DnsName(Ia5String::try_from(*name)?)))
            .chain(ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
            .collect::<Result<_, rcgen::Error>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(&params)
    }

    /// A CRL (PEM) signed by this CA revoking the certificates given as DER, valid from `now`
    /// for a week.
    pub fn crl(&self, revoked_der: &[&[u8]], crl_number: u64, now: OffsetDateTime) -> Result<String, DevPkiError> {
        let mut revoked_certs = Vec::with_capacity(revoked_der.len());
        for der in revoked_der {
            let (_, cert) = <X509Certificate as x509_parser::prelude::FromDer<_>>::from_der(der)
                .map_err(|e| DevPkiError::Pem(format!("revoked certificate: {e}")))?;
            revoked_certs.push(rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(cert.raw_serial()),
                revocation_time: now,
                reason_code: Some(rcgen::RevocationReason::CessationOfOperation),
                invalidity_date: None,
            });
        }
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(7),
            crl_number: rcgen::SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    fn sign(&self, params: &CertificateParams) -> Result<IssuedCert, DevPkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        })
    }
}

impl IssuedCert {
    /// PKCS#12 holding the key, this certificate and `ca`'s certificate, encrypted with
    /// PBES2/AES-256-CBC and authenticated with HMAC-SHA256: current Chromium, Firefox and
    /// OpenSSL 3 import it, and none of them needs the legacy RC2/3DES providers.
    pub fn to_p12(&self, ca: &Authority, friendly_name: &str, password: &str) -> Result<Vec<u8>, DevPkiError> {
        let (_, key_pem) = x509_parser::pem::parse_x509_pem(self.key_pem.as_bytes())
            .map_err(|e| DevPkiError::Pem(format!("private key: {e}")))?;
        let key = P12PrivateKey::from_der(&key_pem.contents)?;
        let chain = [
            P12Certificate::from_der(&self.cert_der)?,
            P12Certificate::from_der(&ca.cert_der)?,
        ];
        // The local key id only has to pair the key bag with its certificate bag; a digest of
        // the certificate is unique and stable.
        let local_key_id = Sha256::digest(&self.cert_der).to_vec();
        let mut store = KeyStore::new();
        store.add_entry(
            friendly_name,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, chain)),
        );
        Ok(store
            .writer(password)
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
            .write()?)
    }
}

/// Writes the development PKI under `out`, replacing any previous one. The audit
/// verifier key is named `audit_origin` (the log's origin line).
pub fn write_dev_pki(out: &Path, audit_origin: &str) -> Result<(), DevPkiError> {
    // CLI entry point: the one place the dev PKI reads the clock, so every certificate in a run
    // shares the same validity start.
    #[allow(clippy::disallowed_methods)]
    let now = OffsetDateTime::now_utc();

    let ca_dir = out.join("ca");
    let clients_dir = out.join("clients");
    let token_dir = out.join("token-issuer");
    let audit_dir = out.join("audit");
    for dir in [out, &ca_dir, &clients_dir, &token_dir, &audit_dir] {
        create_dir(dir)?;
    }

    write_public(&out.join("README.txt"), README_TXT.as_bytes())?;

    let mut authorities = Vec::with_capacity(CA_KINDS.len());
    for kind in CA_KINDS {
        let ca = Authority::new_ca_at(&format!("cgc-gateway development {kind} CA"), now)?;
        authorities.push((*kind, ca));
    }
    let authority = |kind: &str| -> Result<&Authority, DevPkiError> {
        authorities
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, ca)| ca)
            .ok_or_else(|| DevPkiError::InvalidCa {
                path: ca_dir.join(format!("{kind}-ca.pem")),
                reason: "no CA generated for this kind".to_owned(),
            })
    };

    let server = authority("server")?.issue_server_at(
        &["localhost"],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)],
        now,
    )?;
    write_public(&out.join("server.pem"), server.cert_pem.as_bytes())?;
    write_private(&out.join("server-key.pem"), server.key_pem.as_bytes())?;

    for (name, kind, san_uri) in DEMO_PRINCIPALS {
        let ca = authority(kind.as_str())?;
        let issued = ca.issue_client(name, san_uri, now - BACKDATE, now + LEAF_VALIDITY)?;
        let p12 = issued.to_p12(ca, name, DEMO_P12_PASSWORD)?;
        write_public(&clients_dir.join(format!("{name}.pem")), issued.cert_pem.as_bytes())?;
        write_private(&clients_dir.join(format!("{name}-key.pem")), issued.key_pem.as_bytes())?;
        write_private(&clients_dir.join(format!("{name}.p12")), &p12)?;
    }

    let token_key = SigningKey::generate(&mut rand_core::OsRng);
    write_ed25519_private(&token_dir.join("issuer-key.pem"), &token_key)?;
    write_public(
        &token_dir.join("issuer-pub.pem"),
        token_key.verifying_key().to_public_key_pem(LineEnding::LF)?.as_bytes(),
    )?;

    let log_key = SigningKey::generate(&mut rand_core::OsRng);
    let verifier = crate::audit::note::NoteVerifier::from_public(audit_origin, log_key.verifying_key())
        .map_err(|e| DevPkiError::InvalidKeyName(e.to_string()))?
        .to_text();
    write_ed25519_private(&audit_dir.join("log-key.pem"), &log_key)?;
    write_public(&audit_dir.join("verifier-key.txt"), format!("{verifier}\n").as_bytes())?;

    // The CA certificates go last: `demo` takes `ca/terminal-ca.pem` as the sign of a complete
    // PKI, so an interrupted run must not leave it behind next to missing client files.
    for (kind, ca) in &authorities {
        write_private(&ca_dir.join(format!("{kind}-ca-key.pem")), ca.key_pem().as_bytes())?;
        write_public(&ca_dir.join(format!("{kind}-ca.pem")), ca.cert_pem.as_bytes())?;
    }
    Ok(())
}

const README_TXT: &str = "\
This directory holds a DEVELOPMENT-ONLY public key infrastructure generated by \
`cgc-gateway dev-certs` (or `cgc-gateway demo`): throw-away certificate authorities, the \
gateway's localhost server certificate, one client certificate per demo principal (the .p12 \
files use the public password `demo`), the development token-issuer key and the audit log \
signing key. The private keys are stored unencrypted and the passwords are public, so none of \
these files may ever be used in production, trusted by a real browser profile, or copied to any \
machine that handles real case data.
";

/// Only the convenience constructors `Authority::new_ca` and `Authority::issue_server` read the
/// clock, for tests that want "valid now"; everything reproducible takes the time as a parameter.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// An Ed25519 private key as PKCS#8 v1 PEM (RFC 8410: the private key only). ed25519-dalek
/// writes v2 with the public key appended, which OpenSSL 3.0 and Python's `cryptography` cannot
/// load; the public key is derived from the private one anyway.
fn write_ed25519_private(path: &Path, key: &SigningKey) -> Result<(), DevPkiError> {
    let bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    write_private(path, bytes.to_pkcs8_pem(LineEnding::LF)?.as_bytes())
}

/// Octets of every serial number: 127 random bits, well inside RFC 5280's 20-octet limit.
const SERIAL_LEN: usize = 16;

/// A random serial that DER encodes as a positive INTEGER of exactly [`SERIAL_LEN`] octets
/// (RFC 5280 §4.1.2.2): the top bit clear, so it is not negative and needs no padding octet,
/// and the next bit set, so it is never zero and never shortened by a leading zero octet.
fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; SERIAL_LEN];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    rcgen::SerialNumber::from_slice(&bytes)
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, DEV_ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn leaf_params(common_name: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = not_before;
    params.not_after = not_after;
    // No BasicConstraints at all: an end entity is what a certificate without the extension is
    // (RFC 5280 §4.2.1.9). rcgen's `ExplicitNoCa` would write `cA FALSE`, the DER default,
    // which strict parsers (Python's `cryptography`, and so sslyze and many integrators'
    // tools) refuse to read.
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(random_serial());
    // Lets verifiers pick the right CA when several share a subject (e.g. after regeneration).
    params.use_authority_key_identifier_extension = true;
    params
}

/// Rebuilds what rcgen needs to sign as an existing CA: its exact subject (so the issuer DN of
/// new certificates matches byte for byte), its key usages and its subject key identifier.
fn issuer_params(cert: &X509Certificate<'_>) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for attr in cert.subject().iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| format!("subject attribute OID {} too large", attr.attr_type()))?
            .collect();
        let text = attr
            .as_str()
            .map_err(|e| format!("subject attribute {}: {e}", attr.attr_type()))?;
        let value = match attr.attr_value().tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(PrintableString::try_from(text).map_err(|e| e.to_string())?)
            }
            Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text).map_err(|e| e.to_string())?),
            other => return Err(format!("unsupported subject string type {other:?}")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    params.distinguished_name = dn;

    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(ski) => {
                params.key_identifier_method = KeyIdMethod::PreSpecified(ski.0.to_vec());
            }
            ParsedExtension::KeyUsage(ku) => {
                let flags = [
                    (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
                    (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
                    (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
                    (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
                    (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
                    (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
                    (ku.crl_sign(), KeyUsagePurpose::CrlSign),
                    (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
                    (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
                ];
                params.key_usages = flags
                    .into_iter()
                    .filter_map(|(set, purpose)| set.then_some(purpose))
                    .collect();
            }
            _ => {}
        }
    }
    Ok(params)
}

fn read_to_string(path: &Path) -> Result<String, DevPkiError> {
    fs::read_to_string(path).map_err(|source| DevPkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(path: &Path) -> Result<(), DevPkiError> {
    fs::create_dir_all(path).map_err(|source| DevPkiError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

fn write_public(path: &Path, contents: &[u8]) -> Result<(), DevPkiError> {
    write_with_mode(path, contents, 0o644)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), DevPkiError> {
    write_with_mode(path, contents, 0o600)
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), DevPkiError> {
    let error = |source| DevPkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    // `mode` only applies when the file is created; a key regenerated over an older,
    // world-readable file must not inherit its permissions.
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_methods
)]
mod tests {
    use super::*;
    use p12_keystore::Pkcs12ImportPolicy;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;

    const ORIGIN: &str = "cgc-gateway.example/audit";

    fn parse_pem_file(path: &Path) -> Vec<u8> {
        let text = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, pem) = x509_parser::pem::parse_x509_pem(&text).unwrap();
        pem.contents
    }

    fn san_uris(cert: &X509Certificate<'_>) -> Vec<String> {
        let san = cert.subject_alternative_name().unwrap().unwrap();
        san.value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::URI(uri) => (*uri).to_owned(),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect()
    }

    fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap()
    }

    fn aki(cert: &X509Certificate<'_>) -> Vec<u8> {
        cert.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(k) => Some(k.key_identifier.as_ref().unwrap().0.to_vec()),
                _ => None,
            })
            .unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_every_file_with_the_right_modes() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_pki(dir.path(), ORIGIN).unwrap();
        let out = dir.path();
        let mut private = vec![
            out.join("server-key.pem"),
            out.join("token-issuer/issuer-key.pem"),
            out.join("audit/log-key.pem"),
        ];
        let mut public = vec![
            out.join("README.txt"),
            out.join("server.pem"),
            out.join("token-issuer/issuer-pub.pem"),
            out.join("audit/verifier-key.txt"),
        ];
        for kind in CA_KINDS {
            public.push(out.join(format!("ca/{kind}-ca.pem")));
            private.push(out.join(format!("ca/{kind}-ca-key.pem")));
        }
        for (name, _, _) in DEMO_PRINCIPALS {
            public.push(out.join(format!("clients/{name}.pem")));
            private.push(out.join(format!("clients/{name}-key.pem")));
            private.push(out.join(format!("clients/{name}.p12")));
        }
        for path in &private {
            assert_eq!(mode(path), 0o600, "{}", path.display());
        }
        for path in &public {
            assert!(path.is_file(), "{}", path.display());
        }
        assert_eq!(DEMO_PRINCIPALS.len(), 16);
    }

    #[test]
    fn client_certificates_name_their_principal_and_chain_to_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_pki(dir.path(), ORIGIN).unwrap();
        let out = dir.path();
        let ca_ders: Vec<(&str, Vec<u8>)> = CA_KINDS
            .iter()
            .map(|k| (*k, parse_pem_file(&out.join(format!("ca/{k}-ca.pem")))))
            .collect();
        let cas: Vec<(&str, X509Certificate<'_>)> = ca_ders
            .iter()
            .map(|(k, der)| (*k, X509Certificate::from_der(der).unwrap().1))
            .collect();
        // Distinct subjects are what lets the gateway refuse a certificate from another kind's CA.
        for (i, (_, a)) in cas.iter().enumerate() {
            assert!(a.is_ca());
            assert_eq!(
                a.basic_constraints().unwrap().unwrap().value.path_len_constraint,
                Some(0)
            );
            let ku = a.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign() && ku.crl_sign());
            for (_, b) in cas.iter().skip(i + 1) {
                assert_ne!(a.subject().as_raw(), b.subject().as_raw());
            }
        }
        for (name, kind, uri) in DEMO_PRINCIPALS {
            let der = parse_pem_file(&out.join(format!("clients/{name}.pem")));
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            assert_eq!(san_uris(&cert), vec![(*uri).to_owned()], "{name}");
            let cn = cert.subject().iter_common_name().next().unwrap();
            assert_eq!(cn.as_str().unwrap(), *name);
            let (_, ca) = cas.iter().find(|(k, _)| *k == kind.as_str()).unwrap();
            assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw(), "{name}");
            assert_eq!(aki(&cert), ski(ca), "{name}");
            for (other_kind, other) in &cas {
                if *other_kind != kind.as_str() {
                    assert_ne!(cert.issuer().as_raw(), other.subject().as_raw());
                }
            }
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth && !eku.server_auth);
            assert!(!cert.is_ca());
        }
        let der = parse_pem_file(&out.join("server.pem"));
        let (_, server) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(server.issuer().as_raw(), cas[0].1.subject().as_raw());
        assert!(server.extended_key_usage().unwrap().unwrap().value.server_auth);
        let names = &server.subject_alternative_name().unwrap().unwrap().value.general_names;
        assert!(names.contains(&GeneralName::DNSName("localhost")));
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
    }

    #[test]
    fn serials_are_positive_random_and_leaves_carry_no_basic_constraints() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_pki(dir.path(), ORIGIN).unwrap();
        let mut files: Vec<PathBuf> = CA_KINDS
            .iter()
            .map(|k| dir.path().join(format!("ca/{k}-ca.pem")))
            .collect();
        files.push(dir.path().join("server.pem"));
        files.extend(
            DEMO_PRINCIPALS
                .iter()
                .map(|(name, _, _)| dir.path().join(format!("clients/{name}.pem"))),
        );
        let mut serials = std::collections::BTreeSet::new();
        for path in &files {
            let der = parse_pem_file(path);
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            let raw = cert.raw_serial();
            // DER INTEGER content: no sign bit, no padding, never zero.
            assert_eq!(raw.len(), SERIAL_LEN, "{}", path.display());
            assert_eq!(raw[0] & 0xc0, 0x40, "{}", path.display());
            assert!(serials.insert(raw.to_vec()), "{}: serial repeated", path.display());
            let constraints = cert.basic_constraints().unwrap();
            if cert.is_ca() {
                assert!(constraints.unwrap().value.ca);
            } else {
                assert!(constraints.is_none(), "{}: leaf with BasicConstraints", path.display());
            }
        }
    }

    #[test]
    fn p12_files_decode_with_the_demo_password() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_pki(dir.path(), ORIGIN).unwrap();
        for (name, kind, _) in DEMO_PRINCIPALS {
            let p12 = fs::read(dir.path().join(format!("clients/{name}.p12"))).unwrap();
            let store = KeyStore::from_pkcs12(&p12, DEMO_P12_PASSWORD, Pkcs12ImportPolicy::Relaxed).unwrap();
            let (alias, chain) = store.private_key_chain().unwrap();
            assert_eq!(alias, *name);
            let key_der = parse_pem_file(&dir.path().join(format!("clients/{name}-key.pem")));
            assert_eq!(chain.key().as_der(), key_der.as_slice());
            let cert_der = parse_pem_file(&dir.path().join(format!("clients/{name}.pem")));
            assert_eq!(chain.certs()[0].as_der(), cert_der.as_slice());
            let ca_der = parse_pem_file(&dir.path().join(format!("ca/{}-ca.pem", kind.as_str())));
            assert!(chain.certs().iter().any(|c| c.as_der() == ca_der.as_slice()));
            assert!(
                KeyStore::from_pkcs12(&p12, "wrong", Pkcs12ImportPolicy::Relaxed).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn verifier_key_has_the_c2sp_format_and_key_id() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_pki(dir.path(), ORIGIN).unwrap();
        let line = fs::read_to_string(dir.path().join("audit/verifier-key.txt")).unwrap();
        let line = line.strip_suffix('\n').unwrap();
        let parts: Vec<&str> = line.splitn(3, '+').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], ORIGIN);
        assert_eq!(parts[1].len(), 8);
        assert!(parts[1].chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        let encoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, parts[2]).unwrap();
        assert_eq!(encoded.len(), 33);
        assert_eq!(encoded[0], 0x01);

        let mut hashed = format!("{ORIGIN}\n").into_bytes();
        hashed.extend_from_slice(&encoded);
        let digest = Sha256::digest(&hashed);
        let expected: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parts[1], expected);

        let pem = fs::read_to_string(dir.path().join("audit/log-key.pem")).unwrap();
        let key = <SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(key.verifying_key().as_bytes(), &encoded[1..]);
    }

    #[test]
    fn token_issuer_keys_are_a_matching_ed25519_pair() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_pki(dir.path(), ORIGIN).unwrap();
        let private = fs::read_to_string(dir.path().join("token-issuer/issuer-key.pem")).unwrap();
        let public = fs::read_to_string(dir.path().join("token-issuer/issuer-pub.pem")).unwrap();
        let key = <SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&private).unwrap();
        let pubkey =
            <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(&public)
                .unwrap();
        assert_eq!(key.verifying_key(), pubkey);
    }

    #[test]
    fn expired_certificates_can_be_issued() {
        let now = OffsetDateTime::now_utc();
        let ca = Authority::new_ca_at("test terminal CA", now).unwrap();
        let issued = ca
            .issue_client(
                "terminal-kagacho-1",
                "urn:cgc-gateway:terminal:kagacho:1",
                now - Duration::days(30),
                now - Duration::days(1),
            )
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.cert_der).unwrap();
        assert!(cert.validity().not_after.timestamp() < now.unix_timestamp());
        assert!(!cert.validity().is_valid());
    }

    #[test]
    fn a_loaded_ca_issues_certificates_that_chain_to_it() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_pki(dir.path(), ORIGIN).unwrap();
        let ca_path = dir.path().join("ca/terminal-ca.pem");
        let ca = Authority::load(&ca_path, &dir.path().join("ca/terminal-ca-key.pem")).unwrap();
        let now = OffsetDateTime::now_utc();
        let issued = ca
            .issue_client(
                "terminal-extra-9",
                "urn:cgc-gateway:terminal:extra:9",
                now,
                now + Duration::days(1),
            )
            .unwrap();
        let ca_der = parse_pem_file(&ca_path);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.cert_der).unwrap();
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
        assert_eq!(aki(&cert), ski(&ca_cert));

        // A key that belongs to another CA is refused rather than producing unverifiable certs.
        let mismatched = Authority::load(&ca_path, &dir.path().join("ca/center-ca-key.pem"));
        assert!(matches!(mismatched, Err(DevPkiError::InvalidCa { .. })));
        let missing = Authority::load(&dir.path().join("nope.pem"), &ca_path);
        assert!(matches!(missing, Err(DevPkiError::Read { .. })));

        if let Some(openssl) = openssl() {
            let leaf = dir.path().join("extra.pem");
            fs::write(&leaf, &issued.cert_pem).unwrap();
            let status = std::process::Command::new(openssl)
                .arg("verify")
                .arg("-CAfile")
                .arg(&ca_path)
                .arg(&leaf)
                .output()
                .unwrap();
            assert!(status.status.success(), "{status:?}");
        }
    }

    fn openssl() -> Option<&'static str> {
        std::process::Command::new("openssl")
            .arg("version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| "openssl")
    }

    #[test]
    fn openssl_reads_the_p12_files_and_verifies_the_chains() {
        let Some(openssl) = openssl() else {
            eprintln!("openssl not installed; skipping");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        write_dev_pki(dir.path(), ORIGIN).unwrap();
        let out = dir.path();
        for (name, kind, _) in DEMO_PRINCIPALS {
            let p12 = out.join(format!("clients/{name}.p12"));
            let certs = std::process::Command::new(openssl)
                .args(["pkcs12", "-passin", "pass:demo", "-nokeys", "-in"])
                .arg(&p12)
                .output()
                .unwrap();
            assert!(certs.status.success(), "{name}: {certs:?}");
            let text = String::from_utf8_lossy(&certs.stdout);
            assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{name}");
            let keys = std::process::Command::new(openssl)
                .args(["pkcs12", "-passin", "pass:demo", "-nocerts", "-nodes", "-in"])
                .arg(&p12)
                .output()
                .unwrap();
            assert!(keys.status.success(), "{name}: {keys:?}");
            let text = String::from_utf8_lossy(&keys.stdout);
            assert!(text.contains("BEGIN PRIVATE KEY"), "{name}");
            assert!(text.contains(&format!("friendlyName: {name}")), "{name}: {text}");

            let verify = std::process::Command::new(openssl)
                .args(["verify", "-purpose", "sslclient", "-CAfile"])
                .arg(out.join(format!("ca/{}-ca.pem", kind.as_str())))
                .arg(out.join(format!("clients/{name}.pem")))
                .output()
                .unwrap();
            assert!(verify.status.success(), "{name}: {verify:?}");
            let wrong_ca = if *kind == PrincipalKind::Terminal {
                "center"
            } else {
                "terminal"
            };
            let cross = std::process::Command::new(openssl)
                .args(["verify", "-CAfile"])
                .arg(out.join(format!("ca/{wrong_ca}-ca.pem")))
                .arg(out.join(format!("clients/{name}.pem")))
                .output()
                .unwrap();
            assert!(!cross.status.success(), "{name} verified against {wrong_ca}");
        }
        // The Ed25519 keys (token issuer, audit log) are PKCS#8 v1, which OpenSSL 3.0 reads.
        for key in ["token-issuer/issuer-key.pem", "audit/log-key.pem"] {
            let read = std::process::Command::new(openssl)
                .args(["pkey", "-noout", "-in"])
                .arg(out.join(key))
                .output()
                .unwrap();
            assert!(read.status.success(), "{key}: {read:?}");
        }
        let verify = std::process::Command::new(openssl)
            .args(["verify", "-purpose", "sslserver", "-CAfile"])
            .arg(out.join("ca/server-ca.pem"))
            .arg(out.join("server.pem"))
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
    }
}
