//! The client's state machine (RFC 2131 §4.4, figure 5).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::wire::{self, MessageType, Reply, Request};
use super::{
    after, Destination, Event, Lease, LostReason, Random, Refused, Transmit, MAX_LEASE, MIN_LEASE,
    MIN_T1,
};

/// RFC 2131 figure 5's states (INIT-REBOOT and REBOOTING are not used: a
/// kit that boots asks afresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting before a new DHCPDISCOVER (after repeated DHCPNAKs).
    Init,
    /// DHCPDISCOVER sent, waiting for an offer.
    Selecting,
    /// DHCPREQUEST for an offer sent, waiting for its ACK or NAK.
    Requesting,
    /// A lease is held; waiting for T1.
    Bound,
    /// T1 passed: asking the leasing server, by unicast.
    Renewing,
    /// T2 passed: asking any server, by broadcast.
    Rebinding,
}

/// The fixed timer table (STYLE.md §4).
#[derive(Debug, Clone, Copy)]
enum Timer {
    /// Resend the request of the current state (or, in INIT, start).
    Retransmit = 0,
    /// T1: BOUND -> RENEWING.
    Renew = 1,
    /// T2: -> REBINDING.
    Rebind = 2,
    /// The lease's end: -> INIT, address lost.
    Expire = 3,
}

/// The first retransmission delay and its cap (RFC 2131 §4.1: 4 s,
/// doubling, up to 64 s, each randomised by ±1 s).
const BACKOFF_FIRST: Duration = Duration::from_secs(4);
const BACKOFF_CAP: Duration = Duration::from_secs(64);
/// A REQUEST for an offer is sent at most this many times before the
/// client starts over with a DISCOVER.
const REQUEST_TRIES: u32 = 4;
/// RENEWING and REBINDING retransmit after half the time left, but not
/// sooner than this (RFC 2131 §4.4.5).
const RENEW_RETRY_MIN: Duration = Duration::from_secs(60);

/// The lease in force and when its clock started.
#[derive(Debug, Clone)]
struct Held {
    lease: Lease,
    start: Instant,
}

/// A DHCPv4 client on one interface. See the module documentation for
/// the driving contract.
pub struct Client<R: Random> {
    mac: [u8; 6],
    rng: R,
    state: State,
    xid: u32,
    /// When the current exchange began (the `secs` field).
    began: Instant,
    /// When its first REQUEST went out: the lease's times count from it.
    requested: Instant,
    /// Transmissions of the current request in this state.
    tries: u32,
    /// DHCPNAKs since the last lease: the second and later delay the next
    /// DISCOVER, so a NAKing server cannot keep the client spinning.
    naks: u32,
    /// (address, server) of the offer being requested.
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    held: Option<Held>,
    /// The address held before a loss, to report a new one as a change.
    previous: Option<Ipv4Addr>,
    timers: [Option<Instant>; 4],
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl<R: Random> std::fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state)
            .field("xid", &format_args!("{:#010x}", self.xid))
            .field("lease", &self.held.as_ref().map(|h| &h.lease))
            .finish_non_exhaustive()
    }
}

