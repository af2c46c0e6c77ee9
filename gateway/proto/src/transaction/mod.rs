//! SIP transactions (RFC 3261 §17, with the INVITE fixes of RFC 6026) as a
//! sans-IO state machine.
//!
//! # Contract
//!
//! [`Transactions`] holds every client and server transaction of one SIP
//! element. It does not parse SIP: the caller (the transaction user, TU)
//! hands it the matching key of each message (RFC 3261 §17.1.3, §17.2.3:
//! branch, method, and for servers the Via sent-by) and the serialized
//! bytes, which the layer stores to retransmit. It is driven like this:
//!
//! 1. Outgoing request: [`Transactions::send_request`]. Incoming response:
//!    [`Transactions::receive_response`], which says whether to pass it to
//!    the TU or absorb it (a retransmission). For a non-2xx final response
//!    to INVITE the TU must build the ACK and give it to
//!    [`Transactions::set_ack`] (RFC 3261 §17.1.1.3).
//! 2. Incoming request: [`Transactions::receive_request`], which creates a
//!    server transaction or absorbs a retransmission (re-sending the last
//!    response). Responses: [`Transactions::respond`].
//! 3. After every call, drain [`Transactions::poll_transmit`] (bytes to send
//!    on the flow the transaction belongs to) and
//!    [`Transactions::poll_event`]; when [`Transactions::poll_timeout`]
//!    passes, call [`Transactions::handle_timeout`] and drain again.
//!
//! On reliable transports (TLS, which is all dialgate speaks) the timers
//! that exist only to retransmit over UDP (A, E, G) are not started and the
//! wait timers D, I, J, K are zero, as §17 says; the state machines are the
//! same, which is what lets the simulator in the tests exercise loss.
//!
//! Timers live in one fixed table per transaction, indexed by [`Timer`].
//! Each transaction's earliest timer is also in one binary heap of
//! deadlines for the whole layer, so that [`Transactions::poll_timeout`]
//! is a peek and [`Transactions::handle_timeout`] touches only the
//! transactions that are due: the cost per call stays flat however many
//! finished transactions linger (RFC 6026's 32 s). An entry whose
//! transaction has since moved its deadline or ended is stale and is
//! dropped when it reaches the top (the top is never stale after a
//! mutating call) or when stale entries outnumber live ones.

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

mod types;

use types::TIMERS;
pub use types::{
    FlowId, Kind, RequestAction, ResponseAction, State, Timer, TimerConfig, Transmit, TxEvent, TxId,
};

/// Matching key of a client transaction (§17.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: String,
}

/// Matching key of a server transaction (§17.2.3); ACK is matched to the
/// INVITE transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    method: String,
    /// The connection: a request with another connection's keys is not a
    /// retransmission of its request (over TLS there are none), so no peer
    /// can take over, absorb or cancel another's transaction.
    flow: FlowId,
}

#[derive(Debug)]
struct Tx {
    kind: Kind,
    state: State,
    reliable: bool,
    flow: FlowId,
    client_key: Option<ClientKey>,
    server_key: Option<ServerKey>,
    /// Client: the request, for retransmission.
    request: Vec<u8>,
    /// Server: the last response sent, for retransmission.
    last_response: Option<Vec<u8>>,
    /// INVITE client: the ACK for a non-2xx final response.
    ack: Option<Vec<u8>>,
    timers: [Option<Instant>; TIMERS],
    /// The deadline this transaction has in the layer's heap (its earliest
    /// timer when last scheduled).
    scheduled: Option<Instant>,
    /// Its key in the layer's set of lingering transactions, if it is one.
    lingering: Option<Instant>,
    /// Current retransmit interval of timer A, E or G.
    interval: Duration,
}

impl Drop for Tx {
    // Requests and responses may carry keys (SDES): wiped with the
    // transaction.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.request.zeroize();
        if let Some(r) = &mut self.last_response {
            r.zeroize();
        }
        if let Some(a) = &mut self.ack {
            a.zeroize();
        }
    }
}

