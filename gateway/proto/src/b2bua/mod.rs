//! The back-to-back user agent: a phone's call to a meeting alias becomes
//! a second, independent call to the conference bridge, with fresh SRTP
//! keys on each leg and the relay in between.
//!
//! # Contract
//!
//! [`B2bua`] is sans-IO. The shell feeds it [`Input`]s through
//! [`B2bua::handle_input`] (admitted phone connections and their
//! messages, trunk and bridge connections and theirs, trunk failures,
//! media inactivity, policy changes) and fires its timers with
//! [`B2bua::handle_timeout`]; after every call it drains
//! [`B2bua::poll_output`] (bytes to send, media to start or stop,
//! connections to close) and asks [`B2bua::poll_timeout`]. Media ports
//! come from a [`MediaPorts`] and randomness (tags, branches, Call-IDs,
//! SSRCs) from a [`Random`], so tests drive it with fakes on a virtual
//! clock.
//!
//! # Admission
//!
//! A phone connection is accepted only with an
//! [`Admitted`](crate::admission::Admitted), which only the registry's
//! admission makes; a call is created only from an [`Authorized`], which
//! only the call admission checks make (the caller's identity matches its
//! token, the alias is in the meeting directory, the token may call it,
//! the limits allow it). Every refusal is a typed [`Refusal`]: the status,
//! the Warning and the audit reason come from one value.
//!
//! # Layout
//!
//! By sub-state: [`call`] (a call's phase and legs, the call table),
//! `admit` (authorization, attempt rates), `setup` (the INVITE to the
//! answer), `dialog` (requests within a call), `teardown` (every way a
//! call ends), `trunks` (the trunk table, keep-alives, next hops),
//! `frames` (media frames), [`build`] (messages).

pub mod build;

mod admit;
mod call;
mod dialog;
mod frames;
mod refusal;
mod setup;
mod teardown;
mod trunks;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tracing::warn;

use crate::admission::{Admitted, Registry};
use crate::config::{AliasGrants, Config, DirectoryEntry, TrunkConfig};
use crate::relay::{LegConfig, LocalLeg, PlayFrame};
use crate::sdp::Policy;
use crate::sip::{Message, Method};
use crate::srtp::MasterKey;
use crate::transaction::{FlowId, RequestAction, TimerConfig, Transactions, TxEvent, TxId};

pub use admit::Authorized;
pub use call::{CallKey, MIN_SE};
pub use refusal::Refusal;
pub use trunks::{TrunkId, KEEPALIVE};

/// How long an admitted phone connection without calls may stay silent
/// before it is closed (phones keep their connection alive with RFC 5626
/// CRLF pings or OPTIONS, or reconnect when they call).
pub const PHONE_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

use build::Reply;
use call::CallTable;
use trunks::TrunkTable;

/// Where bytes go: an admitted phone connection or a bridge trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// A phone connection, numbered by the shell.
    Phone(u64),
    /// A trunk's own connection.
    Trunk(TrunkId),
    /// Another next hop of a trunk that its configuration lists in
    /// `routes`, taken from a dialog's route set (a bridge that
    /// Record-Routes in-dialog requests elsewhere, such as Webex's port
    /// 5062); see [`B2bua::route_target`].
    Route(usize),
    /// A connection a bridge opened to the bridge-side listener, numbered
    /// by the shell ([`Input::BridgeConnected`]).
    Inbound(u64),
}

const TRUNK_FLOW: u64 = 1 << 48;
const ROUTE_FLOW: u64 = 1 << 49;
const INBOUND_FLOW: u64 = 1 << 50;

impl Flow {
    fn id(self) -> FlowId {
        match self {
            Flow::Phone(n) => FlowId(n & (TRUNK_FLOW - 1)),
            Flow::Trunk(i) => FlowId(TRUNK_FLOW + (i.0 as u64 & (TRUNK_FLOW - 1))),
            Flow::Route(i) => FlowId(ROUTE_FLOW + (i as u64 & (TRUNK_FLOW - 1))),
            Flow::Inbound(n) => FlowId(INBOUND_FLOW + (n & (INBOUND_FLOW - 1))),
        }
    }

