//! What the web terminal's screen needs from the API besides cases: who is signed in and the
//! station's own area, the registry's names and numbers, the idle lock, and refusals whose
//! problem `type` says what happened (so the screen can say it in Japanese).

use hyper::Method;
use serde_json::Value;

use crate::helpers::{ClockExt, TestApp, spawn_app, spawn_app_with};

const TERMINAL: &str = "terminal-kagacho-1";

fn problem_type(reply: &cgc_gateway::client::Reply) -> String {
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    reply.json().unwrap()["type"].as_str().unwrap().to_owned()
}

async fn get(app: &TestApp, path: &str, token: &str) -> cgc_gateway::client::Reply {
    app.client(TERMINAL).get(path, Some(token)).await.unwrap()
}

#[tokio::test]
async fn the_session_names_the_station_in_japanese_with_its_area() {
    let app = spawn_app().await;
    let token = app.token(TERMINAL, "K-1234");
    let posted = app
        .client(TERMINAL)
        .send(Method::POST, "/v1/terminal/session", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(posted.status, 200, "{}", posted.text());
    let body = posted.json().unwrap();
    assert_eq!(body["station"], "kagacho");
    assert_eq!(body["station_name"], "加賀町警察署");
    assert_eq!(body["area"], serde_json::json!(["141046"]));
    assert_eq!(body["officer"], "K-1234");
    // GET answers the same for the signed-in terminal (a reloaded page), and sets no cookie.
    let again = get(&app, "/v1/terminal/session", &token).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json().unwrap(), body);
    assert!(!again.headers.contains_key("set-cookie"));
}

#[tokio::test]
async fn the_reference_carries_registry_names_and_numbers_and_no_case_data() {
    let app = spawn_app().await;
    app.push(&crate::helpers::full_case("yokohama-central", "REF-1", "141046"))
        .await;
    let token = app.token(TERMINAL, "K-1234");
    let before = app.app.context().audit.size();
    let reply = get(&app, "/v1/terminal/reference", &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body: Value = reply.json().unwrap();
    let central = &body["centers"]["kanagawa-central"];
    assert_eq!(central["name"], "神奈川県中央児童相談所");
    assert_eq!(central["phone"], "046-000-1100");
    assert_eq!(central["after_hours_phone"], "046-000-1190");
    assert_eq!(body["municipalities"]["141046"], "横浜市中区");
    assert_eq!(body["municipalities"]["144029"], "愛甲郡清川村");
    let text = reply.text();
    assert!(!text.contains("REF-1") && !text.contains("山田"), "{text}");
    assert_eq!(
        app.app.context().audit.size(),
        before,
        "the reference is not a disclosure"
    );
    // Terminals with a signed-in officer only.
    let center = app.client("center-yokohama-central");
    assert_eq!(center.get("/v1/terminal/reference", None).await.unwrap().status, 403);
    assert_eq!(
        app.client(TERMINAL)
            .get("/v1/terminal/reference", None)
            .await
            .unwrap()
            .status,
        401
    );
}

#[tokio::test]
async fn refusals_name_an_expired_token_a_revoked_officer_and_a_revoked_terminal() {
    let app = spawn_app().await;
    let expired = cgc_gateway::cli::dev_token(
        crate::helpers::pki(),
        TERMINAL,
        "K-1234",
        time::Duration::minutes(5),
        app.clock.now_at() - time::Duration::hours(1),
    )
    .unwrap();
    let reply = get(&app, "/v1/terminal/cases", &expired).await;
    assert_eq!(reply.status, 401);
    assert_eq!(problem_type(&reply), "urn:cgc-gateway:problem:token-expired");
    let reply = get(&app, "/v1/terminal/cases", "not-a-token").await;
    assert_eq!(problem_type(&reply), "urn:cgc-gateway:problem:unauthorized");

    let admin = "admin-14-pref-admin";
    let admin_token = app.token(admin, "pref-admin");
    let revoke = |path: &'static str| {
        let client = app.client(admin);
        let token = admin_token.clone();
        async move { client.send(Method::POST, path, Some(&token), None).await.unwrap() }
    };
    assert_eq!(revoke("/v1/admin/officers/K-1234/revoke").await.status, 200);
    let reply = get(&app, "/v1/terminal/cases", &app.token(TERMINAL, "K-1234")).await;
    assert_eq!(reply.status, 401);
    assert_eq!(problem_type(&reply), "urn:cgc-gateway:problem:officer-revoked");

    assert_eq!(revoke("/v1/admin/terminals/kagacho/1/revoke").await.status, 200);
    let reply = get(&app, "/v1/terminal/cases", &app.token(TERMINAL, "K-5678")).await;
    assert_eq!(reply.status, 403);
    assert_eq!(problem_type(&reply), "urn:cgc-gateway:problem:terminal-revoked");
}

#[tokio::test]
async fn the_page_config_serves_the_idle_lock_and_the_heartbeat() {
    let app = spawn_app().await;
    let reply = app.client(TERMINAL).get("/terminal/config.json", None).await.unwrap();
    let body = reply.json().unwrap();
    assert_eq!(body["idle_lock_seconds"], 600, "ten minutes by default");
    assert_eq!(body["heartbeat_seconds"], 15);
    let app = spawn_app_with(|c, _| c.terminal.idle_lock_minutes = 3).await;
    let reply = app.client(TERMINAL).get("/terminal/config.json", None).await.unwrap();
    assert_eq!(reply.json().unwrap()["idle_lock_seconds"], 180);
}
