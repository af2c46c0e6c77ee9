//! Header field names (with RFC 3261 §7.3.3 compact forms) and header
//! fields, typed for the ones dialgate acts on and raw for the others.

use core::fmt;

use super::error::ParseError;
use super::grammar::{is_token_str, is_word, push_safe, Cursor};
use super::values::{
    parse_all, parse_cseq, parse_delta_params, parse_list, parse_media_type, parse_name_addr,
    parse_number, parse_session_expires, parse_via, write_params, CSeq, Contact, MediaType,
    NameAddr, Param, SessionExpires, Via,
};

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident = $canon:literal, $compact:expr; )*) => {
        /// A header field name. Known names (matched case-insensitively,
        /// compact forms included) have a variant and print in their
        /// canonical long form; any other token is kept as written.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// Any other header field name (a token), as written.
            Other(String),
        }

        const KNOWN: &[(HeaderName, &str, Option<u8>)] = &[
            $( (HeaderName::$variant, $canon, $compact), )*
        ];

        impl HeaderName {
            /// The canonical long name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(s) => s,
                }
            }
        }
    };
}

header_names! {
    /// Via (compact `v`).
    Via = "Via", Some(b'v');
    /// From (compact `f`).
    From = "From", Some(b'f');
    /// To (compact `t`).
    To = "To", Some(b't');
    /// Call-ID (compact `i`).
    CallId = "Call-ID", Some(b'i');
    /// CSeq.
    CSeq = "CSeq", None;
    /// Contact (compact `m`).
    Contact = "Contact", Some(b'm');
    /// Max-Forwards.
    MaxForwards = "Max-Forwards", None;
    /// Route.
    Route = "Route", None;
    /// Record-Route.
    RecordRoute = "Record-Route", None;
    /// P-Asserted-Identity (RFC 3325).
    PAssertedIdentity = "P-Asserted-Identity", None;
    /// Content-Type (compact `c`).
    ContentType = "Content-Type", Some(b'c');
    /// Content-Length (compact `l`).
    ContentLength = "Content-Length", Some(b'l');
    /// Session-Expires (RFC 4028, compact `x`).
    SessionExpires = "Session-Expires", Some(b'x');
    /// Min-SE (RFC 4028).
    MinSe = "Min-SE", None;
    /// Supported (compact `k`).
    Supported = "Supported", Some(b'k');
    /// Require.
    Require = "Require", None;
    /// Subject (compact `s`).
    Subject = "Subject", Some(b's');
    /// Content-Encoding (compact `e`).
    ContentEncoding = "Content-Encoding", Some(b'e');
    /// Event (RFC 6665, compact `o`).
    Event = "Event", Some(b'o');
    /// Allow-Events (RFC 6665, compact `u`).
    AllowEvents = "Allow-Events", Some(b'u');
    /// Refer-To (RFC 3515, compact `r`).
    ReferTo = "Refer-To", Some(b'r');
    /// Referred-By (RFC 3892, compact `b`).
    ReferredBy = "Referred-By", Some(b'b');
    /// Accept-Contact (RFC 3841, compact `a`).
    AcceptContact = "Accept-Contact", Some(b'a');
    /// Reject-Contact (RFC 3841, compact `j`).
    RejectContact = "Reject-Contact", Some(b'j');
    /// Request-Disposition (RFC 3841, compact `d`).
    RequestDisposition = "Request-Disposition", Some(b'd');
    /// Identity (RFC 8224, compact `y`).
    Identity = "Identity", Some(b'y');
    /// Identity-Info (RFC 4474, compact `n`).
    IdentityInfo = "Identity-Info", Some(b'n');
}

impl HeaderName {
    /// Maps a field name (a token) to its header: case-insensitive, compact
    /// forms to their long names (RFC 3261 §7.3.1, §7.3.3).
    pub fn parse(name: &str) -> Result<HeaderName, ParseError> {
        if !is_token_str(name) {
            return Err(ParseError::BadHeaderName);
        }
        let known = match name.as_bytes() {
            [c] => KNOWN
                .iter()
                .find(|(_, _, compact)| *compact == Some(c.to_ascii_lowercase())),
            _ => KNOWN
                .iter()
                .find(|(_, canon, _)| canon.eq_ignore_ascii_case(name)),
        };
        Ok(known.map_or_else(|| HeaderName::Other(name.to_owned()), |(h, _, _)| h.clone()))
    }

