//! Deterministic mutation testing: thousands of damaged messages into the
//! parser and the framer. Nothing may panic, every refusal is a typed
//! error with one of the statuses RFC 4475 expects, and whatever parses
//! must survive the print/parse round trip. (The cargo-fuzz targets in
//! `gateway/fuzz/` do the same with coverage guidance.)

use super::rfc4475::corpus;
use super::*;
use crate::testutil::Rng;

/// Bytes that matter to the grammar, to mutate towards interesting text.
const SPICE: &[u8] = b"\r\n \t:;,<>\"\\%@?=/[]*0123456789SIPsipVvLlm\x00\xff";

fn mutate(rng: &mut Rng, input: &[u8], others: &[&[u8]]) -> Vec<u8> {
    let mut m = input.to_vec();
    // Mostly one mutation, so that many mutants still parse and the
    // round trip is exercised; sometimes a burst.
    let count = if rng.below(4) == 0 {
        2 + rng.below(4)
    } else {
        1
    };
    for _ in 0..count {
        let len = m.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                m[i] = SPICE[rng.below(SPICE.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                m.insert(i, SPICE[rng.below(SPICE.len())]);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(len - i).min(16);
                m.drain(i..i + n);
            }
            4 => m.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                // Duplicate a slice (repeated headers, long lines).
                let i = rng.below(len);
                let n = rng.below(len - i).min(64);
                let chunk = m[i..i + n].to_vec();
                let at = rng.below(len + 1);
                m.splice(at..at, chunk);
            }
            6 => {
                // Splice in part of another message.
                let other = others[rng.below(others.len())];
                let i = rng.below(other.len());
                let n = rng.below(other.len() - i).min(128);
                let at = rng.below(len + 1);
                m.splice(at..at, other[i..i + n].iter().copied());
            }
            _ => {
                // Change a digit run (Content-Length, CSeq, ports).
                if let Some(i) = m.iter().position(|b| b.is_ascii_digit()) {
                    m[i] = b'0' + rng.below(10) as u8;
                }
            }
        }
    }
    m
}

/// Returns how many of the two parses succeeded.
fn check_parse(bytes: &[u8], limits: &Limits) -> usize {
    let mut parsed = 0;
    for result in [
        Message::parse(bytes, limits),
        Message::parse_datagram(bytes, limits),
    ] {
        match result {
            Ok(m) => {
                parsed += 1;
                let printed = m.to_bytes();
                assert_eq!(
                    Message::parse(&printed, limits).as_ref(),
                    Ok(&m),
                    "round trip failed for {:?}\nprinted {:?}",
                    String::from_utf8_lossy(bytes),
                    String::from_utf8_lossy(&printed)
                );
            }
            Err(e) => assert!([400, 416, 505, 513].contains(&e.status().as_u16()), "{e:?}"),
        }
    }
    parsed
}

fn check_framer(rng: &mut Rng, stream: &[u8], limits: Limits) {
    let mut f = if rng.below(2) == 0 {
        Framer::server(limits)
    } else {
        Framer::client(limits)
    };
    let mut rest = stream;
    while !rest.is_empty() {
        let n = (1 + rng.below(300)).min(rest.len());
        f.handle_data(&rest[..n]);
        rest = &rest[n..];
        // Each poll consumes input or stops, so this loop is bounded.
        for _ in 0..=stream.len() {
            match f.poll_event() {
                Ok(Some(Event::Message(m))) => {
                    assert_eq!(Message::parse(&m.to_bytes(), &limits), Ok(m));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        assert!(f.buffered() <= limits.max_message_size + 300);
    }
}

#[test]
fn mutated_messages_never_panic() {
    let messages: Vec<&[u8]> = corpus().iter().map(|(_, b)| *b).collect();
    let mut rng = Rng(0x5eed_d1a1_6a7e_0001);
    let limits = Limits::default();
    let mut parsed = 0;
    for round in 0..4000 {
        let base = messages[round % messages.len()];
        let m = mutate(&mut rng, base, &messages);
        parsed += check_parse(&m, &limits);
    }
    // Enough mutants survive for the round-trip check to mean something.
    assert!(parsed > 800, "only {parsed} of 8000 parses succeeded");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x0bad_cafe_f00d_0002);
    let limits = Limits::default();
    for _ in 0..2000 {
        let len = rng.below(400);
        let mut m: Vec<u8> = (0..len).map(|_| SPICE[rng.below(SPICE.len())]).collect();
        if rng.below(2) == 0 {
            m.splice(0..0, b"INVITE sip:a@b SIP/2.0\r\n".iter().copied());
        }
        let _ = check_parse(&m, &limits);
    }
}

#[test]
fn mutated_streams_never_panic() {
    let messages: Vec<&[u8]> = corpus().iter().map(|(_, b)| *b).collect();
    let mut rng = Rng(0xfeed_beef_0000_0003);
    let limits = Limits {
        max_message_size: 4096,
        max_headers: 64,
        max_line_length: 1024,
    };
    for _ in 0..1000 {
        let mut stream = Vec::new();
        for _ in 0..1 + rng.below(4) {
            if rng.below(4) == 0 {
                stream.extend_from_slice(b"\r\n\r\n");
            }
            let base = messages[rng.below(messages.len())];
            if rng.below(3) == 0 {
                stream.extend(mutate(&mut rng, base, &messages));
            } else {
                stream.extend_from_slice(base);
            }
        }
        check_framer(&mut rng, &stream, limits);
    }
}
