//! The B2BUA between a scripted phone and a scripted bridge, on a virtual
//! clock, with real SIP and SDP messages and fake media ports.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::admission::{Handshake, KeyHash, Registry, TokenEntry};
use crate::config::{Config, NoFiles};
use crate::media::SECURE_TONE_FRAMES;
use crate::relay::SocketId;
use crate::sdp::{self, SessionDescription};
use crate::sdp::{LocalMedia, Policy};
use crate::sip::Limits;
use crate::sip::Method;
use crate::srtp::{format_inline, MasterKey, Suite};

pub(super) const CONFIG: &str = r#"
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
media_address = "127.0.0.2"
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

[[directory]]
alias = "secret"
uri = "sip:secret@bridge.test"
trunk = "echo"

[limits]
calls_per_token = 2
calls_per_address = 3
attempts_per_minute_per_address = 5
"#;

pub(super) struct Ports(pub(super) u32);
impl MediaPorts for Ports {
    fn allocate(&mut self, ip: IpAddr, rtcp_mux: bool) -> Result<LocalLeg, String> {
        self.0 += 2;
        let port = 30000 + self.0 as u16;
        Ok(LocalLeg {
            rtp: SocketId(self.0),
            rtp_addr: SocketAddr::new(ip, port),
            rtcp: (!rtcp_mux).then(|| (SocketId(self.0 + 1), SocketAddr::new(ip, port + 1))),
        })
    }
}

pub(super) struct Rng(pub(super) u64);
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

struct Harness {
    b2b: B2bua,
    now: Instant,
    phone_key: MasterKey,
    out: Vec<Output>,
}

const PHONE_FLOW: u64 = 7;

/// A registry of (name, key byte, revoked) entries.
pub(super) fn registry(entries: &[(&str, u8, bool)]) -> Registry {
    let mut r = Registry::default();
    for (name, key, revoked) in entries {
        r.insert(
            KeyHash([*key; 32]),
            TokenEntry {
                name: (*name).into(),
                revoked: *revoked,
            },
        );
    }
    r
}

/// An admission as the registry makes it.
pub(super) fn admitted(token: &str, key: u8, peer: &str) -> Admitted {
    let mut r = Registry::default();
    r.insert(
        KeyHash([key; 32]),
        TokenEntry {
            name: token.into(),
            revoked: false,
        },
    );
    r.admit(Handshake {
        key: KeyHash([key; 32]),
        peer: peer.parse().unwrap(),
        post_quantum: false,
        not_after: None,
    })
    .unwrap()
}

fn harness() -> Harness {
    let mut config = Config::parse(CONFIG, Path::new("/"), &NoFiles).unwrap();
    // The echo trunk's bridge may Record-Route through its port 5062.
    if let Some(t) = config.trunks.get_mut("echo") {
        t.routes = vec!["127.0.0.9:5062".parse().unwrap()];
    }
    let config = Arc::new(config);
    let mut grants = AliasGrants::new();
    grants.insert(
        "alice".into(),
        HashSet::from(["echo".to_string(), "board".to_string(), "wbx".to_string()]),
    );
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
    b2b.handle_input(
        Instant::now(),
        Input::Registry(registry(&[("alice", 7, false), ("bob", 8, false)])),
    );
    b2b.handle_input(
        Instant::now(),
        Input::PhoneConnected {
            flow: PHONE_FLOW,
            admitted: admitted("alice", 7, "127.0.0.1:40000"),
        },
    );
    Harness {
        b2b,
        now: Instant::now(),
        phone_key: MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap(),
        out: Vec::new(),
    }
}

pub(super) fn parse(bytes: &[u8]) -> Message {
    Message::parse(bytes, &Limits::default())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

impl Harness {
    fn phone_sdp(&self, proto: &str) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 20000 {proto} 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\na=sendrecv\r\n",
            &*format_inline(&self.phone_key)
        )
    }

    fn invite(
        &self,
        from_user: &str,
        alias: &str,
        sdp: &str,
        branch: &str,
        call_id: &str,
    ) -> Message {
        let text = format!(
            "INVITE sip:{alias}@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.1:5071;branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{from_user}@127.0.0.1>;tag=phonetag\r\n\
             To: <sip:{alias}@127.0.0.1:5061>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 7 INVITE\r\n\
             Contact: <sip:{from_user}@127.0.0.1:5071;transport=tls>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        parse(text.as_bytes())
    }

    fn phone_sends(&mut self, msg: Message) {
        self.b2b.handle_input(
            self.now,
            Input::Phone {
                flow: PHONE_FLOW,
                msg,
            },
        );
        self.collect();
    }

    fn bridge_sends(&mut self, msg: Message) {
        self.b2b.handle_input(
            self.now,
            Input::Trunk {
                trunk: TrunkId(0),
                msg,
            },
        );
        self.collect();
    }

    fn bridge_conn_sends(&mut self, conn: u64, msg: Message) {
        self.b2b.handle_input(self.now, Input::Bridge { conn, msg });
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(o) = self.b2b.poll_output() {
            self.out.push(o);
        }
    }

    /// Messages sent to `flow` since the last call, parsed.
    fn sent(&mut self, flow: Flow) -> Vec<Message> {
        let mut msgs = Vec::new();
        self.out.retain(|o| match o {
            Output::Send { flow: f, bytes } if *f == flow => {
                msgs.push(parse(bytes));
                false
            }
            _ => true,
        });
        msgs
    }

    fn statuses(&mut self, flow: Flow) -> Vec<u16> {
        self.sent(flow)
            .iter()
            .filter_map(|m| m.status().map(|s| s.as_u16()))
            .collect()
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.b2b.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.b2b.handle_timeout(self.now);
        }
        self.now = end;
        self.collect();
    }
}

/// The bridge's side: answers the gateway's INVITE with its own key.
pub(super) fn bridge_response(
    invite: &Message,
    status: u16,
    to_tag: &str,
    sdp: Option<(&Policy, u16)>,
) -> (Message, Option<MasterKey>) {
    let mut reply = build::Reply::new(invite, status, Some(to_tag));
    let mut key = None;
    if let Some((policy, port)) = sdp {
        let offer = SessionDescription::parse(invite.body()).unwrap();
        let local = LocalMedia::new(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
            port,
        ));
        let (answer, negotiated) = sdp::answer(&offer, policy, &local).unwrap();
        key = Some(negotiated.outbound.clone());
        reply = reply.sdp(answer.print().as_bytes().to_vec());
        // The bridge's Contact and a Record-Route, as a proxy would add.
        let text = String::from_utf8(reply.build().unwrap().to_bytes()).unwrap();
        let text = text.replacen(
            "\r\nServer:",
            "\r\nContact: <sip:echo@127.0.0.9:5071;transport=tls>\r\nRecord-Route: <sip:proxy.test;transport=tls;lr>\r\nServer:",
            1,
        );
        return (parse(text.as_bytes()), key);
    }
    (reply.build().unwrap(), key)
}

