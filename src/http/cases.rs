//! `PUT /v1/cases/{case_id}`: a CGC pushes a case version (SPEC §5). The answer comes only once
//! the version is durable; nothing already accepted is lost or overwritten by an older one.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use serde::Serialize;

use super::error::ApiError;
use super::extract::CenterCaller;
use crate::app::Ctx;
use crate::cases::CurrentCase;
use crate::cases::record::CaseId;
use crate::cases::validate::{FieldError, parse_case_bytes};
use crate::store::{NewCase, PutOutcome};

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
    Path(case_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PutCaseResponse>), ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::TooLarge,
        _ => ApiError::invalid("", "the body could not be read"),
    })?;
    let case_id = CaseId::parse(&case_id).map_err(|m| ApiError::Invalid {
        detail: "the case id in the URL is invalid".into(),
        errors: vec![FieldError {
            pointer: "/case_id".into(),
            message: format!("URL case id {m}"),
        }],
    })?;
    let (_, record) = parse_case_bytes(&body).map_err(|errors| ApiError::Invalid {
        detail: format!("the case has {} invalid field(s)", errors.len()),
        errors,
    })?;
    if record.center_id.as_str() != caller.center_id {
        return Err(ApiError::Forbidden("a center may write only its own cases".into()));
    }
    if record.case_id != case_id {
        return Err(ApiError::invalid("/case_id", "does not match the case id in the URL"));
    }
    if ctx.policy().registry.center(record.center_id.as_str()).is_none() {
        return Err(ApiError::invalid("/center_id", "is not a center of the registry"));
    }
    let canonical = serde_json::to_string(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    let outcome = ctx
        .store
        .put_case(NewCase {
            center_id: record.center_id.as_str(),
            case_id: record.case_id.as_str(),
            version: record.version,
            body: &canonical,
            received_at: ctx.clock.now(),
        })
        .await?;
    let response = |outcome| PutCaseResponse {
        center_id: record.center_id.to_string(),
        case_id: record.case_id.to_string(),
        version: record.version,
        outcome,
    };
    match outcome {
        PutOutcome::Stored { seq } => {
            let answer = response("stored");
            let current = ctx.cases.upsert(CurrentCase { record, seq });
            // Acknowledged and durable: live streams may now show it.
            ctx.live.apply(crate::live::Change::Case(current));
            Ok((StatusCode::OK, Json(answer)))
        }
        PutOutcome::Identical => Ok((StatusCode::OK, Json(response("unchanged")))),
        PutOutcome::Conflict { stored_version } => Err(ApiError::VersionConflict { stored_version }),
    }
}
