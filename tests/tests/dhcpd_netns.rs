//! The phone side's DHCP server (`dialgate-dhcp --serve`,
//! `board/src/dhcp/server.rs`) against real clients, in network
//! namespaces made here: a "kit" holding the server on a bridge
//! (`phones0`, the kit's phone-side switch) behind the kit's own firewall
//! (`firewall::build` with `dhcp_server`, loaded with nft(8)), and
//! "phone" namespaces on veth ports of that bridge.
//!
//! - Debian's busybox `udhcpc` gets an address of the pool, the kit as
//!   its SIP server (option 120) and no router and no DNS server; the
//!   phone's kernel has the address and **no default route** (`ip -n
//!   PHONE addr` and `route`); a renewal (SIGUSR1, unicast) is ACKed.
//!   Our own `dialgate-dhcp` client gets the next address the same way.
//! - A flood (`tests/peers/dhcp_flood.py`): one datagram of each malformed
//!   kind, each refused with its reason in the server's log, then 2,000
//!   DISCOVERs from random MACs: the table stays at its bound (16), the
//!   phone bound before keeps its lease (its renewal is ACKed during the
//!   flood), and once the offers' hold (2 s here) has passed a new phone
//!   gets a lease.
//!
//! Needs root, `ip` (iproute2), nft (nftables), busybox and python3
//! (`tests/run` installs them). Only 10.77.0.0/24 is used, inside
//! namespaces named after this process and removed on drop, as are the
//! processes started here (by PID). Each test is bounded (about 20 s).

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use dialgate_board::firewall;
use dialgate_tests::run;

const BRIDGE: &str = "phones0";
const KIT: &str = "10.77.0.1";
const POOL: &str = "10.77.0.100-10.77.0.199";
const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers");

/// The namespaces, the bridge and its ports, and every process started
/// in them; all removed on drop (also when the test fails).
struct Net {
    kit: String,
    phones: Vec<String>,
    dir: PathBuf,
    /// Started here, stopped by PID on drop.
    procs: Vec<Child>,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.procs.iter_mut().for_each(|c| {
            let _ = c.kill();
            let _ = c.wait();
        });
        for ns in std::iter::once(&self.kit).chain(&self.phones) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The MAC of phone `n`'s interface.
fn mac(n: usize) -> String {
    format!("02:00:00:77:01:{n:02x}")
}

/// Phone `n`'s interface (in its namespace).
fn phone_if(n: usize) -> String {
    format!("ph{n}")
}

impl Net {
    /// The kit with its firewall (with the DHCP server's rules or
    /// without) and `phones` phone namespaces, each on a port of the
    /// kit's bridge.
    fn new(test: &str, phones: usize, dhcp_rules: bool) -> Net {
        let uid = run("id", &["-u"]);
        assert_eq!(
            uid.trim(),
            "0",
            "network namespaces need root: run `bash tests/run` as root"
        );
        let tag = format!("{}{}", std::process::id(), test);
        let mut net = Net {
            kit: format!("dg-kit-{tag}"),
            phones: Vec::new(),
            dir: std::env::temp_dir().join(format!("dialgate-dhcpd-{tag}")),
            procs: Vec::new(),
        };
        let _ = std::fs::remove_dir_all(&net.dir);
        std::fs::create_dir_all(&net.dir).unwrap();
        let kit = net.kit.clone();
        run("ip", &["netns", "add", &kit]);
        run("ip", &["-n", &kit, "link", "add", BRIDGE, "type", "bridge"]);
        run("ip", &["-n", &kit, "link", "set", BRIDGE, "up"]);
        for n in 1..=phones {
            let ns = format!("dg-phone{n}-{tag}");
            run("ip", &["netns", "add", &ns]);
            net.phones.push(ns.clone());
            let port = format!("port{n}");
            let ph = phone_if(n);
            // Both ends are made inside the namespaces: no name in the
            // host's.
            run(
                "ip",
                &[
                    "-n", &kit, "link", "add", &port, "type", "veth", "peer", "name", &ph, "netns",
                    &ns,
                ],
            );
            run(
                "ip",
                &["-n", &kit, "link", "set", &port, "master", BRIDGE, "up"],
            );
            run("ip", &["-n", &ns, "link", "set", &ph, "address", &mac(n)]);
            run("ip", &["-n", &ns, "link", "set", &ph, "up"]);
        }
        // The kit's firewall, as PID 1 builds it, with the DHCP server's
        // two rules; loaded with nft(8) from its rendering.
        let rules = firewall::build(&firewall::Inputs {
            phones: BRIDGE.into(),
            uplink: "uplink0".into(),
            sip_port: 5061,
            media: (30000, 30009),
            bridge_listener: None,
            outbound: Vec::new(),
            outbound_ports: Vec::new(),
            udp_outbound: Vec::new(),
            dhcp_client: false,
            dhcp_server: dhcp_rules,
        });
        let file = net.dir.join("ruleset.nft");
        std::fs::write(&file, rules.to_nft()).unwrap();
        run(
            "ip",
            &["netns", "exec", &kit, "nft", "-f", file.to_str().unwrap()],
        );
        net
    }

