//! The decision (SPEC §6): (agreements, consents, registry, case, recipient, time) → the fields
//! the recipient may see and the clause that allowed it, or nothing. Pure and deterministic.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use time::{Duration, OffsetDateTime};

use super::agreement::{Agreement, Audience, Criterion, Predicate, PredicateField, Provider, Scope, Test};
use super::consent::{ConsentBook, ConsentState};
use super::fields::{FieldPath, FieldSet};
use crate::cases::record::{AbuseType, CaseRecord, RiskLevel, Sex, Status};
use crate::registry::error::PolicyError;
use crate::registry::{Operator, Registry, Unit, UnitKind};

/// How long a report may stay without a safety confirmation (national rule, 2018).
pub const SAFETY_CONFIRMATION_WINDOW: Duration = Duration::hours(48);

/// Everything the engine decides from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWorld {
    pub registry: Registry,
    /// Every version of every agreement.
    pub agreements: Vec<Agreement>,
    pub consents: ConsentBook,
}

impl PolicyWorld {
    /// Loads `registry.toml`, every `agreements/*.toml` (one version per file) and
    /// `consents.toml` from a policy folder.
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let registry = Registry::load(&dir.join("registry.toml"))?;
        let agreements_dir = dir.join("agreements");
        let entries = std::fs::read_dir(&agreements_dir).map_err(|e| PolicyError::io(&agreements_dir, &e))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| PolicyError::io(&agreements_dir, &e))?.path();
            if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
                files.push(path);
            }
        }
        // Directory order differs between file systems; errors and results must not.
        files.sort();
        let mut agreements: Vec<Agreement> = Vec::with_capacity(files.len());
        for path in &files {
            let a = Agreement::load(path, &registry)?;
            if agreements
                .iter()
                .any(|b| b.id() == a.id() && b.version() == a.version())
            {
                return Err(PolicyError::new(
                    &path.display().to_string(),
                    None,
                    format!(
                        "agreement `{}` version {} is defined by another file too",
                        a.id(),
                        a.version()
                    ),
                ));
            }
            agreements.push(a);
        }
        if let Some(o) = find_overlap(&agreements) {
            let path = files
                .get(o.second)
                .map_or_else(String::new, |p| p.display().to_string());
            let line = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.lines().position(|l| l.contains(&format!("\"{}\"", o.operator))))
                .map(|i| i + 1);
            return Err(PolicyError::new(&path, line, o.message(&agreements)));
        }
        let consents = ConsentBook::load(&dir.join("consents.toml"), &registry, &agreements)?;
        Ok(Self {
            registry,
            agreements,
            consents,
        })
    }

    /// The version of agreement `id` in force at `now`: the highest version whose validity
    /// contains `now`.
    pub fn agreement_in_force(&self, id: &str, now: OffsetDateTime) -> Option<&Agreement> {
        self.agreements
            .iter()
            .filter(|a| a.id() == id && a.is_in_force(now))
            .max_by_key(|a| a.version())
    }

    /// Every agreement id with its version in force at `now`, in id order.
    pub fn agreements_in_force(&self, now: OffsetDateTime) -> BTreeMap<&str, &Agreement> {
        let mut in_force: BTreeMap<&str, &Agreement> = BTreeMap::new();
        for a in self.agreements.iter().filter(|a| a.is_in_force(now)) {
            match in_force.get(a.id()) {
                Some(b) if b.version() >= a.version() => {}
                _ => {
                    in_force.insert(a.id(), a);
                }
            }
        }
        in_force
    }
}

/// Two agreements (different ids) that could both be in force at some instant and name the
/// same provider: which one applies would depend on id order, so such a set is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub first: usize,
    pub second: usize,
    pub operator: String,
}

impl Overlap {
    pub fn message(&self, agreements: &[Agreement]) -> String {
        let name = |i: usize| {
            agreements
                .get(i)
                .map_or_else(String::new, |a| format!("`{}` version {}", a.id(), a.version()))
        };
        format!(
            "provider `{}` is also named by {}, whose validity overlaps; an operator may be a provider of one agreement at a time",
            self.operator,
            name(self.first)
        )
    }
}

/// The first overlap among `agreements` (indices into the slice; `second` is the later one).
pub fn find_overlap(agreements: &[Agreement]) -> Option<Overlap> {
    let intersects = |a: &Agreement, b: &Agreement| {
        let ends_after = |x: &Agreement, start: OffsetDateTime| x.effective_until().is_none_or(|u| u > start);
        ends_after(a, b.effective_from()) && ends_after(b, a.effective_from())
    };
    for (j, b) in agreements.iter().enumerate() {
        for (i, a) in agreements.iter().enumerate().take(j) {
            if a.id() == b.id() || !intersects(a, b) {
                continue;
            }
            if let Some(p) = b.providers().iter().find(|p| a.provider(&p.operator).is_some()) {
                return Some(Overlap {
                    first: i,
                    second: j,
                    operator: p.operator.clone(),
                });
            }
        }
    }
    None
}

