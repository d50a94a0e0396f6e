//! Live terminals: the SSE stream (initial view, pushes, withdrawals, time, resumption,
//! expiry, revocation, fail-closed audit), search, the session cookie and the web terminal.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use serde_json::{Value, json};

use cgc_gateway::policy::{ConsentState, PolicyWorld};

use crate::helpers::{TestApp, full_case, pki, spawn_app};

#[derive(Debug, Clone)]
pub struct Sse {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// A Server-Sent Events reader over a real TLS connection.
pub struct Stream {
    body: Incoming,
    buf: String,
    pub heartbeats: usize,
}

impl Stream {
    /// A reader over a stream's response body.
    pub fn over(body: Incoming) -> Self {
        Self {
            body,
            buf: String::new(),
            heartbeats: 0,
        }
    }

    /// `None` when the stream ended; panics after `within` without an event.
    pub async fn next_within(&mut self, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..i + 2).collect();
                if frame.starts_with(':') {
                    self.heartbeats += 1;
                    continue;
                }
                let mut e = Sse {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        e.event = v.into();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        e.id = Some(v.into());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        e.data = serde_json::from_str(v).unwrap();
                    }
                }
                return Some(e);
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no event within {within:?}; buffered: {:?}", self.buf));
            match frame {
                None | Some(Err(_)) => return None,
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
            }
        }
    }

    pub async fn next(&mut self) -> Option<Sse> {
        self.next_within(Duration::from_secs(5)).await
    }

    /// Events up to and including `synced`.
    pub async fn until_synced(&mut self) -> Vec<Sse> {
        let mut out = Vec::new();
        loop {
            let e = self.next().await.expect("stream ended before synced");
            let done = e.event == "synced";
            out.push(e);
            if done {
                return out;
            }
        }
    }

    /// Asserts that nothing but heartbeats arrives for `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        let r = tokio::time::timeout(quiet, self.next_within(quiet * 2)).await;
        assert!(r.is_err(), "unexpected event: {:?}", r.ok());
    }
}

pub async fn open(app: &TestApp, terminal: &str, last_event_id: Option<&str>) -> (u16, Stream) {
    let token = app.token(terminal, "officer-1");
    open_as(app, terminal, "/v1/terminal/stream", Some(&token), last_event_id).await
}

/// Opens the event stream at `path` as the certificate `client` (with `token`, if any).
pub async fn open_as(
    app: &TestApp,
    client: &str,
    path: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> (u16, Stream) {
    let mut conn = app.client(client).connect().await.unwrap();
    let headers: Vec<(&str, &str)> = last_event_id.map(|id| ("last-event-id", id)).into_iter().collect();
    let response = conn
        .send_streaming_with(Method::GET, path, token, None, &headers)
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert_eq!(response.headers()["content-type"], "text/event-stream; charset=utf-8");
    }
    (status, Stream::over(response.into_body()))
}

async fn stream(app: &TestApp, terminal: &str) -> Stream {
    let (status, s) = open(app, terminal, None).await;
    assert_eq!(status, 200);
    s
}

fn refs(events: &[Sse], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == kind)
        .map(|e| e.data["ref"].as_str().unwrap().to_owned())
        .collect()
}

fn without_consent(app: &TestApp, operator: &str) -> PolicyWorld {
    let mut world = (*app.app.context().policy()).clone();
    world
        .consents
        .set("kanagawa-2026", operator, ConsentState::Withdrawn.into());
    world
}

