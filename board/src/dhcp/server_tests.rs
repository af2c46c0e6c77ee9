//! The phone side's server: DORA with the uplink's own client as the
//! peer, renewal, release, decline, exhaustion, the table's bound under a
//! flood, and every refusal.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::server::{ConfigError, NakReason, NoOffer, MAX_TABLE};
use super::wire::{self, parse_reply, MessageType, Request};
use super::*;

const KIT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
const MAC: [u8; 6] = [0x02, 0, 0, 0x77, 0, 0x20];
const SECONDS: fn(u64) -> Duration = Duration::from_secs;

fn addr(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, last)
}

fn config(pool: u8, table: usize) -> ServerConfig {
    let mut c = ServerConfig::new(KIT, 24, FIRST, addr(100 + pool - 1)).unwrap();
    c.max_leases = table;
    c
}

fn server(pool: u8, table: usize) -> Server {
    Server::new(config(pool, table)).unwrap()
}

struct Seeded(u64);

impl Random for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

fn msg(kind: MessageType, mac: [u8; 6]) -> Request {
    Request {
        kind,
        xid: 0x1234_5678,
        secs: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        broadcast: true,
        chaddr: mac,
        requested_ip: None,
        server_id: None,
    }
}

fn discover(mac: [u8; 6]) -> Vec<u8> {
    msg(MessageType::Discover, mac).encode()
}

fn select(mac: [u8; 6], a: Ipv4Addr) -> Vec<u8> {
    let mut r = msg(MessageType::Request, mac);
    r.requested_ip = Some(a);
    r.server_id = Some(KIT);
    r.encode()
}

fn renew(mac: [u8; 6], a: Ipv4Addr) -> Vec<u8> {
    let mut r = msg(MessageType::Request, mac);
    r.ciaddr = a;
    r.broadcast = false;
    r.encode()
}

/// A datagram with option 61 inserted before END.
fn with_client_id(mut b: Vec<u8>, id: &[u8]) -> Vec<u8> {
    let end = 240 + b[240..].iter().position(|&x| x == 255).unwrap();
    let mut opt = vec![61, id.len() as u8];
    opt.extend_from_slice(id);
    b.splice(end..end, opt);
    b
}

fn mac_n(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x10, b[0], b[1], b[2], b[3]]
}

fn drain(s: &mut Server) -> (Vec<ServerTransmit>, Vec<ServerEvent>) {
    let t = std::iter::from_fn(|| s.poll_transmit()).collect();
    let e = std::iter::from_fn(|| s.poll_event()).collect();
    (t, e)
}

/// DISCOVER then REQUEST for what was offered: the leased address.
fn lease(s: &mut Server, now: Instant, mac: [u8; 6]) -> Ipv4Addr {
    s.handle_datagram(now, &discover(mac)).unwrap();
    let (t, _) = drain(s);
    let offer = parse_reply(&t[0].payload).unwrap();
    s.handle_datagram(now, &select(mac, offer.yiaddr)).unwrap();
    let (t, e) = drain(s);
    assert_eq!(parse_reply(&t[0].payload).unwrap().kind, MessageType::Ack);
    assert!(matches!(e[0], ServerEvent::Bound { .. }), "{e:?}");
    offer.yiaddr
}

fn nak(s: &mut Server, now: Instant, datagram: &[u8], why: NakReason) {
    s.handle_datagram(now, datagram).unwrap();
    let (t, e) = drain(s);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].to, Ipv4Addr::BROADCAST);
    let r = parse_reply(&t[0].payload).unwrap();
    assert_eq!(r.kind, MessageType::Nak);
    assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(
        matches!(e[..], [ServerEvent::Nak { reason, .. }] if reason == why),
        "{e:?}"
    );
}

