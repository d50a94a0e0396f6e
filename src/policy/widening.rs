//! What a new agreement version shares of one provider's cases that the version the provider
//! consented to did not. A city consents to terms, not to an agreement id: a version that
//! widens anything it shares (which cases, which fields to which audience, DV addresses) needs
//! the city's consent and the prefecture's confirmation again, while a narrowing applies at
//! once. Pure: two agreements and an operator in, the list of widenings out.

use std::fmt;

use super::agreement::{Agreement, Audience, Scope};
use super::fields::{FieldPath, FieldSet};

/// One way in which `new` shares more of a provider's cases than `old`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Widening {
    /// Cases outside the old scope are shared (more criteria, or `all`).
    Scope { old: &'static str, new: &'static str },
    /// A predicate that narrowed the old scope is gone.
    Predicate(String),
    /// Fields an audience did not see.
    View { audience: Audience, fields: FieldSet },
    /// DV-flagged cases' addresses to an audience that did not get them.
    DvAddress { audience: Audience },
}

impl fmt::Display for Widening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Widening::Scope { old, new } => write!(f, "scope widened from {old} to {new}"),
            Widening::Predicate(p) => write!(f, "predicate `{p}` dropped"),
            Widening::View { audience, fields } => {
                let list: Vec<_> = fields.iter().map(FieldPath::as_str).collect();
                write!(f, "{audience} newly sees {}", list.join(", "))
            }
            Widening::DvAddress { audience } => write!(f, "{audience} newly sees DV-flagged addresses"),
        }
    }
}

/// The fields an audience actually receives under `a` (a covering station without a view of
/// its own receives the other stations' view, as the evaluator decides).
pub fn effective_view(a: &Agreement, audience: Audience) -> FieldSet {
    let view = match audience {
        Audience::CoveringStation => a
            .view(Audience::CoveringStation)
            .or_else(|| a.view(Audience::PrefectureStations)),
        other => a.view(other),
    };
    view.unwrap_or(FieldSet::EMPTY)
}

