//! The kit polls its signed repository at home over mutual TLS, served by
//! a real nginx (Debian's nginx, `tests/peers/nginx-hq.conf`) from the
//! tree `dialgatectl publish` writes: `dialgate demo --hq-url` polls every
//! second. nginx serves no one without a kit certificate; a revocation
//! published at home ends alice's live call within a few seconds (the
//! latency is printed); with nginx stopped (and an interceptor with
//! another CA's certificate in its place) calls go on, the outage is
//! audited and a publication made meanwhile is applied once nginx is back;
//! a timestamp rolled back on the server is refused with an audit record
//! while calls go on.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::hq::{
    count, init_managed_kit, log_text, managed_demo, publish, publish_with, wait_more, Nginx,
};
use common::{baresip, ctl, wait_for, Procs};

/// curl's status code for the timestamp, with `args` for the client side.
fn curl_status(kit: &Path, port: u16, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "5", "--cacert"])
        .arg(kit.join("device/hq-ca.pem"))
        .args(args)
        .arg(format!(
            "https://127.0.0.1:{port}/demo-kit/timestamp.signed"
        ))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_string(), code.to_string())
}

/// A self-signed certificate (another CA) for `cn`, valid for 127.0.0.1,
/// as `dir/{cert,key}.pem`.
fn other_ca_cert(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl makes a certificate");
    (cert, key)
}

