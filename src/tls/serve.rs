//! The accept loop: TLS handshake under a timeout, the peer's identity read once, then HTTP/1.1
//! or HTTP/2 with hyper, the identity handed to every request of the connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::TlsState;
use crate::identity::{PeerIdentity, SharedPeer};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket address of the peer, for request extensions.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub SocketAddr);

struct Open {
    peer: SharedPeer,
    chain: Vec<CertificateDer<'static>>,
    cut: watch::Sender<bool>,
}

/// Every open connection, so that a revocation can cut it at once.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").field("open", &self.len()).finish()
    }
}

impl Connections {
    fn register(&self, peer: SharedPeer, chain: Vec<CertificateDer<'static>>) -> (u64, watch::Receiver<bool>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (cut, rx) = watch::channel(false);
        self.lock().insert(id, Open { peer, chain, cut });
        (id, rx)
    }

    fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        match self.open.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every connection whose peer matches; returns how many.
    pub fn cut_where(&self, matches: impl Fn(&PeerIdentity) -> bool) -> usize {
        let open = self.lock();
        let mut n = 0;
        for o in open.values().filter(|o| matches(&o.peer)) {
            let _ = o.cut.send(true);
            n += 1;
        }
        n
    }

    /// Closes every connection whose certificate the current configuration would now refuse
    /// (a CRL reloaded, a CA removed).
    pub fn cut_refused(&self, tls: &TlsState, now: UnixTime) -> usize {
        let verifier = tls.current().verifier;
        let open = self.lock();
        let mut n = 0;
        for o in open.values() {
            let refused = match o.chain.split_first() {
                Some((ee, rest)) => verifier.verify_client_cert(ee, rest, now).is_err(),
                None => true,
            };
            if refused {
                let _ = o.cut.send(true);
                n += 1;
            }
        }
        n
    }
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<TlsState>,
    connections: Arc<Connections>,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let config = tls.current().config;
        let router = router.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            serve_connection(tcp, remote, config, connections, router).await;
        });
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    connections: Arc<Connections>,
    router: axum::Router,
) {
    let _ = tcp.set_nodelay(true);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%remote, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%remote, "TLS handshake timed out");
            return;
        }
    };
    let chain: Vec<CertificateDer<'static>> = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    // The verifier already required a certificate naming a principal; this cannot fail for a
    // completed handshake, but a connection without an identity is never served.
    let Some(peer) = chain.first().and_then(|ee| PeerIdentity::from_der(ee).ok()) else {
        tracing::warn!(%remote, "connection without a usable client identity closed");
        return;
    };
    let peer: SharedPeer = Arc::new(peer);
    tracing::debug!(%remote, principal = %peer.principal, "connection established");
    let (id, mut cut) = connections.register(peer.clone(), chain);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req.extensions_mut().insert(RemoteAddr(remote));
        router.clone().oneshot(req)
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        }
        _ = cut.changed() => {
            tracing::info!(%remote, "connection cut: its certificate or session was revoked");
        }
    }
    connections.unregister(id);
}