    fn of(id: FlowId) -> Flow {
        if id.0 >= INBOUND_FLOW {
            Flow::Inbound(id.0 - INBOUND_FLOW)
        } else if id.0 >= ROUTE_FLOW {
            Flow::Route((id.0 - ROUTE_FLOW) as usize)
        } else if id.0 >= TRUNK_FLOW {
            Flow::Trunk(TrunkId((id.0 - TRUNK_FLOW) as usize))
        } else {
            Flow::Phone(id.0)
        }
    }
}

/// What happened, for the B2BUA to act on (str0m's `handle_input`).
#[derive(Debug)]
pub enum Input {
    /// A phone connection was admitted at TLS.
    PhoneConnected {
        /// The shell's number for the connection.
        flow: u64,
        /// Its admission.
        admitted: Admitted,
    },
    /// A SIP message on an admitted phone connection.
    Phone {
        /// The connection.
        flow: u64,
        /// The message.
        msg: Message,
    },
    /// A phone connection showed it is alive without a message (an RFC 5626
    /// CRLF ping): it is not idle.
    PhoneAlive {
        /// The connection.
        flow: u64,
    },
    /// A phone connection closed. Its calls continue (a phone may send
    /// BYE on a new connection); media inactivity ends abandoned ones.
    PhoneClosed {
        /// The connection.
        flow: u64,
    },
    /// The certificate a phone connection was admitted with expired: its
    /// calls go on, new INVITEs on it are refused.
    PhoneCertificateExpired {
        /// The connection.
        flow: u64,
    },
    /// A SIP message from a trunk connection (its own or a route hop's).
    Trunk {
        /// The trunk.
        trunk: TrunkId,
        /// The message.
        msg: Message,
    },
    /// A trunk's own connection is up from `local`, the kit's address
    /// towards that bridge now. A trunk whose `media_address` is the
    /// wildcard (`0.0.0.0` or `::`: the uplink's address, whatever the
    /// network gave it) binds and advertises its new legs there.
    TrunkLocal {
        /// The trunk.
        trunk: TrunkId,
        /// The connection's local address.
        local: IpAddr,
    },
    /// A trunk connection failed or closed: calls being set up on it fail,
    /// established ones end.
    TrunkFailed {
        /// The trunk.
        trunk: TrunkId,
    },
    /// A bridge opened a connection to the bridge-side listener and
    /// presented a certificate that `trunk` trusts.
    BridgeConnected {
        /// The shell's number for the connection.
        conn: u64,
        /// The trunk it belongs to.
        trunk: TrunkId,
    },
    /// A SIP message on a bridge's own connection: requests are handled as
    /// from its trunk (in-dialog only, and only for its own calls).
    Bridge {
        /// The connection.
        conn: u64,
        /// The message.
        msg: Message,
    },
    /// A bridge's own connection closed.
    BridgeClosed {
        /// The connection.
        conn: u64,
    },
    /// The relay saw no media for the inactivity time.
    MediaInactive {
        /// The call.
        call: CallKey,
    },
    /// The token registry in force changed (a policy or registry file was
    /// applied). Admission is by key: every phone connection whose key is
    /// no longer an active entry closes at once and its calls end, whatever
    /// the token's name; every new connection, INVITE and in-dialog request
    /// is checked against this registry.
    Registry(Registry),
    /// New token-to-alias grants (a registry or policy was applied).
    Grants(AliasGrants),
    /// A new meeting directory (a signed policy). Live calls keep the
    /// entry they were placed with.
    Directory(HashMap<String, DirectoryEntry>),
    /// Every trunk with the policy's settings (a signed policy): see
    /// [`B2bua::handle_input`].
    Trunks(HashMap<String, TrunkConfig>),
    /// Refuse new calls with 503 and this reason (`Some`: the signed
    /// policy expired), or accept them again (`None`). Live calls go on.
    Gate(Option<&'static str>),
    /// The network check's verdict (`crate::netcheck`): refuse new calls
    /// with this refusal (`Some`), or accept them again (`None`). Separate
    /// from [`Input::Gate`], so neither reopens what the other closed.
    /// Live calls go on.
    Network(Option<Refusal>),
    /// The uplink's public address as the network check's STUN server
    /// sees it (`Some`: behind a NAT; `None`: no NAT seen, or unknown).
    /// New bridge legs bound elsewhere (not on loopback) advertise it in
    /// their SDP with their own port, so that a bridge that does not latch
    /// sends its media where the NAT maps it back; a bridge's re-INVITE is
    /// answered with the one in force.
    PublicAddress(Option<IpAddr>),
    /// HQ's signed command "drop calls": every call ends now (pending
    /// INVITEs answered, bridges CANCELled or BYEd). Connections stay;
    /// new calls are admitted as before.
    DropCalls,
}

/// What the shell must do. Exhaustive on purpose: a shell that forgets
/// an output does not compile.
#[derive(Debug)]
pub enum Output {
    /// Send these bytes on a flow (connect the trunk first if needed).
    Send {
        /// Where.
        flow: Flow,
        /// The SIP message.
        bytes: Vec<u8>,
    },
    /// Start relaying a call's media between two legs (the ports were
    /// allocated through [`MediaPorts`]), then play the frames.
    StartMedia(Box<StartMedia>),
    /// Re-key one leg of a running call (a session update changed the
    /// SRTP keys: RFC 4568 §6.1).
    RekeyMedia {
        /// The call.
        call: CallKey,
        /// The phone leg (`true`) or the bridge leg.
        phone_leg: bool,
        /// The far end's new key, if it changed.
        inbound: Option<MasterKey>,
        /// Our new key towards it, if it changed.
        outbound: Option<MasterKey>,
    },
    /// Frames the gateway sends on one leg of a running call (the secure
    /// tone and the meeting PIN at answer, after early media).
    Play {
        /// The call.
        call: CallKey,
        /// The phone leg (`true`) or the bridge leg.
        phone_leg: bool,
        /// The frames.
        frames: Vec<PlayFrame>,
        /// Mute relayed audio towards that leg while they play.
        mute: bool,
    },
    /// Stop relaying a call; its keys are zeroized.
    StopMedia {
        /// The call.
        call: CallKey,
    },
    /// Close media sockets that never became part of a call.
    ReleaseMedia {
        /// The legs.
        legs: Vec<LocalLeg>,
    },
    /// Close every connection of a trunk (its settings changed or it was
    /// retired), after what is queued on them.
    CloseTrunk {
        /// The trunk.
        trunk: TrunkId,
    },
    /// Close a phone connection (its token was revoked), after what is
    /// queued on it.
    Disconnect {
        /// The phone connection.
        flow: u64,
    },
}

/// A call's media, ready to relay.
#[derive(Debug)]
pub struct StartMedia {
    /// The call.
    pub call: CallKey,
    /// Phone leg.
    pub phone: (LocalLeg, LegConfig),
    /// Bridge leg.
    pub bridge: (LocalLeg, LegConfig),
    /// The secure tone for the phone (mutes the bridge meanwhile).
    pub tone: Vec<PlayFrame>,
    /// The meeting PIN for the bridge as RFC 4733 events.
    pub pin: Vec<PlayFrame>,
}

/// Allocates media ports (the relay thread binds them).
pub trait MediaPorts {
    /// Binds a leg's socket(s) on `ip`.
    fn allocate(&mut self, ip: IpAddr, rtcp_mux: bool) -> Result<LocalLeg, String>;
}

/// Randomness for protocol identifiers.
pub trait Random {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The system CSPRNG (aws-lc-rs).
#[derive(Debug, Default)]
pub struct SystemRandom;

impl Random for SystemRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        // aws-lc's RNG only fails if the OS RNG is unusable; fail closed
        // rather than hand out predictable identifiers.
        if aws_lc_rs::rand::fill(buf).is_err() {
            panic!("system random number generator unavailable");
        }
    }
}