fn warning_of(m: &Message) -> String {
    m.raw(&crate::sip::HeaderName::parse("Warning").unwrap())
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_call_is_set_up_with_fresh_keys_on_each_leg_and_torn_down_by_the_phone() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-p1", "call-1@phone"));
    assert_eq!(h.statuses(Flow::Phone(PHONE_FLOW)), vec![100]);
    let invites = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(invites.len(), 1);
    let inv = &invites[0];
    assert_eq!(inv.method(), Some(&Method::Invite));
    assert_eq!(
        inv.request_uri().unwrap().to_string(),
        "sip:echo@bridge.test"
    );
    assert_ne!(
        inv.call_id(),
        "call-1@phone",
        "the bridge leg is a new dialog"
    );
    let offer = SessionDescription::parse(inv.body()).unwrap();
    let cryptos: Vec<_> = offer.media[0].crypto().collect();
    assert_eq!(
        cryptos.len(),
        1,
        "trunk policy: AES_CM_128_HMAC_SHA1_80 only"
    );
    let offered_key = format!("{:?}", cryptos[0]);
    assert!(
        !offered_key.contains(&*format_inline(&h.phone_key)),
        "the phone's key never crosses"
    );
    assert!(!String::from_utf8_lossy(inv.body()).contains(&format_inline(&h.phone_key)[7..]));

    let (ringing, _) = bridge_response(inv, 180, "bridgetag", None);
    h.bridge_sends(ringing);
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(to_phone[0].status().unwrap().as_u16(), 180);
    let our_tag = to_phone[0].to().tag().unwrap().to_string();

    let (ok, bridge_key) = bridge_response(
        inv,
        200,
        "bridgetag",
        Some((&Policy::trunk_default(), 40000)),
    );
    h.bridge_sends(ok);
    let acks = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method(), Some(&Method::Ack));
    assert_eq!(
        acks[0].request_uri().unwrap().to_string(),
        "sip:echo@127.0.0.9:5071;transport=tls",
        "ACK to the Contact"
    );
    assert_eq!(acks[0].route().count(), 1, "Record-Route honoured");
    let start = h
        .out
        .iter()
        .position(|o| matches!(o, Output::StartMedia(_)))
        .expect("media started");
    let Output::StartMedia(m) = h.out.remove(start) else {
        unreachable!()
    };
    let StartMedia {
        phone,
        bridge,
        tone,
        pin,
        ..
    } = *m;
    // The relay decrypts the phone with the phone's own key and the bridge
    // with the bridge's; it encrypts towards each with keys it made.
    assert_eq!(phone.1.inbound.key_and_salt(), h.phone_key.key_and_salt());
    assert_eq!(
        bridge.1.inbound.key_and_salt(),
        bridge_key.unwrap().key_and_salt()
    );
    assert_ne!(
        phone.1.outbound.key_and_salt(),
        bridge.1.outbound.key_and_salt()
    );
    assert_ne!(phone.1.outbound.key_and_salt(), h.phone_key.key_and_salt());
    assert_eq!(phone.1.remote_rtp, Some("127.0.0.1:20000".parse().unwrap()));
    assert_eq!(
        tone.len(),
        SECURE_TONE_FRAMES,
        "secure tone for a G.711 phone"
    );
    assert!(pin.is_empty(), "no PIN configured for echo");
    let answer = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(answer[0].status().unwrap().as_u16(), 200);
    assert_eq!(answer[0].to().tag(), Some(our_tag.as_str()));
    let answer_sdp = SessionDescription::parse(answer[0].body()).unwrap();
    let phone_neg_key = answer_sdp.media[0].crypto().next().unwrap();
    assert!(format!("{phone_neg_key:?}").contains("AES_CM_128_HMAC_SHA1_80"));
    assert_eq!(h.b2b.call_count(), 1);

    // The phone hangs up: 200 to it, BYE to the bridge, media stopped.
    let bye = format!(
        "BYE sip:dialgate@127.0.0.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5071;branch=z9hG4bK-bye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=phonetag\r\nTo: <sip:echo@127.0.0.1:5061>;tag={our_tag}\r\n\
         Call-ID: call-1@phone\r\nCSeq: 8 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    h.phone_sends(parse(bye.as_bytes()));
    assert_eq!(h.statuses(Flow::Phone(PHONE_FLOW)), vec![200]);
    let byes = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(byes[0].method(), Some(&Method::Bye));
    assert_eq!(byes[0].to().tag(), Some("bridgetag"));
    assert!(h.out.iter().any(|o| matches!(o, Output::StopMedia { .. })));
    assert_eq!(h.b2b.call_count(), 0);
}

#[test]
fn a_certificate_that_expired_after_admission_gets_403_for_new_calls() {
    let mut h = harness();
    h.b2b
        .handle_input(h.now, Input::PhoneCertificateExpired { flow: PHONE_FLOW });
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-x", "call-x"));
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    let last = to_phone.last().unwrap();
    assert_eq!(last.status().unwrap().as_u16(), 403);
    assert!(warning_of(last).contains("certificate expired"));
    assert!(
        h.sent(Flow::Trunk(TrunkId(0))).is_empty(),
        "nothing sent to the bridge"
    );
}

#[test]
fn the_network_verdict_refuses_new_calls_with_its_warning_and_reopens() {
    use crate::netcheck::Verdict;
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    for (i, v) in [
        Verdict::Checking,
        Verdict::Intercepted,
        Verdict::CaptivePortal,
        Verdict::UdpBlocked,
        Verdict::Offline,
    ]
    .into_iter()
    .enumerate()
    {
        let r = v.refusal().expect("refuses");
        h.b2b.handle_input(h.now, Input::Network(Some(r.clone())));
        h.phone_sends(h.invite(
            "alice",
            "echo",
            &sdp,
            &format!("z9hG4bK-n{i}"),
            &format!("call-n{i}"),
        ));
        let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
        let last = to_phone.last().unwrap();
        assert_eq!(last.status().unwrap().as_u16(), 503, "{v:?}");
        assert_eq!(warning_of(last), r.warning(), "{v:?}");
        assert!(warning_of(last).contains(r.reason()));
        assert!(h.sent(Flow::Trunk(TrunkId(0))).is_empty(), "{v:?}");
        assert_eq!(h.b2b.call_count(), 0);
    }
    // An open policy gate does not reopen what the network closed.
    h.b2b.handle_input(h.now, Input::Gate(None));
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-g", "call-g"));
    assert_eq!(h.statuses(Flow::Phone(PHONE_FLOW)).last(), Some(&503));
    // Clean again: the call goes to the bridge.
    h.b2b
        .handle_input(h.now, Input::Network(Verdict::Clean.refusal()));
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-c", "call-c"));
    assert_eq!(
        h.sent(Flow::Trunk(TrunkId(0))).len(),
        1,
        "INVITE to the bridge"
    );
    assert_eq!(h.b2b.call_count(), 1);
}

#[test]
fn refusals_carry_the_right_status_and_a_warning() {
    let cases = [
        (
            "mallory",
            "echo",
            "RTP/SAVP",
            403,
            "identity does not match",
        ),
        ("alice", "nosuch", "RTP/SAVP", 404, "no such meeting"),
        ("alice", "secret", "RTP/SAVP", 403, "may not call"),
        ("alice", "echo", "RTP/AVP", 488, ""),
    ];
    for (from, alias, proto, status, why) in cases {
        let mut h = harness();
        let sdp = h.phone_sdp(proto);
        h.phone_sends(h.invite(from, alias, &sdp, "z9hG4bK-r", "call-r"));
        let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
        let last = to_phone.last().unwrap();
        assert_eq!(
            last.status().unwrap().as_u16(),
            status,
            "{from} -> {alias} {proto}"
        );
        let w = warning_of(last);
        assert!(w.starts_with("3") && w.contains(why), "{w}");
        assert!(
            h.sent(Flow::Trunk(TrunkId(0))).is_empty(),
            "nothing reaches the bridge"
        );
        assert_eq!(h.b2b.call_count(), 0);
        assert!(!h.out.iter().any(|o| matches!(o, Output::StartMedia(_))));
    }
}

#[test]
fn per_token_call_limit_gives_486() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    for i in 0..3 {
        h.phone_sends(h.invite(
            "alice",
            "echo",
            &sdp,
            &format!("z9hG4bK-l{i}"),
            &format!("c{i}"),
        ));
    }
    let statuses = h.statuses(Flow::Phone(PHONE_FLOW));
    assert_eq!(statuses, vec![100, 100, 100, 486]);
    assert_eq!(h.b2b.call_count(), 2);
}

#[test]
fn cancel_before_answer_reaches_the_bridge_and_cleans_up() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-c", "call-c"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.bridge_sends(bridge_response(&inv, 180, "bt", None).0);
    h.sent(Flow::Phone(PHONE_FLOW));
    let cancel = "CANCEL sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5071;branch=z9hG4bK-c\r\n\
                  Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=phonetag\r\nTo: <sip:echo@127.0.0.1:5061>\r\n\
                  Call-ID: call-c\r\nCSeq: 7 CANCEL\r\nContent-Length: 0\r\n\r\n";
    h.phone_sends(parse(cancel.as_bytes()));
    let mut s = h.statuses(Flow::Phone(PHONE_FLOW));
    s.sort();
    assert_eq!(s, vec![200, 487]);
    let to_bridge = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(to_bridge[0].method(), Some(&Method::Cancel));
    assert_eq!(
        to_bridge[0].top_via().branch(),
        inv.top_via().branch(),
        "CANCEL matches the INVITE"
    );
    // The bridge confirms with 487: the transaction ACKs it, media released.
    h.bridge_sends(bridge_response(&inv, 487, "bt", None).0);
    let acks = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(acks[0].method(), Some(&Method::Ack));
    assert!(h
        .out
        .iter()
        .any(|o| matches!(o, Output::ReleaseMedia { legs } if legs.len() == 2)));
    assert_eq!(h.b2b.call_count(), 0);
}

