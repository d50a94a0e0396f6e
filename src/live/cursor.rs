//! The stream cursor: every SSE event id a terminal receives, and what it sends back as
//! `Last-Event-ID` to resume.
//!
//! Format: `<instance>-<seq>` (lower-case hex instance, decimal seq), e.g. `9f3a…-1042`.
//!
//! - `seq` is the hub's event sequence: it grows by one for every `case` or `withdraw` event
//!   the hub emits to any audience class, whatever caused it (a stored update, a policy change
//!   through `set_policy`, time passing a 48-hour deadline or an effective date). Stored
//!   updates, policy epochs and time ticks are thus folded into one total order, so a single
//!   number says exactly which events a terminal has seen.
//! - `instance` names the hub that issued the sequence (random per process start). A cursor
//!   from another instance, or one older than what the hub still remembers, cannot be
//!   interpreted; the stream then starts over with a `reset` and the full current view, which
//!   also leaves the terminal with the latest version of every case and nothing withdrawn.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub instance: u64,
    pub seq: u64,
}

impl Cursor {
    /// Parses a `Last-Event-ID`; anything malformed is `None` (and means "start over").
    pub fn parse(s: &str) -> Option<Self> {
        let (instance, seq) = s.trim().split_once('-')?;
        if instance.is_empty() || instance.len() > 16 || seq.is_empty() || seq.len() > 20 {
            return None;
        }
        Some(Self {
            instance: u64::from_str_radix(instance, 16).ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{}", self.instance, self.seq)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let c = Cursor {
            instance: 0x9f3a_0000_0000_0001,
            seq: 1042,
        };
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        for bad in ["", "-", "1-", "-1", "xyz-1", "1-x", "1-1-1", "11111111111111111-1"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
