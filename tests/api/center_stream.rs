//! The center stream (`GET /v1/centers/{center_id}/stream`): a terminal opening a center's case
//! reaches that center, and only it; `Last-Event-ID` resumes from the durable event table, in
//! the same process or after a restart.

use std::time::Duration;

use crate::helpers::{TestApp, full_case, spawn_app, spawn_app_with};
use crate::live::{Sse, Stream, open_as};

/// Opens `center`'s stream as the certificate `client`.
pub async fn open_center(app: &TestApp, client: &str, center: &str, last_event_id: Option<&str>) -> (u16, Stream) {
    open_as(
        app,
        client,
        &format!("/v1/centers/{center}/stream"),
        None,
        last_event_id,
    )
    .await
}

/// The events of `center`'s own stream after `last`, up to `synced`.
pub async fn center_events(app: &TestApp, center: &str, last: &str) -> Vec<Sse> {
    let (status, mut s) = open_center(app, &format!("center-{center}"), center, Some(last)).await;
    assert_eq!(status, 200);
    s.until_synced().await
}

#[tokio::test]
async fn a_terminal_opening_a_case_reaches_its_center_stream_and_no_other() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "OPEN-1", "142123")).await;
    app.push(&full_case("yokosuka", "OPEN-2", "142018")).await;
    let (status, mut own) = open_center(&app, "center-kanagawa-central", "kanagawa-central", None).await;
    assert_eq!(status, 200);
    let synced = own.until_synced().await;
    assert_eq!(synced.len(), 1, "a stream without a cursor starts at the newest event");
    let (_, mut other) = open_center(&app, "center-yokosuka", "yokosuka", None).await;
    other.until_synced().await;

    let detail = app.detail("terminal-atsugi-1", "kanagawa-central:OPEN-1").await;
    assert_eq!(detail.status, 200, "{}", detail.text());
    let index = detail.json().unwrap()["receipt"]["audit_index"].clone();

    let e = own.next().await.unwrap();
    assert_eq!(e.event, "opened");
    assert!(e.id.is_some());
    assert_eq!(e.data["ref"], "kanagawa-central:OPEN-1");
    assert_eq!(e.data["case_id"], "OPEN-1");
    assert_eq!(e.data["station_id"], "atsugi");
    assert_eq!(e.data["terminal_no"], 1);
    assert_eq!(e.data["officer"], "officer-1");
    assert_eq!(e.data["channel"], "detail");
    assert_eq!(e.data["audit_index"], index);
    assert!(e.data["at"].is_string());
    // The list is not an opening of one case, and another center's case goes to that center.
    assert_eq!(app.list("terminal-atsugi-1").await.status, 200);
    assert_eq!(app.detail("terminal-yokosuka-1", "yokosuka:OPEN-2").await.status, 200);
    let e = other.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), &e.data["ref"]),
        ("opened", &"yokosuka:OPEN-2".into())
    );
    assert_eq!(app.detail("terminal-hq-1", "OPEN-1").await.status, 200);
    let e = own.next().await.unwrap();
    assert_eq!(
        (e.data["station_id"].as_str(), e.data["ref"].as_str()),
        (Some("hq"), Some("kanagawa-central:OPEN-1"))
    );
    // A print is an opening too, with its own entry.
    let token = app.token("terminal-atsugi-1", "officer-1");
    let printed = app
        .client("terminal-atsugi-1")
        .send(
            hyper::Method::POST,
            "/v1/terminal/cases/kanagawa-central:OPEN-1/print",
            Some(&token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(printed.status, 200, "{}", printed.text());
    let e = own.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data["channel"].as_str()),
        ("opened", Some("print"))
    );
    assert_eq!(e.data["audit_index"], printed.json().unwrap()["receipt"]["audit_index"]);
}

/// The opening and its record are one commit: when the center's event cannot be stored, the
/// case is not opened (503, nothing of it sent, no entry written); once it can, the event names
/// the very entry the officer's receipt proves.
#[tokio::test]
async fn a_case_is_not_opened_when_its_center_cannot_be_told() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "TOLD-1", "142123")).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER center_events_broken BEFORE INSERT ON center_events \
         BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let size = app.app.context().audit.size();

    let refused = app.detail("terminal-atsugi-1", "kanagawa-central:TOLD-1").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    for canary in ["TOLD-1", "山田", "ADDRCANARY"] {
        assert!(!refused.text().contains(canary), "{}", refused.text());
    }
    assert_eq!(
        app.app.context().audit.size(),
        size,
        "no entry for an opening that did not happen"
    );
    let opened: i64 = sqlx::query_scalar("SELECT count(*) FROM center_events WHERE kind = 'opened'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(opened, 0);

    sqlx::query("DROP TRIGGER center_events_broken")
        .execute(&pool)
        .await
        .unwrap();
    let detail = app.detail("terminal-atsugi-1", "kanagawa-central:TOLD-1").await;
    assert_eq!(detail.status, 200, "{}", detail.text());
    let index = detail.json().unwrap()["receipt"]["audit_index"].as_u64().unwrap();
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM center_events WHERE kind = 'opened'")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(bodies.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["audit_index"].as_u64(), Some(index));
    assert_eq!(body["ref"], "kanagawa-central:TOLD-1");
}

