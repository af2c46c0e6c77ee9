//! `bench floor-server`: the floor of the relay benchmark, a bare
//! user-space UDP forwarder with no crypto and no relay core, on the same
//! traffic and the same port pattern as dialgate's relay (an RTP and an
//! RTCP port per leg, 4 ports per call from 20000 up, 256 KiB receive
//! buffers, one mio thread, edge-triggered readiness). Every relay figure
//! can then be read as a multiple of what the kernel's UDP path alone costs
//! on this machine. Variants (`--mode`):
//!
//! - `recvfrom`: `recvfrom` until `EAGAIN` and one `sendto` per packet,
//!   the relay's syscall pattern today (one empty read per wake-up);
//! - `mmsg`: one `recvmmsg` per wake-up (a short batch means the queue is
//!   drained, so no empty read) and one `sendmmsg` per batch;
//! - `connected`: each leg's sockets `connect()`ed to their peer, then
//!   `recv` until `EAGAIN` and `send` (no per-packet route lookup or
//!   address copy);
//! - `mmsg-connected`: both.
//!
//! Line protocol on stdin/stdout: `CALL <phone addr> <bridge addr>` answers
//! `OK <leg A port> <leg B port>` (leg A faces the phone, leg B the
//! bridge); `GO` answers `OK` and forwards until the process is ended.

use std::io::{self, BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;

use dialgate_board::mmsg::{recv_batch, send_batch, MAX_BATCH};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

/// The relay's SO_RCVBUF (`NetConfig::default().recv_buffer`).
const RECV_BUFFER: usize = 256 * 1024;
/// The relay's receive buffer (`BUF_LEN` in gateway/src/relay/net.rs).
const SLOT: usize = 2048;
/// The relay's datagrams per socket per round (`relay::net::BATCH`).
const BATCH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    RecvFrom,
    Mmsg,
    Connected,
    MmsgConnected,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "recvfrom" => Some(Mode::RecvFrom),
            "mmsg" => Some(Mode::Mmsg),
            "connected" => Some(Mode::Connected),
            "mmsg-connected" => Some(Mode::MmsgConnected),
            _ => None,
        }
    }

    pub fn arg(self) -> &'static str {
        match self {
            Mode::RecvFrom => "recvfrom",
            Mode::Mmsg => "mmsg",
            Mode::Connected => "connected",
            Mode::MmsgConnected => "mmsg-connected",
        }
    }

    fn connected(self) -> bool {
        matches!(self, Mode::Connected | Mode::MmsgConnected)
    }

    fn batched(self) -> bool {
        matches!(self, Mode::Mmsg | Mode::MmsgConnected)
    }
}

/// One bound port: where what it receives goes (out of which port, to
/// which address; a connected `out` is already connected to `dest`).
#[derive(Debug)]
struct Port {
    sock: UdpSocket,
    out: usize,
    dest: SocketAddr,
}

#[derive(Debug)]
struct Floor {
    mode: Mode,
    poll: Poll,
    ports: Vec<Port>,
    next_port: u16,
    port_max: u16,
}

impl Floor {
    fn bind(&mut self, port: u16) -> io::Result<UdpSocket> {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_recv_buffer_size(RECV_BUFFER)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        Ok(UdpSocket::from_std(s.into()))
    }

