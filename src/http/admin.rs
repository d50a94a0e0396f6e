//! The admin API of sharing agreements (SPEC §6). Handlers only extract and map; the rules
//! live in `crate::agreements`. Every 403 is recorded in the audit log as a refusal.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Serialize;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{AdminCaller, UrlParams, refuse};
use crate::agreements::{
    AgreementDocument, AgreementError, DiffAnswer, ProviderState, SimulateRequest, Simulated, Submitted,
};
use crate::cases::validate::FieldError;
use crate::policy::ConsentAction;
use crate::revocations::{Revocation, RevocationError, Revoked, Target};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/admin/session", get(session))
        .route("/v1/admin/agreements", get(list_agreements))
        .route("/v1/admin/revocations", get(list_revocations))
        .route(
            "/v1/admin/agreements/{agreement_id}",
            get(get_agreement).put(put_agreement),
        )
        .route(
            "/v1/admin/agreements/{agreement_id}/diff",
            get(diff_versions).post(diff_proposal),
        )
        .route("/v1/admin/simulate", post(simulate))
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

/// Who is signed in, as the console shows it and chooses its buttons by.
#[derive(Debug, Serialize)]
pub struct AdminSession {
    pub administrator: String,
    /// A prefecture code (`"14"`) or a city's municipality code (`"141003"`).
    pub jurisdiction: String,
    /// `prefecture`, `designated_city`, `cgc_city`, or `unknown` for a jurisdiction the
    /// registry does not name.
    pub kind: &'static str,
    pub name: Option<String>,
    /// Whether this administrator may revoke terminals and officers (and list revocations).
    pub may_revoke: bool,
}

async fn session(State(ctx): State<Ctx>, caller: AdminCaller) -> Json<AdminSession> {
    let world = ctx.policy();
    let operator = world.registry.operator(&caller.jurisdiction);
    Json(AdminSession {
        may_revoke: crate::revocations::may_revoke(&world, &caller.administrator()),
        administrator: caller.subject,
        jurisdiction: caller.jurisdiction,
        kind: operator.map_or("unknown", |o| o.kind.as_str()),
        name: operator.map(|o| o.name.clone()),
    })
}

#[derive(Debug, Serialize)]
pub struct AgreementList {
    pub agreements: Vec<AgreementDocument>,
}

/// `GET /v1/admin/agreements`: every agreement the administrator may read.
async fn list_agreements(State(ctx): State<Ctx>, caller: AdminCaller) -> Result<Json<AgreementList>, ApiError> {
    let agreements = ctx.agreements.list(&caller.administrator()).await?;
    Ok(Json(AgreementList { agreements }))
}

#[derive(Debug, Serialize)]
pub struct RevocationList {
    pub revocations: Vec<Revocation>,
}

/// `GET /v1/admin/revocations`: the revocations in the store, for an administrator who may
/// revoke; anyone else is refused (recorded), as a revocation would be.
async fn list_revocations(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    route: MatchedPath,
) -> Result<Json<RevocationList>, ApiError> {
    match ctx
        .access
        .revocations
        .list(&ctx.policy(), &caller.administrator())
        .await
    {
        Ok(revocations) => Ok(Json(RevocationList { revocations })),
        Err(RevocationError::Forbidden(reason)) => Err(forbidden(&ctx, &caller, &route, "GET", reason)),
        Err(e) => Err(e.into()),
    }
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

/// The body, or the problem that says why it could not be read.
fn read_body(ctx: &Ctx, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::TooLarge {
            limit: ctx.requests.body_limit(),
        },
        _ => ApiError::invalid("", "the body could not be read"),
    })
}

/// The body as UTF-8 text, or the problem that says why not.
fn text_body(ctx: &Ctx, body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    String::from_utf8(read_body(ctx, body)?.to_vec()).map_err(|_| ApiError::PolicyInvalid {
        line: None,
        message: "body: the document is not UTF-8 text".into(),
    })
}

