//! Cutting a case down to a decision's fields. What is not allowed is never built into the
//! output, so nothing downstream can leak it by accident.

use serde::Serialize;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::fields::{FieldPath, FieldSet};
use crate::cases::record::{CaseRecord, Guardian};

/// The case as a JSON object holding exactly the allowed fields that are present, in the shapes
/// of SPEC §5, and the set of fields actually disclosed (allowed ∩ present). Identifiers and
/// versions are the caller's to add.
pub fn project(case: &CaseRecord, fields: FieldSet) -> (Map<String, Value>, FieldSet) {
    let mut p = Projector {
        allowed: fields,
        disclosed: FieldSet::EMPTY,
    };
    let mut out = Map::new();

    let c = &case.child;
    let mut child = Map::new();
    p.put(&mut child, "name", FieldPath::ChildName, || string(&c.name));
    p.put(&mut child, "name_kana", FieldPath::ChildNameKana, || {
        c.name_kana.as_deref().and_then(string)
    });
    p.put(&mut child, "sex", FieldPath::ChildSex, || json(&c.sex));
    p.put(&mut child, "birth_date", FieldPath::ChildBirthDate, || {
        date(c.birth_date)
    });
    if p.allowed.contains(FieldPath::ChildAddress) {
        p.put(&mut child, "address", FieldPath::ChildAddress, || json(&c.address));
        // The whole address carries its municipality: recorded as disclosed when granted too.
        if p.allowed.contains(FieldPath::ChildMunicipality) {
            p.disclosed.insert(FieldPath::ChildMunicipality);
        }
    } else {
        // Only the municipality (what a list row needs to say 横浜市中区), never the street.
        p.put(&mut child, "address", FieldPath::ChildMunicipality, || {
            let mut m = Map::new();
            m.insert(
                "municipality_code".to_owned(),
                Value::String(c.address.municipality_code.as_str().to_owned()),
            );
            Some(Value::Object(m))
        });
    }
    nest(&mut out, "child", child);

    if let Some(guardians) = &case.guardians {
        let list: Vec<Value> = guardians
            .iter()
            .map(|g| p.guardian(g))
            .filter(|g| !g.is_empty())
            .map(Value::Object)
            .collect();
        // An entry with no visible field would still tell the recipient how many guardians
        // there are.
        if !list.is_empty() {
            out.insert("guardians".to_owned(), Value::Array(list));
        }
    }

    p.put(&mut out, "household", FieldPath::Household, || {
        case.household.as_deref().and_then(string)
    });
    p.put(&mut out, "care_setting", FieldPath::CareSetting, || {
        case.care_setting.as_deref().and_then(string)
    });
    p.put(&mut out, "upbringing", FieldPath::Upbringing, || {
        case.upbringing.as_deref().and_then(string)
    });
    p.put(&mut out, "welfare_services", FieldPath::WelfareServices, || {
        case.welfare_services.as_deref().and_then(string)
    });
    p.put(&mut out, "abuse", FieldPath::Abuse, || json(&case.abuse));
    p.put(&mut out, "risk_level", FieldPath::RiskLevel, || {
        case.risk_level.as_ref().and_then(json)
    });
    p.put(&mut out, "status", FieldPath::Status, || json(&case.status));
    p.put(&mut out, "intake_at", FieldPath::IntakeAt, || timestamp(case.intake_at));
    p.put(&mut out, "safety_confirmed_at", FieldPath::SafetyConfirmedAt, || {
        case.safety_confirmed_at.and_then(timestamp)
    });

    let mut flags = Map::new();
    p.put(&mut flags, "dv", FieldPath::FlagsDv, || {
        Some(Value::Bool(case.flags.dv))
    });
    p.put(&mut flags, "missing", FieldPath::FlagsMissing, || {
        Some(Value::Bool(case.flags.missing))
    });
    nest(&mut out, "flags", flags);

    p.put(&mut out, "assessment", FieldPath::Assessment, || {
        case.assessment.as_ref().and_then(json)
    });
    p.put(&mut out, "center_contact", FieldPath::CenterContact, || {
        case.center_contact.as_ref().and_then(json)
    });

    (out, p.disclosed)
}

