//! The accept loop: TLS handshake under a timeout, the peer's identity read once (and checked
//! again, since a resumed session skips certificate verification), then HTTP/1.1 or HTTP/2 with
//! hyper, the identity handed to every request of the connection. A connection is closed when it
//! keeps the gateway waiting: no first request, no request at all for a while, a stalled body.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::TlsState;
use crate::identity::{PeerIdentity, Principal, SharedPeer};

/// How long a connection told to close (GOAWAY, keep-alive off) may take to do so.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long a connection may keep the gateway waiting, and how many one principal may hold
/// (`[connections]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From the accepted TCP connection to the end of the TLS handshake.
    pub tls_handshake: Duration,
    /// From the end of the handshake to the first request's head (HTTP/2: preface included).
    pub first_request: Duration,
    /// With no request in flight.
    pub idle: Duration,
    /// Between two pieces of a request body.
    pub body_read: Duration,
    pub per_principal: usize,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 streams reset by the client before they were taken up; past it, `GOAWAY`.
    pub http2_max_pending_resets: usize,
    /// Where hyper itself cuts a request head (HTTP/1.1: 431 without a body; HTTP/2: the
    /// stream refused): beyond the limits the HTTP layer answers with a problem.
    pub max_header_fields: usize,
    pub max_header_bytes: usize,
}

/// The answer to a request whose body stopped arriving (the HTTP layer's 408 problem): the
/// accept loop knows when, the HTTP layer knows how to say it.
pub type TimedOut = fn() -> axum::response::Response;

/// The socket address of the peer, for request extensions.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub SocketAddr);

struct Open {
    peer: SharedPeer,
    chain: Vec<CertificateDer<'static>>,
    cut: watch::Sender<bool>,
}

#[derive(Default)]
struct Registry {
    open: HashMap<u64, Open>,
    per_principal: HashMap<Principal, usize>,
}

/// Every open connection, so that a revocation can cut it at once and one principal cannot
/// hold more than its share of the process's descriptors.
pub struct Connections {
    limits: ConnectionLimits,
    registry: Mutex<Registry>,
    next: AtomicU64,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("open", &self.len())
            .field("limits", &self.limits)
            .finish()
    }
}

/// A connection's place in `Connections`, given back when the connection ends however it ends.
struct Registration {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = self.connections.lock();
        if let Some(o) = registry.open.remove(&self.id)
            && let Some(n) = registry.per_principal.get_mut(&o.peer.principal)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                registry.per_principal.remove(&o.peer.principal);
            }
        }
    }
}

