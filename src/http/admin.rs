//! The admin API of sharing agreements (SPEC §6). Handlers only extract and map; the rules
//! live in `crate::agreements`. Every 403 is recorded in the audit log as a refusal.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{AdminCaller, UrlParams, refuse};
use crate::agreements::{AgreementDocument, AgreementError, ProviderState, Submitted};
use crate::policy::ConsentAction;
use crate::revocations::{RevocationError, Revoked, Target};

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
        .route(
            "/v1/admin/terminals/{station_id}/{terminal_no}/revoke",
            post(revoke_terminal),
        )
        .route("/v1/admin/officers/{officer_id}/revoke", post(revoke_officer))
}

/// `POST /v1/admin/terminals/{station_id}/{terminal_no}/revoke`: the terminal's open
/// connections are cut at once and every later request is refused.
async fn revoke_terminal(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    UrlParams((station_id, terminal_no)): UrlParams<(String, String)>,
    route: MatchedPath,
) -> Result<Json<Revoked>, ApiError> {
    let terminal_no = terminal_no
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::invalid("/terminal_no", "must be a terminal number from 1"))?;
    revoked(
        &ctx,
        &caller,
        &route,
        Target::Terminal {
            station_id,
            terminal_no,
        },
    )
    .await
}

/// `POST /v1/admin/officers/{officer_id}/revoke`: the officer's open streams end at once and
/// every later request with their token is refused, on any terminal.
async fn revoke_officer(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    UrlParams(subject): UrlParams<String>,
    route: MatchedPath,
) -> Result<Json<Revoked>, ApiError> {
    // The same rule as a token's `sub`: an officer no token could name is not revoked.
    if !crate::text::is_subject(&subject) {
        return Err(ApiError::invalid(
            "/officer_id",
            "must be an officer id as tokens name it",
        ));
    }
    revoked(&ctx, &caller, &route, Target::Officer { subject }).await
}

async fn revoked(
    ctx: &Ctx,
    caller: &AdminCaller,
    route: &MatchedPath,
    target: Target,
) -> Result<Json<Revoked>, ApiError> {
    match ctx
        .access
        .revocations
        .revoke(&ctx.policy(), &caller.administrator(), target)
        .await
    {
        Ok(r) => Ok(Json(r)),
        Err(RevocationError::Forbidden(reason)) => Err(forbidden(ctx, caller, route, "POST", reason)),
        Err(e) => Err(e.into()),
    }
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

/// Maps an agreement service error; a 403 is recorded as a refusal.
fn map_refused(ctx: &Ctx, caller: &AdminCaller, route: &MatchedPath, method: &str, e: AgreementError) -> ApiError {
    match e {
        AgreementError::Forbidden(reason) => forbidden(ctx, caller, route, method, reason),
        other => other.into(),
    }
}

async fn get_agreement(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    UrlParams(agreement_id): UrlParams<String>,
    route: MatchedPath,
) -> Result<Json<AgreementDocument>, ApiError> {
    ctx.agreements
        .describe(&caller.administrator(), &agreement_id)
        .await
        .map(Json)
        .map_err(|e| map_refused(&ctx, &caller, &route, "GET", e))
}

async fn put_agreement(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    UrlParams(agreement_id): UrlParams<String>,
    route: MatchedPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::TooLarge {
            limit: ctx.requests.body_limit(),
        },
        _ => ApiError::invalid("", "the body could not be read"),
    })?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::PolicyInvalid {
        line: None,
        message: "body: the document is not UTF-8 text".into(),
    })?;
    ctx.agreements
        .submit(&caller.administrator(), &agreement_id, text)
        .await
        .map(|s| (StatusCode::CREATED, Json(s)))
        .map_err(|r| map_refused(&ctx, &caller, &route, "PUT", r))
}

async fn provider_action(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    UrlParams((agreement_id, operator, action)): UrlParams<(String, String, String)>,
    route: MatchedPath,
) -> Result<Json<ProviderState>, ApiError> {
    let Some(action) = ConsentAction::parse(&action) else {
        return Err(ApiError::NotFound);
    };
    ctx.agreements
        .consent_step(&caller.administrator(), &agreement_id, &operator, action)
        .await
        .map(Json)
        .map_err(|r| map_refused(&ctx, &caller, &route, "POST", r))
}
