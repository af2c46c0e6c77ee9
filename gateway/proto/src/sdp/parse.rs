//! The bounded SDP reader (RFC 8866 §5, §9).
//!
//! Strict where it matters: `v=0`, `o=`, `s=` come first in that order; at
//! least one `t=` precedes the first `m=`; `r=` follows a `t=`; each of
//! `i=`, `u=`, `c=`, `z=` appears at most once per level; session-only
//! lines never appear inside a media section; unknown line types and `k=`
//! are refused. Tolerant where real peers differ: LF or CRLF endings, a
//! missing final line ending, trailing empty lines, runs of spaces between
//! fields, the relative order of the optional session lines, and unknown
//! attributes (kept raw).

use super::model::{
    AddrType, Attribute, Bandwidth, Connection, Crypto, Direction, Fmtp, Formats, Media, MediaType,
    Origin, Proto, RawAttribute, Rtcp, Rtpmap, SessionDescription, Timing,
};
use super::{SdpError, MAX_BODY, MAX_FORMATS, MAX_LINE, MAX_LINES, MAX_MEDIA};
use zeroize::Zeroizing;

/// Parses an SDP body.
pub(super) fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    if body.len() > MAX_BODY {
        return Err(SdpError::TooLarge);
    }
    let text = core::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let lines = split_lines(text)?;
    let mut it = lines.into_iter();

    match it.next() {
        Some((_, 'v', "0")) => {}
        _ => return Err(SdpError::BadVersion),
    }
    let origin = match it.next() {
        Some((n, 'o', v)) => parse_origin(n, v)?,
        _ => return Err(SdpError::Missing('o')),
    };
    let session_name = match it.next() {
        Some((_, 's', v)) => v.to_owned(),
        _ => return Err(SdpError::Missing('s')),
    };
    let mut sd = SessionDescription {
        origin,
        session_name,
        info: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: None,
        bandwidths: Vec::new(),
        times: Vec::new(),
        time_zones: None,
        attributes: Vec::new(),
        media: Vec::new(),
    };
    // The previous line type at session level, to keep r= after t=.
    let mut prev = 's';
    for (n, kind, value) in it {
        if kind == 'k' {
            return Err(SdpError::KeyLine { line: n });
        }
        if kind == 'm' {
            if sd.times.is_empty() {
                return Err(SdpError::Missing('t'));
            }
            if sd.media.len() == MAX_MEDIA {
                return Err(SdpError::TooManyMedia);
            }
            sd.media.push(parse_media(n, value)?);
            prev = 'm';
            continue;
        }
        if let Some(m) = sd.media.last_mut() {
            media_line(m, n, kind, value)?;
            continue;
        }
        let out_of_order = SdpError::OutOfOrder { line: n, kind };
        match kind {
            'i' => set_once(&mut sd.info, value.to_owned(), out_of_order)?,
            'u' => set_once(&mut sd.uri, value.to_owned(), out_of_order)?,
            'e' => sd.emails.push(value.to_owned()),
            'p' => sd.phones.push(value.to_owned()),
            'c' => set_once(
                &mut sd.connection,
                parse_connection(n, value)?,
                out_of_order,
            )?,
            'b' => sd.bandwidths.push(parse_bandwidth(n, value)?),
            't' => sd.times.push(parse_timing(n, value)?),
            'r' => match sd.times.last_mut() {
                Some(t) if prev == 't' || prev == 'r' => t.repeats.push(value.to_owned()),
                _ => return Err(out_of_order),
            },
            'z' => set_once(&mut sd.time_zones, value.to_owned(), out_of_order)?,
            'a' => sd.attributes.push(parse_attribute(n, value)?),
            'v' | 'o' | 's' => return Err(out_of_order),
            _ => return Err(SdpError::UnknownType { line: n }),
        }
        prev = kind;
    }
    if sd.times.is_empty() {
        return Err(SdpError::Missing('t'));
    }
    Ok(sd)
}

/// Splits the body into `(line number, type, value)`, enforcing the size
/// limits, the character set and the `<type>=` shape.
fn split_lines(text: &str) -> Result<Vec<(usize, char, &str)>, SdpError> {
    let mut raw: Vec<&str> = text.split('\n').collect();
    // Trailing empty lines (including the one after the final line ending).
    while raw.last().is_some_and(|l| l.is_empty() || *l == "\r") {
        raw.pop();
    }
    if raw.len() > MAX_LINES {
        return Err(SdpError::TooManyLines);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, line) in raw.into_iter().enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.len() > MAX_LINE {
            return Err(SdpError::LineTooLong { line: n });
        }
        if line.is_empty() {
            return Err(SdpError::EmptyLine { line: n });
        }
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(SdpError::ControlCharacter { line: n });
        }
        let b = line.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
            return Err(SdpError::NotALine { line: n });
        }
        out.push((n, char::from(b[0]), &line[2..]));
    }
    Ok(out)
}

