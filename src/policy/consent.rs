//! City opt-ins (SPEC §6): whether a city provider of an agreement shares at all. This is data
//! (`policies/consents.toml`, later the admin API), kept apart from the agreement text so that a
//! city can withdraw at once without a new agreement version.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::agreement::Agreement;
use super::error::PolicyError;
use crate::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    #[default]
    NotAsked,
    Asked,
    /// The city consented; the prefecture has not confirmed yet.
    Consented,
    /// Consented and confirmed: the only state in which the city's cases are shared.
    Active,
    Declined,
    Withdrawn,
}

/// What an administrator does to a city provider's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentAction {
    /// The prefecture asks the city.
    Ask,
    /// The city consents.
    Consent,
    /// The city declines.
    Decline,
    /// The city withdraws, effective at once.
    Withdraw,
    /// The prefecture confirms the city's consent.
    Confirm,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::NotAsked => "not_asked",
            ConsentState::Asked => "asked",
            ConsentState::Consented => "consented",
            ConsentState::Active => "active",
            ConsentState::Declined => "declined",
            ConsentState::Withdrawn => "withdrawn",
        }
    }

    pub const ALL: [ConsentState; 6] = [
        ConsentState::NotAsked,
        ConsentState::Asked,
        ConsentState::Consented,
        ConsentState::Active,
        ConsentState::Declined,
        ConsentState::Withdrawn,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn is_active(self) -> bool {
        self == ConsentState::Active
    }

    /// The state after `action`, or `None` if the action makes no sense from here (e.g.
    /// confirming what was never consented). Repeating an action that already holds is allowed
    /// and changes nothing, so retried requests are harmless.
    pub fn apply(self, action: ConsentAction) -> Option<ConsentState> {
        use ConsentAction as A;
        use ConsentState as S;
        match (action, self) {
            (A::Ask, S::NotAsked | S::Asked | S::Declined | S::Withdrawn) => Some(S::Asked),
            // The provider entry in the agreement is itself the offer, so a city may consent
            // before being formally asked, and may change its mind after declining.
            (A::Consent, S::NotAsked | S::Asked | S::Declined | S::Withdrawn | S::Consented) => Some(S::Consented),
            (A::Consent, S::Active) => Some(S::Active),
            (A::Decline, S::NotAsked | S::Asked | S::Declined) => Some(S::Declined),
            (A::Withdraw, S::Consented | S::Active | S::Withdrawn) => Some(S::Withdrawn),
            (A::Confirm, S::Consented | S::Active) => Some(S::Active),
            _ => None,
        }
    }
}

impl ConsentAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAction::Ask => "ask",
            ConsentAction::Consent => "consent",
            ConsentAction::Decline => "decline",
            ConsentAction::Withdraw => "withdraw",
            ConsentAction::Confirm => "confirm",
        }
    }

    /// The actions of the admin API (asking is the agreement's provider entry itself).
    pub fn parse(s: &str) -> Option<Self> {
        [
            ConsentAction::Consent,
            ConsentAction::Decline,
            ConsentAction::Withdraw,
            ConsentAction::Confirm,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    /// Whether the prefecture (not the city) takes this action.
    pub fn by_prefecture(self) -> bool {
        matches!(self, ConsentAction::Ask | ConsentAction::Confirm)
    }
}

impl fmt::Display for ConsentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The consent state of every (agreement id, city operator). A consent belongs to the agreement
/// id, not to one version, so that a new version does not silently drop or re-ask every city.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentBook {
    // agreement id -> operator -> state; nested so lookups by `&str` need no allocation.
    states: BTreeMap<String, BTreeMap<String, ConsentState>>,
}

