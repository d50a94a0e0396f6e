//! `PUT /v1/cases/{case_id}`: a CGC pushes a case version (SPEC §5). The answer comes only once
//! the version is durable; nothing already accepted is lost or overwritten by an older one.
//! A center also reads back its own cases (`GET /v1/centers/{center_id}/cases`) and who it is
//! (`GET /v1/center/session`), for the CGC's page.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde::Serialize;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{CenterCaller, UrlParams, refuse};
use crate::cases::OwnCase;
use crate::ingest::IngestError;

/// The default and the largest page of `GET /v1/centers/{center_id}/cases`.
pub const DEFAULT_CASES_PAGE: u64 = 50;
pub const MAX_CASES_PAGE: u64 = 500;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/cases/{case_id}", put(put_case))
        .route("/v1/centers/{center_id}/cases", get(own_cases))
        .route("/v1/center/session", get(session))
}

/// The calling center as the registry names it, and the registry's police stations by id (the
/// names its disclosures' `station` refers to).
#[derive(Debug, Serialize)]
pub struct CenterSession {
    pub center_id: String,
    pub name: Option<String>,
    pub stations: std::collections::BTreeMap<String, String>,
}

async fn session(State(ctx): State<Ctx>, caller: CenterCaller) -> Json<CenterSession> {
    let world = ctx.policy();
    Json(CenterSession {
        name: world.registry.center(&caller.center_id).map(|c| c.name.clone()),
        center_id: caller.center_id,
        stations: world.registry.units().map(|u| (u.id.clone(), u.name.clone())).collect(),
    })
}

#[derive(Debug, Serialize)]
pub struct OwnCases {
    pub center_id: String,
    /// The most recently stored first.
    pub cases: Vec<OwnCase>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// `GET /v1/centers/{center_id}/cases`: the calling center's own cases, as stored (not a
/// disclosure: the data is its own). Another center's list is refused and the refusal recorded.
async fn own_cases(
    State(ctx): State<Ctx>,
    caller: CenterCaller,
    UrlParams(center_id): UrlParams<String>,
    route: MatchedPath,
    RawQuery(query): RawQuery,
) -> Result<Json<OwnCases>, ApiError> {
    if caller.center_id != center_id {
        return Err(refuse(
            &ctx,
            format!("GET {}", route.as_str()),
            &caller.peer.principal,
            None,
            ApiError::Forbidden("a center may list only its own cases".into()),
        ));
    }
    let [after, limit] = super::audit::params(query.as_deref(), ["after", "limit"])?;
    let limit = match limit {
        None => DEFAULT_CASES_PAGE,
        Some(0) => return Err(ApiError::invalid("?limit", "limit must be at least 1")),
        Some(n) => n.min(MAX_CASES_PAGE),
    };
    let before = after
        .map(|a| i64::try_from(a).map_err(|_| ApiError::invalid("?after", "not a cursor this list gave")))
        .transpose()?;
    let rows = ctx
        .store
        .center_cases(&center_id, before, u32::try_from(limit).unwrap_or(u32::MAX))
        .await?;
    let next_after = rows
        .last()
        .filter(|_| rows.len() as u64 == limit)
        .and_then(|r| u64::try_from(r.seq).ok());
    Ok(Json(OwnCases {
        center_id,
        cases: rows
            .into_iter()
            .map(|r| OwnCase::from_body(r.case_id, r.version, &r.body))
            .collect(),
        next_after,
    }))
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
