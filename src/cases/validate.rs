//! Turns a pushed JSON body into a `CaseRecord` (SPEC §5), naming every offending field at once.
//!
//! Case bodies are child-abuse records and refusals end up in logs and responses, so no message
//! here ever contains a value taken from the input: messages only say what is wrong and where
//! (as an RFC 6901 pointer).
//!
//! There is no clock here: a push is judged at the `now` its caller passes, so that timestamps
//! from the future can be refused and tests control time.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, Month, OffsetDateTime};

use crate::cases::record::{
    Abuse, AbuseType, Address, Assessment, CaseId, CaseRecord, CenterContact, Child, Flags, Guardian, Relationship,
    RiskLevel, Sex, Status,
};
use crate::registry::codes::MunicipalityCode;
use crate::text;

/// One refused field: where it is and what is wrong with it, never what it contained.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// RFC 6901 JSON pointer; `""` is the whole body.
    pub pointer: String,
    pub message: String,
}

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_TEXT_CHARS: usize = 10_000;
pub const MAX_GUARDIANS: usize = 20;
pub const MAX_PHONE_CHARS: usize = 40;
/// The highest case version accepted. A case never takes a version at or below the stored one,
/// so a case stored at the maximum can never be updated again. Versions count a case's updates;
/// a billion is more than one update a second for thirty years. The cap sits far below the
/// 2^53 - 1 that JSON numbers carry exactly so that a number from the wrong domain (a Unix time
/// in seconds or milliseconds, `INT32_MAX`, `UINT32_MAX`, JavaScript's `MAX_SAFE_INTEGER`) is
/// refused on its first push, with a message, instead of being stored and locking the case.
pub const MAX_VERSION: u64 = 1_000_000_000;
/// No child in care, and no case a center still keeps, dates from before 1900; earlier dates and
/// times (year 0 included) are typing or conversion errors.
pub const EARLIEST_DATE: Date = time::macros::date!(1900 - 01 - 01);
/// How far a center's clock may run ahead of the gateway's before its timestamps are refused as
/// being in the future.
pub const MAX_CLOCK_AHEAD: Duration = Duration::days(1);
/// A hostile body could otherwise turn a megabyte of `[1,1,1,…]` into a far larger refusal.
pub const MAX_ERRORS: usize = 200;

/// The fields of each object of a case record, and the words each enumeration takes: the
/// OpenAPI document (`http::openapi`) describes the record from these same tables.
pub(crate) const CASE_FIELDS: &[&str] = &[
    "case_id",
    "center_id",
    "version",
    "updated_at",
    "child",
    "guardians",
    "household",
    "care_setting",
    "upbringing",
    "welfare_services",
    "abuse",
    "risk_level",
    "status",
    "intake_at",
    "safety_confirmed_at",
    "flags",
    "assessment",
    "center_contact",
];
pub(crate) const CHILD_FIELDS: &[&str] = &["name", "name_kana", "sex", "birth_date", "address"];
pub(crate) const ADDRESS_FIELDS: &[&str] = &["municipality_code", "text"];
pub(crate) const GUARDIAN_FIELDS: &[&str] = &["name", "name_kana", "relationship", "employer"];
pub(crate) const ABUSE_FIELDS: &[&str] = &["types", "injury"];
pub(crate) const FLAGS_FIELDS: &[&str] = &["dv", "missing"];
pub(crate) const ASSESSMENT_FIELDS: &[&str] = &["findings", "plan", "progress"];
pub(crate) const CONTACT_FIELDS: &[&str] = &["name", "phone"];

pub(crate) const SEXES: &[(&str, Sex)] = &[("male", Sex::Male), ("female", Sex::Female), ("unknown", Sex::Unknown)];
pub(crate) const RELATIONSHIPS: &[(&str, Relationship)] = &[
    ("mother", Relationship::Mother),
    ("father", Relationship::Father),
    ("stepmother", Relationship::Stepmother),
    ("stepfather", Relationship::Stepfather),
    ("grandparent", Relationship::Grandparent),
    ("partner", Relationship::Partner),
    ("other", Relationship::Other),
];
pub(crate) const ABUSE_TYPES: &[(&str, AbuseType)] = &[
    ("physical", AbuseType::Physical),
    ("neglect", AbuseType::Neglect),
    ("sexual", AbuseType::Sexual),
    ("psychological", AbuseType::Psychological),
];
pub(crate) const RISK_LEVELS: &[(&str, RiskLevel)] = &[
    ("high", RiskLevel::High),
    ("medium", RiskLevel::Medium),
    ("low", RiskLevel::Low),
];
pub(crate) const STATUSES: &[(&str, Status)] = &[
    ("intake", Status::Intake),
    ("investigating", Status::Investigating),
    ("temporary_protection", Status::TemporaryProtection),
    ("in_care", Status::InCare),
    ("returned_home", Status::ReturnedHome),
    ("closed", Status::Closed),
];

/// Bounds on the shape of a pushed JSON document, checked before any of it is built
/// (`[limits] json_depth`, `json_string_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// The deepest nesting of arrays and objects; the case body itself is level 1. Values above
    /// `MAX_JSON_DEPTH` act as `MAX_JSON_DEPTH`.
    pub depth: usize,
    /// The longest string (object keys included), in bytes of the JSON text between its quotes,
    /// escapes counted as written.
    pub string_bytes: usize,
}

/// serde_json's own nesting limit: deeper documents are refused by the parser whatever the
/// configuration says.
pub const MAX_JSON_DEPTH: usize = 128;

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            // A case record nests 3 levels (`/guardians/0/name`); room for growth, none for abuse.
            depth: 32,
            // The longest field is 10,000 characters of free text: at most 40,000 bytes of
            // UTF-8, 60,000 when every character is written as a `\uXXXX` escape.
            string_bytes: 64 * 1024,
        }
    }
}

impl JsonLimits {
    /// For versions already accepted (read back at start-up, or given to the simulator): a
    /// limit lowered since must not hide a case the gateway holds.
    const RECORDED: Self = Self {
        depth: MAX_JSON_DEPTH,
        string_bytes: usize::MAX,
    };
}

/// Parses a pushed request body, received at `now`, within the default `JsonLimits`: JSON
/// first, then the case. The JSON value is returned too so the caller can store exactly what was
/// pushed.
pub fn parse_case_bytes(body: &[u8], now: OffsetDateTime) -> Result<(Value, CaseRecord), Vec<FieldError>> {
    parse_case_bytes_within(body, now, JsonLimits::default())
}

/// `parse_case_bytes` within the configured `limits`.
pub fn parse_case_bytes_within(
    body: &[u8],
    now: OffsetDateTime,
    limits: JsonLimits,
) -> Result<(Value, CaseRecord), Vec<FieldError>> {
    let value = parse_json(body, limits).map_err(|e| vec![e])?;
    let record = parse_case(&value, now)?;
    Ok((value, record))
}

/// Parses a case that was judged before: a stored version read back at start-up, or a case file
/// given to the policy simulator. Every rule applies except the bound on timestamps relative to
/// the clock, which was checked when the version arrived; a gateway that starts with a wrong
/// clock must not hide the cases it holds.
pub fn parse_recorded_case_bytes(body: &[u8]) -> Result<(Value, CaseRecord), Vec<FieldError>> {
    let value = parse_json(body, JsonLimits::RECORDED).map_err(|e| vec![e])?;
    let record = Validator::new(None).finish(&value)?;
    Ok((value, record))
}

/// Validates a case body pushed at `now`, reporting every offending field (up to `MAX_ERRORS`)
/// in one pass. Timestamps may run at most `MAX_CLOCK_AHEAD` ahead of `now`.
pub fn parse_case(value: &Value, now: OffsetDateTime) -> Result<CaseRecord, Vec<FieldError>> {
    Validator::new(Some(now)).finish(value)
}

