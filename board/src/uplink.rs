//! PID 1's DHCP children, supervised: the uplink's client
//! (`dialgate.uplink=IFACE:dhcp`, [`DhcpChild::uplink`]: `dialgate-dhcp
//! --iface IFACE`) and the phone side's server (`dialgate.dhcpd=FIRST-LAST`,
//! [`DhcpChild::phones`]: `dialgate-dhcp --serve ...`). Each child's lines
//! are copied to the console (`dialgate-init: uplink: ...`, `dialgate-init:
//! phones: ...`); for the client, PID 1 is told when the uplink changed (a
//! lease applied, the address changed, the lease lost), so that it can tell
//! the gateway (SIGUSR1: its network check and its repository poll run at
//! once). A child that exits is started again after [`RESTART_AFTER`].
//! The client's lease names the network's DNS servers ([`lease_dns`]):
//! PID 1 opens them in the firewall and hands them to the gateway
//! ([`LEASE_DNS_FILE`]); a change of them is an uplink change too.
//!
//! PID 1 reaps every child itself (`waitpid(-1)`), so it hands the child's
//! exit to [`DhcpChild::exited`].

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dhcp::server::ServerConfig;

/// How long after the client exited it is started again.
pub const RESTART_AFTER: Duration = Duration::from_secs(2);

/// Where PID 1 writes the lease's DNS servers for the gateway (`[dns]
/// lease_file`): one address a line, on the tmpfs PID 1 mounts at `/tmp`
/// (gone at power-off: a kit never uses the last hotel's resolvers).
pub const LEASE_DNS_FILE: &str = "/tmp/lease-dns";

/// At most this many of a lease's DNS servers are used (as `[dns]
/// servers`).
pub const MAX_LEASE_DNS: usize = 4;

/// The DNS servers a line of `dialgate-dhcp` (the client) says the lease
/// names now: its `dns=` field on `bound`, `renewed` and `address-changed`
/// (`-`: none), none on `lost`; `None` for any other line. At most
/// [`MAX_LEASE_DNS`]; what is not a unicast IPv4 address is left out.
pub fn lease_dns(line: &str) -> Option<Vec<Ipv4Addr>> {
    if line.starts_with("DHCP lost") {
        return Some(Vec::new());
    }
    let leased = ["DHCP bound ", "DHCP renewed ", "DHCP address-changed "];
    if !leased.iter().any(|p| line.starts_with(p)) {
        return None;
    }
    let field = line.split(' ').find_map(|w| w.strip_prefix("dns="))?;
    Some(
        field
            .split(',')
            .filter_map(|a| a.parse::<Ipv4Addr>().ok())
            .filter(|a| {
                !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
            })
            .take(MAX_LEASE_DNS)
            .collect(),
    )
}

/// The file [`LEASE_DNS_FILE`] holds for `servers`.
pub fn lease_dns_text(servers: &[Ipv4Addr]) -> String {
    servers.iter().map(|a| format!("{a}\n")).collect()
}

/// Whether a line of `dialgate-dhcp` says the uplink changed.
pub fn is_change(line: &str) -> bool {
    ["DHCP applied", "DHCP address-changed", "DHCP lost"]
        .iter()
        .any(|p| line.starts_with(p))
}

