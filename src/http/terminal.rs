//! Terminal views (SPEC §7): exactly the fields the agreement allows this terminal's station,
//! each disclosed case written to the audit log before the response leaves, and carrying its
//! receipt. A case the terminal may not see is indistinguishable from one that does not exist.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Path, State};
use axum::routing::get;
use serde::Serialize;
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::TerminalCaller;
use crate::app::Ctx;
use crate::audit::{CaseRef, Channel, ClauseRef, Event, Receipt};
use crate::cases::CurrentCase;
use crate::policy::{Decision, PolicyWorld, evaluate, project};

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/terminal/cases", get(list_cases))
        .route("/v1/terminal/cases/{case_ref}", get(get_case))
}

/// One case as a terminal sees it.
#[derive(Debug, Serialize)]
pub struct CaseView {
    /// `<center_id>:<case_id>`: case ids are unique per center only.
    #[serde(rename = "ref")]
    pub reference: String,
    pub center_id: String,
    pub case_id: String,
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The allowed fields, nothing else.
    pub case: serde_json::Map<String, serde_json::Value>,
    pub receipt: ViewReceipt,
}

#[derive(Debug, Serialize)]
pub struct ViewReceipt {
    pub audit_index: u64,
    pub key_id: String,
    pub signature: String,
    /// The agreement clause that allowed this disclosure.
    pub clause: String,
}

#[derive(Debug, Serialize)]
pub struct CaseList {
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    pub cases: Vec<CaseView>,
}

/// A case this terminal may see, before it is recorded.
struct Visible {
    case: Arc<CurrentCase>,
    decision: Decision,
}

fn visible(world: &PolicyWorld, case: Arc<CurrentCase>, station: &str, now: OffsetDateTime) -> Option<Visible> {
    evaluate(world, &case.record, station, now).map(|decision| Visible { case, decision })
}

/// Records every disclosure in one durable batch, then builds the views. Nothing is built
/// if the log refuses.
async fn disclose(
    ctx: &Ctx,
    caller: &TerminalCaller,
    items: Vec<Visible>,
    channel: Channel,
) -> Result<Vec<CaseView>, ApiError> {
    let projected: Vec<_> = items
        .iter()
        .map(|v| project(&v.case.record, v.decision.fields))
        .collect();
    let events = items
        .iter()
        .zip(&projected)
        .map(|(v, (_, disclosed))| Event::Disclosure {
            actor: caller.actor(),
            station: caller.station_id.clone(),
            case: CaseRef {
                center_id: v.case.record.center_id.to_string(),
                case_id: v.case.record.case_id.to_string(),
                version: v.case.record.version,
            },
            fields: *disclosed,
            agreement: ClauseRef {
                agreement_id: v.decision.agreement_id.clone(),
                agreement_version: v.decision.agreement_version,
                clause: v.decision.clause.clone(),
                audience: v.decision.audience.as_str(),
                criterion: v.decision.criterion.map(|c| c.as_str()),
            },
            channel,
        })
        .collect();
    let receipts = ctx.audit.record(events).await?;
    Ok(items
        .into_iter()
        .zip(projected)
        .zip(receipts)
        .map(
            |(
                (v, (case, _)),
                Receipt {
                    audit_index,
                    key_id,
                    signature,
                },
            )| {
                let r = &v.case.record;
                CaseView {
                    reference: format!("{}:{}", r.center_id, r.case_id),
                    center_id: r.center_id.to_string(),
                    case_id: r.case_id.to_string(),
                    version: r.version,
                    updated_at: r.updated_at,
                    case,
                    receipt: ViewReceipt {
                        audit_index,
                        key_id,
                        signature,
                        clause: v.decision.clause,
                    },
                }
            },
        )
        .collect())
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
    let cases = disclose(&ctx, &caller, items, Channel::List).await?;
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
    let mut views = disclose(&ctx, &caller, vec![item], Channel::Detail).await?;
    if ctx.bulk.observe(&caller.officer, 1, now) {
        ctx.audit.record_in_background(Event::Security {
            actor: caller.actor(),
            what: "unusual bulk viewing: case views by this officer exceeded the configured threshold".into(),
        });
    }
    views
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::Internal("disclosure produced no view".into()))
}