fn parse_json(body: &[u8], limits: JsonLimits) -> Result<Value, FieldError> {
    check_shape(body, limits)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = NoDuplicates.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| {
        // serde_json's own messages can quote pieces of the input (e.g. an unknown escape), so
        // only its category and position are passed on.
        let what = if e.to_string().starts_with(DUPLICATE_KEY) {
            "duplicate object key"
        } else {
            match e.classify() {
                serde_json::error::Category::Eof => "unexpected end of JSON input",
                serde_json::error::Category::Syntax => "invalid JSON syntax",
                serde_json::error::Category::Data => "invalid JSON data",
                serde_json::error::Category::Io => "could not read JSON input",
            }
        };
        FieldError {
            pointer: String::new(),
            message: format!("{what} at line {}, column {}", e.line(), e.column()),
        }
    })
}

const DUPLICATE_KEY: &str = "duplicate object key";

/// Refuses a document nested deeper or holding a longer string than `limits` allow, in one pass
/// over the bytes and without recursion, so that the recursive parser after it only ever sees a
/// bounded depth. Anything else wrong with the text is left to the parser.
fn check_shape(body: &[u8], limits: JsonLimits) -> Result<(), FieldError> {
    let max_depth = limits.depth.min(MAX_JSON_DEPTH);
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    // Inside a string: its length so far, and whether the previous byte was a lone backslash.
    let mut string: Option<(usize, bool)> = None;
    let at = |line: usize, column: usize, message: String| FieldError {
        pointer: String::new(),
        message: format!("{message} at line {line}, column {column}"),
    };
    for &b in body {
        // Columns count bytes, as serde_json's do.
        if b == b'\n' {
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
        match &mut string {
            Some((len, escaped)) => {
                if !*escaped && b == b'"' {
                    string = None;
                    continue;
                }
                *escaped = !*escaped && b == b'\\';
                *len += 1;
                if *len > limits.string_bytes {
                    return Err(at(
                        line,
                        column,
                        format!("a JSON string longer than {} bytes", limits.string_bytes),
                    ));
                }
            }
            None => match b {
                b'"' => string = Some((0, false)),
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max_depth {
                        return Err(at(line, column, format!("JSON nested deeper than {max_depth} levels")));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    Ok(())
}

/// Builds a `Value` like serde_json does but refuses duplicate keys: with them, what a proxy or
/// log reader sees and what the gateway stores could differ silently.
struct NoDuplicates;

impl<'de> DeserializeSeed<'de> for NoDuplicates {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        NoDuplicates.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(NoDuplicates)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(DUPLICATE_KEY));
            }
            let value = map.next_value_seed(NoDuplicates)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// RFC 6901: `~` and `/` inside a key are escaped as `~0` and `~1`.
fn child_pointer(base: &str, key: &str) -> String {
    let mut p = String::with_capacity(base.len() + key.len() + 1);
    p.push_str(base);
    p.push('/');
    for c in key.chars() {
        match c {
            '~' => p.push_str("~0"),
            '/' => p.push_str("~1"),
            c => p.push(c),
        }
    }
    p
}

fn index_pointer(base: &str, i: usize) -> String {
    format!("{base}/{i}")
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Validator {
    errors: Vec<FieldError>,
    truncated: bool,
    /// The latest instant a timestamp may name (`now` plus the clock allowance); `None` for a
    /// case judged before.
    latest: Option<OffsetDateTime>,
}

/// Field accessors return `None` after recording an error; callers combine the `Option`s so that
/// every field is looked at even when an earlier one failed.
impl Validator {
    fn new(now: Option<OffsetDateTime>) -> Self {
        Self {
            errors: Vec::new(),
            truncated: false,
            // Near the end of representable time there is no later bound to speak of.
            latest: now.and_then(|n| n.checked_add(MAX_CLOCK_AHEAD)),
        }
    }

    fn finish(mut self, value: &Value) -> Result<CaseRecord, Vec<FieldError>> {
        match self.case(value) {
            Some(r) if self.errors.is_empty() => Ok(r),
            _ => {
                if self.errors.is_empty() {
                    // Unreachable by construction (every `None` records an error), but a refusal
                    // must never come back without saying why.
                    self.push("", "invalid case record");
                }
                Err(self.errors)
            }
        }
    }

    fn push(&mut self, pointer: &str, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(FieldError {
                pointer: pointer.to_owned(),
                message: message.into(),
            });
        } else if !self.truncated {
            self.truncated = true;
            self.errors.push(FieldError {
                pointer: String::new(),
                message: format!("more than {MAX_ERRORS} errors; the rest are not listed"),
            });
        }
    }

    fn wrong_type(&mut self, pointer: &str, expected: &str, found: &Value) {
        self.push(pointer, format!("expected {expected}, found {}", json_type(found)));
    }

    /// Checks the value is an object and refuses keys outside `allowed`.
    fn object<'a>(&mut self, value: &'a Value, pointer: &str, allowed: &[&str]) -> Option<&'a Map<String, Value>> {
        let Value::Object(map) = value else {
            self.wrong_type(pointer, "an object", value);
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.push(&child_pointer(pointer, key), "unknown field");
            }
        }
        Some(map)
    }

    fn required<'a>(&mut self, map: &'a Map<String, Value>, base: &str, key: &str) -> Option<(&'a Value, String)> {
        let pointer = child_pointer(base, key);
        match map.get(key) {
            None => {
                self.push(&pointer, "required field is missing");
                None
            }
            Some(Value::Null) => {
                self.push(&pointer, "required field must not be null");
                None
            }
            Some(v) => Some((v, pointer)),
        }
    }

    /// Absent and null mean the same for optional fields.
    fn optional<'a>(map: &'a Map<String, Value>, base: &str, key: &str) -> Option<(&'a Value, String)> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some((v, child_pointer(base, key))),
        }
    }

    fn string<'a>(&mut self, value: &'a Value, pointer: &str) -> Option<&'a str> {
        if let Value::String(s) = value {
            Some(s)
        } else {
            self.wrong_type(pointer, "a string", value);
            None
        }
    }

    fn boolean(&mut self, value: &Value, pointer: &str) -> Option<bool> {
        if let Value::Bool(b) = value {
            Some(*b)
        } else {
            self.wrong_type(pointer, "true or false", value);
            None
        }
    }

    /// One line naming a person or a place: see `text::check_name`.
    fn name(&mut self, value: &Value, pointer: &str) -> Option<String> {
        let s = self.string(value, pointer)?;
        if s.chars().count() > MAX_NAME_CHARS {
            self.push(pointer, format!("must be at most {MAX_NAME_CHARS} characters"));
            return None;
        }
        if let Err(why) = text::check_name(s) {
            self.push(pointer, why);
            return None;
        }
        Some(s.to_owned())
    }

    fn kana(&mut self, value: &Value, pointer: &str) -> Option<String> {
        let s = self.name(value, pointer)?;
        if s.chars().all(is_kana_char) {
            Some(s)
        } else {
            self.push(pointer, "must be written in full-width katakana");
            None
        }
    }

    /// Free text, which may span lines: see `text::check_free_text`.
    fn text(&mut self, value: &Value, pointer: &str) -> Option<String> {
        let s = self.string(value, pointer)?;
        if s.chars().count() > MAX_TEXT_CHARS {
            self.push(pointer, format!("must be at most {MAX_TEXT_CHARS} characters"));
            return None;
        }
        if let Err(why) = text::check_free_text(s) {
            self.push(pointer, why);
            return None;
        }
        Some(s.to_owned())
    }

    fn identifier(&mut self, value: &Value, pointer: &str) -> Option<CaseId> {
        let s = self.string(value, pointer)?;
        match CaseId::parse(s) {
            Ok(id) => Some(id),
            Err(why) => {
                self.push(pointer, why);
                None
            }
        }
    }

    fn one_of<T: Copy>(&mut self, value: &Value, pointer: &str, choices: &[(&str, T)]) -> Option<T> {
        let s = self.string(value, pointer)?;
        if let Some((_, t)) = choices.iter().find(|(name, _)| *name == s) {
            return Some(*t);
        }
        let allowed: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.push(pointer, format!("must be one of {}", allowed.join(", ")));
        None
    }

    fn version(&mut self, value: &Value, pointer: &str) -> Option<u64> {
        let Value::Number(n) = value else {
            self.wrong_type(pointer, "an integer", value);
            return None;
        };
        match n.as_u64() {
            Some(v) if (1..=MAX_VERSION).contains(&v) => Some(v),
            _ => {
                self.push(pointer, format!("must be an integer from 1 to {MAX_VERSION}"));
                None
            }
        }
    }

    fn timestamp(&mut self, value: &Value, pointer: &str) -> Option<OffsetDateTime> {
        let s = self.string(value, pointer)?;
        let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) else {
            self.push(pointer, "must be an RFC 3339 timestamp with a UTC offset");
            return None;
        };
        if t < EARLIEST_DATE.midnight().assume_utc() {
            self.push(pointer, "must not be before 1900-01-01");
            return None;
        }
        if self.latest.is_some_and(|latest| t > latest) {
            self.push(
                pointer,
                "must not be in the future (more than a day ahead of the gateway's clock)",
            );
            return None;
        }
        Some(t)
    }

    fn birth_date(&mut self, value: &Value, pointer: &str) -> Option<Date> {
        let s = self.string(value, pointer)?;
        let Some((y, m, d)) = split_ymd(s) else {
            self.push(pointer, "must be a date in YYYY-MM-DD form");
            return None;
        };
        let date = Month::try_from(m)
            .ok()
            .and_then(|month| Date::from_calendar_date(y, month, d).ok());
        let Some(date) = date else {
            self.push(pointer, "not a valid calendar date");
            return None;
        };
        if date < EARLIEST_DATE {
            self.push(pointer, "must not be before 1900-01-01");
            return None;
        }
        if self.latest.is_some_and(|latest| date > latest.date()) {
            self.push(pointer, "must not be in the future");
            return None;
        }
        Some(date)
    }

    fn municipality(&mut self, value: &Value, pointer: &str) -> Option<MunicipalityCode> {
        let s = self.string(value, pointer)?;
        match MunicipalityCode::parse(s) {
            Ok(c) => Some(c),
            // CodeError's messages are fixed texts, free of the input.
            Err(e) => {
                self.push(pointer, e.to_string());
                None
            }
        }
    }

    fn phone(&mut self, value: &Value, pointer: &str) -> Option<String> {
        let s = self.string(value, pointer)?;
        let allowed = s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | ' ' | '(' | ')'));
        if !allowed {
            self.push(pointer, "may contain only digits, '-', '+', spaces and parentheses");
            return None;
        }
        if !s.chars().any(|c| c.is_ascii_digit()) {
            self.push(pointer, "must contain at least one digit");
            return None;
        }
        if s.chars().count() > MAX_PHONE_CHARS {
            self.push(pointer, format!("must be at most {MAX_PHONE_CHARS} characters"));
            return None;
        }
        Some(s.to_owned())
    }

    fn case(&mut self, value: &Value) -> Option<CaseRecord> {
        let map = self.object(value, "", CASE_FIELDS)?;
        let p = "";

        let case_id = self
            .required(map, p, "case_id")
            .and_then(|(v, ptr)| self.identifier(v, &ptr));
        let center_id = self
            .required(map, p, "center_id")
            .and_then(|(v, ptr)| self.identifier(v, &ptr));
        let version = self
            .required(map, p, "version")
            .and_then(|(v, ptr)| self.version(v, &ptr));
        let updated_at = self
            .required(map, p, "updated_at")
            .and_then(|(v, ptr)| self.timestamp(v, &ptr));
        let child = self.required(map, p, "child").and_then(|(v, ptr)| self.child(v, &ptr));
        let child = match (child, updated_at) {
            // The record cannot describe a child born after it was written. Dates compare in
            // `updated_at`'s own offset: the center's calendar day.
            (Some(c), Some(at)) if c.birth_date > at.date() => {
                self.push("/child/birth_date", "must not be after the date of updated_at");
                None
            }
            (child, _) => child,
        };
        let guardians = self.optional_field(map, p, "guardians", Self::guardians);
        let household = self.optional_field(map, p, "household", Self::text);
        let care_setting = self.optional_field(map, p, "care_setting", Self::text);
        let upbringing = self.optional_field(map, p, "upbringing", Self::text);
        let welfare_services = self.optional_field(map, p, "welfare_services", Self::text);
        let abuse = self.required(map, p, "abuse").and_then(|(v, ptr)| self.abuse(v, &ptr));
        let risk_level = self.optional_field(map, p, "risk_level", |s, v, ptr| s.one_of(v, ptr, RISK_LEVELS));
        let status = self
            .required(map, p, "status")
            .and_then(|(v, ptr)| self.one_of(v, &ptr, STATUSES));
        let intake_at = self
            .required(map, p, "intake_at")
            .and_then(|(v, ptr)| self.timestamp(v, &ptr));
        let safety_confirmed_at = self.optional_field(map, p, "safety_confirmed_at", Self::timestamp);
        let flags = self.required(map, p, "flags").and_then(|(v, ptr)| self.flags(v, &ptr));
        let assessment = self.optional_field(map, p, "assessment", Self::assessment);
        let center_contact = self.optional_field(map, p, "center_contact", Self::contact);

        Some(CaseRecord {
            case_id: case_id?,
            center_id: center_id?,
            version: version?,
            updated_at: updated_at?,
            child: child?,
            guardians: guardians?,
            household: household?,
            care_setting: care_setting?,
            upbringing: upbringing?,
            welfare_services: welfare_services?,
            abuse: abuse?,
            risk_level: risk_level?,
            status: status?,
            intake_at: intake_at?,
            safety_confirmed_at: safety_confirmed_at?,
            flags: flags?,
            assessment: assessment?,
            center_contact: center_contact?,
        })
    }

    /// `Some(None)`: absent or null; `Some(Some(t))`: present and valid; `None`: refused.
    fn optional_field<T>(
        &mut self,
        map: &Map<String, Value>,
        base: &str,
        key: &str,
        parse: impl FnOnce(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match Self::optional(map, base, key) {
            None => Some(None),
            Some((v, ptr)) => parse(self, v, &ptr).map(Some),
        }
    }

    fn child(&mut self, value: &Value, p: &str) -> Option<Child> {
        let map = self.object(value, p, CHILD_FIELDS)?;
        let name = self.required(map, p, "name").and_then(|(v, ptr)| self.name(v, &ptr));
        let name_kana = self.optional_field(map, p, "name_kana", Self::kana);
        let sex = self
            .required(map, p, "sex")
            .and_then(|(v, ptr)| self.one_of(v, &ptr, SEXES));
        let birth_date = self
            .required(map, p, "birth_date")
            .and_then(|(v, ptr)| self.birth_date(v, &ptr));
        let address = self
            .required(map, p, "address")
            .and_then(|(v, ptr)| self.address(v, &ptr));
        Some(Child {
            name: name?,
            name_kana: name_kana?,
            sex: sex?,
            birth_date: birth_date?,
            address: address?,
        })
    }

    fn address(&mut self, value: &Value, p: &str) -> Option<Address> {
        let map = self.object(value, p, ADDRESS_FIELDS)?;
        let municipality_code = self
            .required(map, p, "municipality_code")
            .and_then(|(v, ptr)| self.municipality(v, &ptr));
        let text = self.optional_field(map, p, "text", Self::text);
        Some(Address {
            municipality_code: municipality_code?,
            text: text?,
        })
    }

    fn guardians(&mut self, value: &Value, p: &str) -> Option<Vec<Guardian>> {
        let Value::Array(items) = value else {
            self.wrong_type(p, "an array", value);
            return None;
        };
        if items.len() > MAX_GUARDIANS {
            // The list as a whole is what is wrong; its entries are not looked into.
            self.push(p, format!("must have at most {MAX_GUARDIANS} entries"));
            return None;
        }
        let parsed: Vec<Option<Guardian>> = items
            .iter()
            .enumerate()
            .map(|(i, g)| self.guardian(g, &index_pointer(p, i)))
            .collect();
        parsed.into_iter().collect()
    }

    fn guardian(&mut self, value: &Value, p: &str) -> Option<Guardian> {
        let map = self.object(value, p, GUARDIAN_FIELDS)?;
        let name = self.required(map, p, "name").and_then(|(v, ptr)| self.name(v, &ptr));
        let name_kana = self.optional_field(map, p, "name_kana", Self::kana);
        let relationship = self
            .required(map, p, "relationship")
            .and_then(|(v, ptr)| self.one_of(v, &ptr, RELATIONSHIPS));
        let employer = self.optional_field(map, p, "employer", Self::name);
        Some(Guardian {
            name: name?,
            name_kana: name_kana?,
            relationship: relationship?,
            employer: employer?,
        })
    }

    fn abuse(&mut self, value: &Value, p: &str) -> Option<Abuse> {
        let map = self.object(value, p, ABUSE_FIELDS)?;
        let types = self
            .required(map, p, "types")
            .and_then(|(v, ptr)| self.abuse_types(v, &ptr));
        let injury = self
            .required(map, p, "injury")
            .and_then(|(v, ptr)| self.boolean(v, &ptr));
        Some(Abuse {
            types: types?,
            injury: injury?,
        })
    }

    fn abuse_types(&mut self, value: &Value, p: &str) -> Option<Vec<AbuseType>> {
        let Value::Array(items) = value else {
            self.wrong_type(p, "an array", value);
            return None;
        };
        if items.is_empty() {
            self.push(p, "must name at least one abuse type");
            return None;
        }
        let mut types = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ptr = index_pointer(p, i);
            match self.one_of(item, &ptr, ABUSE_TYPES) {
                Some(t) if types.contains(&t) => {
                    self.push(&ptr, "duplicate abuse type");
                    ok = false;
                }
                Some(t) => types.push(t),
                None => ok = false,
            }
        }
        ok.then_some(types)
    }

    fn flags(&mut self, value: &Value, p: &str) -> Option<Flags> {
        let map = self.object(value, p, FLAGS_FIELDS)?;
        let dv = self.required(map, p, "dv").and_then(|(v, ptr)| self.boolean(v, &ptr));
        let missing = self
            .required(map, p, "missing")
            .and_then(|(v, ptr)| self.boolean(v, &ptr));
        Some(Flags {
            dv: dv?,
            missing: missing?,
        })
    }

    fn assessment(&mut self, value: &Value, p: &str) -> Option<Assessment> {
        let map = self.object(value, p, ASSESSMENT_FIELDS)?;
        let findings = self.optional_field(map, p, "findings", Self::text);
        let plan = self.optional_field(map, p, "plan", Self::text);
        let progress = self.optional_field(map, p, "progress", Self::text);
        Some(Assessment {
            findings: findings?,
            plan: plan?,
            progress: progress?,
        })
    }

    fn contact(&mut self, value: &Value, p: &str) -> Option<CenterContact> {
        let map = self.object(value, p, CONTACT_FIELDS)?;
        let name = self.required(map, p, "name").and_then(|(v, ptr)| self.name(v, &ptr));
        let phone = self.required(map, p, "phone").and_then(|(v, ptr)| self.phone(v, &ptr));
        Some(CenterContact {
            name: name?,
            phone: phone?,
        })
    }
}

