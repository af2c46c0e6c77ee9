//! The phone side's DHCPv4 server (RFC 2131 §4.3), sans-IO.
//!
//! The phone side is a small LAN of the kit's own: phones plugged in or
//! tethered get an address from a pool inside the kit's phone subnet, the
//! subnet mask, the lease times, the server identifier (the kit's
//! phone-side address) and that same address as their SIP server (option
//! 120, RFC 3361). Nothing else: **no router** (option 3), so a phone has
//! no default route through the kit and the uplink is no concern of its;
//! **no DNS server** (option 6), since a phone needs no name to reach the
//! kit and the uplink's resolver is not the phones' to use. The SIP/TLS
//! port (5061) cannot be carried by DHCP; the phone is configured with it
//! (`docs/network.md`, "Phones plugged in").
//!
//! # Driving contract
//!
//! 1. [`Server::new`] with a validated [`ServerConfig`]; it sends nothing
//!    until asked.
//! 2. After every input — [`Server::handle_datagram`] for a datagram
//!    received on port 67, [`Server::handle_timeout`] once `now` has
//!    reached [`Server::next_timeout`] — drain [`Server::poll_transmit`]
//!    and [`Server::poll_event`] until both return `None`.
//! 3. A datagram the server does not accept is dropped with a typed
//!    [`Refused`] reason for the log and changes nothing. A valid message
//!    it cannot serve has an event instead: [`ServerEvent::NoOffer`] (the
//!    table or the pool is full), [`ServerEvent::Nak`].
//!
//! # The lease table
//!
//! At most [`ServerConfig::max_leases`] entries (at most [`MAX_TABLE`]),
//! each one client (its client identifier, option 61, or else its
//! hardware address) and one address. An OFFER is tentative: its entry
//! lives [`ServerConfig::offer_hold`] unless the client requests it (an
//! entry that was idle before goes back to idle). A
//! lease that expires or is released stays as an *idle* entry so that
//! the client gets the same address back; idle entries are the only ones
//! ever reused for another client (oldest first). With the table full of
//! offers and leases, a new client gets no offer: a flood of DISCOVERs
//! from random MACs fills the table for one hold time and never evicts a
//! bound phone. A declined address (DECLINE, RFC 2131 §4.3.3: someone
//! else answers ARP for it) is kept out of use for
//! [`ServerConfig::decline_hold`].

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::wire::{self, Answer, ClientMessage, MessageType};
use super::{after, Refused, MAX_LEASE, MIN_LEASE};

/// The hard maximum of the lease table, whatever the configuration says.
pub const MAX_TABLE: usize = 256;
/// The table size by default: more phones than a travel kit serves.
pub const DEFAULT_TABLE: usize = 32;
/// The lease by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3600);
/// How long an unrequested OFFER holds its address, by default.
pub const DEFAULT_OFFER_HOLD: Duration = Duration::from_secs(30);
/// How long a declined address stays out of use, by default.
pub const DEFAULT_DECLINE_HOLD: Duration = Duration::from_secs(600);

/// The server's configuration, checked by [`ServerConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The kit's phone-side address: server identifier and SIP server.
    pub addr: Ipv4Addr,
    /// The phone subnet's prefix, 8..=30.
    pub prefix: u8,
    /// The pool, inclusive, inside the subnet; the kit's own address is
    /// skipped if it falls inside.
    pub pool_first: Ipv4Addr,
    pub pool_last: Ipv4Addr,
    /// [`MIN_LEASE`]..=[`MAX_LEASE`].
    pub lease: Duration,
    /// 1 s..=5 min.
    pub offer_hold: Duration,
    /// 1 s..=1 day.
    pub decline_hold: Duration,
    /// 1..=[`MAX_TABLE`].
    pub max_leases: usize,
}

