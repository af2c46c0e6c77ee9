//! The relay core on a virtual clock: re-encryption between legs, latching,
//! replay and forgery rejection, RTCP, inactivity.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::srtp::{MasterKey, Protector, RtpHeader, Suite, Unprotector};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The far ends of one call: the phone on leg A, the bridge on leg B, each
/// with the keys it would have from SDP.
struct Ends {
    phone_tx: Protector,
    phone_rx: Unprotector,
    bridge_tx: Protector,
    bridge_rx: Unprotector,
    keys: [MasterKey; 4],
}

/// Leg A is AES-GCM (phone side default), leg B AES-CM-80 (trunk default).
fn ends() -> Ends {
    let a_in = MasterKey::generate(Suite::AeadAes256Gcm).unwrap(); // phone -> gw
    let a_out = MasterKey::generate(Suite::AeadAes256Gcm).unwrap(); // gw -> phone
    let b_in = MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap(); // bridge -> gw
    let b_out = MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap(); // gw -> bridge
    Ends {
        phone_tx: Protector::new(&a_in).unwrap(),
        phone_rx: Unprotector::new(&a_out).unwrap(),
        bridge_tx: Protector::new(&b_in).unwrap(),
        bridge_rx: Unprotector::new(&b_out).unwrap(),
        keys: [a_in, a_out, b_in, b_out],
    }
}

const PHONE: &str = "192.0.2.10:4000";
const BRIDGE: &str = "198.51.100.5:20000";

fn setup(relay: &mut Relay, now: Instant, e: &Ends, mux: bool) -> CallId {
    let [a_in, a_out, b_in, b_out] = &e.keys;
    relay
        .add_call(
            now,
            LegConfig {
                rtp: SocketId(0),
                rtcp: (!mux).then_some(SocketId(1)),
                remote_rtp: Some(addr(PHONE)),
                remote_rtcp: Some(addr("192.0.2.10:4001")),
                inbound: a_in.clone(),
                outbound: a_out.clone(),
            },
            LegConfig {
                rtp: SocketId(2),
                rtcp: (!mux).then_some(SocketId(3)),
                remote_rtp: Some(addr(BRIDGE)),
                remote_rtcp: Some(addr("198.51.100.5:20001")),
                inbound: b_in.clone(),
                outbound: b_out.clone(),
            },
        )
        .unwrap()
}

fn rtp(seq: u16, ssrc: u32, pt: u8, fill: u8) -> ([u8; 1500], usize) {
    let mut b = [0u8; 1500];
    b[0] = 0x80;
    b[1] = pt;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    b[12..172].fill(fill);
    (b, 172)
}

