//! A DNS stub resolver's core (RFC 1034/1035): the A, AAAA and SRV queries
//! the kit sends to the network's resolver and a strict, bounded reader of
//! their answers. Sans-IO: no socket, no clock, no randomness of its own —
//! the query id comes in as an argument (the shell draws it, and the
//! source port, at random: RFC 5452 §9.2), SRV ordering takes a
//! [`Random`].
//!
//! Nothing a resolver says is trusted beyond "try this address": every peer
//! the kit connects to by name is still verified by its pinned key or CA
//! and its configured TLS name (`docs/network.md`, "DNS"). So this reader
//! only has to be safe against hostile bytes and bounded, not to judge the
//! truth of an answer.
//!
//! Driving contract (the shell, `gateway/src/dns.rs`):
//!
//! 1. [`Name::parse`] the host name once (config time);
//! 2. [`Query::new`] with a fresh random id; send [`Query::bytes`] over UDP
//!    from a fresh random port;
//! 3. feed every datagram from the server's address to
//!    [`Query::read_response`]: [`DnsError::NotOurs`] means "keep waiting"
//!    (another id, another question: an off-path guess or a stale answer);
//!    any other result ends the query;
//! 4. for SRV, [`order_srv`] the targets, then resolve each target's A/AAAA
//!    the same way.
//!
//! Bounds: a response over [`MAX_UDP_RESPONSE`] (512, RFC 1035 §4.2.1: no
//! EDNS is offered) is malformed; at most [`MAX_ANSWERS`] answer records
//! and as many in each other section; compression pointers only point
//! backwards, at most [`MAX_POINTERS`] per name; CNAME chains at most
//! [`MAX_CNAMES`] long and only through records of the same response
//! (nothing is cached, no further query follows a CNAME). A truncated
//! response (TC) is an error: there is no TCP fallback, the names the kit
//! resolves have a handful of addresses.
//!
//! ```
//! use dialgate_proto::dns::{Kind, Name, Query};
//! let name = Name::parse("bridge.hotel.test").unwrap();
//! let q = Query::new(0x1234, &name, Kind::A);
//! assert_eq!(&q.bytes()[..2], &[0x12, 0x34]);
//! // A response with another id is not ours: keep waiting.
//! let mut other = q.bytes().to_vec();
//! other[0] ^= 1;
//! other[2] |= 0x80;
//! assert!(q.read_response(&other).unwrap_err().is_not_ours());
//! ```

use std::net::IpAddr;

pub use crate::b2bua::Random;

#[cfg(test)]
mod tests;
mod wire;

pub use wire::Malformed;

/// The longest response read (RFC 1035 §4.2.1; no EDNS is offered).
pub const MAX_UDP_RESPONSE: usize = 512;
/// The most answer records a response may carry (and, separately, the most
/// authority and additional records).
pub const MAX_ANSWERS: usize = 16;
/// The most compression pointers followed in one name.
pub const MAX_POINTERS: usize = 16;
/// The longest CNAME chain followed inside one response.
pub const MAX_CNAMES: usize = 8;

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// IPv4 addresses (type 1).
    A,
    /// IPv6 addresses (type 28, RFC 3596).
    Aaaa,
    /// Service locations (type 33, RFC 2782).
    Srv,
}

impl Kind {
    /// The RR type number.
    pub fn rr_type(self) -> u16 {
        match self {
            Kind::A => 1,
            Kind::Aaaa => 28,
            Kind::Srv => 33,
        }
    }

    /// `A`, `AAAA` or `SRV`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::A => "A",
            Kind::Aaaa => "AAAA",
            Kind::Srv => "SRV",
        }
    }
}

/// A validated DNS host name: at most 253 octets in labels of 1 to 63
/// letters, digits, inner `-` (and `_` for SRV's `_service._proto` labels),
/// stored lower case without a trailing dot; the last label not all digits
/// (so an IPv4 literal is never taken for a name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

/// Why a string is not a [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: not a DNS name (labels of 1-63 letters, digits and inner '-', at most 253 octets, not all-numeric at the end)")]
pub struct NameError(pub String);

impl Name {
    /// Parses and validates `s` (one trailing dot allowed).
    pub fn parse(s: &str) -> Result<Name, NameError> {
        let bad = || NameError(s.chars().take(64).collect());
        let t = s.strip_suffix('.').unwrap_or(s);
        if t.is_empty() || t.len() > 253 {
            return Err(bad());
        }
        let labels: Vec<&str> = t.split('.').collect();
        let label_ok = |l: &&str| {
            let inner = l.strip_prefix('_').unwrap_or(l);
            (1..=63).contains(&l.len())
                && !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !inner.starts_with('-')
                && !inner.ends_with('-')
        };
        let last_numeric = labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if !labels.iter().all(label_ok) || last_numeric {
            return Err(bad());
        }
        Ok(Name(t.to_ascii_lowercase()))
    }

    /// The name, lower case, no trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `_sips._tcp.<self>`: where RFC 3263 §4.2 looks for SIP over TLS.
    pub fn sips_srv(&self) -> Result<Name, NameError> {
        Name::parse(&format!("_sips._tcp.{}", self.0))
    }

