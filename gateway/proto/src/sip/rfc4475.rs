//! Every message of RFC 4475 (SIP torture tests), byte for byte.
//!
//! The files under `gateway/tests/data/rfc4475/` are the members of the
//! RFC's own archive (Appendix A), named as there; `test.dat` is the
//! archive's extra member that no section describes. The SHA-256 of each
//! file is pinned below, so a checkout that rewrote line endings fails
//! loudly instead of testing something else.

use super::*;

macro_rules! dat {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475/", $name, ".dat"
        )) as &[u8])),*]
    };
}

/// All 49 messages of RFC 4475 §3, plus the archive's `test`.
const CORPUS: &[(&str, &[u8])] = dat!(
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "scalarlg",
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch01",
    "mismatch02",
    "bigcode",
    "badbranch",
    "insuf",
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "multi01",
    "mcl01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    "inv2543",
    "test",
);

pub(super) fn corpus() -> &'static [(&'static str, &'static [u8])] {
    CORPUS
}

fn msg(name: &str) -> &'static [u8] {
    CORPUS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap_or_else(|| panic!("no {name}.dat"))
}

fn parse(name: &str) -> Result<Message, ParseError> {
    Message::parse(msg(name), &Limits::default())
}

fn ok(name: &str) -> Message {
    let m = parse(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let printed = m.to_bytes();
    assert_eq!(
        Message::parse(&printed, &Limits::default()).as_ref(),
        Ok(&m),
        "{name} does not round-trip:\n{}",
        String::from_utf8_lossy(&printed)
    );
    m
}

/// What RFC 4475 says an element does with each message. Requests that
/// fail get `error.status()` as the response; failed responses are dropped.
/// Parses, or is refused with this error and response status.
type Outcome = Result<(), (ParseError, u16)>;

const EXPECTED: &[(&str, Outcome)] = &[
    // §3.1.1 Valid messages (dblreq: see `dblreq_extra_bytes`).
    ("wsinv", Ok(())),
    ("intmeth", Ok(())),
    ("esc01", Ok(())),
    ("escnull", Ok(())),
    ("esc02", Ok(())),
    ("lwsdisp", Ok(())),
    ("longreq", Ok(())),
    ("dblreq", Err((ParseError::TrailingData, 400))),
    ("semiuri", Ok(())),
    ("transports", Ok(())),
    ("mpart01", Ok(())),
    ("unreason", Ok(())),
    ("noreason", Ok(())),
    // §3.1.2 Invalid messages.
    // .1 extraneous header field separators: 400.
    (
        "badinv01",
        Err((ParseError::BadHeader(HeaderName::Via), 400)),
    ),
    // .2 Content-Length larger than the message: 400.
    ("clerr", Err((ParseError::BodyTruncated, 400))),
    // .3 negative Content-Length: 400.
    (
        "ncl",
        Err((ParseError::BadHeader(HeaderName::ContentLength), 400)),
    ),
    // .4 overlarge scalars in a request: 400 "due to the CSeq error".
    (
        "scalar02",
        Err((ParseError::BadHeader(HeaderName::CSeq), 400)),
    ),
    // .5 overlarge scalars in a response: discarded.
    (
        "scalarlg",
        Err((ParseError::BadHeader(HeaderName::CSeq), 400)),
    ),
    // .6 unterminated quoted string in a display name: 400.
    ("quotbal", Err((ParseError::BadHeader(HeaderName::To), 400))),
    // .7 <> around the Request-URI: 400.
    ("ltgtruri", Err((ParseError::BadRequestUri, 400))),
    // .8 LWS inside the Request-URI: 400.
    ("lwsruri", Err((ParseError::BadStartLine, 400))),
    // .9 multiple SP in the Request-Line: 400 (we are not liberal).
    ("lwsstart", Err((ParseError::BadStartLine, 400))),
    // .10 SP at the end of the Request-Line: 400 (we are not liberal).
    ("trws", Err((ParseError::BadStartLine, 400))),
    // .11 escaped headers in the Request-URI: 400.
    ("escruri", Err((ParseError::HeadersInRequestUri, 400))),
    // .12 invalid time zone in Date: handled gracefully (Date is raw).
    ("baddate", Ok(())),
    // .13 escaped header in a Contact URI outside <>: 400.
    (
        "regbadct",
        Err((ParseError::BadHeader(HeaderName::Contact), 400)),
    ),
    // .14 SP inside <> of an addr-spec: 400.
    (
        "badaspec",
        Err((ParseError::BadHeader(HeaderName::To), 400)),
    ),
    // .15 non-token characters in an unquoted display name: 400. The
    // archive's file lacks the final empty line, so as a whole it is an
    // incomplete header section (also 400); `baddn_display_name` checks
    // the display name with the line restored.
    ("baddn", Err((ParseError::Incomplete, 400))),
    // .16 SIP/7.0: 505.
    ("badvers", Err((ParseError::UnsupportedVersion, 505))),
    // .17 CSeq method differs from the Request-Line: 400.
    ("mismatch01", Err((ParseError::CSeqMismatch, 400))),
    // .18 unknown method and a CSeq mismatch: 400 (or 501).
    ("mismatch02", Err((ParseError::CSeqMismatch, 400))),
    // .19 status code 4294967301 in a response: discarded.
    ("bigcode", Err((ParseError::BadStatusCode, 400))),
    // §3.2.1 branch is just the magic cookie: parsers must not break.
    ("badbranch", Ok(())),
    // §3.3.1 missing To, From, Call-ID, Max-Forwards: 400.
    (
        "insuf",
        Err((ParseError::MissingHeader(HeaderName::From), 400)),
    ),
    // §3.3.2, §3.3.3 Request-URI scheme not understood: 416.
    ("unkscm", Err((ParseError::UnsupportedUriScheme, 416))),
    ("novelsc", Err((ParseError::UnsupportedUriScheme, 416))),
    // §3.3.4 unknown schemes in To/From/Contact: must parse.
    ("unksm2", Ok(())),
    // §3.3.5 to §3.3.7: parse; 420 / 415 / 401 are the UAS's business.
    ("bext01", Ok(())),
    ("invut", Ok(())),
    ("regaut01", Ok(())),
    // §3.3.8 several values in single-valued fields: 400.
    (
        "multi01",
        Err((ParseError::DuplicateHeader(HeaderName::CSeq), 400)),
    ),
    // §3.3.9 two Content-Length fields: 400.
    (
        "mcl01",
        Err((ParseError::DuplicateHeader(HeaderName::ContentLength), 400)),
    ),
    // §3.3.10 to §3.3.15: parse; what to do is not the codec's business.
    ("bcast", Ok(())),
    ("zeromf", Ok(())),
    ("cparam01", Ok(())),
    ("cparam02", Ok(())),
    ("regescrt", Ok(())),
    ("sdp01", Ok(())),
    // §3.4.1 RFC 2543 syntax: parses (no Content-Length on a datagram).
    ("inv2543", Ok(())),
    // The archive's undocumented extra member: no SIP-Version.
    ("test", Err((ParseError::BadStartLine, 400))),
];

#[test]
fn corpus_is_byte_exact() {
    // SHA-256 of every file (the 13 valid ones also match the hashes
    // published by independent decodes of the RFC archive).
    use aws_lc_rs::digest::{digest, SHA256};
    let pinned: &[(&str, &str)] = &include!("rfc4475_sums.rs");
    assert_eq!(pinned.len(), CORPUS.len());
    for (name, hex) in pinned {
        let d = digest(&SHA256, msg(name));
        let got: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&got, hex, "{name}.dat differs from the RFC archive");
    }
}

