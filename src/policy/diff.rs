//! What a new agreement version gives anyone that the old one did not, and what it takes away,
//! decided exhaustively rather than by sampling. The agreement language is finite: a provider's
//! scope (all, or criteria) and predicates test a handful of small enumerations and flags of a
//! case; views, summaries and the DV rule depend only on the audience and the DV flag. So every
//! class of case the language can tell apart — risk level (or none) × status × each subset of
//! abuse types × injury × missing × DV × sex × past the 48-hour rule or not × each municipality a
//! predicate names (and one no predicate names) — is built as a real case record and decided
//! under both versions, for every provider either version names, every audience and every
//! consent state. (What AWS's CheckNoNewAccess and Cedar's `implies` analysis give, without a
//! solver.) Pure: two agreements and the registry in, the gains and losses out.

use std::collections::{BTreeMap, HashSet};

use time::{Duration, OffsetDateTime};

use super::agreement::{Agreement, Audience, Criterion, PredicateField, Provider, Scope, Test};
use super::consent::ConsentState;
use super::fields::{FieldPath, FieldSet};
use crate::cases::record::{Abuse, AbuseType, Address, CaseId, CaseRecord, Child, Flags, RiskLevel, Sex, Status};
use crate::registry::Registry;
use crate::registry::codes::MunicipalityCode;

/// The consent "state" of a prefecture's own cases, which need no consent.
pub const CONSENT_NOT_REQUIRED: &str = "not_required";

/// One group of combinations that gain (or lose) the same fields through the same clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The provider's operator id.
    pub provider: String,
    /// Its name in the registry (Japanese).
    pub provider_name: String,
    /// `all` for a provider shared in full, else the criterion under which the cases are shared
    /// (for a gain under the new version, for a loss under the old one).
    pub criterion: &'static str,
    /// The recipient's relation to the case.
    pub audience: Audience,
    /// Cases flagged DV (`true`) or not.
    pub dv: bool,
    /// `active` for a city provider (under any other state neither version shares its cases),
    /// `not_required` for the prefecture's own cases.
    pub consent: &'static str,
    pub fields: FieldSet,
    /// The clause responsible, e.g. `providers[operator=141003].scope`, `views.hq`,
    /// `dv.address_audiences`, `summary.covering_station` (a field that lists, search and the
    /// stream now show, already in the view).
    pub clause: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyDiff {
    pub gains: Vec<Change>,
    pub losses: Vec<Change>,
    /// How many (provider, case class, audience, consent state) combinations were decided.
    pub combinations: u64,
}

impl PolicyDiff {
    /// Whether any recipient gains a field, a provider's case or a criterion.
    pub fn new_access(&self) -> bool {
        !self.gains.is_empty()
    }

    pub fn verdict(&self) -> &'static str {
        if self.new_access() {
            "new_access"
        } else {
            "no_new_access"
        }
    }
}

/// Why a version does not share a class of a provider's cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Admit {
    /// Shared, under this criterion (`all` for scope all).
    Yes(&'static str),
    NotProvider,
    OutOfScope,
    Predicate(PredicateField),
    Closed,
}

fn admit(provider: Option<&Provider>, case: &CaseRecord, now: OffsetDateTime) -> Admit {
    let Some(p) = provider else {
        return Admit::NotProvider;
    };
    if case.status == Status::Closed {
        return Admit::Closed;
    }
    let label = match &p.scope {
        Scope::All => "all",
        Scope::Criteria(list) => match list.iter().find(|c| c.is_met(case, now)) {
            Some(c) => c.as_str(),
            None => return Admit::OutOfScope,
        },
    };
    match p.predicates.iter().find(|q| !q.holds(case)) {
        Some(q) => Admit::Predicate(q.field),
        None => Admit::Yes(label),
    }
}

/// The view and summary one version gives a recipient relation, after the covering station's
/// fallback and the DV rule; `None` when it gives that audience nothing.
fn terms(a: &Agreement, audience: Audience, dv: bool) -> Option<(Audience, FieldSet, FieldSet)> {
    let (applied, mut view) = match (audience, a.view(audience)) {
        (_, Some(v)) => (audience, v),
        (Audience::CoveringStation, None) => (Audience::PrefectureStations, a.view(Audience::PrefectureStations)?),
        (_, None) => return None,
    };
    let mut summary = a.summary(applied);
    if dv && !a.dv_address_allowed(applied) {
        for f in [FieldPath::ChildAddress, FieldPath::ChildMunicipality] {
            view.remove(f);
            summary.remove(f);
        }
    }
    Some((applied, view, summary))
}

