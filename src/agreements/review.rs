//! What an administrator reviews before submitting a version: the exhaustive diff between two
//! versions (stored, or the latest stored against a proposal), and what a terminal would see of
//! a case — by field names only, never a value, so no case data reaches an administrator.
//! Neither changes anything, so neither is audited; both answer only those who may read the
//! agreement (or administer the terminal's force).

use super::{Administrator, AgreementError, Agreements, latest, may_read, version};
use crate::policy::diff::{Change, PolicyDiff};
use crate::policy::{Agreement, FieldSet, PolicyWorld, diff, explain};
use serde::Serialize;

/// `…/diff`: what the `to` version (or the proposal) gives beyond `from`, and takes away.
#[derive(Debug, Serialize)]
pub struct DiffAnswer {
    pub agreement_id: String,
    pub from: u32,
    /// `null` for a proposal.
    pub to: Option<u32>,
    /// `no_new_access` or `new_access`.
    pub verdict: &'static str,
    pub gains: Vec<ChangeView>,
    pub losses: Vec<ChangeView>,
}

/// One group of combinations that gain (or lose) the same fields through the same clause.
#[derive(Debug, Serialize)]
pub struct ChangeView {
    pub provider: String,
    pub provider_name: String,
    pub criterion: &'static str,
    pub audience: &'static str,
    pub dv: bool,
    pub consent: &'static str,
    pub fields: FieldSet,
    pub clause: String,
}

impl From<Change> for ChangeView {
    fn from(c: Change) -> Self {
        Self {
            provider: c.provider,
            provider_name: c.provider_name,
            criterion: c.criterion,
            audience: c.audience.as_str(),
            dv: c.dv,
            consent: c.consent,
            fields: c.fields,
            clause: c.clause,
        }
    }
}

fn answer(agreement_id: &str, from: u32, to: Option<u32>, d: PolicyDiff) -> DiffAnswer {
    DiffAnswer {
        agreement_id: agreement_id.to_owned(),
        from,
        to,
        verdict: d.verdict(),
        gains: d.gains.into_iter().map(ChangeView::from).collect(),
        losses: d.losses.into_iter().map(ChangeView::from).collect(),
    }
}

/// `POST /v1/admin/simulate`: what the terminal's station would see of the case now, by name.
#[derive(Debug, Serialize)]
pub struct Simulated {
    pub visible: bool,
    /// The clause that would allow it; `null` when nothing is visible.
    pub clause: Option<String>,
    /// The view an officer opening the case would be disclosed.
    pub fields: FieldSet,
    /// What lists, search and the stream would show.
    pub summary_fields: FieldSet,
}

/// What the simulation asks.
#[derive(Debug, Clone)]
pub struct SimulateRequest {
    pub station_id: String,
    pub terminal_no: u32,
    pub center_id: String,
    pub case_id: String,
    /// A draft version (TOML) to simulate as if it were in force, over the stored versions.
    pub document: Option<String>,
}

fn forbidden_to_read(world: &PolicyWorld, agreement_id: &str) -> AgreementError {
    let prefecture = latest(world, agreement_id).map(|a| a.prefecture().to_string());
    AgreementError::Forbidden(format!(
        "agreement `{agreement_id}` is readable by the administrators of prefecture {} and of its city providers",
        prefecture.unwrap_or_default()
    ))
}

/// Parses a proposed or draft document as `PUT` would (`label` names it in errors).
fn proposal(world: &PolicyWorld, body: &str, agreement_id: Option<&str>) -> Result<Agreement, AgreementError> {
    let a = Agreement::from_toml(body, "body", &world.registry).map_err(|e| AgreementError::Invalid {
        line: e.line,
        message: e.to_string(),
    })?;
    if let Some(id) = agreement_id
        && a.id() != id
    {
        return Err(AgreementError::Invalid {
            line: body
                .lines()
                .position(|l| l.trim_start().starts_with("id"))
                .map(|i| i + 1),
            message: format!("body: the document's id `{}` is not the id in the URL `{id}`", a.id()),
        });
    }
    Ok(a)
}

