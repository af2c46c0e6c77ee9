//! Tests of SDP parsing, printing and offer/answer: real-world offers,
//! round trips, every refusal with its Warning text, key freshness, the
//! two-leg B2BUA flow down to SRTP packets, hold/resume, and mutated input.

mod fixtures;
mod flow;
mod mutation;
mod parse;
mod reinvite;
mod reject;

use std::net::SocketAddr;

use crate::srtp::{parse_inline, MasterKey, Suite};

use super::SessionDescription;

/// A fixture written with `\n` line endings, as CRLF wire bytes.
fn wire(text: &str) -> String {
    text.replace('\n', "\r\n")
}

/// Parses a fixture written with `\n` line endings (as CRLF, the wire form).
fn sdp(text: &str) -> SessionDescription {
    match SessionDescription::parse(wire(text).as_bytes()) {
        Ok(sd) => sd,
        Err(e) => panic!("fixture does not parse: {e}\n{text}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A master key from the base64 of an `inline:` parameter.
fn key(suite: Suite, b64: &str) -> MasterKey {
    parse_inline(suite, &format!("inline:{b64}")).unwrap()
}

/// The key of our `a=crypto` line `tag` in a description we printed, as the
/// peer would read it.
fn key_in(sd: &SessionDescription, tag: u32) -> MasterKey {
    let c = sd.media[0]
        .crypto()
        .find(|c| c.tag == tag)
        .expect("crypto tag present");
    parse_inline(Suite::from_name(&c.suite).unwrap(), c.key_params()).unwrap()
}

fn same(a: &MasterKey, b: &MasterKey) -> bool {
    a.suite() == b.suite() && a.key_and_salt() == b.key_and_salt()
}
