//! The policy engine (SPEC §6): sharing agreements, city consents and the pure decision of what
//! a police unit may see of a case. No I/O beyond the explicit file loaders, no clock: time is
//! a parameter.

pub mod agreement;
pub mod consent;
pub mod error;
pub mod evaluate;
pub mod fields;
pub mod project;

pub use agreement::{Agreement, Audience, Criterion, Provider, Scope};
pub use consent::{ConsentAction, ConsentBook, ConsentState};
pub use error::PolicyError;
pub use evaluate::{Decision, PolicyWorld, SAFETY_CONFIRMATION_WINDOW, evaluate, next_change};
pub use fields::{FieldPath, FieldSet};
pub use project::project;
