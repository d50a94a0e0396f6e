//! The HTTP API: one router per resource, merged here. Handlers are thin: extract the caller,
//! delegate, map the error.

pub mod admin;
pub mod audit;
pub mod batch;
pub mod cases;
pub mod centers;
pub mod context;
pub mod error;
pub mod extract;
pub mod host;
pub mod openapi;
pub mod search;
pub mod stream;
pub mod terminal;
pub mod web;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use context::Ctx;
use error::ApiError;
use host::Hosts;

pub use crate::limits::RequestLimits;

/// Every answer the router gives, its own refusals included, is problem+json: unknown paths
/// (404), known paths with another method (405, with `Allow`), and requests for another host
/// (400/421, before any route sees them; see `host`).
pub fn router(ctx: Ctx, hosts: Hosts) -> Router {
    // The demo's development token endpoint exists only where the demo configured an issuer.
    let dev = if ctx.dev_token_issuer.is_some() {
        web::dev_routes()
    } else {
        Router::new()
    };
    Router::new()
        .merge(dev)
        .merge(cases::routes())
        .merge(centers::routes())
        .merge(terminal::routes())
        .merge(admin::routes())
        .merge(audit::routes())
        .merge(stream::routes())
        .merge(search::routes())
        .merge(web::routes())
        .merge(openapi::routes())
        .fallback(|| async { ApiError::NotFound })
        // After every merge: it applies to the routes present when it is called.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            extract::limit_per_certificate,
        ))
        .layer(DefaultBodyLimit::max(ctx.requests.body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            ctx.requests,
            refuse_announced_too_large,
        ))
        // After the body limits, which apply only to the routes above: a batch file is streamed
        // under its own limit (`batch::routes` adds the rate limit itself).
        .merge(batch::routes(ctx.clone()))
        .layer(axum::middleware::from_fn_with_state(hosts, host::only_our_hosts))
        .layer(axum::middleware::from_fn_with_state(ctx.requests, refuse_large_headers))
        .layer(axum::middleware::map_response(no_store))
        .with_state(ctx)
}

/// Refuses a body announced (`Content-Length`) above the limit before reading any of it, and
/// before the caller is even identified: nothing of a 100 MB upload is waited for.
async fn refuse_announced_too_large(
    State(limits): State<RequestLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = hyper::body::Body::size_hint(request.body()).lower();
    if announced > limits.body_limit() {
        return ApiError::TooLarge {
            limit: limits.body_limit(),
        }
        .into_response();
    }
    next.run(request).await
}

/// Refuses, before anything else looks at them, header fields beyond `[limits]`: 431 with a
/// problem naming the limit. (Far beyond it, hyper cuts the request itself: see `tls::serve`.)
async fn refuse_large_headers(
    State(limits): State<RequestLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    if headers.len() > limits.header_count {
        return ApiError::HeadersTooLarge(format!("more than {} header fields", limits.header_count)).into_response();
    }
    let bytes = headers.iter().fold(0usize, |n, (name, value)| {
        n.saturating_add(name.as_str().len() + value.len())
    });
    if bytes > limits.header_bytes {
        return ApiError::HeadersTooLarge(format!("header fields larger than {} bytes", limits.header_bytes))
            .into_response();
    }
    next.run(request).await
}

/// The answer to a request whose body stopped arriving (see `tls::serve`).
pub fn request_timed_out() -> axum::response::Response {
    ApiError::RequestTimeout.into_response()
}

/// Case data must never be cached by a browser or a proxy.
async fn no_store(mut response: axum::response::Response) -> impl IntoResponse {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