#[test]
fn reencrypts_both_ways_with_different_keys() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let mut e = ends();
    let call = setup(&mut relay, t0, &e, true);

    for seq in 0..20u16 {
        // Phone -> bridge, G.711 (PT 0) then an RFC 4733 event (PT 101).
        let pt = if seq % 5 == 4 { 101 } else { 0 };
        let (mut b, len) = rtp(seq, 0xaaaa, pt, 0x55);
        let plain = b;
        let wire_in = e
            .phone_tx
            .protect_rtp(&mut b, len)
            .unwrap()
            .as_bytes()
            .to_vec();
        let t = relay
            .handle_datagram(t0, SocketId(0), addr(PHONE), &mut b, wire_in.len())
            .expect("relayed");
        assert_eq!(t.socket, SocketId(2));
        assert_eq!(t.dest, addr(BRIDGE));
        let wire_out = t.packet.as_bytes().to_vec();
        // Different suite and key: different tag length and ciphertext.
        assert_eq!(wire_out.len(), len + 10);
        assert_ne!(wire_out[12..172], wire_in[12..172]);
        assert_ne!(
            wire_out[12..172],
            plain[12..172],
            "never cleartext on the wire"
        );
        let mut got = [0u8; 1500];
        got[..wire_out.len()].copy_from_slice(&wire_out);
        let n = e.bridge_rx.unprotect_rtp(&mut got, wire_out.len()).unwrap();
        assert_eq!(got[..n], plain[..len], "payload and payload type untouched");
        assert_eq!(RtpHeader::parse(&got[..n]).unwrap().payload_type, pt);

        // Bridge -> phone, including audio/scip-style dynamic PT 120.
        let (mut b, len) = rtp(seq, 0xbbbb, 120, 0x66);
        let plain = b;
        let n_in = e.bridge_tx.protect_rtp(&mut b, len).unwrap().len();
        let t = relay
            .handle_datagram(t0, SocketId(2), addr(BRIDGE), &mut b, n_in)
            .expect("relayed back");
        assert_eq!((t.socket, t.dest), (SocketId(0), addr(PHONE)));
        let out = t.packet.as_bytes().to_vec();
        assert_eq!(out.len(), len + 16);
        let mut got = [0u8; 1500];
        got[..out.len()].copy_from_slice(&out);
        let n = e.phone_rx.unprotect_rtp(&mut got, out.len()).unwrap();
        assert_eq!(got[..n], plain[..len]);
    }
    let [a, b] = relay.stats(call).unwrap();
    assert_eq!(
        (a.rx_packets, a.tx_packets, b.rx_packets, b.tx_packets),
        (20, 20, 20, 20)
    );
    assert_eq!(a.dropped() + b.dropped(), 0);
}

#[test]
fn latches_on_first_authenticated_packet_and_ignores_others() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let mut e = ends();
    let call = setup(&mut relay, t0, &e, true);
    // The phone is behind NAT: its packets come from another address than
    // signalled. A forged packet from an attacker first must not latch.
    let nat = addr("203.0.113.7:61000");
    let attacker = addr("203.0.113.66:5000");
    let (mut forged, len) = rtp(1, 0xaaaa, 0, 0);
    forged[len..len + 16].fill(0xee);
    assert!(relay
        .handle_datagram(t0, SocketId(0), attacker, &mut forged, len + 16)
        .is_none());
    assert_eq!(relay.poll_event(), None, "no latch on a forged packet");

    let (mut b, len) = rtp(1, 0xaaaa, 0, 1);
    let n = e.phone_tx.protect_rtp(&mut b, len).unwrap().len();
    assert!(relay
        .handle_datagram(t0, SocketId(0), nat, &mut b, n)
        .is_some());
    assert_eq!(
        relay.poll_event(),
        Some(Event::Latched {
            call,
            leg: LegSide::A,
            addr: nat
        })
    );

    // Valid packets from elsewhere (say a copy captured and re-sent from
    // another host) are now ignored even though they would authenticate.
    let (mut b, len) = rtp(2, 0xaaaa, 0, 1);
    let n = e.phone_tx.protect_rtp(&mut b, len).unwrap().len();
    assert!(relay
        .handle_datagram(t0, SocketId(0), attacker, &mut b, n)
        .is_none());

    // Bridge -> phone now goes to the latched NAT address, not the SDP one.
    let (mut b, len) = rtp(1, 0xbbbb, 0, 2);
    let n = e.bridge_tx.protect_rtp(&mut b, len).unwrap().len();
    let t = relay
        .handle_datagram(t0, SocketId(2), addr(BRIDGE), &mut b, n)
        .unwrap();
    assert_eq!(t.dest, nat);
    let [a, _] = relay.stats(call).unwrap();
    assert_eq!((a.auth_failed, a.foreign_source, a.rx_packets), (1, 1, 1));
}

