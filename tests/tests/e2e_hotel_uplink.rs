//! The appliance on a hotel network, end to end: the image booted under
//! qemu with its uplink (eth1) on a tap interface that this test moves
//! into a "hotel" network namespace (`image/run --uplink-tap`), where
//! Debian's dnsmasq is the hotel's DHCP server and resolver and the
//! conference bridge (`echo-bridge`, the demo's bridge certificate) is
//! known only by name. The kit's trunk is `connect =
//! "bridge.hotel.test:5071"` and its `[dns]` has no servers of its own,
//! only `lease_file = "/tmp/lease-dns"`:
//!
//! - the uplink's DHCP client leases 192.168.77.50 with the hotel's
//!   router and resolver; PID 1 writes the lease's DNS server for the
//!   gateway and opens it in the firewall (UDP 53), and opens the trunk by
//!   name's port at any address (TCP 5071) — the console says each;
//! - alice (baresip, through the phone side's forwarded port) calls `echo`:
//!   the gateway resolves the bridge through the lease's resolver (the
//!   `dns` audit record), reaches it through the firewall, and alice hears
//!   her tone back across the hotel LAN. The trunk's `media_address` is
//!   the wildcard: the gateway offers the bridge the address its trunk
//!   connection left from (the leased 192.168.77.50), and the bridge,
//!   which sends to the offered address (`echo-bridge --no-latch`), is
//!   heard.
//!
//! Needs `image/build` (tests/run does it), qemu-system-arm, dnsmasq,
//! baresip, iproute2 and python3, and root (the tap and the namespace).
//! Only 192.168.77.0/24 inside the namespace is used; the namespace (and
//! the tap in it) is removed on drop, as are the processes started here
//! (by PID). Ports: the image tests' own (5261, 42000-42009, alice's
//! baresip 5280/43000).

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::appliance::{baresip, baresip_configs, workdir, Appliance, TapNs};
use common::{alice_heard_her_tone, edit_config, init_kit, wait_for, Procs};
use dialgate_tests::{bin, run};

const HOTEL: &str = "192.168.77.1";
const KIT: &str = "192.168.77.50";

/// The hotel: its namespace with the uplink's tap, and the processes in
/// it (stopped by PID before the namespace goes).
struct Hotel {
    procs: Procs,
    net: TapNs,
}

impl Hotel {
    fn spawn(&mut self, cmd: &[&str], log: &Path) {
        let child = self.net.spawn(cmd, log);
        self.procs.0.push(child);
    }
}

fn text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The kit: the demo's, its trunk by name, its resolvers the lease's and
/// its bridge-side media address the uplink's (the wildcard: whatever
/// address the trunk's connection leaves from).
fn kit(work: &Path) -> PathBuf {
    let kit = work.join("kit");
    init_kit(&kit);
    baresip_configs(&kit);
    edit_config(&kit, |t| {
        let t = t
            .replace(
                "connect = \"127.0.0.1:5071\"",
                "connect = \"bridge.hotel.test:5071\"",
            )
            .replace(
                "ca = \"bridge/ca.pem\"\nmedia_address = \"127.0.0.1\"",
                "ca = \"bridge/ca.pem\"\nmedia_address = \"0.0.0.0\"",
            );
        format!("{t}\n[dns]\nlease_file = \"/tmp/lease-dns\"\n")
    });
    kit
}

