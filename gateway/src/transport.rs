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
//! - connections already admitted are never affected by any of this.
//!
//! Refusals are counted and logged at most once per second per reason.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::{NamedGroup, ProtocolVersion, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::tls::{identify, KeyHash, SharedRegistry, TokenEntry};

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
}

impl Default for ListenerLimits {
    fn default() -> ListenerLimits {
        ListenerLimits {
            max_pending_handshakes: 64,
            max_pending_per_address: 4,
            handshake_timeout: Duration::from_secs(5),
            max_connections: 256,
            max_connections_per_address: 8,
        }
    }
}

/// An admitted phone connection.
#[derive(Debug)]
pub struct PhoneConnection {
    /// The TLS stream, handshake done.
    pub stream: TlsStream<TcpStream>,
    /// Where it comes from.
    pub peer: SocketAddr,
    /// The token's key.
    pub key: KeyHash,
    /// The registry entry it was admitted as.
    pub token: TokenEntry,
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
}

#[derive(Debug, Default)]
struct Counts {
    /// Pending handshakes, oldest first: id and how to abort it.
    queue: std::collections::VecDeque<(u64, tokio::task::AbortHandle)>,
    next_id: u64,
    pending: usize,
    pending_by_addr: HashMap<IpAddr, usize>,
    connections: usize,
    connections_by_addr: HashMap<IpAddr, usize>,
}

type Shared = Arc<Mutex<Counts>>;

fn dec(map: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = map.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            map.remove(&ip);
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
            c.queue.retain(|(id, _)| *id != self.id);
        }
    }
}

/// An admitted connection's slot; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Shared,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.connections -= 1;
            dec(&mut c.connections_by_addr, self.ip);
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
            if let Some((_, oldest)) = c.queue.pop_front() {
                // Its slot is released when the aborted task is dropped.
                oldest.abort();
                stats.evicted.fetch_add(1, Ordering::Relaxed);
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
        c.queue.push_back((id, task.abort_handle()));
    }
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
    admitted: mpsc::Sender<PhoneConnection>,
    counts: Shared,
    pending: PendingSlot,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, error = %e, "phone TLS handshake refused");
            return;
        }
        Err(_) => {
            stats.handshake_timeout.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, "phone TLS handshake timed out");
            return;
        }
    };
    let (_, conn) = stream.get_ref();
    let Some((key, token)) = identify(&registry, conn.peer_certificates()) else {
        // Revoked between the verifier and now.
        stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let version = conn.protocol_version();
    let group = conn.negotiated_key_exchange_group().map(|g| g.name());
    let slot = {
        let Ok(mut c) = counts.lock() else { return };
        c.connections += 1;
        *c.connections_by_addr.entry(peer.ip()).or_default() += 1;
        ConnectionSlot {
            counts: Arc::clone(&counts),
            ip: peer.ip(),
        }
    };
    // Admitted: no longer pending, and no longer evictable.
    drop(pending);
    stats.admitted.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, token = %token.name, key = %key, ?version, ?group, "phone admitted at TLS");
    let _ = admitted
        .send(PhoneConnection {
            stream,
            peer,
            key,
            token,
            version,
            group,
            slot,
        })
        .await;
}
