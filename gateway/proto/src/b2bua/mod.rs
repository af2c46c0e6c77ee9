//! The back-to-back user agent: a phone's call to a meeting alias becomes
//! a second, independent call to the conference bridge, with fresh SRTP
//! keys on each leg and the relay in between.
//!
//! # Contract
//!
//! [`B2bua`] is sans-IO. The shell feeds it parsed SIP messages with the
//! flow they arrived on ([`B2bua::handle_phone`] for admitted phone
//! connections, [`B2bua::handle_trunk`] for bridge trunks), trunk failures,
//! media-inactivity events and timeouts; after every call it drains
//! [`B2bua::poll_output`] (bytes to send, media to start or stop) and asks
//! [`B2bua::poll_timeout`]. Media ports come from a [`MediaPorts`] and
//! randomness (tags, branches, Call-IDs, SSRCs) from a [`Random`], so tests
//! drive it with fakes on a virtual clock.
//!
//! A call is created only from an [`Authorized`] value, which only
//! [`B2bua`]'s admission checks construct: the caller's identity matches
//! its token (From and P-Asserted-Identity user), the dialled alias is in
//! the meeting directory, and the token may call it.

pub mod build;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::{AliasGrants, Config, DirectoryEntry};
use crate::media::{DtmfSender, SecureTone, G711, SECURE_TONE_FRAMES};
use crate::relay::LocalLeg;
use crate::relay::{LegConfig, PlayFrame};
use crate::sdp::{
    self, CheckedOffer, LocalMedia, Negotiated, PendingOffer, Policy, SessionDescription,
};
use crate::sip::{Message, Method, NameAddr, Uri};
use crate::srtp::MasterKey;
use crate::transaction::{
    FlowId, RequestAction, ResponseAction, TimerConfig, Transactions, TxEvent, TxId,
};

use build::{Leg as BuildLeg, Reply};

/// Where bytes go: an admitted phone connection or a bridge trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// A phone connection, numbered by the shell.
    Phone(u64),
    /// A trunk, by its index in [`B2bua::trunk_names`].
    Trunk(usize),
    /// Another next hop of a trunk, taken from a dialog's route set (a
    /// bridge that Record-Routes in-dialog requests elsewhere, such as
    /// Webex's port 5062); see [`B2bua::route_target`].
    Route(usize),
    /// A connection a bridge opened to the bridge-side listener, numbered
    /// by the shell ([`B2bua::bridge_connected`]).
    Inbound(u64),
}

const TRUNK_FLOW: u64 = 1 << 48;
const ROUTE_FLOW: u64 = 1 << 49;
const INBOUND_FLOW: u64 = 1 << 50;

impl Flow {
    fn id(self) -> FlowId {
        match self {
            Flow::Phone(n) => FlowId(n),
            Flow::Trunk(i) => FlowId(TRUNK_FLOW + i as u64),
            Flow::Route(i) => FlowId(ROUTE_FLOW + i as u64),
            Flow::Inbound(n) => FlowId(INBOUND_FLOW + (n & (INBOUND_FLOW - 1))),
        }
    }

    fn of(id: FlowId) -> Flow {
        if id.0 >= INBOUND_FLOW {
            Flow::Inbound(id.0 - INBOUND_FLOW)
        } else if id.0 >= ROUTE_FLOW {
            Flow::Route((id.0 - ROUTE_FLOW) as usize)
        } else if id.0 >= TRUNK_FLOW {
            Flow::Trunk((id.0 - TRUNK_FLOW) as usize)
        } else {
            Flow::Phone(id.0)
        }
    }
}

/// Names a call of the B2BUA (and its relay call, in the shell).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallKey(u64);

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
    /// Close a phone connection (its token was revoked).
    /// Close every connection of trunk `trunk` (its settings changed).
    CloseTrunk {
        /// The trunk's index.
        trunk: usize,
    },
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

/// A phone connection admitted at TLS: the token it belongs to.
#[derive(Clone, Debug)]
pub struct PhoneIdentity {
    /// The token's name.
    pub token: String,
    /// Its key hash, shown as a prefix in logs.
    pub key: crate::admission::KeyHash,
    /// Source address.
    pub peer: SocketAddr,
}

/// Proof that a phone's INVITE passed the call admission checks. Only
/// [`B2bua`] constructs it; a call cannot be created without it.
#[derive(Debug)]
pub struct Authorized {
    token: String,
    entry: DirectoryEntry,
    trunk: usize,
}

/// Local addresses the B2BUA puts into messages.
#[derive(Clone, Debug)]
pub struct LocalAddrs {
    /// The phone-side SIP/TLS listener (Via, Contact towards phones).
    pub phone_sip: SocketAddr,
    /// The bridge-side listener, if any: the Contact given to bridges.
    pub bridge_sip: Option<SocketAddr>,
}

#[derive(Debug)]
struct PhoneLeg {
    flow: Flow,
    invite: Message,
    invite_tx: Option<TxId>,
    our_tag: String,
    call_id: String,
    /// Where in-dialog requests to the phone go (its Contact).
    remote_target: Option<Uri>,
    their_from: NameAddr,
    our_cseq: u32,
    checked: Option<CheckedOffer>,
    local: Option<LocalLeg>,
    /// The phone's INVITE has its final response (2xx or failure). A BYE
    /// goes to the phone only for calls that reached `State::Up`.
    answered: bool,
    /// What the phone leg agreed (for session updates).
    negotiated: Option<Negotiated>,
    /// The SDP we last sent the phone (holds our key: zeroized on drop).
    last_sdp: Option<zeroize::Zeroizing<String>>,
}

#[derive(Debug)]
struct BridgeLeg {
    trunk: usize,
    call_id: String,
    our_tag: String,
    their_to: Option<NameAddr>,
    request_uri: Uri,
    remote_target: Option<Uri>,
    route_set: Vec<NameAddr>,
    invite_branch: String,
    invite_tx: Option<TxId>,
    our_cseq: u32,
    pending: Option<PendingOffer>,
    local: Option<LocalLeg>,
    provisional: bool,
    answered: bool,
    /// What the bridge leg agreed (for session updates).
    negotiated: Option<Negotiated>,
    /// The SDP we last sent the bridge (holds our key: zeroized on drop).
    last_sdp: Option<zeroize::Zeroizing<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the bridge's answer.
    Setup,
    /// Both legs answered, media flowing.
    Up,
    /// Tearing down; waiting for nothing in particular.
    Ending,
}

/// The shortest session interval accepted (RFC 4028 §4: at least 90 s).
pub const MIN_SE: u32 = 90;

/// A session timer the phone asked for (RFC 4028): it refreshes every
/// `interval / 2`; without a refresh the gateway ends the call.
#[derive(Clone, Copy, Debug)]
struct SessionTimer {
    interval: u32,
    /// When the call ends unless refreshed: interval - min(32, interval/3)
    /// after the last refresh (RFC 4028 §10).
    deadline: Instant,
}

impl SessionTimer {
    fn new(now: Instant, interval: u32) -> SessionTimer {
        let margin = 32.min(interval / 3);
        SessionTimer {
            interval,
            deadline: now + Duration::from_secs(u64::from(interval - margin)),
        }
    }
}

#[derive(Debug)]
struct Call {
    token: String,
    source: IpAddr,
    session_timer: Option<SessionTimer>,
    alias: String,
    pin: Option<String>,
    phone: PhoneLeg,
    bridge: BridgeLeg,
    state: State,
    media_started: bool,
    started: Instant,
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
    /// Trunk settings by name: the configuration's, with the signed
    /// policy's overrides.
    trunks: HashMap<String, crate::config::TrunkConfig>,
    local: LocalAddrs,
    trunk_names: Vec<String>,
    txs: Transactions,
    calls: HashMap<CallKey, Call>,
    /// (Call-ID, our tag) -> call: both legs' dialogs.
    dialogs: HashMap<(String, String), CallKey>,
    invite_txs: HashMap<TxId, CallKey>,
    phones: HashMap<u64, PhoneIdentity>,
    /// Bridge-side inbound connections and their trunk.
    inbound: HashMap<u64, usize>,
    /// Phone connections whose certificate has expired since admission:
    /// their calls go on, new calls are refused.
    expired_flows: std::collections::HashSet<u64>,
    calls_per_token: HashMap<String, u32>,
    calls_per_address: HashMap<IpAddr, u32>,
    /// Recent call attempts per source address (for the rate limit).
    attempts: AttemptWindow<IpAddr>,
    /// Recent call attempts per token.
    token_attempts: AttemptWindow<String>,
    next_call: u64,
    out: VecDeque<Output>,
    ports: Box<dyn MediaPorts + Send>,
    random: Box<dyn Random + Send>,
    phone_policy: Policy,
    trunk_policies: Vec<Policy>,
    /// Next OPTIONS keep-alive per trunk.
    keepalive: Vec<Option<Instant>>,
    keepalive_txs: HashMap<TxId, usize>,
    /// Whether each trunk answered its last keep-alive.
    trunk_up: Vec<Option<bool>>,
    /// Next hops other than a trunk's own address: (trunk, address).
    routes: Vec<(usize, SocketAddr)>,
}