#[tokio::test]
async fn another_centers_stream_is_refused_and_recorded() {
    let app = spawn_app().await;
    let (status, _) = open_center(&app, "center-yokosuka", "kanagawa-central", None).await;
    assert_eq!(status, 403);
    assert!(
        app.audit_has(&[
            "\"kind\":\"refusal\"",
            "urn:cgc-gateway:center:yokosuka",
            "GET /v1/centers/{center_id}/stream"
        ])
        .await
    );
    // Nor any other kind of certificate.
    let (status, _) = open_center(&app, "auditor-kanagawa-audit", "kanagawa-central", None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_cursor_resumes_from_the_stored_events_after_a_restart() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "RES-1", "142123")).await;
    assert_eq!(
        app.detail("terminal-atsugi-1", "kanagawa-central:RES-1").await.status,
        200
    );
    // From the beginning: the one event, then synced with its id.
    let all = center_events(&app, "kanagawa-central", "0").await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].event, "opened");
    let cursor = all[1].id.clone().unwrap();
    assert_eq!(all[0].id.as_ref(), Some(&cursor));

    // While the center is away, two more openings; then the process restarts.
    assert_eq!(
        app.detail("terminal-atsugi-1", "kanagawa-central:RES-1").await.status,
        200
    );
    assert_eq!(
        app.detail("terminal-kagacho-1", "kanagawa-central:RES-1").await.status,
        200
    );
    let app = app.restart().await;
    let missed = center_events(&app, "kanagawa-central", &cursor).await;
    let stations: Vec<&str> = missed
        .iter()
        .filter(|e| e.event == "opened")
        .map(|e| e.data["station_id"].as_str().unwrap())
        .collect();
    assert_eq!(stations, ["atsugi", "kagacho"]);
    assert_eq!(missed.last().unwrap().event, "synced");

    // Live after the catch-up, and heartbeats in between.
    let (_, mut s) = open_center(
        &app,
        "center-kanagawa-central",
        "kanagawa-central",
        missed.last().unwrap().id.as_deref(),
    )
    .await;
    assert_eq!(s.until_synced().await.len(), 1);
    assert_eq!(app.detail("terminal-hq-1", "kanagawa-central:RES-1").await.status, 200);
    let e = s.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(e.data["station_id"], "hq");
}

/// On two instances sharing one PostgreSQL database, `writer` and `reader` configured as given:
/// a terminal opening a case on the writer reaches the center stream on the reader.
async fn opened_on_one_instance_reaches_the_other(notify_changes: bool, reader_poll_ms: u64) {
    let Some(url) = crate::pg::database().await else {
        return;
    };
    let writer = spawn_app_with(|c, _| {
        c.database_url = url.clone();
        c.notify_changes = notify_changes;
    })
    .await;
    let reader = spawn_app_with(|c, _| {
        c.database_url = url.clone();
        c.change_poll_ms = reader_poll_ms;
    })
    .await;
    writer.push(&full_case("kanagawa-central", "WAKE-1", "142123")).await;
    let (status, mut stream) = open_center(&reader, "center-kanagawa-central", "kanagawa-central", None).await;
    assert_eq!(status, 200);
    stream.until_synced().await;
    let detail = writer.detail("terminal-atsugi-1", "kanagawa-central:WAKE-1").await;
    assert_eq!(detail.status, 200, "{}", detail.text());
    let e = stream
        .next()
        .await
        .expect("the other instance's event never reached the stream");
    assert_eq!(
        (e.event.as_str(), e.data["ref"].as_str()),
        ("opened", Some("kanagawa-central:WAKE-1"))
    );
}

#[tokio::test]
async fn on_postgresql_another_instances_event_wakes_the_stream_without_any_polling() {
    // The reader looks by itself only once an hour: only the NOTIFY wake-up can bring it.
    opened_on_one_instance_reaches_the_other(true, 3_600_000).await;
}

#[tokio::test]
async fn on_postgresql_without_wake_ups_another_instances_event_is_found_by_polling() {
    opened_on_one_instance_reaches_the_other(false, 500).await;
}

#[tokio::test]
async fn a_malformed_cursor_is_refused_naming_the_header_rather_than_starting_from_now() {
    use http_body_util::BodyExt;

    let app = spawn_app().await;
    for bad in ["{}", "-1", "12abc", "+3"] {
        let mut conn = app.client("center-yokosuka").connect().await.unwrap();
        let response = conn
            .send_streaming_with(
                hyper::Method::GET,
                "/v1/centers/yokosuka/stream",
                None,
                None,
                &[("last-event-id", bad)],
            )
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{bad}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["errors"][0]["pointer"], "Last-Event-ID", "{bad}");
        assert!(!String::from_utf8_lossy(&body).contains(bad), "{bad}");
    }
    // A well-formed cursor still opens the stream.
    let (status, _) = open_center(&app, "center-yokosuka", "yokosuka", Some("0")).await;
    assert_eq!(status, 200);
}
