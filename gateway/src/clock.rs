//! The kit's time (`[time]`, `docs/repository.md` "Time"): the shell
//! around [`dialgate_signed::time::TimeFloor`], which decides. Every
//! expiry the kit judges — policy bundles, repository metadata, phone and
//! bridge certificates (through [`time_provider`]), signed commands — asks
//! [`now`], never the system clock directly.
//!
//! One floor per process: [`install`] reads it from the data partition at
//! start (a damaged file stops the kit: guessing would let a clock set back
//! win), [`observe_signed`] raises it when a signed time is verified, and
//! the task [`watch`] starts persists it and audits, once per episode, a
//! system clock below the floor and a signed time older than
//! `[time] stale_after_s`. Before [`install`] (tools, tests of the crate)
//! the floor is the build time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialgate_signed::store::{read_bounded, write_atomically};
use dialgate_signed::time::{CorruptFloor, Persisted, TimeFloor};
use rustls::pki_types::UnixTime;
use tracing::{info, warn};

use crate::config::TimeConfig;

include!(concat!(env!("OUT_DIR"), "/build_time.rs"));

/// How far below the floor the system clock may be before it is audited
/// (a clock a little slow is not news).
pub const BEHIND_TOLERANCE_SECS: u64 = 120;
/// How often [`watch`] looks.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Why the time floor could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The floor file is damaged.
    #[error("{path}: {source}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        source: CorruptFloor,
    },
    /// The floor file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

struct Clock {
    origin: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    floor: TimeFloor,
    path: Option<PathBuf>,
    stale_after: Duration,
    installed: bool,
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

fn wall() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn clock() -> &'static Clock {
    CLOCK.get_or_init(|| Clock {
        origin: Instant::now(),
        inner: Mutex::new(Inner {
            floor: TimeFloor::new(BUILD_TIME, None, Duration::ZERO),
            path: None,
            stale_after: crate::config::DEFAULT_STALE_AFTER,
            installed: false,
        }),
    })
}

impl Clock {
    fn with<T>(&self, f: impl FnOnce(&mut Inner, Duration) -> T) -> T {
        let mono = self.origin.elapsed();
        // A poisoned lock still holds a floor that only ever rose.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner, mono)
    }

    fn floor<T>(&self, f: impl FnOnce(&mut TimeFloor, Duration) -> T) -> T {
        self.with(|i, mono| f(&mut i.floor, mono))
    }

    /// Writes the floor if it is due; errors are audited, never fatal (the
    /// floor in memory still holds; the next write tries again).
    fn persist(&self) {
        let Some((path, due)) =
            self.with(|i, mono| Some((i.path.clone()?, i.floor.persist_due(mono)?)))
        else {
            return;
        };
        match write_atomically(&path, &TimeFloor::encode(due)) {
            Ok(()) => self.floor(|f, _| f.persisted(due)),
            Err(e) => {
                warn!(target: "audit", decision = "time", reason = "floor-not-written", path = %path.display(), error = %e, "the time floor could not be persisted: it holds in memory, a reboot would fall back to the last one written");
            }
        }
    }
}

