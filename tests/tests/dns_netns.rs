//! Trunks by name through the network's resolver (`[dns]`,
//! `gateway/src/dns.rs`, `docs/network.md` "DNS"), in network namespaces
//! made here: a "kit" namespace (10.66.31.2) running `dialgate demo` with a
//! phone (`tests/peers/sip_tls_uac.py`, alice's token) on its own loopback,
//! and a "hotel" namespace (10.66.31.1 and .3) at the other end of a veth
//! pair holding Debian's dnsmasq (the hotel's resolver), the conference
//! bridge (`echo-bridge`, the demo's bridge certificate) at 10.66.31.1:5071
//! and an impostor (`openssl s_server` with a self-signed certificate for
//! the bridge's name) at 10.66.31.3:5071.
//!
//! - `connect = "bridge.hotel.test:5071"`, dnsmasq answering the bridge's
//!   address: the INVITE is answered 200 by the bridge, the resolution
//!   audited (`decision="dns"`) with its time (a `FIGURE` line);
//! - the same through `srv = true` (`_sips._tcp.hotel.test` SRV);
//! - dnsmasq answering NXDOMAIN, then the impostor's address: the trunk
//!   connect fails (the DNS error; the TLS error: the impostor's
//!   certificate is not the pinned CA's) and the phone gets the usual
//!   `503` with `Warning: 399 dialgate "bridge unreachable"`, audited
//!   (the trunk's failure with its reason, the call's end with the 503). A
//!   lying resolver costs the call, never trusts another peer.
//!
//! Needs root, `ip`, dnsmasq, openssl and python3 (`tests/run` installs
//! them). Only 10.66.31.0/24 inside the namespaces made here is used;
//! processes (by PID) and namespaces are removed on drop. About 15 s.

#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for, Procs, DIALGATE, PEERS};
use dialgate_tests::{bin, run};

const KIT_ADDR: &str = "10.66.31.2";
const HOTEL: &str = "10.66.31.1";
const IMPOSTOR: &str = "10.66.31.3";

