//! Terminal views (SPEC §7): exactly the fields the agreement allows this terminal's station,
//! each disclosed case written to the audit log before the response leaves, and carrying its
//! receipt. A case the terminal may not see is indistinguishable from one that does not exist.

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Path, State};
use axum::routing::get;
use serde::Serialize;
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::TerminalCaller;
use crate::app::Ctx;
use crate::audit::Channel;
use crate::views::{CaseView, Visible, visible};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/terminal/cases", get(list_cases))
        .route("/v1/terminal/cases/{case_ref}", get(get_case))
}

#[derive(Debug, Serialize)]
pub struct CaseList {
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    pub cases: Vec<CaseView>,
}

async fn list_cases(State(ctx): State<Ctx>, caller: TerminalCaller) -> Result<Json<CaseList>, ApiError> {
    let now = ctx.clock.now();
    let world = ctx.policy();
    let items: Vec<Visible> = ctx
        .cases
        .snapshot()
        .into_iter()
        .filter_map(|c| visible(&world, c, &caller.station_id, now))
        .collect();
    let cases = caller.disclose(&ctx, items, Channel::List).await?;
    Ok(Json(CaseList { as_of: now, cases }))
}

async fn get_case(
    State(ctx): State<Ctx>,
    caller: TerminalCaller,
    Path(case_ref): Path<String>,
    route: MatchedPath,
) -> Result<Json<CaseView>, ApiError> {
    let now = ctx.clock.now();
    let world = ctx.policy();
    let candidates = match case_ref.split_once(':') {
        Some((center, case)) => ctx.cases.get(center, case).into_iter().collect(),
        None => ctx.cases.by_case_id(&case_ref),
    };
    let mut items: Vec<Visible> = candidates
        .into_iter()
        .filter_map(|c| visible(&world, c, &caller.station_id, now))
        .collect();
    if items.len() > 1 {
        // Only cases this terminal may see are named, so the answer leaks nothing.
        let refs = items
            .iter()
            .map(|v| format!("{}:{}", v.case.record.center_id, v.case.record.case_id))
            .collect();
        return Err(ApiError::Ambiguous { refs });
    }
    let Some(item) = items.pop() else {
        return Err(super::extract::refuse(
            &ctx,
            format!("GET {}", route.as_str()),
            &caller.peer.principal,
            Some(caller.officer.clone()),
            ApiError::NotFound,
        ));
    };
    let mut views = caller.disclose(&ctx, vec![item], Channel::Detail).await?;
    views
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::Internal("disclosure produced no view".into()))
}
