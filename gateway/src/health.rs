//! The gateway's word on its own health, for PID 1's firmware agent: a
//! trial boot of a new release is committed only once the gateway says
//! that its self-test call passed and that the management channel home
//! works (`docs/firmware.md`, "Health").
//!
//! The word is a small file beside the policy bundle,
//! `firmware.health` (`/data/kit/firmware.health` on the appliance), one
//! `key=value` per line, rewritten whole (temporary file, sync, rename) at
//! every change:
//!
//! ```text
//! management=reachable
//! self_test=passed
//! ```
//!
//! - `management`: `unconfigured` (no `[management]`: nothing to reach),
//!   `waiting` (no verified poll yet), `reachable` (a poll whose timestamp
//!   verified under the pinned key: HQ answered and this release could
//!   check it). A poll refused or failing after that does not take it
//!   back: the word is about this release, not about the hotel's network.
//! - `self_test`: `running`, `passed`, or `failed` with `self_test_detail`.
//!
//! PID 1 removes the file before it starts the gateway, so that only what
//! this gateway said counts. State is process-wide (one gateway per
//! process), like the clock floor in [`crate::clock`]; before
//! [`init`] every report is dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tracing::{info, warn};

/// The file's name, beside the policy bundle.
pub const FILE: &str = "firmware.health";

/// What the gateway knows of the management channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Management {
    /// No `[management]` section: nothing to reach.
    Unconfigured,
    /// No verified poll yet.
    Waiting,
    /// A verified poll.
    Reachable,
}

impl Management {
    fn name(self) -> &'static str {
        match self {
            Management::Unconfigured => "unconfigured",
            Management::Waiting => "waiting",
            Management::Reachable => "reachable",
        }
    }
}

/// The self-test call's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfTest {
    /// Not finished.
    Running,
    /// Media went both ways through the relay, re-encrypted.
    Passed,
    /// It failed: why.
    Failed(String),
}

#[derive(Debug)]
struct State {
    path: PathBuf,
    management: Management,
    self_test: SelfTest,
}

static STATE: OnceLock<Mutex<State>> = OnceLock::new();

/// Starts the word at `path` (see [`path_beside`]) and writes it.
pub fn init(path: PathBuf, management: Management) {
    let state = State {
        path,
        management,
        self_test: SelfTest::Running,
    };
    write(&state);
    if STATE.set(Mutex::new(state)).is_err() {
        warn!("the health word was started twice; the first stands");
    }
}

/// Where the word goes for a policy bundle at `bundle`.
pub fn path_beside(bundle: &Path) -> PathBuf {
    bundle.with_file_name(FILE)
}

/// A poll verified: the management channel works.
pub fn management_reachable() {
    update(|s| s.management = Management::Reachable);
}

/// The self-test call's outcome.
pub fn self_test(result: SelfTest) {
    update(|s| s.self_test = result);
}

fn update(change: impl FnOnce(&mut State)) {
    let Some(lock) = STATE.get() else { return };
    let Ok(mut state) = lock.lock() else { return };
    let (m, t) = (state.management, state.self_test.clone());
    change(&mut state);
    if (m, &t) != (state.management, &state.self_test) {
        write(&state);
    }
}

/// The file's text.
fn render(s: &State) -> String {
    let mut text = format!("management={}\n", s.management.name());
    match &s.self_test {
        SelfTest::Running => text.push_str("self_test=running\n"),
        SelfTest::Passed => text.push_str("self_test=passed\n"),
        SelfTest::Failed(why) => {
            let why: String = why
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(200)
                .collect();
            text.push_str(&format!("self_test=failed\nself_test_detail={why}\n"));
        }
    }
    text
}

fn write(s: &State) {
    let tmp = s.path.with_extension("health.tmp");
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(render(s).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &s.path)
    })();
    match result {
        // The states in the message itself: the console colours fields.
        Ok(()) => info!(
            "health word for PID 1 written: management {}, self-test {}",
            s.management.name(),
            match s.self_test {
                SelfTest::Running => "running",
                SelfTest::Passed => "passed",
                SelfTest::Failed(_) => "failed",
            }
        ),
        Err(e) => {
            warn!(path = %s.path.display(), error = %e, "the health word for PID 1 could not be written: a trial of this release will not commit")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_is_one_key_per_line_and_a_failure_has_one_line_of_detail() {
        let mut s = State {
            path: PathBuf::from("/nonexistent"),
            management: Management::Waiting,
            self_test: SelfTest::Running,
        };
        assert_eq!(render(&s), "management=waiting\nself_test=running\n");
        s.management = Management::Reachable;
        s.self_test = SelfTest::Failed("no packet\nback\u{0}".into());
        assert_eq!(
            render(&s),
            "management=reachable\nself_test=failed\nself_test_detail=no packet back \n"
        );
    }

    #[test]
    fn written_whole_beside_the_bundle() {
        let dir = std::env::temp_dir().join(format!("dialgate-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = State {
            path: path_beside(&dir.join("policy.bundle")),
            management: Management::Unconfigured,
            self_test: SelfTest::Passed,
        };
        write(&s);
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE)).unwrap(),
            "management=unconfigured\nself_test=passed\n"
        );
        assert!(!dir.join("firmware.health.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
