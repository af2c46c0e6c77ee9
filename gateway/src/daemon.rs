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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::b2bua::{
    B2bua, CallKey, Flow, LocalAddrs, MediaPorts, Output, PhoneIdentity, SystemRandom,
};
use crate::config::ConfigError;
use crate::files::{load_config, load_registry};
use crate::relay::net::{NetConfig, RelayHandle};
use crate::relay::LocalLeg;
use crate::relay::{CallId, Event, LegSide, RelayConfig};
use crate::sip::{salvage_response, Event as FrameEvent, Framer, Limits, Message, PONG};
use crate::tls::{
    bridge_server_config, identify_bridge, load_certs, load_key, phone_server_config,
    trunk_client_config, KnownBridge, SharedBridges, TlsError,
};
use crate::transport::{serve, ListenerLimits, ListenerStats, PhoneConnection};

mod policy;

pub use policy::PolicyStartError;
use policy::{Gate, PolicyWatch};

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
    /// The policy state is unusable.
    #[error(transparent)]
    Policy(#[from] PolicyStartError),
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
    /// A new registry (or signed policy) was applied: new grants, the
    /// policy's directory, tokens no longer admitted.
    Registry {
        grants: crate::config::AliasGrants,
        directory: Option<HashMap<String, crate::config::DirectoryEntry>>,
        trunks: Option<HashMap<String, crate::config::TrunkConfig>>,
        revoked: Vec<String>,
    },
    /// New calls accepted again, or refused with 503 (policy expired).
    Gate(Gate),
    /// The certificate of a phone connection expired.
    CertificateExpired(u64),
    /// A bridge connected to the bridge-side listener and was recognised.
    BridgeConnected {
        conn: u64,
        trunk: usize,
        writer: mpsc::Sender<Vec<u8>>,
    },
    Bridge(u64, Message),
    BridgeClosed(u64),
    Phone(u64, Message),
    PhoneClosed(u64),
    /// A trunk-side connection (the trunk's address or a route hop) is up.
    /// (flow, connection generation, writer).
    TrunkConnected(Flow, u64, mpsc::Sender<Vec<u8>>),
    Trunk(usize, Message),
    /// (flow, connection generation).
    TrunkClosed(Flow, u64),
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
    let config = Arc::new(load_config(config_path)?);
    // Where admission comes from: signed policy bundles, or (labs) an
    // unsigned registry file.
    let mut watch = None;
    let initial = match (&config.policy, &config.phone.registry) {
        (Some(pc), _) => {
            let (w, applied) = PolicyWatch::open(pc.clone(), config.trunks.clone())?;
            let gate = w.gate();
            watch = Some(w);
            match applied {
                Some(a) => Initial {
                    registry: a.registry,
                    grants: a.grants,
                    directory: Some(a.directory),
                    trunks: Some(a.trunks),
                    gate,
                    require_pq: a.require_post_quantum,
                },
                // No valid policy: nothing is admitted.
                None => Initial {
                    registry: Default::default(),
                    grants: Default::default(),
                    directory: Some(HashMap::new()),
                    trunks: None,
                    gate,
                    require_pq: false,
                },
            }
        }
        (None, Some(path)) => {
            let (registry, grants) = load_registry(path)?;
            Initial {
                registry,
                grants,
                directory: None,
                trunks: None,
                gate: Gate::Open,
                require_pq: false,
            }
        }
        (None, None) => unreachable_config()?,
    };
    let Initial {
        registry,
        grants,
        directory,
        trunks,
        gate,
        require_pq,
    } = initial;
    let require_pq = Arc::new(AtomicBool::new(require_pq));
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
    // The bridge-side listener, for bridges that open their own
    // connection for in-dialog requests.
    let bridge_listener = match &config.bridge_listener {
        Some(bl) => Some((
            TcpListener::bind(bl.listen)
                .await
                .map_err(|source| DaemonError::Io {
                    what: format!("listening for bridges on {}", bl.listen),
                    source,
                })?,
            load_certs(&bl.certificate)?,
            load_key(&bl.key)?,
        )),
        None => None,
    };
    let b2b = B2bua::new(
        Arc::clone(&config),
        grants,
        LocalAddrs {
            phone_sip: match config.phone.advertise_address {
                Some(ip) => SocketAddr::new(ip, phone_addr.port()),
                None => phone_addr,
            },
            bridge_sip: config.bridge_listener.as_ref().map(|b| b.listen),
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
            penalize_loopback: false,
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
    tokio::spawn(accept_phones(
        admitted_rx,
        input_tx.clone(),
        Arc::clone(&require_pq),
    ));
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
    // Registered now, so that a SIGHUP right after start re-reads the
    // policy instead of ending the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(
        |source| DaemonError::Io {
            what: "installing the SIGHUP handler".into(),
            source,
        },
    )?;
    match (watch, &config.phone.registry) {
        (Some(w), _) => {
            tokio::spawn(watch_policy(
                w,
                hangup,
                Arc::clone(&registry),
                require_pq,
                gate,
                input_tx.clone(),
            ));
        }
        (None, Some(path)) => {
            tokio::spawn(watch_registry(
                path.clone(),
                hangup,
                Arc::clone(&registry),
                input_tx.clone(),
            ));
        }
        (None, None) => {}
    }
    let mut b2b = b2b;
    if let Some(d) = directory {
        b2b.set_directory(d);
    }
    if let Some(t) = trunks {
        b2b.set_trunks(std::time::Instant::now(), t);
    }
    if let Gate::Closed(reason) = gate {
        b2b.refuse_new_calls(Some(reason));
    }
    let bridges: SharedBridges = Arc::new(RwLock::new(known_bridges(&b2b)));
    if let Some((listener, chain, key)) = bridge_listener {
        let tls12 = config
            .trunks
            .values()
            .any(|t| t.tls == crate::tls::TrunkTls::Tls12Allowed);
        let tls = bridge_server_config(chain, key, Arc::clone(&bridges), tls12)?;
        info!(address = ?config.bridge_listener.as_ref().map(|b| b.listen), "listening for bridges' own connections");
        tokio::spawn(serve_bridges(
            listener,
            tls,
            Arc::clone(&bridges),
            input_tx.clone(),
        ));
    }
    b2b.start(std::time::Instant::now());
    tokio::spawn(core(b2b, relay, bridges, input_rx, input_tx));
    info!(%phone_addr, "dialgate gateway listening for phones (SIP over TLS)");
    Ok(Gateway {
        phone_addr,
        listener: stats,
    })
}

/// How often the registry file is checked for a new version.
pub const REGISTRY_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How often the policy bundle file is checked for a new version (and the
/// policy in force for expiry). SIGHUP checks at once.
pub const POLICY_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// What admission starts with.
struct Initial {
    registry: crate::tls::Registry,
    grants: crate::config::AliasGrants,
    directory: Option<HashMap<String, crate::config::DirectoryEntry>>,
    trunks: Option<HashMap<String, crate::config::TrunkConfig>>,
    gate: Gate,
    require_pq: bool,
}

/// `Config` guarantees a registry source; this keeps `start` total anyway.
fn unreachable_config<T>() -> Result<T, DaemonError> {
    Err(DaemonError::Config(ConfigError::Invalid {
        field: "policy".into(),
        reason: "no registry source".into(),
    }))
}

/// Tokens admitted before and not after: their calls must end.
fn lost_admission(
    shared: &crate::tls::SharedRegistry,
    after: &crate::tls::Registry,
) -> Vec<String> {
    let before = match shared.read() {
        Ok(r) => r.active_names(),
        Err(_) => return Vec::new(),
    };
    before.difference(&after.active_names()).cloned().collect()
}

/// Applies new signed policy bundles within [`POLICY_POLL`] (or at once on
/// SIGHUP), and opens or closes admission of new calls as the policy in
/// force expires or is renewed.
async fn watch_policy(
    mut watch: PolicyWatch,
    mut hangup: tokio::signal::unix::Signal,
    shared: crate::tls::SharedRegistry,
    require_pq: Arc<AtomicBool>,
    mut gate: Gate,
    input: mpsc::Sender<Input>,
) {
    let mut grace_logged: Option<std::time::Instant> = None;
    loop {
        let forced = tokio::select! {
            () = tokio::time::sleep(POLICY_POLL) => false,
            s = hangup.recv() => s.is_some(),
        };
        if forced {
            info!(bundle = %watch.bundle_path().display(), "SIGHUP: reading the policy bundle");
        }
        if let Some(a) = watch.poll(forced) {
            let revoked = lost_admission(&shared, &a.registry);
            if let Ok(mut r) = shared.write() {
                *r = a.registry;
            }
            require_pq.store(a.require_post_quantum, Ordering::Relaxed);
            if !revoked.is_empty() {
                warn!(version = a.version, revoked = ?revoked, "policy revokes tokens: ending their calls and connections");
            }
            let msg = Input::Registry {
                grants: a.grants,
                directory: Some(a.directory),
                trunks: Some(a.trunks),
                revoked,
            };
            if input.send(msg).await.is_err() {
                return;
            }
        }
        let now_gate = watch.gate();
        if now_gate != gate {
            match now_gate {
                Gate::Open => info!("new calls accepted: a valid policy is in force"),
                Gate::Closed(reason) => {
                    error!(
                        reason,
                        "new calls refused with 503 until a fresh policy bundle arrives"
                    )
                }
            }
            gate = now_gate;
            if input.send(Input::Gate(gate)).await.is_err() {
                return;
            }
        }
        if let Some(refuse_from) = watch.in_grace() {
            if grace_logged.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(600)) {
                warn!(refuse_from, "policy expired, in its grace period: new calls will be refused from then unless a fresh bundle arrives");
                grace_logged = Some(std::time::Instant::now());
            }
        }
    }
}

/// Applies a changed registry file within [`REGISTRY_POLL`]: the TLS
/// verifier sees it at the next handshake, and tokens no longer admitted
/// lose their live calls and connections. A file that does not parse is
/// refused with a log line and the last good registry stays in force.
async fn watch_registry(
    path: std::path::PathBuf,
    mut hangup: tokio::signal::unix::Signal,
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
        let forced = tokio::select! {
            () = tokio::time::sleep(REGISTRY_POLL) => false,
            s = hangup.recv() => s.is_some(),
        };
        let now = stamp(&path);
        if now == last && !forced {
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
                    .send(Input::Registry {
                        grants,
                        directory: None,
                        trunks: None,
                        revoked,
                    })
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

async fn accept_phones(
    mut admitted: mpsc::Receiver<PhoneConnection>,
    input: mpsc::Sender<Input>,
    require_pq: Arc<AtomicBool>,
) {
    let mut next_flow: u64 = 1;
    while let Some(conn) = admitted.recv().await {
        if require_pq.load(Ordering::Relaxed)
            && conn.group != Some(rustls::NamedGroup::X25519MLKEM768)
        {
            // The signed policy demands the hybrid key exchange.
            warn!(token = %conn.token.name, key = %conn.key, peer = %conn.peer, group = ?conn.group, "connection refused: the policy requires X25519MLKEM768");
            continue;
        }
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
        let not_after = conn.not_after;
        tokio::spawn(writer(write, wrx));
        let input = input.clone();
        tokio::spawn(async move {
            let _slot = slot; // the connection's place in the limits
            let framer = Framer::server(Limits::default());
            tokio::select! {
                () = read_messages(read, framer, &wtx, |m| Input::Phone(flow, m), &input) => {}
                // The core closes the connection (revoked token).
                _ = close_rx => {}
                // Never completes: it tells the core, then waits with the rest.
                () = certificate_expiry(flow, not_after, &input) => {}
            }
            let _ = input.send(Input::PhoneClosed(flow)).await;
        });
    }
}

/// Tells the core when a phone connection's certificate expires, then
/// never completes (it lives as long as the connection's reader).
async fn certificate_expiry(flow: u64, not_after: Option<u64>, input: &mpsc::Sender<Input>) {
    if let Some(not_after) = not_after {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // RFC 5280: the certificate is valid through notAfter, inclusive.
        let left = not_after.saturating_add(1).saturating_sub(now);
        tokio::time::sleep(std::time::Duration::from_secs(left)).await;
        let _ = input.send(Input::CertificateExpired(flow)).await;
    }
    std::future::pending::<()>().await
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
                Ok(Some(FrameEvent::Rejected { error, bytes })) => {
                    // Delimited but unparseable: answer a request with 400
                    // (or 505/513/416) where the transaction can be named,
                    // and go on; the stream is still in step.
                    let answered = match salvage_response(&bytes, &error) {
                        Some(r) => writer.try_send(r).is_ok(),
                        None => false,
                    };
                    warn!(%error, answered, "malformed SIP message on a TLS connection");
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
    /// Which connection attempt this entry is (a late message from a
    /// closed connection must not touch its successor).
    generation: u64,
    /// Dropping it closes the connection (its reader stops).
    close: Option<tokio::sync::oneshot::Sender<()>>,
    writer: Option<mpsc::Sender<Vec<u8>>>,
    queued: Vec<Vec<u8>>,
    connecting: bool,
}

async fn core(
    mut b2b: B2bua,
    relay: Arc<RelayHandle>,
    bridges: SharedBridges,
    mut input: mpsc::Receiver<Input>,
    input_tx: mpsc::Sender<Input>,
) {
    let mut phones: HashMap<u64, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut closers: HashMap<u64, tokio::sync::oneshot::Sender<()>> = HashMap::new();
    // Trunk-side connections: each trunk's own address, and route hops.
    let mut trunks: HashMap<Flow, Trunk> = HashMap::new();
    // Connections bridges opened to the bridge-side listener.
    let mut inbound: HashMap<u64, mpsc::Sender<Vec<u8>>> = HashMap::new();
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
                identity,
                writer,
                close,
            }) => {
                phones.insert(flow, writer);
                closers.insert(flow, close);
                b2b.phone_connected(flow, identity);
            }
            Some(Input::Registry {
                grants,
                directory,
                trunks: new_trunks,
                revoked,
            }) => {
                b2b.set_grants(grants);
                if let Some(d) = directory {
                    b2b.set_directory(d);
                }
                if let Some(t) = new_trunks {
                    b2b.set_trunks(now, t);
                    if let Ok(mut b) = bridges.write() {
                        *b = known_bridges(&b2b);
                    }
                }
                for token in revoked {
                    b2b.token_revoked(now, &token);
                }
            }
            Some(Input::Gate(g)) => b2b.refuse_new_calls(match g {
                Gate::Open => None,
                Gate::Closed(reason) => Some(reason),
            }),
            Some(Input::CertificateExpired(flow)) => {
                if phones.contains_key(&flow) {
                    info!(target: "audit", flow, "token certificate expired: new calls on this connection refused");
                    b2b.phone_certificate_expired(flow);
                }
            }
            Some(Input::Phone(flow, m)) => b2b.handle_phone(now, flow, m),
            Some(Input::BridgeConnected {
                conn,
                trunk,
                writer,
            }) => {
                inbound.insert(conn, writer);
                b2b.bridge_connected(conn, trunk);
            }
            Some(Input::Bridge(conn, m)) => b2b.handle_bridge(now, conn, m),
            Some(Input::BridgeClosed(conn)) => {
                inbound.remove(&conn);
                b2b.bridge_disconnected(conn);
            }
            Some(Input::PhoneClosed(flow)) => {
                phones.remove(&flow);
                closers.remove(&flow);
                b2b.phone_disconnected(flow);
            }
            Some(Input::TrunkConnected(flow, generation, w)) => {
                let Some(t) = trunks.get_mut(&flow).filter(|t| t.generation == generation) else {
                    continue;
                };
                t.connecting = false;
                for m in t.queued.drain(..) {
                    let _ = w.try_send(m);
                }
                t.writer = Some(w);
            }
            Some(Input::Trunk(i, m)) => b2b.handle_trunk(now, i, m),
            Some(Input::TrunkClosed(flow, generation)) => {
                if trunks.get(&flow).is_none_or(|t| t.generation != generation) {
                    continue; // a connection already replaced
                }
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
                    flow: Flow::Inbound(n),
                    bytes,
                } => {
                    if let Some(w) = inbound.get(&n) {
                        if w.try_send(bytes).is_err() {
                            warn!(conn = n, "bridge connection stuck or gone: message dropped");
                        }
                    }
                }
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
                            let _ = w.try_send(bytes);
                        }
                        _ => {
                            t.writer = None;
                            if t.queued.len() < WRITE_QUEUE {
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

/// Which trunk connection a task serves.
#[derive(Clone, Copy)]
struct TrunkFlow {
    index: usize,
    flow: Flow,
    generation: u64,
}

/// Connects to a trunk's address, or to `target` (a route hop) with the
/// trunk's TLS trust and server name, and reads it until it closes or
/// `close` fires.
async fn connect_trunk(
    trunk: crate::config::TrunkConfig,
    tf: TrunkFlow,
    target: Option<SocketAddr>,
    close: tokio::sync::oneshot::Receiver<()>,
    input: mpsc::Sender<Input>,
) {
    let TrunkFlow {
        index,
        flow,
        generation,
    } = tf;
    let name = trunk.name.clone();
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
            let _ = input.send(Input::TrunkClosed(flow, generation)).await;
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
        .send(Input::TrunkConnected(flow, generation, wtx.clone()))
        .await
        .is_err()
    {
        return;
    }
    tokio::spawn(writer(write, wrx));
    tokio::select! {
        () = read_messages(
            read,
            Framer::client(Limits::default()),
            &wtx,
            |m| Input::Trunk(index, m),
            &input,
        ) => {}
        // The core dropped this connection (the trunk's settings changed).
        _ = close => {}
    }
    let _ = input.send(Input::TrunkClosed(flow, generation)).await;
}

/// The bridges the bridge-side listener recognises: each trunk with its
/// current settings.
fn known_bridges(b2b: &B2bua) -> Vec<KnownBridge> {
    (0..b2b.trunk_names().len())
        .filter_map(|i| {
            let t = b2b.trunk_config(i)?;
            match KnownBridge::new(i, &t.host, &t.trust) {
                Ok(b) => Some(b),
                Err(e) => {
                    warn!(trunk = %t.name, error = %e, "trunk cannot be recognised on the bridge-side listener");
                    None
                }
            }
        })
        .collect()
}

/// Connections bridges may hold open to the bridge-side listener at once.
const MAX_BRIDGE_CONNECTIONS: usize = 64;

/// Accepts bridges' own connections: TLS with a certificate their trunk
/// trusts (checked in the handshake), then SIP both ways on it.
async fn serve_bridges(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    bridges: SharedBridges,
    input: mpsc::Sender<Input>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut next_conn: u64 = 0;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "bridge accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_BRIDGE_CONNECTIONS {
            warn!(%peer, "bridge connection refused: too many open");
            continue;
        }
        next_conn += 1;
        let conn = next_conn;
        let (acceptor, bridges, input, open) = (
            acceptor.clone(),
            Arc::clone(&bridges),
            input.clone(),
            Arc::clone(&open),
        );
        open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            bridge_connection(tcp, peer, conn, acceptor, bridges, &input).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn bridge_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    conn: u64,
    acceptor: tokio_rustls::TlsAcceptor,
    bridges: SharedBridges,
    input: &mpsc::Sender<Input>,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(std::time::Duration::from_secs(5), acceptor.accept(tcp))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            info!(target: "audit", %peer, decision = "refused", reason = %e, "bridge connection refused at TLS");
            return;
        }
        Err(_) => {
            info!(target: "audit", %peer, decision = "refused", reason = "handshake timed out", "bridge connection refused at TLS");
            return;
        }
    };
    let trunk = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| identify_bridge(&bridges, c, rustls::pki_types::UnixTime::now()));
    let Some(trunk) = trunk else {
        return; // trunk settings changed during the handshake
    };
    info!(target: "audit", %peer, decision = "admitted", trunk, "bridge connected to the bridge-side listener");
    let (read, write) = tokio::io::split(stream);
    let (wtx, wrx) = mpsc::channel(WRITE_QUEUE);
    let msg = Input::BridgeConnected {
        conn,
        trunk,
        writer: wtx.clone(),
    };
    if input.send(msg).await.is_err() {
        return;
    }
    tokio::spawn(writer(write, wrx));
    read_messages(
        read,
        Framer::server(Limits::default()),
        &wtx,
        |m| Input::Bridge(conn, m),
        input,
    )
    .await;
    let _ = input.send(Input::BridgeClosed(conn)).await;
}