fn read_floor(path: &Path) -> Result<Option<Persisted>, ClockError> {
    match read_bounded(path, 256) {
        Ok(bytes) => TimeFloor::decode(&bytes)
            .map(Some)
            .map_err(|source| ClockError::Corrupt {
                path: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ClockError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Reads the floor of `cfg` and makes it the process's. A second call
/// (a second gateway in one process) keeps the first floor.
pub fn install(cfg: &TimeConfig) -> Result<(), ClockError> {
    let persisted = match &cfg.floor {
        Some(p) => read_floor(p)?,
        None => None,
    };
    let c = clock();
    let installed = c.with(|i, mono| {
        if i.installed {
            return None;
        }
        let mut floor = TimeFloor::new(BUILD_TIME, persisted, mono);
        // Signed times seen before the file was read (none in the daemon).
        if let Some(s) = i.floor.signed() {
            floor.observe_signed(s, mono);
        }
        *i = Inner {
            floor,
            path: cfg.floor.clone(),
            stale_after: cfg.stale_after,
            installed: true,
        };
        Some((i.floor.floor(mono), i.floor.signed()))
    });
    if let Some((floor, signed)) = installed {
        info!(target: "audit", decision = "time", reason = "floor", floor, signed = signed.unwrap_or(0), build_time = BUILD_TIME, system_clock = wall(), "time floor in force: expiry is judged at max(system clock, floor)");
        c.persist();
    }
    Ok(())
}

/// The floor alone (never the system clock): what a repository state
/// starts from.
pub fn floor() -> u64 {
    clock().floor(|f, mono| f.floor(mono))
}

/// The kit's time, unix seconds: the system clock, never below the floor.
pub fn now() -> u64 {
    clock().floor(|f, mono| f.now(wall(), mono))
}

/// [`now`] in microseconds (audit records): the system clock's, or the
/// floor's whole seconds when the clock is below it.
pub fn now_micros() -> u64 {
    let micros = wall_micros();
    let floor = floor();
    micros.max(floor.saturating_mul(1_000_000))
}

/// The newest signed time verified, if any.
pub fn signed() -> Option<u64> {
    clock().floor(|f, _| f.signed())
}

/// Seconds since the newest signed time (at the kit's time); `None`:
/// never had one.
pub fn signed_age() -> Option<u64> {
    clock().floor(|f, mono| f.signed_age(wall(), mono))
}

/// A signed time was verified (`what`: whose): the floor rises to it, and
/// is persisted before this returns when it did.
pub fn observe_signed(signed: u64, what: &'static str) {
    let c = clock();
    let rose = c.floor(|f, mono| {
        let before = f.floor(mono);
        f.observe_signed(signed, mono);
        f.floor(mono) > before
    });
    if rose {
        tracing::debug!(signed, source = what, "time floor raised by a signed time");
    }
    c.persist();
}

/// The kit's time for rustls: certificates of phones, bridges and HQ are
/// judged on it.
pub fn time_provider() -> Arc<dyn rustls::time_provider::TimeProvider> {
    Arc::new(KitTime)
}

#[derive(Debug)]
struct KitTime;

impl rustls::time_provider::TimeProvider for KitTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(now())))
    }
}

/// The kit's time as rustls wants it.
pub fn unix_time() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(now()))
}

/// Persists the floor as it advances and audits, once per episode, a
/// system clock below it and a signed time grown stale. Runs until the
/// runtime stops.
pub fn watch() {
    tokio::spawn(async {
        let c = clock();
        let (mut behind_told, mut stale_told) = (false, false);
        loop {
            // First after the start has had its say (the policy in place
            // is a signed time too).
            tokio::time::sleep(WATCH_EVERY).await;
            c.persist();
            let (floor, behind, age) = c.floor(|f, mono| {
                (
                    f.floor(mono),
                    f.behind(wall(), mono),
                    f.signed_age(wall(), mono),
                )
            });
            match (behind > BEHIND_TOLERANCE_SECS, behind_told) {
                (true, false) => {
                    warn!(target: "audit", decision = "time", reason = "clock-behind", behind_s = behind, floor, system_clock = wall(), "the system clock is below the time floor (set back, or never set): the floor is used");
                    behind_told = true;
                }
                (false, true) => {
                    info!(target: "audit", decision = "time", reason = "clock-ok", floor, system_clock = wall(), "the system clock is at or above the time floor again");
                    behind_told = false;
                }
                _ => {}
            }
            let limit = c.with(|i, _| i.stale_after.as_secs());
            crate::status::set_time_floor_age(age, limit);
            let stale = age.is_none_or(|a| a > limit);
            match (stale, stale_told) {
                (true, false) => {
                    warn!(target: "audit", decision = "time", reason = "time-stale", age_s = age.unwrap_or(u64::MAX), limit_s = limit, floor, "no fresh signed time from HQ: expiry is judged on the floor and the system clock, which the network may control");
                    stale_told = true;
                }
                (false, true) => {
                    info!(target: "audit", decision = "time", reason = "time-fresh", age_s = age.unwrap_or(0), floor, "a fresh signed time from HQ again");
                    stale_told = false;
                }
                _ => {}
            }
        }
    });
}
