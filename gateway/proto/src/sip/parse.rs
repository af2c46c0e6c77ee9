//! From bytes to a [`Message`]: lines, folding, start line, fields, body.
//!
//! The reader is bounded: every limit of [`Limits`] is checked before the
//! data it guards is copied, and nothing indexes past the input.

use super::error::ParseError;
use super::headers::{Header, HeaderName};
use super::message::{Message, Method, StartLine, StatusCode};
use super::uri::{Uri, UriError};
use super::Limits;

/// The header section of a message, split into lines and unfolded.
#[derive(Debug)]
pub(crate) struct Head<'a> {
    pub(crate) start: &'a str,
    /// Field names as written and unfolded values.
    pub(crate) fields: Vec<(&'a str, String)>,
    /// Offset of the first body byte (just after the empty line).
    pub(crate) body_start: usize,
}

/// Splits the header section at the start of `bytes`.
///
/// Lines end in CRLF; a bare CR or LF is an error (RFC 3261 §7). A line
/// starting with SP or HTAB continues the previous field: the CRLF and the
/// leading whitespace become one SP (RFC 3261 §7.3.1). Returns
/// [`ParseError::Incomplete`] if the empty line is not (yet) there.
pub(crate) fn head<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Head<'a>, ParseError> {
    let mut pos = 0;
    let mut start: Option<&'a str> = None;
    let mut fields: Vec<(&'a str, String)> = Vec::new();
    loop {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > limits.max_line_length {
                return Err(ParseError::LineTooLong {
                    limit: limits.max_line_length,
                });
            }
            if rest.contains(&b'\r') && rest.last() != Some(&b'\r') {
                return Err(ParseError::BadLineEnding);
            }
            return Err(ParseError::Incomplete);
        };
        let line = rest.get(..lf).unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").ok_or(ParseError::BadLineEnding)?;
        if line.contains(&b'\r') {
            return Err(ParseError::BadLineEnding);
        }
        if line.len() > limits.max_line_length {
            return Err(ParseError::LineTooLong {
                limit: limits.max_line_length,
            });
        }
        pos += lf + 1;
        let line = core::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
        if start.is_none() {
            start = Some(line);
            continue;
        }
        if line.is_empty() {
            return Ok(Head {
                start: start.unwrap_or(""),
                fields,
                body_start: pos,
            });
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = fields.last_mut().ok_or(ParseError::BadLineEnding)?;
            value.push(' ');
            value.push_str(line.trim_start_matches([' ', '\t']));
            if value.len() > limits.max_line_length {
                return Err(ParseError::LineTooLong {
                    limit: limits.max_line_length,
                });
            }
            continue;
        }
        if fields.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        // HCOLON = *( SP / HTAB ) ":" SWS
        let (name, value) = line.split_once(':').ok_or(ParseError::BadHeaderName)?;
        let name = name.trim_end_matches([' ', '\t']);
        fields.push((name, value.to_owned()));
    }
}

/// Parses one whole message from `bytes`; see `Message::parse` and
/// `Message::parse_datagram` (`datagram` discards bytes past the body).
pub(crate) fn message(
    bytes: &[u8],
    limits: &Limits,
    datagram: bool,
) -> Result<Message, ParseError> {
    if bytes.len() > limits.max_message_size {
        return Err(ParseError::TooLarge {
            limit: limits.max_message_size,
        });
    }
    // The start line is judged first, so that e.g. a bad version gets its
    // 505 whatever follows it.
    let first_line = bytes
        .windows(2)
        .take(limits.max_line_length + 1)
        .position(|w| w == b"\r\n")
        .and_then(|end| bytes.get(..end))
        .and_then(|line| core::str::from_utf8(line).ok());
    if let Some(line) = first_line {
        start_line(line)?;
    }
    let head = head(bytes, limits)?;
    let start = start_line(head.start)?;
    let mut headers = Vec::with_capacity(head.fields.len());
    for (name, value) in &head.fields {
        let name = HeaderName::parse(name)?;
        let value = value.trim_matches([' ', '\t']);
        headers.push(Header::parse(name, value)?);
    }
    let rest = bytes.get(head.body_start..).unwrap_or(&[]);
    let mut lengths = headers.iter().filter_map(|h| match h {
        Header::ContentLength(n) => Some(*n),
        _ => None,
    });
    let body = match (lengths.next(), lengths.next()) {
        (Some(_), Some(_)) => return Err(ParseError::DuplicateHeader(HeaderName::ContentLength)),
        (None, _) => rest,
        (Some(n), None) => match rest.len().cmp(&n) {
            core::cmp::Ordering::Less => return Err(ParseError::BodyTruncated),
            core::cmp::Ordering::Greater if !datagram => return Err(ParseError::TrailingData),
            _ => rest.get(..n).unwrap_or(&[]),
        },
    };
    Message::checked(start, headers, body.to_vec())
}

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT`; only 2.0 is spoken.
fn version(s: &str) -> Result<(), ParseError> {
    if s.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let numbers = s
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and_then(|_| s.get(4..))
        .and_then(|v| v.split_once('.'));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    match numbers {
        Some((major, minor)) if digits(major) && digits(minor) => {
            Err(ParseError::UnsupportedVersion)
        }
        _ => Err(ParseError::BadStartLine),
    }
}

/// Request-Line or Status-Line, single SP between elements (RFC 3261
/// §7.1, §7.2; RFC 4475 §3.1.2.9 and §3.1.2.10 refuse extra SP).
pub(crate) fn start_line(line: &str) -> Result<StartLine, ParseError> {
    let first = line.split(' ').next().unwrap_or("");
    if first.contains('/') {
        // `token` has no "/", so this is a Status-Line.
        let mut parts = line.splitn(3, ' ');
        version(parts.next().unwrap_or(""))?;
        let code = parts.next().ok_or(ParseError::BadStartLine)?;
        let reason = parts.next().ok_or(ParseError::BadStartLine)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadStatusCode);
        }
        let code = code
            .parse()
            .ok()
            .and_then(StatusCode::new)
            .ok_or(ParseError::BadStatusCode)?;
        // Reason-Phrase: text and UTF-8, SP and HTAB, no other controls.
        if reason.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::BadReasonPhrase);
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_owned(),
        });
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, ver] = parts.as_slice() else {
        return Err(ParseError::BadStartLine);
    };
    version(ver)?;
    let method = Method::from_token(method)?;
    let uri = match Uri::parse(uri) {
        Ok(Uri::Other(_)) | Err(UriError::UnsupportedScheme) => {
            return Err(ParseError::UnsupportedUriScheme)
        }
        Ok(u) => u,
        Err(_) => return Err(ParseError::BadRequestUri),
    };
    if matches!(&uri, Uri::Sip(u) if !u.headers.is_empty()) {
        return Err(ParseError::HeadersInRequestUri);
    }
    Ok(StartLine::Request { method, uri })
}
