//! A two-peer simulator on a virtual clock: a UAC and a UAS, each with its
//! own `Transactions` and a small TU, joined by a network that loses,
//! delays and duplicates messages (deterministic per seed). Runs in
//! milliseconds of real time.

use std::collections::{BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use super::*;

/// Deterministic xorshift RNG.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }
}

/// Messages on the simulated wire, serialized as text lines:
/// `REQ <method> <branch>` or `RES <cseq method> <branch> <status>`.
fn req(method: &str, branch: &str) -> Vec<u8> {
    format!("REQ {method} {branch}").into_bytes()
}
fn res(method: &str, branch: &str, status: u16) -> Vec<u8> {
    format!("RES {method} {branch} {status}").into_bytes()
}

#[derive(PartialEq, Eq)]
struct InFlight {
    at: Instant,
    seq: u64,
    to_uas: bool,
    bytes: Vec<u8>,
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

struct Net {
    rng: Rng,
    loss: f64,
    dup: f64,
    max_delay_ms: u64,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    /// Drop every ACK (the lost-ACK scenario).
    drop_acks: bool,
    sent: usize,
}

impl Net {
    fn send(&mut self, now: Instant, to_uas: bool, bytes: Vec<u8>) {
        self.sent += 1;
        if self.drop_acks && bytes.starts_with(b"REQ ACK") {
            return;
        }
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            if self.rng.chance(self.loss) {
                continue;
            }
            let delay = Duration::from_millis(1 + self.rng.next() % self.max_delay_ms.max(1));
            self.seq += 1;
            self.queue.push(InFlight {
                at: now + delay,
                seq: self.seq,
                to_uas,
                bytes: bytes.clone(),
            });
        }
    }
}

/// What the UAS does with an INVITE.
#[derive(Clone, Copy, PartialEq)]
enum UasPlan {
    Answer,
    Reject(u16),
}

struct Sim {
    now: Instant,
    net: Net,
    uac: Transactions,
    uas: Transactions,
    reliable: bool,
    plan: UasPlan,
    // UAC TU state
    invite_tx: Option<TxId>,
    uac_finals: Vec<u16>,
    uac_provisionals: usize,
    uac_timeouts: usize,
    acks_for_2xx_sent: usize,
    // UAS TU state
    uas_new_invites: usize,
    uas_acks_for_tu: usize,
    uas_ack_timeouts: usize,
    /// UAS core 2xx retransmission (RFC 3261 §13.3.1.4): next time, interval, deadline.
    uas_2xx: Option<(TxId, Instant, Duration, Instant)>,
    uas_gave_up_waiting_for_ack: bool,
}

const BRANCH: &str = "z9hG4bK-sim-1";
const SENT_BY: &str = "uac.example:5061";

