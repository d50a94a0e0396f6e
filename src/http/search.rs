//! `GET /v1/terminal/search?q=` (SPEC §7): names only. Results carry the case reference, the
//! child's name, kana, sex and birth date, the guardians' names and the center contact, each
//! only where the terminal's view allows it, never an address; every hit is a disclosure
//! (channel `search`) recorded before the answer leaves.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::TerminalCaller;
use crate::app::Ctx;
use crate::audit::Channel;
use crate::search::{self, QueryError, result_fields};
use crate::views::{CaseView, Visible, visible};

/// The most hits answered: a name search, not a bulk export.
pub const MAX_RESULTS: usize = 50;

pub fn routes() -> Router<Ctx> {
    Router::new().route("/v1/terminal/search", get(search_cases))
}

#[derive(Deserialize)]
struct Params {
    q: Option<String>,
}

#[derive(Serialize)]
struct SearchResults {
    /// More cases matched than are answered; refine the query.
    truncated: bool,
    cases: Vec<CaseView>,
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
    let now = ctx.clock.now();
    let world = ctx.policy();
    let mut hits: Vec<Visible> = ctx
        .cases
        .snapshot()
        .into_iter()
        .filter_map(|c| visible(&world, c, &caller.station_id, now))
        .filter(|v| query.matches(&v.case.record, v.decision.fields))
        .take(MAX_RESULTS + 1)
        .map(|mut v| {
            v.decision.fields = result_fields(v.decision.fields);
            v
        })
        .collect();
    let truncated = hits.len() > MAX_RESULTS;
    hits.truncate(MAX_RESULTS);
    let cases = caller.disclose(&ctx, hits, Channel::Search).await?;
    Ok(Json(SearchResults { truncated, cases }))
}
