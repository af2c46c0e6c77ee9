//! A call's state: its two legs, its phase (one enum, not flags), its
//! media ports, and the table that finds calls by key, dialog and INVITE
//! transaction and counts them per token and address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::relay::LocalLeg;
use crate::sdp::{CheckedOffer, Negotiated, PendingOffer};
use crate::sip::{Message, NameAddr, Uri};
use crate::transaction::TxId;

use super::admit::Authorized;
use super::trunks::TrunkId;
use super::Flow;

/// Names a call of the B2BUA (and its relay call, in the shell).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub(super) u64);

impl CallKey {
    /// The call's number, as logs show it.
    pub fn number(self) -> u64 {
        self.0
    }
}

/// Where a call is. Each phase says what each leg's INVITE has had, so
/// that ending a call in any phase knows what each leg still needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The bridge INVITE is out. `provisional`: the bridge sent a 1xx (a
    /// CANCEL may be sent, RFC 3261 §9.1); `ringing`: the phone got 180.
    Calling { provisional: bool, ringing: bool },
    /// The bridge sent a 18x with SDP: media runs and the phone got 183.
    EarlyMedia,
    /// Both INVITEs have their 2xx: the call is established.
    Up,
    /// The phone's INVITE has its final answer (487 after its CANCEL, or a
    /// refusal); the bridge's INVITE is being cancelled and the call waits
    /// for its final response (a 2xx that crossed the CANCEL is ACKed and
    /// hung up). `cancel_sent`: false until the bridge sent a provisional.
    Cancelling { cancel_sent: bool },
}

impl Phase {
    /// The phone's INVITE still waits for its final response.
    pub(super) fn phone_pending(self) -> bool {
        matches!(self, Phase::Calling { .. } | Phase::EarlyMedia)
    }
}

/// What became of a call's media ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Media {
    /// Bound at INVITE, not yet relaying: released if the call fails.
    Reserved,
    /// Handed to the relay ([`super::Output::StartMedia`]): stopped (keys
    /// zeroized) when the call ends.
    Running,
    /// Given back (stopped or released).
    Released,
}

/// The shortest session interval accepted (RFC 4028 §4: at least 90 s).
pub const MIN_SE: u32 = 90;

/// A session timer the phone asked for (RFC 4028): it refreshes every
/// `interval / 2`; without a refresh the gateway ends the call.
#[derive(Clone, Copy, Debug)]
pub(super) struct SessionTimer {
    pub(super) interval: u32,
    /// When the call ends unless refreshed: interval - min(32, interval/3)
    /// after the last refresh (RFC 4028 §10).
    pub(super) deadline: Instant,
}

impl SessionTimer {
    pub(super) fn new(now: Instant, interval: u32) -> SessionTimer {
        let margin = 32.min(interval / 3);
        SessionTimer {
            interval,
            deadline: now + Duration::from_secs(u64::from(interval.saturating_sub(margin))),
        }
    }
}

/// The phone's leg: we are its UAS.
pub(super) struct PhoneLeg {
    pub(super) flow: Flow,
    pub(super) invite: Message,
    pub(super) invite_tx: TxId,
    pub(super) our_tag: String,
    pub(super) call_id: String,
    /// Where in-dialog requests to the phone go (its Contact).
    pub(super) remote_target: Option<Uri>,
    pub(super) their_from: NameAddr,
    pub(super) our_cseq: u32,
    /// The phone's offer, until the bridge's answer is matched to it.
    pub(super) checked: Option<CheckedOffer>,
    pub(super) local: LocalLeg,
    /// What the phone leg agreed (for session updates).
    pub(super) negotiated: Option<Negotiated>,
    /// The SDP we last sent the phone (holds our key: zeroized on drop).
    pub(super) last_sdp: Option<Zeroizing<String>>,
}

/// The bridge's leg: we are its UAC.
pub(super) struct BridgeLeg {
    pub(super) trunk: TrunkId,
    pub(super) call_id: String,
    pub(super) our_tag: String,
    pub(super) their_to: Option<NameAddr>,
    pub(super) request_uri: Uri,
    pub(super) remote_target: Option<Uri>,
    pub(super) route_set: Vec<NameAddr>,
    pub(super) invite_branch: String,
    pub(super) invite_tx: Option<TxId>,
    pub(super) our_cseq: u32,
    pub(super) pending: Option<PendingOffer>,
    pub(super) local: LocalLeg,
    /// The ACK of the bridge's 2xx, resent for each retransmitted 2xx.
    pub(super) ack: Option<(Flow, Vec<u8>)>,
    /// What the bridge leg agreed (for session updates).
    pub(super) negotiated: Option<Negotiated>,
    /// The SDP we last sent the bridge (holds our key: zeroized on drop).
    pub(super) last_sdp: Option<Zeroizing<String>>,
}

// The legs hold keys (in the SDP they sent and were sent) and the meeting
// PIN travels in their frames: `Debug` names the dialog, never the SDP.
impl std::fmt::Debug for PhoneLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneLeg")
            .field("flow", &self.flow)
            .field("call_id", &self.call_id)
            .field("our_tag", &self.our_tag)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for BridgeLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeLeg")
            .field("trunk", &self.trunk)
            .field("call_id", &self.call_id)
            .field("our_tag", &self.our_tag)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// One call: the proof it was authorized, its legs, phase and media.
#[derive(Debug)]
pub(super) struct Call {
    /// The admission of this call: a call cannot exist without one.
    pub(super) auth: Authorized,
    pub(super) source: IpAddr,
    pub(super) session_timer: Option<SessionTimer>,
    pub(super) phone: PhoneLeg,
    pub(super) bridge: BridgeLeg,
    pub(super) phase: Phase,
    pub(super) media: Media,
    pub(super) started: Instant,
    /// When the current phase gives up: the set-up timeout until the call
    /// is up, the CANCEL wait when cancelling; `None` once up (the session
    /// timer and media inactivity bound an established call).
    pub(super) deadline: Option<Instant>,
}

