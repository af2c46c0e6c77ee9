//! The client against a recorded dnsmasq exchange, every hostile reply
//! the module refuses, and its timers on a virtual clock.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::wire::{self, parse_request, MessageType, ReplyBuilder};
use super::*;

const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x77, 0x00, 0x10];
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 50);
const SECONDS: fn(u64) -> Duration = Duration::from_secs;

/// Randomness that hands out the bytes it was given, then zeros.
struct Bytes(VecDeque<u8>);

impl Bytes {
    fn new(b: &[u8]) -> Self {
        Bytes(b.iter().copied().collect())
    }
}

impl Random for Bytes {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.0.pop_front().unwrap_or(0);
        }
    }
}

/// Randomness from a fixed-seed generator (xorshift), or all 0xff.
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

struct Frame {
    number: u32,
    kind: u8,
    xid: u32,
    payload: Vec<u8>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn recorded() -> Vec<Frame> {
    include_str!("fixtures/dnsmasq-2.90.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Frame {
                number: f[0].parse().unwrap(),
                kind: f[3].parse().unwrap(),
                xid: u32::from_str_radix(f[4].trim_start_matches("0x"), 16).unwrap(),
                payload: unhex(f[5]),
            }
        })
        .collect()
}

fn frame(n: u32) -> Frame {
    recorded().into_iter().find(|f| f.number == n).unwrap()
}

fn drain<R: Random>(c: &mut Client<R>) -> (Vec<Transmit>, Vec<Event>) {
    (
        std::iter::from_fn(|| c.poll_transmit()).collect(),
        std::iter::from_fn(|| c.poll_event()).collect(),
    )
}

fn one_transmit<R: Random>(c: &mut Client<R>) -> (Transmit, wire::Request) {
    let (t, e) = drain(c);
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(e.is_empty(), "{e:?}");
    let r = parse_request(&t[0].payload).unwrap();
    (t[0].clone(), r)
}

fn one_event<R: Random>(c: &mut Client<R>) -> Event {
    let (t, e) = drain(c);
    assert!(t.is_empty(), "{t:?}");
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].clone()
}

#[test]
fn every_recorded_reply_parses_and_every_request_reads_back() {
    let frames = recorded();
    assert_eq!(frames.len(), 12);
    for f in &frames {
        if matches!(f.kind, 2 | 5 | 6) {
            let r = wire::parse_reply(&f.payload).unwrap();
            assert_eq!(r.kind as u8, f.kind, "frame {}", f.number);
            assert_eq!(r.xid, f.xid);
            assert_eq!(r.chaddr, MAC);
            assert_eq!(r.server_id, Some(SERVER));
        } else {
            let r = parse_request(&f.payload).unwrap();
            assert_eq!(r.kind as u8, f.kind, "frame {}", f.number);
            assert_eq!(r.xid, f.xid);
            // A request is not a reply.
            assert_eq!(wire::parse_reply(&f.payload), Err(Refused::NotBootReply));
        }
    }
}

