//! The vocabulary of field paths that agreements grant (SPEC §5), and sets of them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! field_paths {
    ($($variant:ident => $path:literal,)*) => {
        /// One grantable field of a case record.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum FieldPath { $($variant,)* }

        impl FieldPath {
            pub const ALL: &'static [FieldPath] = &[$(FieldPath::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(FieldPath::$variant => $path,)* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($path => Some(FieldPath::$variant),)* _ => None }
            }
        }
    };
}

field_paths! {
    ChildName => "child.name",
    ChildNameKana => "child.name_kana",
    ChildSex => "child.sex",
    ChildBirthDate => "child.birth_date",
    ChildAddress => "child.address",
    ChildMunicipality => "child.address.municipality_code",
    GuardiansName => "guardians.name",
    GuardiansNameKana => "guardians.name_kana",
    GuardiansRelationship => "guardians.relationship",
    GuardiansEmployer => "guardians.employer",
    Household => "household",
    CareSetting => "care_setting",
    Upbringing => "upbringing",
    WelfareServices => "welfare_services",
    Abuse => "abuse",
    RiskLevel => "risk_level",
    Status => "status",
    IntakeAt => "intake_at",
    SafetyConfirmedAt => "safety_confirmed_at",
    FlagsMissing => "flags.missing",
    FlagsDv => "flags.dv",
    Assessment => "assessment",
    CenterContact => "center_contact",
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FieldPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FieldPath::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown field path `{s}`")))
    }
}

/// A set of field paths, as a bit set: cheap to copy, compare and intersect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FieldSet(u32);

impl FieldSet {
    pub const EMPTY: FieldSet = FieldSet(0);

    pub fn contains(self, f: FieldPath) -> bool {
        self.0 & (1 << f as u8) != 0
    }
    pub fn insert(&mut self, f: FieldPath) {
        self.0 |= 1 << f as u8;
    }
    pub fn remove(&mut self, f: FieldPath) {
        self.0 &= !(1 << f as u8);
    }
    pub fn with(mut self, f: FieldPath) -> Self {
        self.insert(f);
        self
    }
    pub fn without(mut self, f: FieldPath) -> Self {
        self.remove(f);
        self
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn intersection(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 & other.0)
    }
    pub fn is_subset_of(self, other: FieldSet) -> bool {
        self.0 & !other.0 == 0
    }
    /// The set with what its members imply: the whole address carries its municipality code.
    pub fn implied(self) -> FieldSet {
        if self.contains(FieldPath::ChildAddress) {
            self.with(FieldPath::ChildMunicipality)
        } else {
            self
        }
    }
    /// The members of `self` not in `other`.
    pub fn minus(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 & !other.0)
    }
    pub fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
    }
    pub fn iter(self) -> impl Iterator<Item = FieldPath> {
        FieldPath::ALL.iter().copied().filter(move |f| self.contains(*f))
    }
}

/// What a list row, a search hit or a stream item shows when an agreement names no summary for
/// the audience (always cut to the audience's view): enough to triage — who (name, age), how
/// urgent (risk, status, abuse types, DV, missing, the 48-hour clock) and where (municipality,
/// never the street) — and nothing an officer needs only once the case is opened.
pub const DEFAULT_SUMMARY: &[FieldPath] = &[
    FieldPath::ChildName,
    FieldPath::ChildBirthDate,
    FieldPath::ChildMunicipality,
    FieldPath::Abuse,
    FieldPath::RiskLevel,
    FieldPath::Status,
    FieldPath::IntakeAt,
    FieldPath::SafetyConfirmedAt,
    FieldPath::FlagsMissing,
    FieldPath::FlagsDv,
];

impl FromIterator<FieldPath> for FieldSet {
    fn from_iter<I: IntoIterator<Item = FieldPath>>(iter: I) -> Self {
        let mut s = FieldSet::EMPTY;
        for f in iter {
            s.insert(f);
        }
        s
    }
}

impl Serialize for FieldSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}