    /// The wire form (RFC 1035 §3.1), lower case.
    fn wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 2);
        for l in self.0.split('.') {
            out.push(l.len() as u8); // <= 63 by construction
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
        out
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One SRV record's target (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// The service's port.
    pub port: u16,
    /// The host to resolve.
    pub target: Name,
}

/// What a response answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A or AAAA: the addresses, in the response's order, and the
    /// smallest TTL among them and the CNAMEs followed (seconds).
    Addresses {
        /// At least one.
        addrs: Vec<IpAddr>,
        /// The smallest TTL.
        ttl: u32,
    },
    /// SRV: the records as they came (see [`order_srv`]), and the smallest
    /// TTL.
    Srv {
        /// At least one; never the "." target (that is
        /// [`DnsError::NoService`]).
        targets: Vec<SrvTarget>,
        /// The smallest TTL.
        ttl: u32,
    },
}

/// Why a response gives no usable answer. Typed by blame: `NotOurs` is
/// nobody's answer to us (ignored), the rest are the resolver's word or a
/// resolver that misbehaved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// Not an answer to this query (another id, not a response, another
    /// question): ignored, the query keeps waiting.
    #[error("not an answer to this query: {0}")]
    NotOurs(&'static str),
    /// The name does not exist (RCODE 3).
    #[error("no such name (NXDOMAIN)")]
    NxDomain,
    /// The resolver failed (RCODE 2).
    #[error("the resolver failed (SERVFAIL)")]
    ServFail,
    /// The resolver refused to answer (RCODE 5).
    #[error("the resolver refused the query (REFUSED)")]
    Refused,
    /// Any other RCODE.
    #[error("the resolver answered RCODE {0}")]
    Rcode(u8),
    /// The name exists but has no record of the kind asked (NODATA).
    #[error("no {0} record")]
    NoData(&'static str),
    /// The SRV record says the service is not available here (target ".").
    #[error("the service is not offered (SRV target \".\")")]
    NoService,
    /// The TC bit: the answer did not fit 512 octets. No TCP fallback.
    #[error("truncated answer (TC); no TCP fallback")]
    Truncated,
    /// The response breaks the format or a bound.
    #[error("malformed response: {0}")]
    Malformed(#[from] Malformed),
}

impl DnsError {
    /// Whether the response is to be ignored (the query goes on waiting).
    pub fn is_not_ours(&self) -> bool {
        matches!(self, DnsError::NotOurs(_))
    }

    /// Whether another server may know better (SERVFAIL, REFUSED, a
    /// malformed or truncated answer), as opposed to an authoritative "no"
    /// (NXDOMAIN, NODATA, no service).
    pub fn try_next_server(&self) -> bool {
        !matches!(
            self,
            DnsError::NxDomain | DnsError::NoData(_) | DnsError::NoService
        )
    }
}

/// One query: the bytes to send and what an answer must echo.
#[derive(Debug, Clone)]
pub struct Query {
    id: u16,
    kind: Kind,
    qname: Vec<u8>,
    bytes: Vec<u8>,
}

impl Query {
    /// A recursive query (RD) for `name`'s `kind` records, class IN, with
    /// id `id` (the caller's random draw, RFC 5452 §9.2), no EDNS.
    pub fn new(id: u16, name: &Name, kind: Kind) -> Query {
        let qname = name.wire();
        let mut bytes = Vec::with_capacity(12 + qname.len() + 4);
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&[0x01, 0x00]); // QR=0, OPCODE=0, RD=1
        bytes.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1
        bytes.extend_from_slice(&qname);
        bytes.extend_from_slice(&kind.rr_type().to_be_bytes());
        bytes.extend_from_slice(&1u16.to_be_bytes()); // IN
        Query {
            id,
            kind,
            qname,
            bytes,
        }
    }

    /// The datagram to send.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The query id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Reads `datagram` as the answer to this query.
    pub fn read_response(&self, datagram: &[u8]) -> Result<Answer, DnsError> {
        wire::read_response(self, datagram)
    }
}

/// Orders SRV targets as RFC 2782 says: by priority, lower first; within a
/// priority by weighted random selection (the running-sum draw of the RFC,
/// weight 0 records first in the pool so that they are chosen rarely when
/// others have weight).
pub fn order_srv(mut targets: Vec<SrvTarget>, random: &mut dyn Random) -> Vec<SrvTarget> {
    targets.sort_by_key(|t| (t.priority, t.weight != 0));
    let mut out = Vec::with_capacity(targets.len());
    while !targets.is_empty() {
        let prio = targets[0].priority;
        let end = targets
            .iter()
            .position(|t| t.priority != prio)
            .unwrap_or(targets.len());
        let mut group: Vec<SrvTarget> = targets.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|t| u32::from(t.weight)).sum();
            let mut b = [0u8; 4];
            random.fill(&mut b);
            let pick = u32::from_be_bytes(b) % (total + 1);
            let mut sum = 0u32;
            let mut chosen = group.len() - 1;
            for (i, t) in group.iter().enumerate() {
                sum += u32::from(t.weight);
                if sum >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(group.remove(chosen));
        }
    }
    out
}