impl Sim {
    fn new(seed: u64, loss: f64, dup: f64, reliable: bool, plan: UasPlan) -> Sim {
        Sim {
            now: Instant::now(),
            net: Net {
                rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
                loss,
                dup,
                max_delay_ms: 80,
                queue: BinaryHeap::new(),
                seq: 0,
                drop_acks: false,
                sent: 0,
            },
            uac: Transactions::new(TimerConfig::default(), 64),
            uas: Transactions::new(TimerConfig::default(), 64),
            reliable,
            plan,
            invite_tx: None,
            uac_finals: Vec::new(),
            uac_provisionals: 0,
            uac_timeouts: 0,
            acks_for_2xx_sent: 0,
            uas_new_invites: 0,
            uas_acks_for_tu: 0,
            uas_ack_timeouts: 0,
            uas_2xx: None,
            uas_gave_up_waiting_for_ack: false,
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.uac.poll_transmit() {
            self.net.send(self.now, true, t.bytes);
        }
        while let Some(t) = self.uas.poll_transmit() {
            self.net.send(self.now, false, t.bytes);
        }
        while let Some(e) = self.uac.poll_event() {
            if let TxEvent::Timeout(_) = e {
                self.uac_timeouts += 1;
            }
        }
        while let Some(e) = self.uas.poll_event() {
            if let TxEvent::AckTimeout(_) = e {
                self.uas_ack_timeouts += 1;
            }
        }
    }

    fn deliver_to_uas(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes).to_string();
        let f: Vec<&str> = text.split(' ').collect();
        let (method, branch) = (f[1], f[2]);
        let action = self
            .uas
            .receive_request(self.now, branch, SENT_BY, method, FlowId(1), self.reliable)
            .unwrap();
        match (method, action) {
            ("INVITE", RequestAction::New(tx)) => {
                self.uas_new_invites += 1;
                self.uas
                    .respond(self.now, tx, 180, res("INVITE", branch, 180))
                    .unwrap();
                match self.plan {
                    UasPlan::Answer => {
                        self.uas
                            .respond(self.now, tx, 200, res("INVITE", branch, 200))
                            .unwrap();
                        let t1 = TimerConfig::default().t1;
                        self.uas_2xx = Some((tx, self.now + t1, t1, self.now + 64 * t1));
                    }
                    UasPlan::Reject(code) => {
                        self.uas
                            .respond(self.now, tx, code, res("INVITE", branch, code))
                            .unwrap();
                    }
                }
            }
            ("ACK", RequestAction::AckForTu) => {
                self.uas_acks_for_tu += 1;
                self.uas_2xx = None;
            }
            ("CANCEL", RequestAction::New(tx)) => {
                // §9.2: 200 to the CANCEL; 487 to the INVITE only if it has
                // no final response yet.
                self.uas
                    .respond(self.now, tx, 200, res("CANCEL", branch, 200))
                    .unwrap();
                if let Some(inv) = self.uas.invite_for_cancel(branch, SENT_BY, FlowId(1)) {
                    let _ = self
                        .uas
                        .respond(self.now, inv, 487, res("INVITE", branch, 487));
                }
            }
            ("BYE", RequestAction::New(tx)) => {
                self.uas
                    .respond(self.now, tx, 200, res("BYE", branch, 200))
                    .unwrap();
            }
            _ => {}
        }
    }

    fn deliver_to_uac(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes).to_string();
        let f: Vec<&str> = text.split(' ').collect();
        let (method, branch, status) = (f[1], f[2], f[3].parse::<u16>().unwrap());
        match self.uac.receive_response(self.now, branch, method, status) {
            ResponseAction::Deliver(_) if status < 200 => self.uac_provisionals += 1,
            ResponseAction::Deliver(_) if method == "INVITE" => {
                // 2xx (first or retransmitted): the TU ACKs each one, outside
                // any transaction (§13.2.2.4).
                if !self.uac_finals.contains(&status) {
                    self.uac_finals.push(status);
                }
                self.acks_for_2xx_sent += 1;
                self.net.send(self.now, true, req("ACK", "z9hG4bK-ack-2xx"));
            }
            ResponseAction::Deliver(_) => {}
            ResponseAction::DeliverNeedsAck(tx) => {
                self.uac_finals.push(status);
                self.uac.set_ack(tx, req("ACK", branch)).unwrap();
            }
            ResponseAction::Absorbed(_) | ResponseAction::NoMatch => {}
        }
    }

    /// Runs until nothing is in flight and no timer is pending, or `limit`.
    fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            self.flush();
            let next_net = self.net.queue.peek().map(|m| m.at);
            let next_uas_2xx = self.uas_2xx.map(|(_, at, _, _)| at);
            let next = [
                next_net,
                self.uac.poll_timeout(),
                self.uas.poll_timeout(),
                next_uas_2xx,
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { break };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            while self.net.queue.peek().is_some_and(|m| m.at <= self.now) {
                let m = self.net.queue.pop().unwrap();
                if m.to_uas {
                    self.deliver_to_uas(&m.bytes);
                } else {
                    self.deliver_to_uac(&m.bytes);
                }
                self.flush();
            }
            if let Some((tx, at, interval, deadline)) = self.uas_2xx {
                if at <= self.now {
                    if self.now >= deadline {
                        // §13.3.1.4: no ACK after 64*T1: end the dialog (BYE).
                        self.uas_gave_up_waiting_for_ack = true;
                        self.uas_2xx = None;
                    } else {
                        let _ = self
                            .uas
                            .respond(self.now, tx, 200, res("INVITE", BRANCH, 200));
                        let next = (interval * 2).min(TimerConfig::default().t2);
                        self.uas_2xx = Some((tx, self.now + next, next, deadline));
                    }
                }
            }
            self.uac.handle_timeout(self.now);
            self.uas.handle_timeout(self.now);
            check_deadlines(&self.uac, self.now);
            check_deadlines(&self.uas, self.now);
        }
    }

    fn invite(&mut self) {
        let tx = self
            .uac
            .send_request(
                self.now,
                BRANCH,
                "INVITE",
                req("INVITE", BRANCH),
                FlowId(1),
                self.reliable,
            )
            .unwrap();
        self.invite_tx = Some(tx);
    }
}