#[test]
fn replayed_tampered_and_malformed_packets_are_dropped_and_counted() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let mut e = ends();
    let call = setup(&mut relay, t0, &e, true);
    let (mut b, len) = rtp(7, 0xaaaa, 0, 3);
    let n = e.phone_tx.protect_rtp(&mut b, len).unwrap().len();
    let copy = b;
    assert!(relay
        .handle_datagram(t0, SocketId(0), addr(PHONE), &mut b, n)
        .is_some());
    for _ in 0..3 {
        let mut again = copy;
        assert!(relay
            .handle_datagram(t0, SocketId(0), addr(PHONE), &mut again, n)
            .is_none());
    }
    let mut bad = copy;
    bad[40] ^= 1;
    bad[2..4].copy_from_slice(&8u16.to_be_bytes());
    assert!(relay
        .handle_datagram(t0, SocketId(0), addr(PHONE), &mut bad, n)
        .is_none());
    let mut junk = [0u8; 1500];
    assert!(relay
        .handle_datagram(t0, SocketId(0), addr(PHONE), &mut junk, 5)
        .is_none());
    let [a, b] = relay.stats(call).unwrap();
    assert_eq!((a.replayed, a.auth_failed, a.malformed), (3, 1, 1));
    assert_eq!(b.tx_packets, 1, "only the genuine packet went out");
}

#[test]
fn rtcp_on_separate_ports_and_on_mux() {
    for mux in [false, true] {
        let mut relay = Relay::new(RelayConfig::default());
        let t0 = Instant::now();
        let mut e = ends();
        setup(&mut relay, t0, &e, mux);
        let mut b = [0u8; 1500];
        let rr = [0x81, 201, 0, 7, 0, 0, 0xaa, 0xaa];
        b[..8].copy_from_slice(&rr);
        b[8..32].fill(9);
        let plain = b;
        let n = e.phone_tx.protect_rtcp(&mut b, 32).unwrap().len();
        let (sock_in, sock_out, dest) = if mux {
            (SocketId(0), SocketId(2), addr(BRIDGE))
        } else {
            (SocketId(1), SocketId(3), addr("198.51.100.5:20001"))
        };
        let t = relay
            .handle_datagram(t0, sock_in, addr("192.0.2.10:4001"), &mut b, n)
            .expect("RTCP relayed");
        assert_eq!((t.socket, t.dest), (sock_out, dest), "mux={mux}");
        let out = t.packet.as_bytes().to_vec();
        let mut got = [0u8; 1500];
        got[..out.len()].copy_from_slice(&out);
        let m = e.bridge_rx.unprotect_rtcp(&mut got, out.len()).unwrap();
        assert_eq!(got[..m], plain[..32]);
    }
}

#[test]
fn inactivity_raises_one_event_on_the_virtual_clock() {
    let config = RelayConfig {
        inactivity: Duration::from_secs(5),
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(config);
    let t0 = Instant::now();
    let mut e = ends();
    let call = setup(&mut relay, t0, &e, true);
    // Media flows for 3 s: nothing happens.
    let mut now = t0;
    for seq in 0..150u16 {
        now = t0 + Duration::from_millis(20 * u64::from(seq));
        let (mut b, len) = rtp(seq, 0xaaaa, 0, 0);
        let n = e.phone_tx.protect_rtp(&mut b, len).unwrap().len();
        relay.handle_datagram(now, SocketId(0), addr(PHONE), &mut b, n);
        if relay.poll_timeout().is_some_and(|t| t <= now) {
            relay.handle_timeout(now);
        }
    }
    while let Some(ev) = relay.poll_event() {
        assert!(matches!(ev, Event::Latched { .. }), "{ev:?}");
    }
    let last_media = now;
    // Only forged packets from now on: they do not count as activity.
    let mut fired_at = None;
    for step in 1..=10u64 {
        let now = last_media + Duration::from_secs(step);
        let (mut f, len) = rtp(1000 + step as u16, 0xaaaa, 0, 0);
        relay.handle_datagram(now, SocketId(0), addr(PHONE), &mut f, len + 16);
        while relay.poll_timeout().is_some_and(|t| t <= now) {
            relay.handle_timeout(now);
        }
        if let Some(ev) = relay.poll_event() {
            assert_eq!(ev, Event::Inactive { call });
            assert!(fired_at.is_none(), "raised once");
            fired_at = Some(step);
        }
    }
    let step = fired_at.expect("inactivity raised");
    assert!(
        (5..=6).contains(&step),
        "raised {step} s after the last packet"
    );
}

#[test]
fn removed_call_stops_relaying_and_ids_do_not_alias() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let mut e = ends();
    let call = setup(&mut relay, t0, &e, true);
    assert!(relay.remove_call(call).is_some());
    assert!(relay.remove_call(call).is_none());
    let (mut b, len) = rtp(1, 0xaaaa, 0, 0);
    let n = e.phone_tx.protect_rtp(&mut b, len).unwrap().len();
    assert!(relay
        .handle_datagram(t0, SocketId(0), addr(PHONE), &mut b, n)
        .is_none());
    assert_eq!(relay.stray_packets, 1);
    // The slot is reused; the old id must not reach the new call.
    let e2 = ends();
    let call2 = setup(&mut relay, t0, &e2, true);
    assert_ne!(call, call2);
    assert!(relay.stats(call).is_none());
    assert!(relay.stats(call2).is_some());
}

