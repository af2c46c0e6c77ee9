//! The trunks to the bridges: one table indexed by [`TrunkId`] (settings,
//! SRTP policy, keep-alive state), the next hops of their dialogs, and the
//! bridges' own inbound connections.
//!
//! Ids are stable and never reused: a trunk a signed policy adds gets the
//! next id; one a later policy drops is retired (its calls end, its
//! connections close, its id names nothing any more).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::TrunkConfig;
use crate::sdp::Policy;
use crate::sip::Method;
use crate::transaction::TxId;

use super::build::{self, Leg as BuildLeg};
use super::call::CallKey;
use super::refusal::Refusal;
use super::teardown::Party;
use super::{B2bua, B2buaError, Flow, Output};

/// Interval of OPTIONS keep-alives to each trunk.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

/// Names a trunk of the B2BUA: an index into its trunk table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkId(pub usize);

impl std::fmt::Display for TrunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug)]
pub(super) struct Trunk {
    /// As configured, but for a wildcard `media_address`: the address
    /// the trunk's connection last left from ([`TrunkTable::set_local`]),
    /// the wildcard until it has connected.
    pub(super) config: TrunkConfig,
    /// The `media_address` configured.
    configured_media: IpAddr,
    pub(super) policy: Policy,
    /// Retired trunks keep their id but serve nothing.
    active: bool,
    keepalive: Option<Instant>,
    up: Option<bool>,
}

/// Every trunk, its keep-alives, route hops and inbound connections.
#[derive(Debug)]
pub(super) struct TrunkTable {
    trunks: Vec<Trunk>,
    keepalive_txs: HashMap<TxId, TrunkId>,
    /// Next hops other than a trunk's own address: (trunk, address).
    routes: Vec<(TrunkId, SocketAddr)>,
    /// Bridge-side inbound connections and their trunk.
    inbound: HashMap<u64, TrunkId>,
}

/// What [`TrunkTable::replace`] changed.
#[derive(Debug, Default)]
pub(super) struct TrunkChanges {
    /// Trunks whose settings changed or that were retired: their calls
    /// end and their connections close.
    pub(super) ended: Vec<TrunkId>,
}

fn policy_of(t: &TrunkConfig) -> Result<Policy, B2buaError> {
    Policy::new(&t.suites).map_err(|e| B2buaError::Policy(format!("trunk {}: {e}", t.name)))
}

impl TrunkTable {
    /// The configuration's trunks, sorted by name (ids 0, 1, ...).
    pub(super) fn new(trunks: &HashMap<String, TrunkConfig>) -> Result<TrunkTable, B2buaError> {
        let mut names: Vec<&String> = trunks.keys().collect();
        names.sort();
        let trunks = names
            .into_iter()
            .map(|n| {
                let config = trunks[n].clone();
                Ok(Trunk {
                    policy: policy_of(&config)?,
                    configured_media: config.media_address,
                    config,
                    active: true,
                    keepalive: None,
                    up: None,
                })
            })
            .collect::<Result<Vec<_>, B2buaError>>()?;
        Ok(TrunkTable {
            trunks,
            keepalive_txs: HashMap::new(),
            routes: Vec::new(),
            inbound: HashMap::new(),
        })
    }

    /// An active trunk.
    pub(super) fn get(&self, id: TrunkId) -> Option<&Trunk> {
        self.trunks.get(id.0).filter(|t| t.active)
    }

    /// The trunk's connection is up from `local`: a wildcard
    /// `media_address` follows it (same family only), for legs set up
    /// from now on; calls up keep the address they have.
    pub(super) fn set_local(&mut self, id: TrunkId, local: IpAddr) {
        let Some(t) = self.trunks.get_mut(id.0).filter(|t| t.active) else {
            return;
        };
        let same_family = local.is_ipv4() == t.configured_media.is_ipv4();
        if !t.configured_media.is_unspecified() || !same_family || local.is_unspecified() {
            return;
        }
        if t.config.media_address != local {
            info!(trunk = %t.config.name, address = %local, "trunk media address: the uplink's, as its connection leaves from");
            t.config.media_address = local;
        }
    }

    /// An active trunk's settings.
    pub(super) fn config(&self, id: TrunkId) -> Option<&TrunkConfig> {
        self.get(id).map(|t| &t.config)
    }

    /// The active trunk of this name.
    pub(super) fn by_name(&self, name: &str) -> Option<TrunkId> {
        self.trunks
            .iter()
            .position(|t| t.active && t.config.name == name)
            .map(TrunkId)
    }