impl Connections {
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            registry: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// `None` when the principal already holds its share of connections.
    fn register(
        self: &Arc<Self>,
        peer: SharedPeer,
        chain: Vec<CertificateDer<'static>>,
    ) -> Option<(Registration, watch::Receiver<bool>)> {
        let mut registry = self.lock();
        let held = registry.per_principal.entry(peer.principal.clone()).or_default();
        if *held >= self.limits.per_principal {
            return None;
        }
        *held += 1;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (cut, rx) = watch::channel(false);
        registry.open.insert(id, Open { peer, chain, cut });
        let registration = Registration {
            connections: self.clone(),
            id,
        };
        Some((registration, rx))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        match self.registry.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// How many connections `principal` holds open now.
    pub fn held_by(&self, principal: &Principal) -> usize {
        self.lock().per_principal.get(principal).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every connection whose peer matches; returns how many.
    pub fn cut_where(&self, matches: impl Fn(&PeerIdentity) -> bool) -> usize {
        let registry = self.lock();
        let mut n = 0;
        for o in registry.open.values().filter(|o| matches(&o.peer)) {
            let _ = o.cut.send(true);
            n += 1;
        }
        n
    }

    /// Closes every connection whose certificate the current configuration would now refuse
    /// (a CRL reloaded, a CA removed).
    pub fn cut_refused(&self, tls: &TlsState, now: UnixTime) -> usize {
        let verifier = tls.current().verifier;
        let registry = self.lock();
        let mut n = 0;
        for o in registry.open.values() {
            if refused(&*verifier, &o.chain, now) {
                let _ = o.cut.send(true);
                n += 1;
            }
        }
        n
    }
}

/// True if `verifier` would refuse this certificate chain at `now`.
fn refused(verifier: &dyn ClientCertVerifier, chain: &[CertificateDer<'static>], now: UnixTime) -> bool {
    match chain.split_first() {
        Some((ee, rest)) => verifier.verify_client_cert(ee, rest, now).is_err(),
        None => true,
    }
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<TlsState>,
    connections: Arc<Connections>,
    router: axum::Router,
    timed_out: TimedOut,
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
        let router = router.clone();
        let connections = connections.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            serve_connection(tcp, remote, tls, connections, router, timed_out).await;
        });
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    tls: Arc<TlsState>,
    connections: Arc<Connections>,
    router: axum::Router,
    timed_out: TimedOut,
) {
    let _ = tcp.set_nodelay(true);
    let config = tls.current().config;
    let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
    let stream = match tokio::time::timeout(connections.limits().tls_handshake, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%remote, error = %e, "TLS handshake refused");
            crate::metrics::global().tls_handshake_refused();
            return;
        }
        Err(_) => {
            tracing::info!(%remote, "TLS handshake timed out");
            crate::metrics::global().tls_handshake_refused();
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
    let limits = connections.limits();
    // Registered before the check below, so that a reload in between still cuts it.
    let Some((_registration, mut cut)) = connections.register(peer.clone(), chain.clone()) else {
        tracing::info!(
            %remote,
            principal = %peer.principal,
            limit = limits.per_principal,
            "connection refused: the principal holds its share of connections"
        );
        return;
    };
    // A resumed session skips certificate verification, and its session may predate a CRL
    // reload or the certificate's expiry: check the chain again, with the verifier in force
    // now and the time the handshake is checked against. After a full handshake with that same
    // verifier this is its memory of the chain (a digest and the validity window), not a
    // second verification.
    let now = config.time_provider.current_time();
    if now.is_none_or(|now| refused(&*tls.current().verifier, &chain, now)) {
        tracing::info!(
            %remote,
            principal = %peer.principal,
            "connection refused: its certificate is no longer accepted"
        );
        return;
    }
    tracing::debug!(%remote, principal = %peer.principal, "connection established");
    let (busy, mut in_flight) = watch::channel(0usize);
    let busy = Arc::new(busy);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let working = InFlight::begin(&busy);
        req.extensions_mut().insert(peer.clone());
        req.extensions_mut().insert(RemoteAddr(remote));
        let stalled = Arc::new(AtomicBool::new(false));
        let version = req.version();
        let req = req.map(|body| TimedBody::new(body, limits.body_read, stalled.clone()));
        let router = router.clone();
        async move {
            let response = match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let response = if stalled.load(Ordering::Relaxed) {
                body_stalled(version, timed_out)
            } else {
                response
            };
            Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                body,
                _working: working,
            }))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Waits for heads are bounded below, for both protocols alike.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_headers(limits.max_header_fields)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.http2_max_pending_resets)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // Until the first request arrives, then whenever none is in flight, a deadline runs; when it
    // passes the connection is asked to close, and dropped if it has not after CLOSE_GRACE.
    let mut deadline = Some(Instant::now() + limits.first_request);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = cut.changed() => {
                tracing::info!(%remote, "connection cut: its certificate or session was revoked");
                break;
            }
            changed = in_flight.changed() => {
                if changed.is_err() {
                    break;
                }
                let wait = if closing { CLOSE_GRACE } else { limits.idle };
                let idle = *in_flight.borrow_and_update() == 0;
                deadline = idle.then(|| Instant::now() + wait);
            }
            () = sleep_until(deadline) => {
                if closing {
                    tracing::debug!(%remote, "connection did not close in time; dropped");
                    break;
                }
                tracing::debug!(%remote, "connection idle; closing");
                conn.as_mut().graceful_shutdown();
                closing = true;
                deadline = Some(Instant::now() + CLOSE_GRACE);
            }
        }
    }
}

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The answer to a request whose body stopped arriving: 408, and the connection is not reused
/// (its unread body makes the stream unusable).
fn body_stalled(version: hyper::Version, timed_out: TimedOut) -> axum::response::Response {
    let mut response = timed_out();
    if version < hyper::Version::HTTP_2 {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// One request in flight on a connection, from its head until its response body is done or
/// dropped (a live stream is in flight for as long as it lasts).
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    fn begin(busy: &Arc<watch::Sender<usize>>) -> Self {
        busy.send_modify(|n| *n += 1);
        Self(busy.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body that keeps its request counted as in flight.
struct Tracked<B> {
    body: B,
    _working: InFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body stopped arriving")]
struct BodyStalled;

/// A request body that fails when no piece of it arrives for `limit`, and says so in `stalled`
/// (the handler's own answer to the failed read is then replaced by a 408).
struct TimedBody {
    body: Incoming,
    limit: Duration,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    stalled: Arc<AtomicBool>,
}

impl TimedBody {
    fn new(body: Incoming, limit: Duration, stalled: Arc<AtomicBool>) -> Self {
        Self {
            body,
            limit,
            last: Instant::now(),
            timer: None,
            stalled,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.last = Instant::now();
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = this.last + this.limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.stalled.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(BodyStalled.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
