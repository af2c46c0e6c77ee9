//! Message framing on stream transports (TCP, TLS: RFC 3261 §18.3) with
//! CRLF keep-alives (RFC 5626 §3.5.1).
//!
//! # Contract
//!
//! Feed every received chunk to [`Framer::handle_data`], then call
//! [`Framer::poll_event`] until it returns `Ok(None)` before feeding more.
//! The framer buffers at most one message plus the last chunk, so memory
//! is bounded by [`Limits::max_message_size`] and the caller's read size.
//!
//! - [`Event::Message`]: a complete, valid message.
//! - [`Event::Rejected`]: a complete message (Content-Length delimited it)
//!   that did not parse. The stream is still in step; answer a request
//!   with `error.status()` if you can, and go on.
//! - [`Event::Ping`] (server role): the peer sent a double CRLF; send a
//!   single CRLF back (RFC 5626 §3.5.1).
//! - [`Event::Pong`] (client role): the peer answered a ping.
//! - `Err(e)`: framing failed (no or bad Content-Length, a bound
//!   exceeded, a broken header section). The stream cannot be re-synced:
//!   send `e.status()` if the peer was sending a request, then close.
//!   Every later call returns the same error.
//!
//! ```
//! use dialgate_proto::sip::{Event, Framer, Limits};
//! let mut f = Framer::server(Limits::default());
//! f.handle_data(b"\r\n\r\nOPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bKx\r\n");
//! assert_eq!(f.poll_event(), Ok(Some(Event::Ping)));
//! assert_eq!(f.poll_event(), Ok(None)); // waiting for the rest
//! f.handle_data(b"From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n\
//!     Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
//! assert!(matches!(f.poll_event(), Ok(Some(Event::Message(_)))));
//! ```

use super::error::ParseError;
use super::headers::{Header, HeaderName};
use super::message::Message;
use super::parse;
use super::Limits;
use zeroize::Zeroize;

/// Which side of a connection the framer reads for; it decides what a
/// CRLF between messages means (RFC 5626 §3.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We accepted the connection: a double CRLF is a ping to answer.
    Server,
    /// We opened the connection: a CRLF is the pong to our ping.
    Client,
}

/// What the framer found in the stream.
// Exhaustive on purpose: the shell must handle every kind of event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete, valid message.
    Message(Message),
    /// A complete message that failed to parse; the stream stays usable.
    Rejected {
        /// Why.
        error: ParseError,
        /// The message's bytes, for logging or salvaging a response.
        bytes: Vec<u8>,
    },
    /// A keep-alive ping: answer with [`PONG`].
    Ping,
    /// A keep-alive pong.
    Pong,
}

/// The keep-alive pong to send for [`Event::Ping`].
pub const PONG: &[u8] = b"\r\n";

/// Splits a byte stream into SIP messages. See the module documentation
/// for the calling contract.
#[derive(Debug)]
pub struct Framer {
    role: Role,
    limits: Limits,
    buf: Vec<u8>,
    /// Total length of the message at the front, once its header section
    /// has been read.
    pending: Option<usize>,
    /// How far the search for the end of the header section got, and where
    /// the line being read starts: each byte is scanned once, so a peer
    /// trickling bytes costs linear time, not quadratic.
    scanned: usize,
    line_start: usize,
    failed: Option<ParseError>,
}

impl Drop for Framer {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl Framer {
    /// A framer for a connection we accepted.
    pub fn server(limits: Limits) -> Framer {
        Framer::new(Role::Server, limits)
    }

    /// A framer for a connection we opened.
    pub fn client(limits: Limits) -> Framer {
        Framer::new(Role::Client, limits)
    }

    fn new(role: Role, limits: Limits) -> Framer {
        Framer {
            role,
            limits,
            buf: Vec::new(),
            pending: None,
            scanned: 0,
            line_start: 0,
            failed: None,
        }
    }

    /// Drops `n` bytes from the front; scanning restarts there. The bytes
    /// left behind in the buffer's spare room are zeroized (a message may
    /// carry keys).
    fn consume(&mut self, n: usize) {
        let len = self.buf.len();
        let n = n.min(len);
        self.buf.copy_within(n.., 0);
        self.buf[len - n..].zeroize();
        self.buf.truncate(len - n);
        self.scanned = 0;
        self.line_start = 0;
    }

