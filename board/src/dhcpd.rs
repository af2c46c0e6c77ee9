//! The phone side's DHCP server shell: the thin I/O around
//! [`crate::dhcp::Server`], run by `dialgate-dhcp --serve` (and callable
//! by PID 1 as [`run`], on a thread of its own or as a supervised child).
//!
//! ```text
//! dialgate-dhcp --serve --iface IF --addr KIT/PREFIX --pool FIRST-LAST
//!               [--set-address] [--lease S] [--hold S] [--max-leases N] [--for S]
//! ```
//!
//! Brings IF up (and, with `--set-address`, gives it KIT/PREFIX), opens a
//! UDP socket on 0.0.0.0:67 bound to IF (`SO_BINDTODEVICE`,
//! `SO_BROADCAST`) and answers the phones: to 255.255.255.255:68 on IF
//! while they have no address (whether or not they set the broadcast
//! flag: no raw socket and no ARP entry is needed), to their address once
//! they have one. Never run it on the uplink. Every step is one line on
//! stdout, `DHCPD <what> key=value ...`:
//!
//! ```text
//! DHCPD start iface=phones0 addr=10.77.0.1/24 pool=10.77.0.100-10.77.0.131 lease=3600s hold=30s max_leases=32
//! DHCPD offered mac=02:00:00:77:00:20 addr=10.77.0.100 table=1 elapsed_us=81234
//! DHCPD bound mac=02:00:00:77:00:20 addr=10.77.0.100 lease=3600s table=1 bound=1 elapsed_us=82011
//! DHCPD no-offer mac=02:5e:11:0a:9c:01 reason=table-full table=32
//! DHCPD refused from=10.77.0.100:68 reason=relayed detail="relayed through 10.0.0.1: ..."
//! DHCPD stats table=32 bound=1 offers=32 acks=1 naks=0 no_offer_table_full=1969 no_offer_pool_exhausted=0 refused=7 suppressed=1800
//! ```
//!
//! `no-offer` and `refused` lines are limited to [`LINES_PER_SECOND`]
//! together, so that a flood cannot fill the console; what is left out
//! is counted in the next `stats` line (at most one a second, when a
//! counter moved).

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::dhcp::server::{ServerConfig, Stats};
use crate::dhcp::{wire, Server, ServerEvent};
use crate::sys;

/// At most this many `no-offer` and `refused` lines a second.
pub const LINES_PER_SECOND: u32 = 100;
/// The socket's receive buffer asked for.
const RECV_BUFFER: usize = 1 << 20;

/// What [`run`] serves: the interface and the server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub iface: String,
    pub config: ServerConfig,
    /// Give IF the kit's address first (PID 1 may have done it).
    pub set_address: bool,
    /// Stop after this long; `None`: for ever.
    pub run_for: Option<Duration>,
}

const USAGE: &str = "usage: dialgate-dhcp --serve --iface IF --addr KIT/PREFIX --pool FIRST-LAST \
     [--set-address] [--lease S] [--hold S] [--max-leases N] [--for S]";

/// Reads the `--serve` flags (the `--serve` itself may be among them).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut it = args.into_iter();
    let mut iface = String::new();
    let mut addr = None;
    let mut pool = None;
    let (mut lease, mut hold, mut max, mut run_for) = (None, None, None, None);
    let mut set_address = false;
    fn secs(s: Option<String>, flag: &str) -> Result<Duration, String> {
        let s = s.ok_or(format!("{flag} needs seconds"))?;
        s.parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{flag} {s}: not seconds"))
    }
    fn ip(s: &str) -> Result<Ipv4Addr, String> {
        s.parse().map_err(|_| format!("{s}: not an IPv4 address"))
    }
    while let Some(x) = it.next() {
        match x.as_str() {
            "--serve" => {}
            "--set-address" => set_address = true,
            "--iface" => iface = it.next().ok_or("--iface needs a name")?,
            "--addr" => {
                let s = it.next().ok_or("--addr needs KIT/PREFIX")?;
                let (a, p) = s.split_once('/').ok_or(format!("--addr {s}: no /PREFIX"))?;
                let p: u8 = p.parse().map_err(|_| format!("--addr {s}: bad prefix"))?;
                addr = Some((ip(a)?, p));
            }
            "--pool" => {
                let s = it.next().ok_or("--pool needs FIRST-LAST")?;
                let (a, b) = s
                    .split_once('-')
                    .ok_or(format!("--pool {s}: no FIRST-LAST"))?;
                pool = Some((ip(a)?, ip(b)?));
            }
            "--lease" => lease = Some(secs(it.next(), "--lease")?),
            "--hold" => hold = Some(secs(it.next(), "--hold")?),
            "--for" => run_for = Some(secs(it.next(), "--for")?),
            "--max-leases" => {
                let s = it.next().ok_or("--max-leases needs a number")?;
                max = Some(
                    s.parse()
                        .map_err(|_| format!("--max-leases {s}: not a number"))?,
                );
            }
            other => return Err(format!("unknown argument {other}; {USAGE}")),
        }
    }
    if iface.is_empty() || iface.len() > 15 || iface.contains('/') {
        return Err(USAGE.into());
    }
    let ((a, prefix), (first, last)) = addr.zip(pool).ok_or(USAGE)?;
    let mut config = ServerConfig::new(a, prefix, first, last).map_err(|e| e.to_string())?;
    config.lease = lease.unwrap_or(config.lease);
    config.offer_hold = hold.unwrap_or(config.offer_hold);
    config.max_leases = max.unwrap_or(config.max_leases);
    config.validate().map_err(|e| e.to_string())?;
    Ok(Options {
        iface,
        config,
        set_address,
        run_for,
    })
}

