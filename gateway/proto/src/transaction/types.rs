//! The transaction layer's public vocabulary: timer values, the timers,
//! transaction ids and flows, states, and what the layer tells its user.

use std::time::Duration;

/// RFC 3261 timer base values (§17.1.1.1, Table 4).
#[derive(Clone, Copy, Debug)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message remains in the network, default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> TimerConfig {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// The timers of RFC 3261 §17 and RFC 6026 §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Timer {
    /// INVITE client: request retransmit (unreliable only).
    A,
    /// INVITE client: transaction timeout.
    B,
    /// INVITE client: wait time for response retransmits.
    D,
    /// Non-INVITE client: request retransmit (unreliable only).
    E,
    /// Non-INVITE client: transaction timeout.
    F,
    /// INVITE server: response retransmit (unreliable only).
    G,
    /// INVITE server: wait time for ACK receipt.
    H,
    /// INVITE server: wait time for ACK retransmits.
    I,
    /// Non-INVITE server: wait time for request retransmits.
    J,
    /// Non-INVITE client: wait time for response retransmits.
    K,
    /// INVITE server: Accepted state (RFC 6026).
    L,
    /// INVITE client: Accepted state (RFC 6026).
    M,
}

pub(super) const TIMERS: usize = 12;

/// A transaction handle. Stale handles (of terminated transactions) match
/// nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub(super) u64);

/// Opaque name of the transport flow (connection) a transaction uses;
/// chosen by the TU and returned with every transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId(pub u64);

/// Which state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// INVITE client transaction (§17.1.1).
    InviteClient,
    /// Non-INVITE client transaction (§17.1.2).
    NonInviteClient,
    /// INVITE server transaction (§17.2.1).
    InviteServer,
    /// Non-INVITE server transaction (§17.2.2).
    NonInviteServer,
}

/// Transaction state (§17 and RFC 6026's Accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// INVITE client, request sent.
    Calling,
    /// Non-INVITE client or server, nothing final yet.
    Trying,
    /// A provisional response was sent or received.
    Proceeding,
    /// A final (non-2xx for INVITE) response was sent or received.
    Completed,
    /// INVITE server, ACK received.
    Confirmed,
    /// INVITE, 2xx sent or received (RFC 6026).
    Accepted,
    /// Done; the transaction is removed.
    Terminated,
}

/// What the TU should do with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseAction {
    /// Pass it to the TU.
    Deliver(TxId),
    /// A non-2xx final response to INVITE: pass it to the TU, which must
    /// build the ACK and hand it to [`Transactions::set_ack`].
    DeliverNeedsAck(TxId),
    /// A retransmission, handled here (ACK re-sent if needed).
    Absorbed(TxId),
    /// No transaction matches: RFC 3261 §18.1.2 passes stray 2xx to the
    /// core (it may need an ACK); anything else is dropped.
    NoMatch,
}

/// What the TU should do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestAction {
    /// A new server transaction: the TU must respond.
    New(TxId),
    /// A retransmission of a request already being handled: absorbed (the
    /// last response, if any, was re-sent).
    Absorbed(TxId),
    /// An ACK for a non-2xx final response: absorbed by the transaction.
    AckAbsorbed(TxId),
    /// An ACK that matches no INVITE server transaction in Completed: the
    /// ACK for a 2xx, which belongs to the dialog layer (§17.2.3).
    AckForTu,
}

/// Transaction-layer events for the TU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxEvent {
    /// Timer B or F fired: no final response (treat as 408).
    Timeout(TxId),
    /// Timer H fired: no ACK for a non-2xx final response.
    AckTimeout(TxId),
    /// The transaction ended and was removed.
    Terminated(TxId),
}

/// Bytes to send on a flow.
#[derive(Debug)]
pub struct Transmit {
    /// The transaction.
    pub tx: TxId,
    /// The flow to send on.
    pub flow: FlowId,
    /// The message.
    pub bytes: Vec<u8>,
}
