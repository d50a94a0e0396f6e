//! Name search (SPEC §7): partial names in kanji or kana, full- or half-width alike. Both the
//! query and the names are folded the same way — NFKC (half-width ﾔﾏﾀﾞ → ヤマダ, full-width
//! Ｙ → Y), hiragana → katakana (やまだ → ヤマダ), lower case, whitespace removed (山田　花子 and
//! 山田花子 are one name) — and a hit is a substring of a folded name. Pure: no I/O.

use unicode_normalization::UnicodeNormalization;

use crate::cases::record::CaseRecord;
use crate::policy::{FieldPath, FieldSet};

/// The longest query accepted, in characters: as typed, and again after folding (NFKC can
/// lengthen a character: ㌀ is アパート). Counting only the folded form let a query of any
/// length through as long as whitespace made up the rest, against the documented limit.
pub const MAX_QUERY_CHARS: usize = 64;

/// The folded form names and queries are compared in.
pub fn fold(s: &str) -> String {
    s.nfkc()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            // ぁ..ゖ and the iteration marks ゝゞ map to katakana 0x60 above.
            '\u{3041}'..='\u{3096}' | '\u{309D}' | '\u{309E}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    Empty,
    TooLong,
}

/// A folded, validated query.
#[derive(Debug, Clone)]
pub struct Query(String);

impl Query {
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        if raw.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong);
        }
        let folded = fold(raw);
        match folded.chars().count() {
            0 => Err(QueryError::Empty),
            n if n > MAX_QUERY_CHARS => Err(QueryError::TooLong),
            _ => Ok(Self(folded)),
        }
    }

    /// Whether a name the recipient may see contains the query. Names outside `view` are not
    /// consulted: a hit on a hidden field would reveal it.
    pub fn matches(&self, case: &CaseRecord, view: FieldSet) -> bool {
        let hit = |s: &str| fold(s).contains(&self.0);
        let child = &case.child;
        (view.contains(FieldPath::ChildName) && hit(&child.name))
            || (view.contains(FieldPath::ChildNameKana) && child.name_kana.as_deref().is_some_and(hit))
            || case.guardians.iter().flatten().any(|g| {
                (view.contains(FieldPath::GuardiansName) && hit(&g.name))
                    || (view.contains(FieldPath::GuardiansNameKana) && g.name_kana.as_deref().is_some_and(hit))
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hiragana_half_width_and_full_width_katakana_fold_alike() {
        assert_eq!(fold("やまだ"), "ヤマダ");
        assert_eq!(fold("ﾔﾏﾀﾞ"), "ヤマダ");
        assert_eq!(fold("ヤマダ"), "ヤマダ");
        assert_eq!(fold("ヤマダ　ハナコ"), "ヤマダハナコ");
        assert_eq!(fold("山田 花子"), "山田花子");
        assert_eq!(fold("ＹＡＭＡＤＡ"), "yamada");
    }

    #[test]
    fn empty_and_overlong_queries_are_refused() {
        assert_eq!(Query::parse(" 　 ").unwrap_err(), QueryError::Empty);
        assert_eq!(Query::parse(&"あ".repeat(65)).unwrap_err(), QueryError::TooLong);
        assert!(Query::parse("ﾊﾅｺ").is_ok());
    }

    #[test]
    fn a_query_longer_than_the_limit_as_typed_is_refused_even_if_folding_shortens_it() {
        // Found by schemathesis: 65 characters, whitespace among them, folded to fewer than 64.
        let spaced = format!("{}{}", " ".repeat(10), "あ".repeat(55));
        assert_eq!(spaced.chars().count(), 65);
        assert_eq!(Query::parse(&spaced).unwrap_err(), QueryError::TooLong);
        assert!(Query::parse(&format!("{}{}", " ".repeat(9), "あ".repeat(55))).is_ok());
        // Half-width kana fold shorter but count as typed: ﾊﾞ is two characters.
        assert_eq!(Query::parse(&"ﾊﾞ".repeat(33)).unwrap_err(), QueryError::TooLong);
        assert!(Query::parse(&"ﾊﾞ".repeat(32)).is_ok());
        // Expanding characters are still held to the folded count.
        assert_eq!(Query::parse(&"㌀".repeat(20)).unwrap_err(), QueryError::TooLong);
    }
}
