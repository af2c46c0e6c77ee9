//! The gateway daemon: the thin tokio shell around the [`B2bua`] core, the
//! phone-side TLS listener, trunk connections and the media relay thread.
//!
//! One task owns the B2BUA and is fed through one bounded channel; reader
//! tasks turn bytes into SIP messages with the stream framer, writer tasks
//! drain bounded per-connection queues. Nothing here makes a decision the
//! core does not make.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::b2bua::{
    B2bua, CallKey, Flow, LocalAddrs, MediaPorts, Output, PhoneIdentity, SystemRandom,
};
use crate::config::{load_registry, Config, ConfigError};
use crate::relay::net::{LocalLeg, NetConfig, RelayHandle};
use crate::relay::{CallId, Event, LegSide, RelayConfig};
use crate::sip::{Event as FrameEvent, Framer, Limits, Message, PONG};
use crate::tls::{load_certs, load_key, phone_server_config, trunk_client_config, TlsError};
use crate::transport::{serve, ListenerLimits, ListenerStats, PhoneConnection};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration or registry is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Binding the listener or starting the relay failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The B2BUA refused the configuration.
    #[error(transparent)]
    B2bua(#[from] crate::b2bua::B2buaError),
}

/// Messages queued per connection before it counts as stuck and is closed.
const WRITE_QUEUE: usize = 256;
/// Inputs queued for the core.
const INPUT_QUEUE: usize = 1024;

enum Input {
    PhoneConnected {
        flow: u64,
        identity: PhoneIdentity,
        writer: mpsc::Sender<Vec<u8>>,
        close: tokio::sync::oneshot::Sender<()>,
    },
    /// A new registry was applied: new grants, tokens no longer admitted.
    Registry {
        grants: crate::config::AliasGrants,
        revoked: Vec<String>,
    },
    Phone(u64, Message),
    PhoneClosed(u64),
    /// A trunk-side connection (the trunk's address or a route hop) is up.
    TrunkConnected(Flow, mpsc::Sender<Vec<u8>>),
    Trunk(usize, Message),
    TrunkClosed(Flow),
    Relay(Event),
}

/// Media ports from the relay thread.
struct RelayPorts(Arc<RelayHandle>);