/// The whole recorded session, replayed: DISCOVER, OFFER, REQUEST, ACK;
/// a renewal the restarted server NAKs; a new lease at another address
/// reported as `AddressChanged`; its renewal.
#[test]
fn recorded_dnsmasq_session_replays_with_nak_and_address_change() {
    let xid = |n: u32| frame(n).xid.to_be_bytes();
    let mut rng = Vec::new();
    for part in [
        &xid(9)[..],
        &[0, 0, 0, 0],
        &xid(13),
        &xid(15),
        &[0, 0, 0, 0],
        &xid(19),
    ] {
        rng.extend_from_slice(part);
    }
    let t0 = Instant::now();
    let mut c = Client::new(MAC, Bytes::new(&rng), t0);

    // The DISCOVER is byte for byte the one recorded.
    let (t, _) = one_transmit(&mut c);
    assert_eq!(t.destination, Destination::Broadcast);
    assert_eq!(t.payload, frame(9).payload);

    c.handle_datagram(t0, &frame(10).payload).unwrap();
    let (t, r) = one_transmit(&mut c);
    assert_eq!(c.state(), State::Requesting);
    assert_eq!(
        (r.kind, r.requested_ip, r.server_id),
        (MessageType::Request, Some(ADDR), Some(SERVER))
    );
    assert!(r.broadcast);
    assert_eq!(t.payload, frame(11).payload);

    c.handle_datagram(t0, &frame(12).payload).unwrap();
    let Event::Bound(lease) = one_event(&mut c) else {
        panic!("not bound")
    };
    assert_eq!(
        lease,
        Lease {
            addr: ADDR,
            prefix: 24,
            router: Some(SERVER),
            dns: vec![Ipv4Addr::new(192, 168, 77, 53)],
            server: SERVER,
            lease: SECONDS(120),
            t1: SECONDS(10),
            t2: SECONDS(20),
        }
    );
    assert_eq!(c.next_timeout(), Some(t0 + SECONDS(10)));

    // T1: a unicast REQUEST to the server, ciaddr set, nothing else.
    let t1 = t0 + SECONDS(10);
    c.handle_timeout(t1);
    let (t, r) = one_transmit(&mut c);
    assert_eq!(c.state(), State::Renewing);
    assert_eq!(t.destination, Destination::Unicast(SERVER));
    assert_eq!(
        (r.ciaddr, r.requested_ip, r.server_id, r.broadcast),
        (ADDR, None, None, false)
    );
    assert_eq!(r.xid, frame(13).xid);

    // The restarted server NAKs: the address is lost, a DISCOVER follows.
    c.handle_datagram(t1, &frame(14).payload).unwrap();
    let (t, e) = drain(&mut c);
    assert_eq!(
        e,
        vec![Event::Lost {
            addr: ADDR,
            reason: LostReason::Nak
        }]
    );
    assert_eq!(t.len(), 1);
    assert_eq!(
        parse_request(&t[0].payload).unwrap().kind,
        MessageType::Discover
    );
    assert_eq!(c.state(), State::Selecting);

    c.handle_datagram(t1, &frame(16).payload).unwrap();
    let (_, r) = one_transmit(&mut c);
    let new = Ipv4Addr::new(192, 168, 77, 51);
    assert_eq!(r.requested_ip, Some(new));
    c.handle_datagram(t1, &frame(18).payload).unwrap();
    match one_event(&mut c) {
        Event::AddressChanged { old, lease } => {
            assert_eq!((old, lease.addr), (ADDR, new));
        }
        e => panic!("{e:?}"),
    }

    // Its renewal: the same address, so `Renewed`.
    let t2 = t1 + SECONDS(10);
    c.handle_timeout(t2);
    let (_, r) = one_transmit(&mut c);
    assert_eq!(r.ciaddr, new);
    c.handle_datagram(t2, &frame(20).payload).unwrap();
    let Event::Renewed(lease) = one_event(&mut c) else {
        panic!("not renewed")
    };
    assert_eq!(lease.addr, new);
    assert_eq!(c.state(), State::Bound);
}

// ---- built exchanges -------------------------------------------------

fn xid_of(t: &Transmit) -> u32 {
    parse_request(&t.payload).unwrap().xid
}

/// A client in SELECTING and its DISCOVER's xid.
fn selecting(t0: Instant) -> (Client<Seeded>, u32) {
    let mut c = Client::new(MAC, Seeded(7), t0);
    let (t, _) = one_transmit(&mut c);
    (c, xid_of(&t))
}

fn reply(kind: MessageType, xid: u32, addr: Ipv4Addr) -> ReplyBuilder {
    ReplyBuilder::new(kind, xid, addr, MAC).lease(SERVER, 24, SERVER, 120)
}

