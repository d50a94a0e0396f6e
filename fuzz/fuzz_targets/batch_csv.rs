//! The batch-import CSV reader (`ingest::batch::{decode, csv}`) and the column mapping
//! (`ingest::batch::columns`): any file a center can upload, in UTF-8 or Shift_JIS.
//!
//! The first input byte picks the charset and where the file is cut in two, as the network may
//! cut it. Asserted beyond "no panic":
//! - the records do not depend on where the file was cut;
//! - in UTF-8, records read without problems, written back as RFC 4180 and read again, are the
//!   same records (the reader inverts the writer);
//! - every row under a valid header maps to a case document, and every validation error of that
//!   document maps back to a column without panicking.
#![no_main]

use cgc_gateway::cases::validate::parse_case;
use cgc_gateway::ingest::batch::columns::Header;
use cgc_gateway::ingest::batch::csv::Record;
use cgc_gateway::ingest::batch::decode::{Charset, DecodingReader};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

const NOW: i64 = 1_796_083_200;

fn read(charset: Charset, pieces: &[&[u8]]) -> Vec<Record> {
    let mut reader = DecodingReader::new(charset);
    let mut out = Vec::new();
    for piece in pieces {
        reader.push(piece, false, &mut out);
    }
    reader.push(&[], true, &mut out);
    out
}

fn write(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        let cells: Vec<String> = r
            .cells
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, file)) = data.split_first() else {
        return;
    };
    let charset = if control & 1 == 0 {
        Charset::Utf8
    } else {
        Charset::ShiftJis
    };
    let whole = read(charset, &[file]);
    let cut = usize::from(control >> 1) % (file.len() + 1);
    let (a, b) = file.split_at(cut);
    assert_eq!(whole, read(charset, &[a, b]), "the records depend on the cut at {cut}");

    if charset == Charset::Utf8 {
        let clean: Vec<Record> = whole.iter().filter(|r| r.problems.is_empty()).cloned().collect();
        let again = read(Charset::Utf8, &[write(&clean).as_bytes()]);
        let cells = |rs: &[Record]| rs.iter().map(|r| r.cells.clone()).collect::<Vec<_>>();
        assert_eq!(cells(&clean), cells(&again), "written and read again, the cells differ");
        assert!(again.iter().all(|r| r.problems.is_empty()));
    }

    let Some((first, rows)) = whole.split_first() else {
        return;
    };
    let Ok(header) = Header::parse(&first.cells) else {
        return;
    };
    let Ok(now) = OffsetDateTime::from_unix_timestamp(NOW) else {
        return;
    };
    for row in rows.iter().filter(|r| r.problems.is_empty()) {
        let _ = header.cell(&row.cells, "case_id");
        let doc = header.document(&row.cells);
        if let Err(errors) = parse_case(&doc.value, now) {
            for e in errors {
                let _ = doc.column_of(&e.pointer);
            }
        }
    }
});
