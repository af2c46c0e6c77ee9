//! The relay's socket layer: one dedicated thread owns every media socket,
//! a `mio` poll, the clock and the sans-IO [`Relay`]. The call layer talks
//! to it through a [`RelayHandle`] (bounded command channel plus a waker).
//!
//! Why a dedicated thread and not tokio tasks: the work per packet is a
//! receive, two SRTP operations and a send, with no awaiting in between;
//! one thread that owns the relay core needs no locks, no per-packet task
//! wake-ups and no cross-thread hand-offs, and keeps latency flat. The
//! measured comparison is in `docs/benchmarks.md`.
//!
//! Fairness: each readable socket is served at most [`BATCH`] datagrams at
//! a time, round-robin, so a flood on one port cannot starve other calls.
//!
//! Connected legs (optional, [`NetConfig::connect_latched`]): once the
//! relay latched a leg's socket to its far end, a
//! second socket is bound to the same port (`SO_REUSEPORT`) and
//! `connect()`ed to that far end. The kernel delivers the far end's packets
//! to it and sends from it skip `sendto`'s per-packet route lookup (the
//! floor in `docs/benchmarks.md` measures the difference); every other
//! source still arrives on the first, unconnected socket, so the relay
//! keeps seeing (and counting, as `foreign_source`) strangers and a peer
//! that moved. Tokens: `2 × id` for a leg's socket, `2 × id + 1` for its
//! connected sibling.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use mio::net::UdpSocket;

use crate::srtp::MasterKey;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, error, warn};

use super::{
    CallId, Event, LegConfig, LegSide, LegStats, LocalLeg, PlayFrame, PortAllocator, Relay,
    RelayConfig, RelayError, SocketId,
};

/// Datagrams served from one socket before moving to the next ready one.
pub const BATCH: usize = 32;
/// Receive buffer: headroom above the largest datagram for the SRTP tag.
const BUF_LEN: usize = 2048;
const WAKE: Token = Token(usize::MAX);
/// Events kept for the call layer before the relay waits for it to read.
const EVENT_QUEUE: usize = 4096;

/// Settings of the socket layer.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// The relay core's settings.
    pub relay: RelayConfig,
    /// Media ports, inclusive.
    pub port_min: u16,
    /// Media ports, inclusive.
    pub port_max: u16,
    /// SO_RCVBUF for each media socket, bytes.
    pub recv_buffer: usize,
    /// Give each latched socket a sibling `connect()`ed to its far end
    /// (module documentation). Off by default: its sockets are bound with
    /// `SO_REUSEPORT`, and another process of the same user binding the
    /// same port (a second gateway on the same range) would then share
    /// their media instead of being refused the port.
    pub connect_latched: bool,
    /// Never sleep in `epoll_wait`: the relay thread spins on its poll, for
    /// a core dedicated to it (it uses all of that core, always). Cuts the
    /// time to wake a halted vCPU out of the latency; off by default.
    pub busy_poll: bool,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            relay: RelayConfig::default(),
            port_min: 30000,
            port_max: 39999,
            recv_buffer: 256 * 1024,
            connect_latched: false,
            busy_poll: false,
        }
    }
}

