//! The scripted peers of the simulator: how a phone and the bridge answer
//! what the B2BUA sends them, and the requests they make.

use super::*;

impl World {
    pub(super) fn phone_receives(&mut self, flow: u64, msg: Message) {
        if let Some(method) = msg.method() {
            // The gateway's BYE (or anything else): 200.
            if *method != Method::Ack {
                if let Some(c) = self.phone.get_mut(msg.call_id()) {
                    c.hung_up = true;
                }
                let ok = build::Reply::new(&msg, 200, None).build().unwrap();
                self.post(flow, Hop::Gateway(Flow::Phone(flow), ok));
            }
            return;
        }
        let code = msg.status().unwrap().as_u16();
        let Some(c) = self.phone.get_mut(msg.call_id()) else {
            return;
        };
        if msg.cseq().method != Method::Invite {
            return;
        }
        if (101..200).contains(&code) {
            c.early = msg.to().tag().map(str::to_string);
        }
        if code / 100 != 2 {
            return;
        }
        if msg.cseq().seq == 7 {
            c.dialog = msg.to().tag().map(str::to_string);
        }
        // ACK the 2xx.
        let tag = msg.to().tag().unwrap_or_default().to_string();
        let ack = format!(
            "ACK sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5071;branch=z9hG4bK-ack{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{}@127.0.0.1>;tag=phonetag\r\nTo: <sip:echo@127.0.0.1:5061>;tag={tag}\r\n\
             Call-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            self.seq,
            TOKENS[c.flow_token],
            msg.call_id(),
            msg.cseq().seq
        );
        self.post(flow, Hop::Gateway(Flow::Phone(flow), parse(ack.as_bytes())));
    }

    pub(super) fn bridge_receives(&mut self, msg: Message) {
        let Some(method) = msg.method().cloned() else {
            return; // responses to our BYEs
        };
        let reply = |m: &Message, code: u16, tag: Option<&str>| {
            build::Reply::new(m, code, tag).build().unwrap()
        };
        let known = self.bridge.get(msg.call_id()).filter(|c| !c.dead).is_some();
        match method {
            Method::Invite if msg.to().tag().is_none() => {
                let tag = format!("bt{}", self.seq);
                self.post(
                    0,
                    Hop::Gateway(Flow::Trunk(TrunkId(0)), reply(&msg, 100, None)),
                );
                self.bridge.insert(
                    msg.call_id().to_string(),
                    BridgeCall {
                        invite: msg,
                        to_tag: tag,
                        final_sent: false,
                        answered: false,
                        ended: false,
                        dead: false,
                    },
                );
            }
            Method::Cancel if known => {
                self.post(
                    0,
                    Hop::Gateway(Flow::Trunk(TrunkId(0)), reply(&msg, 200, None)),
                );
                let c = self.bridge.get_mut(msg.call_id()).unwrap();
                if !c.final_sent {
                    c.final_sent = true;
                    let r = reply(&c.invite, 487, Some(&c.to_tag.clone()));
                    self.post(0, Hop::Gateway(Flow::Trunk(TrunkId(0)), r));
                }
            }
            Method::Bye if known => {
                self.bridge.get_mut(msg.call_id()).unwrap().ended = true;
                self.post(
                    0,
                    Hop::Gateway(Flow::Trunk(TrunkId(0)), reply(&msg, 200, None)),
                );
            }
            Method::Ack => {}
            Method::Options if msg.to().tag().is_none() => {
                self.post(
                    0,
                    Hop::Gateway(Flow::Trunk(TrunkId(0)), reply(&msg, 200, None)),
                );
            }
            _ => self.post(
                0,
                Hop::Gateway(Flow::Trunk(TrunkId(0)), reply(&msg, 481, None)),
            ),
        }
    }