#[test]
fn bridge_failures_and_silence_map_to_phone_statuses() {
    for (bridge_status, phone_status) in [(486, 486), (404, 404), (500, 503), (603, 603)] {
        let mut h = harness();
        let sdp = h.phone_sdp("RTP/SAVP");
        h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-f", "call-f"));
        let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
        h.bridge_sends(bridge_response(&inv, bridge_status, "bt", None).0);
        assert_eq!(
            h.sent(Flow::Trunk(TrunkId(0)))[0].method(),
            Some(&Method::Ack)
        );
        assert_eq!(h.statuses(Flow::Phone(PHONE_FLOW)), vec![100, phone_status]);
        assert_eq!(h.b2b.call_count(), 0);
    }
    // A bridge that never answers: 503 after timer B (32 s).
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-t", "call-t"));
    h.sent(Flow::Trunk(TrunkId(0)));
    h.advance(Duration::from_secs(31));
    assert_eq!(h.statuses(Flow::Phone(PHONE_FLOW)), vec![100]);
    h.advance(Duration::from_secs(2));
    let s = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(s[0].status().unwrap().as_u16(), 503);
    assert!(warning_of(&s[0]).contains("did not answer"));
    // An unreachable trunk: 503 at once.
    let mut h = harness();
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-u", "call-u"));
    h.b2b
        .handle_input(h.now, Input::TrunkFailed { trunk: TrunkId(0) });
    h.collect();
    assert_eq!(h.statuses(Flow::Phone(PHONE_FLOW)), vec![100, 503]);
}

fn answered_call(h: &mut Harness, alias: &str) -> (String, Message) {
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", alias, &sdp, "z9hG4bK-a", "call-a"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.bridge_sends(bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000))).0);
    let ok = h
        .sent(Flow::Phone(PHONE_FLOW))
        .into_iter()
        .find(|m| m.status().is_some_and(|s| s.as_u16() == 200))
        .unwrap();
    h.sent(Flow::Trunk(TrunkId(0)));
    (ok.to().tag().unwrap().to_string(), inv)
}

/// The bridge's BYE for the call whose INVITE to the bridge was `inv`.
fn bridge_bye(inv: &Message, branch: &str) -> String {
    let f = inv.from();
    format!(
        "BYE sip:dialgate@127.0.0.2:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.9:5071;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:echo@bridge.test>;tag=bt\r\nTo: <{}>;tag={}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        f.uri,
        f.tag().unwrap(),
        inv.call_id()
    )
}

#[test]
fn a_bridge_may_hang_up_on_a_connection_of_its_own() {
    let mut h = harness();
    let (_, inv) = answered_call(&mut h, "echo");
    let bye = bridge_bye(&inv, "z9hG4bK-ib");
    // Not admitted by the listener: ignored.
    h.bridge_conn_sends(5, parse(bye.as_bytes()));
    h.collect();
    assert!(h.sent(Flow::Inbound(5)).is_empty());
    assert_eq!(h.b2b.call_count(), 1);
    // Admitted as trunk 0's bridge: 200 on that connection, call over.
    h.b2b.handle_input(
        h.now,
        Input::BridgeConnected {
            conn: 5,
            trunk: TrunkId(0),
        },
    );
    h.bridge_conn_sends(5, parse(bye.as_bytes()));
    h.collect();
    assert_eq!(h.statuses(Flow::Inbound(5)), vec![200]);
    assert_eq!(
        h.sent(Flow::Phone(PHONE_FLOW))[0].method(),
        Some(&Method::Bye)
    );
    assert_eq!(h.b2b.call_count(), 0);
    // A trunk index that does not exist is never admitted.
    h.b2b.handle_input(
        h.now,
        Input::BridgeConnected {
            conn: 6,
            trunk: TrunkId(9),
        },
    );
    h.bridge_conn_sends(6, parse(bye.as_bytes()));
    h.collect();
    assert!(h.sent(Flow::Inbound(6)).is_empty());
}

#[test]
fn bridge_hangup_and_media_inactivity_end_the_call_on_both_legs() {
    let mut h = harness();
    let (_, inv) = answered_call(&mut h, "echo");
    let bye = bridge_bye(&inv, "z9hG4bK-bb");
    h.bridge_sends(parse(bye.as_bytes()));
    assert_eq!(h.statuses(Flow::Trunk(TrunkId(0))), vec![200]);
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(to_phone[0].method(), Some(&Method::Bye));
    assert_eq!(
        to_phone[0].request_uri().unwrap().to_string(),
        "sip:alice@127.0.0.1:5071;transport=tls"
    );
    assert_eq!(h.b2b.call_count(), 0);

    let mut h = harness();
    answered_call(&mut h, "echo");
    let key = CallKey(1);
    h.b2b
        .handle_input(h.now, Input::MediaInactive { call: key });
    h.collect();
    assert_bye_on_both_legs(&mut h);
    assert!(h
        .out
        .iter()
        .any(|o| matches!(o, Output::StopMedia { call } if *call == key)));
}

#[test]
fn meeting_pin_is_sent_as_telephone_events_on_the_bridge_leg() {
    let mut h = harness();
    answered_call(&mut h, "board");
    let start = h.out.iter().find_map(|o| match o {
        Output::StartMedia(m) => Some(m.pin.clone()),
        _ => None,
    });
    let pin = start.expect("media started");
    // "1234#": 5 keys, 7 packets each (4 updates + 3 end packets).
    assert_eq!(pin.len(), 5 * 7);
    assert!(pin.iter().all(|f| f.payload_type == 101));
    let events: Vec<u8> = pin
        .iter()
        .filter(|f| f.marker)
        .map(|f| f.payload[0])
        .collect();
    assert_eq!(events, vec![1, 2, 3, 4, 11]);
}

#[test]
fn bridge_answer_without_acceptable_crypto_is_refused_and_hung_up() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-w", "call-w"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    // The bridge answers with a suite we never offered (as baresip does).
    let (ok, _) = bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000)));
    let text = String::from_utf8(ok.to_bytes()).unwrap();
    let wrong = MasterKey::generate(Suite::AeadAes256Gcm).unwrap();
    let start = text.find("a=crypto:1 AES_CM_128_HMAC_SHA1_80 ").unwrap();
    let end = text[start..].find("\r\n").unwrap() + start;
    let text = format!(
        "{}a=crypto:1 AEAD_AES_256_GCM {}{}",
        &text[..start],
        &*format_inline(&wrong),
        &text[end..]
    );
    let body_at = text.find("\r\n\r\n").unwrap() + 4;
    let body_len = text.len() - body_at;
    let text = regex_free_content_length(&text, body_len);
    h.bridge_sends(parse(text.as_bytes()));
    let to_bridge = h.sent(Flow::Trunk(TrunkId(0)));
    let methods: Vec<_> = to_bridge
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye], "ACK then hang up");
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(to_phone.last().unwrap().status().unwrap().as_u16(), 488);
    assert!(
        !h.out.iter().any(|o| matches!(o, Output::StartMedia(_))),
        "no insecure call"
    );
    assert_eq!(h.b2b.call_count(), 0);
}

fn regex_free_content_length(text: &str, len: usize) -> String {
    let start = text.find("Content-Length: ").unwrap();
    let end = text[start..].find("\r\n").unwrap() + start;
    format!("{}Content-Length: {len}{}", &text[..start], &text[end..])
}

