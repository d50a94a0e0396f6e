//! City opt-ins (SPEC §6): whether a city provider of an agreement shares at all. This is data
//! (`policies/consents.toml`, later the admin API), kept apart from the agreement text so that a
//! city can withdraw at once without a new agreement version.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::agreement::Agreement;
use crate::registry::Registry;
use crate::registry::error::PolicyError;

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
    /// A new agreement version widens what the city shares: the city is asked again, and its
    /// cases stay under the terms it consented to until it consents and the prefecture
    /// confirms.
    Reask,
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
            ConsentAction::Reask => "reask",
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
        matches!(self, ConsentAction::Ask | ConsentAction::Confirm | ConsentAction::Reask)
    }
}

/// A city provider's opt-in: its state, and the agreement versions whose terms it consented to
/// and had confirmed. Its cases are shared only under confirmed terms, and never beyond the
/// version in force (the evaluator takes the narrower of the two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProviderConsent {
    pub state: ConsentState,
    /// The version whose terms the city consented to (awaiting or past confirmation).
    pub consented: Option<u32>,
    /// The version whose terms the city consented to and the prefecture confirmed.
    pub confirmed: Option<u32>,
}

/// A state with no terms consented: what a city that withdrew, declined or was never asked has.
impl From<ConsentState> for ProviderConsent {
    fn from(state: ConsentState) -> Self {
        ProviderConsent {
            state,
            consented: None,
            confirmed: None,
        }
    }
}

