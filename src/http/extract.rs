//! Who is calling: the connection's certificate identity (set once per connection by the TLS
//! layer) and, where the route needs a person, the bearer token bound to that certificate.
//! Every request is first held to its certificate's rate limit; every refusal here is recorded
//! in the audit log, repeats coalesced into counts (`limits::RefusalCoalescer`).

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::context::Ctx;
use super::error::ApiError;
use crate::access::{Denied, Refusal};
use crate::audit::Actor;
use crate::auth::TokenAudience;
use crate::identity::{Principal, SharedPeer};

/// The route a request matched (its template, never its values), for audit entries.
pub fn route_of(parts: &Parts) -> String {
    route(&parts.method, &parts.extensions)
}

fn route(method: &Method, extensions: &Extensions) -> String {
    let path = extensions
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    format!("{method} {path}")
}

fn peer(parts: &Parts) -> Result<SharedPeer, ApiError> {
    parts
        .extensions
        .get::<SharedPeer>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthorized("no client certificate on this connection".into()))
}

/// Middleware, before every handler and extractor: each client certificate (any principal
/// kind) is held to its rate limit. Nothing is verified or written for a request over the limit
/// but the coalesced refusal.
pub async fn limit_per_certificate(State(ctx): State<Ctx>, request: Request, next: Next) -> Response {
    if let Some(peer) = request.extensions().get::<SharedPeer>()
        && let Err(denied) = ctx.access.admit_certificate(&peer.principal)
    {
        return refuse(
            &ctx,
            route(request.method(), request.extensions()),
            &peer.principal,
            None,
            denied.into(),
        )
        .into_response();
    }
    if let Some(follower) = &ctx.follower {
        // Whatever another instance committed governs this request too.
        if let Err(e) = follower.ensure_current().await {
            return ApiError::from(e).into_response();
        }
    }
    next.run(request).await
}

/// Records a refusal of `request` (a route template) and returns the error to answer with.
pub fn refuse(ctx: &Ctx, request: String, principal: &Principal, subject: Option<String>, error: ApiError) -> ApiError {
    let reason = match &error {
        ApiError::Unauthorized(r) | ApiError::Forbidden(r) => r.clone(),
        other => other.to_string(),
    };
    ctx.access.record_refusal(Refusal {
        principal: principal.to_string(),
        subject,
        request,
        status: error.status().as_u16(),
        reason,
    });
    error
}

/// Refuses (and records) a principal of the wrong kind for this endpoint.
fn wrong_kind(ctx: &Ctx, parts: &Parts, principal: &Principal, meant_for: &str) -> ApiError {
    refuse(
        ctx,
        route_of(parts),
        principal,
        None,
        ApiError::Forbidden(format!("this endpoint is for {meant_for}")),
    )
}

/// A CGC case system.
#[derive(Debug, Clone)]
pub struct CenterCaller {
    pub center_id: String,
    pub peer: SharedPeer,
}

impl FromRequestParts<Ctx> for CenterCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let peer = peer(parts)?;
        match &peer.principal {
            Principal::Center { center_id } => Ok(Self {
                center_id: center_id.clone(),
                peer: peer.clone(),
            }),
            other => Err(wrong_kind(ctx, parts, other, "CGC case systems")),
        }
    }
}

/// A police terminal with a signed-in officer.
#[derive(Debug, Clone)]
pub struct TerminalCaller {
    pub station_id: String,
    pub officer: String,
    pub peer: SharedPeer,
    /// When the officer's token expires: a live stream closes then.
    pub token_expires_at: time::OffsetDateTime,
}

impl TerminalCaller {
    /// The terminal and officer as the disclosure service knows them.
    pub fn recipient(&self) -> crate::views::Recipient {
        crate::views::Recipient {
            station_id: self.station_id.clone(),
            actor: self.actor(),
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            principal: self.peer.principal.to_string(),
            subject: Some(self.officer.clone()),
        }
    }
}

impl FromRequestParts<Ctx> for TerminalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let peer = peer(parts)?;
        let Principal::Terminal { station_id, .. } = &peer.principal else {
            return Err(wrong_kind(ctx, parts, &peer.principal, "police terminals"));
        };
        let token = bearer_subject(ctx, parts, &peer, TokenAudience::Officer)?;
        if let Err(denied) = ctx.access.admit_officer(&peer.principal, &token.subject) {
            // A revoked terminal's refusal names no officer: the terminal itself is refused.
            let subject = (denied != Denied::TerminalRevoked).then_some(token.subject);
            return Err(refuse(ctx, route_of(parts), &peer.principal, subject, denied.into()));
        }
        Ok(Self {
            station_id: station_id.clone(),
            officer: token.subject,
            peer: peer.clone(),
            token_expires_at: token.expires_at,
        })
    }
}

/// The cookie in which the web terminal holds the officer's token, because a browser's
/// `EventSource` cannot send an `Authorization` header. `HttpOnly; Secure; SameSite=Strict`,
/// and the token inside is still bound to the terminal's certificate.
pub const OFFICER_COOKIE: &str = "cgc_officer";

/// The officer token presented as the session cookie, if any.
fn cookie_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == OFFICER_COOKIE)
        .map(|(_, value)| value.trim())
}

/// Verifies the request's bearer token against the connection's certificate.
fn bearer(ctx: &Ctx, parts: &Parts, peer: &SharedPeer, audience: TokenAudience) -> Result<String, ApiError> {
    bearer_subject(ctx, parts, peer, audience).map(|t| t.subject)
}

