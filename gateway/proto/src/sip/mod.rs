//! The SIP message codec (RFC 3261 §7, §18.3, §20, §25), sans-IO.
//!
//! # Contract
//!
//! Bytes become typed values once, here, through a bounded reader:
//!
//! - [`Message::parse`] reads one whole message (exactly; trailing bytes
//!   are an error) and [`Message::parse_datagram`] one datagram (bytes past
//!   Content-Length are discarded, RFC 3261 §18.3).
//! - [`Framer`] splits a TCP/TLS byte stream into messages by
//!   Content-Length (mandatory on streams) and reports RFC 5626 CRLF
//!   keep-alives. Feed it with `handle_data`, then drain `poll_event`.
//! - [`Message::to_bytes`] prints canonical long header names, one field
//!   per line; `Message::parse(&m.to_bytes(), ..) == Ok(m)`.
//!
//! Every read is bounded by [`Limits`] (message size, header count, line
//! length). Refusals are a [`ParseError`] naming what was wrong, and
//! [`ParseError::status`] gives the response to send to a request: 505
//! for a bad version, 513 for the size limits, 416 for an unsupported
//! Request-URI scheme, 400 otherwise (the answers RFC 4475 §3 expects).
//!
//! The fields dialgate acts on are typed (Via, From, To, Call-ID, CSeq,
//! Contact, Max-Forwards, Route, Record-Route, P-Asserted-Identity,
//! Content-Type, Content-Length, Session-Expires, Min-SE, Supported,
//! Require); every other field is kept as its unfolded text. Header names
//! match case-insensitively and compact forms (`v`, `f`, `t`, `i`, `m`,
//! `l`, `c`, `k`, `s`, `e`, `o`, `u`, `x`, ...) map to their long names.
//!
//! ```
//! use dialgate_proto::sip::{Limits, Message, Method};
//! let wire = b"INVITE sip:echo@gw.example.com SIP/2.0\r\n\
//!     v: SIP/2.0/TLS phone.example.com;branch=z9hG4bK776asdhds\r\n\
//!     Max-Forwards: 70\r\n\
//!     f: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
//!     t: <sip:echo@gw.example.com>\r\n\
//!     i: a84b4c76e66710\r\n\
//!     CSeq: 314159 INVITE\r\n\
//!     l: 0\r\n\r\n";
//! let m = Message::parse(wire, &Limits::default()).unwrap();
//! assert_eq!(m.method(), Some(&Method::Invite));
//! assert_eq!(m.from().tag(), Some("1928301774"));
//! assert!(m.top_via().has_rfc3261_branch());
//! let printed = m.to_bytes();
//! assert!(printed.windows(5).any(|w| w == b"Via: "));
//! assert_eq!(Message::parse(&printed, &Limits::default()), Ok(m));
//! ```

mod error;
mod framer;
mod grammar;
mod headers;
mod message;
mod parse;
mod salvage;
mod uri;
mod values;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod rfc4475;
#[cfg(test)]
mod tests;

pub use error::ParseError;
pub use framer::{Event, Framer, Role, PONG};
pub use headers::{Header, HeaderName, RawHeader};
pub use message::{Message, Method, StartLine, StatusCode};
pub use salvage::salvage_response;
pub use uri::{Host, OtherUri, SipUri, TelUri, Uri, UriError, UriParam};
pub use values::{
    CSeq, Contact, MediaType, NameAddr, Param, Refresher, SessionExpires, Transport, Via,
    CSEQ_LIMIT, MAGIC_COOKIE,
};

/// Bounds on what the reader accepts. The defaults suit a gateway that
/// carries SDP offers, not bulk content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, header section and body together (default 64 KiB;
    /// larger is [`ParseError::TooLarge`], answered with 513).
    pub max_message_size: usize,
    /// Most header fields (default 128).
    pub max_headers: usize,
    /// Longest start line or header field after unfolding (default 8 KiB).
    pub max_line_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_headers: 128,
            max_line_length: 8 * 1024,
        }
    }
}