#[test]
fn limits_and_socket_conflicts_are_refused() {
    let mut relay = Relay::new(RelayConfig {
        max_calls: 1,
        ..RelayConfig::default()
    });
    let t0 = Instant::now();
    let e = ends();
    setup(&mut relay, t0, &e, true);
    let [a_in, a_out, b_in, b_out] = &e.keys;
    let leg = |s: u32, i: &MasterKey, o: &MasterKey| LegConfig {
        rtp: SocketId(s),
        rtcp: None,
        remote_rtp: None,
        remote_rtcp: None,
        inbound: i.clone(),
        outbound: o.clone(),
    };
    assert_eq!(
        relay.add_call(t0, leg(10, a_in, a_out), leg(11, b_in, b_out)),
        Err(RelayError::Full)
    );
    let mut relay = Relay::new(RelayConfig::default());
    setup(&mut relay, t0, &e, true);
    assert_eq!(
        relay.add_call(t0, leg(0, a_in, a_out), leg(11, b_in, b_out)),
        Err(RelayError::SocketInUse)
    );
    assert_eq!(
        relay.add_call(t0, leg(12, a_in, a_out), leg(12, b_in, b_out)),
        Err(RelayError::SocketInUse)
    );
}

#[test]
fn unknown_destination_is_counted_not_sent() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let mut e = ends();
    let [a_in, a_out, b_in, b_out] = &e.keys;
    let call = relay
        .add_call(
            t0,
            LegConfig {
                rtp: SocketId(0),
                rtcp: None,
                remote_rtp: None,
                remote_rtcp: None,
                inbound: a_in.clone(),
                outbound: a_out.clone(),
            },
            LegConfig {
                rtp: SocketId(1),
                rtcp: None,
                remote_rtp: None,
                remote_rtcp: None,
                inbound: b_in.clone(),
                outbound: b_out.clone(),
            },
        )
        .unwrap();
    let (mut b, len) = rtp(1, 0xaaaa, 0, 0);
    let n = e.phone_tx.protect_rtp(&mut b, len).unwrap().len();
    assert!(relay
        .handle_datagram(t0, SocketId(0), addr(PHONE), &mut b, n)
        .is_none());
    assert_eq!(relay.stats(call).unwrap()[1].unroutable, 1);
}