    /// `cmd` in namespace `ns`, stdout read line by line into a channel.
    /// `ip netns exec` execs the command: the child's PID is its.
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

    /// The kit's server on the bridge, giving it its address.
    fn server(&mut self, extra: &[&str]) -> Lines {
        let bin = dialgate_tests::bin("dialgate-dhcp");
        let kit = self.kit.clone();
        let addr = format!("{KIT}/24");
        let mut cmd = vec![
            bin.to_str().unwrap(),
            "--serve",
            "--iface",
            BRIDGE,
            "--addr",
            &addr,
            "--pool",
            POOL,
            "--set-address",
            "--for",
            "50",
        ];
        cmd.extend_from_slice(extra);
        let mut log = self.spawn(&kit, &cmd);
        log.wait("DHCPD start", Duration::from_secs(5));
        log
    }

    /// busybox udhcpc on phone `n`, in the foreground, with the test's
    /// event script, asking for option 120 too. Returns its log and its
    /// index in `procs`.
    fn udhcpc(&mut self, n: usize) -> (Lines, usize) {
        self.udhcpc_tries(n, 10)
    }

    /// The same, giving up (and exiting) after `tries` DISCOVERs 1 s apart.
    fn udhcpc_tries(&mut self, n: usize, tries: u32) -> (Lines, usize) {
        let tries = tries.to_string();
        let ns = self.phones[n - 1].clone();
        let ph = phone_if(n);
        let script = Path::new(PEERS).join("udhcpc.script");
        let lines = self.spawn(
            &ns,
            &[
                "busybox",
                "udhcpc",
                "-f",
                "-i",
                &ph,
                "-s",
                script.to_str().unwrap(),
                "-O",
                "sipsrv",
                "-t",
                &tries,
                "-T",
                "1",
                "-n",
            ],
        );
        (lines, self.procs.len() - 1)
    }

    /// Our own client on phone `n`.
    fn client(&mut self, n: usize, seconds: u32) -> Lines {
        let bin = dialgate_tests::bin("dialgate-dhcp");
        let ns = self.phones[n - 1].clone();
        let ph = phone_if(n);
        let secs = seconds.to_string();
        self.spawn(
            &ns,
            &[
                bin.to_str().unwrap(),
                "--iface",
                &ph,
                "--once",
                "--for",
                &secs,
            ],
        )
    }

    /// Sends a signal to process `i` (by its PID).
    fn signal(&self, i: usize, sig: &str) {
        let pid = self.procs[i].id().to_string();
        run("kill", &["-s", sig, &pid]);
    }

    fn phone_addr(&self, n: usize) -> String {
        run(
            "ip",
            &[
                "-n",
                &self.phones[n - 1],
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                &phone_if(n),
            ],
        )
    }

    fn phone_routes(&self, n: usize) -> String {
        run("ip", &["-n", &self.phones[n - 1], "-4", "route"])
    }

    /// The address is installed on phone `n`, its subnet route is there,
    /// and no default route.
    fn assert_installed_without_default_route(&self, n: usize, addr: &str) {
        let a = self.phone_addr(n);
        assert!(a.contains(&format!("inet {addr}/24")), "{a}");
        let routes = self.phone_routes(n);
        println!("phone {n} routes:\n{routes}");
        assert!(
            routes.contains(&format!("10.77.0.0/24 dev {}", phone_if(n))),
            "{routes}"
        );
        assert!(!routes.contains("default"), "{routes}");
    }
}

/// A process's stdout (and stderr), line by line, with everything seen
/// kept for the failure message.
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

    /// The first line (after those already read) containing every one of
    /// `needles`.
    fn wait_all(&mut self, needles: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    if !l.starts_with("DHCPD no-offer") {
                        println!("{l}");
                    }
                    self.seen.push(l.clone());
                    if needles.iter().all(|n| l.contains(n)) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line with {needles:?} within {within:?}; last seen:\n{}",
                    self.seen[self.seen.len().saturating_sub(60)..].join("\n")
                ),
            }
        }
    }

    fn wait(&mut self, needle: &str, within: Duration) -> String {
        self.wait_all(&[needle], within)
    }

    /// Like [`Lines::wait`], `None` when no such line came in time.
    fn try_wait(&mut self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.rx.recv_timeout(left).ok()?;
            if !l.starts_with("DHCPD no-offer") {
                println!("{l}");
            }
            self.seen.push(l.clone());
            if l.contains(needle) {
                return Some(l);
            }
        }
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

