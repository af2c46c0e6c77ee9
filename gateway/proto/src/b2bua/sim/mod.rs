//! The B2BUA in a simulated world, in the manner of quinn's `Pair`: two
//! scripted phones and a scripted bridge exchange real SIP messages with
//! it on a virtual clock; every connection keeps its order but messages
//! on different connections overtake each other, connections break, and
//! random operation sequences (INVITE, CANCEL, BYE early and late,
//! re-INVITE, answers, failures, silence, revocation, a token re-keyed,
//! trunk loss, policy changes, media inactivity, time) are checked against invariants:
//!
//! - every phone INVITE gets exactly one final response, however the call
//!   goes;
//! - every dialog the bridge answered is hung up by one side;
//! - no call, transaction or media port outlives its timers: once the
//!   peers have hung up and the timers have run, nothing is left;
//! - media runs only for a call the B2BUA holds (hence an `Authorized`),
//!   never for a key that is revoked or replaced, and every port is given
//!   back once;
//! - the call table's indexes always agree with its calls.
//!
//! `DIALGATE_SIM_SEQUENCES` sets the number of sequences (default 300),
//! `DIALGATE_SIM_FIRST` the first seed (a failure names its seed);
//! `docs/design.md` says what it found.

mod peers;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::tests::{admitted, bridge_response, parse, registry, Rng, CONFIG};
use super::*;
use crate::config::NoFiles;
use crate::relay::SocketId;
use crate::sdp::Policy;
use crate::srtp::{format_inline, Suite};

/// Media ports whose every allocation is tracked.
#[derive(Clone, Default)]
struct TrackedPorts(Arc<Mutex<(u32, HashSet<SocketId>)>>);

impl MediaPorts for TrackedPorts {
    fn allocate(&mut self, ip: IpAddr, rtcp_mux: bool) -> Result<LocalLeg, String> {
        let mut g = self.0.lock().map_err(|_| "poisoned")?;
        if g.1.len() >= 64 {
            return Err("no ports left".into());
        }
        g.0 += 2;
        let n = g.0;
        g.1.insert(SocketId(n));
        if !rtcp_mux {
            g.1.insert(SocketId(n + 1));
        }
        let port = 20000 + (n % 20000) as u16;
        Ok(LocalLeg {
            rtp: SocketId(n),
            rtp_addr: SocketAddr::new(ip, port),
            rtcp: (!rtcp_mux).then(|| (SocketId(n + 1), SocketAddr::new(ip, port + 1))),
        })
    }
}

/// A small deterministic generator for the scripts.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.below(v.len())])
    }
}

/// A phone call as its phone sees it.
struct PhoneCall {
    flow_token: usize,
    invite: Message,
    branch: String,
    finals: Vec<u16>,
    /// The INVITE reached the gateway (a broken connection may lose it).
    delivered: bool,
    /// The gateway's To tag from a 1xx (an early dialog).
    early: Option<String>,
    /// The gateway's To tag from its 2xx.
    dialog: Option<String>,
    hung_up: bool,
}

/// A call as the bridge sees it.
struct BridgeCall {
    invite: Message,
    to_tag: String,
    final_sent: bool,
    answered: bool,
    /// A BYE went either way.
    ended: bool,
    /// The bridge lost its state (its connection closed).
    dead: bool,
}

/// A message in flight, by where it goes.
enum Hop {
    Gateway(Flow, Message),
    Phone(u64, Message),
    Bridge(Message),
}

struct World {
    b2b: B2bua,
    now: Instant,
    start: Instant,
    dice: Dice,
    ports: TrackedPorts,
    /// (deliver at, sequence, hop)
    wire: Vec<(Instant, u64, Hop)>,
    seq: u64,
    /// Last delivery time per connection (order within a connection).
    last_on: HashMap<u64, Instant>,
    /// The two tokens' current phone connection (None once revoked).
    flows: [Option<u64>; 2],
    next_flow: u64,
    phone: HashMap<String, PhoneCall>,
    bridge: HashMap<String, BridgeCall>,
    media: HashMap<CallKey, Vec<SocketId>>,
    revoked: HashSet<String>,
    /// Each token's current key (HQ may re-key a token).
    keys: [u8; 2],
    next_call: u32,
    suites_flip: bool,
    /// What happened, shown when an invariant fails.
    trace: Vec<String>,
}

fn first_line(m: &Message) -> String {
    let b = m.to_bytes();
    let text = String::from_utf8_lossy(&b);
    format!(
        "{} [{} {}]",
        text.lines().next().unwrap_or_default(),
        m.call_id(),
        m.cseq().method.as_str()
    )
}

const TOKENS: [&str; 2] = ["alice", "bob"];