/// Local addresses the B2BUA puts into messages.
#[derive(Clone, Debug)]
pub struct LocalAddrs {
    /// The phone-side SIP/TLS listener (Via, Contact towards phones).
    pub phone_sip: SocketAddr,
    /// The bridge-side listener, if any: the Contact given to bridges.
    pub bridge_sip: Option<SocketAddr>,
}

/// Why a B2BUA could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum B2buaError {
    /// A suite list is unusable.
    #[error("SRTP policy: {0}")]
    Policy(String),
}

/// The B2BUA. See the module documentation for the driving contract.
pub struct B2bua {
    config: Arc<Config>,
    grants: AliasGrants,
    /// The meeting directory by alias: the configuration's, or the signed
    /// policy's.
    directory: HashMap<String, DirectoryEntry>,
    /// Why new calls are refused with 503 (an expired policy), if they are.
    closed: Option<&'static str>,
    /// Why the network check refuses new calls, if it does.
    network: Option<Refusal>,
    /// The uplink's public address behind a NAT ([`Input::PublicAddress`]).
    public: Option<IpAddr>,
    trunks: TrunkTable,
    local: LocalAddrs,
    txs: Transactions,
    calls: CallTable,
    /// The token registry in force (empty until the shell sends one:
    /// nothing is admitted before).
    registry: Registry,
    /// Admitted phone connections.
    phones: HashMap<u64, Admitted>,
    /// When each phone connection last sent a message: one without calls
    /// that stays silent for [`PHONE_IDLE`] is closed.
    last_heard: HashMap<u64, Instant>,
    /// Phone connections whose certificate has expired since admission:
    /// their calls go on, new calls are refused.
    expired_flows: HashSet<u64>,
    attempts: admit::Attempts,
    out: VecDeque<Output>,
    ports: Box<dyn MediaPorts + Send>,
    random: Box<dyn Random + Send>,
    phone_policy: Policy,
}

