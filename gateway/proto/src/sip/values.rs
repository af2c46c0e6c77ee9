//! Typed header values: name-addr, Via, CSeq, media types, session timers
//! and generic parameters (RFC 3261 §20 and §25.1, RFC 4028, RFC 3325).
//!
//! Each `parse_*` function reads one value from a [`Cursor`] over an
//! unfolded header value and returns `None` if the grammar is not met;
//! the caller turns that into [`super::ParseError::BadHeader`].

use std::net::IpAddr;

use super::grammar::{
    is_alphanum, is_token, is_token_str, is_wsp, push_safe, quote_into, unquote, Cursor,
};
use super::message::Method;
use super::uri::{parse_port, parse_v4, Host, Uri};

/// A header parameter (`generic-param`, RFC 3261 §25.1).
///
/// The value is kept as written: a token, a host, or a quoted-string with
/// its quotes, so that printing gives the same text back. Build one with
/// [`Param::new`], which checks that grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    name: String,
    value: Option<String>,
}

impl Param {
    /// A parameter `name[=value]`; `None` unless `name` is a token and
    /// `value` a token, quoted-string or IPv6 reference.
    pub fn new(name: &str, value: Option<&str>) -> Option<Param> {
        let p = Param {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        };
        let mut text = String::new();
        write_params(&mut text, core::slice::from_ref(&p));
        let mut c = Cursor::new(&text);
        let parsed = parse_params(&mut c)?;
        (c.is_empty() && parsed.len() == 1 && parsed[0] == p).then_some(p)
    }

    /// The parameter name (compare case-insensitively).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value as written (quoted-strings keep their quotes).
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The value with quotes and quoted-pairs resolved.
    pub fn unquoted_value(&self) -> Option<String> {
        self.value.as_deref().map(|v| {
            if v.starts_with('"') {
                unquote(v)
            } else {
                v.to_owned()
            }
        })
    }
}

/// A parameter by name (case-insensitive): `Some(None)` if present
/// without a value.
pub fn find<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

/// `*( SEMI generic-param )`; `gen-value = token / host / quoted-string`.
pub(crate) fn parse_params(c: &mut Cursor<'_>) -> Option<Vec<Param>> {
    let mut params = Vec::new();
    while c.eat_sep(b';') {
        let name = c.token()?.to_owned();
        let value = if c.eat_sep(b'=') {
            let v = match c.peek()? {
                b'"' => c.quoted_raw()?,
                b'[' => {
                    let from_bracket = c.rest();
                    let v = c.take_while(|b| b != b']');
                    if !c.eat(b']') {
                        return None;
                    }
                    v.get(1..)?.parse::<std::net::Ipv6Addr>().ok()?;
                    from_bracket.get(..=v.len())?
                }
                // RFC 3261 §20.42 writes `received` IPv6 addresses
                // without brackets (RFC 5118 §4.5).
                _ if name.eq_ignore_ascii_case("received") => {
                    let v = c.take_while(|b| is_token(b) || b == b':');
                    (!v.is_empty()).then_some(v)?
                }
                _ => c.token()?,
            };
            Some(v.to_owned())
        } else {
            None
        };
        params.push(Param { name, value });
    }
    Some(params)
}

pub(crate) fn write_params(out: &mut String, params: &[Param]) {
    for p in params {
        out.push(';');
        push_safe(out, &p.name);
        if let Some(v) = &p.value {
            out.push('=');
            push_safe(out, v);
        }
    }
}

/// `name-addr` or `addr-spec` with parameters: the value of From, To,
/// Contact, Route, Record-Route and P-Asserted-Identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted (`"J Rosenberg \\\""` is `J Rosenberg \"`).
    pub display_name: Option<String>,
    /// The address.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, `lr` is a URI param).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        find(&self.params, "tag").flatten()
    }

    /// A header parameter by name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find(&self.params, name)
    }

    /// Always prints the name-addr form (`<uri>`), which is unambiguous
    /// whatever the URI holds (RFC 3261 §20.10).
    pub(crate) fn write(&self, out: &mut String) {
        if let Some(d) = &self.display_name {
            quote_into(out, d);
            out.push(' ');
        }
        out.push('<');
        self.uri.write(out);
        out.push('>');
        write_params(out, &self.params);
    }
}

