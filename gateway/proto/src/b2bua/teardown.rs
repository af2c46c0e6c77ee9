//! Every way a call ends, in one place: whoever ends it and in whatever
//! phase, each leg gets what it still needs (a final response to a
//! pending INVITE, a CANCEL, or a BYE), media stops (keys zeroized) or its
//! ports are released, and the call's state goes, at the latest when its
//! deadline passes.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::build::{self, Leg as BuildLeg, Reply};
use super::call::{CallKey, Media, Phase};
use super::refusal::Refusal;
use super::trunks::TrunkId;
use super::{B2bua, Output};
use crate::admission::{Admitted, Registry};
use crate::sip::Method;

/// The longest a call may take from INVITE to answer (early media
/// included) before the gateway gives up on the bridge.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a cancelled INVITE waits for the bridge's final response
/// (64·T1, RFC 3261 §9.1) before its state goes.
pub const CANCEL_WAIT: Duration = Duration::from_secs(32);

/// Who ends a call: decides which legs still need telling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Party {
    /// The phone (BYE or CANCEL): it needs no BYE.
    Phone,
    /// The bridge (BYE or a final failure): it needs nothing.
    Bridge,
    /// The gateway (revocation, timers, policy, a refused answer): both
    /// legs are told.
    Gateway,
    /// The bridge cannot be reached (its connection is lost, or its
    /// INVITE timed out): only the phone is told.
    Unreachable,
}

impl B2bua {
    /// Ends a call: the phone's pending INVITE gets `why` (its status and
    /// Warning), an established phone leg gets BYE; the bridge's pending
    /// INVITE is cancelled (the call then waits, media stopped, for its
    /// final response, at most [`CANCEL_WAIT`]) and an established bridge
    /// leg gets BYE, unless `by` says they need nothing.
    pub(super) fn end(&mut self, now: Instant, key: CallKey, why: &Refusal, by: Party) {
        let _span = self.span(key).entered();
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let phase = call.phase;
        let reach_bridge = !matches!(by, Party::Bridge | Party::Unreachable);
        if let Phase::Cancelling { .. } = phase {
            // Already ended; only the bridge's final response is awaited.
            if !reach_bridge {
                self.forget(key);
            }
            return;
        }
        let duration = now.duration_since(call.started).as_secs();
        info!(target: "audit", decision = "ended", call = key.0, token = %call.token(), key = %call.auth.admitted().key(), alias = %call.alias(), duration_s = duration, status = why.status(), reason = why.reason(), "call ended");
        if phase.phone_pending() {
            self.refuse_phone(now, key, why);
        } else if by != Party::Phone {
            self.bye(now, key, true);
        }
        self.stop_media(key);
        match phase {
            Phase::Up if reach_bridge => {
                self.bye(now, key, false);
                self.forget(key);
            }
            Phase::Calling { provisional, .. } if reach_bridge => {
                self.cancelling(now, key, provisional);
            }
            Phase::EarlyMedia if reach_bridge => self.cancelling(now, key, true),
            _ => self.forget(key),
        }
    }

    /// The bridge answered (2xx, ACKed) but the call cannot go on: the
    /// phone gets `why` if it waits, the bridge a BYE, and the call goes.
    pub(super) fn fail_answered(&mut self, now: Instant, key: CallKey, why: &Refusal) {
        let _span = self.span(key).entered();
        let Some(call) = self.calls.get(key) else {
            return;
        };
        if call.phase.phone_pending() {
            self.refuse_phone(now, key, why);
        }
        info!(
            call = key.0,
            status = why.status(),
            reason = why.reason(),
            "call setup failed"
        );
        self.bye(now, key, false);
        self.forget(key);
    }

    /// A 2xx that crossed our CANCEL: hang up on the bridge.
    pub(super) fn hang_up_answered(&mut self, now: Instant, key: CallKey, why: &str) {
        info!(
            call = key.0,
            reason = why,
            "bridge answered a cancelled call: hanging up"
        );
        self.bye(now, key, false);
        self.forget(key);
    }

    /// The bridge's INVITE timed out (Timer B): nothing more can reach it.
    pub(super) fn bridge_silent(&mut self, now: Instant, key: CallKey) {
        self.end(now, key, &Refusal::BRIDGE_SILENT, Party::Unreachable);
    }

