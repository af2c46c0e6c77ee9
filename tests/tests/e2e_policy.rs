//! Signed policy bundles on a running gateway (`dialgate demo`): hostile
//! bundles placed at the kit's bundle path are refused with a logged
//! reason and the last good policy stays in force; a valid one is applied
//! without a restart (its meeting directory included); SIGHUP re-reads the
//! bundle; a policy that expires closes the kit to new calls (503) until a
//! fresh one arrives; after a restart the anti-rollback state refuses an
//! older bundle and the kept copy of the last applied one stays in force;
//! a damaged state stops the gateway from starting.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ctl, publish_policy, sip_call, start_demo, wait_for, Procs, DIALGATE};

const GW: &str = "127.0.0.1:5061";

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Puts `bytes` at the kit's bundle path atomically (as a delivery would).
fn place(kit: &Path, bytes: &[u8]) {
    let tmp = kit.join(".incoming.bundle");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, kit.join("policy.bundle")).unwrap();
}

/// Waits until the gateway log has `needle` more often than `before`.
fn wait_count(log: &Path, needle: &str, before: usize, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let n = std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches(needle)
            .count();
        if n > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

fn alice_calls(kit: &Path, alias: &str) -> u16 {
    sip_call(kit, GW, "alice", "alice", alias)
        .expect("alice is admitted at TLS")
        .status
}

#[test]
fn hostile_bundles_are_refused_and_valid_ones_apply_live() {
    let (work, kit, log) = common::work_dir("e2e-policy");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    assert!(wait_for(&log, "policy applied", Duration::from_secs(5)));
    assert_eq!(alice_calls(&kit, "echo"), 200);

    // A new directory entry, granted to alice, applies without a restart.
    let applied = count(&log, "policy applied");
    common::add_echo_alias(&kit, "echo2", "echo");
    assert!(
        wait_count(&log, "policy applied", applied, Duration::from_secs(2)),
        "v2 applied within 2 s"
    );
    assert_eq!(alice_calls(&kit, "echo2"), 200, "directory from the bundle");
    let good_v2 = std::fs::read(kit.join("policy.bundle")).unwrap();

    // Hostile variants of a valid version 3, each refused with its reason.
    let hq = kit.join("hq");
    let registry = hq.join("registry.toml");
    let v3 = work.join("v3.bundle");
    ctl(&[
        "policy",
        "build",
        "--dir",
        p(&hq),
        "--kit",
        "demo-kit",
        "--out",
        p(&v3),
    ]);
    let valid = std::fs::read(&v3).unwrap();
    let other_hq = work.join("other-hq");
    ctl(&["pki", "init", "--dir", p(&other_hq)]);
    std::fs::copy(hq.join("directory.toml"), other_hq.join("directory.toml")).unwrap();
    let foreign = work.join("foreign.bundle");
    ctl(&[
        "policy",
        "build",
        "--dir",
        p(&other_hq),
        "--registry",
        p(&registry),
        "--kit",
        "demo-kit",
        "--version",
        "99",
        "--out",
        p(&foreign),
    ]);
    let other_kit = work.join("other-kit.bundle");
    ctl(&[
        "policy",
        "build",
        "--dir",
        p(&hq),
        "--kit",
        "kit-elsewhere",
        "--version",
        "98",
        "--out",
        p(&other_kit),
    ]);
    let expired = work.join("expired.bundle");
    ctl(&[
        "policy",
        "build",
        "--dir",
        p(&hq),
        "--kit",
        "demo-kit",
        "--version",
        "97",
        "--valid-for",
        "1",
        "--out",
        p(&expired),
    ]);
    std::thread::sleep(Duration::from_millis(1100)); // the short one is past its expiry
    let body_at = valid.iter().position(|&c| c == b'\n').unwrap() + 12;
    let mut tampered = valid.clone();
    tampered[body_at] ^= 0x20;
    let sig_at = valid[..valid.len() - 1]
        .iter()
        .rposition(|&c| c == b'\n')
        .unwrap()
        + 1;
    let mut doubled = valid.clone();
    doubled.extend_from_slice(&valid[sig_at..]);
    let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
        ("wrong key", std::fs::read(&foreign).unwrap(), "signed by"),
        ("tampered body", tampered, "does not verify"),
        ("truncated", valid[..valid.len() / 2].to_vec(), "truncated"),
        ("duplicated signature", doubled, "more than one signature"),
        (
            "older version",
            std::fs::read(kit.join("state/policy.applied")).unwrap_or_default(),
            "not newer",
        ),
        ("expired", std::fs::read(&expired).unwrap(), "expired"),
        ("other kit", std::fs::read(&other_kit).unwrap(), "this kit"),
    ];
    for (what, bytes, reason) in &hostile {
        assert!(!bytes.is_empty(), "{what}: fixture exists");
        let refused = count(&log, "policy bundle refused");
        place(&kit, bytes);
        assert!(
            wait_count(
                &log,
                "policy bundle refused",
                refused,
                Duration::from_secs(3)
            ),
            "{what}: refused in the log"
        );
        let last = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .rfind(|l| l.contains("policy bundle refused"))
            .unwrap()
            .to_string();
        assert!(last.contains(reason), "{what}: {last}");
        assert!(
            last.contains("last good policy stays in force"),
            "{what}: {last}"
        );
    }
    // The last good policy (v2) is still in force.
    assert_eq!(count(&log, "policy applied"), applied + 1);
    assert_eq!(alice_calls(&kit, "echo2"), 200);
    let state = std::fs::read_to_string(kit.join("state/policy.state")).unwrap();
    assert!(state.contains("version 2\n"), "{state}");

    // SIGHUP re-reads the bundle at once (the process stays up).
    let pid = procs.0[0].id().to_string();
    let hup = count(&log, "SIGHUP");
    place(&kit, &valid);
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    assert!(wait_count(&log, "SIGHUP", hup, Duration::from_secs(2)));
    assert!(wait_count(
        &log,
        "policy applied",
        applied + 1,
        Duration::from_secs(2)
    ));
    assert!(procs.0[0].try_wait().unwrap().is_none(), "still running");

    // A policy valid for 3 s: calls, then 503 once it expires, then calls
    // again when a fresh one arrives.
    let applied = count(&log, "policy applied");
    publish_policy(&kit, &["--valid-for", "3"]);
    assert!(wait_count(
        &log,
        "policy applied",
        applied,
        Duration::from_secs(2)
    ));
    assert_eq!(alice_calls(&kit, "echo"), 200);
    assert!(
        wait_for(&log, "new calls refused with 503", Duration::from_secs(5)),
        "expiry noticed"
    );
    let refused = sip_call(&kit, GW, "alice", "alice", "echo").unwrap();
    assert_eq!(refused.status, 503, "{}", refused.response);
    assert!(
        refused.response.contains("policy expired"),
        "{}",
        refused.response
    );
    publish_policy(&kit, &[]);
    assert!(wait_for(&log, "new calls accepted", Duration::from_secs(3)));
    assert_eq!(alice_calls(&kit, "echo"), 200);

    // Restart with an older (validly signed) bundle in place: refused by
    // the persisted anti-rollback state; the kept copy stays in force.
    drop(procs);
    place(&kit, &good_v2);
    let log2 = work.join("gateway2.log");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log2);
    assert!(wait_for(
        &log2,
        "last applied policy stays in force",
        Duration::from_secs(3)
    ));
    let l2 = std::fs::read_to_string(&log2).unwrap();
    assert!(l2.contains("not newer than the applied version"), "{l2}");
    assert_eq!(alice_calls(&kit, "echo"), 200);
    drop(procs);

    // A damaged anti-rollback state: the gateway does not start.
    std::fs::write(kit.join("state/policy.state"), "version 0\n").unwrap();
    let out = Command::new(&*DIALGATE)
        .args(["demo", "--dir", p(&kit)])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a damaged state: {err}");
    assert!(err.contains("damaged"), "{err}");
    std::fs::remove_dir_all(&work).ok();
}