#[tokio::test]
async fn a_stream_starts_with_the_current_view_then_pushes_each_update_within_milliseconds() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "ST-1", "142123")).await;
    app.push(&full_case("kawasaki-central", "ST-KW", "141313")).await;
    let mut s = stream(&app, "terminal-kagacho-1").await;
    let initial = s.until_synced().await;
    assert_eq!(initial[0].event, "reset");
    assert_eq!(refs(&initial, "case"), ["kanagawa-central:ST-1"]);
    assert!(initial.iter().filter(|e| e.event == "case").all(|e| e.id.is_none()));
    assert!(initial.last().unwrap().id.is_some(), "synced carries the cursor");

    let started = Instant::now();
    app.push(&full_case("yokosuka", "ST-2", "142018")).await;
    let e = s.next().await.unwrap();
    let latency = started.elapsed();
    assert_eq!(
        (e.event.as_str(), e.data["ref"].as_str()),
        ("case", Some("yokosuka:ST-2"))
    );
    assert!(latency < Duration::from_millis(500), "push to event took {latency:?}");
    assert!(e.id.is_some());
    // Kagacho is a prefecture station for Yokosuka: its view, not the covering station's.
    assert!(e.data["summary"]["child"].get("address").is_none());
    assert!(!serde_json::to_string(&e.data).unwrap().contains("ADDRCANARY"));
    // The receipt points at a durable stream disclosure by this officer.
    let index = e.data["receipt"]["audit_index"].as_u64().unwrap() as usize;
    let entry_line = app.audit_lines().await[index].clone();
    let entry: Value = serde_json::from_str(&entry_line).unwrap();
    assert_eq!(entry["channel"], "stream");
    assert_eq!(entry["case"]["case_id"], "ST-2");
    assert_eq!(entry["actor"]["subject"], "officer-1");
    assert_eq!(entry_line, e.data["receipt"]["entry"].as_str().unwrap());

    // A case of a city that has not opted in never reaches the stream.
    app.push(&full_case("kawasaki-central", "ST-KW2", "141313")).await;
    s.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn each_unit_gets_its_own_view_of_one_update() {
    let app = spawn_app().await;
    let mut atsugi = stream(&app, "terminal-atsugi-1").await;
    let mut tsurumi = stream(&app, "terminal-tsurumi-1").await;
    atsugi.until_synced().await;
    tsurumi.until_synced().await;
    app.push(&full_case("kanagawa-central", "AV-1", "142123")).await;
    let covering = atsugi.next().await.unwrap();
    let other = tsurumi.next().await.unwrap();
    assert!(covering.data["summary"]["child"]["address"].is_object());
    assert!(covering.data["summary"]["abuse"].is_object());
    assert!(other.data["summary"]["child"].get("address").is_none());
    assert!(other.data["summary"].get("abuse").is_none());
    assert!(other.data["allowed"].as_array().unwrap().iter().all(|f| f != "abuse"));
}

#[tokio::test]
async fn withdrawals_reach_only_streams_that_were_shown_the_case() {
    let app = spawn_app().await;
    let mut y = full_case("yokohama-central", "WD-1", "141046");
    app.push(&y).await;
    let mut kagacho = stream(&app, "terminal-kagacho-1").await;
    assert_eq!(refs(&kagacho.until_synced().await, "case"), ["yokohama-central:WD-1"]);

    // Criteria no longer met (Yokohama shares only the national criteria).
    y["version"] = json!(2);
    y["abuse"] = json!({ "types": ["psychological"], "injury": false });
    app.push(&y).await;
    let e = kagacho.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), &e.data),
        ("withdraw", &json!({ "ref": "yokohama-central:WD-1" }))
    );
    assert!(e.id.is_some());
    // Now invisible, its further updates stay silent, and it is not withdrawn twice.
    y["version"] = json!(3);
    app.push(&y).await;
    kagacho.assert_quiet(Duration::from_millis(300)).await;

    // A case closed.
    let mut k = full_case("kanagawa-central", "WD-2", "142123");
    app.push(&k).await;
    assert_eq!(kagacho.next().await.unwrap().event, "case");
    k["version"] = json!(2);
    k["status"] = json!("closed");
    app.push(&k).await;
    assert_eq!(
        refs(&[kagacho.next().await.unwrap()], "withdraw"),
        ["kanagawa-central:WD-2"]
    );

    // Consent withdrawn through set_policy: the city's visible cases leave at once.
    y["version"] = json!(4);
    y["abuse"]["injury"] = json!(true);
    app.push(&y).await;
    assert_eq!(kagacho.next().await.unwrap().event, "case");
    app.app.context().set_policy(without_consent(&app, "141003"));
    let e = kagacho.next_within(Duration::from_millis(500)).await.unwrap();
    assert_eq!(refs(&[e], "withdraw"), ["yokohama-central:WD-1"]);
}

#[tokio::test]
async fn the_48_hour_deadline_pushes_a_case_without_any_update() {
    let app = spawn_app().await;
    let mut case = full_case("yokohama-central", "T48-1", "141046");
    case["abuse"] = json!({ "types": ["psychological"], "injury": false });
    case["safety_confirmed_at"] = json!(null);
    case["intake_at"] = json!("2026-11-18T12:30:00+09:00"); // 47.5 h before NOW
    app.push(&case).await;
    let mut s = stream(&app, "terminal-kagacho-1").await;
    assert!(refs(&s.until_synced().await, "case").is_empty());
    // Well before the officer's one-hour token expires.
    app.clock.advance(time::Duration::minutes(31));
    // The hub re-checks the clock every 250 ms.
    let e = s.next_within(Duration::from_secs(2)).await.unwrap();
    assert_eq!(refs(std::slice::from_ref(&e), "case"), ["yokohama-central:T48-1"]);
    assert!(
        e.data["allowed"]
            .as_array()
            .unwrap()
            .contains(&json!("safety_confirmed_at"))
    );
    assert!(e.data["summary"].get("safety_confirmed_at").is_none());
}