/// Everything `new` shares of `operator`'s cases beyond what `old` shared; empty when `new` is
/// the same or narrower. A provider that `new` no longer names is a narrowing; one that `old`
/// did not name has consented to nothing, so everything of `new` is a widening.
pub fn widening(new: &Agreement, old: &Agreement, operator: &str) -> Vec<Widening> {
    let Some(p_new) = new.provider(operator) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let scope_label = |s: &Scope| match s {
        Scope::All => "all",
        Scope::Criteria(_) => "criteria",
    };
    match old.provider(operator) {
        None => out.push(Widening::Scope {
            old: "nothing",
            new: scope_label(&p_new.scope),
        }),
        Some(p_old) => {
            let wider = match (&p_old.scope, &p_new.scope) {
                (Scope::All, _) => false,
                (Scope::Criteria(_), Scope::All) => true,
                (Scope::Criteria(was), Scope::Criteria(now)) => now.iter().any(|c| !was.contains(c)),
            };
            if wider {
                out.push(Widening::Scope {
                    old: scope_label(&p_old.scope),
                    new: scope_label(&p_new.scope),
                });
            }
            for gone in p_old.predicates.iter().filter(|q| !p_new.predicates.contains(q)) {
                out.push(Widening::Predicate(gone.to_string()));
            }
        }
    }
    for audience in Audience::ALL {
        let now = effective_view(new, audience);
        let was = effective_view(old, audience);
        let added: FieldSet = now.iter().filter(|f| !was.contains(*f)).collect();
        if !added.is_empty() {
            out.push(Widening::View {
                audience,
                fields: added,
            });
        }
        if now.contains(FieldPath::ChildAddress)
            && new.dv_address_allowed(audience)
            && !(old.dv_address_allowed(audience) && was.contains(FieldPath::ChildAddress))
        {
            out.push(Widening::DvAddress { audience });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use std::path::Path;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    const YOKOHAMA: &str = "141003";

    fn v1() -> String {
        std::fs::read_to_string(Path::new(DIR).join("agreements/kanagawa-2026.toml")).unwrap()
    }

    fn parse(text: &str) -> Agreement {
        let r = Registry::load(&Path::new(DIR).join("registry.toml")).unwrap();
        Agreement::from_toml(text, "test", &r).unwrap()
    }

    fn v2(edit: impl Fn(String) -> String) -> Agreement {
        parse(&edit(v1().replacen("version = 1", "version = 2", 1)))
    }

    #[test]
    fn the_same_terms_widen_nothing() {
        assert_eq!(widening(&v2(|t| t), &parse(&v1()), YOKOHAMA), []);
    }

    #[test]
    fn a_scope_from_criteria_to_all_is_a_widening() {
        let new = v2(|t| {
            t.replacen(
                r#"scope = ["injury_neglect_sexual", "safety_unconfirmed_48h", "return_home"]"#,
                r#"scope = "all""#,
                1,
            )
        });
        let w = widening(&new, &parse(&v1()), YOKOHAMA);
        assert_eq!(
            w,
            [Widening::Scope {
                old: "criteria",
                new: "all"
            }]
        );
        // Yokosuka already shared all: the same edit elsewhere widens nothing for it.
        assert_eq!(widening(&new, &parse(&v1()), "142018"), []);
    }

    #[test]
    fn an_added_criterion_is_a_widening_and_a_removed_one_is_not() {
        let more = v2(|t| t.replacen(r#""return_home"]"#, r#""return_home", "missing"]"#, 1));
        assert_eq!(widening(&more, &parse(&v1()), YOKOHAMA).len(), 1);
        let fewer = v2(|t| t.replacen(r#", "return_home"]"#, "]", 1));
        assert_eq!(widening(&fewer, &parse(&v1()), YOKOHAMA), []);
    }

    #[test]
    fn fields_added_to_any_audience_are_named() {
        let new = v2(|t| {
            t.replacen(
                "prefecture_stations = [",
                r#"prefecture_stations = ["assessment", "upbringing", "guardians.employer", "#,
                1,
            )
        });
        let w = widening(&new, &parse(&v1()), YOKOHAMA);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            w[0].to_string(),
            "prefecture_stations newly sees guardians.employer, upbringing, assessment"
        );
    }

    #[test]
    fn dv_addresses_to_a_new_audience_are_a_widening() {
        let new = v2(|t| t.replacen("address_audiences = []", r#"address_audiences = ["hq"]"#, 1));
        assert_eq!(
            widening(&new, &parse(&v1()), YOKOHAMA),
            [Widening::DvAddress { audience: Audience::Hq }]
        );
    }

    #[test]
    fn removing_fields_or_a_provider_is_a_narrowing() {
        let fewer = v2(|t| {
            t.replacen(
                r#""child.name", "child.name_kana", "child.sex", "child.birth_date", "child.address","#,
                r#""child.name","#,
                1,
            )
        });
        assert_eq!(widening(&fewer, &parse(&v1()), YOKOHAMA), []);
        let gone = v2(|t| {
            t.replacen(
                "[[providers]]\noperator = \"141003\"\nscope = [\"injury_neglect_sexual\", \"safety_unconfirmed_48h\", \"return_home\"]\n",
                "",
                1,
            )
        });
        assert!(gone.provider(YOKOHAMA).is_none());
        assert_eq!(widening(&gone, &parse(&v1()), YOKOHAMA), []);
    }

    #[test]
    fn a_dropped_predicate_is_a_widening() {
        let narrowed = v2(|t| {
            t.replacen(
                "operator = \"142018\"\nscope = \"all\"\n",
                "operator = \"142018\"\nscope = \"all\"\npredicates = [{ field = \"risk_level\", in = [\"high\"] }]\n",
                1,
            )
        });
        assert_eq!(widening(&narrowed, &parse(&v1()), "142018"), []);
        let w = widening(&parse(&v1()), &narrowed, "142018");
        assert_eq!(w, [Widening::Predicate("risk_level in [high]".into())]);
    }
}
