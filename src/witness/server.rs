//! `POST /add-checkpoint` over plain HTTP: the protocol is authenticated by signatures (the
//! log's on the request, the witness's on the answer), so TLS adds no trust, only privacy for
//! sizes and hashes that are public anyway.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::protocol::{ADD_CHECKPOINT_PATH, MAX_BODY_BYTES, SIZE_CONTENT_TYPE};
use super::service::{Refusal, Witness};

const TEXT: &str = "text/plain; charset=utf-8";

pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route(ADD_CHECKPOINT_PATH, post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    match witness.add_checkpoint(&body).await {
        Ok(line) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT)], line.to_line()).into_response(),
        Err(refusal) => refusal_response(&refusal),
    }
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
        Refusal::Persist(_) | Refusal::Internal(_) => {
            (status, [(header::CONTENT_TYPE, TEXT)], "internal error\n").into_response()
        }
        other => (status, [(header::CONTENT_TYPE, TEXT)], format!("{other}\n")).into_response(),
    }
}

/// A running witness HTTP server.
#[derive(Debug)]
pub struct WitnessServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl WitnessServer {
    /// Binds `listen` (port 0 picks a free port) and serves in the background.
    pub async fn start(witness: Arc<Witness>, listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (shutdown, mut rx) = watch::channel(false);
        let app = router(witness);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        });
        Ok(Self { addr, shutdown, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The submission prefix clients use: `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, and returns once the server is down.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "witness server failed"),
            Err(e) => tracing::error!(error = %e, "witness server task failed"),
        }
    }
}