/// What a recipient may see of a case, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub agreement_id: String,
    pub agreement_version: u32,
    /// The provider: the operator of the case's center.
    pub operator: String,
    /// The audience whose view applied (a covering station falls back to `PrefectureStations`
    /// when the agreement gives covering stations no view of their own).
    pub audience: Audience,
    /// The criterion that made the case shareable; `None` under scope `all`. For the audit log
    /// only: it can reveal facts outside the recipient's view.
    pub criterion: Option<Criterion>,
    /// `{id}@v{version}/providers/{operator}/{all|criteria}/views/{audience}`; safe to show.
    pub clause: String,
    pub fields: FieldSet,
    /// What lists, search and the stream show (`Agreement::summary`), within `fields.implied()`;
    /// `fields` is disclosed only when an officer opens the case (detail, print).
    pub summary: FieldSet,
}

impl Criterion {
    /// Whether the case meets the criterion at `now`.
    pub fn is_met(self, case: &CaseRecord, now: OffsetDateTime) -> bool {
        match self {
            Criterion::InjuryNeglectSexual => {
                case.abuse.injury
                    || case
                        .abuse
                        .types
                        .iter()
                        .any(|t| matches!(t, AbuseType::Neglect | AbuseType::Sexual))
            }
            Criterion::SafetyUnconfirmed48h => match safety_deadline(case) {
                // A deadline beyond the representable range is never reached.
                None => false,
                Some(deadline) => match case.safety_confirmed_at {
                    None => now >= deadline,
                    Some(confirmed) => confirmed > deadline,
                },
            },
            Criterion::ReturnHome => case.status == Status::ReturnedHome,
            Criterion::Missing => case.flags.missing,
        }
    }
}

fn safety_deadline(case: &CaseRecord) -> Option<OffsetDateTime> {
    case.intake_at.checked_add(SAFETY_CONFIRMATION_WINDOW)
}

/// What `unit_id` may see of `case` at `now`, or `None` if nothing.
pub fn evaluate(world: &PolicyWorld, case: &CaseRecord, unit_id: &str, now: OffsetDateTime) -> Option<Decision> {
    explain(world, case, unit_id, now).ok()
}

/// Why a recipient sees nothing of a case. Rendered for `policy simulate` and administrators;
/// it names agreements, operators, criteria and states, never a value from the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoView {
    Closed,
    UnknownCenter(String),
    UnknownUnit(String),
    /// No version of any agreement names the case's operator as a provider.
    NotAProvider {
        operator: String,
    },
    /// Versions name the provider, but none of them is in force at that time.
    NotInForce {
        agreement_id: String,
        operator: String,
    },
    /// A city provider that has not consented and been confirmed (or withdrew).
    NotOptedIn {
        agreement_id: String,
        operator: String,
        state: ConsentState,
    },
    NoCriterionMet {
        clause: String,
        criteria: Vec<Criterion>,
    },
    PredicateNotMet {
        clause: String,
        predicate: String,
    },
    OtherForce {
        agreement_id: String,
        force: String,
    },
    NoViewForAudience {
        clause: String,
        audience: Audience,
    },
}

impl fmt::Display for NoView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoView::Closed => f.write_str("the case is closed; closed cases are shared with no one"),
            NoView::UnknownCenter(c) => write!(f, "center `{c}` is not in the registry"),
            NoView::UnknownUnit(u) => write!(f, "police unit `{u}` is not in the registry"),
            NoView::NotAProvider { operator } => {
                write!(f, "no agreement names operator `{operator}` as a provider")
            }
            NoView::NotInForce { agreement_id, operator } => write!(
                f,
                "agreement `{agreement_id}` names provider `{operator}`, but no version of it is in force at that time"
            ),
            NoView::NotOptedIn {
                agreement_id,
                operator,
                state,
            } => write!(
                f,
                "city provider `{operator}` has not opted in to `{agreement_id}` (state: {state}; only `active`, i.e. consented and confirmed, shares)"
            ),
            NoView::NoCriterionMet { clause, criteria } => {
                let list: Vec<_> = criteria.iter().map(|c| c.as_str()).collect();
                write!(f, "{clause}: the case meets none of the criteria [{}]", list.join(", "))
            }
            NoView::PredicateNotMet { clause, predicate } => {
                write!(f, "{clause}: the case does not meet the predicate `{predicate}`")
            }
            NoView::OtherForce { agreement_id, force } => {
                write!(
                    f,
                    "agreement `{agreement_id}` shares with force `{force}` only, not this unit's force"
                )
            }
            NoView::NoViewForAudience { clause, audience } => {
                write!(f, "{clause}: the agreement gives `{audience}` no view")
            }
        }
    }
}

