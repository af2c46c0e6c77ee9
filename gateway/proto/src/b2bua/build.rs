//! Building the SIP messages the B2BUA sends: responses to a request
//! (RFC 3261 §8.2.6) and requests within each leg's dialog (§12.2.1.1).

use std::net::SocketAddr;

use crate::config::TrunkConfig;
use crate::sip::{
    CSeq, Contact, Header, HeaderName, Host, MediaType, Message, Method, NameAddr, Param, SipUri,
    StatusCode, Transport, Uri, Via,
};

use super::call::{BridgeLeg, Call};

/// What dialgate allows (RFC 3261 §20.5).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

/// `host[:port]` of a Via's sent-by, lower-cased: the server transaction key.
pub(crate) fn sent_by(via: &Via) -> String {
    match via.port {
        Some(p) => format!("{}:{p}", via.host).to_ascii_lowercase(),
        None => via.host.to_string().to_ascii_lowercase(),
    }
}

/// The URI of a message's first Contact, if any.
pub(crate) fn contact_uri(msg: &Message) -> Option<Uri> {
    match msg.contact()? {
        Contact::Addresses(a) => a.into_iter().next().map(|n| n.uri),
        Contact::Wildcard => None,
    }
}

/// A header field from its name and value: typed where the codec types
/// that name (Session-Expires, Require, ...), raw otherwise.
fn raw(name: &str, value: &str) -> Option<Header> {
    let name = HeaderName::parse(name).ok()?;
    Header::parse(name, value).ok()
}

fn with_tag(mut n: NameAddr, tag: &str) -> NameAddr {
    if n.tag().is_none() {
        if let Some(p) = Param::new("tag", Some(tag)) {
            n.params.push(p);
        }
    }
    n
}

fn sip_uri(user: Option<&str>, addr: SocketAddr, tls: bool) -> Uri {
    let host = match addr.ip() {
        std::net::IpAddr::V4(v) => Host::V4(v),
        std::net::IpAddr::V6(v) => Host::V6(v),
    };
    Uri::Sip(SipUri {
        secure: false,
        user: user.map(str::to_owned),
        password: None,
        host,
        port: Some(addr.port()),
        params: if tls {
            vec![crate::sip::UriParam {
                name: "transport".into(),
                value: Some("tls".into()),
            }]
        } else {
            Vec::new()
        },
        headers: Vec::new(),
    })
}

/// A response to a request (also used by the demo's echo bridge).
#[derive(Debug)]
pub struct Reply<'a> {
    req: &'a Message,
    status: u16,
    to_tag: Option<&'a str>,
    extra: Vec<Header>,
    body: Option<Vec<u8>>,
}

impl<'a> Reply<'a> {
    /// `status` to `req`, adding `to_tag` to To (RFC 3261 §8.2.6.2).
    pub fn new(req: &'a Message, status: u16, to_tag: Option<&'a str>) -> Reply<'a> {
        Reply {
            req,
            status,
            to_tag,
            extra: Vec::new(),
            body: None,
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Adds a Warning (RFC 3261 §20.43) saying why.
    pub fn warning(mut self, value: &str) -> Reply<'a> {
        if let Some(h) = raw("Warning", value) {
            self.extra.push(h);
        }
        self
    }