/// Why a [`ServerConfig`] is refused: the local configuration's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("prefix /{0} is outside /8../30")]
    BadPrefix(u8),
    #[error("{0} is not a host address of its subnet")]
    NotHost(Ipv4Addr),
    #[error("pool {0}-{1} is not a range of host addresses inside the subnet")]
    BadPool(Ipv4Addr, Ipv4Addr),
    #[error("lease {0:?} is outside {MIN_LEASE:?}..={MAX_LEASE:?}")]
    BadLease(Duration),
    #[error("hold {0:?} is out of range")]
    BadHold(Duration),
    #[error("table of {0} leases is outside 1..={MAX_TABLE}")]
    BadTableSize(usize),
}

impl ServerConfig {
    /// A configuration with the defaults ([`DEFAULT_LEASE`],
    /// [`DEFAULT_OFFER_HOLD`], [`DEFAULT_DECLINE_HOLD`],
    /// [`DEFAULT_TABLE`]), validated.
    pub fn new(
        addr: Ipv4Addr,
        prefix: u8,
        pool_first: Ipv4Addr,
        pool_last: Ipv4Addr,
    ) -> Result<ServerConfig, ConfigError> {
        let c = ServerConfig {
            addr,
            prefix,
            pool_first,
            pool_last,
            lease: DEFAULT_LEASE,
            offer_hold: DEFAULT_OFFER_HOLD,
            decline_hold: DEFAULT_DECLINE_HOLD,
            max_leases: DEFAULT_TABLE,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks every rule of the field documentation, and that the pool
    /// holds at least one address other than the kit's.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(8..=30).contains(&self.prefix) {
            return Err(ConfigError::BadPrefix(self.prefix));
        }
        if !self.host(self.addr) {
            return Err(ConfigError::NotHost(self.addr));
        }
        let (first, last) = (u32::from(self.pool_first), u32::from(self.pool_last));
        let only_kit = first == last && self.pool_first == self.addr;
        if first > last || !self.host(self.pool_first) || !self.host(self.pool_last) || only_kit {
            return Err(ConfigError::BadPool(self.pool_first, self.pool_last));
        }
        if !(MIN_LEASE..=MAX_LEASE).contains(&self.lease) {
            return Err(ConfigError::BadLease(self.lease));
        }
        let s = Duration::from_secs;
        if !(s(1)..=s(300)).contains(&self.offer_hold) {
            return Err(ConfigError::BadHold(self.offer_hold));
        }
        if !(s(1)..=s(86_400)).contains(&self.decline_hold) {
            return Err(ConfigError::BadHold(self.decline_hold));
        }
        if !(1..=MAX_TABLE).contains(&self.max_leases) {
            return Err(ConfigError::BadTableSize(self.max_leases));
        }
        Ok(())
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// A host address of the kit's subnet (not its network or broadcast
    /// address).
    fn host(&self, a: Ipv4Addr) -> bool {
        let (m, a, net) = (
            self.mask(),
            u32::from(a),
            u32::from(self.addr) & self.mask(),
        );
        a & m == net && a != net && a != net | !m
    }

    /// An address the pool may hand out.
    fn in_pool(&self, a: Ipv4Addr) -> bool {
        let x = u32::from(a);
        (u32::from(self.pool_first)..=u32::from(self.pool_last)).contains(&x) && a != self.addr
    }
}

/// A datagram to send from port 67 to port 68 of `to`: the limited
/// broadcast address (every answer to a client without an address, and
/// every NAK), or the client's own address (the ACK to a renewal, to an
/// INFORM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTransmit {
    pub to: Ipv4Addr,
    pub payload: Vec<u8>,
}

/// Why a DISCOVER got no OFFER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoOffer {
    /// Every table entry is an offer, a lease or a declined address.
    TableFull,
    /// Every pool address is offered, leased or declined.
    PoolExhausted,
}

/// Why a REQUEST was answered with a NAK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NakReason {
    /// The server holds no offer or lease for this client.
    UnknownClient,
    /// The client's offer or lease is for another address.
    NotOffered,
    /// The address is not one of the pool's.
    OutsidePool,
}

impl NoOffer {
    /// A stable name for logs.
    pub fn reason(self) -> &'static str {
        match self {
            NoOffer::TableFull => "table-full",
            NoOffer::PoolExhausted => "pool-exhausted",
        }
    }
}

