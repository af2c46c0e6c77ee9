//! Every refusal, on offers and on answers, with its SIP status and
//! Warning header value.

use super::fixtures::*;
use super::{addr, sdp};
use crate::sdp::*;
use crate::srtp::Suite;

const HEAD: &str = "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n";
const AUDIO: &str = "m=audio 4000 RTP/SAVP 0 101\na=rtpmap:101 telephone-event/8000\n";

fn crypto(tag: u32, suite: &str, key_params: &str) -> String {
    format!("a=crypto:{tag} {suite} {key_params}\n")
}

fn cm80(extra: &str) -> String {
    crypto(
        1,
        "AES_CM_128_HMAC_SHA1_80",
        &format!("inline:{CM128_A}{extra}"),
    )
}

fn check(text: &str) -> Result<CheckedOffer, Reject> {
    let sd = SessionDescription::parse(text.as_bytes())?;
    check_offer(&sd, &Policy::phone_default())
}

fn answer_text(text: &str) -> Result<(SessionDescription, Negotiated), Reject> {
    let local = LocalMedia::new(addr("192.0.2.1:30000"));
    check(text)?.answer(&local)
}

/// The Warning value must be a valid RFC 3261 §20.43 `warning-value`
/// naming dialgate, and never quote anything the peer sent.
fn assert_warning(r: Reject, code: u16, text: &str) {
    assert_eq!(r.status(), if r == Reject::Internal { 500 } else { 488 });
    assert_eq!(r.warn_code(), code, "{r:?}");
    assert_eq!(r.warning(), format!("{code} dialgate \"{text}\""), "{r:?}");
    let inner = r.to_string();
    assert!(!inner.contains('"') && !inner.contains('\\'), "{r:?}");
}

