//! One error type for the HTTP layer, answered as RFC 9457 `application/problem+json`.
//! Client errors say what is wrong; internal errors are logged and answered generically.
//! No message ever carries a value from a case.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::cases::validate::FieldError;
use crate::ingest::batch::columns::ColumnError;

/// How long a client should wait before retrying while the audit log or the store cannot write.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Invalid { detail: String, errors: Vec<FieldError> },
    /// A batch file refused as a whole: its header, by column name (never a cell's value).
    #[error("invalid batch file")]
    InvalidBatch { detail: String, errors: Vec<ColumnError> },
    /// A body in a media type or charset the endpoint does not take.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The bearer token is past its `exp`: a distinct type, so that a screen can say "sign in
    /// again" rather than "refused".
    #[error("the token has expired")]
    TokenExpired,
    /// An administrator revoked the officer named by the token.
    #[error("this officer has been revoked")]
    OfficerRevoked,
    /// An administrator revoked the terminal's certificate.
    #[error("this terminal has been revoked")]
    TerminalRevoked,
    #[error("not found")]
    NotFound,
    /// The route exists but not for this method; axum adds the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request names a host this gateway does not serve (RFC 9110 §15.5.20).
    #[error("misdirected request: {0}")]
    Misdirected(String),
    #[error("conflict with stored version {stored_version}")]
    VersionConflict { stored_version: u64 },
    #[error("ambiguous case reference")]
    Ambiguous { refs: Vec<String> },
    /// A body above the limit (`[limits] body_bytes`, or `batch_body_bytes` for an import).
    #[error("payload too large")]
    TooLarge { limit: u64 },
    /// Header fields above `[limits] header_count` or `header_bytes`.
    #[error("request header fields too large: {0}")]
    HeadersTooLarge(String),
    /// The request body stopped arriving.
    #[error("request body timed out")]
    RequestTimeout,
    #[error("rate limited")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("audit log unavailable")]
    AuditUnavailable,
    /// The store cannot write now (a full disk, an I/O error): nothing was acknowledged.
    #[error("store unavailable")]
    StoreUnavailable,
    #[error("internal error: {0}")]
    Internal(String),
    /// A policy document that cannot be used: `file:line: message` of the policy layer.
    #[error("invalid policy document")]
    PolicyInvalid { line: Option<usize>, message: String },
    /// A change that contradicts the stored state (a consent step from the wrong state, an
    /// agreement version not above the latest).
    #[error("conflict: {detail}")]
    StateConflict {
        detail: String,
        current_state: Option<String>,
        latest_version: Option<u32>,
    },
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ProblemField<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_version: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    candidates: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_version: Option<u32>,
}