impl NakReason {
    /// A stable name for logs.
    pub fn reason(self) -> &'static str {
        match self {
            NakReason::UnknownClient => "unknown-client",
            NakReason::NotOffered => "not-offered",
            NakReason::OutsidePool => "outside-pool",
        }
    }
}

/// What the shell logs (and counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// An OFFER went out.
    Offered {
        mac: [u8; 6],
        addr: Ipv4Addr,
    },
    /// An ACK went out: the client holds `addr` for `lease`. `renewed`:
    /// it held it already (a renewal, a reboot).
    Bound {
        mac: [u8; 6],
        addr: Ipv4Addr,
        lease: Duration,
        renewed: bool,
    },
    /// An ACK to an INFORM (configuration only, no lease).
    Informed {
        mac: [u8; 6],
        addr: Ipv4Addr,
    },
    /// A NAK went out.
    Nak {
        mac: [u8; 6],
        addr: Ipv4Addr,
        reason: NakReason,
    },
    /// A DISCOVER got no OFFER.
    NoOffer {
        mac: [u8; 6],
        reason: NoOffer,
    },
    /// The client chose another server: its offer is withdrawn.
    OfferWithdrawn {
        mac: [u8; 6],
        addr: Ipv4Addr,
    },
    Released {
        mac: [u8; 6],
        addr: Ipv4Addr,
    },
    /// The address is out of use for the decline hold.
    Declined {
        mac: [u8; 6],
        addr: Ipv4Addr,
    },
    /// An offer not requested within the hold.
    OfferExpired {
        mac: [u8; 6],
        addr: Ipv4Addr,
    },
    /// A lease not renewed in time.
    LeaseExpired {
        mac: [u8; 6],
        addr: Ipv4Addr,
    },
    /// A declined address is back in the pool.
    DeclineEnded {
        addr: Ipv4Addr,
    },
}

/// Counters since [`Server::new`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub no_offer_table_full: u64,
    pub no_offer_pool_exhausted: u64,
    pub refused: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// `idle_since`: the entry was idle before (the client's old
    /// address), and is again when the offer's hold passes.
    Offered {
        until: Instant,
        idle_since: Option<Instant>,
    },
    Bound {
        until: Instant,
    },
    Declined {
        until: Instant,
    },
    /// Released or expired: the client's address until someone else
    /// needs the entry.
    Idle {
        since: Instant,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    /// The client identifier, or 1 (Ethernet) and the MAC; empty for a
    /// declined address (no client matches it).
    client: Vec<u8>,
    mac: [u8; 6],
    addr: Ipv4Addr,
    slot: Slot,
}

/// The phone side's DHCP server. See the module documentation for the
/// driving contract and the table's rules.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// Distinct addresses, at most `config.max_leases` entries.
    table: Vec<Entry>,
    transmits: VecDeque<ServerTransmit>,
    events: VecDeque<ServerEvent>,
    stats: Stats,
}

/// The key of a client (RFC 2131 §4.2): its identifier, else its MAC.
fn key(m: &ClientMessage) -> Vec<u8> {
    match &m.client_id {
        Some(id) => id.clone(),
        None => [&[1u8][..], &m.chaddr].concat(),
    }
}

