//! The uplink's DHCPv4 client (RFC 2131), sans-IO, and the phone side's
//! DHCPv4 server ([`server`], [`Server`]; its shell is `crate::dhcpd`).
//!
//! [`Client`] is the protocol: it is fed received datagrams and the
//! current time, and hands back datagrams to send, [`Event`]s and the
//! next deadline. It reads no clock, opens no socket and draws no
//! randomness of its own: the caller passes `now` (any monotonic
//! [`Instant`]) and a [`Random`] source (transaction ids, retransmission
//! jitter). The shell is `src/bin/dialgate-dhcp.rs`: a UDP socket on
//! port 68 bound to the interface, which applies each lease with
//! [`crate::sys`]. [`wire`] is the strict, bounded codec.
//!
//! # Driving contract
//!
//! 1. [`Client::new`] starts in INIT and queues the first DHCPDISCOVER.
//! 2. After every input — [`Client::handle_datagram`] for a datagram
//!    received on port 68, [`Client::handle_timeout`] once `now` has
//!    reached [`Client::next_timeout`] — drain [`Client::poll_transmit`]
//!    and [`Client::poll_event`] until both return `None`, then wait for
//!    the next datagram or the new [`Client::next_timeout`].
//! 3. A datagram the client does not accept is dropped with a typed
//!    [`Refused`] reason for the log; it never changes the state.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dialgate_board::dhcp::{Client, Destination, Random, State};
//!
//! struct Counter(u8);
//! impl Random for Counter {
//!     fn fill(&mut self, buf: &mut [u8]) {
//!         for b in buf {
//!             self.0 = self.0.wrapping_add(1);
//!             *b = self.0;
//!         }
//!     }
//! }
//!
//! let t0 = Instant::now();
//! let mut c = Client::new([2, 0, 0, 0, 0, 1], Counter(0), t0);
//! let discover = c.poll_transmit().unwrap();
//! assert_eq!(discover.destination, Destination::Broadcast);
//! assert_eq!(c.state(), State::Selecting);
//! // No offer: the DISCOVER is sent again after about 4 s (RFC 2131 §4.1).
//! let t = c.next_timeout().unwrap();
//! assert!(t >= t0 + Duration::from_secs(3) && t <= t0 + Duration::from_secs(5));
//! c.handle_timeout(t);
//! assert!(c.poll_transmit().is_some());
//! ```
//!
//! # What is refused
//!
//! Besides malformed datagrams ([`wire::parse_reply`]), a reply that is
//! not for this exchange (another transaction id or hardware address), a
//! message type the state does not expect, a missing or implausible
//! server identifier, an ACK or NAK from a server other than the one
//! chosen (RENEWING, REQUESTING), and a lease that cannot be used as it
//! is: an address that is not a unicast host address, no subnet mask or a
//! non-contiguous one or a prefix outside /8–/30, the address being the
//! subnet's network or broadcast address, a router outside the subnet, a
//! DNS server that is not a unicast address, no lease time or one under
//! [`MIN_LEASE`]. Leases over [`MAX_LEASE`] are shortened to it.

#![forbid(unsafe_code)]

mod client;
pub mod server;
#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
pub mod wire;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

pub use client::{Client, State};
pub use server::{Server, ServerConfig, ServerEvent, ServerTransmit};
pub use wire::MessageType;

/// Randomness for transaction ids and retransmission jitter.
pub trait Random {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// A lease shorter than this is refused: a server handing out second-long
/// leases would keep the client renewing without pause.
pub const MIN_LEASE: Duration = Duration::from_secs(60);
/// A longer lease is shortened to this, so that the kit asks again at
/// least twice a day and notices a network that changed under it.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);
/// The earliest renewal (T1) accepted from a server; a smaller one is
/// raised to it.
pub const MIN_T1: Duration = Duration::from_secs(10);

/// Where a datagram goes: UDP port 67 of the limited broadcast address, or
/// of the leasing server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:67, out of the uplink.
    Broadcast,
    /// The server's address, port 67 (RENEWING).
    Unicast(Ipv4Addr),
}

/// A datagram to send from port 68.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: Destination,
    pub payload: Vec<u8>,
}

/// A lease as the client accepted it: every address checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    /// 8..=30.
    pub prefix: u8,
    /// Inside the subnet, not the lease's own address; `None` when the
    /// server named no router (then there is no default route).
    pub router: Option<Ipv4Addr>,
    /// At most [`wire::MAX_DNS`], in the server's order.
    pub dns: Vec<Ipv4Addr>,
    /// The server identifier (option 54): where RENEWING asks.
    pub server: Ipv4Addr,
    /// From the first REQUEST of the exchange that gave it (RFC 2131
    /// §4.4.5), clamped to [`MAX_LEASE`].
    pub lease: Duration,
    /// Renewal (T1) and rebinding (T2) times, `MIN_T1 <= t1 < t2 < lease`.
    pub t1: Duration,
    pub t2: Duration,
}

/// Why a lease ended without a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// No server answered before the lease expired.
    Expired,
    /// The server refused the renewal (DHCPNAK).
    Nak,
}

/// What the shell must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lease, the first one or the first after a loss at the same
    /// address: install address, prefix and default route.
    Bound(Lease),
    /// The same address again, with new times (and possibly new router or
    /// DNS servers: re-apply them).
    Renewed(Lease),
    /// A lease at another address than the one held before (on a renewal,
    /// or re-acquired after a loss): replace the address; calls bound to
    /// `old` must move.
    AddressChanged { old: Ipv4Addr, lease: Lease },
    /// The address may no longer be used: remove it and the route.
    Lost { addr: Ipv4Addr, reason: LostReason },
}

