//! The media relay: every packet from one leg of a call is unprotected
//! with that leg's inbound key and protected with the other leg's outbound
//! key, so the two legs never share a key and nothing leaves in the clear.
//!
//! # Contract
//!
//! [`Relay`] is sans-IO. The socket layer ([`net`]) owns the sockets and
//! the clock and drives it:
//!
//! 1. [`Relay::add_call`] with two [`LegConfig`]s (sockets already bound,
//!    keys from the offer/answer) gives a [`CallId`].
//! 2. Every datagram goes to [`Relay::handle_datagram`]; a returned
//!    [`Transmit`] must be sent before the next call (it borrows the
//!    caller's buffer). A `Transmit` holds a [`Protected`] packet, so only
//!    packets that went through `protect` can reach the wire.
//! 3. When [`Relay::poll_timeout`] passes, call [`Relay::handle_timeout`],
//!    then drain [`Relay::poll_event`] until it returns `None`.
//! 4. [`Relay::remove_call`] when the call ends; its keys are zeroized as
//!    they drop.
//!
//! A leg learns its far end from the first packet that authenticates on it
//! (latching, for phones behind NAT) and from then on ignores packets from
//! any other address. Until then it sends to the address signalled in SDP.

mod ports;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::srtp::{self, is_rtcp, MasterKey, Protected, Protector, Unprotector};
pub use ports::PortAllocator;

/// Names a socket of the socket layer. The relay never touches sockets;
/// it only says which one a packet arrived on and which one to send from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u32);

/// The local end of a leg, as the shell's relay thread bound it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalLeg {
    /// RTP (and, with rtcp-mux, RTCP) socket.
    pub rtp: SocketId,
    /// Its address, for the SDP.
    pub rtp_addr: SocketAddr,
    /// The RTCP socket and address when not multiplexed.
    pub rtcp: Option<(SocketId, SocketAddr)>,
}

/// Names a call in the relay. Stale ids (of removed calls) match nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallId {
    index: u32,
    generation: u32,
}

/// Which leg of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegSide {
    /// The first leg given to [`Relay::add_call`] (the phone, by convention).
    A,
    /// The second leg (the bridge).
    B,
}

impl LegSide {
    fn index(self) -> usize {
        match self {
            LegSide::A => 0,
            LegSide::B => 1,
        }
    }

    fn other(self) -> LegSide {
        match self {
            LegSide::A => LegSide::B,
            LegSide::B => LegSide::A,
        }
    }
}

/// One leg as negotiated: its local sockets, the far end as signalled, and
/// the keys. `inbound` is the key the far end protects with (from its SDP),
/// `outbound` is the fresh key dialgate generated for this leg.
#[derive(Debug)]
pub struct LegConfig {
    /// Socket for RTP (and RTCP when `rtcp` is `None`: rtcp-mux).
    pub rtp: SocketId,
    /// Separate RTCP socket, or `None` for rtcp-mux (RFC 5761).
    pub rtcp: Option<SocketId>,
    /// Far end's RTP address as signalled, if known.
    pub remote_rtp: Option<SocketAddr>,
    /// Far end's RTCP address as signalled (ignored with rtcp-mux).
    pub remote_rtcp: Option<SocketAddr>,
    /// Key the far end protects with.
    pub inbound: MasterKey,
    /// Key dialgate protects with towards the far end.
    pub outbound: MasterKey,
}

/// Relay-wide settings.
#[derive(Clone, Copy, Debug)]
pub struct RelayConfig {
    /// A call whose legs have seen no authenticated packet for this long
    /// raises [`Event::Inactive`].
    pub inactivity: Duration,
    /// Upper bound on concurrent calls.
    pub max_calls: usize,
    /// Minimum time between two log lines about dropped packets on a leg.
    pub drop_log_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            inactivity: Duration::from_secs(30),
            max_calls: 1024,
            drop_log_interval: Duration::from_secs(10),
        }
    }
}

