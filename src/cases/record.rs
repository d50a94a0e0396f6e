//! The case record a CGC pushes (SPEC §5), as parsed types. A `CaseRecord` only exists once
//! every field has been validated (see `validate.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::registry::codes::MunicipalityCode;

/// `[A-Za-z0-9._-]{1,64}` and not dots only, unique per center. Used as an identifier for
/// center ids and agreement ids too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CaseId(String);

impl CaseId {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if is_identifier(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err("must match [A-Za-z0-9._-]{1,64} and not be dots only")
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identifier grammar shared by case ids, center ids, station ids and agreement ids.
pub use crate::text::is_identifier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    Mother,
    Father,
    Stepmother,
    Stepfather,
    Grandparent,
    Partner,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbuseType {
    Physical,
    Neglect,
    Sexual,
    Psychological,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    High,
    Medium,
    Low,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Intake,
    Investigating,
    TemporaryProtection,
    InCare,
    ReturnedHome,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub municipality_code: MunicipalityCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Child {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_kana: Option<String>,
    pub sex: Sex,
    #[serde(with = "iso_date")]
    pub birth_date: Date,
    pub address: Address,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guardian {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_kana: Option<String>,
    pub relationship: Relationship,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Abuse {
    pub types: Vec<AbuseType>,
    pub injury: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Flags {
    pub dv: bool,
    pub missing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CenterContact {
    pub name: String,
    pub phone: String,
}

/// One case as pushed by its center. Optional fields that were absent or null are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseRecord {
    pub case_id: CaseId,
    pub center_id: CaseId,
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub child: Child,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardians: Option<Vec<Guardian>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub household: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub care_setting: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upbringing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub welfare_services: Option<String>,
    pub abuse: Abuse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<RiskLevel>,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub intake_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub safety_confirmed_at: Option<OffsetDateTime>,
    pub flags: Flags,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Assessment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub center_contact: Option<CenterContact>,
}

impl CaseRecord {
    /// `<center_id>:<case_id>`: how terminals name a case (case ids are unique per center only).
    pub fn reference(&self) -> String {
        format!("{}:{}", self.center_id, self.case_id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_made_of_dots_only_are_refused() {
        for bad in [".", "..", "...", ""] {
            assert!(!is_identifier(bad), "{bad:?}");
            assert!(CaseId::parse(bad).is_err(), "{bad:?}");
        }
        for ok in ["a.b", ".a", "..a", "a..", "YKH-2026-000123", "v1.0"] {
            assert!(is_identifier(ok), "{ok:?}");
        }
    }
}