impl ConsentBook {
    pub fn load(path: &Path, registry: &Registry, agreements: &[Agreement]) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, &e))?;
        Self::from_toml(&text, &path.display().to_string(), registry, agreements)
    }

    /// Parses a consents document. Each entry must name an agreement id that exists (in any
    /// version) and a city operator that is one of its providers (in any version).
    pub fn from_toml(
        text: &str,
        source: &str,
        registry: &Registry,
        agreements: &[Agreement],
    ) -> Result<Self, PolicyError> {
        let raw: RawConsents = toml::from_str(text).map_err(|e| PolicyError::toml(source, text, &e))?;
        let err = |at: std::ops::Range<usize>, m: String| PolicyError::at(source, text, at, m);
        let mut book = ConsentBook::default();
        for c in raw.consents {
            let agreement = c.agreement.get_ref();
            let operator = c.operator.get_ref();
            let versions: Vec<_> = agreements.iter().filter(|a| a.id() == agreement).collect();
            if versions.is_empty() {
                return Err(err(
                    c.agreement.span(),
                    format!("agreement `{agreement}` is not loaded"),
                ));
            }
            match registry.operator(operator) {
                None => {
                    return Err(err(
                        c.operator.span(),
                        format!("operator `{operator}` is not in the registry"),
                    ));
                }
                Some(o) if !o.kind.is_city() => {
                    return Err(err(
                        c.operator.span(),
                        format!("operator `{operator}` is a prefecture; its cases need no consent"),
                    ));
                }
                Some(_) => {}
            }
            if !versions.iter().any(|a| a.provider(operator).is_some()) {
                return Err(err(
                    c.operator.span(),
                    format!("operator `{operator}` is not a provider of `{agreement}`"),
                ));
            }
            let per_agreement = book.states.entry(agreement.clone()).or_default();
            if per_agreement.insert(operator.clone(), c.state).is_some() {
                return Err(err(
                    c.operator.span(),
                    format!("consent of `{operator}` to `{agreement}` is listed twice"),
                ));
            }
        }
        Ok(book)
    }

    /// The state of a city provider; `NotAsked` when nothing is recorded.
    pub fn state(&self, agreement_id: &str, operator: &str) -> ConsentState {
        self.states
            .get(agreement_id)
            .and_then(|m| m.get(operator))
            .copied()
            .unwrap_or_default()
    }

    /// Records a state; returns the previous one.
    pub fn set(&mut self, agreement_id: &str, operator: &str, state: ConsentState) -> ConsentState {
        self.states
            .entry(agreement_id.to_owned())
            .or_default()
            .insert(operator.to_owned(), state)
            .unwrap_or_default()
    }

    /// Applies an administrator's action; `None` (and no change) if it is not allowed from the
    /// current state.
    pub fn apply(&mut self, agreement_id: &str, operator: &str, action: ConsentAction) -> Option<ConsentState> {
        let next = self.state(agreement_id, operator).apply(action)?;
        self.set(agreement_id, operator, next);
        Some(next)
    }

    /// Every recorded (agreement id, operator, state), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, ConsentState)> {
        self.states
            .iter()
            .flat_map(|(a, m)| m.iter().map(move |(o, s)| (a.as_str(), o.as_str(), *s)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsents {
    #[serde(default)]
    consents: Vec<RawConsent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    agreement: Spanned<String>,
    operator: Spanned<String>,
    state: ConsentState,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

    fn world() -> (Registry, Vec<Agreement>) {
        let dir = Path::new(DIR);
        let r = Registry::load(&dir.join("registry.toml")).unwrap();
        let a = Agreement::load(&dir.join("agreements/kanagawa-2026.toml"), &r).unwrap();
        (r, vec![a])
    }

    #[test]
    fn demo_consents_match_the_spec() {
        let (r, a) = world();
        let book = ConsentBook::load(&Path::new(DIR).join("consents.toml"), &r, &a).unwrap();
        assert_eq!(book.state("kanagawa-2026", "141003"), ConsentState::Active);
        assert_eq!(book.state("kanagawa-2026", "142018"), ConsentState::Active);
        assert_eq!(book.state("kanagawa-2026", "141305"), ConsentState::Asked);
        assert_eq!(book.state("kanagawa-2026", "141500"), ConsentState::NotAsked);
    }

    #[test]
    fn bad_entries_are_refused_by_line() {
        let (r, a) = world();
        let entry = |agreement: &str, operator: &str| {
            format!("\n[[consents]]\nagreement = \"{agreement}\"\noperator = \"{operator}\"\nstate = \"active\"\n")
        };
        let e = ConsentBook::from_toml(&entry("kanagawa-2026", "14"), "c.toml", &r, &a).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("need no consent"), "{e}");
        let e = ConsentBook::from_toml(&entry("kanagawa-2026", "141500"), "c.toml", &r, &a).unwrap_err();
        assert!(e.message.contains("not a provider"), "{e}");
        let e = ConsentBook::from_toml(&entry("tokyo-2026", "141003"), "c.toml", &r, &a).unwrap_err();
        assert!(e.message.contains("`tokyo-2026` is not loaded"), "{e}");
        let twice = format!("{0}{0}", entry("kanagawa-2026", "141003"));
        let e = ConsentBook::from_toml(&twice, "c.toml", &r, &a).unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        let bad_state = entry("kanagawa-2026", "141003").replace("active", "maybe");
        let e = ConsentBook::from_toml(&bad_state, "c.toml", &r, &a).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
    }

    #[test]
    fn opt_in_needs_consent_then_confirmation_and_withdrawal_is_immediate() {
        let mut book = ConsentBook::default();
        let (ag, city) = ("kanagawa-2026", "141305");
        assert_eq!(book.apply(ag, city, ConsentAction::Confirm), None);
        assert_eq!(book.apply(ag, city, ConsentAction::Ask), Some(ConsentState::Asked));
        assert_eq!(
            book.apply(ag, city, ConsentAction::Consent),
            Some(ConsentState::Consented)
        );
        assert!(!book.state(ag, city).is_active());
        assert_eq!(book.apply(ag, city, ConsentAction::Confirm), Some(ConsentState::Active));
        assert!(book.state(ag, city).is_active());
        assert_eq!(book.apply(ag, city, ConsentAction::Decline), None);
        assert_eq!(
            book.apply(ag, city, ConsentAction::Withdraw),
            Some(ConsentState::Withdrawn)
        );
        assert!(!book.state(ag, city).is_active());
        assert_eq!(book.apply(ag, city, ConsentAction::Confirm), None);
        assert_eq!(book.state(ag, city), ConsentState::Withdrawn);
    }
}
