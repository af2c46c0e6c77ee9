//! Parsing real-world descriptions, printing them back, and refusing
//! malformed ones with the right error.

use super::fixtures::*;
use super::{sdp, wire};
use crate::sdp::*;

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    let cisco_answer = CISCO_ANSWER.replace("{tag}", "3");
    for text in OFFERS.iter().copied().chain([cisco_answer.as_str()]) {
        let w = wire(text);
        let sd = SessionDescription::parse(w.as_bytes()).unwrap();
        assert_eq!(*sd.print(), w, "printing changed the body");
        // LF-only endings (RFC 8866 §5 tolerance) give the same model.
        assert_eq!(SessionDescription::parse(text.as_bytes()).unwrap(), sd);
        // And the printed form parses back to the same model.
        assert_eq!(
            SessionDescription::parse(sd.print().as_bytes()).unwrap(),
            sd
        );
    }
}

#[test]
fn baresip_offer_in_detail() {
    let sd = sdp(BARESIP);
    assert_eq!(sd.origin.username, "-");
    assert_eq!(sd.origin.session_id, 1_481_066_347);
    assert_eq!(sd.origin.session_version, 1_203_938_455);
    assert_eq!(sd.origin.address.ip(), Some("192.0.2.10".parse().unwrap()));
    assert_eq!(sd.session_name, "-");
    assert_eq!(sd.times, vec![Timing::unbounded()]);
    let c = sd.connection.as_ref().unwrap();
    assert_eq!(
        (c.addr_type, c.address.as_str()),
        (AddrType::Ip4, "192.0.2.10")
    );
    let m = &sd.media[0];
    assert_eq!(m.kind, MediaType::Audio);
    assert_eq!((m.port, m.port_count), (10004, None));
    assert_eq!(m.proto, Proto::RtpSavp);
    assert_eq!(m.payload_types(), &[96, 0, 8, 101]);
    assert_eq!(
        m.bandwidths,
        vec![Bandwidth {
            bwtype: "AS".into(),
            bandwidth: 128
        }]
    );
    let opus = m.rtpmap(96).unwrap();
    assert_eq!(
        (
            opus.encoding.as_str(),
            opus.clock_rate,
            opus.params.as_deref()
        ),
        ("opus", 48000, Some("2"))
    );
    assert_eq!(m.fmtp(96), Some("stereo=1;sprop-stereo=1"));
    assert_eq!(m.fmtp(101), Some("0-15"));
    assert_eq!(m.fmtp(0), None);
    assert_eq!(
        m.rtcp(),
        Some(&Rtcp {
            port: 10005,
            connection: None
        })
    );
    assert!(m.rtcp_mux());
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    assert_eq!((m.ptime(), m.maxptime()), (Some(20), None));
    let crypto: Vec<(u32, &str)> = m.crypto().map(|c| (c.tag, c.suite.as_str())).collect();
    assert_eq!(
        crypto,
        vec![
            (1, "AES_CM_128_HMAC_SHA1_32"),
            (2, "AES_CM_128_HMAC_SHA1_80"),
            (3, "AES_256_CM_HMAC_SHA1_32"),
            (4, "AEAD_AES_128_GCM"),
            (5, "AEAD_AES_256_GCM"),
        ]
    );
    assert_eq!(
        m.crypto().nth(1).unwrap().key_params(),
        format!("inline:{CM128_A}")
    );
    // Unknown attributes are kept, in place.
    assert!(m.attributes.contains(&Attribute::Other(RawAttribute {
        name: "label".into(),
        value: Some("1".into())
    })));
    assert!(m
        .attributes
        .iter()
        .any(|a| matches!(a, Attribute::Other(r) if r.name == "ssrc")));
}