/// A client in BOUND at ADDR (lease 120 s, T1 60 s, T2 105 s).
fn bound(t0: Instant) -> Client<Seeded> {
    let (mut c, xid) = selecting(t0);
    c.handle_datagram(t0, &reply(MessageType::Offer, xid, ADDR).encode())
        .unwrap();
    let (t, _) = one_transmit(&mut c);
    c.handle_datagram(t0, &reply(MessageType::Ack, xid_of(&t), ADDR).encode())
        .unwrap();
    assert!(matches!(one_event(&mut c), Event::Bound(_)));
    c
}

/// Feeds `datagram` in `c`'s current state: refused with `why`, and
/// nothing changes.
fn refused<R: Random>(c: &mut Client<R>, now: Instant, datagram: &[u8], why: Refused) {
    let (state, timeout) = (c.state(), c.next_timeout());
    assert_eq!(c.handle_datagram(now, datagram), Err(why));
    assert_eq!((c.state(), c.next_timeout()), (state, timeout));
    let (t, e) = drain(c);
    assert!(t.is_empty() && e.is_empty(), "{t:?} {e:?}");
}

#[test]
fn default_times_are_half_and_seven_eighths_of_the_lease() {
    let t0 = Instant::now();
    let c = bound(t0);
    let l = c.lease().unwrap();
    assert_eq!(
        (l.lease, l.t1, l.t2),
        (SECONDS(120), SECONDS(60), SECONDS(105))
    );
    assert_eq!(c.next_timeout(), Some(t0 + SECONDS(60)));
}

#[test]
fn server_times_are_kept_in_order_and_bounded() {
    let check = |lease: u32, t1: Option<u32>, t2: Option<u32>, want: (u64, u64, u64)| {
        let t0 = Instant::now();
        let (mut c, xid) = selecting(t0);
        let mut b = reply(MessageType::Offer, xid, ADDR);
        b.options.retain(|(code, _)| *code != 51);
        b = b.option(51, &lease.to_be_bytes());
        if let Some(t) = t1 {
            b = b.option(58, &t.to_be_bytes());
        }
        if let Some(t) = t2 {
            b = b.option(59, &t.to_be_bytes());
        }
        c.handle_datagram(t0, &b.encode()).unwrap();
        let (t, _) = one_transmit(&mut c);
        b.kind = MessageType::Ack;
        b.xid = xid_of(&t);
        c.handle_datagram(t0, &b.encode()).unwrap();
        let l = c.lease().unwrap();
        assert_eq!(
            (l.lease.as_secs(), l.t1.as_secs(), l.t2.as_secs()),
            want,
            "lease {lease} t1 {t1:?} t2 {t2:?}"
        );
    };
    check(3600, Some(600), Some(1200), (3600, 600, 1200));
    // T1 after T2: half of T2 (half the lease would be after it).
    check(3600, Some(2000), Some(1000), (3600, 500, 1000));
    // T2 after the lease: the defaults.
    check(3600, None, Some(4000), (3600, 1800, 3150));
    // A T1 under MIN_T1 is raised to it.
    check(120, Some(1), None, (120, 10, 105));
    // An infinite lease is shortened to MAX_LEASE.
    check(u32::MAX, None, None, (86400, 43200, 75600));
}

#[test]
fn retransmission_backs_off_from_4_to_64_seconds_with_jitter() {
    for (seed, name) in [(1u64, "seeded"), (99, "other")] {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, Seeded(seed), t0);
        let (first, _) = one_transmit(&mut c);
        let mut now = t0;
        for base in [4u64, 8, 16, 32, 64, 64, 64] {
            let at = c.next_timeout().unwrap();
            let d = at - now;
            assert!(
                d >= SECONDS(base - 1) && d <= SECONDS(base + 1),
                "{name}: {d:?} for {base}"
            );
            now = at;
            c.handle_timeout(now);
            let (t, r) = one_transmit(&mut c);
            assert_eq!(
                (r.kind, xid_of(&t)),
                (MessageType::Discover, xid_of(&first))
            );
            assert_eq!(u64::from(r.secs), (now - t0).as_secs());
        }
    }
}

