//! URIs: SIP and SIPS (RFC 3261 §19.1), tel (RFC 3966), and other absolute
//! URIs kept opaque (RFC 3261 §25.1 `absoluteURI`).
//!
//! Components of SIP URIs are stored **unescaped** (`%75se%72` is `user`),
//! once, never recursively (RFC 4475 §3.1.1.3: `v%61lue%25%34%31` is
//! `value%41`). Printing escapes whatever the component's grammar does not
//! allow unescaped, so `parse(print(u)) == u`.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::grammar::{
    escape_into, is_alphanum, is_escaped_text, is_hnv, is_paramchar, is_password, is_uric, is_user,
    push_safe, unescape,
};

/// Why a URI was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Not `scheme ":" ...`, or a character outside the URI grammar.
    #[error("malformed URI")]
    Malformed,
    /// A malformed host, IP address or port.
    #[error("malformed host or port")]
    BadHost,
    /// A scheme other than sip, sips or tel where only those are usable
    /// (the Request-URI; RFC 3261 §8.2.2.1 answers 416).
    #[error("unsupported URI scheme")]
    UnsupportedScheme,
}

/// A URI as found in a Request-URI or a name-addr.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Uri {
    /// `sip:` or `sips:` (RFC 3261 §19.1).
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other absolute URI, kept as written. RFC 4475 §3.3.4 requires
    /// parsers to accept these in To, From and Contact; dialgate never
    /// routes to them.
    Other(OtherUri),
}

/// A `sip:` or `sips:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The unescaped user part (may hold `;`, RFC 4475 §3.1.1.9).
    pub user: Option<String>,
    /// The unescaped password. Parsed because the grammar allows it (RFC
    /// 4475 §3.1.1.2); RFC 3261 §19.1.1 says NOT RECOMMENDED and dialgate
    /// never uses it.
    pub password: Option<String>,
    /// Host name or IP address.
    pub host: Host,
    /// Explicit port.
    pub port: Option<u16>,
    /// `uri-parameters`, unescaped, in order.
    pub params: Vec<UriParam>,
    /// `headers` (`?name=value&...`), unescaped, in order.
    pub headers: Vec<(String, String)>,
}

/// A `tel:` URI (RFC 3966 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelUri {
    /// The telephone-subscriber number as written (digits, `+`, visual
    /// separators, `*`, `#`, hex digits for local numbers).
    pub number: String,
    /// Parameters (`phone-context`, `ext`, ...), unescaped.
    pub params: Vec<UriParam>,
}

/// An absolute URI with a scheme dialgate does not interpret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherUri {
    /// The scheme as written.
    pub scheme: String,
    /// Everything after the `:`, as written (escapes kept).
    pub rest: String,
}

/// A URI parameter; `name` and `value` are unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriParam {
    /// Parameter name (compare case-insensitively).
    pub name: String,
    /// Value, if any (`;lr` has none).
    pub value: Option<String>,
}

/// The host of a SIP URI or Via sent-by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A host name (compare case-insensitively).
    Domain(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference (written in brackets).
    V6(Ipv6Addr),
}

impl Uri {
    /// Parses a URI that occupies all of `s` (no surrounding `<>`).
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let (scheme, rest) = s.split_once(':').ok_or(UriError::Malformed)?;
        if !is_scheme(scheme) {
            return Err(UriError::Malformed);
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_rest(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_rest(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_rest(rest).map(Uri::Tel)
        } else if !rest.is_empty() && is_escaped_text(rest, is_uric) {
            Ok(Uri::Other(OtherUri {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            }))
        } else {
            Err(UriError::Malformed)
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// A parameter by name (case-insensitive): `Some(None)` for a parameter
    /// without value. Opaque URIs have none.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        let params = match self {
            Uri::Sip(u) => &u.params,
            Uri::Tel(t) => &t.params,
            Uri::Other(_) => return None,
        };
        find_param(params, name)
    }

    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Uri::Sip(u) => u.write(out),
            Uri::Tel(t) => t.write(out),
            Uri::Other(o) => {
                push_safe(out, &o.scheme);
                out.push(':');
                push_safe(out, &o.rest);
            }
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s);
        f.write_str(&s)
    }
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

pub(crate) fn find_param<'a>(params: &'a [UriParam], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

