//! From a phone's INVITE to the answer: admission, the offer, media ports,
//! the bridge's INVITE, its provisional and final responses, early media,
//! the secure tone and the PIN.

use std::time::Instant;

use tracing::{info, warn};

use crate::admission::Admitted;
use crate::sdp::{self, LocalMedia, Negotiated, SessionDescription};
use crate::sip::{Message, Method, Uri};
use crate::transaction::{ResponseAction, TxId};

use super::admit::{authorize, Authorized, Checks};
use super::build::{self, Leg as BuildLeg, Reply};
use super::call::{BridgeLeg, Call, CallKey, Media, Phase, PhoneLeg, SessionTimer, MIN_SE};
use super::frames::{
    advertised, bridge_advertised, leg_config, pin_frames, requested_timer, tone_frames,
};
use super::refusal::Refusal;
use super::teardown::{Party, SETUP_TIMEOUT};
use super::{B2bua, Flow, Output, StartMedia};
use crate::relay::{LocalLeg, PlayFrame};

/// Most Record-Route hops a bridge's answer may carry.
pub const MAX_ROUTE_SET: usize = 8;

/// A checked media answer: the phone's answer and both legs' parameters.
struct MediaAnswer {
    phone_sdp: SessionDescription,
    phone: Negotiated,
    bridge: Negotiated,
}

/// The audit event of a refused call.
fn audit_refusal(a: &Admitted, alias: Option<&str>, r: &Refusal) {
    info!(target: "audit", decision = "refused", token = %a.token(), key = %a.key(), peer = %a.peer(), alias = alias.unwrap_or("-"), status = r.status(), reason = r.reason(), "call refused");
}

/// The SDP offer of a request, checked against `policy`.
pub(super) fn offer_of(msg: &Message, policy: &sdp::Policy) -> Result<sdp::CheckedOffer, Refusal> {
    if !msg.content_type().is_some_and(|t| t.is_sdp()) {
        return Err(Refusal::SDES_REQUIRED);
    }
    let sdp = SessionDescription::parse(msg.body()).map_err(|_| Refusal::SDES_REQUIRED)?;
    sdp::check_offer(&sdp, policy).map_err(Refusal::media)
}

impl B2bua {
    /// Refuses a request with a refusal's status and Warning.
    pub(super) fn refuse(&mut self, now: Instant, tx: TxId, msg: &Message, r: &Refusal) {
        self.reply(now, tx, Reply::new(msg, r.status(), None).refusal(r));
    }

    /// Refuses a new call, as an audit event.
    fn refuse_call(&mut self, now: Instant, tx: TxId, msg: &Message, a: &Admitted, r: &Refusal) {
        let alias = msg
            .request_uri()
            .and_then(Uri::as_sip)
            .and_then(|u| u.user.as_deref());
        audit_refusal(a, alias, r);
        self.refuse(now, tx, msg, r);
    }

