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
//! - Trial boot: healthy = READY within [`READY_WITHIN`], the gateway
//!   serving without a restart for [`HEALTHY_FOR`] after it, and its
//!   health word ([`HEALTH`]) saying the self-test call passed and the
//!   management channel was reached (or is not configured), all within
//!   [`HEALTHY_WITHIN`] ([`judge`]); then one environment save commits
//!   the slot and raises the floor. Otherwise the
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
/// Where the agent leaves a report of each decision for the gateway to
/// turn into an audit record (`gateway/src/daemon/reports.rs`).
pub const REPORTS: &str = "/data/kit/firmware.events";
/// The pinned firmware key, in the verified root.
pub const PUBLIC_KEY: &str = "/etc/firmware.pub.pem";
/// The kit's firmware settings, in the verified root.
pub const CONF: &str = "/etc/firmware.conf";
/// A trial must be READY this soon after PID 1's stage 2 starts.
pub const READY_WITHIN: Duration = Duration::from_secs(90);
/// ... and then serve without a gateway restart this long.
pub const HEALTHY_FOR: Duration = Duration::from_secs(10);
/// The gateway's health word (`gateway/src/health.rs`): its self-test
/// call and the management channel. PID 1 removes it before it starts the
/// gateway, so that only this boot's gateway speaks.
pub const HEALTH: &str = "/data/kit/firmware.health";
/// A trial must be healthy (READY, the self-test call passed, the
/// management channel reached) this soon after PID 1's stage 2 starts.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(180);
/// The most octets of the health word read.
const HEALTH_MAX: u64 = 1024;

/// The gateway's health word, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Word {
    /// `unconfigured`, `waiting` or `reachable`.
    pub management: String,
    /// `running`, `passed` or `failed`.
    pub self_test: String,
    /// Why the self-test failed.
    pub detail: String,
}

/// Parses the health word strictly: known keys once each, known values,
/// both keys present.
pub fn parse_word(text: &str) -> Result<Word, String> {
    let mut w = Word::default();
    for line in text.lines() {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("health word: line {line:?} is not key=value"))?;
        let slot = match k {
            "management" if ["unconfigured", "waiting", "reachable"].contains(&v) => {
                &mut w.management
            }
            "self_test" if ["running", "passed", "failed"].contains(&v) => &mut w.self_test,
            "self_test_detail" => &mut w.detail,
            _ => return Err(format!("health word: unexpected line {line:?}")),
        };
        if !slot.is_empty() {
            return Err(format!("health word: {k} twice"));
        }
        *slot = v.to_string();
    }
    if w.management.is_empty() || w.self_test.is_empty() {
        return Err("health word: needs management= and self_test=".into());
    }
    Ok(w)
}

/// What a trial boot's state says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Not yet decided.
    Wait,
    /// Healthy: commit.
    Commit(Health),
    /// Failed: abandon, why.
    Abandon(String),
}

/// The trial's decision at `now` (started `since`), from what PID 1 saw
/// and the gateway's word (`Err`: absent or unreadable).
pub fn judge(
    now: Instant,
    since: Instant,
    seen: Observed,
    word: &Result<Word, String>,
) -> Judgement {
    let elapsed = now.duration_since(since);
    if seen.restarts > 0 {
        return Judgement::Abandon(format!("the gateway restarted {} time(s)", seen.restarts));
    }
    let Some(ready) = seen.ready_since else {
        return if elapsed >= READY_WITHIN {
            Judgement::Abandon(format!("not READY within {} s", READY_WITHIN.as_secs()))
        } else {
            Judgement::Wait
        };
    };
    if let Ok(w) = word {
        if w.self_test == "failed" {
            return Judgement::Abandon(format!("self-test call failed: {}", w.detail));
        }
    }
    let served = now.duration_since(ready) >= HEALTHY_FOR;
    let (self_test, management) = match word {
        Ok(w) => (
            w.self_test == "passed",
            w.management == "reachable" || w.management == "unconfigured",
        ),
        Err(_) => (false, false),
    };
    if served && self_test && management {
        return Judgement::Commit(Health {
            ready: true,
            self_test,
            management_reachable: management,
        });
    }
    if elapsed >= HEALTHY_WITHIN {
        let why = match word {
            Err(e) => format!("no word from the gateway ({e})"),
            Ok(w) => format!("self-test {}, management {}", w.self_test, w.management),
        };
        return Judgement::Abandon(format!(
            "not healthy within {} s: {why}",
            HEALTHY_WITHIN.as_secs()
        ));
    }
    Judgement::Wait
}

