//! The kit's time floor: a lower bound on the true time that the network
//! cannot move. A Pi 4 has no real-time clock and the hotel owns NTP, so
//! the system clock may be set back (to make expired metadata, policy or
//! certificates look valid again) or forward (to make everything expire).
//!
//! The floor is the largest of
//!
//! - the firmware's build time,
//! - the floor persisted on the data partition (it survives reboots),
//! - the newest *signed* time verified: the `signed-at` of HQ's repository
//!   timestamp, the `issued_at` of an applied policy bundle,
//!
//! and it advances by the monotonic clock from the moment it was last
//! raised (the monotonic clock is the kernel's, not NTP's: setting the
//! system clock does not move it). The kit's time is
//! `max(system clock, floor)`: a clock set back is ignored, a clock set
//! forward makes documents expire early (fail closed, never open). The
//! floor is never raised from the system clock.
//!
//! Sans-IO: the shell passes the system clock (`wall`, unix seconds) and
//! the monotonic clock (`mono`, time since any fixed origin), persists
//! [`TimeFloor::encode`] (atomically) whenever [`TimeFloor::persist_due`]
//! says so, and reads it back with [`TimeFloor::decode`] at start.
//!
//! ```
//! use std::time::Duration;
//! use dialgate_signed::time::TimeFloor;
//!
//! let s = Duration::from_secs;
//! let mut t = TimeFloor::new(1_000, None, s(0));
//! assert_eq!(t.now(2_000, s(0)), 2_000); // the clock is above the floor
//! t.observe_signed(5_000, s(10));
//! assert_eq!(t.now(2_000, s(10)), 5_000); // set back: the floor holds
//! assert_eq!(t.now(2_000, s(70)), 5_060); // and advances by the monotonic clock
//! assert_eq!(t.now(9_000, s(70)), 9_000); // set forward: documents expire early
//! assert_eq!(t.signed_age(9_000, s(70)), Some(4_000));
//! ```

use std::time::Duration;

/// How far the floor may run ahead of what is on disk before it is
/// persisted again (besides every new signed time).
pub const PERSIST_STEP_SECS: u64 = 60;

const HEADER: &str = "dialgate-time-floor v1\n";
/// Anything longer is not a floor file.
const MAX_ENCODED: usize = 128;

/// What the data partition holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persisted {
    /// The floor (unix seconds).
    pub floor: u64,
    /// The newest signed time verified (unix seconds; 0: none yet).
    pub signed: u64,
}

/// A floor file that does not decode. Never treated as "no floor": that
/// would let a clock set back win after a reboot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the time floor file is damaged (not a `dialgate-time-floor v1` file): refusing to guess the time; restore it from a backup or re-provision the kit")]
pub struct CorruptFloor;

/// The kit's time floor (see the module documentation).
#[derive(Clone, Debug)]
pub struct TimeFloor {
    /// The floor's value at `anchor_mono`.
    anchor: u64,
    anchor_mono: Duration,
    /// The newest signed time verified (0: none).
    signed: u64,
    /// What was last persisted (or read).
    persisted: Persisted,
}

impl TimeFloor {
    /// The floor at start: the build time or what was persisted, whichever
    /// is later, advancing from `mono` on.
    pub fn new(build_time: u64, persisted: Option<Persisted>, mono: Duration) -> TimeFloor {
        let p = persisted.unwrap_or(Persisted {
            floor: 0,
            signed: 0,
        });
        TimeFloor {
            anchor: build_time.max(p.floor).max(p.signed),
            anchor_mono: mono,
            signed: p.signed,
            persisted: p,
        }
    }

    /// The floor at `mono`: it never goes down and advances with the
    /// monotonic clock.
    pub fn floor(&self, mono: Duration) -> u64 {
        let elapsed = mono.saturating_sub(self.anchor_mono).as_secs();
        self.anchor.saturating_add(elapsed)
    }

    /// The kit's time: the system clock, never below the floor.
    pub fn now(&self, wall: u64, mono: Duration) -> u64 {
        wall.max(self.floor(mono))
    }

    /// How far the system clock is below the floor (0 when it is not):
    /// a clock set back, or never set (a Pi boots in 1970).
    pub fn behind(&self, wall: u64, mono: Duration) -> u64 {
        self.floor(mono).saturating_sub(wall)
    }

    /// A signed time verified at `mono` (HQ's timestamp, a policy's
    /// issue time): raises the floor when later than it. Returns whether
    /// the newest signed time changed.
    pub fn observe_signed(&mut self, signed: u64, mono: Duration) -> bool {
        if signed > self.floor(mono) {
            self.anchor = signed;
            self.anchor_mono = mono;
        }
        if signed > self.signed {
            self.signed = signed;
            return true;
        }
        false
    }

    /// The newest signed time verified, if any.
    pub fn signed(&self) -> Option<u64> {
        (self.signed > 0).then_some(self.signed)
    }

    /// Seconds from the newest signed time to the kit's time: how long the
    /// kit has judged time without fresh word from HQ. `None`: never.
    pub fn signed_age(&self, wall: u64, mono: Duration) -> Option<u64> {
        self.signed()
            .map(|s| self.now(wall, mono).saturating_sub(s))
    }

    /// What to persist now, if anything: a new signed time, or a floor
    /// [`PERSIST_STEP_SECS`] past the one on disk. Call
    /// [`TimeFloor::persisted`] once it is written.
    pub fn persist_due(&self, mono: Duration) -> Option<Persisted> {
        let now = Persisted {
            floor: self.floor(mono),
            signed: self.signed,
        };
        let due = now.signed != self.persisted.signed
            || now.floor >= self.persisted.floor.saturating_add(PERSIST_STEP_SECS);
        due.then_some(now)
    }