#[test]
fn stray_and_unsupported_requests_get_481_405_501_and_options_200() {
    let mut h = harness();
    let req = |method: &str, to_tag: &str| {
        format!(
            "{method} sip:echo@127.0.0.1:5061 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5071;branch=z9hG4bK-{method}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:echo@127.0.0.1>{to_tag}\r\n\
             Call-ID: x-{method}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let mut seen = HashMap::new();
    for (method, tag) in [
        ("BYE", ";tag=nope"),
        ("OPTIONS", ""),
        ("REGISTER", ""),
        ("FROBNICATE", ""),
    ] {
        h.phone_sends(parse(req(method, tag).as_bytes()));
        seen.insert(method, h.statuses(Flow::Phone(PHONE_FLOW)));
    }
    assert_eq!(seen["BYE"], vec![481]);
    assert_eq!(seen["OPTIONS"], vec![200]);
    assert_eq!(seen["REGISTER"], vec![405]);
    assert_eq!(seen["FROBNICATE"], vec![501]);
    // A bridge may not start calls towards phones.
    let inv = h.invite(
        "echo",
        "alice",
        &h.phone_sdp("RTP/SAVP"),
        "z9hG4bK-in",
        "in-1",
    );
    h.bridge_sends(inv);
    assert_eq!(h.statuses(Flow::Trunk(TrunkId(0))), vec![403]);
}

fn reinvite(h: &Harness, our_tag: &str, sdp: &str, branch: &str, cseq: u32) -> Message {
    let text = format!(
        "INVITE sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.0.1:5071;branch={branch}\r\nMax-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1>;tag=phonetag\r\nTo: <sip:echo@127.0.0.1:5061>;tag={our_tag}\r\n\
         Call-ID: call-a\r\nCSeq: {cseq} INVITE\r\nContact: <sip:alice@127.0.0.1:5071;transport=tls>\r\n\
         {}Content-Length: {}\r\n\r\n{sdp}",
        if sdp.is_empty() { "" } else { "Content-Type: application/sdp\r\n" },
        sdp.len()
    );
    let _ = h;
    parse(text.as_bytes())
}

fn crypto_line(m: &Message) -> String {
    String::from_utf8_lossy(m.body())
        .lines()
        .find(|l| l.starts_with("a=crypto:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn hold_resume_and_refresh_keep_the_keys_and_the_media() {
    let mut h = harness();
    let (tag, _) = answered_call(&mut h, "echo");
    h.out.clear();
    let first_answer_key = {
        // The key we gave the phone at answer time, from the last SDP.
        let call = h.b2b.calls.values().next().unwrap();
        call.phone
            .last_sdp
            .clone()
            .unwrap()
            .lines()
            .find(|l| l.starts_with("a=crypto:"))
            .unwrap()
            .to_string()
    };
    let hold = h.phone_sdp("RTP/SAVP").replace("a=sendrecv", "a=sendonly");
    h.phone_sends(reinvite(&h, &tag, &hold, "z9hG4bK-hold", 8));
    let r = h.sent(Flow::Phone(PHONE_FLOW));
    let ok = r.iter().find(|m| m.status().is_some()).unwrap();
    assert_eq!(ok.status().unwrap().as_u16(), 200);
    assert!(
        String::from_utf8_lossy(ok.body()).contains("a=recvonly"),
        "hold mirrored"
    );
    assert_eq!(crypto_line(ok), first_answer_key, "our key unchanged");
    let resume = h.phone_sdp("RTP/SAVP");
    h.phone_sends(reinvite(&h, &tag, &resume, "z9hG4bK-resume", 9));
    let r = h.sent(Flow::Phone(PHONE_FLOW));
    let ok = r.iter().find(|m| m.status().is_some()).unwrap();
    assert_eq!(ok.status().unwrap().as_u16(), 200);
    assert!(String::from_utf8_lossy(ok.body()).contains("a=sendrecv"));
    // An offerless refresh gets our current SDP as the offer.
    h.phone_sends(reinvite(&h, &tag, "", "z9hG4bK-refresh", 10));
    let r = h.sent(Flow::Phone(PHONE_FLOW));
    let ok = r.iter().find(|m| m.status().is_some()).unwrap();
    assert_eq!(ok.status().unwrap().as_u16(), 200);
    assert_eq!(crypto_line(ok), first_answer_key);
    assert!(
        h.sent(Flow::Trunk(TrunkId(0))).is_empty(),
        "the bridge leg is not disturbed"
    );
    assert!(
        !h.out
            .iter()
            .any(|o| matches!(o, Output::StartMedia(_) | Output::StopMedia { .. })),
        "media keeps running"
    );
    assert_eq!(h.b2b.call_count(), 1);
}

#[test]
fn a_key_change_mid_call_rekeys_that_leg_only() {
    let mut h = harness();
    let (tag, _) = answered_call(&mut h, "echo");
    h.out.clear();
    h.phone_key = MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap();
    let rekey = h.phone_sdp("RTP/SAVP");
    h.phone_sends(reinvite(&h, &tag, &rekey, "z9hG4bK-rekey", 8));
    let r = h.sent(Flow::Phone(PHONE_FLOW));
    let resp = r.iter().find(|m| m.status().is_some()).unwrap();
    assert_eq!(resp.status().unwrap().as_u16(), 200);
    // Our answer carries a new key of ours, never the phone's.
    let answer = String::from_utf8_lossy(resp.body()).to_string();
    let ours = answer
        .lines()
        .find_map(|l| l.strip_prefix("a=crypto:"))
        .unwrap()
        .to_string();
    assert!(!rekey.contains(ours.split("inline:").nth(1).unwrap().trim()));
    let rekeyed: Vec<&Output> = h
        .out
        .iter()
        .filter(|o| matches!(o, Output::RekeyMedia { .. }))
        .collect();
    assert_eq!(rekeyed.len(), 1);
    match rekeyed[0] {
        Output::RekeyMedia {
            phone_leg,
            inbound,
            outbound,
            ..
        } => {
            assert!(*phone_leg, "only the phone leg");
            assert!(inbound.is_some() && outbound.is_some());
        }
        _ => unreachable!(),
    }
    // Nothing was sent to the bridge: its leg keeps its keys.
    assert!(h.sent(Flow::Trunk(TrunkId(0))).is_empty());
    assert_eq!(h.b2b.call_count(), 1);
    // A plain-RTP re-offer is refused, and the call still stands.
    let plain = h.phone_sdp("RTP/AVP");
    h.phone_sends(reinvite(&h, &tag, &plain, "z9hG4bK-plain", 9));
    let r = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(r.iter().find_map(|m| m.status()).unwrap().as_u16(), 488);
    assert_eq!(h.b2b.call_count(), 1);
}

#[test]
fn trunks_get_options_keepalives_and_silence_marks_them_down() {
    let mut h = harness();
    h.b2b.start(h.now);
    assert_eq!(h.b2b.trunk_up(TrunkId(0)), None);
    h.advance(Duration::from_secs(2));
    let opts = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(opts.len(), 1);
    assert_eq!(opts[0].method(), Some(&Method::Options));
    assert_eq!(
        opts[0].request_uri().unwrap().to_string(),
        "sip:bridge.test"
    );
    h.bridge_sends(build::Reply::new(&opts[0], 200, Some("b")).build().unwrap());
    assert_eq!(h.b2b.trunk_up(TrunkId(0)), Some(true));
    // The next one goes unanswered: down after timer F (32 s).
    h.advance(Duration::from_secs(30));
    assert_eq!(h.sent(Flow::Trunk(TrunkId(0))).len(), 1);
    h.advance(Duration::from_secs(33));
    assert_eq!(h.b2b.trunk_up(TrunkId(0)), Some(false));
}

#[test]
fn attempts_per_minute_per_token_are_limited_across_addresses() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    // alice from 20 addresses, one attempt each (under every per-address
    // limit): the 21st attempt within the minute is over her token's.
    let mut codes = Vec::new();
    for i in 0..21u16 {
        let flow = 100 + u64::from(i);
        h.b2b.handle_input(
            h.now,
            Input::PhoneConnected {
                flow,
                admitted: admitted("alice", 7, &format!("192.0.2.{}:5000", i + 1)),
            },
        );
        let invite = h.invite(
            "alice",
            "echo",
            &sdp,
            &format!("z9hG4bK-t{i}"),
            &format!("t{i}"),
        );
        h.b2b
            .handle_input(h.now, Input::Phone { flow, msg: invite });
        h.collect();
        codes.push(h.statuses(Flow::Phone(flow)).last().copied().unwrap_or(0));
    }
    // Two calls (calls_per_token), then 486 for the token's call limit,
    // then 503 once the token's attempt rate is exhausted.
    assert_eq!(codes[20], 503, "{codes:?}");
    assert!(codes[..20].iter().all(|c| *c != 503), "{codes:?}");
}

#[test]
fn attempts_per_minute_and_calls_per_address_are_limited() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    // Six attempts within a minute from one address: two calls (the token
    // limit), three 486 (token), then 503 with Retry-After (rate limit).
    for i in 0..6 {
        h.phone_sends(h.invite(
            "alice",
            "echo",
            &sdp,
            &format!("z9hG4bK-rl{i}"),
            &format!("rl{i}"),
        ));
    }
    let finals: Vec<Message> = h
        .sent(Flow::Phone(PHONE_FLOW))
        .into_iter()
        .filter(|m| m.status().is_some_and(|s| s.as_u16() >= 200))
        .collect();
    let codes: Vec<u16> = finals
        .iter()
        .map(|m| m.status().unwrap().as_u16())
        .collect();
    assert_eq!(codes, vec![486, 486, 486, 503]);
    let retry = finals[3]
        .raw(&crate::sip::HeaderName::parse("Retry-After").unwrap())
        .next();
    assert_eq!(retry, Some("60"));
    // A minute later the window has moved on (and the two calls, which the
    // scripted bridge never answered, have failed with 503).
    h.advance(Duration::from_secs(61));
    h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(h.b2b.call_count(), 0);
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-rl9", "rl9"));
    assert_eq!(
        h.statuses(Flow::Phone(PHONE_FLOW)),
        vec![100],
        "admitted: not rate-limited now"
    );

    // Another token from the same address: the address allows 3 calls.
    let mut grants = AliasGrants::new();
    grants.insert("alice".into(), HashSet::from(["echo".to_string()]));
    grants.insert("bob".into(), HashSet::from(["echo".to_string()]));
    h.b2b.handle_input(h.now, Input::Grants(grants));
    h.b2b.handle_input(
        h.now,
        Input::PhoneConnected {
            flow: 8,
            admitted: admitted("bob", 8, "127.0.0.1:40001"),
        },
    );
    // alice takes a second call: two from 127.0.0.1. bob's first is the
    // third; his second (within his own token limit) would be the fourth.
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-rl10", "rl10"));
    assert_eq!(h.statuses(Flow::Phone(PHONE_FLOW)), vec![100]);
    for i in 0..2 {
        let m = h.invite(
            "bob",
            "echo",
            &sdp,
            &format!("z9hG4bK-bob{i}"),
            &format!("bob{i}"),
        );
        h.b2b.handle_input(h.now, Input::Phone { flow: 8, msg: m });
        h.collect();
    }
    let bob = h.sent(Flow::Phone(8));
    let codes: Vec<u16> = bob.iter().map(|m| m.status().unwrap().as_u16()).collect();
    assert_eq!(codes, vec![100, 100, 486]);
    assert!(warning_of(bob.last().unwrap()).contains("from this address"));
}

#[test]
fn revoking_a_token_ends_its_live_calls_and_connections() {
    let mut h = harness();
    answered_call(&mut h, "echo");
    h.out.retain(|o| !matches!(o, Output::StartMedia(_)));
    h.b2b.handle_input(
        h.now,
        Input::Registry(registry(&[("alice", 7, true), ("bob", 8, false)])),
    );
    h.collect();
    assert_bye_on_both_legs(&mut h);
    assert!(h.out.iter().any(|o| matches!(o, Output::StopMedia { .. })));
    let last = h.out.last().unwrap();
    assert!(
        matches!(last, Output::Disconnect { flow } if *flow == PHONE_FLOW),
        "closed after the BYE"
    );
    assert_eq!(h.b2b.call_count(), 0);
    // The closed flow is no longer admitted: its messages are ignored.
    h.out.clear();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-after", "after"));
    assert!(h.out.is_empty());
}

#[test]
fn changed_trunk_settings_end_its_calls_and_close_its_connections() {
    let mut h = harness();
    answered_call(&mut h, "echo");
    h.out.clear();
    // The same settings again: nothing happens.
    let same = h.b2b.config.trunks.clone();
    h.b2b.handle_input(h.now, Input::Trunks(same.clone()));
    h.collect();
    assert!(h.out.is_empty(), "{:?}", h.out);
    assert_eq!(h.b2b.call_count(), 1);
    // New suites for the trunk: its call ends on both legs, its
    // connections close, the next offer uses the new suites.
    let mut changed = same;
    let t = changed.get_mut("echo").unwrap();
    t.suites = vec![Suite::AeadAes128Gcm];
    h.b2b.handle_input(h.now, Input::Trunks(changed));
    h.collect();
    assert_bye_on_both_legs(&mut h);
    assert!(h
        .out
        .iter()
        .any(|o| matches!(o, Output::CloseTrunk { trunk: TrunkId(0) })));
    assert_eq!(h.b2b.call_count(), 0);
    assert_eq!(
        h.b2b.trunk_config(TrunkId(0)).unwrap().suites,
        vec![Suite::AeadAes128Gcm]
    );
    h.out.clear();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-new", "call-new"));
    let offer = String::from_utf8_lossy(h.sent(Flow::Trunk(TrunkId(0)))[0].body()).to_string();
    assert!(
        offer.contains("AEAD_AES_128_GCM") && !offer.contains("AES_CM_128"),
        "{offer}"
    );
}

/// The first message to the phone and to the bridge is a BYE.
fn assert_bye_on_both_legs(h: &mut Harness) {
    assert_eq!(
        h.sent(Flow::Phone(PHONE_FLOW))[0].method(),
        Some(&Method::Bye)
    );
    assert_eq!(
        h.sent(Flow::Trunk(TrunkId(0)))[0].method(),
        Some(&Method::Bye)
    );
}

/// `msg` with extra header lines (before Content-Type).
fn with_headers(msg: &Message, extra: &str) -> Message {
    let text = String::from_utf8(msg.to_bytes()).unwrap();
    parse(
        text.replacen("Content-Type:", &format!("{extra}Content-Type:"), 1)
            .as_bytes(),
    )
}

#[test]
fn session_timer_asked_by_the_phone_is_enforced_and_refreshed() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    let inv = with_headers(
        &h.invite("alice", "echo", &sdp, "z9hG4bK-st", "call-a"),
        "Supported: timer\r\nSession-Expires: 90\r\n",
    );
    h.phone_sends(inv);
    let bridge_inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.bridge_sends(
        bridge_response(
            &bridge_inv,
            200,
            "bt",
            Some((&Policy::trunk_default(), 40000)),
        )
        .0,
    );
    let ok = h
        .sent(Flow::Phone(PHONE_FLOW))
        .into_iter()
        .find(|m| m.status().is_some_and(|s| s.as_u16() == 200))
        .unwrap();
    let se = ok.session_expires().expect("Session-Expires in the 200");
    assert_eq!(
        (se.delta, se.refresher()),
        (90, Some(crate::sip::Refresher::Uac))
    );
    assert!(ok.require().any(|t| t == "timer"));
    let tag = ok.to().tag().unwrap().to_string();
    h.sent(Flow::Trunk(TrunkId(0)));
    // A refresh at 50 s moves the deadline.
    h.advance(Duration::from_secs(50));
    let refresh = with_headers(
        &reinvite(&h, &tag, &sdp, "z9hG4bK-st-r", 8),
        "Supported: timer\r\nSession-Expires: 90\r\n",
    );
    h.phone_sends(refresh);
    let r = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(r.iter().find_map(|m| m.status()).unwrap().as_u16(), 200);
    h.advance(Duration::from_secs(55)); // 105 s: past the first deadline (60 s)
    assert!(h
        .sent(Flow::Trunk(TrunkId(0)))
        .iter()
        .all(|m| m.method() != Some(&Method::Bye)));
    assert_eq!(h.b2b.call_count(), 1);
    // No further refresh: 60 s after the last one, both legs get BYE.
    h.advance(Duration::from_secs(6));
    assert_bye_on_both_legs(&mut h);
    assert_eq!(h.b2b.call_count(), 0);
}

#[test]
fn a_session_interval_below_90_seconds_gets_422() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    let inv = with_headers(
        &h.invite("alice", "echo", &sdp, "z9hG4bK-422", "c422"),
        "Supported: timer\r\nSession-Expires: 30\r\n",
    );
    h.phone_sends(inv);
    let r = h.sent(Flow::Phone(PHONE_FLOW));
    let last = r.last().unwrap();
    assert_eq!(last.status().unwrap().as_u16(), 422);
    assert_eq!(last.min_se().map(|(d, _)| d), Some(90));
    assert!(h.sent(Flow::Trunk(TrunkId(0))).is_empty());
}

