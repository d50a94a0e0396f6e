//! SSE cursors (`live::Cursor`): the `Last-Event-ID` a terminal sends back to resume a stream.
//!
//! Whatever parses must print canonically and parse back to the same cursor, in both forms
//! (`<hex instance>-<seq>` and the portable `<hex instance>-<seq>.<position>.<at>.<hex epoch>`);
//! any cursor built from numbers the hub can issue must survive the same round trip. Positions
//! and instants are never negative (change-log positions start at 1, instants are after 1970);
//! a negative one would print as a cursor that does not parse, which only restarts the stream.
#![no_main]

use cgc_gateway::live::{cursor::Portable, Cursor};
use libfuzzer_sys::fuzz_target;

fn word(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    for (b, d) in buf.iter_mut().zip(bytes) {
        *b = *d;
    }
    u64::from_be_bytes(buf)
}

fn non_negative(bytes: &[u8]) -> i64 {
    i64::try_from(word(bytes) >> 1).unwrap_or(i64::MAX)
}

fn built_from(data: &[u8]) -> Option<Cursor> {
    let (head, rest) = data.split_first_chunk::<16>()?;
    let (instance, seq) = head.split_at(8);
    let portable = rest.split_first_chunk::<24>().map(|(p, _)| Portable {
        position: non_negative(p.get(..8).unwrap_or_default()),
        at_ms: non_negative(p.get(8..16).unwrap_or_default()),
        epoch: word(p.get(16..).unwrap_or_default()),
    });
    Some(Cursor {
        instance: word(instance),
        seq: word(seq),
        portable,
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(cursor) = built_from(data) {
        assert_eq!(Cursor::parse(&cursor.to_string()), Some(cursor), "{cursor}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(cursor) = Cursor::parse(text) {
        let canonical = cursor.to_string();
        assert_eq!(Cursor::parse(&canonical), Some(cursor), "{canonical}");
    }
});
