//! The stream cursor: every SSE event id a terminal receives, and what it sends back as
//! `Last-Event-ID` to resume.
//!
//! Format: `<instance>-<seq>.<position>.<at>.<epoch>` (lower-case hex instance and epoch,
//! decimal otherwise), e.g. `9f3a…-1042.5531.1764547200123.a1b2…`. The older form
//! `<instance>-<seq>` is still read.
//!
//! - `instance` and `seq` resume on the hub that issued them: `seq` grows by one for every
//!   `case` or `withdraw` event the hub emits to any unit, whatever caused it (a stored update,
//!   a policy change, time passing a 48-hour deadline or an effective date), so one number says
//!   exactly which events a terminal has seen, and the hub's per-unit journal replays the rest.
//! - `position`, `at` and `epoch` make the cursor portable, to another instance on the same
//!   database or to the next process after a restart: the terminal's view was the one of every
//!   change up to `position` in the store's change log (commit order), evaluated with deadlines
//!   applied up to `at` (Unix milliseconds), under the policy world whose digest is `epoch`. A
//!   hub that has applied the log at least that far, under the same policy, re-sends only the
//!   cases changed after `position` or whose deadline fell after `at` (see `Hub::subscribe`).
//!
//! A cursor that cannot be interpreted (garbage, another policy, a gap the journal no longer
//! covers) starts the stream over with a `reset` and the full current view, which also leaves
//! the terminal with the latest version of every case and nothing withdrawn.

use std::fmt;

/// What makes a cursor portable across instances and restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Portable {
    /// Every change-log row up to here had been applied.
    pub position: i64,
    /// Deadlines up to this instant (Unix milliseconds) had been applied.
    pub at_ms: i64,
    /// The digest of the policy world the view was evaluated under.
    pub epoch: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub instance: u64,
    pub seq: u64,
    pub portable: Option<Portable>,
}

impl Cursor {
    /// Parses a `Last-Event-ID`; anything malformed is `None` (and means "start over").
    pub fn parse(s: &str) -> Option<Self> {
        let (instance, rest) = s.trim().split_once('-')?;
        let mut parts = rest.split('.');
        let seq = parts.next()?;
        let portable = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (None, ..) => None,
            (Some(position), Some(at), Some(epoch), None) => Some(Portable {
                position: decimal(position)?,
                at_ms: decimal(at)?,
                epoch: hex(epoch)?,
            }),
            _ => return None,
        };
        Some(Self {
            instance: hex(instance)?,
            seq: decimal(seq)?,
            portable,
        })
    }
}

fn hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// A decimal without sign or spaces, within `T`'s range.
fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{}", self.instance, self.seq)?;
        if let Some(p) = self.portable {
            write!(f, ".{}.{}.{:x}", p.position, p.at_ms, p.epoch)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let plain = Cursor {
            instance: 0x9f3a_0000_0000_0001,
            seq: 1042,
            portable: None,
        };
        let portable = Cursor {
            portable: Some(Portable {
                position: 5531,
                at_ms: 1_764_547_200_123,
                epoch: 0xa1b2_c3d4_e5f6_0708,
            }),
            ..plain
        };
        let extremes = Cursor {
            instance: u64::MAX,
            seq: u64::MAX,
            portable: Some(Portable {
                position: i64::MAX,
                at_ms: i64::MAX,
                epoch: u64::MAX,
            }),
        };
        for c in [plain, portable, extremes] {
            assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        }
        assert_eq!(
            Cursor::parse("9f3a-7"),
            Some(Cursor {
                instance: 0x9f3a,
                seq: 7,
                portable: None
            })
        );
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "xyz-1",
            "1-x",
            "1-1-1",
            "11111111111111111-1",
            "1-+1",
            "1-1.2",
            "1-1.2.3",
            "1-1.2.3.g",
            "1-1.2.3.4.5",
            "1-1.-2.3.4",
            "1-1..3.4",
            "1-99999999999999999999.1.1.1",
            "1-1.9223372036854775808.1.1",
            "1-18446744073709551616",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
