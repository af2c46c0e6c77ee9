//! The DNS stub resolver's shell around [`dialgate_proto::dns`]: UDP to the
//! network's resolvers, bounded in time and size (`docs/network.md`,
//! "DNS").
//!
//! Each attempt is a fresh socket on a kernel-chosen ephemeral port (Linux
//! draws it at random, RFC 6056) with a fresh random query id (RFC 5452
//! §9.2); datagrams from any address but the server asked, and answers to
//! another id or question, are ignored. Servers are asked in turn, and
//! again with a doubled wait, until one answers or the whole bound
//! ([`Bound::total`], 2 s by default) has passed. No TCP fallback: a
//! truncated answer is an error.
//!
//! Nothing resolved is trusted: the caller connects to the addresses and
//! verifies the peer as it would an IP literal (pinned key or CA, its
//! configured TLS name), so a lying resolver can cost a connection, never
//! make the kit trust another peer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use dialgate_proto::b2bua::{Random, SystemRandom};
use dialgate_proto::config::{lease_servers, DnsConfig, MAX_LEASE_FILE};
use dialgate_proto::dns::{order_srv, Answer, DnsError, Kind, Name, Query, MAX_UDP_RESPONSE};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// The most addresses one resolution hands back (SRV targets' addresses
/// together).
pub const MAX_ADDRESSES: usize = 16;
/// The most SRV targets whose addresses are looked up.
pub const MAX_SRV_TARGETS: usize = 4;

/// The resolvers to ask now: the uplink lease's (`[dns] lease_file`, read
/// afresh, at most [`MAX_LEASE_FILE`] bytes: PID 1 rewrites it when a
/// lease names other servers), then the configured `servers`. A missing or
/// unreadable file is no lease (yet): only the configured ones.
pub async fn servers_now(dns: &DnsConfig) -> Vec<SocketAddr> {
    let mut out = match &dns.lease_file {
        Some(path) => match read_bounded(path).await {
            Ok(text) => lease_servers(&text),
            Err(e) => {
                tracing::debug!(file = %path.display(), error = %e, "no lease DNS servers");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    for s in &dns.servers {
        if !out.contains(s) {
            out.push(*s);
        }
    }
    out
}

async fn read_bounded(path: &std::path::Path) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    tokio::fs::File::open(path)
        .await?
        .take(MAX_LEASE_FILE as u64)
        .read_to_end(&mut buf)
        .await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// How long a resolution may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The whole resolution (every server, every retransmission, SRV's
    /// target lookups).
    pub total: Duration,
    /// The first wait for an answer; doubled after each round of servers.
    pub retransmit: Duration,
}

impl Default for Bound {
    fn default() -> Bound {
        Bound {
            total: Duration::from_secs(2),
            retransmit: Duration::from_millis(400),
        }
    }
}

/// Why a name gave no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No resolver is configured (`[dns] servers`) and the lease named
    /// none (`[dns] lease_file`).
    #[error("no DNS server configured or leased")]
    NoServers,
    /// No server gave a usable answer within the bound.
    #[error("{name} {kind}: no answer from the DNS servers within {ms} ms")]
    Timeout {
        /// The name asked.
        name: String,
        /// The record kind.
        kind: &'static str,
        /// The bound.
        ms: u128,
    },
    /// A server's answer said no, or was unusable (the last one heard,
    /// when every server failed).
    #[error("{name} {kind}: {error}")]
    Dns {
        /// The name asked.
        name: String,
        /// The record kind.
        kind: &'static str,
        /// What the answer said.
        error: DnsError,
    },
    /// A socket could not be opened or used.
    #[error("DNS socket: {0}")]
    Socket(std::io::ErrorKind),
}

/// Asks `servers` in turn for `name`'s `kind` records until `deadline`.
pub async fn query(
    name: &Name,
    kind: Kind,
    servers: &[SocketAddr],
    retransmit: Duration,
    deadline: Instant,
) -> Result<Answer, ResolveError> {
    if servers.is_empty() {
        return Err(ResolveError::NoServers);
    }
    let mut random = SystemRandom;
    let mut wait = retransmit;
    let mut last: Option<DnsError> = None;
    let started = Instant::now();
    'rounds: loop {
        for &server in servers {
            let now = Instant::now();
            if now >= deadline {
                break 'rounds;
            }
            let until = deadline.min(now + wait);
            let mut id = [0u8; 2];
            random.fill(&mut id);
            let q = Query::new(u16::from_be_bytes(id), name, kind);
            match attempt(&q, server, until).await? {
                Some(Ok(a)) => return Ok(a),
                Some(Err(e)) if !e.try_next_server() => {
                    return Err(ResolveError::Dns {
                        name: name.to_string(),
                        kind: kind.as_str(),
                        error: e,
                    })
                }
                Some(Err(e)) => last = Some(e),
                None => {}
            }
        }
        wait = wait.saturating_mul(2);
    }
    Err(match last {
        Some(error) => ResolveError::Dns {
            name: name.to_string(),
            kind: kind.as_str(),
            error,
        },
        None => ResolveError::Timeout {
            name: name.to_string(),
            kind: kind.as_str(),
            ms: deadline.saturating_duration_since(started).as_millis(),
        },
    })
}

