//! Input a careful gateway refuses (issue 14, item 6): names and subjects that hide or forge
//! text, impossible dates, a version that would lock a case, path-like ids, writes and
//! revocations outside the caller's reach, methods a route does not have, and requests meant
//! for another host. Every refusal is problem+json; refused accesses are audit entries.

use std::collections::BTreeSet;
use std::sync::Arc;

use cgc_gateway::auth::{TokenAudience, dev_claims, issue_token, x5t_s256};
use cgc_gateway::client::{GatewayClient, Reply};
use cgc_gateway::dev::pki::Authority;
use hyper::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{ClockExt, TestApp, full_case, pki, spawn_app};

const TERMINAL: &str = "terminal-kagacho-1";
const YOKOHAMA: &str = "yokohama-central";

fn problem(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    reply.json().unwrap()
}

/// Pushes `case` as its own center and returns the refusal's pointers (the push must be a 400).
async fn refused_pointers(app: &TestApp, case: &Value) -> BTreeSet<String> {
    let id = case["case_id"].as_str().unwrap();
    let reply = app
        .client(&format!("center-{YOKOHAMA}"))
        .put_json(&format!("/v1/cases/{id}"), case)
        .await
        .unwrap();
    let body = problem(&reply, 400);
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect()
}

fn pointers(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_centers_write_to_another_centers_case_is_refused_and_recorded() {
    let app = spawn_app().await;
    let case = full_case(YOKOHAMA, "FOREIGN-1", "141046");
    let reply = app
        .client("center-kawasaki-central")
        .put_json("/v1/cases/FOREIGN-1", &case)
        .await
        .unwrap();
    problem(&reply, 403);
    assert!((app.app.context().live.case_count() == 0));
    assert!(
        app.audit_has(&[
            "\"kind\":\"refusal\"",
            "urn:cgc-gateway:center:kawasaki-central",
            "PUT /v1/cases/{case_id}",
            "\"status\":403",
        ])
        .await,
        "the refused write is an audit entry"
    );
    // The entry names the caller and the route, never the case.
    assert!(!app.audit_lines().await.iter().any(|l| l.contains("FOREIGN-1")));
}

#[tokio::test]
async fn names_with_nul_line_breaks_or_bidi_overrides_are_refused() {
    let app = spawn_app().await;
    for bad in ["山田\0花子", "山田\r\n花子", "\u{202E}子花　田山"] {
        let mut case = full_case(YOKOHAMA, "NAME-1", "141046");
        case["child"]["name"] = json!(bad);
        case["guardians"][0]["name"] = json!(bad);
        case["center_contact"]["name"] = json!(bad);
        assert_eq!(
            refused_pointers(&app, &case).await,
            pointers(&["/child/name", "/guardians/0/name", "/center_contact/name"]),
            "{bad:?}"
        );
    }
    // Free-text notes keep their line breaks.
    let mut case = full_case(YOKOHAMA, "NAME-1", "141046");
    case["assessment"]["progress"] = json!("11月19日　訪問。\r\n11月20日　電話。");
    app.push(&case).await;
}

#[tokio::test]
async fn a_name_of_only_zero_width_spaces_is_refused() {
    let app = spawn_app().await;
    let mut case = full_case(YOKOHAMA, "NAME-2", "141046");
    case["child"]["name"] = json!("\u{200B}\u{200B}");
    case["guardians"][1]["name"] = json!("\u{3000}\u{200B}");
    assert_eq!(
        refused_pointers(&app, &case).await,
        pointers(&["/child/name", "/guardians/1/name"])
    );
}

#[tokio::test]
async fn birth_dates_in_the_future_and_in_year_9999_are_refused() {
    let app = spawn_app().await;
    // The test clock says 2026-11-20 12:00 JST; the case was updated at 09:00 that day.
    for bad in ["2026-11-21", "2027-01-01", "9999-12-31"] {
        let mut case = full_case(YOKOHAMA, "BIRTH-1", "141046");
        case["child"]["birth_date"] = json!(bad);
        assert_eq!(
            refused_pointers(&app, &case).await,
            pointers(&["/child/birth_date"]),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn timestamps_in_year_0_or_far_ahead_of_the_clock_are_refused() {
    let app = spawn_app().await;
    for bad in [
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-11-22T12:00:00+09:00",
    ] {
        let mut case = full_case(YOKOHAMA, "TIME-1", "141046");
        case["updated_at"] = json!(bad);
        case["intake_at"] = json!(bad);
        assert_eq!(
            refused_pointers(&app, &case).await,
            pointers(&["/updated_at", "/intake_at"]),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_version_of_2_pow_53_minus_1_is_refused_so_the_case_cannot_be_locked() {
    let app = spawn_app().await;
    let mut case = full_case(YOKOHAMA, "LOCK-1", "141046");
    case["version"] = json!(9_007_199_254_740_991_u64);
    assert_eq!(refused_pointers(&app, &case).await, pointers(&["/version"]));
    assert!((app.app.context().live.case_count() == 0));
}

#[tokio::test]
async fn case_ids_made_of_dots_are_refused() {
    let app = spawn_app().await;
    let center = app.client(&format!("center-{YOKOHAMA}"));
    for (path, id) in [("/v1/cases/..", ".."), ("/v1/cases/.", "."), ("/v1/cases/%2E%2E", "..")] {
        let case = full_case(YOKOHAMA, id, "141046");
        let reply = center.put_json(path, &case).await.unwrap();
        let body = problem(&reply, 400);
        assert!(
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["pointer"] == "/case_id"),
            "{path}: {body}"
        );
    }
    assert!((app.app.context().live.case_count() == 0));
}

fn sign(claims: &Value) -> String {
    let key = std::fs::read(pki().join("token-issuer/issuer-key.pem")).unwrap();
    jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        claims,
        &EncodingKey::from_ed_pem(&key).unwrap(),
    )
    .unwrap()
}

fn officer_claims(app: &TestApp, aud: Value, sub: &str) -> Value {
    let now = app.clock.now_at().unix_timestamp();
    json!({
        "iss": cgc_gateway::config::DEV_TOKEN_ISSUER,
        "aud": aud,
        "sub": sub,
        "exp": now + 600,
        "nbf": now - 10,
        "cnf": { "x5t#S256": x5t_s256(app.client(TERMINAL).cert_der()) }
    })
}

async fn list_status(app: &TestApp, token: &str) -> u16 {
    let reply = app
        .client(TERMINAL)
        .get("/v1/terminal/cases", Some(token))
        .await
        .unwrap();
    reply.status.as_u16()
}

#[tokio::test]
async fn a_token_whose_aud_is_an_array_naming_this_gateway_is_accepted() {
    let app = spawn_app().await;
    let ours = cgc_gateway::config::OFFICER_AUDIENCE;
    for aud in [json!([ours]), json!(["https://other-service.example", ours])] {
        let token = sign(&officer_claims(&app, aud.clone(), "K-1234"));
        assert_eq!(list_status(&app, &token).await, 200, "{aud}");
    }
    for aud in [
        json!([]),
        json!(["https://other-service.example"]),
        json!([cgc_gateway::config::ADMIN_AUDIENCE]),
    ] {
        let token = sign(&officer_claims(&app, aud.clone(), "K-1234"));
        assert_eq!(list_status(&app, &token).await, 401, "{aud}");
    }
}

#[tokio::test]
async fn a_token_whose_sub_holds_controls_or_bidi_overrides_is_refused() {
    let app = spawn_app().await;
    let aud = json!(cgc_gateway::config::OFFICER_AUDIENCE);
    for sub in [
        "K-1234\r\nK-9999",
        "K-1234\0",
        "\u{202E}4321-K",
        "\u{2066}K-1234\u{2069}",
        "\u{200B}",
        " ",
        "",
    ] {
        let token = sign(&officer_claims(&app, aud.clone(), sub));
        assert_eq!(list_status(&app, &token).await, 401, "{sub:?}");
    }
    let token = sign(&officer_claims(&app, aud, "K-1234"));
    assert_eq!(list_status(&app, &token).await, 200);
}

#[tokio::test]
async fn an_administrator_of_a_prefecture_outside_the_registry_cannot_revoke_an_officer() {
    let app = spawn_app().await;
    #[allow(clippy::disallowed_methods)] // certificates are checked against the real time
    let now = OffsetDateTime::now_utc();
    let ca = Authority::load(&pki().join("ca/admin-ca.pem"), &pki().join("ca/admin-ca-key.pem")).unwrap();
    let tokyo = ca
        .issue_client(
            "tokyo admin",
            "urn:cgc-gateway:admin:13:pref-admin",
            now - Duration::hours(1),
            now + Duration::days(1),
        )
        .unwrap();
    let server_ca = std::fs::read(pki().join("ca/server-ca.pem")).unwrap();
    let client = GatewayClient::new(
        app.app.addr(),
        &server_ca,
        tokyo.cert_pem.as_bytes(),
        tokyo.key_pem.as_bytes(),
    )
    .unwrap();
    let issuer_key = std::fs::read(pki().join("token-issuer/issuer-key.pem")).unwrap();
    let token = issue_token(
        &issuer_key,
        &dev_claims(
            &cgc_gateway::cli::dev_token_settings(),
            TokenAudience::Admin,
            "tokyo-admin",
            client.cert_der(),
            app.clock.now_at(),
            Duration::hours(1),
        ),
    )
    .unwrap();

    let reply = client
        .send(Method::POST, "/v1/admin/officers/officer-1/revoke", Some(&token), None)
        .await
        .unwrap();
    problem(&reply, 403);
    assert_eq!(app.list(TERMINAL).await.status, 200, "officer-1 is not revoked");
    assert!(app.app.context().store.revocations().await.unwrap().is_empty());
    assert!(
        app.audit_has(&[
            "\"kind\":\"refusal\"",
            "urn:cgc-gateway:admin:13:pref-admin",
            "/v1/admin/officers/{officer_id}/revoke",
        ])
        .await
    );
    // Nor a terminal of another prefecture's force.
    let reply = client
        .send(Method::POST, "/v1/admin/terminals/kagacho/1/revoke", Some(&token), None)
        .await
        .unwrap();
    problem(&reply, 403);
}

#[tokio::test]
async fn every_405_is_problem_json_and_keeps_its_allow_header() {
    let app = spawn_app().await;
    let center = app.client(&format!("center-{YOKOHAMA}"));
    let reply = center.send(Method::DELETE, "/v1/cases/X-1", None, None).await.unwrap();
    let body = problem(&reply, 405);
    assert_eq!(body["type"], "urn:cgc-gateway:problem:method-not-allowed");
    assert_eq!(body["status"], 405);
    assert_eq!(reply.headers["allow"], "PUT");

    let token = app.token(TERMINAL, "officer-1");
    let reply = app
        .client(TERMINAL)
        .send(Method::POST, "/v1/terminal/cases", Some(&token), None)
        .await
        .unwrap();
    problem(&reply, 405);
    let allow: BTreeSet<&str> = reply.headers["allow"].to_str().unwrap().split(',').collect();
    assert_eq!(allow, BTreeSet::from(["GET", "HEAD"]));
}

/// Sends `request` as raw bytes over a TLS connection with `client`'s certificate and returns
/// the status code and the response text.
async fn raw(app: &TestApp, client: &str, request: &str) -> (u16, String) {
    let read = |p: &str| std::fs::read(pki().join(p)).unwrap();
    let config = cgc_gateway::tls::client_config(
        &read("ca/server-ca.pem"),
        &read(&format!("clients/{client}.pem")),
        &read(&format!("clients/{client}-key.pem")),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(app.app.addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // Until the server closes (`Connection: close`); a missing close_notify is not our concern.
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

fn get(target: &str, host: &str, token: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn absolute_form_requests_for_a_foreign_host_are_not_served() {
    let app = spawn_app().await;
    let token = app.token(TERMINAL, "officer-1");
    let foreign = "https://evil.example/v1/terminal/cases";

    let (status, text) = raw(&app, TERMINAL, &get(foreign, "localhost", &token)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");

    let (status, text) = raw(&app, TERMINAL, &get(foreign, "evil.example", &token)).await;
    assert_eq!(status, 421, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(!text.contains("\"cases\""), "{text}");

    // The absolute form of our own name is served, as RFC 9112 requires.
    let (status, text) = raw(
        &app,
        TERMINAL,
        &get("https://localhost/v1/terminal/cases", "localhost", &token),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn a_host_header_naming_another_host_is_misdirected() {
    let app = spawn_app().await;
    let token = app.token(TERMINAL, "officer-1");
    let (status, text) = raw(&app, TERMINAL, &get("/v1/terminal/cases", "evil.example", &token)).await;
    assert_eq!(status, 421, "{text}");
    assert!(text.contains("urn:cgc-gateway:problem:misdirected"), "{text}");
    let (status, text) = raw(&app, TERMINAL, &get("/v1/terminal/cases", "LOCALHOST:443", &token)).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn http2_requests_for_a_foreign_authority_are_misdirected() {
    let app = spawn_app().await;
    let token = app.token(TERMINAL, "officer-1");
    let read = |p: &str| std::fs::read(pki().join(p)).unwrap();
    let mut config = (*cgc_gateway::tls::client_config(
        &read("ca/server-ca.pem"),
        &read(&format!("clients/{TERMINAL}.pem")),
        &read(&format!("clients/{TERMINAL}-key.pem")),
    )
    .unwrap())
    .clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let status_of = |authority: &'static str| {
        let config = Arc::new(config.clone());
        let token = token.clone();
        let addr = app.app.addr();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tls),
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            let request = hyper::Request::get(format!("https://{authority}/v1/terminal/cases"))
                .header("authorization", format!("Bearer {token}"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            sender.send_request(request).await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status_of("evil.example").await, 421);
    assert_eq!(status_of("localhost:8443").await, 200);
}
