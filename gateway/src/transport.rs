//! The phone-side TLS listener: accepts TCP on the phone interface only,
//! runs the TLS handshake (token admission happens inside it, see
//! [`crate::tls`]) and hands admitted connections to the call layer.
//!
//! A flood of TCP or TLS connects must not starve admitted calls, so:
//! - at most [`ListenerLimits::max_pending_per_address`] handshakes run
//!   from one source address (more are closed at once), and at most
//!   [`ListenerLimits::max_pending_handshakes`] in all: when that is full,
//!   the *oldest* pending handshake is dropped to make room, so idle
//!   connects from many addresses cannot lock newcomers out (a real
//!   handshake finishes in milliseconds);
//! - a handshake that does not finish within
//!   [`ListenerLimits::handshake_timeout`] is dropped (slowloris);
//! - admitted connections are capped overall and per source address;
//! - an address whose handshakes keep failing (no, foreign, expired,
//!   revoked or unregistered certificate) is slowed down: after
//!   [`FailurePenalty::FREE`] failures its connects are closed unread for
//!   a period that doubles with each further failure, up to
//!   [`FailurePenalty::MAX`]; a successful admission clears it;
//! - connections already admitted are never affected by any of this.
//!
//! Limit refusals are counted and logged at most once per second. Every
//! admission decision at the handshake is an audit event (tracing target
//! `audit`) with the address, the key hash prefix and the token name when
//! the registry knows the key.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{NamedGroup, ProtocolVersion, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::tls::{key_hash_of, SharedRegistry, TokenRefused};
use dialgate_proto::admission::{Admitted, Handshake, KeyHash};

/// Per-address slow-down after failed handshakes. Sans-IO: the caller
/// passes the time.
#[derive(Debug, Default)]
pub struct FailurePenalty {
    by_addr: HashMap<IpAddr, Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    until: Option<Instant>,
}

impl FailurePenalty {
    /// Failures allowed before the first penalty.
    pub const FREE: u32 = 3;
    /// The first penalty; each further failure doubles it.
    pub const BASE: Duration = Duration::from_secs(1);
    /// The longest penalty.
    pub const MAX: Duration = Duration::from_secs(60);
    /// A record with no failure for this long is forgotten.
    pub const FORGET: Duration = Duration::from_secs(600);
    /// Addresses tracked at most (oldest records dropped beyond).
    pub const MAX_ADDRS: usize = 4096;

    /// How long connects from `ip` are still refused, if they are.
    pub fn penalized(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.by_addr.get(&ip)?.until?;
        (until > now).then(|| until - now)
    }

    /// Records a failed handshake; returns the penalty it starts, if any.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.by_addr.len() >= Self::MAX_ADDRS && !self.by_addr.contains_key(&ip) {
            self.by_addr
                .retain(|_, f| now.saturating_duration_since(f.last) < Self::FORGET);
            if self.by_addr.len() >= Self::MAX_ADDRS {
                // Still full of recent failures: drop the oldest record.
                if let Some(oldest) = self
                    .by_addr
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(a, _)| *a)
                {
                    self.by_addr.remove(&oldest);
                }
            }
        }
        let f = self.by_addr.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
            until: None,
        });
        if now.saturating_duration_since(f.last) >= Self::FORGET {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count <= Self::FREE {
            return None;
        }
        let doublings = (f.count - Self::FREE - 1).min(16);
        let penalty = Self::BASE.saturating_mul(1 << doublings).min(Self::MAX);
        f.until = Some(now + penalty);
        Some(penalty)
    }

    /// An admission from `ip`: its record is cleared.
    pub fn admitted(&mut self, ip: IpAddr) {
        self.by_addr.remove(&ip);
    }
}

/// Limits of the phone-side listener.
#[derive(Clone, Copy, Debug)]
pub struct ListenerLimits {
    /// Handshakes in progress at once.
    pub max_pending_handshakes: usize,
    /// Handshakes in progress from one source address.
    pub max_pending_per_address: usize,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Admitted connections at once.
    pub max_connections: usize,
    /// Admitted connections from one source address.
    pub max_connections_per_address: usize,
    /// Admitted connections of one token key (a phone holds one; a lost
    /// token cannot hold the gateway's connections from many addresses).
    pub max_connections_per_token: usize,
    /// Slow down addresses whose handshakes keep failing
    /// ([`FailurePenalty`]); loopback is exempt when this is false (demo
    /// kits, where every phone shares 127.0.0.1).
    pub penalize_loopback: bool,
}

