//! The handshake refuses every client that is not a known principal of the right CA.

use std::sync::Arc;

use cgc_gateway::client::GatewayClient;
use cgc_gateway::dev::pki::Authority;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use crate::helpers::{pki, spawn_app};

fn wall_now() -> OffsetDateTime {
    // Certificates are checked against the real time by the TLS stack.
    #[allow(clippy::disallowed_methods)]
    OffsetDateTime::now_utc()
}

fn server_ca() -> Vec<u8> {
    std::fs::read(pki().join("ca/server-ca.pem")).unwrap()
}

fn ca(kind: &str) -> Authority {
    Authority::load(
        &pki().join(format!("ca/{kind}-ca.pem")),
        &pki().join(format!("ca/{kind}-ca-key.pem")),
    )
    .unwrap()
}

/// True if a request with this certificate gets any HTTP answer at all.
async fn answered(addr: std::net::SocketAddr, cert_pem: &str, key_pem: &str) -> bool {
    let client = GatewayClient::new(addr, &server_ca(), cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    client.get("/v1/terminal/cases", None).await.is_ok()
}

#[tokio::test]
async fn a_known_terminal_completes_the_handshake() {
    let app = spawn_app().await;
    let now = wall_now();
    let cert = ca("terminal")
        .issue_client(
            "t",
            "urn:cgc-gateway:terminal:kagacho:7",
            now - Duration::hours(1),
            now + Duration::days(1),
        )
        .unwrap();
    assert!(answered(app.app.addr(), &cert.cert_pem, &cert.key_pem).await);
}

#[tokio::test]
async fn handshake_without_client_certificate_is_refused() {
    let app = spawn_app().await;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&server_ca()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(cgc_gateway::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(app.app.addr()).await.unwrap();
    let result = async {
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        let req = hyper::Request::get("/v1/terminal/cases")
            .header("host", "localhost")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        sender.send_request(req).await.map_err(std::io::Error::other)
    }
    .await;
    assert!(result.is_err(), "a client without a certificate got an HTTP answer");
}

/// Whether a known terminal offering only TLS 1.2 completes a handshake with `app`.
async fn tls12_handshake(app: &crate::helpers::TestApp) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&server_ca()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cert = std::fs::read(pki().join("clients/terminal-kagacho-1.pem")).unwrap();
    let key = std::fs::read(pki().join("clients/terminal-kagacho-1-key.pem")).unwrap();
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(cgc_gateway::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(app.app.addr()).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .is_ok()
}

#[tokio::test]
async fn tls_1_2_is_refused_unless_configured() {
    let app = spawn_app().await;
    assert!(!tls12_handshake(&app).await, "a TLS 1.2 handshake succeeded by default");
    let app = crate::helpers::spawn_app_with(|c, _| c.tls.allow_tls12 = true).await;
    assert!(tls12_handshake(&app).await, "allow_tls12 = true did not allow TLS 1.2");
}

#[tokio::test]
async fn handshake_with_unknown_ca_is_refused() {
    let app = spawn_app().await;
    let now = wall_now();
    let rogue = Authority::new_ca("cgc-gateway development terminal CA").unwrap();
    let cert = rogue
        .issue_client(
            "t",
            "urn:cgc-gateway:terminal:kagacho:1",
            now - Duration::hours(1),
            now + Duration::days(1),
        )
        .unwrap();
    assert!(!answered(app.app.addr(), &cert.cert_pem, &cert.key_pem).await);
}

#[tokio::test]
async fn handshake_with_expired_certificate_is_refused() {
    let app = spawn_app().await;
    let now = wall_now();
    let cert = ca("terminal")
        .issue_client(
            "t",
            "urn:cgc-gateway:terminal:kagacho:1",
            now - Duration::days(30),
            now - Duration::days(1),
        )
        .unwrap();
    assert!(!answered(app.app.addr(), &cert.cert_pem, &cert.key_pem).await);
}

#[tokio::test]
async fn a_center_ca_cannot_mint_a_police_terminal() {
    let app = spawn_app().await;
    let now = wall_now();
    let (from, to) = (now - Duration::hours(1), now + Duration::days(1));
    for (issuer, urn) in [
        ("center", "urn:cgc-gateway:terminal:kagacho:1"),
        ("terminal", "urn:cgc-gateway:center:yokohama-central"),
        ("terminal", "urn:cgc-gateway:admin:14:pref-admin"),
        ("admin", "urn:cgc-gateway:auditor:kanagawa-audit"),
        ("server", "urn:cgc-gateway:terminal:kagacho:1"),
    ] {
        let cert = ca(issuer).issue_client("x", urn, from, to).unwrap();
        assert!(
            !answered(app.app.addr(), &cert.cert_pem, &cert.key_pem).await,
            "{issuer} CA minted {urn}"
        );
    }
}

#[tokio::test]
async fn a_certificate_without_a_principal_is_refused() {
    let app = spawn_app().await;
    let now = wall_now();
    let cert = ca("terminal")
        .issue_client(
            "t",
            "https://example.invalid/terminal",
            now - Duration::hours(1),
            now + Duration::days(1),
        )
        .unwrap();
    assert!(!answered(app.app.addr(), &cert.cert_pem, &cert.key_pem).await);
}

#[tokio::test]
async fn each_principal_kind_is_confined_to_its_endpoints() {
    let app = spawn_app().await;
    let case = crate::helpers::full_case("yokohama-central", "ROLE-1", "141046");
    // A terminal cannot push cases.
    let reply = app
        .client("terminal-kagacho-1")
        .put_json("/v1/cases/ROLE-1", &case)
        .await
        .unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    // A center cannot read terminal views, even with a token.
    let reply = app
        .client("center-yokohama-central")
        .get("/v1/terminal/cases", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 403);
    // An administrator is neither.
    let admin = app.client("admin-14-pref-admin");
    let token = app.token("admin-14-pref-admin", "pref-admin");
    assert_eq!(admin.put_json("/v1/cases/ROLE-1", &case).await.unwrap().status, 403);
    assert_eq!(admin.get("/v1/terminal/cases", Some(&token)).await.unwrap().status, 403);
    // An auditor is neither.
    let auditor = app.client("auditor-kanagawa-audit");
    assert_eq!(auditor.put_json("/v1/cases/ROLE-1", &case).await.unwrap().status, 403);
    assert_eq!(auditor.get("/v1/terminal/cases", None).await.unwrap().status, 403);
    // Nothing was stored.
    assert!((app.app.context().live.case_count() == 0));
}

#[tokio::test]
async fn a_reloaded_crl_refuses_the_terminal_and_cuts_its_open_connection() {
    let terminal_ca = ca("terminal");
    let now = wall_now();
    let crl_path = std::sync::Arc::new(std::sync::Mutex::new(std::path::PathBuf::new()));
    let empty = terminal_ca.crl(&[], 1, now).unwrap();
    let slot = crl_path.clone();
    let app = crate::helpers::spawn_app_with(move |config, data| {
        let path = data.join("terminal.crl.pem");
        std::fs::write(&path, &empty).unwrap();
        config.tls.crls = vec![path.clone()];
        *slot.lock().unwrap() = path;
    })
    .await;
    let doomed = terminal_ca
        .issue_client(
            "t",
            "urn:cgc-gateway:terminal:kagacho:9",
            now - Duration::hours(1),
            now + Duration::days(1),
        )
        .unwrap();
    let other = terminal_ca
        .issue_client(
            "t",
            "urn:cgc-gateway:terminal:kagacho:8",
            now - Duration::hours(1),
            now + Duration::days(1),
        )
        .unwrap();
    let client = |c: &cgc_gateway::dev::pki::IssuedCert| {
        GatewayClient::new(
            app.app.addr(),
            &server_ca(),
            c.cert_pem.as_bytes(),
            c.key_pem.as_bytes(),
        )
        .unwrap()
    };
    let mut open = client(&doomed).connect().await.unwrap();
    assert_eq!(
        open.send(hyper::Method::GET, "/v1/nothing", None, None)
            .await
            .unwrap()
            .status,
        404
    );

    let path = crl_path.lock().unwrap().clone();
    std::fs::write(&path, terminal_ca.crl(&[&doomed.cert_der], 2, now).unwrap()).unwrap();
    let cut = app.app.context().reload_tls().unwrap();
    assert_eq!(cut, 1, "exactly the revoked terminal's connection is cut");

    assert!(
        open.send(hyper::Method::GET, "/v1/nothing", None, None).await.is_err(),
        "open connection survived"
    );
    assert!(
        !answered(app.app.addr(), &doomed.cert_pem, &doomed.key_pem).await,
        "revoked terminal reconnected"
    );
    assert!(
        answered(app.app.addr(), &other.cert_pem, &other.key_pem).await,
        "another terminal was refused"
    );
}

/// One connection with `config` (which keeps its sessions, so a later connection resumes): how
/// the handshake went, and the status of `GET /v1/nothing` if the gateway answered at all.
async fn handshake_and_ask(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> (rustls::HandshakeKind, Option<u16>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    let status = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = hyper::Request::get("/v1/nothing")
            .header("host", "localhost")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        // The session tickets arrive before the answer: reading it stores them.
        Some(sender.send_request(req).await.ok()?.status().as_u16())
    }
    .await;
    (kind, status)
}

fn client_config(cert: &cgc_gateway::dev::pki::IssuedCert) -> Arc<rustls::ClientConfig> {
    cgc_gateway::tls::client_config(&server_ca(), cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_certificate_revoked_by_a_crl_reload_cannot_come_back_by_session_resumption() {
    use rustls::HandshakeKind::{Full, Resumed};
    let terminal_ca = ca("terminal");
    let now = wall_now();
    let empty = terminal_ca.crl(&[], 1, now).unwrap();
    let app = crate::helpers::spawn_app_with(move |config, data| {
        let path = data.join("terminal.crl.pem");
        std::fs::write(&path, &empty).unwrap();
        config.tls.crls = vec![path];
    })
    .await;
    let issue = |urn: &str| {
        terminal_ca
            .issue_client("t", urn, now - Duration::hours(1), now + Duration::days(1))
            .unwrap()
    };
    let doomed = issue("urn:cgc-gateway:terminal:kagacho:5");
    let other = issue("urn:cgc-gateway:terminal:kagacho:4");
    let (doomed_config, other_config) = (client_config(&doomed), client_config(&other));
    let addr = app.app.addr();

    assert_eq!(handshake_and_ask(addr, &doomed_config).await, (Full, Some(404)));
    assert_eq!(handshake_and_ask(addr, &doomed_config).await, (Resumed, Some(404)));
    assert_eq!(handshake_and_ask(addr, &other_config).await, (Full, Some(404)));

    let crl = app.data.path().join("terminal.crl.pem");
    std::fs::write(&crl, terminal_ca.crl(&[&doomed.cert_der], 2, now).unwrap()).unwrap();
    app.app.context().reload_tls().unwrap();

    // Sessions survive the reload (else this would prove nothing): the revoked certificate's
    // handshake resumes, and the connection is closed before any request is answered.
    assert_eq!(handshake_and_ask(addr, &doomed_config).await, (Resumed, None));
    // A certificate still good keeps its session and is served.
    assert_eq!(handshake_and_ask(addr, &other_config).await, (Resumed, Some(404)));
}

#[tokio::test]
async fn a_certificate_that_has_expired_cannot_come_back_by_session_resumption() {
    use rustls::HandshakeKind::{Full, Resumed};
    let app = spawn_app().await;
    let now = wall_now();
    let expires = now + Duration::seconds(3);
    let cert = ca("terminal")
        .issue_client(
            "t",
            "urn:cgc-gateway:terminal:kagacho:3",
            now - Duration::hours(1),
            expires,
        )
        .unwrap();
    let config = client_config(&cert);
    assert_eq!(handshake_and_ask(app.app.addr(), &config).await, (Full, Some(404)));
    let until_expired = expires + Duration::milliseconds(1200) - wall_now();
    tokio::time::sleep(until_expired.try_into().unwrap()).await;
    assert_eq!(handshake_and_ask(app.app.addr(), &config).await, (Resumed, None));
}
