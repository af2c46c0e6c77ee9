//! The kit's time floor against a system clock the network controls: the
//! demo kit runs with its clock set back a day, then forward two days
//! (Debian's libfaketime, `LD_PRELOAD`; the monotonic clock is left alone,
//! as NTP leaves it), polling its repository from a real nginx.
//!
//! - Set back: the persisted floor holds. Phones' certificates are judged
//!   at the floor (a call goes through; on the system clock they would
//!   not be valid yet), the clock is audited as behind, and a timestamp
//!   the network keeps replaying is refused once the floor passes its
//!   expiry (on the system clock it would stay valid for another day).
//! - Set forward: expiry comes early (fail closed): the repository's
//!   timestamp is refused as expired, the stale signed time is audited,
//!   calls go on under the policy in force, and the floor is never raised
//!   from the system clock; back on a true clock the repository applies.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::hq::{count, init_managed_kit, log_text, publish_with, Nginx};
use common::{baresip, start_demo, wait_for, Procs, DIALGATE};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Debian's libfaketime (package `libfaketime`), the thread-safe one.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.expect("libfaketime installed (apt-get install faketime)")
}

/// `dialgate demo --dir KIT` with the system clock moved by `offset`
/// (libfaketime syntax, e.g. `-1d`); the monotonic clock is untouched.
fn start_demo_with_clock(procs: &mut Procs, kit: &Path, log: &Path, offset: &str) {
    procs.0.push(
        Command::new(&*DIALGATE)
            .args(["demo", "--dir"])
            .arg(kit)
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", offset)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("dialgate runs"),
    );
    assert!(
        wait_for(log, "listening for phones", Duration::from_secs(30)),
        "gateway up: {}",
        log_text(log)
    );
}

/// The kit's persisted floor: (floor, newest signed time).
fn floor_file(kit: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(kit.join("state/time.floor")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    Some((field("floor ")?, field("signed ")?))
}

fn a_call_goes_through(kit: &Path, log: &Path) {
    let ups = count(log, "call up");
    let out = baresip(kit, "alice", 3);
    assert!(
        out.status.success() && count(log, "call up") > ups,
        "alice's call:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        log_text(log)
    );
}

#[test]
fn a_clock_set_back_neither_revives_a_frozen_timestamp_nor_refuses_phones() {
    const PORT: u16 = 20450;
    const VALID: u64 = 40;
    let (work, kit, log) = common::work_dir("e2e-time-back");
    init_managed_kit(&kit, PORT);
    let mut nginx = Nginx::new(&work, &kit, PORT);
    nginx.start();
    // A timestamp that expires soon; the network will keep replaying it.
    let published_at = unix_now();
    publish_with(&kit, &["--timestamp-valid", &VALID.to_string()]);
    let expires = published_at + VALID;

    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    let learned = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        floor_file(&kit).is_some_and(|(_, signed)| signed >= published_at)
    });
    assert!(
        learned,
        "the floor learns the timestamp's signed time: {:?}\n{}",
        floor_file(&kit),
        log_text(&log)
    );
    drop(procs);

    // A day back, as a hotel's NTP may set it.
    let log2 = work.join("gateway-back.log");
    let mut procs = Procs(Vec::new());
    start_demo_with_clock(&mut procs, &kit, &log2, "-1d");
    assert!(
        wait_for(&log2, "reason=\"clock-behind\"", Duration::from_secs(10)),
        "the clock below the floor is audited:\n{}",
        log_text(&log2)
    );
    // Phones' certificates (issued minutes ago) are valid at the floor;
    // on the system clock they would not be valid for another day.
    a_call_goes_through(&kit, &log2);
    assert_eq!(
        count(&log2, "reason=\"expired\""),
        0,
        "not expired yet:\n{}",
        log_text(&log2)
    );
    // The same timestamp, served on: refused once the floor passes its
    // expiry, a day before the system clock would get there.
    let within = Duration::from_secs(expires.saturating_sub(unix_now()) + 15);
    assert!(
        wait_for(&log2, "decision=\"repository\" reason=\"expired\"", within),
        "the frozen timestamp refused:\n{}",
        log_text(&log2)
    );
    // Calls go on under the policy in force.
    a_call_goes_through(&kit, &log2);
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_clock_set_forward_fails_closed_says_so_and_never_moves_the_floor() {
    const PORT: u16 = 20451;
    let (work, kit, log) = common::work_dir("e2e-time-forward");
    init_managed_kit(&kit, PORT);
    let mut nginx = Nginx::new(&work, &kit, PORT);
    nginx.start();

    let mut procs = Procs(Vec::new());
    start_demo_with_clock(&mut procs, &kit, &log, "+2d");
    // The repository's timestamp (valid 15 minutes) is expired two days
    // ahead: refused, its policy (version 2) never applied.
    assert!(
        wait_for(
            &log,
            "decision=\"repository\" reason=\"expired\"",
            Duration::from_secs(10)
        ),
        "the timestamp is expired on a clock two days ahead:\n{}",
        log_text(&log)
    );
    assert!(
        wait_for(&log, "reason=\"time-stale\"", Duration::from_secs(10)),
        "no fresh signed time: audited:\n{}",
        log_text(&log)
    );
    // The demo's own policy (a year) is still in force: calls go on.
    a_call_goes_through(&kit, &log);
    assert_eq!(count(&log, "decision=\"applied\" version=2"), 0);
    // The floor is the signed time's, never the system clock's.
    let (floor, _) = floor_file(&kit).expect("the floor is persisted");
    assert!(
        floor <= unix_now() + 5,
        "floor {floor} raised toward the clock two days ahead"
    );
    drop(procs);

    // Back on a true clock: the repository's policy applies.
    let log2 = work.join("gateway-true.log");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log2);
    assert!(
        wait_for(
            &log2,
            "policy applied decision=\"applied\" version=2",
            Duration::from_secs(10)
        ),
        "applied on a true clock:\n{}",
        log_text(&log2)
    );
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}