    pub(super) fn phone_invite(&mut self, token: usize) {
        let Some(flow) = self.flows[token] else {
            return;
        };
        self.next_call += 1;
        let call_id = format!("sim-{}", self.next_call);
        let branch = format!("z9hG4bK-sim{}", self.next_call);
        let key = crate::srtp::MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap();
        let sdp = format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 20000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\na=sendrecv\r\n",
            &*format_inline(&key)
        );
        let text = format!(
            "INVITE sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.1:5071;branch={branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=phonetag\r\nTo: <sip:echo@127.0.0.1:5061>\r\n\
             Call-ID: {call_id}\r\nCSeq: 7 INVITE\r\n\
             Contact: <sip:{user}@127.0.0.1:5071;transport=tls>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            user = TOKENS[token],
        );
        let invite = parse(text.as_bytes());
        self.phone.insert(
            call_id,
            PhoneCall {
                flow_token: token,
                invite: invite.clone(),
                branch,
                finals: Vec::new(),
                delivered: false,
                early: None,
                dialog: None,
                hung_up: false,
            },
        );
        self.post(flow, Hop::Gateway(Flow::Phone(flow), invite));
    }

    /// A phone request in a call: CANCEL, BYE or re-INVITE.
    pub(super) fn phone_request(&mut self, call_id: &str, method: &str) {
        let Some(c) = self.phone.get(call_id) else {
            return;
        };
        let Some(flow) = self.flows[c.flow_token] else {
            return;
        };
        let user = TOKENS[c.flow_token];
        let (branch, to, cseq) = match method {
            "CANCEL" => (c.branch.clone(), String::new(), 7),
            _ => {
                // BYE early (on the 1xx's dialog) or late.
                let Some(tag) = c.dialog.as_ref().or(c.early.as_ref()) else {
                    return;
                };
                (
                    format!("z9hG4bK-p{}", self.seq),
                    format!(";tag={tag}"),
                    8 + self.seq as u32,
                )
            }
        };
        let body = if method == "INVITE" {
            c.invite.body().to_vec()
        } else {
            Vec::new()
        };
        let text = format!(
            "{method} sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.1:5071;branch={branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=phonetag\r\nTo: <sip:echo@127.0.0.1:5061>{to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{}Content-Length: {}\r\n\r\n",
            if body.is_empty() {
                ""
            } else {
                "Content-Type: application/sdp\r\n"
            },
            body.len()
        );
        let mut bytes = text.into_bytes();
        bytes.extend(body);
        if method == "BYE" {
            if let Some(c) = self.phone.get_mut(call_id) {
                c.hung_up = true;
            }
        }
        self.post(flow, Hop::Gateway(Flow::Phone(flow), parse(&bytes)));
    }

    /// The bridge acts on one of its calls.
    pub(super) fn bridge_acts(&mut self, call_id: &str, what: usize) {
        let Some(c) = self.bridge.get_mut(call_id) else {
            return;
        };
        if c.dead || c.ended {
            return;
        }
        let trunk = Flow::Trunk(TrunkId(0));
        let policy = Policy::trunk_default();
        let msg = match what {
            _ if c.final_sent && !c.answered => return,
            0 if !c.final_sent => bridge_response(&c.invite, 180, &c.to_tag, None).0,
            1 if !c.final_sent => {
                bridge_response(&c.invite, 183, &c.to_tag, Some((&policy, 41000))).0
            }
            2 if !c.final_sent => {
                c.final_sent = true;
                c.answered = true;
                bridge_response(&c.invite, 200, &c.to_tag, Some((&policy, 41000))).0
            }
            3 if !c.final_sent => {
                c.final_sent = true;
                bridge_response(&c.invite, 486, &c.to_tag, None).0
            }
            _ if c.answered => {
                c.ended = true;
                let f = c.invite.from();
                let text = format!(
                    "BYE sip:dialgate@127.0.0.2:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.9:5071;branch=z9hG4bK-b{}\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:echo@bridge.test>;tag={}\r\nTo: <{}>;tag={}\r\nCall-ID: {call_id}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
                    self.seq,
                    c.to_tag,
                    f.uri,
                    f.tag().unwrap_or_default(),
                );
                parse(text.as_bytes())
            }
            _ => return,
        };
        self.post(0, Hop::Gateway(trunk, msg));
    }
}
