//! `bench poll [--seconds S]`: what the kit's poll of its repository
//! costs on the wire, unchanged (the timestamp answered 304) and with a
//! change (a revocation published: timestamp, snapshot and policy), beside
//! the reference in the same run: one `curl` GET of the same timestamp
//! with the same device certificate.
//!
//! A demo kit made with `--hq-url` polls (every second) through a counting
//! TCP relay of this benchmark in front of real nginx
//! (`tests/peers/nginx-hq.conf`); a poll is the connections that follow
//! each other within 300 ms. Bytes are TCP payload both ways (TLS
//! handshake and records included), time from the first connect to the
//! last close.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{opt, Killed};

const NGINX_PORT: u16 = 20843;

#[derive(Clone, Copy, Debug)]
struct Conn {
    start: Instant,
    end: Instant,
    up: u64,
    down: u64,
}

fn pump(mut from: TcpStream, mut to: TcpStream) -> u64 {
    let mut n = 0;
    let mut buf = [0u8; 16 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                if to.write_all(&buf[..k]).is_err() {
                    break;
                }
                n += k as u64;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    n
}

/// A relay to nginx that records every connection's bytes and times.
fn relay(listener: TcpListener, conns: Arc<Mutex<Vec<Conn>>>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let conns = Arc::clone(&conns);
        std::thread::spawn(move || {
            let start = Instant::now();
            let Ok(server) = TcpStream::connect(("127.0.0.1", NGINX_PORT)) else {
                return;
            };
            let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                (Ok(c), Ok(s)) => (c, s),
                _ => return,
            };
            let up = std::thread::spawn(move || pump(client, server));
            let down = pump(s2, c2);
            let up = up.join().unwrap_or(0);
            if let Ok(mut v) = conns.lock() {
                v.push(Conn {
                    start,
                    end: Instant::now(),
                    up,
                    down,
                });
            }
        });
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls: connections grouped by gaps of more than 300 ms.
fn polls(conns: &[Conn]) -> Vec<Vec<Conn>> {
    let mut v = conns.to_vec();
    v.sort_by_key(|c| c.start);
    let mut out: Vec<Vec<Conn>> = Vec::new();
    for c in v {
        match out.last_mut() {
            Some(p)
                if c.start.duration_since(p.last().map_or(c.start, |l| l.end))
                    < Duration::from_millis(300) =>
            {
                p.push(c)
            }
            _ => out.push(vec![c]),
        }
    }
    out
}

fn line(name: &str, p: &[Conn]) -> String {
    let up: u64 = p.iter().map(|c| c.up).sum();
    let down: u64 = p.iter().map(|c| c.down).sum();
    let t = p
        .last()
        .map_or(Duration::ZERO, |l| l.end.duration_since(p[0].start));
    format!(
        "  {name:<46} {:>2} connection(s)  {:>6} octets up  {:>6} octets down  {:>6.1} ms",
        p.len(),
        up,
        down,
        t.as_secs_f64() * 1e3
    )
}

fn median_of(polls: &[&Vec<Conn>]) -> Option<Vec<Conn>> {
    let mut v: Vec<&Vec<Conn>> = polls.to_vec();
    v.sort_by_key(|p| p.last().map(|l| l.end.duration_since(p[0].start)));
    v.get(v.len() / 2).map(|p| (*p).clone())
}

/// The poll benchmark.
pub fn run(opts: &[String]) -> Result<(), String> {
    let seconds: u64 = opt(opts, "--seconds")
        .map(|v| v.parse().map_err(|_| format!("--seconds {v}: a number")))
        .transpose()?
        .unwrap_or(10);
    let work: PathBuf =
        std::env::temp_dir().join(format!("dialgate-bench-poll-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("nginx")).map_err(|e| e.to_string())?;
    let kit = work.join("kit");
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let relay_port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let dialgate = dialgate_tests::bin("dialgate");
    let ctl = dialgate_tests::bin("dialgatectl");
    run_ok(
        Command::new(&dialgate)
            .args(["demo", "--init-only", "--hq-url"])
            .arg(format!("https://127.0.0.1:{relay_port}/"))
            .arg("--dir")
            .arg(&kit),
        "dialgate demo --init-only --hq-url",
    )?;
    let https = kit.join("hq/https");
    let p = |f: &str| https.join(f).display().to_string();
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/peers/nginx-hq.conf"))
        .map_err(|e| e.to_string())?
        .replace("@WORK@", &work.join("nginx").display().to_string())
        .replace("@PORT@", &NGINX_PORT.to_string())
        .replace("@SERVER_CERT@", &p("server-cert.pem"))
        .replace("@SERVER_KEY@", &p("server-key.pem"))
        .replace("@CLIENT_CA@", &p("client-ca.pem"))
        .replace("@REPO@", &kit.join("hq/repo").display().to_string());
    let conf_path = work.join("nginx/nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let conns = Arc::new(Mutex::new(Vec::new()));
    {
        let conns = Arc::clone(&conns);
        std::thread::spawn(move || relay(listener, conns));
    }
    let mut procs = Killed(vec![Command::new("nginx")
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nginx: {e}"))?]);
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
    std::thread::sleep(Duration::from_secs(seconds));
    // A change: alice revoked and published.
    let hq = kit.join("hq");
    run_ok(
        Command::new(&ctl)
            .args(["token", "revoke", "--dir"])
            .arg(&hq)
            .arg("alice"),
        "dialgatectl token revoke",
    )?;
    let published = Instant::now();
    run_ok(
        Command::new(&ctl)
            .args(["publish", "--dir"])
            .arg(&hq)
            .arg("--out")
            .arg(kit.join("hq/repo")),
        "dialgatectl publish",
    )?;
    std::thread::sleep(Duration::from_secs(4));
    // The kit stops polling; then the reference: one GET of the same
    // timestamp by curl, with the same identity.
    if let Some(gw) = procs.0.pop() {
        drop(Killed(vec![gw]));
    }
    std::thread::sleep(Duration::from_millis(500));
    let curl_at = Instant::now();
    run_ok(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--tlsv1.3"])
            .arg("--cacert")
            .arg(kit.join("device/hq-ca.pem"))
            .arg("--cert")
            .arg(kit.join("device/cert.pem"))
            .arg("--key")
            .arg(kit.join("device/key.pem"))
            .arg(format!(
                "https://127.0.0.1:{relay_port}/demo-kit/timestamp.signed"
            )),
        "curl",
    )?;
    std::thread::sleep(Duration::from_millis(300));
    drop(procs);
    let all = conns.lock().map(|v| v.clone()).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&work);
    let curl: Vec<Conn> = all.iter().filter(|c| c.start >= curl_at).copied().collect();
    let kit_conns: Vec<Conn> = all.iter().filter(|c| c.start < curl_at).copied().collect();
    let ps = polls(&kit_conns);
    let unchanged: Vec<&Vec<Conn>> = ps
        .iter()
        .skip(1)
        .filter(|p| p.len() == 1 && p[0].end < published)
        .collect();
    let changed: Vec<&Vec<Conn>> = ps
        .iter()
        .filter(|p| p.len() >= 3 && p[0].start >= published)
        .collect();
    println!(
        "the kit's repository poll through a counting relay to nginx (1 s interval, {} polls seen):",
        ps.len()
    );
    let u = median_of(&unchanged).ok_or("no unchanged poll seen")?;
    println!(
        "{} (median of {})",
        line("unchanged (timestamp: 304 Not Modified)", &u),
        unchanged.len()
    );
    let c = changed.first().ok_or("no poll fetched the publication")?;
    println!("{}", line("changed (timestamp, snapshot, policy: 200)", c));
    if curl.is_empty() {
        return Err("curl's request was not seen".into());
    }
    println!(
        "{}",
        line("reference: curl, one GET of timestamp.signed", &curl)
    );
    Ok(())
}