impl<R: Random> Client<R> {
    /// A client for the interface with hardware address `mac`; queues the
    /// first DHCPDISCOVER.
    pub fn new(mac: [u8; 6], rng: R, now: Instant) -> Self {
        let mut c = Client {
            mac,
            rng,
            state: State::Init,
            xid: 0,
            began: now,
            requested: now,
            tries: 0,
            naks: 0,
            offer: None,
            held: None,
            previous: None,
            timers: [None; 4],
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        c.discover(now);
        c
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The lease in force, if any (BOUND, RENEWING, REBINDING).
    pub fn lease(&self) -> Option<&Lease> {
        self.held.as_ref().map(|h| &h.lease)
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the shell.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must be called next.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// Acts on the timers that are due at `now`, the most advanced state
    /// first: the lease's expiry, else T2, else T1, else retransmission.
    /// Afterwards no timer is due at `now` (a caller that slept past T1
    /// and T2 lands in REBINDING, not in RENEWING).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.due(Timer::Expire, now) {
            if let Some(h) = self.held.take() {
                self.lost(h.lease.addr, LostReason::Expired);
            }
            self.discover(now);
            return;
        }
        if self.due(Timer::Rebind, now) {
            // T1 may be due too (a caller that slept past both): it is
            // behind us now.
            self.set(Timer::Renew, None);
            self.state = State::Rebinding;
            self.new_exchange(now);
            self.send_renewal(now);
            return;
        }
        if self.due(Timer::Renew, now) {
            self.state = State::Renewing;
            self.new_exchange(now);
            self.send_renewal(now);
            return;
        }
        if self.due(Timer::Retransmit, now) {
            match self.state {
                State::Init => self.discover(now),
                State::Selecting => self.send_discover(now),
                State::Requesting if self.tries >= REQUEST_TRIES => self.discover(now),
                State::Requesting => self.send_request(now),
                State::Renewing | State::Rebinding => self.send_renewal(now),
                State::Bound => {}
            }
        }
    }

    /// A datagram received on port 68. `Err` says why it was dropped; the
    /// state is then unchanged.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Refused> {
        let r = wire::parse_reply(datagram)?;
        if r.xid != self.xid {
            return Err(Refused::WrongXid);
        }
        if r.chaddr != self.mac {
            return Err(Refused::WrongChaddr);
        }
        let expected = match self.state {
            State::Selecting => r.kind == MessageType::Offer,
            State::Requesting | State::Renewing | State::Rebinding => {
                matches!(r.kind, MessageType::Ack | MessageType::Nak)
            }
            State::Init | State::Bound => false,
        };
        if !expected {
            return Err(Refused::Unexpected {
                kind: r.kind,
                state: self.state,
            });
        }
        let server = r.server_id.ok_or(Refused::NoServerId)?;
        if !unicast(server) {
            return Err(Refused::BadServerId(server));
        }
        // Who may answer: the chosen server in REQUESTING and RENEWING (we
        // asked it alone), any server in REBINDING.
        let chosen = match self.state {
            State::Requesting => self.offer.map(|(_, s)| s),
            State::Renewing => self.held.as_ref().map(|h| h.lease.server),
            _ => None,
        };
        if chosen.is_some_and(|s| s != server) {
            return Err(Refused::WrongServer(server));
        }
        if r.kind == MessageType::Nak {
            self.nak(now);
            return Ok(());
        }
        let lease = validate(&r, server)?;
        match self.state {
            State::Selecting => {
                self.offer = Some((lease.addr, server));
                self.state = State::Requesting;
                self.tries = 0;
                self.send_request(now);
            }
            State::Requesting => {
                if self.offer.is_some_and(|(a, _)| a != lease.addr) {
                    return Err(Refused::NotOffered(lease.addr));
                }
                let event = match self.previous {
                    Some(old) if old != lease.addr => Event::AddressChanged {
                        old,
                        lease: lease.clone(),
                    },
                    _ => Event::Bound(lease.clone()),
                };
                self.bind(lease, event);
            }
            _ => {
                let old = self.held.as_ref().map(|h| h.lease.addr);
                let event = match old {
                    Some(old) if old != lease.addr => Event::AddressChanged {
                        old,
                        lease: lease.clone(),
                    },
                    _ => Event::Renewed(lease.clone()),
                };
                self.bind(lease, event);
            }
        }
        Ok(())
    }

    fn due(&mut self, t: Timer, now: Instant) -> bool {
        let slot = &mut self.timers[t as usize];
        if slot.is_some_and(|at| at <= now) {
            *slot = None;
            true
        } else {
            false
        }
    }

    fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    fn new_exchange(&mut self, now: Instant) {
        let mut b = [0u8; 4];
        self.rng.fill(&mut b);
        self.xid = u32::from_be_bytes(b);
        self.began = now;
        self.requested = now;
        self.tries = 0;
    }