    pub(super) fn phone_invite(
        &mut self,
        now: Instant,
        flow: Flow,
        admitted: &Admitted,
        tx: TxId,
        msg: Message,
    ) {
        self.reply(now, tx, Reply::new(&msg, 100, None));
        let auth = match self.admit_call(now, flow, admitted, &msg) {
            Ok(a) => a,
            Err(r) => return self.refuse_call(now, tx, &msg, admitted, &r),
        };
        if msg.session_expires().is_some_and(|se| se.delta < MIN_SE) {
            self.reply(now, tx, Reply::new(&msg, 422, None).min_se(MIN_SE));
            return;
        }
        let checked = match offer_of(&msg, &self.phone_policy) {
            Ok(c) => c,
            Err(r) => return self.refuse_call(now, tx, &msg, admitted, &r),
        };

        let Some(trunk) = self.trunks.get(auth.trunk()) else {
            return self.refuse_call(now, tx, &msg, admitted, &Refusal::NO_TRUNK);
        };
        let (trunk_ip, trunk_policy, webex) = (
            trunk.config.media_address,
            trunk.policy.clone(),
            trunk.config.webex,
        );
        if trunk_ip.is_unspecified() {
            // A wildcard media address before the trunk's connection has
            // said which address the uplink has: nothing true to offer.
            // Its keep-alive goes out now: the retry finds it connected.
            self.trunks.keepalive_now(auth.trunk(), now);
            return self.refuse_call(now, tx, &msg, admitted, &Refusal::UPLINK_UNKNOWN);
        }
        let phone_local = match self
            .ports
            .allocate(self.config.phone.media_address, checked.rtcp_mux_offered())
        {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "no media port for the phone leg");
                return self.refuse_call(now, tx, &msg, admitted, &Refusal::NO_MEDIA_PORTS);
            }
        };
        let bridge_local = match self.ports.allocate(trunk_ip, false) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "no media port for the bridge leg");
                self.release(vec![phone_local]);
                return self.refuse_call(now, tx, &msg, admitted, &Refusal::NO_MEDIA_PORTS);
            }
        };
        let bridge_media = LocalMedia {
            rtp: bridge_advertised(self.public, bridge_local.rtp_addr),
            rtcp: bridge_local
                .rtcp
                .map(|r| bridge_advertised(self.public, r.1)),
            rtcp_mux: true,
            direction: sdp::Direction::SendRecv,
        };
        let built = sdp::offer(checked.codecs(), &trunk_policy, &bridge_media)
            .map_err(Refusal::media)
            .and_then(|offer| Ok((offer, bridge_uri(&auth.entry().uri, webex)?)));
        let ((offer_sdp, pending), request_uri) = match built {
            Ok(x) => x,
            Err(r) => {
                self.release(vec![phone_local, bridge_local]);
                return self.refuse_call(now, tx, &msg, admitted, &r);
            }
        };
        let key = self.calls.next_key();
        let branch = format!("z9hG4bK{}", self.rand_hex(10));
        let mut call = Call {
            source: admitted.peer().ip(),
            session_timer: None,
            phone: PhoneLeg {
                flow,
                call_id: msg.call_id().to_string(),
                remote_target: build::contact_uri(&msg),
                their_from: msg.from().clone(),
                invite_tx: tx,
                our_tag: self.rand_hex(8),
                our_cseq: 0,
                checked: Some(checked),
                local: phone_local,
                negotiated: None,
                last_sdp: None,
                invite: msg,
            },
            bridge: BridgeLeg {
                trunk: auth.trunk(),
                call_id: format!("{}@dialgate", self.rand_hex(12)),
                our_tag: self.rand_hex(8),
                their_to: None,
                request_uri,
                remote_target: None,
                route_set: Vec::new(),
                invite_branch: branch.clone(),
                invite_tx: None,
                our_cseq: 1,
                pending: Some(pending),
                local: bridge_local,
                ack: None,
                negotiated: None,
                last_sdp: None,
            },
            auth,
            phase: Phase::Calling {
                provisional: false,
                ringing: false,
            },
            media: Media::Reserved,
            started: now,
            deadline: Some(now + SETUP_TIMEOUT),
        };
        let offer_text = offer_sdp.print();
        let invite = self.trunks.config(call.bridge.trunk).and_then(|t| {
            build::request(
                &BuildLeg::bridge(&call, t, self.local.bridge_sip),
                Method::Invite,
                &branch,
                1,
                Some(offer_text.as_bytes().to_vec()),
            )
        });
        call.bridge.last_sdp = Some(offer_text);
        let sent = invite.ok_or(Refusal::INTERNAL).and_then(|invite| {
            let flow = Flow::Trunk(call.bridge.trunk).id();
            self.txs
                .send_request(now, &branch, "INVITE", invite.to_bytes(), flow, true)
                .map_err(|_| Refusal::OVERLOADED)
        });
        match sent {
            Ok(btx) => {
                call.bridge.invite_tx = Some(btx);
                let a = call.auth.admitted();
                info!(target: "audit", decision = "admitted", call = key.0, token = %a.token(), key = %a.key(), peer = %a.peer(), alias = %call.alias(), trunk = %self.trunks.name(call.bridge.trunk), "call admitted");
                self.calls.insert(key, call);
            }
            Err(r) => {
                self.release(call.legs());
                let admitted = call.auth.admitted().clone();
                self.refuse_call(now, tx, &call.phone.invite, &admitted, &r);
            }
        }
    }

    /// The checks before a call exists: the gate, the network check's
    /// verdict, the connection's
    /// certificate, the attempt rates, then [`authorize`].
    fn admit_call(
        &mut self,
        now: Instant,
        flow: Flow,
        admitted: &Admitted,
        msg: &Message,
    ) -> Result<Authorized, Refusal> {
        if let Some(reason) = self.closed {
            return Err(Refusal::new(503, reason));
        }
        if let Some(r) = &self.network {
            return Err(r.clone());
        }
        if matches!(flow, Flow::Phone(f) if self.expired_flows.contains(&f)) {
            return Err(Refusal::CERTIFICATE_EXPIRED);
        }
        if !self.attempts.allow(now, &self.config.limits, admitted) {
            return Err(Refusal::RATE_LIMITED);
        }
        let checks = Checks {
            directory: &self.directory,
            grants: &self.grants,
            trunks: &self.trunks,
            calls: &self.calls,
            limits: self.config.limits,
        };
        authorize(&checks, admitted, msg)
    }

    /// Gives back media ports that never became part of a call.
    pub(super) fn release(&mut self, legs: Vec<LocalLeg>) {
        self.out.push_back(Output::ReleaseMedia { legs });
    }

    /// A response, on the flow it arrived on: handed to its client
    /// transaction only if it came where the request went (the same phone
    /// connection, or a flow of the same trunk), so that no peer can
    /// answer another's request.
    pub(super) fn response(&mut self, now: Instant, flow: Flow, msg: Message) {
        let Some(status) = msg.status() else { return };
        let code = status.as_u16();
        let branch = msg.top_via().branch().unwrap_or_default().to_string();
        let cseq = msg.cseq().clone();
        if let Some(sent_on) = self.txs.client_flow(&branch, cseq.method.as_str()) {
            let same = match (Flow::of(sent_on), flow) {
                (Flow::Phone(a), Flow::Phone(b)) => a == b,
                (Flow::Phone(_), _) | (_, Flow::Phone(_)) => false,
                (a, b) => {
                    self.trunks.of_flow(a).is_some()
                        && self.trunks.of_flow(a) == self.trunks.of_flow(b)
                }
            };
            if !same {
                warn!(
                    ?flow,
                    status = code,
                    "a response on another connection than its request's: ignored"
                );
                return;
            }
        }
        let action = self
            .txs
            .receive_response(now, &branch, cseq.method.as_str(), code);
        let (tx, needs_ack) = match action {
            ResponseAction::Deliver(tx) => (tx, false),
            ResponseAction::DeliverNeedsAck(tx) => (tx, true),
            ResponseAction::Absorbed(_) | ResponseAction::NoMatch => {
                if cseq.method == Method::Invite && code / 100 == 2 {
                    // A 2xx retransmitted after its transaction ended.
                    self.reack(&msg);
                }
                return;
            }
        };
        if cseq.method == Method::Options {
            // Any answer, even an error, shows the trunk is alive.
            self.trunks.keepalive_result(tx, true);
            return;
        }
        if cseq.method != Method::Invite {
            return; // BYE/CANCEL responses need nothing more.
        }
        let Some(key) = self.calls.by_invite_tx(tx) else {
            if code / 100 == 2 {
                self.reack(&msg);
            }
            return;
        };
        let _leg = self.leg_span(key, false).entered();
        if needs_ack {
            self.bridge_failed(now, key, tx, &msg);
            return;
        }
        match code {
            100..=199 => self.bridge_provisional(now, key, &msg),
            _ => self.bridge_answered(now, key, &msg),
        }
    }

    /// A final failure to our INVITE: ACKed by the transaction layer; the
    /// phone is told (mapped by class) unless it already was.
    fn bridge_failed(&mut self, now: Instant, key: CallKey, tx: TxId, msg: &Message) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if let Some(ack) = self
            .trunks
            .config(call.bridge.trunk)
            .and_then(|t| build::ack_for_failure(&call.bridge, t, msg))
        {
            let _ = self.txs.set_ack(tx, ack.to_bytes());
        }
        let phase = call.phase;
        self.calls.invite_tx_done(tx);
        let code = msg.status().map_or(500, |s| s.as_u16());
        match phase {
            Phase::Cancelling { .. } => self.forget(key),
            _ => self.end(now, key, &Refusal::of_bridge_failure(code), Party::Bridge),
        }
    }

    fn bridge_provisional(&mut self, now: Instant, key: CallKey, msg: &Message) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let code = msg.status().map_or(100, |s| s.as_u16());
        match call.phase {
            Phase::Calling { ringing, .. } => {
                call.phase = Phase::Calling {
                    provisional: true,
                    ringing,
                };
                if code == 100 {
                    return;
                }
                if msg.content_type().is_some_and(|t| t.is_sdp()) {
                    self.bridge_early_media(now, key, msg);
                } else if !ringing {
                    self.bridge_ringing(now, key);
                }
            }
            // The CANCEL waited for this provisional (RFC 3261 §9.1).
            Phase::Cancelling { cancel_sent: false } => self.send_cancel(now, key),
            Phase::EarlyMedia | Phase::Up | Phase::Cancelling { .. } => {}
        }
    }

    fn bridge_ringing(&mut self, now: Instant, key: CallKey) {
        let _span = self.span(key).entered();
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.phase = Phase::Calling {
            provisional: true,
            ringing: true,
        };
        let tx = call.phone.invite_tx;
        let reply = Reply::new(&call.phone.invite, 180, Some(&call.phone.our_tag))
            .contact(&self.local.phone_sip, call.alias());
        if let Some(m) = reply.build() {
            let _ = self.txs.respond(now, tx, 180, m.to_bytes());
        }
    }

    /// Checks the bridge's SDP answer (in a 2xx, or a 18x for early media)
    /// against our offer and builds the phone's answer.
    fn bridge_media(&mut self, key: CallKey, msg: &Message) -> Result<MediaAnswer, Refusal> {
        let call = self.calls.get_mut(key).ok_or(Refusal::INTERNAL)?;
        let answer = msg
            .content_type()
            .filter(|t| t.is_sdp())
            .and_then(|_| SessionDescription::parse(msg.body()).ok())
            .ok_or(Refusal::BRIDGE_MEDIA)?;
        let bridge = call
            .bridge
            .pending
            .as_ref()
            .ok_or(Refusal::INTERNAL)?
            .accept(&answer)
            .map_err(|r| {
                warn!(call = key.0, why = %r.warning(), "bridge answer refused");
                Refusal::BRIDGE_MEDIA
            })?;
        let mut checked = call.phone.checked.take().ok_or(Refusal::INTERNAL)?;
        let local = call.phone.local;
        let answered = checked
            .restrict_codecs(&bridge.codecs)
            .and_then(|()| {
                checked.answer(&LocalMedia {
                    rtp: advertised(&self.config, local.rtp_addr),
                    rtcp: local.rtcp.map(|r| advertised(&self.config, r.1)),
                    rtcp_mux: local.rtcp.is_none(),
                    direction: sdp::Direction::SendRecv,
                })
            })
            .map_err(|r| {
                warn!(call = key.0, warning = %r.warning(), "no common media between phone and bridge");
                Refusal::NO_COMMON_MEDIA
            })?;
        let (phone_sdp, mut phone) = answered;
        let mut bridge = bridge;
        // Where the relay may send before it latches: judged against the
        // phone's address for the phone, the trunk's for the bridge.
        let (source, trunk) = (call.source, call.bridge.trunk);
        // A trunk by name has no address here (the shell resolved it): it
        // is judged as a peer that is neither loopback nor link-local, so
        // the bridge's SDP cannot aim the kit's media at loopback, a
        // link-local or the kit's own address before it latches.
        let trunk_ip = self.trunks.config(trunk).map_or(source, |t| {
            t.connect
                .addr()
                .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip())
        });
        self.guard_media_addresses(key, &mut phone, source);
        self.guard_media_addresses(key, &mut bridge, trunk_ip);
        Ok(MediaAnswer {
            phone_sdp,
            phone,
            bridge,
        })
    }

    /// Hands a call's media to the relay.
    fn start_media(
        &mut self,
        key: CallKey,
        m: &MediaAnswer,
        tone: Vec<PlayFrame>,
        pin: Vec<PlayFrame>,
    ) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.phone.negotiated = Some(m.phone.clone());
        call.bridge.negotiated = Some(m.bridge.clone());
        call.phone.last_sdp = Some(m.phone_sdp.print());
        call.media = Media::Running;
        let (p, b) = (call.phone.local, call.bridge.local);
        self.out.push_back(Output::StartMedia(Box::new(StartMedia {
            call: key,
            phone: (p, leg_config(m.phone.clone(), &p)),
            bridge: (b, leg_config(m.bridge.clone(), &b)),
            tone,
            pin,
        })));
    }

    /// A 18x with SDP from the bridge (early media: an announcement, an
    /// IVR): media starts now on both legs and the phone gets 183 with its
    /// answer; the secure tone and the PIN wait for the 200.
    fn bridge_early_media(&mut self, now: Instant, key: CallKey, msg: &Message) {
        let _span = self.span(key).entered();
        let m = match self.bridge_media(key, msg) {
            Ok(m) => m,
            Err(r) => return self.end(now, key, &r, Party::Gateway),
        };
        info!(call = key.0, phone_suite = %m.phone.suite, bridge_suite = %m.bridge.suite, "early media from the bridge");
        self.start_media(key, &m, Vec::new(), Vec::new());
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.phase = Phase::EarlyMedia;
        let tx = call.phone.invite_tx;
        let reply = Reply::new(&call.phone.invite, 183, Some(&call.phone.our_tag))
            .contact(&self.local.phone_sip, call.alias())
            .sdp(m.phone_sdp.print().as_bytes().to_vec());
        if let Some(m) = reply.build() {
            let _ = self.txs.respond(now, tx, 183, m.to_bytes());
        }
    }

    /// A 2xx to our INVITE: ACK it (outside the transaction, RFC 3261
    /// §13.2.2.4), then by phase.
    fn bridge_answered(&mut self, now: Instant, key: CallKey, msg: &Message) {
        let _span = self.span(key).entered();
        let ack_branch = format!("z9hG4bK{}", self.rand_hex(10));
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        if call.phase == Phase::Up {
            // A retransmission: the same ACK again.
            if let Some((flow, bytes)) = call.bridge.ack.clone() {
                self.out.push_back(Output::Send { flow, bytes });
            }
            return;
        }
        call.bridge.their_to = Some(msg.to().clone());
        call.bridge.remote_target = build::contact_uri(msg);
        call.bridge.route_set = msg
            .record_route()
            .take(MAX_ROUTE_SET + 1)
            .cloned()
            .collect::<Vec<_>>();
        call.bridge.route_set.reverse();
        let too_long = call.bridge.route_set.len() > MAX_ROUTE_SET;
        if too_long {
            // Kept only to ACK and hang up on the trunk connection.
            call.bridge.route_set.clear();
        }
        let phase = call.phase;
        let ack = self.trunks.config(call.bridge.trunk).and_then(|t| {
            build::request(
                &BuildLeg::bridge(call, t, self.local.bridge_sip),
                Method::Ack,
                &ack_branch,
                1,
                None,
            )
        });
        if let Some(ack) = ack {
            let flow = self.bridge_flow(key);
            let bytes = ack.to_bytes();
            if let Some(c) = self.calls.get_mut(key) {
                c.bridge.ack = Some((flow, bytes.clone()));
            }
            self.out.push_back(Output::Send { flow, bytes });
        }
        if too_long {
            warn!(
                call = key.0,
                "the bridge's Record-Route is longer than {MAX_ROUTE_SET} hops"
            );
            return self.fail_answered(now, key, &Refusal::ROUTE_SET);
        }
        match phase {
            // Answered after the phone gave up (a CANCEL crossed the 200).
            Phase::Cancelling { .. } => self.hang_up_answered(now, key, "answered after cancel"),
            Phase::EarlyMedia => self.answered_after_early_media(now, key, msg),
            Phase::Calling { .. } => {
                let m = match self.bridge_media(key, msg) {
                    Ok(m) => m,
                    Err(r) => return self.fail_answered(now, key, &r),
                };
                let (tone, pin) = self.call_up(now, key, &m.phone, &m.bridge);
                self.start_media(key, &m, tone, pin);
                self.answer_phone(now, key);
            }
            Phase::Up => {}
        }
    }

    /// The 2xx after early media: the phone's answer is the one sent in
    /// the 183 (RFC 3261 §13.2.1); if the bridge's 2xx carries a different
    /// key, the bridge leg is re-keyed; then the secure tone and the PIN.
    fn answered_after_early_media(&mut self, now: Instant, key: CallKey, msg: &Message) {
        let answer = msg
            .content_type()
            .filter(|t| t.is_sdp())
            .and_then(|_| SessionDescription::parse(msg.body()).ok());
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        if let (Some(sdp), Some(p), Some(early)) = (
            answer,
            call.bridge.pending.as_ref(),
            call.bridge.negotiated.as_ref(),
        ) {
            match p.accept(&sdp) {
                Ok(n) if !n.same_inbound_key(early) => {
                    info!(call = key.0, "the bridge's answer re-keys its leg");
                    self.out.push_back(Output::RekeyMedia {
                        call: key,
                        phone_leg: false,
                        inbound: Some(n.inbound.clone()),
                        outbound: None,
                    });
                    call.bridge.negotiated = Some(n);
                }
                Ok(_) => {}
                Err(r) => {
                    warn!(call = key.0, why = %r.warning(), "bridge answer refused: ending the call");
                    return self.fail_answered(now, key, &Refusal::BRIDGE_MEDIA);
                }
            }
        }
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let (Some(phone_n), Some(bridge_n)) = (
            call.phone.negotiated.clone(),
            call.bridge.negotiated.clone(),
        ) else {
            return self.fail_answered(now, key, &Refusal::INTERNAL);
        };
        let (tone, pin) = self.call_up(now, key, &phone_n, &bridge_n);
        for (phone_leg, frames, mute) in [(true, tone, true), (false, pin, false)] {
            if !frames.is_empty() {
                self.out.push_back(Output::Play {
                    call: key,
                    phone_leg,
                    frames,
                    mute,
                });
            }
        }
        self.answer_phone(now, key);
    }

    /// The call is up: the phase, the log line, and the secure tone and
    /// PIN frames to play.
    fn call_up(
        &mut self,
        now: Instant,
        key: CallKey,
        phone_n: &Negotiated,
        bridge_n: &Negotiated,
    ) -> (Vec<PlayFrame>, Vec<PlayFrame>) {
        let Some(call) = self.calls.get_mut(key) else {
            return (Vec::new(), Vec::new());
        };
        call.phase = Phase::Up;
        call.deadline = None;
        let tone = tone_frames(now, phone_n, &mut *self.random);
        let pin = call
            .auth
            .entry()
            .pin
            .as_deref()
            .and_then(|p| pin_frames(now, p, bridge_n, &mut *self.random))
            .unwrap_or_default();
        info!(
            target: "audit",
            decision = "started",
            call = key.0,
            token = %call.token(),
            alias = %call.alias(),
            phone_suite = %phone_n.suite,
            bridge_suite = %bridge_n.suite,
            setup_ms = now.duration_since(call.started).as_millis() as u64,
            "call up"
        );
        (tone, pin)
    }

    /// The phone's 200: the answer last sent (`phone.last_sdp`), Contact,
    /// Allow, and the session timer it asked for.
    fn answer_phone(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.session_timer = requested_timer(&call.phone.invite).map(|s| SessionTimer::new(now, s));
        let tx = call.phone.invite_tx;
        let mut reply = Reply::new(&call.phone.invite, 200, Some(&call.phone.our_tag))
            .contact(&self.local.phone_sip, call.alias())
            .allow();
        if let Some(sdp) = &call.phone.last_sdp {
            reply = reply.sdp(sdp.as_bytes().to_vec());
        }
        if let Some(t) = call.session_timer {
            reply = reply.session_timer(t.interval);
        }
        if let Some(m) = reply.build() {
            let _ = self.txs.respond(now, tx, 200, m.to_bytes());
        }
    }
}

/// The Request-URI towards the bridge from a directory entry. Webex-class
/// trunks: a sips: URI is for lookup; messages carry sip: with
/// transport=tls (the hop is TLS either way).
fn bridge_uri(uri: &str, webex: bool) -> Result<Uri, Refusal> {
    match Uri::parse(uri) {
        Ok(Uri::Sip(mut u)) if u.secure && webex => {
            u.secure = false;
            if !u
                .params
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case("transport"))
            {
                u.params.push(crate::sip::UriParam {
                    name: "transport".into(),
                    value: Some("tls".into()),
                });
            }
            Ok(Uri::Sip(u))
        }
        Ok(u) => Ok(u),
        Err(_) => Err(Refusal::BAD_DIRECTORY_URI),
    }
}