#[tokio::test]
async fn last_event_id_resumes_without_a_gap() {
    let app = spawn_app().await;
    let mut a = full_case("kanagawa-central", "RS-A", "142123");
    let mut b = full_case("kanagawa-central", "RS-B", "142123");
    app.push(&a).await;
    app.push(&b).await;
    let (_, mut s) = open(&app, "terminal-atsugi-1", None).await;
    let cursor = s.until_synced().await.last().unwrap().id.clone().unwrap();
    drop(s);

    a["version"] = json!(2);
    a["child"]["name"] = json!("山田　花江");
    app.push(&a).await;
    b["version"] = json!(2);
    b["status"] = json!("closed");
    app.push(&b).await;
    app.push(&full_case("yokosuka", "RS-C", "142018")).await;
    app.push(&full_case("kawasaki-central", "RS-KW", "141313")).await;

    let (status, mut s) = open(&app, "terminal-atsugi-1", Some(&cursor)).await;
    assert_eq!(status, 200);
    let resumed = s.until_synced().await;
    assert!(resumed.iter().all(|e| e.event != "reset"), "{resumed:?}");
    assert_eq!(refs(&resumed, "case"), ["kanagawa-central:RS-A", "yokosuka:RS-C"]);
    assert_eq!(refs(&resumed, "withdraw"), ["kanagawa-central:RS-B"]);
    let a_event = resumed.iter().find(|e| e.event == "case").unwrap();
    assert_eq!(a_event.data["version"], 2);
    assert_eq!(a_event.data["summary"]["child"]["name"], "山田　花江");
    let newer = resumed.last().unwrap().id.clone().unwrap();
    assert_ne!(newer, cursor);

    // Resuming from the newest cursor: nothing to catch up.
    let (_, mut s) = open(&app, "terminal-atsugi-1", Some(&newer)).await;
    assert_eq!(s.until_synced().await.len(), 1);

    // A cursor the hub cannot honour: start over with the full view.
    for bogus in ["0-1", "garbage", "ffff-99999999"] {
        let (_, mut s) = open(&app, "terminal-atsugi-1", Some(bogus)).await;
        let events = s.until_synced().await;
        assert_eq!(events[0].event, "reset", "{bogus}");
        assert_eq!(refs(&events, "case"), ["kanagawa-central:RS-A", "yokosuka:RS-C"]);
    }
}

#[tokio::test]
async fn the_stream_closes_when_the_token_expires() {
    let app = spawn_app().await;
    let mut s = stream(&app, "terminal-hq-1").await;
    s.until_synced().await;
    app.clock.advance(time::Duration::minutes(61));
    let e = s.next_within(Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        (e.event.as_str(), &e.data),
        ("end", &json!({ "reason": "token_expired" }))
    );
    assert!(s.next().await.is_none(), "closed after the end event");
}

#[tokio::test]
async fn a_token_past_its_expiry_but_inside_the_leeway_cannot_open_a_stream() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "LW-1", "142123")).await;
    let terminal = app.client("terminal-kagacho-1");
    let token = app.token("terminal-kagacho-1", "officer-1");
    // One hour issued; ten seconds past `exp`, inside the 30 s leeway.
    app.clock
        .advance(time::Duration::minutes(60) + time::Duration::seconds(10));
    // An ordinary request is still forgiven the clock skew.
    assert_eq!(
        terminal.get("/v1/terminal/cases", Some(&token)).await.unwrap().status,
        200
    );

    let before = app.app.context().audit.size();
    let reply = terminal.get("/v1/terminal/stream", Some(&token)).await.unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    // Recorded as a refusal, and nothing was disclosed.
    let mut new = Vec::new();
    for _ in 0..100 {
        new = app.audit_lines().await.split_off(usize::try_from(before).unwrap());
        if !new.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(
        new[0].contains("\"kind\":\"refusal\"") && new[0].contains("GET /v1/terminal/stream"),
        "{}",
        new[0]
    );
}