fn socket(iface: &str) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    // Room for a burst (a flood's datagrams are refused quickly, but a
    // busy board may not read for a few milliseconds); the kernel caps
    // it at net.core.rmem_max.
    s.set_recv_buffer_size(RECV_BUFFER)?;
    s.bind_device(Some(iface.as_bytes()))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 67)).into())?;
    Ok(s.into())
}

fn mac(m: &[u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// The log: one line per step, and the limiter of flood lines.
struct Log<'a> {
    out: &'a mut dyn Write,
    start: Instant,
    window: Instant,
    in_window: u32,
    suppressed: u64,
    last_stats: Option<(Stats, u64)>,
    stats_at: Instant,
}

impl Log<'_> {
    fn line(&mut self, s: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.out, "DHCPD {s}");
        let _ = self.out.flush();
    }

    /// A `no-offer` or `refused` line, unless over the rate.
    fn flood_line(&mut self, now: Instant, s: std::fmt::Arguments<'_>) {
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.in_window = 0;
        }
        if self.in_window < LINES_PER_SECOND {
            self.in_window += 1;
            self.line(s);
        } else {
            self.suppressed += 1;
        }
    }

    fn us(&self) -> u128 {
        self.start.elapsed().as_micros()
    }

    /// The counters, at most once a second and only when they moved.
    fn stats(&mut self, now: Instant, s: &Server, force: bool) {
        let now_stats = (s.stats(), self.suppressed);
        if self.last_stats == Some(now_stats) {
            return;
        }
        if !force && now.duration_since(self.stats_at) < Duration::from_secs(1) {
            return;
        }
        self.stats_at = now;
        self.last_stats = Some(now_stats);
        let (st, suppressed) = now_stats;
        self.line(format_args!(
            "stats table={} bound={} offers={} acks={} naks={} no_offer_table_full={} no_offer_pool_exhausted={} refused={} suppressed={}",
            s.table_len(),
            s.bound(),
            st.offers,
            st.acks,
            st.naks,
            st.no_offer_table_full,
            st.no_offer_pool_exhausted,
            st.refused,
            suppressed
        ));
    }

    fn event(&mut self, now: Instant, s: &Server, e: &ServerEvent) {
        let (table, bound, us) = (s.table_len(), s.bound(), self.us());
        match e {
            ServerEvent::Offered { mac: m, addr } => self.line(format_args!(
                "offered mac={} addr={addr} table={table} elapsed_us={us}",
                mac(m)
            )),
            ServerEvent::Bound {
                mac: m,
                addr,
                lease,
                renewed,
            } => self.line(format_args!(
                "{} mac={} addr={addr} lease={}s table={table} bound={bound} elapsed_us={us}",
                if *renewed { "renewed" } else { "bound" },
                mac(m),
                lease.as_secs()
            )),
            ServerEvent::Informed { mac: m, addr } => {
                self.line(format_args!("informed mac={} addr={addr}", mac(m)))
            }
            ServerEvent::Nak {
                mac: m,
                addr,
                reason,
            } => self.line(format_args!(
                "nak mac={} addr={addr} reason={}",
                mac(m),
                reason.reason()
            )),
            ServerEvent::NoOffer { mac: m, reason } => self.flood_line(
                now,
                format_args!(
                    "no-offer mac={} reason={} table={table}",
                    mac(m),
                    reason.reason()
                ),
            ),
            ServerEvent::OfferWithdrawn { mac: m, addr } => {
                self.line(format_args!("withdrawn mac={} addr={addr}", mac(m)))
            }
            ServerEvent::Released { mac: m, addr } => self.line(format_args!(
                "released mac={} addr={addr} table={table} bound={bound}",
                mac(m)
            )),
            ServerEvent::Declined { mac: m, addr } => {
                self.line(format_args!("declined mac={} addr={addr}", mac(m)))
            }
            ServerEvent::OfferExpired { mac: m, addr } => self.line(format_args!(
                "offer-expired mac={} addr={addr} table={table}",
                mac(m)
            )),
            ServerEvent::LeaseExpired { mac: m, addr } => self.line(format_args!(
                "lease-expired mac={} addr={addr} bound={bound}",
                mac(m)
            )),
            ServerEvent::DeclineEnded { addr } => {
                self.line(format_args!("decline-ended addr={addr}"))
            }
        }
    }
}

