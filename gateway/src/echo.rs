//! The demo's conference bridge: a SIP-over-TLS user agent that answers
//! every call with SDES-SRTP (its own fresh keys) and sends back, encrypted
//! with its key, the audio it receives. It uses dialgate's own SIP codec
//! and SDP module; it is a test peer, not part of the gateway's call path.

/// Where the demo kit's echo bridge listens (its trunk connects here).
pub const DEMO_BRIDGE_LISTEN: &str = "127.0.0.1:5071";

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::b2bua::build::Reply;
use crate::sdp::{self, LocalMedia, Negotiated, Policy, SessionDescription};
use crate::sip::{Event as FrameEvent, Framer, Limits, Message, Method, PONG};
use crate::srtp::{is_rtcp, Protector, Suite, Unprotector};

/// The SSRC the echo sends with (not the caller's, to avoid a collision).
const ECHO_SSRC: u32 = 0xec40_0001;

/// Starts the echo bridge on `listen`; returns the bound address. It
/// sends its media back to where the caller's came from (it latches).
pub async fn start(
    listen: SocketAddr,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    media_ip: IpAddr,
) -> Result<SocketAddr, String> {
    start_with(listen, chain, key, media_ip, true).await
}

/// [`start`], choosing whether the echo latches (`true`: back to the
/// source of the caller's packets) or sends to the address the caller's
/// SDP offered, as a bridge that does not latch does (a test of the
/// caller's advertised address behind a NAT).
pub async fn start_with(
    listen: SocketAddr,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    media_ip: IpAddr,
    latch: bool,
) -> Result<SocketAddr, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("echo bridge on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // Small SIP writes back to back (100, then 200): without
            // TCP_NODELAY, Nagle holds the 200 for the peer's delayed ACK.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls, media_ip, latch).await;
                }
            });
        }
    });
    info!(%addr, "echo bridge listening (SIP over TLS)");
    Ok(addr)
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    media_ip: IpAddr,
    latch: bool,
) {
    let mut framer = Framer::server(Limits::default());
    let mut buf = vec![0u8; 16 * 1024];
    let mut calls: Vec<(String, Arc<AtomicBool>)> = Vec::new();
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.handle_data(&buf[..n]);
        while let Ok(Some(ev)) = framer.poll_event() {
            let msg = match ev {
                FrameEvent::Message(m) => m,
                FrameEvent::Ping => {
                    if s.write_all(PONG).await.is_err() || s.flush().await.is_err() {
                        return;
                    }
                    continue;
                }
                _ => continue,
            };
            let replies = handle(&msg, media_ip, latch, &mut calls);
            for r in replies {
                if s.write_all(&r).await.is_err() {
                    return;
                }
            }
            // TLS may hold written records until a flush (see the outbox).
            if s.flush().await.is_err() {
                return;
            }
        }
    }
    for (_, stop) in calls {
        stop.store(true, Ordering::Relaxed);
    }
}