    /// Ids of the active trunks.
    pub(super) fn ids(&self) -> impl Iterator<Item = TrunkId> + '_ {
        (0..self.trunks.len())
            .map(TrunkId)
            .filter(|i| self.get(*i).is_some())
    }

    /// The trunk's name ("-" for an id that names nothing).
    pub(super) fn name(&self, id: TrunkId) -> &str {
        self.trunks
            .get(id.0)
            .map_or("-", |t| t.config.name.as_str())
    }

    /// Puts `settings` in force: changed trunks are reported, new names
    /// get new ids, names no longer listed are retired. Settings whose
    /// suites are unusable are refused with a log line (the old ones stay).
    pub(super) fn replace(&mut self, settings: &HashMap<String, TrunkConfig>) -> TrunkChanges {
        let mut changes = TrunkChanges::default();
        for (i, t) in self.trunks.iter_mut().enumerate() {
            if !t.active {
                continue;
            }
            // Compared as configured: a learnt media address is no change.
            let mut configured = t.config.clone();
            configured.media_address = t.configured_media;
            match settings.get(&t.config.name) {
                None => {
                    warn!(trunk = %t.config.name, "trunk no longer in the policy: retired");
                    t.active = false;
                    t.keepalive = None;
                    changes.ended.push(TrunkId(i));
                }
                Some(new) if *new != configured => match policy_of(new) {
                    Ok(p) => {
                        t.policy = p;
                        t.config = new.clone();
                        t.configured_media = new.media_address;
                        t.up = None;
                        changes.ended.push(TrunkId(i));
                    }
                    Err(e) => {
                        warn!(trunk = %t.config.name, error = %e, "trunk settings refused: the old ones stay")
                    }
                },
                Some(_) => {}
            }
        }
        let mut added: Vec<&TrunkConfig> = settings
            .values()
            .filter(|t| self.by_name(&t.name).is_none())
            .collect();
        added.sort_by(|a, b| a.name.cmp(&b.name));
        for t in added {
            match policy_of(t) {
                Ok(policy) => {
                    info!(trunk = %t.name, id = self.trunks.len(), "trunk added by policy");
                    self.trunks.push(Trunk {
                        configured_media: t.media_address,
                        config: t.clone(),
                        policy,
                        active: true,
                        // Its first keep-alive goes out at the next timeout.
                        keepalive: Some(Instant::now()),
                        up: None,
                    });
                }
                Err(e) => warn!(trunk = %t.name, error = %e, "trunk refused"),
            }
        }
        self.routes.retain(|(t, _)| !changes.ended.contains(t));
        self.inbound.retain(|_, t| !changes.ended.contains(t));
        changes
    }

    /// Starts every active trunk's keep-alives (the first after `delay`).
    pub(super) fn start(&mut self, now: Instant, delay: Duration) {
        for t in self.trunks.iter_mut().filter(|t| t.active) {
            t.keepalive = Some(now + delay);
        }
    }

    /// Makes the trunk's keep-alive due at `now` (its connection is needed
    /// now: it is opened to send it).
    pub(super) fn keepalive_now(&mut self, id: TrunkId, now: Instant) {
        if let Some(t) = self.trunks.get_mut(id.0).filter(|t| t.active) {
            t.keepalive = Some(now);
        }
    }

    /// The next keep-alive due.
    pub(super) fn next_keepalive(&self) -> Option<Instant> {
        self.trunks.iter().filter_map(|t| t.keepalive).min()
    }

    /// Trunks whose keep-alive is due at `now` (rescheduled [`KEEPALIVE`] on).
    pub(super) fn due(&mut self, now: Instant) -> Vec<TrunkId> {
        let mut due = Vec::new();
        for (i, t) in self.trunks.iter_mut().enumerate() {
            if t.keepalive.is_some_and(|k| k <= now) {
                t.keepalive = Some(now + KEEPALIVE);
                due.push(TrunkId(i));
            }
        }
        due
    }

    /// Records the trunk's answer (any) or silence to a keep-alive.
    pub(super) fn keepalive_result(&mut self, tx: TxId, answered: bool) {
        let Some(id) = self.keepalive_txs.remove(&tx) else {
            return;
        };
        let Some(t) = self.trunks.get_mut(id.0) else {
            return;
        };
        if t.up != Some(answered) {
            t.up = Some(answered);
            if answered {
                info!(trunk = %t.config.name, "trunk answers keep-alives");
            } else {
                warn!(trunk = %t.config.name, "trunk does not answer keep-alives");
            }
        }
    }

    /// Whether the trunk answered its last keep-alive.
    pub(super) fn up(&self, id: TrunkId) -> Option<bool> {
        self.get(id).and_then(|t| t.up)
    }

    /// The trunk a bridge-side flow belongs to.
    pub(super) fn of_flow(&self, flow: Flow) -> Option<TrunkId> {
        match flow {
            Flow::Trunk(i) => self.get(i).map(|_| i),
            Flow::Route(r) => self.routes.get(r).map(|(i, _)| *i),
            Flow::Inbound(n) => self.inbound.get(&n).copied(),
            Flow::Phone(_) => None,
        }
    }

    /// The trunk and address of a route hop.
    pub(super) fn route_target(&self, route: usize) -> Option<(TrunkId, SocketAddr)> {
        self.routes.get(route).copied()
    }

    /// The flow of a next hop `addr` of `trunk`: the trunk connection for
    /// its own address, a route flow for a hop it lists in `routes`, and
    /// `None` for any other address (a bridge cannot make the kit connect
    /// where its configuration does not say).
    pub(super) fn hop(&mut self, trunk: TrunkId, addr: SocketAddr) -> Option<Flow> {
        let t = self.get(trunk)?;
        // A trunk by name has no literal address to match: its bridge's
        // Record-Route hops must be listed in `routes`.
        if t.config.connect.addr() == Some(addr) {
            return Some(Flow::Trunk(trunk));
        }
        if !t.config.routes.contains(&addr) {
            return None;
        }
        let idx = match self.routes.iter().position(|r| *r == (trunk, addr)) {
            Some(i) => i,
            None => {
                self.routes.push((trunk, addr));
                self.routes.len() - 1
            }
        };
        Some(Flow::Route(idx))
    }

    pub(super) fn inbound_connected(&mut self, conn: u64, trunk: TrunkId) -> bool {
        if self.get(trunk).is_none() {
            return false;
        }
        self.inbound.insert(conn, trunk);
        true
    }

    pub(super) fn inbound_closed(&mut self, conn: u64) {
        self.inbound.remove(&conn);
    }

    pub(super) fn is_inbound(&self, conn: u64) -> bool {
        self.inbound.contains_key(&conn)
    }

    /// Each inbound connection whose trunk is in `ended` (to close).
    pub(super) fn track_keepalive(&mut self, tx: TxId, trunk: TrunkId) {
        self.keepalive_txs.insert(tx, trunk);
    }
}

