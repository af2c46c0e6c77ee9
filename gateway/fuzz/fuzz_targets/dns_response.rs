//! What the network's resolver answers the kit (`docs/network.md`, "DNS"):
//! a datagram read as the answer to an A, AAAA or SRV query. Input: a mode
//! byte (bits 0-1 the kind, bit 2: the query's id differs from the
//! datagram's), the name's length and the name, then the datagram; the
//! query's id is otherwise the datagram's own, so the fuzzer gets past the
//! id check. Asserts: no panic; the reader is deterministic; an answer
//! comes only from a datagram within the size bound, with the id asked,
//! holds 1 to 16 distinct addresses or 1 to 16 SRV targets (never "."),
//! and a datagram with another id is never ours.
#![no_main]

use dialgate_proto::dns::{Answer, DnsError, Kind, Name, Query, MAX_ANSWERS, MAX_UDP_RESPONSE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, len, rest @ ..] = data else {
        return;
    };
    let kind = match mode & 3 {
        0 => Kind::A,
        1 => Kind::Aaaa,
        _ => Kind::Srv,
    };
    let Some((name, datagram)) = rest.split_at_checked(usize::from(*len)) else {
        return;
    };
    let Some(name) = std::str::from_utf8(name)
        .ok()
        .and_then(|n| Name::parse(n).ok())
    else {
        return;
    };
    let Some(id) = datagram.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return;
    };
    let other = mode & 4 != 0;
    let q = Query::new(if other { id ^ 1 } else { id }, &name, kind);
    let r = q.read_response(datagram);
    assert_eq!(r, q.read_response(datagram));
    if other {
        assert!(
            matches!(r, Err(DnsError::NotOurs(_)))
                || datagram.len() > MAX_UDP_RESPONSE
                || datagram.len() < 12,
            "{r:?}"
        );
    }
    match r {
        Ok(Answer::Addresses { addrs, .. }) => {
            assert!(datagram.len() <= MAX_UDP_RESPONSE && !other);
            assert!(!addrs.is_empty() && addrs.len() <= MAX_ANSWERS);
            for (i, a) in addrs.iter().enumerate() {
                assert!(!addrs[..i].contains(a));
                assert_eq!(a.is_ipv4(), kind == Kind::A);
            }
        }
        Ok(Answer::Srv { targets, .. }) => {
            assert!(datagram.len() <= MAX_UDP_RESPONSE && kind == Kind::Srv);
            assert!(!targets.is_empty() && targets.len() <= MAX_ANSWERS);
            assert!(targets
                .iter()
                .all(|t| Name::parse(t.target.as_str()).is_ok()));
        }
        Err(_) => {}
    }
});
