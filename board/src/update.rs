//! The firmware agent PID 1 runs beside the gateway (stage 2): it installs
//! a bundle placed on the data partition into the inactive slot and arms
//! it, and on a trial boot commits the new slot once it proved healthy or
//! abandons it. The decisions are `dialgate-firmware`'s; this module owns
//! the files, the thread and the clock readings PID 1 hands it.
//!
//! - Committed boot, `/data/kit/firmware.bundle` present: installed on a
//!   background thread (calls go on; the bundle is streamed through a
//!   1 MiB buffer and read back), renamed `firmware.bundle.done` once
//!   armed (then PID 1 reboots into the trial) or `firmware.bundle.refused`
//!   with the reason on the console.
//! - Trial boot: healthy = READY within [`READY_WITHIN`] and the gateway
//!   serving without a restart for [`HEALTHY_FOR`] after it; then one
//!   environment save commits the slot and raises the floor. Otherwise the
//!   abandoned environment is saved and PID 1 reboots into the old slot;
//!   a crash or reset during the trial does the same by itself (the try
//!   was spent by the bootloader).
//!
//! The kit's model, slot size and disk come from `/etc/firmware.conf` of
//! the verified root, the pinned key from `/etc/firmware.pub.pem`, both
//! written by `image/build`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use dialgate_firmware::update::abandoned;
use dialgate_firmware::{
    appliance_layout, boot_role, commit, install, BootRole, FileDevice, Health, Kit, Progress, Slot,
};
use dialgate_signed::PublicKey;

/// Where a bundle to install is placed.
pub const BUNDLE: &str = "/data/kit/firmware.bundle";
/// The pinned firmware key, in the verified root.
pub const PUBLIC_KEY: &str = "/etc/firmware.pub.pem";
/// The kit's firmware settings, in the verified root.
pub const CONF: &str = "/etc/firmware.conf";
/// A trial must be READY this soon after PID 1's stage 2 starts.
pub const READY_WITHIN: Duration = Duration::from_secs(90);
/// ... and then serve without a gateway restart this long.
pub const HEALTHY_FOR: Duration = Duration::from_secs(10);

/// What PID 1 is to do after a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing now.
    Nothing,
    /// Reboot (into the armed slot, or back to the committed one); the
    /// reason for the console.
    Reboot(String),
}

/// What PID 1 tells the agent each tick.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    /// When the gateway first served on this boot.
    pub ready_since: Option<Instant>,
    /// Gateway restarts since boot.
    pub restarts: u32,
}

#[derive(Debug)]
enum State {
    /// Committed boot, nothing to install (or already done).
    Idle,
    /// Installing on a thread.
    Installing(Receiver<Result<Progress, String>>),
    /// On trial since `since`.
    Trial { since: Instant },
    /// Nothing more to do on this boot.
    Done,
}

/// The agent.
#[derive(Debug)]
pub struct Agent {
    kit: Kit,
    disk: PathBuf,
    booted: Slot,
    version: u64,
    state: State,
}

/// Reads `/etc/firmware.conf`: `model=`, `slot_mib=`, `disk=` lines.
pub fn read_conf(text: &str) -> Result<(String, u64, String), String> {
    let (mut model, mut slot_mib, mut disk) = (None, None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some(("model", v)) => model = Some(v.to_string()),
            Some(("slot_mib", v)) => {
                slot_mib = Some(v.parse::<u64>().map_err(|_| format!("slot_mib {v:?}"))?)
            }
            Some(("disk", v)) if v.starts_with("/dev/") => disk = Some(v.to_string()),
            _ => return Err(format!("{CONF}: unexpected line {line:?}")),
        }
    }
    match (model, slot_mib, disk) {
        (Some(m), Some(s), Some(d)) if s > 0 && s < 4096 => Ok((m, s, d)),
        _ => Err(format!(
            "{CONF}: needs model=, slot_mib= (1-4095) and disk="
        )),
    }
}

fn slot_of(name: char) -> Option<Slot> {
    match name {
        'a' => Some(Slot::A),
        'b' => Some(Slot::B),
        _ => None,
    }
}

impl Agent {
    /// Sets the agent up for a boot of slot `booted` (`a`/`b`) at
    /// `version`: reads the pinned key, the settings and the boot
    /// environment, and says which role this boot has. `now` starts the
    /// trial's clock.
    pub fn start(booted: char, version: u64, now: Instant) -> Result<(Agent, String), String> {
        let booted = slot_of(booted).ok_or("booted slot is neither a nor b")?;
        let conf = std::fs::read_to_string(CONF).map_err(|e| format!("{CONF}: {e}"))?;
        let (model, slot_mib, disk) = read_conf(&conf)?;
        let pem = std::fs::read(PUBLIC_KEY).map_err(|e| format!("{PUBLIC_KEY}: {e}"))?;
        let key = PublicKey::from_pem(&pem).map_err(|e| format!("{PUBLIC_KEY}: {e}"))?;
        let kit = Kit {
            key,
            model,
            layout: appliance_layout(slot_mib << 20),
            slot_devices: [format!("{disk}1"), format!("{disk}2")],
        };
        let mut dev = FileDevice::open(Path::new(&disk)).map_err(|e| format!("{disk}: {e}"))?;
        let env = kit
            .layout
            .env
            .read(&mut dev)
            .map_err(|e| format!("boot environment: {e}"))?
            .env;
        let (state, said) = match boot_role(&env, booted) {
            BootRole::Committed => (
                State::Idle,
                format!(
                    "slot {booted} version {version} committed (floor {})",
                    env.floor
                ),
            ),
            BootRole::Trial => (
                State::Trial { since: now },
                format!(
                    "slot {booted} version {version} ON TRIAL: committed after READY and {} s of service, otherwise back to slot {}",
                    HEALTHY_FOR.as_secs(),
                    env.committed
                ),
            ),
            BootRole::FellBack { failed } => {
                // The bootloader passed over a trial that never committed:
                // put the committed slot first again (the next update
                // starts from a clean environment).
                let stored = kit
                    .layout
                    .env
                    .read(&mut dev)
                    .map_err(|e| format!("boot environment: {e}"))?;
                kit.layout
                    .env
                    .write(&mut dev, &stored, &abandoned(&env))
                    .map_err(|e| format!("boot environment: {e}"))?;
                (
                    State::Idle,
                    format!(
                        "slot {booted} version {version} committed (floor {}); FELL BACK from the failed trial of slot {failed}",
                        env.floor
                    ),
                )
            }
            other => (
                State::Done,
                format!("slot {booted} version {version}: {other:?}; no update on this boot"),
            ),
        };
        let disk = PathBuf::from(disk);
        Ok((
            Agent {
                kit,
                disk,
                booted,
                version,
                state,
            },
            said,
        ))
    }

