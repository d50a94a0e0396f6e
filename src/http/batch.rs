//! `POST /v1/cases/batch`: a CGC imports a CSV file of cases from its legacy system
//! (`docs/batch-import.md`). The body is read, decoded and imported row by row as it arrives,
//! under its own size limit (`[limits] batch_body_bytes`) instead of `body_bytes` of every other
//! request; each stored row is durable before the answer, a JSON report of every row.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::BodyExt;

use super::cases::PutCaseResponse;
use super::context::Ctx;
use super::error::ApiError;
use super::extract::{CenterCaller, limit_per_certificate, refuse};
use crate::ingest::batch::decode::Charset;
use crate::ingest::batch::{BatchImport, Report};

pub const BATCH_PATH: &str = "/v1/cases/batch";

/// The batch route, with its own layers: it is merged after the router-wide body limits (which
/// would refuse a file above `body_bytes`) and so takes the per-certificate rate limit here, where a
/// whole file counts as one request.
pub fn routes(ctx: Ctx) -> Router<Ctx> {
    let body_bytes = ctx.requests.body_bytes;
    Router::new()
        .route(
            BATCH_PATH,
            // `batch` is a valid case id: its single push must still reach it, here, because
            // this static path shadows `/v1/cases/{case_id}`.
            post(import).put(put_case_named_batch),
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // For the `PUT`; the import reads its body as a stream and counts it itself.
        .layer(DefaultBodyLimit::max(body_bytes))
        .layer(axum::middleware::from_fn_with_state(ctx, limit_per_certificate))
}

async fn import(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    route: MatchedPath,
    headers: HeaderMap,
    mut body: Body,
) -> Result<Json<Report>, ApiError> {
    let charset = charset(&headers)?;
    let limit = ctx.batch_body_bytes;
    // Nothing of a body announced too large is read.
    if hyper::body::Body::size_hint(&body).lower() > limit {
        return Err(ApiError::TooLarge { limit });
    }
    let policy = ctx.policy();
    let mut batch = BatchImport::new(&ctx.ingest, &policy.registry, &caller.center_id, charset);
    let mut received: u64 = 0;
    let mut outcome = Ok(());
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // A stalled body is answered 408 by the connection layer; rows before it stay.
            outcome = Err(ApiError::invalid("", "the body could not be read"));
            break;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received = received.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if received > limit {
            outcome = Err(ApiError::TooLarge { limit });
            break;
        }
        if let Err(e) = batch.push(&data).await {
            outcome = Err(e.into());
            break;
        }
    }
    // Rows for another center are refused accesses, recorded like a refused `PUT` (repeats
    // become one entry with a count), whether or not the rest of the file went through.
    let mut forbidden = batch.report().forbidden;
    let result = match outcome {
        Ok(()) => batch.finish().await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    if let Ok(report) = &result {
        forbidden = report.forbidden;
    }
    for _ in 0..forbidden {
        refuse(
            &ctx,
            format!("POST {}", route.as_str()),
            &caller.peer.principal,
            None,
            ApiError::Forbidden("a center may write only its own cases".into()),
        );
    }
    result.map(Json)
}

/// The `charset` of a `text/csv` body: UTF-8 or Shift_JIS, named explicitly (a guess could
/// store mojibake).
fn charset(headers: &HeaderMap) -> Result<Charset, ApiError> {
    let unsupported = || {
        ApiError::UnsupportedMediaType(
            "send Content-Type: text/csv; charset=UTF-8 or text/csv; charset=Shift_JIS".into(),
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut parts = value.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("text/csv") {
        return Err(unsupported());
    }
    parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .and_then(|(_, label)| Charset::from_label(label))
        .ok_or_else(unsupported)
}

/// `PUT /v1/cases/batch`: the single push of the case whose id is `batch`.
async fn put_case_named_batch(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PutCaseResponse>), ApiError> {
    super::cases::push(&ctx, &caller, "batch", "/v1/cases/{case_id}", body).await
}