fn set_once<T>(slot: &mut Option<T>, value: T, err: SdpError) -> Result<(), SdpError> {
    if slot.is_some() {
        return Err(err);
    }
    *slot = Some(value);
    Ok(())
}

fn media_line(m: &mut Media, n: usize, kind: char, value: &str) -> Result<(), SdpError> {
    let out_of_order = SdpError::OutOfOrder { line: n, kind };
    match kind {
        'i' => set_once(&mut m.info, value.to_owned(), out_of_order),
        'c' => set_once(&mut m.connection, parse_connection(n, value)?, out_of_order),
        'b' => {
            m.bandwidths.push(parse_bandwidth(n, value)?);
            Ok(())
        }
        'a' => {
            m.attributes.push(parse_attribute(n, value)?);
            Ok(())
        }
        'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => Err(out_of_order),
        _ => Err(SdpError::UnknownType { line: n }),
    }
}

/// Splits on runs of spaces (RFC 8866 asks for one; peers sometimes send
/// more).
fn fields(value: &str) -> impl Iterator<Item = &str> {
    value.split(' ').filter(|f| !f.is_empty())
}

fn number<T: core::str::FromStr>(s: &str, err: SdpError) -> Result<T, SdpError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err);
    }
    s.parse().map_err(|_| err)
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
fn parse_origin(n: usize, value: &str) -> Result<Origin, SdpError> {
    let err = SdpError::Malformed {
        line: n,
        what: "o=",
    };
    let f: Vec<&str> = fields(value).collect();
    let [username, id, version, net, addr_type, address] = f[..] else {
        return Err(err);
    };
    Ok(Origin {
        username: username.to_owned(),
        session_id: number(id, err)?,
        session_version: number(version, err)?,
        address: connection(net, addr_type, address, err)?,
    })
}

fn connection(
    net: &str,
    addr_type: &str,
    address: &str,
    err: SdpError,
) -> Result<Connection, SdpError> {
    if net != "IN" {
        return Err(err);
    }
    let addr_type = match addr_type {
        "IP4" => AddrType::Ip4,
        "IP6" => AddrType::Ip6,
        _ => return Err(err),
    };
    Ok(Connection {
        addr_type,
        address: address.to_owned(),
    })
}

/// `c=<nettype> <addrtype> <connection-address>` (RFC 8866 §5.7).
fn parse_connection(n: usize, value: &str) -> Result<Connection, SdpError> {
    let err = SdpError::Malformed {
        line: n,
        what: "c=",
    };
    let f: Vec<&str> = fields(value).collect();
    let [net, addr_type, address] = f[..] else {
        return Err(err);
    };
    connection(net, addr_type, address, err)
}

/// `b=<bwtype>:<bandwidth>` (RFC 8866 §5.8).
fn parse_bandwidth(n: usize, value: &str) -> Result<Bandwidth, SdpError> {
    let err = SdpError::Malformed {
        line: n,
        what: "b=",
    };
    let (bwtype, bw) = value.split_once(':').ok_or(err)?;
    if !is_token(bwtype) {
        return Err(err);
    }
    Ok(Bandwidth {
        bwtype: bwtype.to_owned(),
        bandwidth: number(bw, err)?,
    })
}