impl Predicate {
    /// Whether the case meets the predicate (see `Test` for absent values).
    pub fn holds(&self, case: &CaseRecord) -> bool {
        let one = |value: Option<&str>| match (&self.test, value) {
            (Test::In(list), Some(v)) => list.iter().any(|x| x == v),
            (Test::NotIn(list), Some(v)) => !list.iter().any(|x| x == v),
            _ => false,
        };
        let flag = |value: bool| matches!(self.test, Test::Equals(b) if b == value);
        match self.field {
            PredicateField::RiskLevel => one(case.risk_level.map(risk_str)),
            PredicateField::Status => one(Some(status_str(case.status))),
            PredicateField::ChildSex => one(Some(sex_str(case.child.sex))),
            PredicateField::ChildMunicipality => one(Some(case.child.address.municipality_code.as_str())),
            PredicateField::AbuseTypes => {
                let present =
                    |list: &[String]| case.abuse.types.iter().any(|t| list.iter().any(|x| x == abuse_str(*t)));
                match &self.test {
                    Test::In(list) => present(list),
                    Test::NotIn(list) => !present(list),
                    Test::Equals(_) => false,
                }
            }
            PredicateField::AbuseInjury => flag(case.abuse.injury),
            PredicateField::FlagsMissing => flag(case.flags.missing),
            PredicateField::FlagsDv => flag(case.flags.dv),
        }
    }
}

// The wire names of SPEC §5, spelled out so that a predicate never depends on serializer
// behaviour at evaluation time.
fn risk_str(r: RiskLevel) -> &'static str {
    match r {
        RiskLevel::High => "high",
        RiskLevel::Medium => "medium",
        RiskLevel::Low => "low",
    }
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Intake => "intake",
        Status::Investigating => "investigating",
        Status::TemporaryProtection => "temporary_protection",
        Status::InCare => "in_care",
        Status::ReturnedHome => "returned_home",
        Status::Closed => "closed",
    }
}

fn sex_str(s: Sex) -> &'static str {
    match s {
        Sex::Male => "male",
        Sex::Female => "female",
        Sex::Unknown => "unknown",
    }
}

fn abuse_str(t: AbuseType) -> &'static str {
    match t {
        AbuseType::Physical => "physical",
        AbuseType::Neglect => "neglect",
        AbuseType::Sexual => "sexual",
        AbuseType::Psychological => "psychological",
    }
}

/// `evaluate` with its reason when the answer is nothing: the first agreement (in id order)
/// that shares the case decides; otherwise the reason given by the first agreement in force
/// that names the provider, or why no agreement applies at all.
pub fn explain(world: &PolicyWorld, case: &CaseRecord, unit_id: &str, now: OffsetDateTime) -> Result<Decision, NoView> {
    if case.status == Status::Closed {
        return Err(NoView::Closed);
    }
    let operator = world
        .registry
        .operator_of_center(case.center_id.as_str())
        .ok_or_else(|| NoView::UnknownCenter(case.center_id.to_string()))?;
    let unit = world
        .registry
        .unit(unit_id)
        .ok_or_else(|| NoView::UnknownUnit(unit_id.to_owned()))?;
    let mut first_reason: Option<NoView> = None;
    for agreement in world
        .agreements_in_force(now)
        .into_values()
        .filter(|a| a.prefecture() == operator.prefecture)
    {
        let Some(provider) = agreement.provider(&operator.id) else {
            continue;
        };
        match decide(world, agreement, provider, operator, unit, case, now) {
            Ok(d) => return Ok(d),
            Err(reason) => {
                first_reason.get_or_insert(reason);
            }
        }
    }
    Err(first_reason.unwrap_or_else(
        || match world.agreements.iter().find(|a| a.provider(&operator.id).is_some()) {
            Some(a) => NoView::NotInForce {
                agreement_id: a.id().to_owned(),
                operator: operator.id.clone(),
            },
            None => NoView::NotAProvider {
                operator: operator.id.clone(),
            },
        },
    ))
}

