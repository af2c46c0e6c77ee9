//! The relay under load over real UDP on loopback.
//!
//! N calls, each a "phone" and a "bridge" endpoint of this process sending
//! 50 packets/s each way (172-byte RTP: 12-byte header + 160-byte G.711
//! payload), through one of:
//! - `direct`: no relay, the endpoints send to each other (the baseline
//!   that "added latency" is measured against);
//! - `dialgate`: dialgate's relay in a child process (`bench relay-server`);
//! - `dialgate-tokio` (on request): the same relay core under a tokio
//!   current-thread runtime, to measure the I/O model choice;
//! - `floor-recvfrom`, `floor-mmsg`, `floor-connected`,
//!   `floor-mmsg-connected`: the floor, a bare forwarder with no crypto in
//!   a child process (`bench floor-server`, `floor.rs`), in four syscall
//!   patterns; its packets pass through unchanged, so each endpoint
//!   decrypts with its peer's key, as for `direct`;
//! - `rtpengine`: Debian's rtpengine in userspace mode (`--table=-1`), set
//!   up over its ng control protocol so that it decrypts and re-encrypts
//!   with different keys on each side.
//!
//! Both relays get the same suites: leg A AES_CM_128_HMAC_SHA1_80, leg B
//! AES_CM_128_HMAC_SHA1_32 (rtpengine 10.5 passes SRTP through untouched
//! when both legs use the same suite; see tests/src/rtpengine.rs).
//!
//! Figures: relay CPU time (sum over the relay's threads, from
//! /proc/PID/task/*/schedstat) per million relayed packets over the
//! measured window; packets lost (sent in the window, not received);
//! end-to-end latency p50/p99/max, and the added latency over `direct`;
//! RSS of the relay process idle and per call; system-wide busy CPU time
//! (/proc/stat, irq and softirq included) less the load generator's own,
//! per million relayed packets, and the VM's steal time over the window;
//! then every figure of each relay as a multiple of the floor's (the
//! `recvfrom` variant, the relay's syscall pattern, and the cheapest
//! floor variant measured).
//!
//! CPU placement (`--pin`, the default on two or more cores): the load
//! generator runs on CPU 0 and the relay under test (either one) on CPU 1,
//! as on the appliance, where the load comes from the network and the relay
//! has the machine to itself. `--no-pin` lets the scheduler place them.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use dialgate::srtp::{MasterKey, Protector, Suite, Unprotector};
use dialgate_tests::libsrtp::hex;
use dialgate_tests::rtpengine::{self, CryptoLine, NgClient};
use mio::{Events, Interest, Poll, Token};

use super::floor;
use super::procstat::CpuTimes;

mod multiples;
mod target;
use multiples::{print_multiples, Row};
use target::Target;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PKT: usize = 172;
const PERIOD: Duration = Duration::from_millis(20);
const A_SUITE: Suite = Suite::AesCm128HmacSha1_80;
const B_SUITE: Suite = Suite::AesCm128HmacSha1_32;
/// Latency histogram: 1 µs buckets up to 1 s.
const HIST_BUCKETS: usize = 1_000_000;

/// One call's endpoints: where each sends and which keys it uses.
struct CallEnds {
    phone: UdpSocket,
    bridge: UdpSocket,
    phone_dest: SocketAddr,
    bridge_dest: SocketAddr,
    phone_send: MasterKey,
    phone_recv: MasterKey,
    bridge_send: MasterKey,
    bridge_recv: MasterKey,
}

/// The relay under test, if it is a process.
struct Relay {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    ng: Option<NgClient>,
}