#[test]
fn in_dialog_requests_follow_a_record_route_to_another_address() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-rr", "call-rr"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    let (ok, _) = bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000)));
    // The bridge's proxy Record-Routes through another port (Webex: 5062).
    let text = String::from_utf8(ok.to_bytes()).unwrap().replace(
        "<sip:proxy.test;transport=tls;lr>",
        "<sip:127.0.0.9:5062;transport=tls;lr>",
    );
    h.bridge_sends(parse(text.as_bytes()));
    let acks = h.sent(Flow::Route(0));
    assert_eq!(acks[0].method(), Some(&Method::Ack), "ACK to the route hop");
    assert_eq!(
        h.b2b.route_target(0),
        Some((TrunkId(0), "127.0.0.9:5062".parse().unwrap()))
    );
    assert!(h.sent(Flow::Trunk(TrunkId(0))).is_empty());
    h.b2b
        .handle_input(h.now, Input::MediaInactive { call: CallKey(1) });
    h.collect();
    assert_eq!(h.sent(Flow::Route(0))[0].method(), Some(&Method::Bye));
}

#[test]
fn webex_trunks_get_sip_uris_over_tls_for_a_sips_directory_entry() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "wbx", &sdp, "z9hG4bK-wx", "call-wx"));
    let inv = h.sent(Flow::Trunk(TrunkId(1))).remove(0);
    assert_eq!(
        inv.request_uri().unwrap().to_string(),
        "sip:2400123@webex.test;transport=tls"
    );
}