/// `( name-addr / addr-spec ) *( SEMI generic-param )`.
///
/// In the addr-spec form the URI ends at the first `;`, `,` or whitespace,
/// and may not contain `?` (RFC 3261 §20.10; RFC 4475 §3.1.2.13 rejects an
/// escaped header outside `<>`). `require_brackets` demands the name-addr
/// form (Route, Record-Route).
pub(crate) fn parse_name_addr(c: &mut Cursor<'_>, require_brackets: bool) -> Option<NameAddr> {
    c.skip_ws();
    let start = c.clone();
    let display_name = if c.peek() == Some(b'"') {
        let raw = c.quoted_raw()?;
        c.skip_ws();
        if c.peek() != Some(b'<') {
            return None;
        }
        Some(unquote(raw))
    } else {
        // display-name = *(token LWS): tokens up to `<`.
        let mut words = Vec::new();
        loop {
            let t = c.take_while(is_token);
            if t.is_empty() {
                break;
            }
            words.push(t);
            c.skip_ws();
        }
        if c.peek() == Some(b'<') {
            (!words.is_empty()).then(|| words.join(" "))
        } else {
            if require_brackets {
                return None;
            }
            *c = start;
            let raw = c.take_while(|b| !is_wsp(b) && b != b';' && b != b',');
            if raw.contains('?') {
                return None;
            }
            let uri = Uri::parse(raw).ok()?;
            let params = parse_params(c)?;
            return Some(NameAddr {
                display_name: None,
                uri,
                params,
            });
        }
    };
    if !c.eat(b'<') {
        return None;
    }
    // LAQUOT/RAQUOT allow no whitespace inside the brackets (RFC 4475
    // §3.1.2.14); Uri::parse refuses any.
    let raw = c.take_while(|b| b != b'>');
    if !c.eat(b'>') {
        return None;
    }
    let uri = Uri::parse(raw).ok()?;
    let params = parse_params(c)?;
    Some(NameAddr {
        display_name,
        uri,
        params,
    })
}

/// The transport of a Via (RFC 3261 §20.42 `transport`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// TLS over SCTP.
    TlsSctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
    /// Any other token, as written (RFC 4475 §3.1.1.10 `UNKNOWN`).
    Other(String),
}

impl Transport {
    fn from_token(t: &str) -> Transport {
        const KNOWN: [(&str, Transport); 7] = [
            ("UDP", Transport::Udp),
            ("TCP", Transport::Tcp),
            ("TLS", Transport::Tls),
            ("SCTP", Transport::Sctp),
            ("TLS-SCTP", Transport::TlsSctp),
            ("WS", Transport::Ws),
            ("WSS", Transport::Wss),
        ];
        KNOWN
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(t))
            .map_or_else(|| Transport::Other(t.to_owned()), |(_, tr)| tr.clone())
    }

    /// The token as printed.
    pub fn as_str(&self) -> &str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::TlsSctp => "TLS-SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        }
    }
}

