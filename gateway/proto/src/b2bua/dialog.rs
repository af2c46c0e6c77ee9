//! Requests within a call: BYE, re-INVITE and UPDATE (hold, resume,
//! session refresh, re-keying), OPTIONS, and the phone's CANCEL; the
//! re-ACK of a retransmitted 2xx.

use std::time::Instant;

use tracing::info;

use crate::admission::Admitted;
use crate::sdp::{self, LocalMedia, Policy};
use crate::sip::{Message, Method};
use crate::transaction::TxId;

use super::build::{self, Reply};
use super::call::{CallKey, Phase, SessionTimer};
use super::frames::{advertised, bridge_advertised, requested_timer};
use super::refusal::Refusal;
use super::setup::offer_of;
use super::teardown::Party;
use super::trunks::TrunkId;
use super::{B2bua, Output};

/// Who sent an in-dialog request.
#[derive(Clone, Copy, Debug)]
pub(super) enum From<'a> {
    /// An admitted phone connection.
    Phone(&'a Admitted),
    /// A bridge-side flow of this trunk (`None`: a flow no trunk owns).
    Bridge(Option<TrunkId>),
}

impl B2bua {
    pub(super) fn in_dialog(
        &mut self,
        now: Instant,
        tx: TxId,
        method: Method,
        msg: &Message,
        from: From<'_>,
    ) {
        let key = msg
            .to()
            .tag()
            .and_then(|tag| self.calls.by_dialog(msg.call_id(), tag));
        let Some(call) = key.and_then(|k| self.calls.get(k)) else {
            self.reply(now, tx, Reply::new(msg, 481, None));
            return;
        };
        let Some(key) = key else { return };
        let phone_leg = msg.call_id() == call.phone.call_id;
        let _leg = self.leg_span(key, phone_leg).entered();
        // A phone may only touch its own token's calls, and only the phone
        // leg; a bridge only calls on its own trunk, and only the bridge leg.
        let allowed = match from {
            From::Phone(p) => phone_leg && p.token() == call.token(),
            From::Bridge(_) if phone_leg => {
                self.reply(now, tx, Reply::new(msg, 481, None));
                return;
            }
            From::Bridge(trunk) => trunk == Some(call.bridge.trunk),
        };
        if !allowed {
            self.refuse(now, tx, msg, &Refusal::NOT_YOUR_CALL);
            return;
        }
        if matches!(call.phase, Phase::Cancelling { .. }) {
            // The call has ended on the phone's side; nothing to update.
            self.reply(now, tx, Reply::new(msg, 481, None));
            return;
        }
        match method {
            Method::Bye => {
                self.reply(now, tx, Reply::new(msg, 200, None));
                if phone_leg {
                    self.end(now, key, &Refusal::PHONE_HUNG_UP, Party::Phone);
                } else {
                    self.end(now, key, &Refusal::BRIDGE_HUNG_UP, Party::Bridge);
                }
            }
            Method::Options => self.reply(now, tx, Reply::new(msg, 200, None).allow()),
            Method::Invite | Method::Update => self.session_update(now, tx, key, phone_leg, msg),
            _ => self.reply(now, tx, Reply::new(msg, 405, None).allow()),
        }
    }