    /// Adds the Warning (and Retry-After) of a refusal; the status is the
    /// one given to [`Reply::new`].
    pub fn refusal(self, r: &super::Refusal) -> Reply<'a> {
        let reply = self.warning(&r.warning());
        match r.retry() {
            Some(s) => reply.retry_after(s),
            None => reply,
        }
    }

    /// Adds Retry-After (RFC 3261 §20.33).
    pub fn retry_after(mut self, seconds: u32) -> Reply<'a> {
        if let Some(h) = raw("Retry-After", &seconds.to_string()) {
            self.extra.push(h);
        }
        self
    }

    /// Adds `Session-Expires: N;refresher=uac` and `Require: timer`
    /// (RFC 4028 §9): the phone refreshes, the gateway enforces.
    pub fn session_timer(mut self, seconds: u32) -> Reply<'a> {
        if let Some(h) = raw("Session-Expires", &format!("{seconds};refresher=uac")) {
            self.extra.push(h);
        }
        if let Some(h) = raw("Require", "timer") {
            self.extra.push(h);
        }
        self
    }

    /// Adds Min-SE (RFC 4028 §5), for a 422.
    pub fn min_se(mut self, seconds: u32) -> Reply<'a> {
        if let Some(h) = raw("Min-SE", &seconds.to_string()) {
            self.extra.push(h);
        }
        self
    }

    /// Adds Allow.
    pub fn allow(mut self) -> Reply<'a> {
        if let Some(h) = raw("Allow", ALLOW) {
            self.extra.push(h);
        }
        self
    }

    /// Adds a Contact at the phone-side listener.
    pub fn contact(mut self, at: &SocketAddr, user: &str) -> Reply<'a> {
        self.extra
            .push(Header::Contact(Contact::Addresses(vec![NameAddr {
                display_name: None,
                uri: sip_uri(Some(user), *at, true),
                params: Vec::new(),
            }])));
        self
    }

    /// Adds an SDP body.
    pub fn sdp(mut self, body: Vec<u8>) -> Reply<'a> {
        self.extra.push(Header::ContentType(MediaType {
            mtype: "application".into(),
            subtype: "sdp".into(),
            params: Vec::new(),
        }));
        self.body = Some(body);
        self
    }

    /// The response, or `None` if the request cannot be answered (it lacks
    /// what RFC 3261 requires; the parser makes that impossible).
    pub fn build(self) -> Option<Message> {
        let code = StatusCode::new(self.status)?;
        let base = Message::response_to(self.req, code).ok()?;
        let mut headers: Vec<Header> = base
            .headers()
            .iter()
            .filter(|h| !matches!(h, Header::ContentLength(_)))
            .map(|h| match (h, self.to_tag) {
                (Header::To(to), Some(tag)) => Header::To(with_tag(to.clone(), tag)),
                _ => h.clone(),
            })
            .collect();
        // RFC 3261 §12.1.1: a response that creates a dialog carries the
        // request's Record-Route, so proxies stay on the path.
        if (101..300).contains(&self.status) {
            headers.extend(
                self.req
                    .headers()
                    .iter()
                    .filter(|h| matches!(h, Header::RecordRoute(_)))
                    .cloned(),
            );
        }
        if let Some(h) = raw("Server", concat!("dialgate/", env!("CARGO_PKG_VERSION"))) {
            headers.push(h);
        }
        headers.extend(self.extra);
        Message::response(
            code,
            code.canonical_reason(),
            headers,
            self.body.unwrap_or_default(),
        )
        .ok()
    }
}

/// One side of a dialog, as needed to build a request in it.
pub(crate) struct Leg {
    request_uri: Uri,
    from: NameAddr,
    to: NameAddr,
    call_id: String,
    routes: Vec<NameAddr>,
    via_host: Host,
    via_port: Option<u16>,
    contact: Uri,
}

impl Leg {
    /// The bridge leg of `call` on `trunk`: we are the UAC.
    /// `listener` is the bridge-side listener (the Contact bridges send
    /// in-dialog requests to when they open a connection of their own).
    pub(super) fn bridge(call: &Call, trunk: &TrunkConfig, listener: Option<SocketAddr>) -> Leg {
        let b: &BridgeLeg = &call.bridge;
        let local = SocketAddr::new(trunk.media_address, 5061);
        let contact = listener.unwrap_or(local);
        let from = with_tag(
            NameAddr {
                display_name: None,
                uri: sip_uri(Some(call.token()), local, false),
                params: Vec::new(),
            },
            &b.our_tag,
        );
        let to = b.their_to.clone().unwrap_or_else(|| NameAddr {
            display_name: None,
            uri: b.request_uri.clone(),
            params: Vec::new(),
        });
        Leg {
            request_uri: b
                .remote_target
                .clone()
                .unwrap_or_else(|| b.request_uri.clone()),
            from,
            to,
            call_id: b.call_id.clone(),
            routes: b.route_set.clone(),
            via_host: match trunk.media_address {
                std::net::IpAddr::V4(v) => Host::V4(v),
                std::net::IpAddr::V6(v) => Host::V6(v),
            },
            via_port: None,
            contact: sip_uri(Some("dialgate"), contact, true),
        }
    }

    /// An out-of-dialog OPTIONS keep-alive to a trunk.
    pub(super) fn options(
        trunk: &TrunkConfig,
        listener: Option<SocketAddr>,
        tag: &str,
        call_id: &str,
    ) -> Option<Leg> {
        let local = SocketAddr::new(trunk.media_address, 5061);
        let contact = listener.unwrap_or(local);
        let target = Uri::parse(&format!("sip:{}", trunk.host)).ok()?;
        Some(Leg {
            request_uri: target.clone(),
            from: with_tag(
                NameAddr {
                    display_name: None,
                    uri: sip_uri(Some("dialgate"), local, false),
                    params: Vec::new(),
                },
                tag,
            ),
            to: NameAddr {
                display_name: None,
                uri: target,
                params: Vec::new(),
            },
            call_id: call_id.to_string(),
            routes: Vec::new(),
            via_host: match trunk.media_address {
                std::net::IpAddr::V4(v) => Host::V4(v),
                std::net::IpAddr::V6(v) => Host::V6(v),
            },
            via_port: None,
            contact: sip_uri(Some("dialgate"), contact, true),
        })
    }

