//! What the B2BUA computes for media rather than signalling: the relay's
//! leg settings, the secure tone and the meeting PIN frames, the phone-side
//! advertised address and the session interval a request asks for.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::media::{DtmfSender, SecureTone, G711, SECURE_TONE_FRAMES};
use crate::relay::{LegConfig, LocalLeg, PlayFrame};
use crate::sdp::{self, Negotiated};
use crate::sip::Message;

use super::call::MIN_SE;
use super::Random;

/// A bridge-side media address as the bridge reaches it: behind a NAT
/// (`public`, from the network check's STUN server) the public address
/// with the bound port (a port-preserving NAT, as Linux's masquerade is
/// when the port is free), unless the leg is bound on loopback or already
/// on the public address.
pub(super) fn bridge_advertised(public: Option<IpAddr>, bound: SocketAddr) -> SocketAddr {
    match public {
        Some(ip) if !bound.ip().is_loopback() && ip != bound.ip() => {
            SocketAddr::new(ip, bound.port())
        }
        _ => bound,
    }
}

/// A phone-side media address as phones reach it: the configured
/// `phone.advertise_address` (a NAT in between) with the bound port.
pub(super) fn advertised(config: &Config, bound: SocketAddr) -> SocketAddr {
    match config.phone.advertise_address {
        Some(ip) => SocketAddr::new(ip, bound.port()),
        None => bound,
    }
}

/// The session interval a request asks for, if it supports RFC 4028
/// timers (`Supported: timer` and a Session-Expires of at least MIN_SE).
pub(super) fn requested_timer(msg: &Message) -> Option<u32> {
    let se = msg.session_expires()?;
    let supported = msg.supported().any(|t| t.eq_ignore_ascii_case("timer"))
        || msg.require().any(|t| t.eq_ignore_ascii_case("timer"));
    (supported && se.delta >= MIN_SE).then_some(se.delta)
}

pub(super) fn leg_config(n: Negotiated, local: &LocalLeg) -> LegConfig {
    let rtcp = if n.rtcp_mux {
        None
    } else {
        local.rtcp.map(|r| r.0)
    };
    n.into_leg_config(local.rtp, rtcp)
}

fn law_of(n: &Negotiated) -> Option<(G711, u8)> {
    n.codecs
        .payload_types()
        .into_iter()
        .find_map(|pt| match pt {
            0 => Some((G711::MuLaw, 0)),
            8 => Some((G711::ALaw, 8)),
            _ => None,
        })
}

fn ssrc(random: &mut dyn Random) -> (u32, u16, u32) {
    let mut b = [0u8; 10];
    random.fill(&mut b);
    (
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
    )
}

/// The secure tone for the phone, if the phone leg speaks G.711.
pub(super) fn tone_frames(now: Instant, n: &Negotiated, random: &mut dyn Random) -> Vec<PlayFrame> {
    let Some((law, pt)) = law_of(n) else {
        return Vec::new();
    };
    let (ssrc, seq, ts) = ssrc(random);
    let tone = SecureTone::new(law);
    (0..SECURE_TONE_FRAMES)
        .filter_map(|i| {
            Some(PlayFrame {
                at: now + Duration::from_millis(20 * i as u64),
                payload_type: pt,
                marker: i == 0,
                seq: seq.wrapping_add(i as u16),
                timestamp: ts.wrapping_add(160 * i as u32),
                ssrc,
                payload: tone.frame(i)?.to_vec(),
            })
        })
        .collect()
}

/// The meeting PIN as RFC 4733 events on the bridge leg, after a second
/// (the bridge's prompt), if the bridge leg negotiated telephone-event.
pub(super) fn pin_frames(
    now: Instant,
    pin: &str,
    n: &Negotiated,
    random: &mut dyn Random,
) -> Option<Vec<PlayFrame>> {
    let pt = n
        .codecs
        .iter()
        .find(|c| c.kind() == Some(sdp::CodecKind::TelephoneEvent))?
        .payload_type;
    let sender = DtmfSender::new(pin)?;
    let (ssrc, seq, ts) = ssrc(random);
    let start = now + Duration::from_secs(1);
    let mut out = Vec::new();
    let mut sent = 0u16;
    for slot in 0..sender.slots() {
        let Some(p) = sender.packet(slot) else {
            continue;
        };
        out.push(PlayFrame {
            at: start + Duration::from_millis(20 * slot as u64),
            payload_type: pt,
            marker: p.marker,
            seq: seq.wrapping_add(sent),
            timestamp: ts.wrapping_add(p.timestamp),
            ssrc,
            payload: p.payload.to_vec(),
        });
        sent += 1;
    }
    Some(out)
}

/// Whether the relay may send media to `addr` before it latches, for a
/// peer that signalled from `peer`: never to an unspecified, multicast or
/// broadcast address, to loopback or link-local unless the peer itself is
/// there, or to one of the kit's own addresses unless the peer is that
/// address (a demo kit on one host). An offer that aims the gateway's
/// media elsewhere would turn it into a reflector at the uplink or at
/// services on the box.
pub(super) fn media_destination_allowed(addr: IpAddr, peer: IpAddr, own: &[IpAddr]) -> bool {
    let (addr, peer) = (addr.to_canonical(), peer.to_canonical());
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    };
    let link_local = |a: IpAddr| match a {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
    };
    if addr.is_unspecified()
        || addr.is_multicast()
        || v4(addr).is_some_and(|v| v.is_broadcast() || v.is_unspecified() || v.is_multicast())
    {
        return false;
    }
    if addr.is_loopback() && !peer.is_loopback() {
        return false;
    }
    if link_local(addr) && !link_local(peer) {
        return false;
    }
    !(own.iter().any(|o| o.to_canonical() == addr) && addr != peer)
}

#[cfg(test)]
mod tests {
    use super::media_destination_allowed as ok;
    use std::net::IpAddr;

    #[test]
    fn a_bridge_leg_behind_a_nat_advertises_the_public_address_with_its_port() {
        let public = Some(ip("203.0.113.7"));
        let bound: std::net::SocketAddr = "192.168.77.50:30002".parse().unwrap();
        let adv = super::bridge_advertised(public, bound);
        assert_eq!(adv.to_string(), "203.0.113.7:30002");
        // No NAT seen: as bound.
        assert_eq!(super::bridge_advertised(None, bound), bound);
        // On loopback (the demo's bridge), or already public: as bound.
        let lo: std::net::SocketAddr = "127.0.0.1:30004".parse().unwrap();
        assert_eq!(super::bridge_advertised(public, lo), lo);
        let on_public: std::net::SocketAddr = "203.0.113.7:30006".parse().unwrap();
        assert_eq!(super::bridge_advertised(public, on_public), on_public);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn media_goes_only_where_the_peer_is() {
        let own = [ip("10.0.0.1"), ip("192.0.2.10")];
        let phone = ip("10.0.0.23");
        assert!(ok(ip("10.0.0.23"), phone, &own));
        assert!(
            ok(ip("10.0.0.99"), phone, &own),
            "another LAN host is allowed"
        );
        for bad in [
            "127.0.0.1",
            "::1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "10.0.0.1",
            "192.0.2.10",
            "::ffff:127.0.0.1",
        ] {
            assert!(!ok(ip(bad), phone, &own), "{bad}");
        }
        // A demo kit: phones, gateway and bridge on loopback.
        let lo = ip("127.0.0.1");
        assert!(ok(lo, lo, &[lo]));
        assert!(ok(ip("127.0.0.9"), lo, &[lo]));
    }
}