/// One offending field (a JSON pointer) or, for a batch file, one column.
#[derive(Serialize)]
struct ProblemField<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pointer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<&'a str>,
    detail: &'a str,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } | Self::InvalidBatch { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized(_) | Self::TokenExpired | Self::OfficerRevoked => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::TerminalRevoked => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::VersionConflict { .. } | Self::Ambiguous { .. } => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AuditUnavailable | Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::PolicyInvalid { .. } => StatusCode::BAD_REQUEST,
            Self::StateConflict { .. } => StatusCode::CONFLICT,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::Invalid { .. } => ("invalid-request", "The request is invalid"),
            Self::InvalidBatch { .. } => ("invalid-batch", "The batch file cannot be imported"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "The body's media type is not accepted"),
            Self::Unauthorized(_) => ("unauthorized", "Authentication required"),
            Self::Forbidden(_) => ("forbidden", "Not allowed for this principal"),
            Self::TokenExpired => ("token-expired", "The token has expired; sign in again"),
            Self::OfficerRevoked => ("officer-revoked", "This officer has been revoked"),
            Self::TerminalRevoked => ("terminal-revoked", "This terminal has been revoked"),
            Self::NotFound => ("not-found", "No such resource"),
            Self::MethodNotAllowed => ("method-not-allowed", "The resource does not support this method"),
            Self::Misdirected(_) => ("misdirected", "The request is not for this gateway"),
            Self::VersionConflict { .. } => ("version-conflict", "A different case version is already stored"),
            Self::Ambiguous { .. } => ("ambiguous-case", "The case id names several visible cases"),
            Self::TooLarge { .. } => ("too-large", "The request body is too large"),
            Self::HeadersTooLarge(_) => ("header-fields-too-large", "The request's header fields are too large"),
            Self::RequestTimeout => ("request-timeout", "The request body stopped arriving"),
            Self::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
            Self::AuditUnavailable => (
                "audit-unavailable",
                "The audit log cannot record; nothing was disclosed",
            ),
            Self::StoreUnavailable => (
                "store-unavailable",
                "The gateway cannot store anything now; nothing was accepted or disclosed",
            ),
            Self::Internal(_) => ("internal", "Internal error"),
            Self::PolicyInvalid { .. } => ("invalid-policy", "The policy document is invalid"),
            Self::StateConflict { .. } => ("state-conflict", "The change conflicts with the current state"),
        }
    }

    pub fn invalid(pointer: &str, detail: &str) -> Self {
        Self::Invalid {
            detail: "the request has an invalid field".into(),
            errors: vec![FieldError {
                pointer: pointer.into(),
                message: detail.into(),
            }],
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (slug, title) = self.slug_and_title();
        let mut problem = Problem {
            kind: format!("urn:cgc-gateway:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            stored_version: None,
            candidates: Vec::new(),
            line: None,
            current_state: None,
            latest_version: None,
        };
        match &self {
            Self::Invalid { detail, errors } => {
                problem.detail = Some(detail.clone());
                problem.errors = errors
                    .iter()
                    .map(|e| ProblemField {
                        pointer: Some(&e.pointer),
                        column: None,
                        detail: &e.message,
                    })
                    .collect();
            }
            Self::InvalidBatch { detail, errors } => {
                problem.detail = Some(detail.clone());
                problem.errors = errors
                    .iter()
                    .map(|e| ProblemField {
                        pointer: None,
                        column: e.column.as_deref(),
                        detail: &e.detail,
                    })
                    .collect();
            }
            Self::Unauthorized(d)
            | Self::Forbidden(d)
            | Self::Misdirected(d)
            | Self::UnsupportedMediaType(d)
            | Self::HeadersTooLarge(d) => {
                problem.detail = Some(d.clone());
            }
            Self::VersionConflict { stored_version } => {
                problem.detail = Some(format!("version {stored_version} is stored; push a higher version"));
                problem.stored_version = Some(*stored_version);
            }
            Self::Ambiguous { refs } => {
                problem.detail = Some("use one of the qualified references".into());
                problem.candidates = refs.clone();
            }
            Self::TooManyRequests { retry_after_secs } => {
                problem.detail = Some(format!("retry after {retry_after_secs} s"));
            }
            Self::Internal(what) => {
                tracing::error!(error = %what, "internal error");
            }
            Self::AuditUnavailable | Self::StoreUnavailable => {
                problem.detail = Some(format!("retry after {UNAVAILABLE_RETRY_SECS} s"));
            }
            Self::TooLarge { limit } => {
                problem.detail = Some(format!("the body is larger than {limit} bytes"));
            }
            Self::NotFound
            | Self::MethodNotAllowed
            | Self::RequestTimeout
            | Self::TokenExpired
            | Self::OfficerRevoked
            | Self::TerminalRevoked => {}
            Self::PolicyInvalid { line, message } => {
                problem.detail = Some(message.clone());
                problem.line = *line;
            }
            Self::StateConflict {
                detail,
                current_state,
                latest_version,
            } => {
                problem.detail = Some(detail.clone());
                problem.current_state.clone_from(current_state);
                problem.latest_version = *latest_version;
            }
        }
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            // RFC 6750 §3: every 401 names the scheme.
            Self::Unauthorized(_) | Self::TokenExpired | Self::OfficerRevoked => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Self::TooManyRequests { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            Self::AuditUnavailable | Self::StoreUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_SECS));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> Self {
        tracing::error!(error = %e, "audit log refused an entry");
        ApiError::AuditUnavailable
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            tracing::error!(error = %e, "the store refused a write; answering 503");
            ApiError::StoreUnavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<crate::agreements::AgreementError> for ApiError {
    fn from(e: crate::agreements::AgreementError) -> Self {
        use crate::agreements::AgreementError as E;
        match e {
            E::NotFound => ApiError::NotFound,
            E::Forbidden(reason) => ApiError::Forbidden(reason),
            E::Invalid { line, message } => ApiError::PolicyInvalid { line, message },
            E::Conflict {
                detail,
                current_state,
                latest_version,
            } => ApiError::StateConflict {
                detail,
                current_state,
                latest_version,
            },
            E::Policy(e) => ApiError::Internal(e.to_string()),
            E::Audit(e) => e.into(),
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::views::DisclosureError> for ApiError {
    fn from(e: crate::views::DisclosureError) -> Self {
        use crate::views::DisclosureError as E;
        match e {
            E::NotFound => ApiError::NotFound,
            E::Ambiguous(refs) => ApiError::Ambiguous { refs },
            E::Audit(e) => e.into(),
        }
    }
}

impl From<crate::revocations::RevocationError> for ApiError {
    fn from(e: crate::revocations::RevocationError) -> Self {
        use crate::revocations::RevocationError as E;
        match e {
            E::Forbidden(reason) => ApiError::Forbidden(reason),
            E::NotFound => ApiError::NotFound,
            E::Audit(e) => e.into(),
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError as E;
        match e {
            E::Invalid { detail, errors } => ApiError::Invalid { detail, errors },
            E::OtherCenter => ApiError::Forbidden(e.to_string()),
            E::Conflict { stored_version } => ApiError::VersionConflict { stored_version },
            E::Transferred { .. } => ApiError::StateConflict {
                detail: "the case was transferred to another center, which pushes it now".into(),
                current_state: Some("transferred".into()),
                latest_version: None,
            },
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::access::Denied> for ApiError {
    fn from(e: crate::access::Denied) -> Self {
        use crate::access::Denied as D;
        match e {
            D::RateLimited { retry_after_secs } => ApiError::TooManyRequests { retry_after_secs },
            D::TerminalRevoked => ApiError::TerminalRevoked,
            D::OfficerRevoked => ApiError::OfficerRevoked,
        }
    }
}

impl From<crate::follow::FollowError> for ApiError {
    fn from(e: crate::follow::FollowError) -> Self {
        match e {
            crate::follow::FollowError::Store(e) => e.into(),
            crate::follow::FollowError::Agreements(e) => e.into(),
        }
    }
}

impl From<crate::ingest::batch::BatchError> for ApiError {
    fn from(e: crate::ingest::batch::BatchError) -> Self {
        use crate::ingest::batch::BatchError as E;
        match e {
            E::NoHeader | E::UndecodableHeader { .. } => ApiError::InvalidBatch {
                detail: e.to_string(),
                errors: Vec::new(),
            },
            E::Header { errors } => ApiError::InvalidBatch {
                detail: "the header row names unknown, repeated or missing columns; no row was imported".into(),
                errors,
            },
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::centers::CenterError> for ApiError {
    fn from(e: crate::centers::CenterError) -> Self {
        use crate::centers::CenterError as E;
        match e {
            E::Invalid(errors) => ApiError::Invalid {
                detail: "the response has invalid fields".into(),
                errors,
            },
            E::Audit(e) => e.into(),
            E::Store(e) => e.into(),
        }
    }
}

impl From<crate::centers::transfers::TransferError> for ApiError {
    fn from(e: crate::centers::transfers::TransferError) -> Self {
        use crate::centers::transfers::TransferError as E;
        match e {
            E::NoSuchCase | E::NotFound => ApiError::NotFound,
            E::BadCenter(why) => ApiError::invalid("/to_center", why),
            E::NotReceiver => ApiError::Forbidden(e.to_string()),
            E::Conflict { detail, state } => ApiError::StateConflict {
                detail: detail.into(),
                current_state: state,
                latest_version: None,
            },
            E::Audit(e) => e.into(),
            E::Store(e) => e.into(),
        }
    }
}
