use std::net::IpAddr;

use super::*;

const FIXTURES: &str = include_str!("fixtures/dnsmasq-2.90.txt");

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The recorded (query, response) for `name` and `rtype`.
fn recorded(name: &str, rtype: u16) -> (Query, Vec<u8>) {
    for line in FIXTURES.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] == name && f[1] == rtype.to_string() {
            let kind = match rtype {
                1 => Kind::A,
                28 => Kind::Aaaa,
                _ => Kind::Srv,
            };
            let id = u16::from_str_radix(f[2], 16).unwrap();
            return (Query::new(id, &Name::parse(name).unwrap(), kind), hex(f[3]));
        }
    }
    panic!("no fixture {name} {rtype}");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Counter(u32);
impl Random for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (self.0 >> 16) as u8;
        }
    }
}

#[test]
fn queries_are_what_the_recorded_server_was_sent() {
    let q = Query::new(0x1234, &Name::parse("Bridge.Hotel.Test.").unwrap(), Kind::A);
    // The python recorder's query for the same name, id and type.
    let mut want = hex("123401000001000000000000");
    want.extend(hex("0662726964676505686f74656c047465737400000100"));
    want.push(1);
    assert_eq!(q.bytes(), &want[..]);
    let (q, resp) = recorded("bridge.hotel.test", 1);
    // The response echoes the query's question byte for byte.
    assert_eq!(&resp[12..q.bytes().len()], &q.bytes()[12..]);
    assert_eq!(Kind::Srv.rr_type(), 33);
}

#[test]
fn recorded_answers() {
    let (q, r) = recorded("bridge.hotel.test", 1);
    assert_eq!(
        q.read_response(&r),
        Ok(Answer::Addresses {
            addrs: vec![ip("10.66.9.1")],
            ttl: 0
        })
    );
    let (q, r) = recorded("bridge.hotel.test", 28);
    assert_eq!(
        q.read_response(&r),
        Ok(Answer::Addresses {
            addrs: vec![ip("fd00::9:1")],
            ttl: 0
        })
    );
    let (q, r) = recorded("multi.hotel.test", 1);
    assert_eq!(
        q.read_response(&r),
        Ok(Answer::Addresses {
            addrs: vec![ip("10.66.9.2"), ip("10.66.9.3")],
            ttl: 0
        })
    );
    // A CNAME followed inside the response.
    let (q, r) = recorded("alias.hotel.test", 1);
    assert_eq!(
        q.read_response(&r),
        Ok(Answer::Addresses {
            addrs: vec![ip("10.66.9.1")],
            ttl: 0
        })
    );
    let (q, r) = recorded("missing.hotel.test", 1);
    assert_eq!(q.read_response(&r), Err(DnsError::NxDomain));
    let (q, r) = recorded("v6only.hotel.test", 1);
    assert_eq!(q.read_response(&r), Err(DnsError::NoData("A")));
    let (q, r) = recorded("bridge.hotel.test", 33);
    assert_eq!(q.read_response(&r), Err(DnsError::NoData("SRV")));
    // SRV with the targets' addresses in the additional section (unused).
    let (q, r) = recorded("_sips._tcp.bridge.hotel.test", 33);
    let Ok(Answer::Srv { targets, ttl }) = q.read_response(&r) else {
        panic!("{:?}", q.read_response(&r));
    };
    assert_eq!(ttl, 0);
    let mut got: Vec<(u16, u16, u16, &str)> = targets
        .iter()
        .map(|t| (t.priority, t.weight, t.port, t.target.as_str()))
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            (10, 60, 5071, "bridge.hotel.test"),
            (20, 0, 5072, "multi.hotel.test")
        ]
    );
    let ordered = order_srv(targets, &mut Counter(7));
    assert_eq!(ordered[0].port, 5071, "priority 10 before 20");
}

