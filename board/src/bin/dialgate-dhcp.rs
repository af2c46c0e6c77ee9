//! `dialgate-dhcp`: the uplink's DHCPv4 client, the thin shell around
//! [`dialgate_board::dhcp::Client`]; with `--serve`, the phone side's
//! DHCPv4 server instead (`dialgate_board::dhcpd`, where its flags and
//! log lines are described).
//!
//! ```text
//! dialgate-dhcp --iface IF [--once] [--for SECONDS]
//! dialgate-dhcp --serve --iface IF --addr KIT/PREFIX --pool FIRST-LAST [...]
//! ```
//!
//! Brings IF up, waits (at most 10 s) for carrier, opens a UDP socket on 0.0.0.0:68 bound to IF
//! (SO_BINDTODEVICE, SO_BROADCAST; the requests ask for broadcast
//! replies, so no raw socket is needed), drives the client and applies
//! each lease: the address and prefix on IF, the default route via the
//! router ([`dialgate_board::sys`]); a lost lease removes both. Every
//! step is one line on stdout, `DHCP <what> key=value ...`, e.g.
//!
//! ```text
//! DHCP bound addr=192.168.77.50/24 router=192.168.77.1 dns=192.168.77.53 server=192.168.77.1 lease=120s t1=10s t2=20s elapsed_ms=1012
//! DHCP dropped from=192.168.77.1:67 reason=wrong-xid detail="transaction id is not ours"
//! ```
//!
//! `--once` exits 0 at the first lease (1 if none came within `--for`,
//! default 30 s with `--once`); otherwise it runs for `--for` seconds, or
//! for ever.

