//! The B2BUA driven by an `Arbitrary` list of operations: phones
//! connecting (admitted through `Registry::admit`), INVITE / CANCEL / ACK
//! / BYE / re-INVITE built from fuzz fields or raw fuzz SIP, bridge
//! responses (1xx/2xx/4xx/5xx, with or without an SDP answer) and bridge
//! BYEs to what the gateway sent, bridges answering the trunk keep-alives
//! or not, timeouts of up to 40 minutes, trunk failures, registry changes, media inactivity and the policy gate, with
//! fake media ports and a deterministic `Random`.
//!
//! Asserts: no panic; `call_count()` never exceeds the configured
//! `max_calls`; every byte string the
//! B2BUA sends parses as SIP; `poll_timeout` always moves forward (no
//! timer that fires without being cleared); after every trunk fails, every
//! phone closes, media is reported inactive and 90 s pass, no call
//! is left.
#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use dialgate_proto::admission::{Handshake, KeyHash, Registry, TokenEntry};
use dialgate_proto::b2bua::{
    B2bua, CallKey, Flow, Input, LocalAddrs, MediaPorts, Output, Random, TrunkId,
};
use dialgate_proto::config::{AliasGrants, Config, NoFiles};
use dialgate_proto::relay::{LocalLeg, SocketId};
use dialgate_proto::sdp::{self, LocalMedia, Policy, SessionDescription};
use dialgate_proto::sip::{HeaderName, Limits, Message, Method, StatusCode};
use dialgate_proto::srtp::{format_inline, MasterKey, Suite};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[phone]
listen = "127.0.0.1:5061"
certificate = "c.pem"
key = "k.pem"
token_ca = "ca.pem"
registry = "r.toml"
media_address = "127.0.0.1"

[[trunk]]
name = "echo"
connect = "127.0.0.1:5071"
host = "bridge.test"
pin_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
media_address = "127.0.0.2"

[[trunk]]
name = "webex"
connect = "127.0.0.1:5072"
host = "webex.test"
pin_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
media_address = "0.0.0.0"
tls = "1.2"
webex = true

[[directory]]
alias = "echo"
uri = "sip:echo@bridge.test"
trunk = "echo"

[[directory]]
alias = "wbx"
uri = "sips:2400123@webex.test"
trunk = "webex"

[[directory]]
alias = "board"
uri = "sip:8800@bridge.test"
trunk = "echo"
pin = "1234#"

[limits]
calls_per_token = 2
calls_per_address = 3
attempts_per_minute_per_address = 50
max_calls = 3
"#;

const TOKENS: [&str; 3] = ["alice", "bob", "carol"];
const ALIASES: [&str; 5] = ["echo", "wbx", "board", "nobody", "secret"];

#[derive(Arbitrary, Debug)]
enum Body {
    Savp { suite: u8, key: u8 },
    Avp,
    Hold { suite: u8, key: u8 },
    Raw(Vec<u8>),
    None,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Connect {
        flow: u8,
        token: u8,
        port: u8,
    },
    Close {
        flow: u8,
    },
    CertExpired {
        flow: u8,
    },
    Invite {
        flow: u8,
        alias: u8,
        user: u8,
        body: Body,
    },
    ReInvite {
        call: u8,
        body: Body,
    },
    Cancel {
        call: u8,
    },
    Ack {
        call: u8,
    },
    Bye {
        call: u8,
    },
    PhoneRaw {
        flow: u8,
        bytes: Vec<u8>,
    },
    PhoneReply {
        req: u8,
        status: u16,
    },
    BridgeReply {
        req: u8,
        status: u16,
        sdp: bool,
        record_route: bool,
    },
    BridgeBye {
        req: u8,
    },
    TrunkRaw {
        trunk: u8,
        bytes: Vec<u8>,
    },
    Advance {
        millis: u32,
    },
    TrunkFailed {
        trunk: u8,
    },
    /// A trunk connection up from an address (a wildcard media address
    /// learns it; any other keeps its own).
    TrunkLocal {
        trunk: u8,
        addr: [u8; 4],
    },
    Registry {
        alice: u8,
        bob: u8,
    },
    MediaInactive {
        call: u8,
    },
    Gate {
        closed: bool,
    },
    /// The network check: new calls refused (or admitted again), and the
    /// uplink's public address behind a NAT (or none).
    Network {
        refused: bool,
        public: Option<[u8; 4]>,
    },
    /// Whether the bridges answer the trunk keep-alives (OPTIONS) with 200.
    Keepalives {
        answer: bool,
    },
}