/// Verifies the request's bearer token (for officers, the session cookie if there is no
/// `Authorization` header) against the connection's certificate.
fn bearer_subject(
    ctx: &Ctx,
    parts: &Parts,
    peer: &SharedPeer,
    audience: TokenAudience,
) -> Result<crate::auth::TokenSubject, ApiError> {
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .or_else(|| {
            (audience == TokenAudience::Officer)
                .then(|| cookie_token(parts))
                .flatten()
        });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(refuse(
            ctx,
            route_of(parts),
            &peer.principal,
            None,
            ApiError::Unauthorized("a bearer token is required".into()),
        ));
    };
    // The signature is verified once per connection and token; the clock every time.
    match ctx
        .tokens
        .verify_on(&peer.tokens, token, audience, &peer.cert_sha256, ctx.clock.now())
    {
        Ok(subject) => Ok(subject),
        Err(e) => {
            let error = match e {
                crate::auth::TokenError::Expired => ApiError::TokenExpired,
                other => ApiError::Unauthorized(other.to_string()),
            };
            Err(refuse(ctx, route_of(parts), &peer.principal, None, error))
        }
    }
}

/// A prefectural or city administrator with a signed-in user.
#[derive(Debug, Clone)]
pub struct AdminCaller {
    /// A prefecture code (`"14"`) or a city's municipality code (`"141003"`).
    pub jurisdiction: String,
    /// The administrator named by the bearer token.
    pub subject: String,
    pub peer: SharedPeer,
}

impl AdminCaller {
    pub fn actor(&self) -> Actor {
        Actor {
            principal: self.peer.principal.to_string(),
            subject: Some(self.subject.clone()),
        }
    }

    /// The administrator as the services know them.
    pub fn administrator(&self) -> crate::agreements::Administrator {
        crate::agreements::Administrator {
            jurisdiction: self.jurisdiction.clone(),
            actor: self.actor(),
        }
    }
}

impl FromRequestParts<Ctx> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let peer = peer(parts)?;
        let Principal::Admin { jurisdiction, .. } = &peer.principal else {
            return Err(wrong_kind(ctx, parts, &peer.principal, "administrators"));
        };
        let subject = bearer(ctx, parts, &peer, TokenAudience::Admin)?;
        Ok(Self {
            jurisdiction: jurisdiction.clone(),
            subject,
            peer: peer.clone(),
        })
    }
}

/// An auditor (SPEC §2): reads the whole audit log.
#[derive(Debug, Clone)]
pub struct AuditorCaller {
    pub name: String,
    pub peer: SharedPeer,
}

impl FromRequestParts<Ctx> for AuditorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let peer = peer(parts)?;
        match &peer.principal {
            Principal::Auditor { name } => Ok(Self {
                name: name.clone(),
                peer: peer.clone(),
            }),
            other => Err(wrong_kind(ctx, parts, other, "auditors")),
        }
    }
}

/// Who may read the audit log's public structure (checkpoints, proofs) and "who saw my case":
/// an auditor, or a CGC case system (for its own cases only; the handlers check that).
#[derive(Debug, Clone)]
pub enum AuditReader {
    Auditor { name: String, peer: SharedPeer },
    Center { center_id: String, peer: SharedPeer },
}

impl AuditReader {
    pub fn peer(&self) -> &SharedPeer {
        match self {
            Self::Auditor { peer, .. } | Self::Center { peer, .. } => peer,
        }
    }
}

impl FromRequestParts<Ctx> for AuditReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let peer = peer(parts)?;
        match &peer.principal {
            Principal::Auditor { name } => Ok(Self::Auditor {
                name: name.clone(),
                peer: peer.clone(),
            }),
            Principal::Center { center_id } => Ok(Self::Center {
                center_id: center_id.clone(),
                peer: peer.clone(),
            }),
            other => Err(wrong_kind(ctx, parts, other, "auditors and CGC case systems")),
        }
    }
}

/// Any authenticated principal: a certificate of any kind, and for a police terminal also its
/// signed-in officer (as for every other terminal route: the certificate alone names no one).
#[derive(Debug, Clone)]
pub struct AnyCaller {
    pub peer: SharedPeer,
}

impl FromRequestParts<Ctx> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let peer = peer(parts)?;
        if let Principal::Terminal { .. } = &peer.principal {
            TerminalCaller::from_request_parts(parts, ctx).await?;
        }
        Ok(Self { peer })
    }
}

/// A route's URL parameters (`axum::extract::Path`), refused as a problem naming the parameter
/// rather than with axum's plain-text answer: a percent-encoded byte sequence that is not UTF-8
/// (`%FF`, an overlong `%C0%AE`) is 400 on `/<name>`, its value never echoed.
pub struct UrlParams<T>(pub T);

impl<T, S> FromRequestParts<S> for UrlParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(params)) => Ok(Self(params)),
            Err(rejection) => Err(url_params_refused(&rejection)),
        }
    }
}

fn url_params_refused(rejection: &axum::extract::rejection::PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    use axum::extract::rejection::PathRejection;
    let PathRejection::FailedToDeserializePathParams(e) = rejection else {
        // The route has no parameters for this handler: a mistake in the code, not the request.
        return ApiError::Internal(rejection.body_text());
    };
    match e.kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => {
            ApiError::invalid(&format!("/{key}"), "not valid UTF-8 once percent-decoded")
        }
        ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::DeserializeError { key, .. } => {
            ApiError::invalid(&format!("/{key}"), "not a valid value for this parameter")
        }
        _ => ApiError::invalid("", "the URL's parameters cannot be read"),
    }
}