/// The decision under the version in force, and for a city provider also under the terms it
/// consented to and had confirmed: a case is shared only if both share it, with the fields both
/// allow. So a version that narrows applies at once, and one that widens waits for the city.
fn decide(
    world: &PolicyWorld,
    agreement: &Agreement,
    provider: &Provider,
    operator: &Operator,
    unit: &Unit,
    case: &CaseRecord,
    now: OffsetDateTime,
) -> Result<Decision, NoView> {
    if !operator.kind.is_city() {
        return decide_terms(agreement, provider, operator, unit, case, now);
    }
    let consent = world.consents.get(agreement.id(), &operator.id);
    let not_opted_in = || NoView::NotOptedIn {
        agreement_id: agreement.id().to_owned(),
        operator: operator.id.clone(),
        state: consent.state,
    };
    let Some(confirmed) = consent.confirmed else {
        return Err(not_opted_in());
    };
    let decision = decide_terms(agreement, provider, operator, unit, case, now)?;
    if confirmed == agreement.version() {
        return Ok(decision);
    }
    let (consented, consented_provider) = world
        .agreements
        .iter()
        .find(|a| a.id() == agreement.id() && a.version() == confirmed)
        .and_then(|a| a.provider(&operator.id).map(|p| (a, p)))
        .ok_or_else(not_opted_in)?;
    let within = decide_terms(consented, consented_provider, operator, unit, case, now)?;
    let fields = decision.fields.intersection(within.fields);
    Ok(Decision {
        fields,
        // Within what both allow, and never beyond the fields both allow.
        summary: decision
            .summary
            .intersection(within.summary)
            .intersection(fields.implied()),
        clause: format!("{}&consented@v{confirmed}", decision.clause),
        ..decision
    })
}

/// The decision under one version's terms for the provider, consent aside.
fn decide_terms(
    agreement: &Agreement,
    provider: &Provider,
    operator: &Operator,
    unit: &Unit,
    case: &CaseRecord,
    now: OffsetDateTime,
) -> Result<Decision, NoView> {
    let base = format!(
        "{}@v{}/providers/{}/{}",
        agreement.id(),
        agreement.version(),
        operator.id,
        provider.scope.as_str()
    );
    let criterion = match &provider.scope {
        Scope::All => None,
        Scope::Criteria(list) => {
            Some(
                list.iter()
                    .copied()
                    .find(|c| c.is_met(case, now))
                    .ok_or_else(|| NoView::NoCriterionMet {
                        clause: base.clone(),
                        criteria: list.clone(),
                    })?,
            )
        }
    };
    if let Some(p) = provider.predicates.iter().find(|p| !p.holds(case)) {
        return Err(NoView::PredicateNotMet {
            clause: base,
            predicate: p.to_string(),
        });
    }
    if unit.force != agreement.force() {
        return Err(NoView::OtherForce {
            agreement_id: agreement.id().to_owned(),
            force: agreement.force().to_owned(),
        });
    }
    let audience = match unit.kind {
        UnitKind::Hq => Audience::Hq,
        UnitKind::Station if unit.municipalities.contains(&case.child.address.municipality_code) => {
            Audience::CoveringStation
        }
        UnitKind::Station => Audience::PrefectureStations,
    };
    let (audience, mut fields) = match (audience, agreement.view(audience)) {
        (_, Some(view)) => (audience, view),
        (Audience::CoveringStation, None) => match agreement.view(Audience::PrefectureStations) {
            Some(view) => (Audience::PrefectureStations, view),
            None => return Err(NoView::NoViewForAudience { clause: base, audience }),
        },
        (_, None) => return Err(NoView::NoViewForAudience { clause: base, audience }),
    };
    let mut summary = agreement.summary(audience);
    if case.flags.dv && !agreement.dv_address_allowed(audience) {
        // The municipality is part of the address: a DV case's is withheld with it.
        for f in [FieldPath::ChildAddress, FieldPath::ChildMunicipality] {
            fields.remove(f);
            summary.remove(f);
        }
    }
    Ok(Decision {
        agreement_id: agreement.id().to_owned(),
        agreement_version: agreement.version(),
        operator: operator.id.clone(),
        audience,
        criterion,
        clause: format!("{base}/views/{audience}"),
        fields,
        summary,
    })
}

/// The earliest instant after `now` at which `evaluate` could answer differently for this case
/// without any input but time changing: an agreement version starting or ending in the case's
/// prefecture, or the case's 48-hour safety deadline passing. Lets live views re-evaluate when
/// the time passes instead of at the next update (SPEC §6).
pub fn next_change(world: &PolicyWorld, case: &CaseRecord, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if case.status == Status::Closed {
        return None;
    }
    let operator = world.registry.operator_of_center(case.center_id.as_str())?;
    let agreement_bounds = world
        .agreements
        .iter()
        .filter(|a| a.prefecture() == operator.prefecture)
        .flat_map(|a| [Some(a.effective_from()), a.effective_until()])
        .flatten();
    agreement_bounds.chain(case_deadline(case)).filter(|t| *t > now).min()
}