impl Server {
    pub fn new(config: ServerConfig) -> Result<Server, ConfigError> {
        config.validate()?;
        Ok(Server {
            table: Vec::with_capacity(config.max_leases),
            config,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Entries in the table (offers, leases, idle and declined).
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Leases in force.
    pub fn bound(&self) -> usize {
        self.table
            .iter()
            .filter(|e| matches!(e.slot, Slot::Bound { .. }))
            .count()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn poll_transmit(&mut self) -> Option<ServerTransmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The earliest end of an offer, a lease or a decline hold.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.table
            .iter()
            .filter_map(|e| match e.slot {
                Slot::Offered { until, .. } | Slot::Bound { until } | Slot::Declined { until } => {
                    Some(until)
                }
                Slot::Idle { .. } => None,
            })
            .min()
    }

    /// Ends what is due at `now`: offers are dropped, leases become idle,
    /// declined addresses return to the pool.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.table.len() {
            let e = &mut self.table[i];
            let (mac, addr) = (e.mac, e.addr);
            match e.slot {
                Slot::Offered { until, idle_since } if until <= now => {
                    self.events
                        .push_back(ServerEvent::OfferExpired { mac, addr });
                    match idle_since {
                        Some(since) => e.slot = Slot::Idle { since },
                        None => {
                            self.table.swap_remove(i);
                            continue;
                        }
                    }
                }
                Slot::Declined { until } if until <= now => {
                    self.table.swap_remove(i);
                    self.events.push_back(ServerEvent::DeclineEnded { addr });
                    continue;
                }
                Slot::Bound { until } if until <= now => {
                    e.slot = Slot::Idle { since: until };
                    self.events
                        .push_back(ServerEvent::LeaseExpired { mac, addr });
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// A datagram received on port 67. `Err` says why it was dropped; the
    /// table is then unchanged.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Refused> {
        // What is due goes first, so that a late timer call cannot make
        // the server act on an expired offer.
        self.handle_timeout(now);
        let r = wire::parse_client(datagram).and_then(|m| self.dispatch(now, &m));
        if r.is_err() {
            self.stats.refused += 1;
        }
        r
    }

    fn dispatch(&mut self, now: Instant, m: &ClientMessage) -> Result<(), Refused> {
        // Zero, multicast or broadcast: no client has it.
        if m.chaddr == [0; 6] || m.chaddr[0] & 1 == 1 {
            return Err(Refused::BadChaddr);
        }
        let ours = self.config.addr;
        match m.kind {
            MessageType::Discover => {
                self.discover(now, m);
                Ok(())
            }
            MessageType::Request => match (m.server_id, m.requested_ip, m.ciaddr) {
                (Some(s), _, _) if s != ours => self.withdraw(m, s),
                (Some(_), Some(req), Ipv4Addr::UNSPECIFIED) => {
                    self.request(now, m, req, false);
                    Ok(())
                }
                (Some(_), None, _) | (None, None, Ipv4Addr::UNSPECIFIED) => {
                    Err(Refused::NoRequestedAddress)
                }
                (Some(_), Some(_), c) => Err(Refused::BadCiaddr(c)),
                // INIT-REBOOT (§4.3.2): the address the client remembers.
                (None, Some(req), Ipv4Addr::UNSPECIFIED) => {
                    self.request(now, m, req, true);
                    Ok(())
                }
                // RENEWING or REBINDING: ciaddr is the address.
                (None, req, c) if req.is_none_or(|r| r == c) => {
                    self.request(now, m, c, true);
                    Ok(())
                }
                (None, _, c) => Err(Refused::BadCiaddr(c)),
            },
            MessageType::Decline => {
                self.check_server_id(m)?;
                let addr = m.requested_ip.ok_or(Refused::NoRequestedAddress)?;
                let i = self
                    .find(m)
                    .filter(|&i| self.table[i].addr == addr)
                    .filter(|&i| {
                        matches!(
                            self.table[i].slot,
                            Slot::Offered { .. } | Slot::Bound { .. }
                        )
                    })
                    .ok_or(Refused::NotHeld(addr))?;
                let e = &mut self.table[i];
                e.client.clear();
                e.slot = Slot::Declined {
                    until: after(now, self.config.decline_hold),
                };
                self.events.push_back(ServerEvent::Declined {
                    mac: m.chaddr,
                    addr,
                });
                Ok(())
            }
            MessageType::Release => {
                self.check_server_id(m)?;
                let addr = m.ciaddr;
                let i = self
                    .find(m)
                    .filter(|&i| self.table[i].addr == addr)
                    .filter(|&i| matches!(self.table[i].slot, Slot::Bound { .. }))
                    .ok_or(Refused::NotHeld(addr))?;
                self.table[i].slot = Slot::Idle { since: now };
                self.events.push_back(ServerEvent::Released {
                    mac: m.chaddr,
                    addr,
                });
                Ok(())
            }
            MessageType::Inform => {
                let c = m.ciaddr;
                if !self.config.host(c) || c == ours {
                    return Err(Refused::BadCiaddr(c));
                }
                self.answer(m, MessageType::Ack, c, Ipv4Addr::UNSPECIFIED, false);
                self.events.push_back(ServerEvent::Informed {
                    mac: m.chaddr,
                    addr: c,
                });
                Ok(())
            }
            // parse_client refuses the server's own message types.
            MessageType::Offer | MessageType::Ack | MessageType::Nak => {
                Err(Refused::NotClientMessage(m.kind))
            }
        }
    }

    /// DECLINE and RELEASE must name this server (RFC 2131 table 5).
    fn check_server_id(&self, m: &ClientMessage) -> Result<(), Refused> {
        match m.server_id {
            None => Err(Refused::NoServerId),
            Some(s) if s != self.config.addr => Err(Refused::OtherServer(s)),
            Some(_) => Ok(()),
        }
    }

    /// The entry of this message's client (declined entries have none).
    fn find(&self, m: &ClientMessage) -> Option<usize> {
        let k = key(m);
        self.table.iter().position(|e| e.client == k)
    }

    /// A REQUEST for another server: our offer, if any, is withdrawn.
    fn withdraw(&mut self, m: &ClientMessage, other: Ipv4Addr) -> Result<(), Refused> {
        match self.find(m) {
            Some(i) => match self.table[i].slot {
                Slot::Offered { idle_since, .. } => {
                    let addr = self.table[i].addr;
                    match idle_since {
                        Some(since) => self.table[i].slot = Slot::Idle { since },
                        None => {
                            self.table.swap_remove(i);
                        }
                    }
                    self.events.push_back(ServerEvent::OfferWithdrawn {
                        mac: m.chaddr,
                        addr,
                    });
                    Ok(())
                }
                _ => Err(Refused::OtherServer(other)),
            },
            _ => Err(Refused::OtherServer(other)),
        }
    }

    /// DISCOVER (§4.3.1): the client's own address if it has an entry,
    /// else the requested address if free, else the first free one.
    fn discover(&mut self, now: Instant, m: &ClientMessage) {
        let hold = after(now, self.config.offer_hold);
        let (i, fresh) = match self.find(m) {
            Some(i) => (i, false),
            None => match self.allocate(now, m) {
                Ok(i) => (i, true),
                Err(reason) => {
                    match reason {
                        NoOffer::TableFull => self.stats.no_offer_table_full += 1,
                        NoOffer::PoolExhausted => self.stats.no_offer_pool_exhausted += 1,
                    }
                    self.events.push_back(ServerEvent::NoOffer {
                        mac: m.chaddr,
                        reason,
                    });
                    return;
                }
            },
        };
        let e = &mut self.table[i];
        e.mac = m.chaddr;
        e.slot = match (fresh, e.slot) {
            (true, _) | (false, Slot::Declined { .. }) => Slot::Offered {
                until: hold,
                idle_since: None,
            },
            // A lease in force stays in force: the phone may be rebooting.
            (false, Slot::Bound { until }) => Slot::Bound { until },
            (false, Slot::Idle { since }) => Slot::Offered {
                until: hold,
                idle_since: Some(since),
            },
            (false, Slot::Offered { idle_since, .. }) => Slot::Offered {
                until: hold,
                idle_since,
            },
        };
        let addr = e.addr;
        self.answer(m, MessageType::Offer, Ipv4Addr::UNSPECIFIED, addr, true);
        self.stats.offers += 1;
        self.events.push_back(ServerEvent::Offered {
            mac: m.chaddr,
            addr,
        });
    }

    /// A new entry for this client (its slot is the caller's to set).
    fn allocate(&mut self, now: Instant, m: &ClientMessage) -> Result<usize, NoOffer> {
        let taken = |t: &[Entry], a: Ipv4Addr| t.iter().any(|e| e.addr == a);
        let c = &self.config;
        // At most table-size + 2 addresses are looked at before a free
        // one is found, whatever the pool's size.
        let candidate = m
            .requested_ip
            .filter(|&a| c.in_pool(a) && !taken(&self.table, a))
            .or_else(|| {
                (u32::from(c.pool_first)..=u32::from(c.pool_last))
                    .map(Ipv4Addr::from)
                    .find(|&a| c.in_pool(a) && !taken(&self.table, a))
            });
        let entry = |addr| Entry {
            client: key(m),
            mac: m.chaddr,
            addr,
            slot: Slot::Idle { since: now },
        };
        if let Some(a) = candidate.filter(|_| self.table.len() < self.config.max_leases) {
            self.table.push(entry(a));
            return Ok(self.table.len() - 1);
        }
        // Reuse the entry idle longest: its address if no other is free.
        let oldest = (0..self.table.len())
            .filter_map(|i| match self.table[i].slot {
                Slot::Idle { since } => Some((since, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i);
        match oldest {
            Some(i) => {
                let addr = candidate.unwrap_or(self.table[i].addr);
                self.table[i] = entry(addr);
                Ok(i)
            }
            None if self.table.len() >= self.config.max_leases => Err(NoOffer::TableFull),
            None => Err(NoOffer::PoolExhausted),
        }
    }

    /// REQUEST for `addr`: in SELECTING (`known` false) only the address
    /// offered; in INIT-REBOOT, RENEWING and REBINDING the client's own
    /// address, offered, bound or idle. Anything else is NAKed: the phone
    /// side has one server, which is authoritative for it.
    fn request(&mut self, now: Instant, m: &ClientMessage, addr: Ipv4Addr, known: bool) {
        let entry = self.find(m);
        let reason = match entry {
            _ if !self.config.in_pool(addr) => Some(NakReason::OutsidePool),
            None => Some(NakReason::UnknownClient),
            Some(i) if self.table[i].addr != addr => Some(NakReason::NotOffered),
            Some(i) => match self.table[i].slot {
                Slot::Offered { .. } | Slot::Bound { .. } => None,
                Slot::Idle { .. } if known => None,
                _ => Some(NakReason::NotOffered),
            },
        };
        if let Some(reason) = reason {
            self.answer(
                m,
                MessageType::Nak,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                false,
            );
            self.stats.naks += 1;
            self.events.push_back(ServerEvent::Nak {
                mac: m.chaddr,
                addr,
                reason,
            });
            return;
        }
        let Some(i) = entry else { return };
        let lease = self.config.lease;
        let e = &mut self.table[i];
        let renewed = matches!(e.slot, Slot::Bound { .. } | Slot::Idle { .. });
        e.mac = m.chaddr;
        e.slot = Slot::Bound {
            until: after(now, lease),
        };
        self.answer(m, MessageType::Ack, m.ciaddr, addr, true);
        self.stats.acks += 1;
        self.events.push_back(ServerEvent::Bound {
            mac: m.chaddr,
            addr,
            lease,
            renewed,
        });
    }

    /// Queues an OFFER, ACK or NAK: unicast to `ciaddr` when the client
    /// has one and it is no NAK (RFC 2131 §4.1), else broadcast.
    fn answer(
        &mut self,
        m: &ClientMessage,
        kind: MessageType,
        ciaddr: Ipv4Addr,
        yiaddr: Ipv4Addr,
        lease: bool,
    ) {
        let c = &self.config;
        let secs = u32::try_from(c.lease.as_secs()).unwrap_or(u32::MAX);
        let nak = kind == MessageType::Nak;
        let a = Answer {
            kind,
            to: m,
            ciaddr,
            yiaddr,
            server_id: c.addr,
            subnet_mask: (!nak).then(|| Ipv4Addr::from(c.mask())),
            times: lease.then_some((secs, secs / 2, secs / 8 * 7)),
            sip_server: (!nak).then_some(c.addr),
        };
        let to = if nak || ciaddr.is_unspecified() {
            Ipv4Addr::BROADCAST
        } else {
            ciaddr
        };
        self.transmits.push_back(ServerTransmit {
            to,
            payload: a.encode(),
        });
    }
}