struct Ports(u32);
impl MediaPorts for Ports {
    fn allocate(&mut self, ip: IpAddr, rtcp_mux: bool) -> Result<LocalLeg, String> {
        if self.0 > 4000 {
            return Err("out of ports".into());
        }
        self.0 += 2;
        let port = 30000 + self.0 as u16;
        Ok(LocalLeg {
            rtp: SocketId(self.0),
            rtp_addr: SocketAddr::new(ip, port),
            rtcp: (!rtcp_mux).then(|| (SocketId(self.0 + 1), SocketAddr::new(ip, port + 1))),
        })
    }
}

struct Rng(u64);
impl Random for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// A call the phone placed.
struct PhoneCall {
    flow: u64,
    call_id: String,
    branch: String,
    user: &'static str,
    alias: &'static str,
    cseq: u32,
    /// The To header of the phone's dialog (with the B2BUA's tag).
    to: Option<String>,
}

struct World {
    b2b: B2bua,
    now: Instant,
    phones: Vec<PhoneCall>,
    to_phone: Vec<(u64, Message)>,
    to_bridge: Vec<(Flow, Message)>,
    calls: HashSet<CallKey>,
    n: u32,
    max_calls: usize,
    answer_keepalives: bool,
    keepalive_replies: Vec<(TrunkId, Message)>,
}

fn header(m: &Message, name: &str) -> String {
    m.raw(&HeaderName::parse(name).unwrap())
        .next()
        .unwrap_or_default()
        .to_string()
}

fn registry(alice: u8, bob: u8) -> Registry {
    let mut r = Registry::default();
    for (name, key, state) in [("alice", 7u8, alice), ("bob", 8, bob), ("carol", 9, 0)] {
        if state % 3 != 2 {
            r.insert(
                KeyHash([key; 32]),
                TokenEntry {
                    name: name.into(),
                    revoked: state % 3 == 1,
                },
            );
        }
    }
    r
}

fn sdp_body(body: &Body) -> Vec<u8> {
    let (proto, suite, key, hold) = match body {
        Body::Savp { suite, key } => ("RTP/SAVP", *suite, *key, false),
        Body::Hold { suite, key } => ("RTP/SAVP", *suite, *key, true),
        Body::Avp => ("RTP/AVP", 0, 1, false),
        Body::Raw(b) => return b.clone(),
        Body::None => return Vec::new(),
    };
    let suite = Suite::ALL[usize::from(suite) % Suite::ALL.len()];
    let key = MasterKey::new(suite, &vec![key; suite.key_len() + suite.salt_len()]).unwrap();
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 20000 {proto} 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
         a=crypto:1 {} {}\r\na={}\r\n",
        suite.name(),
        &*format_inline(&key),
        if hold { "sendonly" } else { "sendrecv" }
    )
    .into_bytes()
}

fn with_body(head: String, body: &[u8]) -> Option<Message> {
    let mut text = head.into_bytes();
    if !body.is_empty() {
        text.extend_from_slice(b"Content-Type: application/sdp\r\n");
    }
    text.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    text.extend_from_slice(body);
    Message::parse(&text, &Limits::default()).ok()
}

fn config() -> Arc<Config> {
    static CONFIG_PARSED: OnceLock<Arc<Config>> = OnceLock::new();
    CONFIG_PARSED
        .get_or_init(|| Arc::new(Config::parse(CONFIG, Path::new("/"), &NoFiles).unwrap()))
        .clone()
}

impl World {
    fn new() -> World {
        let config = config();
        let max_calls = config.limits.max_calls as usize;
        let mut grants = AliasGrants::new();
        grants.insert(
            "alice".into(),
            HashSet::from(["echo".to_string(), "board".to_string(), "wbx".to_string()]),
        );
        grants.insert("bob".into(), HashSet::from(["echo".to_string()]));
        let mut b2b = B2bua::new(
            config,
            grants,
            LocalAddrs {
                phone_sip: "127.0.0.1:5061".parse().unwrap(),
                bridge_sip: None,
            },
            Box::new(Ports(0)),
            Box::new(Rng(0x1234_5678_9abc_def1)),
        )
        .unwrap();
        let now = Instant::now();
        b2b.start(now);
        b2b.handle_input(now, Input::Registry(registry(0, 0)));
        let mut w = World {
            b2b,
            now,
            phones: Vec::new(),
            to_phone: Vec::new(),
            to_bridge: Vec::new(),
            calls: HashSet::new(),
            n: 0,
            max_calls,
            answer_keepalives: true,
            keepalive_replies: Vec::new(),
        };
        w.collect();
        w
    }

    fn input(&mut self, input: Input) {
        self.b2b.handle_input(self.now, input);
        self.collect();
        self.answer_keepalives();
    }

