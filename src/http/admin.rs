//! The admin API of sharing agreements (SPEC §6). Handlers only extract and map; the rules
//! live in `crate::agreements`. Every 403 is recorded in the audit log as a refusal.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::error::ApiError;
use super::extract::{AdminCaller, refuse};
use crate::agreements::{self, AgreementDocument, Denied, ProviderState, Refused, Submitted};
use crate::app::Ctx;
use crate::policy::ConsentAction;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/v1/admin/agreements/{agreement_id}",
            get(get_agreement).put(put_agreement),
        )
        .route(
            "/v1/admin/agreements/{agreement_id}/providers/{operator}/{action}",
            post(provider_action),
        )
}

fn forbidden(ctx: &Ctx, caller: &AdminCaller, route: &MatchedPath, method: &str, reason: String) -> ApiError {
    refuse(
        ctx,
        format!("{method} {}", route.as_str()),
        &caller.peer.principal,
        Some(caller.subject.clone()),
        ApiError::Forbidden(reason),
    )
}

fn map_refused(ctx: &Ctx, caller: &AdminCaller, route: &MatchedPath, method: &str, r: Refused) -> ApiError {
    match r {
        Refused::Forbidden(reason) => forbidden(ctx, caller, route, method, reason),
        Refused::Api(e) => e,
    }
}

async fn get_agreement(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    Path(agreement_id): Path<String>,
    route: MatchedPath,
) -> Result<Json<AgreementDocument>, ApiError> {
    match agreements::describe(&ctx, &caller, &agreement_id).await {
        Ok(doc) => Ok(Json(doc)),
        Err(Denied::NotFound) => Err(ApiError::NotFound),
        Err(Denied::Forbidden(reason)) => Err(forbidden(&ctx, &caller, &route, "GET", reason)),
    }
}

async fn put_agreement(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    Path(agreement_id): Path<String>,
    route: MatchedPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::TooLarge,
        _ => ApiError::invalid("", "the body could not be read"),
    })?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::PolicyInvalid {
        line: None,
        message: "body: the document is not UTF-8 text".into(),
    })?;
    agreements::submit(&ctx, &caller, &agreement_id, text)
        .await
        .map(|s| (StatusCode::CREATED, Json(s)))
        .map_err(|r| map_refused(&ctx, &caller, &route, "PUT", r))
}

async fn provider_action(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    Path((agreement_id, operator, action)): Path<(String, String, String)>,
    route: MatchedPath,
) -> Result<Json<ProviderState>, ApiError> {
    let Some(action) = ConsentAction::parse(&action) else {
        return Err(ApiError::NotFound);
    };
    agreements::consent_step(&ctx, &caller, &agreement_id, &operator, action)
        .await
        .map(Json)
        .map_err(|r| map_refused(&ctx, &caller, &route, "POST", r))
}