    /// The phone leg of `call`: we are the UAS, so From/To swap.
    pub(super) fn phone(call: &Call, listen: &SocketAddr) -> Leg {
        let p = &call.phone;
        let ours = with_tag(
            NameAddr {
                display_name: None,
                uri: p
                    .invite
                    .request_uri()
                    .cloned()
                    .unwrap_or_else(|| sip_uri(None, *listen, true)),
                params: Vec::new(),
            },
            &p.our_tag,
        );
        Leg {
            request_uri: p
                .remote_target
                .clone()
                .unwrap_or_else(|| p.their_from.uri.clone()),
            from: ours,
            to: p.their_from.clone(),
            call_id: p.call_id.clone(),
            routes: Vec::new(),
            via_host: match listen.ip() {
                std::net::IpAddr::V4(v) => Host::V4(v),
                std::net::IpAddr::V6(v) => Host::V6(v),
            },
            via_port: Some(listen.port()),
            contact: sip_uri(Some(call.alias()), *listen, true),
        }
    }
}

/// A request on a leg (INVITE, ACK, BYE, CANCEL), with an SDP `body`.
pub(crate) fn request(
    leg: &Leg,
    method: Method,
    branch: &str,
    cseq: u32,
    body: Option<Vec<u8>>,
) -> Option<Message> {
    let mut headers = vec![
        Header::Via(vec![Via {
            transport: Transport::Tls,
            host: leg.via_host.clone(),
            port: leg.via_port,
            params: vec![
                Param::new("branch", Some(branch))?,
                Param::new("rport", None)?,
            ],
        }]),
        Header::MaxForwards(70),
    ];
    if !leg.routes.is_empty() {
        headers.push(Header::Route(leg.routes.clone()));
    }
    headers.extend([
        Header::From(leg.from.clone()),
        Header::To(leg.to.clone()),
        Header::CallId(leg.call_id.clone()),
        Header::CSeq(CSeq {
            seq: cseq,
            method: method.clone(),
        }),
    ]);
    if matches!(method, Method::Invite) {
        headers.push(Header::Contact(Contact::Addresses(vec![NameAddr {
            display_name: None,
            uri: leg.contact.clone(),
            params: Vec::new(),
        }])));
        headers.push(raw("Allow", ALLOW)?);
    }
    headers.push(raw(
        "User-Agent",
        concat!("dialgate/", env!("CARGO_PKG_VERSION")),
    )?);
    let body = match body {
        Some(b) => {
            headers.push(Header::ContentType(MediaType {
                mtype: "application".into(),
                subtype: "sdp".into(),
                params: Vec::new(),
            }));
            b
        }
        None => Vec::new(),
    };
    Message::request(method, leg.request_uri.clone(), headers, body).ok()
}

/// The ACK for a non-2xx final response to our INVITE (RFC 3261
/// §17.1.1.3): same Request-URI, branch and CSeq number, the response's To.
pub(super) fn ack_for_failure(
    b: &BridgeLeg,
    trunk: &TrunkConfig,
    response: &Message,
) -> Option<Message> {
    let via_host = match trunk.media_address {
        std::net::IpAddr::V4(v) => Host::V4(v),
        std::net::IpAddr::V6(v) => Host::V6(v),
    };
    let local = SocketAddr::new(trunk.media_address, 5061);
    let headers = vec![
        Header::Via(vec![Via {
            transport: Transport::Tls,
            host: via_host,
            port: None,
            params: vec![
                Param::new("branch", Some(&b.invite_branch))?,
                Param::new("rport", None)?,
            ],
        }]),
        Header::MaxForwards(70),
        Header::From(response.from().clone()),
        Header::To(response.to().clone()),
        Header::CallId(b.call_id.clone()),
        Header::CSeq(CSeq {
            seq: 1,
            method: Method::Ack,
        }),
    ];
    let _ = local;
    Message::request(Method::Ack, b.request_uri.clone(), headers, Vec::new()).ok()
}