    fn answer_keepalives(&mut self) {
        while let Some((trunk, msg)) = self.keepalive_replies.pop() {
            self.b2b.handle_input(self.now, Input::Trunk { trunk, msg });
            self.collect();
        }
    }

    fn collect(&mut self) {
        while let Some(o) = self.b2b.poll_output() {
            match o {
                Output::Send { flow, bytes } => {
                    let m = Message::parse(&bytes, &Limits::default()).unwrap_or_else(|e| {
                        panic!(
                            "sent unparsable SIP ({e}): {}",
                            String::from_utf8_lossy(&bytes)
                        )
                    });
                    match flow {
                        Flow::Phone(f) => self.sent_to_phone(f, m),
                        Flow::Trunk(t)
                            if self.answer_keepalives && m.method() == Some(&Method::Options) =>
                        {
                            if let Some(ok) =
                                StatusCode::new(200).and_then(|c| Message::response_to(&m, c).ok())
                            {
                                self.keepalive_replies.push((t, ok));
                            }
                        }
                        _ => push_bounded(&mut self.to_bridge, (flow, m)),
                    }
                }
                Output::StartMedia(s) => {
                    self.calls.insert(s.call);
                }
                Output::StopMedia { call } => {
                    self.calls.remove(&call);
                }
                _ => {}
            }
        }
        assert!(
            self.b2b.call_count() <= self.max_calls,
            "{} calls, limit {}",
            self.b2b.call_count(),
            self.max_calls
        );
    }

    fn sent_to_phone(&mut self, flow: u64, m: Message) {
        if let Some(s) = m.status() {
            let to = header(&m, "To");
            if s.as_u16() < 300 && s.as_u16() > 100 && to.contains("tag=") {
                let call_id = m.call_id().to_string();
                if let Some(c) = self.phones.iter_mut().find(|c| c.call_id == call_id) {
                    c.to.get_or_insert(to);
                }
            }
        } else {
            push_bounded(&mut self.to_phone, (flow, m));
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        let mut steps = 0;
        while let Some(t) = self.b2b.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.b2b.handle_timeout(self.now);
            self.collect();
            self.answer_keepalives();
            steps += 1;
            assert!(steps < 100_000, "timers never settle at {t:?}");
        }
        self.now = end;
    }

    fn phone_request(&mut self, i: usize, method: &str, body: &[u8]) {
        let c = &mut self.phones[i];
        let (branch, cseq) = match method {
            "CANCEL" => (c.branch.clone(), c.cseq),
            "ACK" if c.to.is_none() => (c.branch.clone(), c.cseq),
            _ => {
                self.n += 1;
                c.cseq += if method == "ACK" { 0 } else { 1 };
                (format!("z9hG4bK-p{}", self.n), c.cseq)
            }
        };
        let to = match (method, &c.to) {
            ("CANCEL", _) | (_, None) => format!("<sip:{}@127.0.0.1:5061>", c.alias),
            (_, Some(to)) => to.clone(),
        };
        let head = format!(
            "{method} sip:{alias}@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.1:5071;branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=phonetag\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:{user}@127.0.0.1:5071;transport=tls>\r\n",
            alias = c.alias,
            user = c.user,
            call_id = c.call_id,
        );
        let flow = c.flow;
        if let Some(msg) = with_body(head, body) {
            self.input(Input::Phone { flow, msg });
        }
    }

    fn bridge_reply(&mut self, req: usize, status: u16, sdp: bool, record_route: bool) {
        let (flow, request) = &self.to_bridge[req];
        let (flow, request) = (*flow, request.clone());
        let Some(trunk) = self.trunk_of(flow) else {
            return;
        };
        let code = [100, 180, 183, 200, 200, 486, 404, 488, 503, 603][usize::from(status % 10)];
        let code = if status >= 1000 {
            100 + status % 600
        } else {
            code
        };
        let Some(code) = StatusCode::new(code) else {
            return;
        };
        let Ok(base) = Message::response_to(&request, code) else {
            return;
        };
        let text = String::from_utf8(base.to_bytes()).unwrap();
        let mut head = String::new();
        for line in text.split("\r\n").take_while(|l| !l.is_empty()) {
            if line.starts_with("Content-Length") {
                continue;
            }
            head.push_str(line);
            if code.as_u16() > 100 && line.starts_with("To:") && !line.contains("tag=") {
                head.push_str(&format!(";tag=bt{req}"));
            }
            head.push_str("\r\n");
        }
        head.push_str("Contact: <sip:echo@127.0.0.9:5071;transport=tls>\r\n");
        if record_route {
            head.push_str("Record-Route: <sip:proxy.test;transport=tls;lr>\r\n");
        }
        let mut body = Vec::new();
        let is_invite = request.method() == Some(&Method::Invite);
        if sdp && is_invite && code.as_u16() > 100 && code.as_u16() < 300 {
            if let Ok(offer) = SessionDescription::parse(request.body()) {
                let local = LocalMedia::new("127.0.0.9:40000".parse().unwrap());
                if let Ok((answer, _)) = sdp::answer(&offer, &Policy::trunk_default(), &local) {
                    body = answer.print().as_bytes().to_vec();
                }
            }
        }
        if let Some(msg) = with_body(head, &body) {
            self.input(Input::Trunk { trunk, msg });
        }
    }