/// The namespaces, the kit and the processes; removed on drop.
struct World {
    kit_ns: String,
    hotel_ns: String,
    dir: PathBuf,
    kit: PathBuf,
    procs: Procs,
    dnsmasq: Option<Procs>,
    gateway: Option<Procs>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.gateway.take();
        self.dnsmasq.take();
        self.procs.0.drain(..).for_each(|c| drop(Procs(vec![c])));
        for ns in [&self.kit_ns, &self.hotel_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cmd` in namespace `ns`, stdout to `log` (stderr beside it).
fn spawn(ns: &str, cmd: &[&str], log: &Path) -> Child {
    spawn_with(ns, cmd, log, Stdio::null())
}

/// The same with `stdin` (a pipe held open for `openssl s_server`, which
/// ends at end of input).
fn spawn_with(ns: &str, cmd: &[&str], log: &Path, stdin: Stdio) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .stdin(stdin)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl World {
    fn new() -> World {
        assert_eq!(
            run("id", &["-u"]).trim(),
            "0",
            "network namespaces need root: run `bash tests/run` as root"
        );
        let tag = std::process::id().to_string();
        let dir = std::env::temp_dir().join(format!("dialgate-dns-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = World {
            kit_ns: format!("dg-dnsk-{tag}"),
            hotel_ns: format!("dg-dnsh-{tag}"),
            kit: dir.join("kit"),
            dir,
            procs: Procs(Vec::new()),
            dnsmasq: None,
            gateway: None,
        };
        for ns in [&w.kit_ns, &w.hotel_ns] {
            run("ip", &["netns", "add", ns]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        run(
            "ip",
            &[
                "-n",
                &w.kit_ns,
                "link",
                "add",
                "uplink0",
                "type",
                "veth",
                "peer",
                "name",
                "hotel0",
                "netns",
                &w.hotel_ns,
            ],
        );
        for (ns, ifname, addr) in [
            (&w.kit_ns, "uplink0", format!("{KIT_ADDR}/24")),
            (&w.hotel_ns, "hotel0", format!("{HOTEL}/24")),
            (&w.hotel_ns, "hotel0", format!("{IMPOSTOR}/24")),
        ] {
            run("ip", &["-n", ns, "addr", "add", &addr, "dev", ifname]);
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
        }
        // The kit, its trunk by name through the hotel's resolver.
        let out = Command::new(&*DIALGATE)
            .args(["demo", "--init-only", "--dir"])
            .arg(&w.kit)
            .output()
            .expect("dialgate runs");
        assert!(
            out.status.success(),
            "kit created: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        common::edit_config(&w.kit, |t| {
            let t = t
                .replace(
                    "connect = \"127.0.0.1:5071\"",
                    "connect = \"bridge.hotel.test:5071\"",
                )
                .replace(
                    "ca = \"bridge/ca.pem\"\nmedia_address = \"127.0.0.1\"",
                    &format!("ca = \"bridge/ca.pem\"\nmedia_address = \"{KIT_ADDR}\""),
                );
            format!("{t}\n[dns]\nservers = [\"{HOTEL}\"]\ntimeout_ms = 1500\n")
        });
        // The bridge, and the impostor with a certificate of its own.
        let kit = w.kit.display().to_string();
        let echo_log = w.dir.join("echo.log");
        let echo = spawn(
            &w.hotel_ns,
            &[
                bin("echo-bridge").to_str().unwrap(),
                "--dir",
                &kit,
                "--listen",
                &format!("{HOTEL}:5071"),
                "--media",
                HOTEL,
            ],
            &echo_log,
        );
        w.procs.0.push(echo);
        assert!(
            wait_for(&echo_log, "ECHO listening", Duration::from_secs(10)),
            "echo bridge up: {}",
            text(&echo_log.with_extension("err"))
        );
        let (cert, key) = (w.dir.join("impostor.pem"), w.dir.join("impostor.key"));
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=echo-bridge.dialgate.test",
                "-addext",
                "subjectAltName=DNS:echo-bridge.dialgate.test",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        let imp_log = w.dir.join("impostor.log");
        let imp = spawn_with(
            &w.hotel_ns,
            &[
                "openssl",
                "s_server",
                "-accept",
                &format!("{IMPOSTOR}:5071"),
                "-cert",
                cert.to_str().unwrap(),
                "-key",
                key.to_str().unwrap(),
            ],
            &imp_log,
            Stdio::piped(),
        );
        w.procs.0.push(imp);
        assert!(
            wait_for(&imp_log, "ACCEPT", Duration::from_secs(10)),
            "impostor up: {}",
            text(&imp_log.with_extension("err"))
        );
        w
    }

    /// (Re)starts dnsmasq in the hotel with `records` (its options).
    fn dnsmasq(&mut self, name: &str, records: &[&str]) {
        self.dnsmasq.take();
        let log = self.dir.join(format!("dnsmasq-{name}.log"));
        let listen = format!("--listen-address={HOTEL}");
        let mut cmd = vec![
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--bind-interfaces",
            &listen,
            "--no-resolv",
            "--no-hosts",
            "--local=/hotel.test/",
            "--pid-file=",
            "--log-queries",
        ];
        cmd.extend_from_slice(records);
        let child = spawn(&self.hotel_ns, &cmd, &log);
        self.dnsmasq = Some(Procs(vec![child]));
        assert!(
            wait_for(
                &log.with_extension("err"),
                "using only locally-known addresses",
                Duration::from_secs(10)
            ),
            "dnsmasq up: {}",
            text(&log.with_extension("err"))
        );
    }

    /// (Re)starts the gateway in the kit namespace (a fresh trunk
    /// connection, so the name is resolved again); its log.
    fn gateway(&mut self, name: &str) -> PathBuf {
        self.gateway.take();
        let log = self.dir.join(format!("{name}.log"));
        let kit = self.kit.display().to_string();
        let dialgate = DIALGATE.display().to_string();
        let gw = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.kit_ns,
                &dialgate,
                "demo",
                "--dir",
                &kit,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("dialgate runs");
        self.gateway = Some(Procs(vec![gw]));
        assert!(
            wait_for(&log, "listening for phones", Duration::from_secs(20)),
            "gateway up: {}",
            text(&log)
        );
        log
    }

    /// alice dials `echo` from the kit's namespace; the UAC's output.
    fn call(&self) -> String {
        let tokens = self.kit.join("tokens/alice");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.kit_ns, "python3"])
            .arg(format!("{PEERS}/sip_tls_uac.py"))
            .args([
                "--target",
                "127.0.0.1:5061",
                "--user",
                "echo",
                "--from-user",
                "alice",
            ])
            .arg("--cert")
            .arg(tokens.join("cert.pem"))
            .arg("--key")
            .arg(tokens.join("key.pem"))
            .args([
                "--suites",
                "AES_CM_128_HMAC_SHA1_80",
                "--rtp-port",
                "30710",
                "--hold",
                "1",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("python3 runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A call answered 200 through the name; the resolution's time.
    fn assert_answered(&mut self, name: &str, addr: &str) -> f64 {
        let log = self.gateway(name);
        let out = self.call();
        assert!(
            out.contains("SIP/2.0 200"),
            "the call is answered:\n{out}\n{}",
            text(&log)
        );
        let t = text(&log);
        let line = t
            .lines()
            .find(|l| l.contains("trunk name resolved"))
            .unwrap_or_else(|| panic!("no resolution record:\n{t}"));
        assert!(
            line.contains("decision=\"dns\"") || line.contains("decision=dns"),
            "{line}"
        );
        assert!(line.contains(&format!("{addr}:5071")), "{line}");
        resolve_ms(line)
    }

    /// A call refused with the usual 503 because the trunk connect failed
    /// with `why`.
    fn assert_refused(&mut self, name: &str, why: &str) {
        let log = self.gateway(name);
        let out = self.call();
        let t = text(&log);
        assert!(out.contains("SIP/2.0 503"), "refused with 503:\n{out}\n{t}");
        assert!(
            out.contains("Warning: 399 dialgate \"bridge unreachable\""),
            "with the Warning:\n{out}"
        );
        assert!(!out.contains("SIP/2.0 200"), "{out}");
        let failed = t
            .lines()
            .find(|l| l.contains("trunk connection failed"))
            .unwrap_or_else(|| panic!("no trunk failure record:\n{t}"));
        assert!(failed.contains(why), "{why} in {failed}");
        assert!(
            t.lines()
                .any(|l| l.contains("status=503") && l.contains("reason=\"bridge unreachable\"")),
            "the refusal audited:\n{t}"
        );
    }
}

fn resolve_ms(line: &str) -> f64 {
    line.split("resolve_ms=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|v| v.trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("resolve_ms in {line}"))
}

#[test]
fn trunks_by_name_resolve_through_the_hotels_dns_and_a_lying_resolver_only_costs_the_call() {
    let started = Instant::now();
    let mut w = World::new();

    // 1. The bridge by name (A).
    let bridge = format!("--host-record=bridge.hotel.test,{HOTEL}");
    let srv = "--srv-host=_sips._tcp.hotel.test,bridge.hotel.test,5071,10,0";
    w.dnsmasq("true", &[&bridge, srv]);
    let a_ms = w.assert_answered("by-name", HOTEL);

    // 2. NXDOMAIN: the usual refusal, the DNS error audited.
    w.dnsmasq("nxdomain", &["--address=/bridge.hotel.test/"]);
    w.assert_refused("nxdomain", "no such name (NXDOMAIN)");

    // 3. The impostor's address: the TLS check refuses its certificate.
    let lie = format!("--host-record=bridge.hotel.test,{IMPOSTOR}");
    w.dnsmasq("lie", &[&lie]);
    w.assert_refused("lie", "certificate");
    let t = text(&w.dir.join("lie.log"));
    assert!(
        t.contains(&format!("{IMPOSTOR}:5071")),
        "the lie was tried:\n{t}"
    );

    // 4. By SRV: `_sips._tcp.hotel.test` names the bridge.
    w.dnsmasq("srv", &[&bridge, srv]);
    common::edit_config(&w.kit, |t| {
        t.replace(
            "connect = \"bridge.hotel.test:5071\"",
            "connect = \"hotel.test\"\nsrv = true",
        )
    });
    let srv_ms = w.assert_answered("by-srv", HOTEL);

    println!(
        "FIGURE dns: trunk name resolved (A) in {a_ms:.1} ms; by SRV (SRV + A) in {srv_ms:.1} ms; whole test {} ms",
        started.elapsed().as_millis()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
