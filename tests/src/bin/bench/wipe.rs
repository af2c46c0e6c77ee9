//! `bench wipe [--calls N]`: what the gateway's wiping allocator
//! (`dialgate_wipe::WipeOnFree`: every freed block zeroed, every moving
//! `realloc` a copy and a wipe) costs on a call's signalling, against the
//! plain system allocator in the same process and run.
//!
//! One "call" is what a phone's call costs the gateway's allocator apart
//! from the relay (which does not allocate per packet): a TLS 1.3
//! handshake with client certificates (rustls, in memory, the demo kit's
//! gateway and alice's token), an INVITE with its SDP offer written over
//! it, read, parsed as SIP and as SDP, a 200 with an SDP answer written
//! back and parsed. The bench binary installs `dialgate_wipe::BenchSwitch`,
//! so each round runs the same code with wiping off or on; the rounds
//! alternate (off, on, off, on) and the figure per mode is the better of
//! its two.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialgate_proto::sdp::SessionDescription;
use dialgate_proto::sip::{Limits, Message};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use super::opt;

const SDP: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 40000 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=sendrecv\r\na=ptime:20\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:echo@192.0.2.1:5061;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 192.0.2.10:40001;branch=z9hG4bK-bench;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@192.0.2.10>;tag=bench\r\n\
         To: <sip:echo@192.0.2.1:5061>\r\n\
         Call-ID: bench@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@192.0.2.10:40001;transport=tls>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn ok() -> String {
    format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/TLS 192.0.2.10:40001;branch=z9hG4bK-bench;rport\r\n\
         From: <sip:alice@192.0.2.10>;tag=bench\r\n\
         To: <sip:echo@192.0.2.1:5061>;tag=gw\r\n\
         Call-ID: bench@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:dialgate@192.0.2.1:5061;transport=tls>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// Moves what one side wrote to the other until neither has more.
fn pump(c: &mut ClientConnection, s: &mut ServerConnection) -> Result<(), String> {
    let e = |e: std::io::Error| e.to_string();
    loop {
        let mut buf = Vec::new();
        let mut moved = false;
        while c.wants_write() {
            c.write_tls(&mut buf).map_err(e)?;
        }
        if !buf.is_empty() {
            moved = true;
            s.read_tls(&mut buf.as_slice()).map_err(e)?;
            s.process_new_packets().map_err(|e| e.to_string())?;
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).map_err(e)?;
        }
        if !buf.is_empty() {
            moved = true;
            c.read_tls(&mut buf.as_slice()).map_err(e)?;
            c.process_new_packets().map_err(|e| e.to_string())?;
        }
        if !moved {
            return Ok(());
        }
    }
}

fn read_all(r: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// One call's signalling, as described in the module documentation.
fn one_call(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Result<(), String> {
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut c = ClientConnection::new(Arc::clone(client), name).map_err(|e| e.to_string())?;
    let mut s = ServerConnection::new(Arc::clone(server)).map_err(|e| e.to_string())?;
    pump(&mut c, &mut s)?;
    if c.is_handshaking() || s.is_handshaking() {
        return Err("the handshake did not complete".into());
    }
    let limits = Limits::default();
    c.writer()
        .write_all(invite().as_bytes())
        .map_err(|e| e.to_string())?;
    pump(&mut c, &mut s)?;
    let got = read_all(&mut s.reader());
    let msg = Message::parse(&got, &limits).map_err(|e| e.to_string())?;
    SessionDescription::parse(msg.body()).map_err(|e| e.to_string())?;
    let answer = ok();
    s.writer()
        .write_all(answer.as_bytes())
        .map_err(|e| e.to_string())?;
    pump(&mut c, &mut s)?;
    let got = read_all(&mut c.reader());
    let msg = Message::parse(&got, &limits).map_err(|e| e.to_string())?;
    SessionDescription::parse(msg.body()).map_err(|e| e.to_string())?;
    Ok(())
}

fn configs() -> Result<(Arc<ClientConfig>, Arc<ServerConfig>, std::path::PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("dialgate-bench-wipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dialgate::demo::init(&dir).map_err(|e| e.to_string())?;
    let e = |e: dialgate::tls::TlsError| e.to_string();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut kit_ca = RootCertStore::empty();
    for c in dialgate::tls::load_certs(&dir.join("ca.pem")).map_err(e)? {
        kit_ca.add(c).map_err(|e| e.to_string())?;
    }
    let mut token_ca = RootCertStore::empty();
    for c in dialgate::tls::load_certs(&dir.join("token-ca.pem")).map_err(e)? {
        token_ca.add(c).map_err(|e| e.to_string())?;
    }
    let alice = dir.join("tokens").join("alice");
    let client = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(kit_ca)
        .with_client_auth_cert(
            dialgate::tls::load_certs(&alice.join("cert.pem")).map_err(e)?,
            dialgate::tls::load_key(&alice.join("key.pem")).map_err(e)?,
        )
        .map_err(|e| e.to_string())?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(token_ca), Arc::clone(&provider))
            .build()
            .map_err(|e| e.to_string())?;
    let server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            dialgate::tls::load_certs(&dir.join("gateway/cert.pem")).map_err(e)?,
            dialgate::tls::load_key(&dir.join("gateway/key.pem")).map_err(e)?,
        )
        .map_err(|e| e.to_string())?;
    Ok((Arc::new(client), Arc::new(server), dir))
}

fn round(
    calls: u32,
    wiping: bool,
    c: &Arc<ClientConfig>,
    s: &Arc<ServerConfig>,
) -> Result<Duration, String> {
    dialgate_wipe::set_wiping(wiping);
    let t = Instant::now();
    for _ in 0..calls {
        one_call(c, s)?;
    }
    let took = t.elapsed();
    dialgate_wipe::set_wiping(false);
    Ok(took)
}

pub fn run(opts: &[String]) -> Result<(), String> {
    let calls: u32 = opt(opts, "--calls")
        .map(str::parse)
        .transpose()
        .map_err(|_| "--calls: a number".to_string())?
        .unwrap_or(2000);
    let (c, s, dir) = configs()?;
    // Warm-up (lazy statics, the first handshakes), then alternate.
    round(calls / 10 + 1, false, &c, &s)?;
    let mut off = Duration::MAX;
    let mut on = Duration::MAX;
    for _ in 0..2 {
        off = off.min(round(calls, false, &c, &s)?);
        on = on.min(round(calls, true, &c, &s)?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(calls.max(1));
    println!(
        "wipe allocator, {calls} calls' signalling per round (TLS 1.3 handshake with client certificates, INVITE + SDP offer, 200 + SDP answer, each parsed), best of 2 rounds each, alternated:"
    );
    println!(
        "  system allocator (reference):         {:>8.1} us/call",
        per(off)
    );
    println!(
        "  WipeOnFree (the gateway's allocator):  {:>8.1} us/call  ({:+.1} %)",
        per(on),
        (per(on) / per(off) - 1.0) * 100.0
    );
    Ok(())
}