/// An unparseable request on a phone's TLS connection gets 400 naming the
/// problem, and the connection stays usable.
#[test]
fn malformed_request_gets_400_and_the_connection_goes_on() {
    use std::io::Write;
    let (work, kit, log) = common::work_dir("e2e-malformed");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    let (mut s, local) = common::phone_tls(&kit, GW, "alice").unwrap();
    let mut framer = common::framer();
    let head = |method: &str, extra: &str| {
        format!(
            "{method} sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bK-{method}-1\r\nMax-Forwards: {extra}\r\n\
             From: <sip:alice@127.0.0.1>;tag=m1\r\nTo: <sip:echo@127.0.0.1>\r\n\
             Call-ID: malformed-1@test\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    s.write_all(head("OPTIONS", "seventy").as_bytes()).unwrap();
    let bad = common::read_message(&mut s, &mut framer).unwrap();
    assert_eq!(bad.status().map(|c| c.as_u16()), Some(400));
    let text = String::from_utf8_lossy(&bad.to_bytes()).to_string();
    assert!(text.contains("Warning: 399 dialgate"), "{text}");
    s.write_all(head("OPTIONS", "70").as_bytes()).unwrap();
    let ok = common::read_message(&mut s, &mut framer).unwrap();
    assert_eq!(
        ok.status().map(|c| c.as_u16()),
        Some(200),
        "connection still usable"
    );
    // A request without a Call-ID cannot be answered: the connection is
    // closed with an audit record, not left open in silence.
    let no_call_id = head("OPTIONS", "70").replace("Call-ID: malformed-1@test\r\n", "");
    s.write_all(no_call_id.as_bytes()).unwrap();
    assert!(
        common::read_message(&mut s, &mut framer).is_err(),
        "the connection stays open after an unanswerable request"
    );
    assert!(wait_for(
        &log,
        "malformed SIP message that cannot be answered: connection closed",
        Duration::from_secs(2)
    ));
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}

/// A token certificate that expires while its connection is open: the
/// connection stays (calls in progress would go on), a new INVITE on it
/// gets 403 "token certificate expired".
#[test]
fn a_certificate_expiring_on_an_open_connection_refuses_new_calls() {
    use dialgate_hq::pki::{Ca, Validity};
    use std::io::Write;
    use std::time::SystemTime;
    let (work, kit, log) = common::work_dir("e2e-cert-expiry");
    common::init_kit(&kit);
    // carol: issued by the kit's token CA for the next 3 seconds.
    let hq = kit.join("hq");
    let ca = Ca::load(
        &std::fs::read_to_string(hq.join("token-ca.pem")).unwrap(),
        &std::fs::read_to_string(hq.join("token-ca-key.pem")).unwrap(),
    )
    .unwrap();
    let now = SystemTime::now();
    let carol = ca
        .issue_client(
            "carol",
            Validity {
                not_before: now - Duration::from_secs(60),
                not_after: now + Duration::from_secs(3),
            },
        )
        .unwrap();
    std::fs::create_dir_all(kit.join("tokens/carol")).unwrap();
    carol.write_to(&kit.join("tokens/carol")).unwrap();
    let key = dialgate::tls::key_hash_of(&carol.der).unwrap();
    let registry = hq.join("registry.toml");
    let text = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(
        &registry,
        format!(
            "{text}\n[[token]]\nname = \"carol\"\nkey_sha256 = \"{}\"\naliases = [\"echo\"]\nunattested = true\n",
            key.to_hex()
        ),
    )
    .unwrap();
    publish_policy(&kit, &[]);
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    let (mut s, local) = common::phone_tls(&kit, GW, "carol").unwrap();
    let mut framer = common::framer();
    let options = format!(
        "OPTIONS sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-o1\r\nMax-Forwards: 70\r\n\
         From: <sip:carol@127.0.0.1>;tag=c1\r\nTo: <sip:echo@127.0.0.1>\r\n\
         Call-ID: carol-o@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(options.as_bytes()).unwrap();
    let ok = common::read_message(&mut s, &mut framer).unwrap();
    assert_eq!(ok.status().map(|c| c.as_u16()), Some(200), "carol admitted");
    assert!(
        wait_for(&log, "token certificate expired", Duration::from_secs(6)),
        "expiry noticed"
    );
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
               a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyBpbmZpbmUgKXIgMC4=\r\n";
    let invite = format!(
        "INVITE sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-i1\r\nMax-Forwards: 70\r\n\
         From: <sip:carol@127.0.0.1>;tag=c2\r\nTo: <sip:echo@127.0.0.1>\r\n\
         Call-ID: carol-i@test\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@{local};transport=tls>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    s.write_all(invite.as_bytes()).unwrap();
    let fin = loop {
        let m = common::read_message(&mut s, &mut framer).unwrap();
        if m.status().is_some_and(|c| c.as_u16() >= 200) {
            break m;
        }
    };
    assert_eq!(fin.status().map(|c| c.as_u16()), Some(403));
    let text = String::from_utf8_lossy(&fin.to_bytes()).to_string();
    assert!(text.contains("token certificate expired"), "{text}");
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}

/// Trunk settings signed into the policy (HQ/trunks.toml) apply to the
/// running gateway: a wrong pinned key for the bridge makes calls fail
/// (503), the right one makes them work, a trunk the kit does not have
/// refuses the bundle.
#[test]
fn trunk_settings_from_the_policy_apply_live() {
    let (work, kit, log) = common::work_dir("e2e-trunk-policy");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    assert_eq!(alice_calls(&kit, "echo"), 200);
    let bridge = dialgate::tls::load_certs(&kit.join("bridge/cert.pem")).unwrap();
    let right = dialgate::tls::key_hash_of(&bridge[0]).unwrap().to_hex();
    let trunks = |name: &str, pin: &str| {
        format!(
            "[[trunk]]\nname = \"{name}\"\nconnect = \"{}\"\nhost = \"{}\"\npin_sha256 = \"{pin}\"\n\
             tls = \"1.3\"\nsuites = [\"AES_CM_128_HMAC_SHA1_80\"]\nwebex = false\n",
            dialgate::demo::BRIDGE_LISTEN,
            dialgate::demo::BRIDGE_HOST
        )
    };
    let publish = |text: String| {
        std::fs::write(kit.join("hq/trunks.toml"), text).unwrap();
        let applied = count(&log, "policy applied");
        let refused = count(&log, "policy bundle refused");
        publish_policy(&kit, &[]);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline
            && count(&log, "policy applied") == applied
            && count(&log, "policy bundle refused") == refused
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        count(&log, "policy applied") > applied
    };
    assert!(
        publish(trunks("echo", &"00".repeat(32))),
        "wrong pin applied"
    );
    assert_eq!(
        alice_calls(&kit, "echo"),
        503,
        "bridge key does not match the pin"
    );
    assert!(publish(trunks("echo", &right)), "right pin applied");
    assert_eq!(alice_calls(&kit, "echo"), 200);
    // The demo kit sets no policy.trunk_media_address: a policy cannot add
    // a trunk to it.
    assert!(!publish(trunks("nosuch", &right)), "unknown trunk refused");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("which this kit does not have"));
    assert_eq!(alice_calls(&kit, "echo"), 200, "last good policy in force");
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}

/// OPTIONS over `openssl s_client` (OpenSSL 3.0: no X25519MLKEM768) with
/// alice's certificate; the gateway's answer, if any.
fn options_via_openssl(kit: &Path) -> String {
    use std::io::Write;
    let tokens = kit.join("tokens/alice");
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", GW, "-cert"])
        .arg(tokens.join("cert.pem"))
        .arg("-key")
        .arg(tokens.join("key.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    let msg = "OPTIONS sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
               Via: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bK-pq\r\nMax-Forwards: 70\r\n\
               From: <sip:alice@127.0.0.1>;tag=pq\r\nTo: <sip:echo@127.0.0.1>\r\n\
               Call-ID: pq@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(msg.as_bytes());
    // A moment for the answer to arrive.
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    // -quiet ignores EOF on stdin: stop it, then read what it printed.
    let stdout = child.stdout.take();
    drop(Procs(vec![child]));
    let mut out = String::new();
    if let Some(mut o) = stdout {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    out
}

/// The policy switch `require_post_quantum` applies to new connections:
/// a classic (X25519) client is admitted before and refused after, while
/// a client with X25519MLKEM768 still places calls.
#[test]
fn the_post_quantum_switch_from_the_policy_applies_to_new_connections() {
    let (work, kit, log) = common::work_dir("e2e-pq-switch");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    assert!(
        options_via_openssl(&kit).contains("SIP/2.0 200"),
        "classic client admitted"
    );
    let applied = count(&log, "policy applied");
    publish_policy(&kit, &["--require-post-quantum"]);
    assert!(wait_count(
        &log,
        "policy applied",
        applied,
        Duration::from_secs(2)
    ));
    let admitted = count(&log, "phone admitted at TLS");
    let answer = options_via_openssl(&kit);
    assert!(
        !answer.contains("SIP/2.0"),
        "classic client got an answer: {answer}"
    );
    // An audited refusal, and no "admitted" line for that connection.
    assert!(wait_for(
        &log,
        "reason=\"the policy requires the X25519MLKEM768 key exchange\"",
        Duration::from_secs(2)
    ));
    let text = std::fs::read_to_string(&log).unwrap();
    let refusal = text
        .lines()
        .find(|l| l.contains("phone refused after the TLS handshake"))
        .expect("refusal line");
    assert!(
        refusal.contains("decision=\"refused\"") && refusal.contains("audit"),
        "{refusal}"
    );
    assert_eq!(
        count(&log, "phone admitted at TLS"),
        admitted,
        "the refused connection was never called admitted"
    );
    assert_eq!(alice_calls(&kit, "echo"), 200, "hybrid client still calls");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("group=X25519MLKEM768"));
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}

/// A bundle rewritten in place with the same size and modification time
/// (a copy tool that preserves times, a clock that stepped back) is still
/// noticed: the gateway reads the file at every poll.
#[test]
fn a_bundle_rewritten_in_place_with_the_same_size_and_time_is_applied() {
    use std::io::{Seek, Write};
    let (work, kit, log) = common::work_dir("e2e-in-place");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    let bundle = kit.join("policy.bundle");
    let before = std::fs::read(&bundle).unwrap();
    let mtime = std::fs::metadata(&bundle).unwrap().modified().unwrap();
    // Newer bundles, built aside, until one has the running one's size
    // (ECDSA signatures vary by a byte or two).
    let hq = kit.join("hq");
    let aside = work.join("next.bundle");
    let mut next = Vec::new();
    for _ in 0..20 {
        ctl(&[
            "policy",
            "build",
            "--dir",
            hq.to_str().unwrap(),
            "--kit",
            dialgate::demo::KIT_ID,
            "--out",
            aside.to_str().unwrap(),
        ]);
        next = std::fs::read(&aside).unwrap();
        if next.len() == before.len() {
            break;
        }
    }
    assert_eq!(
        next.len(),
        before.len(),
        "no bundle of the same size in 20 tries"
    );
    assert_ne!(next, before);
    let applied = count(&log, "policy applied");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&bundle)
        .unwrap();
    f.rewind().unwrap();
    f.write_all(&next).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().modified().unwrap(),
        mtime
    );
    assert!(
        wait_count(&log, "policy applied", applied, Duration::from_secs(3)),
        "the rewritten bundle was not noticed"
    );
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}

/// A phone that sends requests but never reads the answers fills its
/// connection's queue: the gateway closes that connection (audited) rather
/// than hold its bytes, and other phones are not affected.
#[test]
fn a_phone_that_stops_reading_is_closed() {
    use std::io::Write;
    let (work, kit, log) = common::work_dir("e2e-stuck-reader");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    let (mut s, local) = common::phone_tls(&kit, GW, "alice").unwrap();
    let mut closed = false;
    for i in 0..60_000 {
        let req = format!(
            "OPTIONS sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bK-stuck-{i}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.1>;tag=s1\r\nTo: <sip:echo@127.0.0.1>\r\n\
             Call-ID: stuck-{i}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).is_err() {
            closed = true;
            break;
        }
        if i % 1000 == 999 && count(&log, "the phone stopped reading") > 0 {
            closed = true;
            break;
        }
    }
    assert!(closed || wait_for(&log, "the phone stopped reading", Duration::from_secs(5)));
    assert!(wait_for(
        &log,
        "reason=\"the phone stopped reading (write queue full)\"",
        Duration::from_secs(5)
    ));
    // Another phone still calls.
    assert_eq!(alice_calls(&kit, "echo"), 200);
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}