impl Tx {
    fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    fn clear_all(&mut self) {
        self.timers = [None; TIMERS];
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }
}

/// All transactions of a SIP element. See the module documentation.
#[derive(Debug)]
pub struct Transactions {
    cfg: TimerConfig,
    next_id: u64,
    txs: HashMap<TxId, Tx>,
    clients: HashMap<ClientKey, TxId>,
    servers: HashMap<ServerKey, TxId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    /// Each transaction's earliest timer, earliest first (see the module
    /// documentation: entries may be stale, never the top).
    deadlines: BinaryHeap<Reverse<(Instant, TxId)>>,
    /// Transactions that only wait out a timer (Completed, Confirmed,
    /// Accepted), by deadline: the candidates to end when the table is full.
    lingering: BTreeSet<(Instant, TxId)>,
    /// Upper bound on concurrent transactions (flood protection).
    max: usize,
}

/// Why a request or response could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// Too many transactions: answer 503 (servers) or fail (clients).
    #[error("too many transactions")]
    Full,
    /// A client transaction with this branch exists already.
    #[error("branch already in use")]
    DuplicateBranch,
    /// The handle does not name a live transaction of the right kind.
    #[error("no such transaction")]
    Unknown,
    /// A response was given to a transaction that already sent a final one.
    #[error("transaction already completed")]
    AlreadyFinal,
}

