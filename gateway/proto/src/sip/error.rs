//! Why a message was refused, and the answer it deserves.

use super::headers::HeaderName;
use super::message::StatusCode;

/// Why bytes were not accepted as a SIP message.
///
/// Every variant blames the peer (or, for the size limits, names a local
/// bound the peer exceeded). [`ParseError::status`] gives the response a
/// UAS sends to a request refused this way; a malformed *response* is
/// dropped instead (RFC 3261 §18.1.2, RFC 4475 §3.1.2.5 and §3.1.2.19).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// More bytes than `Limits::max_message_size`.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// More header fields than `Limits::max_headers`.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// A start line or (unfolded) header field longer than
    /// `Limits::max_line_length`.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// The header section does not end with an empty line.
    #[error("incomplete header section")]
    Incomplete,
    /// A bare CR or LF in the header section (RFC 3261 §7: lines end in
    /// CRLF), or a continuation line with no header field to continue.
    #[error("malformed line ending or folding")]
    BadLineEnding,
    /// The header section is not UTF-8 (RFC 3261 §7.3: `TEXT-UTF8`).
    #[error("header section is not UTF-8")]
    NotUtf8,
    /// Neither a Request-Line nor a Status-Line (RFC 3261 §7.1, §7.2),
    /// including extra or missing SP (RFC 4475 §3.1.2.9, §3.1.2.10).
    #[error("malformed start line")]
    BadStartLine,
    /// A `SIP/x.y` version other than 2.0 (RFC 4475 §3.1.2.16: 505).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// The method is not a token.
    #[error("malformed method")]
    BadMethod,
    /// The Request-URI does not parse (RFC 4475 §3.1.2.7, §3.1.2.8).
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// The Request-URI carries URI headers, which RFC 3261 §19.1.1 (table
    /// 1) does not allow there (RFC 4475 §3.1.2.11).
    #[error("URI headers in the Request-URI")]
    HeadersInRequestUri,
    /// A Request-URI scheme other than sip, sips or tel (RFC 3261
    /// §8.2.2.1, RFC 4475 §3.3.2 and §3.3.3: 416).
    #[error("unsupported Request-URI scheme")]
    UnsupportedUriScheme,
    /// A status code that is not three digits from 100 to 699 (RFC 4475
    /// §3.1.2.19).
    #[error("malformed status code")]
    BadStatusCode,
    /// A reason phrase with characters RFC 3261 §25.1 does not allow.
    #[error("malformed reason phrase")]
    BadReasonPhrase,
    /// A header name that is not a token, or a line without a colon.
    #[error("malformed header field name")]
    BadHeaderName,
    /// The value of this header field does not match its grammar.
    #[error("malformed {0} header field")]
    BadHeader(HeaderName),
    /// A header field every request or response must carry is missing
    /// (RFC 3261 §8.1.1, RFC 4475 §3.3.1).
    #[error("missing {0} header field")]
    MissingHeader(HeaderName),
    /// A single-valued header field appears twice (RFC 4475 §3.3.8,
    /// §3.3.9).
    #[error("{0} header field appears more than once")]
    DuplicateHeader(HeaderName),
    /// The CSeq method differs from the request method (RFC 3261
    /// §8.1.1.5, RFC 4475 §3.1.2.17, §3.1.2.18).
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// No Content-Length on a stream transport (RFC 3261 §18.3: MUST).
    #[error("missing Content-Length on a stream")]
    MissingContentLength,
    /// Fewer body bytes than Content-Length says (RFC 4475 §3.1.2.2).
    #[error("body shorter than Content-Length")]
    BodyTruncated,
    /// Bytes after the body Content-Length delimits (use
    /// `Message::parse_datagram` to discard them as RFC 3261 §18.3 says
    /// for UDP).
    #[error("data after the end of the message")]
    TrailingData,
}

impl ParseError {
    /// The status of the response to send to a request refused with this
    /// error: 505 for a bad version, 513 for the size limits, 416 for an
    /// unsupported Request-URI scheme, otherwise 400 (RFC 4475 §3).
    pub fn status(&self) -> StatusCode {
        match self {
            ParseError::UnsupportedVersion => StatusCode::VERSION_NOT_SUPPORTED,
            ParseError::TooLarge { .. }
            | ParseError::TooManyHeaders { .. }
            | ParseError::LineTooLong { .. } => StatusCode::MESSAGE_TOO_LARGE,
            ParseError::UnsupportedUriScheme => StatusCode::UNSUPPORTED_URI_SCHEME,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}