    /// One step; `say` gets console lines.
    pub fn tick(&mut self, now: Instant, seen: Observed, say: &mut dyn FnMut(String)) -> Action {
        match &mut self.state {
            State::Idle => {
                if Path::new(BUNDLE).exists() && seen.ready_since.is_some() {
                    say(format!(
                        "firmware: installing {BUNDLE} into the inactive slot"
                    ));
                    self.state = State::Installing(self.spawn_install());
                }
                Action::Nothing
            }
            State::Installing(rx) => match rx.try_recv() {
                Err(TryRecvError::Empty) => Action::Nothing,
                Ok(Ok(Progress::Armed { slot, version })) => {
                    self.state = State::Done;
                    let _ = std::fs::rename(BUNDLE, format!("{BUNDLE}.done"));
                    Action::Reboot(format!(
                        "firmware: version {version} written to slot {slot}, read back and armed for one trial boot"
                    ))
                }
                Ok(Ok(other)) => {
                    self.state = State::Done;
                    say(format!("firmware: install stopped at {other:?}"));
                    Action::Nothing
                }
                Ok(Err(why)) => {
                    self.state = State::Done;
                    let _ = std::fs::rename(BUNDLE, format!("{BUNDLE}.refused"));
                    say(format!("firmware: bundle REFUSED: {why}"));
                    Action::Nothing
                }
                Err(TryRecvError::Disconnected) => {
                    self.state = State::Done;
                    say("firmware: the install thread died".into());
                    Action::Nothing
                }
            },
            State::Trial { since } => {
                let since = *since;
                let healthy = seen
                    .ready_since
                    .is_some_and(|r| seen.restarts == 0 && now.duration_since(r) >= HEALTHY_FOR);
                let failed = seen.restarts > 0
                    || (seen.ready_since.is_none() && now.duration_since(since) >= READY_WITHIN);
                if !healthy && !failed {
                    return Action::Nothing;
                }
                self.state = State::Done;
                let health = Health {
                    ready: seen.ready_since.is_some(),
                    self_test: seen.restarts == 0,
                    management_reachable: true,
                };
                match self.commit(health) {
                    Ok(floor) => {
                        say(format!(
                            "firmware: slot {} version {} COMMITTED (floor {floor})",
                            self.booted, self.version
                        ));
                        Action::Nothing
                    }
                    Err(why) => Action::Reboot(format!("firmware: trial abandoned: {why}")),
                }
            }
            State::Done => Action::Nothing,
        }
    }

    fn commit(&self, health: Health) -> Result<u64, String> {
        let mut dev = FileDevice::open(&self.disk).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 20];
        commit(&self.kit, &mut dev, self.booted, health, &mut buf)
            .map(|c| c.floor)
            .map_err(|e| e.to_string())
    }

    fn spawn_install(&self) -> Receiver<Result<Progress, String>> {
        let (tx, rx) = mpsc::channel();
        let (kit, disk, booted, version) = (
            self.kit.clone(),
            self.disk.clone(),
            self.booted,
            self.version,
        );
        std::thread::spawn(move || {
            let run = || -> Result<Progress, String> {
                let mut dev =
                    FileDevice::open(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
                let file = File::open(BUNDLE).map_err(|e| format!("{BUNDLE}: {e}"))?;
                let mut reader = BufReader::with_capacity(1 << 16, file);
                let mut buf = vec![0u8; 1 << 20];
                install(&kit, &mut dev, booted, version, &mut reader, &mut buf)
                    .map_err(|e| e.to_string())
            };
            let _ = tx.send(run());
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_are_strict() {
        let ok = "model=dialgate-qemu-virt\nslot_mib=48\ndisk=/dev/vda\n";
        assert_eq!(
            read_conf(ok).unwrap(),
            ("dialgate-qemu-virt".into(), 48, "/dev/vda".into())
        );
        for bad in [
            ok.replace("slot_mib=48", "slot_mib=0"),
            ok.replace("slot_mib=48", "slot_mib=x"),
            ok.replace("disk=/dev/vda", "disk=vda"),
            ok.replace("model=dialgate-qemu-virt\n", ""),
            format!("{ok}extra=1\n"),
        ] {
            assert!(read_conf(&bad).is_err(), "{bad}");
        }
    }
}
