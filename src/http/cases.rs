//! `PUT /v1/cases/{case_id}`: a CGC pushes a case version (SPEC §5). The answer comes only once
//! the version is durable; nothing already accepted is lost or overwritten by an older one.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::routing::put;
use serde::Serialize;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{CenterCaller, UrlParams, refuse};
use crate::ingest::IngestError;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/v1/cases/{case_id}", put(put_case))
}

#[derive(Debug, Serialize)]
pub struct PutCaseResponse {
    pub center_id: String,
    pub case_id: String,
    pub version: u64,
    /// `stored`, or `unchanged` for an identical re-push.
    pub outcome: &'static str,
}

async fn put_case(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    UrlParams(case_id): UrlParams<String>,
    route: MatchedPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PutCaseResponse>), ApiError> {
    push(&ctx, &caller, &case_id, route.as_str(), body).await
}

/// A JSON body that could not be read: over the limit (413), or unreadable (400).
pub(super) fn body_error(ctx: &Ctx, e: BytesRejection) -> ApiError {
    match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::TooLarge {
            limit: ctx.requests.body_limit(),
        },
        _ => ApiError::invalid("", "the body could not be read"),
    }
}

/// The push of `case_id` by `caller`, answered once durable; `route` names the request in a
/// recorded refusal.
pub(super) async fn push(
    ctx: &Ctx,
    caller: &CenterCaller,
    case_id: &str,
    route: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PutCaseResponse>), ApiError> {
    let body = body.map_err(|e| body_error(ctx, e))?;
    match ctx
        .ingest
        .push(&ctx.policy().registry, &caller.center_id, case_id, &body)
        .await
    {
        Ok((record, outcome)) => Ok((
            StatusCode::OK,
            Json(PutCaseResponse {
                center_id: record.center_id.to_string(),
                case_id: record.case_id.to_string(),
                version: record.version,
                outcome: outcome.as_str(),
            }),
        )),
        // A refused access like any other: recorded, naming the caller and never the case.
        Err(IngestError::OtherCenter) => Err(refuse(
            ctx,
            format!("PUT {route}"),
            &caller.peer.principal,
            None,
            ApiError::Forbidden("a center may write only its own cases".into()),
        )),
        Err(e) => Err(e.into()),
    }
}
