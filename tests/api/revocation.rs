//! An administrator revokes a terminal or an officer: recorded first, effective at once, open
//! connections and streams cut, every later request refused.

use hyper::Method;

use crate::helpers::{TestApp, spawn_app};
use crate::live::open;

const PREF_ADMIN: &str = "admin-14-pref-admin";

async fn admin_post(app: &TestApp, admin: &str, path: &str) -> cgc_gateway::client::Reply {
    let token = app.token(admin, "admin-user");
    app.client(admin)
        .send(Method::POST, path, Some(&token), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_revoked_terminal_is_cut_at_once_and_refused_after() {
    let app = spawn_app().await;
    let (status, mut kagacho) = open(&app, "terminal-kagacho-1", None).await;
    assert_eq!(status, 200);
    kagacho.until_synced().await;
    let (_, mut atsugi) = open(&app, "terminal-atsugi-1", None).await;
    atsugi.until_synced().await;

    // Only the prefecture's administrator may revoke; a city's is refused (and recorded).
    let reply = admin_post(&app, "admin-141003-city-admin", "/v1/admin/terminals/kagacho/1/revoke").await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        admin_post(&app, PREF_ADMIN, "/v1/admin/terminals/no-such-station/1/revoke")
            .await
            .status,
        404
    );

    let reply = admin_post(&app, PREF_ADMIN, "/v1/admin/terminals/kagacho/1/revoke").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json().unwrap();
    assert_eq!(body["target"], "urn:cgc-gateway:terminal:kagacho:1");
    assert_eq!(body["connections_cut"], 1);
    let index = body["audit_index"].as_u64().unwrap() as usize;
    let entry = app.audit_lines().await[index].clone();
    assert!(entry.contains("\"kind\":\"revocation\"") && entry.contains("urn:cgc-gateway:admin:14:pref-admin"));

    assert!(kagacho.next().await.is_none(), "the revoked terminal's stream is cut");
    assert_eq!(app.list("terminal-kagacho-1").await.status, 403);
    assert_eq!(
        app.list("terminal-atsugi-1").await.status,
        200,
        "other terminals are untouched"
    );
    atsugi.assert_quiet(std::time::Duration::from_millis(300)).await;

    // Idempotent; and it survives a restart of the gateway (kept in the store).
    let again = admin_post(&app, PREF_ADMIN, "/v1/admin/terminals/kagacho/1/revoke")
        .await
        .json()
        .unwrap();
    assert_eq!(again["newly_revoked"], false);
    let rows = app.app.context().store.revocations().await.unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn a_revoked_officer_loses_every_stream_and_request_on_any_terminal() {
    let app = spawn_app().await;
    let (_, mut s) = open(&app, "terminal-atsugi-1", None).await; // officer-1
    s.until_synced().await;
    let reply = admin_post(&app, PREF_ADMIN, "/v1/admin/officers/officer-1/revoke").await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let end = s.next().await.expect("an end event");
    assert_eq!(end.event, "end");
    assert_eq!(end.data["reason"], "officer_revoked");
    assert!(s.next().await.is_none());

    // officer-1 is refused everywhere; another officer on the same terminal is not.
    assert_eq!(app.list("terminal-atsugi-1").await.status, 401);
    assert_eq!(app.list("terminal-kagacho-1").await.status, 401);
    let other = app.token("terminal-atsugi-1", "officer-2");
    let reply = app
        .client("terminal-atsugi-1")
        .get("/v1/terminal/cases", Some(&other))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
}