    /// `p` (from [`TimeFloor::persist_due`]) is durable.
    pub fn persisted(&mut self, p: Persisted) {
        self.persisted = p;
    }

    /// The durable form, two lines after the header.
    ///
    /// ```text
    /// dialgate-time-floor v1
    /// floor <unix seconds>
    /// signed <unix seconds, 0 = none>
    /// ```
    pub fn encode(p: Persisted) -> Vec<u8> {
        format!("{HEADER}floor {}\nsigned {}\n", p.floor, p.signed).into_bytes()
    }

    /// Reads [`TimeFloor::encode`]'s output; anything else (torn, padded,
    /// another spelling) is [`CorruptFloor`].
    pub fn decode(bytes: &[u8]) -> Result<Persisted, CorruptFloor> {
        if bytes.len() > MAX_ENCODED {
            return Err(CorruptFloor);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| CorruptFloor)?;
        let mut lines = text.strip_prefix(HEADER).ok_or(CorruptFloor)?.lines();
        let mut field = |prefix: &str| -> Result<u64, CorruptFloor> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(prefix))
                .and_then(|v| v.parse().ok())
                .ok_or(CorruptFloor)
        };
        let p = Persisted {
            floor: field("floor ")?,
            signed: field("signed ")?,
        };
        if TimeFloor::encode(p) != bytes {
            return Err(CorruptFloor);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_clock_set_back_never_takes_the_time_below_the_floor() {
        let mut t = TimeFloor::new(1_000_000, None, S(5));
        // Booted in 1970 (no RTC, no NTP yet): the build time holds.
        assert_eq!(t.now(0, S(5)), 1_000_000);
        assert_eq!(t.behind(0, S(5)), 1_000_000);
        assert!(t.observe_signed(2_000_000, S(100)));
        // Set back by a day, an hour later: signed time plus an hour.
        assert_eq!(t.now(2_000_000 - 86_400, S(3_700)), 2_003_600);
        // An older signed time does not lower it.
        assert!(!t.observe_signed(1_500_000, S(3_700)));
        assert_eq!(t.floor(S(3_700)), 2_003_600);
        // A signed time below the floor but above the newest signed one
        // (HQ's timestamp, re-signed late) keeps the floor.
        assert!(t.observe_signed(2_001_000, S(3_700)));
        assert_eq!(t.floor(S(3_700)), 2_003_600);
        assert_eq!(t.signed(), Some(2_001_000));
    }

    #[test]
    fn a_clock_set_forward_is_the_time_but_never_the_floor() {
        let mut t = TimeFloor::new(1_000, None, S(0));
        t.observe_signed(10_000, S(0));
        let ahead = 10_000 + 400 * 86_400;
        assert_eq!(t.now(ahead, S(10)), ahead);
        assert_eq!(t.floor(S(10)), 10_010);
        assert_eq!(t.signed_age(ahead, S(10)), Some(400 * 86_400));
        // The clock comes back: the floor is where the signed time left it.
        assert_eq!(t.now(10_005, S(20)), 10_020);
        assert_eq!(t.persist_due(S(20)).unwrap().floor, 10_020);
    }

    #[test]
    fn persistence_keeps_the_floor_across_reboots() {
        let mut t = TimeFloor::new(1_000, None, S(0));
        // Nothing on disk yet: the build time is worth writing down.
        let first = t.persist_due(S(0)).unwrap();
        assert_eq!(
            first,
            Persisted {
                floor: 1_000,
                signed: 0
            }
        );
        t.persisted(first);
        assert_eq!(t.persist_due(S(59)), None);
        assert_eq!(t.signed_age(5_000, S(0)), None);
        t.observe_signed(5_000, S(1));
        let p = t.persist_due(S(1)).unwrap();
        assert_eq!(
            p,
            Persisted {
                floor: 5_000,
                signed: 5_000
            }
        );
        t.persisted(p);
        assert_eq!(t.persist_due(S(30)), None);
        let later = t.persist_due(S(61)).unwrap();
        assert_eq!(later.floor, 5_060);
        t.persisted(later);
        // Reboot with the clock in 1970: the persisted floor holds.
        let back = TimeFloor::decode(&TimeFloor::encode(later)).unwrap();
        let r = TimeFloor::new(1_000, Some(back), S(0));
        assert_eq!(r.now(0, S(0)), 5_060);
        assert_eq!(r.signed(), Some(5_000));
        assert_eq!(r.signed_age(0, S(40)), Some(100));
        // A build newer than the persisted floor wins.
        assert_eq!(TimeFloor::new(9_000, Some(back), S(0)).now(0, S(0)), 9_000);
    }

    #[test]
    fn a_damaged_floor_file_is_refused() {
        let good = TimeFloor::encode(Persisted {
            floor: 42,
            signed: 7,
        });
        assert_eq!(good, b"dialgate-time-floor v1\nfloor 42\nsigned 7\n");
        let text = String::from_utf8(good).unwrap();
        for bad in [
            String::new(),
            text.replace("42", "042"),
            text.replace("42", "+42"),
            text.replace("42", "-1"),
            text.replace("v1", "v2"),
            format!("{text}\n"),
            text[..text.len() - 1].to_string(),
            text[..text.len() / 2].to_string(),
            text.replace('\n', "\r\n"),
            format!("{text}{}", "1".repeat(200)),
            text.replace("floor", "signed"),
        ] {
            assert_eq!(
                TimeFloor::decode(bad.as_bytes()),
                Err(CorruptFloor),
                "{bad:?}"
            );
        }
    }
}
