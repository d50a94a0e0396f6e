//! Which characters text from outside may hold: names in a case, its free-text notes, and the
//! subjects of tokens.
//!
//! These strings are shown to officers, searched, and written into audit entries. A control
//! character can forge a line in a log or a terminal; a bidirectional override (U+202E) can make
//! a name or an id read differently from what it is; a name made only of invisible characters
//! (U+200B, U+3000, …) is no name at all and cannot be searched for.

/// Why a string was refused. Fixed texts that never repeat the input.
pub type Refused = &'static str;

pub const NO_CONTROLS: Refused = "must not contain control characters or line breaks";
pub const NO_BIDI: Refused = "must not contain bidirectional formatting characters";
pub const NO_INVISIBLE: Refused = "must not contain invisible formatting characters";
pub const NOT_EMPTY: Refused = "must not be empty";

/// Unicode's explicit bidirectional formatting characters: the marks (U+200E, U+200F, U+061C),
/// embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
fn is_control_or_break(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Unicode's Default_Ignorable_Code_Point: characters that render as nothing (zero-width space
/// and joiners, soft hyphen, word joiner, byte order mark, variation selectors, Hangul fillers,
/// tags, …), plus the interlinear annotation controls, which hide text.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Invisible characters a real name may still need between visible ones: the zero-width
/// (non-)joiners of Indic and Arabic scripts, and variation selectors, with which Japanese
/// registers choose the exact form of a kanji in a family name (ideographic variation sequences).
fn is_name_joiner(c: char) -> bool {
    matches!(
        c,
        '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}'
    )
}

/// True for a character that shows something: not white space (U+3000 included), not a
/// default-ignorable or control character, not the Braille blank often used as an invisible
/// "letter".
fn is_visible(c: char) -> bool {
    !(c.is_whitespace() || is_control_or_break(c) || is_default_ignorable(c) || c == '\u{2800}')
}

/// A person's name (or a name-like field: kana reading, employer, a worker's name): one line,
/// no controls, no bidirectional formatting, no invisible formatting except joiners and
/// variation selectors, and at least one visible character.
pub fn check_name(s: &str) -> Result<(), Refused> {
    if !s.chars().any(is_visible) {
        return Err(NOT_EMPTY);
    }
    if s.chars().any(is_control_or_break) {
        return Err(NO_CONTROLS);
    }
    if s.chars().any(is_bidi_control) {
        return Err(NO_BIDI);
    }
    if s.chars().any(|c| is_default_ignorable(c) && !is_name_joiner(c)) {
        return Err(NO_INVISIBLE);
    }
    Ok(())
}

/// Free text (household, assessment notes, an address): line breaks and tabs are ordinary in
/// notes and allowed; other controls (NUL, escape, …) and bidirectional formatting are not.
pub fn check_free_text(s: &str) -> Result<(), Refused> {
    if s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err("must not contain control characters other than tabs and line breaks");
    }
    if s.chars().any(is_bidi_control) {
        return Err(NO_BIDI);
    }
    Ok(())
}

/// The longest token subject accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;

/// A token's `sub` (an officer or administrator as the identity provider names them): what is
/// revoked and what audit entries name, so it must read as what it is. At most
/// `MAX_SUBJECT_BYTES`; no controls, bidirectional or invisible formatting; something visible.
pub fn is_subject(s: &str) -> bool {
    s.len() <= MAX_SUBJECT_BYTES
        && s.chars().any(is_visible)
        && !s
            .chars()
            .any(|c| is_control_or_break(c) || is_bidi_control(c) || is_default_ignorable(c))
}

/// Identifiers are path segments (`/v1/cases/{case_id}`, `/v1/centers/{center_id}/…`), where `.`
/// and `..` mean "this level" and "the parent" to every URL resolver, proxy and log reader; ids
/// made only of dots are refused.
pub fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.bytes().all(|b| b == b'.')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for ok in [
            "佐藤　陽翔",
            "サトウ　ハルト",
            "Anne-Marie O'Neil",
            "Nguyễn Văn An",
            "عبد الله",
            "葛\u{E0100}城　花子",
            "क्\u{200D}ष",
            "田中　恵（児童福祉司）",
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_of_nothing_visible_are_empty() {
        for bad in [
            "",
            " ",
            "\u{3000}",
            "\u{200B}",
            "\u{200B}\u{200D}",
            "\u{FEFF}",
            "\u{2800}",
            "\u{3164}",
            "\t",
        ] {
            assert_eq!(check_name(bad), Err(NOT_EMPTY), "{bad:?}");
        }
    }

    #[test]
    fn names_refuse_controls_line_breaks_bidi_and_hidden_formatting() {
        for (bad, why) in [
            ("佐藤\0花子", NO_CONTROLS),
            ("佐藤\r\n花子", NO_CONTROLS),
            ("佐藤\n", NO_CONTROLS),
            ("佐藤\t花子", NO_CONTROLS),
            ("佐藤\u{7F}", NO_CONTROLS),
            ("佐藤\u{85}", NO_CONTROLS),
            ("佐藤\u{2028}花子", NO_CONTROLS),
            ("\u{202E}子花藤佐", NO_BIDI),
            ("佐藤\u{2066}花子\u{2069}", NO_BIDI),
            ("佐藤\u{200F}", NO_BIDI),
            ("佐藤\u{200B}花子", NO_INVISIBLE),
            ("佐藤\u{FEFF}", NO_INVISIBLE),
            ("佐藤\u{E0041}", NO_INVISIBLE),
            ("佐藤\u{FFF9}花子\u{FFFB}", NO_INVISIBLE),
        ] {
            assert_eq!(check_name(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn free_text_keeps_line_breaks_and_refuses_other_controls_and_bidi() {
        for ok in ["", "一行目\n二行目", "一行目\r\n二行目\t続き", "　"] {
            assert_eq!(check_free_text(ok), Ok(()), "{ok:?}");
        }
        for bad in ["a\0b", "a\u{1B}[31mb", "a\u{7F}", "a\u{9B}", "a\u{202E}b", "a\u{2067}b"] {
            assert!(check_free_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subjects_read_as_what_they_are() {
        for ok in [
            "K-1234",
            "officer-1",
            "0f5e2c1a-9d7b-4e3f-8a61-2b9c0d4e5f60",
            "山田 太郎",
            &"a".repeat(128),
        ] {
            assert!(is_subject(ok), "{ok:?}");
        }
        for bad in [
            "",
            " ",
            "\u{200B}",
            "K-1234\n",
            "K-1234\r\nadmin",
            "K\0",
            "\u{202E}4321-K",
            "K-\u{200B}1234",
            &"a".repeat(129),
        ] {
            assert!(!is_subject(bad), "{bad:?}");
        }
    }
}
