//! SDP (RFC 8866) with SDES keys (RFC 4568).
//!
//! # Contract
//!
//! Everything here is sans-IO: bytes in, typed values out, and back.
//!
//! - [`SessionDescription::parse`] turns a body into the typed model through
//!   a bounded reader ([`MAX_BODY`], [`MAX_LINES`], [`MAX_LINE`],
//!   [`MAX_MEDIA`], [`MAX_FORMATS`]); [`SessionDescription::print`] writes it
//!   back (round trip: `parse(print(d)) == d`, and a body already in
//!   canonical order and CRLF prints byte for byte as it came).
//!
//! Keys never reach `Debug` output: [`SessionDescription::print`] returns
//! the wire form (with keys) in a zeroizing buffer; log
//! [`SessionDescription::print_redacted`] instead.

mod model;
mod parse;
mod print;
#[cfg(test)]
mod tests;

pub use model::{
    AddrType, Attribute, Bandwidth, Connection, Crypto, Direction, Fmtp, Formats, Media, MediaType,
    Origin, Proto, RawAttribute, Rtcp, Rtpmap, SessionDescription, Timing,
};

/// Largest SDP body accepted, in octets.
pub const MAX_BODY: usize = 16 * 1024;
/// Most lines in one body.
pub const MAX_LINES: usize = 256;
/// Longest line, in octets (without the line ending).
pub const MAX_LINE: usize = 1024;
/// Most media sections (`m=` lines) in one body.
pub const MAX_MEDIA: usize = 8;
/// Most formats on one `m=` line.
pub const MAX_FORMATS: usize = 64;

/// Why a body is not a valid SDP session description. `line` numbers
/// start at 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is larger than [`MAX_BODY`].
    #[error("SDP body larger than {MAX_BODY} octets")]
    TooLarge,
    /// The body has more than [`MAX_LINES`] lines.
    #[error("SDP body has more than {MAX_LINES} lines")]
    TooManyLines,
    /// A line is longer than [`MAX_LINE`].
    #[error("line {line} longer than {MAX_LINE} octets")]
    LineTooLong {
        /// Line number.
        line: usize,
    },
    /// The body has more than [`MAX_MEDIA`] media sections.
    #[error("more than {MAX_MEDIA} media sections")]
    TooManyMedia,
    /// An `m=` line has more than [`MAX_FORMATS`] formats.
    #[error("line {line}: more than {MAX_FORMATS} formats")]
    TooManyFormats {
        /// Line number.
        line: usize,
    },
    /// The body is not UTF-8 (RFC 8866 §5).
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    /// A control character (other than tab) inside a line.
    #[error("line {line}: control character")]
    ControlCharacter {
        /// Line number.
        line: usize,
    },
    /// An empty line before the end of the body.
    #[error("line {line}: empty line")]
    EmptyLine {
        /// Line number.
        line: usize,
    },
    /// A line that is not `<letter>=<value>` (RFC 8866 §5).
    #[error("line {line}: not a <type>=<value> line")]
    NotALine {
        /// Line number.
        line: usize,
    },
    /// The body does not start with `v=0`.
    #[error("the body does not start with v=0")]
    BadVersion,
    /// A mandatory line is missing (`o=`, `s=`, `t=`).
    #[error("mandatory {0}= line missing")]
    Missing(char),
    /// A line type where it is not allowed (RFC 8866 §5 order), or repeated
    /// where it may appear only once.
    #[error("line {line}: {kind}= line out of place")]
    OutOfOrder {
        /// Line number.
        line: usize,
        /// Line type.
        kind: char,
    },
    /// A line type RFC 8866 does not define; RFC 8866 §5 lets a parser
    /// reject the whole description.
    #[error("line {line}: unknown line type")]
    UnknownType {
        /// Line number.
        line: usize,
    },
    /// A `k=` line: obsolete (RFC 8866 §5.12) and it would carry a key in
    /// clear.
    #[error("line {line}: k= lines are refused")]
    KeyLine {
        /// Line number.
        line: usize,
    },
    /// A line or known attribute whose value does not follow its grammar.
    #[error("line {line}: malformed {what}")]
    Malformed {
        /// Line number.
        line: usize,
        /// Which field, e.g. `"o="` or `"a=crypto"`.
        what: &'static str,
    },
}
