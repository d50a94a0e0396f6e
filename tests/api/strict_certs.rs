//! The development PKI read by an independent, strict parser: Python's `cryptography` (the
//! parser behind sslyze and many integrators' tools) refuses DER that encodes a default value
//! (`cA FALSE`) and warns on negative serials. Every certificate, key, CRL and PKCS#12 file the
//! dev PKI writes is loaded, each extension decoded, each certificate checked against its CA.
//! Needs `python3` with `cryptography` (Debian: `apt-get install python3-cryptography`):
//! without it the test fails under `CI` and prints a skip notice otherwise.

use std::path::Path;
use std::process::Command;

use cgc_gateway::config;
use cgc_gateway::dev::pki::{Authority, CA_KINDS, DEMO_P12_PASSWORD, DEMO_PRINCIPALS, write_dev_pki};
use time::{Duration, OffsetDateTime};

/// Loads everything under the folder given as argv[1]; prints one `kind path` line per file it
/// read and exits non-zero at the first file it cannot read strictly.
const CHECKER: &str = r#"
import os, sys, warnings
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning

# Negative serials and other tolerated oddities are deprecation warnings: make them failures.
warnings.simplefilter("error", CryptographyDeprecationWarning)

root, password = sys.argv[1], sys.argv[2].encode()

def read(path):
    with open(path, "rb") as f:
        return f.read()

def check_cert(cert, path):
    # Extensions are decoded lazily: touch every one, as a TLS scanner would.
    for ext in cert.extensions:
        ext.value
    assert cert.serial_number > 0, f"{path}: serial {cert.serial_number} is not positive"
    assert cert.serial_number.bit_length() <= 159, f"{path}: serial longer than 20 octets"
    cert.subject.rfc4514_string()
    cert.issuer.rfc4514_string()
    cert.public_key()
    cert.signature_hash_algorithm

cas = {}
for kind in os.listdir(os.path.join(root, "ca")):
    if kind.endswith("-ca.pem"):
        cas[kind] = x509.load_pem_x509_certificate(read(os.path.join(root, "ca", kind)))

for folder, _, names in sorted(os.walk(root)):
    for name in sorted(names):
        path = os.path.join(folder, name)
        data = read(path)
        try:
            if name.endswith(".p12"):
                key, cert, extra = pkcs12.load_key_and_certificates(data, password)
                check_cert(cert, path)
                for c in extra:
                    check_cert(c, path)
                print("p12", path)
            elif b"BEGIN CERTIFICATE" in data:
                cert = x509.load_pem_x509_certificate(data)
                check_cert(cert, path)
                issuers = [ca for ca in cas.values() if ca.subject == cert.issuer]
                assert len(issuers) == 1, f"{path}: {len(issuers)} issuing CAs"
                # verify_directly_issued_by is cryptography >= 40; Debian 12 ships 38.
                if hasattr(cert, "verify_directly_issued_by"):
                    cert.verify_directly_issued_by(issuers[0])
                print("certificate", path)
            elif b"BEGIN X509 CRL" in data:
                crl = x509.load_pem_x509_crl(data)
                for ext in crl.extensions:
                    ext.value
                for revoked in crl:
                    assert revoked.serial_number > 0, f"{path}: revoked serial not positive"
                    for ext in revoked.extensions:
                        ext.value
                issuers = [ca for ca in cas.values() if ca.subject == crl.issuer]
                assert len(issuers) == 1 and crl.is_signature_valid(issuers[0].public_key()), path
                print("crl", path)
            elif b"BEGIN PRIVATE KEY" in data:
                serialization.load_pem_private_key(data, password=None)
                print("key", path)
            elif b"BEGIN PUBLIC KEY" in data:
                serialization.load_pem_public_key(data)
                print("public-key", path)
        except Exception as e:
            print(f"{path}: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(1)
"#;

fn python_with_cryptography() -> Option<String> {
    let python = std::env::var("STRICT_CERTS_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import cryptography.x509"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

fn check(python: &str, dir: &Path) -> Vec<(String, String)> {
    let out = Command::new(python)
        .arg("-c")
        .arg(CHECKER)
        .arg(dir)
        .arg(DEMO_P12_PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a strict parser refused the dev PKI: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(kind, path)| (kind.to_owned(), path.to_owned()))
        .collect()
}

#[test]
fn every_dev_pki_file_passes_a_strict_der_parser() {
    let Some(python) = python_with_cryptography() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "strict certificate test cannot run under CI: python3 with cryptography is missing"
        );
        eprintln!(
            "SKIPPED every_dev_pki_file_passes_a_strict_der_parser: python3 with cryptography is missing \
             (apt-get install python3-cryptography)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_dev_pki(dir.path(), config::DEV_AUDIT_ORIGIN).unwrap();
    // What tests and operators mint beyond the written files: a CRL revoking a client, and a
    // client issued by a CA loaded back from disk.
    let ca = Authority::load(
        &dir.path().join("ca/terminal-ca.pem"),
        &dir.path().join("ca/terminal-ca-key.pem"),
    )
    .unwrap();
    #[allow(clippy::disallowed_methods)]
    let now = OffsetDateTime::now_utc();
    let extra = ca
        .issue_client(
            "terminal-extra-1",
            "urn:cgc-gateway:terminal:extra:1",
            now,
            now + Duration::days(1),
        )
        .unwrap();
    std::fs::write(dir.path().join("extra.pem"), &extra.cert_pem).unwrap();
    let crl = ca.crl(&[&extra.cert_der], 1, now).unwrap();
    std::fs::write(dir.path().join("terminal-ca.crl.pem"), crl).unwrap();

    let read = check(&python, dir.path());
    let count = |kind: &str| read.iter().filter(|(k, _)| k == kind).count();
    // 5 CAs, the server, 16 clients and the extra client.
    assert_eq!(
        count("certificate"),
        CA_KINDS.len() + 1 + DEMO_PRINCIPALS.len() + 1,
        "{read:?}"
    );
    assert_eq!(count("p12"), DEMO_PRINCIPALS.len(), "{read:?}");
    assert_eq!(count("crl"), 1, "{read:?}");
    // CA keys, the server's, the clients', the token issuer's and the audit log's.
    assert_eq!(count("key"), CA_KINDS.len() + 1 + DEMO_PRINCIPALS.len() + 2, "{read:?}");
    assert_eq!(count("public-key"), 1, "{read:?}");
}
