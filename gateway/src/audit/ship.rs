//! Shipping the spool to the home SIEM over mutual TLS (the kit's device
//! certificate; the SIEM's CA the only one trusted), RELP or RFC 5425.
//!
//! - RELP: up to [`WINDOW`] records in flight; a record leaves the spool
//!   when it and every record before it are acknowledged (`200 OK`).
//! - RFC 5425 has no acknowledgements: a record counts as delivered once
//!   it was written to the TLS stream and the connection then stayed up
//!   for [`SETTLE`]; on reconnection everything not yet counted is sent
//!   again (duplicates, which `dialgatectl audit verify` tolerates and
//!   counts). A SIEM that crashes after reading a record but before
//!   storing it can lose that record: use RELP where that matters.
//!
//! A lost connection is retried after 0.5 s, doubling to 30 s; the kit
//! records when the SIEM becomes unreachable and reachable again.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialgate_audit::relp::{RelpClient, RelpEvent};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{info, warn};

use super::Shared;
use crate::admission::{TrunkTls, TrunkTrust};
use crate::config::{SiemConfig, SiemTransport};
use crate::tls::{load_certs, load_key, trunk_client_config, TlsError};

/// RELP records in flight at most.
pub const WINDOW: usize = 64;
/// RFC 5425: how long a written record's connection must stay up.
pub const SETTLE: Duration = Duration::from_secs(2);
/// RFC 5425: records written per write.
const BATCH: usize = 256;
/// Connecting, the TLS handshake and the RELP `open` each get this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A write that takes longer means the SIEM stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// With records in flight, an acknowledgement must come within this.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The client side: TLS 1.3, the SIEM's CA pinned, the device identity.
pub(super) fn client_config(s: &SiemConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let cas = load_certs(&s.ca)?.into_iter().map(|c| c.to_vec()).collect();
    trunk_client_config(
        &TrunkTrust::Ca(cas),
        TrunkTls::Tls13,
        Some((load_certs(&s.certificate)?, load_key(&s.device_key)?)),
    )
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum ShipError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error(transparent)]
    Relp(#[from] dialgate_audit::relp::RelpError),
    #[error("the SIEM closed the connection")]
    Closed,
}