    /// A re-INVITE or UPDATE on one leg (hold, resume, session refresh):
    /// answered on that leg alone. While the peer keeps its crypto line,
    /// both keys stay and no SRTP context changes; a new key re-keys that
    /// leg only ([`Output::RekeyMedia`]).
    fn session_update(
        &mut self,
        now: Instant,
        tx: TxId,
        key: CallKey,
        phone_leg: bool,
        msg: &Message,
    ) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if call.phase != Phase::Up {
            self.reply(now, tx, Reply::new(msg, 491, None));
            return;
        }
        let (policy, local, previous, last) = if phone_leg {
            (
                self.phone_policy.clone(),
                call.phone.local,
                call.phone.negotiated.clone(),
                call.phone.last_sdp.clone(),
            )
        } else {
            (
                self.trunks
                    .get(call.bridge.trunk)
                    .map_or_else(Policy::trunk_default, |t| t.policy.clone()),
                call.bridge.local,
                call.bridge.negotiated.clone(),
                call.bridge.last_sdp.clone(),
            )
        };
        let Some(previous) = previous else {
            self.refuse(now, tx, msg, &Refusal::INTERNAL);
            return;
        };
        let contact_user = call.alias().to_string();
        if msg.body().is_empty() {
            // An offerless re-INVITE (refresh): offer what we agreed.
            let mut reply =
                Reply::new(msg, 200, None).contact(&self.local.phone_sip, &contact_user);
            if let Some(sdp) = last {
                reply = reply.sdp(sdp.as_bytes().to_vec());
            }
            self.reply(now, tx, reply);
            return;
        }
        let public = self.public;
        let place = |a| {
            if phone_leg {
                advertised(&self.config, a)
            } else {
                bridge_advertised(public, a)
            }
        };
        let media = LocalMedia {
            rtp: place(local.rtp_addr),
            rtcp: local.rtcp.map(|r| place(r.1)),
            rtcp_mux: previous.rtcp_mux,
            direction: sdp::Direction::SendRecv,
        };
        let answered = offer_of(msg, &policy)
            .and_then(|c| c.answer_update(&media, &previous).map_err(Refusal::media));
        let (sdp, negotiated) = match answered {
            Ok(x) => x,
            Err(r) => return self.refuse(now, tx, msg, &r),
        };
        // The relay keeps the address it latched to: an update's new
        // address is not applied to the running leg.
        if negotiated.new_inbound_key || negotiated.new_outbound_key {
            // New keys (and maybe a new suite) for this leg only: the other
            // leg's keys do not change.
            info!(
                call = key.0,
                phone_leg,
                suite = %negotiated.suite,
                inbound = negotiated.new_inbound_key,
                outbound = negotiated.new_outbound_key,
                "leg re-keyed by a session update"
            );
            self.out.push_back(Output::RekeyMedia {
                call: key,
                phone_leg,
                inbound: negotiated
                    .new_inbound_key
                    .then(|| negotiated.inbound.clone()),
                outbound: negotiated
                    .new_outbound_key
                    .then(|| negotiated.outbound.clone()),
            });
        }
        let text = sdp.print();
        let mut timer = None;
        if let Some(call) = self.calls.get_mut(key) {
            if phone_leg {
                if let Some(t) = call.session_timer {
                    let interval = requested_timer(msg).unwrap_or(t.interval);
                    call.session_timer = Some(SessionTimer::new(now, interval));
                    timer = Some(interval);
                }
            }
            info!(call = key.0, phone_leg, direction = ?negotiated.direction, "session updated");
            let leg_state = if phone_leg {
                (&mut call.phone.negotiated, &mut call.phone.last_sdp)
            } else {
                (&mut call.bridge.negotiated, &mut call.bridge.last_sdp)
            };
            *leg_state.0 = Some(negotiated);
            *leg_state.1 = Some(text.clone());
        }
        let mut reply = Reply::new(msg, 200, None)
            .contact(&self.local.phone_sip, &contact_user)
            .sdp(text.as_bytes().to_vec());
        if let Some(interval) = timer {
            reply = reply.session_timer(interval);
        }
        self.reply(now, tx, reply);
    }

    /// The phone's CANCEL (RFC 3261 §9.2): 481 unless it matches a
    /// pending INVITE of the same connection and token; then 200, and a
    /// call still being set up ends (487 to its INVITE, CANCEL to the
    /// bridge).
    pub(super) fn phone_cancel(&mut self, now: Instant, tx: TxId, msg: &Message, who: &Admitted) {
        let via = msg.top_via();
        let flow = self
            .txs
            .server_flow(tx)
            .unwrap_or(super::Flow::Phone(u64::MAX).id());
        let call = self
            .txs
            .invite_for_cancel(via.branch().unwrap_or_default(), &build::sent_by(via), flow)
            .and_then(|inv| self.calls.by_phone_invite(inv))
            .filter(|k| self.calls.get(*k).is_some_and(|c| c.token() == who.token()));
        let Some(key) = call else {
            self.reply(now, tx, Reply::new(msg, 481, None));
            return;
        };
        self.reply(now, tx, Reply::new(msg, 200, None));
        if self.calls.get(key).is_some_and(|c| c.phase.phone_pending()) {
            info!(call = key.0, "call cancelled by the phone");
            self.end(now, key, &Refusal::CANCELLED, Party::Phone);
        }
    }

    /// Re-ACKs a 2xx retransmitted after its transaction ended.
    pub(super) fn reack(&mut self, msg: &Message) {
        let key = self
            .calls
            .by_dialog(msg.call_id(), msg.from().tag().unwrap_or_default());
        if let Some((flow, bytes)) = key
            .and_then(|k| self.calls.get(k))
            .and_then(|c| c.bridge.ack.clone())
        {
            self.out.push_back(Output::Send { flow, bytes });
        }
    }
}