impl Default for ListenerLimits {
    fn default() -> ListenerLimits {
        ListenerLimits {
            max_pending_handshakes: 64,
            max_pending_per_address: 4,
            handshake_timeout: Duration::from_secs(5),
            max_connections: 256,
            max_connections_per_address: 8,
            max_connections_per_token: 4,
            penalize_loopback: true,
        }
    }
}

/// An admitted phone connection.
#[derive(Debug)]
pub struct PhoneConnection {
    /// The TLS stream, handshake done.
    pub stream: TlsStream<TcpStream>,
    /// Its admission (token, key, address, certificate expiry): only the
    /// registry makes one, after the handshake met the policy.
    pub admitted: Admitted,
    /// Negotiated TLS version.
    pub version: Option<ProtocolVersion>,
    /// Negotiated key exchange group.
    pub group: Option<NamedGroup>,
    /// Releases this connection's slot in the limits when dropped.
    pub slot: ConnectionSlot,
}

/// Counters of the listener.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections admitted.
    pub admitted: AtomicU64,
    /// Handshakes that failed (bad or missing certificate, protocol).
    pub handshake_failed: AtomicU64,
    /// Handshakes that timed out.
    pub handshake_timeout: AtomicU64,
    /// Connects refused by a limit before any TLS.
    pub refused_by_limit: AtomicU64,
    /// Pending handshakes dropped to make room for newer ones.
    pub evicted: AtomicU64,
    /// Connects closed unread because their address is slowed down after
    /// failed handshakes.
    pub refused_by_penalty: AtomicU64,
}

#[derive(Debug, Default)]
struct Counts {
    /// Pending handshakes, oldest first: id and how to abort it.
    queue: std::collections::VecDeque<(u64, IpAddr, tokio::task::AbortHandle)>,
    next_id: u64,
    pending: usize,
    pending_by_addr: HashMap<IpAddr, usize>,
    connections: usize,
    connections_by_addr: HashMap<IpAddr, usize>,
    connections_by_key: HashMap<KeyHash, usize>,
    penalty: FailurePenalty,
}

type Shared = Arc<Mutex<Counts>>;

fn dec<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, k: K) {
    if let Some(n) = map.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            map.remove(&k);
        }
    }
}

/// A pending handshake's slot; released on drop (including when its task
/// is aborted to make room).
struct PendingSlot {
    counts: Shared,
    ip: IpAddr,
    id: u64,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.pending -= 1;
            dec(&mut c.pending_by_addr, self.ip);
            c.queue.retain(|(id, _, _)| *id != self.id);
        }
    }
}

/// An admitted connection's slot; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Shared,
    ip: IpAddr,
    key: KeyHash,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.connections -= 1;
            dec(&mut c.connections_by_addr, self.ip);
            dec(&mut c.connections_by_key, self.key);
        }
    }
}

