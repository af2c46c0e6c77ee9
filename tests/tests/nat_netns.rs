//! A call through a hotel's NAT, in network namespaces made here: a "kit"
//! namespace (192.168.77.50, its default route the hotel) running
//! `dialgate demo` with baresip as alice on its own loopback; a "hotel"
//! namespace forwarding and masquerading (Debian's nftables) towards an
//! "internet" namespace (10.66.9.0/24) that holds the conference bridge
//! (`echo-bridge --no-latch`: the demo's echo bridge, sending its media to
//! the address the kit's SDP offered, as a bridge that does not latch
//! does) and a STUN server (`tests/peers/stun_server.py`). The internet has
//! no route to the hotel's private network.
//!
//! - Without `[network]` the kit offers the bridge its private address:
//!   the call is set up, but the bridge's media never comes back, and
//!   alice hears nothing (the failure this feature removes).
//! - With `[network] stun` the network check learns the public address
//!   (the hotel's 10.66.9.2), new bridge legs advertise it with their own
//!   port (masquerade keeps free ports), and alice hears her tone back.
//!
//! Needs root, `ip`, nft, baresip and python3 (`tests/run` installs them).
//! Only 192.168.77.0/24 and 10.66.9.0/24 inside the namespaces made here
//! are used; processes (by PID) and namespaces are removed on drop.

#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{alice_heard_her_tone, wait_for, Procs, DIALGATE, PEERS};
use dialgate_tests::{bin, run};

const KIT_ADDR: &str = "192.168.77.50";
const HOTEL_INSIDE: &str = "192.168.77.1";
const HOTEL_OUTSIDE: &str = "10.66.9.2";
const INTERNET: &str = "10.66.9.1";