#[test]
fn linphone_cisco_scip_ipv6_and_webrtc_details() {
    let l = sdp(LINPHONE);
    assert_eq!(l.attributes.len(), 2);
    let m = &l.media[0];
    assert!(m.rtpmap(18).is_none());
    assert_eq!(m.fmtp(18), Some("annexb=yes"));
    assert_eq!(
        m.crypto().nth(2).unwrap().key_params().split('|').nth(1),
        Some("2^31")
    );

    let c = sdp(CISCO_TRUNK);
    assert_eq!(c.session_name, "SIP Call");
    assert!(c.media[0].connection.is_some());
    assert!(c.media[0].crypto().all(|c| c.session_params.is_empty()));

    let s = sdp(SCIP);
    assert_eq!(s.media.len(), 2);
    assert_eq!(s.media[1].kind, MediaType::Video);
    assert_eq!(s.media[1].rtpmap(119).unwrap().clock_rate, 90000);
    let rtcp = s.media[0].rtcp().unwrap();
    assert_eq!(rtcp.port, 30001);
    assert_eq!(
        rtcp.connection.as_ref().unwrap().ip(),
        Some("192.0.2.78".parse().unwrap())
    );

    let v6 = sdp(OPUS_IPV6);
    assert_eq!(v6.media[0].proto, Proto::RtpSavpf);
    assert_eq!(
        v6.connection.as_ref().unwrap().ip(),
        Some("2001:db8::10".parse().unwrap())
    );
    assert_eq!(v6.media[0].maxptime(), Some(120));

    let w = sdp(WEBRTC_DTLS);
    assert_eq!(w.media[0].proto, Proto::UdpTlsRtpSavpf);
    assert!(w.connection.is_none());
    assert!(w.media[0]
        .connection
        .as_ref()
        .unwrap()
        .ip()
        .unwrap()
        .is_unspecified());
    assert!(w.attributes.contains(&Attribute::Other(RawAttribute {
        name: "msid-semantic".into(),
        value: Some(" WMS".into())
    })));
}

#[test]
fn tolerated_variations() {
    // No final line ending, trailing empty lines, runs of spaces.
    let base = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
    let a = SessionDescription::parse(format!("{base}m=audio 4000 RTP/SAVP 0").as_bytes());
    let b =
        SessionDescription::parse(format!("{base}m=audio  4000 RTP/SAVP  0\r\n\r\n\n").as_bytes());
    assert_eq!(a.unwrap(), b.unwrap());
    // Optional session lines in an unusual order still parse.
    let odd = "v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nt=0 0\nc=IN IP4 192.0.2.1\nb=CT:64\n\
               e=ops@example.com\np=+1 555 0100\ni=info\nu=http://example.com\nr=7d 1h 0 25h\n\
               z=2882844526 -1h\na=tool:x\nm=audio 4000 RTP/SAVP 0\n";
    let sd = SessionDescription::parse(odd.as_bytes());
    // r= must follow t= directly.
    assert_eq!(
        sd.unwrap_err(),
        SdpError::OutOfOrder {
            line: 11,
            kind: 'r'
        }
    );
    let ok = odd
        .replace("r=7d 1h 0 25h\n", "")
        .replace("t=0 0\n", "t=0 0\nr=7d 1h 0 25h\n");
    let sd = SessionDescription::parse(ok.as_bytes()).unwrap();
    assert_eq!(sd.times[0].repeats, vec!["7d 1h 0 25h".to_string()]);
    assert_eq!(sd.emails.len() + sd.phones.len(), 2);
    // Printed in RFC 8866 order, it parses back the same.
    assert_eq!(
        SessionDescription::parse(sd.print().as_bytes()).unwrap(),
        sd
    );
    // A fractional ptime and valueless unknown attributes are kept raw.
    let raw = format!("{base}m=audio 4000 RTP/SAVP 0\r\na=ptime:20.5\r\na=x-flag\r\n");
    let sd = SessionDescription::parse(raw.as_bytes()).unwrap();
    assert_eq!(sd.media[0].ptime(), None);
    assert_eq!(*sd.print(), raw);
    // Non-RTP formats and fmtp stay tokens.
    let t38 = format!("{base}m=image 5000 udptl t38\r\na=fmtp:t38 x\r\n");
    let sd = SessionDescription::parse(t38.as_bytes()).unwrap();
    assert_eq!(sd.media[0].formats, Formats::Tokens(vec!["t38".into()]));
    assert_eq!(*sd.print(), t38);
}