impl SipUri {
    /// Parses `sip:`/`sips:` URI text after the scheme's colon.
    fn parse_rest(rest: &str, secure: bool) -> Result<SipUri, UriError> {
        // `@` cannot occur unescaped anywhere but after the userinfo, so
        // the first one ends it (RFC 3261 §19.1.1 / §25.1).
        let (userinfo, after) = match rest.split_once('@') {
            Some((ui, after)) => (Some(ui), after),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(UriError::Malformed);
                }
                let user = unescape(u, is_user).ok_or(UriError::Malformed)?;
                let password = match p {
                    Some(p) => Some(unescape(p, is_password).ok_or(UriError::Malformed)?),
                    None => None,
                };
                (Some(user), password)
            }
        };
        let (hostport_params, headers_raw) = match after.split_once('?') {
            Some((a, h)) => (a, Some(h)),
            None => (after, None),
        };
        let mut parts = hostport_params.split(';');
        let hostport = parts.next().unwrap_or("");
        let (host, port) = parse_hostport(hostport)?;
        let params = parts
            .map(|p| parse_uri_param(p, is_paramchar))
            .collect::<Result<Vec<_>, _>>()?;
        let mut headers = Vec::new();
        if let Some(h) = headers_raw {
            for pair in h.split('&') {
                let (n, v) = pair.split_once('=').ok_or(UriError::Malformed)?;
                if n.is_empty() {
                    return Err(UriError::Malformed);
                }
                let n = unescape(n, is_hnv).ok_or(UriError::Malformed)?;
                let v = unescape(v, is_hnv).ok_or(UriError::Malformed)?;
                headers.push((n, v));
            }
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// A URI parameter by name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str(if self.secure { "sips:" } else { "sip:" });
        if let Some(user) = &self.user {
            escape_into(out, user, is_user);
            if let Some(pw) = &self.password {
                out.push(':');
                escape_into(out, pw, is_password);
            }
            out.push('@');
        }
        self.host.write(out);
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        write_uri_params(out, &self.params);
        for (i, (n, v)) in self.headers.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            escape_into(out, n, is_hnv);
            out.push('=');
            escape_into(out, v, is_hnv);
        }
    }
}

fn write_uri_params(out: &mut String, params: &[UriParam]) {
    for p in params {
        out.push(';');
        escape_into(out, &p.name, is_paramchar);
        if let Some(v) = &p.value {
            out.push('=');
            escape_into(out, v, is_paramchar);
        }
    }
}

/// `pname [ "=" pvalue ]`, unescaped; the name must not be empty.
fn parse_uri_param(p: &str, allowed: fn(u8) -> bool) -> Result<UriParam, UriError> {
    let (n, v) = match p.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (p, None),
    };
    if n.is_empty() || v.is_some_and(str::is_empty) {
        return Err(UriError::Malformed);
    }
    let name = unescape(n, allowed).ok_or(UriError::Malformed)?;
    let value = match v {
        Some(v) => Some(unescape(v, allowed).ok_or(UriError::Malformed)?),
        None => None,
    };
    Ok(UriParam { name, value })
}

/// `hostport = host [ ":" port ]`.
pub(crate) fn parse_hostport(s: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        let (v6, after) = inner.split_once(']').ok_or(UriError::BadHost)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UriError::BadHost)?),
        };
        (Host::parse_v6(v6)?, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (Host::parse(h)?, Some(p)),
            None => (Host::parse(s)?, None),
        }
    };
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    Ok((host, port))
}

/// `port = 1*DIGIT`, at most 65535.
pub(crate) fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::BadHost);
    }
    p.parse().map_err(|_| UriError::BadHost)
}

impl Host {
    /// Parses a host name, IPv4 address or bracketed IPv6 reference.
    pub fn parse(s: &str) -> Result<Host, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            return Host::parse_v6(inner.strip_suffix(']').ok_or(UriError::BadHost)?);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return parse_v4(s).map(Host::V4);
        }
        if is_hostname(s) {
            Ok(Host::Domain(s.to_owned()))
        } else {
            Err(UriError::BadHost)
        }
    }

    fn parse_v6(s: &str) -> Result<Host, UriError> {
        // `IPv6address` (RFC 3261 §25.1) has no zone identifier.
        if s.contains('%') {
            return Err(UriError::BadHost);
        }
        s.parse().map(Host::V6).map_err(|_| UriError::BadHost)
    }

    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Host::Domain(d) => push_safe(out, d),
            Host::V4(a) => out.push_str(&a.to_string()),
            Host::V6(a) => {
                out.push('[');
                out.push_str(&a.to_string());
                out.push(']');
            }
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s);
        f.write_str(&s)
    }
}