impl Agreements {
    /// `GET /v1/admin/agreements/{id}/diff?from=&to=`: two stored versions.
    pub fn diff_versions(
        &self,
        caller: &Administrator,
        agreement_id: &str,
        from: u32,
        to: u32,
    ) -> Result<DiffAnswer, AgreementError> {
        let world = self.current();
        if latest(&world, agreement_id).is_none() {
            return Err(AgreementError::NotFound);
        }
        if !may_read(&world, agreement_id, caller) {
            return Err(forbidden_to_read(&world, agreement_id));
        }
        let (Some(old), Some(new)) = (version(&world, agreement_id, from), version(&world, agreement_id, to)) else {
            return Err(AgreementError::NotFound);
        };
        Ok(answer(agreement_id, from, Some(to), diff(old, new, &world.registry)))
    }

    /// `POST /v1/admin/agreements/{id}/diff`: a proposed version against the latest stored one.
    /// Nothing is refused for what it would grant: that is the administrator's decision.
    pub fn diff_proposal(
        &self,
        caller: &Administrator,
        agreement_id: &str,
        body: &str,
    ) -> Result<DiffAnswer, AgreementError> {
        let world = self.current();
        let Some(old) = latest(&world, agreement_id) else {
            return Err(AgreementError::NotFound);
        };
        if !may_read(&world, agreement_id, caller) {
            return Err(forbidden_to_read(&world, agreement_id));
        }
        let new = proposal(&world, body, Some(agreement_id))?;
        Ok(answer(
            agreement_id,
            old.version(),
            None,
            diff(old, &new, &world.registry),
        ))
    }

    /// `POST /v1/admin/simulate`: what a terminal of `station_id` would see of a stored case now
    /// (or once a draft version is in force), by field names only.
    pub fn simulate(&self, caller: &Administrator, request: &SimulateRequest) -> Result<Simulated, AgreementError> {
        let world = self.current();
        let unit = world
            .registry
            .unit(&request.station_id)
            .ok_or(AgreementError::NotFound)?;
        let prefecture = world.registry.force(&unit.force).map(|f| f.prefecture.to_string());
        if prefecture.as_deref() != Some(caller.jurisdiction.as_str()) {
            return Err(AgreementError::Forbidden(format!(
                "only the administrators of prefecture {} may simulate its police units",
                prefecture.unwrap_or_default()
            )));
        }
        // Only cases of the caller's own prefecture's centers, and a center elsewhere answers as
        // a missing case does: the simulation never tells whether another prefecture holds a case.
        let own_center = world
            .registry
            .center(&request.center_id)
            .and_then(|c| world.registry.operator(&c.operator))
            .is_some_and(|o| o.prefecture.to_string() == caller.jurisdiction);
        let case = own_center
            .then(|| self.live.case(&request.center_id, &request.case_id))
            .flatten()
            .ok_or(AgreementError::NotFound)?;
        let mut now = self.clock.now();
        let world = match &request.document {
            None => world,
            Some(text) => {
                let draft = proposal(&world, text, None)?;
                if draft.prefecture().to_string() != caller.jurisdiction {
                    return Err(AgreementError::Forbidden(format!(
                        "only the administrators of prefecture {} may draft its agreements",
                        draft.prefecture()
                    )));
                }
                now = now.max(draft.effective_from());
                std::sync::Arc::new(with_draft(&world, draft))
            }
        };
        Ok(match explain(&world, &case.record, &request.station_id, now) {
            Ok(d) => Simulated {
                visible: true,
                clause: Some(d.clause),
                fields: d.fields,
                summary_fields: d.summary,
            },
            // The reason would tell facts of the case (which criterion it misses): not given.
            Err(_) => Simulated {
                visible: false,
                clause: None,
                fields: FieldSet::EMPTY,
                summary_fields: FieldSet::EMPTY,
            },
        })
    }
}

/// The world with `draft` as its agreement's highest version: it replaces a stored
/// version of the same number, and versions above it are set aside, so that it is the highest.
fn with_draft(world: &PolicyWorld, draft: Agreement) -> PolicyWorld {
    let mut next = world.clone();
    next.agreements
        .retain(|a| a.id() != draft.id() || a.version() < draft.version());
    next.agreements.push(draft);
    next
}