/// Counters of one leg. "rx" are packets that arrived on this leg,
/// "tx" packets sent out on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Authenticated packets received.
    pub rx_packets: u64,
    /// Authenticated payload octets received (SRTP/SRTCP length).
    pub rx_bytes: u64,
    /// Dropped: authentication failed (forged, corrupted, wrong key).
    pub auth_failed: u64,
    /// Dropped: replayed or older than the replay window.
    pub replayed: u64,
    /// Dropped: malformed (truncated, not RTP, unencrypted SRTCP).
    pub malformed: u64,
    /// Dropped: from an address other than the latched far end.
    pub foreign_source: u64,
    /// Dropped: could not be protected or had nowhere to go.
    pub unroutable: u64,
    /// Relayed packets not sent towards this leg because the gateway was
    /// playing its own frames on it (the secure tone).
    pub muted: u64,
    /// Frames the gateway generated and sent on this leg.
    pub played: u64,
    /// Packets protected and handed out for sending on this leg.
    pub tx_packets: u64,
}

impl LegStats {
    /// All packets dropped on receipt.
    pub fn dropped(&self) -> u64 {
        self.auth_failed + self.replayed + self.malformed + self.foreign_source + self.unroutable
    }
}

/// Something the call layer must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// No authenticated packet on either leg for the configured time: end
    /// the call (BYE both legs). Raised once per call.
    Inactive {
        /// The call.
        call: CallId,
    },
    /// A leg latched onto the far end's address.
    Latched {
        /// The call.
        call: CallId,
        /// The leg.
        leg: LegSide,
        /// The address packets will now be accepted from and sent to.
        addr: SocketAddr,
    },
}

/// Why a call could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The configured call limit is reached.
    #[error("relay is at its call limit")]
    Full,
    /// A socket is already used by another call.
    #[error("socket already belongs to a call")]
    SocketInUse,
    /// Key derivation failed.
    #[error("SRTP context: {0}")]
    Srtp(srtp::Error),
    /// No live call with that id.
    #[error("no such call")]
    NoSuchCall,
    /// A generated frame is too large, or too many are queued.
    #[error("generated frame too large or queue full")]
    BadFrame,
}

/// A packet to send: from which socket, to where. The packet has been
/// through SRTP `protect`; no other kind of packet can be put here.
#[derive(Debug)]
pub struct Transmit<'a> {
    /// Socket to send from.
    pub socket: SocketId,
    /// Destination.
    pub dest: SocketAddr,
    /// The protected packet.
    pub packet: Protected<'a>,
}

/// Rate limiting of "packets dropped" log lines for one leg.
#[derive(Debug, Default)]
struct DropLog {
    last: Option<Instant>,
    suppressed: u64,
}

struct Leg {
    cfg_rtp: SocketId,
    cfg_rtcp: Option<SocketId>,
    remote_rtp: Option<SocketAddr>,
    remote_rtcp: Option<SocketAddr>,
    rtp_latched: bool,
    rtcp_latched: bool,
    inbound: Unprotector,
    outbound: Protector,
    stats: LegStats,
    drop_log: DropLog,
    /// Frames the gateway sends on this leg itself, earliest first.
    playout: VecDeque<PlayFrame>,
    /// Drop relayed RTP towards this leg while `playout` is not empty.
    mute_while_playing: bool,
}

/// One RTP packet the gateway generates (the secure tone, a PIN digit),
/// sent at `at` with the gateway's own SSRC on that leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayFrame {
    /// When to send it.
    pub at: Instant,
    /// RTP payload type.
    pub payload_type: u8,
    /// RTP marker bit.
    pub marker: bool,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// SSRC of the gateway's own stream on this leg.
    pub ssrc: u32,
    /// The payload (at most [`MAX_PLAY_PAYLOAD`] octets).
    pub payload: Vec<u8>,
}

/// Largest payload of a generated frame.
pub const MAX_PLAY_PAYLOAD: usize = 320;
/// Most frames queued per leg (a 10 s tone, or a long PIN).
pub const MAX_PLAY_FRAMES: usize = 500;

struct Call {
    generation: u32,
    legs: [Leg; 2],
    last_media: Instant,
    inactive_raised: bool,
}

/// What a socket carries.
#[derive(Clone, Copy, Debug)]
struct Route {
    call: u32,
    leg: LegSide,
    /// This socket is the leg's separate RTCP socket.
    rtcp_only: bool,
}