#[test]
fn invite_completes_over_a_lossy_duplicating_network_for_every_seed() {
    for seed in 0..200 {
        let mut sim = Sim::new(seed, 0.2, 0.1, false, UasPlan::Answer);
        sim.invite();
        sim.run(Duration::from_secs(120));
        assert_eq!(sim.uac_finals, vec![200], "seed {seed}");
        assert_eq!(
            sim.uas_new_invites, 1,
            "seed {seed}: retransmissions absorbed"
        );
        assert_eq!(sim.uac_timeouts, 0, "seed {seed}");
        assert!(
            sim.uas_acks_for_tu >= 1 || sim.uas_gave_up_waiting_for_ack,
            "seed {seed}"
        );
        assert!(
            sim.uac.is_empty() && sim.uas.is_empty(),
            "seed {seed}: all transactions ended"
        );
    }
}

#[test]
fn rejected_invite_is_acked_by_the_transaction_even_when_acks_are_lost() {
    for seed in 0..200 {
        let mut sim = Sim::new(seed, 0.25, 0.1, false, UasPlan::Reject(486));
        sim.invite();
        sim.run(Duration::from_secs(120));
        assert_eq!(sim.uac_finals, vec![486], "seed {seed}");
        assert_eq!(sim.uas_new_invites, 1, "seed {seed}");
        // The UAS got an ACK (maybe after retransmitting 486) or, with every
        // ACK lost, timer H fired; never anything else.
        assert!(sim.uas_ack_timeouts <= 1, "seed {seed}");
        assert!(sim.uac.is_empty() && sim.uas.is_empty(), "seed {seed}");
    }
}

#[test]
fn lost_ack_for_2xx_makes_the_uas_give_up_after_64_t1() {
    let mut sim = Sim::new(7, 0.0, 0.0, false, UasPlan::Answer);
    sim.net.drop_acks = true;
    let start = sim.now;
    sim.invite();
    sim.run(Duration::from_secs(120));
    assert_eq!(sim.uac_finals, vec![200]);
    assert!(
        sim.uas_gave_up_waiting_for_ack,
        "UAS ends the call (BYE) after 64*T1"
    );
    // The UAC re-ACKed every retransmitted 2xx it saw (RFC 6026 Accepted).
    assert!(sim.acks_for_2xx_sent >= 7, "{} ACKs", sim.acks_for_2xx_sent);
    assert!(sim.now - start >= Duration::from_secs(32));
}

