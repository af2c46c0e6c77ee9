//! The A/B decisions, as pure functions of the boot environment: what the
//! bootloader boots ([`choose_slot`]), what the running system is
//! ([`boot_role`]), and the environments that arm, commit and abandon a
//! trial. The storage-driving steps built on them are in
//! [`crate::install`].
//!
//! # The slot state machine (for the slot being updated, "new")
//!
//! | state       | env: order, tries(new), committed | next                          |
//! |-------------|-----------------------------------|-------------------------------|
//! | idle        | old first, 0, old                 | install begins                |
//! | writing     | old first, 0, old                 | images written, read back     |
//! | armed       | new first, 1, old                 | reboot: bootloader spends try |
//! | trial       | new first, 0, old (running new)   | healthy: commit; else abandon |
//! | committed   | new first, 0, new; floor = new    | (new is now "old")            |
//! | fell back   | new first, 0, old (running old)   | cleaned up to idle            |
//!
//! A reset at any moment of a trial leaves "new first, 0 tries", which
//! the bootloader skips: the old committed slot boots by itself. The
//! floor rises only in the step to committed.

use crate::bootenv::{BootEnv, Slot};
use crate::error::UpdateError;
use crate::slot::VerifiedSlot;

/// What U-Boot's boot script does with the environment, as a pure
/// function: the slot it boots and the environment it saves first (equal
/// to the input when nothing changes, so nothing is written).
///
/// ```text
/// for s in ${BOOT_ORDER}:
///     if s == ${dialgate_committed}: boot s            # no try spent
///     if BOOT_${s}_LEFT > 0: BOOT_${s}_LEFT -= 1; saveenv; boot s
/// boot ${dialgate_committed}
/// ```
///
/// A committed slot spends no try, so power cuts during a committed
/// boot never revert it. (RAUC's documented script decrements on every
/// boot and relies on user space to reset the count: three quick power
/// cuts before `rauc status mark-good` fall back from a good slot.)
pub fn choose_slot(env: &BootEnv) -> (Slot, BootEnv) {
    for slot in env.order {
        if slot == env.committed {
            return (slot, env.clone());
        }
        if env.tries(slot) > 0 {
            let mut next = env.clone();
            next.tries[slot.index()] -= 1;
            return (slot, next);
        }
    }
    (env.committed, env.clone())
}

/// What the system that just booted `booted` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootRole {
    /// The committed slot, as intended.
    Committed,
    /// A slot on trial: prove health, then commit.
    Trial,
    /// The committed slot, after the bootloader passed over `failed` (its
    /// trial was spent without a commit).
    FellBack {
        /// The slot whose trial failed.
        failed: Slot,
    },
}

/// Classifies a boot of `booted` under `env` (the environment as the
/// bootloader left it).
pub fn boot_role(env: &BootEnv, booted: Slot) -> BootRole {
    if booted != env.committed {
        BootRole::Trial
    } else if env.order[0] != booted {
        BootRole::FellBack {
            failed: env.order[0],
        }
    } else {
        BootRole::Committed
    }
}

/// The health a trial boot must prove before it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// The gateway signalled READY (listening, policy loaded).
    pub ready: bool,
    /// The self-test call passed.
    pub self_test: bool,
    /// The management channel to home was reachable (so a bad release
    /// cannot cut the kit off from the fix).
    pub management_reachable: bool,
}

impl Health {
    /// All three passed.
    pub fn is_healthy(&self) -> bool {
        self.ready && self.self_test && self.management_reachable
    }
}

/// The environment before a slot is written: it gets no tries and the
/// committed slot goes first, so nothing can boot it half-written.
pub fn disarmed(env: &BootEnv, target: Slot) -> BootEnv {
    let mut next = env.clone();
    next.tries[target.index()] = 0;
    next.order = [env.committed, env.committed.other()];
    next
}

/// The environment that boots `staged` once, on trial (tries = 1, first
/// in order). The committed slot and the floor do not change.
pub fn armed(env: &BootEnv, staged: &VerifiedSlot) -> BootEnv {
    let slot = staged.slot();
    let mut next = env.clone();
    next.tries[slot.index()] = 1;
    next.order = [slot, slot.other()];
    next
}

/// The environment after a healthy trial of `trial`: it becomes the
/// committed slot, spends no tries from now on, and the floor rises to
/// its version. Refused unless `env` shows `trial` on trial and `health`
/// passed.
pub fn committed(
    env: &BootEnv,
    trial: &VerifiedSlot,
    health: Health,
) -> Result<BootEnv, UpdateError> {
    let slot = trial.slot();
    if boot_role(env, slot) != BootRole::Trial {
        return Err(UpdateError::NotOnTrial(slot));
    }
    if !health.is_healthy() {
        return Err(UpdateError::Unhealthy {
            slot,
            ready: health.ready,
            self_test: health.self_test,
            management: health.management_reachable,
        });
    }
    let mut next = env.clone();
    next.committed = slot;
    next.order = [slot, slot.other()];
    next.tries = [0, 0];
    next.floor = env.floor.max(trial.version());
    Ok(next)
}

/// The environment after a trial is given up (unhealthy, or seen to have
/// fallen back): the committed slot first, no tries anywhere.
pub fn abandoned(env: &BootEnv) -> BootEnv {
    let mut next = env.clone();
    next.order = [env.committed, env.committed.other()];
    next.tries = [0, 0];
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootloader_spends_one_try_then_falls_back() {
        let idle = BootEnv::provisioned(Slot::A, 1);
        assert_eq!(choose_slot(&idle), (Slot::A, idle.clone()));
        assert_eq!(boot_role(&idle, Slot::A), BootRole::Committed);

        let mut armed = idle.clone();
        armed.order = [Slot::B, Slot::A];
        armed.tries = [0, 1];
        let (slot, trial) = choose_slot(&armed);
        assert_eq!(slot, Slot::B);
        assert_eq!(trial.tries, [0, 0]);
        assert_eq!(boot_role(&trial, Slot::B), BootRole::Trial);
        // A reset during the trial: the next boot is the old slot.
        let (slot, again) = choose_slot(&trial);
        assert_eq!(slot, Slot::A);
        assert_eq!(again, trial);
        assert_eq!(
            boot_role(&again, Slot::A),
            BootRole::FellBack { failed: Slot::B }
        );
        assert_eq!(abandoned(&again), idle);
        assert_eq!(disarmed(&armed, Slot::B), idle);
    }

    #[test]
    fn a_committed_slot_never_spends_tries() {
        let mut env = BootEnv::provisioned(Slot::B, 5);
        // Even with the other slot first and tries on it, a committed
        // boot writes nothing and counts nothing.
        for _ in 0..100 {
            let (slot, next) = choose_slot(&env);
            assert_eq!(slot, Slot::B);
            assert_eq!(next, env);
            env = next;
        }
        env.tries = [3, 0];
        env.order = [Slot::A, Slot::B];
        for left in (0..3).rev() {
            let (slot, next) = choose_slot(&env);
            assert_eq!((slot, next.tries[0]), (Slot::A, left));
            env = next;
        }
        assert_eq!(choose_slot(&env).0, Slot::B);
    }
}
