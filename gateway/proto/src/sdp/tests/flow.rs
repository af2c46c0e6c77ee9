//! The B2BUA's two legs end to end: the phone's offer, the bridge offer,
//! the bridge's answer, the phone's answer, and SRTP packets through the
//! relay with the negotiated keys.

use std::time::Instant;

use super::fixtures::*;
use super::{addr, key, key_in, same, sdp, wire};
use crate::relay::{Relay, RelayConfig, SocketId};
use crate::sdp::*;
use crate::srtp::{MasterKey, Protector, Suite, Unprotector};

/// An RTP packet (PT, seq, SSRC, 160 octets of payload) in a big buffer.
fn rtp(pt: u8, seq: u16, ssrc: u32) -> ([u8; 1500], usize) {
    let mut b = [0u8; 1500];
    b[0] = 0x80;
    b[1] = pt;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, x) in b[12..172].iter_mut().enumerate() {
        *x = i as u8;
    }
    (b, 172)
}

struct Call {
    phone_answer: SessionDescription,
    bridge_offer: SessionDescription,
    phone: Negotiated,
    bridge: Negotiated,
}

/// Linphone calls through dialgate to a Cisco/Webex trunk.
fn negotiate() -> Call {
    let phone_policy = Policy::phone_default();
    let trunk_policy = Policy::trunk_default();

    // 1. The phone's INVITE: every check before the bridge is called.
    let phone_offer = sdp(LINPHONE);
    let mut checked = check_offer(&phone_offer, &phone_policy).unwrap();
    assert_eq!(checked.suite(), Suite::AeadAes256Gcm);
    // speex and G.729 are dropped; the phone's numbers and order are kept.
    assert_eq!(
        checked.codecs().payload_types(),
        vec![96, 0, 8, 101, 99, 100]
    );

    // 2. The bridge offer: the phone's relayed codecs, the trunk's suite,
    //    a separate RTCP port (no rtcp-mux on this trunk).
    let bridge_local = LocalMedia {
        rtcp: Some(addr("192.0.2.1:30003")),
        rtcp_mux: false,
        ..LocalMedia::new(addr("192.0.2.1:30002"))
    };
    let (bridge_offer, pending) = offer(checked.codecs(), &trunk_policy, &bridge_local).unwrap();
    let on_wire = bridge_offer.print();
    let bridge_offer = SessionDescription::parse(on_wire.as_bytes()).unwrap();
    let m = &bridge_offer.media[0];
    assert_eq!(m.proto, Proto::RtpSavp);
    assert_eq!(m.payload_types(), &[96, 0, 8, 101, 99, 100]);
    assert_eq!(m.fmtp(96), Some("useinbandfec=1"));
    assert_eq!(m.rtcp().map(|r| r.port), Some(30003));
    assert!(!m.rtcp_mux());
    let tags: Vec<(u32, &str)> = m.crypto().map(|c| (c.tag, c.suite.as_str())).collect();
    assert_eq!(tags, vec![(1, "AES_CM_128_HMAC_SHA1_80")]);
    // Nothing of the phone's description leaks into the bridge's.
    for leak in [
        "alice",
        "198.51.100.23",
        "rtcp-xr",
        "rtcp-fb",
        GCM256,
        "Talk",
    ] {
        assert!(!on_wire.contains(leak), "{leak} leaked to the bridge leg");
    }

    // 3. The bridge answers: PCMU and telephone-event/8000 (our PT 100).
    let bridge_answer = sdp(&CISCO_ANSWER.replace("{tag}", "1"));
    let bridge = pending.accept(&bridge_answer).unwrap();
    assert_eq!(bridge.suite, Suite::AesCm128HmacSha1_80);
    assert_eq!(bridge.payload_types(), vec![0, 100]);
    assert_eq!(bridge.remote_rtp, Some(addr("203.0.113.5:24580")));
    assert_eq!(bridge.remote_rtcp, Some(addr("203.0.113.5:24581")));
    assert!(!bridge.rtcp_mux);

    // 4. The phone is answered with what the bridge accepted.
    checked.restrict_codecs(&bridge.codecs).unwrap();
    let phone_local = LocalMedia::new(addr("192.0.2.1:30000"));
    let (phone_answer, phone) = checked.answer(&phone_local).unwrap();
    let phone_answer = SessionDescription::parse(phone_answer.print().as_bytes()).unwrap();
    let m = &phone_answer.media[0];
    assert_eq!(m.payload_types(), &[0, 100]);
    assert_eq!(m.fmtp(100), Some("0-15"));
    assert_eq!(m.ptime(), Some(20));
    assert!(m.rtcp_mux());
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    let c: Vec<(u32, &str)> = m.crypto().map(|c| (c.tag, c.suite.as_str())).collect();
    assert_eq!(c, vec![(1, "AEAD_AES_256_GCM")]);
    assert_eq!(phone.remote_rtp, Some(addr("198.51.100.23:7078")));
    assert!(phone.rtcp_mux && phone.remote_rtcp.is_none());
    assert_eq!(phone.payload_types(), bridge.payload_types());
    Call {
        phone_answer,
        bridge_offer,
        phone,
        bridge,
    }
}

