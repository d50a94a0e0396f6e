//! Property tests of the pure evaluator against a deliberately simple reference model (SPEC §6,
//! issue 3): over generated agreements (versions, providers, scopes, predicates, views, DV
//! rules, validity), consents, cases and recipients, the engine's answer is the model's; no
//! field outside the allowed set is ever projected; a DV address (a unique canary) reaches no
//! audience the agreement does not name, in a projection, a decision or a refusal message;
//! cities that are not active disclose nothing; identical inputs give identical answers.
//!
//! Each proptest case is one world and `CASES_PER_WORLD` case records, each evaluated for
//! every police unit of the registry: `PROPTEST_WORLDS × CASES_PER_WORLD` generated cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::Value;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

use super::agreement::{Agreement, Audience, Criterion, Predicate, PredicateField, Provider, Scope, Test};
use super::consent::{ConsentBook, ConsentState, ProviderConsent};
use super::evaluate::{PolicyWorld, evaluate, explain};
use super::fields::{FieldPath, FieldSet};
use super::project::project;
use crate::cases::record::{
    Abuse, AbuseType, Address, Assessment, CaseId, CaseRecord, CenterContact, Child, Flags, Guardian, Relationship,
    RiskLevel, Sex, Status,
};
use crate::registry::Registry;
use crate::registry::codes::{MunicipalityCode, PrefectureCode};

const PROPTEST_WORLDS: u32 = 12_500;
const CASES_PER_WORLD: usize = 8;

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/registry.toml")).unwrap());

// The reference model's own tables, written out rather than looked up in the registry.
const OPERATORS: [&str; 5] = ["14", "141003", "141305", "141500", "142018"];
const CENTERS: [(&str, &str); 5] = [
    ("kanagawa-central", "14"),
    ("yokohama-central", "141003"),
    ("kawasaki-central", "141305"),
    ("sagamihara", "141500"),
    ("yokosuka", "142018"),
];
/// (unit, is HQ, municipalities it covers)
const UNITS: [(&str, bool, &[&str]); 7] = [
    ("hq", true, &[]),
    ("kagacho", false, &["141046"]),
    ("tsurumi", false, &["141011"]),
    ("kawasaki", false, &["141313"]),
    ("sagamihara-minami", false, &["141534"]),
    ("yokosuka", false, &["142018"]),
    ("atsugi", false, &["142123", "144011", "144029"]),
];
const PLACES: [&str; 8] = [
    "141046", "141011", "141313", "141534", "142018", "142123", "144011", "141500",
];
const BASE: OffsetDateTime = datetime!(2026-04-01 00:00 +09:00);

fn fieldset(bits: u32) -> FieldSet {
    FieldPath::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, f)| *f)
        .collect()
}

fn predicate() -> impl Strategy<Value = Predicate> {
    let values = |field: PredicateField| -> Vec<&'static str> {
        match field.values() {
            Some(v) => v.to_vec(),
            None => PLACES.to_vec(),
        }
    };
    (0..PredicateField::ALL.len(), any::<u8>(), any::<bool>(), any::<bool>()).prop_map(move |(i, pick, neg, b)| {
        let field = PredicateField::ALL[i];
        if field.is_bool() {
            return Predicate {
                field,
                test: Test::Equals(b),
            };
        }
        let all = values(field);
        let mut chosen: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|(j, _)| pick & (1 << j) != 0)
            .map(|(_, v)| (*v).to_owned())
            .collect();
        if chosen.is_empty() {
            chosen.push(all[usize::from(pick) % all.len()].to_owned());
        }
        Predicate {
            field,
            test: if neg { Test::NotIn(chosen) } else { Test::In(chosen) },
        }
    })
}

fn provider(operator: &'static str) -> impl Strategy<Value = Provider> {
    (
        prop_oneof![Just(None), (1u8..16).prop_map(Some)],
        prop::collection::vec(predicate(), 0..2),
    )
        .prop_map(move |(criteria, predicates)| Provider {
            operator: operator.to_owned(),
            scope: match criteria {
                None => Scope::All,
                Some(bits) => Scope::Criteria(
                    Criterion::ALL
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| bits & (1 << i) != 0)
                        .map(|(_, c)| *c)
                        .collect(),
                ),
            },
            predicates,
        })
}

