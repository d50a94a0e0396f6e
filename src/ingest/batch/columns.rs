//! The columns of a batch file: one per field path of the case record (`child.birth_date`,
//! `guardians.2.relationship`, …). A row becomes exactly the JSON document a `PUT` takes, and a
//! refusal's JSON pointer becomes a column name again (`/guardians/0/name` → `guardians.1.name`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::cases::validate::MAX_GUARDIANS;

/// How a cell's text becomes a JSON value. An empty cell is always an absent field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// Digits become a JSON number; anything else stays text, which validation refuses.
    Integer,
    /// `true` / `false` (any letter case, as spreadsheets write `TRUE`).
    Boolean,
    /// Items separated by `;`, each trimmed of spaces; empty items are dropped.
    List,
}

/// Every column but the guardians', with the path of its field in the case record.
const FIELDS: &[(&str, Kind)] = &[
    ("case_id", Kind::Text),
    ("center_id", Kind::Text),
    ("version", Kind::Integer),
    ("updated_at", Kind::Text),
    ("child.name", Kind::Text),
    ("child.name_kana", Kind::Text),
    ("child.sex", Kind::Text),
    ("child.birth_date", Kind::Text),
    ("child.address.municipality_code", Kind::Text),
    ("child.address.text", Kind::Text),
    ("household", Kind::Text),
    ("care_setting", Kind::Text),
    ("upbringing", Kind::Text),
    ("welfare_services", Kind::Text),
    ("abuse.types", Kind::List),
    ("abuse.injury", Kind::Boolean),
    ("risk_level", Kind::Text),
    ("status", Kind::Text),
    ("intake_at", Kind::Text),
    ("safety_confirmed_at", Kind::Text),
    ("flags.dv", Kind::Boolean),
    ("flags.missing", Kind::Boolean),
    ("assessment.findings", Kind::Text),
    ("assessment.plan", Kind::Text),
    ("assessment.progress", Kind::Text),
    ("center_contact.name", Kind::Text),
    ("center_contact.phone", Kind::Text),
];

/// A guardian's fields; the columns are `guardians.<n>.<field>`, `n` from 1.
const GUARDIAN_FIELDS: &[&str] = &["name", "name_kana", "relationship", "employer"];

/// Columns without which no row could be valid: the file is refused before any row is read.
pub const REQUIRED: &[&str] = &[
    "case_id",
    "center_id",
    "version",
    "updated_at",
    "child.name",
    "child.sex",
    "child.birth_date",
    "child.address.municipality_code",
    "abuse.types",
    "abuse.injury",
    "status",
    "intake_at",
    "flags.dv",
    "flags.missing",
];

/// Objects that are always present in a case: built even when all their cells are empty, so
/// that validation names the missing field itself rather than its parent.
const ALWAYS_PRESENT: &[&str] = &["child", "child.address", "abuse", "flags"];

/// A problem with the file's header, or with one cell of a row. `column` is a column name from
/// the list above, or `column 7` for a header cell that is no column name; never a cell's value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ColumnError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Field { path: &'static str, kind: Kind },
    Guardian { n: usize, field: &'static str },
}

impl Column {
    fn parse(name: &str) -> Option<Self> {
        if let Some(&(path, kind)) = FIELDS.iter().find(|(p, _)| *p == name) {
            return Some(Self::Field { path, kind });
        }
        let (n, field) = name.strip_prefix("guardians.")?.split_once('.')?;
        // `guardians.01.name` would be a second name for `guardians.1.name`.
        if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = n.parse().ok()?;
        let field = GUARDIAN_FIELDS.iter().find(|f| **f == field)?;
        (1..=MAX_GUARDIANS).contains(&n).then_some(Self::Guardian { n, field })
    }
}

/// A header cell is named back to the sender only if it has the shape of a column name
/// (lowercase ASCII, digits, `_` and `.`, with at least one `_` or `.`): a file without a header
/// would otherwise see its first case's values echoed, a name in romaji (`hanako`) included.
fn shows_as_column_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        && name.bytes().any(|b| b == b'_' || b == b'.')
}

fn describe(name: &str, index: usize) -> String {
    if shows_as_column_name(name) {
        name.to_owned()
    } else {
        format!("column {}", index + 1)
    }
}

/// The parsed header row.
#[derive(Debug, Clone)]
pub struct Header {
    columns: Vec<Column>,
    names: Vec<String>,
}

/// A row as a case document, with what is needed to name its columns again.
#[derive(Debug)]
pub struct RowDocument {
    pub value: Value,
    /// The `n` of `guardians.<n>.…` of each entry of the `guardians` array, in order.
    guardian_numbers: Vec<usize>,
}