#[test]
fn keys_are_fresh_per_leg_and_direction() {
    let call = negotiate();
    // The inbound keys are what the peers sent.
    assert!(same(
        &call.phone.inbound,
        &key(Suite::AeadAes256Gcm, GCM256)
    ));
    assert!(same(
        &call.bridge.inbound,
        &key(Suite::AesCm128HmacSha1_80, CM128_B)
    ));
    // The outbound keys are what we sent, and fresh.
    assert!(same(&call.phone.outbound, &key_in(&call.phone_answer, 1)));
    assert!(same(&call.bridge.outbound, &key_in(&call.bridge_offer, 1)));
    let all = [
        &call.phone.inbound,
        &call.phone.outbound,
        &call.bridge.inbound,
        &call.bridge.outbound,
    ];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a.key_and_salt(), b.key_and_salt(), "two keys alike");
        }
    }
    // No key in Debug of anything we hand around.
    let debug = format!("{:?} {:?}", call.phone, call.bridge);
    for k in all {
        let hex: String = k.key().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!debug.contains(&hex));
        assert!(!debug.contains(&format!("{:?}", k.key())));
    }
    assert!(call.phone.new_inbound_key && call.phone.new_outbound_key);
}

#[test]
fn the_phones_key_is_unprotected_by_the_negotiated_inbound_key() {
    let call = negotiate();
    // What the phone does with the key it offered.
    let phone_key = key(Suite::AeadAes256Gcm, GCM256);
    let mut phone_tx = Protector::new(&phone_key).unwrap();
    let mut gw_rx = Unprotector::new(&call.phone.inbound).unwrap();
    let (mut b, len) = rtp(0, 1, 0x1234);
    let plain = b;
    let n = phone_tx.protect_rtp(&mut b, len).unwrap().len();
    let m = gw_rx.unprotect_rtp(&mut b, n).unwrap();
    assert_eq!(b[..m], plain[..len]);
    // And the phone unprotects what we send with the key from our answer.
    let mut gw_tx = Protector::new(&call.phone.outbound).unwrap();
    let mut phone_rx = Unprotector::new(&key_in(&call.phone_answer, 1)).unwrap();
    let (mut b, len) = rtp(100, 1, 0x5678);
    let plain = b;
    let n = gw_tx.protect_rtp(&mut b, len).unwrap().len();
    assert_eq!(phone_rx.unprotect_rtp(&mut b, n).unwrap(), len);
    assert_eq!(b[..len], plain[..len]);
}

#[test]
fn packets_cross_the_relay_with_the_negotiated_leg_configs() {
    let call = negotiate();
    let phone_key = key(Suite::AeadAes256Gcm, GCM256);
    let bridge_key = key(Suite::AesCm128HmacSha1_80, CM128_B);
    // The peers' view: each reads our key from the description we sent it.
    let mut phone_tx = Protector::new(&phone_key).unwrap();
    let mut phone_rx = Unprotector::new(&key_in(&call.phone_answer, 1)).unwrap();
    let mut bridge_tx = Protector::new(&bridge_key).unwrap();
    let mut bridge_rx = Unprotector::new(&key_in(&call.bridge_offer, 1)).unwrap();

    let mut relay = Relay::new(RelayConfig::default());
    let now = Instant::now();
    let a = call.phone.into_leg_config(SocketId(0), Some(SocketId(1)));
    assert_eq!(a.rtcp, None, "rtcp-mux on the phone leg");
    let b = call.bridge.into_leg_config(SocketId(2), Some(SocketId(3)));
    assert_eq!(b.remote_rtcp, Some(addr("203.0.113.5:24581")));
    relay.add_call(now, a, b).unwrap();

    let phone_addr = addr("198.51.100.23:7078");
    let bridge_addr = addr("203.0.113.5:24580");
    for seq in 0..10u16 {
        let pt = if seq % 3 == 2 { 100 } else { 0 };
        let (mut buf, len) = rtp(pt, seq, 0xaaaa);
        let plain = buf;
        let n = phone_tx.protect_rtp(&mut buf, len).unwrap().len();
        let t = relay
            .handle_datagram(now, SocketId(0), phone_addr, &mut buf, n)
            .expect("phone -> bridge relayed");
        assert_eq!((t.socket, t.dest), (SocketId(2), bridge_addr));
        let mut got = [0u8; 1500];
        let wire = t.packet.as_bytes();
        got[..wire.len()].copy_from_slice(wire);
        let m = bridge_rx.unprotect_rtp(&mut got, wire.len()).unwrap();
        assert_eq!(got[..m], plain[..len], "payload type and payload untouched");

        let (mut buf, len) = rtp(pt, seq, 0xbbbb);
        let plain = buf;
        let n = bridge_tx.protect_rtp(&mut buf, len).unwrap().len();
        let t = relay
            .handle_datagram(now, SocketId(2), bridge_addr, &mut buf, n)
            .expect("bridge -> phone relayed");
        assert_eq!((t.socket, t.dest), (SocketId(0), phone_addr));
        let wire = t.packet.as_bytes();
        let mut got = [0u8; 1500];
        got[..wire.len()].copy_from_slice(wire);
        let m = phone_rx.unprotect_rtp(&mut got, wire.len()).unwrap();
        assert_eq!(got[..m], plain[..len]);
    }
}

