//! What a CGC's case system does besides pushing cases: `GET /v1/centers/{center_id}/stream`
//! (Server-Sent Events of police responses, terminals opening its cases and its transfers),
//! `GET /v1/centers/{center_id}/responses?after=<id>`, and case transfers
//! (`POST /v1/cases/{case_id}/transfer`, `GET /v1/centers/{center_id}/transfers`,
//! `POST /v1/transfers/{transfer_id}/accept|decline`). Only the certificate of a center may read
//! its own; any other center is refused (403, recorded). The events are stored in order
//! (`centers::Centers`), so a stream resumes from its `Last-Event-ID` across restarts and
//! instances.
//!
//! - `event: response` — a police response (`data` as in the list of responses);
//! - `event: opened` — a terminal opened one of the center's cases;
//! - `event: transfer` — a transfer from or to the center was requested, accepted or declined;
//! - `event: synced` — the catch-up after `Last-Event-ID` is complete (a stream opened without
//!   one starts at the newest event);
//! - `: hb` comment lines as heartbeats.
//!
//! Every event, `synced` included, carries `id:`, the cursor to resume from.

use std::collections::VecDeque;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Query, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::watch;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{CenterCaller, UrlParams, refuse};
use crate::audit::Actor;
use crate::centers::transfers::{TransferError, TransferView};
use crate::centers::{CenterEvent, PAGE};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/centers/{center_id}/stream", get(stream))
        .route("/v1/centers/{center_id}/responses", get(responses))
        .route("/v1/centers/{center_id}/transfers", get(transfers))
        .route("/v1/cases/{case_id}/transfer", post(request_transfer))
        .route("/v1/transfers/{transfer_id}/accept", post(accept))
        .route("/v1/transfers/{transfer_id}/decline", post(decline))
}

fn center_actor(caller: &CenterCaller) -> Actor {
    Actor {
        principal: caller.peer.principal.to_string(),
        subject: None,
    }
}