/// Runs the accept loop until `admitted`'s receiver is dropped. Admitted
/// connections are sent on `admitted` (bounded: when the call layer is
/// behind, new connections wait in the handshake stage, not in memory).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    registry: SharedRegistry,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
    admitted: mpsc::Sender<PhoneConnection>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let counts: Shared = Arc::new(Mutex::new(Counts::default()));
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = admitted.closed() => return,
        };
        let ip = peer.ip();
        // Decide, spawn and enqueue under one lock: the task's slot release
        // needs the same lock, so it cannot race the enqueue.
        let Ok(mut c) = counts.lock() else { return };
        if let Some(left) = c.penalty.penalized(ip, Instant::now()) {
            drop(c);
            stats.refused_by_penalty.fetch_add(1, Ordering::Relaxed);
            let now = tokio::time::Instant::now();
            if last_refusal_log.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                last_refusal_log = Some(now);
                tracing::info!(target: "audit", %peer, decision = "refused", reason = "slowed down after failed handshakes", retry_in_ms = left.as_millis() as u64, "phone connect refused");
            }
            drop(tcp);
            continue;
        }
        let pending_here = c.pending_by_addr.get(&ip).copied().unwrap_or(0);
        let conns_here = c.connections_by_addr.get(&ip).copied().unwrap_or(0);
        if pending_here >= limits.max_pending_per_address
            || c.connections >= limits.max_connections
            || conns_here >= limits.max_connections_per_address
        {
            drop(c);
            stats.refused_by_limit.fetch_add(1, Ordering::Relaxed);
            let now = tokio::time::Instant::now();
            if last_refusal_log.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                last_refusal_log = Some(now);
                tracing::warn!(%peer, refused = stats.refused_by_limit.load(Ordering::Relaxed), "phone connect refused by limit");
            }
            drop(tcp);
            continue;
        }
        if c.pending >= limits.max_pending_handshakes {
            // Evict fairly: the oldest handshake of the address holding the
            // most pending slots (counting this one), and count it as a
            // failure of that address, so that idle connects from a few
            // addresses cannot push out a slow real handshake (a token that
            // waits for a touch takes seconds).
            let share =
                |a: &IpAddr| c.pending_by_addr.get(a).copied().unwrap_or(0) + usize::from(*a == ip);
            let heaviest = c.queue.iter().map(|(_, a, _)| *a).max_by_key(|a| share(a));
            if let Some(victim_ip) = heaviest {
                if let Some(i) = c.queue.iter().position(|(_, a, _)| *a == victim_ip) {
                    if let Some((_, _, victim)) = c.queue.remove(i) {
                        // Its slot is released when the aborted task is dropped.
                        victim.abort();
                        stats.evicted.fetch_add(1, Ordering::Relaxed);
                        if !victim_ip.is_loopback() || limits.penalize_loopback {
                            let _ = c.penalty.failed(victim_ip, Instant::now());
                        }
                    }
                }
            }
        }
        c.pending += 1;
        *c.pending_by_addr.entry(ip).or_default() += 1;
        c.next_id += 1;
        let id = c.next_id;
        let pending = PendingSlot {
            counts: Arc::clone(&counts),
            ip,
            id,
        };
        let task = tokio::spawn(handshake(
            tcp,
            peer,
            acceptor.clone(),
            Arc::clone(&registry),
            limits,
            Arc::clone(&stats),
            admitted.clone(),
            Arc::clone(&counts),
            pending,
        ));
        c.queue.push_back((id, ip, task.abort_handle()));
    }
}

/// Records a failed handshake from `ip` (unless loopback is exempt).
fn failed(counts: &Shared, ip: IpAddr, penalize_loopback: bool) -> Option<Duration> {
    if ip.is_loopback() && !penalize_loopback {
        return None;
    }
    counts.lock().ok()?.penalty.failed(ip, Instant::now())
}

