//! End to end against real peers: `dialgate demo` (the gateway and its echo
//! bridge, as a user starts them) with Debian's baresip as the phone.
//!
//! - alice (registered) calls `echo` and hears her own 1 kHz tone back;
//! - mallory (revoked) and eve (not registered) are refused at the TLS
//!   handshake and never get a call;
//! - dumpcap records loopback meanwhile, and the wire audit
//!   (`tests/peers/pcap_audit.py`) finds no SIP outside TLS, nothing but
//!   SRTP from the gateway's media ports, and no run of the tone's G.711
//!   bytes anywhere.
//!
//! - with `[media] connect_latched = true` (each latched media socket gets
//!   a connected sibling) the self-test's legs are connected and alice
//!   still hears her tone.
//!
//! Needs baresip, dumpcap (tshark) and python3: `tests/run` installs them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::{baresip, recordings, start_demo, wait_for, Procs, PEERS};

#[test]
fn baresip_call_through_the_demo_gateway_is_secure_end_to_end() {
    let (work, kit, log) = common::work_dir("e2e");
    let mut procs = Procs(Vec::new());

    // The wire, from before the first byte: SIP/TLS ports and the
    // gateway's media range (both legs pass through it).
    let pcap = work.join("call.pcap");
    let dumpcap_log = work.join("dumpcap.log");
    procs.0.push(
        Command::new("dumpcap")
            .args(["-q", "-P", "-i", "lo", "-f"])
            .arg("tcp port 5061 or tcp port 5071 or udp portrange 30000-39999")
            .arg("-w")
            .arg(&pcap)
            .stderr(std::fs::File::create(&dumpcap_log).unwrap())
            .spawn()
            .expect("dumpcap runs (apt-get install tshark)"),
    );
    assert!(
        wait_for(&dumpcap_log, "Capturing on", Duration::from_secs(10)),
        "dumpcap started"
    );

    start_demo(&mut procs, &kit, &log);

    // alice: a 12 s call; her microphone is a 1 kHz tone.
    let out = baresip(&kit, "alice", 12);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Call established"), "alice's call: {text}");
    assert!(text.contains("SRTP is Enabled"), "{text}");
    let heard: Vec<PathBuf> = recordings(&kit, "alice")
        .into_iter()
        .filter(|p| p.display().to_string().ends_with("-dec.wav"))
        .collect();
    assert_eq!(heard.len(), 1, "one recording of what alice heard");
    let check = Command::new("python3")
        .arg(format!("{PEERS}/wavcheck.py"))
        .arg(&heard[0])
        .args(["1000", "0.6"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "alice hears her own tone back: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    // mallory and eve: refused at the handshake, no call, no audio. baresip
    // waits ~32 s on a failed TLS connect and ignores -t meanwhile, so both
    // run at once and are stopped after 6 s (the refusal takes milliseconds).
    let tries: Vec<(&str, Child, PathBuf)> = ["mallory", "eve"]
        .into_iter()
        .map(|who| {
            let out = work.join(format!("{who}.log"));
            let child = Command::new("baresip")
                .args(["-f", &kit.join("baresip").join(who).display().to_string()])
                .args(["-e", "/dial sip:echo@127.0.0.1:5061", "-t", "5"])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .expect("baresip runs");
            (who, child, out)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(6));
    for (who, child, out) in tries {
        drop(Procs(vec![child]));
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(
            !text.contains("Call established"),
            "{who} got a call: {text}"
        );
        assert!(recordings(&kit, who).is_empty(), "{who} heard something");
    }
    let gw = std::fs::read_to_string(&log).unwrap();
    // Each decision is one audit event with the address, the key hash
    // prefix and the token's name where the registry knows the key.
    let audit = |needle: &str| {
        gw.lines()
            .find(|l| l.contains(" audit: ") && l.contains(needle))
            .unwrap_or_else(|| panic!("no audit event with {needle}:\n{gw}"))
            .to_string()
    };
    let mallory = audit("reason=\"revoked\"");
    assert!(
        mallory.contains("token=\"mallory\"")
            && mallory.contains("peer=127.0.0.1:")
            && mallory.contains("key="),
        "{mallory}"
    );
    let eve = audit("reason=\"not registered\"");
    assert!(
        eve.contains("token=\"-\"") && eve.contains("peer=127.0.0.1:"),
        "{eve}"
    );
    let alice = audit("decision=\"admitted\"");
    assert!(
        alice.contains("alice") && alice.contains("peer=127.0.0.1:"),
        "{alice}"
    );
    // The self-test call (3 s after the start) passed, and the gateway's
    // health word for PID 1 says so.
    let st = audit("decision=\"self-test\"");
    assert!(
        st.contains("reason=\"passed\"") && st.contains("suites=3"),
        "{st}"
    );
    // Without `[media] connect_latched`, no connected sibling sockets.
    assert!(st.contains("connected_sockets=0"), "{st}");
    assert_eq!(
        std::fs::read_to_string(kit.join("firmware.health")).unwrap(),
        "management=unconfigured\nself_test=passed\n"
    );
    // Per-leg spans: the answer is handled on the bridge leg, alice's
    // hang-up on the phone leg.
    let up = gw.lines().find(|l| l.contains("call up")).expect("call up");
    assert!(
        up.contains("leg{") && up.contains("side=\"bridge\"") && up.contains("trunk=echo"),
        "{up}"
    );
    let ended = gw
        .lines()
        .find(|l| l.contains("call ended"))
        .expect("call ended");
    assert!(
        ended.contains("side=\"phone\"") && ended.contains("phone hung up"),
        "{ended}"
    );
    // Never a key: no SDES inline key material in the log.
    assert!(!gw.contains("inline:"), "key material in the log");
    assert!(gw.contains("media stopped, keys zeroized"), "{gw}");

    drop(procs); // stop the gateway and the capture (SIGTERM, by PID)
    let audit = Command::new("python3")
        .args(["-W", "ignore"])
        .arg(format!("{PEERS}/pcap_audit.py"))
        .arg(&pcap)
        .arg("--pattern-wav")
        .arg(kit.join("baresip/alice/mic.wav"))
        .args(["--from-ports", "30000-39999"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.status.success(), "wire audit failed:\n{report}");
    assert!(report.contains("TLS"), "{report}");
    std::fs::remove_dir_all(&work).ok();
}

/// A bridge that answers with early media (183 with SDP, then 200): media
/// flows from the 183, the phone gets the same answer in the 200, and
/// alice (baresip) hears the secure tone and her own tone back.
#[test]
fn early_media_from_the_bridge_reaches_baresip() {
    let (work, kit, log) = common::work_dir("e2e-early");
    common::init_kit(&kit);
    // A directory entry to the echo bridge's early-media user, for alice.
    common::add_echo_alias(&kit, "early", "echo-early");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    let out = common::baresip_to(&kit, "alice", "early", 6);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let gw = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Call established"), "{text}\n{gw}");
    assert!(gw.contains("early media from the bridge"), "{gw}");
    assert!(gw.contains("call up"), "{gw}");
    common::alice_heard_her_tone(&kit).expect("alice hears her tone back after early media");
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn with_connected_media_sockets_alice_still_hears_her_tone() {
    let (work, kit, log) = common::work_dir("e2e-connected");
    common::init_kit(&kit);
    common::edit_config(&kit, |c| {
        c.replacen("[media]\n", "[media]\nconnect_latched = true\n", 1)
    });
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    // The self-test (3 s after the start) runs through the same relay: both
    // of its legs latched and were connected.
    assert!(
        wait_for(&log, "self-test call passed", Duration::from_secs(20)),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let gw = std::fs::read_to_string(&log).unwrap();
    let st = gw
        .lines()
        .find(|l| l.contains("decision=\"self-test\""))
        .expect("self-test audited");
    assert!(st.contains("connected_sockets=2"), "{st}");
    let out = baresip(&kit, "alice", 8);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Call established"), "{text}");
    common::alice_heard_her_tone(&kit).expect("alice hears her tone back through connected legs");
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}