#[test]
fn non_invite_times_out_with_timer_f_when_everything_is_lost() {
    let mut sim = Sim::new(1, 1.0, 0.0, false, UasPlan::Answer);
    let start = sim.now;
    sim.uac
        .send_request(
            sim.now,
            "z9hG4bK-bye",
            "BYE",
            req("BYE", "z9hG4bK-bye"),
            FlowId(1),
            false,
        )
        .unwrap();
    sim.run(Duration::from_secs(120));
    assert_eq!(sim.uac_timeouts, 1);
    // E fires at 0.5, 1.5, 3.5, 7.5, then every 4 s until F at 32 s:
    // the first send plus 10 retransmissions.
    assert_eq!(sim.net.sent, 11);
    assert!(sim.now - start >= Duration::from_secs(32));
    assert!(sim.uac.is_empty());
}

#[test]
fn invite_times_out_with_timer_b() {
    let mut sim = Sim::new(2, 1.0, 0.0, false, UasPlan::Answer);
    sim.invite();
    sim.run(Duration::from_secs(120));
    assert_eq!(sim.uac_timeouts, 1);
    // A doubles: 0.5, 1, 2, 4, 8, 16 -> 6 retransmissions before B at 32 s.
    assert_eq!(sim.net.sent, 7);
}

#[test]
fn a_provisional_response_stops_timer_b() {
    // RFC 3261 §17.1.1.2: Timer B bounds the Calling state only; a bridge
    // that sends 100/180 and takes minutes to answer is not timed out.
    let mut t = Transactions::new(TimerConfig::default(), 8);
    let now = Instant::now();
    let id = t
        .send_request(now, "b1", "INVITE", b"x".to_vec(), FlowId(0), true)
        .unwrap();
    assert!(t.txs[&id].timers[Timer::B as usize].is_some());
    assert_eq!(
        t.receive_response(now, "b1", "INVITE", 180),
        ResponseAction::Deliver(id)
    );
    assert!(t.txs[&id].timers[Timer::B as usize].is_none());
    t.handle_timeout(now + Duration::from_secs(120));
    assert!(t.poll_event().is_none(), "no timeout in Proceeding");
    assert_eq!(
        t.receive_response(now, "b1", "INVITE", 200),
        ResponseAction::Deliver(id)
    );
}

#[test]
fn reliable_transport_never_retransmits_and_ends_at_once() {
    for plan in [UasPlan::Answer, UasPlan::Reject(603)] {
        let mut sim = Sim::new(3, 0.0, 0.0, true, plan);
        sim.invite();
        let tx = sim.invite_tx.unwrap();
        let t = &sim.uac.txs[&tx];
        assert!(t.timers[Timer::A as usize].is_none(), "no timer A over TLS");
        assert!(t.timers[Timer::B as usize].is_some());
        sim.run(Duration::from_secs(60));
        let invites = sim.uas_new_invites;
        assert_eq!(invites, 1);
        assert!(sim.uac.is_empty() && sim.uas.is_empty());
    }
    // Non-INVITE over TLS: no timer E; completed means gone (K = 0).
    let mut t = Transactions::new(TimerConfig::default(), 8);
    let now = Instant::now();
    let id = t
        .send_request(now, "b1", "OPTIONS", b"x".to_vec(), FlowId(0), true)
        .unwrap();
    assert!(t.txs[&id].timers[Timer::E as usize].is_none());
    assert_eq!(
        t.receive_response(now, "b1", "OPTIONS", 200),
        ResponseAction::Deliver(id)
    );
    t.handle_timeout(now);
    assert!(t.is_empty());
}