    /// Header fields that may appear at most once (RFC 3261 §7.3.1: only
    /// comma-separated list fields may repeat).
    pub(crate) fn is_single(&self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentType
                | HeaderName::ContentLength
                | HeaderName::SessionExpires
                | HeaderName::MinSe
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header field whose value dialgate does not interpret: kept as the
/// unfolded, trimmed text. Build one with [`RawHeader::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawHeader {
    name: HeaderName,
    value: String,
}

impl RawHeader {
    /// A raw header field; refuses names that have a typed [`Header`]
    /// variant and values with control characters (`TEXT-UTF8` and LWS
    /// only, RFC 3261 §25.1 `header-value`).
    pub fn new(name: HeaderName, value: &str) -> Result<RawHeader, ParseError> {
        if is_typed(&name) {
            return Err(ParseError::BadHeader(name));
        }
        if let HeaderName::Other(n) = &name {
            if !is_token_str(n) {
                return Err(ParseError::BadHeaderName);
            }
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::BadHeader(name));
        }
        Ok(RawHeader {
            name,
            value: value.trim_matches(|c| c == ' ' || c == '\t').to_owned(),
        })
    }

    /// The name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The value, unfolded and trimmed.
    pub fn value(&self) -> &str {
        &self.value
    }
}

fn is_typed(name: &HeaderName) -> bool {
    matches!(
        name,
        HeaderName::Via
            | HeaderName::From
            | HeaderName::To
            | HeaderName::CallId
            | HeaderName::CSeq
            | HeaderName::Contact
            | HeaderName::MaxForwards
            | HeaderName::Route
            | HeaderName::RecordRoute
            | HeaderName::PAssertedIdentity
            | HeaderName::ContentType
            | HeaderName::ContentLength
            | HeaderName::SessionExpires
            | HeaderName::MinSe
            | HeaderName::Supported
            | HeaderName::Require
    )
}

/// One header field line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Header {
    /// Via values of one line, top first.
    Via(Vec<Via>),
    /// From.
    From(NameAddr),
    /// To.
    To(NameAddr),
    /// Call-ID (`word [ "@" word ]`).
    CallId(String),
    /// CSeq.
    CSeq(CSeq),
    /// Contact.
    Contact(Contact),
    /// Max-Forwards (0 to 255).
    MaxForwards(u8),
    /// Route values of one line (name-addr form only).
    Route(Vec<NameAddr>),
    /// Record-Route values of one line (name-addr form only).
    RecordRoute(Vec<NameAddr>),
    /// P-Asserted-Identity values (RFC 3325 §9.1, no parameters).
    PAssertedIdentity(Vec<NameAddr>),
    /// Content-Type.
    ContentType(MediaType),
    /// Content-Length.
    ContentLength(usize),
    /// Session-Expires (RFC 4028).
    SessionExpires(SessionExpires),
    /// Min-SE (RFC 4028): delta-seconds and parameters.
    MinSe(u32, Vec<Param>),
    /// Supported option tags (may be empty).
    Supported(Vec<String>),
    /// Require option tags.
    Require(Vec<String>),
    /// Any other header field.
    Raw(RawHeader),
}