#[tokio::test]
async fn revoked_terminal_stream_is_cut() {
    let app = spawn_app().await;
    let mut kagacho = stream(&app, "terminal-kagacho-1").await;
    let mut atsugi = stream(&app, "terminal-atsugi-1").await;
    kagacho.until_synced().await;
    atsugi.until_synced().await;
    let cut = app.app.context().connections.cut_where(|p| {
        matches!(&p.principal, cgc_gateway::identity::Principal::Terminal { station_id, .. } if station_id == "kagacho")
    });
    assert_eq!(cut, 1);
    assert!(kagacho.next().await.is_none());
    app.push(&full_case("kanagawa-central", "RV-1", "142123")).await;
    assert_eq!(atsugi.next().await.unwrap().event, "case", "others keep streaming");
}

#[tokio::test]
async fn when_the_log_cannot_be_written_the_stream_sends_nothing_and_closes() {
    let app = spawn_app().await;
    let mut s = stream(&app, "terminal-atsugi-1").await;
    s.until_synced().await;
    let _broken = app.break_audit_log().await;
    app.push(&full_case("kanagawa-central", "FC-S", "142123")).await;
    assert!(s.next().await.is_none(), "closed without sending the case");
    let (status, mut again) = open(&app, "terminal-atsugi-1", None).await;
    assert_eq!(status, 503);
    let body = again.body_text().await;
    assert!(!body.contains("FC-S") && !body.contains("山田"), "{body}");
}

impl Stream {
    async fn body_text(&mut self) -> String {
        let mut out = std::mem::take(&mut self.buf);
        while let Some(Ok(f)) = self.body.frame().await {
            if let Ok(d) = f.into_data() {
                out.push_str(&String::from_utf8_lossy(&d));
            }
        }
        out
    }
}