/// `IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT`, each
/// at most 255 (leading zeros allowed, unlike `Ipv4Addr::from_str`).
pub(crate) fn parse_v4(s: &str) -> Result<Ipv4Addr, UriError> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let p = parts.next().ok_or(UriError::BadHost)?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UriError::BadHost);
        }
        *o = p.parse().map_err(|_| UriError::BadHost)?;
    }
    if parts.next().is_some() {
        return Err(UriError::BadHost);
    }
    Ok(Ipv4Addr::from(octets))
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]` with
/// `domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum` and a
/// `toplabel` starting with a letter (RFC 3261 §25.1).
fn is_hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter().all(|&c| is_alphanum(c) || c == b'-')
            && b.first().is_some_and(|&c| is_alphanum(c))
            && b.last().is_some_and(|&c| is_alphanum(c))
    };
    labels.iter().all(|l| label_ok(l))
        && labels
            .last()
            .and_then(|l| l.bytes().next())
            .is_some_and(|c| c.is_ascii_alphabetic())
}

impl TelUri {
    fn parse_rest(rest: &str) -> Result<TelUri, UriError> {
        let mut parts = rest.split(';');
        let number = parts.next().unwrap_or("");
        let valid = if let Some(digits) = number.strip_prefix('+') {
            // global-number-digits: "+" *phonedigit DIGIT *phonedigit
            digits.bytes().any(|b| b.is_ascii_digit())
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'(' | b')'))
        } else {
            // local-number-digits: *phonedigit-hex (HEXDIG / "*" / "#") ...
            number
                .bytes()
                .any(|b| b.is_ascii_hexdigit() || matches!(b, b'*' | b'#'))
                && number.bytes().all(|b| {
                    b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')')
                })
        };
        if !valid {
            return Err(UriError::Malformed);
        }
        let params = parts
            .map(|p| parse_uri_param(p, is_paramchar))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TelUri {
            number: number.to_owned(),
            params,
        })
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str("tel:");
        push_safe(out, &self.number);
        write_uri_params(out, &self.params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn round_trip(s: &str) {
        let u = Uri::parse(s).unwrap();
        let printed = u.to_string();
        assert_eq!(Uri::parse(&printed).unwrap(), u, "{s} -> {printed}");
    }

    #[test]
    fn escapes_are_decoded_once() {
        // RFC 4475 §3.1.1.3.
        let u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert_eq!(u.user.as_deref(), Some("caller"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.param("name"), Some(Some("value%41")));
        assert_eq!(
            u.to_string_for_test(),
            "sip:caller@host5.example.net;lr;name=value%2541"
        );
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(u.user.as_deref(), Some("null-\0-null"));
        round_trip("sip:null-%00-null@example.com");
    }

    impl SipUri {
        fn to_string_for_test(&self) -> String {
            let mut s = String::new();
            self.write(&mut s);
            s
        }
    }

    #[test]
    fn userinfo_with_semicolons_and_password() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u@example.net"));
        assert_eq!(u.host, Host::Domain("example.com".into()));
        round_trip("sip:user;par=u%40example.net@example.com");
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
    }

    #[test]
    fn hosts_ports_and_headers() {
        let u = sip("sips:[2001:db8::1]:5061;transport=tls?Route=%3Csip:example.com%3E");
        assert!(u.secure);
        assert_eq!(u.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(
            u.headers,
            vec![("Route".into(), "<sip:example.com>".into())]
        );
        round_trip("sips:[2001:db8::1]:5061;transport=tls?Route=%3Csip:example.com%3E");
        assert_eq!(sip("sip:010.0.0.1").host, Host::V4([10, 0, 0, 1].into()));
        assert_eq!(
            sip("sip:gw1.example.net.").host,
            Host::Domain("gw1.example.net.".into())
        );
        for bad in [
            "sip:",
            "sip:@example.com",
            "sip:host:70000",
            "sip:256.1.1.1",
            "sip:1.2.3",
            "sip:[::1",
            "sip:[fe80::1%eth0]",
            "sip:-bad.example.com",
            "sip:a b@example.com",
            "sip:host;",
            "sip:host;a=",
            "sip:host?x",
            "sip:u@h@h",
            "<sip:a@b>",
            "sip:a@b:",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tel_and_other_schemes() {
        let Ok(Uri::Tel(t)) = Uri::parse("tel:+1-201-555-0123;ext=1") else {
            panic!()
        };
        assert_eq!(t.number, "+1-201-555-0123");
        round_trip("tel:+1-201-555-0123;ext=1");
        round_trip("tel:7042;phone-context=example.com");
        assert!(Uri::parse("tel:+").is_err());
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Other(_))
        ));
        round_trip("isbn:2983792873");
        assert!(Uri::parse("1abc:x").is_err());
        assert!(Uri::parse("http://a b").is_err());
        assert!(Uri::parse("name:").is_err());
    }
}