/// One Via value (RFC 3261 §20.42): `SIP/2.0/transport sent-by;params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// Transport.
    pub transport: Transport,
    /// Host of `sent-by`.
    pub host: Host,
    /// Port of `sent-by`.
    pub port: Option<u16>,
    /// Parameters; `branch`, `received`, `rport`, `maddr` and `ttl` are
    /// checked when parsed.
    pub params: Vec<Param>,
}

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl Via {
    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        find(&self.params, "branch").flatten()
    }

    /// True if the branch starts with the magic cookie *and* carries an
    /// identifier after it (RFC 4475 §3.2.1: `z9hG4bK` alone is not an
    /// RFC 3261 transaction id).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` address (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<IpAddr> {
        find(&self.params, "received").flatten().and_then(parse_ip)
    }

    /// `rport` (RFC 3581): `Some(None)` when present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        find(&self.params, "rport").map(|v| v.and_then(|p| parse_port(p).ok()))
    }

    /// The `maddr` host.
    pub fn maddr(&self) -> Option<Host> {
        find(&self.params, "maddr")
            .flatten()
            .and_then(|h| Host::parse(h).ok())
    }

    /// The `ttl`.
    pub fn ttl(&self) -> Option<u8> {
        find(&self.params, "ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }

    pub(crate) fn write(&self, out: &mut String) {
        out.push_str("SIP/2.0/");
        push_safe(out, self.transport.as_str());
        out.push(' ');
        self.host.write(out);
        if let Some(p) = self.port {
            out.push(':');
            out.push_str(&p.to_string());
        }
        write_params(out, &self.params);
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
    match inner {
        Some(v6) => v6.parse().ok().map(IpAddr::V6),
        None if s.contains(':') => s.parse().ok().map(IpAddr::V6),
        None => parse_v4(s).ok().map(IpAddr::V4),
    }
}

/// `via-parm = sent-protocol LWS sent-by *( SEMI via-params )`.
pub(crate) fn parse_via(c: &mut Cursor<'_>) -> Option<Via> {
    c.skip_ws();
    if !c.token()?.eq_ignore_ascii_case("SIP") || !c.eat_sep(b'/') {
        return None;
    }
    if c.token()? != "2.0" || !c.eat_sep(b'/') {
        return None;
    }
    let transport = Transport::from_token(c.token()?);
    if !c.skip_ws() {
        return None;
    }
    let host_raw = if c.peek() == Some(b'[') {
        let h = c.take_while(|b| b != b']');
        if !c.eat(b']') {
            return None;
        }
        format!("{h}]")
    } else {
        c.take_while(|b| is_alphanum(b) || b == b'-' || b == b'.')
            .to_owned()
    };
    let host = Host::parse(&host_raw).ok()?;
    let port = if c.eat_sep(b':') {
        Some(parse_port(c.take_while(|b| b.is_ascii_digit())).ok()?)
    } else {
        None
    };
    let params = parse_params(c)?;
    let via = Via {
        transport,
        host,
        port,
        params,
    };
    // The typed parameters must parse (RFC 3261 §20.42, RFC 3581).
    for p in &via.params {
        let v = p.value();
        let ok = match p.name.to_ascii_lowercase().as_str() {
            "branch" => v.is_some_and(is_token_str),
            "received" => v.and_then(parse_ip).is_some(),
            "ttl" => v.is_some_and(|t| t.len() <= 3 && t.parse::<u8>().is_ok()),
            "maddr" => v.is_some_and(|h| Host::parse(h).is_ok()),
            "rport" => v.is_none_or(|p| parse_port(p).is_ok()),
            _ => true,
        };
        if !ok {
            return None;
        }
    }
    Some(via)
}

/// CSeq (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2^31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

/// Largest CSeq number plus one (RFC 3261 §8.1.1.5).
pub const CSEQ_LIMIT: u32 = 1 << 31;

pub(crate) fn parse_cseq(c: &mut Cursor<'_>) -> Option<CSeq> {
    c.skip_ws();
    let seq = parse_number(c.take_while(|b| b.is_ascii_digit()))?;
    if seq >= CSEQ_LIMIT || !c.skip_ws() {
        return None;
    }
    let method = Method::from_token(c.token()?).ok()?;
    Some(CSeq { seq, method })
}

/// `1*DIGIT` into a u32 (leading zeros allowed, RFC 4475 §3.1.1.1).
pub(crate) fn parse_number(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.len() > 10 {
        return None;
    }
    if trimmed.is_empty() {
        return Some(0);
    }
    trimmed.parse().ok()
}

/// A media type (RFC 3261 §20.15 `media-type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaType {
    /// Type, e.g. `application` (compare case-insensitively).
    pub mtype: String,
    /// Subtype, e.g. `sdp`.
    pub subtype: String,
    /// Parameters (each with a value).
    pub params: Vec<Param>,
}

impl MediaType {
    /// True for `application/sdp`.
    pub fn is_sdp(&self) -> bool {
        self.mtype.eq_ignore_ascii_case("application") && self.subtype.eq_ignore_ascii_case("sdp")
    }

    pub(crate) fn write(&self, out: &mut String) {
        push_safe(out, &self.mtype);
        out.push('/');
        push_safe(out, &self.subtype);
        write_params(out, &self.params);
    }
}

pub(crate) fn parse_media_type(c: &mut Cursor<'_>) -> Option<MediaType> {
    c.skip_ws();
    let mtype = c.token()?.to_owned();
    if !c.eat_sep(b'/') {
        return None;
    }
    let subtype = c.token()?.to_owned();
    let params = parse_params(c)?;
    if params.iter().any(|p| p.value.is_none()) {
        return None;
    }
    Some(MediaType {
        mtype,
        subtype,
        params,
    })
}

/// The Contact header value (RFC 3261 §20.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact {
    /// `*`: all bindings (REGISTER only, RFC 3261 §10.2.2).
    Wildcard,
    /// One or more addresses.
    Addresses(Vec<NameAddr>),
}

/// Who refreshes a session (RFC 4028 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresher {
    /// The UAC.
    Uac,
    /// The UAS.
    Uas,
}

/// Session-Expires (RFC 4028 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionExpires {
    /// Session interval in seconds.
    pub delta: u32,
    /// Parameters; `refresher` is checked when parsed.
    pub params: Vec<Param>,
}

impl SessionExpires {
    /// The `refresher` parameter.
    pub fn refresher(&self) -> Option<Refresher> {
        match find(&self.params, "refresher").flatten() {
            Some(v) if v.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(v) if v.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            _ => None,
        }
    }
}

/// `delta-seconds *( SEMI param )`, shared by Session-Expires and Min-SE.
pub(crate) fn parse_delta_params(c: &mut Cursor<'_>) -> Option<(u32, Vec<Param>)> {
    c.skip_ws();
    let delta = parse_number(c.take_while(|b| b.is_ascii_digit()))?;
    let params = parse_params(c)?;
    Some((delta, params))
}