/// Call attempts in the last minute, per key (address or token), bounded.
#[derive(Debug)]
struct AttemptWindow<K> {
    by_key: HashMap<K, VecDeque<Instant>>,
}

impl<K> Default for AttemptWindow<K> {
    fn default() -> Self {
        AttemptWindow {
            by_key: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq> AttemptWindow<K> {
    /// Counts an attempt by `key` unless it already made `limit` in the
    /// last minute (then `false`, and nothing is counted).
    fn allow(&mut self, key: K, now: Instant, limit: u32) -> bool {
        let window = self.by_key.entry(key).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return false;
        }
        window.push_back(now);
        // Bound the table: forget keys whose window emptied long ago.
        if self.by_key.len() > 4096 {
            self.by_key.retain(|_, w| {
                w.back()
                    .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
            });
        }
        true
    }
}

/// A checked media answer: the phone's answer and both legs' parameters.
struct MediaAnswer {
    phone_sdp: SessionDescription,
    phone: Negotiated,
    bridge: Negotiated,
    phone_local: LocalLeg,
    bridge_local: LocalLeg,
}

/// The audit event of a refused call.
fn audit_refusal(identity: &PhoneIdentity, status: u16, why: &str) {
    info!(target: "audit", decision = "refused", token = %identity.token, key = %identity.key, peer = %identity.peer, status, reason = why, "call refused");
}

/// Interval of OPTIONS keep-alives to each trunk.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

impl std::fmt::Debug for B2bua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2bua")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// Why a B2BUA could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum B2buaError {
    /// A suite list is unusable.
    #[error("SRTP policy: {0}")]
    Policy(String),
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
        let mut trunk_names: Vec<String> = config.trunks.keys().cloned().collect();
        trunk_names.sort();
        let trunk_policies = trunk_names
            .iter()
            .map(|n| {
                Policy::new(&config.trunks[n].suites).map_err(|e| B2buaError::Policy(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(B2bua {
            txs: Transactions::new(
                TimerConfig::default(),
                4 * config.limits.max_calls as usize + 64,
            ),
            directory: config.directory.clone(),
            closed: None,
            trunks: config.trunks.clone(),
            config,
            grants,
            local,
            trunk_names,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            invite_txs: HashMap::new(),
            phones: HashMap::new(),
            inbound: HashMap::new(),
            expired_flows: std::collections::HashSet::new(),
            calls_per_token: HashMap::new(),
            calls_per_address: HashMap::new(),
            attempts: AttemptWindow::default(),
            token_attempts: AttemptWindow::default(),
            next_call: 1,
            out: VecDeque::new(),
            ports,
            random,
            keepalive: vec![None; trunk_policies.len()],
            keepalive_txs: HashMap::new(),
            trunk_up: vec![None; trunk_policies.len()],
            routes: Vec::new(),
            phone_policy,
            trunk_policies,
        })
    }

    /// Starts the OPTIONS keep-alives to every trunk (the first in a
    /// second). The shell calls this once.
    pub fn start(&mut self, now: Instant) {
        for k in &mut self.keepalive {
            *k = Some(now + Duration::from_secs(1));
        }
    }

    /// Whether a trunk answered its last keep-alive (`None`: not yet known).
    pub fn trunk_up(&self, trunk: usize) -> Option<bool> {
        self.trunk_up.get(trunk).copied().flatten()
    }

    fn set_trunk_up(&mut self, trunk: usize, up: bool) {
        let Some(state) = self.trunk_up.get_mut(trunk) else {
            return;
        };
        if *state != Some(up) {
            *state = Some(up);
            let name = &self.trunk_names[trunk];
            if up {
                info!(trunk = %name, "trunk answers keep-alives");
            } else {
                warn!(trunk = %name, "trunk does not answer keep-alives");
            }
        }
    }

    fn send_keepalive(&mut self, now: Instant, trunk: usize) {
        let name = self.trunk_names[trunk].clone();
        let tag = self.rand_hex(8);
        let call_id = format!("{}@dialgate", self.rand_hex(12));
        let branch = format!("z9hG4bK{}", self.rand_hex(10));
        let Some(config) = self.trunks.get(&name) else {
            return;
        };
        let Some(leg) = BuildLeg::options(config, self.local.bridge_sip, &tag, &call_id) else {
            return;
        };
        let Some(msg) = build::request(&leg, Method::Options, &branch, 1, None) else {
            return;
        };
        if let Ok(tx) = self.txs.send_request(
            now,
            &branch,
            "OPTIONS",
            msg.to_bytes(),
            Flow::Trunk(trunk).id(),
            true,
        ) {
            self.keepalive_txs.insert(tx, trunk);
        }
    }

    /// The trunk a bridge-side flow belongs to.
    fn flow_trunk(&self, flow: Flow) -> Option<usize> {
        match flow {
            Flow::Trunk(i) => Some(i),
            Flow::Route(r) => self.routes.get(r).map(|(i, _)| *i),
            Flow::Inbound(n) => self.inbound.get(&n).copied(),
            Flow::Phone(_) => None,
        }
    }

    /// A bridge opened connection `conn` to the bridge-side listener and
    /// presented a certificate that trunk `trunk` trusts.
    pub fn bridge_connected(&mut self, conn: u64, trunk: usize) {
        if trunk < self.trunk_names.len() {
            self.inbound.insert(conn, trunk);
        }
    }

    /// A bridge-side inbound connection closed.
    pub fn bridge_disconnected(&mut self, conn: u64) {
        self.inbound.remove(&conn);
    }

    /// A message on a bridge's inbound connection: requests are handled as
    /// from that trunk (in-dialog only, and only for its own calls), and
    /// answered on the same connection.
    pub fn handle_bridge(&mut self, now: Instant, conn: u64, msg: Message) {
        if !self.inbound.contains_key(&conn) {
            warn!(
                conn,
                "message on a bridge connection that was never admitted"
            );
            return;
        }
        match msg.method().cloned() {
            Some(method) => self.trunk_request(now, Flow::Inbound(conn), method, msg),
            None => self.response(now, Flow::Inbound(conn), msg),
        }
        self.drain_transactions(now);
    }

    /// The trunk and address a [`Flow::Route`] connects to (with the
    /// trunk's TLS trust and server name).
    pub fn route_target(&self, route: usize) -> Option<(usize, SocketAddr)> {
        self.routes.get(route).copied()
    }

    /// Where in-dialog requests to the bridge go (RFC 3261 §12.2.1.1,
    /// §16.12): the first hop of the route set if it names an address other
    /// than the trunk's, else the trunk connection.
    fn bridge_flow(&mut self, key: CallKey) -> Flow {
        let Some(call) = self.calls.get(&key) else {
            return Flow::Trunk(0);
        };
        let trunk = call.bridge.trunk;
        let Some(first) = call.bridge.route_set.first().and_then(|r| r.uri.as_sip()) else {
            return Flow::Trunk(trunk);
        };
        let ip = match &first.host {
            crate::sip::Host::V4(v) => IpAddr::V4(*v),
            crate::sip::Host::V6(v) => IpAddr::V6(*v),
            // A host name would need DNS; the trunk connection is the
            // best hop available.
            crate::sip::Host::Domain(_) => return Flow::Trunk(trunk),
        };
        let addr = SocketAddr::new(ip, first.port.unwrap_or(5061));
        let own = self
            .config
            .trunks
            .get(&self.trunk_names[trunk])
            .map(|t| t.connect);
        if own == Some(addr) {
            return Flow::Trunk(trunk);
        }
        let idx = match self.routes.iter().position(|r| *r == (trunk, addr)) {
            Some(i) => i,
            None => {
                self.routes.push((trunk, addr));
                self.routes.len() - 1
            }
        };
        Flow::Route(idx)
    }

    /// The tracing span of a call: every event about it carries the call
    /// number, the token and the alias (never keys).
    fn span(&self, key: CallKey) -> tracing::Span {
        match self.calls.get(&key) {
            Some(c) => tracing::info_span!("call", id = key.0, token = %c.token, alias = %c.alias),
            None => tracing::info_span!("call", id = key.0),
        }
    }

    /// The tracing span of one leg of a call, entered where a message of
    /// that leg is handled: the side, the SIP Call-ID of the leg, and the
    /// phone's address or the trunk and bridge URI (never keys).
    fn leg_span(&self, key: CallKey, from_phone: bool) -> tracing::Span {
        match self.calls.get(&key) {
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
                trunk = %self.trunk_names[c.bridge.trunk],
                uri = %c.bridge.request_uri,
                sip_call_id = %c.bridge.call_id
            ),
            None => tracing::info_span!("leg", call = key.0),
        }
    }

    /// Trunk names; [`Flow::Trunk`] indexes this list.
    pub fn trunk_names(&self) -> &[String] {
        &self.trunk_names
    }

    /// Number of calls.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Replaces the token grants (a new registry was applied).
    pub fn set_grants(&mut self, grants: AliasGrants) {
        self.grants = grants;
    }

    /// Replaces the meeting directory (a signed policy was applied). Live
    /// calls keep the entry they were placed with.
    pub fn set_directory(&mut self, directory: HashMap<String, DirectoryEntry>) {
        self.directory = directory;
    }

    /// Replaces trunk settings (a signed policy was applied). The set of
    /// trunks is the configuration's; a trunk whose settings changed loses
    /// its calls (BYE, or 503 for calls being set up) and its connections
    /// ([`Output::CloseTrunk`]), so that nothing goes on under the old
    /// trust or suites.
    pub fn set_trunks(
        &mut self,
        now: Instant,
        trunks: HashMap<String, crate::config::TrunkConfig>,
    ) {
        let changed: Vec<usize> = self
            .trunk_names
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                trunks
                    .get(*n)
                    .is_some_and(|t| self.trunks.get(*n) != Some(t))
            })
            .map(|(i, _)| i)
            .collect();
        for i in changed {
            let name = self.trunk_names[i].clone();
            let Some(t) = trunks.get(&name) else { continue };
            match Policy::new(&t.suites) {
                Ok(p) => self.trunk_policies[i] = p,
                Err(e) => {
                    warn!(trunk = %name, error = %e, "trunk settings refused: the old ones stay");
                    continue;
                }
            }
            self.trunks.insert(name.clone(), t.clone());
            self.end_trunk_calls(
                now,
                i,
                "trunk settings changed",
                "trunk settings changed",
                true,
            );
            self.out.push_back(Output::CloseTrunk { trunk: i });
            info!(trunk = %name, "trunk settings changed by policy: its connections are reopened with them");
        }
    }

    /// The current settings of trunk `i` ([`Flow::Trunk`] index).
    pub fn trunk_config(&self, i: usize) -> Option<&crate::config::TrunkConfig> {
        self.trunks.get(self.trunk_names.get(i)?)
    }

    /// Refuses new calls with 503 and `reason` in the Warning (`Some`), or
    /// accepts them again (`None`). Live calls are not touched. Used when
    /// the signed policy expires (freeze-attack protection).
    pub fn refuse_new_calls(&mut self, reason: Option<&'static str>) {
        self.closed = reason;
    }

    /// A token lost its admission (revoked or removed from the registry):
    /// its calls end now (BYE on both legs, keys zeroized) and its phone
    /// connections are closed.
    pub fn token_revoked(&mut self, now: Instant, token: &str) {
        let keys: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| c.token == token)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            match self.calls.get(&key).map(|c| c.state) {
                Some(State::Setup) => self.fail_setup(now, key, 403, "token revoked"),
                Some(_) => self.end_call(now, key, "token revoked", true, true),
                None => {}
            }
        }
        // The BYEs are queued first; the shell closes a connection only
        // after its queued writes.
        self.drain_transactions(now);
        let flows: Vec<u64> = self
            .phones
            .iter()
            .filter(|(_, p)| p.token == token)
            .map(|(f, _)| *f)
            .collect();
        for flow in flows {
            self.phones.remove(&flow);
            self.out.push_back(Output::Disconnect { flow });
        }
        warn!(
            target: "audit",
            decision = "revoked",
            token,
            "token revoked: its calls ended and its connections closed"
        );
    }

    /// A phone connection was admitted at TLS.
    pub fn phone_connected(&mut self, flow: u64, identity: PhoneIdentity) {
        self.phones.insert(flow, identity);
    }

    /// A phone connection closed. Its calls continue (a phone may send BYE
    /// on a new connection); media inactivity ends abandoned ones.
    pub fn phone_disconnected(&mut self, flow: u64) {
        self.phones.remove(&flow);
        self.expired_flows.remove(&flow);
    }

    /// The certificate a phone connection was admitted with has expired:
    /// calls in progress go on, new INVITEs on it get 403.
    pub fn phone_certificate_expired(&mut self, flow: u64) {
        if self.phones.contains_key(&flow) {
            self.expired_flows.insert(flow);
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`B2bua::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sessions = self
            .calls
            .values()
            .filter_map(|c| c.session_timer.map(|t| t.deadline))
            .min();
        let keepalive = self
            .keepalive
            .iter()
            .flatten()
            .chain(sessions.iter())
            .min()
            .copied();
        match (self.txs.poll_timeout(), keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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
                    if let Some(trunk) = self.keepalive_txs.remove(&tx) {
                        self.set_trunk_up(trunk, false);
                    }
                    if let Some(call) = self.invite_txs.remove(&tx) {
                        // The bridge never answered: unreachable for the phone.
                        self.fail_setup(now, call, 503, "bridge did not answer");
                    }
                }
                TxEvent::AckTimeout(tx) | TxEvent::Terminated(tx) => {
                    self.invite_txs.remove(&tx);
                }
            }
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txs.handle_timeout(now);
        let expired: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| c.session_timer.is_some_and(|t| t.deadline <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            // RFC 4028 §10: no refresh in time, the session is over.
            self.end_call(now, key, "session timer expired", true, true);
        }
        for trunk in 0..self.keepalive.len() {
            if self.keepalive[trunk].is_some_and(|t| t <= now) {
                self.keepalive[trunk] = Some(now + KEEPALIVE);
                self.send_keepalive(now, trunk);
            }
        }
        self.drain_transactions(now);
    }

    fn send(&mut self, flow: Flow, msg: &Message) {
        self.out.push_back(Output::Send {
            flow,
            bytes: msg.to_bytes(),
        });
    }

    /// A message from an admitted phone connection.
    pub fn handle_phone(&mut self, now: Instant, flow: u64, msg: Message) {
        let Some(identity) = self.phones.get(&flow).cloned() else {
            warn!(flow, "message on a phone flow that was never admitted");
            return;
        };
        match msg.method().cloned() {
            Some(method) => self.phone_request(now, Flow::Phone(flow), &identity, method, msg),
            None => self.response(now, Flow::Phone(flow), msg),
        }
        self.drain_transactions(now);
    }

    /// A message from a trunk.
    pub fn handle_trunk(&mut self, now: Instant, trunk: usize, msg: Message) {
        match msg.method().cloned() {
            Some(method) => self.trunk_request(now, Flow::Trunk(trunk), method, msg),
            None => self.response(now, Flow::Trunk(trunk), msg),
        }
        self.drain_transactions(now);
    }

    /// The connection to a trunk failed or closed: calls being set up on it
    /// fail with 503, established ones end.
    pub fn trunk_failed(&mut self, now: Instant, trunk: usize) {
        self.end_trunk_calls(
            now,
            trunk,
            "bridge unreachable",
            "trunk connection lost",
            false,
        );
    }

    /// Ends every call on `trunk`: 503 with `setup_why` for calls being set
    /// up, BYE (to the bridge too if `bye_bridge`) with `up_why` for the
    /// others.
    fn end_trunk_calls(
        &mut self,
        now: Instant,
        trunk: usize,
        setup_why: &str,
        up_why: &str,
        bye_bridge: bool,
    ) {
        let keys: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| c.bridge.trunk == trunk)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            match self.calls.get(&key).map(|c| c.state) {
                Some(State::Setup) => self.fail_setup(now, key, 503, setup_why),
                Some(_) => self.end_call(now, key, up_why, true, bye_bridge),
                None => {}
            }
        }
        self.drain_transactions(now);
    }

    /// The relay saw no media for the inactivity time: end the call.
    pub fn media_inactive(&mut self, now: Instant, call: CallKey) {
        let _span = self.span(call).entered();
        if self.calls.contains_key(&call) {
            self.end_call(now, call, "media inactive", true, true);
        }
        self.drain_transactions(now);
    }

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
                // Too many transactions: refuse without state.
                if msg.method() != Some(&Method::Ack) {
                    if let Some(r) = Reply::new(msg, 503, None)
                        .warning("399 dialgate \"overloaded\"")
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
        identity: &PhoneIdentity,
        method: Method,
        msg: Message,
    ) {
        let Some(action) = self.server_tx(now, flow, &msg) else {
            return;
        };
        let tx = match action {
            RequestAction::New(tx) => tx,
            RequestAction::AckForTu => {
                self.dialog_ack(&msg);
                return;
            }
            _ => return,
        };
        let in_dialog = msg.to().tag().is_some();
        match method {
            Method::Invite if !in_dialog => self.phone_invite(now, flow, identity, tx, msg),
            Method::Cancel => self.phone_cancel(now, tx, &msg),
            Method::Options if !in_dialog => {
                self.reply(now, tx, Reply::new(&msg, 200, None).allow())
            }
            Method::Bye | Method::Invite | Method::Update | Method::Options | Method::Info => {
                self.in_dialog(now, tx, method, &msg, Some(identity), None)
            }
            Method::Extension(_) => self.reply(now, tx, Reply::new(&msg, 501, None).allow()),
            _ => self.reply(now, tx, Reply::new(&msg, 405, None).allow()),
        }
    }

    fn trunk_request(&mut self, now: Instant, flow: Flow, method: Method, msg: Message) {
        let Some(action) = self.server_tx(now, flow, &msg) else {
            return;
        };
        let tx = match action {
            RequestAction::New(tx) => tx,
            _ => return,
        };
        let in_dialog = msg.to().tag().is_some();
        match method {
            // Bridges may keep the trunk alive with OPTIONS.
            Method::Options if !in_dialog => {
                self.reply(now, tx, Reply::new(&msg, 200, None).allow())
            }
            // Nothing calls phones through a trunk: dialgate is phone-initiated only.
            Method::Invite if !in_dialog => self.reply(
                now,
                tx,
                Reply::new(&msg, 403, None)
                    .warning("399 dialgate \"calls are admitted from phones only\""),
            ),
            Method::Bye | Method::Invite | Method::Update | Method::Options | Method::Info => {
                let trunk = self.flow_trunk(flow);
                self.in_dialog(now, tx, method, &msg, None, trunk)
            }
            Method::Extension(_) => self.reply(now, tx, Reply::new(&msg, 501, None).allow()),
            _ => self.reply(now, tx, Reply::new(&msg, 405, None).allow()),
        }
    }

    /// Admission of a call: identity and alias. The only constructor of
    /// [`Authorized`].
    fn authorize(
        &self,
        identity: &PhoneIdentity,
        msg: &Message,
    ) -> Result<Authorized, (u16, &'static str)> {
        let user_of = |n: &NameAddr| n.uri.as_sip().and_then(|u| u.user.clone());
        if user_of(msg.from()).as_deref() != Some(identity.token.as_str()) {
            return Err((403, "identity does not match the token"));
        }
        if msg
            .p_asserted_identity()
            .any(|p| user_of(p).as_deref() != Some(identity.token.as_str()))
        {
            return Err((403, "identity does not match the token"));
        }
        let alias = msg
            .request_uri()
            .and_then(Uri::as_sip)
            .and_then(|u| u.user.clone())
            .ok_or((404, "no such meeting"))?;
        let entry = self.directory.get(&alias).ok_or((404, "no such meeting"))?;
        if !self
            .grants
            .get(&identity.token)
            .is_some_and(|aliases| aliases.contains(&alias))
        {
            return Err((403, "this token may not call this meeting"));
        }
        let trunk = self
            .trunk_names
            .iter()
            .position(|t| *t == entry.trunk)
            .ok_or((503, "trunk not configured"))?;
        Ok(Authorized {
            token: identity.token.clone(),
            entry: entry.clone(),
            trunk,
        })
    }

    /// Refuses a new call with `status` and `why` in a Warning, as an audit
    /// event.
    fn refuse_call(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: &Message,
        identity: &PhoneIdentity,
        status: u16,
        why: &str,
    ) {
        audit_refusal(identity, status, why);
        let w = format!("399 dialgate \"{why}\"");
        self.reply(now, tx, Reply::new(msg, status, None).warning(&w));
    }

    /// Counts a call attempt from `ip`; false if it is over the rate limit
    /// (a sliding minute), unless loopback is exempt (demo kits).
    fn attempt_allowed(&mut self, now: Instant, ip: IpAddr, token: &str) -> bool {
        let limits = self.config.limits;
        let by_address = (limits.loopback_exempt && ip.is_loopback())
            || self
                .attempts
                .allow(ip, now, limits.attempts_per_minute_per_address);
        by_address
            && self.token_attempts.allow(
                token.to_string(),
                now,
                limits.attempts_per_minute_per_token,
            )
    }

    fn phone_invite(
        &mut self,
        now: Instant,
        flow: Flow,
        identity: &PhoneIdentity,
        tx: TxId,
        msg: Message,
    ) {
        self.reply(now, tx, Reply::new(&msg, 100, None));
        if let Some(reason) = self.closed {
            self.refuse_call(now, tx, &msg, identity, 503, reason);
            return;
        }
        if matches!(flow, Flow::Phone(f) if self.expired_flows.contains(&f)) {
            self.refuse_call(now, tx, &msg, identity, 403, "token certificate expired");
            return;
        }
        if !self.attempt_allowed(now, identity.peer.ip(), &identity.token) {
            audit_refusal(identity, 503, "too many call attempts; try again later");
            let reply = Reply::new(&msg, 503, None)
                .warning("399 dialgate \"too many call attempts; try again later\"")
                .retry_after(60);
            self.reply(now, tx, reply);
            return;
        }
        let auth = match self.authorize(identity, &msg) {
            Ok(a) => a,
            Err((status, why)) => {
                self.refuse_call(now, tx, &msg, identity, status, why);
                return;
            }
        };
        if let Some(se) = msg.session_expires() {
            if se.delta < MIN_SE {
                self.reply(now, tx, Reply::new(&msg, 422, None).min_se(MIN_SE));
                return;
            }
        }
        let limits = self.config.limits;
        let token_calls = self.calls_per_token.get(&auth.token).copied().unwrap_or(0);
        let address_calls = self
            .calls_per_address
            .get(&identity.peer.ip())
            .copied()
            .unwrap_or(0);
        let over = if self.calls.len() >= limits.max_calls as usize {
            Some((503, "gateway full"))
        } else if token_calls >= limits.calls_per_token {
            Some((486, "too many calls for this token"))
        } else if address_calls >= limits.calls_per_address
            && !(limits.loopback_exempt && identity.peer.ip().is_loopback())
        {
            Some((486, "too many calls from this address"))
        } else {
            None
        };
        if let Some((status, why)) = over {
            self.refuse_call(now, tx, &msg, identity, status, why);
            return;
        }
        // The offer: must be SDP, must pass the phone-side policy.
        let checked = msg
            .content_type()
            .filter(|t| t.is_sdp())
            .ok_or(None)
            .and_then(|_| SessionDescription::parse(msg.body()).map_err(|_| None))
            .and_then(|sdp| sdp::check_offer(&sdp, &self.phone_policy).map_err(Some));
        let checked = match checked {
            Ok(c) => c,
            Err(reject) => {
                let (status, warning) = match reject {
                    Some(r) => (r.status(), r.warning()),
                    None => (
                        488,
                        "399 dialgate \"an SDP offer with SRTP (SDES) is required\"".to_string(),
                    ),
                };
                info!(target: "audit", decision = "refused", token = %auth.token, key = %identity.key, peer = %identity.peer, alias = %auth.entry.alias, status, %warning, "call refused: media");
                self.reply(now, tx, Reply::new(&msg, status, None).warning(&warning));
                return;
            }
        };
        let trunk = &self.trunks[&auth.entry.trunk];
        let trunk_ip = trunk.media_address;
        let phone_ip = self.config.phone.media_address;
        let phone_local = match self.ports.allocate(phone_ip, checked.rtcp_mux_offered()) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "no media port for the phone leg");
                self.reply(
                    now,
                    tx,
                    Reply::new(&msg, 503, None).warning("399 dialgate \"no media ports\""),
                );
                return;
            }
        };
        let bridge_local = match self.ports.allocate(trunk_ip, false) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "no media port for the bridge leg");
                self.out.push_back(Output::ReleaseMedia {
                    legs: vec![phone_local],
                });
                self.reply(
                    now,
                    tx,
                    Reply::new(&msg, 503, None).warning("399 dialgate \"no media ports\""),
                );
                return;
            }
        };
        let trunk_policy = self.trunk_policies[auth.trunk].clone();
        let bridge_media = LocalMedia {
            rtp: bridge_local.rtp_addr,
            rtcp: bridge_local.rtcp.map(|r| r.1),
            rtcp_mux: true,
            direction: sdp::Direction::SendRecv,
        };
        let (offer_sdp, pending) = match sdp::offer(checked.codecs(), &trunk_policy, &bridge_media)
        {
            Ok(x) => x,
            Err(r) => {
                self.out.push_back(Output::ReleaseMedia {
                    legs: vec![phone_local, bridge_local],
                });
                self.reply(
                    now,
                    tx,
                    Reply::new(&msg, r.status(), None).warning(&r.warning()),
                );
                return;
            }
        };
        let request_uri = match Uri::parse(&auth.entry.uri) {
            // Webex-class trunks: a sips: URI is for lookup; messages carry
            // sip: with transport=tls (the hop is TLS either way).
            Ok(Uri::Sip(mut u)) if u.secure && self.trunks[&auth.entry.trunk].webex => {
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
                Uri::Sip(u)
            }
            Ok(u) => u,
            Err(_) => {
                self.out.push_back(Output::ReleaseMedia {
                    legs: vec![phone_local, bridge_local],
                });
                self.reply(
                    now,
                    tx,
                    Reply::new(&msg, 500, None).warning("399 dialgate \"bad directory URI\""),
                );
                return;
            }
        };
        let key = CallKey(self.next_call);
        self.next_call += 1;
        let phone_tag = self.rand_hex(8);
        let bridge_tag = self.rand_hex(8);
        let bridge_call_id = format!("{}@dialgate", self.rand_hex(12));
        let branch = format!("z9hG4bK{}", self.rand_hex(10));
        let call = Call {
            token: auth.token.clone(),
            source: identity.peer.ip(),
            session_timer: None,
            alias: auth.entry.alias.clone(),
            pin: auth.entry.pin.clone(),
            phone: PhoneLeg {
                flow,
                call_id: msg.call_id().to_string(),
                remote_target: build::contact_uri(&msg),
                their_from: msg.from().clone(),
                invite_tx: Some(tx),
                our_tag: phone_tag.clone(),
                our_cseq: 0,
                checked: Some(checked),
                local: Some(phone_local),
                answered: false,
                negotiated: None,
                last_sdp: None,
                invite: msg,
            },
            bridge: BridgeLeg {
                trunk: auth.trunk,
                call_id: bridge_call_id.clone(),
                our_tag: bridge_tag.clone(),
                their_to: None,
                request_uri,
                remote_target: None,
                route_set: Vec::new(),
                invite_branch: branch.clone(),
                invite_tx: None,
                our_cseq: 1,
                pending: Some(pending),
                local: Some(bridge_local),
                provisional: false,
                answered: false,
                negotiated: None,
                last_sdp: None,
            },
            state: State::Setup,
            media_started: false,
            started: now,
        };
        let mut call = call;
        let offer_text = offer_sdp.print();
        let invite = build::request(
            &BuildLeg::bridge(
                &call,
                &self.trunks[&auth.entry.trunk],
                self.local.bridge_sip,
            ),
            Method::Invite,
            &branch,
            1,
            Some(offer_text.as_bytes().to_vec()),
        );
        call.bridge.last_sdp = Some(offer_text);
        let Some(invite) = invite else {
            self.out.push_back(Output::ReleaseMedia {
                legs: [call.phone.local, call.bridge.local]
                    .into_iter()
                    .flatten()
                    .collect(),
            });
            self.reply(now, tx, Reply::new(&call.phone.invite, 500, None));
            return;
        };
        let bridge_flow = Flow::Trunk(auth.trunk);
        match self.txs.send_request(
            now,
            &branch,
            "INVITE",
            invite.to_bytes(),
            bridge_flow.id(),
            true,
        ) {
            Ok(btx) => {
                self.invite_txs.insert(btx, key);
                call.bridge.invite_tx = Some(btx);
                self.dialogs
                    .insert((call.phone.call_id.clone(), phone_tag), key);
                self.dialogs.insert((bridge_call_id, bridge_tag), key);
                *self.calls_per_token.entry(auth.token.clone()).or_default() += 1;
                *self
                    .calls_per_address
                    .entry(identity.peer.ip())
                    .or_default() += 1;
                info!(target: "audit", decision = "admitted", call = key.0, token = %auth.token, key = %identity.key, peer = %identity.peer, alias = %auth.entry.alias, trunk = %auth.entry.trunk, "call admitted");
                self.calls.insert(key, call);
            }
            Err(_) => {
                self.out.push_back(Output::ReleaseMedia {
                    legs: [call.phone.local, call.bridge.local]
                        .into_iter()
                        .flatten()
                        .collect(),
                });
                self.reply(
                    now,
                    tx,
                    Reply::new(&call.phone.invite, 503, None)
                        .warning("399 dialgate \"overloaded\""),
                );
            }
        }
    }

    fn response(&mut self, now: Instant, flow: Flow, msg: Message) {
        let Some(status) = msg.status() else { return };
        let branch = msg.top_via().branch().unwrap_or_default().to_string();
        let cseq = msg.cseq().clone();
        let action = self
            .txs
            .receive_response(now, &branch, cseq.method.as_str(), status.as_u16());
        let (tx, needs_ack) = match action {
            ResponseAction::Deliver(tx) => (tx, false),
            ResponseAction::DeliverNeedsAck(tx) => (tx, true),
            ResponseAction::Absorbed(_) | ResponseAction::NoMatch => return,
        };
        if cseq.method == Method::Options {
            // Any answer, even an error, shows the trunk is alive.
            if let Some(trunk) = self.keepalive_txs.remove(&tx) {
                self.set_trunk_up(trunk, true);
            }
            return;
        }
        if cseq.method != Method::Invite {
            return; // BYE/CANCEL responses need nothing more.
        }
        let Some(&key) = self.invite_txs.get(&tx) else {
            // A retransmitted 2xx after the transaction moved on: re-ACK.
            if status.as_u16() / 100 == 2 {
                self.reack(flow, &msg);
            }
            return;
        };
        let _leg = self.leg_span(key, false).entered();
        let code = status.as_u16();
        if needs_ack {
            if let Some(call) = self.calls.get(&key) {
                if let Some(ack) = build::ack_for_failure(
                    &call.bridge,
                    &self.trunks[&self.trunk_names[call.bridge.trunk]],
                    &msg,
                ) {
                    let _ = self.txs.set_ack(tx, ack.to_bytes());
                }
            }
            self.invite_txs.remove(&tx);
            let (to_phone, why) = map_failure(code);
            self.fail_setup(now, key, to_phone, why);
            return;
        }
        match code {
            100 => {}
            101..=199 if msg.content_type().is_some_and(|t| t.is_sdp()) => {
                self.bridge_early_media(now, key, &msg)
            }
            101..=199 => self.bridge_ringing(now, key),
            _ => self.bridge_answered(now, key, &msg),
        }
    }

    fn reack(&mut self, flow: Flow, msg: &Message) {
        let key = self
            .dialogs
            .get(&(
                msg.call_id().to_string(),
                msg.from().tag().unwrap_or_default().to_string(),
            ))
            .copied();
        if let Some(call) = key.and_then(|k| self.calls.get(&k)) {
            let trunk = &self.trunks[&self.trunk_names[call.bridge.trunk]];
            let branch = format!("z9hG4bK{}", hex8(call.bridge.our_cseq));
            if let Some(ack) = build::request(
                &BuildLeg::bridge(call, trunk, self.local.bridge_sip),
                Method::Ack,
                &branch,
                1,
                None,
            ) {
                self.send(flow, &ack);
            }
        }
    }

    fn bridge_ringing(&mut self, now: Instant, key: CallKey) {
        let _span = self.span(key).entered();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.bridge.provisional || call.state != State::Setup {
            return;
        }
        call.bridge.provisional = true;
        let (Some(tx), tag) = (call.phone.invite_tx, call.phone.our_tag.clone()) else {
            return;
        };
        let reply = Reply::new(&call.phone.invite, 180, Some(&tag))
            .contact(&self.local.phone_sip, &call.alias);
        if let Some(m) = reply.build() {
            let _ = self.txs.respond(now, tx, 180, m.to_bytes());
        }
    }

    /// Checks the bridge's SDP answer (in a 2xx, or a 183 for early media)
    /// against our offer and builds the phone's answer. On failure the
    /// phone gets an error, the call ends, and `None` is returned.
    fn bridge_media(&mut self, now: Instant, key: CallKey, msg: &Message) -> Option<MediaAnswer> {
        let call = self.calls.get_mut(&key)?;
        // The bridge's answer must fit our offer.
        let answer = msg
            .content_type()
            .filter(|t| t.is_sdp())
            .ok_or(None)
            .and_then(|_| SessionDescription::parse(msg.body()).map_err(|_| None));
        let negotiated_bridge = match (answer, call.bridge.pending.as_ref()) {
            (Ok(sdp), Some(p)) => p.accept(&sdp).map_err(Some),
            (Err(e), _) => Err(e),
            (_, None) => Err(None),
        };
        let negotiated_bridge = match negotiated_bridge {
            Ok(n) => n,
            Err(r) => {
                let why = r
                    .map(|r| r.warning())
                    .unwrap_or_else(|| "no usable SDP answer".into());
                warn!(call = key.0, %why, "bridge answer refused: ending the call");
                self.refuse_phone(now, key, 488, "the bridge answered without acceptable SRTP");
                self.end_call(now, key, "bridge answer refused", false, true);
                return None;
            }
        };
        let call = self.calls.get_mut(&key)?;
        let mut checked = call.phone.checked.take()?;
        // Both legs' ports were allocated at INVITE; never panic on a
        // peer's response if that ever stops being true.
        let (Some(phone_local), Some(bridge_local)) = (call.phone.local, call.bridge.local) else {
            return None;
        };
        let answered = checked
            .restrict_codecs(&negotiated_bridge.codecs)
            .and_then(|()| {
                checked.answer(&LocalMedia {
                    rtp: advertised(&self.config, phone_local.rtp_addr),
                    rtcp: phone_local.rtcp.map(|r| advertised(&self.config, r.1)),
                    rtcp_mux: phone_local.rtcp.is_none(),
                    direction: sdp::Direction::SendRecv,
                })
            });
        match answered {
            Ok((sdp, phone)) => Some(MediaAnswer {
                phone_sdp: sdp,
                phone,
                bridge: negotiated_bridge,
                phone_local,
                bridge_local,
            }),
            Err(r) => {
                let w = r.warning();
                warn!(call = key.0, warning = %w, "no common media between phone and bridge");
                self.refuse_phone(now, key, r.status(), "no media in common with the bridge");
                self.end_call(now, key, "no common media", false, true);
                None
            }
        }
    }

    /// A 18x with SDP from the bridge (early media: an announcement, an
    /// IVR): media starts now on both legs and the phone gets 183 with its
    /// answer; the secure tone and the PIN wait for the 200.
    fn bridge_early_media(&mut self, now: Instant, key: CallKey, msg: &Message) {
        let _span = self.span(key).entered();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.media_started || call.state != State::Setup {
            return;
        }
        call.bridge.provisional = true;
        let Some(m) = self.bridge_media(now, key, msg) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        info!(
            call = key.0,
            phone_suite = %m.phone.suite,
            bridge_suite = %m.bridge.suite,
            "early media from the bridge"
        );
        let text = m.phone_sdp.print();
        call.phone.negotiated = Some(m.phone.clone());
        call.bridge.negotiated = Some(m.bridge.clone());
        call.phone.last_sdp = Some(text.clone());
        call.media_started = true;
        self.out.push_back(Output::StartMedia(Box::new(StartMedia {
            call: key,
            phone: (m.phone_local, leg_config(m.phone, &m.phone_local)),
            bridge: (m.bridge_local, leg_config(m.bridge, &m.bridge_local)),
            tone: Vec::new(),
            pin: Vec::new(),
        })));
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (Some(tx), tag) = (call.phone.invite_tx, call.phone.our_tag.clone()) else {
            return;
        };
        let reply = Reply::new(&call.phone.invite, 183, Some(&tag))
            .contact(&self.local.phone_sip, &call.alias)
            .sdp(text.as_bytes().to_vec());
        if let Some(m) = reply.build() {
            let _ = self.txs.respond(now, tx, 183, m.to_bytes());
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
        let Some(call) = self.calls.get_mut(&key) else {
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
                    self.refuse_phone(now, key, 488, "the bridge answered without acceptable SRTP");
                    self.end_call(now, key, "bridge answer refused", false, true);
                    return;
                }
            }
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let (Some(phone_n), Some(bridge_n)) = (
            call.phone.negotiated.clone(),
            call.bridge.negotiated.clone(),
        ) else {
            return;
        };
        let (tone, pin) = self.call_up(now, key, &phone_n, &bridge_n);
        if !tone.is_empty() {
            self.out.push_back(Output::Play {
                call: key,
                phone_leg: true,
                frames: tone,
                mute: true,
            });
        }
        if !pin.is_empty() {
            self.out.push_back(Output::Play {
                call: key,
                phone_leg: false,
                frames: pin,
                mute: false,
            });
        }
        self.answer_phone(now, key);
    }

    /// The call is up: state, the log line, and the secure tone and PIN
    /// frames to play.
    fn call_up(
        &mut self,
        now: Instant,
        key: CallKey,
        phone_n: &Negotiated,
        bridge_n: &Negotiated,
    ) -> (Vec<PlayFrame>, Vec<PlayFrame>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return (Vec::new(), Vec::new());
        };
        call.state = State::Up;
        call.phone.answered = true;
        let tone = tone_frames(now, phone_n, &mut *self.random);
        let pin = call
            .pin
            .as_deref()
            .and_then(|p| pin_frames(now, p, bridge_n, &mut *self.random))
            .unwrap_or_default();
        info!(
            call = key.0,
            token = %call.token,
            alias = %call.alias,
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
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.session_timer = requested_timer(&call.phone.invite).map(|s| SessionTimer::new(now, s));
        let (Some(tx), tag) = (call.phone.invite_tx, call.phone.our_tag.clone()) else {
            return;
        };
        let mut reply = Reply::new(&call.phone.invite, 200, Some(&tag))
            .contact(&self.local.phone_sip, &call.alias)
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

    fn bridge_answered(&mut self, now: Instant, key: CallKey, msg: &Message) {
        let _span = self.span(key).entered();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.bridge.answered {
            return;
        }
        call.bridge.answered = true;
        call.bridge.their_to = Some(msg.to().clone());
        call.bridge.remote_target = build::contact_uri(msg);
        call.bridge.route_set = msg
            .record_route()
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let trunk_name = self.trunk_names[call.bridge.trunk].clone();
        let trunk = self.trunks[&trunk_name].clone();
        let trunk = &trunk;
        // ACK the 2xx (outside the transaction, RFC 3261 §13.2.2.4).
        let ack_branch = format!("z9hG4bK{}", self.rand_hex(10));
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let ack = build::request(
            &BuildLeg::bridge(call, trunk, self.local.bridge_sip),
            Method::Ack,
            &ack_branch,
            1,
            None,
        );
        if let Some(ack) = ack {
            let flow = self.bridge_flow(key);
            self.out.push_back(Output::Send {
                flow,
                bytes: ack.to_bytes(),
            });
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != State::Setup {
            // Answered after the phone gave up (CANCEL raced the 200): hang up.
            self.end_call(now, key, "answered after cancel", false, true);
            return;
        }
        if call.media_started {
            // Early media already runs (183 with SDP): the answer stands.
            self.answered_after_early_media(now, key, msg);
            return;
        }
        let Some(MediaAnswer {
            phone_sdp: answer_sdp,
            phone: negotiated_phone,
            bridge: negotiated_bridge,
            phone_local,
            bridge_local,
        }) = self.bridge_media(now, key, msg)
        else {
            return;
        };
        let (tone, pin) = self.call_up(now, key, &negotiated_phone, &negotiated_bridge);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.phone.negotiated = Some(negotiated_phone.clone());
        call.bridge.negotiated = Some(negotiated_bridge.clone());
        let answer_text = answer_sdp.print();
        call.phone.last_sdp = Some(answer_text.clone());
        let phone_cfg = leg_config(negotiated_phone, &phone_local);
        let bridge_cfg = leg_config(negotiated_bridge, &bridge_local);
        call.media_started = true;
        self.out.push_back(Output::StartMedia(Box::new(StartMedia {
            call: key,
            phone: (phone_local, phone_cfg),
            bridge: (bridge_local, bridge_cfg),
            tone,
            pin,
        })));
        self.answer_phone(now, key);
    }

    /// Setup failed: answer the phone (if still possible) and forget the call.
    fn fail_setup(&mut self, now: Instant, key: CallKey, status: u16, why: &str) {
        let _span = self.span(key).entered();
        self.refuse_phone(now, key, status, why);
        self.forget(key);
    }

    /// Gives the phone's INVITE a final failure, if it has none yet.
    fn refuse_phone(&mut self, now: Instant, key: CallKey, status: u16, why: &str) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if !call.phone.answered {
            if let (Some(tx), tag) = (call.phone.invite_tx, call.phone.our_tag.clone()) {
                let w = format!("399 dialgate \"{why}\"");
                let reply = Reply::new(&call.phone.invite, status, Some(&tag)).warning(&w);
                if let Some(m) = reply.build() {
                    let _ = self.txs.respond(now, tx, status, m.to_bytes());
                }
            }
        }
        call.phone.answered = true;
        info!(call = key.0, status, reason = why, "call setup failed");
    }

    fn forget(&mut self, key: CallKey) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.dialogs
            .remove(&(call.phone.call_id.clone(), call.phone.our_tag.clone()));
        self.dialogs
            .remove(&(call.bridge.call_id.clone(), call.bridge.our_tag.clone()));
        if let Some(n) = self.calls_per_token.get_mut(&call.token) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = self.calls_per_address.get_mut(&call.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.calls_per_address.remove(&call.source);
            }
        }
        if call.media_started {
            self.out.push_back(Output::StopMedia { call: key });
        } else {
            let legs: Vec<LocalLeg> = [call.phone.local, call.bridge.local]
                .into_iter()
                .flatten()
                .collect();
            if !legs.is_empty() {
                self.out.push_back(Output::ReleaseMedia { legs });
            }
        }
    }

    /// Ends a call: BYE to the legs asked for, media stopped, state gone.
    fn end_call(
        &mut self,
        now: Instant,
        key: CallKey,
        why: &str,
        bye_phone: bool,
        bye_bridge: bool,
    ) {
        let _span = self.span(key).entered();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.state = State::Ending;
        let duration = now.duration_since(call.started).as_secs();
        let (token, alias) = (call.token.clone(), call.alias.clone());
        if bye_bridge && call.bridge.answered {
            call.bridge.our_cseq += 1;
            let cseq = call.bridge.our_cseq;
            let branch = format!("z9hG4bK{}", self.rand_hex(10));
            let Some(call) = self.calls.get(&key) else {
                return;
            };
            let trunk = &self.trunks[&self.trunk_names[call.bridge.trunk]];
            let bye = build::request(
                &BuildLeg::bridge(call, trunk, self.local.bridge_sip),
                Method::Bye,
                &branch,
                cseq,
                None,
            );
            if let Some(bye) = bye {
                let flow = self.bridge_flow(key);
                let _ = self
                    .txs
                    .send_request(now, &branch, "BYE", bye.to_bytes(), flow.id(), true);
            }
        }
        if bye_phone {
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            if call.phone.answered {
                call.phone.our_cseq += 1;
                let cseq = call.phone.our_cseq;
                let branch = format!("z9hG4bK{}", self.rand_hex(10));
                let Some(call) = self.calls.get(&key) else {
                    return;
                };
                if let Some(bye) = build::request(
                    &BuildLeg::phone(call, &self.local.phone_sip),
                    Method::Bye,
                    &branch,
                    cseq,
                    None,
                ) {
                    let flow = call.phone.flow;
                    let _ =
                        self.txs
                            .send_request(now, &branch, "BYE", bye.to_bytes(), flow.id(), true);
                }
            }
        }
        info!(call = key.0, token = %token, alias = %alias, duration_s = duration, reason = why, "call ended");
        self.forget(key);
    }

    fn phone_cancel(&mut self, now: Instant, tx: TxId, msg: &Message) {
        self.reply(now, tx, Reply::new(msg, 200, None));
        let via = msg.top_via();
        let Some(inv) = self
            .txs
            .invite_for_cancel(via.branch().unwrap_or_default(), &build::sent_by(via))
        else {
            return;
        };
        let Some((&key, _)) = self
            .calls
            .iter()
            .find(|(_, c)| c.phone.invite_tx == Some(inv))
        else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != State::Setup {
            return;
        }
        // 487 to the phone's INVITE.
        let tag = call.phone.our_tag.clone();
        if let Some(m) = Reply::new(&call.phone.invite, 487, Some(&tag)).build() {
            let _ = self.txs.respond(now, inv, 487, m.to_bytes());
        }
        call.phone.answered = true; // the INVITE has its final answer
        call.state = State::Ending;
        // CANCEL the bridge INVITE (same branch and CSeq number, §9.1).
        let branch = call.bridge.invite_branch.clone();
        let trunk = &self.trunks[&self.trunk_names[call.bridge.trunk]];
        if let Some(cancel) = build::request(
            &BuildLeg::bridge(call, trunk, self.local.bridge_sip),
            Method::Cancel,
            &branch,
            1,
            None,
        ) {
            let flow = Flow::Trunk(call.bridge.trunk);
            let _ =
                self.txs
                    .send_request(now, &branch, "CANCEL", cancel.to_bytes(), flow.id(), true);
        }
        info!(call = key.0, "call cancelled by the phone");
        // Keep the call until the bridge's final answer to the INVITE:
        // a 487 forgets it; a 200 that crossed the CANCEL is ACKed and BYEd.
    }

    fn dialog_ack(&mut self, msg: &Message) {
        // The ACK for our 2xx to the phone: nothing more to do over TLS
        // (no 2xx retransmissions to stop).
        let _ = msg;
    }

    fn in_dialog(
        &mut self,
        now: Instant,
        tx: TxId,
        method: Method,
        msg: &Message,
        phone: Option<&PhoneIdentity>,
        from_trunk: Option<usize>,
    ) {
        let key = msg
            .to()
            .tag()
            .and_then(|tag| {
                self.dialogs
                    .get(&(msg.call_id().to_string(), tag.to_string()))
            })
            .copied();
        let Some(key) = key else {
            self.reply(now, tx, Reply::new(msg, 481, None));
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            self.reply(now, tx, Reply::new(msg, 481, None));
            return;
        };
        let from_phone_leg = msg.call_id() == call.phone.call_id;
        let _leg = self.leg_span(key, from_phone_leg).entered();
        // A phone may only touch its own token's calls, and only the phone leg.
        if let Some(p) = phone {
            if !from_phone_leg || p.token != call.token {
                self.reply(
                    now,
                    tx,
                    Reply::new(msg, 403, None).warning("399 dialgate \"not your call\""),
                );
                return;
            }
        } else if from_phone_leg {
            self.reply(now, tx, Reply::new(msg, 481, None));
            return;
        } else if from_trunk != Some(call.bridge.trunk) {
            // A bridge may only touch calls on its own trunk.
            self.reply(
                now,
                tx,
                Reply::new(msg, 403, None).warning("399 dialgate \"not your call\""),
            );
            return;
        }
        match method {
            Method::Bye => {
                self.reply(now, tx, Reply::new(msg, 200, None));
                if from_phone_leg {
                    self.end_call(now, key, "phone hung up", false, true);
                } else {
                    self.end_call(now, key, "bridge hung up", true, false);
                }
            }
            Method::Options => self.reply(now, tx, Reply::new(msg, 200, None).allow()),
            Method::Invite | Method::Update => {
                self.session_update(now, tx, key, from_phone_leg, msg)
            }
            _ => self.reply(now, tx, Reply::new(msg, 405, None).allow()),
        }
    }

    /// A re-INVITE or UPDATE on one leg (hold, resume, session refresh):
    /// answered on that leg alone. While the peer keeps its crypto line,
    /// both keys stay and no SRTP context changes; a key change is refused
    /// with 488 (the relay cannot re-key a live call yet) and the call goes
    /// on with its current keys.
    fn session_update(
        &mut self,
        now: Instant,
        tx: TxId,
        key: CallKey,
        phone_leg: bool,
        msg: &Message,
    ) {
        let trunk_policy = self
            .calls
            .get(&key)
            .map(|c| self.trunk_policies[c.bridge.trunk].clone());
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != State::Up {
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
                trunk_policy.unwrap_or_else(Policy::trunk_default),
                call.bridge.local,
                call.bridge.negotiated.clone(),
                call.bridge.last_sdp.clone(),
            )
        };
        let (Some(local), Some(previous)) = (local, previous) else {
            self.reply(now, tx, Reply::new(msg, 500, None));
            return;
        };
        let contact_user = call.alias.clone();
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
        let checked = SessionDescription::parse(msg.body())
            .map_err(|_| None)
            .and_then(|sdp| sdp::check_offer(&sdp, &policy).map_err(Some));
        let media = LocalMedia {
            rtp: if phone_leg {
                advertised(&self.config, local.rtp_addr)
            } else {
                local.rtp_addr
            },
            rtcp: local.rtcp.map(|r| {
                if phone_leg {
                    advertised(&self.config, r.1)
                } else {
                    r.1
                }
            }),
            rtcp_mux: previous.rtcp_mux,
            direction: sdp::Direction::SendRecv,
        };
        let answered = checked.and_then(|c| c.answer_update(&media, &previous).map_err(Some));
        let (sdp, negotiated) = match answered {
            Ok(x) => x,
            Err(r) => {
                let (status, w) = match r {
                    Some(r) => (r.status(), r.warning()),
                    None => (
                        488,
                        "399 dialgate \"an SDP offer with SRTP (SDES) is required\"".to_string(),
                    ),
                };
                self.reply(now, tx, Reply::new(msg, status, None).warning(&w));
                return;
            }
        };
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
        if let Some(call) = self.calls.get_mut(&key) {
            if phone_leg {
                if let Some(t) = call.session_timer {
                    let interval = requested_timer(msg).unwrap_or(t.interval);
                    call.session_timer = Some(SessionTimer::new(now, interval));
                    timer = Some(interval);
                }
            }
            info!(call = key.0, phone_leg, direction = ?negotiated.direction, "session updated");
            if phone_leg {
                call.phone.negotiated = Some(negotiated);
                call.phone.last_sdp = Some(text.clone());
            } else {
                call.bridge.negotiated = Some(negotiated);
                call.bridge.last_sdp = Some(text.clone());
            }
        }
        let mut reply = Reply::new(msg, 200, None)
            .contact(&self.local.phone_sip, &contact_user)
            .sdp(text.as_bytes().to_vec());
        if let Some(interval) = timer {
            reply = reply.session_timer(interval);
        }
        self.reply(now, tx, reply);
    }
}

/// The session interval a request asks for, if it supports RFC 4028
/// timers (`Supported: timer` and a Session-Expires of at least MIN_SE).
/// A phone-side media address as phones reach it: the configured
/// `phone.advertise_address` (a NAT in between) with the bound port.
fn advertised(config: &Config, bound: SocketAddr) -> SocketAddr {
    match config.phone.advertise_address {
        Some(ip) => SocketAddr::new(ip, bound.port()),
        None => bound,
    }
}

fn requested_timer(msg: &Message) -> Option<u32> {
    let se = msg.session_expires()?;
    let supported = msg.supported().any(|t| t.eq_ignore_ascii_case("timer"))
        || msg.require().any(|t| t.eq_ignore_ascii_case("timer"));
    (supported && se.delta >= MIN_SE).then_some(se.delta)
}

fn hex8(n: u32) -> String {
    format!("{n:08x}")
}

/// Maps a bridge's final failure to what the phone is told.
fn map_failure(code: u16) -> (u16, &'static str) {
    match code {
        404 | 410 | 484 => (404, "no such meeting at the bridge"),
        486 | 600 => (486, "meeting busy"),
        603 => (603, "declined by the bridge"),
        487 => (487, "cancelled"),
        488 | 606 => (488, "no acceptable media at the bridge"),
        401 | 403 | 407 => (403, "refused by the bridge"),
        408 | 480 => (480, "bridge did not answer"),
        _ => (503, "bridge failed"),
    }
}

fn leg_config(n: Negotiated, local: &LocalLeg) -> LegConfig {
    let rtcp = if n.rtcp_mux {
        None
    } else {
        local.rtcp.map(|r| r.0)
    };
    n.into_leg_config(local.rtp, rtcp)
}

fn law_of(n: &Negotiated) -> Option<(G711, u8)> {
    n.codecs
        .payload_types()
        .into_iter()
        .find_map(|pt| match pt {
            0 => Some((G711::MuLaw, 0)),
            8 => Some((G711::ALaw, 8)),
            _ => None,
        })
}

fn ssrc(random: &mut dyn Random) -> (u32, u16, u32) {
    let mut b = [0u8; 10];
    random.fill(&mut b);
    (
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
    )
}

/// The secure tone for the phone, if the phone leg speaks G.711.
fn tone_frames(now: Instant, n: &Negotiated, random: &mut dyn Random) -> Vec<PlayFrame> {
    let Some((law, pt)) = law_of(n) else {
        return Vec::new();
    };
    let (ssrc, seq, ts) = ssrc(random);
    let tone = SecureTone::new(law);
    (0..SECURE_TONE_FRAMES)
        .filter_map(|i| {
            Some(PlayFrame {
                at: now + Duration::from_millis(20 * i as u64),
                payload_type: pt,
                marker: i == 0,
                seq: seq.wrapping_add(i as u16),
                timestamp: ts.wrapping_add(160 * i as u32),
                ssrc,
                payload: tone.frame(i)?.to_vec(),
            })
        })
        .collect()
}

/// The meeting PIN as RFC 4733 events on the bridge leg, after a second
/// (the bridge's prompt), if the bridge leg negotiated telephone-event.
fn pin_frames(
    now: Instant,
    pin: &str,
    n: &Negotiated,
    random: &mut dyn Random,
) -> Option<Vec<PlayFrame>> {
    let pt = n
        .codecs
        .iter()
        .find(|c| c.kind() == Some(sdp::CodecKind::TelephoneEvent))?
        .payload_type;
    let sender = DtmfSender::new(pin)?;
    let (ssrc, seq, ts) = ssrc(random);
    let start = now + Duration::from_secs(1);
    let mut out = Vec::new();
    let mut sent = 0u16;
    for slot in 0..sender.slots() {
        let Some(p) = sender.packet(slot) else {
            continue;
        };
        out.push(PlayFrame {
            at: start + Duration::from_millis(20 * slot as u64),
            payload_type: pt,
            marker: p.marker,
            seq: seq.wrapping_add(sent),
            timestamp: ts.wrapping_add(p.timestamp),
            ssrc,
            payload: p.payload.to_vec(),
        });
        sent += 1;
    }
    Some(out)
}