#[test]
fn arbitrary_datagrams_never_panic_or_leave_the_relay() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let e = ends();
    let call = setup(&mut relay, t0, &e, false);
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for i in 0..20_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 400) as usize;
        let mut b = [0u8; 1500];
        for (j, v) in b[..len].iter_mut().enumerate() {
            *v = (x >> (j % 8 * 8)) as u8 ^ j as u8;
        }
        if i % 3 == 0 && len > 1 {
            b[0] = 0x80;
            b[1] = if i % 2 == 0 { 0 } else { 200 };
        }
        let socket = SocketId(i % 6); // includes sockets of no call
        assert!(relay
            .handle_datagram(t0, socket, addr(PHONE), &mut b, len)
            .is_none());
        // A length larger than the buffer is not a panic either.
        let mut small = [0u8; 16];
        assert!(relay
            .handle_datagram(t0, SocketId(0), addr(PHONE), &mut small, 64)
            .is_none());
    }
    let [a, b] = relay.stats(call).unwrap();
    assert_eq!(a.tx_packets + b.tx_packets, 0);
    assert!(a.dropped() > 0 && b.dropped() > 0);
    assert!(relay.stray_packets > 0);
}

#[test]
fn gateway_frames_are_protected_sent_on_time_and_mute_the_bridge_meanwhile() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let mut e = ends();
    let call = setup(&mut relay, t0, &e, true);
    let tone = crate::media::SecureTone::new(crate::media::G711::MuLaw);
    let frames: Vec<PlayFrame> = (0..crate::media::SECURE_TONE_FRAMES)
        .map(|n| PlayFrame {
            at: t0 + Duration::from_millis(20 * n as u64),
            payload_type: 0,
            marker: n == 0,
            seq: 1000 + n as u16,
            timestamp: 160 * n as u32,
            ssrc: 0x5ec0_0001,
            payload: tone.frame(n).unwrap().to_vec(),
        })
        .collect();
    relay.play(call, LegSide::A, frames, true).unwrap();
    assert_eq!(relay.poll_timeout(), Some(t0), "first frame due now");

    let mut got = 0u16;
    let mut buf = [0u8; 1500];
    for step in 0..30u64 {
        let now = t0 + Duration::from_millis(20 * step);
        // Bridge audio arrives meanwhile: muted towards the phone while the
        // tone plays, relayed again afterwards.
        let (mut b, len) = rtp(step as u16, 0xbbbb, 0, 9);
        let n = e.bridge_tx.protect_rtp(&mut b, len).unwrap().len();
        let relayed = relay
            .handle_datagram(now, SocketId(2), addr(BRIDGE), &mut b, n)
            .is_some();
        assert_eq!(relayed, step >= 20, "step {step}");
        while let Some(t) = relay.poll_play(now, &mut buf) {
            assert_eq!((t.socket, t.dest), (SocketId(0), addr(PHONE)));
            let wire = t.packet.as_bytes().to_vec();
            let mut p = [0u8; 1500];
            p[..wire.len()].copy_from_slice(&wire);
            let m = e
                .phone_rx
                .unprotect_rtp(&mut p, wire.len())
                .expect("tone decrypts with the phone's key");
            let h = crate::srtp::RtpHeader::parse(&p[..m]).unwrap();
            assert_eq!((h.ssrc, h.seq), (0x5ec0_0001, 1000 + got));
            assert_eq!(p[12..m], tone.frame(usize::from(got)).unwrap());
            got += 1;
        }
    }
    assert_eq!(got, 20);
    let [a, _] = relay.stats(call).unwrap();
    assert_eq!((a.played, a.muted), (20, 20));
    let too_big = PlayFrame {
        at: t0,
        payload_type: 0,
        marker: false,
        seq: 0,
        timestamp: 0,
        ssrc: 1,
        payload: vec![0; MAX_PLAY_PAYLOAD + 1],
    };
    assert_eq!(
        relay.play(call, LegSide::A, vec![too_big], false),
        Err(RelayError::BadFrame)
    );
    relay.remove_call(call);
    assert_eq!(
        relay.play(call, LegSide::B, Vec::new(), false),
        Err(RelayError::NoSuchCall)
    );
}

