//! Fault injection for encoder supervision tests (issue 3 item 2): an [`EpisodeEncoder`]
//! whose settings carry a [`Fault`] misbehaves on purpose — it hangs on open, hangs or errors
//! after N frames, never flushes, or is slow (each frame takes at least N ms: an encoder that
//! cannot keep up, whatever the machine) — so that the recorder's watchdog and fallback can be
//! proven against every failure a real (GPU) encoder shows.
//!
//! [`EpisodeEncoder`]: crate::EpisodeEncoder

use reel_core::{Error, Result};
use std::time::Duration;

/// A deliberate encoder failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `EpisodeEncoder::create` never returns.
    HangOnOpen,
    /// The (n+1)-th `push` never returns (frames 0..n are encoded normally).
    HangAfter(u64),
    /// The (n+1)-th `push` (and every later one) returns an error.
    ErrorAfter(u64),
    /// `finish` never returns.
    NoFlush,
    /// Every `push` takes at least this many milliseconds (the encoder's speed made
    /// deterministic: `slow=50` encodes at most 20 frames/s on any machine).
    Slow(u64),
}

impl Fault {
    /// Parses "hang-open", "hang-after=N", "error-after=N", "no-flush" or "slow=MS".
    pub fn parse(s: &str) -> Result<Fault> {
        let s = s.trim();
        let count = |v: &str| {
            v.trim().parse::<u64>().map_err(|_| {
                Error::invalid(format!(
                    "fault '{s}': '{v}' is not a frame count (a non-negative integer)"
                ))
            })
        };
        match s.split_once('=') {
            None if s == "hang-open" => Ok(Fault::HangOnOpen),
            None if s == "no-flush" => Ok(Fault::NoFlush),
            Some(("hang-after", v)) => Ok(Fault::HangAfter(count(v)?)),
            Some(("error-after", v)) => Ok(Fault::ErrorAfter(count(v)?)),
            Some(("slow", v)) => Ok(Fault::Slow(count(v)?)),
            _ => Err(Error::invalid(format!(
                "unknown fault '{s}' (expected hang-open, hang-after=N, error-after=N, no-flush or slow=MS)"
            ))),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::HangOnOpen => write!(f, "hang-open"),
            Fault::HangAfter(n) => write!(f, "hang-after={n}"),
            Fault::ErrorAfter(n) => write!(f, "error-after={n}"),
            Fault::NoFlush => write!(f, "no-flush"),
            Fault::Slow(ms) => write!(f, "slow={ms}"),
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = Error;
    fn from_str(s: &str) -> Result<Fault> {
        Fault::parse(s)
    }
}

/// Blocks the calling thread until the process exits (the supervisor abandons it).
pub(crate) fn hang_forever(what: &str) -> ! {
    tracing::warn!("injected fault: {what} hangs until the process exits");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for (s, f) in [
            ("hang-open", Fault::HangOnOpen),
            ("hang-after=5", Fault::HangAfter(5)),
            ("error-after=0", Fault::ErrorAfter(0)),
            ("no-flush", Fault::NoFlush),
            ("slow=40", Fault::Slow(40)),
        ] {
            assert_eq!(Fault::parse(s).unwrap(), f);
            assert_eq!(f.to_string(), s);
        }
        for bad in [
            "",
            "hang",
            "hang-after=",
            "error-after=-1",
            "hang-after=x",
            "no-flush=3",
            "slow=",
            "slow=fast",
        ] {
            let e = Fault::parse(bad).unwrap_err().to_string();
            assert!(e.contains("fault"), "{bad}: {e}");
        }
    }
}
