//! `bench calls --media-seconds S`: the media of one benchmark call.
//!
//! After the ACK, the phone sends SRTP (the suite and key of its SDES
//! offer) from the UDP socket whose port its offer's `m=` line names, to
//! the address and port of the gateway's 200 answer: 172-byte RTP packets
//! (160-byte payload), 50 a second, for S seconds. The gateway relays them
//! to the echo bridge, which sends them back; the gateway re-encrypts the
//! echo under the key of its answer's `a=crypto`, and the phone unprotects
//! it with that key. Each payload carries a marker, the call number and
//! the packet's index, so that every packet is accounted for:
//!
//! - **received**: came back, authenticated, with this call's marker;
//! - **muted**: did not come back and was sent before the last frame of
//!   the gateway's own "secure" tone arrived. The gateway plays that tone
//!   (400 ms) when a G.711 call comes up and drops the bridge's audio
//!   towards the phone meanwhile, by design (`relay::Relay::play`);
//! - **lost**: did not come back otherwise, whatever the reason (dropped,
//!   or came back and failed to authenticate).
//!
//! Packets that fail to unprotect are also counted apart (`auth_failed`,
//! `replayed`), as are the tone's frames and anything authenticated that
//! is neither (`foreign`: another call's packet would be a routing bug).
//! After the last packet the phone waits up to [`DRAIN`] for echoes still
//! in flight, then the caller sends BYE.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialgate::sdp::SessionDescription;
use dialgate::srtp::{self, is_rtcp, parse_inline, MasterKey, Protector, Suite, Unprotector};
use tokio::net::UdpSocket;

/// RTP packet size: 12-byte header and a 160-byte payload (20 ms of G.711).
const PKT: usize = 172;
/// One packet every 20 ms: 50 a second.
const PERIOD: Duration = Duration::from_millis(20);
/// How long to wait after the last packet for echoes still in flight.
pub const DRAIN: Duration = Duration::from_millis(250);
/// Marks the benchmark's own payloads (the secure tone is G.711 audio).
const MAGIC: [u8; 4] = *b"dgbm";
/// The payload type sent: PCMU, as offered.
const PT_PCMU: u8 = 0;

/// What happened to one call's media (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct MediaStats {
    /// Packets sent to the gateway.
    pub sent: u64,
    /// Sent packets that came back authenticated (each counted once).
    pub received: u64,
    /// Sent packets that did not come back, sent while the secure tone
    /// played.
    pub muted: u64,
    /// Sent packets that did not come back otherwise.
    pub lost: u64,
    /// Packets received that failed to authenticate (or were malformed).
    pub auth_failed: u64,
    /// Packets received that the replay check refused (duplicates).
    pub replayed: u64,
    /// The gateway's own frames received (the secure tone), authenticated.
    pub tone: u64,
    /// Authenticated packets that are neither ours nor the tone: another
    /// call's, or RTCP.
    pub foreign: u64,
}

impl MediaStats {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &MediaStats) {
        self.sent += o.sent;
        self.received += o.received;
        self.muted += o.muted;
        self.lost += o.lost;
        self.auth_failed += o.auth_failed;
        self.replayed += o.replayed;
        self.tone += o.tone;
        self.foreign += o.foreign;
    }
}

/// Where the phones' media sockets are bound: clear of the ports other
/// benchmarks and tests use on this machine (the relay benchmark's
/// 20000-29999, the demo gateway's 30000-39999, rtpengine's 40000-47999)
/// and of the ports `bench calls` without media offers but does not bind
/// (20000-39998, where the gateway still plays its secure tone): a stray
/// packet from another run would count as failing to authenticate.
const MEDIA_PORTS: (u16, u16) = (50000, 59998);

