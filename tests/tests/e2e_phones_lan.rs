//! The appliance's own phone LAN, end to end: the image booted under qemu
//! with its phone side (eth0) on a tap interface that this test moves into
//! a "phone" network namespace, and `dialgate.dhcpd=10.0.2.100-10.0.2.131`
//! on the kernel command line (`image/run --phones-tap --append`):
//!
//! - PID 1 starts the phone side's DHCP server (`dialgate-dhcp --serve`)
//!   on eth0 and opens its exchange in the firewall (the console says
//!   both);
//! - a phone plugged in (Debian's busybox `udhcpc` in the namespace) gets
//!   an address of the pool, the kit as its SIP server (option 120), no
//!   router and no DNS server, and so no default route;
//! - from that address, with alice's token certificate, the phone places
//!   a call to `echo` over SIP/TLS to the address it was given and the
//!   gateway's media reaches it on the LAN (the secure tone);
//! - the server's lease is on the console (`phones: DHCPD bound`).
//!
//! Needs `image/build` (tests/run does it), qemu-system-arm, busybox,
//! iproute2 and python3, and root (the tap and the namespace). Only
//! 10.0.2.0/24 inside the namespace is used; the namespace (and the tap in
//! it) is removed on drop, as are the processes started here (by PID).

#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::appliance::{workdir, Appliance, TapNs};
use common::init_kit;
use dialgate_tests::run;

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers");
const POOL: &str = "10.0.2.100-10.0.2.131";

#[test]
fn a_phone_plugged_in_gets_a_lease_from_the_kit_and_calls_through_it() {
    assert_eq!(run("id", &["-u"]).trim(), "0", "needs root: bash tests/run");
    let work = workdir("phones-lan");
    let kit = work.join("kit");
    init_kit(&kit);
    let pid = std::process::id();
    let net = TapNs::new(format!("dg-lan-{pid}"), format!("dgtap{}", pid % 100_000));
    let vm = Appliance::boot_with(
        &work,
        &[
            "--kit".into(),
            kit.display().to_string(),
            "--phones-tap".into(),
            net.tap.clone(),
            "--append".into(),
            format!("dialgate.dhcpd={POOL}"),
        ],
    );
    // qemu keeps the tap open across the move.
    net.move_in(None);
    vm.wait_line("READY", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no READY line:\n{}", vm.console()));

    // PID 1 serves the phone side: the server runs, the firewall has its
    // exchange open on eth0 only.
    vm.wait_line("phones: DHCPD start iface=eth0", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no DHCP server on eth0:\n{}", vm.console()));
    let console = vm.console();
    assert!(
        console.contains("in on eth0: tcp/5261 udp/42000-42009 udp/67 (DHCP server)"),
        "{console}"
    );

    // A phone plugged in: busybox udhcpc with the tests' event script.
    let script = Path::new(PEERS).join("udhcpc.script");
    let t0 = Instant::now();
    let out = net.exec(&[
        "busybox",
        "udhcpc",
        "-f",
        "-q",
        "-i",
        &net.tap,
        "-s",
        script.to_str().unwrap(),
        "-O",
        "sipsrv",
        "-t",
        "20",
        "-T",
        "1",
        "-n",
    ]);
    let took = t0.elapsed();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "udhcpc got no lease: {said}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    let bound = said
        .lines()
        .find(|l| l.starts_with("UDHCPC bound"))
        .unwrap_or_else(|| panic!("no bound event: {said}"));
    eprintln!("FIGURE udhcpc start to bound on the kit's phone LAN (qemu TCG): {took:?}");
    let ip = bound
        .split(' ')
        .find_map(|w| w.strip_prefix("ip="))
        .expect("ip=")
        .to_string();
    let last: u8 = ip
        .strip_prefix("10.0.2.")
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{ip} outside 10.0.2.0/24"));
    assert!((100..=131).contains(&last), "{ip} outside the pool {POOL}");
    for want in [
        "mask=24",
        "router=-",
        "dns=-",
        "serverid=10.0.2.15",
        "sipsrv=10.0.2.15",
    ] {
        assert!(bound.contains(want), "{want} not in: {bound}");
    }
    let routes = run("ip", &["-n", &net.ns, "-4", "route"]);
    assert!(!routes.contains("default"), "a default route: {routes}");
    vm.wait_line(&format!("addr={ip}"), Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the lease is not on the console:\n{}", vm.console()));
    assert!(vm.console().contains("phones: DHCPD bound"));

    // The phone calls the address it was given, from its leased address.
    let tok = kit.join("tokens").join("alice");
    let uac = Path::new(PEERS).join("sip_tls_uac.py");
    let target = "10.0.2.15:5261";
    let out = net.exec(&[
        "python3",
        uac.to_str().unwrap(),
        "--target",
        target,
        "--user",
        "echo",
        "--from-user",
        "alice",
        "--cert",
        tok.join("cert.pem").to_str().unwrap(),
        "--key",
        tok.join("key.pem").to_str().unwrap(),
        "--ca",
        kit.join("ca.pem").to_str().unwrap(),
        "--local",
        &ip,
        "--rtp-port",
        "40100",
        "--hold",
        "2",
    ]);
    let call = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        call.contains("SIP/2.0 200"),
        "the call was not answered: {call}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    let media = call
        .lines()
        .find(|l| l.starts_with("# SRTP from callee"))
        .unwrap_or_else(|| panic!("no media line: {call}"));
    assert!(
        !media.contains("packet sizes {}"),
        "no media reached the phone on the LAN: {media}"
    );
    eprintln!("{media}");
}
