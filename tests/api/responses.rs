//! Police responses (`POST /v1/terminal/cases/{ref}/responses`): signed into the audit log,
//! stored, read by the owning center only (its list and its stream), never shown to terminals;
//! a case the terminal may not see is a 404 exactly like a missing one.

use cgc_gateway::client::Reply;
use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::center_stream::open_center;
use crate::helpers::{TestApp, full_case, spawn_app};

async fn respond(app: &TestApp, terminal: &str, case_ref: &str, body: &Value) -> Reply {
    let token = app.token(terminal, "officer-7");
    app.client(terminal)
        .send(
            Method::POST,
            &format!("/v1/terminal/cases/{case_ref}/responses"),
            Some(&token),
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
        .unwrap()
}

async fn responses(app: &TestApp, client: &str, center: &str, after: &str) -> Reply {
    app.client(client)
        .get(&format!("/v1/centers/{center}/responses?after={after}"), None)
        .await
        .unwrap()
}

const NOTE: &str = "NOTECANARY 公園で児童を発見し保護";

#[tokio::test]
async fn a_police_response_reaches_only_the_owning_center_signed_into_the_log() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "RSP-1", "142123")).await;
    let (_, mut stream) = open_center(&app, "center-kanagawa-central", "kanagawa-central", None).await;
    stream.until_synced().await;

    let reply = respond(
        &app,
        "terminal-atsugi-1",
        "kanagawa-central:RSP-1",
        &json!({ "kind": "found", "at": "2026-11-20T11:30:00+09:00", "note": NOTE }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let answer = reply.json().unwrap();
    let index = answer["receipt"]["audit_index"].as_u64().unwrap();
    let id = answer["id"].as_i64().unwrap();

    // The center's list.
    let list = responses(&app, "center-kanagawa-central", "kanagawa-central", "0").await;
    assert_eq!(list.status, 200, "{}", list.text());
    // The response object exactly as sent (it holds no nested object): what the entry digests.
    let raw = list.text();
    let sent = raw.split_once("\"response\":").unwrap().1;
    let sent = sent.get(..=sent.find('}').unwrap()).unwrap().to_owned();
    let list = list.json().unwrap();
    let got = &list["responses"][0];
    assert_eq!(list["responses"].as_array().unwrap().len(), 1);
    assert_eq!(got["id"], id);
    assert_eq!(got["audit_index"], index);
    assert_eq!(list["next_after"], id);
    let r = &got["response"];
    assert_eq!(r["ref"], "kanagawa-central:RSP-1");
    assert_eq!(r["kind"], "found");
    assert_eq!(r["note"], NOTE);
    assert_eq!(r["station_id"], "atsugi");
    assert_eq!(r["terminal_no"], 1);
    assert_eq!(r["officer"], "officer-7");
    assert_eq!(r["at"], "2026-11-20T11:30:00+09:00");
    // Paging: nothing after it.
    let later = responses(&app, "center-kanagawa-central", "kanagawa-central", &id.to_string()).await;
    assert_eq!(later.json().unwrap()["responses"], json!([]));

    // Its stream, live.
    let e = stream.next().await.unwrap();
    assert_eq!(e.event, "response");
    assert_eq!(e.id, Some(id.to_string()));
    assert_eq!(&e.data, got);

    // The audit entry: the kind, who, which case — and the digest of the response exactly as
    // the center received it, never its note.
    let line = &app.audit_lines().await[usize::try_from(index).unwrap()];
    let entry: Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["kind"], "police_response");
    assert_eq!(entry["response"], "found");
    assert_eq!(entry["station"], "atsugi");
    assert_eq!(entry["actor"]["subject"], "officer-7");
    assert_eq!(entry["case"]["center_id"], "kanagawa-central");
    assert!(!line.contains("NOTECANARY"));
    assert_eq!(serde_json::from_str::<Value>(&sent).unwrap(), *r);
    assert_eq!(entry["sha256"], hex(&Sha256::digest(sent.as_bytes())));
    assert_eq!(answer["receipt"]["entry"].as_str(), Some(line.as_str()));

    // Another center: refused and recorded; its own list is empty.
    assert_eq!(
        responses(&app, "center-yokosuka", "kanagawa-central", "0").await.status,
        403
    );
    assert!(
        app.audit_has(&[
            "\"kind\":\"refusal\"",
            "urn:cgc-gateway:center:yokosuka",
            "/v1/centers/{center_id}/responses"
        ])
        .await
    );
    let own = responses(&app, "center-yokosuka", "yokosuka", "0").await;
    assert_eq!(own.json().unwrap()["responses"], json!([]));
    // Terminals never see it: not the one that wrote it, not another.
    for terminal in ["terminal-atsugi-1", "terminal-hq-1"] {
        assert!(!app.list(terminal).await.text().contains("NOTECANARY"));
        let detail = app.detail(terminal, "kanagawa-central:RSP-1").await;
        assert!(!detail.text().contains("NOTECANARY"));
    }
    let p = responses(&app, "center-kanagawa-central", "kanagawa-central", "x").await;
    assert_eq!(p.status, 400);
    assert_eq!(p.json().unwrap()["errors"][0]["pointer"], "/after");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_response_to_a_case_out_of_view_is_a_404_like_a_missing_case_and_bad_fields_are_named() {
    let app = spawn_app().await;
    // Kawasaki has not opted in: no terminal sees its cases.
    app.push(&full_case("kawasaki-central", "RSP-HIDDEN", "141313")).await;
    app.push(&full_case("kanagawa-central", "RSP-2", "142123")).await;
    let good = json!({ "kind": "visited", "at": "2026-11-20T11:00:00+09:00" });
    let hidden = respond(&app, "terminal-kawasaki-1", "kawasaki-central:RSP-HIDDEN", &good).await;
    let missing = respond(&app, "terminal-kawasaki-1", "kawasaki-central:NO-SUCH", &good).await;
    assert_eq!((hidden.status.as_u16(), missing.status.as_u16()), (404, 404));
    assert_eq!(hidden.text(), missing.text());
    assert_eq!(hidden.headers["content-type"], missing.headers["content-type"]);
    // Out of view comes before the body: a bad body on a hidden case is still a 404.
    let bad = respond(&app, "terminal-kawasaki-1", "kawasaki-central:RSP-HIDDEN", &json!({})).await;
    assert_eq!(bad.status, 404);

    let reply = respond(
        &app,
        "terminal-atsugi-1",
        "RSP-2",
        &json!({ "kind": "arrested", "at": "yesterday", "note": "x".repeat(201) }),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let p = reply.json().unwrap();
    let pointers: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/kind", "/at", "/note"]);
    assert!(!reply.text().contains("arrested") && !reply.text().contains("yesterday"));
    let bidi = respond(
        &app,
        "terminal-atsugi-1",
        "RSP-2",
        &json!({ "kind": "other", "at": "2026-11-20T11:00:00+09:00", "note": "a\u{202e}b" }),
    )
    .await;
    assert_eq!(bidi.status, 400);
    // Nothing was stored.
    let list = responses(&app, "center-kanagawa-central", "kanagawa-central", "0").await;
    assert_eq!(list.json().unwrap()["responses"], json!([]));
    // A bare case id works when it is unambiguous, and the answer carries the receipt the web
    // terminal shows.
    let ok = respond(&app, "terminal-atsugi-1", "RSP-2", &good).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert!(ok.json().unwrap()["receipt"]["audit_index"].is_u64());
}

#[tokio::test]
async fn on_postgresql_a_response_recorded_on_one_instance_reaches_the_center_stream_on_the_other() {
    let Some((a, b, _)) = crate::instances::two_on().await else {
        return;
    };
    a.push(&full_case("kanagawa-central", "RSP-PG", "142123")).await;
    let (status, mut stream) = open_center(&b, "center-kanagawa-central", "kanagawa-central", None).await;
    assert_eq!(status, 200);
    stream.until_synced().await;
    let reply = respond(
        &a,
        "terminal-atsugi-1",
        "kanagawa-central:RSP-PG",
        &json!({ "kind": "protected", "at": "2026-11-20T11:45:00+09:00", "note": NOTE }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let id = reply.json().unwrap()["id"].clone();
    let e = stream.next().await.unwrap();
    assert_eq!((e.event.as_str(), &e.data["id"]), ("response", &id));
    assert_eq!(e.data["response"]["kind"], "protected");
    // And B lists it.
    let list = responses(&b, "center-kanagawa-central", "kanagawa-central", "0").await;
    assert_eq!(list.json().unwrap()["responses"][0]["id"], id);
}
