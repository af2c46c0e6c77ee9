//! The uplink's DHCP client (`dialgate-dhcp`, `board/src/dhcp/`) against
//! Debian's dnsmasq, in network namespaces made here: a "hotel" holding
//! dnsmasq on one end of a veth pair and a "kit" holding the client on
//! the other. Asserted on the kernel's own state (`ip -n KIT addr` and
//! `route`): the lease's address and default route installed; after
//! dnsmasq is restarted with another address for the kit, the renewal is
//! NAKed, the client reports `address-changed` and the new address
//! replaces the old. A hostile server (`tests/peers/hostile_dhcp.py`)
//! sends replies a client must drop; each is dropped with its reason, and
//! a real server afterwards still gives a lease.
//!
//! Needs root, `ip` (iproute2), dnsmasq and python3 (`tests/run` installs
//! them). Only 192.168.77.0/24 is used, inside namespaces named after this
//! process and removed on drop, as are the processes started here (by
//! PID). Each test is bounded (about 15 s and 10 s).

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use dialgate_tests::run;

const MAC: &str = "02:00:00:77:00:10";
const HOTEL_IF: &str = "hotel0";
const KIT_IF: &str = "uplink0";
const SERVER: &str = "192.168.77.1";
const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers");

/// The two namespaces, their veth pair and every process started in
/// them; all removed on drop (also when the test fails).
struct Net {
    hotel: String,
    kit: String,
    dir: PathBuf,
    /// Started here, stopped by PID on drop.
    procs: Vec<Child>,
}