/// The relay core. See the module documentation for the driving contract.
pub struct Relay {
    config: RelayConfig,
    calls: Vec<Option<Call>>,
    free: Vec<u32>,
    generations: Vec<u32>,
    routes: Vec<Option<Route>>,
    events: VecDeque<Event>,
    next_check: Option<Instant>,
    /// Indexes of the calls with generated frames queued (few: a tone at
    /// set-up), so that the timeout and the play-out look at those only
    /// and not at every call on every pass of the event loop.
    playing: Vec<u32>,
    /// Datagrams on sockets that belong to no call.
    pub stray_packets: u64,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("calls", &self.call_count())
            .field("stray_packets", &self.stray_packets)
            .finish_non_exhaustive()
    }
}

/// How often inactivity is checked (the timer granularity).
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl Relay {
    /// An empty relay.
    pub fn new(config: RelayConfig) -> Relay {
        Relay {
            config,
            calls: Vec::new(),
            free: Vec::new(),
            generations: Vec::new(),
            routes: Vec::new(),
            events: VecDeque::new(),
            next_check: None,
            playing: Vec::new(),
            stray_packets: 0,
        }
    }

    /// Number of calls relayed now.
    pub fn call_count(&self) -> usize {
        self.calls.len() - self.free.len()
    }

    /// Adds a call between two legs.
    pub fn add_call(
        &mut self,
        now: Instant,
        a: LegConfig,
        b: LegConfig,
    ) -> Result<CallId, RelayError> {
        if self.call_count() >= self.config.max_calls {
            return Err(RelayError::Full);
        }
        let sockets: Vec<SocketId> = [&a, &b]
            .iter()
            .flat_map(|l| std::iter::once(l.rtp).chain(l.rtcp))
            .collect();
        for (i, s) in sockets.iter().enumerate() {
            let taken = self.routes.get(s.0 as usize).is_some_and(Option::is_some);
            if taken || sockets[..i].contains(s) {
                return Err(RelayError::SocketInUse);
            }
        }
        let legs = [Leg::new(a)?, Leg::new(b)?];
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.calls.push(None);
                self.generations.push(0);
                (self.calls.len() - 1) as u32
            }
        };
        let generation = self.generations[index as usize];
        for side in [LegSide::A, LegSide::B] {
            let leg = &legs[side.index()];
            self.set_route(
                leg.cfg_rtp,
                Some(Route {
                    call: index,
                    leg: side,
                    rtcp_only: false,
                }),
            );
            if let Some(s) = leg.cfg_rtcp {
                self.set_route(
                    s,
                    Some(Route {
                        call: index,
                        leg: side,
                        rtcp_only: true,
                    }),
                );
            }
        }
        self.calls[index as usize] = Some(Call {
            generation,
            legs,
            last_media: now,
            inactive_raised: false,
        });
        if self.next_check.is_none() {
            self.next_check = Some(now + CHECK_INTERVAL);
        }
        let id = CallId { index, generation };
        debug!(call = ?id, "relay call added");
        Ok(id)
    }

    fn set_route(&mut self, s: SocketId, r: Option<Route>) {
        let i = s.0 as usize;
        if self.routes.len() <= i {
            self.routes.resize(i + 1, None);
        }
        self.routes[i] = r;
    }

    fn call_mut(&mut self, id: CallId) -> Option<&mut Call> {
        self.calls
            .get_mut(id.index as usize)?
            .as_mut()
            .filter(|c| c.generation == id.generation)
    }

    fn call(&self, id: CallId) -> Option<&Call> {
        self.calls
            .get(id.index as usize)?
            .as_ref()
            .filter(|c| c.generation == id.generation)
    }

    /// Removes a call and returns its final counters. Its SRTP contexts are
    /// dropped here, which zeroizes their keys.
    pub fn remove_call(&mut self, id: CallId) -> Option<[LegStats; 2]> {
        self.call(id)?;
        let call = self.calls[id.index as usize].take()?;
        for leg in &call.legs {
            self.set_route(leg.cfg_rtp, None);
            if let Some(s) = leg.cfg_rtcp {
                self.set_route(s, None);
            }
        }
        self.generations[id.index as usize] = id.generation.wrapping_add(1);
        self.free.push(id.index);
        let stats = [call.legs[0].stats, call.legs[1].stats];
        info!(call = ?id, a = ?stats[0], b = ?stats[1], "relay call removed");
        Some(stats)
    }

    /// Counters of a call's legs.
    pub fn stats(&self, id: CallId) -> Option<[LegStats; 2]> {
        self.call(id).map(|c| [c.legs[0].stats, c.legs[1].stats])
    }

    /// The far end `socket` has latched to (its first authenticated
    /// source), if it has: from then on the relay drops every other source
    /// on it, so a shell may `connect()` the socket to this address.
    pub fn latched_peer(&self, socket: SocketId) -> Option<SocketAddr> {
        let route = self.routes.get(socket.0 as usize).copied().flatten()?;
        let leg = &self.calls.get(route.call as usize)?.as_ref()?.legs[route.leg.index()];
        if route.rtcp_only {
            leg.rtcp_latched.then_some(leg.remote_rtcp).flatten()
        } else {
            leg.rtp_latched.then_some(leg.remote_rtp).flatten()
        }
    }

    /// Handles one datagram that arrived on `socket` from `from`, held in
    /// `buf[..len]`; `buf` must have room for the outbound tag (1500 bytes
    /// of headroom is plenty). Returns the re-protected packet to send, or
    /// `None` if the packet was dropped (and counted).
    pub fn handle_datagram<'b>(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddr,
        buf: &'b mut [u8],
        len: usize,
    ) -> Option<Transmit<'b>> {
        let Some(route) = self.routes.get(socket.0 as usize).copied().flatten() else {
            self.stray_packets += 1;
            return None;
        };
        let drop_interval = self.config.drop_log_interval;
        let call = self.calls[route.call as usize].as_mut()?;
        let call_id = CallId {
            index: route.call,
            generation: call.generation,
        };
        let [a, b] = &mut call.legs;
        let (inl, outl) = match route.leg {
            LegSide::A => (a, b),
            LegSide::B => (b, a),
        };
        let rtcp =
            route.rtcp_only || (inl.cfg_rtcp.is_none() && is_rtcp(&buf[..len.min(buf.len())]));
        let latched_addr = if rtcp && inl.cfg_rtcp.is_some() {
            inl.rtcp_latched.then_some(inl.remote_rtcp).flatten()
        } else {
            inl.rtp_latched.then_some(inl.remote_rtp).flatten()
        };
        if latched_addr.is_some_and(|a| a != from) {
            inl.stats.foreign_source += 1;
            inl.note_drop(now, drop_interval, call_id, route.leg, "foreign source");
            return None;
        }
        let result = if rtcp {
            inl.inbound.unprotect_rtcp(buf, len)
        } else {
            inl.inbound.unprotect_rtp(buf, len)
        };
        let plain_len = match result {
            Ok(n) => n,
            Err(e) => {
                match e {
                    srtp::Error::AuthFailed => inl.stats.auth_failed += 1,
                    srtp::Error::Replayed | srtp::Error::TooOld => inl.stats.replayed += 1,
                    _ => inl.stats.malformed += 1,
                }
                inl.note_drop(now, drop_interval, call_id, route.leg, srtp_reason(e));
                return None;
            }
        };
        inl.stats.rx_packets += 1;
        inl.stats.rx_bytes += len as u64;
        call.last_media = now;
        call.inactive_raised = false;
        if latched_addr.is_none() {
            if rtcp && inl.cfg_rtcp.is_some() {
                inl.remote_rtcp = Some(from);
                inl.rtcp_latched = true;
            } else {
                inl.remote_rtp = Some(from);
                inl.rtp_latched = true;
            }
            self.events.push_back(Event::Latched {
                call: call_id,
                leg: route.leg,
                addr: from,
            });
        }
        let (out_socket, dest) = match (rtcp, outl.cfg_rtcp) {
            (true, Some(s)) => (s, outl.remote_rtcp),
            _ => (outl.cfg_rtp, outl.remote_rtp),
        };
        let Some(dest) = dest else {
            outl.stats.unroutable += 1;
            return None;
        };
        if !rtcp && outl.mute_while_playing && !outl.playout.is_empty() {
            outl.stats.muted += 1;
            return None;
        }
        let protected = if rtcp {
            outl.outbound.protect_rtcp(buf, plain_len)
        } else {
            outl.outbound.protect_rtp(buf, plain_len)
        };
        match protected {
            Ok(packet) => {
                outl.stats.tx_packets += 1;
                Some(Transmit {
                    socket: out_socket,
                    dest,
                    packet,
                })
            }
            Err(e) => {
                outl.stats.unroutable += 1;
                outl.note_drop(
                    now,
                    drop_interval,
                    call_id,
                    route.leg.other(),
                    srtp_reason(e),
                );
                None
            }
        }
    }

    /// When [`Relay::handle_timeout`] should next be called (or, for
    /// generated frames, [`Relay::poll_play`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let play = self
            .playing
            .iter()
            .filter_map(|&i| self.calls.get(i as usize)?.as_ref())
            .flat_map(|c| {
                c.legs
                    .iter()
                    .filter_map(|l| l.playout.front().map(|f| f.at))
            })
            .min();
        match (self.next_check, play) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queues frames the gateway sends on one leg of a call, protected with
    /// that leg's outbound key like any relayed packet. With `mute`,
    /// relayed RTP towards that leg is dropped until the last frame is out
    /// (so a caller hears the secure tone alone, then the bridge).
    pub fn play(
        &mut self,
        id: CallId,
        leg: LegSide,
        frames: Vec<PlayFrame>,
        mute: bool,
    ) -> Result<(), RelayError> {
        if frames.iter().any(|f| f.payload.len() > MAX_PLAY_PAYLOAD) {
            return Err(RelayError::BadFrame);
        }
        let call = self.call_mut(id).ok_or(RelayError::NoSuchCall)?;
        let l = &mut call.legs[leg.index()];
        if l.playout.len() + frames.len() > MAX_PLAY_FRAMES {
            return Err(RelayError::BadFrame);
        }
        l.playout.extend(frames);
        l.playout.make_contiguous().sort_by_key(|f| f.at);
        l.mute_while_playing = mute;
        if !l.playout.is_empty() && !self.playing.contains(&id.index) {
            self.playing.push(id.index);
        }
        Ok(())
    }

    /// Re-keys one leg of a call (RFC 4568 §6.1: a new key is a new
    /// crypto context): `inbound` replaces the context that unprotects what
    /// that leg's far end sends, `outbound` the one that protects what we
    /// send it. The old contexts are dropped here, which zeroizes their
    /// keys; packets still in flight under the old key fail authentication
    /// and are counted as dropped.
    pub fn rekey(
        &mut self,
        id: CallId,
        leg: LegSide,
        inbound: Option<&MasterKey>,
        outbound: Option<&MasterKey>,
    ) -> Result<(), RelayError> {
        let call = self.call_mut(id).ok_or(RelayError::NoSuchCall)?;
        // Both built before either is swapped: all or nothing.
        let rx = inbound
            .map(Unprotector::new)
            .transpose()
            .map_err(RelayError::Srtp)?;
        let tx = outbound
            .map(Protector::new)
            .transpose()
            .map_err(RelayError::Srtp)?;
        let l = &mut call.legs[leg.index()];
        if let Some(rx) = rx {
            l.inbound = rx;
        }
        if let Some(tx) = tx {
            l.outbound = tx;
        }
        debug!(call = ?id, ?leg, inbound = inbound.is_some(), outbound = outbound.is_some(), "leg re-keyed");
        Ok(())
    }

    /// The next generated frame due at `now`, built and protected in `buf`
    /// (at least 1500 octets). Call until it returns `None`.
    pub fn poll_play<'b>(&mut self, now: Instant, buf: &'b mut [u8]) -> Option<Transmit<'b>> {
        let mut k = 0;
        while let Some(&index) = self.playing.get(k) {
            let Some(Some(call)) = self.calls.get_mut(index as usize) else {
                self.playing.swap_remove(k);
                continue;
            };
            if call.legs.iter().all(|l| l.playout.is_empty()) {
                self.playing.swap_remove(k);
                continue;
            }
            k += 1;
            for leg in &mut call.legs {
                if leg.playout.front().is_none_or(|f| f.at > now) {
                    continue;
                }
                let f = leg.playout.pop_front()?;
                let Some(dest) = leg.remote_rtp else {
                    leg.stats.unroutable += 1;
                    continue;
                };
                let len = 12 + f.payload.len();
                if buf.len() < len + 16 {
                    leg.stats.unroutable += 1;
                    continue;
                }
                buf[0] = 0x80;
                buf[1] = (u8::from(f.marker) << 7) | (f.payload_type & 0x7f);
                buf[2..4].copy_from_slice(&f.seq.to_be_bytes());
                buf[4..8].copy_from_slice(&f.timestamp.to_be_bytes());
                buf[8..12].copy_from_slice(&f.ssrc.to_be_bytes());
                buf[12..len].copy_from_slice(&f.payload);
                match leg.outbound.protect_rtp(buf, len) {
                    Ok(packet) => {
                        leg.stats.played += 1;
                        return Some(Transmit {
                            socket: leg.cfg_rtp,
                            dest,
                            packet,
                        });
                    }
                    Err(_) => {
                        leg.stats.unroutable += 1;
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Checks every call for media inactivity.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_check.is_none_or(|t| now < t) {
            return;
        }
        let limit = self.config.inactivity;
        for (index, slot) in self.calls.iter_mut().enumerate() {
            let Some(call) = slot else { continue };
            if !call.inactive_raised && now.saturating_duration_since(call.last_media) >= limit {
                call.inactive_raised = true;
                let id = CallId {
                    index: index as u32,
                    generation: call.generation,
                };
                warn!(call = ?id, idle_s = limit.as_secs(), "media inactive");
                self.events.push_back(Event::Inactive { call: id });
            }
        }
        self.next_check = (self.call_count() > 0).then_some(now + CHECK_INTERVAL);
    }

    /// The next event for the call layer.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

fn srtp_reason(e: srtp::Error) -> &'static str {
    match e {
        srtp::Error::AuthFailed => "authentication failed",
        srtp::Error::Replayed => "replayed",
        srtp::Error::TooOld => "older than replay window",
        srtp::Error::Truncated => "truncated",
        srtp::Error::NotRtp => "not RTP",
        srtp::Error::Unencrypted => "unencrypted SRTCP",
        srtp::Error::IndexReused => "index reused",
        srtp::Error::KeyExhausted => "key exhausted",
        srtp::Error::TooManyStreams => "too many SSRCs for one key",
        srtp::Error::BufferTooSmall => "buffer too small",
        _ => "other",
    }
}

impl Leg {
    fn new(cfg: LegConfig) -> Result<Leg, RelayError> {
        Ok(Leg {
            cfg_rtp: cfg.rtp,
            cfg_rtcp: cfg.rtcp,
            remote_rtp: cfg.remote_rtp,
            remote_rtcp: cfg.remote_rtcp,
            rtp_latched: false,
            rtcp_latched: false,
            inbound: Unprotector::new(&cfg.inbound).map_err(RelayError::Srtp)?,
            outbound: Protector::new(&cfg.outbound).map_err(RelayError::Srtp)?,
            stats: LegStats::default(),
            drop_log: DropLog::default(),
            playout: VecDeque::new(),
            mute_while_playing: false,
        })
    }

    /// Logs a dropped packet at most once per `interval` per leg, with the
    /// number suppressed since the last line, so a flood makes one line.
    fn note_drop(
        &mut self,
        now: Instant,
        interval: Duration,
        call: CallId,
        leg: LegSide,
        reason: &str,
    ) {
        let due = self
            .drop_log
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        if due {
            warn!(
                call = ?call,
                leg = ?leg,
                reason,
                suppressed = self.drop_log.suppressed,
                auth_failed = self.stats.auth_failed,
                replayed = self.stats.replayed,
                malformed = self.stats.malformed,
                foreign_source = self.stats.foreign_source,
                "media packets dropped"
            );
            self.drop_log.last = Some(now);
            self.drop_log.suppressed = 0;
        } else {
            self.drop_log.suppressed += 1;
        }
    }
}