impl Call {
    pub(super) fn token(&self) -> &str {
        self.auth.token()
    }

    pub(super) fn alias(&self) -> &str {
        self.auth.alias()
    }

    /// The media ports to give back when the call ends before relaying.
    pub(super) fn legs(&self) -> Vec<LocalLeg> {
        vec![self.phone.local, self.bridge.local]
    }
}

/// Every call, with the indexes the B2BUA looks them up by.
#[derive(Debug, Default)]
pub(super) struct CallTable {
    calls: HashMap<CallKey, Call>,
    /// (Call-ID, our tag) -> call: both legs' dialogs.
    dialogs: HashMap<(String, String), CallKey>,
    /// Bridge INVITE transaction -> call.
    invite_txs: HashMap<TxId, CallKey>,
    per_token: HashMap<String, u32>,
    per_address: HashMap<IpAddr, u32>,
    next: u64,
}

impl CallTable {
    /// A fresh key (never reused).
    pub(super) fn next_key(&mut self) -> CallKey {
        self.next += 1;
        CallKey(self.next)
    }

    pub(super) fn insert(&mut self, key: CallKey, call: Call) {
        self.dialogs.insert(
            (call.phone.call_id.clone(), call.phone.our_tag.clone()),
            key,
        );
        self.dialogs.insert(
            (call.bridge.call_id.clone(), call.bridge.our_tag.clone()),
            key,
        );
        if let Some(tx) = call.bridge.invite_tx {
            self.invite_txs.insert(tx, key);
        }
        *self.per_token.entry(call.token().to_string()).or_default() += 1;
        *self.per_address.entry(call.source).or_default() += 1;
        self.calls.insert(key, call);
    }

    /// Removes a call and every index entry of it.
    pub(super) fn remove(&mut self, key: CallKey) -> Option<Call> {
        let call = self.calls.remove(&key)?;
        self.dialogs
            .remove(&(call.phone.call_id.clone(), call.phone.our_tag.clone()));
        self.dialogs
            .remove(&(call.bridge.call_id.clone(), call.bridge.our_tag.clone()));
        if let Some(tx) = call.bridge.invite_tx {
            self.invite_txs.remove(&tx);
        }
        if let Some(n) = self.per_token.get_mut(call.token()) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_token.remove(call.token());
            }
        }
        if let Some(n) = self.per_address.get_mut(&call.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_address.remove(&call.source);
            }
        }
        Some(call)
    }

    pub(super) fn get(&self, key: CallKey) -> Option<&Call> {
        self.calls.get(&key)
    }

    pub(super) fn get_mut(&mut self, key: CallKey) -> Option<&mut Call> {
        self.calls.get_mut(&key)
    }

    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    /// The call of a dialog (Call-ID and our tag).
    pub(super) fn by_dialog(&self, call_id: &str, our_tag: &str) -> Option<CallKey> {
        self.dialogs
            .get(&(call_id.to_string(), our_tag.to_string()))
            .copied()
    }

    /// The call whose bridge INVITE is transaction `tx`.
    pub(super) fn by_invite_tx(&self, tx: TxId) -> Option<CallKey> {
        self.invite_txs.get(&tx).copied()
    }

    /// The bridge INVITE transaction `tx` is over (terminated or its ACK
    /// timed out): it no longer names the call.
    pub(super) fn invite_tx_done(&mut self, tx: TxId) {
        if let Some(key) = self.invite_txs.remove(&tx) {
            if let Some(c) = self.calls.get_mut(&key) {
                c.bridge.invite_tx = None;
            }
        }
    }

    /// The call whose phone INVITE is transaction `tx`.
    pub(super) fn by_phone_invite(&self, tx: TxId) -> Option<CallKey> {
        self.calls
            .iter()
            .find(|(_, c)| c.phone.invite_tx == tx)
            .map(|(k, _)| *k)
    }

    /// Keys of the calls that `keep` selects, in key order.
    pub(super) fn keys_where(&self, keep: impl Fn(&Call) -> bool) -> Vec<CallKey> {
        let mut keys: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| keep(c))
            .map(|(k, _)| *k)
            .collect();
        keys.sort();
        keys
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    pub(super) fn token_calls(&self, token: &str) -> u32 {
        self.per_token.get(token).copied().unwrap_or(0)
    }

    pub(super) fn address_calls(&self, ip: IpAddr) -> u32 {
        self.per_address.get(&ip).copied().unwrap_or(0)
    }

    /// Every index agrees with the calls (a check for tests and the
    /// simulator).
    #[cfg(test)]
    pub(super) fn consistent(&self) -> Result<(), String> {
        for (k, c) in &self.calls {
            for (id, tag) in [
                (&c.phone.call_id, &c.phone.our_tag),
                (&c.bridge.call_id, &c.bridge.our_tag),
            ] {
                if self.by_dialog(id, tag) != Some(*k) {
                    return Err(format!("call {} lost a dialog index", k.0));
                }
            }
        }
        if self.dialogs.values().any(|k| !self.calls.contains_key(k))
            || self
                .invite_txs
                .values()
                .any(|k| !self.calls.contains_key(k))
        {
            return Err("an index names a call that is gone".into());
        }
        let tokens: u32 = self.per_token.values().sum();
        let addresses: u32 = self.per_address.values().sum();
        if tokens as usize != self.calls.len() || addresses as usize != self.calls.len() {
            return Err(format!(
                "counts {tokens}/{addresses} for {} calls",
                self.calls.len()
            ));
        }
        Ok(())
    }
}