impl Drop for Net {
    fn drop(&mut self) {
        // Processes first (by PID), then the namespaces (the veth goes
        // with them).
        self.procs.iter_mut().for_each(|c| {
            let _ = c.kill();
            let _ = c.wait();
        });
        for ns in [&self.hotel, &self.kit] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Net {
    fn new(test: &str) -> Net {
        let uid = run("id", &["-u"]);
        assert_eq!(
            uid.trim(),
            "0",
            "network namespaces need root: run `bash tests/run` as root"
        );
        let tag = format!("{}{}", std::process::id(), test);
        let net = Net {
            hotel: format!("dg-hotel-{tag}"),
            kit: format!("dg-kit-{tag}"),
            dir: std::env::temp_dir().join(format!("dialgate-dhcp-{tag}")),
            procs: Vec::new(),
        };
        let _ = std::fs::remove_dir_all(&net.dir);
        std::fs::create_dir_all(&net.dir).unwrap();
        run("ip", &["netns", "add", &net.hotel]);
        run("ip", &["netns", "add", &net.kit]);
        // Both ends are made inside the namespaces: no name in the host's.
        run(
            "ip",
            &[
                "-n", &net.hotel, "link", "add", HOTEL_IF, "type", "veth", "peer", "name", KIT_IF,
                "netns", &net.kit,
            ],
        );
        run(
            "ip",
            &["-n", &net.kit, "link", "set", KIT_IF, "address", MAC],
        );
        run(
            "ip",
            &[
                "-n",
                &net.hotel,
                "addr",
                "add",
                "192.168.77.1/24",
                "dev",
                HOTEL_IF,
            ],
        );
        run("ip", &["-n", &net.hotel, "link", "set", HOTEL_IF, "up"]);
        net
    }

    /// `cmd` in namespace `ns`, stdout read line by line into a channel.
    fn spawn(&mut self, ns: &str, cmd: &[&str]) -> Lines {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let lines = Lines::new(&mut child);
        self.procs.push(child);
        lines
    }

    /// Starts dnsmasq in the hotel (as `ip netns exec` execs it, the
    /// child's PID is dnsmasq's): a 2-minute lease (dnsmasq's minimum)
    /// with T1 10 s and T2 20 s, the kit's MAC mapped to `addr`. Returns
    /// once it serves (its "DHCP, IP range" line), its index in `procs`.
    fn dnsmasq(&mut self, addr: &str) -> usize {
        let leases = self.dir.join("leases");
        let hotel = self.hotel.clone();
        let host = format!("--dhcp-host={MAC},{addr}");
        let lease_file = format!("--dhcp-leasefile={}", leases.display());
        let iface = format!("--interface={HOTEL_IF}");
        let mut log = self.spawn(
            &hotel,
            &[
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                &iface,
                "--bind-interfaces",
                "--dhcp-range=192.168.77.50,192.168.77.60,255.255.255.0,2m",
                "--dhcp-option=option:router,192.168.77.1",
                "--dhcp-option=option:dns-server,192.168.77.53",
                "--dhcp-option=58,10",
                "--dhcp-option=59,20",
                &host,
                &lease_file,
                "--log-dhcp",
            ],
        );
        log.wait("DHCP, IP range", Duration::from_secs(5));
        self.procs.len() - 1
    }

    /// Stops process `i` (by its PID) and waits for it.
    fn stop(&mut self, i: usize) {
        let c: &mut Child = &mut self.procs[i];
        let _ = c.kill();
        let _ = c.wait();
    }

    fn client(&mut self, seconds: u32) -> Lines {
        let bin = dialgate_tests::bin("dialgate-dhcp");
        let kit = self.kit.clone();
        let secs = seconds.to_string();
        self.spawn(
            &kit,
            &[bin.to_str().unwrap(), "--iface", KIT_IF, "--for", &secs],
        )
    }

    fn kit_addr(&self) -> String {
        run(
            "ip",
            &["-n", &self.kit, "-4", "-o", "addr", "show", "dev", KIT_IF],
        )
    }

    fn kit_routes(&self) -> String {
        run("ip", &["-n", &self.kit, "-4", "route"])
    }
}

/// A process's stdout, line by line, with everything seen kept for the
/// failure message.
struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(child: &mut Child) -> Lines {
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {l}"));
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (after those already read) containing `needle`.
    fn wait(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    println!("{l}");
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {within:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

#[test]
fn dnsmasq_lease_is_installed_and_an_address_changed_on_renew_replaces_it() {
    let mut net = Net::new("a");
    let server = net.dnsmasq("192.168.77.50");
    let mut client = net.client(40);

    let bound = client.wait("DHCP bound", Duration::from_secs(10));
    client.wait("DHCP applied", Duration::from_secs(2));
    println!(
        "FIGURE link up to bound lease: {} ms (dnsmasq 2.90 on a veth pair)",
        field(&bound, "elapsed_ms")
    );
    assert_eq!(field(&bound, "addr"), "192.168.77.50/24");
    assert_eq!(field(&bound, "router"), SERVER);
    assert_eq!(field(&bound, "dns"), "192.168.77.53");
    assert_eq!(field(&bound, "lease"), "120s");
    assert_eq!(field(&bound, "t1"), "10s");
    let addr = net.kit_addr();
    assert!(addr.contains("inet 192.168.77.50/24"), "{addr}");
    let routes = net.kit_routes();
    assert!(
        routes.contains(&format!("default via {SERVER} dev {KIT_IF}")),
        "{routes}"
    );

    // The hotel's server comes back with another address for the kit: its
    // answer to the renewal at T1 is a NAK, the client starts over and
    // gets the new address.
    net.stop(server);
    net.dnsmasq("192.168.77.51");
    let lost = client.wait("DHCP lost", Duration::from_secs(15));
    assert!(lost.contains("addr=192.168.77.50 reason=Nak"), "{lost}");
    let changed = client.wait("DHCP address-changed", Duration::from_secs(5));
    assert_eq!(field(&changed, "old"), "192.168.77.50");
    assert_eq!(field(&changed, "addr"), "192.168.77.51/24");
    client.wait("DHCP applied", Duration::from_secs(2));
    let addr = net.kit_addr();
    assert!(addr.contains("inet 192.168.77.51/24"), "{addr}");
    assert!(!addr.contains("192.168.77.50"), "{addr}");
    let routes = net.kit_routes();
    assert!(
        routes.contains(&format!("default via {SERVER} dev {KIT_IF}")),
        "{routes}"
    );
    assert!(routes.contains("src 192.168.77.51"), "{routes}");

    // The renewal of the new lease is a plain `renewed`.
    let renewed = client.wait("DHCP renewed", Duration::from_secs(15));
    assert_eq!(field(&renewed, "addr"), "192.168.77.51/24");
}

#[test]
fn hostile_replies_are_dropped_with_their_reason_then_a_real_server_leases() {
    let mut net = Net::new("h");
    let hotel = net.hotel.clone();
    let script = Path::new(PEERS).join("hostile_dhcp.py");
    let mut hostile = net.spawn(
        &hotel,
        &["python3", script.to_str().unwrap(), HOTEL_IF, SERVER],
    );
    hostile.wait("HOSTILE-READY", Duration::from_secs(5));
    let mut client = net.client(30);
    let reasons = [
        "wrong-xid",
        "wrong-chaddr",
        "router-outside-subnet",
        "bad-address",
        "no-server-id",
        "lease-too-short",
        "option-past-end",
        "oversize",
    ];
    for r in reasons {
        hostile.wait(&format!("HOSTILE-SENT {r}"), Duration::from_secs(5));
    }
    for r in reasons {
        let line = client.wait(&format!("reason={r}"), Duration::from_secs(5));
        assert!(
            line.starts_with("DHCP dropped from=192.168.77.1:67"),
            "{line}"
        );
    }
    assert!(
        !client.seen.iter().any(|l| l.contains("DHCP bound")),
        "{:?}",
        client.seen
    );
    let addr = net.kit_addr();
    assert!(!addr.contains("inet "), "nothing installed: {addr}");

    // The hostile server has gone; a real one answers the next DISCOVER
    // (about 4 s after the first).
    net.dnsmasq("192.168.77.50");
    let bound = client.wait("DHCP bound", Duration::from_secs(10));
    assert_eq!(field(&bound, "addr"), "192.168.77.50/24");
    let addr = net.kit_addr();
    assert!(addr.contains("inet 192.168.77.50/24"), "{addr}");
}