impl B2bua {
    /// Puts new trunk settings in force (a signed policy was applied): a
    /// trunk whose settings changed, or that the policy dropped, loses its
    /// calls (BYE, or a refusal for calls being set up) and its
    /// connections ([`Output::CloseTrunk`]), so that nothing goes on under
    /// the old trust or suites; a trunk the policy adds gets a new id.
    pub(super) fn set_trunks(&mut self, now: Instant, settings: &HashMap<String, TrunkConfig>) {
        let changes = self.trunks.replace(settings);
        for id in changes.ended {
            self.end_trunk_calls(now, id, &Refusal::TRUNK_CHANGED, Party::Gateway);
            self.out.push_back(Output::CloseTrunk { trunk: id });
            info!(trunk = %self.trunks.name(id), "trunk settings changed by policy: its connections are reopened with them");
        }
    }

    pub(super) fn send_keepalives(&mut self, now: Instant) {
        for trunk in self.trunks.due(now) {
            let tag = self.rand_hex(8);
            let call_id = format!("{}@dialgate", self.rand_hex(12));
            let branch = format!("z9hG4bK{}", self.rand_hex(10));
            let Some(config) = self.trunks.config(trunk) else {
                continue;
            };
            let Some(leg) = BuildLeg::options(config, self.local.bridge_sip, &tag, &call_id) else {
                continue;
            };
            let Some(msg) = build::request(&leg, Method::Options, &branch, 1, None) else {
                continue;
            };
            let flow = Flow::Trunk(trunk).id();
            if let Ok(tx) =
                self.txs
                    .send_request(now, &branch, "OPTIONS", msg.to_bytes(), flow, true)
            {
                self.trunks.track_keepalive(tx, trunk);
            }
        }
    }

    /// Where in-dialog requests to the bridge go (RFC 3261 §12.2.1.1,
    /// §16.12): the first hop of the route set if it is an address the
    /// trunk lists, else the trunk connection.
    pub(super) fn bridge_flow(&mut self, key: CallKey) -> Flow {
        let Some(call) = self.calls.get(key) else {
            return Flow::Trunk(TrunkId(usize::MAX));
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
        match self.trunks.hop(trunk, addr) {
            Some(flow) => flow,
            None => {
                warn!(call = key.0, trunk = %self.trunks.name(trunk), %addr, "Record-Route names a hop the trunk does not list: using the trunk connection");
                Flow::Trunk(trunk)
            }
        }
    }
}