#[test]
fn an_unanswered_request_starts_over_after_four_tries() {
    let t0 = Instant::now();
    let (mut c, xid) = selecting(t0);
    c.handle_datagram(t0, &reply(MessageType::Offer, xid, ADDR).encode())
        .unwrap();
    let mut sent = 1;
    one_transmit(&mut c);
    loop {
        let at = c.next_timeout().unwrap();
        c.handle_timeout(at);
        let (t, r) = one_transmit(&mut c);
        if r.kind == MessageType::Discover {
            assert_ne!(xid_of(&t), xid);
            break;
        }
        sent += 1;
    }
    assert_eq!(sent, 4);
    assert_eq!(c.state(), State::Selecting);
}

#[test]
fn renewal_changing_the_address_is_reported_as_address_changed() {
    let t0 = Instant::now();
    let mut c = bound(t0);
    let t1 = t0 + SECONDS(60);
    c.handle_timeout(t1);
    let (t, _) = one_transmit(&mut c);
    let new = Ipv4Addr::new(192, 168, 77, 99);
    c.handle_datagram(t1, &reply(MessageType::Ack, xid_of(&t), new).encode())
        .unwrap();
    match one_event(&mut c) {
        Event::AddressChanged { old, lease } => assert_eq!((old, lease.addr), (ADDR, new)),
        e => panic!("{e:?}"),
    }
    assert_eq!(c.lease().unwrap().addr, new);
    // The new lease's clock starts at the renewal.
    assert_eq!(c.next_timeout(), Some(t1 + SECONDS(60)));
}

#[test]
fn rebinding_broadcasts_accepts_any_server_and_expiry_loses_the_address() {
    let t0 = Instant::now();
    let mut c = bound(t0);
    c.handle_timeout(t0 + SECONDS(60));
    let (_, r) = one_transmit(&mut c);
    // Half of the 45 s to T2 is under the 60 s minimum: no retry before T2.
    assert_eq!(c.next_timeout(), Some(t0 + SECONDS(105)));
    assert_eq!(r.ciaddr, ADDR);
    c.handle_timeout(t0 + SECONDS(105));
    let (t, r) = one_transmit(&mut c);
    assert_eq!(c.state(), State::Rebinding);
    assert_eq!(
        (t.destination, r.ciaddr, r.broadcast),
        (Destination::Broadcast, ADDR, true)
    );
    assert_eq!(c.next_timeout(), Some(t0 + SECONDS(120)));

    // Another server may answer in REBINDING.
    let other = Ipv4Addr::new(192, 168, 77, 2);
    let mut c2 = bound(t0);
    c2.handle_timeout(t0 + SECONDS(105));
    let (t, _) = one_transmit(&mut c2);
    let ack =
        ReplyBuilder::new(MessageType::Ack, xid_of(&t), ADDR, MAC).lease(other, 24, SERVER, 300);
    c2.handle_datagram(t0 + SECONDS(106), &ack.encode())
        .unwrap();
    let Event::Renewed(l) = one_event(&mut c2) else {
        panic!()
    };
    assert_eq!(l.server, other);

    // No answer: at the lease's end the address is lost, DISCOVER again.
    c.handle_timeout(t0 + SECONDS(120));
    let (t, e) = drain(&mut c);
    assert_eq!(
        e,
        vec![Event::Lost {
            addr: ADDR,
            reason: LostReason::Expired
        }]
    );
    assert_eq!(
        parse_request(&t[0].payload).unwrap().kind,
        MessageType::Discover
    );
    assert_eq!(c.state(), State::Selecting);
    assert_eq!(c.lease(), None);
}