#[test]
fn early_media_from_the_bridge_starts_media_and_the_answer_stands() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-em", "call-em"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.out.clear();
    // 183 Session Progress with SDP (an announcement before answer).
    let (early, _) = bridge_response(&inv, 183, "bt", Some((&Policy::trunk_default(), 40000)));
    let early_text = String::from_utf8(early.to_bytes()).unwrap();
    h.bridge_sends(early);
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    let p183 = to_phone
        .iter()
        .find(|m| m.status().is_some_and(|s| s.as_u16() == 183))
        .expect("183 to the phone");
    let early_answer = p183.body().to_vec();
    assert!(String::from_utf8_lossy(&early_answer).contains("a=crypto:"));
    let starts = |h: &Harness| {
        h.out
            .iter()
            .filter(|o| matches!(o, Output::StartMedia(_)))
            .count()
    };
    assert_eq!(starts(&h), 1, "media runs during early media");
    match h.out.iter().find(|o| matches!(o, Output::StartMedia(_))) {
        Some(Output::StartMedia(m)) => assert!(m.tone.is_empty() && m.pin.is_empty()),
        _ => unreachable!(),
    }
    // 200 with the same answer: no new media, the same answer to the
    // phone (RFC 3261 §13.2.1), then the secure tone.
    let rest = &early_text[early_text.find("\r\n").unwrap()..];
    let ok = parse(format!("SIP/2.0 200 OK{rest}").as_bytes());
    h.bridge_sends(ok);
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    let p200 = to_phone
        .iter()
        .find(|m| m.status().is_some_and(|s| s.as_u16() == 200))
        .expect("200 to the phone");
    assert_eq!(p200.body(), &early_answer[..]);
    assert_eq!(starts(&h), 1, "no second media start");
    assert!(h.out.iter().any(|o| matches!(
        o,
        Output::Play {
            phone_leg: true,
            mute: true,
            ..
        }
    )));
    assert!(!h.out.iter().any(|o| matches!(o, Output::RekeyMedia { .. })));
    assert_eq!(
        h.sent(Flow::Trunk(TrunkId(0)))[0].method(),
        Some(&Method::Ack)
    );
    assert_eq!(h.b2b.call_count(), 1);
}

#[test]
fn a_bridge_that_changes_its_key_between_183_and_200_is_rekeyed() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-ek", "call-ek"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.bridge_sends(bridge_response(&inv, 183, "bt", Some((&Policy::trunk_default(), 40000))).0);
    h.out.clear();
    // A fresh answer: another key of the bridge's.
    h.bridge_sends(bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000))).0);
    assert!(h.out.iter().any(|o| matches!(
        o,
        Output::RekeyMedia {
            phone_leg: false,
            inbound: Some(_),
            outbound: None,
            ..
        }
    )));
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    assert!(to_phone
        .iter()
        .any(|m| m.status().is_some_and(|s| s.as_u16() == 200)));
}

#[test]
fn a_record_route_to_an_address_the_trunk_does_not_list_is_not_followed() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-rx", "call-rx"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    let (ok, _) = bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000)));
    // A bridge (or whoever holds its certificate) names a hop of its own
    // choosing: the kit must not connect there.
    let text = String::from_utf8(ok.to_bytes()).unwrap().replace(
        "<sip:proxy.test;transport=tls;lr>",
        "<sip:192.0.2.66:5099;transport=tls;lr>",
    );
    h.bridge_sends(parse(text.as_bytes()));
    assert!(h.sent(Flow::Route(0)).is_empty());
    assert_eq!(h.b2b.route_target(0), None);
    let acks = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(acks[0].method(), Some(&Method::Ack), "ACK on the trunk");
}

#[test]
fn a_trunk_a_policy_adds_gets_an_id_and_carries_calls_until_it_is_dropped() {
    let mut h = harness();
    let mut trunks = h.b2b.config.trunks.clone();
    let mut added = trunks["echo"].clone();
    added.name = "added".into();
    added.connect = crate::config::Connect::Addr("127.0.0.1:5090".parse().unwrap());
    trunks.insert("added".into(), added);
    h.b2b.handle_input(h.now, Input::Trunks(trunks.clone()));
    let mut directory = h.b2b.directory.clone();
    directory.insert(
        "new".into(),
        DirectoryEntry {
            alias: "new".into(),
            uri: "sip:new@bridge.test".into(),
            trunk: "added".into(),
            pin: None,
        },
    );
    h.b2b.handle_input(h.now, Input::Directory(directory));
    let mut grants = AliasGrants::new();
    grants.insert("alice".into(), HashSet::from(["new".to_string()]));
    h.b2b.handle_input(h.now, Input::Grants(grants));
    let id = TrunkId(2);
    assert_eq!(h.b2b.trunk_ids(), vec![TrunkId(0), TrunkId(1), id]);
    assert_eq!(
        h.b2b.trunk_config(id).unwrap().connect,
        crate::config::Connect::Addr("127.0.0.1:5090".parse().unwrap())
    );
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "new", &sdp, "z9hG4bK-n", "call-n"));
    let inv = h.sent(Flow::Trunk(id));
    assert_eq!(
        inv[0].method(),
        Some(&Method::Invite),
        "INVITE on the new trunk"
    );
    // A later policy without it: its call ends, its connections close,
    // its id names nothing and calls to it are refused.
    trunks.remove("added");
    h.b2b.handle_input(h.now, Input::Trunks(trunks));
    h.collect();
    assert!(h
        .out
        .iter()
        .any(|o| matches!(o, Output::CloseTrunk { trunk } if *trunk == id)));
    assert_eq!(h.b2b.trunk_config(id), None);
    assert_eq!(h.b2b.call_count(), 1, "waiting for the CANCEL's outcome");
    let s = h.sent(Flow::Phone(PHONE_FLOW));
    let last = s.last().unwrap();
    assert_eq!(last.status().unwrap().as_u16(), 503);
    h.phone_sends(h.invite("alice", "new", &sdp, "z9hG4bK-n2", "call-n2"));
    let s = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(s.last().unwrap().status().unwrap().as_u16(), 503);
    assert!(warning_of(s.last().unwrap()).contains("trunk not configured"));
    h.advance(Duration::from_secs(33));
    assert_eq!(h.b2b.call_count(), 0, "the CANCEL wait is bounded");
}

#[test]
fn revocation_during_set_up_answers_the_phone_and_cancels_the_bridge() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-rv", "call-rv"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.bridge_sends(bridge_response(&inv, 180, "bt", None).0);
    h.sent(Flow::Phone(PHONE_FLOW));
    h.b2b.handle_input(
        h.now,
        Input::Registry(registry(&[("alice", 7, true), ("bob", 8, false)])),
    );
    h.collect();
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(to_phone[0].status().unwrap().as_u16(), 403);
    assert!(warning_of(&to_phone[0]).contains("token revoked"));
    let to_bridge = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(to_bridge[0].method(), Some(&Method::Cancel));
    assert!(h
        .out
        .iter()
        .any(|o| matches!(o, Output::ReleaseMedia { legs } if legs.len() == 2)));
    // The bridge's 200 crossed the CANCEL: ACKed and hung up at once, no
    // media for a revoked token.
    h.out.clear();
    h.bridge_sends(bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000))).0);
    let methods: Vec<Method> = h
        .sent(Flow::Trunk(TrunkId(0)))
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert!(!h.out.iter().any(|o| matches!(o, Output::StartMedia(_))));
    assert_eq!(h.b2b.call_count(), 0);
}

