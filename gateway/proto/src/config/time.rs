//! `[time]`: the kit's time floor (`docs/repository.md`, "Time").
//!
//! ```toml
//! [time]
//! # floor = "state/time.floor"   # default: next to [policy] state
//! # stale_after_s = 86400        # no signed time for longer: said in status and audit
//! ```
//!
//! The kit never trusts the system clock below the floor (the build time,
//! the newest signed time verified, persisted in `floor`); without a
//! `[policy]` and without `floor` it keeps the floor in memory only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, resolve, ConfigError};

/// Default bound on the age of the newest signed time: a day.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(86_400);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTime {
    floor: Option<PathBuf>,
    stale_after_s: Option<u64>,
}

/// The time floor's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeConfig {
    /// Where the floor is persisted (the data partition); `None`: memory only.
    pub floor: Option<PathBuf>,
    /// How old the newest signed time may grow before the kit says so.
    pub stale_after: Duration,
}

impl Default for TimeConfig {
    fn default() -> TimeConfig {
        TimeConfig {
            floor: None,
            stale_after: DEFAULT_STALE_AFTER,
        }
    }
}

pub(super) fn time_config(
    base: &Path,
    raw: RawTime,
    policy_state: Option<&Path>,
) -> Result<TimeConfig, ConfigError> {
    let stale_after = match raw.stale_after_s {
        None => DEFAULT_STALE_AFTER,
        Some(0) => return Err(invalid("time.stale_after_s", "must be at least 1")),
        Some(s) => Duration::from_secs(s),
    };
    let floor = match raw.floor {
        Some(p) => Some(resolve(base, p)),
        None => policy_state.map(|s| s.with_file_name("time.floor")),
    };
    Ok(TimeConfig { floor, stale_after })
}