impl Header {
    /// Refuses unknown, repeated and missing columns, naming every one.
    pub fn parse(cells: &[String]) -> Result<Self, Vec<ColumnError>> {
        let mut errors = Vec::new();
        let mut columns = Vec::with_capacity(cells.len());
        let mut names: Vec<String> = Vec::with_capacity(cells.len());
        for (i, cell) in cells.iter().enumerate() {
            let name = cell.trim_matches([' ', '\t']);
            match Column::parse(name) {
                Some(_) if names.iter().any(|n| n == name) => errors.push(ColumnError {
                    column: Some(name.to_owned()),
                    detail: format!("column {} repeats this column", i + 1),
                }),
                Some(c) => {
                    columns.push(c);
                    names.push(name.to_owned());
                }
                None => errors.push(ColumnError {
                    column: Some(describe(name, i)),
                    detail: if name.is_empty() {
                        "the header cell is empty".to_owned()
                    } else {
                        "unknown column (see docs/batch-import.md for the column names)".to_owned()
                    },
                }),
            }
        }
        for required in REQUIRED {
            if !names.iter().any(|n| n == required) {
                errors.push(ColumnError {
                    column: Some((*required).to_owned()),
                    detail: "required column is missing".to_owned(),
                });
            }
        }
        // A guardian or contact needs its required fields whenever it has any column.
        let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for c in &columns {
            match c {
                Column::Guardian { n, field } => groups.entry(format!("guardians.{n}")).or_default().push(field),
                Column::Field { path, .. } => {
                    if let Some(field) = path.strip_prefix("center_contact.") {
                        groups.entry("center_contact".to_owned()).or_default().push(field);
                    }
                }
            }
        }
        for (group, present) in &groups {
            let needed: &[&str] = if group == "center_contact" {
                &["name", "phone"]
            } else {
                &["name", "relationship"]
            };
            for field in needed {
                if !present.contains(field) {
                    errors.push(ColumnError {
                        column: Some(format!("{group}.{field}")),
                        detail: format!("required with the other {group} columns"),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(Self { columns, names })
        } else {
            Err(errors)
        }
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The name of the column at `index`, if there is one.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// The cell of column `name` in `cells`.
    pub fn cell<'a>(&self, cells: &'a [String], name: &str) -> Option<&'a str> {
        let i = self.names.iter().position(|n| n == name)?;
        cells.get(i).map(String::as_str)
    }

    /// The case document of a row: cells under the header's columns, empty ones left out.
    /// Rows shorter than the header lack their last cells; the caller refuses longer ones.
    pub fn document(&self, cells: &[String]) -> RowDocument {
        let mut root = Map::new();
        for path in ALWAYS_PRESENT {
            insert(&mut root, path, Value::Object(Map::new()));
        }
        let mut guardians: BTreeMap<usize, Map<String, Value>> = BTreeMap::new();
        for (column, cell) in self.columns.iter().zip(cells) {
            if cell.is_empty() {
                continue;
            }
            match column {
                Column::Field { path, kind } => insert(&mut root, path, convert(cell, *kind)),
                Column::Guardian { n, field } => {
                    guardians
                        .entry(*n)
                        .or_default()
                        .insert((*field).to_owned(), Value::String(cell.clone()));
                }
            }
        }
        let guardian_numbers: Vec<usize> = guardians.keys().copied().collect();
        if !guardians.is_empty() {
            root.insert(
                "guardians".to_owned(),
                Value::Array(guardians.into_values().map(Value::Object).collect()),
            );
        }
        RowDocument {
            value: Value::Object(root),
            guardian_numbers,
        }
    }
}

impl RowDocument {
    /// The column a validation error's JSON pointer is about; `None` for the whole row.
    pub fn column_of(&self, pointer: &str) -> Option<String> {
        let mut parts = pointer.strip_prefix('/')?.split('/');
        let first = parts.next()?;
        if first == "guardians" {
            let Some(index) = parts.next() else {
                return Some("guardians".to_owned());
            };
            let n = index
                .parse::<usize>()
                .ok()
                .and_then(|i| self.guardian_numbers.get(i).copied())?;
            return Some(match parts.next() {
                Some(field) => format!("guardians.{n}.{field}"),
                None => format!("guardians.{n}"),
            });
        }
        let mut column = first.to_owned();
        for part in parts {
            // An item of a list is reported on the list's column (`/abuse/types/1`).
            if part.bytes().all(|b| b.is_ascii_digit()) {
                break;
            }
            column.push('.');
            column.push_str(part);
        }
        Some(column)
    }
}

fn convert(cell: &str, kind: Kind) -> Value {
    match kind {
        Kind::Text => Value::String(cell.to_owned()),
        Kind::Integer => match cell.parse::<u64>() {
            Ok(n) if cell.bytes().all(|b| b.is_ascii_digit()) => Value::from(n),
            _ => Value::String(cell.to_owned()),
        },
        Kind::Boolean => {
            if cell.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if cell.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else {
                Value::String(cell.to_owned())
            }
        }
        Kind::List => Value::Array(
            cell.split(';')
                .map(|item| item.trim_matches([' ', '\t']))
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        ),
    }
}

/// Puts `value` at the dotted `path`, creating the objects on the way.
fn insert(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut map = root;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        let entry = map.entry(part.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(inner) = entry else {
            // Paths come from `FIELDS`, where no field is both a value and an object.
            return;
        };
        map = inner;
    }
}

/// Every column name, in the documented order (for the docs and the tests).
pub fn all_column_names() -> Vec<String> {
    let mut names: Vec<String> = FIELDS.iter().map(|(p, _)| (*p).to_owned()).collect();
    for n in 1..=MAX_GUARDIANS {
        names.extend(GUARDIAN_FIELDS.iter().map(|f| format!("guardians.{n}.{f}")));
    }
    names
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    fn header(names: &[&str]) -> Header {
        let mut all = strings(REQUIRED);
        all.extend(strings(names));
        Header::parse(&all).unwrap()
    }

    #[test]
    fn a_row_becomes_the_document_a_put_takes() {
        let h = header(&[
            "guardians.1.name",
            "guardians.1.relationship",
            "guardians.2.name",
            "guardians.2.relationship",
            "risk_level",
        ]);
        let row = strings(&[
            "YKS-1",
            "yokosuka",
            "3",
            "2026-11-20T09:00:00+09:00",
            "山田　花子",
            "female",
            "2019-05-04",
            "142018",
            "physical; neglect;",
            "TRUE",
            "investigating",
            "2026-11-19T08:00:00+09:00",
            "false",
            "False",
            "",
            "",
            "山田　太郎",
            "father",
            "",
        ]);
        let doc = h.document(&row);
        assert_eq!(
            doc.value,
            json!({
                "case_id": "YKS-1", "center_id": "yokosuka", "version": 3,
                "updated_at": "2026-11-20T09:00:00+09:00",
                "child": { "name": "山田　花子", "sex": "female", "birth_date": "2019-05-04",
                           "address": { "municipality_code": "142018" } },
                "abuse": { "types": ["physical", "neglect"], "injury": true },
                "status": "investigating", "intake_at": "2026-11-19T08:00:00+09:00",
                "flags": { "dv": false, "missing": false },
                "guardians": [ { "name": "山田　太郎", "relationship": "father" } ]
            })
        );
        // The only guardian came from `guardians.2.*`.
        assert_eq!(doc.column_of("/guardians/0/name").as_deref(), Some("guardians.2.name"));
        assert_eq!(
            doc.column_of("/child/address/municipality_code").as_deref(),
            Some("child.address.municipality_code")
        );
        assert_eq!(doc.column_of("/abuse/types/1").as_deref(), Some("abuse.types"));
        assert_eq!(doc.column_of(""), None);
    }

    #[test]
    fn cells_that_are_not_numbers_or_booleans_stay_text_for_validation_to_refuse() {
        assert_eq!(convert("1", Kind::Integer), json!(1));
        for bad in ["1.0", "+1", "-1", "１", "99999999999999999999999", " 1"] {
            assert_eq!(convert(bad, Kind::Integer), json!(bad), "{bad}");
        }
        assert_eq!(convert("yes", Kind::Boolean), json!("yes"));
        assert_eq!(convert(";", Kind::List), json!([]));
    }

    #[test]
    fn unknown_repeated_and_missing_columns_are_all_named() {
        let mut cells = strings(&REQUIRED[1..]);
        cells.extend(strings(&[
            "child.birthdate",
            "status",
            "山田　花子",
            "guardians.1.name",
            "guardians.21.name",
            "guardians.01.name",
            "",
            "hanako",
        ]));
        let errors = Header::parse(&cells).unwrap_err();
        let named: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.column.as_deref().unwrap(), e.detail.as_str()))
            .collect();
        let n = REQUIRED.len() - 1;
        let col = |i: usize| format!("column {}", n + i);
        assert!(named.contains(&(
            "child.birthdate",
            "unknown column (see docs/batch-import.md for the column names)"
        )));
        assert!(named.iter().any(|(c, d)| *c == "status" && d.contains("repeats")));
        // A value where a name should be is named by position only.
        assert!(named.iter().any(|(c, _)| *c == col(3)), "{named:?}");
        assert!(!format!("{errors:?}").contains("山田"));
        assert!(named.contains(&(
            "guardians.21.name",
            "unknown column (see docs/batch-import.md for the column names)"
        )));
        assert!(named.contains(&(
            "guardians.01.name",
            "unknown column (see docs/batch-import.md for the column names)"
        )));
        assert!(named.contains(&("case_id", "required column is missing")));
        assert!(named.contains(&(
            "guardians.1.relationship",
            "required with the other guardians.1 columns"
        )));
        assert!(
            named
                .iter()
                .any(|(c, d)| *c == col(7) && *d == "the header cell is empty")
        );
    }

    #[test]
    fn every_documented_column_parses() {
        let names = all_column_names();
        assert_eq!(names.len(), FIELDS.len() + 4 * MAX_GUARDIANS);
        assert!(Header::parse(&names).is_ok());
    }
}