#[test]
fn cancel_racing_200_leaves_the_call_answered() {
    let mut t_uas = Transactions::new(TimerConfig::default(), 8);
    let now = Instant::now();
    let RequestAction::New(inv) = t_uas
        .receive_request(now, BRANCH, SENT_BY, "INVITE", FlowId(0), true)
        .unwrap()
    else {
        panic!("new INVITE");
    };
    t_uas.respond(now, inv, 180, b"180".to_vec()).unwrap();
    t_uas.respond(now, inv, 200, b"200".to_vec()).unwrap();
    // The CANCEL crossed the 200 on the wire.
    let RequestAction::New(cancel) = t_uas
        .receive_request(now, BRANCH, SENT_BY, "CANCEL", FlowId(0), true)
        .unwrap()
    else {
        panic!("CANCEL is its own transaction");
    };
    assert_eq!(
        t_uas.invite_for_cancel(BRANCH, SENT_BY, FlowId(0)),
        Some(inv)
    );
    t_uas
        .respond(now, cancel, 200, b"200 CANCEL".to_vec())
        .unwrap();
    // Too late for 487: the INVITE already has its final answer.
    assert_eq!(
        t_uas.respond(now, inv, 487, b"487".to_vec()),
        Err(TxError::AlreadyFinal)
    );
    assert_eq!(t_uas.state(inv), Some(State::Accepted));

    // The UAC side: 200 to INVITE and 200 to CANCEL both arrive; the INVITE
    // is answered and the TU must ACK it (then BYE, as it wanted out).
    let mut t_uac = Transactions::new(TimerConfig::default(), 8);
    let inv_c = t_uac
        .send_request(now, BRANCH, "INVITE", b"INVITE".to_vec(), FlowId(0), true)
        .unwrap();
    assert_eq!(
        t_uac.receive_response(now, BRANCH, "INVITE", 180),
        ResponseAction::Deliver(inv_c)
    );
    let cancel_c = t_uac
        .send_request(now, BRANCH, "CANCEL", b"CANCEL".to_vec(), FlowId(0), true)
        .unwrap();
    assert_eq!(
        t_uac.receive_response(now, BRANCH, "INVITE", 200),
        ResponseAction::Deliver(inv_c)
    );
    assert_eq!(
        t_uac.receive_response(now, BRANCH, "CANCEL", 200),
        ResponseAction::Deliver(cancel_c)
    );
    assert_eq!(t_uac.state(inv_c), Some(State::Accepted));
}

#[test]
fn duplicate_requests_are_absorbed_and_answered_again() {
    let mut t = Transactions::new(TimerConfig::default(), 8);
    let now = Instant::now();
    let RequestAction::New(id) = t
        .receive_request(now, "b", "h:1", "OPTIONS", FlowId(3), false)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        t.receive_request(now, "b", "h:1", "OPTIONS", FlowId(3), false),
        Ok(RequestAction::Absorbed(id))
    );
    assert!(t.poll_transmit().is_none(), "nothing to resend yet");
    t.respond(now, id, 200, b"200".to_vec()).unwrap();
    assert_eq!(t.poll_transmit().unwrap().bytes, b"200");
    assert_eq!(
        t.receive_request(now, "b", "h:1", "OPTIONS", FlowId(3), false),
        Ok(RequestAction::Absorbed(id))
    );
    let again = t.poll_transmit().unwrap();
    assert_eq!(
        (again.bytes.as_slice(), again.flow),
        (&b"200"[..], FlowId(3))
    );
    // Same branch from another sent-by is a different transaction.
    assert!(matches!(
        t.receive_request(now, "b", "other:1", "OPTIONS", FlowId(4), false),
        Ok(RequestAction::New(_))
    ));
}

#[test]
fn transaction_count_is_bounded() {
    let mut t = Transactions::new(TimerConfig::default(), 3);
    let now = Instant::now();
    for i in 0..3 {
        assert!(t
            .receive_request(now, &format!("b{i}"), "h", "INVITE", FlowId(0), true)
            .is_ok());
    }
    assert_eq!(
        t.receive_request(now, "b9", "h", "INVITE", FlowId(0), true),
        Err(TxError::Full)
    );
    assert_eq!(
        t.send_request(now, "c1", "OPTIONS", Vec::new(), FlowId(0), true),
        Err(TxError::Full)
    );
    // Retransmissions of existing ones are still absorbed when full.
    assert!(matches!(
        t.receive_request(now, "b0", "h", "INVITE", FlowId(0), true),
        Ok(RequestAction::Absorbed(_))
    ));
}