/// Reads the gateway's health word at `path`.
pub fn read_word(path: &Path) -> Result<Word, String> {
    use std::io::Read;
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(HEALTH_MAX).read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse_word(&text)
}

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
                    "slot {booted} version {version} ON TRIAL: committed after READY, {} s of service, the self-test call and the management channel (within {} s), otherwise back to slot {}",
                    HEALTHY_FOR.as_secs(),
                    HEALTHY_WITHIN.as_secs(),
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
                // The gateway records it once it runs; a report that
                // cannot be written does not stop the boot.
                let _ = report(
                    Path::new(REPORTS),
                    &[
                        ("event", "fell-back".into()),
                        ("version", version.to_string()),
                        ("slot", booted.to_string()),
                        ("failed_slot", failed.to_string()),
                    ],
                );
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
                    report_or_say(
                        &[
                            ("event", "armed".into()),
                            ("version", version.to_string()),
                            ("slot", slot.to_string()),
                            ("from_version", self.version.to_string()),
                        ],
                        say,
                    );
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
                    report_or_say(
                        &[
                            ("event", "refused".into()),
                            ("from_version", self.version.to_string()),
                            ("reason", why.clone()),
                        ],
                        say,
                    );
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
                let (health, why) = match judge(now, since, seen, &read_word(Path::new(HEALTH))) {
                    Judgement::Wait => return Action::Nothing,
                    Judgement::Commit(h) => (h, None),
                    // Unhealthy: `commit` saves the abandoned environment.
                    Judgement::Abandon(why) => (
                        Health {
                            ready: seen.ready_since.is_some(),
                            self_test: false,
                            management_reachable: false,
                        },
                        Some(why),
                    ),
                };
                self.state = State::Done;
                match (self.commit(health), why) {
                    (Ok(floor), _) => {
                        say(format!(
                            "firmware: slot {} version {} COMMITTED (floor {floor})",
                            self.booted, self.version
                        ));
                        report_or_say(
                            &[
                                ("event", "committed".into()),
                                ("version", self.version.to_string()),
                                ("slot", self.booted.to_string()),
                                ("floor", floor.to_string()),
                            ],
                            say,
                        );
                        Action::Nothing
                    }
                    (Err(e), why) => {
                        let why = why.unwrap_or(e);
                        report_or_say(
                            &[
                                ("event", "abandoned".into()),
                                ("version", self.version.to_string()),
                                ("slot", self.booted.to_string()),
                                ("reason", why.clone()),
                            ],
                            say,
                        );
                        Action::Reboot(format!("firmware: trial abandoned: {why}"))
                    }
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

/// Leaves one report in `dir`: `key=value` lines (`event=` first), in a
/// file written whole and synced before it is renamed into place, so the
/// gateway never reads half of one. Best effort: a report that cannot be
/// written is said on the console and the decision stands.
pub fn report(dir: &Path, fields: &[(&str, String)]) -> Result<PathBuf, String> {
    use std::io::Write;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let event = fields.first().map(|(_, v)| v.as_str()).unwrap_or("event");
    let name = format!("{stamp:032}-{event}.event");
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(&name);
    let mut text = String::new();
    for (k, v) in fields {
        // One line each: the values are ours, but a reason may quote a
        // file's content.
        let v: String = v
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        text.push_str(&format!("{k}={v}\n"));
    }
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write()
        .map(|()| path)
        .map_err(|e| format!("firmware report in {}: {e}", dir.display()))
}

fn report_or_say(fields: &[(&str, String)], say: &mut dyn FnMut(String)) {
    if let Err(e) = report(Path::new(REPORTS), fields) {
        say(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_whole_one_line_per_field_and_ordered() {
        let dir = std::env::temp_dir().join(format!("dialgate-reports-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = report(
            &dir,
            &[
                ("event", "refused".into()),
                ("reason", "bad\nline\u{7}".into()),
            ],
        )
        .unwrap();
        let second = report(&dir, &[("event", "committed".into())]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&first).unwrap(),
            "event=refused\nreason=bad line \n"
        );
        assert!(first.file_name() < second.file_name(), "ordered by time");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        assert!(names.iter().all(|n| n.ends_with(".event")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_health_word_is_strict() {
        let w = parse_word("management=reachable\nself_test=passed\n").unwrap();
        assert_eq!(
            (w.management.as_str(), w.self_test.as_str()),
            ("reachable", "passed")
        );
        let w = parse_word("management=waiting\nself_test=failed\nself_test_detail=x y\n").unwrap();
        assert_eq!(w.detail, "x y");
        for bad in [
            "",
            "management=reachable\n",
            "self_test=passed\n",
            "management=reachable\nself_test=passed\nself_test=passed\n",
            "management=yes\nself_test=passed\n",
            "management=reachable\nself_test=ok\n",
            "management=reachable\nself_test=passed\nextra=1\n",
            "management=reachable\nself_test passed\n",
        ] {
            assert!(parse_word(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_trial_commits_only_when_ready_served_self_tested_and_reaching_home() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let word = |m: &str, t: &str| {
            Ok(Word {
                management: m.into(),
                self_test: t.into(),
                detail: "no packet".into(),
            })
        };
        let ready = |at: u64, restarts: u32| Observed {
            ready_since: Some(s(at)),
            restarts,
        };
        let good = word("reachable", "passed");
        // Everything passed, served long enough: commit.
        assert!(matches!(
            judge(s(20), t0, ready(5, 0), &good),
            Judgement::Commit(h) if h.is_healthy()
        ));
        assert!(matches!(
            judge(s(20), t0, ready(5, 0), &word("unconfigured", "passed")),
            Judgement::Commit(_)
        ));
        // Not served long enough yet.
        assert_eq!(judge(s(10), t0, ready(5, 0), &good), Judgement::Wait);
        // Waiting for home or the self-test, or no word yet: wait...
        for w in [
            word("waiting", "passed"),
            word("reachable", "running"),
            Err("absent".to_string()),
        ] {
            assert_eq!(judge(s(60), t0, ready(5, 0), &w), Judgement::Wait, "{w:?}");
            // ... but not past the bound.
            let Judgement::Abandon(why) = judge(s(180), t0, ready(5, 0), &w) else {
                panic!("{w:?} not abandoned at the bound");
            };
            assert!(why.contains("not healthy within 180 s"), "{why}");
        }
        // A failed self-test, a restart or no READY: abandon.
        let Judgement::Abandon(why) = judge(s(20), t0, ready(5, 0), &word("reachable", "failed"))
        else {
            panic!()
        };
        assert!(why.contains("self-test call failed: no packet"), "{why}");
        assert!(matches!(
            judge(s(20), t0, ready(5, 1), &good),
            Judgement::Abandon(_)
        ));
        let none = Observed {
            ready_since: None,
            restarts: 0,
        };
        assert_eq!(judge(s(89), t0, none, &good), Judgement::Wait);
        assert!(matches!(
            judge(s(90), t0, none, &good),
            Judgement::Abandon(_)
        ));
    }

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
