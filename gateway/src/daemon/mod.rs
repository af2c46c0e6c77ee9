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
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::info;

use crate::admission::Admitted;
use crate::b2bua::{self, B2bua, Flow, LocalAddrs, MediaPorts, SystemRandom, TrunkId};
use crate::config::ConfigError;
use crate::files::{load_config, load_registry};
use crate::relay::net::{NetConfig, RelayHandle};
use crate::relay::LocalLeg;
use crate::relay::{Event, RelayConfig};
use crate::sip::Message;
use crate::tls::{
    bridge_server_config, load_certs, load_key, phone_server_config, SharedBridges, TlsError,
};
use crate::transport::{serve, ListenerLimits, ListenerStats};
use outbox::Outbox;

pub mod commands;
mod core;
mod outbox;
mod phones;
mod policy;
pub mod reports;
pub mod selftest;
mod trunks;
mod watch;

pub use commands::Halt;
pub use policy::PolicyStartError;
use policy::{Gate, PolicyWatch};
pub use watch::{POLICY_POLL, REGISTRY_POLL};

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
    B2bua(#[from] b2bua::B2buaError),
    /// The policy state is unusable.
    #[error(transparent)]
    Policy(#[from] PolicyStartError),
    /// The audit trail cannot be kept.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The time floor cannot be read.
    #[error(transparent)]
    Clock(#[from] crate::clock::ClockError),
}

/// Inputs queued for the core.
const INPUT_QUEUE: usize = 1024;

/// What the core task is told by the other tasks.
enum Input {
    PhoneConnected {
        flow: u64,
        admitted: Admitted,
        writer: Outbox,
        close: tokio::sync::oneshot::Sender<()>,
    },
    /// A new registry (or signed policy) was applied: the registry in
    /// force, new grants, the policy's directory and trunks.
    Registry {
        registry: crate::tls::Registry,
        grants: crate::config::AliasGrants,
        directory: Option<HashMap<String, crate::config::DirectoryEntry>>,
        trunks: Option<HashMap<String, crate::config::TrunkConfig>>,
    },
    /// New calls accepted again, or refused with 503 (policy expired).
    Gate(Gate),
    /// The certificate of a phone connection expired.
    CertificateExpired(u64),
    /// A bridge connected to the bridge-side listener and was recognised.
    BridgeConnected {
        conn: u64,
        trunk: TrunkId,
        writer: Outbox,
    },
    Bridge(u64, Message),
    BridgeClosed(u64),
    Phone(u64, Message),
    /// A phone's CRLF keep-alive ping (it is not idle).
    PhoneAlive(u64),
    PhoneClosed(u64),
    /// A trunk-side connection (the trunk's address or a route hop) is up.
    /// (flow, connection generation, writer).
    /// A trunk (or route hop) connection is up: its flow, generation,
    /// writer and local address.
    TrunkConnected(Flow, u64, Outbox, std::net::IpAddr),
    Trunk(TrunkId, Message),
    /// (flow, connection generation).
    TrunkClosed(Flow, u64),
    Relay(Event),
    /// HQ's signed command: every call ends.
    DropCalls,
    /// The network check's verdict: new calls refused with this, or
    /// admitted (`None`).
    Network(Option<crate::b2bua::Refusal>),
    /// The uplink's public address learnt by the network check.
    PublicAddress(Option<std::net::IpAddr>),
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
    /// HQ's commands that end the process (wipe, reboot): the caller
    /// drains the audit trail, then acts ([`Halt`]).
    pub halt: tokio::sync::mpsc::Receiver<Halt>,
}

/// Starts the gateway of `config_path` on the current tokio runtime and
/// returns once it listens. It runs until the runtime shuts down.
pub async fn start(config_path: &Path) -> Result<Gateway, DaemonError> {
    let config = Arc::new(load_config(config_path)?);
    // The trail first: the policy's own decisions are its first records.
    match &config.audit {
        Some(a) => crate::audit::start(a)?,
        None => tracing::warn!("no [audit] in the configuration: audit events go to the console only (a fielded kit always has one; docs/audit.md)"),
    }
    // The time floor before anything judges an expiry.
    crate::clock::install(&config.time)?;
    crate::clock::watch();
    // Where admission comes from: signed policy bundles, or (labs) an
    // unsigned registry file.
    let mut watch = None;
    let initial = match (&config.policy, &config.phone.registry) {
        (Some(pc), _) => {
            let (w, applied) = PolicyWatch::open(pc.clone(), config.trunks.clone())?;
            let gate = w.gate();
            watch = Some(w);
            match applied {
                Some(mut a) => Initial {
                    registry: {
                        a.registry.set_require_post_quantum(a.require_post_quantum);
                        a.registry
                    },
                    grants: a.grants,
                    directory: Some(a.directory),
                    trunks: Some(a.trunks),
                    gate,
                },
                // No valid policy: nothing is admitted.
                None => Initial {
                    registry: Default::default(),
                    grants: Default::default(),
                    directory: Some(HashMap::new()),
                    trunks: None,
                    gate,
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
    } = initial;
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
            connect_latched: config.media.connect_latched,
            busy_poll: config.media.busy_poll,
            ..NetConfig::default()
        })
        .map_err(|source| DaemonError::Io {
            what: "starting the media relay".into(),
            source,
        })?,
    );
    // SIGUSR1 is the uplink hook (PID 1's DHCP client): handled from now
    // on, before the listener exists, so that a change PID 1 reports once
    // it sees the gateway listening never ends the process (tokio keeps a
    // signal's handler installed for the life of the process).
    let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1());
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
            max_connections_per_token: 4096,
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
    tokio::spawn(phones::accept_phones(admitted_rx, input_tx.clone()));
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
    // The gateway's word to PID 1's firmware agent (`crate::health`).
    if let Some(p) = &config.policy {
        let management = if config.management.is_some() {
            crate::health::Management::Waiting
        } else {
            crate::health::Management::Unconfigured
        };
        crate::health::init(crate::health::path_beside(&p.bundle), management);
    }
    // The repository at home writes new bundles where the watcher below
    // reads them; a kit that cannot poll keeps serving under its policy.
    let (halt_tx, halt) = tokio::sync::mpsc::channel(1);
    if let (Some(m), Some(p)) = (&config.management, &config.policy) {
        let (commands_tx, commands_rx) = tokio::sync::mpsc::channel(4);
        match crate::manage::start(m, p, commands_tx) {
            Ok(()) => {
                tokio::spawn(commands::execute(
                    commands_rx,
                    input_tx.clone(),
                    halt_tx,
                    commands::wipe_list(&config, config_path),
                ));
            }
            Err(e) => {
                tracing::error!(target: "audit", decision = "repository", reason = "not-started", error = %e, "the kit's repository is not polled: policies arrive only as files");
            }
        }
    }
    // The kit's status goes home too; a kit that cannot push serves on.
    if let Some(s) = &config.status {
        if let Err(e) = crate::status::start(s) {
            tracing::error!(target: "audit", decision = "status", reason = "not-started", error = %e, "the kit's status is not pushed");
        }
    }
    // The network check before calls (`[network]`): new calls wait for
    // its first verdict; a check that cannot start keeps them refused.
    if let (Some(n), Some(m)) = (&config.network, &config.management) {
        start_netcheck(n, m, input_tx.clone());
    } else if let Ok(mut uplink) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
    {
        // The uplink hook (SIGUSR1) must not end a kit without a check.
        tokio::spawn(async move {
            while uplink.recv().await.is_some() {
                info!("uplink changed (SIGUSR1): no [network] check configured");
            }
        });
    }
    // PID 1's firmware reports become audit records (`reports`).
    if let Some(p) = &config.policy {
        tokio::spawn(reports::watch(p.bundle.with_file_name("firmware.events")));
    }
    match (watch, &config.phone.registry) {
        (Some(w), _) => {
            tokio::spawn(watch::watch_policy(
                w,
                hangup,
                Arc::clone(&registry),
                gate,
                input_tx.clone(),
            ));
        }
        (None, Some(path)) => {
            tokio::spawn(watch::watch_registry(
                path.clone(),
                hangup,
                Arc::clone(&registry),
                input_tx.clone(),
            ));
        }
        (None, None) => {}
    }
    let mut b2b = b2b;
    let now = Instant::now();
    if let Ok(r) = registry.read() {
        b2b.handle_input(now, b2bua::Input::Registry(r.clone()));
    }
    if let Some(d) = directory {
        b2b.handle_input(now, b2bua::Input::Directory(d));
    }
    if let Some(t) = trunks {
        b2b.handle_input(now, b2bua::Input::Trunks(t));
    }
    if let Gate::Closed(reason) = gate {
        b2b.handle_input(now, b2bua::Input::Gate(Some(reason)));
    }
    if config.network.is_some() {
        let checking = dialgate_proto::netcheck::Verdict::Checking.refusal();
        b2b.handle_input(now, b2bua::Input::Network(checking));
    }
    let bridges: SharedBridges = Arc::new(RwLock::new(trunks::known_bridges(&b2b)));
    if let Some((listener, chain, key)) = bridge_listener {
        let tls12 = config
            .trunks
            .values()
            .any(|t| t.tls == crate::tls::TrunkTls::Tls12Allowed);
        let tls = bridge_server_config(chain, key, Arc::clone(&bridges), tls12)?;
        info!(address = ?config.bridge_listener.as_ref().map(|b| b.listen), "listening for bridges' own connections");
        tokio::spawn(trunks::serve_bridges(
            listener,
            tls,
            Arc::clone(&bridges),
            input_tx.clone(),
        ));
    }
    b2b.start(Instant::now());
    start_self_test(&config, Arc::clone(&relay));
    let dns = config.dns.clone();
    tokio::spawn(core::core(b2b, relay, bridges, dns, input_rx, input_tx));
    info!(%phone_addr, "dialgate gateway listening for phones (SIP over TLS)");
    Ok(Gateway {
        phone_addr,
        listener: stats,
        halt,
    })
}

/// Starts the network check; its verdicts go to the core task.
fn start_netcheck(
    n: &crate::config::NetworkConfig,
    m: &crate::config::ManagementConfig,
    input_tx: mpsc::Sender<Input>,
) {
    let (tx, mut rx) = mpsc::channel(4);
    match crate::netcheck::start(n, m, tx) {
        Ok(()) => {
            tokio::spawn(async move {
                while let Some(report) = rx.recv().await {
                    let input = match report {
                        crate::netcheck::Report::Verdict(refusal) => Input::Network(refusal),
                        crate::netcheck::Report::Public(ip) => Input::PublicAddress(ip),
                    };
                    if input_tx.send(input).await.is_err() {
                        break;
                    }
                }
            });
        }
        Err(e) => {
            tracing::error!(target: "audit", decision = "network", reason = "not-started", error = %e, "the network check did not start: new calls stay refused");
        }
    }
}

/// What admission starts with.
struct Initial {
    registry: crate::tls::Registry,
    grants: crate::config::AliasGrants,
    directory: Option<HashMap<String, crate::config::DirectoryEntry>>,
    trunks: Option<HashMap<String, crate::config::TrunkConfig>>,
    gate: Gate,
}

/// `Config` guarantees a registry source; this keeps `start` total anyway.
fn unreachable_config<T>() -> Result<T, DaemonError> {
    Err(DaemonError::Config(ConfigError::Invalid {
        field: "policy".into(),
        reason: "no registry source".into(),
    }))
}

/// The self-test call ([`selftest`]) on a blocking thread, once; its
/// outcome in the audit trail and in the health word for PID 1.
fn start_self_test(config: &crate::config::Config, relay: Arc<RelayHandle>) {
    let phone_ip = config.phone.media_address;
    // The first trunk by name: the bridge side's media address.
    let bridge_ip = config
        .trunks
        .iter()
        .min_by_key(|(name, _)| name.as_str())
        .map_or(phone_ip, |(_, t)| t.media_address);
    // A wildcard media address (the uplink's, learnt from the trunk's
    // connection): the self-test's bridge end runs on loopback instead.
    let bridge_ip = match bridge_ip {
        std::net::IpAddr::V4(a) if a.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let suites = config.phone.suites.clone();
    tokio::spawn(async move {
        // After the start-up and the first phones' handshakes, which have
        // the CPU first (a trial waits 10 s of service anyway).
        tokio::time::sleep(SELF_TEST_AFTER).await;
        let _ =
            tokio::task::spawn_blocking(move || self_test(&relay, phone_ip, bridge_ip, &suites))
                .await;
    });
}

/// How long after the start the self-test call is placed.
const SELF_TEST_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

fn self_test(
    relay: &RelayHandle,
    phone_ip: std::net::IpAddr,
    bridge_ip: std::net::IpAddr,
    suites: &[crate::srtp::Suite],
) {
    match selftest::run(relay, phone_ip, bridge_ip, suites) {
        Ok(report) => {
            info!(target: "audit", decision = "self-test", reason = "passed", suites = suites.len(), took_ms = report.took.as_millis() as u64, connected_sockets = report.connected, phone = %phone_ip, bridge = %bridge_ip, "self-test call passed: media both ways through the relay, re-encrypted, every suite");
            crate::health::self_test(crate::health::SelfTest::Passed);
        }
        Err(e) => {
            tracing::error!(target: "audit", decision = "self-test", reason = "failed", error = %e, phone = %phone_ip, bridge = %bridge_ip, "self-test call FAILED: a trial of this release will not commit");
            crate::health::self_test(crate::health::SelfTest::Failed(e.to_string()));
        }
    }
}
