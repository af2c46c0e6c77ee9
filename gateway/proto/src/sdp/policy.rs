//! The per-leg SRTP policy and the typed refusals of offer/answer.

use crate::srtp::{Blame, Suite};

use super::SdpError;

/// The SRTP suites one leg may use, in our preference order (the order of
/// our offers' `a=crypto` lines). There is no setting that allows
/// unencrypted media: the list cannot be empty and NULL suites do not exist
/// (see [`Suite`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    suites: Vec<Suite>,
}

/// Why a [`Policy`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// No suite allowed: that would allow no call at all.
    #[error("a policy must allow at least one SRTP suite")]
    NoSuites,
    /// A suite listed twice.
    #[error("SRTP suite {0} listed twice")]
    DuplicateSuite(Suite),
}

impl Policy {
    /// A policy allowing `suites`, preferred in that order.
    pub fn new(suites: &[Suite]) -> Result<Policy, PolicyError> {
        if suites.is_empty() {
            return Err(PolicyError::NoSuites);
        }
        for (i, s) in suites.iter().enumerate() {
            if suites[..i].contains(s) {
                return Err(PolicyError::DuplicateSuite(*s));
            }
        }
        Ok(Policy {
            suites: suites.to_vec(),
        })
    }

    /// The phone side's default: AEAD_AES_256_GCM, AEAD_AES_128_GCM,
    /// AES_CM_128_HMAC_SHA1_80.
    pub fn phone_default() -> Policy {
        Policy {
            suites: vec![
                Suite::AeadAes256Gcm,
                Suite::AeadAes128Gcm,
                Suite::AesCm128HmacSha1_80,
            ],
        }
    }

    /// A bridge trunk's default: AES_CM_128_HMAC_SHA1_80, what commercial
    /// bridges (Webex, Zoom, Teams) accept on SIP trunks.
    pub fn trunk_default() -> Policy {
        Policy {
            suites: vec![Suite::AesCm128HmacSha1_80],
        }
    }

    /// The allowed suites, preferred first.
    pub fn suites(&self) -> &[Suite] {
        &self.suites
    }

    /// Whether `suite` is allowed.
    pub fn allows(&self, suite: Suite) -> bool {
        self.suites.contains(&suite)
    }
}

/// Why an offer or an answer was refused. Each maps to a SIP status
/// ([`Reject::status`], 488 Not Acceptable Here except for our own
/// failures) and a `Warning` header value ([`Reject::warning`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// The body is not valid SDP.
    #[error("malformed SDP: {0}")]
    BadSdp(SdpError),
    /// Plain RTP (RTP/AVP or RTP/AVPF) offered: media must be SRTP.
    #[error("plain RTP refused, media must be SRTP (RTP/SAVP with a=crypto)")]
    PlainRtp,
    /// RTP/SAVP without any `a=crypto` line (and no other key exchange we
    /// speak).
    #[error("no a=crypto line: SDES SRTP keys required")]
    NoCrypto,
    /// Known suites offered, none of them allowed on this leg.
    #[error("no allowed SRTP crypto suite offered")]
    NoAcceptableSuite,
    /// Only NULL cipher or NULL authentication suites offered.
    #[error("NULL SRTP suites refused, encryption and authentication required")]
    NullCipher,
    /// Only suites dialgate does not know offered.
    #[error("only unknown SRTP crypto suites offered")]
    UnknownSuitesOnly,
    /// The acceptable crypto line carries a master key identifier.
    #[error("SRTP MKI not supported")]
    MkiNotSupported,
    /// Malformed `inline:` key, wrong key length, or a key lifetime shorter
    /// than 2^31 packets.
    #[error("bad SRTP key parameters")]
    BadKeyParams,
    /// A key method other than `inline:`, or several keys in one line.
    #[error("unsupported SRTP key parameters, one inline key expected")]
    UnsupportedKeyParams,
    /// `UNENCRYPTED_SRTP`, `UNENCRYPTED_SRTCP` or `UNAUTHENTICATED_SRTP`
    /// (RFC 4568 §6.3.2 - §6.3.4).
    #[error("SRTP session parameter disabling encryption or authentication refused")]
    UnencryptedSessionParam,
    /// A session parameter dialgate does not implement (`KDR` other than 0,
    /// `FEC_ORDER`, `FEC_KEY`, unknown ones).
    #[error("unsupported SRTP session parameter")]
    UnsupportedSessionParam,
    /// DTLS-SRTP (`UDP/TLS/RTP/SAVP`, `UDP/TLS/RTP/SAVPF`) is not supported yet.
    #[error("DTLS-SRTP not supported, use SDES (RTP/SAVP with a=crypto)")]
    DtlsNotSupported,
    /// A transport that is not RTP.
    #[error("unsupported media transport")]
    UnsupportedTransport,
    /// None of the offered audio codecs is relayed (or only
    /// telephone-event).
    #[error("no common audio codec (PCMU, PCMA, G722, opus, scip)")]
    NoCommonCodec,
    /// The description contradicts itself or the offer it answers.
    #[error("inconsistent SDP: {0}")]
    Inconsistent(Inconsistency),
    /// The answer refused our audio stream (port 0).
    #[error("audio stream refused by the peer")]
    StreamRefused,
    /// The answer's crypto tag is not one we offered.
    #[error("answer picked a crypto tag that was not offered")]
    TagNotOffered,
    /// The answer's suite differs from the one we offered under its tag.
    #[error("answer changed the crypto suite of the offered tag")]
    SuiteMismatch,
    /// The answer carries the key we offered instead of its own.
    #[error("answer echoed our SRTP key")]
    KeyEchoed,
    /// Our own failure (the random generator failed).
    #[error("internal error")]
    Internal,
}

