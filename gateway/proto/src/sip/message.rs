//! SIP messages (RFC 3261 §7): start line, header fields, body.

use core::fmt;

use super::error::ParseError;
use super::grammar::{is_token_str, push_safe};
use super::headers::{Header, HeaderName};
use super::parse;
use super::uri::Uri;
use super::values::{CSeq, Contact, MediaType, NameAddr, Param, SessionExpires, Via};
use super::Limits;

/// A request method (RFC 3261 §7.1: case-sensitive).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// INVITE (RFC 3261).
    Invite,
    /// ACK (RFC 3261).
    Ack,
    /// BYE (RFC 3261).
    Bye,
    /// CANCEL (RFC 3261).
    Cancel,
    /// OPTIONS (RFC 3261).
    Options,
    /// REGISTER (RFC 3261).
    Register,
    /// UPDATE (RFC 3311).
    Update,
    /// INFO (RFC 6086).
    Info,
    /// PRACK (RFC 3262).
    Prack,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// REFER (RFC 3515).
    Refer,
    /// MESSAGE (RFC 3428).
    Message,
    /// Any other token (an `extension-method`); build it with
    /// [`Method::from_token`], which checks the grammar.
    Extension(String),
}

const METHODS: [(&str, Method); 13] = [
    ("INVITE", Method::Invite),
    ("ACK", Method::Ack),
    ("BYE", Method::Bye),
    ("CANCEL", Method::Cancel),
    ("OPTIONS", Method::Options),
    ("REGISTER", Method::Register),
    ("UPDATE", Method::Update),
    ("INFO", Method::Info),
    ("PRACK", Method::Prack),
    ("SUBSCRIBE", Method::Subscribe),
    ("NOTIFY", Method::Notify),
    ("REFER", Method::Refer),
    ("MESSAGE", Method::Message),
];

impl Method {
    /// The method named by `token` (exact case; `invite` is an extension).
    pub fn from_token(token: &str) -> Result<Method, ParseError> {
        if !is_token_str(token) {
            return Err(ParseError::BadMethod);
        }
        Ok(METHODS
            .iter()
            .find(|(name, _)| *name == token)
            .map_or_else(|| Method::Extension(token.to_owned()), |(_, m)| m.clone()))
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Extension(s) => s,
            known => METHODS
                .iter()
                .find(|(_, m)| m == known)
                .map_or("", |(name, _)| name),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A response status code, 100 to 699 (RFC 3261 §7.2, §21).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 100 Trying.
    pub const TRYING: StatusCode = StatusCode(100);
    /// 200 OK.
    pub const OK: StatusCode = StatusCode(200);
    /// 400 Bad Request.
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// 416 Unsupported URI Scheme.
    pub const UNSUPPORTED_URI_SCHEME: StatusCode = StatusCode(416);
    /// 420 Bad Extension.
    pub const BAD_EXTENSION: StatusCode = StatusCode(420);
    /// 483 Too Many Hops.
    pub const TOO_MANY_HOPS: StatusCode = StatusCode(483);
    /// 488 Not Acceptable Here.
    pub const NOT_ACCEPTABLE_HERE: StatusCode = StatusCode(488);
    /// 500 Server Internal Error.
    pub const SERVER_INTERNAL_ERROR: StatusCode = StatusCode(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    /// 505 Version Not Supported.
    pub const VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);
    /// 513 Message Too Large.
    pub const MESSAGE_TOO_LARGE: StatusCode = StatusCode(513);

    /// A code from 100 to 699.
    pub fn new(code: u16) -> Option<StatusCode> {
        (100..=699).contains(&code).then_some(StatusCode(code))
    }

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// The RFC 3261 §21 reason phrase for the codes above, else a class
    /// phrase.
    pub fn canonical_reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            200 => "OK",
            400 => "Bad Request",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            483 => "Too Many Hops",
            488 => "Not Acceptable Here",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            code => match code / 100 {
                1 => "Provisional",
                2 => "Success",
                3 => "Redirection",
                4 => "Client Error",
                5 => "Server Error",
                _ => "Global Failure",
            },
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`.
    Request {
        /// Method.
        method: Method,
        /// Request-URI: sip, sips or tel, without URI headers.
        uri: Uri,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`.
    Response {
        /// Status code.
        code: StatusCode,
        /// Reason phrase (UTF-8, may be empty).
        reason: String,
    },
}

/// A SIP request or response.
///
/// Only [`Message::parse`], [`Message::parse_datagram`],
/// [`Message::request`], [`Message::response`] and
/// [`Message::response_to`] build one, and all of them check what every
/// element relies on (RFC 3261 §8.1.1, §8.2.2, §20): Via, From, To, Call-ID
/// and CSeq present; single-valued fields at most once; the CSeq method
/// equal to the request method; Content-Length, if present, equal to the
/// body length. So the accessors for those fields cannot fail.
///
/// [`Message::to_bytes`] prints canonical long header names, one field
/// per line, and `parse(to_bytes(m)) == m`.
///
/// A body may carry keys (an SDES offer or answer): it is zeroized when the
/// message is dropped, and `Debug` shows its length, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    start: StartLine,
    headers: Vec<Header>,
    body: Vec<u8>,
}

