//! A small HTTPS client with a client certificate: the demo feed, `policy apply`, the tests
//! and the load benchmark talk to the gateway through it, over real TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::tls::client_config;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
}

/// Client identity and trust: the server CA, the client's certificate and key.
#[derive(Clone)]
pub struct GatewayClient {
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: ServerName<'static>,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A response, body fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Http(format!("response is not JSON: {e}")))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl GatewayClient {
    pub fn new(addr: SocketAddr, server_ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ClientError> {
        use rustls_pki_types::pem::PemObject;
        let config = client_config(server_ca_pem, cert_pem, key_pem).map_err(|e| ClientError::Tls(e.to_string()))?;
        let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem)
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .to_vec();
        Ok(Self {
            config,
            addr,
            server_name: ServerName::try_from("localhost")
                .map_err(|e| ClientError::Tls(e.to_string()))?
                .to_owned(),
            cert_der,
        })
    }

    /// A client for a principal of a `dev-certs` folder (`name` as in `clients/<name>.pem`).
    pub fn from_dev_certs(addr: SocketAddr, certs: &Path, name: &str) -> Result<Self, ClientError> {
        let read = |p: std::path::PathBuf| {
            std::fs::read(&p).map_err(|source| ClientError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let ca = read(certs.join("ca").join("server-ca.pem"))?;
        let cert = read(certs.join("clients").join(format!("{name}.pem")))?;
        let key = read(certs.join("clients").join(format!("{name}-key.pem")))?;
        Self::new(addr, &ca, &cert, &key)
    }

    /// The DER of this client's certificate (what a token is bound to).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    async fn tls_stream(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
        let tcp = TcpStream::connect(self.addr).await.map_err(ClientError::Connect)?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| ClientError::Tls(e.to_string()))
    }

    /// Opens one TLS connection, on which several requests can be sent in turn.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let tls = self.tls_stream().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection { sender })
    }

    /// One request on a fresh connection.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, ClientError> {
        self.connect().await?.send(method, path, token, body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Reply, ClientError> {
        self.send(Method::GET, path, token, None).await
    }

    /// One request on a fresh connection whose body is sent as `chunks` yields its pieces, so
    /// that a large file is never held whole (the batch import). With `content_length` the body
    /// is announced (and must be exactly that long); without, it is sent chunked.
    pub async fn send_stream<S>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        content_length: Option<u64>,
        chunks: S,
    ) -> Result<Reply, ClientError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let tls = self.tls_stream().await?;
        let body = StreamBody::new(chunks.map(|chunk| chunk.map(Frame::data)));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, content_type);
        if let Some(n) = content_length {
            req = req.header(hyper::header::CONTENT_LENGTH, n);
        }
        let req = req.body(body).map_err(|e| ClientError::Http(e.to_string()))?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> Result<Reply, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Http(e.to_string()))?;
        self.send(Method::PUT, path, None, Some(bytes)).await
    }
}

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, ClientError> {
        let response = self.send_streaming(method, path, token, body).await?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and returns as soon as the response head arrives (for streams).
    pub async fn send_streaming(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.send_streaming_with(method, path, token, body, &[]).await
    }

    /// `send_streaming` with extra request headers (e.g. `Last-Event-ID`).
    pub async fn send_streaming_with(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost");
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        self.sender
            .ready()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        self.sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))
    }
}