#[test]
fn malformed_bodies_are_refused_with_the_reason() {
    let head = "v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n";
    let m = "m=audio 4000 RTP/SAVP 0\n";
    let cases: Vec<(String, SdpError)> = vec![
        (String::new(), SdpError::BadVersion),
        (head.replace("v=0", "v=1"), SdpError::BadVersion),
        ("v=0\ns=-\n".into(), SdpError::Missing('o')),
        (
            "v=0\no=- 1 2 IN IP4 192.0.2.1\nt=0 0\n".into(),
            SdpError::Missing('s'),
        ),
        (head.replace("t=0 0\n", "") + m, SdpError::Missing('t')),
        (head.replace("t=0 0\n", ""), SdpError::Missing('t')),
        (
            format!("{head}c=IN IP4 192.0.2.2\n"),
            SdpError::OutOfOrder { line: 6, kind: 'c' },
        ),
        (
            format!("{head}s=again\n"),
            SdpError::OutOfOrder { line: 6, kind: 's' },
        ),
        (
            format!("{head}{m}u=http://x\n"),
            SdpError::OutOfOrder { line: 7, kind: 'u' },
        ),
        (
            format!("{head}{m}i=a\ni=b\n"),
            SdpError::OutOfOrder { line: 8, kind: 'i' },
        ),
        (format!("{head}x=1\n"), SdpError::UnknownType { line: 6 }),
        (
            format!("{head}{m}k=clear:secret\n"),
            SdpError::KeyLine { line: 7 },
        ),
        (format!("{head}k=prompt\n"), SdpError::KeyLine { line: 6 }),
        (format!("{head}a b\n"), SdpError::NotALine { line: 6 }),
        (format!("{head}A=1\n"), SdpError::NotALine { line: 6 }),
        (format!("{head}\n{m}"), SdpError::EmptyLine { line: 6 }),
        (
            format!("{head}a=x\u{0}y\n"),
            SdpError::ControlCharacter { line: 6 },
        ),
        (
            format!("{head}a=x\ry\n"),
            SdpError::ControlCharacter { line: 6 },
        ),
        (
            head.replace("s=-", "s=a b c d").replace("1 2 IN", "1 IN"),
            SdpError::Malformed {
                line: 2,
                what: "o=",
            },
        ),
        (
            head.replace("IN IP4 192.0.2.1\ns", "ATM NSAP 47.00\ns"),
            SdpError::Malformed {
                line: 2,
                what: "o=",
            },
        ),
        (
            head.replace("o=- 1 2", "o=- x 2"),
            SdpError::Malformed {
                line: 2,
                what: "o=",
            },
        ),
        (
            head.replace("c=IN IP4", "c=IN IP5"),
            SdpError::Malformed {
                line: 4,
                what: "c=",
            },
        ),
        (
            head.replace("t=0 0", "t=0"),
            SdpError::Malformed {
                line: 5,
                what: "t=",
            },
        ),
        (
            format!("{head}b=AS\n"),
            SdpError::Malformed {
                line: 6,
                what: "b=",
            },
        ),
        (
            format!("{head}b=AS:-1\n"),
            SdpError::Malformed {
                line: 6,
                what: "b=",
            },
        ),
        (
            format!("{head}m=audio 70000 RTP/SAVP 0\n"),
            SdpError::Malformed {
                line: 6,
                what: "m=",
            },
        ),
        (
            format!("{head}m=audio 4000 RTP/SAVP 128\n"),
            SdpError::Malformed {
                line: 6,
                what: "m=",
            },
        ),
        (
            format!("{head}m=audio 4000 RTP/SAVP x\n"),
            SdpError::Malformed {
                line: 6,
                what: "m=",
            },
        ),
        (
            format!("{head}m=audio 4000 RTP/SAVP\n"),
            SdpError::Malformed {
                line: 6,
                what: "m=",
            },
        ),
        (
            format!("{head}m=audio 4000/ RTP/SAVP 0\n"),
            SdpError::Malformed {
                line: 6,
                what: "m=",
            },
        ),
        (
            format!("{head}{m}a=rtpmap:0 PCMU\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=rtpmap",
            },
        ),
        (
            format!("{head}{m}a=rtpmap:0 PCMU/8000/\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=rtpmap",
            },
        ),
        (
            format!("{head}{m}a=rtpmap:200 PCMU/8000\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=rtpmap",
            },
        ),
        (
            format!("{head}{m}a=fmtp:101\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=fmtp",
            },
        ),
        (
            format!("{head}{m}a=crypto:1 AES_CM_128_HMAC_SHA1_80\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=crypto",
            },
        ),
        (
            format!("{head}{m}a=crypto:1234567890 X inline:a\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=crypto",
            },
        ),
        (
            format!("{head}{m}a=crypto:x X inline:a\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=crypto",
            },
        ),
        (
            format!("{head}{m}a=crypto:1 AES-CM inline:a\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=crypto",
            },
        ),
        (
            format!("{head}{m}a=rtcp:x\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=rtcp",
            },
        ),
        (
            format!("{head}{m}a=rtcp:5 IN IP4\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=rtcp",
            },
        ),
        (
            format!("{head}{m}a=crypto\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=",
            },
        ),
        (
            format!("{head}{m}a=rtcp-mux:yes\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=",
            },
        ),
        (
            format!("{head}{m}a=sendonly:1\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=",
            },
        ),
        (
            format!("{head}{m}a=:x\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=",
            },
        ),
        (
            format!("{head}{m}a=a b\n"),
            SdpError::Malformed {
                line: 7,
                what: "a=",
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            SessionDescription::parse(text.as_bytes()),
            Err(want),
            "{text:?}"
        );
        // Every refusal reads as a 488 with a Warning.
        assert_eq!(Reject::from(want).status(), 488);
    }
    assert_eq!(
        SessionDescription::parse(&[b'v', b'=', 0xff]),
        Err(SdpError::NotUtf8)
    );
}

#[test]
fn limits_are_enforced() {
    let head = "v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n";
    let big = format!("{head}a={}\n", "x".repeat(crate::sdp::MAX_BODY));
    assert_eq!(
        SessionDescription::parse(big.as_bytes()),
        Err(SdpError::TooLarge)
    );
    let long = format!("{head}a={}\n", "x".repeat(MAX_LINE));
    assert_eq!(
        SessionDescription::parse(long.as_bytes()),
        Err(SdpError::LineTooLong { line: 6 })
    );
    let many = format!("{head}{}", "a=x\n".repeat(MAX_LINES));
    assert_eq!(
        SessionDescription::parse(many.as_bytes()),
        Err(SdpError::TooManyLines)
    );
    let just = format!("{head}{}", "a=x\n".repeat(MAX_LINES - 5));
    assert!(SessionDescription::parse(just.as_bytes()).is_ok());
    let media = format!("{head}{}", "m=audio 0 RTP/SAVP 0\n".repeat(MAX_MEDIA + 1));
    assert_eq!(
        SessionDescription::parse(media.as_bytes()),
        Err(SdpError::TooManyMedia)
    );
    let fmts: Vec<String> = (0..=MAX_FORMATS).map(|i| (i % 128).to_string()).collect();
    let wide = format!("{head}m=audio 4000 RTP/SAVP {}\n", fmts.join(" "));
    assert_eq!(
        SessionDescription::parse(wide.as_bytes()),
        Err(SdpError::TooManyFormats { line: 6 })
    );
}

#[test]
fn keys_never_reach_debug_or_redacted_output() {
    let mut sd = sdp(BARESIP);
    sd.media[0].attributes.push(Attribute::Other(RawAttribute {
        name: "key-mgmt".into(),
        value: Some("mikey SECRETMIKEY".into()),
    }));
    let secrets = [CM128_A, CM128_C, CM256, GCM128, GCM256, "SECRETMIKEY"];
    let debug = format!("{sd:?} {:#?}", sd.media[0].crypto().next());
    let redacted = sd.print_redacted();
    let wire = sd.print();
    for s in secrets {
        assert!(!debug.contains(s), "{s} in Debug");
        assert!(!redacted.contains(s), "{s} in redacted output");
        assert!(wire.contains(s), "{s} missing from the wire form");
    }
    assert!(redacted.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 <redacted>\r\n"));
    assert!(redacted.contains("a=key-mgmt:<redacted>\r\n"));
    // Crypto equality compares the key too.
    let a = sd.media[0].crypto().next().unwrap().clone();
    let mut b = a.clone();
    assert_eq!(a, b);
    b = Crypto::new(
        b.tag,
        b.suite.clone(),
        zeroize::Zeroizing::new("inline:x".into()),
        vec![],
    );
    assert_ne!(a, b);
}

#[test]
fn built_descriptions_print_and_parse_back() {
    let ip = "2001:db8::1".parse().unwrap();
    let mut m = Media::new(
        MediaType::Audio,
        5004,
        Proto::RtpSavp,
        Formats::PayloadTypes(vec![0, 101]),
    );
    m.port_count = Some(1);
    m.info = Some("voice".into());
    m.connection = Some(Connection::from_ip(ip));
    m.attributes.push(Attribute::Rtcp(Rtcp {
        port: 5005,
        connection: Some(Connection::from_ip("192.0.2.9".parse().unwrap())),
    }));
    m.attributes.push(Attribute::Maxptime(40));
    m.attributes.push(Attribute::Direction(Direction::Inactive));
    let sd = SessionDescription {
        origin: Origin {
            username: "-".into(),
            session_id: 7,
            session_version: 8,
            address: Connection::from_ip(ip),
        },
        session_name: "x".into(),
        info: None,
        uri: None,
        emails: vec![],
        phones: vec![],
        connection: None,
        bandwidths: vec![],
        times: vec![Timing::unbounded()],
        time_zones: None,
        attributes: vec![Attribute::Direction(Direction::SendOnly)],
        media: vec![m],
    };
    let text = sd.print();
    assert!(text.contains("m=audio 5004/1 RTP/SAVP 0 101\r\ni=voice\r\nc=IN IP6 2001:db8::1\r\n"));
    assert!(text.contains("a=rtcp:5005 IN IP4 192.0.2.9\r\n"));
    let back = SessionDescription::parse(text.as_bytes()).unwrap();
    assert_eq!(back, sd);
    assert_eq!(back.direction(), Some(Direction::SendOnly));
    assert_eq!(back.media[0].direction(), Some(Direction::Inactive));
}

#[test]
fn directions_and_addresses() {
    use Direction::*;
    assert_eq!(SendOnly.reversed(), RecvOnly);
    assert_eq!(Inactive.reversed(), Inactive);
    assert_eq!(SendRecv.intersect(RecvOnly), RecvOnly);
    assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
    for d in [SendRecv, SendOnly, RecvOnly, Inactive] {
        assert_eq!(Direction::from_name(d.name()), Some(d));
        assert_eq!(d.reversed().reversed(), d);
    }
    let c = |t, a: &str| Connection {
        addr_type: t,
        address: a.into(),
    };
    assert!(c(AddrType::Ip4, "192.0.2.1").ip().is_some());
    assert!(c(AddrType::Ip6, "192.0.2.1").ip().is_none());
    assert!(c(AddrType::Ip4, "224.2.1.1/127").ip().is_none());
    assert!(c(AddrType::Ip4, "239.1.1.1").ip().is_none());
    assert!(c(AddrType::Ip4, "pbx.example.com").ip().is_none());
}