/// Counters of the socket layer itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Sends that failed (socket buffer full, unreachable).
    pub send_errors: u64,
    /// Datagrams on sockets of no call.
    pub stray: u64,
    /// Calls relayed now.
    pub calls: usize,
    /// Sockets with a connected sibling now ([`NetConfig::connect_latched`]).
    pub connected: usize,
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The relay thread has stopped.
    #[error("relay thread is not running")]
    Stopped,
    /// No free port in the configured range.
    #[error("media port range exhausted")]
    PortsExhausted,
    /// Binding or configuring a socket failed.
    #[error("media socket: {0}")]
    Io(#[from] io::Error),
    /// The relay core refused the call.
    #[error(transparent)]
    Relay(#[from] RelayError),
}

enum Command {
    Allocate {
        ip: IpAddr,
        rtcp_mux: bool,
        reply: SyncSender<Result<LocalLeg, NetError>>,
    },
    Release {
        leg: LocalLeg,
    },
    AddCall {
        legs: Box<[(LocalLeg, LegConfig); 2]>,
        reply: SyncSender<Result<CallId, NetError>>,
    },
    RemoveCall {
        call: CallId,
        reply: SyncSender<Option<[LegStats; 2]>>,
    },
    Stats {
        call: CallId,
        reply: SyncSender<Option<[LegStats; 2]>>,
    },
    Counters {
        reply: SyncSender<NetCounters>,
    },
    Play {
        call: CallId,
        leg: LegSide,
        frames: Vec<PlayFrame>,
        mute: bool,
        reply: SyncSender<Result<(), RelayError>>,
    },
    Rekey {
        call: CallId,
        leg: LegSide,
        inbound: Option<MasterKey>,
        outbound: Option<MasterKey>,
        reply: SyncSender<Result<(), RelayError>>,
    },
    Shutdown,
}

/// Control of a running relay thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct RelayHandle {
    commands: SyncSender<Command>,
    waker: Arc<Waker>,
    events: std::sync::Mutex<Receiver<Event>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl RelayHandle {
    /// Starts the relay thread.
    pub fn spawn(config: NetConfig) -> io::Result<RelayHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (commands, command_rx) = mpsc::sync_channel(64);
        let (event_tx, events) = mpsc::sync_channel(EVENT_QUEUE);
        let thread = std::thread::Builder::new()
            .name("dialgate-relay".into())
            .spawn(move || {
                let mut io = RelayIo::new(config, poll, command_rx, event_tx);
                if let Err(e) = io.run() {
                    error!(error = %e, "relay thread failed");
                }
            })?;
        Ok(RelayHandle {
            commands,
            waker,
            events: std::sync::Mutex::new(events),
            thread: Some(thread),
        })
    }

    fn request<T>(&self, make: impl FnOnce(SyncSender<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.commands
            .send(make(tx))
            .map_err(|_| NetError::Stopped)?;
        self.waker.wake().map_err(NetError::Io)?;
        rx.recv().map_err(|_| NetError::Stopped)
    }

    /// Binds the media socket(s) of a new leg on `ip`, from the port range.
    pub fn allocate(&self, ip: IpAddr, rtcp_mux: bool) -> Result<LocalLeg, NetError> {
        self.request(|reply| Command::Allocate {
            ip,
            rtcp_mux,
            reply,
        })?
    }

    /// Closes the sockets of a leg that never became part of a call.
    pub fn release(&self, leg: LocalLeg) -> Result<(), NetError> {
        self.commands
            .send(Command::Release { leg })
            .map_err(|_| NetError::Stopped)?;
        self.waker.wake().map_err(NetError::Io)
    }

    /// Starts relaying between two allocated legs.
    pub fn add_call(
        &self,
        a: (LocalLeg, LegConfig),
        b: (LocalLeg, LegConfig),
    ) -> Result<CallId, NetError> {
        self.request(|reply| Command::AddCall {
            legs: Box::new([a, b]),
            reply,
        })?
    }

    /// Stops relaying a call, closes its sockets and zeroizes its keys.
    pub fn remove_call(&self, call: CallId) -> Result<Option<[LegStats; 2]>, NetError> {
        self.request(|reply| Command::RemoveCall { call, reply })
    }

    /// A call's counters.
    pub fn stats(&self, call: CallId) -> Result<Option<[LegStats; 2]>, NetError> {
        self.request(|reply| Command::Stats { call, reply })
    }

    /// Queues frames the gateway itself sends on a leg (see
    /// [`Relay::play`]).
    pub fn play(
        &self,
        call: CallId,
        leg: LegSide,
        frames: Vec<PlayFrame>,
        mute: bool,
    ) -> Result<(), NetError> {
        self.request(|reply| Command::Play {
            call,
            leg,
            frames,
            mute,
            reply,
        })?
        .map_err(NetError::Relay)
    }

    /// Re-keys one leg of a call (see [`crate::relay::Relay::rekey`]).
    pub fn rekey(
        &self,
        call: CallId,
        leg: LegSide,
        inbound: Option<MasterKey>,
        outbound: Option<MasterKey>,
    ) -> Result<(), NetError> {
        self.request(|reply| Command::Rekey {
            call,
            leg,
            inbound,
            outbound,
            reply,
        })?
        .map_err(NetError::Relay)
    }

    /// The socket layer's counters.
    pub fn counters(&self) -> Result<NetCounters, NetError> {
        self.request(|reply| Command::Counters { reply })
    }

    /// Events for the call layer (inactivity, latching). One reader at a
    /// time: the guard holds the receiver.
    pub fn events(&self) -> std::sync::MutexGuard<'_, Receiver<Event>> {
        // A panic while holding the guard cannot corrupt a Receiver.
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One bound media socket.
struct MediaSocket {
    sock: UdpSocket,
    local: SocketAddr,
    /// Once the relay latched this socket: its far end and a sibling on
    /// the same port connected to it (see the module documentation).
    peer: Option<(SocketAddr, UdpSocket)>,
}

/// The poll token of socket `id` (`sibling`: its connected sibling).
fn token(id: u32, sibling: bool) -> Token {
    Token(2 * id as usize + usize::from(sibling))
}

struct RelayIo {
    config: NetConfig,
    poll: Poll,
    commands: Receiver<Command>,
    events_out: SyncSender<Event>,
    relay: Relay,
    ports: PortAllocator,
    sockets: Vec<Option<MediaSocket>>,
    free_ids: Vec<u32>,
    ready: VecDeque<u32>,
    /// `queued[id]`: socket `id` is in `ready` (avoids a linear search).
    queued: Vec<bool>,
    /// Sockets per call, to close them when it ends.
    call_legs: Vec<(CallId, [LocalLeg; 2])>,
    pending_event: Option<Event>,
    counters: NetCounters,
}

impl RelayIo {
    fn new(
        config: NetConfig,
        poll: Poll,
        commands: Receiver<Command>,
        events_out: SyncSender<Event>,
    ) -> RelayIo {
        RelayIo {
            config,
            poll,
            commands,
            events_out,
            relay: Relay::new(config.relay),
            ports: PortAllocator::new(config.port_min, config.port_max),
            sockets: Vec::new(),
            free_ids: Vec::new(),
            ready: VecDeque::new(),
            queued: Vec::new(),
            call_legs: Vec::new(),
            pending_event: None,
            counters: NetCounters::default(),
        }
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; BUF_LEN];
        loop {
            let timeout = if self.ready.is_empty() && !self.config.busy_poll {
                self.relay
                    .poll_timeout()
                    .map(|t| t.saturating_duration_since(Instant::now()))
            } else {
                Some(std::time::Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == WAKE {
                    if !self.handle_commands() {
                        return Ok(());
                    }
                } else if let Ok(t) = u32::try_from(ev.token().0) {
                    self.mark_ready(t);
                }
            }
            // One round over the sockets that were ready: each gets a batch.
            for _ in 0..self.ready.len() {
                let Some(t) = self.ready.pop_front() else {
                    break;
                };
                if self.serve(t, &mut buf) {
                    self.ready.push_back(t);
                } else if let Some(q) = self.queued.get_mut(t as usize) {
                    *q = false;
                }
            }
            let now = Instant::now();
            self.relay.handle_timeout(now);
            self.send_played(now, &mut buf);
            self.forward_events();
        }
    }

    /// Queues a ready token (a socket or its sibling) for the next round.
    fn mark_ready(&mut self, t: u32) {
        let i = t as usize;
        if self.queued.len() <= i {
            self.queued.resize(i + 1, false);
        }
        if !self.queued[i] {
            self.queued[i] = true;
            self.ready.push_back(t);
        }
    }

    /// Serves up to BATCH datagrams from the socket of token `t`; true if
    /// it may have more.
    fn serve(&mut self, t: u32, buf: &mut [u8]) -> bool {
        let (id, sibling) = (t / 2, t % 2 == 1);
        let now = Instant::now();
        for _ in 0..BATCH {
            let Some(Some(m)) = self.sockets.get(id as usize) else {
                return false;
            };
            let sock = match (&m.peer, sibling) {
                (_, false) => &m.sock,
                (Some((_, s)), true) => s,
                (None, true) => return false,
            };
            let (len, from) = match sock.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!(error = %e, "media socket receive error");
                    continue;
                }
            };
            let unconnected = m.peer.is_none();
            self.counters.received += 1;
            if let Some(t) = self
                .relay
                .handle_datagram(now, SocketId(id), from, buf, len)
            {
                send_out(&self.sockets, &mut self.counters, t);
            }
            if unconnected && self.config.connect_latched {
                self.connect_latched(id, from);
            }
        }
        true
    }

    /// Gives socket `id` a sibling connected to `from` if the relay has
    /// just latched it there. A failure leaves it without one (correct,
    /// only slower).
    fn connect_latched(&mut self, id: u32, from: SocketAddr) {
        if self.relay.latched_peer(SocketId(id)) != Some(from) {
            return;
        }
        let Some(Some(m)) = self.sockets.get_mut(id as usize) else {
            return;
        };
        let sibling = (|| -> io::Result<UdpSocket> {
            let s = media_socket(m.local, self.config.recv_buffer, true)?;
            s.connect(&from.into())?;
            let mut sock = UdpSocket::from_std(s.into());
            self.poll
                .registry()
                .register(&mut sock, token(id, true), Interest::READABLE)?;
            Ok(sock)
        })();
        match sibling {
            Ok(s) => m.peer = Some((from, s)),
            Err(e) => debug!(error = %e, %from, "connecting a latched media socket"),
        }
    }

    /// Sends the gateway's own frames that are due.
    fn send_played(&mut self, now: Instant, buf: &mut [u8]) {
        while let Some(t) = self.relay.poll_play(now, buf) {
            send_out(&self.sockets, &mut self.counters, t);
        }
    }

    fn forward_events(&mut self) {
        loop {
            let Some(ev) = self
                .pending_event
                .take()
                .or_else(|| self.relay.poll_event())
            else {
                return;
            };
            match self.events_out.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Full(ev)) => {
                    // Keep it: an inactivity event must reach the call layer.
                    self.pending_event = Some(ev);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }

    /// Returns false on shutdown.
    fn handle_commands(&mut self) -> bool {
        loop {
            let cmd = match self.commands.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            };
            match cmd {
                Command::Allocate {
                    ip,
                    rtcp_mux,
                    reply,
                } => {
                    let _ = reply.send(self.allocate(ip, rtcp_mux));
                }
                Command::Release { leg } => self.close_leg(leg),
                Command::AddCall { legs, reply } => {
                    let [a, b] = *legs;
                    let legs = [a.0, b.0];
                    let r = self
                        .relay
                        .add_call(Instant::now(), a.1, b.1)
                        .map_err(NetError::from);
                    if let Ok(id) = r {
                        self.call_legs.push((id, legs));
                    }
                    let _ = reply.send(r);
                }
                Command::RemoveCall { call, reply } => {
                    let stats = self.relay.remove_call(call);
                    if let Some(pos) = self.call_legs.iter().position(|(c, _)| *c == call) {
                        let (_, legs) = self.call_legs.swap_remove(pos);
                        for leg in legs {
                            self.close_leg(leg);
                        }
                    }
                    let _ = reply.send(stats);
                }
                Command::Stats { call, reply } => {
                    let _ = reply.send(self.relay.stats(call));
                }
                Command::Counters { reply } => {
                    let mut c = self.counters;
                    c.stray = self.relay.stray_packets;
                    c.calls = self.relay.call_count();
                    c.connected = self
                        .sockets
                        .iter()
                        .flatten()
                        .filter(|m| m.peer.is_some())
                        .count();
                    let _ = reply.send(c);
                }
                Command::Play {
                    call,
                    leg,
                    frames,
                    mute,
                    reply,
                } => {
                    let _ = reply.send(self.relay.play(call, leg, frames, mute));
                }
                Command::Rekey {
                    call,
                    leg,
                    inbound,
                    outbound,
                    reply,
                } => {
                    let _ = reply.send(self.relay.rekey(
                        call,
                        leg,
                        inbound.as_ref(),
                        outbound.as_ref(),
                    ));
                }
                Command::Shutdown => return false,
            }
        }
    }

    fn allocate(&mut self, ip: IpAddr, rtcp_mux: bool) -> Result<LocalLeg, NetError> {
        // A port another program holds is marked and skipped.
        for _ in 0..64 {
            let port = self
                .ports
                .allocate_pair(!rtcp_mux)
                .ok_or(NetError::PortsExhausted)?;
            let rtp = match self.bind(SocketAddr::new(ip, port)) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    self.ports.release(port, !rtcp_mux);
                    self.ports.mark_used(port);
                    continue;
                }
                Err(e) => {
                    self.ports.release(port, !rtcp_mux);
                    return Err(e.into());
                }
            };
            let rtcp = if rtcp_mux {
                None
            } else {
                match self.bind(SocketAddr::new(ip, port + 1)) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        self.close(rtp.0);
                        self.ports.release(port + 1, false);
                        self.ports.mark_used(port);
                        if e.kind() == io::ErrorKind::AddrInUse {
                            self.ports.mark_used(port + 1);
                            continue;
                        }
                        return Err(e.into());
                    }
                }
            };
            return Ok(LocalLeg {
                rtp: rtp.0,
                rtp_addr: rtp.1,
                rtcp,
            });
        }
        Err(NetError::PortsExhausted)
    }

    fn bind(&mut self, addr: SocketAddr) -> io::Result<(SocketId, SocketAddr)> {
        let s = media_socket(addr, self.config.recv_buffer, self.config.connect_latched)?;
        let mut sock = UdpSocket::from_std(s.into());
        let local = sock.local_addr()?;
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => {
                self.sockets.push(None);
                (self.sockets.len() - 1) as u32
            }
        };
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut sock, token(id, false), Interest::READABLE)
        {
            self.free_ids.push(id);
            return Err(e);
        }
        self.sockets[id as usize] = Some(MediaSocket {
            sock,
            local,
            peer: None,
        });
        Ok((SocketId(id), local))
    }

    fn close(&mut self, id: SocketId) {
        if let Some(slot) = self.sockets.get_mut(id.0 as usize) {
            if let Some(mut m) = slot.take() {
                let registry = self.poll.registry();
                let sibling = m.peer.as_mut().map(|(_, s)| s);
                for sock in std::iter::once(&mut m.sock).chain(sibling) {
                    if let Err(e) = registry.deregister(sock) {
                        warn!(error = %e, "deregistering media socket");
                    }
                }
                self.ports.release(m.local.port(), false);
                self.free_ids.push(id.0);
            }
        }
        for sibling in [false, true] {
            let t = token(id.0, sibling).0;
            if self.queued.get(t).copied().unwrap_or(false) {
                self.ready.retain(|r| *r as usize != t);
                self.queued[t] = false;
            }
        }
    }

    fn close_leg(&mut self, leg: LocalLeg) {
        self.close(leg.rtp);
        if let Some((id, _)) = leg.rtcp {
            self.close(id);
        }
    }
}

/// Sends a protected packet from the socket it names, counting the outcome
/// (a full socket buffer or an unreachable peer is counted, not fatal).
fn send_out(sockets: &[Option<MediaSocket>], counters: &mut NetCounters, t: super::Transmit<'_>) {
    let Some(Some(out)) = sockets.get(t.socket.0 as usize) else {
        counters.send_errors += 1;
        return;
    };
    let sent = if let Some((_, s)) = out.peer.as_ref().filter(|(p, _)| *p == t.dest) {
        s.send(t.packet.as_bytes())
    } else {
        out.sock.send_to(t.packet.as_bytes(), t.dest)
    };
    match sent {
        Ok(_) => counters.sent += 1,
        Err(_) => counters.send_errors += 1,
    }
}

/// A non-blocking UDP socket bound to `addr` (`reuse`: with `SO_REUSEPORT`,
/// so that a connected sibling can share its port; only sockets of this
/// process's user can join it).
fn media_socket(addr: SocketAddr, recv_buffer: usize, reuse: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_recv_buffer_size(recv_buffer)?;
    s.set_nonblocking(true)?;
    if reuse {
        s.set_reuse_port(true)?;
    }
    s.bind(&addr.into())?;
    Ok(s)
}