fn agreement(id: &'static str, version: u32) -> impl Strategy<Value = Agreement> {
    (
        prop::collection::vec(prop::option::of(any::<u32>()), 3),
        prop::collection::vec(any::<bool>(), 3),
        0i64..4,
        prop::option::of(1i64..4),
        prop::sample::subsequence(OPERATORS.to_vec(), 0..=OPERATORS.len()),
    )
        .prop_flat_map(move |(views, dv, from, until, ops)| {
            let providers: Vec<_> = ops.iter().map(|op| provider(op)).collect();
            (Just((views, dv, from, until)), providers)
        })
        .prop_map(move |((views, dv, from, until), providers)| {
            let from_t = BASE + Duration::days(30 * from);
            Agreement::from_parts(
                id,
                version,
                PrefectureCode::parse("14").unwrap(),
                "kanagawa-pp",
                from_t,
                until.map(|u| from_t + Duration::days(30 * u)),
                providers,
                [views[0].map(fieldset), views[1].map(fieldset), views[2].map(fieldset)],
                Audience::ALL
                    .iter()
                    .zip(&dv)
                    .filter(|(_, d)| **d)
                    .map(|(a, _)| *a)
                    .collect(),
            )
        })
}

fn world() -> impl Strategy<Value = PolicyWorld> {
    (
        prop::collection::vec(agreement("agr-a", 1), 1..=1),
        prop::option::of(agreement("agr-a", 2)),
        prop::option::of(agreement("agr-b", 1)),
        prop::collection::vec(
            (
                0..ConsentState::ALL.len(),
                prop::option::of(1u32..=2),
                0..ConsentState::ALL.len(),
                prop::option::of(1u32..=2),
            ),
            4,
        ),
    )
        .prop_map(|(mut agreements, a2, b1, states)| {
            agreements.extend(a2);
            agreements.extend(b1);
            let mut consents = ConsentBook::default();
            // Any state with any confirmed terms: a city asked again about a widening still
            // shares under the version it had confirmed, possibly an older one.
            let opt_in = |state: usize, confirmed: Option<u32>| ProviderConsent {
                state: ConsentState::ALL[state],
                consented: confirmed,
                confirmed,
            };
            for (op, (sa, ca, sb, cb)) in ["141003", "141305", "141500", "142018"].iter().zip(states) {
                consents.set("agr-a", op, opt_in(sa, ca));
                consents.set("agr-b", op, opt_in(sb, cb));
            }
            PolicyWorld {
                registry: REGISTRY.clone(),
                agreements,
                consents,
            }
        })
}