/// One connection's handshake and admission.
#[allow(clippy::too_many_arguments)]
async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    registry: SharedRegistry,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
    admitted_tx: mpsc::Sender<PhoneConnection>,
    counts: Shared,
    pending: PendingSlot,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
            let penalty = failed(&counts, peer.ip(), limits.penalize_loopback);
            let penalty_ms = penalty.map(|d| d.as_millis() as u64);
            let refused = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .and_then(TokenRefused::of);
            match refused {
                Some(r) => tracing::warn!(
                    target: "audit",
                    %peer,
                    decision = "refused",
                    key = %r.key,
                    token = r.token.as_deref().unwrap_or("-"),
                    reason = r.reason.as_str(),
                    penalty_ms,
                    "token refused at TLS handshake"
                ),
                None => {
                    tracing::info!(target: "audit", %peer, decision = "refused", reason = %e, penalty_ms, "phone TLS handshake refused")
                }
            }
            return;
        }
        Err(_) => {
            stats.handshake_timeout.fetch_add(1, Ordering::Relaxed);
            let penalty_ms =
                failed(&counts, peer.ip(), limits.penalize_loopback).map(|d| d.as_millis() as u64);
            tracing::info!(target: "audit", %peer, decision = "refused", reason = "handshake timed out", penalty_ms, "phone TLS handshake refused");
            return;
        }
    };
    let (_, conn) = stream.get_ref();
    let version = conn.protocol_version();
    let group = conn.negotiated_key_exchange_group().map(|g| g.name());
    // As audit values: `TLSv1_3`, `X25519MLKEM768` (`-`: none).
    let tls_version = version.map_or_else(|| "-".to_string(), |v| format!("{v:?}"));
    let tls_group = group.map_or_else(|| "-".to_string(), |g| format!("{g:?}"));
    let admission = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no client certificate")
        .and_then(|cert| {
            let key = key_hash_of(cert).map_err(|_| "unreadable client certificate")?;
            let not_after = dialgate_proto::der::Certificate::parse(cert)
                .ok()
                .map(|c| u64::try_from(c.not_after).unwrap_or(0));
            Ok(Handshake {
                key,
                peer,
                post_quantum: group == Some(NamedGroup::X25519MLKEM768),
                not_after,
            })
        })
        .map_err(|e| (None, e.to_string()))
        .and_then(|h| {
            let registry = registry
                .read()
                .map_err(|_| (Some(h.key), "token registry unavailable".to_string()))?;
            registry.admit(h).map_err(|r| (Some(h.key), r.to_string()))
        });
    let admitted = match admission {
        Ok(a) => a,
        Err((key, reason)) => {
            // Revoked between the verifier and now, or the handshake does
            // not meet the policy (the post-quantum requirement).
            stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
            let key = key.map(|k| k.to_string());
            tracing::warn!(target: "audit", %peer, decision = "refused", key = key.as_deref().unwrap_or("-"), reason = reason.as_str(), version = %tls_version, group = %tls_group, "phone refused after the TLS handshake");
            return;
        }
    };
    if !crate::audit::has_room() {
        // Fail closed: the audit trail could not keep this call's records.
        stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(target: "audit", %peer, decision = "refused", token = %admitted.token(), key = %admitted.key(), reason = "audit spool full (the SIEM has not taken the records)", "phone refused after the TLS handshake");
        return;
    }
    let slot = {
        let Ok(mut c) = counts.lock() else { return };
        let key = admitted.key();
        if c.connections_by_key.get(&key).copied().unwrap_or(0) >= limits.max_connections_per_token
        {
            drop(c);
            stats.refused_by_limit.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "audit", %peer, decision = "refused", token = %admitted.token(), key = %key, reason = "too many connections for this token", "phone refused after the TLS handshake");
            return;
        }
        c.penalty.admitted(peer.ip());
        c.connections += 1;
        *c.connections_by_addr.entry(peer.ip()).or_default() += 1;
        *c.connections_by_key.entry(key).or_default() += 1;
        ConnectionSlot {
            counts: Arc::clone(&counts),
            ip: peer.ip(),
            key,
        }
    };
    // Admitted: no longer pending, and no longer evictable.
    drop(pending);
    stats.admitted.fetch_add(1, Ordering::Relaxed);
    tracing::info!(target: "audit", %peer, decision = "admitted", token = %admitted.token(), key = %admitted.key(), version = %tls_version, group = %tls_group, "phone admitted at TLS");
    let _ = admitted_tx
        .send(PhoneConnection {
            stream,
            admitted,
            version,
            group,
            slot,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_start_after_free_failures_double_cap_and_clear() {
        let mut p = FailurePenalty::default();
        let ip: IpAddr = [192, 0, 2, 1].into();
        let other: IpAddr = [192, 0, 2, 2].into();
        let t0 = Instant::now();
        for i in 0..FailurePenalty::FREE {
            assert_eq!(p.failed(ip, t0), None, "failure {i} is free");
        }
        assert_eq!(p.penalized(ip, t0), None);
        assert_eq!(p.failed(ip, t0), Some(Duration::from_secs(1)));
        assert_eq!(p.penalized(ip, t0), Some(Duration::from_secs(1)));
        assert_eq!(p.penalized(other, t0), None);
        assert_eq!(p.penalized(ip, t0 + Duration::from_secs(1)), None);
        assert_eq!(p.failed(ip, t0), Some(Duration::from_secs(2)));
        assert_eq!(p.failed(ip, t0), Some(Duration::from_secs(4)));
        for _ in 0..40 {
            p.failed(ip, t0);
        }
        assert_eq!(p.penalized(ip, t0), Some(FailurePenalty::MAX));
        // An admission clears the record.
        p.admitted(ip);
        assert_eq!(p.penalized(ip, t0), None);
        assert_eq!(p.failed(ip, t0), None);
        // A long quiet period forgets old failures.
        let mut q = FailurePenalty::default();
        for _ in 0..FailurePenalty::FREE {
            q.failed(ip, t0);
        }
        assert_eq!(q.failed(ip, t0 + FailurePenalty::FORGET), None);
    }

    #[test]
    fn the_penalty_table_is_bounded() {
        let mut p = FailurePenalty::default();
        let t0 = Instant::now();
        for i in 0..(FailurePenalty::MAX_ADDRS as u32 + 100) {
            let ip: IpAddr = std::net::Ipv4Addr::from(0x0a00_0000 + i).into();
            p.failed(ip, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(p.by_addr.len() <= FailurePenalty::MAX_ADDRS);
    }
}
