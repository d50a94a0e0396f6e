//! SSE cursors (`live::Cursor`): the `Last-Event-ID` a terminal sends back to resume a stream.
//!
//! Whatever parses must print as the canonical `<hex instance>-<decimal seq>` and parse back to
//! the same cursor; any cursor built from two numbers must survive the same round trip.
#![no_main]

use cgc_gateway::live::Cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((numbers, _)) = data.split_first_chunk::<16>() {
        let (instance, seq) = numbers.split_at(8);
        let cursor = Cursor {
            instance: u64::from_be_bytes(instance.try_into().expect("8 bytes")),
            seq: u64::from_be_bytes(seq.try_into().expect("8 bytes")),
        };
        assert_eq!(Cursor::parse(&cursor.to_string()), Some(cursor));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(cursor) = Cursor::parse(text) {
        let canonical = cursor.to_string();
        assert_eq!(Cursor::parse(&canonical), Some(cursor), "{canonical}");
    }
});
