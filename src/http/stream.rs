//! `GET /v1/terminal/stream` (SPEC §7): Server-Sent Events.
//!
//! - `event: reset` — discard everything shown; the full current view follows.
//! - `event: case` — a case in the terminal's view: its summary, the same JSON as a list item.
//! - `event: withdraw` — `{"ref": …}`: the case left the view; only for cases this terminal's
//!   unit was shown.
//! - `event: alert` — a missing-child alert: `{"kind":"missing","state":"raised",…the case…}` when
//!   a case of the view has `flags.missing` and the view shows that flag (a disclosure, channel
//!   `alert`), `{"kind":"missing","state":"ended","ref":…}` when it no longer does.
//! - `event: synced` — the initial view (or the catch-up after `Last-Event-ID`) is complete.
//! - `event: end` — `{"reason": "token_expired"}` before the server closes the stream.
//! - `: hb` comment lines as heartbeats.
//!
//! Catch-up events carry no `id:` (so a stream cut half-way resumes from the previous cursor
//! again); `synced` and every live event carry the cursor (see `live::cursor`). Every event
//! that carries case data is a disclosure entry (channel `stream`) made durable before the
//! event is written; if the log refuses, the stream closes without sending it.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{broadcast, oneshot};

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{OFFICER_COOKIE, TerminalCaller, refuse};
use crate::audit::Channel;
use crate::live::{Cursor, Stamped, Start, UnitCase, UnitEvent, hub::ExpiryGuard};
use crate::views::{Recipient, ViewReceipt};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/terminal/stream", get(stream))
        .route("/v1/terminal/session", get(session).post(sign_in).delete(sign_out))
}

async fn stream(State(ctx): State<Ctx>, caller: TerminalCaller, headers: HeaderMap) -> Result<Response, ApiError> {
    // The leeway forgives clock skew for one request; a stream opened past `exp` would disclose
    // the whole view and then end at once. Only a token still valid opens one.
    if ctx.clock.now() >= caller.token_expires_at {
        return Err(refuse(
            &ctx,
            "GET /v1/terminal/stream".into(),
            &caller.peer.principal,
            Some(caller.officer),
            // The leeway forgives skew for one request, never for a stream.
            ApiError::TokenExpired,
        ));
    }
    let cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Cursor::parse);
    let sub = ctx.disclosures.subscribe(&caller.station_id, cursor).await?;
    let recipient = caller.recipient();
    let mut out = VecDeque::new();
    let cases: Vec<Arc<UnitCase>> = match &sub.start {
        Start::Full(cases) => {
            out.push_back(Bytes::from_static(b"event: reset\ndata: {}\n\n"));
            cases.clone()
        }
        Start::Resume(events) => events
            .iter()
            .filter_map(|e| match e {
                UnitEvent::Case(c) => Some(c.clone()),
                UnitEvent::Withdraw { .. } | UnitEvent::Alert(_) | UnitEvent::AlertEnded { .. } => None,
            })
            .collect(),
    };
    // The catch-up is recorded as one batch before the response starts, so a log failure is
    // still a 503 problem rather than a silent empty stream.
    let mut receipts = ctx
        .disclosures
        .record(&recipient, &cases, Channel::Stream)
        .await?
        .into_iter();
    let alert_receipts = ctx.disclosures.record(&recipient, &sub.alerts, Channel::Alert).await?;
    let items: Vec<UnitEvent> = match sub.start {
        Start::Full(cases) => cases.into_iter().map(UnitEvent::Case).collect(),
        Start::Resume(events) => events,
    };
    for event in items {
        match event {
            UnitEvent::Case(c) => {
                let receipt = receipts
                    .next()
                    .ok_or_else(|| ApiError::Internal("a receipt is missing".into()))?;
                out.push_back(case_event(&c, &receipt, None));
            }
            UnitEvent::Withdraw { reference } => out.push_back(withdraw_event(&reference, None)),
            // Live only: the hub puts alerts in force in `sub.alerts`.
            UnitEvent::Alert(_) | UnitEvent::AlertEnded { .. } => {}
        }
    }
    for (c, receipt) in sub.alerts.iter().zip(&alert_receipts) {
        out.push_back(alert_event(c, receipt, None));
    }
    out.push_back(Bytes::from(format!(
        "event: synced\nid: {}\ndata: {{}}\n\n",
        sub.cursor
    )));

    let (expired, guard) = ctx.live.expire_at(caller.token_expires_at);
    let mut heartbeat = tokio::time::interval(ctx.live.settings().heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    let state = StreamState {
        ctx: ctx.clone(),
        recipient,
        expires_at: caller.token_expires_at,
        out,
        events: sub.events,
        heartbeat,
        expired,
        _guard: guard,
        _open: crate::metrics::global().stream_opened(),
        officer: caller.officer.clone(),
        officers: ctx.access.revocations.watch_officers(),
        done: false,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        s.next_chunk().await.map(|b| (Ok::<_, std::convert::Infallible>(b), s))
    });
    Ok(event_stream(body))
}