/// The clause of `side` that keeps a class of cases from being shared at all.
fn unshared_clause(side: Admit, operator: &str, audience: Audience, same_force: bool) -> String {
    match side {
        _ if !same_force => "force".to_owned(),
        Admit::NotProvider => format!("providers[operator={operator}]"),
        Admit::OutOfScope => format!("providers[operator={operator}].scope"),
        Admit::Predicate(f) => format!("providers[operator={operator}].predicates[field={f}]"),
        // Closed cases are shared by no version; only an audience without a view is left.
        Admit::Closed | Admit::Yes(_) => format!("views.{audience}"),
    }
}

/// (provider index, criterion rank, criterion, audience, DV, consent, clause): the order shown.
type Key = (usize, usize, &'static str, Audience, bool, &'static str, String);

/// `all` first, then the criteria in the language's order.
fn rank(criterion: &str) -> usize {
    Criterion::ALL
        .iter()
        .position(|c| c.as_str() == criterion)
        .map_or(0, |i| i + 1)
}

/// Accumulates the changes of one direction, grouped for display.
#[derive(Default)]
struct Groups(BTreeMap<Key, FieldSet>);

impl Groups {
    fn add(&mut self, key: Key, fields: FieldSet) {
        if fields.is_empty() {
            return;
        }
        let slot = self.0.entry(key).or_default();
        *slot = slot.union(fields);
    }

    fn into_changes(self, providers: &[String], registry: &Registry) -> Vec<Change> {
        self.0
            .into_iter()
            .map(|((p, _, criterion, audience, dv, consent, clause), fields)| {
                let provider = providers.get(p).cloned().unwrap_or_default();
                Change {
                    provider_name: registry.operator(&provider).map(|o| o.name.clone()).unwrap_or_default(),
                    provider,
                    criterion,
                    audience,
                    dv,
                    consent,
                    fields,
                    clause,
                }
            })
            .collect()
    }
}

