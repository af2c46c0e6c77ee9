//! HQ's signed commands reach a demo kit through its repository (real
//! nginx, `dialgate demo --hq-url`, 1 s poll): `drop-calls` ends alice's
//! live baresip call; a replayed, out-of-order, foreign, expired or
//! wrongly signed command is refused with its audit record while calls go
//! on; `reboot` stops the gateway with its exit status and is not done
//! again after the restart; `wipe` destroys the kit's keys and
//! configuration and exits with the wipe status.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::hq::{count, log_text, managed_demo, publish, wait_more};
use common::{baresip, ctl, start_demo, wait_for, Procs};

const EXIT_WIPE: i32 = 70;
const EXIT_REBOOT: i32 = 71;

/// `dialgatectl command ACTION --dir KIT/hq --kit demo-kit EXTRA...`, then
/// publish.
fn command(kit: &Path, action: &str, extra: &[&str]) -> String {
    let hq = kit.join("hq");
    let mut args = vec![
        "command",
        action,
        "--dir",
        hq.to_str().unwrap(),
        "--kit",
        "demo-kit",
    ];
    args.extend_from_slice(extra);
    let said = ctl(&args);
    publish(kit);
    said
}

/// The last command the kit recorded as done.
fn done(kit: &Path) -> u64 {
    std::fs::read_to_string(kit.join("state/command.state"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("version "))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits for the gateway (the only process in `procs`) to exit.
fn exit_status(procs: &mut Procs, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = procs.0[0].try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn refused(log: &Path, reason: &str) {
    let needle = format!("decision=\"command\" reason=\"{reason}\"");
    assert!(
        wait_more(log, &needle, 0, Duration::from_secs(10)),
        "command refused as {reason}:\n{}",
        log_text(log)
    );
}

#[test]
fn drop_calls_ends_a_live_call_and_bad_commands_are_refused_while_calls_go_on() {
    const PORT: u16 = 20460;
    let (work, kit, log, nginx, mut procs) = managed_demo("e2e-commands", PORT);
    let phone_log = work.join("alice.log");
    let phone = Procs(vec![Command::new("baresip")
        .args(["-f", &kit.join("baresip/alice").display().to_string()])
        .args(["-e", "/dial sip:echo@127.0.0.1:5061", "-t", "20"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&phone_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip runs")]);
    assert!(wait_for(&log, "call up", Duration::from_secs(15)));
    let said = command(&kit, "drop-calls", &[]);
    assert!(said.contains("command 1 (drop-calls)"), "{said}");
    assert!(
        wait_for(
            &log,
            "reason=\"calls dropped by HQ's command\"",
            Duration::from_secs(5)
        ),
        "the live call ended by the command:\n{}",
        log_text(&log)
    );
    // baresip's SIP stack (libre) closes a session on a received BYE with
    // ECONNRESET ("session closed: Connection reset by peer"); with the
    // call's audio well under way it also says "terminated".
    let phone_ended = || {
        let t = log_text(&phone_log);
        t.contains("terminated") || t.contains("session closed")
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !phone_ended() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        phone_ended(),
        "{}\n{}\ngateway: {:?}",
        log_text(&phone_log),
        log_text(&log),
        procs.0[0].try_wait()
    );
    drop(phone);
    assert!(log_text(&log).contains("decision=\"command\" reason=\"accepted\" seq=1"));
    assert_eq!(done(&kit), 1);
    assert!(
        wait_for(
            &work.join("nginx/access.log"),
            "command=1",
            Duration::from_secs(5)
        ),
        "the kit reports the command done"
    );

    // The same number with another body: a replay.
    command(&kit, "drop-calls", &["--seq", "1", "--valid", "901"]);
    refused(&log, "replayed");
    // Number 3 is done; then 2 comes: out of order.
    command(&kit, "drop-calls", &["--seq", "3"]);
    assert!(wait_for(
        &log,
        "reason=\"accepted\" seq=3",
        Duration::from_secs(5)
    ));
    command(&kit, "drop-calls", &["--seq", "2"]);
    refused(&log, "out-of-order");
    // Another kit's command, placed in this kit's tree.
    let other = kit.join("hq/kits/demo-kit/command.signed");
    let hq = kit.join("hq");
    ctl(&[
        "command",
        "wipe",
        "--dir",
        hq.to_str().unwrap(),
        "--kit",
        "other-kit",
        "--out",
        other.to_str().unwrap(),
    ]);
    publish(&kit);
    refused(&log, "wrong-kit");
    // Expired before it arrives.
    ctl(&[
        "command",
        "wipe",
        "--dir",
        hq.to_str().unwrap(),
        "--kit",
        "demo-kit",
        "--valid",
        "1",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    publish(&kit);
    refused(&log, "expired");
    // Signed by another of HQ's keys (the repository's timestamp key).
    let ts_key = kit.join("hq/timestamp-key.pk8");
    command(&kit, "wipe", &["--key", ts_key.to_str().unwrap()]);
    refused(&log, "wrong-key");
    assert_eq!(done(&kit), 3, "no refused command recorded as done");
    let ups = count(&log, "call up");
    assert!(baresip(&kit, "alice", 3).status.success());
    assert!(count(&log, "call up") > ups, "calls go on");

    // Reboot: the gateway stops with its status; restarted, it does not
    // do the command again.
    command(&kit, "reboot", &[]);
    assert_eq!(
        exit_status(&mut procs, Duration::from_secs(10)),
        Some(EXIT_REBOOT),
        "{}",
        log_text(&log)
    );
    let seq = done(&kit);
    assert!(seq > 3);
    let log2 = work.join("gateway-2.log");
    let mut procs2 = Procs(Vec::new());
    start_demo(&mut procs2, &kit, &log2);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        procs2.0[0].try_wait().unwrap().is_none(),
        "rebooted again:\n{}",
        log_text(&log2)
    );
    assert_eq!(
        count(&log2, "reason=\"accepted\""),
        0,
        "{}",
        log_text(&log2)
    );
    assert_eq!(done(&kit), seq);
    drop(procs2);
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_wipe_destroys_the_kits_keys_and_configuration() {
    const PORT: u16 = 20461;
    let (work, kit, log, nginx, mut procs) = managed_demo("e2e-commands-wipe", PORT);
    let secrets = [
        "dialgate.toml",
        "device/key.pem",
        "audit/key.pk8",
        "policy.bundle",
    ];
    for f in secrets {
        assert!(kit.join(f).exists(), "{f} before the wipe");
    }
    command(&kit, "wipe", &[]);
    assert_eq!(
        exit_status(&mut procs, Duration::from_secs(15)),
        Some(EXIT_WIPE),
        "{}",
        log_text(&log)
    );
    for f in secrets {
        assert!(!kit.join(f).exists(), "{f} survived the wipe");
    }
    let gw = log_text(&log);
    assert!(
        gw.contains("decision=\"command\" reason=\"wiping\""),
        "{gw}"
    );
    // The kit cannot serve again until re-provisioned.
    let again = Command::new(&*common::DIALGATE)
        .args(["run", "--config"])
        .arg(kit.join("dialgate.toml"))
        .output()
        .unwrap();
    assert!(!again.status.success());
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}