#[test]
fn a_kit_in_a_hotel_resolves_its_bridge_through_the_lease_and_calls_it() {
    assert_eq!(run("id", &["-u"]).trim(), "0", "needs root: bash tests/run");
    let work = workdir("hotel");
    let kit = kit(&work);
    let pid = std::process::id();
    let mut hotel = Hotel {
        procs: Procs(Vec::new()),
        net: TapNs::new(format!("dg-hotel-{pid}"), format!("dgup{}", pid % 100_000)),
    };
    let vm = Appliance::boot_with(
        &work,
        &[
            "--kit".into(),
            kit.display().to_string(),
            "--uplink-tap".into(),
            hotel.net.tap.clone(),
        ],
    );
    // Into the hotel once qemu holds it.
    hotel.net.move_in(Some(&format!("{HOTEL}/24")));
    let tap = hotel.net.tap.clone();

    // The hotel: DHCP (one address for the kit, the hotel's router and
    // resolver) and DNS for the bridge's name, from one dnsmasq.
    let leases = work.join("dnsmasq.leases");
    let dnsmasq_log = work.join("dnsmasq.log");
    hotel.spawn(
        &[
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            &format!("--interface={tap}"),
            "--bind-interfaces",
            &format!("--listen-address={HOTEL}"),
            &format!("--dhcp-range={KIT},{KIT},255.255.255.0,2m"),
            &format!("--dhcp-option=option:router,{HOTEL}"),
            &format!("--dhcp-option=option:dns-server,{HOTEL}"),
            &format!("--dhcp-leasefile={}", leases.display()),
            "--no-ping",
            "--no-resolv",
            "--no-hosts",
            "--local=/hotel.test/",
            &format!("--host-record=bridge.hotel.test,{HOTEL}"),
            "--pid-file=",
            "--log-queries",
            "--log-dhcp",
        ],
        &dnsmasq_log,
    );
    // The bridge, known by name only.
    let echo_log = work.join("echo.log");
    let kit_dir = kit.display().to_string();
    hotel.spawn(
        &[
            bin("echo-bridge").to_str().unwrap(),
            "--dir",
            &kit_dir,
            "--listen",
            &format!("{HOTEL}:5071"),
            "--media",
            HOTEL,
            // Sends to the address the kit's SDP offered, not back to
            // where the kit's media came from: the offer must be right.
            "--no-latch",
        ],
        &echo_log,
    );
    assert!(
        wait_for(&echo_log, "ECHO listening", Duration::from_secs(10)),
        "echo bridge up: {}",
        text(&echo_log.with_extension("err"))
    );

    vm.wait_line("READY", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no READY line:\n{}", vm.console()));
    let (_, bound) = vm
        .wait_line("uplink: DHCP bound", Duration::from_secs(30))
        .unwrap_or_else(|| {
            panic!(
                "no lease from the hotel:\n{}\n{}",
                vm.console(),
                text(&dnsmasq_log.with_extension("err"))
            )
        });
    assert!(
        bound.contains(&format!("addr={KIT}/24"))
            && bound.contains(&format!("router={HOTEL}"))
            && bound.contains(&format!("dns={HOTEL}")),
        "{bound}"
    );
    // PID 1 hands the lease's resolver over and opens it; the trunk by
    // name has its port open at any address.
    vm.wait_line(
        &format!("uplink: the lease's DNS servers: {HOTEL}"),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| panic!("the lease's DNS not handed over:\n{}", vm.console()));
    let console = vm.console();
    let opened = console
        .lines()
        .rfind(|l| l.contains("firewall: default deny"))
        .expect("a firewall line");
    assert!(
        opened.contains(&format!("udp to {HOTEL}:53"))
            && opened.contains("tcp/5071 to any address (trunk by name)"),
        "{opened}"
    );
    vm.wait_line("uplink: DHCP applied iface=eth1", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("lease not applied:\n{}", vm.console()));

    // The trunk connects (its first keep-alive, a second after the
    // gateway started): the wildcard media address is the uplink's now.
    vm.wait_line("trunk media address: the uplink's", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the trunk never connected:\n{}", vm.console()));
    // alice calls the bridge by name: resolved through the hotel's
    // resolver, reached through the firewall, her tone heard back.
    let said = baresip(&kit, "alice", 10);
    assert!(
        said.contains("Call established"),
        "alice's call: {said}\n{}\n{}",
        vm.console(),
        text(&dnsmasq_log.with_extension("err"))
    );
    alice_heard_her_tone(&kit).unwrap_or_else(|e| panic!("alice heard: {e}\n{}", vm.console()));
    let console = vm.console();
    // The gateway's console lines are coloured (a terminal): match the
    // audit record by its message and values.
    let dns = console
        .lines()
        .find(|l| l.contains("trunk name resolved"))
        .unwrap_or_else(|| panic!("no dns audit record:\n{console}"));
    assert!(
        dns.contains("\"dns\"")
            && dns.contains("bridge.hotel.test:5071")
            && dns.contains(&format!("{HOTEL}:5071")),
        "{dns}"
    );
    assert!(
        console
            .lines()
            .any(|l| l.contains("trunk media address: the uplink's") && l.contains(KIT)),
        "the learnt media address is not the lease's:\n{console}"
    );
    let queries = text(&dnsmasq_log.with_extension("err"));
    assert!(
        queries.contains("query[A] bridge.hotel.test from 192.168.77.50"),
        "the hotel's resolver was not asked by the kit: {queries}"
    );
}
