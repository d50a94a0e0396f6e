//! Connections that keep the gateway waiting are closed (from a TLS handshake that never ends
//! to a body that stops arriving), a body announced too large is refused before it is read, and
//! one certificate cannot hold every connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cgc_gateway::identity::Principal;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::helpers::{TestApp, pki, spawn_app, spawn_app_with};

/// The TLS configuration of a development client.
fn client_config(client: &str) -> Arc<rustls::ClientConfig> {
    let read = |p: String| std::fs::read(pki().join(p)).unwrap();
    cgc_gateway::tls::client_config(
        &read("ca/server-ca.pem".into()),
        &read(format!("clients/{client}.pem")),
        &read(format!("clients/{client}-key.pem")),
    )
    .unwrap()
}

/// A TLS connection as a development client, offering one ALPN protocol, on which nothing has
/// been sent yet.
pub async fn open(app: &TestApp, client: &str, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut config = (*client_config(client)).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(app.app.addr()).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the server closes the connection; `None` if it is still open after `within`,
/// else everything it sent.
async fn closed_within(tls: &mut TlsStream<TcpStream>, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(received)
}

async fn until_closed(tls: &mut TlsStream<TcpStream>) -> String {
    let received = closed_within(tls, Duration::from_secs(3))
        .await
        .expect("the connection is still open after 3 s");
    String::from_utf8_lossy(&received).into_owned()
}

fn short_timeouts(config: &mut cgc_gateway::config::Config) {
    config.connections.first_request_timeout_ms = 300;
    config.connections.idle_timeout_ms = 300;
    config.connections.body_read_timeout_ms = 300;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_after_the_handshake_is_closed() {
    let app = spawn_app_with(|c, _| short_timeouts(c)).await;
    let mut silent = open(&app, "terminal-kagacho-1", b"http/1.1").await;
    assert_eq!(until_closed(&mut silent).await, "");
    for _ in 0..100 {
        if app.app.context().connections.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the closed connection is still registered");
}

#[tokio::test]
async fn an_h2_connection_without_its_preface_or_first_request_is_closed() {
    let app = spawn_app_with(|c, _| short_timeouts(c)).await;
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let empty_settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    let sends: [&[u8]; 3] = [b"", &preface[..10], &[&preface[..], &empty_settings[..]].concat()];
    for sent in sends {
        let mut tls = open(&app, "terminal-kagacho-1", b"h2").await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls.write_all(sent).await.unwrap();
        closed_within(&mut tls, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("still open after sending {} bytes of h2", sent.len()));
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with(|c, _| {
        c.connections.idle_timeout_ms = 300;
    })
    .await;
    // HTTP/1.1: answered, then closed once nothing more comes.
    let mut tls = open(&app, "terminal-kagacho-1", b"http/1.1").await;
    tls.write_all(b"GET /v1/nothing HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let received = until_closed(&mut tls).await;
    assert!(received.starts_with("HTTP/1.1 404"), "{received}");

    // HTTP/2: the same, by GOAWAY.
    let tls = open(&app, "terminal-kagacho-1", b"h2").await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get("https://localhost/v1/nothing")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 404);
    drop(response);
    tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("the idle HTTP/2 connection is still open after 3 s")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_is_answered_408_and_the_connection_closed() {
    let app = spawn_app_with(|c, _| short_timeouts(c)).await;
    let mut tls = open(&app, "center-yokohama-central", b"http/1.1").await;
    tls.write_all(
        b"PUT /v1/cases/STALL-1 HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
          content-length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let received = until_closed(&mut tls).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(
        received.contains("content-type: application/problem+json"),
        "{received}"
    );
    assert!(
        received.contains("urn:cgc-gateway:problem:request-timeout"),
        "{received}"
    );
    assert!((app.app.context().live.case_count() == 0));
}

#[tokio::test]
async fn a_body_announced_above_the_limit_is_refused_before_it_is_read() {
    // The body-read timeout is far away: only an answer from the Content-Length itself is quick.
    let app = spawn_app().await;
    let mut tls = open(&app, "center-yokohama-central", b"http/1.1").await;
    tls.write_all(
        b"PUT /v1/cases/BIG-1 HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
          content-length: 100000000\r\n\r\n",
    )
    .await
    .unwrap();
    let received = until_closed(&mut tls).await;
    assert!(received.starts_with("HTTP/1.1 413"), "{received}");
    assert!(
        received.contains("content-type: application/problem+json"),
        "{received}"
    );
    assert!(received.contains("urn:cgc-gateway:problem:too-large"), "{received}");
}

#[tokio::test]
async fn a_flood_from_one_certificate_never_stops_another_terminal_being_served() {
    // The timeouts are the defaults (10 s and more): the cap alone must do it.
    let app = spawn_app_with(|c, _| c.connections.per_principal = 4).await;
    let flooder = Principal::Terminal {
        station_id: "kagacho".into(),
        terminal_no: 1,
    };
    let mut flood = Vec::new();
    for _ in 0..12 {
        flood.push(open(&app, "terminal-kagacho-1", b"http/1.1").await);
    }
    let mut closed = 0;
    for tls in &mut flood {
        if closed_within(tls, Duration::from_millis(500)).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, 8, "the connections beyond the cap are closed, the others kept");
    assert_eq!(app.app.context().connections.held_by(&flooder), 4);

    // Another terminal is served while the flooder holds its share.
    let reply = app.list("terminal-tsurumi-1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // Closed connections give their place back.
    drop(flood);
    for _ in 0..100 {
        if app.app.context().connections.held_by(&flooder) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.app.context().connections.held_by(&flooder), 0);
    let reply = app.list("terminal-kagacho-1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// The process's count of refused or timed-out TLS handshakes (shared by every test of the
/// binary: it only grows).
fn handshake_refusals() -> u64 {
    let text = cgc_gateway::metrics::global().render(None);
    text.lines()
        .find_map(|l| l.strip_prefix("cgc_gateway_tls_handshake_refusals_total "))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_tls_handshake_that_never_completes_is_cut_by_the_handshake_timeout() {
    // Every other timeout keeps its default (10 s and more): only the handshake's own can cut
    // these connections within the wait.
    let app = spawn_app_with(|c, _| c.connections.tls_handshake_timeout_ms = 300).await;
    let before = handshake_refusals();
    // A real client's ClientHello, for a handshake that the client then never finishes (no
    // certificate, no Finished): the gateway has answered with its whole flight and waits.
    let mut hello = Vec::new();
    let mut client = rustls::ClientConnection::new(
        client_config("terminal-kagacho-1"),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    client.write_tls(&mut hello).unwrap();
    // Nothing at all; a record header and a few bytes of a ClientHello; the whole ClientHello.
    let sends: [&[u8]; 3] = [b"", &hello[..10], &hello];
    for sent in sends {
        let mut tcp = TcpStream::connect(app.app.addr()).await.unwrap();
        tcp.write_all(sent).await.unwrap();
        let mut received = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            let mut buf = [0u8; 4096];
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a handshake stopped after {} bytes is still open after 3 s",
            sent.len()
        );
        // The gateway's answer to a whole ClientHello: a handshake record (ServerHello…).
        assert_eq!(
            received.first(),
            (sent.len() == hello.len()).then_some(&0x16),
            "{}",
            sent.len()
        );
    }
    // Counted as refused handshakes; no connection was ever registered.
    assert!(handshake_refusals() >= before + 3);
    assert!(app.app.context().connections.is_empty());
    // A client that finishes its handshake is served.
    let reply = app.list("terminal-kagacho-1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}