/// `GET /v1/admin/agreements/{id}/diff?from=<v>&to=<v>`: two stored versions compared over
/// every combination (`crate::policy::diff`).
async fn diff_versions(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    UrlParams(agreement_id): UrlParams<String>,
    route: MatchedPath,
    RawQuery(query): RawQuery,
) -> Result<Json<DiffAnswer>, ApiError> {
    let [from, to] = super::audit::params(query.as_deref(), ["from", "to"])?;
    let version = |v: Option<u64>, name: &str| {
        v.and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v >= 1)
            .ok_or_else(|| ApiError::invalid(&format!("?{name}"), "give a stored version number"))
    };
    let (from, to) = (version(from, "from")?, version(to, "to")?);
    ctx.agreements
        .diff_versions(&caller.administrator(), &agreement_id, from, to)
        .map(Json)
        .map_err(|e| map_refused(&ctx, &caller, &route, "GET", e))
}

/// `POST /v1/admin/agreements/{id}/diff`: a proposed version (the TOML a `PUT` would submit)
/// against the latest stored version. Nothing is stored or refused for what it grants.
async fn diff_proposal(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    UrlParams(agreement_id): UrlParams<String>,
    route: MatchedPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DiffAnswer>, ApiError> {
    let text = text_body(&ctx, body)?;
    ctx.agreements
        .diff_proposal(&caller.administrator(), &agreement_id, &text)
        .map(Json)
        .map_err(|e| map_refused(&ctx, &caller, &route, "POST", e))
}

/// `POST /v1/admin/simulate`: `{"station_id", "terminal_no", "center_id", "case_id",
/// "document"?}` → what that terminal would see of the case, by field names only.
async fn simulate(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    route: MatchedPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Simulated>, ApiError> {
    let body = read_body(&ctx, body)?;
    let request = simulate_request(&body)?;
    ctx.agreements
        .simulate(&caller.administrator(), &request)
        .map(Json)
        .map_err(|e| map_refused(&ctx, &caller, &route, "POST", e))
}

/// The simulation's JSON body, every bad member named by pointer (never echoed).
fn simulate_request(body: &[u8]) -> Result<SimulateRequest, ApiError> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    };
    let mut errors = Vec::new();
    for key in map.keys() {
        if !["station_id", "terminal_no", "center_id", "case_id", "document"].contains(&key.as_str()) {
            errors.push(("/".to_owned() + key, "unknown member".to_owned()));
        }
    }
    let mut id = |name: &str| match map.get(name).and_then(serde_json::Value::as_str) {
        Some(s) if crate::text::is_identifier(s) => s.to_owned(),
        _ => {
            errors.push((
                format!("/{name}"),
                "must be an identifier ([A-Za-z0-9._-]{1,64})".to_owned(),
            ));
            String::new()
        }
    };
    let (station_id, center_id, case_id) = (id("station_id"), id("center_id"), id("case_id"));
    let terminal_no = map
        .get("terminal_no")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1);
    if terminal_no.is_none() {
        errors.push(("/terminal_no".into(), "must be a terminal number from 1".into()));
    }
    let document = match map.get("document") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(("/document".into(), "must be the TOML text of a draft version".into()));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid {
            detail: "the request has invalid fields".into(),
            errors: errors
                .into_iter()
                .map(|(pointer, message)| FieldError { pointer, message })
                .collect(),
        });
    }
    Ok(SimulateRequest {
        station_id,
        terminal_no: terminal_no.unwrap_or(1),
        center_id,
        case_id,
        document,
    })
}

async fn put_agreement(
    State(ctx): State<Ctx>,
    caller: AdminCaller,
    UrlParams(agreement_id): UrlParams<String>,
    route: MatchedPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let text = text_body(&ctx, body)?;
    ctx.agreements
        .submit(&caller.administrator(), &agreement_id, &text)
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
