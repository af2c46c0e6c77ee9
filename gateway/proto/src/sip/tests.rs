//! Limits, line endings, folding, printing, builders and the framer.

use super::*;

const OPTIONS: &str = "OPTIONS sip:gw.example.com SIP/2.0\r\n\
    Via: SIP/2.0/TLS phone.example.com;branch=z9hG4bK1\r\n\
    From: <sip:alice@example.com>;tag=a\r\n\
    To: <sip:gw.example.com>\r\n\
    Call-ID: c1\r\n\
    CSeq: 1 OPTIONS\r\n\
    Content-Length: 0\r\n\r\n";

fn parse(s: &str) -> Result<Message, ParseError> {
    Message::parse(s.as_bytes(), &Limits::default())
}

fn with_header(extra: &str) -> String {
    OPTIONS.replacen("Content-Length", &format!("{extra}\r\nContent-Length"), 1)
}

#[test]
fn minimal_message_and_canonical_printing() {
    let m = parse(OPTIONS).unwrap();
    assert_eq!(m.to_bytes(), OPTIONS.as_bytes());
    let compact = "OPTIONS sip:gw.example.com SIP/2.0\r\n\
        v: SIP/2.0/TLS phone.example.com;branch=z9hG4bK1\r\n\
        f: <sip:alice@example.com>;tag=a\r\n\
        T: <sip:gw.example.com>\r\n\
        i: c1\r\n\
        cseq: 1 OPTIONS\r\n\
        l: 0\r\n\r\n";
    assert_eq!(parse(compact).unwrap(), m);
    assert_eq!(parse(compact).unwrap().to_bytes(), OPTIONS.as_bytes());
}

#[test]
fn limits_are_enforced() {
    let tight = Limits {
        max_message_size: 300,
        max_headers: 6,
        max_line_length: 60,
    };
    assert!(Message::parse(OPTIONS.as_bytes(), &tight).is_ok());
    let big = format!(
        "{}{}",
        OPTIONS.replace("Content-Length: 0", "Content-Length: 200"),
        "x".repeat(200)
    );
    assert_eq!(
        Message::parse(big.as_bytes(), &tight),
        Err(ParseError::TooLarge { limit: 300 })
    );
    let many = with_header("Subject: x");
    assert_eq!(
        Message::parse(many.as_bytes(), &tight),
        Err(ParseError::TooManyHeaders { limit: 6 })
    );
    let long = OPTIONS.replace("Call-ID: c1", &format!("Call-ID: {}", "c".repeat(60)));
    assert_eq!(
        Message::parse(long.as_bytes(), &tight),
        Err(ParseError::LineTooLong { limit: 60 })
    );
    // Folding cannot smuggle a long field past the line limit.
    let folded = OPTIONS.replace(
        "Call-ID: c1",
        &format!("Call-ID: {}\r\n {}", "c".repeat(40), "c".repeat(40)),
    );
    assert_eq!(
        Message::parse(folded.as_bytes(), &tight),
        Err(ParseError::LineTooLong { limit: 60 })
    );
    for e in [
        ParseError::TooLarge { limit: 1 },
        ParseError::TooManyHeaders { limit: 1 },
        ParseError::LineTooLong { limit: 1 },
    ] {
        assert_eq!(e.status(), StatusCode::MESSAGE_TOO_LARGE);
    }
}

#[test]
fn line_endings_and_folding() {
    assert_eq!(
        parse(&OPTIONS.replace("Call-ID: c1\r\n", "Call-ID: c1\n")),
        Err(ParseError::BadLineEnding)
    );
    assert_eq!(
        parse(&OPTIONS.replace("Call-ID: c1\r\n", "Call-ID: c\r1\r\n")),
        Err(ParseError::BadLineEnding)
    );
    assert_eq!(
        parse(&OPTIONS.replace("\r\n\r\n", "\r\n")),
        Err(ParseError::Incomplete)
    );
    assert_eq!(
        parse(&OPTIONS.replace("SIP/2.0\r\n", "SIP/2.0\r\n continued\r\n")),
        Err(ParseError::BadLineEnding),
        "continuation with nothing to continue"
    );
    let folded = OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq:\r\n  1\r\n\tOPTIONS");
    assert_eq!(parse(&folded).unwrap(), parse(OPTIONS).unwrap());
    assert_eq!(
        parse(&with_header("X-Bin: \u{1}")),
        Err(ParseError::BadHeader(HeaderName::Other("X-Bin".into())))
    );
    let mut not_utf8 = OPTIONS.as_bytes().to_vec();
    not_utf8[30] = 0xff;
    assert_eq!(
        Message::parse(&not_utf8, &Limits::default()),
        Err(ParseError::NotUtf8)
    );
    assert_eq!(
        parse(&with_header("NoColon")),
        Err(ParseError::BadHeaderName)
    );
    assert_eq!(
        parse(&with_header("Bad Name: x")),
        Err(ParseError::BadHeaderName)
    );
    assert_eq!(
        parse(&format!("\r\n{OPTIONS}")),
        Err(ParseError::BadStartLine)
    );
}

