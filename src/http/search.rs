//! `GET /v1/terminal/search?q=` (SPEC §7): names only. Results carry the case reference, the
//! child's name, kana, sex and birth date, the guardians' names and the center contact, each
//! only where the terminal's view allows it, never an address; every hit is a disclosure
//! (channel `search`) recorded before the answer leaves.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::TerminalCaller;
use crate::search::{self, QueryError};
use crate::views::SearchResults;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/v1/terminal/search", get(search_cases))
}

#[derive(Deserialize)]
struct Params {
    q: Option<String>,
}

async fn search_cases(
    State(ctx): State<Ctx>,
    caller: TerminalCaller,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchResults>, ApiError> {
    let raw = params.ok().and_then(|Query(p)| p.q).unwrap_or_default();
    let query = search::Query::parse(&raw).map_err(|e| match e {
        QueryError::Empty => ApiError::invalid("/q", "give part of a name (kanji or kana)"),
        QueryError::TooLong => ApiError::invalid("/q", "at most 64 characters"),
    })?;
    Ok(Json(ctx.disclosures.search(&caller.recipient(), &query).await?))
}