fn case(serial: u64) -> impl Strategy<Value = CaseRecord> {
    let statuses = [
        Status::Intake,
        Status::Investigating,
        Status::TemporaryProtection,
        Status::InCare,
        Status::ReturnedHome,
        Status::Closed,
    ];
    (
        0..CENTERS.len(),
        0..PLACES.len(),
        0u8..16,
        any::<bool>(),
        prop::option::of(0usize..3),
        0..statuses.len(),
        0i64..200,
        prop::option::of(0i64..100),
        any::<(bool, bool)>(),
        prop::sample::select(vec![Sex::Male, Sex::Female, Sex::Unknown]),
    )
        .prop_map(
            move |(center, place, types, injury, risk, status, intake_h, confirmed_h, (dv, missing), sex)| {
                let intake = BASE + Duration::days(20) + Duration::hours(intake_h);
                let tag = format!("{serial}");
                CaseRecord {
                    case_id: CaseId::parse(&format!("c{tag}")).unwrap(),
                    center_id: CaseId::parse(CENTERS[center].0).unwrap(),
                    version: 1,
                    updated_at: intake,
                    child: Child {
                        name: format!("NAMECANARY{tag}"),
                        name_kana: Some("ヤマダ".into()),
                        sex,
                        birth_date: date!(2019 - 06 - 15),
                        address: Address {
                            municipality_code: MunicipalityCode::parse(PLACES[place]).unwrap(),
                            text: Some(format!("DVCANARY{tag}X")),
                        },
                    },
                    guardians: Some(vec![Guardian {
                        name: format!("GUARDCANARY{tag}"),
                        name_kana: None,
                        relationship: Relationship::Mother,
                        employer: Some(format!("EMPLOYERCANARY{tag}")),
                    }]),
                    household: Some(format!("HOUSEHOLDCANARY{tag}")),
                    care_setting: Some(format!("CARECANARY{tag}")),
                    upbringing: Some(format!("UPBRINGINGCANARY{tag}")),
                    welfare_services: Some(format!("WELFARECANARY{tag}")),
                    abuse: Abuse {
                        types: [
                            AbuseType::Physical,
                            AbuseType::Neglect,
                            AbuseType::Sexual,
                            AbuseType::Psychological,
                        ]
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| types & (1 << i) != 0)
                        .map(|(_, t)| t)
                        .collect(),
                        injury,
                    },
                    risk_level: risk.map(|r| [RiskLevel::High, RiskLevel::Medium, RiskLevel::Low][r]),
                    status: statuses[status],
                    intake_at: intake,
                    safety_confirmed_at: confirmed_h.map(|h| intake + Duration::hours(h)),
                    flags: Flags { dv, missing },
                    assessment: Some(Assessment {
                        findings: Some(format!("ASSESSCANARY{tag}")),
                        plan: None,
                        progress: None,
                    }),
                    center_contact: Some(CenterContact {
                        name: "担当".into(),
                        phone: "045".into(),
                    }),
                }
            },
        )
}

// ---- The reference model: plain loops over the definitions, no shared helpers. ----