/// The arguments of `dialgate-dhcp --serve` for the phone side's server
/// on `iface` (PID 1 has given it the kit's address already).
pub fn server_args(iface: &str, c: &ServerConfig) -> Vec<String> {
    let secs = |d: Duration| d.as_secs().to_string();
    [
        "--serve",
        "--iface",
        iface,
        "--addr",
        &format!("{}/{}", c.addr, c.prefix),
        "--pool",
        &format!("{}-{}", c.pool_first, c.pool_last),
        "--lease",
        &secs(c.lease),
        "--hold",
        &secs(c.offer_hold),
        "--max-leases",
        &c.max_leases.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// A DHCP child, supervised.
#[derive(Debug)]
pub struct DhcpChild {
    program: String,
    args: Vec<String>,
    /// `uplink` or `phones`: the console lines' prefix.
    role: &'static str,
    pid: Option<i32>,
    restart_at: Option<Instant>,
    changed: Arc<AtomicBool>,
    /// The lease's DNS servers, as the client's lines last said.
    dns: Arc<Mutex<Vec<Ipv4Addr>>>,
}

impl DhcpChild {
    /// Starts the uplink's client, `program --iface iface`.
    pub fn uplink(program: &str, iface: &str) -> DhcpChild {
        DhcpChild::start(program, vec!["--iface".into(), iface.into()], "uplink")
    }

    /// Starts the phone side's server on `iface`, `program --serve ...`
    /// ([`server_args`]).
    pub fn phones(program: &str, iface: &str, config: &ServerConfig) -> DhcpChild {
        DhcpChild::start(program, server_args(iface, config), "phones")
    }

    fn start(program: &str, args: Vec<String>, role: &'static str) -> DhcpChild {
        let mut u = DhcpChild {
            program: program.to_string(),
            args,
            role,
            pid: None,
            restart_at: None,
            changed: Arc::new(AtomicBool::new(false)),
            dns: Arc::new(Mutex::new(Vec::new())),
        };
        u.spawn();
        u
    }

    fn spawn(&mut self) {
        let role = self.role;
        let child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn();
        match child {
            Ok(mut c) => {
                self.pid = i32::try_from(c.id()).ok();
                if let Some(out) = c.stdout.take() {
                    let changed = Arc::clone(&self.changed);
                    let dns = Arc::clone(&self.dns);
                    let _ =
                        std::thread::Builder::new()
                            .name("dhcp-lines".into())
                            .spawn(move || {
                                for line in BufReader::new(out).lines() {
                                    let Ok(line) = line else { break };
                                    if role == "uplink" && is_change(&line) {
                                        changed.store(true, Ordering::SeqCst);
                                    }
                                    if let Some(now) = lease_dns(&line).filter(|_| role == "uplink")
                                    {
                                        let mut d = dns.lock().unwrap_or_else(|p| p.into_inner());
                                        if *d != now {
                                            *d = now;
                                            changed.store(true, Ordering::SeqCst);
                                        }
                                    }
                                    let mut o = std::io::stdout().lock();
                                    let _ = writeln!(o, "dialgate-init: {role}: {line}");
                                }
                            });
                }
                // PID 1 reaps it: the Child handle is not waited on.
                drop(c);
            }
            Err(e) => {
                let _ = writeln!(
                    std::io::stdout(),
                    "dialgate-init: {role}: starting {}: {e}",
                    self.program
                );
                self.restart_at = Some(Instant::now() + RESTART_AFTER);
            }
        }
    }

    /// The lease's DNS servers now (none before a lease, after a loss, and
    /// always for the server).
    pub fn dns(&self) -> Vec<Ipv4Addr> {
        self.dns.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `pid` is the client's.
    pub fn is_pid(&self, pid: i32) -> bool {
        self.pid == Some(pid)
    }

    /// The child exited (PID 1 reaped it): start it again later.
    pub fn exited(&mut self, status: i32) {
        let _ = writeln!(
            std::io::stdout(),
            "dialgate-init: {}: dialgate-dhcp exited (status {status}); again in {} s",
            self.role,
            RESTART_AFTER.as_secs()
        );
        self.pid = None;
        self.restart_at = Some(Instant::now() + RESTART_AFTER);
    }

    /// Restarts the child when due; whether the uplink changed since the
    /// last call (always `false` for the server).
    pub fn tick(&mut self, now: Instant) -> bool {
        if self.pid.is_none() && self.restart_at.is_some_and(|t| now >= t) {
            self.restart_at = None;
            self.spawn();
        }
        self.changed.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_the_lease_applied_moved_or_lost() {
        for yes in [
            "DHCP applied iface=eth1",
            "DHCP address-changed old=10.0.3.15 addr=10.0.3.16/24",
            "DHCP lost addr=10.0.3.15 reason=Nak elapsed_ms=1",
        ] {
            assert!(is_change(yes), "{yes}");
        }
        for no in [
            "DHCP bound addr=10.0.3.15/24",
            "DHCP renewed addr=10.0.3.15",
            "DHCP sent kind=Discover to=255.255.255.255",
            "DHCP dropped from=10.0.3.2:67 reason=wrong-xid",
            " DHCP applied",
        ] {
            assert!(!is_change(no), "{no}");
        }
    }

    #[test]
    fn the_lease_names_its_dns_servers_and_a_loss_forgets_them() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            lease_dns("DHCP bound addr=192.168.77.50/24 router=192.168.77.1 dns=192.168.77.53,192.168.77.54 server=192.168.77.1 lease=120s t1=10s t2=20s elapsed_ms=1"),
            Some(vec![ip("192.168.77.53"), ip("192.168.77.54")])
        );
        assert_eq!(
            lease_dns("DHCP renewed addr=10.0.3.15/24 router=- dns=- server=10.0.3.2 lease=86400s"),
            Some(vec![])
        );
        assert_eq!(
            lease_dns("DHCP address-changed old=10.0.3.15 addr=10.0.3.16/24 dns=10.0.3.3"),
            Some(vec![ip("10.0.3.3")])
        );
        assert_eq!(
            lease_dns("DHCP lost addr=10.0.3.15 reason=Nak"),
            Some(vec![])
        );
        // Not a lease line, or a forged field inside another line.
        for no in [
            "DHCP applied iface=eth1",
            "DHCP dropped from=10.0.3.2:67 reason=wrong-xid detail=\"dns=1.2.3.4\"",
            " DHCP bound dns=1.2.3.4",
        ] {
            assert_eq!(lease_dns(no), None, "{no}");
        }
        // Only unicast addresses, at most four.
        assert_eq!(
            lease_dns("DHCP bound addr=1.2.3.4/24 dns=0.0.0.0,127.0.0.1,255.255.255.255,224.0.0.1,x,1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5 server=1.2.3.1"),
            Some(["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"].map(ip).to_vec())
        );
        assert_eq!(
            lease_dns_text(&[ip("1.1.1.1"), ip("2.2.2.2")]),
            "1.1.1.1\n2.2.2.2\n"
        );
    }

    #[test]
    fn the_client_is_run_its_lines_read_and_its_exit_restarts_it() {
        // A stand-in for dialgate-dhcp: prints one change and exits.
        let dir = std::env::temp_dir().join(format!("dialgate-uplink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("fake-dhcp");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = --iface ] && [ \"$2\" = eth9 ] || exit 3\necho 'DHCP bound addr=10.9.9.50/24 router=- dns=10.9.9.53 server=10.9.9.1 lease=60s'\necho 'DHCP applied iface=eth9'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut u = DhcpChild::uplink(script.to_str().unwrap(), "eth9");
        let pid = u.pid.expect("started");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = false;
        while Instant::now() < deadline && !seen {
            seen = u.tick(Instant::now());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(seen, "the change was not seen");
        // The lease's servers (its first line) and the applied lease (the
        // second) may have come as one change or two: let both be read.
        std::thread::sleep(Duration::from_millis(300));
        u.tick(Instant::now());
        assert_eq!(u.dns(), vec![Ipv4Addr::new(10, 9, 9, 53)]);
        assert!(!u.tick(Instant::now()), "a change is reported once");
        // Reap it as PID 1 would, then it is started again when due.
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid out-pointer.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(reaped, pid);
        assert!(u.is_pid(pid));
        u.exited(status);
        assert!(!u.is_pid(pid));
        u.tick(Instant::now());
        assert!(u.pid.is_none(), "not before RESTART_AFTER");
        u.tick(Instant::now() + RESTART_AFTER);
        let again = u.pid.expect("started again");
        assert_ne!(again, pid);
        let mut status = 0;
        // SAFETY: as above.
        unsafe { libc::waitpid(again, &mut status, 0) };
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_server_is_given_exactly_the_boot_configuration() {
        use std::net::Ipv4Addr;
        let ip = |d| Ipv4Addr::new(10, 0, 2, d);
        let mut c = ServerConfig::new(ip(15), 24, ip(100), ip(131)).unwrap();
        c.lease = Duration::from_secs(1800);
        c.max_leases = 20;
        let o = crate::dhcpd::parse_args(server_args("eth0", &c)).unwrap();
        assert_eq!(
            (o.iface.as_str(), o.set_address, o.run_for),
            ("eth0", false, None)
        );
        // Every field but the decline hold, which has no flag, is passed.
        assert_eq!(o.config, c);
    }
}
