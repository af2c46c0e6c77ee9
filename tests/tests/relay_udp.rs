//! The relay's socket layer over real UDP on loopback: a phone and a bridge
//! endpoint exchange SRTP through `RelayHandle`; the test checks
//! re-encryption with per-leg keys, latching, replay and forgery drops,
//! RTCP on its own port, port allocation and the inactivity event.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dialgate::relay::net::{NetConfig, RelayHandle};
use dialgate::relay::{Event, LegConfig, LocalLeg, RelayConfig};
use dialgate::srtp::{MasterKey, Protector, Suite, Unprotector};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Endpoint {
    sock: UdpSocket,
    rtcp: UdpSocket,
    tx: Protector,
    rx: Unprotector,
}

impl Endpoint {
    fn new(send_key: &MasterKey, recv_key: &MasterKey) -> Endpoint {
        let sock = UdpSocket::bind((LO, 0)).unwrap();
        let rtcp = UdpSocket::bind((LO, 0)).unwrap();
        for s in [&sock, &rtcp] {
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
        }
        Endpoint {
            sock,
            rtcp,
            tx: Protector::new(send_key).unwrap(),
            rx: Unprotector::new(recv_key).unwrap(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Sends RTP with `seq` to `to`; returns the wire bytes.
    fn send(&mut self, to: SocketAddr, seq: u16, ssrc: u32, fill: u8) -> Vec<u8> {
        let mut b = [0u8; 1500];
        b[0] = 0x80;
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[8..12].copy_from_slice(&ssrc.to_be_bytes());
        b[12..172].fill(fill);
        let p = self.tx.protect_rtp(&mut b, 172).unwrap();
        self.sock.send_to(p.as_bytes(), to).unwrap();
        p.as_bytes().to_vec()
    }

    /// Receives one packet and unprotects it; `None` on timeout.
    fn recv(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut b = [0u8; 1500];
        let (n, _) = self.sock.recv_from(&mut b).ok()?;
        let wire = b[..n].to_vec();
        let m = self
            .rx
            .unprotect_rtp(&mut b, n)
            .expect("relay output authenticates");
        Some((wire, b[..m].to_vec()))
    }
}

fn keys() -> [MasterKey; 4] {
    [
        MasterKey::generate(Suite::AeadAes128Gcm).unwrap(),
        MasterKey::generate(Suite::AeadAes128Gcm).unwrap(),
        MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap(),
        MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap(),
    ]
}

fn start(inactivity: Duration, port_min: u16) -> RelayHandle {
    start_with(inactivity, port_min, false)
}

/// `connect_latched`: each latched socket gets a connected sibling.
fn start_with(inactivity: Duration, port_min: u16, connect_latched: bool) -> RelayHandle {
    RelayHandle::spawn(NetConfig {
        relay: RelayConfig {
            inactivity,
            ..RelayConfig::default()
        },
        port_min,
        port_max: port_min + 99,
        connect_latched,
        ..NetConfig::default()
    })
    .unwrap()
}

fn call(
    relay: &RelayHandle,
    k: &[MasterKey; 4],
    phone: &Endpoint,
    bridge: &Endpoint,
    mux: bool,
) -> (LocalLeg, LocalLeg, dialgate::relay::CallId) {
    let [a_in, a_out, b_in, b_out] = k;
    let la = relay.allocate(LO, mux).unwrap();
    let lb = relay.allocate(LO, mux).unwrap();
    let id = relay
        .add_call(
            (
                la,
                LegConfig {
                    rtp: la.rtp,
                    rtcp: la.rtcp.map(|r| r.0),
                    remote_rtp: Some(phone.addr()),
                    remote_rtcp: Some(phone.rtcp.local_addr().unwrap()),
                    inbound: a_in.clone(),
                    outbound: a_out.clone(),
                },
            ),
            (
                lb,
                LegConfig {
                    rtp: lb.rtp,
                    rtcp: lb.rtcp.map(|r| r.0),
                    remote_rtp: Some(bridge.addr()),
                    remote_rtcp: Some(bridge.rtcp.local_addr().unwrap()),
                    inbound: b_in.clone(),
                    outbound: b_out.clone(),
                },
            ),
        )
        .unwrap();
    (la, lb, id)
}

#[test]
fn relays_and_reencrypts_over_udp() {
    let relay = start(Duration::from_secs(30), 41000);
    let k = keys();
    let [a_in, a_out, b_in, b_out] = &k;
    let mut phone = Endpoint::new(a_in, a_out);
    let mut bridge = Endpoint::new(b_in, b_out);
    let (la, lb, id) = call(&relay, &k, &phone, &bridge, true);
    assert!((41000..=41099).contains(&la.rtp_addr.port()));
    assert_eq!(la.rtp_addr.port() % 2, 0);
    assert!(la.rtcp.is_none());

    for seq in 0..50u16 {
        let sent = phone.send(la.rtp_addr, seq, 0x1111, seq as u8);
        let (wire, plain) = bridge.recv().expect("bridge receives");
        assert_eq!(plain[12..], [seq as u8; 160]);
        assert_ne!(wire[12..172], sent[12..172], "different key on each leg");
        assert_ne!(
            wire[12..172],
            plain[12..172],
            "nothing in clear on the wire"
        );
        assert_eq!(wire.len(), 182, "GCM in, AES-CM-80 out");

        let sent = bridge.send(lb.rtp_addr, seq, 0x2222, 0x80 | seq as u8);
        let (wire, plain) = phone.recv().expect("phone receives");
        assert_eq!(plain[12..], [0x80 | seq as u8; 160]);
        assert_ne!(wire[12..172], sent[12..172]);
        assert_eq!(wire.len(), 188);
    }
    let [a, b] = relay.stats(id).unwrap().unwrap();
    assert_eq!(
        (a.rx_packets, b.tx_packets, b.rx_packets, a.tx_packets),
        (50, 50, 50, 50)
    );
    // The leg latched to the phone's real source address.
    let ev: Vec<Event> = relay.events().try_iter().collect();
    assert!(ev.contains(&Event::Latched {
        call: id,
        leg: dialgate::relay::LegSide::A,
        addr: phone.addr()
    }));
}

#[test]
fn drops_replays_forgeries_and_strangers_over_udp() {
    strangers(false, 41200);
}

/// The same with connected siblings: the far end's packets arrive on the
/// sibling, the stranger's still on the leg's own socket, where the relay
/// counts it.
#[test]
fn drops_replays_forgeries_and_strangers_with_connected_legs() {
    strangers(true, 41700);
}

fn strangers(connect_latched: bool, port_min: u16) {
    let relay = start_with(Duration::from_secs(30), port_min, connect_latched);
    let k = keys();
    let [a_in, a_out, b_in, b_out] = &k;
    let mut phone = Endpoint::new(a_in, a_out);
    let mut bridge = Endpoint::new(b_in, b_out);
    let (la, _lb, id) = call(&relay, &k, &phone, &bridge, true);

    let first = phone.send(la.rtp_addr, 1, 0x1111, 1);
    assert!(bridge.recv().is_some());
    // Replay the captured packet three times.
    for _ in 0..3 {
        phone.sock.send_to(&first, la.rtp_addr).unwrap();
    }
    // A forged packet with a fresh sequence number.
    let mut forged = first.clone();
    forged[3] = 9;
    forged[50] ^= 0xff;
    phone.sock.send_to(&forged, la.rtp_addr).unwrap();
    // A genuine packet sent from a stranger's socket: leg A has latched.
    let stranger = UdpSocket::bind((LO, 0)).unwrap();
    let mut other = Endpoint::new(a_in, a_out);
    let genuine = other.send(SocketAddr::new(LO, 9), 2, 0x1111, 2);
    stranger.send_to(&genuine, la.rtp_addr).unwrap();
    // Then a good one, which must be the only other thing the bridge sees.
    phone.send(la.rtp_addr, 3, 0x1111, 3);
    let (_, plain) = bridge.recv().expect("good packet relayed");
    assert_eq!(plain[12], 3);
    bridge
        .sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 1500];
    assert!(
        bridge.sock.recv_from(&mut b).is_err(),
        "nothing else relayed"
    );

    let [a, _] = relay.stats(id).unwrap().unwrap();
    assert_eq!(
        (a.rx_packets, a.replayed, a.auth_failed, a.foreign_source),
        (2, 3, 1, 1)
    );
    // Only leg A heard its far end (the bridge sent nothing).
    let connected = relay.counters().unwrap().connected;
    assert_eq!(connected, usize::from(connect_latched));
    relay.remove_call(id).unwrap();
    assert_eq!(relay.counters().unwrap().connected, 0, "siblings closed");
}

#[test]
fn rtcp_on_its_own_port_over_udp() {
    let relay = start(Duration::from_secs(30), 41400);
    let k = keys();
    let [a_in, a_out, b_in, b_out] = &k;
    let mut phone = Endpoint::new(a_in, a_out);
    let mut bridge = Endpoint::new(b_in, b_out);
    let (la, _lb, _id) = call(&relay, &k, &phone, &bridge, false);
    let (rtcp_id, rtcp_addr) = la.rtcp.expect("separate RTCP port");
    assert_ne!(rtcp_id, la.rtp);
    assert_eq!(rtcp_addr.port(), la.rtp_addr.port() + 1);

    let mut b = [0u8; 1500];
    b[..8].copy_from_slice(&[0x81, 201, 0, 7, 0, 0, 0x11, 0x11]);
    b[8..32].fill(0x42);
    let p = phone.tx.protect_rtcp(&mut b, 32).unwrap();
    phone.rtcp.send_to(p.as_bytes(), rtcp_addr).unwrap();
    let mut r = [0u8; 1500];
    let (n, from) = bridge
        .rtcp
        .recv_from(&mut r)
        .expect("bridge RTCP port receives");
    assert_eq!(from.port(), _lb.rtcp.unwrap().1.port());
    let m = bridge.rx.unprotect_rtcp(&mut r, n).unwrap();
    assert_eq!(r[..m][8..], [0x42; 24]);
}

#[test]
fn inactivity_event_and_cleanup_over_udp() {
    let relay = start(Duration::from_secs(1), 41600);
    let k = keys();
    let [a_in, a_out, b_in, b_out] = &k;
    let mut phone = Endpoint::new(a_in, a_out);
    let bridge = Endpoint::new(b_in, b_out);
    let (la, _lb, id) = call(&relay, &k, &phone, &bridge, true);
    phone.send(la.rtp_addr, 1, 0x1111, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut inactive = false;
    while Instant::now() < deadline && !inactive {
        if let Ok(ev) = relay.events().recv_timeout(Duration::from_millis(200)) {
            inactive = ev == Event::Inactive { call: id };
        }
    }
    assert!(inactive, "inactivity event raised");
    let stats = relay.remove_call(id).unwrap().expect("call existed");
    assert_eq!(stats[0].rx_packets, 1);
    // Sockets are closed and ports return to the pool: the next allocation
    // can bind them again.
    assert_eq!(relay.counters().unwrap().calls, 0);
    let again = relay.allocate(LO, true).unwrap();
    assert!((41600..=41699).contains(&again.rtp_addr.port()));
    relay.release(again).unwrap();
}

#[test]
fn port_range_exhaustion_is_an_error_not_a_hang() {
    let relay = RelayHandle::spawn(NetConfig {
        port_min: 41800,
        port_max: 41803,
        ..NetConfig::default()
    })
    .unwrap();
    let a = relay.allocate(LO, false).unwrap();
    let b = relay.allocate(LO, false).unwrap();
    let err = relay.allocate(LO, false).unwrap_err();
    assert!(err.to_string().contains("exhausted"), "{err}");
    relay.release(a).unwrap();
    relay.release(b).unwrap();
    assert!(relay.allocate(LO, true).is_ok());
}

#[test]
fn a_leg_is_rekeyed_over_udp_while_the_call_runs() {
    let relay = start(Duration::from_secs(30), 41500);
    let k = keys();
    let [a_in, a_out, b_in, b_out] = &k;
    let mut phone = Endpoint::new(a_in, a_out);
    let mut bridge = Endpoint::new(b_in, b_out);
    let (la, lb, id) = call(&relay, &k, &phone, &bridge, true);
    phone.send(la.rtp_addr, 1, 0x1111, 1);
    assert!(bridge.recv().is_some());
    // The phone's re-INVITE brought new keys for its leg.
    let new_in = MasterKey::generate(Suite::AeadAes256Gcm).unwrap();
    let new_out = MasterKey::generate(Suite::AeadAes256Gcm).unwrap();
    relay
        .rekey(
            id,
            dialgate::relay::LegSide::A,
            Some(new_in.clone()),
            Some(new_out.clone()),
        )
        .unwrap();
    let mut phone = Endpoint {
        tx: Protector::new(&new_in).unwrap(),
        rx: Unprotector::new(&new_out).unwrap(),
        ..phone
    };
    // RTP sequence numbers go on across a re-key (only SRTP restarts).
    for seq in 2..22u16 {
        phone.send(la.rtp_addr, seq, 0x1111, seq as u8);
        let (_, plain) = bridge.recv().expect("bridge receives after re-key");
        assert_eq!(plain[12..], [seq as u8; 160]);
        bridge.send(lb.rtp_addr, 100 + seq, 0x2222, 0x40);
        let (wire, _) = phone.recv().expect("phone decrypts with its new key");
        assert_eq!(wire.len(), 172 + 16, "AES-256-GCM towards the phone now");
    }
    let [a, b] = relay.stats(id).unwrap().unwrap();
    assert_eq!(a.dropped() + b.dropped(), 0);
}

/// The gateway's self-test call (`dialgate::daemon::selftest`) through a
/// running relay passes for every suite, and fails with the reason when
/// the relay cannot carry the call.
#[test]
fn the_self_test_call_passes_through_a_relay_and_fails_when_it_cannot() {
    use dialgate::daemon::selftest;
    let relay = start(Duration::from_secs(30), 41300);
    let report = selftest::run(&relay, LO, LO, &Suite::ALL).expect("self-test passes");
    assert!(report.took < Duration::from_secs(5), "{report:?}");
    assert_eq!(report.connected, 0, "no connected siblings unless asked");
    // Its sockets are closed again: the whole range is free.
    let legs: Vec<_> = (0..50).map(|_| relay.allocate(LO, true).unwrap()).collect();
    assert_eq!(legs.len(), 50);
    // No port left for its legs: a failure, named.
    let e = selftest::run(&relay, LO, LO, &[Suite::AeadAes128Gcm]).unwrap_err();
    assert!(e.to_string().contains("port range exhausted"), "{e}");
    for l in legs {
        relay.release(l).unwrap();
    }
    // Freed again, it passes again.
    selftest::run(&relay, LO, LO, &[Suite::AesCm128HmacSha1_32]).expect("passes again");
}

#[test]
fn the_self_test_reports_the_connected_siblings_of_a_connecting_relay() {
    use dialgate::daemon::selftest;
    // What `[media] connect_latched = true` gives the gateway's relay: the
    // self-test's two legs latch and each gets its connected sibling, and
    // the media still flows both ways through them, every suite.
    let relay = start_with(Duration::from_secs(30), 41900, true);
    let report = selftest::run(&relay, LO, LO, &Suite::ALL).expect("self-test passes");
    assert_eq!(report.connected, 2, "{report:?}");
    // The calls are gone, their siblings with them.
    assert_eq!(relay.counters().unwrap().connected, 0);
}