/// A `text/event-stream` answer over `body`'s chunks.
pub(super) fn event_stream(
    body: impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
) -> Response {
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells reverse proxies (nginx) not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn case_event(c: &UnitCase, receipt: &ViewReceipt, cursor: Option<Cursor>) -> Bytes {
    let receipt = receipt.to_json();
    let mut out = String::with_capacity(c.summary_head.len() + receipt.len() + 96);
    out.push_str("event: case\n");
    if let Some(cursor) = cursor {
        out.push_str(&format!("id: {cursor}\n"));
    }
    out.push_str("data: ");
    c.write_summary(&mut out, &receipt);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// `event: alert`, raised: the unit's summary of the case (as a `case` event carries it) with
/// `kind` and `state` first.
fn alert_event(c: &UnitCase, receipt: &ViewReceipt, cursor: Option<Cursor>) -> Bytes {
    let mut view = String::with_capacity(c.summary_head.len() + 200);
    c.write_summary(&mut view, &receipt.to_json());
    let id = cursor.map(|c| format!("id: {c}\n")).unwrap_or_default();
    let view = view.strip_prefix('{').unwrap_or(&view);
    Bytes::from(format!(
        "event: alert\n{id}data: {{\"kind\":\"missing\",\"state\":\"raised\",{view}\n\n"
    ))
}

fn alert_ended_event(reference: &str, cursor: Option<Cursor>) -> Bytes {
    let id = cursor.map(|c| format!("id: {c}\n")).unwrap_or_default();
    let data = serde_json::json!({ "kind": "missing", "state": "ended", "ref": reference });
    Bytes::from(format!("event: alert\n{id}data: {data}\n\n"))
}

fn withdraw_event(reference: &str, cursor: Option<Cursor>) -> Bytes {
    let id = cursor.map(|c| format!("id: {c}\n")).unwrap_or_default();
    let data = serde_json::json!({ "ref": reference });
    Bytes::from(format!("event: withdraw\n{id}data: {data}\n\n"))
}

struct StreamState {
    ctx: Ctx,
    recipient: Recipient,
    expires_at: time::OffsetDateTime,
    out: VecDeque<Bytes>,
    events: broadcast::Receiver<Arc<Stamped>>,
    heartbeat: tokio::time::Interval,
    expired: oneshot::Receiver<()>,
    _guard: ExpiryGuard,
    /// Counts the stream in `cgc_gateway_streams_open` while its body lives.
    _open: crate::metrics::OpenStream,
    officer: String,
    /// Changes when any officer is revoked; the stream then checks its own.
    officers: tokio::sync::watch::Receiver<u64>,
    done: bool,
}

const TOKEN_EXPIRED: &[u8] = b"event: end\ndata: {\"reason\":\"token_expired\"}\n\n";
const OFFICER_REVOKED: &[u8] = b"event: end\ndata: {\"reason\":\"officer_revoked\"}\n\n";

impl StreamState {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.out.pop_front() {
                return Some(b);
            }
            if self.done {
                return None;
            }
            if self.ctx.clock.now() >= self.expires_at {
                self.done = true;
                return Some(Bytes::from_static(TOKEN_EXPIRED));
            }
            tokio::select! {
                received = self.events.recv() => match received {
                    Ok(stamped) => self.deliver(&stamped).await,
                    // Fell a whole ring behind, or the hub is gone: close; the terminal
                    // resumes by cursor and loses nothing.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => {
                        self.done = true;
                    }
                },
                _ = self.heartbeat.tick() => self.out.push_back(Bytes::from_static(b": hb\n\n")),
                _ = &mut self.expired => {
                    self.done = true;
                    self.out.push_back(Bytes::from_static(TOKEN_EXPIRED));
                }
                changed = self.officers.changed() => {
                    if changed.is_err() || self.ctx.access.revocations.officer_revoked(&self.officer) {
                        self.done = true;
                        self.out.push_back(Bytes::from_static(OFFICER_REVOKED));
                    }
                }
            }
        }
    }

    async fn deliver(&mut self, stamped: &Stamped) {
        let cursor = Some(self.ctx.live.stamp(stamped.seq, stamped.mark));
        match &stamped.event {
            UnitEvent::Case(c) => {
                let recorded = self
                    .ctx
                    .disclosures
                    .record(&self.recipient, std::slice::from_ref(c), Channel::Stream)
                    .await;
                match recorded.map(|r| r.into_iter().next()) {
                    Ok(Some(receipt)) => self.out.push_back(case_event(c, &receipt, cursor)),
                    Ok(None) | Err(_) => {
                        // Fail closed: not recorded, not sent. The terminal reconnects and
                        // gets a 503 until the log is back.
                        tracing::error!("stream closed: the audit log refused a disclosure");
                        self.done = true;
                    }
                }
            }
            UnitEvent::Withdraw { reference } => self.out.push_back(withdraw_event(reference, cursor)),
            UnitEvent::Alert(c) => {
                // A disclosure like a case event: recorded durably before it leaves.
                let recorded = self
                    .ctx
                    .disclosures
                    .record(&self.recipient, std::slice::from_ref(c), Channel::Alert)
                    .await;
                match recorded.map(|r| r.into_iter().next()) {
                    Ok(Some(receipt)) => self.out.push_back(alert_event(c, &receipt, cursor)),
                    Ok(None) | Err(_) => {
                        tracing::error!("stream closed: the audit log refused an alert");
                        self.done = true;
                    }
                }
            }
            UnitEvent::AlertEnded { reference } => self.out.push_back(alert_ended_event(reference, cursor)),
        }
    }
}