#[test]
fn nginx_serves_the_repository_only_to_kit_certificates() {
    const PORT: u16 = 20443;
    let (work, kit, _log) = common::work_dir("e2e-manage-mtls");
    init_managed_kit(&kit, PORT);
    let mut nginx = Nginx::new(&work, &kit, PORT);
    nginx.start();
    let device = |f: &str| kit.join("device").join(f).display().to_string();
    let (body, code) = curl_status(
        &kit,
        PORT,
        &["--cert", &device("cert.pem"), "--key", &device("key.pem")],
    );
    assert_eq!(code, "200", "the kit's certificate is served");
    assert!(body.starts_with("dialgate-repo-timestamp v1"), "{body}");

    let (body, code) = curl_status(&kit, PORT, &[]);
    assert_ne!(code, "200", "no client certificate: refused");
    assert!(!body.contains("dialgate-repo"), "{body}");

    // A certificate of another CA, with the kit's own name.
    let other = work.join("other");
    other_ca_cert(&other, "demo-kit");
    let o = |f: &str| other.join(f).display().to_string();
    let (body, code) = curl_status(
        &kit,
        PORT,
        &["--cert", &o("cert.pem"), "--key", &o("key.pem")],
    );
    assert_ne!(code, "200", "another CA's certificate: refused");
    assert!(!body.contains("dialgate-repo"), "{body}");
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_published_revocation_ends_the_live_call_within_a_poll() {
    const PORT: u16 = 20444;
    let (work, kit, log, nginx, procs) = managed_demo("e2e-manage-revoke", PORT);
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
    // At a random phase of the kit's poll, so that runs sample the
    // latency rather than repeat one alignment.
    let phase = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    std::thread::sleep(Duration::from_millis(1000 + u64::from(phase)));

    let hq = kit.join("hq");
    ctl(&["token", "revoke", "--dir", hq.to_str().unwrap(), "alice"]);
    let started = Instant::now();
    let published = publish(&kit);
    assert!(published.contains("policy version 3"), "{published}");
    assert!(
        wait_for(&log, "reason=\"token revoked\"", Duration::from_secs(10)),
        "call ended by the revocation from the repository:\n{}",
        log_text(&log)
    );
    let took = started.elapsed();
    println!(
        "revocation over the repository ended the live call {} ms after `dialgatectl publish` started (1 s poll)",
        took.as_millis()
    );
    assert!(took <= Duration::from_secs(4), "took {took:?}");
    let gw = log_text(&log);
    assert!(gw.contains("reason=\"policy-fetched\""), "{gw}");
    assert!(gw.contains("decision=\"applied\" version=3"), "{gw}");
    assert!(wait_for(&phone_log, "terminated", Duration::from_secs(5)));
    // The kit named itself and the policy in force on every request; an
    // unchanged timestamp cost a 304.
    let access = std::fs::read_to_string(work.join("nginx/access.log")).unwrap();
    assert!(access.contains("kit=demo-kit policy=2"), "{access}");
    assert!(wait_for(
        &work.join("nginx/access.log"),
        "kit=demo-kit policy=3",
        Duration::from_secs(5)
    ));
    assert!(
        access.contains("\"GET /demo-kit/timestamp.signed HTTP/1.1\" 304"),
        "{access}"
    );
    drop(phone);
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn outages_and_a_hostile_repository_never_stop_calls() {
    const PORT: u16 = 20445;
    let (work, kit, log, mut nginx, procs) = managed_demo("e2e-manage-outage", PORT);
    let ts = kit.join("hq/repo/demo-kit/timestamp.signed");
    let old_timestamp = std::fs::read(&ts).unwrap();

    // HQ down, then its address taken by an interceptor with another
    // CA's certificate: the outage is audited once, the interceptor gets
    // no request, calls go on.
    nginx.stop();
    let (cert, key) = other_ca_cert(&work.join("interceptor-ca"), "127.0.0.1");
    let mut interceptor = Nginx::serving_as(&work.join("interceptor"), &kit, PORT, &cert, &key);
    interceptor.start();
    assert!(
        wait_for(&log, "reason=\"unreachable\"", Duration::from_secs(5)),
        "outage audited:\n{}",
        log_text(&log)
    );
    let ups = count(&log, "call up");
    assert!(baresip(&kit, "alice", 3).status.success());
    assert!(count(&log, "call up") > ups, "a call during the outage");
    interceptor.stop();
    let intercepted =
        std::fs::read_to_string(work.join("interceptor/access.log")).unwrap_or_default();
    assert!(
        !intercepted.contains("GET"),
        "the interceptor got a request: {intercepted}"
    );
    assert_eq!(
        count(&log, "reason=\"unreachable\""),
        1,
        "one record per outage"
    );
    assert_eq!(count(&log, "reason=\"reachable\""), 0, "{}", log_text(&log));

    // A publication while HQ's server is down: a new meeting alias.
    let dir_file = kit.join("hq/directory.toml");
    let mut d = std::fs::read_to_string(&dir_file).unwrap();
    d.push_str("\n[[directory]]\nalias = \"echo2\"\nuri = \"sip:echo2@echo-bridge.dialgate.test\"\ntrunk = \"echo\"\n");
    std::fs::write(&dir_file, d).unwrap();
    assert!(publish(&kit).contains("policy version 3"));
    nginx.start();
    let back = Instant::now();
    assert!(
        wait_for(&log, "reason=\"reachable\"", Duration::from_secs(15))
            && wait_for(
                &log,
                "decision=\"applied\" version=3",
                Duration::from_secs(15)
            ),
        "polling resumed and applied the publication:\n{}",
        log_text(&log)
    );
    println!(
        "polling resumed {} ms after nginx came back",
        back.elapsed().as_millis()
    );
    assert!(log_text(&log).contains("directory=2"));

    // Hostile: the server hands out an older timestamp (a rollback).
    let refused = count(&log, "reason=\"rollback\"");
    std::fs::write(&ts, &old_timestamp).unwrap();
    assert!(
        wait_more(&log, "reason=\"rollback\"", refused, Duration::from_secs(5)),
        "rolled-back timestamp refused:\n{}",
        log_text(&log)
    );
    let gw = log_text(&log);
    assert!(
        gw.lines()
            .any(|l| l.contains(" audit: ")
                && l.contains("decision=\"repository\" reason=\"rollback\"")),
        "an audit record: {gw}"
    );
    let ups = count(&log, "call up");
    assert!(baresip(&kit, "alice", 3).status.success());
    assert!(
        count(&log, "call up") > ups,
        "a call under the hostile repository"
    );
    assert_eq!(count(&log, "decision=\"applied\" version=4"), 0);
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn each_hostile_repository_file_is_refused_while_calls_go_on() {
    use dialgate_signed::repo::{FileMeta, Header, Timestamp, TIMESTAMP};
    use dialgate_signed::{open, SigningKey};

    const PORT: u16 = 20446;
    let (work, kit, log, nginx, procs) = managed_demo("e2e-manage-hostile", PORT);
    let ts = kit.join("hq/repo/demo-kit/timestamp.signed");
    let hq_ts_key = {
        let der = std::fs::read(kit.join("hq/timestamp-key.pk8")).unwrap();
        SigningKey::from_pkcs8(&der).unwrap()
    };
    let current = {
        let bytes = std::fs::read(&ts).unwrap();
        let body = open(&TIMESTAMP, &bytes, hq_ts_key.public_key()).unwrap();
        Timestamp::parse(body.bytes).unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = |kit: &str, version: u64, snapshot: FileMeta, key: &SigningKey| {
        Timestamp {
            header: Header {
                kit: kit.into(),
                version,
                signed_at: now,
                expires: now + 900,
            },
            snapshot,
        }
        .sign(key)
        .unwrap()
    };
    let v = current.header.version;
    // Served in turn; each must be refused with its reason, the policy in
    // force kept, and a call placed under it.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "wrong-key",
            forged(
                "demo-kit",
                v + 1,
                current.snapshot,
                &SigningKey::generate().unwrap(),
            ),
        ),
        (
            "wrong-kit",
            forged("other-kit", v + 1, current.snapshot, &hq_ts_key),
        ),
        // Endless data: the kit reads 4 KiB + 1 and stops.
        ("too-large", vec![b'x'; 1 << 20]),
        // Mix-and-match: HQ's key names a snapshot whose bytes on the
        // server are other ones (last: the timestamp itself is accepted).
        (
            "hash-mismatch",
            forged(
                "demo-kit",
                v + 1,
                FileMeta::of(current.snapshot.version + 1, b"the snapshot HQ signed"),
                &hq_ts_key,
            ),
        ),
    ];
    let snapshot_file = kit.join(format!(
        "hq/repo/demo-kit/snapshot-{}.signed",
        current.snapshot.version + 1
    ));
    let served = b"other bytes, same size";
    assert_eq!(served.len(), b"the snapshot HQ signed".len());
    std::fs::write(&snapshot_file, served).unwrap();
    let original = std::fs::read(&ts).unwrap();
    // nginx's ETag is the mtime in seconds and the size: every file this
    // test serves gets an mtime of its own, or a same-sized file written
    // within the second would be a 304 to the kit.
    let mut stamp = now + 10;
    let mut serve = |bytes: &[u8]| {
        std::fs::write(&ts, bytes).unwrap();
        stamp += 1;
        let at = std::time::UNIX_EPOCH + Duration::from_secs(stamp);
        std::fs::File::options()
            .write(true)
            .open(&ts)
            .and_then(|f| f.set_modified(at))
            .unwrap();
    };
    let access = work.join("nginx/access.log");
    let polls = || count(&access, "GET /demo-kit/timestamp.signed");
    for (reason, bytes) in cases {
        let needle = format!("decision=\"repository\" reason=\"{reason}\"");
        let before = count(&log, &needle);
        serve(&bytes);
        assert!(
            wait_more(&log, &needle, before, Duration::from_secs(10)),
            "{reason} refused:\n{}",
            log_text(&log)
        );
        let ups = count(&log, "call up");
        assert!(baresip(&kit, "alice", 2).status.success());
        assert!(count(&log, "call up") > ups, "a call under {reason}");
        // The true file again, and one poll that takes it, so that the
        // next case is not waiting out the refusal's back-off.
        serve(&original);
        let seen = polls();
        assert!(
            wait_more(
                &access,
                "GET /demo-kit/timestamp.signed",
                seen,
                Duration::from_secs(10)
            ),
            "polled again after {reason}"
        );
    }
    assert_eq!(count(&log, "decision=\"applied\" version=3"), 0);
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}

/// The firmware target: a published bundle (8 MiB, more than any other
/// target, so streamed) is fetched once, checked against the snapshot and
/// handed to PID 1's agent as `firmware.bundle` beside the policy bundle;
/// not fetched again while the snapshot names it; a bundle whose bytes on
/// the server are not those HQ signed is refused once (audited), the one
/// handed over before stays, and nothing half-written is left.
#[test]
fn a_published_firmware_bundle_is_fetched_once_and_a_tampered_one_refused() {
    use dialgate_signed::{hex, sha256};

    const PORT: u16 = 20447;
    let (work, kit, log, mut nginx, procs) = managed_demo("e2e-manage-firmware", PORT);
    let noise = |seed: u8| -> Vec<u8> {
        let mut x = u64::from(seed) | 0x9e37_79b9_7f4a_7c15;
        (0..8 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let (first, second) = (noise(1), noise(2));
    let first_path = work.join("first.bundle");
    std::fs::write(&first_path, &first).unwrap();
    let published = publish_with(&kit, &["--firmware", first_path.to_str().unwrap()]);
    assert!(published.contains("firmware"), "{published}");
    let fetched = "decision=\"firmware\" reason=\"fetched\"";
    assert!(
        wait_for(&log, fetched, Duration::from_secs(15)),
        "the bundle fetched:\n{}",
        log_text(&log)
    );
    let handed = kit.join("firmware.bundle");
    assert_eq!(
        std::fs::read(&handed).unwrap(),
        first,
        "the bytes HQ published"
    );
    assert_eq!(
        std::fs::read_to_string(kit.join("firmware.fetched")).unwrap(),
        hex(&sha256(&first))
    );
    assert!(!kit.join("firmware.bundle.part").exists());
    let gw = log_text(&log);
    let line = gw.lines().find(|l| l.contains(fetched)).unwrap();
    println!("firmware target fetched: {line}");

    // Polls go on; the bundle is not fetched again.
    let access = work.join("nginx/access.log");
    let polls = count(&access, "GET /demo-kit/timestamp.signed");
    assert!(wait_more(
        &access,
        "GET /demo-kit/timestamp.signed",
        polls + 2,
        Duration::from_secs(10)
    ));
    assert_eq!(count(&access, ".firmware.bundle HTTP/1.1\" 200"), 1);
    assert_eq!(count(&log, fetched), 1);

    // Another bundle published, and its file replaced on the server by
    // other bytes of the same size (nginx stopped meanwhile, so the kit
    // never sees the true one).
    nginx.stop();
    let second_path = work.join("second.bundle");
    std::fs::write(&second_path, &second).unwrap();
    publish_with(&kit, &["--firmware", second_path.to_str().unwrap()]);
    let target = kit.join(format!(
        "hq/repo/demo-kit/targets/{}.firmware.bundle",
        hex(&sha256(&second))
    ));
    assert!(target.exists(), "{}", target.display());
    let mut forged = second.clone();
    forged[4 << 20] ^= 1;
    std::fs::write(&target, &forged).unwrap();
    nginx.start();
    let refused = "decision=\"repository\" reason=\"hash-mismatch\"";
    assert!(
        wait_for(&log, refused, Duration::from_secs(70)),
        "the forged bundle refused:\n{}",
        log_text(&log)
    );
    // Refused once, not fetched again every poll; the bundle handed over
    // before is untouched, nothing half-written left.
    let polls = count(&access, "GET /demo-kit/timestamp.signed");
    assert!(wait_more(
        &access,
        "GET /demo-kit/timestamp.signed",
        polls + 2,
        Duration::from_secs(70)
    ));
    assert_eq!(count(&log, refused), 1, "{}", log_text(&log));
    assert_eq!(count(&log, fetched), 1);
    assert_eq!(std::fs::read(&handed).unwrap(), first);
    assert!(!kit.join("firmware.bundle.part").exists());
    assert_eq!(
        std::fs::read_to_string(kit.join("firmware.fetched")).unwrap(),
        hex(&sha256(&first))
    );

    // PID 1's firmware agent reports its decisions as files beside the
    // policy bundle; the gateway records each in the audit trail and
    // removes it; one that does not parse is recorded as such.
    let reports = kit.join("firmware.events");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(
        reports.join("00000000000000000000000000000001-refused.event"),
        "event=refused\nfrom_version=1\nreason=signature: not HQ's firmware key\n",
    )
    .unwrap();
    std::fs::write(
        reports.join("00000000000000000000000000000002-committed.event"),
        "event=committed\nversion=2\nslot=b\nfloor=2\n",
    )
    .unwrap();
    std::fs::write(
        reports.join("00000000000000000000000000000003-x.event"),
        "event=exploded\n",
    )
    .unwrap();
    for needle in [
        "decision=\"firmware\" reason=\"refused\" running_version=\"1\" detail=\"signature: not HQ's firmware key\"",
        "decision=\"firmware\" reason=\"committed\" version=\"2\" slot=\"b\" floor=\"2\"",
        "decision=\"firmware\" reason=\"malformed-report\"",
    ] {
        assert!(
            wait_for(&log, needle, Duration::from_secs(5)),
            "{needle}:\n{}",
            log_text(&log)
        );
    }
    assert!(
        wait_for_empty(&reports, Duration::from_secs(3)),
        "reports removed"
    );
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}

fn wait_for_empty(dir: &Path, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if std::fs::read_dir(dir).unwrap().next().is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The uplink hook: a kit polling only every minute polls at once on
/// SIGUSR1 (PID 1 sends it when the uplink's DHCP lease is applied, moves
/// or is lost), so a publication made meanwhile is applied in seconds.
#[test]
fn an_uplink_change_polls_the_repository_at_once() {
    const PORT: u16 = 20448;
    let (work, kit, log) = common::work_dir("e2e-manage-uplink");
    init_managed_kit(&kit, PORT);
    common::edit_config(&kit, |t| {
        t.replace("interval_ms = 1000", "interval_ms = 60000")
    });
    let mut nginx = Nginx::new(&work, &kit, PORT);
    nginx.start();
    let mut procs = Procs(Vec::new());
    common::start_demo(&mut procs, &kit, &log);
    assert!(
        wait_for(
            &log,
            "policy applied decision=\"applied\" version=2",
            Duration::from_secs(10)
        ),
        "the first poll at start: {}",
        log_text(&log)
    );
    // A new policy at HQ (alice revoked: version 3), published.
    let hq = kit.join("hq");
    ctl(&["token", "revoke", "--dir", hq.to_str().unwrap(), "alice"]);
    let published = publish(&kit);
    assert!(published.contains("policy version 3"), "{published}");
    // Not applied by itself within 5 s: the next poll is a minute away.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(count(&log, "version=3"), 0, "{}", log_text(&log));
    let pid = procs.0[0].id().to_string();
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        wait_for(
            &log,
            "policy applied decision=\"applied\" version=3",
            Duration::from_secs(5)
        ),
        "SIGUSR1 polled at once: {}",
        log_text(&log)
    );
    assert!(log_text(&log).contains("uplink changed: polling the repository now"));
    println!(
        "uplink change (SIGUSR1) to the new policy applied: {} ms",
        sent.elapsed().as_millis()
    );
    // The gateway is still up: SIGUSR1 is handled, not fatal.
    assert!(procs.0[0].try_wait().unwrap().is_none(), "gateway alive");
    drop(procs);
    drop(nginx);
    std::fs::remove_dir_all(&work).ok();
}
