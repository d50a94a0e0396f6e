//! Parsed jurisdiction codes: once a value exists it is a valid code.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a code was refused; the message names what is wrong, never the input's context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("must be a 2-digit prefecture code from 01 to 47")]
    Prefecture,
    #[error("must be a 6-digit JIS X 0402 code")]
    MunicipalityFormat,
    #[error("JIS X 0402 check digit is wrong")]
    MunicipalityCheckDigit,
}

/// A prefecture by its JIS X 0401 code, `"01"` (Hokkaido) to `"47"` (Okinawa).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrefectureCode(u8);

impl PrefectureCode {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let b = s.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_digit) {
            return Err(CodeError::Prefecture);
        }
        let n = s.parse::<u8>().map_err(|_| CodeError::Prefecture)?;
        if (1..=47).contains(&n) {
            Ok(Self(n))
        } else {
            Err(CodeError::Prefecture)
        }
    }

    pub fn as_u8(self) -> u8 {
        self.0
    }
}

impl fmt::Display for PrefectureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// A municipality (or prefecture, or ward of a designated city) by its 6-digit JIS X 0402
/// code, whose sixth digit is a check digit over the first five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MunicipalityCode([u8; 6]);

impl MunicipalityCode {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let b: [u8; 6] = s.as_bytes().try_into().map_err(|_| CodeError::MunicipalityFormat)?;
        if !b.iter().all(u8::is_ascii_digit) {
            return Err(CodeError::MunicipalityFormat);
        }
        let d = b.map(|c| u32::from(c - b'0'));
        let [d0, d1, d2, d3, d4, check] = d;
        let sum = d0 * 6 + d1 * 5 + d2 * 4 + d3 * 3 + d4 * 2;
        if (11 - sum % 11) % 10 != check {
            return Err(CodeError::MunicipalityCheckDigit);
        }
        let prefecture = d0 * 10 + d1;
        if !(1..=47).contains(&prefecture) {
            return Err(CodeError::MunicipalityFormat);
        }
        Ok(Self(b))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("000000")
    }

    /// The prefecture this municipality lies in (its first two digits).
    pub fn prefecture(&self) -> PrefectureCode {
        let [a, b, ..] = self.0;
        PrefectureCode((a - b'0') * 10 + (b - b'0'))
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! string_codec {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_codec!(PrefectureCode);
string_codec!(MunicipalityCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_codes_parse() {
        for c in [
            "141003", "141046", "141011", "141313", "141534", "142018", "142123", "140007", "110001", "131016",
        ] {
            assert!(MunicipalityCode::parse(c).is_ok(), "{c}");
        }
        assert_eq!(
            MunicipalityCode::parse("141003").map(|m| m.prefecture().to_string()),
            Ok("14".into())
        );
    }

    #[test]
    fn wrong_check_digit_is_refused() {
        assert_eq!(
            MunicipalityCode::parse("141004"),
            Err(CodeError::MunicipalityCheckDigit)
        );
        assert_eq!(MunicipalityCode::parse("14100"), Err(CodeError::MunicipalityFormat));
        assert_eq!(MunicipalityCode::parse("14100a"), Err(CodeError::MunicipalityFormat));
    }

    #[test]
    fn prefecture_range() {
        assert!(PrefectureCode::parse("14").is_ok());
        assert!(PrefectureCode::parse("48").is_err());
        assert!(PrefectureCode::parse("4").is_err());
        assert!(PrefectureCode::parse("00").is_err());
    }
}
