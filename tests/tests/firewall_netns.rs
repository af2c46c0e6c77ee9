//! The firewall opens what the gateway will use, against a real kernel:
//! the test re-executes itself in a fresh network namespace (the "kit"),
//! joined by a veth pair to a second one (the "internet", a helper process
//! of this same binary) holding TCP listeners on a configuration trunk's
//! address, a trunk a signed policy adds, that trunk's Record-Route hop,
//! the address a newer policy moves the trunk to, and addresses nothing
//! names; and the other way, from the peer towards the kit's bridge
//! listener and a port of the kit nothing names. PID 1's own logic ([`AllowList`]) follows the gateway's kept
//! copy of the applied policy, signed with a key generated here, and the
//! ruleset is loaded over netlink as PID 1 loads it.
//!
//! Needs root (for the namespaces; `tests/run` runs as root): without it,
//! or without `unshare`, `nsenter` or `ip`, the test fails, never skips
//! (`tests/run` installs util-linux and iproute2). Only 10.199.0.0/24 is
//! used, inside namespaces that vanish with their processes.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialgate_board::allow::{self, AllowList};
use dialgate_board::{copy, firewall, nft, sys};
use dialgate_proto::policy::{sign, PolicyBody, PolicyTrunk, SigningKey};
use dialgate_tests::run;

const TEST: &str = "policy_trunks_open_and_close_in_a_network_namespace";
const KIT_ID: &str = "kit-netns";
/// The kit's side of the veth pair (its uplink).
const UPLINK: &str = "dgup0";
const PEER_IF: &str = "dgpeer0";

/// The configuration's trunk.
const CONFIG_TRUNK: &str = "10.199.0.2:5061";
/// Where policy v1 adds the trunk `webex`, and its Record-Route hop.
const ADDED: &str = "10.199.0.3:5061";
const ROUTE: &str = "10.199.0.4:5062";
/// Where policy v2 moves `webex`.
const MOVED: &str = "10.199.0.5:5061";
/// Named by nothing; and the added trunk's host on a port nothing names.
const UNLISTED: &str = "10.199.0.9:5061";
const WRONG_PORT: &str = "10.199.0.3:5062";
/// The kit's bridge listener, open on the uplink, and a port of the kit
/// nothing names.
const BRIDGE_LISTENER: &str = "10.199.0.1:5062";
const KIT_UNLISTED: &str = "10.199.0.1:5063";
const ALL: [&str; 6] = [CONFIG_TRUNK, ADDED, ROUTE, MOVED, UNLISTED, WRONG_PORT];

#[test]
fn policy_trunks_open_and_close_in_a_network_namespace() {
    if std::env::var_os("DIALGATE_FW_PEER").is_some() {
        peer();
    }
    if let Some(addr) = std::env::var_os("DIALGATE_FW_DIAL") {
        // From the peer's namespace, towards the kit.
        let seen = reachable(addr.to_str().unwrap());
        println!("DIAL-{seen:?}");
        return;
    }
    if std::env::var_os("DIALGATE_FW_KIT").is_some() {
        kit();
        return;
    }
    let uid = Command::new("id").arg("-u").output().expect("id runs");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "network namespaces need root: run `bash tests/run` as root"
    );
    // Run ourselves in a new network namespace: the child does the work.
    let out = Command::new("unshare")
        .arg("--net")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env("DIALGATE_FW_KIT", "1")
        .output()
        .expect("unshare runs (util-linux)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("FIREWALL-FOLLOWS-POLICY"), "{text}");
}

/// The "internet": listeners on every address of [`ALL`], once the kit has
/// moved the veth's other end here and set its addresses. Never returns;
/// the kit kills it.
fn peer() -> ! {
    // Running, so in the new namespace: the veth end may come.
    println!("PEER-NS");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut listeners = Vec::new();
    for a in ALL {
        let addr: SocketAddr = a.parse().unwrap();
        loop {
            match TcpListener::bind(addr) {
                Ok(l) => break listeners.push(l),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => {
                    eprintln!("peer: bind {addr}: {e}");
                    std::process::exit(1)
                }
            }
        }
    }
    println!("PEER-READY");
    for l in listeners {
        std::thread::spawn(move || {
            for c in l.incoming() {
                drop(c);
            }
        });
    }
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// The peer process and its namespace; killed (which removes the
/// namespace and the veth pair) on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a TCP connection to `addr` opens within about a second:
/// `Some(true)` it does, `Some(false)` it is dropped (the connection times
/// out, or `connect` fails at once with EPERM for a packet the output
/// chain drops), `None` anything else (a refusal: a listener missing, not
/// the firewall).
fn reachable(addr: &str) -> Option<bool> {
    use std::io::ErrorKind;
    match TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)) {
        Ok(_) => Some(true),
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::PermissionDenied) => {
            Some(false)
        }
        Err(_) => None,
    }
}

