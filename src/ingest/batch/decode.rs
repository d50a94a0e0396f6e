//! Bytes to text for the CSV reader, incrementally: a character split across two network reads
//! is decoded once both halves have arrived. Shift_JIS is the WHATWG Shift_JIS of `encoding_rs`,
//! which is Windows code page 932 with the NEC special characters (①, ㈱, №, …) and the NEC and
//! IBM extensions (髙, 﨑, …). Undecodable bytes are not replaced by U+FFFD and imported: they are
//! reported to the reader, which pins them to their cell.

use encoding_rs::{DecoderResult, Encoding, SHIFT_JIS, UTF_8};

use super::csv::{CsvReader, Record};

/// The encodings a batch may be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    ShiftJis,
}

impl Charset {
    /// From a `charset` parameter: `UTF-8`, or `Shift_JIS` under any of its usual names
    /// (`Shift_JIS`, `SJIS`, `Windows-31J`, `MS932`, `CP932`, …), case-insensitively.
    pub fn from_label(label: &str) -> Option<Self> {
        let label = label.trim().trim_matches('"');
        if label.eq_ignore_ascii_case("cp932") {
            return Some(Self::ShiftJis);
        }
        match Encoding::for_label(label.as_bytes()) {
            Some(e) if e == UTF_8 => Some(Self::Utf8),
            Some(e) if e == SHIFT_JIS => Some(Self::ShiftJis),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::ShiftJis => "Shift_JIS",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            Self::Utf8 => UTF_8,
            Self::ShiftJis => SHIFT_JIS,
        }
    }
}

/// Decodes pieces of a file and feeds the text to a `CsvReader`.
pub struct DecodingReader {
    decoder: encoding_rs::Decoder,
    csv: CsvReader,
    text: String,
}

impl std::fmt::Debug for DecodingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodingReader")
            .field("encoding", &self.decoder.encoding().name())
            .finish_non_exhaustive()
    }
}

impl DecodingReader {
    /// A byte-order mark at the start wins over the declared charset, as in browsers: a file
    /// that starts with the UTF-8 BOM is UTF-8. The mark itself is not content.
    pub fn new(charset: Charset) -> Self {
        Self {
            decoder: charset.encoding().new_decoder(),
            csv: CsvReader::new(),
            text: String::new(),
        }
    }

    /// Decodes `bytes` (`last`: nothing follows), appending every completed record to `out`.
    pub fn push(&mut self, mut bytes: &[u8], last: bool, out: &mut Vec<Record>) {
        // An empty read is nothing to decode; handed to the decoder anyway, it lost a lead byte
        // held over from the previous read (found by fuzzing, docs/fuzzing.md).
        if bytes.is_empty() && !last {
            return;
        }
        loop {
            self.text.clear();
            let room = self
                .decoder
                .max_utf8_buffer_length_without_replacement(bytes.len())
                .unwrap_or(bytes.len().saturating_mul(3).saturating_add(16));
            self.text.reserve(room);
            let (result, read) = self
                .decoder
                .decode_to_string_without_replacement(bytes, &mut self.text, last);
            self.csv.push_str(&self.text, out);
            bytes = bytes.get(read..).unwrap_or_default();
            match result {
                DecoderResult::InputEmpty => break,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => self.csv.push_undecodable(),
            }
        }
        // Keep no large buffer between network reads.
        if self.text.capacity() > 64 * 1024 {
            self.text = String::new();
        }
        if last {
            self.csv.finish(out);
        }
    }