#[test]
fn our_client_gets_a_lease_without_router_or_dns_and_the_sip_server() {
    let t0 = Instant::now();
    let mut s = server(32, 32);
    let mut c = Client::new(MAC, Seeded(7), t0);
    let mut sent = Vec::new();
    // Ferry datagrams both ways until the client is bound.
    for _ in 0..4 {
        while let Some(t) = c.poll_transmit() {
            assert_eq!(t.destination, Destination::Broadcast);
            s.handle_datagram(t0, &t.payload).unwrap();
        }
        while let Some(t) = s.poll_transmit() {
            assert_eq!(t.to, Ipv4Addr::BROADCAST);
            sent.push(t.payload.clone());
            c.handle_datagram(t0, &t.payload).unwrap();
        }
    }
    let Some(Event::Bound(l)) = c.poll_event() else {
        panic!("not bound: {c:?}")
    };
    assert_eq!(l.addr, FIRST);
    assert_eq!(l.prefix, 24);
    assert_eq!(l.router, None, "no default route for phones");
    assert!(l.dns.is_empty(), "no DNS server");
    assert_eq!(l.server, KIT);
    assert_eq!(
        (l.lease, l.t1, l.t2),
        (SECONDS(3600), SECONDS(1800), SECONDS(3150))
    );
    // OFFER and ACK: no option 3 or 6, option 120 = encoding 1 + KIT.
    assert_eq!(sent.len(), 2);
    for p in &sent {
        assert_eq!(wire::raw_option(p, 3), None);
        assert_eq!(wire::raw_option(p, 6), None);
        assert_eq!(wire::raw_option(p, 120).unwrap(), [1, 10, 77, 0, 1]);
        assert!(p.len() >= 300);
    }
    let (_, e) = drain(&mut s);
    assert_eq!(
        e,
        [
            ServerEvent::Offered {
                mac: MAC,
                addr: FIRST
            },
            ServerEvent::Bound {
                mac: MAC,
                addr: FIRST,
                lease: SECONDS(3600),
                renewed: false
            }
        ]
    );
    assert_eq!((s.table_len(), s.bound()), (1, 1));
    assert_eq!(s.next_timeout(), Some(t0 + SECONDS(3600)));
}

#[test]
fn a_unicast_renewal_is_acked_to_ciaddr_and_extends_the_lease() {
    let t0 = Instant::now();
    let mut s = server(8, 8);
    let a = lease(&mut s, t0, MAC);
    let t1 = t0 + SECONDS(1800);
    s.handle_timeout(t1);
    s.handle_datagram(t1, &renew(MAC, a)).unwrap();
    let (t, e) = drain(&mut s);
    assert_eq!(t[0].to, a, "unicast to the client's address");
    let r = parse_reply(&t[0].payload).unwrap();
    assert_eq!((r.kind, r.yiaddr), (MessageType::Ack, a));
    assert!(matches!(e[..], [ServerEvent::Bound { renewed: true, .. }]));
    assert_eq!(s.next_timeout(), Some(t1 + SECONDS(3600)));
    // Not renewed: the lease expires and the entry goes idle, but the
    // client still gets its address back, even after others came.
    let end = t1 + SECONDS(3600);
    s.handle_timeout(end);
    let (_, e) = drain(&mut s);
    assert_eq!(e, [ServerEvent::LeaseExpired { mac: MAC, addr: a }]);
    assert_eq!(s.bound(), 0);
    // An offer of it not taken up: the entry goes back to idle, not away.
    s.handle_datagram(end, &discover(MAC)).unwrap();
    drain(&mut s);
    let end = end + server::DEFAULT_OFFER_HOLD;
    s.handle_timeout(end);
    let (_, e) = drain(&mut s);
    assert_eq!(e, [ServerEvent::OfferExpired { mac: MAC, addr: a }]);
    assert_eq!((s.table_len(), s.next_timeout()), (1, None));
    let other = lease(&mut s, end, mac_n(1));
    assert_ne!(other, a);
    assert_eq!(lease(&mut s, end, MAC), a);
}

#[test]
fn the_client_identifier_keys_the_lease_and_is_echoed() {
    let t0 = Instant::now();
    let mut s = server(8, 8);
    let id = b"\x00phone-1";
    s.handle_datagram(t0, &with_client_id(discover(MAC), id))
        .unwrap();
    let (t, _) = drain(&mut s);
    assert_eq!(wire::raw_option(&t[0].payload, 61).unwrap(), id);
    let a = parse_reply(&t[0].payload).unwrap().yiaddr;
    // The same identifier from another MAC (a phone with a new adapter)
    // is the same client.
    let other_mac = mac_n(9);
    s.handle_datagram(t0, &with_client_id(select(other_mac, a), id))
        .unwrap();
    let (t, _) = drain(&mut s);
    assert_eq!(parse_reply(&t[0].payload).unwrap().kind, MessageType::Ack);
    // The bare MAC is another client, that holds nothing.
    nak(&mut s, t0, &select(MAC, a), NakReason::UnknownClient);
}