/// The addresses of [`ALL`] whose reachability is not as expected (open
/// exactly when listed in `open`), with what was seen; all tried at once,
/// so the check takes about a second.
fn surprises(open: &[&str]) -> Vec<(&'static str, Option<bool>)> {
    std::thread::scope(|s| {
        let tried: Vec<_> = ALL
            .iter()
            .map(|a| (*a, s.spawn(move || reachable(a))))
            .collect();
        tried
            .into_iter()
            .map(|(a, t)| (a, t.join().unwrap()))
            .filter(|(a, seen)| *seen != Some(open.contains(a)))
            .collect()
    })
}

/// [`reachable`] from the peer's namespace (a process of this binary
/// entered into it).
fn reachable_from_peer(pid: &str, addr: &str) -> Option<bool> {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env_remove("DIALGATE_FW_KIT")
        .env("DIALGATE_FW_DIAL", addr)
        .output()
        .expect("nsenter runs (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("DIAL-Some(true)") {
        Some(true)
    } else if text.contains("DIAL-Some(false)") {
        Some(false)
    } else {
        None
    }
}

fn policy(key: &SigningKey, version: u64, webex_at: &str, routes: &[&str]) -> Vec<u8> {
    let now = copy::now_unix();
    let body = PolicyBody {
        version,
        issued_at: now - 60,
        expires_at: now + 3600,
        kits: vec![KIT_ID.into()],
        trunks: vec![PolicyTrunk {
            name: "webex".into(),
            connect: webex_at.into(),
            host: "meet.example".into(),
            ca_pem: None,
            pin_sha256: Some("44".repeat(32)),
            tls: "1.2".into(),
            suites: vec!["AES_CM_128_HMAC_SHA1_80".into()],
            webex: true,
            routes: routes.iter().map(|r| (*r).to_string()).collect(),
        }],
        ..PolicyBody::default()
    };
    sign(&body, key).unwrap()
}

/// Polls the allow-list as PID 1 does and loads what it offers; returns
/// the policy version whose trunks are open.
fn follow(list: &mut AllowList) -> Option<u64> {
    let next = list.poll(copy::now_unix());
    if let Some(why) = &next.config_only {
        println!("configuration trunks only: {why}");
    }
    if let Some(inputs) = next.load {
        let (batch, acked) = nft::batch(&firewall::build(&inputs), 1);
        sys::nft_apply(&batch, 1, acked).expect("the kernel takes the ruleset");
        println!("loaded: out to {:?}", inputs.outbound);
        list.loaded(inputs);
    }
    next.policy
}