#[test]
fn refused_offers_with_their_warning() {
    let ok = format!("{HEAD}{AUDIO}{}", cm80(""));
    assert!(check(&ok).is_ok());
    let with = |line: String| format!("{HEAD}{AUDIO}{line}");
    let cases: Vec<(String, Reject, u16, &str)> = vec![
        (
            PLAIN_RTP.into(),
            Reject::PlainRtp,
            399,
            "plain RTP refused, media must be SRTP (RTP/SAVP with a=crypto)",
        ),
        (
            ok.replace("RTP/SAVP", "RTP/AVPF").replace(&cm80(""), ""),
            Reject::PlainRtp,
            399,
            "plain RTP refused, media must be SRTP (RTP/SAVP with a=crypto)",
        ),
        (
            format!("{HEAD}{AUDIO}"),
            Reject::NoCrypto,
            399,
            "no a=crypto line: SDES SRTP keys required",
        ),
        (
            with(crypto(
                1,
                "AES_CM_128_HMAC_SHA1_32",
                &format!("inline:{CM128_A}"),
            )),
            Reject::NoAcceptableSuite,
            399,
            "no allowed SRTP crypto suite offered",
        ),
        (
            with(
                crypto(1, "NULL_HMAC_SHA1_80", &format!("inline:{CM128_A}"))
                    + &crypto(2, "AES_CM_128_NULL_AUTH", &format!("inline:{CM128_A}")),
            ),
            Reject::NullCipher,
            399,
            "NULL SRTP suites refused, encryption and authentication required",
        ),
        (
            with(
                crypto(1, "F8_128_HMAC_SHA1_80", &format!("inline:{CM128_A}"))
                    + &crypto(2, "SEED_CTR_128_HMAC_SHA1_80", &format!("inline:{CM128_A}")),
            ),
            Reject::UnknownSuitesOnly,
            399,
            "only unknown SRTP crypto suites offered",
        ),
        (
            with(cm80("|2^31|1:4")),
            Reject::MkiNotSupported,
            399,
            "SRTP MKI not supported",
        ),
        (
            with(cm80(&format!("|2^31|1:4;inline:{CM128_B}|2^31|2:4"))),
            Reject::MkiNotSupported,
            399,
            "SRTP MKI not supported",
        ),
        (
            with(cm80("|2^20")),
            Reject::BadKeyParams,
            399,
            "bad SRTP key parameters",
        ),
        (
            with(crypto(
                1,
                "AES_CM_128_HMAC_SHA1_80",
                &format!("inline:{GCM128}"),
            )),
            Reject::BadKeyParams,
            399,
            "bad SRTP key parameters",
        ),
        (
            with(crypto(1, "AES_CM_128_HMAC_SHA1_80", "inline:not*base64")),
            Reject::BadKeyParams,
            399,
            "bad SRTP key parameters",
        ),
        (
            with(crypto(
                1,
                "AES_CM_128_HMAC_SHA1_80",
                "uri:https://keys.example.com/k",
            )),
            Reject::UnsupportedKeyParams,
            306,
            "unsupported SRTP key parameters, one inline key expected",
        ),
        (
            with(cm80(" UNENCRYPTED_SRTP")),
            Reject::UnencryptedSessionParam,
            399,
            "SRTP session parameter disabling encryption or authentication refused",
        ),
        (
            with(cm80(" UNENCRYPTED_SRTCP")),
            Reject::UnencryptedSessionParam,
            399,
            "SRTP session parameter disabling encryption or authentication refused",
        ),
        (
            with(cm80(" KDR=0 UNAUTHENTICATED_SRTP")),
            Reject::UnencryptedSessionParam,
            399,
            "SRTP session parameter disabling encryption or authentication refused",
        ),
        (
            with(cm80(" FEC_ORDER=FEC_SRTP")),
            Reject::UnsupportedSessionParam,
            306,
            "unsupported SRTP session parameter",
        ),
        (
            with(cm80(&format!(" FEC_KEY=inline:{CM128_B}"))),
            Reject::UnsupportedSessionParam,
            306,
            "unsupported SRTP session parameter",
        ),
        (
            with(cm80(" KDR=10")),
            Reject::UnsupportedSessionParam,
            306,
            "unsupported SRTP session parameter",
        ),
        (
            with(cm80(" WSH=32")),
            Reject::UnsupportedSessionParam,
            306,
            "unsupported SRTP session parameter",
        ),
        (
            with(cm80(" X-VENDOR")),
            Reject::UnsupportedSessionParam,
            306,
            "unsupported SRTP session parameter",
        ),
        (
            WEBRTC_DTLS.into(),
            Reject::DtlsNotSupported,
            302,
            "DTLS-SRTP not supported, use SDES (RTP/SAVP with a=crypto)",
        ),
        (
            ok.replace("UDP/TLS/RTP/SAVP", "x")
                .replace("RTP/SAVP", "UDP/TLS/RTP/SAVP"),
            Reject::DtlsNotSupported,
            302,
            "DTLS-SRTP not supported, use SDES (RTP/SAVP with a=crypto)",
        ),
        (
            format!("{HEAD}m=audio 4000 TCP/MRCPv2 1\n"),
            Reject::UnsupportedTransport,
            302,
            "unsupported media transport",
        ),
        (
            ok.replace("RTP/SAVP 0 101", "RTP/SAVP 18 101"),
            Reject::NoCommonCodec,
            305,
            "no common audio codec (PCMU, PCMA, G722, opus, scip)",
        ),
        (
            ok.replace("RTP/SAVP 0 101", "RTP/SAVP 101"),
            Reject::NoCommonCodec,
            305,
            "no common audio codec (PCMU, PCMA, G722, opus, scip)",
        ),
        (
            ok.replace("RTP/SAVP", "RTP/AVP"),
            Inconsistency::CryptoOnPlainRtp.into(),
            399,
            "inconsistent SDP: a=crypto on plain RTP/AVP",
        ),
        (
            ok.replace("m=audio", "m=video"),
            Inconsistency::NoAudio.into(),
            304,
            "inconsistent SDP: no audio stream",
        ),
        (
            HEAD.to_string(),
            Inconsistency::NoAudio.into(),
            304,
            "inconsistent SDP: no audio stream",
        ),
        (
            ok.replace("audio 4000", "audio 0"),
            Inconsistency::NoActiveAudio.into(),
            304,
            "inconsistent SDP: audio stream disabled (port 0)",
        ),
        (
            ok.replace("c=IN IP4 192.0.2.10\n", ""),
            Inconsistency::MissingConnection.into(),
            399,
            "inconsistent SDP: no connection address (c=) for the audio stream",
        ),
        (
            ok.replace("c=IN IP4 192.0.2.10", "c=IN IP4 pbx.example.com"),
            Inconsistency::BadAddress.into(),
            399,
            "inconsistent SDP: connection address is not a unicast IP address",
        ),
        (
            ok.replace("c=IN IP4 192.0.2.10", "c=IN IP4 224.2.1.1/127"),
            Inconsistency::BadAddress.into(),
            399,
            "inconsistent SDP: connection address is not a unicast IP address",
        ),
        (
            ok.replace("audio 4000", "audio 4000/2"),
            Inconsistency::PortCount.into(),
            399,
            "inconsistent SDP: port count on the audio stream",
        ),
        (
            with(cm80("") + &cm80("")),
            Inconsistency::DuplicateCryptoTag.into(),
            399,
            "inconsistent SDP: duplicate crypto tag",
        ),
        (
            "v=0\n".into(),
            SdpError::Missing('o').into(),
            399,
            "malformed SDP: mandatory o= line missing",
        ),
        (
            format!("{HEAD}m=audio x RTP/SAVP 0\n"),
            SdpError::Malformed {
                line: 6,
                what: "m=",
            }
            .into(),
            399,
            "malformed SDP: line 6: malformed m=",
        ),
    ];
    for (text, want, code, warning) in cases {
        let got = check(&text).map(|_| ());
        assert_eq!(got, Err(want), "{text}");
        assert_warning(want, code, warning);
    }
}

