//! Case JSON validation (`cases::validate`): any body a center can push.
//!
//! Beyond "no panic": a body that is accepted, serialized back from the parsed record and pushed
//! again must be accepted as the very same record (validation is idempotent), and every refusal
//! names its field as an RFC 6901 pointer, at most `MAX_ERRORS` of them.
#![no_main]

use cgc_gateway::cases::validate::{FieldError, MAX_ERRORS, parse_case_bytes, parse_recorded_case_bytes};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

/// 2026-12-01T00:00:00Z: a fixed `now` (after the examples' timestamps), so that a crash reproduces.
const NOW: i64 = 1_796_083_200;

fn check_errors(errors: &[FieldError]) {
    assert!(!errors.is_empty());
    assert!(errors.len() <= MAX_ERRORS + 1, "{} errors", errors.len());
    for e in errors {
        assert!(e.pointer.is_empty() || e.pointer.starts_with('/'), "{:?}", e.pointer);
        assert!(!e.message.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(now) = OffsetDateTime::from_unix_timestamp(NOW) else {
        return;
    };
    let pushed = parse_case_bytes(data, now);
    let recorded = parse_recorded_case_bytes(data);
    match (&pushed, &recorded) {
        (Ok((_, record)), Ok((_, again))) => assert_eq!(record, again, "the clock bound changed the record"),
        // Only the clock bound differs: what a push accepts, a stored read accepts.
        (Ok(_), Err(e)) => panic!("accepted as a push but not as a recorded case: {e:?}"),
        (Err(e), _) => check_errors(e),
    }
    if let Err(e) = &recorded {
        check_errors(e);
    }
    if let Ok((_, record)) = pushed {
        let body = serde_json::to_vec(&record).expect("a record serializes");
        match parse_case_bytes(&body, now) {
            Ok((_, again)) => assert_eq!(record, again, "the record changed on a second push"),
            Err(e) => panic!("a record's own JSON is refused: {e:?}"),
        }
    }
});