    /// The encoding in use (a byte-order mark may have changed it).
    pub fn encoding_name(&self) -> &'static str {
        let e = self.decoder.encoding();
        if e == SHIFT_JIS { "Shift_JIS" } else { e.name() }
    }

    /// What is held between calls, in bytes (see `CsvReader::buffered_bytes`).
    pub fn buffered_bytes(&self) -> usize {
        self.csv.buffered_bytes() + self.text.capacity()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::ingest::batch::csv::RecordProblem;

    fn read(charset: Charset, bytes: &[u8], piece: usize) -> Vec<Record> {
        let mut reader = DecodingReader::new(charset);
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece) {
            reader.push(chunk, false, &mut out);
        }
        reader.push(&[], true, &mut out);
        out
    }

    #[test]
    fn labels() {
        for l in [
            "Shift_JIS",
            "shift_jis",
            "SJIS",
            "windows-31j",
            "MS932",
            "cp932",
            "x-sjis",
        ] {
            assert_eq!(Charset::from_label(l), Some(Charset::ShiftJis), "{l}");
        }
        for l in ["UTF-8", "utf8", "\"utf-8\""] {
            assert_eq!(Charset::from_label(l), Some(Charset::Utf8), "{l}");
        }
        for l in ["EUC-JP", "ISO-2022-JP", "latin1", "utf-16", "", "bogus"] {
            assert_eq!(Charset::from_label(l), None, "{l}");
        }
    }

    #[test]
    fn shift_jis_with_half_width_kana_and_nec_characters_split_anywhere() {
        let text = "note\r\nｱｲｳｴｵ ①②③ ㈱ № ≒ Ⅲ ㍻ 髙橋 﨑\r\n";
        let (sjis, _, unmappable) = SHIFT_JIS.encode(text);
        assert!(!unmappable);
        // NEC row 13 (①, ㈱, № …) and half-width kana as single bytes.
        assert!(sjis.windows(2).any(|w| w == [0x87, 0x40]), "① is 0x8740");
        assert!(sjis.contains(&0xB1), "ｱ is 0xB1");
        for piece in [1, 2, 3, 1000] {
            let records = read(Charset::ShiftJis, &sjis, piece);
            assert_eq!(records.len(), 2);
            assert_eq!(
                records[1].cells,
                vec!["ｱｲｳｴｵ ①②③ ㈱ № ≒ Ⅲ ㍻ 髙橋 﨑"],
                "pieces of {piece}"
            );
            assert!(records[1].problems.is_empty());
        }
    }

    #[test]
    fn undecodable_bytes_mark_their_cell_and_spare_the_rest() {
        // 0x82 0xFF: a Shift_JIS lead byte with an impossible trail byte; 0xA0 alone.
        let mut bytes = b"a,b\r\nok,".to_vec();
        bytes.extend_from_slice(&[0x82, 0xFF]);
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&[0xA0]);
        bytes.extend_from_slice(b",x\r\nfine,");
        bytes.extend_from_slice(&SHIFT_JIS.encode("山田").0);
        bytes.extend_from_slice(b"\r\n");
        let records = read(Charset::ShiftJis, &bytes, 1);
        assert_eq!(records.len(), 4);
        assert_eq!(records[1].problems, vec![RecordProblem::Undecodable { cell: 1 }]);
        assert_eq!(records[2].problems, vec![RecordProblem::Undecodable { cell: 0 }]);
        assert_eq!(records[3].cells, vec!["fine", "山田"]);
        assert!(records[3].problems.is_empty());

        let records = read(Charset::Utf8, b"a\n\xE5\xB1\nok\n\xE5\xB1", 2);
        assert_eq!(records[1].problems, vec![RecordProblem::Undecodable { cell: 0 }]);
        assert!(records[2].problems.is_empty());
        // A character cut off by the end of the file.
        assert_eq!(records[3].problems, vec![RecordProblem::Undecodable { cell: 0 }]);
    }

    /// Found by `cargo fuzz` (target `batch_csv`): a lead byte left pending at the end of one
    /// network read was lost when an empty read followed, so the file's last, cut-off
    /// character vanished without being reported.
    #[test]
    fn an_empty_read_keeps_a_pending_lead_byte() {
        for (charset, bytes) in [
            (Charset::ShiftJis, &b"\x97"[..]),
            (Charset::ShiftJis, &b"a,\x82"[..]),
            (Charset::Utf8, &b"a,\xE5\xB1"[..]),
        ] {
            let whole = read(charset, bytes, bytes.len());
            assert_eq!(
                whole.last().map(|r| r.problems.clone()),
                Some(vec![RecordProblem::Undecodable {
                    cell: whole.last().map_or(0, |r| r.cells.len() - 1)
                }]),
                "{bytes:?}"
            );
            let mut reader = DecodingReader::new(charset);
            let mut out = Vec::new();
            reader.push(bytes, false, &mut out);
            reader.push(&[], false, &mut out);
            reader.push(&[], true, &mut out);
            assert_eq!(out, whole, "{bytes:?}");
        }
    }

    #[test]
    fn a_utf8_byte_order_mark_is_dropped_and_wins_over_the_label() {
        let bytes = "\u{FEFF}h\n山田\n".as_bytes();
        for charset in [Charset::Utf8, Charset::ShiftJis] {
            let mut reader = DecodingReader::new(charset);
            let mut out = Vec::new();
            reader.push(bytes, true, &mut out);
            assert_eq!(out[0].cells, vec!["h"]);
            assert_eq!(out[1].cells, vec!["山田"]);
            assert_eq!(reader.encoding_name(), "UTF-8");
        }
    }
}