    /// Appends received bytes. Ignored once the framer has failed. When
    /// the buffer grows, the old allocation is zeroized before it is freed.
    pub fn handle_data(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.buf.len() + data.len() > self.buf.capacity() {
            let mut bigger =
                Vec::with_capacity((self.buf.len() + data.len()).max(2 * self.buf.capacity()));
            bigger.extend_from_slice(&self.buf);
            self.buf.zeroize();
            self.buf = bigger;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned as an event.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next event, `Ok(None)` if more bytes are needed, or the framing
    /// error that ended the stream.
    pub fn poll_event(&mut self) -> Result<Option<Event>, ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.next() {
            Err(e) => {
                self.buf.zeroize();
                self.buf = Vec::new();
                self.failed = Some(e.clone());
                Err(e)
            }
            ok => ok,
        }
    }

    fn next(&mut self) -> Result<Option<Event>, ParseError> {
        if self.pending.is_none() {
            if let Some(event) = self.keep_alive() {
                return Ok(event);
            }
        }
        let total = match self.pending {
            Some(total) => total,
            None => match self.frame()? {
                Some(total) => total,
                None => return Ok(None),
            },
        };
        let Some(bytes) = self.buf.get(..total) else {
            return Ok(None);
        };
        let event = match Message::parse(bytes, &self.limits) {
            Ok(m) => Event::Message(m),
            Err(error) => Event::Rejected {
                error,
                bytes: bytes.to_vec(),
            },
        };
        self.consume(total);
        self.pending = None;
        Ok(Some(event))
    }

    /// Handles CRLFs between messages. `Some(None)` means: wait for more
    /// bytes before deciding.
    fn keep_alive(&mut self) -> Option<Option<Event>> {
        match self.role {
            Role::Server => loop {
                // RFC 3261 §18.3: CRLFs before a start line are ignored;
                // a double CRLF is a ping (RFC 5626 §3.5.1).
                if self.buf.starts_with(b"\r\n\r\n") {
                    self.consume(4);
                    return Some(Some(Event::Ping));
                }
                if self.buf == b"\r" || self.buf == b"\r\n" || self.buf == b"\r\n\r" {
                    return Some(None);
                }
                if self.buf.starts_with(b"\r\n") {
                    self.consume(2);
                    continue;
                }
                return None;
            },
            Role::Client => {
                if self.buf.starts_with(b"\r\n") {
                    self.consume(2);
                    return Some(Some(Event::Pong));
                }
                if self.buf == b"\r" {
                    return Some(None);
                }
                None
            }
        }
    }

    /// Reads the header section at the front and returns the message's
    /// total length, or `None` if the section is not complete yet.
    fn frame(&mut self) -> Result<Option<usize>, ParseError> {
        if !self.header_section_complete()? {
            if self.buf.len() >= self.limits.max_message_size {
                return Err(ParseError::TooLarge {
                    limit: self.limits.max_message_size,
                });
            }
            return Ok(None);
        }
        let head = parse::head(&self.buf, &self.limits)?;
        let mut length = None;
        for (name, value) in &head.fields {
            if HeaderName::parse(name)? != HeaderName::ContentLength {
                continue;
            }
            if length.is_some() {
                return Err(ParseError::DuplicateHeader(HeaderName::ContentLength));
            }
            match Header::parse(HeaderName::ContentLength, value.trim_matches([' ', '\t']))? {
                Header::ContentLength(n) => length = Some(n),
                _ => return Err(ParseError::BadHeader(HeaderName::ContentLength)),
            }
        }
        let length = length.ok_or(ParseError::MissingContentLength)?;
        let total = head
            .body_start
            .checked_add(length)
            .filter(|&t| t <= self.limits.max_message_size)
            .ok_or(ParseError::TooLarge {
                limit: self.limits.max_message_size,
            })?;
        self.pending = Some(total);
        Ok(Some(total))
    }

    /// Scans the bytes not scanned yet for the empty line that ends the
    /// header section, checking line lengths on the way.
    fn header_section_complete(&mut self) -> Result<bool, ParseError> {
        let too_long = ParseError::LineTooLong {
            limit: self.limits.max_line_length,
        };
        // A line may hold `max_line_length` bytes plus its CRLF.
        let max = self.limits.max_line_length + 2;
        while let Some(&b) = self.buf.get(self.scanned) {
            self.scanned += 1;
            if b != b'\n' {
                continue;
            }
            let line = self.buf.get(self.line_start..self.scanned).unwrap_or(&[]);
            if line.len() > max {
                return Err(too_long);
            }
            let empty = line == b"\r\n" && self.line_start > 0;
            self.line_start = self.scanned;
            if empty {
                return Ok(true);
            }
        }
        if self.buf.len() - self.line_start > max {
            return Err(too_long);
        }
        Ok(false)
    }
}
