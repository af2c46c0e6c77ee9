//! Trunk connections: the kit's outbound TLS connections to each trunk's
//! address and its route hops, and the bridge-side listener where bridges
//! open connections of their own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::outbox::{writer, Outbox};
use super::phones::read_messages;
use super::Input;
use crate::b2bua::{B2bua, Flow, TrunkId};
use crate::sip::{Framer, Limits};
use crate::tls::{
    identify_bridge, load_certs, load_key, trunk_client_config, KnownBridge, SharedBridges,
};

/// Which trunk connection a task serves.
#[derive(Clone, Copy)]
pub(super) struct TrunkFlow {
    pub(super) index: TrunkId,
    pub(super) flow: Flow,
    pub(super) generation: u64,
}

/// Connects to a trunk's address, or to `target` (a route hop) with the
/// trunk's TLS trust and server name, and reads it until it closes or
/// `close` fires. A trunk by name is resolved through `dns` first, at
/// every connect (`docs/network.md`, "DNS"): the addresses are tried in
/// turn, each with the same TLS check, so a resolver's answer can only
/// cost the connection.
pub(super) async fn connect_trunk(
    trunk: crate::config::TrunkConfig,
    tf: TrunkFlow,
    target: Option<SocketAddr>,
    dns: Option<crate::config::DnsConfig>,
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
        let addrs = match target {
            Some(t) => vec![t],
            None => resolve(&trunk, dns.as_ref()).await?,
        };
        let sni = ServerName::try_from(trunk.host.clone()).map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(tls);
        let mut last = String::new();
        for addr in addrs {
            match connect_tls(&connector, &sni, addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err::<_, String>(last)
    }
    .await;
    let stream = match result {
        Ok(s) => s,
        Err(e) => {
            warn!(target: "audit", decision = "trunk", trunk = %name, reason = %e, "trunk connection failed");
            let _ = input.send(Input::TrunkClosed(flow, generation)).await;
            return;
        }
    };
    let (tcp, conn) = stream.get_ref();
    let local = tcp.local_addr().map(|a| a.ip());
    info!(
        target: "audit",
        decision = "trunk",
        trunk = %name,
        version = %conn.protocol_version().map_or_else(|| "-".to_string(), |v| format!("{v:?}")),
        group = %conn.negotiated_key_exchange_group().map_or_else(|| "-".to_string(), |g| format!("{:?}", g.name())),
        "trunk connected"
    );
    let (read, write) = tokio::io::split(stream);
    let (wtx, wrx) = Outbox::channel();
    let Ok(local) = local else {
        let _ = input.send(Input::TrunkClosed(flow, generation)).await;
        return;
    };
    if input
        .send(Input::TrunkConnected(flow, generation, wtx.clone(), local))
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
            || None,
            &input,
        ) => {}
        // The core dropped this connection (the trunk's settings changed).
        _ = close => {}
    }
    let _ = input.send(Input::TrunkClosed(flow, generation)).await;
}

/// Where a trunk is, now: its literal address, or its name resolved.
async fn resolve(
    trunk: &crate::config::TrunkConfig,
    dns: Option<&crate::config::DnsConfig>,
) -> Result<Vec<SocketAddr>, String> {
    use crate::config::Connect;
    let servers = match dns {
        Some(d) => crate::dns::servers_now(d).await,
        None => Vec::new(),
    };
    let servers = &servers[..];
    let bound = crate::dns::Bound {
        total: dns.map_or(crate::config::DEFAULT_DNS_TIMEOUT, |d| d.timeout),
        ..crate::dns::Bound::default()
    };
    let started = std::time::Instant::now();
    let resolved = match &trunk.connect {
        Connect::Addr(a) => return Ok(vec![*a]),
        Connect::Name { host, port } => crate::dns::resolve_name(host, *port, servers, bound).await,
        Connect::Srv { name } => crate::dns::resolve_srv(name, servers, bound).await,
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match resolved {
        Ok(addrs) => {
            let list = addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            info!(target: "audit", decision = "dns", trunk = %trunk.name, name = %trunk.connect, addresses = %list, resolve_ms = format_args!("{ms:.1}"), "trunk name resolved");
            Ok(addrs)
        }
        Err(e) => Err(format!("DNS: {e}")),
    }
}

/// TCP then TLS to one address, each bounded.
async fn connect_tls(
    connector: &tokio_rustls::TlsConnector,
    sni: &ServerName<'static>,
    addr: SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(Duration::from_secs(5), connector.connect(sni.clone(), tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// The bridges the bridge-side listener recognises: each trunk with its
/// current settings.
pub(super) fn known_bridges(b2b: &B2bua) -> Vec<KnownBridge> {
    b2b.trunk_ids()
        .into_iter()
        .filter_map(|i| {
            let t = b2b.trunk_config(i)?;
            match KnownBridge::new(i.0, &t.host, &t.trust) {
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
pub(super) async fn serve_bridges(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    bridges: SharedBridges,
    input: mpsc::Sender<Input>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let open = Arc::new(AtomicUsize::new(0));
    let mut next_conn: u64 = 0;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "bridge accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
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
    let stream = match tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await {
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
        .and_then(|c| identify_bridge(&bridges, c, crate::clock::unix_time()));
    let Some(trunk) = trunk.map(TrunkId) else {
        return; // trunk settings changed during the handshake
    };
    info!(target: "audit", %peer, decision = "admitted", trunk = trunk.0, "bridge connected to the bridge-side listener");
    let (read, write) = tokio::io::split(stream);
    let (wtx, wrx) = Outbox::channel();
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
        || None,
        input,
    )
    .await;
    let _ = input.send(Input::BridgeClosed(conn)).await;
}