#[test]
fn start_lines() {
    let cases = [
        (
            "OPTIONS sip:gw.example.com SIP/2.1",
            ParseError::UnsupportedVersion,
        ),
        (
            "OPTIONS sip:gw.example.com sip/3.0",
            ParseError::UnsupportedVersion,
        ),
        (
            "OPTIONS sip:gw.example.com HTTP/1.1",
            ParseError::BadStartLine,
        ),
        ("OPTIONS sip:gw.example.com", ParseError::BadStartLine),
        ("OPTI@NS sip:gw.example.com SIP/2.0", ParseError::BadMethod),
        (
            "OPTIONS http://gw.example.com SIP/2.0",
            ParseError::UnsupportedUriScheme,
        ),
        (
            "OPTIONS sip:gw.example.com?Subject=x SIP/2.0",
            ParseError::HeadersInRequestUri,
        ),
        ("OPTIONS sip:[::1 SIP/2.0", ParseError::BadRequestUri),
    ];
    for (line, err) in cases {
        let m = OPTIONS.replacen("OPTIONS sip:gw.example.com SIP/2.0", line, 1);
        assert_eq!(parse(&m), Err(err), "{line}");
    }
    let resp = OPTIONS.replacen(
        "OPTIONS sip:gw.example.com SIP/2.0",
        "SIP/2.0 180 Ringing",
        1,
    );
    assert_eq!(
        parse(&resp).unwrap().status().map(StatusCode::as_u16),
        Some(180)
    );
    for (line, err) in [
        ("SIP/2.0 099 Low", ParseError::BadStatusCode),
        ("SIP/2.0 700 High", ParseError::BadStatusCode),
        ("SIP/2.0 1800 Long", ParseError::BadStatusCode),
        ("SIP/2.0 180", ParseError::BadStartLine),
        ("SIP/2.0 180 Ring\u{7}", ParseError::BadReasonPhrase),
        ("SIP/3.0 180 Ringing", ParseError::UnsupportedVersion),
    ] {
        let m = OPTIONS.replacen("OPTIONS sip:gw.example.com SIP/2.0", line, 1);
        assert_eq!(parse(&m), Err(err), "{line}");
    }
    // A tel Request-URI is fine.
    let tel = OPTIONS.replacen("sip:gw.example.com SIP", "tel:+15551234 SIP", 1);
    assert!(matches!(
        parse(&tel).unwrap().request_uri(),
        Some(Uri::Tel(_))
    ));
}

#[test]
fn bodies_and_content_length() {
    let with_body = OPTIONS.replace("Content-Length: 0", "Content-Length: 4") + "abcd";
    assert_eq!(parse(&with_body).unwrap().body(), b"abcd");
    assert_eq!(
        parse(&(with_body.clone() + "e")),
        Err(ParseError::TrailingData)
    );
    assert_eq!(
        parse(&with_body[..with_body.len() - 1]),
        Err(ParseError::BodyTruncated)
    );
    let no_cl = OPTIONS.replace("Content-Length: 0\r\n", "") + "xyz";
    assert_eq!(parse(&no_cl).unwrap().body(), b"xyz");
}