#[test]
fn stray_responses_and_acks_do_not_match() {
    let mut t = Transactions::new(TimerConfig::default(), 8);
    let now = Instant::now();
    assert_eq!(
        t.receive_response(now, "nope", "INVITE", 200),
        ResponseAction::NoMatch
    );
    assert_eq!(
        t.receive_request(now, "nope", "h", "ACK", FlowId(0), true),
        Ok(RequestAction::AckForTu)
    );
    assert!(t.set_ack(TxId(999), Vec::new()).is_err());
}

#[test]
fn a_full_table_makes_room_by_ending_a_lingering_transaction() {
    let mut t = Transactions::new(TimerConfig::default(), 4);
    let now = Instant::now();
    // Four INVITEs answered 200: Accepted, lingering 64*T1 (RFC 6026).
    for i in 0..4 {
        let Ok(RequestAction::New(tx)) =
            t.receive_request(now, &format!("b{i}"), "h", "INVITE", FlowId(0), true)
        else {
            panic!("new transaction");
        };
        t.respond(now, tx, 200, b"SIP/2.0 200 OK\r\n\r\n".to_vec())
            .unwrap();
    }
    while t.poll_event().is_some() {}
    // A fifth call still gets in: one lingering transaction ends early.
    assert!(matches!(
        t.receive_request(now, "b4", "h", "INVITE", FlowId(0), true),
        Ok(RequestAction::New(_))
    ));
    assert!(std::iter::from_fn(|| t.poll_event()).any(|e| matches!(e, TxEvent::Terminated(_))));
    // Live transactions are never ended to make room.
    let mut live = Transactions::new(TimerConfig::default(), 2);
    for b in ["x1", "x2"] {
        live.receive_request(now, b, "h", "INVITE", FlowId(0), true)
            .unwrap();
    }
    assert_eq!(
        live.receive_request(now, "x3", "h", "INVITE", FlowId(0), true),
        Err(TxError::Full)
    );
}

#[test]
fn a_request_with_another_connections_keys_is_not_its_retransmission() {
    // Over TLS there are no retransmissions: the same branch and sent-by
    // on another connection is a new transaction (or a hostile one), never
    // absorbed into the first, and it cannot CANCEL the first's INVITE.
    let mut t = Transactions::new(TimerConfig::default(), 8);
    let now = Instant::now();
    let RequestAction::New(first) = t
        .receive_request(now, BRANCH, SENT_BY, "INVITE", FlowId(1), true)
        .unwrap()
    else {
        panic!("a new transaction")
    };
    let second = t
        .receive_request(now, BRANCH, SENT_BY, "INVITE", FlowId(2), true)
        .unwrap();
    assert!(matches!(second, RequestAction::New(id) if id != first));
    assert_eq!(t.invite_for_cancel(BRANCH, SENT_BY, FlowId(1)), Some(first));
    assert_ne!(t.invite_for_cancel(BRANCH, SENT_BY, FlowId(2)), Some(first));
    assert_eq!(t.invite_for_cancel(BRANCH, SENT_BY, FlowId(3)), None);
    // The same connection again: a retransmission.
    assert!(matches!(
        t.receive_request(now, BRANCH, SENT_BY, "INVITE", FlowId(1), true)
            .unwrap(),
        RequestAction::Absorbed(id) if id == first
    ));
}

/// The deadline heap agrees with the timers themselves: `poll_timeout` is
/// the earliest timer of any transaction, nothing is left due at `now`
/// after `handle_timeout(now)`, and stale entries are bounded.
fn check_deadlines(t: &Transactions, now: Instant) {
    let brute = t.txs.values().filter_map(Tx::next_timeout).min();
    assert_eq!(t.poll_timeout(), brute, "heap top vs the timers");
    assert!(brute.is_none_or(|at| at > now), "a timer left due");
    assert!(
        t.deadlines.len() <= 2 * t.txs.len() + 64,
        "stale entries bounded"
    );
    let lingering: BTreeSet<(Instant, TxId)> = t
        .txs
        .iter()
        .filter(|(_, x)| {
            matches!(
                x.state,
                State::Completed | State::Confirmed | State::Accepted
            )
        })
        .filter_map(|(id, x)| x.next_timeout().map(|at| (at, *id)))
        .collect();
    assert_eq!(t.lingering, lingering, "the lingering set");
}