    /// Moves a call to [`Phase::Cancelling`], sending the CANCEL now if
    /// the bridge already sent a provisional (else at the first one).
    fn cancelling(&mut self, now: Instant, key: CallKey, provisional: bool) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.phase = Phase::Cancelling { cancel_sent: false };
        call.deadline = Some(now + CANCEL_WAIT);
        call.session_timer = None;
        if provisional {
            self.send_cancel(now, key);
        }
    }

    /// CANCELs the bridge INVITE (same branch and CSeq number, §9.1).
    pub(super) fn send_cancel(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        call.phase = Phase::Cancelling { cancel_sent: true };
        let branch = call.bridge.invite_branch.clone();
        let trunk = call.bridge.trunk;
        let Some(config) = self.trunks.config(trunk) else {
            return;
        };
        if let Some(cancel) = build::request(
            &BuildLeg::bridge(call, config, self.local.bridge_sip),
            Method::Cancel,
            &branch,
            1,
            None,
        ) {
            let flow = super::Flow::Trunk(trunk).id();
            let _ = self
                .txs
                .send_request(now, &branch, "CANCEL", cancel.to_bytes(), flow, true);
        }
    }

    /// Gives the phone's INVITE a final failure.
    fn refuse_phone(&mut self, now: Instant, key: CallKey, why: &Refusal) {
        let Some(call) = self.calls.get(key) else {
            return;
        };
        let reply =
            Reply::new(&call.phone.invite, why.status(), Some(&call.phone.our_tag)).refusal(why);
        let tx = call.phone.invite_tx;
        if let Some(m) = reply.build() {
            let _ = self.txs.respond(now, tx, why.status(), m.to_bytes());
        }
    }

    /// Sends BYE on the phone leg (`true`) or the bridge leg.
    fn bye(&mut self, now: Instant, key: CallKey, phone_leg: bool) {
        let branch = format!("z9hG4bK{}", self.rand_hex(10));
        let flow = if phone_leg {
            self.calls.get(key).map(|c| c.phone.flow)
        } else {
            Some(self.bridge_flow(key))
        };
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let Some(flow) = flow else {
            return;
        };
        let cseq = if phone_leg {
            call.phone.our_cseq += 1;
            call.phone.our_cseq
        } else {
            call.bridge.our_cseq += 1;
            call.bridge.our_cseq
        };
        let leg = if phone_leg {
            Some(BuildLeg::phone(call, &self.local.phone_sip))
        } else {
            self.trunks
                .config(call.bridge.trunk)
                .map(|t| BuildLeg::bridge(call, t, self.local.bridge_sip))
        };
        let Some(bye) = leg.and_then(|l| build::request(&l, Method::Bye, &branch, cseq, None))
        else {
            warn!(call = key.0, phone_leg, "BYE could not be built");
            return;
        };
        let _ = self
            .txs
            .send_request(now, &branch, "BYE", bye.to_bytes(), flow.id(), true);
    }

    /// Stops a call's media (keys zeroized) or releases its ports.
    fn stop_media(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        match call.media {
            Media::Running => self.out.push_back(Output::StopMedia { call: key }),
            Media::Reserved => self
                .out
                .push_back(Output::ReleaseMedia { legs: call.legs() }),
            Media::Released => {}
        }
        call.media = Media::Released;
    }

    /// Forgets a call (its media first, and its bridge INVITE
    /// transaction if that is still waiting).
    pub(super) fn forget(&mut self, key: CallKey) {
        self.stop_media(key);
        if let Some(tx) = self.calls.remove(key).and_then(|c| c.bridge.invite_tx) {
            self.txs.abandon(tx);
        }
    }

    /// Puts a new registry in force: every connection whose key is no
    /// longer active closes (after the BYEs of its calls are queued) and
    /// every call placed with such a key ends, by key, not by name.
    pub(super) fn set_registry(&mut self, now: Instant, registry: Registry) {
        self.registry = registry;
        let lost =
            |r: &Registry, a: &Admitted| r.active(&a.key()).is_none_or(|e| e.name != a.token());
        for key in self
            .calls
            .keys_where(|c| lost(&self.registry, c.auth.admitted()))
        {
            if let Some(c) = self.calls.get(key) {
                let a = c.auth.admitted();
                warn!(target: "audit", decision = "ended", call = key.0, token = %a.token(), key = %a.key(), reason = "key no longer admitted", "call ended: its token key is revoked or removed");
            }
            self.end(now, key, &Refusal::TOKEN_REVOKED, Party::Gateway);
        }
        // The BYEs are queued first; the shell closes a connection only
        // after its queued writes.
        self.drain_transactions(now);
        let mut flows: Vec<(u64, Admitted)> = self
            .phones
            .iter()
            .filter(|(_, a)| lost(&self.registry, a))
            .map(|(f, a)| (*f, a.clone()))
            .collect();
        flows.sort_unstable_by_key(|(f, _)| *f);
        for (flow, a) in flows {
            self.close_phone(flow, &a, "key no longer admitted");
        }
    }

    /// Ends every call (HQ's "drop calls" command).
    pub(super) fn drop_calls(&mut self, now: Instant) {
        let keys = self.calls.keys_where(|_| true);
        warn!(target: "audit", decision = "command", action = "drop-calls", calls = keys.len(), "every call ends: HQ's command");
        for key in keys {
            self.end(now, key, &Refusal::DROPPED_BY_HQ, Party::Gateway);
        }
    }

    /// Whether an admission still holds under the registry in force.
    pub(super) fn still_admitted(&self, a: &Admitted) -> bool {
        self.registry
            .active(&a.key())
            .is_some_and(|e| e.name == a.token())
    }

    /// A phone connection the shell handed over: refused (closed) if its
    /// key lost its admission between the handshake and now.
    pub(super) fn phone_connected(&mut self, now: Instant, flow: u64, admitted: Admitted) {
        if self.still_admitted(&admitted) {
            self.phones.insert(flow, admitted);
            self.last_heard.insert(flow, now);
        } else {
            self.close_phone(flow, &admitted, "key no longer admitted");
        }
    }

    /// Closes phone connections silent for [`super::PHONE_IDLE`] that
    /// carry no call (a connection with a call stays: the gateway's BYE
    /// would have nowhere to go).
    pub(super) fn close_idle_phones(&mut self, now: Instant) {
        let busy: std::collections::HashSet<u64> = self
            .calls
            .values()
            .filter_map(|c| match c.phone.flow {
                super::Flow::Phone(f) => Some(f),
                _ => None,
            })
            .collect();
        let mut idle: Vec<u64> = Vec::new();
        for (flow, heard) in self.last_heard.iter_mut() {
            if now.duration_since(*heard) < super::PHONE_IDLE {
                continue;
            }
            if busy.contains(flow) {
                // Checked again an idle period from now.
                *heard = now;
            } else {
                idle.push(*flow);
            }
        }
        idle.sort_unstable();
        for flow in idle {
            if let Some(a) = self.phones.get(&flow).cloned() {
                self.close_phone(flow, &a, "idle: no message and no call for 10 minutes");
            } else {
                self.last_heard.remove(&flow);
            }
        }
    }

    /// Closes a phone connection, as an audit event.
    pub(super) fn close_phone(&mut self, flow: u64, a: &Admitted, why: &str) {
        self.phones.remove(&flow);
        self.last_heard.remove(&flow);
        self.expired_flows.remove(&flow);
        warn!(target: "audit", decision = "closed", flow, token = %a.token(), key = %a.key(), peer = %a.peer(), reason = why, "phone connection closed");
        self.out.push_back(Output::Disconnect { flow });
    }

    /// A trunk connection failed or closed.
    pub(super) fn trunk_failed(&mut self, now: Instant, trunk: TrunkId) {
        self.end_trunk_calls(now, trunk, &Refusal::BRIDGE_UNREACHABLE, Party::Unreachable);
    }

    /// Ends every call on `trunk`: the phones of calls being set up get
    /// `why`; established calls end with it as their reason.
    pub(super) fn end_trunk_calls(
        &mut self,
        now: Instant,
        trunk: TrunkId,
        why: &Refusal,
        by: Party,
    ) {
        let lost = by == Party::Unreachable;
        for key in self.calls.keys_where(|c| c.bridge.trunk == trunk) {
            let up = self.calls.get(key).is_some_and(|c| c.phase == Phase::Up);
            let why = if up && lost {
                &Refusal::TRUNK_LOST
            } else {
                why
            };
            self.end(now, key, why, by);
        }
        self.drain_transactions(now);
    }

    /// The relay saw no media for the inactivity time.
    pub(super) fn media_inactive(&mut self, now: Instant, key: CallKey) {
        self.end(now, key, &Refusal::MEDIA_INACTIVE, Party::Gateway);
    }

    /// Ends calls whose session timer ran out (RFC 4028 §10), gives up on
    /// calls the bridge never answered, and forgets cancelled calls whose
    /// bridge never gave its final response.
    pub(super) fn expire_calls(&mut self, now: Instant) {
        for key in self
            .calls
            .keys_where(|c| c.session_timer.is_some_and(|t| t.deadline <= now))
        {
            self.end(now, key, &Refusal::SESSION_EXPIRED, Party::Gateway);
        }
        for key in self
            .calls
            .keys_where(|c| c.deadline.is_some_and(|d| d <= now))
        {
            match self.calls.get(key).map(|c| c.phase) {
                Some(Phase::Cancelling { .. }) => {
                    info!(
                        call = key.0,
                        "the bridge never answered the CANCEL: call state released"
                    );
                    self.forget(key);
                }
                Some(_) => self.end(now, key, &Refusal::SETUP_TIMED_OUT, Party::Gateway),
                None => {}
            }
        }
    }
}