/// Serves until `run_for` has passed (for ever without it). `Err` is a
/// fatal setup or socket error, already logged as `DHCPD fatal`.
pub fn run(o: &Options, out: &mut dyn Write) -> Result<(), String> {
    let start = Instant::now();
    let mut log = Log {
        out,
        start,
        window: start,
        in_window: 0,
        suppressed: 0,
        last_stats: Some((Stats::default(), 0)),
        stats_at: start,
    };
    let c = &o.config;
    let setup = (|| -> Result<(Server, UdpSocket), String> {
        if o.set_address {
            sys::set_address(&o.iface, c.addr, c.prefix)
                .map_err(|e| format!("address on {}: {e}", o.iface))?;
        }
        sys::link_up(&o.iface).map_err(|e| format!("link up {}: {e}", o.iface))?;
        let sock = socket(&o.iface).map_err(|e| format!("socket on {}: {e}", o.iface))?;
        let server = Server::new(c.clone()).map_err(|e| e.to_string())?;
        Ok((server, sock))
    })();
    let (mut server, sock) = match setup {
        Ok(x) => x,
        Err(e) => {
            log.line(format_args!("fatal error=\"{e}\""));
            return Err(e);
        }
    };
    log.line(format_args!(
        "start iface={} addr={}/{} pool={}-{} lease={}s hold={}s max_leases={}",
        o.iface,
        c.addr,
        c.prefix,
        c.pool_first,
        c.pool_last,
        c.lease.as_secs(),
        c.offer_hold.as_secs(),
        c.max_leases
    ));
    let end = o.run_for.map(|d| start + d);
    let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
    loop {
        let now = Instant::now();
        while let Some(e) = server.poll_event() {
            log.event(now, &server, &e);
        }
        while let Some(t) = server.poll_transmit() {
            if let Err(e) = sock.send_to(&t.payload, SocketAddrV4::new(t.to, 68)) {
                log.line(format_args!("send-failed to={} error=\"{e}\"", t.to));
            }
        }
        log.stats(now, &server, false);
        if end.is_some_and(|end| now >= end) {
            log.stats(now, &server, true);
            log.line(format_args!("stop table={}", server.table_len()));
            return Ok(());
        }
        if server.next_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
            continue;
        }
        // Wake for the next timer, the end, and once a second for stats.
        let wake = [
            server.next_timeout(),
            end,
            Some(now + Duration::from_secs(1)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        // A zero timeout would mean "block for ever".
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        let _ = sock.set_read_timeout(Some(wait));
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let now = Instant::now();
                if let Err(r) = server.handle_datagram(now, &buf[..n]) {
                    log.flood_line(
                        now,
                        format_args!("refused from={from} reason={} detail=\"{r}\"", r.reason()),
                    );
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                let e = format!("recv: {e}");
                log.line(format_args!("fatal error=\"{e}\""));
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Options, String> {
        parse_args(s.split(' ').map(String::from))
    }

    #[test]
    fn flags_make_a_validated_configuration() {
        let o = args("--serve --iface phones0 --addr 10.77.0.1/24 --pool 10.77.0.100-10.77.0.131 --hold 2 --max-leases 8 --set-address --for 5").unwrap();
        assert_eq!(o.iface, "phones0");
        assert_eq!(
            (o.config.addr, o.config.prefix),
            (Ipv4Addr::new(10, 77, 0, 1), 24)
        );
        assert_eq!(o.config.offer_hold, Duration::from_secs(2));
        assert_eq!(o.config.max_leases, 8);
        assert!(o.set_address);
        assert_eq!(o.run_for, Some(Duration::from_secs(5)));
        for bad in [
            "--iface phones0 --addr 10.77.0.1/24",
            "--iface phones0 --addr 10.77.0.1 --pool 10.77.0.100-10.77.0.131",
            "--iface phones0 --addr 10.77.0.1/24 --pool 10.78.0.100-10.78.0.131",
            "--iface phones0 --addr 10.77.0.1/24 --pool 10.77.0.100-10.77.0.131 --max-leases 1000",
            "--iface phones0 --addr 10.77.0.1/24 --pool 10.77.0.100-10.77.0.131 --lease 5",
            "--addr 10.77.0.1/24 --pool 10.77.0.100-10.77.0.131",
            "--iface phones0 --addr 10.77.0.1/24 --pool 10.77.0.100-10.77.0.131 --bogus",
        ] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }
}
