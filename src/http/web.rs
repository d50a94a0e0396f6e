//! The screens: the web terminal at `/terminal/`, the administrator's console at `/admin/` and
//! the CGC's page at `/center/` (the last two share `/console/`, all three `/shared/`). Plain
//! HTML, CSS and JavaScript compiled into the binary, no CDN, no build step. A strict
//! Content-Security-Policy allows only these files. Each page calls the API with the browser's
//! client certificate; who may do what is the API's business, not the page's. Also the demo's
//! `POST /v1/dev/token`, which exists only when `demo` set the issuer key.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::refuse;
use crate::dev::token::{self, DevTokenError};
use crate::identity::SharedPeer;

const INDEX_HTML: &str = include_str!("../web/terminal/index.html");
const APP_JS: &str = include_str!("../web/terminal/app.js");
const APP_CSS: &str = include_str!("../web/terminal/app.css");
const DOM_JS: &str = include_str!("../web/shared/dom.js");
const CONSOLE_JS: &str = include_str!("../web/console/common.js");
const CONSOLE_CSS: &str = include_str!("../web/console/console.css");
const ADMIN_HTML: &str = include_str!("../web/admin/index.html");
const ADMIN_JS: &str = include_str!("../web/admin/app.js");
const CENTER_HTML: &str = include_str!("../web/center/index.html");
const CENTER_JS: &str = include_str!("../web/center/app.js");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/terminal/") }))
        .route("/terminal", get(|| async { Redirect::to("/terminal/") }))
        .route("/terminal/", get(|| async { asset(INDEX_HTML, HTML) }))
        .route("/terminal/app.js", get(|| async { asset(APP_JS, JS) }))
        .route("/terminal/app.css", get(|| async { asset(APP_CSS, CSS) }))
        .route("/terminal/config.json", get(config))
        .route("/admin", get(|| async { Redirect::to("/admin/") }))
        .route("/admin/", get(|| async { asset(ADMIN_HTML, HTML) }))
        .route("/admin/app.js", get(|| async { asset(ADMIN_JS, JS) }))
        .route("/center", get(|| async { Redirect::to("/center/") }))
        .route("/center/", get(|| async { asset(CENTER_HTML, HTML) }))
        .route("/center/app.js", get(|| async { asset(CENTER_JS, JS) }))
        .route("/shared/dom.js", get(|| async { asset(DOM_JS, JS) }))
        .route("/console/common.js", get(|| async { asset(CONSOLE_JS, JS) }))
        .route("/console/console.css", get(|| async { asset(CONSOLE_CSS, CSS) }))
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

/// `POST /v1/dev/token` (demo only): a development token bound to the calling certificate, as
/// the police identity provider would issue: an officer's for a terminal, an administrator's
/// for an administrator.
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
    let subject = body.map(|Json(r)| r.subject).unwrap_or_default();
    match token::issue(
        key,
        ctx.tokens.settings(),
        &peer.principal,
        &peer.cert_sha256,
        &subject,
        ctx.clock.now(),
    ) {
        Ok((token, expires_at)) => Ok(Json(serde_json::json!({ "token": token, "expires_at": expires_at }))),
        Err(e @ DevTokenError::WrongKind) => Err(refuse(
            &ctx,
            "POST /v1/dev/token".into(),
            &peer.principal,
            None,
            ApiError::Forbidden(e.to_string()),
        )),
        Err(e @ DevTokenError::Subject) => Err(ApiError::invalid("/subject", &e.to_string())),
        Err(DevTokenError::Issuer(e)) => Err(ApiError::Internal(e)),
    }
}