/// Why a received datagram was dropped. Every one is the peer's doing;
/// none changes the client's (or the [`Server`]'s) state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    #[error("datagram of {0} bytes is over the limit")]
    Oversize(usize),
    #[error("datagram shorter than a DHCP header")]
    Truncated,
    #[error("not a BOOTREPLY")]
    NotBootReply,
    #[error("hardware type or length is not Ethernet's")]
    NotEthernet,
    #[error("no DHCP magic cookie")]
    NoMagicCookie,
    #[error("option {0} runs past the end")]
    OptionPastEnd(u8),
    #[error("no END option")]
    NoEndOption,
    #[error("data after the END option")]
    TrailingData,
    #[error("option {0} has the wrong length")]
    BadOptionLength(u8),
    #[error("option overload (52) is not accepted")]
    OptionOverload,
    #[error("no message type")]
    NoMessageType,
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    #[error("transaction id is not ours")]
    WrongXid,
    #[error("client hardware address is not ours")]
    WrongChaddr,
    #[error("{kind:?} not expected in {state:?}")]
    Unexpected { kind: MessageType, state: State },
    #[error("no server identifier")]
    NoServerId,
    #[error("server identifier {0} is not a unicast address")]
    BadServerId(Ipv4Addr),
    #[error("from server {0}, not the one chosen")]
    WrongServer(Ipv4Addr),
    #[error("offered address {0} is not a unicast host address")]
    BadAddress(Ipv4Addr),
    #[error("acknowledged address {0} is not the one offered")]
    NotOffered(Ipv4Addr),
    #[error("no subnet mask")]
    NoSubnetMask,
    #[error("subnet mask {0} is not a contiguous /8../30 mask")]
    BadSubnetMask(Ipv4Addr),
    #[error("address {0} is the subnet's network or broadcast address")]
    AddressNotHost(Ipv4Addr),
    #[error("router {0} is outside the subnet or not a host of it")]
    RouterOutsideSubnet(Ipv4Addr),
    #[error("DNS server {0} is not a unicast address")]
    BadDnsServer(Ipv4Addr),
    #[error("no lease time")]
    NoLeaseTime,
    #[error("lease of {0} s is shorter than the minimum")]
    LeaseTooShort(u32),
    // The server's refusals of clients' datagrams.
    #[error("not a BOOTREQUEST")]
    NotBootRequest,
    #[error("relayed through {0}: the phone side serves its own link only")]
    Relayed(Ipv4Addr),
    #[error("{0:?} is a server's message")]
    NotClientMessage(MessageType),
    #[error("client hardware address is zero, multicast or broadcast")]
    BadChaddr,
    #[error("for server {0}, not this one")]
    OtherServer(Ipv4Addr),
    #[error("no requested address")]
    NoRequestedAddress,
    #[error("client address {0} does not fit the message")]
    BadCiaddr(Ipv4Addr),
    #[error("address {0} is not held by this client")]
    NotHeld(Ipv4Addr),
}

impl Refused {
    /// A stable, kebab-case name for logs and tests.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Oversize(_) => "oversize",
            Refused::Truncated => "truncated",
            Refused::NotBootReply => "not-bootreply",
            Refused::NotEthernet => "not-ethernet",
            Refused::NoMagicCookie => "no-magic-cookie",
            Refused::OptionPastEnd(_) => "option-past-end",
            Refused::NoEndOption => "no-end-option",
            Refused::TrailingData => "trailing-data",
            Refused::BadOptionLength(_) => "bad-option-length",
            Refused::OptionOverload => "option-overload",
            Refused::NoMessageType => "no-message-type",
            Refused::UnknownMessageType(_) => "unknown-message-type",
            Refused::WrongXid => "wrong-xid",
            Refused::WrongChaddr => "wrong-chaddr",
            Refused::Unexpected { .. } => "unexpected-message",
            Refused::NoServerId => "no-server-id",
            Refused::BadServerId(_) => "bad-server-id",
            Refused::WrongServer(_) => "wrong-server",
            Refused::BadAddress(_) => "bad-address",
            Refused::NotOffered(_) => "not-offered",
            Refused::NoSubnetMask => "no-subnet-mask",
            Refused::BadSubnetMask(_) => "bad-subnet-mask",
            Refused::AddressNotHost(_) => "address-not-host",
            Refused::RouterOutsideSubnet(_) => "router-outside-subnet",
            Refused::BadDnsServer(_) => "bad-dns-server",
            Refused::NoLeaseTime => "no-lease-time",
            Refused::LeaseTooShort(_) => "lease-too-short",
            Refused::NotBootRequest => "not-bootrequest",
            Refused::Relayed(_) => "relayed",
            Refused::NotClientMessage(_) => "not-client-message",
            Refused::BadChaddr => "bad-chaddr",
            Refused::OtherServer(_) => "other-server",
            Refused::NoRequestedAddress => "no-requested-address",
            Refused::BadCiaddr(_) => "bad-ciaddr",
            Refused::NotHeld(_) => "not-held",
        }
    }
}

/// `now + d` without a panic path. Every `d` here is at most
/// [`MAX_LEASE`] plus a backoff, so the fallback is never reached on a
/// real clock.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}
