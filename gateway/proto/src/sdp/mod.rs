//! SDP (RFC 8866) with SDES keys (RFC 4568), negotiated by offer/answer
//! (RFC 3264) for the two legs of a dialgate call.
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
//! - An incoming offer goes through [`check_offer`] (every security check,
//!   leaving a [`CheckedOffer`] proof value), then [`CheckedOffer::answer`];
//!   [`answer`] does both in one call.
//! - An outgoing offer comes from [`offer`]; the peer's answer goes to
//!   [`PendingOffer::accept`].
//! - Each successful negotiation yields a [`Negotiated`]: the suite, the two
//!   master keys (the peer's inbound, a fresh one of ours outbound), the
//!   peer's media addresses, rtcp-mux and the payload types: what the relay's
//!   [`LegConfig`](crate::relay::LegConfig) needs
//!   ([`Negotiated::into_leg_config`]).
//! - Every refusal is a typed [`Reject`] that maps to a SIP status (488) and a
//!   `Warning` header value (RFC 3261 §20.43) saying why.
//!
//! ```
//! use dialgate_proto::sdp::{answer, LocalMedia, Policy, Reject, SessionDescription};
//!
//! let offer = SessionDescription::parse(
//!     b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
//!       m=audio 4000 RTP/SAVP 0\r\n\
//!       a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e\r\n",
//! )?;
//! let local = LocalMedia::new("192.0.2.1:30000".parse().unwrap());
//! let (reply, negotiated) = answer(&offer, &Policy::phone_default(), &local)?;
//! assert_eq!(negotiated.crypto_tag, 1);
//! assert_eq!(negotiated.remote_rtp, Some("192.0.2.10:4000".parse().unwrap()));
//! // The body to send carries our fresh key; logs get the redacted form.
//! assert!(reply.print().contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
//! assert!(reply.print_redacted().contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 <redacted>"));
//!
//! // Plain RTP is refused: 488 with a Warning that says why.
//! let plain = SessionDescription::parse(
//!     b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
//!       m=audio 4000 RTP/AVP 0\r\n",
//! )?;
//! let refusal = answer(&plain, &Policy::phone_default(), &local).unwrap_err();
//! assert_eq!(refusal, Reject::PlainRtp);
//! assert_eq!(refusal.status(), 488);
//! assert_eq!(
//!     refusal.warning(),
//!     "399 dialgate \"plain RTP refused, media must be SRTP (RTP/SAVP with a=crypto)\""
//! );
//! # Ok::<(), Reject>(())
//! ```
//!
//! # Security rules
//!
//! - There is no way to negotiate unencrypted media: plain RTP/AVP, an offer
//!   without `a=crypto`, NULL suites, `UNENCRYPTED_SRTP`,
//!   `UNENCRYPTED_SRTCP` and `UNAUTHENTICATED_SRTP` are refused, and
//!   [`Policy`] has no field that could turn SRTP off (an empty suite list
//!   is refused when the policy is built).
//! - dialgate never echoes a key: each answer and offer carries a master key
//!   freshly drawn from the CSPRNG, and an answer that echoes one of our keys
//!   is refused.
//! - Keys never reach `Debug` output. [`SessionDescription::print`] returns
//!   the wire form (with keys) in a zeroizing buffer; log
//!   [`SessionDescription::print_redacted`] instead.
//! - Unknown attributes are parsed and kept (so a body round-trips), but
//!   negotiation builds each leg's SDP afresh from what it understands:
//!   nothing unknown from one leg reaches the other.
//!
//! # Codecs across the two legs
//!
//! dialgate relays payloads untouched (no transcoding, no payload type
//! rewriting), so a payload type number must mean the same codec on both
//! legs:
//!
//! 1. The phone's offer is checked; [`CheckedOffer::codecs`] keeps, in the
//!    phone's order, the codecs dialgate passes through (PCMU 0, PCMA 8,
//!    G722 9, opus, telephone-event, scip) with the phone's payload type
//!    numbers and `fmtp` parameters, and the phone's `ptime`/`maxptime`.
//! 2. The bridge leg is offered exactly that list ([`offer`]).
//! 3. The bridge's answer must use a subset of those payload types, each for
//!    the same codec ([`PendingOffer::accept`] refuses a payload type the
//!    offer did not carry or a codec moved to another number).
//! 4. The phone is answered with what the bridge accepted, in the bridge's
//!    order and with the bridge's `fmtp` ([`CheckedOffer::restrict_codecs`]).
//!
//! # Re-INVITEs: hold, resume and keys
//!
//! Hold is recognised both ways RFC 3264 §8.4 allows: a direction attribute
//! (`sendonly`, `recvonly`, `inactive`) and the legacy `c=0.0.0.0`, which is
//! treated as the offerer not wanting media (`sendrecv` becomes `sendonly`,
//! `recvonly` becomes `inactive`). The answer mirrors the direction,
//! intersected with [`LocalMedia::direction`].
//!
//! Keys on a re-INVITE ([`CheckedOffer::answer_update`],
//! [`reoffer`]): **if the peer keeps its crypto (same tag, suite and key),
//! dialgate keeps its own key too**, so hold and resume change no SRTP state
//! and the relay keeps its contexts (replay windows, rollover counters)
//! untouched. **If the peer changes anything, dialgate draws a fresh key.**
//! A key is never re-used with fresh SRTP state, which could repeat
//! keystream; [`Negotiated::new_inbound_key`] and
//! [`Negotiated::new_outbound_key`] tell the caller which contexts to
//! replace.

mod answer;
mod codec;
mod crypto;
mod model;
mod negotiated;
mod offer;
mod parse;
mod policy;
mod print;
#[cfg(test)]
mod tests;

pub use answer::{answer, check_offer, CheckedOffer};
pub use codec::{Codec, CodecKind, Codecs};
pub use model::{
    AddrType, Attribute, Bandwidth, Connection, Crypto, Direction, Fmtp, Formats, Media, MediaType,
    Origin, Proto, RawAttribute, Rtcp, Rtpmap, SessionDescription, Timing,
};
pub use negotiated::{LocalMedia, Negotiated};
pub use offer::{offer, reoffer, PendingOffer};
pub use policy::{Inconsistency, Policy, PolicyError, Reject};

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
