//! The phone side's DHCPv4 server (`dialgate_board::dhcp::Server`,
//! docs/network.md "Phones plugged in"): a sequence of records into one
//! `Server` (pool of 12, table of 8, 2 s hold) on a virtual clock. Each
//! record is an op byte, then: (0) two bytes of clock step in 100 ms
//! units; (1) nothing: the clock jumps to `next_timeout()`, if any; (2,
//! 3) a two-byte length and that many bytes as a datagram received on
//! port 67, with op bit 2 set overwriting its hardware address with one
//! of 16 (op's high bits), so that a few clients meet in the table.
//! Asserts: no panic; a refused datagram changes nothing but the refusal
//! counter (table, deadline, no output); the table never passes its
//! bound and never holds more leases than entries; every datagram sent
//! reads back with the client's codec as an OFFER, ACK or NAK from the
//! kit, with no router and no DNS option, an OFFER's or lease ACK's
//! address in the pool, a NAK by broadcast; after `handle_timeout(now)`
//! no timer is still due.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dialgate_board::dhcp::{wire, MessageType, Server, ServerConfig};
use libfuzzer_sys::fuzz_target;

const KIT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
const LAST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 111);
const TABLE: usize = 8;

fn drain(s: &mut Server) {
    while let Some(t) = s.poll_transmit() {
        let r = wire::parse_reply(&t.payload).expect("our answer reads back");
        assert!(t.payload.len() >= 300 && t.payload.len() <= wire::MAX_DATAGRAM);
        assert_eq!(r.server_id, Some(KIT));
        assert!(r.routers.is_empty() && r.dns.is_empty(), "{r:?}");
        let pool = u32::from(FIRST)..=u32::from(LAST);
        match r.kind {
            MessageType::Offer => assert!(pool.contains(&u32::from(r.yiaddr)), "{r:?}"),
            MessageType::Ack if r.lease_secs.is_some() => {
                assert!(pool.contains(&u32::from(r.yiaddr)), "{r:?}")
            }
            MessageType::Ack => assert!(r.yiaddr.is_unspecified()),
            MessageType::Nak => assert_eq!(t.to, Ipv4Addr::BROADCAST),
            other => panic!("a server sent {other:?}"),
        }
    }
    while s.poll_event().is_some() {}
    assert!(s.table_len() <= TABLE && s.bound() <= s.table_len());
}

fuzz_target!(|data: &[u8]| {
    let mut c = ServerConfig::new(KIT, 24, FIRST, LAST).expect("valid");
    c.max_leases = TABLE;
    c.offer_hold = Duration::from_secs(2);
    let mut s = Server::new(c).expect("valid");
    let mut now = Instant::now();
    let mut rest = data;
    let mut ops = 0;
    while let [op, tail @ ..] = rest {
        ops += 1;
        if ops > 512 {
            break;
        }
        rest = tail;
        match op % 4 {
            0 => {
                let [a, b, tail @ ..] = rest else { break };
                rest = tail;
                now += Duration::from_millis(100 * u64::from(u16::from_be_bytes([*a, *b])));
                s.handle_timeout(now);
            }
            1 => {
                if let Some(t) = s.next_timeout() {
                    now = now.max(t);
                }
                s.handle_timeout(now);
            }
            _ => {
                let [a, b, tail @ ..] = rest else { break };
                let n = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
                let (bytes, next) = tail.split_at(n);
                rest = next;
                let mut d = bytes.to_vec();
                if op & 4 != 0 && d.len() >= 34 {
                    d[28..34].copy_from_slice(&[0x02, 0, 0, 0x77, 0, op >> 4]);
                }
                // What is due is done first, as handle_datagram does.
                s.handle_timeout(now);
                drain(&mut s);
                let before = (s.table_len(), s.bound(), s.next_timeout(), s.stats());
                if s.handle_datagram(now, &d).is_err() {
                    let mut stats = s.stats();
                    assert_eq!(stats.refused, before.3.refused + 1);
                    stats.refused = before.3.refused;
                    assert_eq!(before, (s.table_len(), s.bound(), s.next_timeout(), stats));
                    assert!(s.poll_transmit().is_none() && s.poll_event().is_none());
                }
            }
        }
        drain(&mut s);
        if op % 4 < 2 {
            assert!(
                s.next_timeout().is_none_or(|t| t > now),
                "a timer still due"
            );
        }
    }
});