fn handle(
    msg: &Message,
    media_ip: IpAddr,
    latch: bool,
    calls: &mut Vec<(String, Arc<AtomicBool>)>,
) -> Vec<Vec<u8>> {
    let Some(method) = msg.method() else {
        return Vec::new();
    };
    let tag = "echo-bridge";
    match method {
        Method::Invite if msg.to().tag().is_none() => {
            let mut out = Vec::new();
            if let Some(r) = Reply::new(msg, 100, None).build() {
                out.push(r.to_bytes());
            }
            match answer(msg, media_ip) {
                Ok((sdp, negotiated, socket)) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    calls.push((msg.call_id().to_string(), Arc::clone(&stop)));
                    let suite = negotiated.suite;
                    if std::thread::Builder::new()
                        .name("echo-media".into())
                        .spawn(move || echo(socket, negotiated, stop, latch))
                        .is_err()
                    {
                        return out;
                    }
                    info!(%suite, "echo bridge answered");
                    // `echo-early@...`: the answer goes out in a 183 first
                    // (early media), as bridges that play an announcement
                    // before they answer do.
                    let early = msg
                        .request_uri()
                        .and_then(crate::sip::Uri::as_sip)
                        .and_then(|u| u.user.as_deref())
                        == Some("echo-early");
                    if early {
                        if let Some(r) = Reply::new(msg, 183, Some(tag))
                            .contact(&SocketAddr::new(media_ip, 5071), "echo")
                            .sdp(sdp.print().as_bytes().to_vec())
                            .build()
                        {
                            out.push(r.to_bytes());
                        }
                    }
                    if let Some(r) = Reply::new(msg, 200, Some(tag))
                        .contact(&SocketAddr::new(media_ip, 5071), "echo")
                        .sdp(sdp.print().as_bytes().to_vec())
                        .build()
                    {
                        out.push(r.to_bytes());
                    }
                }
                Err((status, warning)) => {
                    warn!(%warning, "echo bridge refused an offer");
                    if let Some(r) = Reply::new(msg, status, Some(tag)).warning(&warning).build() {
                        out.push(r.to_bytes());
                    }
                }
            }
            out
        }
        Method::Ack => Vec::new(),
        Method::Bye => {
            calls.retain(|(id, stop)| {
                let ended = id == msg.call_id();
                if ended {
                    stop.store(true, Ordering::Relaxed);
                }
                !ended
            });
            Reply::new(msg, 200, None)
                .build()
                .map(|r| vec![r.to_bytes()])
                .unwrap_or_default()
        }
        Method::Options | Method::Cancel => Reply::new(msg, 200, None)
            .allow()
            .build()
            .map(|r| vec![r.to_bytes()])
            .unwrap_or_default(),
        _ => Reply::new(msg, 405, None)
            .allow()
            .build()
            .map(|r| vec![r.to_bytes()])
            .unwrap_or_default(),
    }
}

type Answered = (SessionDescription, Negotiated, UdpSocket);

fn answer(msg: &Message, media_ip: IpAddr) -> Result<Answered, (u16, String)> {
    let offer = SessionDescription::parse(msg.body())
        .map_err(|_| (488, "399 echo \"no SDP offer\"".to_string()))?;
    // The echo bridge takes any suite dialgate supports, strongest first.
    let policy = Policy::new(&Suite::ALL).map_err(|e| (500, format!("399 echo \"{e}\"")))?;
    let socket = UdpSocket::bind((media_ip, 0)).map_err(|e| (503, format!("399 echo \"{e}\"")))?;
    let local = socket
        .local_addr()
        .map_err(|e| (503, format!("399 echo \"{e}\"")))?;
    let mut media = LocalMedia::new(local);
    media.rtcp_mux = true;
    let (sdp, negotiated) =
        sdp::answer(&offer, &policy, &media).map_err(|r| (r.status(), r.warning()))?;
    Ok((sdp, negotiated, socket))
}

/// Echoes SRTP: decrypt with the caller's key, re-encrypt with ours under
/// our SSRC, send back to where it came from (`latch`) or to the address
/// the caller's SDP offered.
fn echo(socket: UdpSocket, n: Negotiated, stop: Arc<AtomicBool>, latch: bool) {
    let (Ok(mut rx), Ok(mut tx)) = (Unprotector::new(&n.inbound), Protector::new(&n.outbound))
    else {
        return;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let out = if is_rtcp(&buf[..len]) {
            match rx.unprotect_rtcp(&mut buf, len) {
                Ok(m) if m >= 8 => {
                    buf[4..8].copy_from_slice(&ECHO_SSRC.to_be_bytes());
                    tx.protect_rtcp(&mut buf, m)
                        .ok()
                        .map(|p| p.as_bytes().to_vec())
                }
                _ => None,
            }
        } else {
            match rx.unprotect_rtp(&mut buf, len) {
                Ok(m) => {
                    buf[8..12].copy_from_slice(&ECHO_SSRC.to_be_bytes());
                    tx.protect_rtp(&mut buf, m)
                        .ok()
                        .map(|p| p.as_bytes().to_vec())
                }
                Err(_) => None,
            }
        };
        if let Some(p) = out {
            let to = match (latch, n.remote_rtp) {
                (false, Some(signalled)) => signalled,
                _ => from,
            };
            let _ = socket.send_to(&p, to);
        }
    }
}
