//! Tests of SDP parsing and printing.

mod fixtures;
mod parse;

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