    /// INIT -> SELECTING: a new transaction, a DHCPDISCOVER.
    fn discover(&mut self, now: Instant) {
        self.timers = [None; 4];
        self.offer = None;
        self.state = State::Selecting;
        self.new_exchange(now);
        self.send_discover(now);
    }

    /// The delay before retransmission number `tries` (1-based), with
    /// ±1 s of jitter.
    fn backoff(&mut self, tries: u32) -> Duration {
        let base = BACKOFF_FIRST
            .saturating_mul(1 << tries.saturating_sub(1).min(4))
            .min(BACKOFF_CAP);
        let mut b = [0u8; 2];
        self.rng.fill(&mut b);
        let jitter = u64::from(u16::from_be_bytes(b)) % 2001; // 0..=2000 ms
        (base + Duration::from_millis(jitter)).saturating_sub(Duration::from_secs(1))
    }

    fn request(&self, now: Instant, kind: MessageType) -> Request {
        let secs = now.saturating_duration_since(self.began).as_secs();
        Request {
            kind,
            xid: self.xid,
            secs: u16::try_from(secs).unwrap_or(u16::MAX),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            broadcast: true,
            chaddr: self.mac,
            requested_ip: None,
            server_id: None,
        }
    }

    fn push(&mut self, destination: Destination, r: &Request) {
        self.transmits.push_back(Transmit {
            destination,
            payload: r.encode(),
        });
    }

    fn send_discover(&mut self, now: Instant) {
        let r = self.request(now, MessageType::Discover);
        self.push(Destination::Broadcast, &r);
        self.tries += 1;
        let d = self.backoff(self.tries);
        self.set(Timer::Retransmit, Some(after(now, d)));
    }

    /// SELECTING's REQUEST: the offered address and the chosen server,
    /// broadcast so that the other servers learn their offers were
    /// declined (RFC 2131 §4.4.1).
    fn send_request(&mut self, now: Instant) {
        let Some((addr, server)) = self.offer else {
            return self.discover(now);
        };
        if self.tries == 0 {
            self.requested = now;
        }
        let mut r = self.request(now, MessageType::Request);
        r.requested_ip = Some(addr);
        r.server_id = Some(server);
        self.push(Destination::Broadcast, &r);
        self.tries += 1;
        let d = self.backoff(self.tries);
        self.set(Timer::Retransmit, Some(after(now, d)));
    }

    /// RENEWING's (unicast) or REBINDING's (broadcast) REQUEST: ciaddr
    /// set, no requested address or server id (RFC 2131 table 5).
    fn send_renewal(&mut self, now: Instant) {
        let Some(h) = &self.held else {
            return self.discover(now);
        };
        let (addr, server) = (h.lease.addr, h.lease.server);
        let (t2, end) = (after(h.start, h.lease.t2), after(h.start, h.lease.lease));
        let mut r = self.request(now, MessageType::Request);
        r.ciaddr = addr;
        let (destination, until) = if self.state == State::Renewing {
            r.broadcast = false;
            (Destination::Unicast(server), t2)
        } else {
            (Destination::Broadcast, end)
        };
        if self.tries == 0 {
            self.requested = now;
        }
        self.push(destination, &r);
        self.tries += 1;
        // Half the time left, at least RENEW_RETRY_MIN; none when that
        // reaches the next state's timer, which then takes over.
        let left = until.saturating_duration_since(now);
        let wait = (left / 2).max(RENEW_RETRY_MIN);
        self.set(Timer::Retransmit, (wait < left).then(|| after(now, wait)));
    }

    fn bind(&mut self, lease: Lease, event: Event) {
        let start = self.requested;
        self.set(Timer::Retransmit, None);
        self.set(Timer::Renew, Some(after(start, lease.t1)));
        self.set(Timer::Rebind, Some(after(start, lease.t2)));
        self.set(Timer::Expire, Some(after(start, lease.lease)));
        self.state = State::Bound;
        self.offer = None;
        self.naks = 0;
        self.previous = None;
        self.held = Some(Held { lease, start });
        self.events.push_back(event);
    }

