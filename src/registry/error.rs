//! The one error type of the policy layer: every refusal of a registry, agreement or consent
//! file names the file, the line when it is known, and exactly what is wrong.

use std::fmt;
use std::ops::Range;
use std::path::Path;

/// A policy file that cannot be used. `Display` renders `file:line: message`, the form editors
/// and CI logs link to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file's label: its path, or what the caller named it (e.g. `"PUT body"`).
    pub file: String,
    /// 1-based line, when the offending text could be located.
    pub line: Option<usize>,
    pub message: String,
}

impl PolicyError {
    pub fn new(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// An error about the text at `span` (a byte range of `text`, as TOML spans are).
    pub fn at(file: &str, text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self::new(file, Some(line_of(text, span.start)), message)
    }

    /// A syntax or schema error reported by the TOML parser. Its own message is kept; its
    /// multi-line snippet rendering is dropped in favour of our `file:line:` form.
    pub fn toml(file: &str, text: &str, err: &toml::de::Error) -> Self {
        let line = err.span().map(|s| line_of(text, s.start));
        Self::new(file, line, err.message().trim_end())
    }

    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        Self::new(&path.display().to_string(), None, format!("cannot read: {err}"))
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text.bytes().take(byte).filter(|b| *b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_and_line() {
        let e = PolicyError::at("a.toml", "x = 1\ny = 2\n", 6..7, "bad y");
        assert_eq!(e.to_string(), "a.toml:2: bad y");
        assert_eq!(PolicyError::new("a.toml", None, "m").to_string(), "a.toml: m");
    }
}