#[test]
fn a_caller_that_slept_past_t1_and_t2_lands_in_rebinding() {
    let t0 = Instant::now();
    let mut c = bound(t0);
    let late = t0 + SECONDS(110);
    c.handle_timeout(late);
    let (t, r) = one_transmit(&mut c);
    assert_eq!(c.state(), State::Rebinding);
    assert_eq!((t.destination, r.ciaddr), (Destination::Broadcast, ADDR));
    // Nothing else is due: the next deadline is the lease's end.
    assert_eq!(c.next_timeout(), Some(t0 + SECONDS(120)));
    c.handle_timeout(late);
    assert_eq!(drain(&mut c), (vec![], vec![]));
    assert_eq!(c.state(), State::Rebinding);
    // Past the end as well: the lease is lost, whatever else was due.
    let mut c = bound(t0);
    c.handle_timeout(t0 + SECONDS(500));
    let (t, e) = drain(&mut c);
    assert_eq!(
        e,
        vec![Event::Lost {
            addr: ADDR,
            reason: LostReason::Expired
        }]
    );
    assert_eq!(t.len(), 1);
    assert!(c.next_timeout().unwrap() > t0 + SECONDS(500));
}

#[test]
fn repeated_naks_wait_before_discovering_again() {
    let t0 = Instant::now();
    let (mut c, xid) = selecting(t0);
    c.handle_datagram(t0, &reply(MessageType::Offer, xid, ADDR).encode())
        .unwrap();
    let (t, _) = one_transmit(&mut c);
    let nak = ReplyBuilder::new(MessageType::Nak, xid_of(&t), Ipv4Addr::UNSPECIFIED, MAC)
        .option(54, &SERVER.octets());
    // The first NAK: DISCOVER at once.
    c.handle_datagram(t0, &nak.encode()).unwrap();
    let (t, r) = one_transmit(&mut c);
    assert_eq!(r.kind, MessageType::Discover);
    c.handle_datagram(t0, &reply(MessageType::Offer, xid_of(&t), ADDR).encode())
        .unwrap();
    let (t, _) = one_transmit(&mut c);
    let mut nak = nak;
    nak.xid = xid_of(&t);
    // The second: INIT, a DISCOVER only after a backoff.
    c.handle_datagram(t0, &nak.encode()).unwrap();
    let (t, e) = drain(&mut c);
    assert!(t.is_empty() && e.is_empty());
    assert_eq!(c.state(), State::Init);
    let at = c.next_timeout().unwrap();
    assert!(at >= t0 + SECONDS(3));
    c.handle_timeout(at);
    assert_eq!(one_transmit(&mut c).1.kind, MessageType::Discover);
}

// ---- hostile replies --------------------------------------------------

