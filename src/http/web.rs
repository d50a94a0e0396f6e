//! The web terminal at `/terminal/` (SPEC §7): plain HTML, CSS and JavaScript compiled into the
//! binary, no CDN, no build step. A strict Content-Security-Policy allows only these files.
//! Also the demo's `POST /v1/dev/token`, which exists only when `demo` set the issuer key.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::refuse;
use crate::auth::{AudClaim, Claims, Confirmation, issue_token};
use crate::identity::{Principal, SharedPeer};

const INDEX_HTML: &str = include_str!("../web/terminal/index.html");
const APP_JS: &str = include_str!("../web/terminal/app.js");
const APP_CSS: &str = include_str!("../web/terminal/app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/terminal/") }))
        .route("/terminal", get(|| async { Redirect::to("/terminal/") }))
        .route(
            "/terminal/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/terminal/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/terminal/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/terminal/config.json", get(config))
}

/// `POST /v1/dev/token`: routed only when the demo configured a token issuer.
pub fn dev_routes() -> Router<Ctx> {
    Router::new().route("/v1/dev/token", post(dev_token))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// What the page needs to know before sign-in: whether the demo's token button works, when
/// it locks itself, and how often the stream sends a heartbeat (its watchdog reconnects a
/// stream silent for much longer).
async fn config(State(ctx): State<Ctx>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "dev_sign_in": ctx.dev_token_issuer.is_some(),
        "idle_lock_seconds": u64::from(ctx.terminal_idle_lock_minutes) * 60,
        "heartbeat_seconds": ctx.live.settings().heartbeat.as_secs(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevTokenRequest {
    subject: String,
}

/// `POST /v1/dev/token` (demo only): a development officer token bound to the calling
/// terminal's own certificate, as the police identity provider would issue.
async fn dev_token(
    State(ctx): State<Ctx>,
    peer: Option<axum::Extension<SharedPeer>>,
    body: Result<Json<DevTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(key) = ctx.dev_token_issuer.as_ref() else {
        return Err(ApiError::NotFound);
    };
    let Some(axum::Extension(peer)) = peer else {
        return Err(ApiError::Unauthorized(
            "no client certificate on this connection".into(),
        ));
    };
    if !matches!(peer.principal, Principal::Terminal { .. }) {
        return Err(refuse(
            &ctx,
            "POST /v1/dev/token".into(),
            &peer.principal,
            None,
            ApiError::Forbidden("development tokens are for terminals".into()),
        ));
    }
    let Ok(Json(request)) = body else {
        return Err(ApiError::invalid("/subject", "give the officer's id"));
    };
    let subject = request.subject.trim();
    if subject.is_empty()
        || subject.len() > 64
        || !subject.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::invalid("/subject", "1-64 characters: letters, digits, - _ ."));
    }
    let now = ctx.clock.now();
    let settings = ctx.tokens.settings();
    let claims = Claims {
        iss: settings.issuer.clone(),
        sub: subject.to_owned(),
        aud: AudClaim::One(settings.officer_audience.clone()),
        exp: (now + crate::auth::DEV_TOKEN_TTL).unix_timestamp(),
        nbf: now.unix_timestamp(),
        iat: Some(now.unix_timestamp()),
        cnf: Confirmation {
            x5t_s256: URL_SAFE_NO_PAD.encode(peer.cert_sha256),
        },
    };
    let token = issue_token(key, &claims).map_err(ApiError::Internal)?;
    Ok(Json(serde_json::json!({ "token": token, "expires_at": claims.exp })))
}