    fn bridge_bye(&mut self, req: usize) {
        let (flow, request) = &self.to_bridge[req];
        let (flow, request) = (*flow, request.clone());
        let Some(trunk) = self.trunk_of(flow) else {
            return;
        };
        self.n += 1;
        let head = format!(
            "BYE {contact} SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.9:5071;branch=z9hG4bK-b{n}\r\n\
             Max-Forwards: 70\r\n\
             From: {to};tag=bt{req}\r\n\
             To: {from}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {n} BYE\r\n",
            contact = request
                .contact()
                .map(|_| header(&request, "Contact"))
                .unwrap_or_else(|| "sip:gw@127.0.0.1".into())
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default(),
            n = self.n,
            to = header(&request, "To"),
            from = header(&request, "From"),
            call_id = request.call_id(),
        );
        if let Some(msg) = with_body(head, &[]) {
            self.input(Input::Trunk { trunk, msg });
        }
    }

    fn trunk_of(&self, flow: Flow) -> Option<TrunkId> {
        match flow {
            Flow::Trunk(t) => Some(t),
            Flow::Route(r) => self.b2b.route_target(r).map(|(t, _)| t),
            _ => None,
        }
    }

    fn trunk(&self, i: u8) -> TrunkId {
        let ids = self.b2b.trunk_ids();
        ids[usize::from(i) % ids.len()]
    }