impl Header {
    /// Parses the unfolded `value` of a field named `name`.
    pub fn parse(name: HeaderName, value: &str) -> Result<Header, ParseError> {
        let v = value;
        let parsed = match &name {
            HeaderName::Via => parse_list(v, false, parse_via).map(Header::Via),
            HeaderName::From => parse_all(v, |c| parse_name_addr(c, false)).map(Header::From),
            HeaderName::To => parse_all(v, |c| parse_name_addr(c, false)).map(Header::To),
            HeaderName::CallId => parse_call_id(v).map(Header::CallId),
            HeaderName::CSeq => parse_all(v, parse_cseq).map(Header::CSeq),
            HeaderName::Contact => parse_contact(v).map(Header::Contact),
            HeaderName::MaxForwards => parse_all(v, |c| {
                c.skip_ws();
                parse_number(c.take_while(|b| b.is_ascii_digit()))
                    .and_then(|n| u8::try_from(n).ok())
            })
            .map(Header::MaxForwards),
            HeaderName::Route => {
                parse_list(v, false, |c| parse_name_addr(c, true)).map(Header::Route)
            }
            HeaderName::RecordRoute => {
                parse_list(v, false, |c| parse_name_addr(c, true)).map(Header::RecordRoute)
            }
            HeaderName::PAssertedIdentity => parse_list(v, false, |c| {
                parse_name_addr(c, false).filter(|n| n.params.is_empty())
            })
            .map(Header::PAssertedIdentity),
            HeaderName::ContentType => parse_all(v, parse_media_type).map(Header::ContentType),
            HeaderName::ContentLength => parse_all(v, |c| {
                c.skip_ws();
                parse_number(c.take_while(|b| b.is_ascii_digit()))
            })
            .and_then(|n| usize::try_from(n).ok())
            .map(Header::ContentLength),
            HeaderName::SessionExpires => {
                parse_all(v, parse_session_expires).map(Header::SessionExpires)
            }
            HeaderName::MinSe => parse_all(v, parse_delta_params).map(|(d, p)| Header::MinSe(d, p)),
            HeaderName::Supported => parse_option_tags(v, true).map(Header::Supported),
            HeaderName::Require => parse_option_tags(v, false).map(Header::Require),
            _ => return RawHeader::new(name, value).map(Header::Raw),
        };
        parsed.ok_or(ParseError::BadHeader(name))
    }

    /// The field name.
    pub fn name(&self) -> HeaderName {
        match self {
            Header::Via(_) => HeaderName::Via,
            Header::From(_) => HeaderName::From,
            Header::To(_) => HeaderName::To,
            Header::CallId(_) => HeaderName::CallId,
            Header::CSeq(_) => HeaderName::CSeq,
            Header::Contact(_) => HeaderName::Contact,
            Header::MaxForwards(_) => HeaderName::MaxForwards,
            Header::Route(_) => HeaderName::Route,
            Header::RecordRoute(_) => HeaderName::RecordRoute,
            Header::PAssertedIdentity(_) => HeaderName::PAssertedIdentity,
            Header::ContentType(_) => HeaderName::ContentType,
            Header::ContentLength(_) => HeaderName::ContentLength,
            Header::SessionExpires(_) => HeaderName::SessionExpires,
            Header::MinSe(..) => HeaderName::MinSe,
            Header::Supported(_) => HeaderName::Supported,
            Header::Require(_) => HeaderName::Require,
            Header::Raw(r) => r.name.clone(),
        }
    }

    /// Appends `Name: value\r\n` with the canonical long name.
    pub(crate) fn write(&self, out: &mut String) {
        push_safe(out, self.name().as_str());
        out.push_str(": ");
        match self {
            Header::Via(vias) => join(out, vias, |o, v| v.write(o)),
            Header::From(n) | Header::To(n) => n.write(out),
            Header::CallId(id) => push_safe(out, id),
            Header::CSeq(c) => {
                out.push_str(&c.seq.to_string());
                out.push(' ');
                push_safe(out, c.method.as_str());
            }
            Header::Contact(Contact::Wildcard) => out.push('*'),
            Header::Contact(Contact::Addresses(list))
            | Header::Route(list)
            | Header::RecordRoute(list)
            | Header::PAssertedIdentity(list) => join(out, list, |o, n| n.write(o)),
            Header::MaxForwards(n) => out.push_str(&n.to_string()),
            Header::ContentType(m) => m.write(out),
            Header::ContentLength(n) => out.push_str(&n.to_string()),
            Header::SessionExpires(se) => {
                out.push_str(&se.delta.to_string());
                write_params(out, &se.params);
            }
            Header::MinSe(d, params) => {
                out.push_str(&d.to_string());
                write_params(out, params);
            }
            Header::Supported(tags) | Header::Require(tags) => {
                join(out, tags, |o, t| push_safe(o, t));
            }
            Header::Raw(r) => push_safe(out, &r.value),
        }
        out.push_str("\r\n");
    }
}

