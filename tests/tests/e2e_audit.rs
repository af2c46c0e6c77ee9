//! The audit trail against a real home SIEM: rsyslog (Debian's rsyslog,
//! rsyslog-relp, rsyslog-openssl) with mutual TLS, storing each record as
//! received (`tests/peers/rsyslog-siem.conf`). Calls through `dialgate
//! demo` (baresip), refusals and a policy change produce records that an
//! independent RFC 5424 parser reads (`tests/peers/rfc5424_check.py`) and
//! `dialgatectl audit verify` proves complete; the SIEM stopped during
//! calls and the gateway killed with SIGKILL lose nothing; a trail with a
//! record removed, altered, cut off or a forged checkpoint is named at its
//! first bad record; a flood of refused handshakes is summarised.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{baresip, publish_policy, render, wait_for, wait_port, Procs, DIALGATE, PEERS};

const RELP_PORT: u16 = 20514;
const SYSLOG_PORT: u16 = 20601;

/// rsyslog as the home SIEM, its received records in `out`.
struct Siem {
    conf: PathBuf,
    out: PathBuf,
    pid: PathBuf,
    child: Option<Child>,
}

impl Siem {
    fn new(work: &Path, kit: &Path) -> Siem {
        let dir = work.join("siem");
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let https = kit.join("hq/https");
        let p = |f: &str| https.join(f).display().to_string();
        let conf = dir.join("rsyslog.conf");
        let out = dir.join("received.log");
        std::fs::write(
            &conf,
            render(
                "rsyslog-siem.conf",
                &[
                    ("WORK", dir.join("work").display().to_string()),
                    ("CLIENT_CA", p("client-ca.pem")),
                    ("SERVER_CERT", p("server-cert.pem")),
                    ("SERVER_KEY", p("server-key.pem")),
                    ("RELP_PORT", RELP_PORT.to_string()),
                    ("SYSLOG_PORT", SYSLOG_PORT.to_string()),
                    ("OUT", out.display().to_string()),
                ],
            ),
        )
        .unwrap();
        Siem {
            conf,
            out,
            pid: dir.join("rsyslogd.pid"),
            child: None,
        }
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        let log = self.conf.with_file_name("rsyslogd.log");
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&self.conf)
            .arg("-i")
            .arg(&self.pid)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .expect("rsyslogd runs (apt-get install rsyslog rsyslog-relp rsyslog-openssl)");
        self.child = Some(child);
        assert!(
            wait_port(RELP_PORT, Duration::from_secs(10))
                && wait_port(SYSLOG_PORT, Duration::from_secs(10)),
            "rsyslog listens: {}",
            std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            term(&mut c);
        }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the received records contain `n` lines with `needle`.
    fn wait_count(&self, needle: &str, n: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.received().matches(needle).count() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for Siem {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM, then wait (at most 15 s, then SIGKILL).
fn term(c: &mut Child) {
    let _ = Command::new("kill").arg(c.id().to_string()).status();
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// `dialgate demo --init-only --dir KIT [--siem URL]`.
fn init_kit(kit: &Path, siem: Option<&str>) {
    let mut cmd = Command::new(&*DIALGATE);
    cmd.args(["demo", "--init-only", "--dir"]).arg(kit);
    if let Some(url) = siem {
        cmd.args(["--siem", url]);
    }
    let out = cmd.output().expect("dialgate runs");
    assert!(
        out.status.success(),
        "kit created: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `dialgate demo` (stderr to `log`) and waits until it serves.
fn demo(kit: &Path, log: &Path) -> Child {
    let child = Command::new(&*DIALGATE)
        .args(["demo", "--dir"])
        .arg(kit)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("dialgate runs");
    assert!(
        wait_for(log, "listening for phones", Duration::from_secs(30)),
        "gateway up: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    child
}

/// A phone with `who`'s token tries to connect; the gateway refuses it at
/// the handshake (revoked or unregistered tokens).
fn refused_handshake(kit: &Path, who: &str) {
    use std::io::{Read, Write};
    let (mut tls, _) = common::phone_tls(kit, "127.0.0.1:5061", who).unwrap();
    // The handshake completes on the first write; the refusal follows.
    let _ = tls.write_all(b"OPTIONS");
    let _ = tls.read(&mut [0u8; 64]);
}

/// One record as the independent parser read it.
#[derive(Debug)]
struct Rec {
    seq: u64,
    msgid: String,
    severity: String,
    facility: String,
    hostname: String,
    appname: String,
    params: HashMap<String, String>,
}

/// Parses `file` with `tests/peers/rfc5424_check.py`.
fn parse_independently(file: &Path) -> Vec<Rec> {
    let out = Command::new("python3")
        .arg(format!("{PEERS}/rfc5424_check.py"))
        .arg(file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "every record is RFC 5424: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Rec {
                seq: f[0].parse().unwrap(),
                msgid: f[1].into(),
                severity: f[2].into(),
                facility: f[3].into(),
                hostname: f[4].into(),
                appname: f[5].into(),
                params: f[6..]
                    .iter()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        })
        .collect()
}

/// `dialgatectl audit verify`: (success, stdout + stderr).
fn verify(kit: &Path, file: &Path, through: Option<u64>) -> (bool, String) {
    let mut cmd = Command::new(common::bin("dialgatectl"));
    cmd.args(["audit", "verify", "--dir"]).arg(kit.join("hq"));
    if let Some(t) = through {
        cmd.args(["--through", &t.to_string()]);
    }
    let out = cmd.arg(file).output().expect("dialgatectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn has<'a>(recs: &'a [Rec], msgid: &str, want: &[(&str, &str)]) -> Option<&'a Rec> {
    recs.iter().find(|r| {
        r.msgid == msgid
            && want
                .iter()
                .all(|(k, v)| r.params.get(*k).is_some_and(|x| x.contains(v)))
    })
}

/// The sequence number of the newest record in the kit's spool.
fn spool_newest(kit: &Path) -> u64 {
    let spool = std::fs::read_to_string(kit.join("state/audit/audit.spool")).unwrap();
    let last = spool.lines().last().expect("a record in the spool");
    let seq = last.split("seq=\"").nth(1).unwrap();
    seq[..seq.find('"').unwrap()].parse().unwrap()
}

#[test]
fn calls_refusals_and_a_policy_change_reach_rsyslog_over_relp_and_verify() {
    let (work, kit, log) = common::work_dir("e2e-audit-relp");
    let _cleanup = common::RemoveOnSuccess(work.clone());
    init_kit(&kit, Some(&format!("relp-tls://127.0.0.1:{RELP_PORT}")));
    let mut siem = Siem::new(&work, &kit);
    siem.start();
    let mut gw = Procs(vec![demo(&kit, &log)]);

    let call = baresip(&kit, "alice", 5);
    assert!(call.status.success());
    assert!(
        wait_for(&log, "media stopped", Duration::from_secs(10)),
        "alice's call ended"
    );
    refused_handshake(&kit, "mallory");
    refused_handshake(&kit, "eve");
    let built = publish_policy(&kit, &[]);
    assert!(built.contains("policy version 2"), "{built}");
    assert!(
        wait_for(&log, "version=2", Duration::from_secs(5)),
        "policy 2 applied"
    );
    // Ten idle seconds: a checkpoint vouches for what came before.
    assert!(
        siem.wait_count(" checkpoint [", 1, Duration::from_secs(20)),
        "an idle checkpoint:\n{}",
        siem.received()
    );
    // A clean stop: the stop record and a last checkpoint, drained to the SIEM.
    term(&mut gw.0[0]);
    assert!(
        siem.wait_count("dialgate stopping", 1, Duration::from_secs(10)),
        "the stop record arrived:\n{}",
        siem.received()
    );
    assert!(siem.wait_count(" checkpoint [", 2, Duration::from_secs(5)));
    siem.stop();

    let recs = parse_independently(&siem.out);
    let n = recs.len() as u64;
    assert!(n >= 12, "{n} records");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "in order, none missing: {r:?}");
        assert_eq!(
            (r.hostname.as_str(), r.appname.as_str(), r.facility.as_str()),
            ("demo-kit", "dialgate", "audit")
        );
    }
    assert_eq!(recs[0].msgid, "start");
    assert_eq!(recs.last().unwrap().msgid, "checkpoint");
    let tls = has(
        &recs,
        "admitted",
        &[("token", "alice"), ("version", "TLSv1_3")],
    );
    assert!(tls.is_some(), "alice admitted at TLS: {recs:#?}");
    assert!(has(&recs, "admitted", &[("token", "alice"), ("alias", "echo")]).is_some());
    assert!(has(
        &recs,
        "started",
        &[("token", "alice"), ("phone_suite", "AES")]
    )
    .is_some());
    assert!(has(&recs, "ended", &[("token", "alice"), ("alias", "echo")]).is_some());
    let media = has(&recs, "media", &[]).expect("media counters");
    assert!(
        media.params["phone_in"].parse::<u64>().unwrap() > 50,
        "{media:?}"
    );
    assert_eq!(media.params["phone_auth_failed"], "0");
    let mallory = has(
        &recs,
        "refused",
        &[("token", "mallory"), ("reason", "revoked")],
    );
    assert!(mallory.is_some(), "mallory refused: {recs:#?}");
    assert_eq!(mallory.unwrap().severity, "warning");
    assert!(
        has(&recs, "refused", &[("reason", "not registered")]).is_some(),
        "eve refused"
    );
    assert!(has(&recs, "applied", &[("version", "1")]).is_some());
    assert!(has(&recs, "applied", &[("version", "2")]).is_some());
    let text = siem.received();
    assert!(!text.contains("PRIVATE KEY") && !text.contains("BEGIN"));

    let (ok, said) = verify(&kit, &siem.out, Some(spool_newest(&kit)));
    assert!(ok, "{said}");
    assert!(said.contains(&format!("{n} records verified")), "{said}");
    // Everything was acknowledged: nothing waits in the spool.
    let acked = std::fs::read_to_string(kit.join("state/audit/audit.acked")).unwrap();
    assert_eq!(acked.trim(), n.to_string());

    // Tampering, each named at its first bad record.
    let lines: Vec<&str> = text.lines().collect();
    let write = |name: &str, ls: &[String]| {
        let p = work.join(name);
        std::fs::write(&p, ls.join("\n") + "\n").unwrap();
        p
    };
    let own: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let k = 5;
    let mut removed = own.clone();
    removed.remove(k - 1);
    let (ok, said) = verify(&kit, &write("removed.log", &removed), None);
    assert!(
        !ok && said.contains(&format!("records {k}..={k} are missing")),
        "{said}"
    );

    let mut altered = own.clone();
    let i = recs.iter().position(|r| r.msgid == "ended").unwrap();
    altered[i] = altered[i].replace("alias=\"echo\"", "alias=\"other\"");
    assert_ne!(altered[i], own[i]);
    let (ok, said) = verify(&kit, &write("altered.log", &altered), None);
    assert!(
        !ok && said.contains(&format!("record {} was altered", i + 1)),
        "{said}"
    );

    // The newest records cut off: a cut after a record that is not a
    // checkpoint leaves records nothing vouches for...
    let j = (1..recs.len())
        .rev()
        .find(|&j| recs[j - 1].msgid != "checkpoint")
        .unwrap();
    let last_cp = recs[..j]
        .iter()
        .rev()
        .find(|r| r.msgid == "checkpoint")
        .map_or(0, |r| r.seq);
    let (ok, said) = verify(&kit, &write("cut.log", &own[..j]), None);
    assert!(
        !ok && said.contains(&format!("records {}..={j}", last_cp + 1))
            && said.contains("not vouched for"),
        "{said}"
    );
    // ...and a cut just after a checkpoint shows against the kit's count.
    let c = recs[..recs.len() - 1]
        .iter()
        .rposition(|r| r.msgid == "checkpoint")
        .unwrap();
    let cut2 = write("cut2.log", &own[..=c]);
    assert!(
        verify(&kit, &cut2, None).0,
        "a whole trail up to a checkpoint"
    );
    let (ok, said) = verify(&kit, &cut2, Some(n));
    assert!(
        !ok && said.contains(&format!("records {}..={n} are missing", c + 2)),
        "{said}"
    );

    // A forged checkpoint: the last one signed over other records (its
    // signature taken from an earlier checkpoint).
    let cps: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.msgid == "checkpoint")
        .map(|(i, _)| i)
        .collect();
    assert!(cps.len() >= 2, "two checkpoints");
    let sig = |l: &str| {
        l.split("sig=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    let (first, last) = (cps[0], *cps.last().unwrap());
    let mut forged = own.clone();
    forged[last] = forged[last].replace(&sig(&own[last]), &sig(&own[first]));
    assert_ne!(forged[last], own[last]);
    let (ok, said) = verify(&kit, &write("forged.log", &forged), None);
    assert!(
        !ok && said.contains(&format!("checkpoint record {} is forged", last + 1)),
        "{said}"
    );
}

#[test]
fn nothing_is_lost_across_a_siem_outage_and_a_killed_gateway() {
    let (work, kit, log) = common::work_dir("e2e-audit-outage");
    let _cleanup = common::RemoveOnSuccess(work.clone());
    init_kit(&kit, Some(&format!("relp-tls://127.0.0.1:{RELP_PORT}")));
    let mut siem = Siem::new(&work, &kit);
    siem.start();
    let mut gw = demo(&kit, &log);
    assert!(baresip(&kit, "alice", 3).status.success());
    assert!(siem.wait_count("call ended", 1, Duration::from_secs(15)));

    // The SIEM goes away; calls go on, their records wait in the spool.
    siem.stop();
    assert!(baresip(&kit, "alice", 3).status.success());
    refused_handshake(&kit, "eve");
    assert!(
        wait_for(&log, "SIEM unreachable", Duration::from_secs(10)),
        "the outage is recorded"
    );
    assert!(wait_for(&log, "media stopped", Duration::from_secs(5)));
    // A power cut, as far as the gateway can tell.
    gw.kill().unwrap();
    gw.wait().unwrap();
    let log2 = work.join("gateway2.log");
    let mut gw = Procs(vec![demo(&kit, &log2)]);
    assert!(baresip(&kit, "alice", 3).status.success());
    siem.start();
    assert!(
        siem.wait_count("call ended", 3, Duration::from_secs(45)),
        "all three calls' records arrive:\n{}",
        siem.received()
    );
    term(&mut gw.0[0]);
    assert!(siem.wait_count("dialgate stopping", 1, Duration::from_secs(15)));
    siem.stop();

    let newest = spool_newest(&kit);
    let (ok, said) = verify(&kit, &siem.out, Some(newest));
    assert!(ok, "zero missing through {newest}: {said}");
    println!("after the outage and the kill: {said}");
    let recs = parse_independently(&siem.out);
    assert_eq!(recs.iter().filter(|r| r.msgid == "start").count(), 2);
    assert_eq!(
        recs.iter()
            .filter(|r| r.msgid == "ended" && r.params.get("token").is_some_and(|t| t == "alice"))
            .count(),
        3,
        "every call's end record, each once after de-duplication is the verifier's job"
    );
}

#[test]
fn rfc5425_syslog_over_tls_delivers_a_verifiable_trail() {
    let (work, kit, log) = common::work_dir("e2e-audit-5425");
    let _cleanup = common::RemoveOnSuccess(work.clone());
    init_kit(&kit, Some(&format!("syslog-tls://127.0.0.1:{SYSLOG_PORT}")));
    let mut siem = Siem::new(&work, &kit);
    siem.start();
    let mut gw = Procs(vec![demo(&kit, &log)]);
    refused_handshake(&kit, "eve");
    assert!(siem.wait_count("not registered", 1, Duration::from_secs(10)));
    term(&mut gw.0[0]);
    assert!(siem.wait_count("dialgate stopping", 1, Duration::from_secs(10)));
    assert!(siem.wait_count(" checkpoint [", 1, Duration::from_secs(5)));
    siem.stop();
    let recs = parse_independently(&siem.out);
    assert!(recs
        .iter()
        .any(|r| r.msgid == "siem" && r.params["transport"] == "syslog"));
    let (ok, said) = verify(&kit, &siem.out, Some(spool_newest(&kit)));
    assert!(ok, "{said}");
}

#[test]
fn a_flood_of_refused_handshakes_is_summarised_not_spooled_one_by_one() {
    let (work, kit, log) = common::work_dir("e2e-audit-flood");
    let _cleanup = common::RemoveOnSuccess(work);
    init_kit(&kit, None);
    let mut gw = Procs(vec![demo(&kit, &log)]);
    const FLOOD: usize = 200;
    let started = Instant::now();
    for _ in 0..FLOOD {
        refused_handshake(&kit, "eve");
    }
    println!("{FLOOD} refused handshakes in {:?}", started.elapsed());
    // The summary comes when its window (10 s) closes.
    assert!(
        wait_for(
            &kit.join("state/audit/audit.spool"),
            " summary [",
            Duration::from_secs(25)
        ),
        "a summary record"
    );
    term(&mut gw.0[0]);
    let spool = kit.join("state/audit/audit.spool");
    let bytes = std::fs::metadata(&spool).unwrap().len();
    let recs = parse_independently(&spool);
    let one_by_one = recs
        .iter()
        .filter(|r| {
            r.msgid == "refused"
                && r.params
                    .get("reason")
                    .is_some_and(|x| x.contains("not registered"))
        })
        .count();
    let summarised: usize = recs
        .iter()
        .filter(|r| r.msgid == "summary")
        .map(|r| r.params["refused"].parse::<usize>().unwrap())
        .sum();
    println!(
        "{one_by_one} refusals recorded one by one, {summarised} summarised, spool {bytes} octets"
    );
    assert_eq!(one_by_one + summarised, FLOOD, "every refusal counted once");
    assert!(
        one_by_one <= 2 * 20,
        "at most 20 per 10 s one by one: {one_by_one}"
    );
    assert!(bytes < 32 << 10, "the spool stays small: {bytes}");
    let (ok, said) = verify(&kit, &spool, Some(spool_newest(&kit)));
    assert!(ok, "{said}");
}

#[test]
fn a_full_spool_refuses_new_phones_and_records_why() {
    let (work, kit, log) = common::work_dir("e2e-audit-full");
    let _cleanup = common::RemoveOnSuccess(work);
    init_kit(&kit, None);
    // The smallest spool allowed, and no SIEM to empty it.
    common::edit_config(&kit, |t| {
        t.replace("[audit]\n", "[audit]\nspool_bytes = 65536\n")
    });
    let mut gw = Procs(vec![demo(&kit, &log)]);
    let spool = kit.join("state/audit/audit.spool");
    let mut admitted = 0;
    let mut refused_at = None;
    for i in 0..600 {
        use std::io::{Read, Write};
        let (mut tls, _) = common::phone_tls(&kit, "127.0.0.1:5061", "alice").unwrap();
        let _ = tls.write_all(b"\r\n\r\n");
        std::thread::sleep(Duration::from_millis(20));
        if std::fs::read_to_string(&spool)
            .unwrap()
            .contains("audit spool full")
        {
            refused_at = Some(i);
            // The gateway closed this connection instead of serving it.
            let mut buf = [0u8; 16];
            assert!(matches!(tls.read(&mut buf), Ok(0) | Err(_)));
            break;
        }
        admitted += 1;
    }
    let at = refused_at.expect("phones refused once the spool is 90% full");
    println!("{admitted} connections admitted before the 64 KiB spool refused phone {at}");
    assert!(admitted > 20, "{admitted}");
    term(&mut gw.0[0]);
    let bytes = std::fs::metadata(&spool).unwrap().len();
    assert!(bytes <= 65536, "the spool stayed within its bound: {bytes}");
    let recs = parse_independently(&spool);
    let full = has(
        &recs,
        "refused",
        &[("token", "alice"), ("reason", "audit spool full")],
    );
    assert_eq!(full.expect("the refusal is recorded").severity, "err");
    assert!(
        recs.iter().all(|r| r.msgid != "lost"),
        "nothing lost before the refusal"
    );
    let (ok, said) = verify(&kit, &spool, Some(spool_newest(&kit)));
    assert!(ok, "{said}");
}