    /// An even RTP port and the RTCP port above it, as the relay allocates
    /// them; a pair another program holds is skipped.
    fn pair(&mut self) -> io::Result<(UdpSocket, UdpSocket)> {
        while self.next_port < self.port_max {
            let p = self.next_port;
            self.next_port += 2;
            match (self.bind(p), self.bind(p + 1)) {
                (Ok(a), Ok(b)) => return Ok((a, b)),
                (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::AddrInUse => continue,
                (Err(e), _) | (_, Err(e)) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "ports exhausted",
        ))
    }

    fn add_call(&mut self, phone: SocketAddr, bridge: SocketAddr) -> io::Result<(u16, u16)> {
        let (a_rtp, a_rtcp) = self.pair()?;
        let (b_rtp, b_rtcp) = self.pair()?;
        let ports = (a_rtp.local_addr()?.port(), b_rtp.local_addr()?.port());
        let rtcp = |a: SocketAddr| SocketAddr::new(a.ip(), a.port() + 1);
        let base = self.ports.len();
        // Leg A (base, base + 1) faces the phone, leg B (base + 2, base + 3)
        // the bridge; each port sends what it hears out of the other leg's
        // port of the same kind.
        let legs = [
            (a_rtp, base + 2, bridge, phone),
            (a_rtcp, base + 3, rtcp(bridge), rtcp(phone)),
            (b_rtp, base, phone, bridge),
            (b_rtcp, base + 1, rtcp(phone), rtcp(bridge)),
        ];
        for (i, (mut sock, out, dest, peer)) in legs.into_iter().enumerate() {
            if self.mode.connected() {
                sock.connect(peer)?;
            }
            self.poll
                .registry()
                .register(&mut sock, Token(base + i), Interest::READABLE)?;
            self.ports.push(Port { sock, out, dest });
        }
        Ok(ports)
    }

    fn forward(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; SLOT * MAX_BATCH];
        let mut lens = [0usize; MAX_BATCH];
        let mut srcs = [None; MAX_BATCH];
        let mut ready = std::collections::VecDeque::new();
        let mut queued = vec![false; self.ports.len()];
        loop {
            let timeout = (!ready.is_empty()).then_some(std::time::Duration::ZERO);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if !queued[i] {
                    queued[i] = true;
                    ready.push_back(i);
                }
            }
            // One round over the ready sockets, a batch each, as the relay.
            for _ in 0..ready.len() {
                let Some(i) = ready.pop_front() else { break };
                let more = if self.mode.batched() {
                    self.serve_batch(i, &mut buf, &mut lens, &mut srcs)
                } else {
                    self.serve_one_by_one(i, &mut buf[..SLOT])
                };
                if more {
                    ready.push_back(i);
                } else {
                    queued[i] = false;
                }
            }
        }
    }

    /// Up to BATCH datagrams, one syscall each way per datagram; true if
    /// the socket may have more.
    fn serve_one_by_one(&self, i: usize, buf: &mut [u8]) -> bool {
        let port = &self.ports[i];
        let out = &self.ports[port.out];
        for _ in 0..BATCH {
            let got = if self.mode.connected() {
                port.sock.recv(buf)
            } else {
                port.sock.recv_from(buf).map(|(n, _)| n)
            };
            let n = match got {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => continue,
            };
            let _ = if self.mode.connected() {
                out.sock.send(&buf[..n])
            } else {
                out.sock.send_to(&buf[..n], port.dest)
            };
        }
        true
    }

    /// One recvmmsg and one sendmmsg; true if the batch was full (the
    /// socket may have more).
    fn serve_batch(
        &self,
        i: usize,
        buf: &mut [u8],
        lens: &mut [usize],
        srcs: &mut [Option<SocketAddr>],
    ) -> bool {
        let port = &self.ports[i];
        let out = &self.ports[port.out];
        let want = BATCH.min(lens.len());
        let n = match recv_batch(port.sock.as_fd(), buf, SLOT, &mut lens[..want], srcs) {
            Ok(n) => n,
            Err(_) => return false,
        };
        let dest = (!self.mode.connected()).then_some(port.dest);
        let mut sent = 0;
        while sent < n {
            match send_batch(
                out.sock.as_fd(),
                &buf[sent * SLOT..],
                SLOT,
                &lens[sent..n],
                dest,
            ) {
                Ok(k) if k > 0 => sent += k,
                // A full socket buffer or an unreachable peer: the rest of
                // the batch is dropped, as a relay would.
                _ => break,
            }
        }
        n == want
    }
}

pub fn run(opts: &[String]) -> Result<(), String> {
    let mode = super::opt(opts, "--mode")
        .map(|m| Mode::parse(m).ok_or(format!("unknown --mode {m}")))
        .transpose()?
        .unwrap_or(Mode::RecvFrom);
    let port = |name: &str, default: u16| -> Result<u16, String> {
        super::opt(opts, name)
            .map(|s| s.parse().map_err(|_| format!("bad {name}")))
            .transpose()
            .map(|p| p.unwrap_or(default))
    };
    let mut floor = Floor {
        mode,
        poll: Poll::new().map_err(|e| e.to_string())?,
        ports: Vec::new(),
        next_port: port("--port-min", 20000)? & !1,
        port_max: port("--port-max", 29999)?,
    };
    let stdin = io::stdin();
    let mut out = io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let reply = match f.as_slice() {
            ["CALL", phone, bridge] => match (phone.parse(), bridge.parse()) {
                (Ok(p), Ok(b)) => match floor.add_call(p, b) {
                    Ok((a, b)) => format!("OK {a} {b}"),
                    Err(e) => format!("ERR {e}"),
                },
                _ => "ERR bad address".to_string(),
            },
            ["GO"] => {
                writeln!(out, "OK").map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
                return floor.forward().map_err(|e| e.to_string());
            }
            _ => "ERR unknown command".to_string(),
        };
        writeln!(out, "{reply}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}