/// The one instant at which time alone may change what is shown of this case version, apart
/// from the agreements' effective dates: the end of its 48-hour safety window while safety is
/// unconfirmed. Passing it can only add the case to views (criterion `safety_unconfirmed_48h`),
/// never remove it.
pub fn case_deadline(case: &CaseRecord) -> Option<OffsetDateTime> {
    if case.status == Status::Closed || case.safety_confirmed_at.is_some() {
        return None;
    }
    safety_deadline(case)
}

/// Whether any agreement of `world` starts or ends in `(after, until]`: time passing such an
/// instant may change any view.
pub fn agreement_bound_between(world: &PolicyWorld, after: OffsetDateTime, until: OffsetDateTime) -> bool {
    world
        .agreements
        .iter()
        .flat_map(|a| [Some(a.effective_from()), a.effective_until()])
        .flatten()
        .any(|t| t > after && t <= until)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
pub(crate) mod tests {
    use super::*;
    use crate::cases::record::{
        Abuse, Address, CaseId, CenterContact, Child, Flags, Guardian, Relationship, RiskLevel, Sex,
    };
    use crate::policy::fields::FieldPath as F;
    use crate::registry::codes::MunicipalityCode;
    use time::macros::{date, datetime};

    pub(crate) const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

    pub(crate) const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 +09:00);
    pub(crate) const UNITS: [&str; 7] = [
        "hq",
        "kagacho",
        "tsurumi",
        "kawasaki",
        "sagamihara-minami",
        "yokosuka",
        "atsugi",
    ];

    pub(crate) fn world() -> PolicyWorld {
        PolicyWorld::load(Path::new(DIR)).unwrap()
    }

    /// A case of `center` for a child living in `municipality`, meeting no criterion: only
    /// psychological abuse, no injury, safety confirmed within the hour, in investigation.
    pub(crate) fn case(center: &str, municipality: &str) -> CaseRecord {
        let intake = datetime!(2026-04-20 09:00 +09:00);
        CaseRecord {
            case_id: CaseId::parse("case-1").unwrap(),
            center_id: CaseId::parse(center).unwrap(),
            version: 1,
            updated_at: intake,
            child: Child {
                name: "山田 花子".into(),
                name_kana: Some("ヤマダ ハナコ".into()),
                sex: Sex::Female,
                birth_date: date!(2019 - 06 - 15),
                address: Address {
                    municipality_code: MunicipalityCode::parse(municipality).unwrap(),
                    text: Some("山下町1-1".into()),
                },
            },
            guardians: Some(vec![Guardian {
                name: "山田 太郎".into(),
                name_kana: Some("ヤマダ タロウ".into()),
                relationship: Relationship::Father,
                employer: Some("株式会社例".into()),
            }]),
            household: Some("父と二人暮らし".into()),
            care_setting: Some("保育所".into()),
            upbringing: Some("養育状況".into()),
            welfare_services: Some("なし".into()),
            abuse: Abuse {
                types: vec![AbuseType::Psychological],
                injury: false,
            },
            risk_level: Some(RiskLevel::Medium),
            status: Status::Investigating,
            intake_at: intake,
            safety_confirmed_at: Some(intake + Duration::hours(1)),
            flags: Flags {
                dv: false,
                missing: false,
            },
            assessment: Some(crate::cases::record::Assessment {
                findings: Some("所見".into()),
                plan: Some("方針".into()),
                progress: None,
            }),
            center_contact: Some(CenterContact {
                name: "担当 一郎".into(),
                phone: "045-000-0000".into(),
            }),
        }
    }

    fn set(fields: &[FieldPath]) -> FieldSet {
        fields.iter().copied().collect()
    }

    pub(crate) fn covering_station_view() -> FieldSet {
        set(&[
            F::ChildName,
            F::ChildNameKana,
            F::ChildSex,
            F::ChildBirthDate,
            F::ChildAddress,
            F::GuardiansName,
            F::GuardiansRelationship,
            F::Abuse,
            F::RiskLevel,
            F::Status,
            F::IntakeAt,
            F::SafetyConfirmedAt,
            F::FlagsMissing,
            F::FlagsDv,
            F::CenterContact,
        ])
    }

    pub(crate) fn prefecture_stations_view() -> FieldSet {
        set(&[
            F::ChildName,
            F::ChildNameKana,
            F::ChildSex,
            F::ChildBirthDate,
            F::GuardiansName,
            F::FlagsMissing,
            F::CenterContact,
        ])
    }

    pub(crate) fn hq_view() -> FieldSet {
        covering_station_view().with(F::Household).with(F::CareSetting)
    }

    #[test]
    fn prefecture_case_views_are_exactly_the_spec_sets() {
        let w = world();
        let c = case("kanagawa-central", "142123");
        let d = evaluate(&w, &c, "atsugi", NOW).unwrap();
        assert_eq!(d.audience, Audience::CoveringStation);
        assert_eq!(d.fields, covering_station_view());
        assert_eq!(d.criterion, None);
        assert_eq!(d.clause, "kanagawa-2026@v1/providers/14/all/views/covering_station");
        let d = evaluate(&w, &c, "tsurumi", NOW).unwrap();
        assert_eq!(
            (d.audience, d.fields),
            (Audience::PrefectureStations, prefecture_stations_view())
        );
        let d = evaluate(&w, &c, "hq", NOW).unwrap();
        assert_eq!((d.audience, d.fields), (Audience::Hq, hq_view()));
        assert_eq!(d.clause, "kanagawa-2026@v1/providers/14/all/views/hq");
    }

    #[test]
    fn yokohama_case_goes_to_kagacho_tsurumi_and_hq_with_the_spec_sets() {
        let w = world();
        let mut c = case("yokohama-central", "141046");
        c.abuse.injury = true;
        let d = evaluate(&w, &c, "kagacho", NOW).unwrap();
        assert_eq!(d.audience, Audience::CoveringStation);
        assert_eq!(d.fields, covering_station_view());
        assert_eq!(d.operator, "141003");
        assert_eq!((d.agreement_id.as_str(), d.agreement_version), ("kanagawa-2026", 1));
        assert_eq!(d.criterion, Some(Criterion::InjuryNeglectSexual));
        assert_eq!(
            d.clause,
            "kanagawa-2026@v1/providers/141003/criteria/views/covering_station"
        );
        assert!(!d.clause.contains("injury"));
        let d = evaluate(&w, &c, "tsurumi", NOW).unwrap();
        assert_eq!(d.audience, Audience::PrefectureStations);
        assert_eq!(d.fields, prefecture_stations_view());
        let d = evaluate(&w, &c, "hq", NOW).unwrap();
        assert_eq!(d.audience, Audience::Hq);
        assert_eq!(d.fields, hq_view());
        for unit in UNITS {
            let d = evaluate(&w, &c, unit, NOW).unwrap();
            assert!(!d.fields.contains(F::Assessment), "{unit}");
        }
    }

    #[test]
    fn dv_case_address_goes_to_no_audience() {
        let w = world();
        let mut c = case("kanagawa-central", "142123");
        c.flags.dv = true;
        for unit in UNITS {
            let d = evaluate(&w, &c, unit, NOW).unwrap();
            assert!(!d.fields.contains(F::ChildAddress), "{unit}");
        }
        let d = evaluate(&w, &c, "atsugi", NOW).unwrap();
        assert_eq!(d.fields, covering_station_view().without(F::ChildAddress));
    }

    #[test]
    fn kawasaki_and_sagamihara_cases_go_nowhere() {
        let w = world();
        let mut kawasaki = case("kawasaki-central", "141313");
        let mut sagamihara = case("sagamihara", "141534");
        for c in [&mut kawasaki, &mut sagamihara] {
            c.abuse.injury = true;
            c.flags.missing = true;
            for unit in UNITS {
                assert_eq!(evaluate(&w, c, unit, NOW), None, "{} {unit}", c.center_id);
            }
        }
    }

    #[test]
    fn kawasaki_shares_once_consent_is_confirmed() {
        let mut w = world();
        let c = case("kawasaki-central", "141313");
        use crate::policy::consent::ConsentAction as A;
        w.consents.apply("kanagawa-2026", "141305", A::Consent, 1).unwrap();
        assert_eq!(evaluate(&w, &c, "kawasaki", NOW), None, "consented, not confirmed");
        w.consents.apply("kanagawa-2026", "141305", A::Confirm, 1).unwrap();
        let d = evaluate(&w, &c, "kawasaki", NOW).unwrap();
        assert_eq!(d.clause, "kanagawa-2026@v1/providers/141305/all/views/covering_station");
        w.consents.apply("kanagawa-2026", "141305", A::Withdraw, 1).unwrap();
        assert_eq!(evaluate(&w, &c, "kawasaki", NOW), None, "withdrawn");
    }

    #[test]
    fn yokosuka_shares_all_its_cases() {
        let w = world();
        let c = case("yokosuka", "142018");
        let d = evaluate(&w, &c, "yokosuka", NOW).unwrap();
        assert_eq!((d.audience, d.criterion), (Audience::CoveringStation, None));
        assert_eq!(d.clause, "kanagawa-2026@v1/providers/142018/all/views/covering_station");
    }

    #[test]
    fn yokohama_case_is_shared_only_when_it_meets_a_national_criterion() {
        let w = world();
        let base = case("yokohama-central", "141046");
        for unit in UNITS {
            assert_eq!(evaluate(&w, &base, unit, NOW), None, "{unit}");
        }
        let mut cases: Vec<(Criterion, CaseRecord)> = Vec::new();
        let mut c = base.clone();
        c.abuse.injury = true;
        cases.push((Criterion::InjuryNeglectSexual, c));
        let mut c = base.clone();
        c.abuse.types.push(AbuseType::Neglect);
        cases.push((Criterion::InjuryNeglectSexual, c));
        let mut c = base.clone();
        c.abuse.types = vec![AbuseType::Sexual];
        cases.push((Criterion::InjuryNeglectSexual, c));
        let mut c = base.clone();
        c.safety_confirmed_at = None;
        cases.push((Criterion::SafetyUnconfirmed48h, c));
        let mut c = base.clone();
        c.safety_confirmed_at = Some(c.intake_at + Duration::hours(50));
        cases.push((Criterion::SafetyUnconfirmed48h, c));
        let mut c = base.clone();
        c.status = Status::ReturnedHome;
        cases.push((Criterion::ReturnHome, c));
        for (criterion, c) in &cases {
            for unit in ["kagacho", "tsurumi", "hq"] {
                let d = evaluate(&w, c, unit, NOW).unwrap();
                assert_eq!(d.criterion, Some(*criterion), "{unit}");
            }
        }
        // Missing is not among Yokohama's criteria.
        let mut c = base.clone();
        c.flags.missing = true;
        assert_eq!(evaluate(&w, &c, "kagacho", NOW), None);
    }

    #[test]
    fn first_listed_criterion_is_reported() {
        let w = world();
        let mut c = case("yokohama-central", "141046");
        c.status = Status::ReturnedHome;
        c.abuse.injury = true;
        let d = evaluate(&w, &c, "kagacho", NOW).unwrap();
        assert_eq!(d.criterion, Some(Criterion::InjuryNeglectSexual));
    }

    #[test]
    fn safety_criterion_takes_effect_when_48_hours_pass() {
        let w = world();
        let mut c = case("yokohama-central", "141046");
        c.safety_confirmed_at = None;
        let at_47h = c.intake_at + Duration::hours(47);
        let at_48h = c.intake_at + Duration::hours(48);
        assert_eq!(evaluate(&w, &c, "kagacho", at_47h), None);
        assert_eq!(evaluate(&w, &c, "kagacho", at_48h - Duration::nanoseconds(1)), None);
        let d = evaluate(&w, &c, "kagacho", at_48h).unwrap();
        assert_eq!(d.criterion, Some(Criterion::SafetyUnconfirmed48h));
        assert_eq!(next_change(&w, &c, at_47h), Some(at_48h));
        // Confirmed exactly at the deadline: within 48 hours.
        c.safety_confirmed_at = Some(at_48h);
        assert_eq!(evaluate(&w, &c, "kagacho", NOW), None);
        assert_eq!(next_change(&w, &c, at_47h), None);
    }

    #[test]
    fn closed_case_leaves_every_view() {
        let w = world();
        let mut c = case("kanagawa-central", "142123");
        c.status = Status::Closed;
        for unit in UNITS {
            assert_eq!(evaluate(&w, &c, unit, NOW), None, "{unit}");
        }
    }

    #[test]
    fn nothing_is_shared_before_the_agreement_takes_effect() {
        let w = world();
        let c = case("kanagawa-central", "142123");
        let start = datetime!(2026-04-01 00:00 +09:00);
        for unit in UNITS {
            assert_eq!(evaluate(&w, &c, unit, start - Duration::seconds(1)), None, "{unit}");
            assert!(evaluate(&w, &c, unit, start).is_some(), "{unit}");
        }
        assert_eq!(next_change(&w, &c, start - Duration::days(1)), Some(start));
    }

    #[test]
    fn unknown_center_or_unit_gets_nothing() {
        let w = world();
        assert_eq!(evaluate(&w, &case("nowhere", "142123"), "hq", NOW), None);
        assert_eq!(evaluate(&w, &case("kanagawa-central", "142123"), "ginza", NOW), None);
    }

    #[test]
    fn highest_version_in_force_applies() {
        let mut w = world();
        let text = std::fs::read_to_string(Path::new(DIR).join("agreements/kanagawa-2026.toml"))
            .unwrap()
            .replacen("version = 1", "version = 2", 1)
            .replacen(
                "effective_from = 2026-04-01T00:00:00+09:00",
                "effective_from = 2026-06-01T00:00:00+09:00",
                1,
            )
            .replacen("\"household\", \"care_setting\",", "\"household\",", 1);
        w.agreements
            .push(Agreement::from_toml(&text, "v2", &w.registry).unwrap());
        let c = case("kanagawa-central", "142123");
        let d = evaluate(&w, &c, "hq", NOW).unwrap();
        assert_eq!((d.agreement_version, d.fields), (1, hq_view()));
        let later = datetime!(2026-06-01 00:00 +09:00);
        let d = evaluate(&w, &c, "hq", later).unwrap();
        assert_eq!(d.agreement_version, 2);
        assert_eq!(d.fields, hq_view().without(F::CareSetting));
        assert_eq!(d.clause, "kanagawa-2026@v2/providers/14/all/views/hq");
    }

    #[test]
    fn covering_station_without_a_view_falls_back_to_prefecture_stations() {
        let mut w = world();
        let text = std::fs::read_to_string(Path::new(DIR).join("agreements/kanagawa-2026.toml")).unwrap();
        let start = text.find("covering_station = [").unwrap();
        let end = start + text[start..].find(']').unwrap() + 1;
        let text = format!("{}{}", &text[..start], &text[end..]);
        w.agreements = vec![Agreement::from_toml(&text, "a", &w.registry).unwrap()];
        let d = evaluate(&w, &case("kanagawa-central", "142123"), "atsugi", NOW).unwrap();
        assert_eq!(
            (d.audience, d.fields),
            (Audience::PrefectureStations, prefecture_stations_view())
        );
        assert!(d.clause.ends_with("/views/prefecture_stations"));
    }

    #[test]
    fn evaluation_is_deterministic() {
        let w = world();
        let mut c = case("yokohama-central", "141046");
        c.abuse.injury = true;
        let first: Vec<_> = UNITS.iter().map(|u| evaluate(&w, &c, u, NOW)).collect();
        let again: Vec<_> = UNITS.iter().map(|u| evaluate(&world(), &c, u, NOW)).collect();
        assert_eq!(first, again);
    }

    #[test]
    fn predicates_narrow_a_providers_scope() {
        let mut w = world();
        let text = std::fs::read_to_string(Path::new(DIR).join("agreements/kanagawa-2026.toml"))
            .unwrap()
            .replacen(
                "operator = \"142018\"\nscope = \"all\"",
                "operator = \"142018\"\nscope = \"all\"\n[[providers.predicates]]\nfield = \"risk_level\"\nin = [\"high\"]\n[[providers.predicates]]\nfield = \"abuse.types\"\nnot_in = [\"sexual\"]",
                1,
            );
        w.agreements = vec![Agreement::from_toml(&text, "a", &w.registry).unwrap()];
        let mut c = case("yokosuka", "142018");
        let reason = explain(&w, &c, "yokosuka", NOW).unwrap_err();
        assert_eq!(
            reason.to_string(),
            "kanagawa-2026@v1/providers/142018/all: the case does not meet the predicate `risk_level in [high]`"
        );
        c.risk_level = Some(RiskLevel::High);
        assert!(evaluate(&w, &c, "yokosuka", NOW).is_some());
        c.abuse.types.push(AbuseType::Sexual);
        assert_eq!(evaluate(&w, &c, "yokosuka", NOW), None);
        c.abuse.types.clear();
        c.risk_level = None;
        assert_eq!(
            evaluate(&w, &c, "yokosuka", NOW),
            None,
            "an absent risk level meets no predicate"
        );
        // Other providers are untouched.
        assert!(evaluate(&w, &case("kanagawa-central", "142123"), "atsugi", NOW).is_some());
    }

    #[test]
    fn reasons_name_the_rule_and_never_case_values() {
        let w = world();
        let c = case("kawasaki-central", "141313");
        let reason = explain(&w, &c, "kawasaki", NOW).unwrap_err();
        assert!(
            matches!(
                reason,
                NoView::NotOptedIn {
                    state: ConsentState::Asked,
                    ..
                }
            ),
            "{reason}"
        );
        assert!(!reason.to_string().contains("山田"));
        assert_eq!(
            explain(&w, &case("sagamihara", "141534"), "hq", NOW).unwrap_err(),
            NoView::NotAProvider {
                operator: "141500".into()
            }
        );
        assert_eq!(
            explain(&w, &case("kanagawa-central", "142123"), "ginza", NOW).unwrap_err(),
            NoView::UnknownUnit("ginza".into())
        );
    }
}