#[test]
fn every_message_has_its_rfc_outcome() {
    assert_eq!(EXPECTED.len(), CORPUS.len());
    for (name, expected) in EXPECTED {
        match (parse(name), expected) {
            (Ok(_), Ok(())) => {
                ok(name);
            }
            (Err(e), Err((want, status))) => {
                assert_eq!(&e, want, "{name}");
                assert_eq!(e.status().as_u16(), *status, "{name}");
            }
            (got, want) => panic!("{name}: got {got:?}, RFC 4475 expects {want:?}"),
        }
    }
}

#[test]
fn wsinv_short_tortuous_invite() {
    let m = ok("wsinv");
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(
        m.request_uri().and_then(|u| u.param("unknownparam")),
        Some(None)
    );
    assert_eq!(m.to().tag(), Some("1918181833n"));
    assert_eq!(m.from().display_name.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(m.from().tag(), Some("98asjd8"));
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!((m.cseq().seq, &m.cseq().method), (9, &Method::Invite));
    let vias: Vec<_> = m.vias().collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(vias[1].transport, Transport::Tcp);
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.raw(&HeaderName::Subject).collect::<Vec<_>>(), [""]);
    assert_eq!(
        m.raw(&HeaderName::Other("NewFangledHeader".into()))
            .collect::<Vec<_>>(),
        ["newfangled value continued newfangled value"]
    );
    assert_eq!(
        m.raw(&HeaderName::Other("UnknownHeaderWithUnusualValue".into()))
            .collect::<Vec<_>>(),
        [";;,,;;,;"]
    );
    let route: Vec<_> = m.route().collect();
    assert_eq!(route[0].uri.param("lr"), Some(None));
    let Some(Contact::Addresses(c)) = m.contact() else {
        panic!()
    };
    assert_eq!(c[0].display_name.as_deref(), Some(r#"Quoted string """#));
    assert_eq!(c[0].param("newparam"), Some(Some("newvalue")));
    assert_eq!(c[0].param("secondparam"), Some(None));
    assert_eq!(c[0].param("q"), Some(Some("0.33")));
    assert!(m.content_type().is_some_and(MediaType::is_sdp));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let m = ok("intmeth");
    let method = Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into());
    assert_eq!(m.method(), Some(&method));
    assert_eq!(m.cseq().method, method);
    let Some(Uri::Sip(u)) = m.request_uri() else {
        panic!()
    };
    assert_eq!(
        u.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(
        m.to().display_name.as_deref(),
        Some("BEL:\u{7} NUL:\0 DEL:\u{7f}")
    );
    assert_eq!(
        m.from().param("fromParam''~+*_!.-%"),
        Some(Some("\"работающий\""))
    );
    assert_eq!(m.from().tag(), Some("_token~1'+`*%!-."));
    assert_eq!(m.call_id(), "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    assert_eq!(m.max_forwards(), Some(255));
    assert_eq!(
        m.raw(&HeaderName::Other("extensionHeader-!.%*+_`'~".into()))
            .collect::<Vec<_>>(),
        ["\u{feff}大停電"]
    );
}

#[test]
fn escapes_in_uris() {
    let m = ok("esc01");
    let sip = |u: &Uri| u.as_sip().cloned().unwrap();
    let ruri = sip(m.request_uri().unwrap());
    assert_eq!(ruri.user.as_deref(), Some("sips:user@example.com"));
    assert_eq!(sip(&m.to().uri).user.as_deref(), Some("user"));
    assert_eq!(sip(&m.from().uri).user.as_deref(), Some("I have spaces"));
    let Some(Contact::Addresses(c)) = m.contact() else {
        panic!()
    };
    let contact = sip(&c[0].uri);
    assert_eq!(contact.user.as_deref(), Some("caller"));
    assert_eq!(contact.param("lr"), Some(None));
    // Not recursively unescaped: the value is "value%41", not "valueA".
    assert_eq!(contact.param("name"), Some(Some("value%41")));

    let m = ok("escnull");
    assert_eq!(sip(&m.to().uri).user.as_deref(), Some("null-\0-null"));
    let Some(Contact::Addresses(c)) = m.contact() else {
        panic!()
    };
    assert_eq!(sip(&c[1].uri).user.as_deref(), Some("\0\0"));

    let m = ok("esc02");
    assert_eq!(m.method(), Some(&Method::Extension("RE%47IST%45R".into())));
    assert_eq!(m.to().display_name.as_deref(), Some("%Z%45"));
    assert_eq!(m.top_via().branch(), Some("z9hG4bK209%fzsnel234"));
    // "C%6Fntact" is an unknown header, not Contact.
    let Some(Contact::Addresses(c)) = m.contact() else {
        panic!()
    };
    assert_eq!(c.len(), 2);
    assert_eq!(m.raw(&HeaderName::Other("C%6Fntact".into())).count(), 1);
}

#[test]
fn other_valid_messages() {
    assert_eq!(ok("lwsdisp").from().display_name.as_deref(), Some("caller"));

    let m = ok("longreq");
    assert_eq!(m.vias().count(), 34);
    assert_eq!(m.to().uri.as_sip().and_then(|u| u.port), Some(6000));
    assert_eq!(m.top_via().host, Host::Domain("sip33.example.com".into()));

    let m = ok("semiuri");
    let ruri = m.request_uri().and_then(Uri::as_sip).unwrap();
    assert_eq!(ruri.user.as_deref(), Some("user;par=u@example.net"));
    assert!(ruri.params.is_empty());
    assert_eq!(
        m.raw(&HeaderName::Other("Accept".into())).collect::<Vec<_>>(),
        ["application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag"]
    );

    let t: Vec<Transport> = ok("transports")
        .vias()
        .map(|v| v.transport.clone())
        .collect();
    assert_eq!(
        t,
        [
            Transport::Udp,
            Transport::Sctp,
            Transport::Tls,
            Transport::Other("UNKNOWN".into()),
            Transport::Tcp
        ]
    );

    let m = ok("mpart01");
    assert_eq!(m.body().len(), 553);
    assert_eq!(m.top_via().rport(), Some(None));
    assert_eq!(m.body().iter().filter(|&&b| b == b'\n').count(), 3 + 11);

    let m = ok("unreason");
    let StartLine::Response { code, reason } = m.start_line() else {
        panic!()
    };
    assert_eq!(code.as_u16(), 200);
    assert!(reason.starts_with("= 2**3 * 5**2 но сто девяносто девять"));
    let m = ok("noreason");
    assert_eq!(
        m.start_line(),
        &StartLine::Response {
            code: StatusCode::TRYING,
            reason: String::new()
        }
    );

    assert!(!ok("badbranch").top_via().has_rfc3261_branch());
    let m = ok("unksm2");
    assert!(matches!(m.to().uri, Uri::Other(_)));
    let m = ok("cparam01");
    let Some(Contact::Addresses(c)) = m.contact() else {
        panic!()
    };
    assert_eq!(c[0].param("unknownparam"), Some(None), "a header param");
    let m = ok("cparam02");
    let Some(Contact::Addresses(c)) = m.contact() else {
        panic!()
    };
    assert_eq!(c[0].uri.param("unknownparam"), Some(None), "a URI param");
    let m = ok("regescrt");
    let Some(Contact::Addresses(c)) = m.contact() else {
        panic!()
    };
    assert_eq!(
        c[0].uri.as_sip().map(|u| u.headers.clone()),
        Some(vec![("Route".into(), "<sip:sip.example.com>".into())])
    );
    assert_eq!(ok("zeromf").max_forwards(), Some(0));
    let m = ok("bext01");
    assert_eq!(
        m.require().collect::<Vec<_>>(),
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    let m = ok("inv2543");
    assert_eq!(m.content_length(), None);
    assert_eq!(m.max_forwards(), None);
    assert_eq!(m.from().tag(), None);
}

#[test]
fn baddn_display_name() {
    let mut bytes = msg("baddn").to_vec();
    bytes.extend_from_slice(b"\r\n");
    assert_eq!(
        Message::parse(&bytes, &Limits::default()),
        Err(ParseError::BadHeader(HeaderName::From))
    );
}

#[test]
fn dblreq_extra_bytes() {
    // §3.1.1.8: over UDP the REGISTER is processed and the INVITE after
    // Content-Length is discarded (RFC 3261 §18.3).
    let m = Message::parse_datagram(msg("dblreq"), &Limits::default()).unwrap();
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body().is_empty());
    // On a stream the same bytes are two messages.
    let mut f = Framer::server(Limits::default());
    f.handle_data(msg("dblreq"));
    let Ok(Some(Event::Message(first))) = f.poll_event() else {
        panic!()
    };
    assert_eq!(first, m);
    let Ok(Some(Event::Message(second))) = f.poll_event() else {
        panic!()
    };
    assert_eq!(second.method(), Some(&Method::Invite));
    assert_eq!(second.body().len(), 150);
}

#[test]
fn datagram_parse_agrees_on_the_corpus() {
    for (name, bytes) in CORPUS {
        if *name == "dblreq" {
            continue;
        }
        assert_eq!(
            Message::parse_datagram(bytes, &Limits::default()),
            Message::parse(bytes, &Limits::default()),
            "{name}"
        );
    }
}

#[test]
fn framer_over_the_corpus() {
    // Every message with a Content-Length, back to back on one stream in
    // odd-sized chunks, comes out as the same events as parsed one by one.
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for (name, expect) in EXPECTED {
        let framable = !matches!(
            *name,
            "dblreq" | "clerr" | "ncl" | "mcl01" | "inv2543" | "test" | "baddn"
        );
        if !framable {
            continue;
        }
        stream.extend_from_slice(msg(name));
        expected.push(match expect {
            Ok(()) => Ok(parse(name).unwrap()),
            Err((e, _)) => Err(e.clone()),
        });
    }
    let mut f = Framer::server(Limits::default());
    let mut got = Vec::new();
    for chunk in stream.chunks(97) {
        f.handle_data(chunk);
        while let Some(ev) = f.poll_event().unwrap() {
            got.push(match ev {
                Event::Message(m) => Ok(m),
                Event::Rejected { error, .. } => Err(error),
                other => panic!("{other:?}"),
            });
        }
    }
    assert_eq!(got, expected);
    assert_eq!(f.buffered(), 0);

    // Without Content-Length, or with a bad one, a stream cannot go on.
    for (name, err) in [
        ("inv2543", ParseError::MissingContentLength),
        ("ncl", ParseError::BadHeader(HeaderName::ContentLength)),
        (
            "mcl01",
            ParseError::DuplicateHeader(HeaderName::ContentLength),
        ),
    ] {
        let mut f = Framer::server(Limits::default());
        f.handle_data(msg(name));
        assert_eq!(f.poll_event(), Err(err.clone()), "{name}");
        assert_eq!(f.poll_event(), Err(err), "{name} stays failed");
    }
    // clerr on a stream: the rest of the body has not arrived yet.
    let mut f = Framer::server(Limits::default());
    f.handle_data(msg("clerr"));
    assert_eq!(f.poll_event(), Ok(None));
}