impl Transactions {
    /// An empty transaction layer with at most `max` live transactions.
    pub fn new(cfg: TimerConfig, max: usize) -> Transactions {
        Transactions {
            cfg,
            next_id: 1,
            txs: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            lingering: BTreeSet::new(),
            max,
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The state of a transaction, if it is live.
    pub fn state(&self, tx: TxId) -> Option<State> {
        self.txs.get(&tx).map(|t| t.state)
    }

    fn new_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn transmit(&mut self, tx: TxId, flow: FlowId, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit { tx, flow, bytes });
    }

    /// Starts a client transaction for `request` (`method` as in its CSeq,
    /// `branch` its top Via branch) and sends it.
    pub fn send_request(
        &mut self,
        now: Instant,
        branch: &str,
        method: &str,
        request: Vec<u8>,
        flow: FlowId,
        reliable: bool,
    ) -> Result<TxId, TxError> {
        if self.txs.len() >= self.max && !self.make_room() {
            return Err(TxError::Full);
        }
        let key = ClientKey {
            branch: branch.to_string(),
            method: method.to_ascii_uppercase(),
        };
        if self.clients.contains_key(&key) {
            return Err(TxError::DuplicateBranch);
        }
        let invite = key.method == "INVITE";
        let id = self.new_id();
        let t1 = self.cfg.t1;
        let mut tx = Tx {
            kind: if invite {
                Kind::InviteClient
            } else {
                Kind::NonInviteClient
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            reliable,
            flow,
            client_key: Some(key.clone()),
            server_key: None,
            // Kept only to retransmit, which a reliable transport never
            // does (and an INVITE may carry our key).
            request: if reliable {
                Vec::new()
            } else {
                request.clone()
            },
            last_response: None,
            ack: None,
            timers: [None; TIMERS],
            scheduled: None,
            lingering: None,
            interval: t1,
        };
        if invite {
            if !reliable {
                tx.set(Timer::A, Some(now + t1));
            }
            tx.set(Timer::B, Some(now + 64 * t1));
        } else {
            if !reliable {
                tx.set(Timer::E, Some(now + t1));
            }
            tx.set(Timer::F, Some(now + 64 * t1));
        }
        self.txs.insert(id, tx);
        self.clients.insert(key, id);
        self.transmit(id, flow, request);
        self.schedule(id);
        Ok(id)
    }

    /// Matches a response (its top Via branch and CSeq method) to a client
    /// transaction and advances it.
    pub fn receive_response(
        &mut self,
        now: Instant,
        branch: &str,
        cseq_method: &str,
        status: u16,
    ) -> ResponseAction {
        let action = self.advance_client(now, branch, cseq_method, status);
        match action {
            ResponseAction::Deliver(id)
            | ResponseAction::DeliverNeedsAck(id)
            | ResponseAction::Absorbed(id) => self.schedule(id),
            _ => {}
        }
        action
    }

    fn advance_client(
        &mut self,
        now: Instant,
        branch: &str,
        cseq_method: &str,
        status: u16,
    ) -> ResponseAction {
        let key = ClientKey {
            branch: branch.to_string(),
            method: cseq_method.to_ascii_uppercase(),
        };
        let Some(&id) = self.clients.get(&key) else {
            return ResponseAction::NoMatch;
        };
        let Some(tx) = self.txs.get_mut(&id) else {
            return ResponseAction::NoMatch;
        };
        let provisional = status < 200;
        let success = (200..300).contains(&status);
        let (cfg, reliable) = (self.cfg, tx.reliable);
        match (tx.kind, tx.state) {
            (Kind::InviteClient, State::Calling | State::Proceeding) => {
                tx.set(Timer::A, None);
                if provisional {
                    // Timer B bounds the Calling state only (RFC 3261
                    // §17.1.1.2): a bridge that rings may take its time;
                    // the B2BUA's set-up timeout bounds the call.
                    tx.set(Timer::B, None);
                    tx.state = State::Proceeding;
                    ResponseAction::Deliver(id)
                } else if success {
                    // RFC 6026: Accepted absorbs nothing but passes 2xx
                    // retransmissions up, so the TU can re-ACK.
                    tx.clear_all();
                    tx.state = State::Accepted;
                    tx.set(Timer::M, Some(now + 64 * cfg.t1));
                    ResponseAction::Deliver(id)
                } else {
                    tx.clear_all();
                    tx.state = State::Completed;
                    let d = if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                    tx.set(Timer::D, Some(now + d));
                    ResponseAction::DeliverNeedsAck(id)
                }
            }
            (Kind::InviteClient, State::Accepted) => {
                if success {
                    ResponseAction::Deliver(id)
                } else {
                    ResponseAction::Absorbed(id)
                }
            }
            (Kind::InviteClient, State::Completed) => {
                if !provisional && !success {
                    if let Some(ack) = tx.ack.clone() {
                        let flow = tx.flow;
                        self.transmit(id, flow, ack);
                    }
                }
                ResponseAction::Absorbed(id)
            }
            (Kind::NonInviteClient, State::Trying | State::Proceeding) => {
                if provisional {
                    if tx.state == State::Trying {
                        tx.state = State::Proceeding;
                        if !reliable {
                            tx.interval = cfg.t2;
                        }
                    }
                    ResponseAction::Deliver(id)
                } else {
                    tx.clear_all();
                    tx.state = State::Completed;
                    let k = if reliable { Duration::ZERO } else { cfg.t4 };
                    tx.set(Timer::K, Some(now + k));
                    ResponseAction::Deliver(id)
                }
            }
            _ => ResponseAction::Absorbed(id),
        }
    }

    /// Gives an INVITE client transaction the ACK for its non-2xx final
    /// response; it is sent now and again for each retransmitted response.
    pub fn set_ack(&mut self, tx_id: TxId, ack: Vec<u8>) -> Result<(), TxError> {
        let tx = self.txs.get_mut(&tx_id).ok_or(TxError::Unknown)?;
        if tx.kind != Kind::InviteClient || tx.state != State::Completed {
            return Err(TxError::Unknown);
        }
        tx.ack = Some(ack.clone());
        let flow = tx.flow;
        self.transmit(tx_id, flow, ack);
        Ok(())
    }

    /// Matches a request (top Via branch and sent-by, and its method) to a
    /// server transaction, creating one for a new request.
    pub fn receive_request(
        &mut self,
        now: Instant,
        branch: &str,
        sent_by: &str,
        method: &str,
        flow: FlowId,
        reliable: bool,
    ) -> Result<RequestAction, TxError> {
        let action = self.advance_server(now, branch, sent_by, method, flow, reliable);
        match action {
            Ok(RequestAction::AckAbsorbed(id)) => self.schedule(id),
            // A transaction may have been ended to make room.
            _ => self.tidy(),
        }
        action
    }

    fn advance_server(
        &mut self,
        now: Instant,
        branch: &str,
        sent_by: &str,
        method: &str,
        flow: FlowId,
        reliable: bool,
    ) -> Result<RequestAction, TxError> {
        let method = method.to_ascii_uppercase();
        if method == "ACK" {
            let key = ServerKey {
                branch: branch.to_string(),
                sent_by: sent_by.to_ascii_lowercase(),
                method: "INVITE".into(),
                flow,
            };
            let Some(&id) = self.servers.get(&key) else {
                return Ok(RequestAction::AckForTu);
            };
            let Some(tx) = self.txs.get_mut(&id) else {
                return Ok(RequestAction::AckForTu);
            };
            return Ok(match tx.state {
                State::Completed => {
                    tx.clear_all();
                    tx.state = State::Confirmed;
                    let i = if tx.reliable {
                        Duration::ZERO
                    } else {
                        self.cfg.t4
                    };
                    tx.set(Timer::I, Some(now + i));
                    RequestAction::AckAbsorbed(id)
                }
                State::Confirmed => RequestAction::AckAbsorbed(id),
                // In Accepted the ACK is for the 2xx: the dialog's.
                _ => RequestAction::AckForTu,
            });
        }
        let key = ServerKey {
            branch: branch.to_string(),
            sent_by: sent_by.to_ascii_lowercase(),
            method: method.clone(),
            flow,
        };
        if let Some(&id) = self.servers.get(&key) {
            if let Some(tx) = self.txs.get(&id) {
                // §17.2.1 / §17.2.2: retransmission, resend the last response
                // (in Accepted, RFC 6026: absorb, the TU resends 2xx).
                if tx.state != State::Accepted {
                    if let Some(r) = tx.last_response.clone() {
                        let flow = tx.flow;
                        self.transmit(id, flow, r);
                    }
                }
            }
            return Ok(RequestAction::Absorbed(id));
        }
        if self.txs.len() >= self.max && !self.make_room() {
            return Err(TxError::Full);
        }
        let invite = method == "INVITE";
        let id = self.new_id();
        self.txs.insert(
            id,
            Tx {
                kind: if invite {
                    Kind::InviteServer
                } else {
                    Kind::NonInviteServer
                },
                state: if invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                reliable,
                flow,
                client_key: None,
                server_key: Some(key.clone()),
                request: Vec::new(),
                last_response: None,
                ack: None,
                timers: [None; TIMERS],
                scheduled: None,
                lingering: None,
                interval: self.cfg.t1,
            },
        );
        self.servers.insert(key, id);
        Ok(RequestAction::New(id))
    }

    /// The flow a client transaction sent its request on, by the keys a
    /// response carries (its top Via branch and CSeq method): the TU checks
    /// that a response arrived where its request went before handing it
    /// to [`Transactions::receive_response`].
    pub fn client_flow(&self, branch: &str, cseq_method: &str) -> Option<FlowId> {
        let key = ClientKey {
            branch: branch.to_string(),
            method: cseq_method.to_ascii_uppercase(),
        };
        let id = self.clients.get(&key)?;
        self.txs.get(id).map(|t| t.flow)
    }

    /// The flow a server transaction's request arrived on.
    pub fn server_flow(&self, id: TxId) -> Option<FlowId> {
        self.txs.get(&id).map(|t| t.flow)
    }

    /// The INVITE server transaction a CANCEL (same branch and sent-by,
    /// on the same connection) targets (§9.2), if it is still live.
    pub fn invite_for_cancel(&self, branch: &str, sent_by: &str, flow: FlowId) -> Option<TxId> {
        let key = ServerKey {
            branch: branch.to_string(),
            sent_by: sent_by.to_ascii_lowercase(),
            method: "INVITE".into(),
            flow,
        };
        self.servers
            .get(&key)
            .copied()
            .filter(|id| self.txs.contains_key(id))
    }

    /// Sends a response on a server transaction.
    pub fn respond(
        &mut self,
        now: Instant,
        tx_id: TxId,
        status: u16,
        response: Vec<u8>,
    ) -> Result<(), TxError> {
        let cfg = self.cfg;
        let tx = self.txs.get_mut(&tx_id).ok_or(TxError::Unknown)?;
        let provisional = status < 200;
        let success = (200..300).contains(&status);
        match (tx.kind, tx.state) {
            (Kind::InviteServer, State::Proceeding) => {
                if !provisional {
                    if success {
                        tx.state = State::Accepted;
                        tx.set(Timer::L, Some(now + 64 * cfg.t1));
                    } else {
                        tx.state = State::Completed;
                        if !tx.reliable {
                            tx.set(Timer::G, Some(now + cfg.t1));
                        }
                        tx.set(Timer::H, Some(now + 64 * cfg.t1));
                    }
                }
            }
            // RFC 6026: the TU retransmits 2xx through the transaction.
            (Kind::InviteServer, State::Accepted) if success => {}
            (Kind::NonInviteServer, State::Trying | State::Proceeding) => {
                if provisional {
                    tx.state = State::Proceeding;
                } else {
                    tx.state = State::Completed;
                    let j = if tx.reliable {
                        Duration::ZERO
                    } else {
                        64 * cfg.t1
                    };
                    tx.set(Timer::J, Some(now + j));
                }
            }
            _ => return Err(TxError::AlreadyFinal),
        }
        // A 2xx to an INVITE is never resent by the transaction (Accepted
        // absorbs retransmissions, RFC 6026): not kept, since it may carry
        // our key.
        let keep = tx.state != State::Accepted;
        let old = std::mem::replace(&mut tx.last_response, keep.then(|| response.clone()));
        if let Some(mut old) = old {
            zeroize::Zeroize::zeroize(&mut old);
        }
        let flow = tx.flow;
        self.transmit(tx_id, flow, response);
        self.schedule(tx_id);
        Ok(())
    }

    /// The next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// The earliest timer of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// Puts a transaction's earliest timer in the heap if it changed, and
    /// it in or out of the lingering set, then [`Transactions::tidy`].
    fn schedule(&mut self, id: TxId) {
        if let Some(tx) = self.txs.get_mut(&id) {
            let next = tx.next_timeout();
            if next != tx.scheduled {
                tx.scheduled = next;
                if let Some(at) = next {
                    self.deadlines.push(Reverse((at, id)));
                }
            }
            let lingering = matches!(
                tx.state,
                State::Completed | State::Confirmed | State::Accepted
            );
            let key = next.filter(|_| lingering);
            if key != tx.lingering {
                if let Some(at) = tx.lingering {
                    self.lingering.remove(&(at, id));
                }
                if let Some(at) = key {
                    self.lingering.insert((at, id));
                }
                tx.lingering = key;
            }
        }
        self.tidy();
    }

    /// Whether a heap entry still names its transaction's deadline.
    fn current(&self, at: Instant, id: TxId) -> bool {
        self.txs.get(&id).is_some_and(|t| t.scheduled == Some(at))
    }

    /// Drops stale entries from the top of the heap, and rebuilds it when
    /// stale entries outnumber live transactions (bounded memory).
    fn tidy(&mut self) {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if self.current(at, id) {
                break;
            }
            self.deadlines.pop();
        }
        if self.deadlines.len() > 2 * self.txs.len() + 64 {
            self.deadlines = self
                .txs
                .iter()
                .filter_map(|(id, t)| t.scheduled.map(|at| Reverse((at, *id))))
                .collect();
        }
    }

    /// When the table is full: ends the lingering transaction (one that
    /// only waits to absorb retransmissions: Completed, Confirmed,
    /// Accepted) whose timer would end it soonest, so that a burst of calls
    /// is limited by live transactions, not by RFC 6026's 32 s of
    /// lingering. `false` if every transaction is live.
    fn make_room(&mut self) -> bool {
        match self.lingering.first() {
            Some(&(_, id)) => {
                self.terminate(id);
                true
            }
            None => false,
        }
    }

    /// Drops a transaction the TU has given up on (an INVITE client
    /// transaction in Proceeding has no timer of its own: the B2BUA's
    /// set-up and CANCEL deadlines end it). No event follows.
    pub fn abandon(&mut self, id: TxId) {
        self.terminate(id);
        self.events.retain(|e| *e != TxEvent::Terminated(id));
        self.tidy();
    }

    fn terminate(&mut self, id: TxId) {
        if let Some(tx) = self.txs.remove(&id) {
            if let Some(at) = tx.lingering {
                self.lingering.remove(&(at, id));
            }
            if let Some(k) = &tx.client_key {
                self.clients.remove(k);
            }
            if let Some(k) = &tx.server_key {
                self.servers.remove(k);
            }
            self.events.push_back(TxEvent::Terminated(id));
        }
    }

    /// Fires every timer due at `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if !self.current(at, id) {
                continue;
            }
            // A transaction may have several timers due; fire them in order.
            while let Some(tx) = self.txs.get(&id) {
                let Some((timer, _)) = tx
                    .timers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| t.filter(|at| *at <= now).map(|at| (i, at)))
                    .min_by_key(|(_, at)| *at)
                else {
                    break;
                };
                self.fire(now, id, timer);
            }
            // Its next timer, if it lives on, is later than `now`.
            self.schedule(id);
        }
        self.tidy();
    }

    fn fire(&mut self, now: Instant, id: TxId, timer: usize) {
        let cfg = self.cfg;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        tx.timers[timer] = None;
        let flow = tx.flow;
        match timer {
            t if t == Timer::A as usize => {
                // §17.1.1.2: retransmit INVITE, double the interval.
                tx.interval *= 2;
                let next = tx.interval;
                tx.set(Timer::A, Some(now + next));
                let r = tx.request.clone();
                self.transmit(id, flow, r);
            }
            t if t == Timer::E as usize => {
                // §17.1.2.2: double up to T2 in Trying, T2 in Proceeding.
                tx.interval = if tx.state == State::Trying {
                    (tx.interval * 2).min(cfg.t2)
                } else {
                    cfg.t2
                };
                let next = tx.interval;
                tx.set(Timer::E, Some(now + next));
                let r = tx.request.clone();
                self.transmit(id, flow, r);
            }
            t if t == Timer::G as usize => {
                // §17.2.1: retransmit the final response, up to T2.
                tx.interval = (tx.interval * 2).min(cfg.t2);
                let next = tx.interval;
                tx.set(Timer::G, Some(now + next));
                if let Some(r) = tx.last_response.clone() {
                    self.transmit(id, flow, r);
                }
            }
            t if t == Timer::B as usize || t == Timer::F as usize => {
                self.events.push_back(TxEvent::Timeout(id));
                self.terminate(id);
            }
            t if t == Timer::H as usize => {
                self.events.push_back(TxEvent::AckTimeout(id));
                self.terminate(id);
            }
            _ => self.terminate(id), // D, I, J, K, L, M: wait over
        }
    }
}
