//! Revocation reaches live calls: alice is in a call through `dialgate
//! demo` (baresip); the kit officer revokes her token in the HQ registry
//! (`dialgatectl token revoke --dir HQ`) and signs a new policy bundle
//! into the kit's bundle path (`dialgatectl policy build`); the gateway
//! verifies and applies it within its 0.5 s poll, ends her call with BYE
//! on both legs and closes her connection; a new attempt is refused at the
//! TLS handshake. The time from the start of `policy build` to the call's
//! end is measured and must be at most 2 s.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ctl, publish_policy, start_demo, wait_for, Procs};

#[test]
fn revoking_alice_ends_her_live_call_within_two_seconds() {
    let (work, kit, log) = common::work_dir("e2e-revoke");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    let phone_log = work.join("alice.log");
    let phone = Procs(vec![Command::new("baresip")
        .args(["-f", &kit.join("baresip/alice").display().to_string()])
        .args(["-e", "/dial sip:echo@127.0.0.1:5061", "-t", "20"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&phone_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip runs")]);
    assert!(
        wait_for(&log, "call up", Duration::from_secs(15)),
        "alice's call is up"
    );
    std::thread::sleep(Duration::from_secs(1));

    // HQ revokes alice with dialgatectl and publishes a new policy.
    let hq = kit.join("hq");
    ctl(&["token", "revoke", "--dir", hq.to_str().unwrap(), "alice"]);
    let written = Instant::now();
    let built = publish_policy(&kit, &[]);
    assert!(built.contains("policy version 2"), "{built}");
    assert!(
        wait_for(&log, "reason=\"token revoked\"", Duration::from_secs(5)),
        "call ended by revocation:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let took = written.elapsed();
    println!(
        "revocation ended the live call {} ms after `dialgatectl policy build` started",
        took.as_millis()
    );
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    let gw = std::fs::read_to_string(&log).unwrap();
    assert!(
        gw.contains("policy applied") && gw.contains("version=2"),
        "{gw}"
    );
    assert!(gw.contains("media stopped, keys zeroized"), "{gw}");
    // The phone saw its call end well before its 8 s microphone file ran out.
    assert!(wait_for(&phone_log, "terminated", Duration::from_secs(5)));
    drop(phone); // frees baresip's SIP port for the next attempt

    // A new attempt is refused at the handshake.
    let again = Command::new("baresip")
        .args(["-f", &kit.join("baresip/alice").display().to_string()])
        .args(["-e", "/dial sip:echo@127.0.0.1:5061", "-t", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let handshakes = wait_for(&log, "reason=\"revoked\"", Duration::from_secs(6));
    drop(Procs(vec![again]));
    assert!(handshakes, "alice refused at TLS after revocation");
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}