    fn op(&mut self, op: Op) {
        match op {
            Op::Connect { flow, token, port } => {
                let token = usize::from(token) % TOKENS.len();
                let r = registry(0, 0);
                let Ok(admitted) = r.admit(Handshake {
                    key: KeyHash([7 + token as u8; 32]),
                    peer: SocketAddr::new(
                        [127, 0, 0, 1 + port % 4].into(),
                        40000 + u16::from(port),
                    ),
                    post_quantum: port & 0x80 != 0,
                    not_after: None,
                }) else {
                    return;
                };
                self.input(Input::PhoneConnected {
                    flow: u64::from(flow % 4),
                    admitted,
                });
            }
            Op::Close { flow } => self.input(Input::PhoneClosed {
                flow: u64::from(flow % 4),
            }),
            Op::CertExpired { flow } => self.input(Input::PhoneCertificateExpired {
                flow: u64::from(flow % 4),
            }),
            Op::Invite {
                flow,
                alias,
                user,
                body,
            } => {
                if self.phones.len() >= 32 {
                    return;
                }
                self.n += 1;
                self.phones.push(PhoneCall {
                    flow: u64::from(flow % 4),
                    call_id: format!("call-{}@phone", self.n),
                    branch: format!("z9hG4bK-i{}", self.n),
                    user: TOKENS[usize::from(user) % TOKENS.len()],
                    alias: ALIASES[usize::from(alias) % ALIASES.len()],
                    cseq: 6,
                    to: None,
                });
                let i = self.phones.len() - 1;
                // The first INVITE's branch is kept: a CANCEL matches it.
                let branch = self.phones[i].branch.clone();
                let body = sdp_body(&body);
                self.phone_invite(i, &branch, &body);
            }
            Op::ReInvite { call, body } => {
                if let Some(i) = self.pick_phone(call) {
                    self.phone_request(i, "INVITE", &sdp_body(&body));
                }
            }
            Op::Cancel { call } => {
                if let Some(i) = self.pick_phone(call) {
                    self.phone_request(i, "CANCEL", &[]);
                }
            }
            Op::Ack { call } => {
                if let Some(i) = self.pick_phone(call) {
                    self.phone_request(i, "ACK", &[]);
                }
            }
            Op::Bye { call } => {
                if let Some(i) = self.pick_phone(call) {
                    self.phone_request(i, "BYE", &[]);
                }
            }
            Op::PhoneRaw { flow, bytes } => {
                if let Ok(msg) = Message::parse(&bytes, &Limits::default()) {
                    self.input(Input::Phone {
                        flow: u64::from(flow % 4),
                        msg,
                    });
                }
            }
            Op::PhoneReply { req, status } => {
                if self.to_phone.is_empty() {
                    return;
                }
                let (flow, request) = &self.to_phone[usize::from(req) % self.to_phone.len()];
                let code = if status % 2 == 0 {
                    200
                } else {
                    100 + status % 600
                };
                if let Some(msg) =
                    StatusCode::new(code).and_then(|c| Message::response_to(request, c).ok())
                {
                    let flow = *flow;
                    self.input(Input::Phone { flow, msg });
                }
            }
            Op::BridgeReply {
                req,
                status,
                sdp,
                record_route,
            } => {
                if !self.to_bridge.is_empty() {
                    let req = usize::from(req) % self.to_bridge.len();
                    self.bridge_reply(req, status, sdp, record_route);
                }
            }
            Op::BridgeBye { req } => {
                if !self.to_bridge.is_empty() {
                    let req = usize::from(req) % self.to_bridge.len();
                    self.bridge_bye(req);
                }
            }
            Op::TrunkRaw { trunk, bytes } => {
                if let Ok(msg) = Message::parse(&bytes, &Limits::default()) {
                    let trunk = self.trunk(trunk);
                    self.input(Input::Trunk { trunk, msg });
                }
            }
            Op::Advance { millis } => {
                // Up to 40 minutes: past a 30-minute session timer and
                // every transaction and set-up timeout. Longer only adds
                // trunk keep-alives (every 30 s), which cost executions.
                self.advance(Duration::from_millis(u64::from(millis) % 2_400_000));
            }
            Op::TrunkFailed { trunk } => {
                let trunk = self.trunk(trunk);
                self.input(Input::TrunkFailed { trunk });
            }
            Op::TrunkLocal { trunk, addr } => {
                let trunk = self.trunk(trunk);
                let local = std::net::IpAddr::from(addr);
                self.input(Input::TrunkLocal { trunk, local });
            }
            Op::Registry { alice, bob } => self.input(Input::Registry(registry(alice, bob))),
            Op::MediaInactive { call } => {
                let mut keys: Vec<CallKey> = self.calls.iter().copied().collect();
                keys.sort_by_key(|k| format!("{k:?}"));
                if !keys.is_empty() {
                    let call = keys[usize::from(call) % keys.len()];
                    self.input(Input::MediaInactive { call });
                }
            }
            Op::Gate { closed } => {
                self.input(Input::Gate(closed.then_some("policy expired")));
            }
            Op::Network { refused, public } => {
                self.input(Input::Network(
                    refused.then_some(dialgate_proto::b2bua::Refusal::NETWORK_UDP_BLOCKED),
                ));
                self.input(Input::PublicAddress(public.map(IpAddr::from)));
            }
            Op::Keepalives { answer } => self.answer_keepalives = answer,
        }
    }

    fn phone_invite(&mut self, i: usize, branch: &str, body: &[u8]) {
        let c = &mut self.phones[i];
        c.cseq += 1;
        let head = format!(
            "INVITE sip:{alias}@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.1:5071;branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=phonetag\r\n\
             To: <sip:{alias}@127.0.0.1:5061>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:{user}@127.0.0.1:5071;transport=tls>\r\n",
            alias = c.alias,
            user = c.user,
            call_id = c.call_id,
            cseq = c.cseq,
        );
        let flow = c.flow;
        if let Some(msg) = with_body(head, body) {
            self.input(Input::Phone { flow, msg });
        }
    }

    fn pick_phone(&self, call: u8) -> Option<usize> {
        (!self.phones.is_empty()).then(|| usize::from(call) % self.phones.len())
    }
}

fn push_bounded<T>(v: &mut Vec<T>, x: T) {
    if v.len() >= 64 {
        v.remove(0);
    }
    v.push(x);
}

fuzz_target!(|ops: Vec<Op>| {
    let mut w = World::new();
    for op in ops.into_iter().take(256) {
        w.op(op);
    }
    // Wind down: nothing may outlive its trunks, phones and media.
    for t in w.b2b.trunk_ids() {
        w.input(Input::TrunkFailed { trunk: t });
    }
    for flow in 0..4 {
        w.input(Input::PhoneClosed { flow });
    }
    let calls: Vec<CallKey> = w.calls.iter().copied().collect();
    for call in calls {
        w.input(Input::MediaInactive { call });
    }
    // Longer than a transaction's timeout (64*T1).
    w.advance(Duration::from_secs(90));
    assert_eq!(w.b2b.call_count(), 0, "calls left after everything ended");
});