#[test]
fn answers_to_the_same_offer_never_repeat_a_key() {
    let local = LocalMedia::new(addr("192.0.2.1:30000"));
    let offer_sd = sdp(CISCO_TRUNK);
    let trunk = Policy::trunk_default();
    let (a1, n1) = answer(&offer_sd, &trunk, &local).unwrap();
    let (a2, n2) = answer(&offer_sd, &trunk, &local).unwrap();
    // Tag 3 is the trunk's only allowed suite in the CUBE's list.
    assert_eq!(n1.crypto_tag, 3);
    assert!(same(&n1.inbound, &key(Suite::AesCm128HmacSha1_80, CM128_B)));
    assert!(!same(&n1.outbound, &n1.inbound));
    assert!(!same(&n1.outbound, &n2.outbound));
    assert_ne!(a1.origin.session_id, a2.origin.session_id);
    // Our answer never carries a received key.
    for received in [GCM256_B, GCM128, CM128_B, CM128_D] {
        assert!(!a1.print().contains(received));
    }
    // Offers: one fresh key per allowed suite, tags 1..n, all distinct.
    let codecs = Codecs::new(vec![Codec::new(0, "PCMU", 8000, None)]);
    let (o1, _) = offer(&codecs, &Policy::phone_default(), &local).unwrap();
    let (o2, _) = offer(&codecs, &Policy::phone_default(), &local).unwrap();
    let keys: Vec<MasterKey> = [&o1, &o2]
        .iter()
        .flat_map(|o| (1..=3).map(|t| key_in(o, t)))
        .collect();
    let suites: Vec<Suite> = keys[..3].iter().map(MasterKey::suite).collect();
    assert_eq!(suites, Policy::phone_default().suites());
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert!(!same(a, b));
        }
    }
}

#[test]
fn real_world_offers_are_answered_as_expected() {
    let local = LocalMedia::new(addr("192.0.2.1:30000"));
    let phone = Policy::phone_default();
    // baresip: tag 2 (AES_CM_128_HMAC_SHA1_80) in its order, rtcp-mux agreed.
    let (a, n) = answer(&sdp(BARESIP), &phone, &local).unwrap();
    assert_eq!((n.crypto_tag, n.suite), (2, Suite::AesCm128HmacSha1_80));
    assert_eq!(n.payload_types(), vec![96, 0, 8, 101]);
    assert!(n.rtcp_mux);
    assert!(a.media[0].rtcp().is_none());
    // baresip without rtcp-mux support on our side: its a=rtcp port is used
    // and ours is announced.
    let no_mux = LocalMedia {
        rtcp: Some(addr("192.0.2.1:30001")),
        rtcp_mux: false,
        ..local
    };
    let (a, n) = answer(&sdp(BARESIP), &phone, &no_mux).unwrap();
    assert_eq!(n.remote_rtcp, Some(addr("192.0.2.10:10005")));
    assert!(!a.media[0].rtcp_mux());
    assert_eq!(a.media[0].rtcp().map(|r| r.port), Some(30001));
    // The IPv6 opus phone: RTP/SAVPF answered as RTP/SAVPF, ptime/maxptime.
    let (a, n) = answer(&sdp(OPUS_IPV6), &phone, &local).unwrap();
    assert_eq!(a.media[0].proto, Proto::RtpSavpf);
    assert_eq!(n.remote_rtp, Some(addr("[2001:db8::10]:40000")));
    assert_eq!(n.suite, Suite::AeadAes128Gcm);
    assert_eq!(
        (a.media[0].ptime(), a.media[0].maxptime()),
        (Some(20), Some(120))
    );
    // SCIP: the audio stream with scip first, video refused with port 0;
    // RTCP at its own address.
    let (a, n) = answer(&sdp(SCIP), &phone, &no_mux).unwrap();
    assert_eq!(n.payload_types(), vec![118, 0, 101]);
    assert_eq!(n.crypto_tag, 9, "AES_256_CM is not in the phone policy");
    assert_eq!(n.remote_rtcp, Some(addr("192.0.2.78:30001")));
    assert_eq!(a.media.len(), 2);
    assert_eq!(
        (a.media[1].kind.clone(), a.media[1].port),
        (MediaType::Video, 0)
    );
    assert_eq!(a.media[1].payload_types(), &[119]);
    assert!(a.media[1].attributes.is_empty());
    let policy = Policy::new(&[Suite::AesCm256HmacSha1_80]).unwrap();
    let (_, n) = answer(&sdp(SCIP), &policy, &local).unwrap();
    assert_eq!((n.crypto_tag, n.suite), (7, Suite::AesCm256HmacSha1_80));
    // Round trip of every answer we produce.
    assert_eq!(SessionDescription::parse(a.print().as_bytes()).unwrap(), a);
    assert_eq!(*a.print(), wire(&a.print().replace("\r\n", "\n")));
}