#[test]
fn release_frees_the_address_for_others_and_keeps_it_for_the_client() {
    let t0 = Instant::now();
    let mut s = server(1, 4);
    let a = lease(&mut s, t0, MAC);
    // The pool's one address is leased: another client gets nothing.
    s.handle_datagram(t0, &discover(mac_n(1))).unwrap();
    let (t, e) = drain(&mut s);
    assert!(t.is_empty());
    assert_eq!(
        e,
        [ServerEvent::NoOffer {
            mac: mac_n(1),
            reason: NoOffer::PoolExhausted
        }]
    );
    let mut r = msg(MessageType::Release, MAC);
    r.ciaddr = a;
    r.server_id = Some(KIT);
    // A release of an address not held, or for another server, is refused.
    let mut wrong = r.clone();
    wrong.ciaddr = addr(200);
    assert_eq!(
        s.handle_datagram(t0, &wrong.encode()),
        Err(Refused::NotHeld(addr(200)))
    );
    wrong = r.clone();
    wrong.server_id = Some(addr(2));
    assert_eq!(
        s.handle_datagram(t0, &wrong.encode()),
        Err(Refused::OtherServer(addr(2)))
    );
    s.handle_datagram(t0, &r.encode()).unwrap();
    let (t, e) = drain(&mut s);
    assert!(t.is_empty(), "RELEASE has no answer");
    assert_eq!(e, [ServerEvent::Released { mac: MAC, addr: a }]);
    assert_eq!(s.bound(), 0);
    // The client asks again first: same address.
    assert_eq!(lease(&mut s, t0, MAC), a);
    s.handle_datagram(t0, &r.encode()).unwrap();
    // Another client asks first: the idle address is its.
    assert_eq!(lease(&mut s, t0, mac_n(1)), a);
}

#[test]
fn a_declined_address_is_out_of_use_for_the_decline_hold() {
    let t0 = Instant::now();
    let mut s = server(2, 8);
    let a = lease(&mut s, t0, MAC);
    let mut d = msg(MessageType::Decline, MAC);
    d.requested_ip = Some(a);
    d.server_id = Some(KIT);
    let mut no_id = d.clone();
    no_id.server_id = None;
    assert_eq!(
        s.handle_datagram(t0, &no_id.encode()),
        Err(Refused::NoServerId)
    );
    // Someone else cannot decline it for the client.
    let mut other = d.clone();
    other.chaddr = mac_n(5);
    assert_eq!(
        s.handle_datagram(t0, &other.encode()),
        Err(Refused::NotHeld(a))
    );
    s.handle_datagram(t0, &d.encode()).unwrap();
    let (_, e) = drain(&mut s);
    assert_eq!(e, [ServerEvent::Declined { mac: MAC, addr: a }]);
    // The client starts over and gets the other address; a third client
    // gets none while the declined one is held.
    let b = lease(&mut s, t0, MAC);
    assert_ne!(a, b);
    s.handle_datagram(t0, &discover(mac_n(1))).unwrap();
    let (_, e) = drain(&mut s);
    assert!(matches!(
        e[..],
        [ServerEvent::NoOffer {
            reason: NoOffer::PoolExhausted,
            ..
        }]
    ));
    let end = t0 + server::DEFAULT_DECLINE_HOLD;
    assert_eq!(s.next_timeout(), Some(end));
    s.handle_timeout(end);
    let (_, e) = drain(&mut s);
    assert_eq!(e, [ServerEvent::DeclineEnded { addr: a }]);
    assert_eq!(lease(&mut s, end, mac_n(1)), a);
}