#[test]
fn early_media_that_goes_silent_gives_the_phone_a_final_answer() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-es", "call-es"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.bridge_sends(bridge_response(&inv, 183, "bt", Some((&Policy::trunk_default(), 40000))).0);
    h.sent(Flow::Phone(PHONE_FLOW));
    h.b2b
        .handle_input(h.now, Input::MediaInactive { call: CallKey(1) });
    h.collect();
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(to_phone[0].status().unwrap().as_u16(), 480);
    assert_eq!(
        h.sent(Flow::Trunk(TrunkId(0)))[0].method(),
        Some(&Method::Cancel)
    );
    assert!(h
        .out
        .iter()
        .any(|o| matches!(o, Output::StopMedia { call } if *call == CallKey(1))));
}

#[test]
fn a_bridge_that_rings_forever_is_given_up_after_the_set_up_time() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-rf", "call-rf"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.bridge_sends(bridge_response(&inv, 180, "bt", None).0);
    h.sent(Flow::Phone(PHONE_FLOW));
    // Ringing for two minutes is fine (Timer B does not apply).
    h.advance(Duration::from_secs(120));
    assert!(h.sent(Flow::Phone(PHONE_FLOW)).is_empty());
    h.advance(Duration::from_secs(61));
    let s = h.sent(Flow::Phone(PHONE_FLOW));
    assert_eq!(s[0].status().unwrap().as_u16(), 408);
    assert_eq!(
        h.sent(Flow::Trunk(TrunkId(0)))[0].method(),
        Some(&Method::Cancel)
    );
    // The bridge never answers the CANCEL either: the state goes anyway.
    h.advance(Duration::from_secs(33));
    assert_eq!(h.b2b.call_count(), 0);
    assert!(h.b2b.txs.is_empty());
}

#[test]
fn a_re_keyed_token_loses_the_connections_and_calls_of_its_old_key() {
    // HQ gives alice a new token: same name, new key. Her connection made
    // with the old key closes at once and its call ends (by key, not by
    // name); a connection with the new key places calls.
    let mut h = harness();
    answered_call(&mut h, "echo");
    h.out.clear();
    h.b2b.handle_input(
        h.now,
        Input::Registry(registry(&[("alice", 9, false), ("bob", 8, false)])),
    );
    h.collect();
    assert_bye_on_both_legs(&mut h);
    assert!(h
        .out
        .iter()
        .any(|o| matches!(o, Output::Disconnect { flow } if *flow == PHONE_FLOW)));
    assert_eq!(h.b2b.call_count(), 0);
    // A message that was already on its way on the old connection is not
    // acted on.
    h.out.clear();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-old", "call-old"));
    assert!(h.sent(Flow::Phone(PHONE_FLOW)).is_empty());
    assert!(h.sent(Flow::Trunk(TrunkId(0))).is_empty());
    // The new key's connection calls.
    h.b2b.handle_input(
        h.now,
        Input::PhoneConnected {
            flow: 21,
            admitted: admitted("alice", 9, "127.0.0.1:40010"),
        },
    );
    let invite = h.invite("alice", "echo", &sdp, "z9hG4bK-new9", "call-new9");
    h.b2b.handle_input(
        h.now,
        Input::Phone {
            flow: 21,
            msg: invite,
        },
    );
    h.collect();
    assert_eq!(
        h.sent(Flow::Trunk(TrunkId(0)))[0].method(),
        Some(&Method::Invite)
    );
}

#[test]
fn a_connection_handed_over_after_its_key_was_revoked_is_closed() {
    // The handshake admitted the key just before the revocation reached
    // the core: the hand-over is checked against the registry in force.
    let mut h = harness();
    h.b2b.handle_input(
        h.now,
        Input::Registry(registry(&[("alice", 7, false), ("bob", 8, true)])),
    );
    h.collect();
    h.out.clear();
    h.b2b.handle_input(
        h.now,
        Input::PhoneConnected {
            flow: 30,
            admitted: admitted("bob", 8, "127.0.0.1:40020"),
        },
    );
    h.collect();
    assert!(h
        .out
        .iter()
        .any(|o| matches!(o, Output::Disconnect { flow: 30 })));
    let sdp = h.phone_sdp("RTP/SAVP");
    let invite = h.invite("bob", "echo", &sdp, "z9hG4bK-bob", "call-bob");
    h.b2b.handle_input(
        h.now,
        Input::Phone {
            flow: 30,
            msg: invite,
        },
    );
    h.collect();
    assert!(h.sent(Flow::Trunk(TrunkId(0))).is_empty());
    assert!(h.sent(Flow::Phone(30)).is_empty());
}

fn cancel_of(branch: &str, call_id: &str, user: &str) -> Message {
    let text = format!(
        "CANCEL sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5071;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=phonetag\r\nTo: <sip:echo@127.0.0.1:5061>\r\n\
         Call-ID: {call_id}\r\nCSeq: 7 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    parse(text.as_bytes())
}

#[test]
fn a_cancel_matching_nothing_gets_481_and_another_connection_cannot_cancel() {
    let mut h = harness();
    h.phone_sends(cancel_of("z9hG4bK-none", "call-none", "alice"));
    assert_eq!(h.statuses(Flow::Phone(PHONE_FLOW)), vec![481]);
    // alice's call; bob, on his own connection, forges her CANCEL (same
    // branch, sent-by and Call-ID): 481, and her call goes on.
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-x1", "call-x1"));
    h.sent(Flow::Phone(PHONE_FLOW));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    h.bridge_sends(bridge_response(&inv, 180, "bt", None).0);
    h.sent(Flow::Phone(PHONE_FLOW));
    h.b2b.handle_input(
        h.now,
        Input::PhoneConnected {
            flow: 8,
            admitted: admitted("bob", 8, "127.0.0.1:40000"),
        },
    );
    let forged = cancel_of("z9hG4bK-x1", "call-x1", "bob");
    h.b2b.handle_input(
        h.now,
        Input::Phone {
            flow: 8,
            msg: forged,
        },
    );
    h.collect();
    assert_eq!(h.statuses(Flow::Phone(8)), vec![481]);
    assert!(
        h.sent(Flow::Trunk(TrunkId(0))).is_empty(),
        "no CANCEL to the bridge"
    );
    assert!(
        h.sent(Flow::Phone(PHONE_FLOW)).is_empty(),
        "alice's INVITE still pending"
    );
    // Her own CANCEL works.
    h.phone_sends(cancel_of("z9hG4bK-x1", "call-x1", "alice"));
    let mut s = h.statuses(Flow::Phone(PHONE_FLOW));
    s.sort();
    assert_eq!(s, vec![200, 487]);
}

#[test]
fn a_response_on_another_connection_than_its_request_is_ignored() {
    // A phone that learnt (or guessed) the bridge INVITE's branch cannot
    // answer it: responses count only where their request went.
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-fr", "call-fr"));
    h.sent(Flow::Phone(PHONE_FLOW));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    let (ok, _) = bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000)));
    h.phone_sends(ok.clone());
    assert!(
        h.sent(Flow::Phone(PHONE_FLOW)).is_empty(),
        "no 200 to the phone"
    );
    assert!(h.sent(Flow::Trunk(TrunkId(0))).is_empty(), "no ACK");
    assert!(!h.out.iter().any(|o| matches!(o, Output::StartMedia(_))));
    // From the trunk, the same response sets the call up.
    h.bridge_sends(ok);
    assert!(h.statuses(Flow::Phone(PHONE_FLOW)).contains(&200));
}

/// The relay's phone-leg and bridge-leg destinations of the call started.
fn media_destinations(h: &Harness) -> (Option<SocketAddr>, Option<SocketAddr>) {
    match h.out.iter().find(|o| matches!(o, Output::StartMedia(_))) {
        Some(Output::StartMedia(m)) => (m.phone.1.remote_rtp, m.bridge.1.remote_rtp),
        _ => panic!("no media started"),
    }
}