#[test]
fn hostile_offers_are_refused_with_their_reason() {
    let t0 = Instant::now();
    let (mut c, xid) = selecting(t0);
    let ok = || reply(MessageType::Offer, xid, ADDR);
    let with = |code: u8, v: &[u8]| {
        let mut b = ok();
        b.options.retain(|(c, _)| *c != code);
        b.option(code, v)
    };
    let without = |code: u8| {
        let mut b = ok();
        b.options.retain(|(c, _)| *c != code);
        b
    };
    let ip = |a: [u8; 4]| a;

    let mut b = ok();
    b.xid ^= 1;
    refused(&mut c, t0, &b.encode(), Refused::WrongXid);
    let mut b = ok();
    b.chaddr[5] ^= 1;
    refused(&mut c, t0, &b.encode(), Refused::WrongChaddr);
    let mut raw = ok().encode();
    raw[0] = 1;
    refused(&mut c, t0, &raw, Refused::NotBootReply);
    let mut raw = ok().encode();
    raw[2] = 16;
    refused(&mut c, t0, &raw, Refused::NotEthernet);
    refused(&mut c, t0, &without(54).encode(), Refused::NoServerId);
    refused(
        &mut c,
        t0,
        &with(54, &ip([255, 255, 255, 255])).encode(),
        Refused::BadServerId(Ipv4Addr::BROADCAST),
    );
    for bad in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(169, 254, 1, 1),
        Ipv4Addr::new(0, 1, 2, 3),
    ] {
        let mut b = ok();
        b.yiaddr = bad;
        refused(&mut c, t0, &b.encode(), Refused::BadAddress(bad));
    }
    refused(&mut c, t0, &without(1).encode(), Refused::NoSubnetMask);
    for mask in [
        [255, 0, 255, 0],
        [255, 255, 255, 254],
        [255, 255, 255, 255],
        [254, 0, 0, 0],
        [0, 0, 0, 0],
    ] {
        refused(
            &mut c,
            t0,
            &with(1, &mask).encode(),
            Refused::BadSubnetMask(Ipv4Addr::from(mask)),
        );
    }
    for host in [
        Ipv4Addr::new(192, 168, 77, 0),
        Ipv4Addr::new(192, 168, 77, 255),
    ] {
        let mut b = ok();
        b.yiaddr = host;
        refused(&mut c, t0, &b.encode(), Refused::AddressNotHost(host));
    }
    for router in [
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(192, 168, 78, 1),
        ADDR,
        Ipv4Addr::new(192, 168, 77, 255),
    ] {
        refused(
            &mut c,
            t0,
            &with(3, &router.octets()).encode(),
            Refused::RouterOutsideSubnet(router),
        );
    }
    refused(
        &mut c,
        t0,
        &with(6, &[192, 168, 77, 53, 0, 0, 0, 0]).encode(),
        Refused::BadDnsServer(Ipv4Addr::UNSPECIFIED),
    );
    refused(&mut c, t0, &without(51).encode(), Refused::NoLeaseTime);
    refused(
        &mut c,
        t0,
        &with(51, &30u32.to_be_bytes()).encode(),
        Refused::LeaseTooShort(30),
    );
    refused(
        &mut c,
        t0,
        &with(1, &[255, 255, 255]).encode(),
        Refused::BadOptionLength(1),
    );
    refused(
        &mut c,
        t0,
        &with(3, &[192, 168, 77]).encode(),
        Refused::BadOptionLength(3),
    );
    refused(
        &mut c,
        t0,
        &with(52, &[3]).encode(),
        Refused::OptionOverload,
    );
    // An ACK, a NAK, an unknown type: not what SELECTING waits for.
    let mut b = ok();
    b.kind = MessageType::Ack;
    refused(
        &mut c,
        t0,
        &b.encode(),
        Refused::Unexpected {
            kind: MessageType::Ack,
            state: State::Selecting,
        },
    );
    let mut raw = ok().encode();
    raw[242] = 42; // the message type's value
    refused(&mut c, t0, &raw, Refused::UnknownMessageType(42));

    // Framing.
    let good = ok().encode();
    refused(&mut c, t0, &good[..100], Refused::Truncated);
    refused(&mut c, t0, &good[..good.len() - 1], Refused::NoEndOption);
    let mut raw = good.clone();
    raw.extend_from_slice(&[0, 0, 7]);
    refused(&mut c, t0, &raw, Refused::TrailingData);
    let mut raw = good.clone();
    raw.pop();
    raw.extend_from_slice(&[12, 200, 1, 2]);
    refused(&mut c, t0, &raw, Refused::OptionPastEnd(12));
    let mut raw = good.clone();
    raw.resize(wire::MAX_DATAGRAM + 1, 0);
    refused(&mut c, t0, &raw, Refused::Oversize(wire::MAX_DATAGRAM + 1));
    let mut raw = good.clone();
    raw[236] = 0;
    refused(&mut c, t0, &raw, Refused::NoMagicCookie);

    // Padding after END is fine; so is an option split in two (RFC 3396).
    let mut raw = good.clone();
    raw.resize(wire::MAX_DATAGRAM, 0);
    let split = without(6)
        .option(6, &[192, 168, 77, 53])
        .option(6, &[192, 168, 77, 54]);
    assert_eq!(wire::parse_reply(&split.encode()).unwrap().dns.len(), 2);
    c.handle_datagram(t0, &raw).unwrap();
    assert_eq!(c.state(), State::Requesting);
}

