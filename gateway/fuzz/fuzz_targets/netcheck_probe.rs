//! What the network answers the kit's network check (`docs/network.md`,
//! "Network check"): a STUN server's datagram, or the head of whatever
//! answers the captive-portal probe's plain-HTTP GET. The first byte picks
//! the parser; for STUN the next 12 are the transaction id (patched into
//! the datagram when bit 1 of the first byte is set, so the fuzzer gets
//! past the id check). Asserts: no panic; a success carries at most one
//! address; the portal classifier is deterministic, never waits once the
//! peer has closed, agrees with itself whether or not the peer closed
//! once it has decided, and reports only bounded printable text.
#![no_main]

use dialgate_proto::netcheck::portal::{classify, PortalAnswer, MAX_REPORTED};
use dialgate_proto::netcheck::stun::{parse_binding_response, BindingAnswer, MAX_RESPONSE};
use libfuzzer_sys::fuzz_target;

fn printable(s: &Option<String>) -> bool {
    s.as_ref().is_none_or(|s| {
        s.len() <= MAX_REPORTED && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if rest.len() < 12 {
            return;
        }
        let mut tx = [0u8; 12];
        tx.copy_from_slice(&rest[..12]);
        let mut datagram = rest[12..].to_vec();
        if mode & 2 != 0 && datagram.len() >= 20 {
            datagram[8..20].copy_from_slice(&tx);
        }
        let first = parse_binding_response(&datagram, &tx);
        assert_eq!(first, parse_binding_response(&datagram, &tx));
        if first.is_ok() {
            assert!(datagram.len() >= 20 && datagram.len() <= MAX_RESPONSE);
            assert_eq!(&datagram[8..20], &tx);
        }
        if let Ok(BindingAnswer::Success(Some(a))) = first {
            let _ = a.port();
        }
    } else {
        let open = classify(rest, false);
        let closed = classify(rest, true);
        assert!(closed.is_some(), "a closed connection is always decided");
        if let Some(o) = &open {
            assert_eq!(Some(o), closed.as_ref());
        }
        match closed {
            Some(PortalAnswer::Redirect { status, location }) => {
                assert!((300..=399).contains(&status));
                assert!(printable(&location));
            }
            Some(PortalAnswer::Unexpected {
                status,
                content_type,
            }) => {
                assert!((100..=999).contains(&status));
                assert!(printable(&content_type));
            }
            _ => {}
        }
    }
});