impl World {
    fn new(seed: u64) -> World {
        let config = Arc::new(Config::parse(CONFIG, Path::new("/"), &NoFiles).unwrap());
        let mut grants = AliasGrants::new();
        for t in TOKENS {
            grants.insert(t.into(), HashSet::from(["echo".to_string()]));
        }
        let ports = TrackedPorts::default();
        let now = Instant::now();
        let b2b = B2bua::new(
            config,
            grants,
            LocalAddrs {
                phone_sip: "127.0.0.1:5061".parse().unwrap(),
                bridge_sip: None,
            },
            Box::new(ports.clone()),
            Box::new(Rng(seed | 1)),
        )
        .unwrap();
        // No b2b.start(): OPTIONS keep-alives have a test of their own and
        // would keep a transaction open at every check.
        let mut w = World {
            b2b,
            now,
            start: now,
            dice: Dice(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            ports,
            wire: Vec::new(),
            seq: 0,
            last_on: HashMap::new(),
            flows: [None, None],
            next_flow: 1,
            phone: HashMap::new(),
            bridge: HashMap::new(),
            media: HashMap::new(),
            revoked: HashSet::new(),
            keys: [1, 2],
            next_call: 0,
            suites_flip: false,
            trace: Vec::new(),
        };
        w.publish();
        w.connect(0);
        w.connect(1);
        w
    }

    /// HQ's registry as the sim stands: each token's current key, bob's
    /// revoked if he was.
    fn publish(&mut self) {
        let r = registry(&[
            ("alice", self.keys[0], false),
            ("bob", self.keys[1], self.revoked.contains("bob")),
        ]);
        self.input(Input::Registry(r));
    }

    /// Whether a key is active in the registry the sim last published.
    fn key_active(&self, token: &str, key: u8) -> bool {
        let i = TOKENS.iter().position(|t| *t == token).unwrap_or(0);
        self.keys[i] == key && !self.revoked.contains(token)
    }

    fn connect(&mut self, token: usize) {
        let flow = self.next_flow;
        self.next_flow += 1;
        self.flows[token] = Some(flow);
        let peer = format!("127.0.0.{}:40000", token + 1);
        self.input(Input::PhoneConnected {
            flow,
            admitted: admitted(TOKENS[token], self.keys[token], &peer),
        });
    }

    fn input(&mut self, i: Input) {
        if !matches!(i, Input::Phone { .. } | Input::Trunk { .. }) {
            self.trace.push(format!(
                "{:?} input {:?}",
                self.now.duration_since(self.start),
                std::mem::discriminant(&i)
            ));
        }
        self.b2b.handle_input(self.now, i);
        self.outputs();
    }

    fn post(&mut self, conn: u64, hop: Hop) {
        let delay = Duration::from_millis(self.dice.below(80) as u64);
        let last = self.last_on.get(&conn).copied().unwrap_or(self.now);
        let at = (self.now + delay).max(last);
        self.last_on.insert(conn, at);
        self.seq += 1;
        self.wire.push((at, self.seq, hop));
    }

    fn outputs(&mut self) {
        while let Some(o) = self.b2b.poll_output() {
            match o {
                Output::Send { flow, bytes } => {
                    let msg = parse(&bytes);
                    if let Some(code) = msg.status().map(|s| s.as_u16()) {
                        if code >= 200 && msg.cseq().method == Method::Invite && msg.cseq().seq == 7
                        {
                            if let Some(c) = self.phone.get_mut(msg.call_id()) {
                                c.finals.push(code);
                            }
                        }
                    }
                    match flow {
                        Flow::Phone(n) => self.post(n, Hop::Phone(n, msg)),
                        _ => self.post(0, Hop::Bridge(msg)),
                    }
                }
                Output::StartMedia(m) => {
                    let call = self
                        .b2b
                        .calls
                        .get(m.call)
                        .expect("media for a call that exists");
                    let a = call.auth.admitted();
                    assert!(
                        self.key_active(a.token(), a.key().0[0]),
                        "media started for a key that is not admitted"
                    );
                    let mut ids = vec![m.phone.0.rtp, m.bridge.0.rtp];
                    ids.extend(m.phone.0.rtcp.map(|r| r.0));
                    ids.extend(m.bridge.0.rtcp.map(|r| r.0));
                    assert!(
                        self.media.insert(m.call, ids).is_none(),
                        "media started twice"
                    );
                }
                Output::StopMedia { call } => {
                    let ids = self.media.remove(&call).expect("stop of media not running");
                    self.give_back(&ids);
                }
                Output::ReleaseMedia { legs } => {
                    let mut ids = Vec::new();
                    for l in legs {
                        ids.push(l.rtp);
                        ids.extend(l.rtcp.map(|r| r.0));
                    }
                    self.give_back(&ids);
                }
                Output::RekeyMedia { call, .. } | Output::Play { call, .. } => {
                    assert!(self.media.contains_key(&call), "media change without media");
                }
                Output::CloseTrunk { .. } => {
                    // The bridge sees its connection close: it forgets.
                    for c in self.bridge.values_mut() {
                        c.dead = true;
                    }
                }
                Output::Disconnect { flow } => {
                    for f in &mut self.flows {
                        if *f == Some(flow) {
                            *f = None;
                        }
                    }
                }
            }
        }
        self.b2b.calls.consistent().unwrap();
        for key in self.media.keys() {
            let call = self.b2b.calls.get(*key).expect("media outlived its call");
            let a = call.auth.admitted();
            assert!(
                self.key_active(a.token(), a.key().0[0]),
                "media of a key that is no longer admitted"
            );
        }
    }

    fn give_back(&mut self, ids: &[SocketId]) {
        let mut g = self.ports.0.lock().unwrap();
        for id in ids {
            assert!(
                g.1.remove(id),
                "port {id:?} given back twice or never allocated"
            );
        }
    }

    /// Delivers everything due by `until`, firing timers on the way.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next_msg = self.wire.iter().map(|w| (w.0, w.1)).min();
            let next_timer = self.b2b.poll_timeout();
            let next = [next_msg.map(|m| m.0), next_timer]
                .into_iter()
                .flatten()
                .min();
            let Some(t) = next.filter(|t| *t <= until) else {
                break;
            };
            self.now = self.now.max(t);
            if next_msg.is_some_and(|m| m.0 == t) {
                let i = self
                    .wire
                    .iter()
                    .position(|w| Some((w.0, w.1)) == next_msg)
                    .unwrap();
                let (_, _, hop) = self.wire.remove(i);
                self.deliver(hop);
            } else {
                self.b2b.handle_timeout(self.now);
                self.outputs();
            }
        }
        self.now = self.now.max(until);
    }

    fn deliver(&mut self, hop: Hop) {
        let what = match &hop {
            Hop::Gateway(f, m) => format!("{:?} -> gw: {}", f, first_line(m)),
            Hop::Phone(f, m) => format!("gw -> phone {f}: {}", first_line(m)),
            Hop::Bridge(m) => format!("gw -> bridge: {}", first_line(m)),
        };
        self.trace
            .push(format!("{:?} {what}", self.now.duration_since(self.start)));
        match hop {
            Hop::Gateway(Flow::Phone(n), msg) => {
                if self.flows.contains(&Some(n)) {
                    if msg.method() == Some(&Method::Invite) && msg.to().tag().is_none() {
                        if let Some(c) = self.phone.get_mut(msg.call_id()) {
                            c.delivered = true;
                        }
                    }
                    self.input(Input::Phone { flow: n, msg });
                }
            }
            Hop::Gateway(Flow::Trunk(t), msg) => self.input(Input::Trunk { trunk: t, msg }),
            Hop::Gateway(..) => {}
            Hop::Phone(flow, msg) => self.phone_receives(flow, msg),
            Hop::Bridge(msg) => self.bridge_receives(msg),
        }
    }

    fn step(&mut self) {
        let phone_calls: Vec<String> = self.phone.keys().cloned().collect();
        let bridge_calls: Vec<String> = self.bridge.keys().cloned().collect();
        let pick =
            |d: &mut Dice, v: &[String]| (!v.is_empty()).then(|| v[d.below(v.len())].clone());
        match self.dice.below(20) {
            0..=2 => {
                let t = self.dice.below(2);
                self.phone_invite(t);
            }
            3..=8 => {
                if let Some(c) = pick(&mut self.dice, &bridge_calls) {
                    let what = self.dice.below(5);
                    self.bridge_acts(&c, what);
                }
            }
            9 => {
                if let Some(c) = pick(&mut self.dice, &phone_calls) {
                    self.phone_request(&c, "CANCEL");
                }
            }
            10 | 11 => {
                if let Some(c) = pick(&mut self.dice, &phone_calls) {
                    self.phone_request(&c, "BYE");
                }
            }
            12 => {
                if let Some(c) = pick(&mut self.dice, &phone_calls) {
                    self.phone_request(&c, "INVITE");
                }
            }
            13 => {
                // A phone's connection breaks; it reconnects.
                let t = self.dice.below(2);
                if let Some(flow) = self.flows[t] {
                    self.wire.retain(|w| {
                        !matches!(&w.2, Hop::Gateway(Flow::Phone(n), _) | Hop::Phone(n, _) if *n == flow)
                    });
                    self.input(Input::PhoneClosed { flow });
                    self.connect(t);
                }
            }
            14 => {
                // The trunk connection breaks: in-flight messages are lost
                // and the bridge forgets its calls.
                self.wire
                    .retain(|w| matches!(&w.2, Hop::Phone(..) | Hop::Gateway(Flow::Phone(_), _)));
                for c in self.bridge.values_mut() {
                    c.dead = true;
                }
                self.input(Input::TrunkFailed { trunk: TrunkId(0) });
            }
            15 if self.dice.below(4) == 0 && !self.revoked.contains("bob") => {
                self.revoked.insert("bob".into());
                self.publish();
            }
            15 if self.dice.below(3) == 0 => {
                // HQ gives alice a new token: her old key's connection
                // closes, and she reconnects with the new one.
                self.keys[0] = self.keys[0].wrapping_add(10);
                self.publish();
                if self.flows[0].is_none() {
                    self.connect(0);
                }
            }
            15 => {
                let keys: Vec<CallKey> = self.media.keys().copied().collect();
                if let Some(call) = self.dice.pick(&keys) {
                    self.input(Input::MediaInactive { call });
                }
            }
            16 if self.dice.below(3) == 0 => {
                // A signed policy changes the echo trunk's suites.
                self.suites_flip = !self.suites_flip;
                let mut trunks = self.b2b.config.trunks.clone();
                if self.suites_flip {
                    if let Some(t) = trunks.get_mut("echo") {
                        t.suites = vec![Suite::AesCm128HmacSha1_80];
                    }
                }
                self.input(Input::Trunks(trunks));
            }
            17 if self.dice.below(8) == 0 => {
                // HQ's signed command: every call ends, whatever its phase.
                self.input(Input::DropCalls);
            }
            _ => {
                let d = [10, 100, 1000, 1000, 5000, 5000, 40_000, 200_000][self.dice.below(8)];
                let until = self.now + Duration::from_millis(d);
                self.run_until(until);
            }
        }
    }

    /// Lets everything settle: the peers hang up what is up, the timers
    /// run out; then nothing may be left.
    fn settle_and_check(&mut self, seed: u64) {
        let until = self.now + Duration::from_secs(400);
        self.run_until(until);
        // Phones whose BYE was lost with a broken connection send no media
        // any more: the relay's inactivity event ends those calls.
        let silent: Vec<CallKey> = self.media.keys().copied().collect();
        for call in silent {
            self.input(Input::MediaInactive { call });
        }
        let up: Vec<String> = self
            .phone
            .iter()
            .filter(|(_, c)| c.dialog.is_some() && !c.hung_up)
            .map(|(k, _)| k.clone())
            .collect();
        for c in up {
            self.phone_request(&c, "BYE");
        }
        let until = self.now + Duration::from_secs(400);
        self.run_until(until);
        let ctx = format!("seed {seed}\n{}\n", self.trace.join("\n"));
        for (id, c) in self.phone.iter().filter(|(_, c)| c.delivered) {
            assert_eq!(
                c.finals.len(),
                1,
                "{ctx}: INVITE {id} got finals {:?}",
                c.finals
            );
        }
        for (id, c) in &self.bridge {
            assert!(
                c.dead || !c.answered || c.ended,
                "{ctx}: bridge dialog {id} answered and never hung up"
            );
        }
        assert_eq!(self.b2b.call_count(), 0, "{ctx}: calls left");
        assert!(
            self.b2b.txs.is_empty(),
            "{ctx}: {} transactions left",
            self.b2b.txs.len()
        );
        assert!(self.media.is_empty(), "{ctx}: media left running");
        let left = self.ports.0.lock().unwrap().1.len();
        assert_eq!(left, 0, "{ctx}: {left} media ports never given back");
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_operation_sequences_keep_every_invariant() {
    // DIALGATE_SIM_FIRST replays from a given seed (a failure names it).
    let n = env_number("DIALGATE_SIM_SEQUENCES", 300);
    let first = env_number("DIALGATE_SIM_FIRST", 1);
    let mut ops = 0u64;
    let mut finals: HashMap<u16, u64> = HashMap::new();
    for seed in first..first + n {
        let mut w = World::new(seed);
        let steps = 10 + w.dice.below(50);
        for _ in 0..steps {
            w.step();
            ops += 1;
        }
        w.settle_and_check(seed);
        for c in w.phone.values().filter(|c| c.delivered) {
            *finals.entry(c.finals[0]).or_default() += 1;
        }
    }
    // The sequences reach every kind of ending, not just one.
    for code in [200, 403, 486, 487, 503] {
        assert!(
            finals.get(&code).copied().unwrap_or(0) > 0 || n < 100,
            "no call ended with {code} in {n} sequences: {finals:?}"
        );
    }
    eprintln!("{n} sequences, {ops} operations, final responses {finals:?}");
}
