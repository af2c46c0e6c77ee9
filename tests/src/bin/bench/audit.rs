//! `bench audit [--records N]`: how fast the kit can keep and ship its
//! audit trail (docs/audit.md, docs/benchmarks.md).
//!
//! - Spooling: N records numbered, chained and appended with
//!   `fdatasync` each (`dialgate::audit::Spool`, what the daemon does per
//!   event), beside the reference in the same run: the same lines
//!   appended with `write` + `fdatasync` and nothing else (the device's
//!   floor).
//! - Shipping: a demo kit whose spool holds N records not yet shipped,
//!   started (`dialgate demo`, built beside the bench) against rsyslog
//!   (RELP over TLS, then RFC 5425 over TLS, mutual TLS, as in
//!   `tests/tests/e2e_audit.rs`): records per second from the first
//!   record rsyslog stores to the N-th.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dialgate::audit::Spool;
use dialgate_audit::{rfc3339, Chain, Event, Header, Severity};

use super::{opt, Killed};

const RELP_PORT: u16 = 20714;
const SYSLOG_PORT: u16 = 20701;

/// A record of the size of a phone's TLS admission.
fn sample(i: u64) -> Event {
    Event {
        severity: Severity::Info,
        msgid: "admitted".into(),
        params: vec![
            (
                "peer".into(),
                format!("192.0.2.{}:{}", i % 250, 40000 + i % 20000),
            ),
            ("token".into(), "alice".into()),
            ("key".into(), "c0175615df369cd2".into()),
            ("version".into(), "TLSv1_3".into()),
            ("group".into(), "X25519MLKEM768".into()),
        ],
        message: "phone admitted at TLS".into(),
    }
}

fn tmp(name: &str) -> Result<PathBuf, String> {
    let d = std::env::temp_dir().join(format!(
        "dialgate-bench-audit-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    Ok(d)
}

/// Fills `dir` with `n` chained records; returns the bytes written.
fn spool_records(dir: &Path, n: u64) -> Result<u64, String> {
    let mut chain = Chain::genesis();
    let mut spool = Spool::open(dir, 1 << 30).map_err(|e| e.to_string())?;
    let mut bytes = 0;
    for i in 0..n {
        let ts = rfc3339(1_796_000_000_000_000 + i);
        let h = Header {
            timestamp: &ts,
            hostname: "demo-kit",
            procid: 1,
        };
        let r = chain.append(&h, &sample(i));
        bytes += r.line.len() as u64 + 1;
        spool.append(r.seq, &r.line).map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

fn spooling(n: u64) -> Result<(), String> {
    let dir = tmp("spool")?;
    let t = Instant::now();
    let bytes = spool_records(&dir, n)?;
    let ours = t.elapsed();
    let line = std::fs::read_to_string(dir.join("audit.spool"))
        .map_err(|e| e.to_string())?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
        + "\n";
    let path = dir.join("reference");
    let mut f = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        f.sync_data().map_err(|e| e.to_string())?;
    }
    let reference = t.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "audit spool, {n} records of {} octets on average, fdatasync after each ({}):",
        bytes / n.max(1),
        std::env::temp_dir().display()
    );
    println!(
        "  dialgate (chain + format + append + fdatasync): {:>9.0} records/s  {:>7.1} us/record",
        rate(ours),
        ours.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "  reference (write + fdatasync of the same line): {:>9.0} records/s  {:>7.1} us/record",
        rate(reference),
        reference.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}

fn lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

fn shipping(n: u64, url: &str, name: &str) -> Result<(), String> {
    let work = tmp(name)?;
    let kit = work.join("kit");
    let dialgate = dialgate_tests::bin("dialgate");
    let st = Command::new(&dialgate)
        .args(["demo", "--init-only", "--dir"])
        .arg(&kit)
        .args(["--siem", url])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("dialgate demo --init-only failed".into());
    }
    spool_records(&kit.join("state/audit"), n)?;
    let https = kit.join("hq/https");
    let out = work.join("received.log");
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/peers/rsyslog-siem.conf"
    ))
    .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(work.join("work")).map_err(|e| e.to_string())?;
    let p = |f: &str| https.join(f).display().to_string();
    let conf = conf
        .replace("@WORK@", &work.join("work").display().to_string())
        .replace("@CLIENT_CA@", &p("client-ca.pem"))
        .replace("@SERVER_CERT@", &p("server-cert.pem"))
        .replace("@SERVER_KEY@", &p("server-key.pem"))
        .replace("@RELP_PORT@", &RELP_PORT.to_string())
        .replace("@SYSLOG_PORT@", &SYSLOG_PORT.to_string())
        .replace("@OUT@", &out.display().to_string());
    std::fs::write(work.join("rsyslog.conf"), conf).map_err(|e| e.to_string())?;
    let mut procs = Killed(vec![Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(work.join("rsyslog.conf"))
        .arg("-i")
        .arg(work.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("rsyslogd: {e}"))?]);
    std::thread::sleep(Duration::from_millis(500));
    procs.0.push(
        Command::new(&dialgate)
            .args(["demo", "--dir"])
            .arg(&kit)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut first = None;
    let mut got = 0;
    while Instant::now() < deadline {
        got = lines(&out);
        if first.is_none() && got > 0 {
            first = Some(Instant::now());
        }
        if got >= n as usize {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let first = first.ok_or("rsyslog received nothing")?;
    let took = first.elapsed();
    if took < Duration::from_millis(5) {
        return Err(format!(
            "{name}: {got} records arrived within one poll of the file ({took:?}): too few to time, use more --records"
        ));
    }
    drop(procs);
    let bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
    let _ = std::fs::remove_dir_all(&work);
    if got < n as usize {
        return Err(format!(
            "{name}: only {got} of {n} records arrived in 120 s"
        ));
    }
    println!(
        "  {name:<34} {:>9.0} records/s  {:>6.2} MB/s  ({got} records, {bytes} octets stored)",
        n as f64 / took.as_secs_f64(),
        bytes as f64 / took.as_secs_f64() / 1e6
    );
    Ok(())
}

/// The audit benchmark.
pub fn run(opts: &[String]) -> Result<(), String> {
    let n: u64 = opt(opts, "--records")
        .map(|v| v.parse().map_err(|_| format!("--records {v}: a number")))
        .transpose()?
        .unwrap_or(20_000);
    spooling(n)?;
    println!("audit shipping to rsyslog over mutual TLS on loopback, a backlog of {n} records:");
    shipping(
        n,
        &format!("relp-tls://127.0.0.1:{RELP_PORT}"),
        "RELP (window 64, acknowledged)",
    )?;
    shipping(
        n,
        &format!("syslog-tls://127.0.0.1:{SYSLOG_PORT}"),
        "RFC 5425 (octet counting)",
    )?;
    Ok(())
}