impl std::fmt::Debug for B2bua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2bua")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl B2bua {
    /// A B2BUA for `config`, with the token-to-alias grants of the registry.
    pub fn new(
        config: Arc<Config>,
        grants: AliasGrants,
        local: LocalAddrs,
        ports: Box<dyn MediaPorts + Send>,
        random: Box<dyn Random + Send>,
    ) -> Result<B2bua, B2buaError> {
        let phone_policy =
            Policy::new(&config.phone.suites).map_err(|e| B2buaError::Policy(e.to_string()))?;
        Ok(B2bua {
            txs: Transactions::new(
                TimerConfig::default(),
                4 * config.limits.max_calls as usize + 64,
            ),
            directory: config.directory.clone(),
            closed: None,
            network: None,
            public: None,
            trunks: TrunkTable::new(&config.trunks)?,
            config,
            grants,
            local,
            calls: CallTable::default(),
            registry: Registry::default(),
            phones: HashMap::new(),
            last_heard: HashMap::new(),
            expired_flows: HashSet::new(),
            attempts: admit::Attempts::default(),
            out: VecDeque::new(),
            ports,
            random,
            phone_policy,
        })
    }

    /// Starts the OPTIONS keep-alives to every trunk (the first in a
    /// second). The shell calls this once.
    pub fn start(&mut self, now: Instant) {
        self.trunks.start(now, std::time::Duration::from_secs(1));
    }

    /// Acts on an input. For [`Input::Trunks`]: a trunk whose settings
    /// changed, or that the policy no longer lists, loses its calls and
    /// its connections ([`Output::CloseTrunk`]); a new name is a new trunk.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::PhoneConnected { flow, admitted } => self.phone_connected(now, flow, admitted),
            Input::Phone { flow, msg } => self.phone_message(now, flow, msg),
            Input::PhoneAlive { flow } => {
                if let Some(t) = self.last_heard.get_mut(&flow) {
                    *t = now;
                }
            }
            Input::PhoneClosed { flow } => {
                self.phones.remove(&flow);
                self.last_heard.remove(&flow);
                self.expired_flows.remove(&flow);
            }
            Input::PhoneCertificateExpired { flow } => {
                if self.phones.contains_key(&flow) {
                    self.expired_flows.insert(flow);
                }
            }
            Input::Trunk { trunk, msg } => self.bridge_message(now, Flow::Trunk(trunk), msg),
            Input::TrunkLocal { trunk, local } => self.trunks.set_local(trunk, local),
            Input::TrunkFailed { trunk } => self.trunk_failed(now, trunk),
            Input::BridgeConnected { conn, trunk } => {
                if !self.trunks.inbound_connected(conn, trunk) {
                    warn!(conn, %trunk, "bridge connection for a trunk that does not exist");
                }
            }
            Input::Bridge { conn, msg } => {
                if self.trunks.is_inbound(conn) {
                    self.bridge_message(now, Flow::Inbound(conn), msg);
                } else {
                    warn!(
                        conn,
                        "message on a bridge connection that was never admitted"
                    );
                }
            }
            Input::BridgeClosed { conn } => self.trunks.inbound_closed(conn),
            Input::MediaInactive { call } => self.media_inactive(now, call),
            Input::Registry(r) => self.set_registry(now, r),
            Input::Grants(g) => self.grants = g,
            Input::Directory(d) => self.directory = d,
            Input::Trunks(t) => self.set_trunks(now, &t),
            Input::Gate(reason) => self.closed = reason,
            Input::Network(refusal) => self.network = refusal,
            Input::PublicAddress(ip) => {
                if self.public != ip {
                    tracing::info!(public = ?ip, "the uplink's public address for new bridge legs");
                }
                self.public = ip;
            }
            Input::DropCalls => self.drop_calls(now),
        }
        self.drain_transactions(now);
    }

    /// Fires due timers: transactions, session timers, keep-alives.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txs.handle_timeout(now);
        self.expire_calls(now);
        self.close_idle_phones(now);
        self.send_keepalives(now);
        self.drain_transactions(now);
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`B2bua::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self
            .calls
            .values()
            .flat_map(|c| [c.session_timer.map(|t| t.deadline), c.deadline])
            .flatten()
            .min();
        let idle = self.last_heard.values().min().map(|t| *t + PHONE_IDLE);
        [
            self.txs.poll_timeout(),
            self.trunks.next_keepalive(),
            calls,
            idle,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether a trunk answered its last keep-alive (`None`: not yet known).
    pub fn trunk_up(&self, trunk: TrunkId) -> Option<bool> {
        self.trunks.up(trunk)
    }

    /// The current settings of a trunk (`None` for an id that names none).
    pub fn trunk_config(&self, trunk: TrunkId) -> Option<&TrunkConfig> {
        self.trunks.config(trunk)
    }

    /// The trunks in service.
    pub fn trunk_ids(&self) -> Vec<TrunkId> {
        self.trunks.ids().collect()
    }

    /// The trunk and address a [`Flow::Route`] connects to (with the
    /// trunk's TLS trust and server name).
    pub fn route_target(&self, route: usize) -> Option<(TrunkId, SocketAddr)> {
        self.trunks.route_target(route)
    }

    /// Number of calls.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The kit's own addresses (media and signalling, both sides): no
    /// peer may aim the relay's media at them.
    fn own_addresses(&self) -> Vec<IpAddr> {
        let mut own = vec![self.config.phone.media_address, self.local.phone_sip.ip()];
        own.extend(self.config.phone.advertise_address);
        own.extend(self.local.bridge_sip.map(|a| a.ip()));
        own.extend(
            self.trunks
                .ids()
                .filter_map(|t| self.trunks.config(t).map(|c| c.media_address)),
        );
        own
    }

    /// Drops the media addresses of `n` that the relay must not send to
    /// before it latches (`frames::media_destination_allowed`): the leg
    /// then waits for the peer's first authenticated packet and answers
    /// where it came from (a phone behind NAT, or an offer aimed at the
    /// box or the uplink).
    fn guard_media_addresses(&self, key: CallKey, n: &mut crate::sdp::Negotiated, peer: IpAddr) {
        let own = self.own_addresses();
        for slot in [&mut n.remote_rtp, &mut n.remote_rtcp] {
            if let Some(a) = *slot {
                if !frames::media_destination_allowed(a.ip(), peer, &own) {
                    warn!(call = key.number(), address = %a, %peer, "media address not used before latching: the leg waits for the peer's first packet");
                    *slot = None;
                }
            }
        }
    }

    fn rand_hex(&mut self, n: usize) -> String {
        let mut b = vec![0u8; n];
        self.random.fill(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn drain_transactions(&mut self, now: Instant) {
        // Events can cause transmits (a timeout answers the phone), so loop
        // until both queues are empty.
        loop {
            while let Some(t) = self.txs.poll_transmit() {
                self.out.push_back(Output::Send {
                    flow: Flow::of(t.flow),
                    bytes: t.bytes,
                });
            }
            let Some(ev) = self.txs.poll_event() else {
                break;
            };
            match ev {
                TxEvent::Timeout(tx) => {
                    self.trunks.keepalive_result(tx, false);
                    if let Some(key) = self.calls.by_invite_tx(tx) {
                        self.bridge_silent(now, key);
                    }
                }
                TxEvent::AckTimeout(tx) | TxEvent::Terminated(tx) => {
                    self.calls.invite_tx_done(tx);
                }
            }
        }
    }

    fn send(&mut self, flow: Flow, msg: &Message) {
        self.out.push_back(Output::Send {
            flow,
            bytes: msg.to_bytes(),
        });
    }

    fn phone_message(&mut self, now: Instant, flow: u64, msg: Message) {
        let Some(admitted) = self.phones.get(&flow).cloned() else {
            warn!(flow, "message on a phone flow that was never admitted");
            return;
        };
        self.last_heard.insert(flow, now);
        if !self.still_admitted(&admitted) {
            // Closed when the registry changed; never act on a late message.
            self.close_phone(flow, &admitted, "key no longer admitted");
            return;
        }
        match msg.method().cloned() {
            Some(method) => self.phone_request(now, Flow::Phone(flow), &admitted, method, msg),
            None => self.response(now, Flow::Phone(flow), msg),
        }
    }

    fn bridge_message(&mut self, now: Instant, flow: Flow, msg: Message) {
        match msg.method().cloned() {
            Some(method) => self.trunk_request(now, flow, method, msg),
            None => self.response(now, flow, msg),
        }
    }

    /// The server transaction of a request (`None`: a retransmission the
    /// layer absorbed, or no state left: then 503 without state).
    fn server_tx(&mut self, now: Instant, flow: Flow, msg: &Message) -> Option<RequestAction> {
        let via = msg.top_via();
        let branch = via.branch().unwrap_or_default().to_string();
        let sent_by = build::sent_by(via);
        let method = msg.method()?.as_str().to_string();
        match self
            .txs
            .receive_request(now, &branch, &sent_by, &method, flow.id(), true)
        {
            Ok(a) => Some(a),
            Err(_) => {
                if msg.method() != Some(&Method::Ack) {
                    if let Some(r) = Reply::new(msg, 503, None)
                        .refusal(&Refusal::OVERLOADED)
                        .build()
                    {
                        self.send(flow, &r);
                    }
                }
                None
            }
        }
    }

    fn reply(&mut self, now: Instant, tx: TxId, reply: Reply<'_>) {
        let status = reply.status();
        if let Some(msg) = reply.build() {
            let _ = self.txs.respond(now, tx, status, msg.to_bytes());
        }
    }

    fn phone_request(
        &mut self,
        now: Instant,
        flow: Flow,
        admitted: &Admitted,
        method: Method,
        msg: Message,
    ) {
        let Some(action) = self.server_tx(now, flow, &msg) else {
            return;
        };
        // The ACK of our 2xx needs nothing over TLS (no retransmissions to
        // stop); other retransmissions were absorbed.
        let RequestAction::New(tx) = action else {
            return;
        };
        let in_dialog = msg.to().tag().is_some();
        match method {
            Method::Invite if !in_dialog => self.phone_invite(now, flow, admitted, tx, msg),
            Method::Cancel => self.phone_cancel(now, tx, &msg, admitted),
            Method::Options if !in_dialog => {
                self.reply(now, tx, Reply::new(&msg, 200, None).allow())
            }
            Method::Bye | Method::Invite | Method::Update | Method::Options | Method::Info => {
                self.in_dialog(now, tx, method, &msg, dialog::From::Phone(admitted))
            }
            Method::Extension(_) => self.reply(now, tx, Reply::new(&msg, 501, None).allow()),
            _ => self.reply(now, tx, Reply::new(&msg, 405, None).allow()),
        }
    }

    fn trunk_request(&mut self, now: Instant, flow: Flow, method: Method, msg: Message) {
        let Some(RequestAction::New(tx)) = self.server_tx(now, flow, &msg) else {
            return;
        };
        let in_dialog = msg.to().tag().is_some();
        match method {
            // Bridges may keep the trunk alive with OPTIONS.
            Method::Options if !in_dialog => {
                self.reply(now, tx, Reply::new(&msg, 200, None).allow())
            }
            // dialgate is phone-initiated only.
            Method::Invite if !in_dialog => self.reply(
                now,
                tx,
                Reply::new(&msg, 403, None).refusal(&Refusal::PHONES_ONLY),
            ),
            Method::Bye | Method::Invite | Method::Update | Method::Options | Method::Info => {
                let trunk = self.trunks.of_flow(flow);
                self.in_dialog(now, tx, method, &msg, dialog::From::Bridge(trunk))
            }
            Method::Extension(_) => self.reply(now, tx, Reply::new(&msg, 501, None).allow()),
            _ => self.reply(now, tx, Reply::new(&msg, 405, None).allow()),
        }
    }

    /// The tracing span of a call: every event about it carries the call
    /// number, the token and the alias (never keys).
    fn span(&self, key: CallKey) -> tracing::Span {
        match self.calls.get(key) {
            Some(c) => {
                tracing::info_span!("call", id = key.0, token = %c.token(), alias = %c.alias())
            }
            None => tracing::info_span!("call", id = key.0),
        }
    }

    /// The tracing span of one leg of a call, entered where a message of
    /// that leg is handled: the side, the SIP Call-ID of the leg, and the
    /// phone's address or the trunk and bridge URI (never keys).
    fn leg_span(&self, key: CallKey, from_phone: bool) -> tracing::Span {
        match self.calls.get(key) {
            Some(c) if from_phone => tracing::info_span!(
                "leg",
                call = key.0,
                side = "phone",
                peer = %c.source,
                sip_call_id = %c.phone.call_id
            ),
            Some(c) => tracing::info_span!(
                "leg",
                call = key.0,
                side = "bridge",
                trunk = %self.trunks.name(c.bridge.trunk),
                uri = %c.bridge.request_uri,
                sip_call_id = %c.bridge.call_id
            ),
            None => tracing::info_span!("leg", call = key.0),
        }
    }
}