/// Full-width katakana (U+30A0–U+30FF, which includes ー and ・) and the spaces that separate
/// family and given names.
pub fn is_kana_char(c: char) -> bool {
    matches!(c, '\u{30A0}'..='\u{30FF}' | ' ' | '\u{3000}')
}

/// Exactly `YYYY-MM-DD` in ASCII digits; the calendar check is the caller's.
fn split_ymd(s: &str) -> Option<(i32, u8, u8)> {
    let b = s.as_bytes();
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = b else {
        return None;
    };
    let digits = [*y0, *y1, *y2, *y3, *m0, *m1, *d0, *d1];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |c: u8| i32::from(c - b'0');
    let year = n(*y0) * 1000 + n(*y1) * 100 + n(*y2) * 10 + n(*y3);
    let month = (m0 - b'0') * 10 + (m1 - b'0');
    let day = (d0 - b'0') * 10 + (d1 - b'0');
    Some((year, month, day))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    /// When the test cases are pushed: shortly after the valid case's `updated_at`.
    const NOW: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);

    fn valid() -> Value {
        json!({
            "case_id": "YKH-2026-000123",
            "center_id": "yokohama-central",
            "version": 3,
            "updated_at": "2026-03-01T10:15:00+09:00",
            "child": {
                "name": "佐藤　陽翔",
                "name_kana": "サトウ　ハルト",
                "sex": "male",
                "birth_date": "2019-05-14",
                "address": { "municipality_code": "141046", "text": "横浜市中区山下町1-2-3" }
            },
            "guardians": [
                { "name": "佐藤　美香", "name_kana": "サトウ　ミカ", "relationship": "mother",
                  "employer": "居酒屋（アルバイト）" },
                { "name": "佐藤　大輔", "relationship": "stepfather" }
            ],
            "household": "母、継父、本児の3人世帯。",
            "care_setting": "保育園に在籍。",
            "upbringing": "夜間に本児だけで過ごすことが多い。",
            "welfare_services": "児童扶養手当受給。",
            "abuse": { "types": ["physical", "psychological"], "injury": true },
            "risk_level": "high",
            "status": "investigating",
            "intake_at": "2026-02-27T09:00:00+09:00",
            "safety_confirmed_at": "2026-02-27T15:30:00Z",
            "flags": { "dv": false, "missing": false },
            "assessment": { "findings": "左上腕にあざ。", "plan": "週1回の家庭訪問。", "progress": null },
            "center_contact": { "name": "田中　恵（児童福祉司）", "phone": "045-123-4567" }
        })
    }

    #[test]
    fn the_canonical_form_of_a_record_parses_back_to_the_same_record() {
        let record = parse_case(&valid(), NOW).unwrap();
        let canonical = serde_json::to_string(&record).unwrap();
        let (_, again) = parse_case_bytes(canonical.as_bytes(), NOW).unwrap();
        assert_eq!(again, record);
        assert!(canonical.contains("\"birth_date\":\"2019-05-14\""), "{canonical}");
    }

    fn pointers(errs: &[FieldError]) -> Vec<&str> {
        let mut p: Vec<&str> = errs.iter().map(|e| e.pointer.as_str()).collect();
        p.sort_unstable();
        p
    }

    fn errors_of(v: &Value) -> Vec<FieldError> {
        parse_case(v, NOW).expect_err("should be refused")
    }

    fn set(v: &mut Value, pointer: &str, new: Value) {
        *v.pointer_mut(pointer).expect("pointer exists") = new;
    }

    fn remove(v: &mut Value, pointer: &str) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        v.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key)
            .expect("field existed");
    }

    /// Mutates a valid case in one way and returns the only error's pointer and message.
    fn single(f: impl FnOnce(&mut Value)) -> FieldError {
        let mut v = valid();
        f(&mut v);
        let errs = errors_of(&v);
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn full_valid_case_parses() {
        let r = parse_case(&valid(), NOW).unwrap();
        assert_eq!(r.case_id.as_str(), "YKH-2026-000123");
        assert_eq!(r.center_id.as_str(), "yokohama-central");
        assert_eq!(r.version, 3);
        assert_eq!(r.child.sex, Sex::Male);
        assert_eq!(r.child.birth_date, time::macros::date!(2019 - 05 - 14));
        assert_eq!(r.child.address.municipality_code.as_str(), "141046");
        let g = r.guardians.as_ref().unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].relationship, Relationship::Stepfather);
        assert_eq!(g[1].employer, None);
        assert_eq!(r.abuse.types, vec![AbuseType::Physical, AbuseType::Psychological]);
        assert!(r.abuse.injury);
        assert_eq!(r.risk_level, Some(RiskLevel::High));
        assert_eq!(r.status, Status::Investigating);
        assert_eq!(r.intake_at, time::macros::datetime!(2026-02-27 00:00 UTC));
        assert_eq!(
            r.safety_confirmed_at,
            Some(time::macros::datetime!(2026-02-27 15:30 UTC))
        );
        let a = r.assessment.as_ref().unwrap();
        assert_eq!(a.progress, None);
        assert_eq!(r.center_contact.as_ref().unwrap().phone, "045-123-4567");
    }

    #[test]
    fn minimal_case_parses() {
        let v = json!({
            "case_id": "c1", "center_id": "yokosuka", "version": 1,
            "updated_at": "2026-03-01T00:00:00Z",
            "child": { "name": "名無し", "sex": "unknown", "birth_date": "2020-02-29",
                       "address": { "municipality_code": "142018" } },
            "abuse": { "types": ["neglect"], "injury": false },
            "status": "intake", "intake_at": "2026-03-01T00:00:00Z",
            "flags": { "dv": true, "missing": true }
        });
        let r = parse_case(&v, NOW).unwrap();
        assert_eq!(r.guardians, None);
        assert_eq!(r.risk_level, None);
        assert_eq!(r.child.address.text, None);
    }

    #[test]
    fn nulls_for_optional_fields_are_accepted() {
        let mut v = valid();
        for p in [
            "/child/name_kana",
            "/child/address/text",
            "/guardians",
            "/household",
            "/care_setting",
            "/upbringing",
            "/welfare_services",
            "/risk_level",
            "/safety_confirmed_at",
            "/assessment",
            "/center_contact",
        ] {
            set(&mut v, p, Value::Null);
        }
        let r = parse_case(&v, NOW).unwrap();
        assert_eq!(r.child.name_kana, None);
        assert_eq!(r.child.address.text, None);
        assert_eq!(r.guardians, None);
        assert_eq!(r.household, None);
        assert_eq!(r.risk_level, None);
        assert_eq!(r.safety_confirmed_at, None);
        assert_eq!(r.assessment, None);
        assert_eq!(r.center_contact, None);

        let mut v = valid();
        set(&mut v, "/guardians/0/name_kana", Value::Null);
        set(&mut v, "/guardians/0/employer", Value::Null);
        set(
            &mut v,
            "/assessment",
            json!({"findings": null, "plan": null, "progress": null}),
        );
        let r = parse_case(&v, NOW).unwrap();
        assert_eq!(r.guardians.unwrap()[0].employer, None);
        assert_eq!(
            r.assessment,
            Some(Assessment {
                findings: None,
                plan: None,
                progress: None
            })
        );
    }

    #[test]
    fn several_problems_are_reported_together() {
        let mut v = valid();
        set(&mut v, "/child/address/municipality_code", json!("141047"));
        v.as_object_mut().unwrap().insert("surprise".into(), json!(1));
        set(&mut v, "/version", json!("3"));
        set(&mut v, "/child/birth_date", json!("1899-12-31"));
        set(&mut v, "/guardians/1/relationship", json!("uncle"));
        remove(&mut v, "/flags/missing");
        let errs = errors_of(&v);
        assert_eq!(
            pointers(&errs),
            vec![
                "/child/address/municipality_code",
                "/child/birth_date",
                "/flags/missing",
                "/guardians/1/relationship",
                "/surprise",
                "/version",
            ],
            "{errs:?}"
        );
        let msg = |p: &str| errs.iter().find(|e| e.pointer == p).map(|e| e.message.clone()).unwrap();
        assert!(msg("/child/address/municipality_code").contains("check digit is wrong"));
        assert_eq!(msg("/surprise"), "unknown field");
        assert_eq!(msg("/version"), "expected an integer, found a string");
        assert!(msg("/child/birth_date").contains("1900-01-01"));
        assert!(msg("/guardians/1/relationship").starts_with("must be one of"));
        assert_eq!(msg("/flags/missing"), "required field is missing");
    }

    #[test]
    fn unknown_fields_at_every_level() {
        let mut v = valid();
        for (parent, key) in [
            ("", "extra"),
            ("/child", "nickname"),
            ("/child/address", "zip"),
            ("/guardians/0", "age"),
            ("/abuse", "severity"),
            ("/flags", "vip"),
            ("/assessment", "notes"),
            ("/center_contact", "email"),
        ] {
            v.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert(key.into(), json!(true));
        }
        v.as_object_mut().unwrap().insert("a/b~c".into(), json!(0));
        let errs = errors_of(&v);
        assert_eq!(
            pointers(&errs),
            vec![
                "/abuse/severity",
                "/assessment/notes",
                "/a~1b~0c",
                "/center_contact/email",
                "/child/address/zip",
                "/child/nickname",
                "/extra",
                "/flags/vip",
                "/guardians/0/age",
            ]
        );
        assert!(errs.iter().all(|e| e.message == "unknown field"));
    }

    #[test]
    fn every_required_field_missing() {
        let errs = errors_of(&json!({}));
        assert_eq!(
            pointers(&errs),
            vec![
                "/abuse",
                "/case_id",
                "/center_id",
                "/child",
                "/flags",
                "/intake_at",
                "/status",
                "/updated_at",
                "/version",
            ]
        );
        let errs = errors_of(&json!({
            "child": { "address": {} }, "abuse": {}, "flags": {},
            "guardians": [{}], "center_contact": {}, "assessment": {}
        }));
        assert_eq!(
            pointers(&errs),
            vec![
                "/abuse/injury",
                "/abuse/types",
                "/case_id",
                "/center_contact/name",
                "/center_contact/phone",
                "/center_id",
                "/child/address/municipality_code",
                "/child/birth_date",
                "/child/name",
                "/child/sex",
                "/flags/dv",
                "/flags/missing",
                "/guardians/0/name",
                "/guardians/0/relationship",
                "/intake_at",
                "/status",
                "/updated_at",
                "/version",
            ]
        );
    }

    #[test]
    fn required_null_is_refused() {
        let e = single(|v| set(v, "/status", Value::Null));
        assert_eq!(e.pointer, "/status");
        let e = single(|v| set(v, "/child/address/municipality_code", Value::Null));
        assert_eq!(e.pointer, "/child/address/municipality_code");
    }

    #[test]
    fn not_an_object() {
        for body in [json!([]), json!("case"), json!(null), json!(1)] {
            let errs = errors_of(&body);
            assert_eq!(pointers(&errs), vec![""]);
        }
        let e = single(|v| set(v, "/child", json!([1])));
        assert_eq!(
            (e.pointer.as_str(), e.message.as_str()),
            ("/child", "expected an object, found an array")
        );
        let e = single(|v| set(v, "/guardians/1", json!("x")));
        assert_eq!(e.pointer, "/guardians/1");
        let e = single(|v| set(v, "/guardians", json!({})));
        assert_eq!(e.message, "expected an array, found an object");
    }

    #[test]
    fn identifiers() {
        for bad in ["", "has space", "ケース", &"a".repeat(65), "a/b", ".", "..", "..."] {
            let e = single(|v| set(v, "/case_id", json!(bad)));
            assert_eq!(e.pointer, "/case_id");
        }
        let e = single(|v| set(v, "/center_id", json!("x y")));
        assert_eq!(e.pointer, "/center_id");
        let e = single(|v| set(v, "/case_id", json!(12)));
        assert_eq!(e.message, "expected a string, found a number");
        let mut v = valid();
        set(&mut v, "/case_id", json!("A.b_c-9".repeat(10)[..64]));
        assert!(parse_case(&v, NOW).is_ok());
    }

    #[test]
    fn versions() {
        for ok in [json!(1), json!(MAX_VERSION)] {
            let mut v = valid();
            set(&mut v, "/version", ok);
            assert!(parse_case(&v, NOW).is_ok());
        }
        for bad in [
            json!(0),
            json!(-1),
            json!(1.0),
            json!(1.5),
            json!(MAX_VERSION + 1),
            json!(u64::MAX),
            json!(1e300),
            json!(true),
            json!([1]),
        ] {
            let e = single(|v| set(v, "/version", bad.clone()));
            assert_eq!(e.pointer, "/version", "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2026-03-01T10:15:00Z",
            "2026-03-01T10:15:00.123456+09:00",
            "2026-03-01T10:15:00-05:30",
        ] {
            let mut v = valid();
            set(&mut v, "/updated_at", json!(ok));
            assert!(parse_case(&v, NOW).is_ok(), "{ok}");
        }
        for bad in [
            "2026-03-01T10:15:00",
            "2026-03-01 10:15",
            "2026-03-01",
            "2026-02-30T10:00:00Z",
            "2026-03-01T25:00:00Z",
            "yesterday",
        ] {
            for p in ["/updated_at", "/intake_at", "/safety_confirmed_at"] {
                let e = single(|v| set(v, p, json!(bad)));
                assert_eq!(e.pointer, p, "{bad}");
                assert_eq!(e.message, "must be an RFC 3339 timestamp with a UTC offset");
            }
        }
    }

    #[test]
    fn birth_dates() {
        for ok in ["1900-01-01", "2024-02-29", "2026-03-01"] {
            let mut v = valid();
            set(&mut v, "/child/birth_date", json!(ok));
            assert!(parse_case(&v, NOW).is_ok(), "{ok}");
        }
        for (bad, msg) in [
            ("2026-02-30", "not a valid calendar date"),
            ("2025-02-29", "not a valid calendar date"),
            ("2026-13-01", "not a valid calendar date"),
            ("2026-00-10", "not a valid calendar date"),
            ("2026-01-00", "not a valid calendar date"),
            ("1899-12-31", "must not be before 1900-01-01"),
            ("2026-1-01", "must be a date in YYYY-MM-DD form"),
            ("2026/01/01", "must be a date in YYYY-MM-DD form"),
            ("2026-01-01T00:00:00Z", "must be a date in YYYY-MM-DD form"),
            ("２０２６-01-01", "must be a date in YYYY-MM-DD form"),
            ("+2026-01-1", "must be a date in YYYY-MM-DD form"),
        ] {
            let e = single(|v| set(v, "/child/birth_date", json!(bad)));
            assert_eq!(
                (e.pointer.as_str(), e.message.as_str()),
                ("/child/birth_date", msg),
                "{bad}"
            );
        }
    }

    #[test]
    fn birth_dates_after_the_record_or_in_the_future_are_refused() {
        for (bad, msg) in [
            ("2026-03-02", "must not be after the date of updated_at"),
            ("2026-03-03", "must not be after the date of updated_at"),
            ("2026-03-04", "must not be in the future"),
            ("9999-12-31", "must not be in the future"),
        ] {
            let e = single(|v| set(v, "/child/birth_date", json!(bad)));
            assert_eq!(
                (e.pointer.as_str(), e.message.as_str()),
                ("/child/birth_date", msg),
                "{bad}"
            );
        }
        // The center's calendar day: 2026-03-01T10:15+09:00 is still 1 March in Yokohama.
        let mut v = valid();
        set(&mut v, "/child/birth_date", json!("2026-03-01"));
        set(&mut v, "/updated_at", json!("2026-03-01T00:30:00+09:00"));
        assert!(parse_case(&v, NOW).is_ok());
    }

    #[test]
    fn timestamps_before_1900_or_in_the_future_are_refused() {
        for p in ["/updated_at", "/intake_at", "/safety_confirmed_at"] {
            for (bad, msg) in [
                ("0000-01-01T00:00:00Z", "must not be before 1900-01-01"),
                ("1899-12-31T23:59:59Z", "must not be before 1900-01-01"),
                ("1900-01-01T08:59:59+09:00", "must not be before 1900-01-01"),
                (
                    "9999-12-31T23:59:59Z",
                    "must not be in the future (more than a day ahead of the gateway's clock)",
                ),
                (
                    "2026-03-03T09:00:01Z",
                    "must not be in the future (more than a day ahead of the gateway's clock)",
                ),
            ] {
                let e = single(|v| set(v, p, json!(bad)));
                assert_eq!((e.pointer.as_str(), e.message.as_str()), (p, msg), "{bad}");
            }
            // A center's clock a little ahead of the gateway's is tolerated.
            let mut v = valid();
            set(&mut v, p, json!("2026-03-03T09:00:00Z"));
            set(&mut v, "/updated_at", json!("2026-03-03T09:00:00Z"));
            assert!(parse_case(&v, NOW).is_ok(), "{p}");
        }
        let mut v = valid();
        set(&mut v, "/intake_at", json!("1900-01-01T00:00:00Z"));
        assert!(parse_case(&v, NOW).is_ok());
    }

    #[test]
    fn a_version_that_would_lock_the_case_is_refused() {
        // 2^53 - 1 used to be accepted; stored, no later version could ever follow it.
        for bad in [
            json!(9_007_199_254_740_991_u64),
            json!(2_147_483_647_u64),
            json!(4_294_967_295_u64),
            json!(1_764_547_200_000_u64),
            json!(MAX_VERSION + 1),
        ] {
            let e = single(|v| set(v, "/version", bad.clone()));
            assert_eq!(
                (e.pointer.as_str(), e.message.as_str()),
                ("/version", "must be an integer from 1 to 1000000000"),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_with_controls_line_breaks_or_bidi_overrides_are_refused() {
        for p in [
            "/child/name",
            "/guardians/0/name",
            "/guardians/0/employer",
            "/center_contact/name",
        ] {
            for (bad, msg) in [
                ("佐藤\0陽翔", text::NO_CONTROLS),
                ("佐藤\r\n陽翔", text::NO_CONTROLS),
                ("佐藤\n", text::NO_CONTROLS),
                ("\u{202E}翔陽　藤佐", text::NO_BIDI),
                ("佐藤\u{2066}陽翔\u{2069}", text::NO_BIDI),
                ("佐藤\u{200B}陽翔", text::NO_INVISIBLE),
            ] {
                let e = single(|v| set(v, p, json!(bad)));
                assert_eq!((e.pointer.as_str(), e.message.as_str()), (p, msg), "{bad:?}");
            }
        }
        for p in ["/child/name_kana", "/guardians/0/name_kana"] {
            for bad in ["サトウ\0", "サトウ\nハルト", "\u{202E}サトウ"] {
                let e = single(|v| set(v, p, json!(bad)));
                assert_eq!(e.pointer, p, "{bad:?}");
            }
        }
    }

    #[test]
    fn a_name_of_only_invisible_characters_is_empty() {
        for bad in [
            "\u{200B}",
            "\u{3000}\u{3000}",
            "\u{FEFF}",
            "\u{200B}\u{200D}",
            "\u{2800}",
            " \t ",
        ] {
            for p in ["/child/name", "/guardians/1/name", "/center_contact/name"] {
                let e = single(|v| set(v, p, json!(bad)));
                assert_eq!(
                    (e.pointer.as_str(), e.message.as_str()),
                    (p, "must not be empty"),
                    "{bad:?}"
                );
            }
        }
    }

    #[test]
    fn free_text_keeps_line_breaks_but_refuses_nul_and_bidi_overrides() {
        let mut v = valid();
        set(
            &mut v,
            "/assessment/progress",
            json!("3月1日　家庭訪問。\r\n3月2日\t電話連絡。"),
        );
        set(
            &mut v,
            "/household",
            json!("母、継父、本児の3人世帯。\n祖母が近所に住む。"),
        );
        assert!(parse_case(&v, NOW).is_ok());
        for p in [
            "/household",
            "/care_setting",
            "/upbringing",
            "/welfare_services",
            "/assessment/findings",
            "/child/address/text",
        ] {
            for bad in ["あざ\0", "あざ\u{1B}[2J", "\u{202E}あざ"] {
                let e = single(|v| set(v, p, json!(bad)));
                assert_eq!(e.pointer, p, "{bad:?}");
            }
        }
    }

    #[test]
    fn recorded_cases_are_judged_without_the_clock() {
        // Stored when the gateway's clock said 2027: read back by a gateway whose clock was
        // reset, it is still served.
        let mut v = valid();
        set(&mut v, "/updated_at", json!("2027-06-01T00:00:00Z"));
        let body = serde_json::to_vec(&v).unwrap();
        assert!(parse_case_bytes(&body, NOW).is_err());
        let (_, r) = parse_recorded_case_bytes(&body).unwrap();
        assert_eq!(r.updated_at, datetime!(2027-06-01 00:00 UTC));
        // Every other rule still holds.
        set(&mut v, "/child/birth_date", json!("2027-06-02"));
        let errs = parse_recorded_case_bytes(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(pointers(&errs), vec!["/child/birth_date"]);
    }

    #[test]
    fn municipality_codes() {
        let e = single(|v| set(v, "/child/address/municipality_code", json!("141047")));
        assert_eq!(e.message, "JIS X 0402 check digit is wrong");
        for bad in ["14104", "1410466", "14104a", ""] {
            let e = single(|v| set(v, "/child/address/municipality_code", json!(bad)));
            assert_eq!(e.message, "must be a 6-digit JIS X 0402 code");
        }
        let e = single(|v| set(v, "/child/address/municipality_code", json!(141046)));
        assert_eq!(e.message, "expected a string, found a number");
    }

    #[test]
    fn kana() {
        for ok in ["サトウ ハルト", "ヴァン・デル・ベルグ", "サトウ　ハルト", "ヨーコ"] {
            let mut v = valid();
            set(&mut v, "/child/name_kana", json!(ok));
            set(&mut v, "/guardians/0/name_kana", json!(ok));
            assert!(parse_case(&v, NOW).is_ok(), "{ok}");
        }
        for bad in ["さとう", "佐藤", "Sato", "ｻﾄｳ", "サトウ1", "", "　"] {
            let e = single(|v| set(v, "/child/name_kana", json!(bad)));
            assert_eq!(e.pointer, "/child/name_kana", "{bad}");
            let e = single(|v| set(v, "/guardians/0/name_kana", json!(bad)));
            assert_eq!(e.pointer, "/guardians/0/name_kana", "{bad}");
        }
    }

    #[test]
    fn enums_are_exact() {
        for (p, bad) in [
            ("/child/sex", "Male"),
            ("/child/sex", "m"),
            ("/guardians/0/relationship", "MOTHER"),
            ("/risk_level", "critical"),
            ("/status", "in-care"),
            ("/status", "InCare"),
        ] {
            let e = single(|v| set(v, p, json!(bad)));
            assert_eq!(e.pointer, p);
            assert!(e.message.starts_with("must be one of"), "{e:?}");
        }
        let e = single(|v| set(v, "/status", json!("bogus")));
        assert_eq!(
            e.message,
            "must be one of \"intake\", \"investigating\", \"temporary_protection\", \
             \"in_care\", \"returned_home\", \"closed\""
        );
        for (s, want) in STATUSES {
            let mut v = valid();
            set(&mut v, "/status", json!(s));
            assert_eq!(parse_case(&v, NOW).unwrap().status, *want);
        }
        for (s, want) in RELATIONSHIPS {
            let mut v = valid();
            set(&mut v, "/guardians/0/relationship", json!(s));
            assert_eq!(parse_case(&v, NOW).unwrap().guardians.unwrap()[0].relationship, *want);
        }
    }

    #[test]
    fn abuse_types() {
        let e = single(|v| set(v, "/abuse/types", json!([])));
        assert_eq!(e.pointer, "/abuse/types");
        let e = single(|v| set(v, "/abuse/types", json!("physical")));
        assert_eq!(e.pointer, "/abuse/types");
        let errs = errors_of(&{
            let mut v = valid();
            set(&mut v, "/abuse/types", json!(["neglect", "emotional", "neglect", 3]));
            v
        });
        assert_eq!(
            pointers(&errs),
            vec!["/abuse/types/1", "/abuse/types/2", "/abuse/types/3"]
        );
        let e = single(|v| set(v, "/abuse/injury", json!("yes")));
        assert_eq!(e.message, "expected true or false, found a string");
        let e = single(|v| set(v, "/flags/dv", json!(0)));
        assert_eq!(e.pointer, "/flags/dv");
    }

    #[test]
    fn names_and_text_lengths() {
        let e = single(|v| set(v, "/child/name", json!("")));
        assert_eq!(e.message, "must not be empty");
        let e = single(|v| set(v, "/guardians/0/name", json!("  ")));
        assert_eq!(e.pointer, "/guardians/0/name");
        let mut v = valid();
        set(&mut v, "/child/name", json!("名".repeat(200)));
        set(&mut v, "/household", json!("あ".repeat(10_000)));
        assert!(parse_case(&v, NOW).is_ok());
        let e = single(|v| set(v, "/child/name", json!("名".repeat(201))));
        assert_eq!(e.message, "must be at most 200 characters");
        let e = single(|v| set(v, "/center_contact/name", json!("名".repeat(201))));
        assert_eq!(e.pointer, "/center_contact/name");
        for p in [
            "/household",
            "/care_setting",
            "/upbringing",
            "/welfare_services",
            "/assessment/findings",
            "/child/address/text",
        ] {
            let e = single(|v| set(v, p, json!("あ".repeat(10_001))));
            assert_eq!(
                (e.pointer.as_str(), e.message.as_str()),
                (p, "must be at most 10000 characters")
            );
        }
        let mut v = valid();
        set(&mut v, "/household", json!(""));
        assert!(parse_case(&v, NOW).is_ok());
    }

    #[test]
    fn guardian_limit() {
        let g = json!({ "name": "佐藤　美香", "relationship": "mother" });
        let mut v = valid();
        set(&mut v, "/guardians", Value::Array(vec![g.clone(); 20]));
        assert!(parse_case(&v, NOW).is_ok());
        let e = single(|v| set(v, "/guardians", Value::Array(vec![g.clone(); 21])));
        assert_eq!(
            (e.pointer.as_str(), e.message.as_str()),
            ("/guardians", "must have at most 20 entries")
        );
        let mut v = valid();
        set(&mut v, "/guardians", json!([]));
        assert_eq!(parse_case(&v, NOW).unwrap().guardians, Some(vec![]));
    }

    #[test]
    fn phones() {
        for ok in ["045-123-4567", "+81 45 123 4567", "(045) 123-4567", "0451234567"] {
            let mut v = valid();
            set(&mut v, "/center_contact/phone", json!(ok));
            assert!(parse_case(&v, NOW).is_ok(), "{ok}");
        }
        for bad in ["045-123-4567 ext. 2", "０４５", "call me", "", "---", &"1".repeat(41)] {
            let e = single(|v| set(v, "/center_contact/phone", json!(bad)));
            assert_eq!(e.pointer, "/center_contact/phone", "{bad}");
        }
    }

    #[test]
    fn messages_never_echo_input_values() {
        const CANARY: &str = "CANARYzq";
        let c = |suffix: &str| json!(format!("{CANARY}{suffix}"));
        let body = json!({
            "case_id": c(" id"),
            "center_id": c("/center"),
            "version": c("-version"),
            "updated_at": c("T00:00:00Z"),
            "child": {
                "name": 7,
                "name_kana": c("カナ"),
                "sex": c("sex"),
                "birth_date": c("-01-01"),
                "address": { "municipality_code": c("14104"), "text": [CANARY] }
            },
            "guardians": [
                { "name": { "k": CANARY }, "relationship": c("rel"), "employer": 3,
                  "name_kana": c("") }
            ],
            "household": 1,
            "abuse": { "types": [c("type"), CANARY], "injury": c("") },
            "risk_level": c("risk"),
            "status": c("status"),
            "intake_at": c("2026-01-01T00:00:00+09:00"),
            "safety_confirmed_at": c("Z"),
            "flags": { "dv": c(""), "missing": c("") },
            "assessment": { "findings": 5 },
            "center_contact": { "name": c(""), "phone": c("045") }
        });
        let errs = errors_of(&body);
        assert!(errs.len() >= 20, "{errs:?}");
        for e in &errs {
            assert!(!e.message.contains(CANARY), "{e:?}");
            assert!(!e.message.to_lowercase().contains("canary"), "{e:?}");
            assert!(!e.pointer.contains(CANARY), "{e:?}");
        }
        let json = serde_json::to_string(&errs).unwrap();
        assert!(!json.contains(CANARY));

        // Bad values hidden inside otherwise well-formed strings.
        let mut v = valid();
        set(&mut v, "/child/name_kana", json!("サトウ CANARYzq"));
        set(&mut v, "/child/birth_date", json!("2026-02-30"));
        set(&mut v, "/center_contact/phone", json!("045 CANARYzq"));
        set(&mut v, "/case_id", json!("CANARYzq!"));
        let errs = errors_of(&v);
        assert_eq!(errs.len(), 4);
        for e in &errs {
            assert!(!e.message.contains(CANARY) && !e.message.contains("2026-02-30"));
        }
    }

    #[test]
    fn error_count_is_bounded() {
        let mut v = valid();
        set(&mut v, "/abuse/types", Value::Array(vec![json!(1); 5000]));
        let errs = errors_of(&v);
        assert_eq!(errs.len(), MAX_ERRORS + 1);
        assert_eq!(errs.last().unwrap().pointer, "");
    }

    #[test]
    fn bytes_round_trip() {
        let body = serde_json::to_vec(&valid()).unwrap();
        let (value, record) = parse_case_bytes(&body, NOW).unwrap();
        assert_eq!(value, valid());
        assert_eq!(record, parse_case(&valid(), NOW).unwrap());
    }

    #[test]
    fn bytes_syntax_errors_hide_input() {
        let body = b"{\n  \"case_id\": \"CANARYzq\",\n  \"version\": CANARYzq\n}";
        let errs = parse_case_bytes(body, NOW).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].pointer, "");
        assert_eq!(errs[0].message, "invalid JSON syntax at line 3, column 14");

        let errs = parse_case_bytes(b"{\"a\": \"\\qCANARYzq\"}", NOW).unwrap_err();
        assert!(!errs[0].message.contains("CANARY"), "{errs:?}");
        assert!(errs[0].message.contains("line 1"), "{errs:?}");

        let errs = parse_case_bytes(b"{\"case_id\": \"x", NOW).unwrap_err();
        assert!(errs[0].message.starts_with("unexpected end of JSON input"));

        let errs = parse_case_bytes(b"{} trailing", NOW).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].pointer, "");

        let errs = parse_case_bytes(b"\xff\xfe", NOW).unwrap_err();
        assert_eq!(errs[0].pointer, "");
        let errs = parse_case_bytes(b"", NOW).unwrap_err();
        assert_eq!(errs[0].pointer, "");
    }

    #[test]
    fn bytes_refuse_duplicate_keys() {
        let errs = parse_case_bytes(b"{\"child\": {\"name\": \"a\", \"name\": \"CANARYzq\"}}", NOW).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].message.starts_with("duplicate object key at line 1"),
            "{errs:?}"
        );
        assert!(!errs[0].message.contains("CANARY"));
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_without_recursing() {
        // Far deeper than any stack would survive if the check recursed.
        let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        let errs = parse_case_bytes(deep.as_bytes(), NOW).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "JSON nested deeper than 32 levels at line 1, column 33"
        );
        let limits = JsonLimits {
            depth: 3,
            ..JsonLimits::default()
        };
        let errs = parse_case_bytes_within(b"{\"a\": [{\"b\": {}}]}", NOW, limits).unwrap_err();
        assert!(
            errs[0].message.starts_with("JSON nested deeper than 3 levels"),
            "{errs:?}"
        );
        // Brackets inside strings are text, not nesting.
        let errs = parse_case_bytes_within(b"{\"a\": \"[[[[\\\"{{{{\"}", NOW, limits).unwrap_err();
        assert!(!errs[0].message.contains("nested"), "{errs:?}");
    }

    #[test]
    fn a_string_beyond_the_limit_is_refused_keys_included() {
        let limits = JsonLimits {
            string_bytes: 8,
            ..JsonLimits::default()
        };
        for body in ["{\"123456789\": 1}", "{\"a\": \"12345\\\"789\"}"] {
            let errs = parse_case_bytes_within(body.as_bytes(), NOW, limits).unwrap_err();
            assert_eq!(errs.len(), 1, "{body}");
            assert!(
                errs[0].message.starts_with("a JSON string longer than 8 bytes"),
                "{errs:?}"
            );
        }
        // Exactly at the limit, an escaped quote included, the parser and then the validator judge.
        let errs = parse_case_bytes_within(b"{\"a\": \"1234\\\"67\"}", NOW, limits).unwrap_err();
        assert!(!errs[0].message.contains("longer than"), "{errs:?}");
    }

    #[test]
    fn bytes_then_field_errors() {
        let errs = parse_case_bytes(b"{\"version\": 1.0}", NOW).unwrap_err();
        assert!(pointers(&errs).contains(&"/version"));
        let (_, r) = parse_case_bytes(
            serde_json::to_string(&valid())
                .unwrap()
                .replace("\"version\":3", "\"version\":1000000000")
                .as_bytes(),
            NOW,
        )
        .unwrap();
        assert_eq!(r.version, MAX_VERSION);
    }
}