fn write_kit(dir: &Path, key: &SigningKey) -> PathBuf {
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(dir.join("policy-key.pub.pem"), key.public_key().to_pem()).unwrap();
    let config = format!(
        "[phone]\nlisten = \"10.199.0.1:5061\"\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n\
         token_ca = \"ca.pem\"\nmedia_address = \"10.199.0.1\"\n\
         [[trunk]]\nname = \"bridge\"\nconnect = \"{CONFIG_TRUNK}\"\nhost = \"bridge.test\"\n\
         pin_sha256 = \"{}\"\nmedia_address = \"10.199.0.1\"\n\
         [policy]\nkey = \"policy-key.pub.pem\"\nkit_id = \"{KIT_ID}\"\n\
         bundle = \"policy.bundle\"\nstate = \"state/policy.state\"\n\
         [bridge_listener]\nlisten = \"{BRIDGE_LISTENER}\"\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n",
        "00".repeat(32)
    );
    let path = dir.join("dialgate.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// In the kit's namespace.
fn kit() {
    run("ip", &["link", "set", "lo", "up"]);
    run(
        "ip",
        &[
            "link", "add", UPLINK, "type", "veth", "peer", "name", PEER_IF,
        ],
    );
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env("DIALGATE_FW_PEER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare runs (util-linux)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let peer = Peer(child);
    let mut wait_for = |what: &str| {
        let seen = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains(what));
        assert!(seen, "the peer did not say {what}");
    };
    wait_for("PEER-NS");
    let pid = peer.0.id().to_string();
    run("ip", &["link", "set", PEER_IF, "netns", &pid]);
    run("ip", &["addr", "add", "10.199.0.1/24", "dev", UPLINK]);
    run("ip", &["link", "set", UPLINK, "up"]);
    let netns = format!("--net=/proc/{pid}/ns/net");
    let inside = |args: &[&str]| {
        let mut a = vec![netns.as_str(), "ip"];
        a.extend_from_slice(args);
        run("nsenter", &a);
    };
    inside(&["link", "set", "lo", "up"]);
    for a in [
        "10.199.0.2",
        "10.199.0.3",
        "10.199.0.4",
        "10.199.0.5",
        "10.199.0.9",
    ] {
        inside(&["addr", "add", &format!("{a}/24"), "dev", PEER_IF]);
    }
    inside(&["link", "set", PEER_IF, "up"]);
    wait_for("PEER-READY");

    // The kit's own listeners, for bridges to reach.
    for a in [BRIDGE_LISTENER, KIT_UNLISTED] {
        let l = TcpListener::bind(a).unwrap();
        std::thread::spawn(move || {
            for c in l.incoming() {
                drop(c);
            }
        });
    }
    let inbound = || [BRIDGE_LISTENER, KIT_UNLISTED].map(|a| reachable_from_peer(&pid, a));

    // Before any firewall, everything answers: what follows is the
    // firewall's doing.
    let s = surprises(&ALL);
    assert!(s.is_empty(), "before the firewall: {s:?}");
    assert_eq!(inbound(), [Some(true), Some(true)], "before the firewall");

    let dir = std::env::temp_dir().join(format!("dialgate-fw-netns-{}", std::process::id()));
    let key = SigningKey::generate().unwrap();
    let config = allow::load_config(&write_kit(&dir, &key)).unwrap();
    let copy = config.policy.as_ref().unwrap().applied_copy();
    let mut list = AllowList::new(config, "dgphones", UPLINK);

    // No policy applied yet: the configuration's trunk only.
    assert_eq!(follow(&mut list), None);
    let s = surprises(&[CONFIG_TRUNK]);
    assert!(s.is_empty(), "{}: {s:?}", "config only");

    // The gateway applies v1 (it writes the copy): the added trunk and
    // its Record-Route hop open, nothing else does.
    std::fs::write(&copy, policy(&key, 1, ADDED, &[ROUTE])).unwrap();
    assert_eq!(follow(&mut list), Some(1));
    let start = Instant::now();
    let s = surprises(&[CONFIG_TRUNK, ADDED, ROUTE]);
    assert!(s.is_empty(), "{}: {s:?}", "policy v1");
    println!("checked {} addresses in {:?}", ALL.len(), start.elapsed());

    // A forged copy (signed by another key) is not believed: closed again.
    let forged = policy(&SigningKey::generate().unwrap(), 2, UNLISTED, &[]);
    std::fs::write(&copy, forged).unwrap();
    assert_eq!(follow(&mut list), None);
    let s = surprises(&[CONFIG_TRUNK]);
    assert!(s.is_empty(), "{}: {s:?}", "forged copy");

    // v2 moves the trunk and drops the hop: the old addresses close.
    std::fs::write(&copy, policy(&key, 2, MOVED, &[])).unwrap();
    assert_eq!(follow(&mut list), Some(2));
    let s = surprises(&[CONFIG_TRUNK, MOVED]);
    assert!(s.is_empty(), "{}: {s:?}", "policy v2");

    // The old v1 copy put back (a rollback) is refused: configuration only.
    std::fs::write(&copy, policy(&key, 1, ADDED, &[ROUTE])).unwrap();
    assert_eq!(follow(&mut list), None);
    let s = surprises(&[CONFIG_TRUNK]);
    assert!(s.is_empty(), "{}: {s:?}", "rolled back copy");

    if let Ok(out) = Command::new("nft").args(["list", "ruleset"]).output() {
        println!("{}", String::from_utf8_lossy(&out.stdout));
    }
    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
    println!("FIREWALL-FOLLOWS-POLICY");
}