fn join<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        f(out, item);
    }
}

/// `callid = word [ "@" word ]` (RFC 3261 §25.1).
fn parse_call_id(v: &str) -> Option<String> {
    let v = v.trim_matches(|c| c == ' ' || c == '\t');
    let (a, b) = match v.split_once('@') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let word = |w: &str| !w.is_empty() && w.bytes().all(is_word);
    (word(a) && b.is_none_or(word)).then(|| v.to_owned())
}

/// `STAR / (contact-param *(COMMA contact-param))`.
fn parse_contact(v: &str) -> Option<Contact> {
    if v.trim_matches(|c| c == ' ' || c == '\t') == "*" {
        return Some(Contact::Wildcard);
    }
    parse_list(v, false, |c| parse_name_addr(c, false)).map(Contact::Addresses)
}

/// `option-tag *(COMMA option-tag)`.
fn parse_option_tags(v: &str, allow_empty: bool) -> Option<Vec<String>> {
    parse_list(v, allow_empty, |c: &mut Cursor<'_>| {
        c.skip_ws();
        c.token().map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_compact_and_case() {
        assert_eq!(HeaderName::parse("v"), Ok(HeaderName::Via));
        assert_eq!(HeaderName::parse("V"), Ok(HeaderName::Via));
        assert_eq!(HeaderName::parse("vIA"), Ok(HeaderName::Via));
        assert_eq!(HeaderName::parse("l"), Ok(HeaderName::ContentLength));
        assert_eq!(HeaderName::parse("x"), Ok(HeaderName::SessionExpires));
        assert_eq!(HeaderName::parse("MIN-se"), Ok(HeaderName::MinSe));
        assert_eq!(
            HeaderName::parse("C%6Fntact"),
            Ok(HeaderName::Other("C%6Fntact".into()))
        );
        assert_eq!(HeaderName::parse("q"), Ok(HeaderName::Other("q".into())));
        assert_eq!(
            HeaderName::parse("Bad Name"),
            Err(ParseError::BadHeaderName)
        );
        assert_eq!(HeaderName::parse(""), Err(ParseError::BadHeaderName));
    }

    #[test]
    fn typed_values() {
        let h = Header::parse(HeaderName::MaxForwards, "0068").unwrap();
        assert_eq!(h, Header::MaxForwards(68));
        assert!(Header::parse(HeaderName::MaxForwards, "300").is_err());
        assert!(Header::parse(HeaderName::ContentLength, "-999").is_err());
        assert_eq!(
            Header::parse(HeaderName::Supported, ""),
            Ok(Header::Supported(vec![]))
        );
        assert!(Header::parse(HeaderName::Require, "").is_err());
        assert!(Header::parse(HeaderName::CallId, "a b").is_err());
        assert!(Header::parse(
            HeaderName::CallId,
            "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
        )
        .is_ok());
        assert!(Header::parse(HeaderName::Route, "sip:no-brackets@example.com").is_err());
        assert!(Header::parse(HeaderName::PAssertedIdentity, "<sip:a@b>;x=y").is_err());
        let se = Header::parse(HeaderName::SessionExpires, "1800;refresher=uac").unwrap();
        let Header::SessionExpires(se) = se else {
            panic!()
        };
        assert_eq!(se.refresher(), Some(super::super::values::Refresher::Uac));
        assert!(Header::parse(HeaderName::SessionExpires, "1800;refresher=both").is_err());
        assert!(RawHeader::new(HeaderName::Via, "x").is_err());
        assert!(RawHeader::new(HeaderName::Subject, "a\r\nb").is_err());
    }
}