fn num(line: &str, key: &str) -> u64 {
    field(line, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {line}"))
}

#[test]
fn udhcpc_and_our_client_get_pool_addresses_the_sip_server_and_no_default_route() {
    let mut net = Net::new("a", 2, true);
    let mut server = net.server(&[]);

    let started = Instant::now();
    let (mut phone, udhcpc) = net.udhcpc(1);
    let bound = phone.wait("UDHCPC bound", Duration::from_secs(10));
    let wall = started.elapsed();
    assert_eq!(field(&bound, "ip"), "10.77.0.100");
    assert_eq!(field(&bound, "mask"), "24");
    assert_eq!(field(&bound, "router"), "-", "no router for phones");
    assert_eq!(field(&bound, "dns"), "-", "no DNS server");
    assert_eq!(field(&bound, "sipsrv"), KIT, "option 120: the kit");
    assert_eq!(field(&bound, "serverid"), KIT);
    assert_eq!(field(&bound, "lease"), "3600");
    net.assert_installed_without_default_route(1, "10.77.0.100");

    let offered = server.wait_all(
        &["DHCPD offered", &format!("mac={}", mac(1))],
        Duration::from_secs(2),
    );
    let acked = server.wait_all(
        &["DHCPD bound", &format!("mac={}", mac(1))],
        Duration::from_secs(2),
    );
    assert_eq!(field(&acked, "addr"), "10.77.0.100");
    assert_eq!(field(&acked, "bound"), "1");
    let dora_us = num(&acked, "elapsed_us") - num(&offered, "elapsed_us");
    println!(
        "FIGURE DISCOVER to ACK at the kit's server: {:.1} ms (busybox udhcpc 1.35 on a veth pair; udhcpc start to bound: {} ms)",
        dora_us as f64 / 1000.0,
        wall.as_millis()
    );

    // A renewal: udhcpc unicasts a REQUEST with ciaddr; the ACK comes back
    // through the kit's firewall (conntrack) to the phone's address.
    net.signal(udhcpc, "USR1");
    let renewed = phone.wait("UDHCPC renew", Duration::from_secs(5));
    assert_eq!(field(&renewed, "ip"), "10.77.0.100");
    server.wait_all(
        &["DHCPD renewed", &format!("mac={}", mac(1))],
        Duration::from_secs(2),
    );
    net.assert_installed_without_default_route(1, "10.77.0.100");

    // Our own client, on the second phone: the next address.
    let mut ours = net.client(2, 15);
    let b = ours.wait("DHCP bound", Duration::from_secs(10));
    ours.wait("DHCP applied", Duration::from_secs(2));
    assert_eq!(field(&b, "addr"), "10.77.0.101/24");
    assert_eq!(field(&b, "router"), "-");
    assert_eq!(field(&b, "dns"), "-");
    assert_eq!(field(&b, "server"), KIT);
    assert_eq!(field(&b, "lease"), "3600s");
    net.assert_installed_without_default_route(2, "10.77.0.101");
    let offered = server.wait_all(
        &["DHCPD offered", &format!("mac={}", mac(2))],
        Duration::from_secs(2),
    );
    let acked = server.wait_all(
        &["DHCPD bound", &format!("mac={}", mac(2))],
        Duration::from_secs(2),
    );
    assert_eq!(field(&acked, "bound"), "2");
    println!(
        "FIGURE DISCOVER to ACK at the kit's server: {:.2} ms (dialgate-dhcp's own client)",
        (num(&acked, "elapsed_us") - num(&offered, "elapsed_us")) as f64 / 1000.0
    );
}

/// The kit's firewall without the server's two rules drops the
/// DISCOVERs: the rules are what lets phones in, and nothing else does.
#[test]
fn without_its_firewall_rules_the_server_hears_nothing() {
    let mut net = Net::new("n", 1, false);
    let mut server = net.server(&[]);
    let (mut phone, _) = net.udhcpc_tries(1, 2);
    phone.wait("no lease, failing", Duration::from_secs(10));
    let addr = net.phone_addr(1);
    assert!(!addr.contains("inet "), "nothing installed: {addr}");
    // Nothing reached the server: no offer, no refusal, no stats line.
    std::thread::sleep(Duration::from_millis(1200));
    while let Ok(l) = server.rx.try_recv() {
        println!("{l}");
        server.seen.push(l);
    }
    assert_eq!(server.seen.len(), 1, "{:?}", server.seen);
}

#[test]
fn a_flood_keeps_the_table_at_its_bound_refuses_malformed_datagrams_and_spares_the_bound_phone() {
    const TABLE: u64 = 16;
    const FLOOD: u64 = 2000;
    let mut net = Net::new("f", 2, true);
    let mut server = net.server(&["--max-leases", "16", "--hold", "2"]);

    // A phone bound before the flood.
    let (mut phone, udhcpc) = net.udhcpc(1);
    let bound = phone.wait("UDHCPC bound", Duration::from_secs(10));
    assert_eq!(field(&bound, "ip"), "10.77.0.100");

    let script = Path::new(PEERS).join("dhcp_flood.py");
    let flood_ns = net.phones[1].clone();
    let count = FLOOD.to_string();
    let mut flood = net.spawn(
        &flood_ns,
        &["python3", script.to_str().unwrap(), &phone_if(2), &count],
    );
    let reasons = [
        "truncated",
        "not-bootrequest",
        "no-magic-cookie",
        "option-past-end",
        "no-end-option",
        "relayed",
        "bad-chaddr",
        "unknown-message-type",
        "not-client-message",
        "no-message-type",
        "bad-option-length",
        "oversize",
    ];
    for r in reasons {
        flood.wait(&format!("FLOOD-SENT {r}"), Duration::from_secs(5));
    }
    for r in reasons {
        let line = server.wait_all(
            &["DHCPD refused", &format!("reason={r} ")],
            Duration::from_secs(5),
        );
        assert!(line.contains("from=0.0.0.0:68"), "{line}");
    }
    let done = flood.wait("FLOOD-DONE", Duration::from_secs(20));
    assert_eq!(num(&done, "sent"), FLOOD);

    // The counters once the flood has been read (a stats line comes at
    // most once a second, when a counter moved): every DISCOVER received
    // got an offer (the 15 free entries) or a table-full refusal. A
    // loaded machine may drop a few datagrams before the server reads
    // them, so at least 95 % must arrive, not all.
    let mut stats = server.wait_all(
        &["DHCPD stats", &format!("table={TABLE} bound=1")],
        Duration::from_secs(5),
    );
    while num(&stats, "offers") + num(&stats, "no_offer_table_full") < FLOOD + 1 {
        match server.try_wait("DHCPD stats", Duration::from_millis(2500)) {
            Some(s) => stats = s,
            None => break,
        }
    }
    println!("FIGURE after {FLOOD} DISCOVERs from random MACs: {stats}");
    assert_eq!(
        num(&stats, "offers"),
        TABLE,
        "1 for the phone, 15 for the flood"
    );
    let full = num(&stats, "no_offer_table_full");
    assert!(
        (FLOOD * 95 / 100 - TABLE..=FLOOD - (TABLE - 1)).contains(&full),
        "{stats}"
    );
    assert_eq!(num(&stats, "refused"), reasons.len() as u64);
    assert!(
        num(&stats, "suppressed") > 0,
        "flood lines are rate-limited"
    );
    // The table never passed its bound, by the server's own lines.
    for l in &server.seen {
        if l.starts_with("DHCPD offered") || l.starts_with("DHCPD no-offer") {
            assert!(num(l, "table") <= TABLE, "{l}");
        }
    }
    assert!(server
        .seen
        .iter()
        .any(|l| l.starts_with("DHCPD no-offer") && l.contains("reason=table-full table=16")));

    // The bound phone keeps its lease: its renewal is ACKed with the
    // table full.
    net.signal(udhcpc, "USR1");
    phone.wait("UDHCPC renew", Duration::from_secs(5));
    server.wait_all(
        &["DHCPD renewed", &format!("mac={}", mac(1))],
        Duration::from_secs(2),
    );

    // Once the offers' hold has passed, a new phone (our client, on the
    // flood's port) gets a lease.
    server.wait_all(&["DHCPD offer-expired", "table=1"], Duration::from_secs(5));
    let mut ours = net.client(2, 15);
    let b = ours.wait("DHCP bound", Duration::from_secs(10));
    assert!(field(&b, "addr").starts_with("10.77.0."), "{b}");
    net.assert_installed_without_default_route(2, field(&b, "addr").trim_end_matches("/24"));
    server.wait_all(
        &["DHCPD bound", &format!("mac={}", mac(2)), "bound=2"],
        Duration::from_secs(2),
    );
}
