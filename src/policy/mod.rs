//! The policy engine (SPEC §6): sharing agreements, city consents and the pure decision of what
//! a police unit may see of a case. No I/O beyond the explicit file loaders, no clock: time is
//! a parameter.

pub mod agreement;
pub mod consent;
pub mod diff;
pub mod evaluate;
pub mod fields;
pub mod project;
#[cfg(test)]
mod proptests;
pub mod widening;

pub use crate::registry::error::PolicyError;
pub use agreement::{Agreement, Audience, Criterion, Predicate, PredicateField, Provider, Scope, Test};
pub use consent::{ConsentAction, ConsentBook, ConsentState, ProviderConsent};
pub use diff::{PolicyDiff, diff};
pub use evaluate::{
    Decision, NoView, Overlap, PolicyWorld, SAFETY_CONFIRMATION_WINDOW, agreement_bound_between, case_deadline,
    evaluate, explain, find_overlap, next_change,
};
pub use fields::{FieldPath, FieldSet};
pub use project::project;
pub use widening::{Widening, widening};
