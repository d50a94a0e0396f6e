//! Terminal views: exactly the fields the agreement allows this terminal's station, each
//! disclosed case written to the audit log before the response leaves, and carrying its
//! receipt. A case the terminal may not see is indistinguishable from one that does not exist.
//! The rules live in `crate::views::Disclosures`.

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{TerminalCaller, UrlParams, refuse};
use crate::centers::{NewResponse, ResponseReceipt};
use crate::views::DisclosureError;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/terminal/reference", get(reference))
        .route("/v1/terminal/cases", get(list_cases))
        .route("/v1/terminal/cases/{case_ref}", get(get_case))
        .route("/v1/terminal/cases/{case_ref}/print", post(print_case))
        .route("/v1/terminal/cases/{case_ref}/responses", post(post_response))
}

/// A JSON body the disclosure service wrote.
fn json(body: String) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn list_cases(State(ctx): State<Ctx>, caller: TerminalCaller) -> Result<Response, ApiError> {
    Ok(json(ctx.disclosures.list(&caller.recipient()).await?))
}

/// `GET /v1/terminal/cases/{ref}`: an officer opens a case (its full view, channel `detail`).
async fn get_case(
    State(ctx): State<Ctx>,
    caller: TerminalCaller,
    UrlParams(case_ref): UrlParams<String>,
    route: MatchedPath,
) -> Result<Response, ApiError> {
    let answer = ctx.disclosures.detail(&caller.recipient(), &case_ref).await;
    opened(&ctx, &caller, "GET", &route, answer)
}

/// `POST /v1/terminal/cases/{ref}/print`: the detail's body for the print layout, recorded as
/// its own disclosure (channel `print`) before it is answered.
async fn print_case(
    State(ctx): State<Ctx>,
    caller: TerminalCaller,
    UrlParams(case_ref): UrlParams<String>,
    route: MatchedPath,
) -> Result<Response, ApiError> {
    let answer = ctx.disclosures.print(&caller.recipient(), &case_ref).await;
    opened(&ctx, &caller, "POST", &route, answer)
}

/// An opened case's answer; a case not in the view is a recorded 404, like one that does not
/// exist.
fn opened(
    ctx: &Ctx,
    caller: &TerminalCaller,
    method: &str,
    route: &MatchedPath,
    answer: Result<String, DisclosureError>,
) -> Result<Response, ApiError> {
    match answer {
        Ok(body) => Ok(json(body)),
        Err(DisclosureError::NotFound) => Err(refuse(
            ctx,
            format!("{method} {}", route.as_str()),
            &caller.peer.principal,
            Some(caller.officer.clone()),
            ApiError::NotFound,
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /v1/terminal/cases/{ref}/responses`: the police's response to a case this terminal may
/// see now, for the owning center, signed into the audit log before it is stored. A case the
/// terminal may not see is a 404 exactly like a case that does not exist (checked before the
/// body, so a bad body reveals nothing either).
async fn post_response(
    State(ctx): State<Ctx>,
    caller: TerminalCaller,
    UrlParams(case_ref): UrlParams<String>,
    route: MatchedPath,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ResponseReceipt>), ApiError> {
    let to = caller.recipient();
    let case = match ctx.disclosures.resolve(&to, &case_ref) {
        Ok(case) => case,
        Err(DisclosureError::NotFound) => {
            return Err(refuse(
                &ctx,
                format!("POST {}", route.as_str()),
                &caller.peer.principal,
                Some(caller.officer.clone()),
                ApiError::NotFound,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let body = body.map_err(|e| super::cases::body_error(&ctx, e))?;
    let response = NewResponse::parse(&body, ctx.clock.now())?;
    let receipt = ctx.centers.record_response(&to, &case.case.record, &response).await?;
    Ok((StatusCode::CREATED, Json(receipt)))
}

/// `GET /v1/terminal/reference`: the registry's names and numbers a terminal's screen shows
/// next to case data (each center's Japanese name and its office-hours and after-hours
/// numbers, the names of municipality codes). Registry data only, no case data: nothing here
/// is a disclosure.
async fn reference(State(ctx): State<Ctx>, _caller: TerminalCaller) -> axum::Json<serde_json::Value> {
    let world = ctx.policy();
    let registry = &world.registry;
    let centers: serde_json::Map<String, serde_json::Value> = registry
        .centers()
        .map(|c| {
            let body = serde_json::json!({
                "name": c.name,
                "phone": c.phone,
                "after_hours_phone": c.after_hours_phone,
            });
            (c.id.clone(), body)
        })
        .collect();
    let municipalities: serde_json::Map<String, serde_json::Value> = registry
        .municipalities()
        .map(|m| (m.code.to_string(), m.name.clone().into()))
        .collect();
    axum::Json(serde_json::json!({ "centers": centers, "municipalities": municipalities }))
}