    fn lost(&mut self, addr: Ipv4Addr, reason: LostReason) {
        self.previous = Some(addr);
        self.events.push_back(Event::Lost { addr, reason });
    }

    /// DHCPNAK: the address (if any) is lost; start over, at once after
    /// the first NAK, with backoff after further ones.
    fn nak(&mut self, now: Instant) {
        if let Some(h) = self.held.take() {
            self.lost(h.lease.addr, LostReason::Nak);
        }
        self.naks += 1;
        if self.naks == 1 {
            return self.discover(now);
        }
        self.timers = [None; 4];
        self.offer = None;
        self.state = State::Init;
        let d = self.backoff(self.naks - 1);
        self.set(Timer::Retransmit, Some(after(now, d)));
    }
}

/// Not 0/8, loopback, link-local, multicast, reserved or broadcast.
fn unicast(a: Ipv4Addr) -> bool {
    !(a.octets()[0] == 0
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.octets()[0] >= 240)
}

/// The prefix of a contiguous mask, if it is one of /8 to /30.
fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let p = m.leading_ones();
    (m.checked_shl(p).unwrap_or(0) == 0 && (8..=30).contains(&p)).then_some(p as u8)
}

/// A host address of the subnet `net/prefix`: neither its network nor its
/// broadcast address.
fn host_of(a: Ipv4Addr, net: u32, prefix: u8) -> bool {
    let mask = u32::MAX << (32 - prefix);
    let a = u32::from(a);
    a & mask == net && a != net && a != net | !mask
}

/// An OFFER's or ACK's lease, or why it cannot be used (the module
/// documentation lists the rules).
fn validate(r: &Reply, server: Ipv4Addr) -> Result<Lease, Refused> {
    let addr = r.yiaddr;
    if !unicast(addr) {
        return Err(Refused::BadAddress(addr));
    }
    let mask = r.subnet_mask.ok_or(Refused::NoSubnetMask)?;
    let prefix = prefix_of(mask).ok_or(Refused::BadSubnetMask(mask))?;
    let net = u32::from(addr) & u32::from(mask);
    if !host_of(addr, net, prefix) {
        return Err(Refused::AddressNotHost(addr));
    }
    let router = match r.routers.first() {
        None => None,
        Some(&g) if g != addr && host_of(g, net, prefix) => Some(g),
        Some(&g) => return Err(Refused::RouterOutsideSubnet(g)),
    };
    if let Some(&bad) = r.dns.iter().find(|&&d| !unicast(d)) {
        return Err(Refused::BadDnsServer(bad));
    }
    let secs = r.lease_secs.ok_or(Refused::NoLeaseTime)?;
    let lease = Duration::from_secs(u64::from(secs));
    if lease < MIN_LEASE {
        return Err(Refused::LeaseTooShort(secs));
    }
    let lease = lease.min(MAX_LEASE);
    let (t1, t2) = times(lease, r.t1_secs, r.t2_secs);
    Ok(Lease {
        addr,
        prefix,
        router,
        dns: r.dns.iter().take(wire::MAX_DNS).copied().collect(),
        server,
        lease,
        t1,
        t2,
    })
}

/// T1 and T2 (RFC 2131 §4.4.5): the server's when they are in order
/// (`MIN_T1 <= t1 < t2 < lease`; a T1 under [`MIN_T1`] is raised to it),
/// otherwise 0.5 and 0.875 of the lease.
fn times(lease: Duration, t1: Option<u32>, t2: Option<u32>) -> (Duration, Duration) {
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    let t2 = t2
        .map(secs)
        .filter(|&t| t > MIN_T1 && t < lease)
        .unwrap_or(lease * 7 / 8);
    let default_t1 = if lease / 2 < t2 {
        lease / 2
    } else {
        (t2 / 2).max(MIN_T1)
    };
    let t1 = t1
        .map(secs)
        .filter(|&t| t < t2)
        .map_or(default_t1, |t| t.max(MIN_T1));
    (t1, t2)
}