#[test]
fn typed_accessors() {
    let m = parse(&with_header(
        "Max-Forwards: 70\r\n\
         Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
         Record-Route: <sip:rr.example.com;lr>\r\n\
         P-Asserted-Identity: \"Alice\" <sip:alice@example.com>, <tel:+15551234>\r\n\
         Contact: <sip:alice@192.0.2.4:5061;transport=tls>;expires=60\r\n\
         Content-Type: application/sdp;charset=utf-8\r\n\
         x: 1800;refresher=uas\r\n\
         Min-SE: 90\r\n\
         k: timer, 100rel\r\n\
         Supported: path\r\n\
         Require: timer",
    ))
    .unwrap();
    assert_eq!(m.max_forwards(), Some(70));
    assert_eq!(m.route().count(), 2);
    assert_eq!(m.record_route().count(), 1);
    assert_eq!(m.p_asserted_identity().count(), 2);
    let Some(Contact::Addresses(c)) = m.contact() else {
        panic!()
    };
    assert_eq!(c[0].param("expires"), Some(Some("60")));
    let ct = m.content_type().unwrap();
    assert!(ct.is_sdp());
    assert_eq!(ct.params[0].value(), Some("utf-8"));
    assert_eq!(
        m.session_expires().and_then(|s| s.refresher()),
        Some(Refresher::Uas)
    );
    assert_eq!(m.min_se().map(|(d, _)| d), Some(90));
    assert_eq!(
        m.supported().collect::<Vec<_>>(),
        ["timer", "100rel", "path"]
    );
    assert_eq!(m.require().collect::<Vec<_>>(), ["timer"]);
    assert_eq!(m.content_length(), Some(0));
    let printed = m.to_bytes();
    let text = String::from_utf8(printed.clone()).unwrap();
    assert!(text.contains("\r\nSession-Expires: 1800;refresher=uas\r\n"));
    assert!(text.contains("\r\nSupported: timer, 100rel\r\n"));
    assert_eq!(Message::parse(&printed, &Limits::default()), Ok(m));
}

#[test]
fn message_invariants() {
    assert_eq!(
        parse(&OPTIONS.replace("Call-ID: c1\r\n", "")),
        Err(ParseError::MissingHeader(HeaderName::CallId))
    );
    assert_eq!(
        parse(&OPTIONS.replace("Via: SIP/2.0/TLS phone.example.com;branch=z9hG4bK1\r\n", "")),
        Err(ParseError::MissingHeader(HeaderName::Via))
    );
    assert_eq!(
        parse(&with_header("To: <sip:other@example.com>")),
        Err(ParseError::DuplicateHeader(HeaderName::To))
    );
    assert_eq!(
        parse(&OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: 1 options")),
        Err(ParseError::CSeqMismatch)
    );
    // Via and other list fields may repeat.
    let two = with_header("Via: SIP/2.0/UDP second.example.com");
    assert_eq!(parse(&two).unwrap().vias().count(), 2);
}

#[test]
fn builders() {
    let req = parse(OPTIONS).unwrap();
    let resp = Message::response_to(&req, StatusCode::OK).unwrap();
    assert_eq!(resp.status(), Some(StatusCode::OK));
    assert_eq!(resp.call_id(), "c1");
    assert_eq!(resp.content_length(), Some(0));
    let text = String::from_utf8(resp.to_bytes()).unwrap();
    assert!(text.starts_with("SIP/2.0 200 OK\r\nVia: "), "{text}");

    let headers: Vec<Header> = req
        .headers()
        .iter()
        .filter(|h| !matches!(h, Header::ContentLength(_)))
        .cloned()
        .collect();
    let uri = req.request_uri().cloned().unwrap();
    let m = Message::request(
        Method::Options,
        uri.clone(),
        headers.clone(),
        b"hi".to_vec(),
    )
    .unwrap();
    assert_eq!(m.content_length(), Some(2));
    assert_eq!(Message::parse(&m.to_bytes(), &Limits::default()), Ok(m));
    assert_eq!(
        Message::request(Method::Invite, uri.clone(), headers.clone(), vec![]),
        Err(ParseError::CSeqMismatch)
    );
    assert_eq!(
        Message::request(
            Method::Options,
            Uri::parse("isbn:1").unwrap(),
            headers.clone(),
            vec![]
        ),
        Err(ParseError::UnsupportedUriScheme)
    );
    let mut empty_via = headers.clone();
    empty_via.push(Header::Via(vec![]));
    assert_eq!(
        Message::request(Method::Options, uri, empty_via, vec![]),
        Err(ParseError::BadHeader(HeaderName::Via))
    );
    assert_eq!(
        Message::response(StatusCode::OK, "O\r\nK", headers, vec![]),
        Err(ParseError::BadReasonPhrase)
    );
    assert!(Method::from_token("INV ITE").is_err());
    assert_eq!(
        Method::from_token("PUBLISH").map(|m| m.to_string()),
        Ok("PUBLISH".into())
    );
    assert_eq!(StatusCode::new(99), None);
}

#[test]
fn printing_cannot_inject_lines() {
    let req = parse(OPTIONS).unwrap();
    let mut headers: Vec<Header> = req.headers().to_vec();
    let Some(Header::From(from)) = headers.iter_mut().find(|h| matches!(h, Header::From(_))) else {
        panic!()
    };
    from.display_name = Some("Eve\r\nVia: SIP/2.0/UDP evil".into());
    let m = Message::request(
        Method::Options,
        req.request_uri().cloned().unwrap(),
        headers,
        vec![],
    )
    .unwrap();
    let printed = m.to_bytes();
    let again = Message::parse(&printed, &Limits::default()).unwrap();
    assert_eq!(again.vias().count(), 1);
    assert_eq!(
        again.from().display_name.as_deref(),
        Some("Eve  Via: SIP/2.0/UDP evil")
    );
}

fn drain(f: &mut Framer) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(ev) = f.poll_event().unwrap() {
        out.push(ev);
    }
    out
}

