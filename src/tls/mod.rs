//! The mutual-TLS edge (SPEC §3): every connection presents a client certificate issued by the
//! CA configured for the kind of principal it names; anything else fails the handshake.

mod verifier;

pub mod serve;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::identity::PrincipalKind;

pub use verifier::KindBoundVerifier;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Where the TLS material lives; read again on every reload.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// One issuing CA per principal kind.
    pub client_cas: Vec<(PrincipalKind, PathBuf)>,
    pub crls: Vec<PathBuf>,
    pub allow_tls12: bool,
}

/// Resumable sessions kept (rustls's default size).
const SESSIONS_KEPT: usize = 256;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration built from the files as they are now, and its client verifier
/// (kept to re-check open connections after a reload).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    pub verifier: Arc<KindBoundVerifier>,
}

/// `sessions` is where resumable sessions are kept; `TlsState` passes the same store to every
/// reload so that a reload does not force every client into a full handshake. That is safe only
/// because the accept loop checks every connection's chain again with the current verifier
/// (`serve::serve_connection`): a resumed session carries the chain it was verified with then.
pub fn server_config(files: &TlsFiles, sessions: Arc<dyn StoresServerSessions>) -> Result<Loaded, TlsError> {
    let provider = provider();
    let crls = files
        .crls
        .iter()
        .map(|p| read_pem_all::<CertificateRevocationListDer<'static>>(p))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let mut kinds = Vec::new();
    for (kind, path) in &files.client_cas {
        let mut roots = RootCertStore::empty();
        for cert in read_pem_all::<CertificateDer<'static>>(path)? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                path: path.clone(),
                what: e.to_string(),
            })?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .with_crls(crls.clone())
            .allow_unknown_revocation_status()
            .build()
            .map_err(|e| TlsError::Config(format!("client CA for {kind}: {e}")))?;
        kinds.push((*kind, verifier));
    }
    let verifier = Arc::new(KindBoundVerifier::new(kinds).map_err(TlsError::Config)?);
    let versions: &[&rustls::SupportedProtocolVersion] = if files.allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let certs = read_pem_all::<CertificateDer<'static>>(&files.server_cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.server_key).map_err(|e| TlsError::Pem {
        path: files.server_key.clone(),
        what: e.to_string(),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("server certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = sessions;
    Ok(Loaded {
        config: Arc::new(config),
        verifier,
    })
}

/// The live server configuration; swapped whole when certificates or CRLs are reloaded, so
/// new handshakes see the new material at once.
#[derive(Debug)]
pub struct TlsState {
    files: TlsFiles,
    sessions: Arc<dyn StoresServerSessions>,
    current: RwLock<Loaded>,
}

impl TlsState {
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let sessions: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSIONS_KEPT);
        let config = server_config(&files, sessions.clone())?;
        Ok(Self {
            files,
            sessions,
            current: RwLock::new(config),
        })
    }

    pub fn current(&self) -> Loaded {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads every file; on error the previous configuration stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files, self.sessions.clone())?;
        match self.current.write() {
            Ok(mut g) => *g = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn read_pem_all<T: PemObject>(path: &Path) -> Result<Vec<T>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let items = T::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what: e.to_string(),
        })?;
    if items.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "no PEM items of the expected type".into(),
        });
    }
    Ok(items)
}

/// The CA certificates a client trusts to reach this server, and its own certificate + key.
pub fn client_config(
    server_ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let here = PathBuf::from("<client material>");
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(server_ca_pem) {
        let ca = ca.map_err(|e| TlsError::Pem {
            path: here.clone(),
            what: e.to_string(),
        })?;
        roots.add(ca).map_err(|e| TlsError::Pem {
            path: here.clone(),
            what: e.to_string(),
        })?;
    }
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: here.clone(),
            what: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        path: here,
        what: e.to_string(),
    })?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