#[test]
fn hostile_acks_and_naks_are_refused_with_their_reason() {
    let t0 = Instant::now();
    let (mut c, xid) = selecting(t0);
    c.handle_datagram(t0, &reply(MessageType::Offer, xid, ADDR).encode())
        .unwrap();
    one_transmit(&mut c);
    let other = Ipv4Addr::new(192, 168, 77, 2);
    // REQUESTING: only the chosen server, only the offered address.
    let ack = ReplyBuilder::new(MessageType::Ack, xid, ADDR, MAC).lease(other, 24, SERVER, 120);
    refused(&mut c, t0, &ack.encode(), Refused::WrongServer(other));
    let nak = ReplyBuilder::new(MessageType::Nak, xid, Ipv4Addr::UNSPECIFIED, MAC)
        .option(54, &other.octets());
    refused(&mut c, t0, &nak.encode(), Refused::WrongServer(other));
    let moved = Ipv4Addr::new(192, 168, 77, 51);
    refused(
        &mut c,
        t0,
        &reply(MessageType::Ack, xid, moved).encode(),
        Refused::NotOffered(moved),
    );
    let mut offer = reply(MessageType::Offer, xid, ADDR);
    refused(
        &mut c,
        t0,
        &offer.encode(),
        Refused::Unexpected {
            kind: MessageType::Offer,
            state: State::Requesting,
        },
    );
    c.handle_datagram(t0, &reply(MessageType::Ack, xid, ADDR).encode())
        .unwrap();
    one_event(&mut c);

    // BOUND waits for nothing.
    refused(
        &mut c,
        t0,
        &reply(MessageType::Ack, xid, ADDR).encode(),
        Refused::Unexpected {
            kind: MessageType::Ack,
            state: State::Bound,
        },
    );
    // RENEWING: a NAK from another server does not take the address.
    let t1 = t0 + SECONDS(60);
    c.handle_timeout(t1);
    let (t, _) = one_transmit(&mut c);
    let nak = ReplyBuilder::new(MessageType::Nak, xid_of(&t), Ipv4Addr::UNSPECIFIED, MAC)
        .option(54, &other.octets());
    refused(&mut c, t1, &nak.encode(), Refused::WrongServer(other));
    offer.xid = xid_of(&t);
    offer.kind = MessageType::Ack;
    offer.options.retain(|(code, _)| *code != 54);
    refused(&mut c, t1, &offer.encode(), Refused::NoServerId);
    assert_eq!(c.lease().unwrap().addr, ADDR);
}

/// Mutations of recorded replies (bytes flipped, cut, stretched) never
/// panic, and a refused one never changes the client.
#[test]
fn mutated_recorded_replies_never_panic() {
    let replies: Vec<Vec<u8>> = recorded()
        .into_iter()
        .filter(|f| matches!(f.kind, 2 | 5 | 6))
        .map(|f| f.payload)
        .collect();
    let mut rng = Seeded(0x5eed);
    let mut byte = || {
        let mut b = [0u8; 4];
        rng.fill(&mut b);
        u32::from_be_bytes(b) as usize
    };
    let t0 = Instant::now();
    for i in 0..20_000 {
        let mut m = replies[i % replies.len()].clone();
        match byte() % 4 {
            0 => {
                let at = byte() % m.len();
                m[at] ^= 1 << (byte() % 8);
            }
            1 => m.truncate(byte() % m.len()),
            2 => {
                let at = 240 + byte() % (m.len() - 240);
                m[at] = byte() as u8;
            }
            _ => m.extend((0..byte() % 64).map(|_| byte() as u8)),
        }
        let (mut c, _) = selecting(t0);
        let _ = c.handle_datagram(t0, &m);
        let _ = wire::parse_reply(&m);
    }
}