struct Projector {
    allowed: FieldSet,
    disclosed: FieldSet,
}

impl Projector {
    /// Inserts the field if allowed and present; the value is only built when allowed.
    fn put(&mut self, obj: &mut Map<String, Value>, key: &str, path: FieldPath, value: impl FnOnce() -> Option<Value>) {
        if !self.allowed.contains(path) {
            return;
        }
        if let Some(v) = value() {
            obj.insert(key.to_owned(), v);
            self.disclosed.insert(path);
        }
    }

    fn guardian(&mut self, g: &Guardian) -> Map<String, Value> {
        let mut m = Map::new();
        self.put(&mut m, "name", FieldPath::GuardiansName, || string(&g.name));
        self.put(&mut m, "name_kana", FieldPath::GuardiansNameKana, || {
            g.name_kana.as_deref().and_then(string)
        });
        self.put(&mut m, "relationship", FieldPath::GuardiansRelationship, || {
            json(&g.relationship)
        });
        self.put(&mut m, "employer", FieldPath::GuardiansEmployer, || {
            g.employer.as_deref().and_then(string)
        });
        m
    }
}

fn nest(out: &mut Map<String, Value>, key: &str, obj: Map<String, Value>) {
    if !obj.is_empty() {
        out.insert(key.to_owned(), Value::Object(obj));
    }
}

// `Option` so that it composes with the optional fields in `put`.
#[allow(clippy::unnecessary_wraps)]
fn string(s: &str) -> Option<Value> {
    Some(Value::String(s.to_owned()))
}

/// Record types serialize infallibly; a failure would drop the field rather than the request.
fn json<T: Serialize>(v: &T) -> Option<Value> {
    serde_json::to_value(v).ok()
}

fn date(d: Date) -> Option<Value> {
    d.format(format_description!("[year]-[month]-[day]"))
        .ok()
        .map(Value::String)
}