#[test]
fn requests_for_what_was_not_offered_are_naked() {
    let t0 = Instant::now();
    let mut s = server(8, 8);
    // SELECTING without an offer, INIT-REBOOT and renewal from a client
    // the server does not know.
    nak(&mut s, t0, &select(MAC, FIRST), NakReason::UnknownClient);
    let mut reboot = msg(MessageType::Request, MAC);
    reboot.requested_ip = Some(FIRST);
    nak(&mut s, t0, &reboot.encode(), NakReason::UnknownClient);
    nak(&mut s, t0, &renew(MAC, FIRST), NakReason::UnknownClient);
    // Outside the pool, and the kit's own address.
    nak(&mut s, t0, &select(MAC, addr(5)), NakReason::OutsidePool);
    nak(&mut s, t0, &select(MAC, KIT), NakReason::OutsidePool);
    reboot.requested_ip = Some(Ipv4Addr::new(192, 168, 1, 7));
    nak(&mut s, t0, &reboot.encode(), NakReason::OutsidePool);
    // Offered one address, asking for another.
    s.handle_datagram(t0, &discover(MAC)).unwrap();
    drain(&mut s);
    nak(&mut s, t0, &select(MAC, addr(101)), NakReason::NotOffered);
    // The offer's hold passes: requesting it now is too late.
    let late = t0 + server::DEFAULT_OFFER_HOLD;
    assert_eq!(s.next_timeout(), Some(late));
    s.handle_timeout(late);
    let (_, e) = drain(&mut s);
    assert_eq!(
        e,
        [ServerEvent::OfferExpired {
            mac: MAC,
            addr: FIRST
        }]
    );
    nak(&mut s, late, &select(MAC, FIRST), NakReason::UnknownClient);
    assert_eq!(s.table_len(), 0);
    assert_eq!(s.stats().naks, 8);
    // A request naming another server withdraws our offer.
    s.handle_datagram(t0, &discover(MAC)).unwrap();
    drain(&mut s);
    let mut r = msg(MessageType::Request, MAC);
    r.requested_ip = Some(addr(50));
    r.server_id = Some(addr(2));
    s.handle_datagram(t0, &r.encode()).unwrap();
    let (t, e) = drain(&mut s);
    assert!(t.is_empty());
    assert_eq!(
        e,
        [ServerEvent::OfferWithdrawn {
            mac: MAC,
            addr: FIRST
        }]
    );
    assert_eq!(s.table_len(), 0);
    assert_eq!(
        s.handle_datagram(t0, &r.encode()),
        Err(Refused::OtherServer(addr(2)))
    );
}

#[test]
fn inform_gets_the_configuration_without_a_lease() {
    let t0 = Instant::now();
    let mut s = server(8, 8);
    let mut r = msg(MessageType::Inform, MAC);
    r.ciaddr = addr(20);
    s.handle_datagram(t0, &r.encode()).unwrap();
    let (t, e) = drain(&mut s);
    assert_eq!(t[0].to, addr(20));
    let p = &t[0].payload;
    let a = parse_reply(p).unwrap();
    assert_eq!(
        (a.kind, a.yiaddr, a.lease_secs),
        (MessageType::Ack, Ipv4Addr::UNSPECIFIED, None)
    );
    assert_eq!(wire::raw_option(p, 120).unwrap(), [1, 10, 77, 0, 1]);
    assert_eq!(
        e,
        [ServerEvent::Informed {
            mac: MAC,
            addr: addr(20)
        }]
    );
    assert_eq!(s.table_len(), 0);
    r.ciaddr = Ipv4Addr::new(192, 168, 1, 2);
    assert_eq!(
        s.handle_datagram(t0, &r.encode()),
        Err(Refused::BadCiaddr(r.ciaddr))
    );
}

#[test]
fn a_full_pool_gives_no_offer_and_counts_it() {
    let t0 = Instant::now();
    let mut s = server(3, 8);
    let got: Vec<_> = (0..3).map(|n| lease(&mut s, t0, mac_n(n))).collect();
    assert_eq!(got, [addr(100), addr(101), addr(102)]);
    for n in 3..6 {
        s.handle_datagram(t0, &discover(mac_n(n))).unwrap();
    }
    let (t, _) = drain(&mut s);
    assert!(t.is_empty());
    assert_eq!(s.stats().no_offer_pool_exhausted, 3);
    // A bound client rebooting (DISCOVER again) still gets its address.
    s.handle_datagram(t0, &discover(mac_n(1))).unwrap();
    let (t, _) = drain(&mut s);
    assert_eq!(parse_reply(&t[0].payload).unwrap().yiaddr, addr(101));
    assert_eq!(s.bound(), 3);
}