#[test]
fn media_is_never_sent_where_the_peer_is_not_before_latching() {
    // A phone on 192.0.2.50 aims its media at the box's loopback (or sits
    // behind a NAT with a private address in c=): the call goes on, but the
    // relay sends nothing there; it waits for the phone's first packet.
    let mut h = harness();
    h.b2b.handle_input(
        h.now,
        Input::PhoneConnected {
            flow: 40,
            admitted: admitted("alice", 7, "192.0.2.50:40000"),
        },
    );
    for (aimed, kept) in [
        ("127.0.0.1", false),
        ("169.254.0.7", false),
        ("127.0.0.2", false),
        ("192.0.2.50", true),
    ] {
        h.out.clear();
        let sdp = h
            .phone_sdp("RTP/SAVP")
            .replace("IN IP4 127.0.0.1", &format!("IN IP4 {aimed}"));
        let invite = h.invite(
            "alice",
            "echo",
            &sdp,
            &format!("z9hG4bK-m{aimed}"),
            &format!("m{aimed}"),
        );
        h.b2b.handle_input(
            h.now,
            Input::Phone {
                flow: 40,
                msg: invite,
            },
        );
        h.collect();
        let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
        h.bridge_sends(bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000))).0);
        let (phone, bridge) = media_destinations(&h);
        assert_eq!(phone.is_some(), kept, "{aimed}: {phone:?}");
        assert_eq!(bridge, Some("127.0.0.9:40000".parse().unwrap()));
        // Hang up (the token's call limit is 2).
        let call = match h.out.iter().find(|o| matches!(o, Output::StartMedia(_))) {
            Some(Output::StartMedia(m)) => m.call,
            _ => unreachable!(),
        };
        h.b2b.handle_input(h.now, Input::MediaInactive { call });
        h.collect();
    }
}

#[test]
fn a_bridge_answer_aiming_media_at_the_kit_is_not_followed() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-ba", "call-ba"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    let (ok, _) = bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000)));
    // 127.0.0.2 is the kit's own (the trunk's media address).
    let text = String::from_utf8(ok.to_bytes())
        .unwrap()
        .replace("IN IP4 127.0.0.9", "IN IP4 127.0.0.2");
    h.bridge_sends(parse(text.as_bytes()));
    let (phone, bridge) = media_destinations(&h);
    assert_eq!(phone, Some("127.0.0.1:20000".parse().unwrap()));
    assert_eq!(
        bridge, None,
        "the relay waits for the bridge's first packet"
    );
}

#[test]
fn a_route_set_longer_than_eight_hops_is_refused() {
    let mut h = harness();
    let sdp = h.phone_sdp("RTP/SAVP");
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-rs", "call-rs"));
    let inv = h.sent(Flow::Trunk(TrunkId(0))).remove(0);
    let (ok, _) = bridge_response(&inv, 200, "bt", Some((&Policy::trunk_default(), 40000)));
    let hops: Vec<String> = (0..9)
        .map(|i| format!("<sip:proxy{i}.test;transport=tls;lr>"))
        .collect();
    let text = String::from_utf8(ok.to_bytes())
        .unwrap()
        .replace("<sip:proxy.test;transport=tls;lr>", &hops.join(", "));
    h.bridge_sends(parse(text.as_bytes()));
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    assert!(to_phone
        .iter()
        .any(|m| m.status().is_some_and(|s| s.as_u16() == 502)));
    let methods: Vec<Method> = h
        .sent(Flow::Trunk(TrunkId(0)))
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(h.b2b.call_count(), 0);
}

#[test]
fn a_silent_connection_without_calls_is_closed_and_one_with_a_call_is_kept() {
    let mut h = harness();
    // A second connection (bob) that pings now and then stays.
    h.b2b.handle_input(
        h.now,
        Input::PhoneConnected {
            flow: 8,
            admitted: admitted("bob", 8, "127.0.0.1:40001"),
        },
    );
    // alice has a call; bob pings; a third connection says nothing.
    answered_call(&mut h, "echo");
    h.b2b.handle_input(
        h.now,
        Input::PhoneConnected {
            flow: 9,
            admitted: admitted("bob", 8, "127.0.0.1:40002"),
        },
    );
    h.out.clear();
    for _ in 0..4 {
        h.advance(Duration::from_secs(200));
        h.b2b.handle_input(h.now, Input::PhoneAlive { flow: 8 });
    }
    h.collect();
    let closed: Vec<u64> = h
        .out
        .iter()
        .filter_map(|o| match o {
            Output::Disconnect { flow } => Some(*flow),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![9], "only the silent connection without a call");
    assert_eq!(h.b2b.call_count(), 1, "alice's call goes on");
}

#[test]
fn debug_of_a_call_shows_no_key_and_no_pin() {
    let mut h = harness();
    answered_call(&mut h, "board");
    let phone_inline = format_inline(&h.phone_key).to_string();
    for call in h.b2b.calls.values() {
        let text = format!("{call:?}");
        assert!(!text.contains("inline"), "{text}");
        assert!(!text.contains(&phone_inline[7..20]), "{text}");
        assert!(!text.contains("1234#"), "PIN in {text}");
        let invite = format!("{:?}", call.phone.invite);
        assert!(
            invite.contains("body_len") && !invite.contains("a=crypto"),
            "{invite}"
        );
    }
}

#[test]
fn a_wildcard_trunk_media_address_is_the_uplinks_as_the_trunk_connects_from() {
    let mut h = harness();
    let mut wild = h.b2b.config.trunks.clone();
    wild.get_mut("echo").unwrap().media_address = "0.0.0.0".parse().unwrap();
    h.b2b.handle_input(h.now, Input::Trunks(wild.clone()));
    h.collect();
    h.out.clear();
    let sdp = h.phone_sdp("RTP/SAVP");
    // Not connected yet: no address to offer the bridge, a clear refusal.
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-w0", "call-w0"));
    let to_phone = h.sent(Flow::Phone(PHONE_FLOW));
    let last = to_phone.last().unwrap();
    assert_eq!(last.status().unwrap().as_u16(), 503);
    assert!(
        warning_of(last).contains("trunk not connected yet"),
        "{}",
        warning_of(last)
    );
    assert!(h.sent(Flow::Trunk(TrunkId(0))).is_empty());
    assert_eq!(h.b2b.call_count(), 0);
    // ... and the trunk's keep-alive goes out at once, connecting it.
    h.b2b.handle_timeout(h.now);
    h.collect();
    let keepalive = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(keepalive.len(), 1, "an OPTIONS to connect the trunk");
    assert_eq!(keepalive[0].method(), Some(&Method::Options));
    // Another family, or the wildcard itself, teaches nothing.
    for nothing in ["2001:db8::50", "0.0.0.0"] {
        h.b2b.handle_input(
            h.now,
            Input::TrunkLocal {
                trunk: TrunkId(0),
                local: nothing.parse().unwrap(),
            },
        );
        assert!(h
            .b2b
            .trunk_config(TrunkId(0))
            .unwrap()
            .media_address
            .is_unspecified());
    }
    // The trunk connected from the uplink's address: new legs bind and
    // offer it, in the SDP and the Via.
    h.b2b.handle_input(
        h.now,
        Input::TrunkLocal {
            trunk: TrunkId(0),
            local: "192.0.2.50".parse().unwrap(),
        },
    );
    h.phone_sends(h.invite("alice", "echo", &sdp, "z9hG4bK-w1", "call-w1"));
    let to_bridge = h.sent(Flow::Trunk(TrunkId(0)));
    assert_eq!(to_bridge.len(), 1, "the INVITE to the bridge");
    let invite = String::from_utf8_lossy(&to_bridge[0].to_bytes()).to_string();
    assert!(invite.contains("c=IN IP4 192.0.2.50"), "{invite}");
    assert!(invite.contains("Via: SIP/2.0/TLS 192.0.2.50"), "{invite}");
    assert_eq!(h.b2b.call_count(), 1);
    // The same settings again are no change (the learnt address is not a
    // setting): the call goes on, no connection is closed.
    h.out.clear();
    h.b2b.handle_input(h.now, Input::Trunks(wild));
    h.collect();
    assert!(h.out.is_empty(), "{:?}", h.out);
    assert_eq!(h.b2b.call_count(), 1);
    // The uplink moved (a new lease, a new connection): new legs follow.
    h.b2b.handle_input(
        h.now,
        Input::TrunkLocal {
            trunk: TrunkId(0),
            local: "198.51.100.7".parse().unwrap(),
        },
    );
    assert_eq!(
        h.b2b.trunk_config(TrunkId(0)).unwrap().media_address,
        "198.51.100.7".parse::<std::net::IpAddr>().unwrap()
    );
    // A trunk with an address of its own keeps it whatever it connects from.
    let mut h = harness();
    let fixed = h.b2b.trunk_config(TrunkId(0)).unwrap().media_address;
    h.b2b.handle_input(
        h.now,
        Input::TrunkLocal {
            trunk: TrunkId(0),
            local: "192.0.2.50".parse().unwrap(),
        },
    );
    assert_eq!(h.b2b.trunk_config(TrunkId(0)).unwrap().media_address, fixed);
}