#[test]
fn names() {
    for good in [
        "a.b",
        "Bridge.Hotel.Test.",
        "x-1.example",
        "_sips._tcp.h.test",
    ] {
        assert!(Name::parse(good).is_ok(), "{good}");
    }
    assert_eq!(Name::parse("A.B.").unwrap().as_str(), "a.b");
    let long = format!("{}.test", vec!["a".repeat(63); 4].join("."));
    for bad in [
        "",
        ".",
        "a..b",
        "-a.b",
        "a-.b",
        "a b.c",
        "10.0.0.1",
        "a.123",
        "_.b",
        "a_b.c",
        &"a".repeat(64),
        &long,
    ] {
        assert!(Name::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        Name::parse("h.test").unwrap().sips_srv().unwrap().as_str(),
        "_sips._tcp.h.test"
    );
}

/// A response to `q` with `flags` and the given answer records (each
/// owner, type, ttl, rdata), built by hand.
fn build(q: &Query, flags: u16, answers: &[(&[u8], u16, u32, &[u8])]) -> Vec<u8> {
    let mut m = q.bytes().to_vec();
    m[2..4].copy_from_slice(&flags.to_be_bytes());
    m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for (owner, t, ttl, rdata) in answers {
        m.extend_from_slice(owner);
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

const PTR_Q: &[u8] = &[0xC0, 0x0C];

fn a_query() -> Query {
    Query::new(0xBEEF, &Name::parse("h.test").unwrap(), Kind::A)
}

#[test]
fn not_ours_is_ignored() {
    let q = a_query();
    let good = build(&q, 0x8180, &[(PTR_Q, 1, 60, &[192, 0, 2, 1])]);
    assert!(q.read_response(&good).is_ok());
    let mut other_id = good.clone();
    other_id[1] ^= 1;
    let mut query_not_response = good.clone();
    query_not_response[2] &= 0x7F;
    let mut other_name = good.clone();
    other_name[13] = b'x';
    let mut other_type = good.clone();
    other_type[q.bytes().len() - 3] = 28;
    let mut no_question = good.clone();
    no_question[5] = 0;
    for (what, m) in [
        ("id", other_id),
        ("qr", query_not_response),
        ("name", other_name),
        ("type", other_type),
        ("qdcount", no_question),
    ] {
        assert!(q.read_response(&m).unwrap_err().is_not_ours(), "{what}");
    }
    // 0x20: the question echoed in another case is ours.
    let mut upper = good.clone();
    upper[13] = b'H';
    upper[15] = b'T';
    assert!(q.read_response(&upper).is_ok());
}

#[test]
fn rcodes_and_truncation() {
    let q = a_query();
    for (flags, want) in [
        (0x8182, DnsError::ServFail),
        (0x8183, DnsError::NxDomain),
        (0x8185, DnsError::Refused),
        (0x8184, DnsError::Rcode(4)),
        (0x8380, DnsError::Truncated),
    ] {
        assert_eq!(q.read_response(&build(&q, flags, &[])), Err(want));
    }
    assert!(!DnsError::NxDomain.try_next_server());
    assert!(DnsError::ServFail.try_next_server());
}

#[test]
fn bounds_and_malformed() {
    let q = a_query();
    let a: (&[u8], u16, u32, &[u8]) = (PTR_Q, 1, 60, &[192, 0, 2, 1]);
    let mal = |m: &[u8]| match q.read_response(m) {
        Err(DnsError::Malformed(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(mal(&build(&q, 0x8180, &[a; 17])), Malformed::TooManyRecords);
    // 16 answers of the same address: one address.
    assert_eq!(
        q.read_response(&build(&q, 0x8180, &[a; 16])),
        Ok(Answer::Addresses {
            addrs: vec![ip("192.0.2.1")],
            ttl: 60
        })
    );
    let mut big = build(&q, 0x8180, &[a]);
    big.resize(513, 0);
    assert_eq!(mal(&big), Malformed::Size);
    assert_eq!(mal(&big[..11]), Malformed::Size);
    let mut trailing = build(&q, 0x8180, &[a]);
    trailing.push(0);
    assert_eq!(mal(&trailing), Malformed::Trailing);
    let good = build(&q, 0x8180, &[a]);
    assert_eq!(mal(&good[..good.len() - 1]), Malformed::Short);
    assert_eq!(
        mal(&build(&q, 0x8180, &[(PTR_Q, 1, 60, &[1, 2, 3])])),
        Malformed::BadRdata
    );
    // A pointer to itself, a forward pointer, a reserved label type.
    let at = q.bytes().len() as u8;
    assert_eq!(
        mal(&build(&q, 0x8180, &[(&[0xC0, at], 1, 60, &[1, 2, 3, 4])])),
        Malformed::BadName
    );
    assert_eq!(
        mal(&build(&q, 0x8180, &[(&[0xC0, 0xF0], 1, 60, &[1, 2, 3, 4])])),
        Malformed::BadName
    );
    assert_eq!(
        mal(&build(&q, 0x8180, &[(&[0x40, 0], 1, 60, &[1, 2, 3, 4])])),
        Malformed::BadName
    );
    // The smallest TTL; a TTL with the top bit set counts as 0.
    let b: (&[u8], u16, u32, &[u8]) = (PTR_Q, 1, 30, &[192, 0, 2, 2]);
    assert_eq!(
        q.read_response(&build(&q, 0x8180, &[a, b])),
        Ok(Answer::Addresses {
            addrs: vec![ip("192.0.2.1"), ip("192.0.2.2")],
            ttl: 30
        })
    );
    let c: (&[u8], u16, u32, &[u8]) = (PTR_Q, 1, 0x8000_0000, &[192, 0, 2, 3]);
    assert!(matches!(
        q.read_response(&build(&q, 0x8180, &[a, c])),
        Ok(Answer::Addresses { ttl: 0, .. })
    ));
}

#[test]
fn cname_chains_stay_inside_the_response_and_are_bounded() {
    let q = a_query();
    // h.test -> c1.test -> c2.test ... ; names written out in full.
    let names: Vec<Vec<u8>> = (0..=MAX_CNAMES + 1)
        .map(|i| {
            let l = format!("c{i}");
            let mut n = vec![l.len() as u8];
            n.extend(l.bytes());
            n.extend([4, b't', b'e', b's', b't', 0]);
            n
        })
        .collect();
    let chain = |len: usize| {
        let mut recs: Vec<(&[u8], u16, u32, &[u8])> = vec![(PTR_Q, 5, 50, &names[0])];
        for i in 0..len - 1 {
            recs.push((&names[i], 5, 40, &names[i + 1]));
        }
        recs.push((&names[len - 1], 1, 60, &[198, 51, 100, 7]));
        build(&q, 0x8180, &recs)
    };
    assert_eq!(
        q.read_response(&chain(MAX_CNAMES)),
        Ok(Answer::Addresses {
            addrs: vec![ip("198.51.100.7")],
            ttl: 40
        })
    );
    assert_eq!(
        q.read_response(&chain(MAX_CNAMES + 1)),
        Err(DnsError::Malformed(Malformed::CnameChain))
    );
    // An address for a name the chain does not reach is not used.
    let stray = build(
        &q,
        0x8180,
        &[(PTR_Q, 5, 50, &names[0]), (&names[1], 1, 60, &[1, 1, 1, 1])],
    );
    assert_eq!(q.read_response(&stray), Err(DnsError::NoData("A")));
    // A loop: h.test -> c0.test -> h.test.
    let looped = build(
        &q,
        0x8180,
        &[(PTR_Q, 5, 50, &names[0]), (&names[0], 5, 50, PTR_Q)],
    );
    assert_eq!(
        q.read_response(&looped),
        Err(DnsError::Malformed(Malformed::CnameChain))
    );
}

#[test]
fn srv_rules() {
    let q = Query::new(7, &Name::parse("_sips._tcp.h.test").unwrap(), Kind::Srv);
    let root: &[u8] = &[0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        q.read_response(&build(&q, 0x8180, &[(PTR_Q, 33, 60, root)])),
        Err(DnsError::NoService)
    );
    let mut under = vec![0, 1, 0, 1, 0x13, 0xC4];
    under.extend([3, b'_', b'x', b'y', 0]);
    assert_eq!(
        q.read_response(&build(&q, 0x8180, &[(PTR_Q, 33, 60, &under)])),
        Err(DnsError::Malformed(Malformed::BadTarget))
    );
    // A target name that runs past its record's data.
    let mut past = vec![0, 1, 0, 1, 0x13, 0xC4, 4, b'h', b'o', b's'];
    let rest = [b't', 0];
    past.truncate(10);
    let mut m = build(&q, 0x8180, &[(PTR_Q, 33, 60, &past)]);
    m.extend(rest);
    assert!(matches!(q.read_response(&m), Err(DnsError::Malformed(_))));
}

#[test]
fn srv_order_is_by_priority_then_weight() {
    let t = |priority, weight, port| SrvTarget {
        priority,
        weight,
        port,
        target: Name::parse("h.test").unwrap(),
    };
    let mut firsts = [0u32; 3];
    let mut rng = Counter(1);
    for _ in 0..3000 {
        let o = order_srv(
            vec![t(20, 0, 9), t(10, 10, 1), t(10, 80, 2), t(10, 0, 3)],
            &mut rng,
        );
        assert_eq!(o.len(), 4);
        assert_eq!(o[3].port, 9, "priority 20 last");
        firsts[usize::from(o[0].port) - 1] += 1;
    }
    // Weight 80 first about 80/91 of the time, weight 0 rarely.
    assert!(
        firsts[1] > 2400 && firsts[0] > 150 && firsts[2] < 150,
        "{firsts:?}"
    );
}

#[test]
fn mutations_never_panic() {
    let mut rng = Counter(99);
    let mut byte = || {
        let mut b = [0u8; 1];
        rng.fill(&mut b);
        b[0]
    };
    let mut seeds = Vec::new();
    for line in FIXTURES.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        seeds.push(recorded(f[0], f[1].parse().unwrap()));
    }
    let mut answered = 0;
    for i in 0..20_000 {
        let (q, seed) = &seeds[i % seeds.len()];
        let mut m = seed.clone();
        for _ in 0..1 + usize::from(byte() % 4) {
            match byte() % 4 {
                0 if !m.is_empty() => {
                    let at = usize::from(byte()) % m.len();
                    m[at] = byte();
                }
                1 if !m.is_empty() => {
                    let at = usize::from(byte()) % m.len();
                    m.truncate(at);
                }
                2 => m.push(byte()),
                _ if m.len() > 12 => {
                    // A pointer somewhere.
                    let at = 12 + usize::from(byte()) % (m.len() - 12);
                    m[at] = 0xC0 | (byte() & 1);
                }
                _ => {}
            }
        }
        if q.read_response(&m).is_ok() {
            answered += 1;
        }
    }
    assert!(answered > 100, "some mutations stay valid: {answered}");
}