/// One direction's changes for one combination: what `to` gives beyond `from`, and the clause
/// of `to` (or of `from`, when `from` did not share) responsible.
#[allow(clippy::too_many_arguments)]
fn compare(
    groups: &mut Groups,
    key: impl Fn(&'static str, String) -> Key,
    operator: &str,
    audience: Audience,
    dv: bool,
    same_force: bool,
    (from, from_admit): (&Agreement, Admit),
    (to, to_admit): (&Agreement, Admit),
) {
    let Admit::Yes(label) = to_admit else {
        return;
    };
    let Some((to_applied, to_view, to_summary)) = terms(to, audience, dv) else {
        return;
    };
    let from_terms = match from_admit {
        Admit::Yes(_) if same_force => terms(from, audience, dv),
        _ => None,
    };
    let Some((from_applied, from_view, from_summary)) = from_terms else {
        let clause = unshared_clause(from_admit, operator, audience, same_force);
        groups.add(key(label, clause), to_view);
        return;
    };
    let gained = to_view.minus(from_view.implied());
    let address = FieldSet::EMPTY
        .with(FieldPath::ChildAddress)
        .with(FieldPath::ChildMunicipality);
    let dv_clause = dv && to.dv_address_allowed(to_applied) && !from.dv_address_allowed(from_applied);
    let view_clause = if to_applied == from_applied {
        format!("views.{to_applied}")
    } else {
        // The covering station's own view appeared or went: it falls back on the others'.
        format!("views.{}", Audience::CoveringStation)
    };
    if dv_clause {
        groups.add(key(label, "dv.address_audiences".into()), gained.intersection(address));
        groups.add(key(label, view_clause), gained.minus(address));
    } else {
        groups.add(key(label, view_clause), gained);
    }
    let listed = to_summary.minus(from_summary.implied()).minus(gained.implied());
    groups.add(key(label, format!("summary.{to_applied}")), listed);
}

/// The case classes the agreement language can tell apart (see the module's comment), built on
/// `base` one at a time.
struct Classes {
    municipalities: Vec<MunicipalityCode>,
}

const RISKS: [Option<RiskLevel>; 4] = [
    None,
    Some(RiskLevel::High),
    Some(RiskLevel::Medium),
    Some(RiskLevel::Low),
];
const STATUSES: [Status; 6] = [
    Status::Intake,
    Status::Investigating,
    Status::TemporaryProtection,
    Status::InCare,
    Status::ReturnedHome,
    Status::Closed,
];
const TYPES: [AbuseType; 4] = [
    AbuseType::Physical,
    AbuseType::Neglect,
    AbuseType::Sexual,
    AbuseType::Psychological,
];
const SEXES: [Sex; 3] = [Sex::Male, Sex::Female, Sex::Unknown];

impl Classes {
    fn new(old: &Agreement, new: &Agreement, registry: &Registry) -> Self {
        let mut named: Vec<MunicipalityCode> = Vec::new();
        for p in old.providers().iter().chain(new.providers()) {
            for q in p
                .predicates
                .iter()
                .filter(|q| q.field == PredicateField::ChildMunicipality)
            {
                let list = match &q.test {
                    Test::In(l) | Test::NotIn(l) => l.as_slice(),
                    Test::Equals(_) => &[],
                };
                for code in list.iter().filter_map(|c| MunicipalityCode::parse(c).ok()) {
                    if !named.contains(&code) {
                        named.push(code);
                    }
                }
            }
        }
        // One municipality that no predicate names stands for all the others.
        let other = registry
            .municipalities()
            .map(|m| m.code)
            .find(|c| !named.contains(c))
            .or_else(|| {
                (10_000u32..100_000)
                    .flat_map(|n| (0..10).map(move |d| format!("{n:05}{d}")))
                    .filter_map(|s| MunicipalityCode::parse(&s).ok())
                    .find(|c| !named.contains(c))
            });
        named.extend(other);
        Self { municipalities: named }
    }

    /// Calls `f` with every class, as a case decided at `now`.
    fn each(&self, now: OffsetDateTime, mut f: impl FnMut(&CaseRecord)) {
        let Some(first) = self.municipalities.first() else {
            return;
        };
        let Ok(id) = CaseId::parse("policy-diff") else {
            return;
        };
        let intake = now - Duration::hours(72);
        let mut case = CaseRecord {
            case_id: id.clone(),
            center_id: id,
            version: 1,
            updated_at: intake,
            child: Child {
                name: String::new(),
                name_kana: None,
                sex: Sex::Unknown,
                birth_date: intake.date(),
                address: Address {
                    municipality_code: *first,
                    text: None,
                },
            },
            guardians: None,
            household: None,
            care_setting: None,
            upbringing: None,
            welfare_services: None,
            abuse: Abuse {
                types: Vec::new(),
                injury: false,
            },
            risk_level: None,
            status: Status::Intake,
            intake_at: intake,
            safety_confirmed_at: None,
            flags: Flags {
                dv: false,
                missing: false,
            },
            assessment: None,
            center_contact: None,
        };
        for municipality in &self.municipalities {
            case.child.address.municipality_code = *municipality;
            for risk in RISKS {
                case.risk_level = risk;
                for status in STATUSES {
                    case.status = status;
                    for types in 0u8..16 {
                        case.abuse.types = TYPES
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| types & (1 << i) != 0)
                            .map(|(_, t)| *t)
                            .collect();
                        for flags in 0u8..8 {
                            case.abuse.injury = flags & 1 != 0;
                            case.flags.missing = flags & 2 != 0;
                            case.flags.dv = flags & 4 != 0;
                            for sex in SEXES {
                                case.child.sex = sex;
                                // Past the 48-hour rule unconfirmed, or confirmed within it.
                                for late in [true, false] {
                                    case.safety_confirmed_at = (!late).then_some(intake + Duration::hours(1));
                                    f(&case);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every combination that `new` gives more than `old` (gains) and less (losses), each naming
/// the clause responsible. Effective dates are not compared: the question is what the terms
/// give, whenever they apply.
pub fn diff(old: &Agreement, new: &Agreement, registry: &Registry) -> PolicyDiff {
    let mut providers: Vec<String> = Vec::new();
    for p in old.providers().iter().chain(new.providers()) {
        if !providers.contains(&p.operator) {
            providers.push(p.operator.clone());
        }
    }
    let same_force = old.force() == new.force();
    let classes = Classes::new(old, new, registry);
    // Any instant: classes place intake 72 hours before it.
    let now = new.effective_from();
    let (mut gains, mut losses) = (Groups::default(), Groups::default());
    let mut combinations = 0u64;
    for (index, operator) in providers.iter().enumerate() {
        let is_city = registry.operator(operator).is_some_and(|o| o.kind.is_city());
        let (p_old, p_new) = (old.provider(operator), new.provider(operator));
        // A city's cases are shared only while it is active (consented and confirmed); under
        // any other state neither version shares them, so only `active` can change.
        let states: Vec<&'static str> = if is_city {
            ConsentState::ALL.iter().map(|s| s.as_str()).collect()
        } else {
            vec![CONSENT_NOT_REQUIRED]
        };
        // A combination's outcome depends on its class only through what each version decides
        // of it and its DV flag: decide every class, compare each distinct outcome once.
        let mut outcomes: HashSet<(Admit, Admit, bool)> = HashSet::new();
        classes.each(now, |case| {
            outcomes.insert((admit(p_old, case, now), admit(p_new, case, now), case.flags.dv));
            combinations += (Audience::ALL.len() * states.len()) as u64;
        });
        for (a_old, a_new, dv) in outcomes {
            for consent in states
                .iter()
                .filter(|s| **s == CONSENT_NOT_REQUIRED || **s == ConsentState::Active.as_str())
            {
                for audience in Audience::ALL {
                    let key = |criterion, clause| (index, rank(criterion), criterion, audience, dv, *consent, clause);
                    compare(
                        &mut gains,
                        key,
                        operator,
                        audience,
                        dv,
                        same_force,
                        (old, a_old),
                        (new, a_new),
                    );
                    compare(
                        &mut losses,
                        key,
                        operator,
                        audience,
                        dv,
                        same_force,
                        (new, a_new),
                        (old, a_old),
                    );
                }
            }
        }
    }
    PolicyDiff {
        gains: gains.into_changes(&providers, registry),
        losses: losses.into_changes(&providers, registry),
        combinations,
    }
}

/// The diff as an administrator reads it in a terminal, ending with the verdict.
pub fn render(old: &Agreement, new: &Agreement, d: &PolicyDiff) -> String {
    let mut out = format!(
        "{} version {} -> {} version {}: {} combinations of provider, case class, audience and consent state compared\n",
        old.id(),
        old.version(),
        new.id(),
        new.version(),
        d.combinations
    );
    for (title, list) in [("gains", &d.gains), ("losses", &d.losses)] {
        if list.is_empty() {
            out.push_str(&format!("\nNo {title}.\n"));
            continue;
        }
        out.push_str(&format!(
            "\n{} ({}):\n",
            title[..1].to_uppercase() + &title[1..],
            list.len()
        ));
        for c in list {
            let fields: Vec<&str> = c.fields.iter().map(FieldPath::as_str).collect();
            out.push_str(&format!(
                "  provider {} {} | criterion {} | {} | {} | consent {} | {} — by {}\n",
                c.provider,
                c.provider_name,
                c.criterion,
                c.audience,
                if c.dv { "DV cases" } else { "non-DV cases" },
                c.consent,
                fields.join(", "),
                c.clause
            ));
        }
    }
    if d.new_access() {
        out.push_str(&format!(
            "\nVerdict: NEW ACCESS — {} combination group(s) above gain fields, providers or criteria.\n",
            d.gains.len()
        ));
    } else {
        out.push_str("\nVerdict: no new access.\n");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::agreement::tests::{demo_text as demo, registry};

    fn parse(text: &str) -> Agreement {
        Agreement::from_toml(text, "a.toml", &registry()).unwrap()
    }

    fn v2(text: &str) -> Agreement {
        parse(&text.replacen("version = 1", "version = 2", 1))
    }

    fn names(fields: FieldSet) -> Vec<&'static str> {
        fields.iter().map(FieldPath::as_str).collect()
    }

    #[test]
    fn the_same_terms_give_no_new_access() {
        let d = diff(&parse(&demo()), &v2(&demo()), &registry());
        assert_eq!(d.verdict(), "no_new_access");
        assert!(d.gains.is_empty() && d.losses.is_empty(), "{d:?}");
        // 18,432 classes × 3 audiences × (the prefecture + 3 cities in 6 consent states).
        assert!(d.combinations > 1_000_000, "{}", d.combinations);
    }

    #[test]
    fn a_field_added_to_hq_is_a_gain_of_every_provider_by_views_hq() {
        let new = v2(&demo().replacen("hq = [", "hq = [\"assessment\", ", 1));
        let d = diff(&parse(&demo()), &new, &registry());
        assert!(d.new_access());
        assert!(d.losses.is_empty());
        assert!(
            d.gains
                .iter()
                .all(|c| c.clause == "views.hq" && names(c.fields) == ["assessment"])
        );
        assert!(d.gains.iter().all(|c| c.audience == Audience::Hq));
        let yokohama: Vec<_> = d.gains.iter().filter(|c| c.provider == "141003").collect();
        let criteria: Vec<_> = yokohama.iter().filter(|c| !c.dv).map(|c| c.criterion).collect();
        assert_eq!(
            criteria,
            ["injury_neglect_sexual", "safety_unconfirmed_48h", "return_home"]
        );
        assert!(
            yokohama
                .iter()
                .all(|c| c.consent == "active" && c.provider_name == "横浜市")
        );
        assert!(
            d.gains
                .iter()
                .any(|c| c.provider == "14" && c.consent == CONSENT_NOT_REQUIRED)
        );
    }

    #[test]
    fn a_new_criterion_gains_the_cases_only_it_admits_and_names_the_scope() {
        let old = parse(&demo());
        let new = v2(&demo().replacen(
            "scope = [\"injury_neglect_sexual\", \"safety_unconfirmed_48h\", \"return_home\"]",
            "scope = [\"injury_neglect_sexual\", \"safety_unconfirmed_48h\", \"return_home\", \"missing\"]",
            1,
        ));
        let d = diff(&old, &new, &registry());
        assert!(d.losses.is_empty());
        assert!(!d.gains.is_empty());
        for c in &d.gains {
            assert_eq!((c.provider.as_str(), c.criterion), ("141003", "missing"));
            assert_eq!(c.clause, "providers[operator=141003].scope");
        }
        let hq = d.gains.iter().find(|c| c.audience == Audience::Hq && !c.dv).unwrap();
        assert_eq!(hq.fields, old.view(Audience::Hq).unwrap());
        // DV cases gain the view without the address.
        let hq_dv = d.gains.iter().find(|c| c.audience == Audience::Hq && c.dv).unwrap();
        assert!(!hq_dv.fields.contains(FieldPath::ChildAddress));
    }

    #[test]
    fn a_dv_address_and_a_new_provider_name_their_clauses_and_removals_are_losses() {
        let text = demo()
            .replacen(
                "address_audiences = []",
                "address_audiences = [\"covering_station\"]",
                1,
            )
            .replacen(
                "[views]",
                "[[providers]]\noperator = \"141500\"\nscope = [\"missing\"]\n\n[views]",
                1,
            )
            .replacen("\"household\", \"care_setting\",", "\"household\",", 1);
        let d = diff(&parse(&demo()), &v2(&text), &registry());
        let dv: Vec<_> = d.gains.iter().filter(|c| c.clause == "dv.address_audiences").collect();
        assert!(!dv.is_empty());
        for c in &dv {
            assert!(c.dv && c.audience == Audience::CoveringStation, "{c:?}");
            assert_eq!(names(c.fields), ["child.address"]);
        }
        let sagamihara: Vec<_> = d.gains.iter().filter(|c| c.provider == "141500").collect();
        assert!(!sagamihara.is_empty());
        assert!(
            sagamihara
                .iter()
                .all(|c| c.clause == "providers[operator=141500]" && c.criterion == "missing")
        );
        assert!(!d.losses.is_empty());
        assert!(
            d.losses
                .iter()
                .all(|c| c.clause == "views.hq" && names(c.fields) == ["care_setting"])
        );
        let text = render(&parse(&demo()), &v2(&text), &d);
        assert!(text.ends_with("gain fields, providers or criteria.\n"), "{text}");
    }

    #[test]
    fn a_dropped_predicate_is_named_by_its_field() {
        let narrowed = demo().replacen(
            "operator = \"142018\"\nscope = \"all\"",
            "operator = \"142018\"\nscope = \"all\"\n[[providers.predicates]]\nfield = \"child.address.municipality_code\"\nin = [\"142018\"]",
            1,
        );
        let d = diff(&parse(&narrowed), &v2(&demo()), &registry());
        assert!(d.new_access());
        assert!(d.gains.iter().all(|c| c.provider == "142018"
            && c.clause == "providers[operator=142018].predicates[field=child.address.municipality_code]"));
        let back = diff(&parse(&demo()), &v2(&narrowed), &registry());
        assert!(!back.new_access(), "{:?}", back.gains);
        assert!(!back.losses.is_empty());
    }

    #[test]
    fn a_summary_that_shows_more_in_lists_is_new_access() {
        let with_summary = |list: &str| format!("{}\n[summary]\nhq = [{list}]\n", demo());
        let old = parse(&with_summary("\"child.name\""));
        let new = v2(&with_summary("\"child.name\", \"guardians.name\""));
        let d = diff(&old, &new, &registry());
        assert!(d.new_access());
        assert!(
            d.gains
                .iter()
                .all(|c| c.clause == "summary.hq" && names(c.fields) == ["guardians.name"])
        );
        let d = diff(&new, &v2(&with_summary("\"child.name\"")), &registry());
        assert!(!d.new_access() && !d.losses.is_empty());
    }
}
