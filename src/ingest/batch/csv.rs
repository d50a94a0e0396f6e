//! An incremental RFC 4180 reader: decoded text goes in piece by piece, in whatever pieces the
//! network delivers; complete records come out. Quoted cells may hold commas, doubled quotes
//! and line breaks; records end with CRLF, LF or a lone CR. Only the record being read is held,
//! and a record longer than `MAX_RECORD_BYTES` is cut (and reported), so what the reader
//! buffers never grows with the file.

/// The longest record kept, in UTF-8 bytes: the size of the largest single `PUT` body. A
/// longer one is reported as too long, and its cells are dropped as they arrive.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Why a record cannot be used as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordProblem {
    /// Bytes in the cell at this (0-based) index could not be decoded.
    Undecodable { cell: usize },
    /// The record was longer than `MAX_RECORD_BYTES`; its cells were dropped.
    TooLong,
    /// The file ended inside a quoted cell.
    UnterminatedQuote,
}

/// One record, numbered as a spreadsheet numbers its rows (the first record, the header, is 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub row: u64,
    pub cells: Vec<String>,
    pub problems: Vec<RecordProblem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a cell (and so maybe of a record).
    CellStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted cell: either the first of a doubled quote or the closing one.
    QuoteInQuoted,
}

#[derive(Debug)]
pub struct CsvReader {
    state: State,
    cell: String,
    cells: Vec<String>,
    problems: Vec<RecordProblem>,
    /// UTF-8 bytes of the current record so far (cells, and the cell being read).
    record_bytes: usize,
    /// Whether anything of the current record has been read (an empty line is a record of one
    /// empty cell; the end of the file right after a line break is no record at all).
    in_record: bool,
    /// A CR ended the last record: an LF right after it belongs to the same line break.
    after_cr: bool,
    /// Nothing decoded yet: a U+FEFF here is a byte-order mark, not content.
    at_start: bool,
    rows: u64,
}

impl Default for CsvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvReader {
    pub fn new() -> Self {
        Self {
            state: State::CellStart,
            cell: String::new(),
            cells: Vec::new(),
            problems: Vec::new(),
            record_bytes: 0,
            in_record: false,
            after_cr: false,
            at_start: true,
            rows: 0,
        }
    }

    /// Reads `text`, appending every record it completes to `out`.
    pub fn push_str(&mut self, text: &str, out: &mut Vec<Record>) {
        for c in text.chars() {
            self.push_char(c, out);
        }
    }

