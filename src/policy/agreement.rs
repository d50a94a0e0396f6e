//! Sharing agreements (SPEC §6): one TOML file per version, parsed and validated against the
//! registry. An `Agreement` value is always a valid one.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use time::{Month, OffsetDateTime, UtcOffset};
use toml::Spanned;

use super::fields::{DEFAULT_SUMMARY, FieldPath, FieldSet};
use crate::registry::Registry;
use crate::registry::codes::PrefectureCode;
use crate::registry::error::PolicyError;
use crate::text::is_identifier;

/// Who receives a view, relative to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Audience {
    /// The station whose area contains the child's address.
    CoveringStation,
    /// Any other station of the force.
    PrefectureStations,
    Hq,
}

impl Audience {
    pub const ALL: [Audience; 3] = [Audience::CoveringStation, Audience::PrefectureStations, Audience::Hq];

    pub fn as_str(self) -> &'static str {
        match self {
            Audience::CoveringStation => "covering_station",
            Audience::PrefectureStations => "prefecture_stations",
            Audience::Hq => "hq",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A share criterion; the first three are the national minimum (2018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Criterion {
    /// 外傷・ネグレクト・性的虐待
    InjuryNeglectSexual,
    /// 48時間以内に安全確認できない
    SafetyUnconfirmed48h,
    /// 家庭復帰
    ReturnHome,
    Missing,
}

impl Criterion {
    pub const ALL: [Criterion; 4] = [
        Criterion::InjuryNeglectSexual,
        Criterion::SafetyUnconfirmed48h,
        Criterion::ReturnHome,
        Criterion::Missing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::InjuryNeglectSexual => "injury_neglect_sexual",
            Criterion::SafetyUnconfirmed48h => "safety_unconfirmed_48h",
            Criterion::ReturnHome => "return_home",
            Criterion::Missing => "missing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The case fields a predicate may test: small enumerations, flags and the address's
/// municipality, never free text (a predicate on a name would be a search, not a rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PredicateField {
    RiskLevel,
    Status,
    AbuseTypes,
    AbuseInjury,
    FlagsMissing,
    FlagsDv,
    ChildSex,
    ChildMunicipality,
}

impl PredicateField {
    pub const ALL: [PredicateField; 8] = [
        PredicateField::RiskLevel,
        PredicateField::Status,
        PredicateField::AbuseTypes,
        PredicateField::AbuseInjury,
        PredicateField::FlagsMissing,
        PredicateField::FlagsDv,
        PredicateField::ChildSex,
        PredicateField::ChildMunicipality,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PredicateField::RiskLevel => "risk_level",
            PredicateField::Status => "status",
            PredicateField::AbuseTypes => "abuse.types",
            PredicateField::AbuseInjury => "abuse.injury",
            PredicateField::FlagsMissing => "flags.missing",
            PredicateField::FlagsDv => "flags.dv",
            PredicateField::ChildSex => "child.sex",
            PredicateField::ChildMunicipality => "child.address.municipality_code",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Booleans take `equals`; the others take `in` / `not_in`.
    pub fn is_bool(self) -> bool {
        matches!(
            self,
            PredicateField::AbuseInjury | PredicateField::FlagsMissing | PredicateField::FlagsDv
        )
    }

    /// The values `in` / `not_in` may list; `None` for municipality codes (any valid code).
    pub fn values(self) -> Option<&'static [&'static str]> {
        match self {
            PredicateField::RiskLevel => Some(&["high", "medium", "low"]),
            PredicateField::Status => Some(&[
                "intake",
                "investigating",
                "temporary_protection",
                "in_care",
                "returned_home",
                "closed",
            ]),
            PredicateField::AbuseTypes => Some(&["physical", "neglect", "sexual", "psychological"]),
            PredicateField::ChildSex => Some(&["male", "female", "unknown"]),
            PredicateField::ChildMunicipality => None,
            PredicateField::AbuseInjury | PredicateField::FlagsMissing | PredicateField::FlagsDv => Some(&[]),
        }
    }
}

impl fmt::Display for PredicateField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a predicate asks of its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// The value is one of these (for `abuse.types`: any listed type is present). An absent
    /// optional value (no `risk_level`) is in no list.
    In(Vec<String>),
    /// The value is none of these (for `abuse.types`: no listed type is present). An absent
    /// optional value fails too: a rule about a value cannot be met without the value.
    NotIn(Vec<String>),
    Equals(bool),
}

/// One condition over a case field, e.g. `risk_level in ["high"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    pub field: PredicateField,
    pub test: Test,
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.test {
            Test::In(v) => write!(f, "{} in [{}]", self.field, v.join(", ")),
            Test::NotIn(v) => write!(f, "{} not in [{}]", self.field, v.join(", ")),
            Test::Equals(b) => write!(f, "{} = {b}", self.field),
        }
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of a provider's cases the agreement shares.
// Explicit predicates over case fields (SPEC §6) will be a further variant or an extra list
// next to the criteria; `scope` is kept a tagged choice in the file for that reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// 全件共有
    All,
    /// The cases meeting at least one criterion, tried in this order; never empty, no repeats.
    Criteria(Vec<Criterion>),
}

impl Scope {
    /// The word used in clauses: `all` or `criteria`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Criteria(_) => "criteria",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// An operator id of the registry, in the agreement's prefecture.
    pub operator: String,
    pub scope: Scope,
    /// Further conditions a case must meet, all of them, on top of the scope. They only ever
    /// narrow what the scope shares, so a mistaken predicate can hide a case but never expose one.
    pub predicates: Vec<Predicate>,
}

/// One version of a sharing agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    id: String,
    version: u32,
    title: String,
    notes: String,
    prefecture: PrefectureCode,
    force: String,
    effective_from: OffsetDateTime,
    effective_until: Option<OffsetDateTime>,
    providers: Vec<Provider>,
    views: [Option<FieldSet>; 3],
    /// The summary sets the file names (`[summary]`); `None`: the default for that audience.
    summaries: [Option<FieldSet>; 3],
    dv_address_audiences: BTreeSet<Audience>,
}

impl Agreement {
    pub fn load(path: &Path, registry: &Registry) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, &e))?;
        Self::from_toml(&text, &path.display().to_string(), registry)
    }

    /// Parses one agreement version and validates it against the registry; `source` labels
    /// errors (a path, or e.g. `"PUT body"`).
    pub fn from_toml(text: &str, source: &str, registry: &Registry) -> Result<Self, PolicyError> {
        let raw: RawAgreement = toml::from_str(text).map_err(|e| PolicyError::toml(source, text, &e))?;
        Checker { text, source, registry }.check(raw)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn title(&self) -> &str {
        &self.title
    }
    pub fn notes(&self) -> &str {
        &self.notes
    }
    pub fn prefecture(&self) -> PrefectureCode {
        self.prefecture
    }
    pub fn force(&self) -> &str {
        &self.force
    }
    pub fn effective_from(&self) -> OffsetDateTime {
        self.effective_from
    }
    pub fn effective_until(&self) -> Option<OffsetDateTime> {
        self.effective_until
    }
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    pub fn provider(&self, operator: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.operator == operator)
    }

    /// The fields an audience may see; `None` when the agreement gives it no view.
    pub fn view(&self, audience: Audience) -> Option<FieldSet> {
        self.views.get(audience as usize).copied().flatten()
    }

    /// What lists, search and the stream show an audience of a case (the full view goes only
    /// to an officer who opens it): the `[summary]` set the agreement names, else
    /// `DEFAULT_SUMMARY` cut to the audience's view. Always within the view (`implied`).
    pub fn summary(&self, audience: Audience) -> FieldSet {
        let view = self.view(audience).unwrap_or(FieldSet::EMPTY).implied();
        match self.summaries.get(audience as usize).copied().flatten() {
            Some(named) => named.intersection(view),
            None => DEFAULT_SUMMARY.iter().copied().filter(|f| view.contains(*f)).collect(),
        }
    }

    /// Whether the agreement names the audience's summary itself (else the default applies).
    pub fn names_summary(&self, audience: Audience) -> bool {
        self.summaries.get(audience as usize).is_some_and(Option::is_some)
    }

    /// Whether a DV-flagged case's address may go to this audience.
    pub fn dv_address_allowed(&self, audience: Audience) -> bool {
        self.dv_address_audiences.contains(&audience)
    }

    /// An agreement built directly, bypassing the file format (property tests generate
    /// thousands of worlds; parsing each from text would dominate their run time).
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        id: &str,
        version: u32,
        prefecture: PrefectureCode,
        force: &str,
        effective_from: OffsetDateTime,
        effective_until: Option<OffsetDateTime>,
        providers: Vec<Provider>,
        views: [Option<FieldSet>; 3],
        dv_address_audiences: BTreeSet<Audience>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            version,
            title: "test".into(),
            notes: String::new(),
            prefecture,
            force: force.to_owned(),
            effective_from,
            effective_until,
            providers,
            views,
            summaries: [None; 3],
            dv_address_audiences,
        }
    }

    /// The same agreement with explicit summary sets (property tests).
    #[cfg(test)]
    pub(crate) fn with_summaries(mut self, summaries: [Option<FieldSet>; 3]) -> Self {
        self.summaries = summaries;
        self
    }

    /// `effective_from <= now < effective_until`.
    pub fn is_in_force(&self, now: OffsetDateTime) -> bool {
        self.effective_from <= now && self.effective_until.is_none_or(|until| now < until)
    }
}

