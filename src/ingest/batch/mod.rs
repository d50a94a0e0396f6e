//! Batch import: a CSV file from a legacy CGC system, one case per row, read as it arrives.
//! Each row becomes the JSON document a `PUT /v1/cases/{case_id}` takes and goes through
//! `Ingest::push`, so validation, the version rule, durability and the live hub are exactly the
//! single push's. Only the row being read is held (`csv::MAX_RECORD_BYTES` at most), never the
//! file; the report keeps one small entry per row. A service: no HTTP here.
//!
//! Nothing in a report or an error repeats a cell's value: rows are named by number, cells by
//! column name, and only a case id that is a valid identifier is echoed.

pub mod columns;
pub mod csv;
pub mod decode;

use serde::Serialize;

use self::columns::{ColumnError, Header, RowDocument};
use self::csv::{MAX_RECORD_BYTES, Record, RecordProblem};
use self::decode::{Charset, DecodingReader};
use super::{Ingest, IngestError, Ingested};
use crate::cases::record::CaseId;
use crate::registry::Registry;
use crate::store::StoreError;

/// Why a file was refused as a whole. Rows stored before a `Store` error stay stored; the
/// other errors come before any row is read.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the file is empty: a header row of column names is required")]
    NoHeader,
    #[error("the header row is not valid {encoding}")]
    UndecodableHeader { encoding: &'static str },
    #[error("the header row has {} problem(s)", errors.len())]
    Header { errors: Vec<ColumnError> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Durable now, as after a `PUT`.
    Stored,
    /// The identical version was already stored (a re-upload).
    Unchanged,
    /// A different body is stored at this or a higher version.
    Conflict,
    /// The case was transferred to another center (`to_center`), which pushes it now.
    Transferred,
    /// The row is not a valid case; `errors` names its columns.
    Invalid,
    /// The row's `center_id` is another center's (recorded as a refused access).
    Forbidden,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// The row as a spreadsheet numbers it: the header is row 1.
    pub row: u64,
    /// Only when the row's case id is a valid identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<Box<str>>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ColumnError>,
    /// The row's version, when stored or unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The version already stored, on a conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_version: Option<u64>,
    /// The center the case was transferred to, when transferred (it was the importing
    /// center's case, so the importing center may know where it went).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_center: Option<Box<str>>,
}

/// The answer to a batch: counts, then one entry per row (blank rows aside), in file order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub rows: u64,
    pub stored: u64,
    pub unchanged: u64,
    pub conflict: u64,
    pub transferred: u64,
    pub invalid: u64,
    pub forbidden: u64,
    pub results: Vec<RowResult>,
}

impl Report {
    fn add(&mut self, result: RowResult) {
        self.rows += 1;
        match result.outcome {
            Outcome::Stored => self.stored += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Conflict => self.conflict += 1,
            Outcome::Transferred => self.transferred += 1,
            Outcome::Invalid => self.invalid += 1,
            Outcome::Forbidden => self.forbidden += 1,
        }
        self.results.push(result);
    }
}

/// Stands in for the URL's case id when the row's own is missing or invalid. The row's
/// validation then fails on `/case_id`, so this id is never stored.
const NO_CASE_ID: &str = "-";

/// One batch file being imported for `center_id`: feed it with `push`, end with `finish`.
pub struct BatchImport<'a> {
    ingest: &'a Ingest,
    registry: &'a Registry,
    center_id: &'a str,
    reader: DecodingReader,
    header: Option<Header>,
    records: Vec<Record>,
    report: Report,
    high_water: usize,
}

impl std::fmt::Debug for BatchImport<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchImport")
            .field("center_id", &self.center_id)
            .field("rows", &self.report.rows)
            .finish_non_exhaustive()
    }
}

impl<'a> BatchImport<'a> {
    pub fn new(ingest: &'a Ingest, registry: &'a Registry, center_id: &'a str, charset: Charset) -> Self {
        Self {
            ingest,
            registry,
            center_id,
            reader: DecodingReader::new(charset),
            header: None,
            records: Vec::new(),
            report: Report::default(),
            high_water: 0,
        }
    }

    /// Reads the next piece of the file and imports every row it completes.
    pub async fn push(&mut self, bytes: &[u8]) -> Result<(), BatchError> {
        self.read(bytes, false).await
    }

    /// The end of the file: imports the last row and answers with the report.
    pub async fn finish(mut self) -> Result<Report, BatchError> {
        self.read(&[], true).await?;
        if self.header.is_none() {
            return Err(BatchError::NoHeader);
        }
        Ok(self.report)
    }

    /// The report of the rows imported so far.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The most the reader and its queue of complete rows held at once, in bytes.
    pub fn buffered_high_water(&self) -> usize {
        self.high_water
    }