#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(linux::main())
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("dialgate-dhcp runs only on Linux");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
    use std::time::{Duration, Instant};

    use dialgate_board::dhcp::{wire, Client, Destination, Event, Lease, Random};
    use dialgate_board::sys;
    use socket2::{Domain, Protocol, Socket, Type};

    macro_rules! say {
        ($($t:tt)*) => {{
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "DHCP {}", format_args!($($t)*));
            let _ = out.flush();
        }};
    }

    /// The kernel's CSPRNG; the client fails closed if it is unreadable.
    struct Urandom(File);

    impl Random for Urandom {
        fn fill(&mut self, buf: &mut [u8]) {
            if let Err(e) = self.0.read_exact(buf) {
                say!("fatal error=\"/dev/urandom: {e}\"");
                std::process::exit(1);
            }
        }
    }

    struct Args {
        iface: String,
        once: bool,
        run_for: Option<Duration>,
    }

    fn args() -> Result<Args, String> {
        let mut a = Args {
            iface: String::new(),
            once: false,
            run_for: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(x) = it.next() {
            match x.as_str() {
                "--iface" => a.iface = it.next().ok_or("--iface needs a name")?,
                "--once" => a.once = true,
                "--for" => {
                    let s = it.next().ok_or("--for needs seconds")?;
                    let n: u64 = s.parse().map_err(|_| format!("--for {s}: not seconds"))?;
                    a.run_for = Some(Duration::from_secs(n));
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if a.iface.is_empty() || a.iface.len() > 15 || a.iface.contains('/') {
            return Err("usage: dialgate-dhcp --iface IF [--once] [--for SECONDS]".into());
        }
        if a.once && a.run_for.is_none() {
            a.run_for = Some(Duration::from_secs(30));
        }
        Ok(a)
    }

    fn mac(iface: &str) -> Result<[u8; 6], String> {
        let path = format!("/sys/class/net/{iface}/address");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let parts: Vec<u8> = text
            .trim()
            .split(':')
            .map(|h| u8::from_str_radix(h, 16))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{path}: not a MAC address"))?;
        parts
            .try_into()
            .map_err(|_| format!("{path}: not an Ethernet address"))
    }

    /// How long the shell waits for carrier before sending anyway.
    const CARRIER_WAIT: Duration = Duration::from_secs(10);

    /// Whether IF reports carrier (`/sys/class/net/IF/carrier` is 1)
    /// within `limit`.
    fn wait_carrier(iface: &str, limit: Duration) -> bool {
        let path = format!("/sys/class/net/{iface}/carrier");
        let start = Instant::now();
        loop {
            if std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == "1") {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn socket(iface: &str) -> io::Result<UdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.bind_device(Some(iface.as_bytes()))?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into())?;
        Ok(s.into())
    }

    /// What is installed on the interface.
    #[derive(Default)]
    struct Installed {
        addr: Option<(Ipv4Addr, u8)>,
        router: Option<Ipv4Addr>,
    }

    fn ok_unless(r: io::Result<()>, benign: i32) -> io::Result<()> {
        match r {
            Err(e) if e.raw_os_error() == Some(benign) => Ok(()),
            r => r,
        }
    }

    fn apply(iface: &str, now: &mut Installed, l: &Lease) -> io::Result<()> {
        let changed = now.addr != Some((l.addr, l.prefix));
        if changed {
            sys::set_address(iface, l.addr, l.prefix)?;
            now.addr = Some((l.addr, l.prefix));
        }
        // A new address takes its routes with the old one: route again.
        if changed || now.router != l.router {
            ok_unless(sys::delete_default_route(), libc::ESRCH)?;
            now.router = None;
            if let Some(gw) = l.router {
                ok_unless(sys::default_route(gw), libc::EEXIST)?;
                now.router = Some(gw);
            }
        }
        Ok(())
    }

    fn remove(iface: &str, now: &mut Installed) -> io::Result<()> {
        ok_unless(sys::delete_default_route(), libc::ESRCH)?;
        now.router = None;
        sys::clear_address(iface)?;
        now.addr = None;
        Ok(())
    }

    fn show(l: &Lease) -> String {
        let list = |v: &[Ipv4Addr]| {
            let s: Vec<String> = v.iter().map(Ipv4Addr::to_string).collect();
            if s.is_empty() {
                "-".to_string()
            } else {
                s.join(",")
            }
        };
        format!(
            "addr={}/{} router={} dns={} server={} lease={}s t1={}s t2={}s",
            l.addr,
            l.prefix,
            l.router.map_or("-".to_string(), |r| r.to_string()),
            list(&l.dns),
            l.server,
            l.lease.as_secs(),
            l.t1.as_secs(),
            l.t2.as_secs()
        )
    }

    /// `--serve`: the phone side's server.
    fn serve() -> i32 {
        match dialgate_board::dhcpd::parse_args(std::env::args().skip(1)) {
            Err(e) => {
                eprintln!("dialgate-dhcp: {e}");
                2
            }
            Ok(o) => match dialgate_board::dhcpd::run(&o, &mut std::io::stdout()) {
                Ok(()) => 0,
                Err(_) => 1,
            },
        }
    }

    pub fn main() -> i32 {
        if std::env::args().any(|a| a == "--serve") {
            return serve();
        }
        let start = Instant::now();
        let a = match args() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("dialgate-dhcp: {e}");
                return 2;
            }
        };
        let setup = (|| -> Result<(Client<Urandom>, UdpSocket), String> {
            let mac = mac(&a.iface)?;
            sys::link_up(&a.iface).map_err(|e| format!("link up {}: {e}", a.iface))?;
            let sock = socket(&a.iface).map_err(|e| format!("socket on {}: {e}", a.iface))?;
            let rng = Urandom(File::open("/dev/urandom").map_err(|e| format!("urandom: {e}"))?);
            // A DISCOVER sent before the link has carrier is lost, and the
            // next one is 4 s later: wait for carrier first (bounded).
            let carrier = wait_carrier(&a.iface, CARRIER_WAIT);
            say!(
                "start iface={} mac={} carrier={} carrier_ms={}",
                a.iface,
                mac.map(|b| format!("{b:02x}")).join(":"),
                if carrier { "yes" } else { "no" },
                start.elapsed().as_millis()
            );
            Ok((Client::new(mac, rng, Instant::now()), sock))
        })();
        let (mut client, sock) = match setup {
            Ok(x) => x,
            Err(e) => {
                say!("fatal error=\"{e}\"");
                return 1;
            }
        };
        let end = a.run_for.map(|d| start + d);
        let mut installed = Installed::default();
        let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
        loop {
            // Events first: a lost address is removed before the next
            // DISCOVER goes out, so that it leaves from 0.0.0.0.
            while let Some(e) = client.poll_event() {
                let ms = start.elapsed().as_millis();
                let applied = match &e {
                    Event::Bound(l) => {
                        say!("bound {} elapsed_ms={ms}", show(l));
                        apply(&a.iface, &mut installed, l)
                    }
                    Event::Renewed(l) => {
                        say!("renewed {} elapsed_ms={ms}", show(l));
                        apply(&a.iface, &mut installed, l)
                    }
                    Event::AddressChanged { old, lease } => {
                        say!("address-changed old={old} {} elapsed_ms={ms}", show(lease));
                        apply(&a.iface, &mut installed, lease)
                    }
                    Event::Lost { addr, reason } => {
                        say!("lost addr={addr} reason={reason:?} elapsed_ms={ms}");
                        remove(&a.iface, &mut installed)
                    }
                };
                match applied {
                    Ok(()) => say!("applied iface={}", a.iface),
                    Err(err) => say!("apply-failed iface={} error=\"{err}\"", a.iface),
                }
                if a.once && matches!(e, Event::Bound(_) | Event::AddressChanged { .. }) {
                    return 0;
                }
            }
            while let Some(t) = client.poll_transmit() {
                let to = match t.destination {
                    Destination::Broadcast => Ipv4Addr::BROADCAST,
                    Destination::Unicast(a) => a,
                };
                let kind =
                    wire::parse_request(&t.payload).map_or("?".into(), |r| format!("{:?}", r.kind));
                match sock.send_to(&t.payload, SocketAddrV4::new(to, 67)) {
                    Ok(_) => say!("sent kind={kind} to={to}"),
                    Err(e) => say!("send-failed to={to} error=\"{e}\""),
                }
            }
            let now = Instant::now();
            if end.is_some_and(|end| now >= end) {
                say!("stop state={:?}", client.state());
                return if a.once { 1 } else { 0 };
            }
            if client.next_timeout().is_some_and(|t| t <= now) {
                client.handle_timeout(now);
                continue;
            }
            let wake = [client.next_timeout(), end].into_iter().flatten().min();
            let wait = wake.map_or(Duration::from_secs(3600), |w| {
                w.saturating_duration_since(now)
            });
            // A zero timeout would mean "block for ever".
            let _ = sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Err(r) = client.handle_datagram(Instant::now(), &buf[..n]) {
                        say!("dropped from={from} reason={} detail=\"{r}\"", r.reason());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    say!("fatal error=\"recv: {e}\"");
                    return 1;
                }
            }
        }
    }
}