/// Ships until the kit stops, reconnecting with back-off.
pub(super) async fn run(siem: SiemConfig, tls: Arc<ClientConfig>, shared: Arc<Shared>) {
    let mut backoff = BACKOFF_MIN;
    let mut reachable: Option<bool> = None;
    while !shared.stopping.load(Ordering::Relaxed) {
        let mut connected = false;
        let result = session(&siem, &tls, &shared, &mut connected).await;
        if connected {
            backoff = BACKOFF_MIN;
            if reachable != Some(true) {
                reachable = Some(true);
            }
        }
        match result {
            Ok(()) => return,
            Err(e) => {
                if reachable != Some(false) {
                    warn!(target: "audit", decision = "siem", siem = %siem.addr, reason = %e, "SIEM unreachable: records stay in the spool");
                    reachable = Some(false);
                } else {
                    info!(siem = %siem.addr, error = %e, retry_ms = backoff.as_millis() as u64, "SIEM still unreachable");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shared.wake.notified(), if shared.stopping.load(Ordering::Relaxed) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn session(
    siem: &SiemConfig,
    tls: &Arc<ClientConfig>,
    shared: &Shared,
    connected: &mut bool,
) -> Result<(), ShipError> {
    let tcp = timeout(CONNECT_TIMEOUT, TcpStream::connect(siem.addr))
        .await
        .map_err(|_| ShipError::Timeout("connecting"))??;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::IpAddress(siem.addr.ip().into());
    let stream = timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::clone(tls)).connect(name, tcp),
    )
    .await
    .map_err(|_| ShipError::Timeout("the TLS handshake"))??;
    let (mut rd, mut wr) = tokio::io::split(stream);
    match siem.transport {
        SiemTransport::Relp => {
            let mut relp = RelpClient::new();
            send(&mut wr, &relp.open()).await?;
            let mut buf = vec![0u8; 16 << 10];
            let opened = async {
                loop {
                    let n = rd.read(&mut buf).await?;
                    if n == 0 {
                        return Err(ShipError::Closed);
                    }
                    if relp.receive(&buf[..n])?.contains(&RelpEvent::Opened) {
                        return Ok(());
                    }
                }
            };
            timeout(CONNECT_TIMEOUT, opened)
                .await
                .map_err(|_| ShipError::Timeout("the RELP open"))??;
            *connected = true;
            info!(target: "audit", decision = "siem", siem = %siem.addr, transport = "relp", "SIEM reachable: shipping the spool");
            relp_session(relp, rd, wr, shared).await
        }
        SiemTransport::Syslog => {
            *connected = true;
            info!(target: "audit", decision = "siem", siem = %siem.addr, transport = "syslog", "SIEM reachable: shipping the spool");
            syslog_session(rd, wr, shared).await
        }
    }
}

type Reader = tokio::io::ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>;
type Writer = tokio::io::WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>;

async fn send(wr: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> Result<(), ShipError> {
    timeout(WRITE_TIMEOUT, async {
        wr.write_all(bytes).await?;
        wr.flush().await
    })
    .await
    .map_err(|_| ShipError::Timeout("writing to the SIEM"))??;
    Ok(())
}

fn pending_after(shared: &Shared, after: u64, max: usize) -> (Vec<(u64, String)>, u64) {
    match shared.sink.lock() {
        Ok(s) => (s.spool.after(after, max), s.spool.acked()),
        Err(_) => (Vec::new(), after),
    }
}

fn ack(shared: &Shared, seq: u64) {
    if let Ok(mut s) = shared.sink.lock() {
        s.spool.ack(seq);
    }
}

async fn relp_session(
    mut relp: RelpClient,
    mut rd: Reader,
    mut wr: Writer,
    shared: &Shared,
) -> Result<(), ShipError> {
    let (_, mut last_sent) = pending_after(shared, 0, 0);
    let mut in_flight: VecDeque<u64> = VecDeque::new();
    let mut last_progress = Instant::now();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        if in_flight.len() < WINDOW {
            let (recs, _) = pending_after(shared, last_sent, WINDOW - in_flight.len());
            if !recs.is_empty() {
                let mut out = Vec::new();
                for (seq, line) in &recs {
                    out.extend_from_slice(&relp.syslog(*seq, line));
                    in_flight.push_back(*seq);
                    last_sent = *seq;
                }
                if in_flight.len() == recs.len() {
                    last_progress = Instant::now();
                }
                send(&mut wr, &out).await?;
            }
        }
        if shared.stopping.load(Ordering::Relaxed) && in_flight.is_empty() {
            let _ = send(&mut wr, &relp.close()).await;
            return Ok(());
        }
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Err(ShipError::Closed);
                }
                for ev in relp.receive(&buf[..n])? {
                    match ev {
                        RelpEvent::Acked(seq) => {
                            in_flight.retain(|s| *s != seq);
                            last_progress = Instant::now();
                        }
                        RelpEvent::ServerClose => return Err(ShipError::Closed),
                        RelpEvent::Opened => {}
                    }
                }
                // Everything before the oldest unacknowledged record is in.
                ack(shared, in_flight.front().map_or(last_sent, |s| s - 1));
            }
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)), if !in_flight.is_empty() => {
                if last_progress.elapsed() >= ACK_TIMEOUT {
                    return Err(ShipError::Timeout("waiting for RELP acknowledgements"));
                }
            }
        }
    }
}

async fn syslog_session(mut rd: Reader, mut wr: Writer, shared: &Shared) -> Result<(), ShipError> {
    let (_, mut last_sent) = pending_after(shared, 0, 0);
    let mut written: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let (recs, _) = pending_after(shared, last_sent, BATCH);
        if !recs.is_empty() {
            let mut out = Vec::new();
            for (seq, line) in &recs {
                out.extend_from_slice(&dialgate_audit::octet_counted(line));
                last_sent = *seq;
            }
            send(&mut wr, &out).await?;
            written.push_back((last_sent, Instant::now()));
        }
        while let Some(&(seq, at)) = written.front() {
            if at.elapsed() < SETTLE {
                break;
            }
            ack(shared, seq);
            written.pop_front();
        }
        if shared.stopping.load(Ordering::Relaxed) && written.is_empty() && recs.is_empty() {
            let _ = wr.shutdown().await;
            return Ok(());
        }
        if recs.len() == BATCH {
            // A backlog: keep writing (the read side is polled below
            // once it is drained).
            continue;
        }
        tokio::select! {
            n = rd.read(&mut buf) => {
                // The SIEM sends nothing: any read that returns is the end.
                let _ = n?;
                return Err(ShipError::Closed);
            }
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