#[test]
fn framer_keep_alives() {
    let m = parse(OPTIONS).unwrap();
    let mut f = Framer::server(Limits::default());
    f.handle_data(b"\r\n");
    assert!(drain(&mut f).is_empty(), "half a ping: wait");
    f.handle_data(b"\r\n\r\n\r\n");
    assert_eq!(drain(&mut f), [Event::Ping, Event::Ping]);
    f.handle_data(b"\r\n");
    f.handle_data(OPTIONS.as_bytes());
    assert_eq!(
        drain(&mut f),
        [Event::Message(m.clone())],
        "lone CRLF ignored"
    );

    let mut c = Framer::client(Limits::default());
    c.handle_data(b"\r\n");
    assert_eq!(drain(&mut c), [Event::Pong]);
    c.handle_data(OPTIONS.as_bytes());
    assert_eq!(drain(&mut c), [Event::Message(m)]);
    assert_eq!(PONG, b"\r\n");
}

#[test]
fn framer_byte_by_byte_and_rejections() {
    let good = parse(OPTIONS).unwrap();
    let bad = OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    let stream = format!("{OPTIONS}{bad}{OPTIONS}");
    let mut f = Framer::server(Limits::default());
    let mut events = Vec::new();
    for b in stream.as_bytes() {
        f.handle_data(&[*b]);
        events.extend(drain(&mut f));
    }
    assert_eq!(events.len(), 3);
    assert_eq!(events[0], Event::Message(good.clone()));
    assert!(matches!(
        &events[1],
        Event::Rejected { error: ParseError::CSeqMismatch, bytes } if bytes == bad.as_bytes()
    ));
    assert_eq!(events[2], Event::Message(good));
}

#[test]
fn framer_errors_are_final() {
    let tight = Limits {
        max_message_size: 400,
        ..Limits::default()
    };
    let mut f = Framer::server(tight);
    f.handle_data(
        OPTIONS
            .replace("Content-Length: 0", "Content-Length: 300")
            .as_bytes(),
    );
    assert_eq!(f.poll_event(), Err(ParseError::TooLarge { limit: 400 }));
    f.handle_data(OPTIONS.as_bytes());
    assert_eq!(f.poll_event(), Err(ParseError::TooLarge { limit: 400 }));
    assert_eq!(f.buffered(), 0);

    // A header section that never ends.
    let mut f = Framer::server(tight);
    for _ in 0..40 {
        f.handle_data(b"X-Filler: 0123456789\r\n");
        if f.poll_event().is_err() {
            break;
        }
    }
    assert!(f.poll_event().is_err());
    // An endless line.
    let mut f = Framer::server(Limits::default());
    f.handle_data(&[b'a'; 9000]);
    assert_eq!(f.poll_event(), Err(ParseError::LineTooLong { limit: 8192 }));
    // Missing Content-Length.
    let mut f = Framer::server(Limits::default());
    f.handle_data(OPTIONS.replace("Content-Length: 0\r\n", "").as_bytes());
    assert_eq!(f.poll_event(), Err(ParseError::MissingContentLength));
    assert_eq!(
        ParseError::MissingContentLength.status(),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn framer_trickled_header_section() {
    // 2,500 fields (55 KB) fed one byte at a time: each byte is scanned once.
    let limits = Limits {
        max_headers: 5000,
        ..Limits::default()
    };
    let filler = "X-Filler: 0123456789\r\n".repeat(2500);
    let wire = OPTIONS.replacen("Call-ID", &format!("{filler}Call-ID"), 1);
    let mut f = Framer::server(limits);
    let mut events = Vec::new();
    for b in wire.as_bytes() {
        f.handle_data(&[*b]);
        events.extend(drain(&mut f));
    }
    assert!(matches!(events.as_slice(), [Event::Message(m)] if m.headers().len() == 2506));
}