/// 10,000 DISCOVERs from random MACs: the table stays at its bound, the
/// bound phones keep their leases, and once the offers' hold has passed
/// a new phone is served.
#[test]
fn a_flood_of_random_macs_fills_the_table_once_and_evicts_no_lease() {
    let t0 = Instant::now();
    let mut s = server(150, 32);
    let phones: Vec<_> = (0..5)
        .map(|n| (mac_n(n), lease(&mut s, t0, mac_n(n))))
        .collect();
    let mut rng = Seeded(99);
    let mut offers = 0;
    for i in 0..10_000u32 {
        let mut mac = [0u8; 6];
        rng.fill(&mut mac);
        mac[0] = (mac[0] & 0xfe) | 0x02;
        let now = t0 + Duration::from_millis(u64::from(i));
        s.handle_datagram(now, &discover(mac)).unwrap();
        let (t, _) = drain(&mut s);
        offers += t.len();
        assert!(s.table_len() <= 32);
    }
    // The flood lasted 10 s, shorter than the hold: 27 offers, no more.
    assert_eq!(offers, 27);
    assert_eq!(s.stats().no_offer_table_full, 10_000 - 27);
    assert_eq!(s.bound(), 5);
    let t = t0 + SECONDS(10);
    for (mac, a) in &phones {
        s.handle_datagram(t, &renew(*mac, *a)).unwrap();
        let (tx, _) = drain(&mut s);
        assert_eq!(parse_reply(&tx[0].payload).unwrap().kind, MessageType::Ack);
    }
    // Still full for a new phone until the hold passes.
    s.handle_datagram(t, &discover(mac_n(100))).unwrap();
    assert!(drain(&mut s).0.is_empty());
    let after_hold = t + server::DEFAULT_OFFER_HOLD;
    s.handle_timeout(after_hold);
    assert_eq!(s.table_len(), 5);
    lease(&mut s, after_hold, mac_n(100));
    assert_eq!(s.bound(), 6);
}

fn refused(s: &mut Server, datagram: &[u8], why: Refused) {
    let before = s.table_len();
    assert_eq!(s.handle_datagram(Instant::now(), datagram), Err(why));
    assert_eq!(s.table_len(), before);
    let (t, e) = drain(s);
    assert!(t.is_empty() && e.is_empty(), "{t:?} {e:?}");
}

#[test]
fn malformed_datagrams_are_refused_with_their_reason() {
    let mut s = server(8, 8);
    let d = discover(MAC);
    let at = |i: usize, v: u8| {
        let mut b = d.clone();
        b[i] = v;
        b
    };
    refused(&mut s, &d[..239], Refused::Truncated);
    refused(&mut s, &[], Refused::Truncated);
    refused(&mut s, &vec![0; 2000], Refused::Oversize(2000));
    refused(&mut s, &at(0, 2), Refused::NotBootRequest);
    refused(&mut s, &at(1, 6), Refused::NotEthernet);
    refused(&mut s, &at(2, 16), Refused::NotEthernet);
    refused(&mut s, &at(236, 0), Refused::NoMagicCookie);
    refused(
        &mut s,
        &at(24, 10),
        Refused::Relayed(Ipv4Addr::new(10, 0, 0, 0)),
    );
    let end = 240 + d[240..].iter().position(|&x| x == 255).unwrap();
    refused(&mut s, &d[..end], Refused::NoEndOption);
    refused(&mut s, &at(end + 1, 7), Refused::TrailingData);
    // Message type first: [53, 1, 1].
    refused(&mut s, &at(242, 9), Refused::UnknownMessageType(9));
    refused(
        &mut s,
        &at(242, 2),
        Refused::NotClientMessage(MessageType::Offer),
    );
    refused(&mut s, &at(240, 60), Refused::NoMessageType);
    // Options written by hand after the fixed header and cookie.
    let opts = |o: &[u8]| [&d[..240], o, &[255]].concat();
    refused(&mut s, &opts(&[53, 2, 1, 1]), Refused::BadOptionLength(53));
    refused(&mut s, &at(241, 200), Refused::OptionPastEnd(53));
    refused(&mut s, &at(240, 52), Refused::OptionOverload);
    refused(
        &mut s,
        &opts(&[53, 1, 3, 50, 3, 10, 77, 0, 54, 4, 10, 77, 0, 1]),
        Refused::BadOptionLength(50),
    );
    refused(
        &mut s,
        &opts(&[53, 1, 3, 50, 4, 10, 77, 0, 100, 54, 5, 10, 77, 0, 1, 0]),
        Refused::BadOptionLength(54),
    );
    // Two message types are concatenated (RFC 3396): two bytes.
    refused(
        &mut s,
        &opts(&[53, 1, 1, 53, 1, 1]),
        Refused::BadOptionLength(53),
    );
    refused(
        &mut s,
        &with_client_id(d.clone(), &[1]),
        Refused::BadOptionLength(61),
    );
    refused(&mut s, &discover([0; 6]), Refused::BadChaddr);
    refused(&mut s, &discover([0xff; 6]), Refused::BadChaddr);
    refused(
        &mut s,
        &discover([0x01, 0, 0x5e, 0, 0, 1]),
        Refused::BadChaddr,
    );
    // REQUEST shapes RFC 2131 table 5 does not have.
    let mut r = msg(MessageType::Request, MAC);
    r.server_id = Some(KIT);
    refused(&mut s, &r.encode(), Refused::NoRequestedAddress);
    r.requested_ip = Some(FIRST);
    r.ciaddr = FIRST;
    refused(&mut s, &r.encode(), Refused::BadCiaddr(FIRST));
    r.server_id = None;
    r.requested_ip = Some(addr(101));
    refused(&mut s, &r.encode(), Refused::BadCiaddr(FIRST));
    refused(
        &mut s,
        &msg(MessageType::Request, MAC).encode(),
        Refused::NoRequestedAddress,
    );
    assert_eq!(s.stats().refused, 27);
    // Every name is stable and kebab-case.
    assert_eq!(Refused::Relayed(KIT).reason(), "relayed");
    assert_eq!(Refused::NotHeld(KIT).reason(), "not-held");
}