impl Drop for Message {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.body);
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("start", &self.start)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Message {
    /// Parses exactly one message filling all of `bytes` (RFC 3261 §7,
    /// §25), within `limits`. Without Content-Length the body is the rest
    /// of `bytes`; with it, a shorter body is [`ParseError::BodyTruncated`]
    /// and extra bytes are [`ParseError::TrailingData`].
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
        parse::message(bytes, limits, false)
    }

    /// Parses a message received in one datagram: bytes after the body
    /// that Content-Length delimits are discarded (RFC 3261 §18.3; RFC
    /// 4475 §3.1.1.8).
    pub fn parse_datagram(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
        parse::message(bytes, limits, true)
    }

    /// A request; a Content-Length field is added or replaced to match
    /// `body`.
    pub fn request(
        method: Method,
        uri: Uri,
        headers: Vec<Header>,
        body: Vec<u8>,
    ) -> Result<Message, ParseError> {
        let uri_ok = match &uri {
            Uri::Sip(u) => u.headers.is_empty(),
            Uri::Tel(_) => true,
            Uri::Other(_) => return Err(ParseError::UnsupportedUriScheme),
        };
        if !uri_ok {
            return Err(ParseError::HeadersInRequestUri);
        }
        Message::build(StartLine::Request { method, uri }, headers, body)
    }

    /// A response; a Content-Length field is added or replaced to match
    /// `body`. The reason may not contain control characters but HTAB.
    pub fn response(
        code: StatusCode,
        reason: &str,
        headers: Vec<Header>,
        body: Vec<u8>,
    ) -> Result<Message, ParseError> {
        if reason.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::BadReasonPhrase);
        }
        let start = StartLine::Response {
            code,
            reason: reason.to_owned(),
        };
        Message::build(start, headers, body)
    }

    /// A response to `request` without body, copying Via, From, To,
    /// Call-ID and CSeq (RFC 3261 §8.2.6.2) and the canonical reason
    /// phrase. Adding the To tag is the caller's business.
    pub fn response_to(request: &Message, code: StatusCode) -> Result<Message, ParseError> {
        let headers = request
            .headers
            .iter()
            .filter(|h| {
                matches!(
                    h,
                    Header::Via(_)
                        | Header::From(_)
                        | Header::To(_)
                        | Header::CallId(_)
                        | Header::CSeq(_)
                )
            })
            .cloned()
            .collect();
        Message::response(code, code.canonical_reason(), headers, Vec::new())
    }

    fn build(
        start: StartLine,
        mut headers: Vec<Header>,
        body: Vec<u8>,
    ) -> Result<Message, ParseError> {
        headers.retain(|h| !matches!(h, Header::ContentLength(_)));
        headers.push(Header::ContentLength(body.len()));
        Message::checked(start, headers, body)
    }

    /// Checks the invariants listed on [`Message`].
    pub(crate) fn checked(
        start: StartLine,
        headers: Vec<Header>,
        body: Vec<u8>,
    ) -> Result<Message, ParseError> {
        let mut seen: Vec<HeaderName> = Vec::new();
        for h in &headers {
            let name = h.name();
            if name.is_single() {
                if seen.contains(&name) {
                    return Err(ParseError::DuplicateHeader(name));
                }
                seen.push(name.clone());
            }
            if matches!(h, Header::ContentLength(n) if *n != body.len()) {
                return Err(ParseError::BodyTruncated);
            }
            // List fields built by code must not be empty (the parser
            // never yields an empty one; Supported may be).
            let empty = match h {
                Header::Via(v) => v.is_empty(),
                Header::Route(v) | Header::RecordRoute(v) | Header::PAssertedIdentity(v) => {
                    v.is_empty()
                }
                Header::Contact(Contact::Addresses(v)) => v.is_empty(),
                Header::Require(v) => v.is_empty(),
                _ => false,
            };
            if empty {
                return Err(ParseError::BadHeader(name));
            }
        }
        let has_via = headers.iter().any(|h| matches!(h, Header::Via(_)));
        for required in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            if !seen.contains(&required) {
                return Err(ParseError::MissingHeader(required));
            }
        }
        if !has_via {
            return Err(ParseError::MissingHeader(HeaderName::Via));
        }
        let m = Message {
            start,
            headers,
            body,
        };
        if let StartLine::Request { method, .. } = &m.start {
            if m.cseq().method != *method {
                return Err(ParseError::CSeqMismatch);
            }
        }
        Ok(m)
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    /// The method, for a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, for a request.
    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, for a response.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// All header fields, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Every Via value, top first, across all Via lines.
    pub fn vias(&self) -> impl Iterator<Item = &Via> {
        self.headers.iter().flat_map(|h| match h {
            Header::Via(v) => v.as_slice(),
            _ => &[],
        })
    }

    /// The topmost Via (always present).
    pub fn top_via(&self) -> &Via {
        // `checked` guarantees a Via line; Via lines are never empty.
        self.vias().next().unwrap_or_else(|| unreachable_header())
    }

    /// From (always present).
    pub fn from(&self) -> &NameAddr {
        self.find(|h| match h {
            Header::From(n) => Some(n),
            _ => None,
        })
        .unwrap_or_else(|| unreachable_header())
    }

    /// To (always present).
    pub fn to(&self) -> &NameAddr {
        self.find(|h| match h {
            Header::To(n) => Some(n),
            _ => None,
        })
        .unwrap_or_else(|| unreachable_header())
    }

    /// Call-ID (always present).
    pub fn call_id(&self) -> &str {
        self.find(|h| match h {
            Header::CallId(c) => Some(c.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| unreachable_header())
    }

    /// CSeq (always present).
    pub fn cseq(&self) -> &CSeq {
        self.find(|h| match h {
            Header::CSeq(c) => Some(c),
            _ => None,
        })
        .unwrap_or_else(|| unreachable_header())
    }

    /// Contact, if any (all Contact lines merged; `*` stands alone).
    pub fn contact(&self) -> Option<Contact> {
        let mut list = Vec::new();
        for h in &self.headers {
            match h {
                Header::Contact(Contact::Wildcard) => return Some(Contact::Wildcard),
                Header::Contact(Contact::Addresses(a)) => list.extend(a.iter().cloned()),
                _ => {}
            }
        }
        (!list.is_empty()).then_some(Contact::Addresses(list))
    }

    /// Max-Forwards, if present.
    pub fn max_forwards(&self) -> Option<u8> {
        self.find(|h| match h {
            Header::MaxForwards(n) => Some(*n),
            _ => None,
        })
    }

    /// Route values, in order, across all Route lines.
    pub fn route(&self) -> impl Iterator<Item = &NameAddr> {
        self.list(|h| match h {
            Header::Route(v) => Some(v),
            _ => None,
        })
    }

    /// Record-Route values, in order, across all Record-Route lines.
    pub fn record_route(&self) -> impl Iterator<Item = &NameAddr> {
        self.list(|h| match h {
            Header::RecordRoute(v) => Some(v),
            _ => None,
        })
    }

    /// P-Asserted-Identity values (RFC 3325).
    pub fn p_asserted_identity(&self) -> impl Iterator<Item = &NameAddr> {
        self.list(|h| match h {
            Header::PAssertedIdentity(v) => Some(v),
            _ => None,
        })
    }

    /// Content-Type, if present.
    pub fn content_type(&self) -> Option<&MediaType> {
        self.find(|h| match h {
            Header::ContentType(m) => Some(m),
            _ => None,
        })
    }

    /// Content-Length, if present (always equal to the body length).
    pub fn content_length(&self) -> Option<usize> {
        self.find(|h| match h {
            Header::ContentLength(n) => Some(*n),
            _ => None,
        })
    }

    /// Session-Expires (RFC 4028), if present.
    pub fn session_expires(&self) -> Option<&SessionExpires> {
        self.find(|h| match h {
            Header::SessionExpires(s) => Some(s),
            _ => None,
        })
    }

    /// Min-SE (RFC 4028) seconds and parameters, if present.
    pub fn min_se(&self) -> Option<(u32, &[Param])> {
        self.find(|h| match h {
            Header::MinSe(d, p) => Some((*d, p.as_slice())),
            _ => None,
        })
    }

    /// Supported option tags across all Supported lines.
    pub fn supported(&self) -> impl Iterator<Item = &str> {
        self.list(|h| match h {
            Header::Supported(v) => Some(v),
            _ => None,
        })
        .map(String::as_str)
    }

    /// Require option tags across all Require lines.
    pub fn require(&self) -> impl Iterator<Item = &str> {
        self.list(|h| match h {
            Header::Require(v) => Some(v),
            _ => None,
        })
        .map(String::as_str)
    }

    /// Values of raw header fields named `name`, in order.
    pub fn raw(&self, name: &HeaderName) -> impl Iterator<Item = &str> {
        let name = name.clone();
        self.headers.iter().filter_map(move |h| match h {
            Header::Raw(r) if *r.name() == name => Some(r.value()),
            _ => None,
        })
    }

    fn find<'a, T>(&'a self, f: impl Fn(&'a Header) -> Option<T>) -> Option<T> {
        self.headers.iter().find_map(f)
    }

    fn list<'a, T: 'a>(
        &'a self,
        f: impl Fn(&'a Header) -> Option<&'a Vec<T>> + 'a,
    ) -> impl Iterator<Item = &'a T> + 'a {
        self.headers.iter().filter_map(f).flatten()
    }

    /// The wire form: start line, one field per line with the canonical
    /// long name, empty line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = String::with_capacity(256 + 64 * self.headers.len());
        match &self.start {
            StartLine::Request { method, uri } => {
                push_safe(&mut head, method.as_str());
                head.push(' ');
                uri.write(&mut head);
                head.push_str(" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                head.push_str("SIP/2.0 ");
                head.push_str(&code.to_string());
                head.push(' ');
                push_safe(&mut head, reason);
                head.push_str("\r\n");
            }
        }
        for h in &self.headers {
            h.write(&mut head);
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The accessor invariants hold for every `Message` (see `checked`); this
/// is reached only through a bug in this module.
#[cold]
fn unreachable_header() -> ! {
    panic!("sip::Message invariant broken: required header missing")
}