#[test]
fn rekeying_a_leg_switches_its_contexts_and_leaves_the_other_alone() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let mut e = ends();
    let call = setup(&mut relay, t0, &e, true);
    // Phone -> gateway with the old key works.
    let send_from_phone = |relay: &mut Relay, tx: &mut Protector, seq: u16| {
        let (mut b, len) = rtp(seq, 0xaaaa, 0, 0x55);
        let n = tx.protect_rtp(&mut b, len).unwrap().len();
        relay
            .handle_datagram(t0, SocketId(0), addr(PHONE), &mut b, n)
            .map(|t| t.packet.as_bytes().to_vec())
    };
    assert!(send_from_phone(&mut relay, &mut e.phone_tx, 1).is_some());
    // The phone re-keys (new suite too); the gateway answers with a new key.
    let new_in = MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap();
    let new_out = MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap();
    relay
        .rekey(call, LegSide::A, Some(&new_in), Some(&new_out))
        .unwrap();
    // The old key no longer authenticates; the new one does, with a fresh
    // context (its index starts again).
    assert!(send_from_phone(&mut relay, &mut e.phone_tx, 2).is_none());
    let mut phone_tx = Protector::new(&new_in).unwrap();
    let to_bridge = send_from_phone(&mut relay, &mut phone_tx, 100).expect("relayed");
    // The bridge leg's keys did not change.
    let mut got = [0u8; 1500];
    got[..to_bridge.len()].copy_from_slice(&to_bridge);
    assert!(e.bridge_rx.unprotect_rtp(&mut got, to_bridge.len()).is_ok());
    // Towards the phone: protected with the new outbound key.
    let (mut b, len) = rtp(7, 0xbbbb, 0, 0x66);
    let n = e.bridge_tx.protect_rtp(&mut b, len).unwrap().len();
    let out = relay
        .handle_datagram(t0, SocketId(2), addr(BRIDGE), &mut b, n)
        .expect("relayed back")
        .packet
        .as_bytes()
        .to_vec();
    let mut got = [0u8; 1500];
    got[..out.len()].copy_from_slice(&out);
    assert!(e.phone_rx.unprotect_rtp(&mut got, out.len()).is_err());
    got[..out.len()].copy_from_slice(&out);
    let mut phone_rx = Unprotector::new(&new_out).unwrap();
    assert!(phone_rx.unprotect_rtp(&mut got, out.len()).is_ok());
    // A stale call id is refused.
    relay.remove_call(call);
    assert!(relay.rekey(call, LegSide::A, Some(&new_in), None).is_err());
}

#[test]
fn only_calls_with_frames_queued_are_looked_at_for_play_out() {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let e = ends();
    let call = setup(&mut relay, t0, &e, true);
    let frame = |n: u64| PlayFrame {
        at: t0 + Duration::from_millis(5 + 20 * n),
        payload_type: 0,
        marker: false,
        seq: n as u16,
        timestamp: 160 * n as u32,
        ssrc: 7,
        payload: vec![0xff; 160],
    };
    let idle = relay.poll_timeout();
    relay
        .play(call, LegSide::B, vec![frame(0), frame(1)], false)
        .unwrap();
    relay.play(call, LegSide::A, vec![frame(2)], false).unwrap();
    assert_eq!(relay.playing, vec![call.index], "one entry per call");
    assert_eq!(relay.poll_timeout(), Some(t0 + Duration::from_millis(5)));
    let mut buf = [0u8; 1500];
    let end = t0 + Duration::from_secs(1);
    let mut sent = 0;
    while relay.poll_play(end, &mut buf).is_some() {
        sent += 1;
    }
    assert_eq!(sent, 3);
    assert!(relay.playing.is_empty(), "played out: forgotten");
    assert_eq!(relay.poll_timeout(), idle);
    // A call removed while it plays leaves nothing behind for the call
    // that takes its slot.
    relay.play(call, LegSide::A, vec![frame(3)], false).unwrap();
    relay.remove_call(call).unwrap();
    let next = setup(&mut relay, t0, &e, true);
    assert_eq!(next.index, call.index);
    assert_eq!(relay.poll_timeout(), relay.next_check);
    assert!(relay.poll_play(end, &mut buf).is_none());
    assert!(relay.playing.is_empty());
}