#[test]
fn configurations_are_validated() {
    let ok = config(8, 8);
    let bad = |f: &dyn Fn(&mut ServerConfig)| {
        let mut c = ok.clone();
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert_eq!(bad(&|c| c.prefix = 31), ConfigError::BadPrefix(31));
    assert_eq!(
        bad(&|c| c.addr = addr(255)),
        ConfigError::NotHost(addr(255))
    );
    let outside = Ipv4Addr::new(10, 78, 0, 5);
    assert!(matches!(
        bad(&|c| c.pool_last = outside),
        ConfigError::BadPool(..)
    ));
    assert!(matches!(
        bad(&|c| c.pool_first = addr(200)),
        ConfigError::BadPool(..)
    ));
    assert!(matches!(
        bad(&|c| {
            c.pool_first = KIT;
            c.pool_last = KIT;
        }),
        ConfigError::BadPool(..)
    ));
    assert_eq!(
        bad(&|c| c.lease = SECONDS(10)),
        ConfigError::BadLease(SECONDS(10))
    );
    assert_eq!(
        bad(&|c| c.offer_hold = SECONDS(0)),
        ConfigError::BadHold(SECONDS(0))
    );
    assert_eq!(
        bad(&|c| c.max_leases = MAX_TABLE + 1),
        ConfigError::BadTableSize(MAX_TABLE + 1)
    );
    assert_eq!(bad(&|c| c.max_leases = 0), ConfigError::BadTableSize(0));
    // The kit's own address inside the pool is skipped.
    let mut c = ok.clone();
    c.pool_first = KIT;
    let mut s = Server::new(c).unwrap();
    assert_eq!(lease(&mut s, Instant::now(), MAC), addr(2));
}

/// Mutations of valid client messages (bytes flipped, cut, stretched)
/// never panic, and the table never passes its bound.
#[test]
fn mutated_client_messages_never_panic() {
    let mut r = msg(MessageType::Release, MAC);
    r.ciaddr = FIRST;
    r.server_id = Some(KIT);
    let mut dec = r.clone();
    dec.kind = MessageType::Decline;
    dec.requested_ip = Some(FIRST);
    let mut inform = msg(MessageType::Inform, MAC);
    inform.ciaddr = addr(9);
    let valid = [
        discover(MAC),
        with_client_id(discover(MAC), b"\x01abc"),
        select(MAC, FIRST),
        renew(MAC, FIRST),
        r.encode(),
        dec.encode(),
        inform.encode(),
    ];
    let mut rng = Seeded(0x5eed);
    let mut n = || {
        let mut b = [0u8; 4];
        rng.fill(&mut b);
        u32::from_be_bytes(b) as usize
    };
    let t0 = Instant::now();
    let mut s = server(16, 8);
    for i in 0..30_000 {
        let mut m = valid[i % valid.len()].clone();
        match n() % 5 {
            0 => {
                let at = n() % m.len();
                m[at] ^= 1 << (n() % 8);
            }
            1 => m.truncate(n() % m.len()),
            2 => {
                let at = 240 + n() % (m.len() - 240);
                m[at] = n() as u8;
            }
            3 => {
                // The MAC's last byte: many clients.
                m[33] = n() as u8;
            }
            _ => m.extend((0..n() % 64).map(|_| n() as u8)),
        }
        let now = t0 + Duration::from_millis(i as u64 * 10);
        let _ = s.handle_datagram(now, &m);
        let _ = wire::parse_client(&m);
        drain(&mut s);
        assert!(s.table_len() <= 8);
        if let Some(t) = s.next_timeout().filter(|&t| t <= now) {
            s.handle_timeout(t);
        }
    }
    assert!(s.stats().offers > 0 && s.stats().refused > 0);
}
