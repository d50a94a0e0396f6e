//! Sharing-agreement TOML (`policy::agreement`) against the repository's registry, and the
//! registry TOML itself (`registry`): what an administrator `PUT`s or loads from `policies/`.
//!
//! Refusals must render as `file:line: message` with a line inside the text; an accepted
//! agreement must hold the invariants the evaluator relies on (a version from 1, a non-empty
//! title, a validity interval that is not empty, providers named once).
#![no_main]

use std::sync::OnceLock;

use cgc_gateway::policy::{Agreement, Audience, PolicyError};
use cgc_gateway::registry::Registry;
use libfuzzer_sys::fuzz_target;

const REGISTRY: &str = include_str!("../../policies/registry.toml");

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry::from_toml(REGISTRY, "policies/registry.toml").expect("the repository's registry loads"))
}

fn check_error(e: &PolicyError, text: &str) {
    assert_eq!(e.file, "fuzz");
    if let Some(line) = e.line {
        assert!(
            line >= 1 && line <= text.split('\n').count(),
            "line {line} is outside the text"
        );
    }
    let _ = e.to_string();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Agreement::from_toml(text, "fuzz", registry()) {
        Ok(a) => {
            assert!(a.version() >= 1);
            assert!(!a.title().trim().is_empty());
            if let Some(until) = a.effective_until() {
                assert!(until > a.effective_from());
            }
            for (i, p) in a.providers().iter().enumerate() {
                assert!(registry().operator(&p.operator).is_some());
                assert!(a.providers().iter().skip(i + 1).all(|q| q.operator != p.operator));
            }
            for audience in Audience::ALL {
                let _ = a.view(audience);
                let _ = a.dv_address_allowed(audience);
            }
        }
        Err(e) => check_error(&e, text),
    }
    match Registry::from_toml(text, "fuzz") {
        Ok(r) => {
            let _ = r.operator("kanagawa");
        }
        Err(e) => check_error(&e, text),
    }
});