impl Relay {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// One line to a `bench *-server` child, its one-line answer.
    fn request(&mut self, line: &str) -> Result<String, String> {
        let stdin = self.stdin.as_mut().ok_or("no relay stdin")?;
        writeln!(stdin, "{line}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut reply = String::new();
        self.stdout
            .as_mut()
            .ok_or("no relay stdout")?
            .read_line(&mut reply)
            .map_err(|e| e.to_string())?;
        Ok(reply)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Pins every thread of `pid` (present and future) to `cpu` with taskset.
fn pin(pid: u32, cpu: usize) -> Result<(), String> {
    let st = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset (util-linux): {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("taskset could not pin {pid} to CPU {cpu}"))
    }
}

fn start(target: Target, pinned: bool) -> Result<Relay, String> {
    let relay = start_unpinned(target)?;
    if pinned {
        if let Some(pid) = relay.pid() {
            pin(pid, 1)?;
        }
    }
    Ok(relay)
}

fn start_unpinned(target: Target) -> Result<Relay, String> {
    match target {
        Target::Direct => Ok(Relay {
            child: None,
            stdin: None,
            stdout: None,
            ng: None,
        }),
        Target::Dialgate
        | Target::DialgateConnected
        | Target::DialgateBusyPoll
        | Target::DialgateTokio
        | Target::Floor(_) => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let (server, flag, io) = match target {
                Target::Dialgate => ("relay-server", "--io", "mio"),
                Target::DialgateConnected => ("relay-server", "--io", "mio-connected"),
                Target::DialgateBusyPoll => ("relay-server", "--io", "mio-busy-poll"),
                Target::Floor(m) => ("floor-server", "--mode", m.arg()),
                _ => ("relay-server", "--io", "tokio"),
            };
            // The same ports for every relay: 20000-29999 (the demo's tests
            // use 30000-30999, rtpengine here 40000-47999).
            let mut child = Command::new(exe)
                .args([
                    server,
                    "--port-min",
                    "20000",
                    "--port-max",
                    "29999",
                    flag,
                    io,
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("starting relay-server: {e}"))?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().map(BufReader::new);
            std::thread::sleep(Duration::from_millis(300));
            Ok(Relay {
                child: Some(child),
                stdin,
                stdout,
                ng: None,
            })
        }
        Target::Rtpengine => {
            let ng_addr: SocketAddr = "127.0.0.1:22222".parse().map_err(|_| "addr")?;
            let child = Command::new("rtpengine")
                .args([
                    "--config-file=none",
                    "--foreground",
                    "--table=-1",
                    "--interface=127.0.0.1",
                    "--listen-ng=127.0.0.1:22222",
                    "--port-min=40000",
                    // 4 ports per call (RTP and RTCP on each side), 2,000 calls.
                    "--port-max=47999",
                    // One packet thread, as dialgate's one relay thread.
                    "--num-threads=1",
                    "--media-num-threads=0",
                    "--delete-delay=0",
                    "--timeout=60",
                    "--log-level=4",
                    "--log-stderr",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!("starting rtpengine (apt-get install rtpengine-daemon): {e}")
                })?;
            let mut relay = Relay {
                child: Some(child),
                stdin: None,
                stdout: None,
                ng: None,
            };
            let mut ng =
                NgClient::new(ng_addr, Duration::from_millis(300)).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while ng.ping().is_err() {
                if Instant::now() > deadline {
                    return Err("rtpengine did not answer ng ping within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            relay.ng = Some(ng);
            Ok(relay)
        }
    }
}

fn bind() -> Result<UdpSocket, String> {
    let s = UdpSocket::bind((LO, 0)).map_err(|e| format!("bind: {e}"))?;
    Ok(s)
}

fn gen(suite: Suite) -> Result<MasterKey, String> {
    MasterKey::generate(suite).map_err(|e| e.to_string())
}

fn b64(k: &MasterKey) -> String {
    STANDARD.encode(k.key_and_salt())
}

fn from_b64(suite: Suite, s: &str) -> Result<MasterKey, String> {
    let bytes = STANDARD.decode(s).map_err(|e| e.to_string())?;
    MasterKey::new(suite, &bytes).map_err(|e| e.to_string())
}

fn setup_call(relay: &mut Relay, target: Target, i: usize) -> Result<CallEnds, String> {
    let phone = bind()?;
    let bridge = bind()?;
    let pa = phone.local_addr().map_err(|e| e.to_string())?;
    let ba = bridge.local_addr().map_err(|e| e.to_string())?;
    match target {
        Target::Direct => {
            let k_pb = gen(A_SUITE)?;
            let k_bp = gen(A_SUITE)?;
            Ok(CallEnds {
                phone,
                bridge,
                phone_dest: ba,
                bridge_dest: pa,
                phone_send: k_pb.clone(),
                bridge_recv: k_pb,
                bridge_send: k_bp.clone(),
                phone_recv: k_bp,
            })
        }
        Target::Floor(_) => {
            let k_pb = gen(A_SUITE)?;
            let k_bp = gen(A_SUITE)?;
            let reply = relay.request(&format!("CALL {pa} {ba}"))?;
            let f: Vec<&str> = reply.split_whitespace().collect();
            let (Some(&"OK"), Some(p), Some(q)) = (f.first(), f.get(1), f.get(2)) else {
                return Err(format!("floor-server: {reply}"));
            };
            let port = |s: &str| s.parse::<u16>().map_err(|_| format!("bad port {s}"));
            Ok(CallEnds {
                phone,
                bridge,
                phone_dest: SocketAddr::new(LO, port(p)?),
                bridge_dest: SocketAddr::new(LO, port(q)?),
                phone_send: k_pb.clone(),
                bridge_recv: k_pb,
                bridge_send: k_bp.clone(),
                phone_recv: k_bp,
            })
        }
        Target::Dialgate
        | Target::DialgateConnected
        | Target::DialgateBusyPoll
        | Target::DialgateTokio => {
            let (a_in, a_out, b_in, b_out) =
                (gen(A_SUITE)?, gen(A_SUITE)?, gen(B_SUITE)?, gen(B_SUITE)?);
            let line = format!(
                "CALL {pa} {ba} {} {} {} {}\n",
                hex(a_in.key_and_salt()),
                hex(a_out.key_and_salt()),
                hex(b_in.key_and_salt()),
                hex(b_out.key_and_salt())
            );
            let stdin = relay.stdin.as_mut().ok_or("no relay stdin")?;
            stdin
                .write_all(line.as_bytes())
                .map_err(|e| e.to_string())?;
            stdin.flush().map_err(|e| e.to_string())?;
            let mut reply = String::new();
            relay
                .stdout
                .as_mut()
                .ok_or("no relay stdout")?
                .read_line(&mut reply)
                .map_err(|e| e.to_string())?;
            let f: Vec<&str> = reply.split_whitespace().collect();
            let (Some(&"OK"), Some(p), Some(q)) = (f.first(), f.get(1), f.get(2)) else {
                return Err(format!("relay-server: {reply}"));
            };
            let port = |s: &str| s.parse::<u16>().map_err(|_| format!("bad port {s}"));
            Ok(CallEnds {
                phone,
                bridge,
                phone_dest: SocketAddr::new(LO, port(p)?),
                bridge_dest: SocketAddr::new(LO, port(q)?),
                phone_send: a_in,
                phone_recv: a_out,
                bridge_send: b_in,
                bridge_recv: b_out,
            })
        }
        Target::Rtpengine => {
            let ng = relay.ng.as_mut().ok_or("no ng client")?;
            let call_id = format!("bench-{i}");
            let phone_send = gen(A_SUITE)?;
            let bridge_send = gen(B_SUITE)?;
            let sdp_a = rtpengine::endpoint_sdp(
                i as u64,
                pa.port(),
                &[CryptoLine {
                    tag: 1,
                    suite: A_SUITE.name().into(),
                    key_b64: b64(&phone_send),
                }],
            );
            let to_b = ng.offer(&call_id, "A", &sdp_a).map_err(|e| e.to_string())?;
            let offered = rtpengine::pick_crypto(&to_b, B_SUITE.name())
                .ok_or("rtpengine offered no _32 line")?;
            let b_port = rtpengine::audio_port(&to_b).ok_or("no port in rtpengine offer")?;
            let sdp_b = rtpengine::endpoint_sdp(
                i as u64,
                ba.port(),
                &[CryptoLine {
                    tag: offered.tag,
                    suite: B_SUITE.name().into(),
                    key_b64: b64(&bridge_send),
                }],
            );
            let to_a = ng
                .answer(&call_id, "A", "B", &sdp_b)
                .map_err(|e| e.to_string())?;
            let answered = rtpengine::pick_crypto(&to_a, A_SUITE.name())
                .ok_or("rtpengine answered no _80 line")?;
            let a_port = rtpengine::audio_port(&to_a).ok_or("no port in rtpengine answer")?;
            let phone_recv = from_b64(A_SUITE, &answered.key_b64)?;
            let bridge_recv = from_b64(B_SUITE, &offered.key_b64)?;
            if phone_recv.key_and_salt() == phone_send.key_and_salt()
                || bridge_recv.key_and_salt() == bridge_send.key_and_salt()
            {
                return Err("rtpengine did not re-key: it would pass SRTP through".into());
            }
            Ok(CallEnds {
                phone,
                bridge,
                phone_dest: SocketAddr::new(LO, a_port),
                bridge_dest: SocketAddr::new(LO, b_port),
                phone_send,
                phone_recv,
                bridge_send,
                bridge_recv,
            })
        }
    }
}

/// CPU time of every thread of `pid`, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let dir = format!("/proc/{pid}/task");
    let mut ns: u64 = 0;
    for t in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let t = t.map_err(|e| e.to_string())?;
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    Ok(ns as f64 / 1e9)
}

/// Resident set size of `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64, String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

struct Sender {
    sock: UdpSocket,
    dest: SocketAddr,
    tx: Protector,
    ssrc: u32,
    seq: u16,
}

#[derive(Default)]
struct Outcome {
    sent_measured: u64,
    received_measured: u64,
    received_total: u64,
    bad_packets: u64,
    hist: Vec<u32>,
    max_ns: u64,
}

impl Outcome {
    fn percentile_us(&self, p: f64) -> f64 {
        let total: u64 = self.hist.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return f64::NAN;
        }
        let want = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0u64;
        for (us, &c) in self.hist.iter().enumerate() {
            acc += u64::from(c);
            if acc >= want {
                return us as f64;
            }
        }
        (HIST_BUCKETS - 1) as f64
    }
}

struct RunResult {
    target: Target,
    calls: usize,
    outcome: Outcome,
    cpu_s: Option<f64>,
    /// System-wide busy CPU seconds over the window, less the generator's.
    sys_s: Option<f64>,
    /// Steal's share of all CPU time over the window.
    steal: Option<f64>,
    rss_idle_kib: Option<u64>,
    rss_loaded_kib: Option<u64>,
    window_s: f64,
}

fn run_one(
    target: Target,
    calls: usize,
    warmup: Duration,
    window: Duration,
    pinned: bool,
) -> Result<RunResult, String> {
    let mut relay = start(target, pinned)?;
    let rss_idle = relay.pid().map(rss_kib).transpose()?;
    let mut ends = Vec::with_capacity(calls);
    for i in 0..calls {
        ends.push(setup_call(&mut relay, target, i)?);
    }
    if let Target::Floor(_) = target {
        let reply = relay.request("GO")?;
        if reply.trim() != "OK" {
            return Err(format!("floor-server: {reply}"));
        }
    }
    // Endpoint k: 2i is call i's phone, 2i+1 its bridge.
    let mut senders = Vec::with_capacity(2 * calls);
    let mut receivers: Vec<(mio::net::UdpSocket, Unprotector)> = Vec::with_capacity(2 * calls);
    for (i, e) in ends.into_iter().enumerate() {
        for (sock, dest, send, recv) in [
            (e.phone, e.phone_dest, e.phone_send, e.phone_recv),
            (e.bridge, e.bridge_dest, e.bridge_send, e.bridge_recv),
        ] {
            let clone = sock.try_clone().map_err(|e| e.to_string())?;
            sock.set_nonblocking(true).map_err(|e| e.to_string())?;
            senders.push(Sender {
                sock: clone,
                dest,
                tx: Protector::new(&send).map_err(|e| e.to_string())?,
                ssrc: 0x1000_0000 + (2 * i + senders.len() % 2) as u32,
                seq: 0,
            });
            receivers.push((
                mio::net::UdpSocket::from_std(sock),
                Unprotector::new(&recv).map_err(|e| e.to_string())?,
            ));
        }
    }
    // One generator thread, pinned to its own CPU, busy-polling: it sends
    // whatever is due (each endpoint every 20 ms, spread evenly) and reads
    // whatever has arrived, never sleeping. Nothing blocks on the receiving
    // sockets, so the relay's sends are not charged for waking a sleeping
    // peer, a loopback artefact (a real phone is on another host).
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    for (k, (s, _)) in receivers.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(k), Interest::READABLE)
            .map_err(|e| e.to_string())?;
    }
    let mut outcome = Outcome {
        hist: vec![0; HIST_BUCKETS],
        ..Outcome::default()
    };
    let mut events = Events::with_capacity(4096);
    let epoch = Instant::now();
    let measure_from = warmup;
    let measure_to = warmup + window;
    let n_end = senders.len();
    let gap_ns = PERIOD.as_nanos() as u64 / n_end as u64;
    let end_ns = measure_to.as_nanos() as u64;
    let drain_ns = end_ns + 500_000_000;
    let mut k: u64 = 0;
    let mut buf = [0u8; 2048];
    let mut cpu_start = None;
    let mut cpu_end = None;
    // (system-wide, the generator's own CPU seconds) at each end.
    let mut sys_start: Option<(CpuTimes, f64)> = None;
    let mut sys_end: Option<(CpuTimes, f64)> = None;
    let me = std::process::id();
    let mut rss_loaded = None;
    loop {
        let now_ns = epoch.elapsed().as_nanos() as u64;
        if cpu_start.is_none() && now_ns >= measure_from.as_nanos() as u64 {
            cpu_start = Some(relay.pid().map(cpu_seconds).transpose()?);
            sys_start = Some((CpuTimes::read()?, cpu_seconds(me)?));
        }
        if now_ns >= end_ns && cpu_end.is_none() {
            cpu_end = Some(relay.pid().map(cpu_seconds).transpose()?);
            sys_end = Some((CpuTimes::read()?, cpu_seconds(me)?));
            rss_loaded = relay.pid().map(rss_kib).transpose()?;
        }
        if now_ns >= drain_ns {
            break;
        }
        while now_ns < end_ns && k * gap_ns <= now_ns {
            let s = &mut senders[(k % n_end as u64) as usize];
            buf[..PKT].fill(0x5a);
            buf[0] = 0x80;
            buf[1] = 0;
            buf[2..4].copy_from_slice(&s.seq.to_be_bytes());
            buf[4..8].copy_from_slice(&(u32::from(s.seq) * 160).to_be_bytes());
            buf[8..12].copy_from_slice(&s.ssrc.to_be_bytes());
            let t = epoch.elapsed();
            let measured = t >= measure_from && t < measure_to;
            buf[12..20].copy_from_slice(&(t.as_nanos() as u64).to_be_bytes());
            buf[20] = u8::from(measured);
            s.seq = s.seq.wrapping_add(1);
            let p = s.tx.protect_rtp(&mut buf, PKT).map_err(|e| e.to_string())?;
            if s.sock.send_to(p.as_bytes(), s.dest).is_ok() && measured {
                outcome.sent_measured += 1;
            }
            k += 1;
        }
        poll.poll(&mut events, Some(Duration::ZERO))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let (sock, rx) = &mut receivers[ev.token().0];
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                let now_ns = epoch.elapsed().as_nanos() as u64;
                let Ok(m) = rx.unprotect_rtp(&mut buf, n) else {
                    outcome.bad_packets += 1;
                    continue;
                };
                if m != PKT {
                    outcome.bad_packets += 1;
                    continue;
                }
                outcome.received_total += 1;
                let sent_ns = u64::from_be_bytes(buf[12..20].try_into().unwrap_or([0; 8]));
                if buf[20] == 1 {
                    outcome.received_measured += 1;
                    let lat = now_ns.saturating_sub(sent_ns);
                    outcome.max_ns = outcome.max_ns.max(lat);
                    outcome.hist[((lat / 1000) as usize).min(HIST_BUCKETS - 1)] += 1;
                }
            }
        }
    }
    let cpu_end = cpu_end.flatten();
    let cpu_s = match (cpu_start.flatten(), cpu_end) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let (sys_s, steal) = match (sys_start, sys_end) {
        (Some((a, ga)), Some((b, gb))) => (
            Some((a.busy_s(&b) - (gb - ga)).max(0.0)),
            Some(a.steal_share(&b)),
        ),
        _ => (None, None),
    };
    Ok(RunResult {
        target,
        calls,
        outcome,
        cpu_s,
        sys_s,
        steal,
        rss_idle_kib: rss_idle,
        rss_loaded_kib: rss_loaded,
        window_s: window.as_secs_f64(),
    })
}