    async fn read(&mut self, bytes: &[u8], last: bool) -> Result<(), BatchError> {
        let mut records = std::mem::take(&mut self.records);
        self.reader.push(bytes, last, &mut records);
        let queued: usize = records
            .iter()
            .map(|r| r.cells.iter().map(String::capacity).sum::<usize>())
            .sum();
        self.high_water = self.high_water.max(self.reader.buffered_bytes() + queued);
        let mut result = Ok(());
        for record in records.drain(..) {
            result = self.record(record).await;
            if result.is_err() {
                break;
            }
        }
        // The queue's allocation is reused for the next piece.
        self.records = records;
        result
    }

    async fn record(&mut self, record: Record) -> Result<(), BatchError> {
        let Some(header) = &self.header else {
            self.header = Some(self.header_of(record)?);
            return Ok(());
        };
        if record.problems.is_empty() && record.cells.iter().all(String::is_empty) {
            // Blank lines and rows of empty cells (spreadsheets write them) are no cases.
            return Ok(());
        }
        let case_id = header
            .cell(&record.cells, "case_id")
            .filter(|id| CaseId::parse(id).is_ok())
            .map(Box::<str>::from);
        let mut result = RowResult {
            row: record.row,
            case_id,
            outcome: Outcome::Invalid,
            errors: Vec::new(),
            version: None,
            stored_version: None,
            to_center: None,
        };
        result.errors = self.unreadable(header, &record);
        if result.errors.is_empty() {
            let doc = header.document(&record.cells);
            ingest_row(self.ingest, self.registry, self.center_id, &doc, &mut result).await?;
        }
        self.report.add(result);
        Ok(())
    }

    fn header_of(&self, record: Record) -> Result<Header, BatchError> {
        if record
            .problems
            .iter()
            .any(|p| matches!(p, RecordProblem::Undecodable { .. }))
        {
            return Err(BatchError::UndecodableHeader {
                encoding: self.reader.encoding_name(),
            });
        }
        if let Some(p) = record.problems.first() {
            return Err(BatchError::Header {
                errors: vec![ColumnError {
                    column: None,
                    detail: problem_detail(*p, ""),
                }],
            });
        }
        Header::parse(&record.cells).map_err(|errors| BatchError::Header { errors })
    }

    /// What keeps a row from being read as a case at all: undecodable bytes, its length, an
    /// unclosed quote, more cells than the header has columns.
    fn unreadable(&self, header: &Header, record: &Record) -> Vec<ColumnError> {
        let encoding = self.reader.encoding_name();
        let mut errors: Vec<ColumnError> = record
            .problems
            .iter()
            .map(|p| ColumnError {
                column: match p {
                    RecordProblem::Undecodable { cell } => header.name(*cell).map(str::to_owned),
                    RecordProblem::TooLong | RecordProblem::UnterminatedQuote => None,
                },
                detail: problem_detail(*p, encoding),
            })
            .collect();
        let extra = record.cells.get(header.len()..).unwrap_or_default();
        if extra.iter().any(|c| !c.is_empty()) {
            errors.push(ColumnError {
                column: None,
                detail: format!(
                    "the row has {} cells; the header has {} columns",
                    record.cells.len(),
                    header.len()
                ),
            });
        }
        errors
    }
}

/// Pushes one row's document as `center_id` and notes the outcome in `result`.
async fn ingest_row(
    ingest: &Ingest,
    registry: &Registry,
    center_id: &str,
    doc: &RowDocument,
    result: &mut RowResult,
) -> Result<(), BatchError> {
    // Serialising a `Value` built from strings cannot fail; if it did, the row is refused.
    let Ok(body) = serde_json::to_vec(&doc.value) else {
        result.errors.push(ColumnError {
            column: None,
            detail: "the row could not be read as a case".to_owned(),
        });
        return Ok(());
    };
    let url_id = result.case_id.as_deref().unwrap_or(NO_CASE_ID);
    match ingest.push(registry, center_id, url_id, &body).await {
        Ok((record, outcome)) => {
            result.outcome = match outcome {
                Ingested::Stored => Outcome::Stored,
                Ingested::Unchanged => Outcome::Unchanged,
            };
            result.version = Some(record.version);
        }
        Err(IngestError::Invalid { errors, .. }) => {
            result.errors = errors
                .into_iter()
                .map(|e| ColumnError {
                    column: doc.column_of(&e.pointer),
                    detail: e.message,
                })
                .collect();
        }
        Err(IngestError::OtherCenter) => result.outcome = Outcome::Forbidden,
        Err(IngestError::Conflict { stored_version }) => {
            result.outcome = Outcome::Conflict;
            result.stored_version = Some(stored_version);
        }
        // Its new center pushes it now.
        Err(IngestError::Transferred { to_center }) => {
            result.outcome = Outcome::Transferred;
            result.to_center = Some(to_center.into());
        }
        Err(IngestError::Store(e)) => return Err(e.into()),
    }
    Ok(())
}

fn problem_detail(problem: RecordProblem, encoding: &str) -> String {
    match problem {
        RecordProblem::Undecodable { .. } => format!("contains bytes that are not valid {encoding}"),
        RecordProblem::TooLong => format!("the row is longer than {} KiB", MAX_RECORD_BYTES / 1024),
        RecordProblem::UnterminatedQuote => "a quoted cell is not closed before the end of the file".to_owned(),
    }
}
