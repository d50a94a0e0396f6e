//! `POST /add-checkpoint` over plain HTTP: the protocol is authenticated by signatures (the
//! log's on the request, the witness's on the answer), so TLS adds no trust, only privacy for
//! sizes and hashes that are public anyway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use super::protocol::{ADD_CHECKPOINT_PATH, MAX_BODY_BYTES, SIZE_CONTENT_TYPE};
use super::service::{Refusal, Witness};

const TEXT: &str = "text/plain; charset=utf-8";
/// A client that trickles its request is cut: the witness is reachable by anyone.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Beyond this, new connections wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route(ADD_CHECKPOINT_PATH, post(add_checkpoint))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Body) -> Response {
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large or unreadable\n"),
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "request body too slow\n"),
    };
    match witness.add_checkpoint(&body).await {
        Ok(line) => text(StatusCode::OK, line.to_line()),
        Err(refusal) => refusal_response(&refusal),
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body.into()).into_response()
}

fn refusal_response(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match refusal {
        Refusal::WrongOldSize { witness_size } => (
            status,
            [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
            format!("{witness_size}\n"),
        )
            .into_response(),
        // The cause was logged where it happened; paths and I/O errors stay in the log.
        Refusal::Persist(_) | Refusal::Internal(_) => text(status, "internal error\n"),
        other => text(status, format!("{other}\n")),
    }
}

/// Accepts until `shutdown`, then closes every connection gracefully (requests in flight are
/// answered) and returns when all are closed.
async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopped(&mut shutdown) => break,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        while connections.try_join_next().is_some() {}
        let (router, shutdown) = (router.clone(), shutdown.clone());
        connections.spawn(async move {
            serve_connection(tcp, remote, router, shutdown).await;
            drop(permit);
        });
    }
    while connections.join_next().await.is_some() {}
}

/// Resolves once `shutdown` turns true (or its sender is gone); holds no lock when it does.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(tcp: TcpStream, remote: SocketAddr, router: Router, mut shutdown: watch::Receiver<bool>) {
    let _ = tcp.set_nodelay(true);
    let service =
        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| router.clone().oneshot(req));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// A running witness HTTP server.
#[derive(Debug)]
pub struct WitnessServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WitnessServer {
    /// Binds `listen` (port 0 picks a free port) and serves in the background.
    pub async fn start(witness: Arc<Witness>, listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, router(witness), rx));
        Ok(Self { addr, shutdown, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The submission prefix clients use: `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, answers the requests in flight, closes every connection, and returns
    /// once the server is down (so that another witness may open the same state).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "witness server task failed");
        }
    }
}