/// A UDP socket on 127.0.0.1 for call `n`'s media, on an even port in
/// [`MEDIA_PORTS`], so that its port can be put in the offer.
pub async fn bind(n: u64) -> Result<UdpSocket, String> {
    let (lo, hi) = MEDIA_PORTS;
    let slots = u64::from(hi - lo) / 2 + 1;
    let start = (u64::from(std::process::id()).wrapping_mul(7919) + n) % slots;
    let mut last_err = None;
    for k in 0..slots {
        let port = lo + (((start + k) % slots) * 2) as u16;
        match UdpSocket::bind(("127.0.0.1", port)).await {
            Ok(s) => return Ok(s),
            Err(e) => last_err = Some(e),
        }
    }
    Err(format!(
        "no free media port in {lo}-{hi}: {}",
        last_err.map_or_else(String::new, |e| e.to_string())
    ))
}

/// The gateway's media address and SRTP key from its 200's SDP.
fn answered(body: &[u8], suite: Suite) -> Result<(SocketAddr, MasterKey), String> {
    let sdp = SessionDescription::parse(body).map_err(|e| format!("the 200's SDP: {e}"))?;
    let m = sdp
        .media
        .iter()
        .find(|m| m.port != 0)
        .ok_or("the 200's SDP has no accepted media")?;
    let ip = m
        .connection
        .as_ref()
        .or(sdp.connection.as_ref())
        .and_then(|c| c.ip())
        .ok_or("the 200's SDP has no IP connection address")?;
    let crypto = m
        .crypto()
        .find(|c| Suite::from_name(&c.suite).is_ok_and(|s| s == suite))
        .ok_or_else(|| format!("the 200's SDP has no a=crypto for {}", suite.name()))?;
    let key = parse_inline(suite, crypto.key_params())
        .map_err(|e| format!("the 200's a=crypto key: {e}"))?;
    Ok((SocketAddr::new(ip, m.port), key))
}

/// Sends and receives call `n`'s media for `seconds` (see the module
/// documentation): `offered` is the key of the phone's offer, `answer`
/// the body of the gateway's 200.
pub async fn exchange(
    socket: &UdpSocket,
    offered: &MasterKey,
    answer: &[u8],
    seconds: f64,
    n: u64,
) -> Result<MediaStats, String> {
    let suite = offered.suite();
    let (dest, key) = answered(answer, suite)?;
    let mut tx = Protector::new(offered).map_err(|e| e.to_string())?;
    let mut rx = Unprotector::new(&key).map_err(|e| e.to_string())?;
    let total = (seconds * 1000.0 / PERIOD.as_millis() as f64).round() as usize;
    let ssrc = 0x6d00_0000 | (n as u32 & 0x00ff_ffff);
    let tag = n.to_be_bytes();
    let mut stats = MediaStats::default();
    let mut sent_at: Vec<Instant> = Vec::with_capacity(total);
    let mut echoed = vec![false; total];
    let mut last_tone: Option<Instant> = None;
    let mut tick = tokio::time::interval(PERIOD);
    let mut out = [0u8; PKT + 64];
    let mut buf = [0u8; 2048];
    let mut drain_until = None;
    loop {
        let deadline = drain_until.unwrap_or_else(|| tokio::time::Instant::now() + PERIOD * 2);
        tokio::select! {
            _ = tick.tick(), if sent_at.len() < total => {
                let i = sent_at.len();
                let seq = i as u16;
                out[..PKT].fill(0);
                out[0] = 0x80;
                out[1] = PT_PCMU | if i == 0 { 0x80 } else { 0 };
                out[2..4].copy_from_slice(&seq.to_be_bytes());
                out[4..8].copy_from_slice(&((i as u32) * 160).to_be_bytes());
                out[8..12].copy_from_slice(&ssrc.to_be_bytes());
                out[12..16].copy_from_slice(&MAGIC);
                out[16..24].copy_from_slice(&tag);
                out[24..28].copy_from_slice(&(i as u32).to_be_bytes());
                let p = tx.protect_rtp(&mut out, PKT).map_err(|e| e.to_string())?;
                sent_at.push(Instant::now());
                socket
                    .send_to(p.as_bytes(), dest)
                    .await
                    .map_err(|e| format!("media to {dest}: {e}"))?;
                stats.sent += 1;
                if sent_at.len() == total {
                    drain_until = Some(tokio::time::Instant::now() + DRAIN);
                }
            }
            r = socket.recv_from(&mut buf) => {
                let (len, _) = r.map_err(|e| format!("media from {dest}: {e}"))?;
                let now = Instant::now();
                if is_rtcp(&buf[..len]) {
                    match rx.unprotect_rtcp(&mut buf, len) {
                        Ok(_) => stats.foreign += 1,
                        Err(_) => stats.auth_failed += 1,
                    }
                    continue;
                }
                match rx.unprotect_rtp(&mut buf, len) {
                    Ok(m) if m == PKT && buf[12..16] == MAGIC && buf[16..24] == tag => {
                        let i = u32::from_be_bytes([buf[24], buf[25], buf[26], buf[27]]) as usize;
                        match echoed.get_mut(i) {
                            Some(e) if !*e && i < sent_at.len() => {
                                *e = true;
                                stats.received += 1;
                            }
                            _ => stats.foreign += 1,
                        }
                    }
                    Ok(m) if m >= 12 && buf[12..16] != MAGIC => {
                        stats.tone += 1;
                        last_tone = Some(now);
                    }
                    Ok(_) => stats.foreign += 1,
                    Err(srtp::Error::Replayed | srtp::Error::TooOld) => stats.replayed += 1,
                    Err(_) => stats.auth_failed += 1,
                }
            }
            _ = tokio::time::sleep_until(deadline), if drain_until.is_some() => break,
        }
        if sent_at.len() == total && outstanding(&sent_at, &echoed, last_tone) == 0 {
            break;
        }
    }
    for (at, &back) in sent_at.iter().zip(&echoed) {
        if back {
            continue;
        }
        if during_tone(*at, last_tone) {
            stats.muted += 1;
        } else {
            stats.lost += 1;
        }
    }
    Ok(stats)
}

