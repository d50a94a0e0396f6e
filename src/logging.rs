//! Log output: human-readable text (coloured only on a terminal) or one JSON object per line
//! for log shippers. Either way log lines carry identifiers of principals, counts and errors,
//! never case data: that rule is kept where events are written, not filtered here.

use std::io::IsTerminal;

use serde::Deserialize;

/// `log_format` in the configuration, `CGC_GATEWAY_LOG_FORMAT` in the environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format `{other}`: expected `text` or `json`")),
        }
    }
}

/// Whether text logs get ANSI colours: only when they go to a terminal (never into a file,
/// a pipe or journald) and `NO_COLOR` is not set (<https://no-color.org>).
pub fn use_colour(to_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    to_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the process's subscriber, writing to stderr; the level comes from `RUST_LOG`
/// (default `info`). A second call does nothing.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .try_init(),
        // One object per line: timestamp, level, target, message and the event's fields.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None));
        assert!(!use_colour(true, Some("1".as_ref())));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(use_colour(true, Some("".as_ref())));
    }

    #[test]
    fn formats_parse_from_text() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!(
            "JSON lines"
                .parse::<LogFormat>()
                .unwrap_err()
                .contains("`text` or `json`")
        );
    }
}