pub fn run(opts: &[String]) -> Result<(), String> {
    let calls: Vec<usize> = super::opt(opts, "--calls")
        .unwrap_or("100,1000")
        .split(',')
        .map(|c| c.parse().map_err(|_| format!("bad --calls {c}")))
        .collect::<Result<_, _>>()?;
    let secs = |name: &str, d: u64| -> Result<Duration, String> {
        super::opt(opts, name)
            .map(|s| s.parse::<u64>().map_err(|_| format!("bad {name}")))
            .transpose()
            .map(|v| Duration::from_secs(v.unwrap_or(d)))
    };
    let window = secs("--seconds", 20)?;
    let warmup = secs("--warmup", 3)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = cores >= 2 && !opts.iter().any(|o| o == "--no-pin");
    if pinned {
        // Before any thread exists, so the generator's threads inherit it.
        pin(std::process::id(), 0)?;
    }
    let targets: Vec<Target> = super::opt(opts, "--targets")
        .unwrap_or(DEFAULT_TARGETS)
        .split(',')
        .map(Target::parse)
        .collect::<Result<_, _>>()?;
    println!(
        "relay under load on loopback: 50 packets/s per direction per call, 172-byte RTP (160-byte G.711), \
         leg A {} / leg B {}, {} s warm-up, {} s measured, {}; load average at start: {}",
        A_SUITE.name(),
        B_SUITE.name(),
        warmup.as_secs(),
        window.as_secs(),
        if pinned {
            "load generator pinned to CPU 0, relay to CPU 1"
        } else {
            "no CPU pinning"
        },
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "(CPU: the relay process's threads; sys CPU: all CPUs' busy time incl. irq/softirq, less the load generator's; \
         steal: the VM's steal time, share of all CPU time in the window)"
    );
    for &n in &calls {
        println!();
        println!(
            "{:>5} calls {:<18} {:>10} {:>6} {:>11} {:>11} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
            n,
            "target",
            "relayed",
            "lost",
            "CPU s/Mpkt",
            "sys s/Mpkt",
            "steal",
            "p50 us",
            "p99 us",
            "max us",
            "+p50 us",
            "+p99 us",
            "RSS idle",
            "RSS/call"
        );
        let mut base: Option<(f64, f64)> = None;
        let mut rows: Vec<Row> = Vec::new();
        for &t in &targets {
            let r = run_one(t, n, warmup, window, pinned)?;
            let o = &r.outcome;
            let (p50, p99) = (o.percentile_us(0.50), o.percentile_us(0.99));
            if t == Target::Direct {
                base = Some((p50, p99));
            }
            let lost = o.sent_measured.saturating_sub(o.received_measured);
            let mpkts = o.received_measured as f64 / 1e6;
            let row = Row {
                target: t,
                cpu: r.cpu_s.map(|c| c / mpkts),
                sys: r.sys_s.map(|c| c / mpkts),
                add50: base.filter(|_| t != Target::Direct).map(|b| p50 - b.0),
                add99: base.filter(|_| t != Target::Direct).map(|b| p99 - b.1),
                lost,
            };
            let fmt = |v: Option<f64>, prec: usize| {
                v.map(|v| format!("{v:.prec$}"))
                    .unwrap_or_else(|| "-".into())
            };
            let rss_idle = r
                .rss_idle_kib
                .map(|k| format!("{:.1} MB", k as f64 / 1024.0))
                .unwrap_or_else(|| "-".into());
            let per_call = match (r.rss_idle_kib, r.rss_loaded_kib) {
                (Some(a), Some(b)) => {
                    format!("{:.1} KB", (b.saturating_sub(a)) as f64 / r.calls as f64)
                }
                _ => "-".into(),
            };
            println!(
                "{:>5}       {:<18} {:>10} {:>6} {:>11} {:>11} {:>6} {:>8.0} {:>8.0} {:>8.0} {:>9} {:>9} {:>9} {:>9}",
                "",
                r.target.name(),
                o.received_measured,
                lost,
                fmt(row.cpu, 2),
                fmt(row.sys, 2),
                r.steal
                    .map(|s| format!("{:.1}%", s * 100.0))
                    .unwrap_or_else(|| "-".into()),
                p50,
                p99,
                o.max_ns as f64 / 1000.0,
                fmt(row.add50, 0),
                fmt(row.add99, 0),
                rss_idle,
                per_call
            );
            if o.bad_packets > 0 {
                println!(
                    "            ({} received packets failed to authenticate)",
                    o.bad_packets
                );
            }
            let expected = (2 * n) as f64 * 50.0 * r.window_s;
            if (o.sent_measured as f64) < expected * 0.98 {
                println!(
                    "            (load generator sent only {} of {:.0} packets: it, not the relay, was the limit)",
                    o.sent_measured, expected
                );
            }
            rows.push(row);
        }
        print_multiples(n, &rows);
    }
    Ok(())
}

const DEFAULT_TARGETS: &str = "direct,floor-recvfrom,floor-mmsg,floor-connected,\
                               floor-mmsg-connected,dialgate,dialgate-connected,dialgate-busy-poll,dialgate-tokio,rtpengine";