/// Packets not back yet that are not explained by the secure tone.
fn outstanding(sent_at: &[Instant], echoed: &[bool], last_tone: Option<Instant>) -> usize {
    sent_at
        .iter()
        .zip(echoed)
        .filter(|(at, &back)| !back && !during_tone(**at, last_tone))
        .count()
}

/// Whether a packet sent at `at` went out before the last frame of the
/// secure tone came in (so the gateway may have muted its echo).
fn during_tone(at: Instant, last_tone: Option<Instant>) -> bool {
    last_tone.is_some_and(|t| at < t)
}

/// Prints the media figures of a run: per call (mean and worst) and in
/// total. Loss is always printed, zero or not.
pub fn report(per_call: &[MediaStats]) {
    let mut total = MediaStats::default();
    for m in per_call {
        total.add(m);
    }
    let calls = per_call.len().max(1) as f64;
    let worst_lost = per_call.iter().map(|m| m.lost).max().unwrap_or(0);
    let min_received = per_call.iter().map(|m| m.received).min().unwrap_or(0);
    let pct = |x: u64| x as f64 * 100.0 / total.sent.max(1) as f64;
    println!(
        "  media: SRTP {} from the offer's port to the answer's, {PKT}-byte RTP, 50 packets/s, echoed by the bridge, \
         re-encrypted by the gateway; packets \"muted\" did not come back while the gateway played its secure tone (by design)",
        Suite::AesCm128HmacSha1_80.name()
    );
    println!(
        "  media per call: sent {:.1} received back {:.1} (min {min_received}) muted {:.1} lost {:.2} (max {worst_lost}) secure-tone frames {:.1}",
        total.sent as f64 / calls,
        total.received as f64 / calls,
        total.muted as f64 / calls,
        total.lost as f64 / calls,
        total.tone as f64 / calls,
    );
    println!(
        "  media total: sent {} received back {} ({:.2} %) muted {} ({:.2} %) lost {} ({:.3} %); \
         received but failed to authenticate {} replayed {} foreign {}",
        total.sent,
        total.received,
        pct(total.received),
        total.muted,
        pct(total.muted),
        total.lost,
        pct(total.lost),
        total.auth_failed,
        total.replayed,
        total.foreign,
    );
}