pub(crate) fn parse_session_expires(c: &mut Cursor<'_>) -> Option<SessionExpires> {
    let (delta, params) = parse_delta_params(c)?;
    let se = SessionExpires { delta, params };
    match find(&se.params, "refresher") {
        None => Some(se),
        Some(_) => se.refresher().map(|_| se.clone()),
    }
}

/// A comma-separated list `item *(COMMA item)`; with `allow_empty`, an
/// empty value is an empty list (Supported, RFC 3261 §20.37).
pub(crate) fn parse_list<T>(
    value: &str,
    allow_empty: bool,
    mut item: impl FnMut(&mut Cursor<'_>) -> Option<T>,
) -> Option<Vec<T>> {
    let mut c = Cursor::new(value);
    c.skip_ws();
    let mut out = Vec::new();
    if c.is_empty() {
        return allow_empty.then_some(out);
    }
    loop {
        out.push(item(&mut c)?);
        if !c.eat_sep(b',') {
            break;
        }
    }
    c.skip_ws();
    c.is_empty().then_some(out)
}

/// Parses all of `value` with `f` (trailing whitespace allowed).
pub(crate) fn parse_all<T>(value: &str, f: impl FnOnce(&mut Cursor<'_>) -> Option<T>) -> Option<T> {
    let mut c = Cursor::new(value);
    let v = f(&mut c)?;
    c.skip_ws();
    c.is_empty().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &str) -> Option<NameAddr> {
        parse_all(s, |c| parse_name_addr(c, false))
    }

    #[test]
    fn name_addr_forms() {
        let n =
            na(r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#).unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = na("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n = na("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>").unwrap();
        assert_eq!(
            n.display_name.as_deref(),
            Some("token1~` token2'+_ token3*%!.-")
        );
        let n = na("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(n.param("unknownparam"), Some(None));
        assert!(n.uri.param("unknownparam").is_none());
        assert!(na("isbn:2983792873").is_some());
        for bad in [
            r#""Watson, Thomas" < sip:t.watson@example.org >"#,
            "Watson, Thomas <sip:t.watson@example.org>",
            r#""Mr. J. User <sip:j.user@example.com>"#,
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b>;;",
            "<sip:a@b>;",
            "<sip:a@b",
            "<sip:a@b>;x=\"open",
        ] {
            assert!(na(bad).is_none(), "{bad} accepted");
        }
    }

    #[test]
    fn via_forms() {
        let vias = parse_list(
            "SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
            false,
            parse_via,
        )
        .unwrap();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].transport, Transport::Tcp);
        assert_eq!(vias[1].branch(), Some("z9hG4bK30239"));
        let v = parse_all(
            "SIP/2.0/UDP [2001:db8::9]:5070;rport=5070;received=192.0.2.1;maddr=224.2.0.1;ttl=16",
            parse_via,
        )
        .unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(Some(5070)));
        assert_eq!(v.received(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(v.ttl(), Some(16));
        assert!(v.maddr().is_some());
        let v = parse_all("SIP/2.0/TCP [2001:db8::9];received=2001:db8::9", parse_via).unwrap();
        assert_eq!(v.received(), Some("2001:db8::9".parse().unwrap()));
        let v = parse_all("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK", parse_via).unwrap();
        assert!(!v.has_rfc3261_branch());
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/7.0/UDP c.example.com",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host;ttl=300",
            "SIP/2.0/UDP host;received=host.example.com",
            "SIP/2.0/UDP host;branch",
            "SIP/2.0/UDP host:99999",
        ] {
            assert!(
                parse_list(bad, false, parse_via).is_none(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn cseq_and_numbers() {
        let c = parse_all("0009\r\n INVITE".replace("\r\n", "").as_str(), parse_cseq).unwrap();
        assert_eq!(c.seq, 9);
        assert!(parse_all("36893488147419103232 REGISTER", parse_cseq).is_none());
        assert!(parse_all("2147483648 INVITE", parse_cseq).is_none());
        assert!(parse_all("2147483647 INVITE", parse_cseq).is_some());
        assert_eq!(parse_number("00000000000000000068"), Some(68));
        assert_eq!(parse_number("4294967296"), None);
    }

    #[test]
    fn params_keep_their_text() {
        let mut c = Cursor::new(";a=\"x y\";b;c=[::1];d=tok");
        let p = parse_params(&mut c).unwrap();
        let mut out = String::new();
        write_params(&mut out, &p);
        assert_eq!(out, ";a=\"x y\";b;c=[::1];d=tok");
        assert_eq!(p[0].unquoted_value().as_deref(), Some("x y"));
        assert!(Param::new("tag", Some("abc")).is_some());
        assert!(Param::new("tag", Some("a\r\nX: y")).is_none());
        assert!(Param::new("", None).is_none());
    }
}