async fn search(app: &TestApp, terminal: &str, q: &str) -> cgc_gateway::client::Reply {
    let token = app.token(terminal, "officer-1");
    let path = format!("/v1/terminal/search?q={}", urlencode(q));
    app.client(terminal).get(&path, Some(&token)).await.unwrap()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn search_folds_kana_and_width_and_answers_only_name_fields() {
    let app = spawn_app().await;
    let mut dv = full_case("kanagawa-central", "SR-1", "142123");
    dv["flags"]["dv"] = json!(true);
    app.push(&dv).await;
    app.push(&full_case("kawasaki-central", "SR-KW", "141313")).await;
    let before = app.audit_lines().await.len();
    for q in ["やまだ", "ﾔﾏﾀﾞ", "ヤマダ", "山田 花", "はなこ", "良子"] {
        let reply = search(&app, "terminal-atsugi-1", q).await;
        assert_eq!(reply.status, 200, "{q}");
        let body = reply.json().unwrap();
        let cases = body["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 1, "{q}: only the shared case, not Kawasaki's");
        assert_eq!(cases[0]["ref"], "kanagawa-central:SR-1");
        // The covering station's summary, without the address.
        let fields = crate::helpers::field_paths(&cases[0]["summary"]);
        let mut expected = crate::helpers::set(crate::views::SUMMARY);
        expected.remove("child.address");
        assert_eq!(fields, expected, "{q}");
        let text = reply.text();
        assert!(!text.contains("ADDRCANARY") && !text.contains("address"), "{q}");
    }
    // Every hit was a disclosure on the search channel.
    let lines = app.audit_lines().await;
    let new: Vec<Value> = lines[before..]
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "disclosure")
        .collect();
    assert_eq!(new.len(), 6);
    assert!(new.iter().all(|e| e["channel"] == "search"));
    // Guardians' kana is in no view: searching it must not reveal a match.
    let reply = search(&app, "terminal-atsugi-1", "ヨシコ").await;
    assert_eq!(reply.json().unwrap()["cases"], json!([]));
    // Bad queries are problems.
    for q in ["", "　 ", &"あ".repeat(65)] {
        let reply = search(&app, "terminal-atsugi-1", q).await;
        assert_eq!(reply.status, 400, "{q:?}");
        assert_eq!(reply.headers["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn the_session_cookie_authorizes_the_stream_only_with_its_own_certificate() {
    let app = spawn_app().await;
    let token = app.token("terminal-kagacho-1", "officer-1");
    let reply = app
        .client("terminal-kagacho-1")
        .send(Method::POST, "/v1/terminal/session", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cookie = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=3600"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    for (terminal, expected) in [("terminal-kagacho-1", 200), ("terminal-tsurumi-1", 401)] {
        let mut conn = app.client(terminal).connect().await.unwrap();
        let response = conn
            .send_streaming_with(Method::GET, "/v1/terminal/stream", None, None, &[("cookie", &pair)])
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{terminal}");
    }
}

#[tokio::test]
async fn the_dev_token_endpoint_exists_only_in_the_demo() {
    let app = spawn_app().await;
    let client = app.client("terminal-kagacho-1");
    let body = serde_json::to_vec(&json!({ "subject": "K-1234" })).unwrap();
    let reply = client
        .send(Method::POST, "/v1/dev/token", None, Some(body.clone()))
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
    // The demo's gateway: the route exists because it was given an issuer key.
    let app = crate::helpers::spawn_app_with(|c, _| {
        c.dev_token_issuer_key = Some(pki().join("token-issuer/issuer-key.pem"));
    })
    .await;
    let client = app.client("terminal-kagacho-1");
    let reply = client
        .send(Method::POST, "/v1/dev/token", None, Some(body.clone()))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let token = reply.json().unwrap()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        client.get("/v1/terminal/cases", Some(&token)).await.unwrap().status,
        200
    );
    // Bound to the certificate that asked for it.
    let other = app.client("terminal-tsurumi-1");
    assert_eq!(other.get("/v1/terminal/cases", Some(&token)).await.unwrap().status, 401);
    // Centers get none.
    let center = app.client("center-yokosuka");
    assert_eq!(
        center
            .send(Method::POST, "/v1/dev/token", None, Some(body))
            .await
            .unwrap()
            .status,
        403
    );
}

#[tokio::test]
async fn the_web_terminal_is_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let reply = app.client("terminal-kagacho-1").get("/terminal/", None).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("lang=\"ja\""));
    let csp = reply.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    for asset in ["/terminal/app.js", "/terminal/app.css"] {
        assert_eq!(
            app.client("terminal-kagacho-1").get(asset, None).await.unwrap().status,
            200
        );
    }
}

/// Waits until the hub has applied the store's change log to its end (the follower reads it
/// right after each commit).
pub async fn applied(app: &TestApp) {
    let ctx = app.app.context();
    let head = ctx.store.latest_change().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ctx.live.position() < head {
        assert!(Instant::now() < deadline, "the log is not applied after 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a stream's catch-up says, as `"<event> <ref>"`.
pub fn catch_up(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!("{} {}", e.event, e.data["ref"].as_str().unwrap_or(""))
                .trim()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_cursor_resumes_after_a_restart_with_only_what_changed_after_it() {
    let app = spawn_app().await;
    for id in ["RS-KEEP", "RS-UPD", "RS-GONE"] {
        app.push(&full_case("yokohama-central", id, "141046")).await;
    }
    applied(&app).await;
    let (_, mut s) = open(&app, "terminal-kagacho-1", None).await;
    let first = s.until_synced().await;
    assert_eq!(first.len(), 5, "{:?}", catch_up(&first));
    let cursor = first.last().and_then(|e| e.id.clone()).unwrap();
    drop(s);

    // After the cursor: an update, a new case, a case closed (so withdrawn), and a case the
    // station is never shown.
    let mut updated = full_case("yokohama-central", "RS-UPD", "141046");
    updated["version"] = json!(2);
    updated["risk_level"] = json!("low");
    app.push(&updated).await;
    app.push(&full_case("yokohama-central", "RS-NEW", "141046")).await;
    let mut closed = full_case("yokohama-central", "RS-GONE", "141046");
    closed["version"] = json!(2);
    closed["status"] = json!("closed");
    app.push(&closed).await;
    app.push(&full_case("sagamihara", "RS-NEVER", "141534")).await;
    applied(&app).await;

    // A new process over the same database: the cursor still means something.
    let app = app.restart().await;
    let (status, mut s) = open(&app, "terminal-kagacho-1", Some(&cursor)).await;
    assert_eq!(status, 200);
    let events = s.until_synced().await;
    // No reset and no unchanged case: the closed case withdrawn (the station was shown it, as
    // the audit log says), the new and the updated one sent, the never-shown one not named.
    assert_eq!(
        catch_up(&events),
        [
            "withdraw yokohama-central:RS-GONE",
            "case yokohama-central:RS-NEW",
            "case yokohama-central:RS-UPD",
            "synced"
        ]
    );
    let upd = events
        .iter()
        .find(|e| e.data["ref"] == "yokohama-central:RS-UPD")
        .unwrap();
    assert_eq!(upd.data["version"], 2);
    assert_eq!(upd.data["summary"]["risk_level"], "low");

    // Another station that was never shown the closed case is not told of it.
    let (_, mut s) = open(&app, "terminal-sagamihara-minami-1", Some(&cursor)).await;
    let events = catch_up(&s.until_synced().await);
    assert!(
        !events.iter().any(|e| e.contains("RS-GONE") || e.contains("RS-NEVER")),
        "{events:?}"
    );
    app.app.stop().await;
}
