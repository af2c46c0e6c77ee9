//! The uplink's DHCPv4 client (`dialgate_board::dhcp`, docs/network.md):
//! the first byte N, then N bytes that are the client's randomness, then a
//! sequence of records into one `Client` on a virtual clock. Each record
//! is an op byte, then: (0) two bytes of clock step in 100 ms units; (1)
//! nothing: the clock jumps to `next_timeout()`; (2, 3) a two-byte length
//! and that many bytes as a received datagram, with op bit 2 set
//! overwriting its xid and chaddr with the client's own, so that the
//! state machine is reached beyond those checks. Asserts: no panic; a
//! refused datagram changes nothing (state, deadline, no output); every
//! datagram sent reads back as a request of the current transaction,
//! padded to 300 bytes and within the size limit; there is always a
//! deadline and, after `handle_timeout(now)`, none is still due; every
//! lease reported obeys the module's rules (prefix /8–/30, address and
//! router hosts of the subnet, DNS servers at most 3, MIN_T1 <= T1 < T2 <
//! lease <= MAX_LEASE, lease >= MIN_LEASE) and is the one the client holds.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dialgate_board::dhcp::{
    wire, Client, Event, Lease, Random, State, MAX_LEASE, MIN_LEASE, MIN_T1,
};
use libfuzzer_sys::fuzz_target;

const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x77, 0x00, 0x10];

/// The client's randomness (transaction ids, jitter) is the fuzzer's too:
/// bytes taken from the front of the input, then zeros.
struct FromInput(Vec<u8>);

impl Random for FromInput {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = if self.0.is_empty() {
                0
            } else {
                self.0.remove(0)
            };
        }
    }
}

fn host(a: Ipv4Addr, prefix: u8, of: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - prefix);
    let (a, net) = (u32::from(a), u32::from(of) & mask);
    a & mask == net && a != net && a != net | !mask
}

fn check_lease(l: &Lease) {
    assert!((8..=30).contains(&l.prefix), "{l:?}");
    assert!(host(l.addr, l.prefix, l.addr), "{l:?}");
    if let Some(r) = l.router {
        assert!(r != l.addr && host(r, l.prefix, l.addr), "{l:?}");
    }
    assert!(l.dns.len() <= wire::MAX_DNS);
    assert!(MIN_T1 <= l.t1 && l.t1 < l.t2 && l.t2 < l.lease, "{l:?}");
    assert!(MIN_LEASE <= l.lease && l.lease <= MAX_LEASE, "{l:?}");
}

/// Drains the client's output, checking it; returns the xid it uses.
fn drain(c: &mut Client<FromInput>, xid: &mut u32) {
    while let Some(t) = c.poll_transmit() {
        assert!(t.payload.len() >= 300 && t.payload.len() <= wire::MAX_DATAGRAM);
        let r = wire::parse_request(&t.payload).expect("our request reads back");
        assert_eq!(r.chaddr, MAC);
        *xid = r.xid;
    }
    while let Some(e) = c.poll_event() {
        match &e {
            Event::Bound(l) | Event::Renewed(l) | Event::AddressChanged { lease: l, .. } => {
                check_lease(l);
                assert_eq!(c.lease(), Some(l));
                assert_eq!(c.state(), State::Bound);
            }
            Event::Lost { .. } => assert!(c.lease().is_none()),
        }
        if let Event::AddressChanged { old, lease } = &e {
            assert_ne!(*old, lease.addr);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (random, mut rest) = rest.split_at(usize::from(n).min(rest.len()));
    let mut now = Instant::now();
    let mut c = Client::new(MAC, FromInput(random.to_vec()), now);
    let mut xid = 0;
    drain(&mut c, &mut xid);
    let mut ops = 0;
    while let [op, tail @ ..] = rest {
        ops += 1;
        if ops > 256 {
            break;
        }
        rest = tail;
        match op % 4 {
            0 => {
                let [a, b, tail @ ..] = rest else { break };
                rest = tail;
                now += Duration::from_millis(100 * u64::from(u16::from_be_bytes([*a, *b])));
                if c.next_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now);
                }
            }
            1 => {
                now = now.max(c.next_timeout().expect("always a deadline"));
                c.handle_timeout(now);
            }
            _ => {
                let [a, b, tail @ ..] = rest else { break };
                let n = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
                let (bytes, next) = tail.split_at(n);
                rest = next;
                let mut d = bytes.to_vec();
                if op & 4 != 0 && d.len() >= 34 {
                    d[4..8].copy_from_slice(&xid.to_be_bytes());
                    d[28..34].copy_from_slice(&MAC);
                }
                let before = (c.state(), c.next_timeout(), c.lease().cloned());
                if c.handle_datagram(now, &d).is_err() {
                    assert_eq!(before, (c.state(), c.next_timeout(), c.lease().cloned()));
                    assert!(c.poll_transmit().is_none() && c.poll_event().is_none());
                }
            }
        }
        drain(&mut c, &mut xid);
        let next = c.next_timeout().expect("always a deadline");
        if op % 4 < 2 {
            assert!(next > now, "a timer still due after handle_timeout");
        }
    }
});