async fn request_transfer(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    UrlParams(case_id): UrlParams<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<TransferView>), ApiError> {
    let body = body.map_err(|e| super::cases::body_error(&ctx, e))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::invalid("", "the body must be a JSON object"))?;
    let Some(members) = doc.as_object() else {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    };
    if members.keys().any(|k| k != "to_center") {
        return Err(ApiError::invalid("", "only to_center is accepted"));
    }
    let to_center = members
        .get("to_center")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| ApiError::invalid("/to_center", "is required (a center id)"))?;
    let view = ctx
        .transfers
        .request(
            &ctx.policy().registry,
            center_actor(&caller),
            &caller.center_id,
            &case_id,
            to_center,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn transfers(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    UrlParams(center_id): UrlParams<String>,
    route: MatchedPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    own(&ctx, &caller, &center_id, &route)?;
    let pending = ctx.transfers.pending(&center_id).await?;
    Ok(Json(serde_json::json!({ "transfers": pending })))
}

async fn accept(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    UrlParams(transfer_id): UrlParams<String>,
    route: MatchedPath,
) -> Result<Json<TransferView>, ApiError> {
    decide(&ctx, &caller, &transfer_id, &route, true).await
}

async fn decline(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    UrlParams(transfer_id): UrlParams<String>,
    route: MatchedPath,
) -> Result<Json<TransferView>, ApiError> {
    decide(&ctx, &caller, &transfer_id, &route, false).await
}

/// Only the receiving center decides; the sending one is refused (403, recorded), any other
/// center gets 404 like an unknown transfer.
async fn decide(
    ctx: &Ctx,
    caller: &CenterCaller,
    transfer_id: &str,
    route: &MatchedPath,
    accept: bool,
) -> Result<Json<TransferView>, ApiError> {
    let id = transfer_id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && transfer_id.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(ApiError::NotFound)?;
    match ctx
        .transfers
        .decide(center_actor(caller), &caller.center_id, id, accept)
        .await
    {
        Ok(view) => Ok(Json(view)),
        Err(TransferError::NotReceiver) => Err(refuse(
            ctx,
            format!("POST {}", route.as_str()),
            &caller.peer.principal,
            None,
            ApiError::Forbidden("only the receiving center accepts or declines a transfer".into()),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A center reads only its own events: another center's id is a refusal, recorded.
fn own(ctx: &Ctx, caller: &CenterCaller, center_id: &str, route: &MatchedPath) -> Result<(), ApiError> {
    if caller.center_id == center_id {
        return Ok(());
    }
    Err(refuse(
        ctx,
        format!("GET {}", route.as_str()),
        &caller.peer.principal,
        None,
        ApiError::Forbidden("a center may read only its own events".into()),
    ))
}

#[derive(Debug, Deserialize)]
struct Params {
    after: Option<String>,
}

async fn responses(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    UrlParams(center_id): UrlParams<String>,
    route: MatchedPath,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    own(&ctx, &caller, &center_id, &route)?;
    // A query that does not deserialize (`after` given twice) is refused like a bad value.
    let Ok(Query(params)) = params else {
        return Err(ApiError::invalid(
            "/after",
            "must be given once, a response id (a non-negative integer)",
        ));
    };
    let after = match params.after {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0 && s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| ApiError::invalid("/after", "must be a response id (a non-negative integer)"))?,
    };
    let page = ctx.centers.responses_after(&center_id, after).await?;
    let last = page.last().map_or(after, |e| e.seq);
    let mut out = String::from("{\"responses\":[");
    for (i, e) in page.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.data);
    }
    out.push_str(&format!("],\"next_after\":{last}}}"));
    let mut response = out.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

async fn stream(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    UrlParams(center_id): UrlParams<String>,
    route: MatchedPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    own(&ctx, &caller, &center_id, &route)?;
    // Subscribed before anything is read: an event appended meanwhile wakes the stream, which
    // reads by cursor from the store and so misses nothing.
    let appended = ctx.centers.watch();
    let cursor = match headers.get("last-event-id") {
        None => ctx.centers.head().await?,
        // A malformed cursor is refused rather than taken for "from now": the center would
        // otherwise miss what was stored since its last event.
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be the id of an event (a non-negative integer)"))?,
    };
    let mut heartbeat = tokio::time::interval(ctx.live.settings().heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    // Events of other instances wake it when the follower finds them; this is the fallback.
    let mut poll = tokio::time::interval(ctx.centers.poll());
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The stream reads when it opens: its first look of its own is one interval later.
    poll.reset();
    let state = CenterStream {
        ctx: ctx.clone(),
        center_id,
        cursor,
        synced: false,
        out: VecDeque::new(),
        appended,
        heartbeat,
        poll: ctx.centers.shared().then_some(poll),
        done: false,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        s.next_chunk().await.map(|b| (Ok::<_, std::convert::Infallible>(b), s))
    });
    Ok(super::stream::event_stream(body))
}

struct CenterStream {
    ctx: Ctx,
    center_id: String,
    /// The last event sent (or the newest one when the stream opened without a cursor).
    cursor: i64,
    synced: bool,
    out: VecDeque<Bytes>,
    appended: watch::Receiver<i64>,
    heartbeat: tokio::time::Interval,
    /// Only on a store other instances write to.
    poll: Option<tokio::time::Interval>,
    done: bool,
}

fn event(e: &CenterEvent) -> Bytes {
    Bytes::from(format!("event: {}\nid: {}\ndata: {}\n\n", e.kind, e.seq, e.data))
}

impl CenterStream {
    /// Reads what was stored after the cursor; `false` if the store cannot answer (the stream
    /// then closes and the center resumes from its cursor).
    async fn read(&mut self) -> bool {
        loop {
            match self.ctx.centers.events_after(&self.center_id, self.cursor).await {
                Ok(page) => {
                    let full = page.len() == PAGE as usize;
                    for e in &page {
                        self.cursor = e.seq;
                        self.out.push_back(event(e));
                    }
                    if !full {
                        return true;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "center stream closed: the store cannot be read");
                    return false;
                }
            }
        }
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.out.pop_front() {
                return Some(b);
            }
            if self.done {
                return None;
            }
            if !self.synced {
                if !self.read().await {
                    self.done = true;
                    continue;
                }
                self.synced = true;
                self.out.push_back(Bytes::from(format!(
                    "event: synced\nid: {}\ndata: {{}}\n\n",
                    self.cursor
                )));
                continue;
            }
            let poll = async {
                match self.poll.as_mut() {
                    Some(p) => {
                        p.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let wake = tokio::select! {
                changed = self.appended.changed() => {
                    // The service is gone: the gateway is stopping.
                    self.done |= changed.is_err();
                    !self.done
                }
                () = poll => true,
                _ = self.heartbeat.tick() => {
                    self.out.push_back(Bytes::from_static(b": hb\n\n"));
                    false
                }
            };
            if wake && !self.read().await {
                self.done = true;
            }
        }
    }
}