/// The three namespaces, the kit and the processes; removed on drop.
struct World {
    kit_ns: String,
    hotel_ns: String,
    net_ns: String,
    dir: PathBuf,
    kit: PathBuf,
    procs: Procs,
    gateway: Option<Procs>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.gateway.take();
        self.procs.0.drain(..).for_each(|c| drop(Procs(vec![c])));
        for ns in [&self.kit_ns, &self.hotel_ns, &self.net_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cmd` in namespace `ns`, stdout to `log` (stderr beside it).
fn spawn(ns: &str, cmd: &[&str], log: &Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

impl World {
    fn new() -> World {
        assert_eq!(
            run("id", &["-u"]).trim(),
            "0",
            "network namespaces need root: run `bash tests/run` as root"
        );
        let tag = std::process::id().to_string();
        let dir = std::env::temp_dir().join(format!("dialgate-nat-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = World {
            kit_ns: format!("dg-natk-{tag}"),
            hotel_ns: format!("dg-nath-{tag}"),
            net_ns: format!("dg-nati-{tag}"),
            kit: dir.join("kit"),
            dir,
            procs: Procs(Vec::new()),
            gateway: None,
        };
        for ns in [&w.kit_ns, &w.hotel_ns, &w.net_ns] {
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
                "lan0",
                "netns",
                &w.hotel_ns,
            ],
        );
        run(
            "ip",
            &[
                "-n",
                &w.hotel_ns,
                "link",
                "add",
                "wan0",
                "type",
                "veth",
                "peer",
                "name",
                "inet0",
                "netns",
                &w.net_ns,
            ],
        );
        for (ns, ifname, addr) in [
            (&w.kit_ns, "uplink0", format!("{KIT_ADDR}/24")),
            (&w.hotel_ns, "lan0", format!("{HOTEL_INSIDE}/24")),
            (&w.hotel_ns, "wan0", format!("{HOTEL_OUTSIDE}/24")),
            (&w.net_ns, "inet0", format!("{INTERNET}/24")),
        ] {
            run("ip", &["-n", ns, "addr", "add", &addr, "dev", ifname]);
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
        }
        run(
            "ip",
            &[
                "-n",
                &w.kit_ns,
                "route",
                "add",
                "default",
                "via",
                HOTEL_INSIDE,
            ],
        );
        // The hotel: forwards, and masquerades what leaves for the internet.
        run(
            "ip",
            &[
                "netns",
                "exec",
                &w.hotel_ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        );
        let nat = w.dir.join("hotel-nat.nft");
        std::fs::write(
            &nat,
            "table ip hotel {\n  chain post {\n    type nat hook postrouting priority 100;\n    \
             oifname \"wan0\" masquerade\n  }\n}\n",
        )
        .unwrap();
        run(
            "ip",
            &[
                "netns",
                "exec",
                &w.hotel_ns,
                "nft",
                "-f",
                nat.to_str().unwrap(),
            ],
        );
        // The kit, made on the host, its trunk moved to the bridge on the
        // internet, its media on the uplink; alice's baresip.
        let out = Command::new(&*DIALGATE)
            .args(["demo", "--init-only", "--hq-url"])
            .arg(format!("https://{INTERNET}:8443/"))
            .arg("--dir")
            .arg(&w.kit)
            .output()
            .expect("dialgate runs");
        assert!(
            out.status.success(),
            "kit created: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dialgate::demo::write_baresip_configs(&w.kit).expect("baresip configs");
        common::edit_config(&w.kit, |t| {
            t.replace(
                "connect = \"127.0.0.1:5071\"",
                &format!("connect = \"{INTERNET}:5071\""),
            )
            .replace(
                "ca = \"bridge/ca.pem\"\nmedia_address = \"127.0.0.1\"",
                &format!("ca = \"bridge/ca.pem\"\nmedia_address = \"{KIT_ADDR}\""),
            )
        });
        // The bridge and the STUN server on the internet.
        let kit = w.kit.display().to_string();
        let echo_log = w.dir.join("echo.log");
        let echo = spawn(
            &w.net_ns,
            &[
                bin("echo-bridge").to_str().unwrap(),
                "--dir",
                &kit,
                "--listen",
                &format!("{INTERNET}:5071"),
                "--media",
                INTERNET,
                "--no-latch",
            ],
            &echo_log,
        );
        w.procs.0.push(echo);
        assert!(
            wait_for(&echo_log, "ECHO listening", Duration::from_secs(10)),
            "echo bridge up: {}",
            std::fs::read_to_string(echo_log.with_extension("err")).unwrap_or_default()
        );
        let stun_log = w.dir.join("stun.log");
        let stun = spawn(
            &w.net_ns,
            &[
                "python3",
                &format!("{PEERS}/stun_server.py"),
                INTERNET,
                "3478",
            ],
            &stun_log,
        );
        w.procs.0.push(stun);
        assert!(
            wait_for(&stun_log, "STUN listening", Duration::from_secs(10)),
            "STUN server up"
        );
        w
    }

    /// (Re)starts the gateway in the kit namespace; its log.
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
            wait_for(&log, "listening for phones", Duration::from_secs(30)),
            "gateway up: {}",
            text(&log)
        );
        log
    }

    /// alice calls echo through the gateway for `seconds`; baresip's output.
    fn call(&self, seconds: u32) -> String {
        // A fresh recordings folder (baresip's sndfile writes into it, and
        // does not make it).
        let rec = self.kit.join("baresip/alice/recordings");
        let _ = std::fs::remove_dir_all(&rec);
        std::fs::create_dir_all(&rec).unwrap();
        let cfg = self.kit.join("baresip/alice").display().to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.kit_ns, "baresip", "-f", &cfg])
            .args([
                "-e",
                "/dial sip:echo@127.0.0.1:5061",
                "-t",
                &seconds.to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("baresip runs (apt-get install baresip)");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    }
}

fn text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The packet counters of the call's media record (`decision="media"`,
/// written when its media stop): (bridge_in, bridge_out).
fn bridge_counters(log: &Path) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = text(log);
        if let Some(line) = t.lines().find(|l| l.contains("decision=\"media\"")) {
            let field = |k: &str| {
                line.split(&format!(" {k}="))
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("{k} in {line}"))
            };
            return (field("bridge_in"), field("bridge_out"));
        }
        assert!(Instant::now() < deadline, "no media record:\n{t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn behind_the_hotels_nat_the_bridge_leg_offers_the_public_address_and_the_audio_comes_back() {
    let mut w = World::new();

    // 1. No network check: the private address goes to the bridge.
    let log = w.gateway("no-stun");
    let out = w.call(8);
    assert!(out.contains("Call established"), "{out}\n{}", text(&log));
    assert!(
        alice_heard_her_tone(&w.kit).is_err(),
        "alice heard her tone back without the public address:\n{}",
        text(&log)
    );
    // The kit sent to the bridge; nothing of the bridge's came back.
    let (bridge_in, bridge_out) = bridge_counters(&log);
    assert!(
        bridge_out > 50 && bridge_in == 0,
        "bridge leg in {bridge_in}, out {bridge_out}:\n{}",
        text(&log)
    );

    // 2. The network check with the STUN server: the public address.
    common::edit_config(&w.kit, |t| {
        format!(
            "{t}\n[network]\nstun = \"{INTERNET}:3478\"\ninterval_ms = 5000\nrecheck_ms = 500\n\
             timeout_ms = 1500\n"
        )
    });
    let started = Instant::now();
    let log = w.gateway("stun");
    assert!(
        wait_for(
            &log,
            "the uplink's public address (STUN) for new bridge legs",
            Duration::from_secs(15)
        ),
        "no public address learnt:\n{}",
        text(&log)
    );
    let learnt = started.elapsed();
    let line = text(&log)
        .lines()
        .find(|l| l.contains("public-address"))
        .unwrap()
        .to_string();
    assert!(line.contains(HOTEL_OUTSIDE), "{line}");
    assert!(
        wait_for(
            &log,
            "decision=\"network\" verdict=\"hq-unreachable\"",
            Duration::from_secs(15)
        ),
        "calls admitted (HQ is not on this internet):\n{}",
        text(&log)
    );
    let out = w.call(10);
    assert!(out.contains("Call established"), "{out}\n{}", text(&log));
    alice_heard_her_tone(&w.kit)
        .unwrap_or_else(|e| panic!("alice heard: {e}\n{out}\n{}", text(&log)));
    let (bridge_in, bridge_out) = bridge_counters(&log);
    assert!(
        bridge_in > 50 && bridge_out > 50,
        "bridge leg in {bridge_in}, out {bridge_out}"
    );
    println!(
        "FIGURE nat: gateway start to the public address learnt {} ms; bridge leg in {bridge_in}, out {bridge_out} packets",
        learnt.as_millis()
    );
}