impl ProviderConsent {
    /// The opt-in after `action`, `latest` being the agreement's latest version (what a city
    /// consents to); `None` if the action makes no sense from here. Repeating an action that
    /// already holds is allowed and changes nothing, so retried requests are harmless.
    pub fn after(self, action: ConsentAction, latest: u32) -> Option<ProviderConsent> {
        use ConsentAction as A;
        use ConsentState as S;
        let next = |state, consented, confirmed| {
            Some(ProviderConsent {
                state,
                consented,
                confirmed,
            })
        };
        match action {
            A::Ask => next(self.state.apply(action)?, None, self.confirmed),
            A::Consent => next(self.state.apply(action)?, Some(latest), self.confirmed),
            A::Decline => next(self.state.apply(action)?, None, self.confirmed),
            // A city may withdraw at any time it shares or is about to: also while it is asked
            // again about a widening and its cases still go out under the terms it had agreed.
            A::Withdraw if self.state.apply(action).is_some() || self.confirmed.is_some() => {
                next(S::Withdrawn, None, None)
            }
            A::Withdraw => None,
            // The prefecture confirms what the city consented to, never a later version.
            A::Confirm => {
                let consented = self.consented?;
                next(self.state.apply(action)?, Some(consented), Some(consented))
            }
            A::Reask => match self.state {
                S::Active | S::Consented => next(S::Asked, None, self.confirmed),
                _ => None,
            },
        }
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
    // agreement id -> operator -> opt-in; nested so lookups by `&str` need no allocation.
    states: BTreeMap<String, BTreeMap<String, ProviderConsent>>,
}

impl ConsentBook {
    pub fn load(path: &Path, registry: &Registry, agreements: &[Agreement]) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, &e))?;
        Self::from_toml(&text, &path.display().to_string(), registry, agreements)
    }

    /// Parses a consents document. Each entry must name an agreement id that exists (in any
    /// version) and a city operator that is one of its providers (in any version). A state
    /// of `consented` or `active` is a consent to the latest loaded version's terms.
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
            let latest = versions.iter().map(|a| a.version()).max();
            let consent = ProviderConsent {
                state: c.state,
                consented: matches!(c.state, ConsentState::Consented | ConsentState::Active)
                    .then_some(latest)
                    .flatten(),
                confirmed: (c.state == ConsentState::Active).then_some(latest).flatten(),
            };
            let per_agreement = book.states.entry(agreement.clone()).or_default();
            if per_agreement.insert(operator.clone(), consent).is_some() {
                return Err(err(
                    c.operator.span(),
                    format!("consent of `{operator}` to `{agreement}` is listed twice"),
                ));
            }
        }
        Ok(book)
    }

    /// The opt-in of a city provider; `NotAsked`, nothing consented, when nothing is recorded.
    pub fn get(&self, agreement_id: &str, operator: &str) -> ProviderConsent {
        self.states
            .get(agreement_id)
            .and_then(|m| m.get(operator))
            .copied()
            .unwrap_or_default()
    }

    /// The state of a city provider; `NotAsked` when nothing is recorded.
    pub fn state(&self, agreement_id: &str, operator: &str) -> ConsentState {
        self.get(agreement_id, operator).state
    }

    /// Records an opt-in; returns the previous one.
    pub fn set(&mut self, agreement_id: &str, operator: &str, consent: ProviderConsent) -> ProviderConsent {
        self.states
            .entry(agreement_id.to_owned())
            .or_default()
            .insert(operator.to_owned(), consent)
            .unwrap_or_default()
    }

    /// Applies an administrator's action (`latest`: the agreement's latest version); `None`
    /// (and no change) if it is not allowed from the current state.
    pub fn apply(
        &mut self,
        agreement_id: &str,
        operator: &str,
        action: ConsentAction,
        latest: u32,
    ) -> Option<ProviderConsent> {
        let next = self.get(agreement_id, operator).after(action, latest)?;
        self.set(agreement_id, operator, next);
        Some(next)
    }

    /// Every recorded (agreement id, operator, opt-in), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, ProviderConsent)> {
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
        let state = |c: Option<ProviderConsent>| c.map(|c| c.state);
        assert_eq!(book.apply(ag, city, ConsentAction::Confirm, 1), None);
        assert_eq!(
            state(book.apply(ag, city, ConsentAction::Ask, 1)),
            Some(ConsentState::Asked)
        );
        assert_eq!(
            book.apply(ag, city, ConsentAction::Consent, 1),
            Some(ProviderConsent {
                state: ConsentState::Consented,
                consented: Some(1),
                confirmed: None
            })
        );
        assert!(!book.state(ag, city).is_active());
        assert_eq!(book.get(ag, city).confirmed, None);
        assert_eq!(
            book.apply(ag, city, ConsentAction::Confirm, 1),
            Some(ProviderConsent {
                state: ConsentState::Active,
                consented: Some(1),
                confirmed: Some(1)
            })
        );
        assert!(book.state(ag, city).is_active());
        assert_eq!(book.apply(ag, city, ConsentAction::Decline, 1), None);
        assert_eq!(
            book.apply(ag, city, ConsentAction::Withdraw, 1),
            Some(ProviderConsent {
                state: ConsentState::Withdrawn,
                consented: None,
                confirmed: None
            })
        );
        assert!(!book.state(ag, city).is_active());
        assert_eq!(book.apply(ag, city, ConsentAction::Confirm, 1), None);
        assert_eq!(book.state(ag, city), ConsentState::Withdrawn);
    }

    #[test]
    fn a_widening_reasks_but_keeps_the_confirmed_terms_until_confirmed_again() {
        let mut book = ConsentBook::default();
        let (ag, city) = ("kanagawa-2026", "141003");
        book.apply(ag, city, ConsentAction::Consent, 1).unwrap();
        book.apply(ag, city, ConsentAction::Confirm, 1).unwrap();
        let asked = book.apply(ag, city, ConsentAction::Reask, 2).unwrap();
        assert_eq!(asked.state, ConsentState::Asked);
        assert_eq!(asked.confirmed, Some(1), "the consented terms still govern");
        // The prefecture cannot confirm what the city has not consented to.
        assert_eq!(book.apply(ag, city, ConsentAction::Confirm, 2), None);
        let consented = book.apply(ag, city, ConsentAction::Consent, 2).unwrap();
        assert_eq!((consented.consented, consented.confirmed), (Some(2), Some(1)));
        let confirmed = book.apply(ag, city, ConsentAction::Confirm, 2).unwrap();
        assert_eq!((confirmed.state, confirmed.confirmed), (ConsentState::Active, Some(2)));
        // Reasking a city that shares nothing changes nothing.
        let mut other = ConsentBook::default();
        assert_eq!(other.apply(ag, "141305", ConsentAction::Reask, 2), None);
    }

    #[test]
    fn a_city_asked_again_may_withdraw_at_once_or_decline_only_the_widening() {
        let mut book = ConsentBook::default();
        let (ag, city) = ("kanagawa-2026", "141003");
        book.apply(ag, city, ConsentAction::Consent, 1).unwrap();
        book.apply(ag, city, ConsentAction::Confirm, 1).unwrap();
        book.apply(ag, city, ConsentAction::Reask, 2).unwrap();
        let declined = book.apply(ag, city, ConsentAction::Decline, 2).unwrap();
        assert_eq!((declined.state, declined.confirmed), (ConsentState::Declined, Some(1)));
        let withdrawn = book.apply(ag, city, ConsentAction::Withdraw, 2).unwrap();
        assert_eq!((withdrawn.state, withdrawn.confirmed), (ConsentState::Withdrawn, None));
    }
}