/// One query (a fresh id) to one server on a fresh socket: `None` if nothing usable
/// came from it before `until`.
async fn attempt(
    q: &Query,
    server: SocketAddr,
    until: Instant,
) -> Result<Option<Result<Answer, DnsError>>, ResolveError> {
    let any: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let sock = UdpSocket::bind((any, 0))
        .await
        .map_err(|e| ResolveError::Socket(e.kind()))?;
    if sock.send_to(q.bytes(), server).await.is_err() {
        // Unreachable network, no route: as good as no answer.
        tokio::time::sleep_until(until).await;
        return Ok(None);
    }
    // One octet more than a response may have, so that a longer one is
    // seen (and refused) rather than cut to size.
    let mut buf = [0u8; MAX_UDP_RESPONSE + 1];
    loop {
        let got = tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await;
        let Ok(got) = got else { return Ok(None) };
        let Ok((n, from)) = got else { continue };
        if from != server {
            continue; // not the server asked: ignored
        }
        match q.read_response(&buf[..n]) {
            Err(e) if e.is_not_ours() => continue,
            r => return Ok(Some(r)),
        }
    }
}

/// The addresses of `name`: A, then AAAA if the name has no A record.
pub async fn resolve_host(
    name: &Name,
    servers: &[SocketAddr],
    bound: Bound,
) -> Result<Vec<IpAddr>, ResolveError> {
    host(
        name,
        servers,
        bound.retransmit,
        Instant::now() + bound.total,
    )
    .await
}

async fn host(
    name: &Name,
    servers: &[SocketAddr],
    retransmit: Duration,
    deadline: Instant,
) -> Result<Vec<IpAddr>, ResolveError> {
    let a = query(name, Kind::A, servers, retransmit, deadline).await;
    let answer = match a {
        Err(ResolveError::Dns {
            error: DnsError::NoData(_),
            ..
        }) => query(name, Kind::Aaaa, servers, retransmit, deadline).await?,
        other => other?,
    };
    match answer {
        Answer::Addresses { mut addrs, .. } => {
            addrs.truncate(MAX_ADDRESSES);
            Ok(addrs)
        }
        Answer::Srv { .. } => unreachable_kind(name),
    }
}

fn unreachable_kind<T>(name: &Name) -> Result<T, ResolveError> {
    // `Query::read_response` answers in the kind asked; kept typed rather
    // than panicking.
    Err(ResolveError::Dns {
        name: name.to_string(),
        kind: "A",
        error: DnsError::NoData("A"),
    })
}

/// `name:port` resolved to socket addresses.
pub async fn resolve_name(
    name: &Name,
    port: u16,
    servers: &[SocketAddr],
    bound: Bound,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let ips = resolve_host(name, servers, bound).await?;
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// An SRV name (`_sips._tcp.<host>`) resolved to socket addresses in
/// RFC 2782 order: each target's addresses (at most [`MAX_SRV_TARGETS`]
/// targets, [`MAX_ADDRESSES`] addresses), the whole within `bound`. A
/// target that does not resolve is skipped; if none does, the last error.
pub async fn resolve_srv(
    name: &Name,
    servers: &[SocketAddr],
    bound: Bound,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let deadline = Instant::now() + bound.total;
    let targets = match query(name, Kind::Srv, servers, bound.retransmit, deadline).await? {
        Answer::Srv { targets, .. } => order_srv(targets, &mut SystemRandom),
        Answer::Addresses { .. } => return unreachable_kind(name),
    };
    let mut out = Vec::new();
    let mut last = None;
    for t in targets.iter().take(MAX_SRV_TARGETS) {
        match host(&t.target, servers, bound.retransmit, deadline).await {
            Ok(ips) => out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, t.port))),
            Err(e) => last = Some(e),
        }
        if out.len() >= MAX_ADDRESSES || Instant::now() >= deadline {
            break;
        }
    }
    out.truncate(MAX_ADDRESSES);
    match (out.is_empty(), last) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests;