#[test]
fn the_deadline_heap_matches_the_timers_over_random_operations() {
    let cfg = TimerConfig::default();
    // A small table, so that making room is exercised too.
    let mut t = Transactions::new(cfg, 64);
    let start = Instant::now();
    let mut full = 0usize;
    let mut now = start;
    let mut rng = Rng(0x5eed_71e5);
    let mut servers: Vec<TxId> = Vec::new();
    let mut clients: Vec<(String, &str)> = Vec::new();
    let mut fired = 0usize;
    for i in 0..20_000u32 {
        let reliable = rng.chance(0.5);
        let mut ran_timers = false;
        match rng.next() % 6 {
            0 => {
                let m = if rng.chance(0.5) { "INVITE" } else { "BYE" };
                let b = format!("s{i}");
                if let Ok(RequestAction::New(id)) =
                    t.receive_request(now, &b, "h", m, FlowId(1), reliable)
                {
                    servers.push(id);
                }
            }
            1 if !servers.is_empty() => {
                let id = servers.swap_remove((rng.next() as usize) % servers.len());
                let status = [100, 180, 200, 486][(rng.next() % 4) as usize];
                let _ = t.respond(now, id, status, res("X", "b", status));
                if status < 200 {
                    servers.push(id);
                }
            }
            2 => {
                let m = if rng.chance(0.5) { "INVITE" } else { "OPTIONS" };
                let b = format!("c{i}");
                if t.send_request(now, &b, m, req(m, &b), FlowId(2), reliable)
                    .is_ok()
                {
                    clients.push((b, m));
                }
            }
            3 if !clients.is_empty() => {
                let k = (rng.next() as usize) % clients.len();
                let status = [100, 183, 200, 503][(rng.next() % 4) as usize];
                let (b, m) = clients[k].clone();
                let _ = t.receive_response(now, &b, m, status);
                if status >= 200 {
                    clients.swap_remove(k);
                }
            }
            4 => {
                // An ACK for whatever INVITE server transaction was last.
                let b = format!("s{}", i.saturating_sub((rng.next() % 50) as u32));
                let _ = t.receive_request(now, &b, "h", "ACK", FlowId(1), reliable);
            }
            _ => {
                now += Duration::from_millis(rng.next() % 2_000);
                t.handle_timeout(now);
                fired += 1;
                ran_timers = true;
            }
        }
        while t.poll_transmit().is_some() {}
        while t.poll_event().is_some() {}
        // Zero-length waits (reliable transports) are due at once: only right
        // after `handle_timeout` must nothing be due.
        check_deadlines(&t, if ran_timers { now } else { start });
        full += usize::from(t.len() == 64);
    }
    assert!(
        fired > 1_000 && full > 100,
        "the run exercised timers and a full table"
    );
    // Every transaction ends by its timers once time runs on, except those
    // waiting for their TU (servers not yet answered, INVITE clients that
    // had a provisional response): they have no timer; abandon them.
    for _ in 0..100 {
        now += Duration::from_secs(10);
        t.handle_timeout(now);
        check_deadlines(&t, now);
    }
    let waiting: Vec<TxId> = t.txs.keys().copied().collect();
    for id in waiting {
        assert!(
            matches!(t.state(id), Some(State::Trying | State::Proceeding))
                && t.txs[&id].next_timeout().is_none(),
            "only TU-bound transactions remain: {:?}",
            t.state(id)
        );
        t.abandon(id);
    }
    assert_eq!((t.len(), t.poll_timeout()), (0, None));
}