fn timestamp(t: OffsetDateTime) -> Option<Value> {
    t.format(&Rfc3339).ok().map(Value::String)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::evaluate::evaluate;
    use crate::policy::evaluate::tests::{NOW, UNITS, case, covering_station_view, world};
    use crate::policy::fields::FieldPath as F;
    use serde_json::json;

    fn all_fields() -> FieldSet {
        FieldPath::ALL.iter().copied().collect()
    }

    fn has_key(v: &Value, key: &str) -> bool {
        match v {
            Value::Object(m) => m.contains_key(key) || m.values().any(|v| has_key(v, key)),
            Value::Array(a) => a.iter().any(|v| has_key(v, key)),
            _ => false,
        }
    }

    #[test]
    fn covering_station_projection_has_the_spec_shapes() {
        let c = case("kanagawa-central", "142123");
        let (json, disclosed) = project(&c, covering_station_view());
        assert_eq!(
            Value::Object(json),
            json!({
                "child": {
                    "name": "山田 花子",
                    "name_kana": "ヤマダ ハナコ",
                    "sex": "female",
                    "birth_date": "2019-06-15",
                    "address": {"municipality_code": "142123", "text": "山下町1-1"}
                },
                "guardians": [{"name": "山田 太郎", "relationship": "father"}],
                "abuse": {"types": ["psychological"], "injury": false},
                "risk_level": "medium",
                "status": "investigating",
                "intake_at": "2026-04-20T09:00:00+09:00",
                "safety_confirmed_at": "2026-04-20T10:00:00+09:00",
                "flags": {"missing": false, "dv": false},
                "center_contact": {"name": "担当 一郎", "phone": "045-000-0000"}
            })
        );
        assert_eq!(disclosed, covering_station_view());
    }

    #[test]
    fn disclosed_set_is_allowed_and_present() {
        let mut c = case("kanagawa-central", "142123");
        c.child.name_kana = None;
        c.safety_confirmed_at = None;
        c.risk_level = None;
        let (json, disclosed) = project(&c, covering_station_view());
        assert_eq!(
            disclosed,
            covering_station_view()
                .without(F::ChildNameKana)
                .without(F::SafetyConfirmedAt)
                .without(F::RiskLevel)
        );
        assert!(!json["child"].as_object().unwrap().contains_key("name_kana"));
        assert!(!json.contains_key("safety_confirmed_at"));
        assert!(!json.contains_key("risk_level"));
    }

    #[test]
    fn guardians_are_omitted_when_nothing_of_them_may_be_shown() {
        let c = case("kanagawa-central", "142123");
        let (json, disclosed) = project(&c, FieldSet::EMPTY.with(F::ChildName));
        assert_eq!(Value::Object(json), json!({"child": {"name": "山田 花子"}}));
        assert_eq!(disclosed, FieldSet::EMPTY.with(F::ChildName));

        let mut c = case("kanagawa-central", "142123");
        c.guardians = Some(vec![]);
        let (json, _) = project(&c, covering_station_view());
        assert!(!json.contains_key("guardians"));
        c.guardians = None;
        let (json, _) = project(&c, covering_station_view());
        assert!(!json.contains_key("guardians"));

        // Allowed but absent in every guardian: no empty objects that would count them.
        let mut c = case("kanagawa-central", "142123");
        if let Some(gs) = c.guardians.as_mut() {
            gs.iter_mut().for_each(|g| g.employer = None);
        }
        let (json, disclosed) = project(&c, FieldSet::EMPTY.with(F::GuardiansEmployer));
        assert!(json.is_empty());
        assert!(disclosed.is_empty());
    }

    #[test]
    fn dv_address_appears_in_no_projection() {
        let w = world();
        for center_and_place in [("kanagawa-central", "142123"), ("yokosuka", "142018")] {
            let mut c = case(center_and_place.0, center_and_place.1);
            c.flags.dv = true;
            for unit in UNITS {
                let d = evaluate(&w, &c, unit, NOW).unwrap();
                let (json, disclosed) = project(&c, d.fields);
                assert!(!has_key(&Value::Object(json), "address"), "{unit}");
                assert!(!disclosed.contains(F::ChildAddress), "{unit}");
            }
        }
    }

    #[test]
    fn assessment_is_never_projected_under_the_demo_agreement() {
        let w = world();
        let mut c = case("yokohama-central", "141046");
        c.abuse.injury = true;
        for unit in UNITS {
            let d = evaluate(&w, &c, unit, NOW).unwrap();
            let (json, disclosed) = project(&c, d.fields);
            assert!(!json.contains_key("assessment"), "{unit}");
            assert!(!json.contains_key("upbringing") && !json.contains_key("welfare_services"));
            assert!(!disclosed.contains(F::Assessment), "{unit}");
        }
    }

    #[test]
    fn the_municipality_alone_projects_without_the_street() {
        let c = case("kanagawa-central", "142123");
        let (json, disclosed) = project(&c, FieldSet::EMPTY.with(F::ChildMunicipality));
        assert_eq!(
            Value::Object(json),
            json!({"child": {"address": {"municipality_code": "142123"}}})
        );
        assert_eq!(disclosed, FieldSet::EMPTY.with(F::ChildMunicipality));
        let (json, disclosed) = project(&c, FieldSet::EMPTY.with(F::ChildMunicipality).with(F::ChildAddress));
        assert_eq!(json["child"]["address"]["text"], json!("山下町1-1"));
        assert_eq!(
            disclosed,
            FieldSet::EMPTY.with(F::ChildMunicipality).with(F::ChildAddress)
        );
    }

    #[test]
    fn every_field_projects_when_granted() {
        let c = case("kanagawa-central", "142123");
        let (json, disclosed) = project(&c, all_fields());
        assert_eq!(disclosed, all_fields());
        assert_eq!(json["assessment"], json!({"findings": "所見", "plan": "方針"}));
        assert_eq!(json["guardians"][0]["employer"], json!("株式会社例"));
        assert_eq!(json["upbringing"], json!("養育状況"));
        assert!(!json.contains_key("case_id") && !json.contains_key("version"));
    }
}