#[test]
fn rtcp_port_problems_matter_only_without_rtcp_mux() {
    let bad = format!("{HEAD}{AUDIO}a=rtcp:0\n{}", cm80(""));
    assert_eq!(
        answer_text(&bad).map(|_| ()),
        Err(Inconsistency::BadRtcpPort.into())
    );
    let top = format!("{HEAD}{}{}", AUDIO.replace("4000", "65535"), cm80(""));
    assert_eq!(
        answer_text(&top).map(|_| ()),
        Err(Inconsistency::BadRtcpPort.into())
    );
    assert_warning(
        Inconsistency::BadRtcpPort.into(),
        399,
        "inconsistent SDP: no usable RTCP port",
    );
    // With rtcp-mux agreed, the RTCP port is irrelevant.
    let muxed = format!("{HEAD}{AUDIO}a=rtcp:0\na=rtcp-mux\n{}", cm80(""));
    assert!(answer_text(&muxed).is_ok());
}

#[test]
fn the_first_acceptable_line_wins_and_the_first_failure_explains() {
    // MKI on the preferred line, a good GCM line after it: GCM is taken.
    let text = format!(
        "{HEAD}{AUDIO}{}{}",
        cm80("|1:4"),
        crypto(2, "AEAD_AES_128_GCM", &format!("inline:{GCM128}"))
    );
    let c = check(&text).unwrap();
    assert_eq!(c.suite(), Suite::AeadAes128Gcm);
    // Two failing allowed lines: the first one's reason.
    let text = format!(
        "{HEAD}{AUDIO}{}{}{}",
        crypto(5, "NULL_HMAC_SHA1_80", &format!("inline:{CM128_A}")),
        cm80(" UNENCRYPTED_SRTP"),
        crypto(2, "AEAD_AES_128_GCM", &format!("inline:{GCM128}|1:4"))
    );
    assert_eq!(check(&text).unwrap_err(), Reject::UnencryptedSessionParam);
    // KDR=0 and a window size hint are fine.
    assert!(check(&format!("{HEAD}{AUDIO}{}", cm80(" KDR=0 WSH=128"))).is_ok());
    // Suites the phone policy does not allow are passed over even when the
    // offerer prefers them.
    let b = check(&super::wire(BARESIP)).unwrap();
    assert_eq!(b.suite(), Suite::AesCm128HmacSha1_80);
    // A plain RTP stream next to an SRTP one: the SRTP one is taken, the
    // plain one refused in the answer.
    let two = format!("{HEAD}m=audio 5000 RTP/AVP 0\n{AUDIO}{}", cm80(""));
    let (answer, _) = answer_text(&two).unwrap();
    assert_eq!(answer.media[0].port, 0);
    assert_eq!(answer.media[0].proto, Proto::RtpAvp);
    assert_eq!(answer.media[1].port, 30000);
}