// The file as written; spans are kept for the validation messages.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgreement {
    id: Spanned<String>,
    version: Spanned<i64>,
    title: Spanned<String>,
    #[serde(default)]
    notes: String,
    prefecture: Spanned<String>,
    force: Spanned<String>,
    effective_from: Spanned<toml::value::Datetime>,
    effective_until: Option<Spanned<toml::value::Datetime>>,
    #[serde(default)]
    providers: Vec<RawProvider>,
    views: RawViews,
    #[serde(default)]
    summary: Option<RawViews>,
    #[serde(default)]
    dv: RawDv,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    operator: Spanned<String>,
    scope: Spanned<RawScope>,
    #[serde(default)]
    predicates: Vec<Spanned<RawPredicate>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPredicate {
    field: Spanned<String>,
    #[serde(rename = "in")]
    in_: Option<Spanned<Vec<Spanned<String>>>>,
    not_in: Option<Spanned<Vec<Spanned<String>>>>,
    equals: Option<Spanned<bool>>,
}

enum RawScope {
    Word(String),
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawScope;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"all\" or a list of criteria")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawScope, E> {
                Ok(RawScope::Word(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawScope, A::Error> {
                let mut list = Vec::new();
                while let Some(s) = seq.next_element::<Spanned<String>>()? {
                    list.push(s);
                }
                Ok(RawScope::List(list))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawViews {
    covering_station: Option<Spanned<Vec<Spanned<String>>>>,
    prefecture_stations: Option<Spanned<Vec<Spanned<String>>>>,
    hq: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDv {
    #[serde(default)]
    address_audiences: Vec<Spanned<String>>,
}

struct Checker<'a> {
    text: &'a str,
    source: &'a str,
    registry: &'a Registry,
}

impl Checker<'_> {
    fn err<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> PolicyError {
        PolicyError::at(self.source, self.text, at.span(), message)
    }

    fn check(&self, raw: RawAgreement) -> Result<Agreement, PolicyError> {
        let id = raw.id.get_ref();
        if !is_identifier(id) {
            return Err(self.err(
                &raw.id,
                format!("agreement id `{id}` must match [A-Za-z0-9._-]{{1,64}}"),
            ));
        }
        let version = u32::try_from(*raw.version.get_ref())
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| self.err(&raw.version, "version must be an integer from 1"))?;
        if raw.title.get_ref().trim().is_empty() {
            return Err(self.err(&raw.title, "title must not be empty"));
        }

        let prefecture = PrefectureCode::parse(raw.prefecture.get_ref()).map_err(|e| {
            self.err(
                &raw.prefecture,
                format!("prefecture `{}`: {e}", raw.prefecture.get_ref()),
            )
        })?;
        if self.registry.prefecture(prefecture).is_none() {
            return Err(self.err(
                &raw.prefecture,
                format!("prefecture `{prefecture}` is not in the registry"),
            ));
        }
        let force = raw.force.get_ref();
        match self.registry.force(force) {
            None => {
                return Err(self.err(&raw.force, format!("force `{force}` is not in the registry")));
            }
            Some(f) if f.prefecture != prefecture => {
                return Err(self.err(
                    &raw.force,
                    format!(
                        "force `{force}` belongs to prefecture {}, not {prefecture}",
                        f.prefecture
                    ),
                ));
            }
            Some(_) => {}
        }

        let effective_from = self.datetime(&raw.effective_from, "effective_from")?;
        let effective_until = match &raw.effective_until {
            None => None,
            Some(u) => {
                let until = self.datetime(u, "effective_until")?;
                if until <= effective_from {
                    return Err(self.err(u, "effective_until must be later than effective_from"));
                }
                Some(until)
            }
        };

        let mut providers: Vec<Provider> = Vec::with_capacity(raw.providers.len());
        for p in &raw.providers {
            let operator = p.operator.get_ref();
            match self.registry.operator(operator) {
                None => {
                    return Err(self.err(&p.operator, format!("operator `{operator}` is not in the registry")));
                }
                Some(o) if o.prefecture != prefecture => {
                    return Err(self.err(
                        &p.operator,
                        format!(
                            "operator `{operator}` is in prefecture {}, not {prefecture}",
                            o.prefecture
                        ),
                    ));
                }
                Some(_) => {}
            }
            if providers.iter().any(|q| q.operator == *operator) {
                return Err(self.err(&p.operator, format!("provider `{operator}` is listed twice")));
            }
            let mut predicates = Vec::with_capacity(p.predicates.len());
            for raw in &p.predicates {
                predicates.push(self.predicate(raw)?);
            }
            providers.push(Provider {
                operator: operator.clone(),
                scope: self.scope(&p.scope)?,
                predicates,
            });
        }

        let views = [
            self.view(raw.views.covering_station.as_ref(), Audience::CoveringStation)?,
            self.view(raw.views.prefecture_stations.as_ref(), Audience::PrefectureStations)?,
            self.view(raw.views.hq.as_ref(), Audience::Hq)?,
        ];

        let summaries = match &raw.summary {
            None => [None; 3],
            Some(s) => [
                self.summary(s.covering_station.as_ref(), Audience::CoveringStation, &views)?,
                self.summary(s.prefecture_stations.as_ref(), Audience::PrefectureStations, &views)?,
                self.summary(s.hq.as_ref(), Audience::Hq, &views)?,
            ],
        };

        let mut dv_address_audiences = BTreeSet::new();
        for a in &raw.dv.address_audiences {
            let audience = Audience::parse(a.get_ref())
                .ok_or_else(|| self.err(a, format!("unknown audience `{}` in dv.address_audiences", a.get_ref())))?;
            if !dv_address_audiences.insert(audience) {
                return Err(self.err(a, format!("audience `{audience}` is listed twice")));
            }
        }

        Ok(Agreement {
            id: id.clone(),
            version,
            title: raw.title.into_inner(),
            notes: raw.notes,
            prefecture,
            force: force.clone(),
            effective_from,
            effective_until,
            providers,
            views,
            summaries,
            dv_address_audiences,
        })
    }

    fn datetime(&self, at: &Spanned<toml::value::Datetime>, key: &str) -> Result<OffsetDateTime, PolicyError> {
        let invalid = || {
            self.err(
                at,
                format!("{key} must be an RFC 3339 date-time with a UTC offset, e.g. 2026-04-01T00:00:00+09:00"),
            )
        };
        let dt = at.get_ref();
        let (Some(d), Some(t), Some(o)) = (dt.date, dt.time, dt.offset) else {
            return Err(invalid());
        };
        let minutes = match o {
            toml::value::Offset::Z => 0,
            toml::value::Offset::Custom { minutes } => i32::from(minutes),
        };
        let date = Month::try_from(d.month)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(i32::from(d.year), m, d.day).ok());
        let clock = time::Time::from_hms_nano(t.hour, t.minute, t.second, t.nanosecond).ok();
        let offset = UtcOffset::from_whole_seconds(minutes * 60).ok();
        match (date, clock, offset) {
            (Some(date), Some(clock), Some(offset)) => {
                Ok(time::PrimitiveDateTime::new(date, clock).assume_offset(offset))
            }
            _ => Err(invalid()),
        }
    }

    fn scope(&self, scope: &Spanned<RawScope>) -> Result<Scope, PolicyError> {
        match scope.get_ref() {
            RawScope::Word(w) if w == "all" => Ok(Scope::All),
            RawScope::Word(w) => Err(self.err(scope, format!("scope `{w}`: expected \"all\" or a list of criteria"))),
            RawScope::List(list) if list.is_empty() => {
                Err(self.err(scope, "scope lists no criteria; share nothing by omitting the provider"))
            }
            RawScope::List(list) => {
                let mut criteria = Vec::with_capacity(list.len());
                for w in list {
                    let c = Criterion::parse(w.get_ref()).ok_or_else(|| {
                        let known: Vec<_> = Criterion::ALL.iter().map(|c| c.as_str()).collect();
                        self.err(
                            w,
                            format!("unknown criterion `{}` (known: {})", w.get_ref(), known.join(", ")),
                        )
                    })?;
                    if criteria.contains(&c) {
                        return Err(self.err(w, format!("criterion `{c}` is listed twice")));
                    }
                    criteria.push(c);
                }
                Ok(Scope::Criteria(criteria))
            }
        }
    }

    fn predicate(&self, raw: &Spanned<RawPredicate>) -> Result<Predicate, PolicyError> {
        let p = raw.get_ref();
        let name = p.field.get_ref();
        let field = PredicateField::parse(name).ok_or_else(|| {
            let known: Vec<_> = PredicateField::ALL.iter().map(|f| f.as_str()).collect();
            self.err(
                &p.field,
                format!(
                    "predicate field `{name}` cannot be tested (testable: {})",
                    known.join(", ")
                ),
            )
        })?;
        let test = match (&p.in_, &p.not_in, &p.equals) {
            (Some(list), None, None) => Test::In(self.predicate_values(field, list)?),
            (None, Some(list), None) => Test::NotIn(self.predicate_values(field, list)?),
            (None, None, Some(b)) if field.is_bool() => Test::Equals(*b.get_ref()),
            (None, None, Some(b)) => {
                return Err(self.err(b, format!("`{field}` is not a yes/no field; use `in` or `not_in`")));
            }
            _ => {
                return Err(self.err(
                    raw,
                    format!("predicate on `{field}` needs exactly one of `in`, `not_in` or `equals`"),
                ));
            }
        };
        Ok(Predicate { field, test })
    }

    fn predicate_values(
        &self,
        field: PredicateField,
        list: &Spanned<Vec<Spanned<String>>>,
    ) -> Result<Vec<String>, PolicyError> {
        if field.is_bool() {
            return Err(self.err(list, format!("`{field}` is a yes/no field; use `equals = true|false`")));
        }
        if list.get_ref().is_empty() {
            return Err(self.err(list, format!("predicate on `{field}` lists no values")));
        }
        let mut values: Vec<String> = Vec::with_capacity(list.get_ref().len());
        for v in list.get_ref() {
            let value = v.get_ref();
            let known = match field.values() {
                Some(allowed) => allowed.contains(&value.as_str()),
                None => crate::registry::codes::MunicipalityCode::parse(value).is_ok(),
            };
            if !known {
                let hint = match field.values() {
                    Some(allowed) => format!("one of {}", allowed.join(", ")),
                    None => "a 6-digit JIS X 0402 code with a valid check digit".to_owned(),
                };
                return Err(self.err(v, format!("`{value}` is not a value of `{field}` (expected {hint})")));
            }
            if values.contains(value) {
                return Err(self.err(v, format!("value `{value}` is listed twice")));
            }
            values.push(value.clone());
        }
        Ok(values)
    }

    /// A `[summary]` entry: a set of field paths, each within the audience's own view.
    fn summary(
        &self,
        list: Option<&Spanned<Vec<Spanned<String>>>>,
        audience: Audience,
        views: &[Option<FieldSet>; 3],
    ) -> Result<Option<FieldSet>, PolicyError> {
        let Some(list) = list else {
            return Ok(None);
        };
        let Some(view) = views.get(audience as usize).copied().flatten() else {
            return Err(self.err(
                list,
                format!(
                    "summary.{audience} is given but views.{audience} is not; a summary narrows its audience's view"
                ),
            ));
        };
        let within = |item: &Spanned<String>, path: FieldPath| {
            if view.implied().contains(path) {
                return Ok(());
            }
            Err(self.err(
                item,
                format!("summary.{audience} lists `{path}`, which views.{audience} does not grant; a summary may only narrow the view"),
            ))
        };
        self.field_list(list, &format!("summary.{audience}"), within).map(Some)
    }

    fn view(
        &self,
        list: Option<&Spanned<Vec<Spanned<String>>>>,
        audience: Audience,
    ) -> Result<Option<FieldSet>, PolicyError> {
        let Some(list) = list else {
            return Ok(None);
        };
        if list.get_ref().is_empty() {
            return Err(self.err(
                list,
                format!("views.{audience} is empty; omit it to give that audience no view"),
            ));
        }
        self.field_list(list, &format!("views.{audience}"), |_, _| Ok(()))
            .map(Some)
    }

    /// A list of field paths, each known and listed once, and each accepted by `check`.
    fn field_list(
        &self,
        list: &Spanned<Vec<Spanned<String>>>,
        table: &str,
        check: impl Fn(&Spanned<String>, FieldPath) -> Result<(), PolicyError>,
    ) -> Result<FieldSet, PolicyError> {
        let mut set = FieldSet::EMPTY;
        for item in list.get_ref() {
            let path = FieldPath::parse(item.get_ref())
                .ok_or_else(|| self.err(item, format!("unknown field path `{}` in {table}", item.get_ref())))?;
            if set.contains(path) {
                return Err(self.err(item, format!("field `{path}` is listed twice in {table}")));
            }
            check(item, path)?;
            set.insert(path);
        }
        Ok(set)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

    pub(crate) fn registry() -> Registry {
        Registry::load(&Path::new(DIR).join("registry.toml")).unwrap()
    }

    pub(crate) fn demo_text() -> String {
        std::fs::read_to_string(Path::new(DIR).join("agreements/kanagawa-2026.toml")).unwrap()
    }

    fn refused(text: &str) -> PolicyError {
        Agreement::from_toml(text, "a.toml", &registry()).unwrap_err()
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn demo_agreement_states_the_spec() {
        let a = Agreement::from_toml(&demo_text(), "a.toml", &registry()).unwrap();
        assert_eq!((a.id(), a.version(), a.force()), ("kanagawa-2026", 1, "kanagawa-pp"));
        assert_eq!(a.prefecture().to_string(), "14");
        assert_eq!(a.effective_from(), datetime!(2026-04-01 00:00 +09:00));
        assert_eq!(a.effective_until(), None);
        assert!(a.title().contains("神奈川県警察"));
        assert_eq!(a.provider("14").unwrap().scope, Scope::All);
        assert_eq!(a.provider("142018").unwrap().scope, Scope::All);
        assert_eq!(a.provider("141305").unwrap().scope, Scope::All);
        assert_eq!(
            a.provider("141003").unwrap().scope,
            Scope::Criteria(vec![
                Criterion::InjuryNeglectSexual,
                Criterion::SafetyUnconfirmed48h,
                Criterion::ReturnHome
            ])
        );
        assert!(a.provider("141500").is_none(), "Sagamihara has not been asked");
        for audience in Audience::ALL {
            let view = a.view(audience).unwrap();
            assert!(!view.contains(FieldPath::Assessment), "{audience}");
            assert!(!a.dv_address_allowed(audience), "{audience}");
        }
    }

    #[test]
    fn unknown_field_path_is_named_with_its_line() {
        let text = demo_text().replacen("\"risk_level\"", "\"risk_score\"", 1);
        let e = refused(&text);
        assert_eq!(e.line, Some(line_of(&text, "risk_score")), "{e}");
        assert!(e.message.contains("unknown field path `risk_score`"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let text = demo_text().replacen("version = 1", "version = 1\nstatus = \"draft\"", 1);
        let e = refused(&text);
        assert_eq!(e.line, Some(line_of(&text, "status = \"draft\"")), "{e}");
        assert!(e.message.contains("status"), "{e}");
    }

    #[test]
    fn providers_must_exist_in_the_prefecture_once() {
        let add = |extra: &str| format!("{}\n[[providers]]\n{extra}\n", demo_text());
        let e = refused(&add("operator = \"131016\"\nscope = \"all\""));
        assert!(e.message.contains("operator `131016` is not in the registry"), "{e}");
        let e = refused(&add("operator = \"14\"\nscope = \"all\""));
        assert!(e.message.contains("provider `14` is listed twice"), "{e}");
        let text = add("operator = \"141500\"\nscope = [\n  \"return_home\",\n  \"weekends\",\n]");
        let e = refused(&text);
        assert!(e.message.contains("unknown criterion `weekends`"), "{e}");
        assert_eq!(e.line, Some(line_of(&text, "\"weekends\"")), "{e}");
        let e = refused(&add("operator = \"141500\"\nscope = []"));
        assert!(e.message.contains("no criteria"), "{e}");
        let e = refused(&add("operator = \"141500\"\nscope = \"some\""));
        assert!(e.message.contains("scope `some`"), "{e}");
    }

    #[test]
    fn force_must_belong_to_the_prefecture() {
        let e = refused(&demo_text().replacen("force = \"kanagawa-pp\"", "force = \"tokyo-mpd\"", 1));
        assert!(e.message.contains("force `tokyo-mpd`"), "{e}");
    }

    #[test]
    fn empty_view_and_duplicate_field_are_refused() {
        let text = demo_text();
        let start = text.find("prefecture_stations = [").unwrap();
        let end = start + text[start..].find(']').unwrap() + 1;
        let emptied = format!("{}prefecture_stations = []{}", &text[..start], &text[end..]);
        let e = refused(&emptied);
        assert!(e.message.contains("views.prefecture_stations is empty"), "{e}");
        let doubled = text.replacen("\"abuse\",", "\"abuse\", \"abuse\",", 1);
        let e = refused(&doubled);
        assert!(e.message.contains("`abuse` is listed twice"), "{e}");
    }

    #[test]
    fn validity_must_be_an_offset_interval() {
        let from = "effective_from = 2026-04-01T00:00:00+09:00";
        let e =
            refused(&demo_text().replacen(from, &format!("{from}\neffective_until = 2026-03-31T00:00:00+09:00"), 1));
        assert!(e.message.contains("effective_until must be later"), "{e}");
        let e = refused(&demo_text().replacen(from, "effective_from = 2026-04-01T00:00:00", 1));
        assert!(e.message.contains("UTC offset"), "{e}");
        let e = refused(&demo_text().replacen(from, "effective_from = \"2026-04-01T00:00:00+09:00\"", 1));
        assert_eq!(e.line, Some(line_of(&demo_text(), "effective_from")), "{e}");
        let ok = demo_text().replacen(from, &format!("{from}\neffective_until = 2027-04-01T00:00:00Z"), 1);
        let a = Agreement::from_toml(&ok, "a.toml", &registry()).unwrap();
        assert!(a.is_in_force(datetime!(2027-03-31 23:59 UTC)));
        assert!(!a.is_in_force(datetime!(2027-04-01 00:00 UTC)));
        assert!(!a.is_in_force(datetime!(2026-03-31 14:59:59 UTC)));
        assert!(a.is_in_force(datetime!(2026-03-31 15:00 UTC)));
    }

    #[test]
    fn version_must_be_positive() {
        let e = refused(&demo_text().replacen("version = 1", "version = 0", 1));
        assert!(e.message.contains("version"), "{e}");
    }

    #[test]
    fn summary_defaults_to_the_row_and_never_exceeds_the_view() {
        let a = Agreement::from_toml(&demo_text(), "a.toml", &registry()).unwrap();
        for audience in Audience::ALL {
            let view = a.view(audience).unwrap();
            assert!(a.summary(audience).is_subset_of(view.implied()), "{audience}");
        }
        let names = |s: FieldSet| s.iter().map(FieldPath::as_str).collect::<Vec<_>>().join(",");
        let covering = a.summary(Audience::CoveringStation);
        assert!(covering.contains(FieldPath::ChildMunicipality) && !covering.contains(FieldPath::ChildAddress));
        assert!(!covering.contains(FieldPath::GuardiansName), "{}", names(covering));
        // The other stations' view grants no risk level, so their summary has none either.
        assert!(!a.summary(Audience::PrefectureStations).contains(FieldPath::RiskLevel));
    }

    #[test]
    fn a_named_summary_applies_and_must_narrow_the_view() {
        let text = format!("{}\n[summary]\nhq = [\"child.name\", \"risk_level\"]\n", demo_text());
        let a = Agreement::from_toml(&text, "a.toml", &registry()).unwrap();
        assert_eq!(
            a.summary(Audience::Hq),
            FieldSet::EMPTY.with(FieldPath::ChildName).with(FieldPath::RiskLevel)
        );
        assert!(a.names_summary(Audience::Hq) && !a.names_summary(Audience::CoveringStation));
        let text = format!(
            "{}\n[summary]\nprefecture_stations = [\"child.name\", \"risk_level\"]\n",
            demo_text()
        );
        let e = refused(&text);
        assert!(
            e.message.contains(
                "summary.prefecture_stations lists `risk_level`, which views.prefecture_stations does not grant"
            ),
            "{e}"
        );
        assert_eq!(e.line, Some(text.lines().count()), "{e}");
        let e = refused(&format!("{}\n[summary]\nhq = [\"risk_score\"]\n", demo_text()));
        assert!(
            e.message.contains("unknown field path `risk_score` in summary.hq"),
            "{e}"
        );
        let e = refused(&format!("{}\n[summary]\nlists = [\"child.name\"]\n", demo_text()));
        assert!(e.message.contains("lists"), "{e}");
    }

    #[test]
    fn assessment_is_allowed_when_listed_explicitly() {
        let text = demo_text().replacen("hq = [", "hq = [\"assessment\", ", 1);
        let a = Agreement::from_toml(&text, "a.toml", &registry()).unwrap();
        assert!(a.view(Audience::Hq).unwrap().contains(FieldPath::Assessment));
    }
}
