//! The core task: the one owner of the [`B2bua`], fed by one channel; it
//! carries out the B2BUA's outputs on connections and the relay.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::outbox::{Outbox, Stuck, MAX_QUEUED_MESSAGES};
use super::policy::Gate;
use super::trunks::{connect_trunk, known_bridges, TrunkFlow};
use super::Input;
use crate::b2bua::{B2bua, CallKey, Flow, Input as In, Output};
use crate::relay::net::RelayHandle;
use crate::relay::{CallId, Event, LegSide};
use crate::tls::SharedBridges;

/// One trunk-side connection: the trunk's own address or a route hop.
struct Trunk {
    /// Which connection attempt this entry is (a late message from a
    /// closed connection must not touch its successor).
    generation: u64,
    /// Dropping it closes the connection (its reader stops).
    close: Option<tokio::sync::oneshot::Sender<()>>,
    writer: Option<Outbox>,
    queued: Vec<Vec<u8>>,
    connecting: bool,
}

pub(super) async fn core(
    mut b2b: B2bua,
    relay: Arc<RelayHandle>,
    bridges: SharedBridges,
    dns: Option<crate::config::DnsConfig>,
    mut input: mpsc::Receiver<Input>,
    input_tx: mpsc::Sender<Input>,
) {
    let mut phones: HashMap<u64, Outbox> = HashMap::new();
    let mut closers: HashMap<u64, tokio::sync::oneshot::Sender<()>> = HashMap::new();
    // Trunk-side connections: each trunk's own address, and route hops.
    let mut trunks: HashMap<Flow, Trunk> = HashMap::new();
    // Connections bridges opened to the bridge-side listener.
    let mut inbound: HashMap<u64, Outbox> = HashMap::new();
    let mut next_generation: u64 = 0;
    let mut media: HashMap<CallKey, CallId> = HashMap::new();
    let mut by_relay: HashMap<CallId, CallKey> = HashMap::new();
    loop {
        let deadline = b2b.poll_timeout();
        let next = tokio::select! {
            i = input.recv() => match i { Some(i) => Some(i), None => return },
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending::<()>().await,
                }
            } => None,
        };
        let now = std::time::Instant::now();
        match next {
            None => b2b.handle_timeout(now),
            Some(Input::PhoneConnected {
                flow,
                admitted,
                writer,
                close,
            }) => {
                phones.insert(flow, writer);
                closers.insert(flow, close);
                b2b.handle_input(now, In::PhoneConnected { flow, admitted });
            }
            Some(Input::Registry {
                registry,
                grants,
                directory,
                trunks: new_trunks,
            }) => {
                b2b.handle_input(now, In::Grants(grants));
                if let Some(d) = directory {
                    b2b.handle_input(now, In::Directory(d));
                }
                if let Some(t) = new_trunks {
                    b2b.handle_input(now, In::Trunks(t));
                    if let Ok(mut b) = bridges.write() {
                        *b = known_bridges(&b2b);
                    }
                }
                // Last: calls and connections of keys no longer admitted
                // end and close, by key.
                b2b.handle_input(now, In::Registry(registry));
            }
            Some(Input::Gate(g)) => {
                let reason = match g {
                    Gate::Open => None,
                    Gate::Closed(reason) => Some(reason),
                };
                b2b.handle_input(now, In::Gate(reason));
            }
            Some(Input::Network(refusal)) => b2b.handle_input(now, In::Network(refusal)),
            Some(Input::PublicAddress(ip)) => b2b.handle_input(now, In::PublicAddress(ip)),
            Some(Input::CertificateExpired(flow)) => {
                if phones.contains_key(&flow) {
                    info!(target: "audit", flow, "token certificate expired: new calls on this connection refused");
                    b2b.handle_input(now, In::PhoneCertificateExpired { flow });
                }
            }
            Some(Input::Phone(flow, msg)) => b2b.handle_input(now, In::Phone { flow, msg }),
            Some(Input::PhoneAlive(flow)) => b2b.handle_input(now, In::PhoneAlive { flow }),
            Some(Input::BridgeConnected {
                conn,
                trunk,
                writer,
            }) => {
                inbound.insert(conn, writer);
                b2b.handle_input(now, In::BridgeConnected { conn, trunk });
            }
            Some(Input::Bridge(conn, msg)) => b2b.handle_input(now, In::Bridge { conn, msg }),
            Some(Input::BridgeClosed(conn)) => {
                inbound.remove(&conn);
                b2b.handle_input(now, In::BridgeClosed { conn });
            }
            Some(Input::PhoneClosed(flow)) => {
                phones.remove(&flow);
                closers.remove(&flow);
                b2b.handle_input(now, In::PhoneClosed { flow });
            }
            Some(Input::TrunkConnected(flow, generation, w, local)) => {
                let Some(t) = trunks.get_mut(&flow).filter(|t| t.generation == generation) else {
                    continue;
                };
                t.connecting = false;
                if let Flow::Trunk(trunk) = flow {
                    // Before the queued messages: an INVITE waiting for
                    // the connection was built already, later ones use it.
                    b2b.handle_input(now, In::TrunkLocal { trunk, local });
                }
                for m in t.queued.drain(..) {
                    let _ = w.send(m);
                }
                t.writer = Some(w);
            }
            Some(Input::Trunk(trunk, msg)) => b2b.handle_input(now, In::Trunk { trunk, msg }),
            Some(Input::TrunkClosed(flow, generation)) => {
                if trunks.get(&flow).is_none_or(|t| t.generation != generation) {
                    continue; // a connection already replaced
                }
                trunks.remove(&flow);
                if let Flow::Trunk(trunk) = flow {
                    b2b.handle_input(now, In::TrunkFailed { trunk });
                }
            }
            Some(Input::Relay(Event::Inactive { call })) => {
                if let Some(&call) = by_relay.get(&call) {
                    b2b.handle_input(now, In::MediaInactive { call });
                }
            }
            Some(Input::Relay(_)) => {}
            Some(Input::DropCalls) => b2b.handle_input(now, In::DropCalls),
        }
        while let Some(out) = b2b.poll_output() {
            match out {
                Output::Send {
                    flow: Flow::Inbound(n),
                    bytes,
                } => {
                    if let Some(w) = inbound.get(&n) {
                        if let Err(e) = w.send(bytes) {
                            warn!(conn = n, state = ?e, "bridge connection stuck or gone: message dropped");
                        }
                    }
                }
                Output::Send {
                    flow: Flow::Phone(n),
                    bytes,
                } => {
                    if let Some(w) = phones.get(&n) {
                        if w.send(bytes) == Err(Stuck::Full) {
                            // The phone stopped reading: close it rather
                            // than hold its bytes (its reader then tells
                            // the B2BUA it closed).
                            warn!(target: "audit", decision = "closed", flow = n, reason = "the phone stopped reading (write queue full)", "phone connection closed");
                            phones.remove(&n);
                            if let Some(close) = closers.remove(&n) {
                                let _ = close.send(());
                            }
                        }
                    }
                }
                Output::Send { flow, bytes } => {
                    // A trunk or a route hop: connect on first use.
                    let (trunk, target) = match flow {
                        Flow::Trunk(i) => (i, None),
                        Flow::Route(r) => match b2b.route_target(r) {
                            Some((i, addr)) => (i, Some(addr)),
                            None => continue,
                        },
                        Flow::Phone(_) | Flow::Inbound(_) => continue,
                    };
                    let t = trunks.entry(flow).or_insert(Trunk {
                        generation: 0,
                        close: None,
                        writer: None,
                        queued: Vec::new(),
                        connecting: false,
                    });
                    match &t.writer {
                        Some(w) if !w.is_closed() => {
                            if w.send(bytes) == Err(Stuck::Full) {
                                // The bridge stopped reading: drop the
                                // connection (its reader ends; the trunk
                                // reconnects on the next message).
                                warn!(target: "audit", decision = "closed", trunk = trunk.0, reason = "the bridge stopped reading (write queue full)", "trunk connection closed");
                                trunks.remove(&flow);
                            }
                        }
                        _ => {
                            t.writer = None;
                            if t.queued.len() < MAX_QUEUED_MESSAGES {
                                t.queued.push(bytes);
                            }
                            if !t.connecting {
                                let Some(settings) = b2b.trunk_config(trunk).cloned() else {
                                    continue;
                                };
                                t.connecting = true;
                                next_generation += 1;
                                t.generation = next_generation;
                                let (close_tx, close_rx) = tokio::sync::oneshot::channel();
                                t.close = Some(close_tx);
                                tokio::spawn(connect_trunk(
                                    settings,
                                    TrunkFlow {
                                        index: trunk,
                                        flow,
                                        generation: next_generation,
                                    },
                                    target,
                                    dns.clone(),
                                    close_rx,
                                    input_tx.clone(),
                                ));
                            }
                        }
                    }
                }
                Output::StartMedia(m) => {
                    let m = *m;
                    match relay.add_call(m.phone, m.bridge) {
                        Ok(id) => {
                            media.insert(m.call, id);
                            by_relay.insert(id, m.call);
                            if !m.tone.is_empty() {
                                let _ = relay.play(id, LegSide::A, m.tone, true);
                            }
                            if !m.pin.is_empty() {
                                let _ = relay.play(id, LegSide::B, m.pin, false);
                            }
                        }
                        Err(e) => warn!(error = %e, "relay refused a call"),
                    }
                }
                Output::RekeyMedia {
                    call,
                    phone_leg,
                    inbound,
                    outbound,
                } => {
                    if let Some(id) = media.get(&call) {
                        let side = if phone_leg { LegSide::A } else { LegSide::B };
                        if let Err(e) = relay.rekey(*id, side, inbound, outbound) {
                            warn!(error = %e, "relay refused to re-key a leg");
                        }
                    }
                }
                Output::Play {
                    call,
                    phone_leg,
                    frames,
                    mute,
                } => {
                    if let Some(id) = media.get(&call) {
                        let side = if phone_leg { LegSide::A } else { LegSide::B };
                        let _ = relay.play(*id, side, frames, mute);
                    }
                }
                Output::StopMedia { call } => {
                    if let Some(id) = media.remove(&call) {
                        by_relay.remove(&id);
                        if let Ok(Some(stats)) = relay.remove_call(id) {
                            info!(
                                target: "audit",
                                decision = "media",
                                call = call.number(),
                                phone_in = stats[0].rx_packets,
                                phone_out = stats[0].tx_packets,
                                bridge_in = stats[1].rx_packets,
                                bridge_out = stats[1].tx_packets,
                                dropped = stats[0].dropped() + stats[1].dropped(),
                                phone_auth_failed = stats[0].auth_failed,
                                bridge_auth_failed = stats[1].auth_failed,
                                phone_replayed = stats[0].replayed,
                                bridge_replayed = stats[1].replayed,
                                "media stopped, keys zeroized"
                            );
                        }
                    }
                }
                Output::ReleaseMedia { legs } => {
                    for leg in legs {
                        let _ = relay.release(leg);
                    }
                }
                Output::CloseTrunk { trunk } => {
                    // Dropping an entry drops its writer and its close
                    // signal: queued messages (the BYEs) are flushed, then
                    // the connection closes.
                    trunks.retain(|flow, _| match flow {
                        Flow::Trunk(i) => *i != trunk,
                        Flow::Route(r) => b2b.route_target(*r).is_none_or(|(i, _)| i != trunk),
                        Flow::Phone(_) | Flow::Inbound(_) => true,
                    });
                }
                Output::Disconnect { flow } => {
                    // Dropping the writer flushes what is queued (the BYE)
                    // and closes; the reader stops on its signal.
                    phones.remove(&flow);
                    if let Some(close) = closers.remove(&flow) {
                        let _ = close.send(());
                    }
                }
            }
        }
    }
}