fn model_criterion(c: Criterion, case: &Value, now: OffsetDateTime) -> bool {
    let types: Vec<&str> = case["abuse"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let t = |k: &str| OffsetDateTime::parse(k, &time::format_description::well_known::Rfc3339).unwrap();
    match c {
        Criterion::InjuryNeglectSexual => {
            case["abuse"]["injury"] == true || types.contains(&"neglect") || types.contains(&"sexual")
        }
        Criterion::SafetyUnconfirmed48h => {
            let deadline = t(case["intake_at"].as_str().unwrap()) + Duration::hours(48);
            match case.get("safety_confirmed_at").and_then(Value::as_str) {
                None => now >= deadline,
                Some(c) => t(c) > deadline,
            }
        }
        Criterion::ReturnHome => case["status"] == "returned_home",
        Criterion::Missing => case["flags"]["missing"] == true,
    }
}

fn model_predicate(p: &Predicate, case: &Value) -> bool {
    let values: Vec<String> = match p.field {
        PredicateField::RiskLevel => case
            .get("risk_level")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .into_iter()
            .collect(),
        PredicateField::Status => vec![case["status"].as_str().unwrap().to_owned()],
        PredicateField::ChildSex => vec![case["child"]["sex"].as_str().unwrap().to_owned()],
        PredicateField::ChildMunicipality => {
            vec![
                case["child"]["address"]["municipality_code"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ]
        }
        PredicateField::AbuseTypes => case["abuse"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        PredicateField::AbuseInjury => return matches!(p.test, Test::Equals(b) if case["abuse"]["injury"] == b),
        PredicateField::FlagsMissing => return matches!(p.test, Test::Equals(b) if case["flags"]["missing"] == b),
        PredicateField::FlagsDv => return matches!(p.test, Test::Equals(b) if case["flags"]["dv"] == b),
    };
    let any_listed = |list: &Vec<String>| values.iter().any(|v| list.contains(v));
    match (&p.test, p.field) {
        (Test::In(list), _) => any_listed(list),
        // An absent risk level meets no predicate; for the types, "none of them present".
        (Test::NotIn(_), PredicateField::RiskLevel) if values.is_empty() => false,
        (Test::NotIn(list), _) => !any_listed(list),
        (Test::Equals(_), _) => false,
    }
}

/// (agreement id, version, fields) the model allows, or `None`.
fn model(
    w: &PolicyWorld,
    case: &CaseRecord,
    json: &Value,
    unit: &(&str, bool, &[&str]),
    now: OffsetDateTime,
) -> Option<(String, u32, FieldSet)> {
    if case.status == Status::Closed {
        return None;
    }
    let op = CENTERS.iter().find(|(c, _)| *c == case.center_id.as_str())?.1;
    let ids: BTreeSet<&str> = w.agreements.iter().map(Agreement::id).collect();
    for id in ids {
        let mut current: Option<&Agreement> = None;
        for a in &w.agreements {
            let in_force = a.effective_from() <= now && a.effective_until().is_none_or(|u| now < u);
            if a.id() == id && in_force && current.is_none_or(|c| c.version() < a.version()) {
                current = Some(a);
            }
        }
        let Some(a) = current else { continue };
        let Some(p) = a.providers().iter().find(|p| p.operator == op) else {
            continue;
        };
        let Some(mut fields) = model_terms(a, p, case, json, unit, now) else {
            continue;
        };
        if op != "14" {
            // A city shares only under the terms it had confirmed, and never beyond the
            // version in force.
            let Some(c) = w.consents.get(id, op).confirmed else {
                continue;
            };
            let Some(ca) = w.agreements.iter().find(|x| x.id() == id && x.version() == c) else {
                continue;
            };
            let Some(cp) = ca.providers().iter().find(|p| p.operator == op) else {
                continue;
            };
            let Some(within) = model_terms(ca, cp, case, json, unit, now) else {
                continue;
            };
            fields = fields.iter().filter(|f| within.contains(*f)).collect();
        }
        return Some((id.to_owned(), a.version(), fields));
    }
    None
}

/// The fields one version's terms give `unit` for the provider, consent aside.
fn model_terms(
    a: &Agreement,
    p: &Provider,
    case: &CaseRecord,
    json: &Value,
    unit: &(&str, bool, &[&str]),
    now: OffsetDateTime,
) -> Option<FieldSet> {
    let scoped = match &p.scope {
        Scope::All => true,
        Scope::Criteria(list) => list.iter().any(|c| model_criterion(*c, json, now)),
    };
    if !scoped || !p.predicates.iter().all(|q| model_predicate(q, json)) {
        return None;
    }
    let covering = unit.2.contains(&case.child.address.municipality_code.as_str());
    let audience = if unit.1 {
        Audience::Hq
    } else if covering {
        Audience::CoveringStation
    } else {
        Audience::PrefectureStations
    };
    let (audience, mut fields) = match a.view(audience) {
        Some(v) => (audience, v),
        None if audience == Audience::CoveringStation => {
            (Audience::PrefectureStations, a.view(Audience::PrefectureStations)?)
        }
        None => return None,
    };
    if case.flags.dv && !a.dv_address_allowed(audience) {
        fields.remove(FieldPath::ChildAddress);
        fields.remove(FieldPath::ChildMunicipality);
    }
    Some(fields)
}

fn paths_of(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, v) in v.as_object().unwrap() {
        match (k.as_str(), v) {
            ("child" | "flags", Value::Object(m)) => out.extend(m.keys().map(|f| format!("{k}.{f}"))),
            ("guardians", Value::Array(gs)) => {
                for g in gs {
                    out.extend(g.as_object().unwrap().keys().map(|f| format!("guardians.{f}")));
                }
            }
            _ => {
                out.insert(k.clone());
            }
        }
    }
    out
}

fn check(w: &PolicyWorld, case: &CaseRecord, now: OffsetDateTime) -> Result<(), TestCaseError> {
    let json = serde_json::to_value(case).unwrap();
    let canary = case.child.address.text.clone().unwrap();
    let op = CENTERS.iter().find(|(c, _)| *c == case.center_id.as_str()).unwrap().1;
    for unit in &UNITS {
        let decision = evaluate(w, case, unit.0, now);
        let expected = model(w, case, &json, unit, now);
        let got = decision
            .as_ref()
            .map(|d| (d.agreement_id.clone(), d.agreement_version, d.fields));
        prop_assert_eq!(&got, &expected, "unit {}", unit.0);

        // Identical inputs, identical answers; `explain` agrees with `evaluate`.
        let again = explain(&w.clone(), case, unit.0, now);
        prop_assert_eq!(&again.clone().ok(), &decision);

        match &decision {
            Some(d) => {
                let agreement = w
                    .agreements
                    .iter()
                    .find(|a| a.id() == d.agreement_id && a.version() == d.agreement_version)
                    .unwrap();
                let allowed = agreement.view(d.audience).unwrap();
                prop_assert!(d.fields.is_subset_of(allowed));
                let (projected, disclosed) = project(case, d.fields);
                prop_assert!(disclosed.is_subset_of(d.fields));
                let projected = Value::Object(projected);
                let granted: BTreeSet<String> = d.fields.iter().map(|f| f.as_str().to_owned()).collect();
                for path in paths_of(&projected) {
                    // The municipality alone is projected as an address holding only its code.
                    let municipality_only = path == "child.address"
                        && d.fields.contains(FieldPath::ChildMunicipality)
                        && projected["child"]["address"].get("text").is_none();
                    prop_assert!(
                        granted.contains(&path) || municipality_only,
                        "{} projected but not granted",
                        path
                    );
                }
                prop_assert!(d.summary.is_subset_of(d.fields.implied()));
                let dv_named = agreement.dv_address_allowed(d.audience);
                let text = serde_json::to_string(&projected).unwrap();
                if case.flags.dv && !dv_named {
                    prop_assert!(!text.contains(&canary), "DV address in a projection to {}", unit.0);
                    let debug = format!("{:?}", d);
                    prop_assert!(!debug.contains(&canary));
                }
                // The address text leaves only with the address field.
                prop_assert_eq!(text.contains(&canary), disclosed.contains(FieldPath::ChildAddress));
                prop_assert!(!d.clause.contains(&canary));
                if op != "14" {
                    prop_assert!(w.consents.get(&d.agreement_id, op).confirmed.is_some());
                }
            }
            None => {
                let reason = again.unwrap_err();
                prop_assert!(!reason.to_string().contains(&canary));
                let debug = format!("{:?}", reason);
                prop_assert!(!debug.contains(&canary));
            }
        }
        // A city that has confirmed no terms in any agreement discloses nothing, to anyone.
        if op != "14"
            && !w
                .agreements
                .iter()
                .any(|a| w.consents.get(a.id(), op).confirmed.is_some())
        {
            prop_assert!(decision.is_none());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: PROPTEST_WORLDS,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn evaluator_matches_the_reference_model_and_leaks_nothing(
        w in world(),
        serial in any::<u32>(),
        cases in prop::collection::vec(case(0), CASES_PER_WORLD),
        now_days in 0i64..200,
        now_hours in 0i64..48,
    ) {
        let now = BASE + Duration::days(now_days) + Duration::hours(now_hours);
        for (i, mut c) in cases.into_iter().enumerate() {
            // Unique canaries per case, so a leak names its source.
            if let Some(t) = c.child.address.text.as_mut() {
                *t = format!("DVCANARY{serial}-{i}X");
            }
            check(&w, &c, now)?;
        }
    }
}

#[test]
fn generated_case_count_meets_the_issue() {
    assert!(u64::from(PROPTEST_WORLDS) * CASES_PER_WORLD as u64 >= 100_000);
}

// ---- The policy diff against evaluation: whatever a random case gains or loses between two
// random versions, the exhaustive diff names (and its verdict says so). ----

/// The version with validity from `BASE` on and random summaries within its views, so that
/// both versions can be evaluated at one instant.
fn comparable(a: &Agreement, summaries: &[u32; 3]) -> Agreement {
    let views = [
        a.view(Audience::CoveringStation),
        a.view(Audience::PrefectureStations),
        a.view(Audience::Hq),
    ];
    let named = |i: usize| {
        let view = views[i]?;
        (summaries[i] & 1 == 0).then(|| fieldset(summaries[i] >> 1).intersection(view.implied()))
    };
    Agreement::from_parts(
        a.id(),
        a.version(),
        a.prefecture(),
        a.force(),
        BASE,
        None,
        a.providers().to_vec(),
        views,
        Audience::ALL.into_iter().filter(|x| a.dv_address_allowed(*x)).collect(),
    )
    .with_summaries([named(0), named(1), named(2)])
}

/// A world holding only `a`, every city active under its terms.
fn alone(a: &Agreement) -> PolicyWorld {
    let mut consents = ConsentBook::default();
    for op in ["141003", "141305", "141500", "142018"] {
        consents.set(
            a.id(),
            op,
            ProviderConsent {
                state: ConsentState::Active,
                consented: Some(a.version()),
                confirmed: Some(a.version()),
            },
        );
    }
    PolicyWorld {
        registry: REGISTRY.clone(),
        agreements: vec![a.clone()],
        consents,
    }
}

fn audience_of(unit: &(&str, bool, &[&str]), case: &CaseRecord) -> Audience {
    if unit.1 {
        Audience::Hq
    } else if unit.2.contains(&case.child.address.municipality_code.as_str()) {
        Audience::CoveringStation
    } else {
        Audience::PrefectureStations
    }
}

/// Every field `to` gives and `from` does not (view and summary) for each random case and unit
/// must appear in a change of `changes` for that provider, audience and DV flag.
fn covered(
    changes: &[super::diff::Change],
    from: &PolicyWorld,
    to: &PolicyWorld,
    case: &CaseRecord,
    now: OffsetDateTime,
) -> Result<bool, TestCaseError> {
    let op = CENTERS.iter().find(|(c, _)| *c == case.center_id.as_str()).unwrap().1;
    let mut any = false;
    for unit in &UNITS {
        let (was, is) = (evaluate(from, case, unit.0, now), evaluate(to, case, unit.0, now));
        let Some(is) = is else { continue };
        let (was_view, was_summary) = was.map_or((FieldSet::EMPTY, FieldSet::EMPTY), |d| (d.fields, d.summary));
        let gained = is.fields.iter().chain(is.summary.iter()).filter(|f| {
            !was_view.implied().contains(*f) || (is.summary.contains(*f) && !was_summary.implied().contains(*f))
        });
        let audience = audience_of(unit, case);
        for f in gained {
            any = true;
            let named = changes.iter().any(|c| {
                c.provider == op && c.audience == audience && c.dv == case.flags.dv && c.fields.implied().contains(f)
            });
            prop_assert!(
                named,
                "{} gains {} of {}'s case (dv {}), not in the diff",
                unit.0,
                f,
                op,
                case.flags.dv
            );
        }
    }
    Ok(any)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_diff_names_every_gain_and_loss_that_evaluation_finds(
        old in agreement("agr-a", 1),
        new in agreement("agr-a", 2),
        summaries in any::<([u32; 3], [u32; 3])>(),
        cases in prop::collection::vec(case(0), 64),
        now_hours in 0i64..400,
    ) {
        let (old, new) = (comparable(&old, &summaries.0), comparable(&new, &summaries.1));
        let d = super::diff::diff(&old, &new, &REGISTRY);
        let (w_old, w_new) = (alone(&old), alone(&new));
        let now = BASE + Duration::days(20) + Duration::hours(now_hours);
        let mut gained = false;
        for c in &cases {
            gained |= covered(&d.gains, &w_old, &w_new, c, now)?;
            covered(&d.losses, &w_new, &w_old, c, now)?;
        }
        // Evaluation finding a gain means the verdict is new access; no new access means no
        // case gains anything.
        prop_assert!(!gained || d.new_access());
        // Comparing a version with itself finds nothing.
        let same = super::diff::diff(&new, &new, &REGISTRY);
        prop_assert!(same.gains.is_empty() && same.losses.is_empty());
    }
}