/// `POST /v1/terminal/session`: with the officer's bearer token, sets it as the session cookie
/// the web terminal's `EventSource` and `fetch` calls carry. Expires with the token.
async fn sign_in(State(ctx): State<Ctx>, caller: TerminalCaller, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b','))
        .ok_or_else(|| ApiError::Unauthorized("sign in with the token in the Authorization header".into()))?;
    let max_age = (caller.token_expires_at - ctx.clock.now()).whole_seconds().max(0);
    let cookie = format!("{OFFICER_COOKIE}={token}; Path=/v1/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict");
    let cookie = HeaderValue::from_str(&cookie).map_err(|_| ApiError::Internal("cookie".into()))?;
    let body = session_body(&ctx, &caller);
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `GET /v1/terminal/session`: who is signed in on this terminal (by the session cookie), as
/// `POST` answers it, so that a reloaded page shows its station and officer again.
async fn session(State(ctx): State<Ctx>, caller: TerminalCaller) -> axum::Json<serde_json::Value> {
    axum::Json(session_body(&ctx, &caller))
}

/// The officer, the station as the registry names it and the codes of its own area (管内),
/// and when the token expires.
fn session_body(ctx: &Ctx, caller: &TerminalCaller) -> serde_json::Value {
    let world = ctx.policy();
    let unit = world.registry.unit(&caller.station_id);
    serde_json::json!({
        "officer": caller.officer,
        "station": caller.station_id,
        "station_name": unit.map(|u| u.name.as_str()),
        "area": unit.map(|u| u.municipalities.iter().map(ToString::to_string).collect::<Vec<_>>()),
        "expires_at": caller.token_expires_at.unix_timestamp(),
    })
}

async fn sign_out() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cgc_officer=; Path=/v1/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"),
    );
    response
}