/// Our trunk offer and a well-formed answer template for it.
fn pending() -> (SessionDescription, PendingOffer) {
    let codecs = Codecs::new(vec![
        Codec::new(0, "PCMU", 8000, None),
        Codec::new(100, "telephone-event", 8000, None),
    ]);
    let local = LocalMedia::new(addr("192.0.2.1:30002"));
    offer(&codecs, &Policy::phone_default(), &local).unwrap()
}

fn answer_with(crypto_lines: &str) -> String {
    format!(
        "{HEAD}m=audio 6000 RTP/SAVP 0 100\na=rtpmap:100 telephone-event/8000\na=rtcp-mux\n{crypto_lines}"
    )
}

#[test]
fn refused_answers_with_their_warning() {
    let (ours, pending) = pending();
    let our_gcm256 = ours.media[0]
        .crypto()
        .next()
        .unwrap()
        .key_params()
        .to_owned();
    let good = answer_with(&crypto(
        3,
        "AES_CM_128_HMAC_SHA1_80",
        &format!("inline:{CM128_B}"),
    ));
    assert!(pending.accept(&sdp(&good)).is_ok());
    let cases: Vec<(String, Reject, u16, &str)> = vec![
        (
            good.replace("audio 6000", "audio 0"),
            Reject::StreamRefused,
            399,
            "audio stream refused by the peer",
        ),
        (
            answer_with(&crypto(
                4,
                "AES_CM_128_HMAC_SHA1_80",
                &format!("inline:{CM128_B}"),
            )),
            Reject::TagNotOffered,
            399,
            "answer picked a crypto tag that was not offered",
        ),
        (
            answer_with(&crypto(3, "AEAD_AES_128_GCM", &format!("inline:{GCM128}"))),
            Reject::SuiteMismatch,
            399,
            "answer changed the crypto suite of the offered tag",
        ),
        (
            answer_with(&crypto(1, "AEAD_AES_256_GCM", &our_gcm256)),
            Reject::KeyEchoed,
            399,
            "answer echoed our SRTP key",
        ),
        (
            good.clone() + "m=video 0 RTP/SAVP 96\n",
            Inconsistency::MediaCount.into(),
            399,
            "inconsistent SDP: answer has a different number of media sections",
        ),
        (
            good.replace("RTP/SAVP", "RTP/SAVPF"),
            Inconsistency::ProtoMismatch.into(),
            399,
            "inconsistent SDP: answer changed the media type or transport",
        ),
        (
            good.replace("m=audio", "m=text"),
            Inconsistency::ProtoMismatch.into(),
            399,
            "inconsistent SDP: answer changed the media type or transport",
        ),
        (
            good.clone() + &crypto(1, "AEAD_AES_256_GCM", &format!("inline:{GCM256_B}")),
            Inconsistency::MultipleCrypto.into(),
            399,
            "inconsistent SDP: answer carries more than one a=crypto line",
        ),
        (
            good.replace("0 100", "0 100 8"),
            Inconsistency::CodecNotOffered.into(),
            399,
            "inconsistent SDP: answer uses a payload type that was not offered",
        ),
        (
            good.replace("100 telephone-event/8000", "100 telephone-event/48000"),
            Inconsistency::CodecNotOffered.into(),
            399,
            "inconsistent SDP: answer uses a payload type that was not offered",
        ),
        (
            good.replace("RTP/SAVP 0 100", "RTP/SAVP 100"),
            Reject::NoCommonCodec,
            305,
            "no common audio codec (PCMU, PCMA, G722, opus, scip)",
        ),
        (
            good.replace("RTP/SAVP", "RTP/AVP")
                .replace("a=crypto", "a=x-crypto"),
            Reject::PlainRtp,
            399,
            "plain RTP refused, media must be SRTP (RTP/SAVP with a=crypto)",
        ),
        (
            good.replace("a=crypto", "a=x-crypto"),
            Reject::NoCrypto,
            399,
            "no a=crypto line: SDES SRTP keys required",
        ),
        (
            good.replace(CM128_B, CM128_B.get(..20).unwrap()),
            Reject::BadKeyParams,
            399,
            "bad SRTP key parameters",
        ),
        (
            good.replace(CM128_B, &format!("{CM128_B} UNENCRYPTED_SRTCP")),
            Reject::UnencryptedSessionParam,
            399,
            "SRTP session parameter disabling encryption or authentication refused",
        ),
        (
            good.replace("c=IN IP4 192.0.2.10\n", ""),
            Inconsistency::MissingConnection.into(),
            399,
            "inconsistent SDP: no connection address (c=) for the audio stream",
        ),
    ];
    for (text, want, code, warning) in cases {
        let got = pending.accept(&sdp(&text)).map(|_| ());
        assert_eq!(got, Err(want), "{text}");
        assert_warning(want, code, warning);
    }
    // rtcp-mux in an answer to an offer without it.
    let local = LocalMedia {
        rtcp_mux: false,
        ..LocalMedia::new(addr("192.0.2.1:30002"))
    };
    let codecs = Codecs::new(vec![Codec::new(0, "PCMU", 8000, None)]);
    let (_, no_mux) = offer(&codecs, &Policy::trunk_default(), &local).unwrap();
    let a = answer_with(&crypto(
        1,
        "AES_CM_128_HMAC_SHA1_80",
        &format!("inline:{CM128_B}"),
    ));
    let a = a.replace("0 100", "0");
    assert_eq!(
        no_mux.accept(&sdp(&a)).map(|_| ()),
        Err(Inconsistency::UnofferedRtcpMux.into())
    );
    assert_warning(
        Inconsistency::UnofferedRtcpMux.into(),
        399,
        "inconsistent SDP: answer uses rtcp-mux that was not offered",
    );
    assert!(no_mux.accept(&sdp(&a.replace("a=rtcp-mux\n", ""))).is_ok());
}

#[test]
fn internal_errors_are_500_and_blame_is_assigned() {
    assert_warning(Reject::Internal, 399, "internal error");
    use crate::srtp::Blame;
    assert_eq!(Reject::Internal.blame(), Blame::Bug);
    assert_eq!(Reject::PlainRtp.blame(), Blame::Incompatible);
    assert_eq!(Reject::KeyEchoed.blame(), Blame::Peer);
    assert_eq!(Reject::from(SdpError::TooLarge).blame(), Blame::Peer);
}

#[test]
fn offers_need_a_voice_codec() {
    let local = LocalMedia::new(addr("192.0.2.1:30002"));
    let dtmf = Codecs::new(vec![Codec::new(101, "telephone-event", 8000, None)]);
    assert_eq!(
        offer(&dtmf, &Policy::trunk_default(), &local)
            .map(|_| ())
            .unwrap_err(),
        Reject::NoCommonCodec
    );
}