    /// Notes that undecodable bytes stood here, in the cell being read.
    pub fn push_undecodable(&mut self) {
        self.at_start = false;
        self.after_cr = false;
        self.in_record = true;
        if self.state == State::CellStart {
            self.state = State::Unquoted;
        }
        let problem = RecordProblem::Undecodable { cell: self.cells.len() };
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    /// The end of the input: the last record, if it did not end with a line break.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        if self.state == State::Quoted {
            self.problems.push(RecordProblem::UnterminatedQuote);
        }
        if self.in_record {
            self.end_record(out);
        }
    }

    /// What the reader holds between calls, in bytes: bounded by `MAX_RECORD_BYTES` plus the
    /// bookkeeping of one record, however long the file.
    pub fn buffered_bytes(&self) -> usize {
        self.cell.capacity()
            + self.cells.capacity() * std::mem::size_of::<String>()
            + self.cells.iter().map(String::capacity).sum::<usize>()
            + self.problems.capacity() * std::mem::size_of::<RecordProblem>()
    }

    fn push_char(&mut self, c: char, out: &mut Vec<Record>) {
        if std::mem::take(&mut self.at_start) && c == '\u{FEFF}' {
            return;
        }
        if std::mem::take(&mut self.after_cr) && c == '\n' {
            return;
        }
        match self.state {
            State::CellStart => match c {
                '"' => {
                    self.in_record = true;
                    self.state = State::Quoted;
                }
                ',' => {
                    self.in_record = true;
                    self.end_cell();
                }
                '\r' | '\n' => self.end_line(c, out),
                c => {
                    self.in_record = true;
                    self.state = State::Unquoted;
                    self.push_to_cell(c);
                }
            },
            State::Unquoted => match c {
                ',' => self.end_cell(),
                '\r' | '\n' => self.end_line(c, out),
                // A quote inside an unquoted cell is kept as written, as spreadsheets do.
                c => self.push_to_cell(c),
            },
            State::Quoted => match c {
                '"' => self.state = State::QuoteInQuoted,
                c => self.push_to_cell(c),
            },
            State::QuoteInQuoted => match c {
                '"' => {
                    self.state = State::Quoted;
                    self.push_to_cell('"');
                }
                ',' => self.end_cell(),
                '\r' | '\n' => self.end_line(c, out),
                // Text after a closing quote (`"ab"c`) is kept, as spreadsheets do.
                c => {
                    self.state = State::Unquoted;
                    self.push_to_cell(c);
                }
            },
        }
    }

    fn push_to_cell(&mut self, c: char) {
        self.record_bytes = self.record_bytes.saturating_add(c.len_utf8());
        if self.record_bytes > MAX_RECORD_BYTES {
            if !self.problems.contains(&RecordProblem::TooLong) {
                self.problems.push(RecordProblem::TooLong);
                // What was kept is of no use any more; let it go.
                self.cell = String::new();
                self.cells = Vec::new();
            }
            return;
        }
        self.cell.push(c);
    }

    fn end_cell(&mut self) {
        self.state = State::CellStart;
        let cell = std::mem::take(&mut self.cell);
        if !self.problems.contains(&RecordProblem::TooLong) {
            self.cells.push(cell);
        }
    }

    fn end_line(&mut self, c: char, out: &mut Vec<Record>) {
        self.after_cr = c == '\r';
        // An empty line is still a row of the file, as a spreadsheet counts it.
        self.end_record(out);
    }

    fn end_record(&mut self, out: &mut Vec<Record>) {
        self.end_cell();
        self.rows = self.rows.saturating_add(1);
        out.push(Record {
            row: self.rows,
            cells: std::mem::take(&mut self.cells),
            problems: std::mem::take(&mut self.problems),
        });
        self.record_bytes = 0;
        self.in_record = false;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn read_in_pieces(text: &str, piece: usize) -> Vec<Record> {
        let mut reader = CsvReader::new();
        let mut out = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(piece.max(1)) {
            reader.push_str(&chunk.iter().collect::<String>(), &mut out);
        }
        reader.finish(&mut out);
        out
    }

    fn cells(records: &[Record]) -> Vec<Vec<&str>> {
        records
            .iter()
            .map(|r| r.cells.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn quoted_cells_hold_commas_quotes_and_line_breaks_in_any_split() {
        let text = "a,b,c\r\n\"x,1\",\"say \"\"hi\"\"\",\"two\r\nlines\"\r\nlast,,\"\"\r\n";
        let want = vec![
            vec!["a", "b", "c"],
            vec!["x,1", "say \"hi\"", "two\r\nlines"],
            vec!["last", "", ""],
        ];
        for piece in [1, 2, 3, 5, 7, 1000] {
            let records = read_in_pieces(text, piece);
            assert_eq!(cells(&records), want, "pieces of {piece}");
            assert_eq!(records.iter().map(|r| r.row).collect::<Vec<_>>(), vec![1, 2, 3]);
            assert!(records.iter().all(|r| r.problems.is_empty()));
        }
    }

    #[test]
    fn line_endings_lf_crlf_and_cr_and_a_missing_final_one() {
        for text in ["a,b\n1,2\n3,4", "a,b\r\n1,2\r\n3,4\r\n", "a,b\r1,2\r3,4\r"] {
            assert_eq!(
                cells(&read_in_pieces(text, 1)),
                vec![vec!["a", "b"], vec!["1", "2"], vec!["3", "4"]],
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_skipped_only_at_the_start() {
        let records = read_in_pieces("\u{FEFF}a,b\n\u{FEFF}x,y\n", 1);
        assert_eq!(cells(&records), vec![vec!["a", "b"], vec!["\u{FEFF}x", "y"]]);
    }

    #[test]
    fn empty_lines_are_rows_and_numbering_follows_records_not_lines() {
        let records = read_in_pieces("h\n\"multi\nline\"\n\nlast\n", 4);
        assert_eq!(
            cells(&records),
            vec![vec!["h"], vec!["multi\nline"], vec![""], vec!["last"]]
        );
        assert_eq!(records.iter().map(|r| r.row).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn an_unterminated_quote_is_reported_on_its_record() {
        let records = read_in_pieces("h\n\"open,\nrest", 3);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].problems, vec![RecordProblem::UnterminatedQuote]);
    }

    #[test]
    fn undecodable_bytes_are_pinned_to_their_cell() {
        let mut reader = CsvReader::new();
        let mut out = Vec::new();
        reader.push_str("a,b,c\nx,", &mut out);
        reader.push_undecodable();
        reader.push_str("y,z\nok,ok,ok\n", &mut out);
        reader.finish(&mut out);
        assert_eq!(out[1].problems, vec![RecordProblem::Undecodable { cell: 1 }]);
        assert!(out[2].problems.is_empty());
    }

    #[test]
    fn a_record_longer_than_the_bound_is_cut_and_the_next_one_read() {
        let long = "x".repeat(MAX_RECORD_BYTES + 10);
        let text = format!("h1,h2\n\"{long}\",\"a\nb\"\nnext,1\n");
        let records = read_in_pieces(&text, 4096);
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].problems, vec![RecordProblem::TooLong]);
        assert!(records[1].cells.is_empty());
        assert_eq!(cells(&records[2..]), vec![vec!["next", "1"]]);
    }

    #[test]
    fn what_the_reader_buffers_stays_bounded_however_many_rows_pass() {
        let row = "YKS-0001,yokosuka,1,\"住所\n二行目\",ｱｲｳ①㈱\r\n";
        let mut reader = CsvReader::new();
        let mut out = Vec::new();
        let mut high_water = 0;
        for _ in 0..20_000 {
            reader.push_str(row, &mut out);
            high_water = high_water.max(reader.buffered_bytes());
            out.clear();
        }
        reader.finish(&mut out);
        // One record's worth, never the file's (20,000 rows are 1.2 MB).
        assert!(high_water < 1024, "buffered {high_water} bytes");
        assert_eq!(reader.rows, 20_000);
    }
}