/// How a description contradicts itself or the offer it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Inconsistency {
    /// `a=crypto` on an RTP/AVP stream (RFC 4568 §5.1 allows it only on
    /// SRTP transports).
    #[error("a=crypto on plain RTP/AVP")]
    CryptoOnPlainRtp,
    /// No audio stream.
    #[error("no audio stream")]
    NoAudio,
    /// Only disabled audio streams (port 0).
    #[error("audio stream disabled (port 0)")]
    NoActiveAudio,
    /// No `c=` for the audio stream, at media or session level.
    #[error("no connection address (c=) for the audio stream")]
    MissingConnection,
    /// A connection address that is not a unicast IP literal of its type.
    #[error("connection address is not a unicast IP address")]
    BadAddress,
    /// More than one port on the audio `m=` line.
    #[error("port count on the audio stream")]
    PortCount,
    /// Two `a=crypto` lines with the same tag (RFC 4568 §9.1).
    #[error("duplicate crypto tag")]
    DuplicateCryptoTag,
    /// No usable RTCP port.
    #[error("no usable RTCP port")]
    BadRtcpPort,
    /// The answer has a different number of media sections than the offer
    /// (RFC 3264 §6).
    #[error("answer has a different number of media sections")]
    MediaCount,
    /// The answer's stream has another type or transport than the offer's.
    #[error("answer changed the media type or transport")]
    ProtoMismatch,
    /// An answer must carry exactly one `a=crypto` line (RFC 4568 §7.1.2).
    #[error("answer carries more than one a=crypto line")]
    MultipleCrypto,
    /// The answer lists a payload type we did not offer, or for another
    /// codec.
    #[error("answer uses a payload type that was not offered")]
    CodecNotOffered,
    /// `a=rtcp-mux` in an answer to an offer without it.
    #[error("answer uses rtcp-mux that was not offered")]
    UnofferedRtcpMux,
}

impl Reject {
    /// The SIP status to answer with: 488 Not Acceptable Here, or 500 for
    /// [`Reject::Internal`].
    pub fn status(self) -> u16 {
        match self {
            Reject::Internal => 500,
            _ => 488,
        }
    }

    /// The warn-code (RFC 3261 §20.43): 302 incompatible transport, 304
    /// media type not available, 305 incompatible media format, 306
    /// attribute not understood, 399 otherwise.
    pub fn warn_code(self) -> u16 {
        match self {
            Reject::DtlsNotSupported | Reject::UnsupportedTransport => 302,
            Reject::Inconsistent(Inconsistency::NoAudio | Inconsistency::NoActiveAudio) => 304,
            Reject::NoCommonCodec => 305,
            Reject::UnsupportedKeyParams | Reject::UnsupportedSessionParam => 306,
            _ => 399,
        }
    }

    /// The `Warning` header value, e.g.
    /// `399 dialgate "plain RTP refused, media must be SRTP (...)"`. The text
    /// never contains a key or anything the peer sent.
    pub fn warning(self) -> String {
        format!("{} dialgate \"{}\"", self.warn_code(), self)
    }

    /// Who is at fault.
    pub fn blame(self) -> Blame {
        match self {
            Reject::BadSdp(_) | Reject::Inconsistent(_) | Reject::BadKeyParams => Blame::Peer,
            Reject::KeyEchoed | Reject::TagNotOffered | Reject::SuiteMismatch => Blame::Peer,
            Reject::Internal => Blame::Bug,
            _ => Blame::Incompatible,
        }
    }
}

impl From<SdpError> for Reject {
    fn from(e: SdpError) -> Reject {
        Reject::BadSdp(e)
    }
}

impl From<Inconsistency> for Reject {
    fn from(e: Inconsistency) -> Reject {
        Reject::Inconsistent(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert_eq!(Policy::new(&[]).unwrap_err(), PolicyError::NoSuites);
        assert_eq!(
            Policy::new(&[Suite::AeadAes128Gcm, Suite::AeadAes128Gcm]).unwrap_err(),
            PolicyError::DuplicateSuite(Suite::AeadAes128Gcm)
        );
        let p = Policy::phone_default();
        assert_eq!(p.suites()[0], Suite::AeadAes256Gcm);
        assert!(p.allows(Suite::AesCm128HmacSha1_80));
        assert!(!p.allows(Suite::AesCm128HmacSha1_32));
        let t = Policy::trunk_default();
        assert_eq!(t.suites(), &[Suite::AesCm128HmacSha1_80]);
    }
}