/// `t=<start-time> <stop-time>` (RFC 8866 §5.9).
fn parse_timing(n: usize, value: &str) -> Result<Timing, SdpError> {
    let err = SdpError::Malformed {
        line: n,
        what: "t=",
    };
    let f: Vec<&str> = fields(value).collect();
    let [start, stop] = f[..] else {
        return Err(err);
    };
    Ok(Timing {
        start: number(start, err)?,
        stop: number(stop, err)?,
        repeats: Vec::new(),
    })
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...` (RFC 8866 §5.14).
fn parse_media(n: usize, value: &str) -> Result<Media, SdpError> {
    let err = SdpError::Malformed {
        line: n,
        what: "m=",
    };
    let mut f = fields(value);
    let (Some(kind), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
        return Err(err);
    };
    if !is_token(kind) || !is_token(proto) {
        return Err(err);
    }
    let (port, port_count) = match port.split_once('/') {
        Some((p, c)) => (number(p, err)?, Some(number(c, err)?)),
        None => (number(port, err)?, None),
    };
    let proto = Proto::from_token(proto);
    let tokens: Vec<&str> = f.collect();
    if tokens.is_empty() {
        return Err(err);
    }
    if tokens.len() > MAX_FORMATS {
        return Err(SdpError::TooManyFormats { line: n });
    }
    let formats = if proto.is_rtp() {
        let pts = tokens
            .iter()
            .map(|t| payload_type(t, err))
            .collect::<Result<Vec<u8>, _>>()?;
        Formats::PayloadTypes(pts)
    } else {
        Formats::Tokens(tokens.iter().map(|t| (*t).to_owned()).collect())
    };
    let mut m = Media::new(MediaType::from_token(kind), port, proto, formats);
    m.port_count = port_count;
    Ok(m)
}

fn payload_type(s: &str, err: SdpError) -> Result<u8, SdpError> {
    let pt: u8 = number(s, err)?;
    if pt > 127 {
        return Err(err);
    }
    Ok(pt)
}

/// RFC 8866 §9 `token`: visible ASCII except a few separators.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~/".contains(&b))
}

/// `a=<attribute-name>[:<attribute-value>]` (RFC 8866 §5.13).
fn parse_attribute(n: usize, value: &str) -> Result<Attribute, SdpError> {
    let (name, val) = match value.split_once(':') {
        Some((name, val)) => (name, Some(val)),
        None => (value, None),
    };
    if !is_token(name) || name.contains('/') {
        return Err(SdpError::Malformed {
            line: n,
            what: "a=",
        });
    }
    let malformed = |what| SdpError::Malformed { line: n, what };
    let typed = match (name, val) {
        ("rtpmap", Some(v)) => parse_rtpmap(v, malformed("a=rtpmap"))?,
        ("fmtp", Some(v)) => parse_fmtp(v, malformed("a=fmtp"))?,
        ("crypto", Some(v)) => Some(Attribute::Crypto(parse_crypto(v, malformed("a=crypto"))?)),
        ("rtcp", Some(v)) => Some(Attribute::Rtcp(parse_rtcp(v, malformed("a=rtcp"))?)),
        ("rtcp-mux", None) => Some(Attribute::RtcpMux),
        ("ptime", Some(v)) => v.parse().ok().map(Attribute::Ptime),
        ("maxptime", Some(v)) => v.parse().ok().map(Attribute::Maxptime),
        ("rtpmap" | "fmtp" | "crypto" | "rtcp", None) => return Err(malformed("a=")),
        (d, None) => Direction::from_name(d).map(Attribute::Direction),
        ("rtcp-mux" | "sendrecv" | "sendonly" | "recvonly" | "inactive", Some(_)) => {
            return Err(malformed("a="))
        }
        _ => None,
    };
    Ok(typed.unwrap_or_else(|| {
        Attribute::Other(RawAttribute {
            name: name.to_owned(),
            value: val.map(str::to_owned),
        })
    }))
}

/// `<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`;
/// `None` (kept raw) when the format is not a payload type.
fn parse_rtpmap(v: &str, err: SdpError) -> Result<Option<Attribute>, SdpError> {
    let (pt, rest) = v.split_once(' ').ok_or(err)?;
    if !pt.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let mut parts = rest.trim_start_matches(' ').splitn(3, '/');
    let encoding = parts.next().filter(|e| is_token(e)).ok_or(err)?;
    let clock_rate = number(parts.next().ok_or(err)?, err)?;
    let params = match parts.next() {
        Some(p) if !p.is_empty() && !p.contains(' ') => Some(p.to_owned()),
        Some(_) => return Err(err),
        None => None,
    };
    Ok(Some(Attribute::Rtpmap(Rtpmap {
        payload_type: payload_type(pt, err)?,
        encoding: encoding.to_owned(),
        clock_rate,
        params,
    })))
}

/// `<format> <format specific parameters>`; `None` (kept raw) when the
/// format is not a payload type.
fn parse_fmtp(v: &str, err: SdpError) -> Result<Option<Attribute>, SdpError> {
    let (pt, params) = v.split_once(' ').ok_or(err)?;
    if !pt.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let params = params.trim_start_matches(' ');
    if params.is_empty() {
        return Err(err);
    }
    Ok(Some(Attribute::Fmtp(Fmtp {
        payload_type: payload_type(pt, err)?,
        params: params.to_owned(),
    })))
}

/// RFC 4568 §9.1: `<tag> <crypto-suite> <key-params> *(<session-param>)`,
/// tag = 1*9DIGIT.
fn parse_crypto(v: &str, err: SdpError) -> Result<Crypto, SdpError> {
    let mut f = fields(v);
    let (Some(tag), Some(suite), Some(key_params)) = (f.next(), f.next(), f.next()) else {
        return Err(err);
    };
    if tag.len() > 9 {
        return Err(err);
    }
    let tag = number(tag, err)?;
    if !suite
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(err);
    }
    let session_params: Vec<String> = f.map(str::to_owned).collect();
    Ok(Crypto::new(
        tag,
        suite,
        Zeroizing::new(key_params.to_owned()),
        session_params,
    ))
}

/// RFC 3605 §2.1: `<port> [<nettype> <addrtype> <connection-address>]`.
fn parse_rtcp(v: &str, err: SdpError) -> Result<Rtcp, SdpError> {
    let f: Vec<&str> = fields(v).collect();
    match f[..] {
        [port] => Ok(Rtcp {
            port: number(port, err)?,
            connection: None,
        }),
        [port, net, addr_type, address] => Ok(Rtcp {
            port: number(port, err)?,
            connection: Some(connection(net, addr_type, address, err)?),
        }),
        _ => Err(err),
    }
}