impl MediaPorts for RelayPorts {
    fn allocate(&mut self, ip: std::net::IpAddr, rtcp_mux: bool) -> Result<LocalLeg, String> {
        self.0.allocate(ip, rtcp_mux).map_err(|e| e.to_string())
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Where phones connect.
    pub phone_addr: SocketAddr,
    /// Listener counters.
    pub listener: Arc<ListenerStats>,
}

/// Starts the gateway of `config_path` on the current tokio runtime and
/// returns once it listens. It runs until the runtime shuts down.
pub async fn start(config_path: &Path) -> Result<Gateway, DaemonError> {
    let config = Arc::new(Config::load(config_path)?);
    let (registry, grants) = load_registry(&config.phone.registry)?;
    let registry = Arc::new(RwLock::new(registry));
    let tls = phone_server_config(
        load_certs(&config.phone.certificate)?,
        load_key(&config.phone.key)?,
        &load_certs(&config.phone.token_ca)?,
        Arc::clone(&registry),
        config.phone.pq,
    )?;
    let relay = Arc::new(
        RelayHandle::spawn(NetConfig {
            relay: RelayConfig {
                inactivity: config.media.inactivity,
                max_calls: config.limits.max_calls as usize,
                ..RelayConfig::default()
            },
            port_min: config.media.port_min,
            port_max: config.media.port_max,
            ..NetConfig::default()
        })
        .map_err(|source| DaemonError::Io {
            what: "starting the media relay".into(),
            source,
        })?,
    );
    let listener = TcpListener::bind(config.phone.listen)
        .await
        .map_err(|source| DaemonError::Io {
            what: format!("listening on {}", config.phone.listen),
            source,
        })?;
    let phone_addr = listener.local_addr().map_err(|source| DaemonError::Io {
        what: "listener address".into(),
        source,
    })?;
    let b2b = B2bua::new(
        Arc::clone(&config),
        grants,
        LocalAddrs {
            phone_sip: phone_addr,
        },
        Box::new(RelayPorts(Arc::clone(&relay))),
        Box::new(SystemRandom),
    )?;
    let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
    let (admitted_tx, admitted_rx) = mpsc::channel(16);
    let stats = Arc::new(ListenerStats::default());
    let limits = if config.limits.loopback_exempt {
        // Demo kits: many phones from one loopback address.
        ListenerLimits {
            max_pending_per_address: 256,
            max_connections_per_address: 4096,
            max_connections: 4096,
            max_pending_handshakes: 512,
            ..ListenerLimits::default()
        }
    } else {
        ListenerLimits::default()
    };
    tokio::spawn(serve(
        listener,
        tls,
        Arc::clone(&registry),
        limits,
        Arc::clone(&stats),
        admitted_tx,
    ));
    tokio::spawn(accept_phones(admitted_rx, input_tx.clone()));
    // Relay events arrive on a std channel: forward them from a thread.
    {
        let relay = Arc::clone(&relay);
        let tx = input_tx.clone();
        std::thread::Builder::new()
            .name("relay-events".into())
            .spawn(move || {
                while let Ok(ev) = relay.events().recv() {
                    if tx.blocking_send(Input::Relay(ev)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|source| DaemonError::Io {
                what: "starting the relay event thread".into(),
                source,
            })?;
    }
    tokio::spawn(watch_registry(
        config.phone.registry.clone(),
        Arc::clone(&registry),
        input_tx.clone(),
    ));
    let mut b2b = b2b;
    b2b.start(std::time::Instant::now());
    tokio::spawn(core(b2b, config, relay, input_rx, input_tx));
    info!(%phone_addr, "dialgate gateway listening for phones (SIP over TLS)");
    Ok(Gateway {
        phone_addr,
        listener: stats,
    })
}

/// How often the registry file is checked for a new version.
pub const REGISTRY_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies a changed registry file within [`REGISTRY_POLL`]: the TLS
/// verifier sees it at the next handshake, and tokens no longer admitted
/// lose their live calls and connections. A file that does not parse is
/// refused with a log line and the last good registry stays in force.
async fn watch_registry(
    path: std::path::PathBuf,
    shared: crate::tls::SharedRegistry,
    input: mpsc::Sender<Input>,
) {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut last = stamp(&path);
    loop {
        tokio::time::sleep(REGISTRY_POLL).await;
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        match load_registry(&path) {
            Ok((registry, grants)) => {
                let before = match shared.read() {
                    Ok(r) => r.active_names(),
                    Err(_) => continue,
                };
                let after = registry.active_names();
                let revoked: Vec<String> = before.difference(&after).cloned().collect();
                if let Ok(mut r) = shared.write() {
                    *r = registry;
                }
                info!(tokens = after.len(), revoked = ?revoked, "token registry applied");
                if input
                    .send(Input::Registry { grants, revoked })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, "new token registry refused; the last good one stays in force")
            }
        }
    }
}

async fn accept_phones(mut admitted: mpsc::Receiver<PhoneConnection>, input: mpsc::Sender<Input>) {
    let mut next_flow: u64 = 1;
    while let Some(conn) = admitted.recv().await {
        let flow = next_flow;
        next_flow += 1;
        let identity = PhoneIdentity {
            token: conn.token.name.clone(),
            key: conn.key,
            peer: conn.peer,
        };
        let (read, write) = tokio::io::split(conn.stream);
        let (wtx, wrx) = mpsc::channel(WRITE_QUEUE);
        let (close_tx, close_rx) = tokio::sync::oneshot::channel();
        if input
            .send(Input::PhoneConnected {
                flow,
                identity,
                writer: wtx.clone(),
                close: close_tx,
            })
            .await
            .is_err()
        {
            return;
        }
        let slot = conn.slot;
        tokio::spawn(writer(write, wrx));
        let input = input.clone();
        tokio::spawn(async move {
            let _slot = slot; // the connection's place in the limits
            let framer = Framer::server(Limits::default());
            tokio::select! {
                () = read_messages(read, framer, &wtx, |m| Input::Phone(flow, m), &input) => {}
                // The core closes the connection (revoked token).
                _ = close_rx => {}
            }
            let _ = input.send(Input::PhoneClosed(flow)).await;
        });
    }
}

async fn writer<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if w.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// Reads SIP messages until the peer closes or breaks the framing.
async fn read_messages<R: AsyncRead + Unpin>(
    mut r: R,
    mut framer: Framer,
    writer: &mpsc::Sender<Vec<u8>>,
    wrap: impl Fn(Message) -> Input,
    input: &mpsc::Sender<Input>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        framer.handle_data(&buf[..n]);
        loop {
            match framer.poll_event() {
                Ok(None) => break,
                Ok(Some(FrameEvent::Message(m))) => {
                    if input.send(wrap(m)).await.is_err() {
                        return;
                    }
                }
                Ok(Some(FrameEvent::Ping)) => {
                    let _ = writer.try_send(PONG.to_vec());
                }
                Ok(Some(FrameEvent::Pong)) => {}
                Ok(Some(FrameEvent::Rejected { error, .. })) => {
                    // RFC 3261 §18.3: a framing error on a stream cannot be
                    // recovered from; close the connection.
                    warn!(%error, "malformed SIP on a TLS connection: closing it");
                    return;
                }
                Err(error) => {
                    warn!(%error, "SIP framing failed: closing the connection");
                    return;
                }
            }
        }
    }
}

struct Trunk {
    writer: Option<mpsc::Sender<Vec<u8>>>,
    queued: Vec<Vec<u8>>,
    connecting: bool,
}

async fn core(
    mut b2b: B2bua,
    config: Arc<Config>,
    relay: Arc<RelayHandle>,
    mut input: mpsc::Receiver<Input>,
    input_tx: mpsc::Sender<Input>,
) {
    let mut phones: HashMap<u64, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut closers: HashMap<u64, tokio::sync::oneshot::Sender<()>> = HashMap::new();
    // Trunk-side connections: each trunk's own address, and route hops.
    let mut trunks: HashMap<Flow, Trunk> = HashMap::new();
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
                identity,
                writer,
                close,
            }) => {
                phones.insert(flow, writer);
                closers.insert(flow, close);
                b2b.phone_connected(flow, identity);
            }
            Some(Input::Registry { grants, revoked }) => {
                b2b.set_grants(grants);
                for token in revoked {
                    b2b.token_revoked(now, &token);
                }
            }
            Some(Input::Phone(flow, m)) => b2b.handle_phone(now, flow, m),
            Some(Input::PhoneClosed(flow)) => {
                phones.remove(&flow);
                closers.remove(&flow);
                b2b.phone_disconnected(flow);
            }
            Some(Input::TrunkConnected(flow, w)) => {
                let Some(t) = trunks.get_mut(&flow) else {
                    continue;
                };
                t.connecting = false;
                for m in t.queued.drain(..) {
                    let _ = w.try_send(m);
                }
                t.writer = Some(w);
            }
            Some(Input::Trunk(i, m)) => b2b.handle_trunk(now, i, m),
            Some(Input::TrunkClosed(flow)) => {
                trunks.remove(&flow);
                if let Flow::Trunk(i) = flow {
                    b2b.trunk_failed(now, i);
                }
            }
            Some(Input::Relay(Event::Inactive { call })) => {
                if let Some(key) = by_relay.get(&call) {
                    b2b.media_inactive(now, *key);
                }
            }
            Some(Input::Relay(_)) => {}
        }
        while let Some(out) = b2b.poll_output() {
            match out {
                Output::Send {
                    flow: Flow::Phone(n),
                    bytes,
                } => {
                    if let Some(w) = phones.get(&n) {
                        if w.try_send(bytes).is_err() {
                            warn!(flow = n, "phone connection stuck or gone: message dropped");
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
                        Flow::Phone(_) => continue,
                    };
                    let t = trunks.entry(flow).or_insert(Trunk {
                        writer: None,
                        queued: Vec::new(),
                        connecting: false,
                    });
                    match &t.writer {
                        Some(w) if !w.is_closed() => {
                            let _ = w.try_send(bytes);
                        }
                        _ => {
                            t.writer = None;
                            if t.queued.len() < WRITE_QUEUE {
                                t.queued.push(bytes);
                            }
                            if !t.connecting {
                                t.connecting = true;
                                let name = b2b.trunk_names()[trunk].clone();
                                tokio::spawn(connect_trunk(
                                    Arc::clone(&config),
                                    name,
                                    trunk,
                                    flow,
                                    target,
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
                Output::StopMedia { call } => {
                    if let Some(id) = media.remove(&call) {
                        by_relay.remove(&id);
                        if let Ok(Some(stats)) = relay.remove_call(id) {
                            info!(
                                phone_in = stats[0].rx_packets,
                                phone_out = stats[0].tx_packets,
                                bridge_in = stats[1].rx_packets,
                                bridge_out = stats[1].tx_packets,
                                dropped = stats[0].dropped() + stats[1].dropped(),
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

/// Connects to a trunk's address, or to `target` (a route hop) with the
/// trunk's TLS trust and server name.
async fn connect_trunk(
    config: Arc<Config>,
    name: String,
    index: usize,
    flow: Flow,
    target: Option<SocketAddr>,
    input: mpsc::Sender<Input>,
) {
    let Some(trunk) = config.trunks.get(&name) else {
        return;
    };
    let result = async {
        let identity = match &trunk.client_identity {
            Some((c, k)) => Some((
                load_certs(c).map_err(|e| e.to_string())?,
                load_key(k).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        let tls =
            trunk_client_config(&trunk.trust, trunk.tls, identity).map_err(|e| e.to_string())?;
        let tcp = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            TcpStream::connect(target.unwrap_or(trunk.connect)),
        )
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let sni = ServerName::try_from(trunk.host.clone()).map_err(|e| e.to_string())?;
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio_rustls::TlsConnector::from(tls).connect(sni, tcp),
        )
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
        Ok::<_, String>(stream)
    }
    .await;
    let stream = match result {
        Ok(s) => s,
        Err(e) => {
            warn!(trunk = %name, error = %e, "trunk connection failed");
            let _ = input.send(Input::TrunkClosed(flow)).await;
            return;
        }
    };
    let (_, conn) = stream.get_ref();
    info!(
        trunk = %name,
        version = ?conn.protocol_version(),
        group = ?conn.negotiated_key_exchange_group().map(|g| g.name()),
        "trunk connected"
    );
    let (read, write) = tokio::io::split(stream);
    let (wtx, wrx) = mpsc::channel(WRITE_QUEUE);
    if input
        .send(Input::TrunkConnected(flow, wtx.clone()))
        .await
        .is_err()
    {
        return;
    }
    tokio::spawn(writer(write, wrx));
    read_messages(
        read,
        Framer::client(Limits::default()),
        &wtx,
        |m| Input::Trunk(index, m),
        &input,
    )
    .await;
    let _ = input.send(Input::TrunkClosed(flow)).await;
}
