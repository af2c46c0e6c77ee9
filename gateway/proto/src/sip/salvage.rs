//! A response to a request that did not parse (RFC 3261 §21.4.1: "400 Bad
//! Request ... the reason phrase SHOULD identify the syntax problem").
//!
//! The request is not trusted for anything else: only the five header
//! fields a response must echo (Via, From, To, Call-ID, CSeq) are copied,
//! as the raw lines they were, and only when each is present, ASCII and
//! free of control characters, and only if the response they make parses
//! as a valid message. A request missing any of them or with any of them
//! malformed, a response, or an ACK gets nothing back (there is nobody to
//! answer, or it must not be answered).

use super::error::ParseError;
use super::message::StatusCode;

/// Longest header line copied into a salvaged response.
const MAX_LINE: usize = 1024;

/// The response to `bytes` (a complete message the framer delimited but
/// that did not parse with `error`), or `None` when none can or may be
/// sent.
pub fn salvage_response(bytes: &[u8], error: &ParseError) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    // A response, or an ACK (never answered), gets nothing.
    let method = start.split(' ').next()?;
    if start.starts_with("SIP/") || method == "ACK" || method.is_empty() {
        return None;
    }
    // Unfolded header lines (RFC 3261 §7.3.1 continuation lines joined).
    let mut fields: Vec<String> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = fields.last_mut()?;
            last.push(' ');
            last.push_str(line.trim());
        } else {
            fields.push(line.to_string());
        }
    }
    let name_of = |field: &str| -> Option<&'static str> {
        let name = field.split(':').next()?.trim().to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" => Some("Via"),
            "from" | "f" => Some("From"),
            "to" | "t" => Some("To"),
            "call-id" | "i" => Some("Call-ID"),
            "cseq" => Some("CSeq"),
            _ => None,
        }
    };
    let mut out_headers: Vec<(&'static str, &str)> = Vec::new();
    for f in &fields {
        let Some(name) = name_of(f) else { continue };
        let value = f.split_once(':')?.1.trim();
        if value.is_empty()
            || value.len() > MAX_LINE
            || value.bytes().any(|b| b.is_ascii_control() || !b.is_ascii())
        {
            return None;
        }
        // Only Via may repeat.
        if name != "Via" && out_headers.iter().any(|(n, _)| *n == name) {
            return None;
        }
        out_headers.push((name, value));
    }
    for needed in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if !out_headers.iter().any(|(n, _)| *n == needed) {
            return None;
        }
    }
    let status: StatusCode = error.status();
    let mut out = format!(
        "SIP/2.0 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason()
    );
    for (name, value) in out_headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    // The reason, as a Warning (the text is ours, never the peer's).
    let why = error.to_string().replace(['"', '\\'], "'");
    out.push_str(&format!(
        "Warning: 399 dialgate \"{why}\"\r\nContent-Length: 0\r\n\r\n"
    ));
    // What we send must be a valid message: a broken Via or CSeq copied
    // from the request means the transaction cannot be named.
    let out = out.into_bytes();
    super::Message::parse(&out, &super::Limits::default()).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Limits, Message};

    const BAD: &[u8] = b"INVITE sip:echo@gw SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKabc\r\nVia: SIP/2.0/TLS 192.0.2.9;branch=z9hG4bKdef\r\nFrom: <sip:alice@gw>;tag=1\r\nTo: <sip:echo@gw>\r\nCall-ID: x@y\r\nCSeq: 1 INVITE\r\nMax-Forwards: seventy\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_malformed_request_gets_a_400_that_echoes_the_transaction() {
        let err = Message::parse(BAD, &Limits::default()).unwrap_err();
        let resp = salvage_response(BAD, &err).unwrap();
        // It parses as a response of ours and matches the request.
        let m = Message::parse(&resp, &Limits::default()).unwrap();
        assert_eq!(m.status().unwrap().as_u16(), 400);
        assert_eq!(m.vias().count(), 2);
        assert_eq!(m.top_via().branch(), Some("z9hG4bKabc"));
        assert_eq!(m.cseq().seq, 1);
        let text = String::from_utf8(resp).unwrap();
        assert!(text.contains("Warning: 399 dialgate"), "{text}");
    }

    #[test]
    fn nothing_for_acks_responses_or_requests_missing_a_needed_header() {
        let err = Message::parse(BAD, &Limits::default()).unwrap_err();
        let ack = String::from_utf8_lossy(BAD).replacen("INVITE sip", "ACK sip", 1);
        assert!(salvage_response(ack.as_bytes(), &err).is_none());
        let resp = b"SIP/2.0 200 OK\r\nVia: x\r\nContent-Length: 0\r\n\r\n";
        assert!(salvage_response(resp, &err).is_none());
        for drop in ["Via", "From", "To", "Call-ID", "CSeq"] {
            let text: String = String::from_utf8_lossy(BAD)
                .split("\r\n")
                .filter(|l| !l.starts_with(&format!("{drop}:")))
                .collect::<Vec<_>>()
                .join("\r\n");
            assert!(salvage_response(text.as_bytes(), &err).is_none(), "{drop}");
        }
        // Control characters or a repeated From: nothing.
        let ctl = String::from_utf8_lossy(BAD).replacen("Call-ID: x@y", "Call-ID: x\x01y", 1);
        assert!(salvage_response(ctl.as_bytes(), &err).is_none());
        let two = String::from_utf8_lossy(BAD).replacen("To:", "From: <sip:b@c>\r\nTo:", 1);
        assert!(salvage_response(two.as_bytes(), &err).is_none());
    }

    #[test]
    fn rfc4475_invalid_requests_are_answered_where_the_transaction_is_nameable() {
        let mut answered = Vec::new();
        for (name, bytes) in crate::sip::rfc4475::corpus() {
            if let Err(err) = Message::parse(bytes, &Limits::default()) {
                if let Some(resp) = salvage_response(bytes, &err) {
                    let m = Message::parse(&resp, &Limits::default()).unwrap();
                    assert_eq!(m.status().unwrap(), err.status(), "{name}");
                    answered.push(*name);
                }
            }
        }
        // badinv01's Via is itself broken: nothing can be sent.
        assert!(!answered.contains(&"badinv01"), "{answered:?}");
        assert!(answered.len() >= 3, "{answered:?}");
    }
}
