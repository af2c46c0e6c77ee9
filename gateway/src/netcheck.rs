//! The network check's shell (`[network]`, `docs/network.md`, "Network
//! check"): runs the probes [`dialgate_proto::netcheck::NetCheck`] asks
//! for, hands it their results, and passes each verdict on to the B2BUA
//! (through the daemon) as an audit record (`decision = "network"`, which
//! the kit's status also counts). The decisions are the core's; this
//! module only moves bytes and time.
//!
//! Probes, concurrently, each bounded by `[network] timeout_ms`:
//!
//! - HQ over TLS: `[management]`'s address, TLS 1.3, HQ's CA the only
//!   trust anchor, the device certificate, no session resumption; a GET
//!   of the kit's timestamp file (at most its size bound read). A refused
//!   chain is recorded by [`RecordingVerifier`] and never trusted.
//! - The portal probe: plain HTTP, one GET, at most the head read.
//! - UDP: a STUN Binding request, retransmitted after 0.5, 1.5 and 3.5 s
//!   (RFC 8489 §6.2.1's doubling) within the bound.
//!
//! When to check: at start, every `interval_ms` while calls are admitted,
//! every `recheck_ms` while they are refused, and at once on SIGUSR1 (the
//! uplink changed: the hook for the DHCP client, `docs/network.md`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialgate_proto::b2bua::Refusal;
use dialgate_proto::netcheck::portal::{classify, PortalAnswer};
use dialgate_proto::netcheck::stun::{binding_request, parse_binding_response, BindingAnswer};
use dialgate_proto::netcheck::{
    Chain, Event, HqProbe, NetCheck, PortalProbe, Probes, Schedule, UdpProbe, Verdict,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::{info, warn};

use crate::admission::{TrunkTls, TrunkTrust};
use crate::config::{ManagementConfig, NetworkConfig};
use crate::manage::http::{self, FetchError};
use crate::tls::{load_certs, load_key, trunk_client_config, TlsError};

/// Why the check could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetcheckError {
    /// The device identity or HQ's CA could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// HQ's CA holds no usable certificate.
    #[error("HQ's CA: {0}")]
    Roots(String),
    /// `[management] server_name` is not a TLS server name.
    #[error("management.server_name: {0}")]
    ServerName(String),
    /// SIGUSR1 (the uplink hook) could not be installed.
    #[error("installing the SIGUSR1 handler: {0}")]
    Signal(std::io::Error),
}

/// The most octets of HQ's timestamp file read (its size bound).
const HQ_BODY_MAX: u64 = dialgate_signed::repo::TIMESTAMP.max_bytes as u64;

/// What the verifier saw of HQ's chain in the last handshake.
#[derive(Debug, Default)]
enum Seen {
    /// No certificate yet (no TLS server answered).
    #[default]
    Nothing,
    /// HQ's CA verified it: whatever fails after is HQ's answer, not an
    /// interceptor's (HQ refusing the device certificate, an HTTP error).
    Verified,
    /// Refused: the chain, recorded.
    Refused(Chain),
}

/// Verifies HQ's chain with the pinned CA's verifier, and records a chain
/// it refuses (for the audit record) before refusing it.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Seen>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        let seen = match &verdict {
            Ok(_) => Seen::Verified,
            Err(e) => Seen::Refused(Chain::record(
                end_entity,
                1 + intermediates.len(),
                &e.to_string(),
            )),
        };
        if let Ok(mut slot) = self.seen.lock() {
            *slot = seen;
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What the probes need.
struct Prober {
    net: NetworkConfig,
    hq: http::Server,
    hq_path: String,
    kit_id: String,
    tls: Arc<ClientConfig>,
    seen: Arc<Mutex<Seen>>,
}

impl Prober {
    fn new(n: &NetworkConfig, m: &ManagementConfig) -> Result<Prober, NetcheckError> {
        let cas = load_certs(&m.ca)?;
        let base = trunk_client_config(
            &TrunkTrust::Ca(cas.iter().map(|c| c.to_vec()).collect()),
            TrunkTls::Tls13,
            Some((load_certs(&m.certificate)?, load_key(&m.device_key)?)),
        )?;
        let mut roots = RootCertStore::empty();
        for c in cas {
            roots
                .add(c)
                .map_err(|e| NetcheckError::Roots(e.to_string()))?;
        }
        let mut config = (*base).clone();
        let inner = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(config.crypto_provider()),
        )
        .build()
        .map_err(|e| NetcheckError::Roots(e.to_string()))?;
        let seen = Arc::new(Mutex::new(Seen::Nothing));
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(RecordingVerifier {
                inner,
                seen: Arc::clone(&seen),
            }));
        // Every check is a full handshake: a resumed session would not
        // show the chain.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Prober {
            net: n.clone(),
            hq: http::Server::named(m.addr, m.server_name.as_deref())
                .map_err(NetcheckError::ServerName)?,
            hq_path: m.file_path(dialgate_signed::repo::TIMESTAMP_FILE),
            kit_id: m.kit_id.clone(),
            tls: Arc::new(config),
            seen,
        })
    }

    async fn check(&self) -> Probes {
        let (hq, portal, udp) = tokio::join!(
            self.hq_probe(),
            async {
                match &self.net.portal_probe {
                    Some((addr, path)) => Some(portal_probe(*addr, path, self.net.timeout).await),
                    None => None,
                }
            },
            async {
                match self.net.stun {
                    Some(addr) => Some(udp_probe(addr, self.net.timeout).await),
                    None => None,
                }
            },
        );
        Probes { hq, portal, udp }
    }

    async fn hq_probe(&self) -> HqProbe {
        if let Ok(mut slot) = self.seen.lock() {
            *slot = Seen::Nothing;
        }
        let headers = [("X-Dialgate-Kit", self.kit_id.clone())];
        let got = timeout(
            self.net.timeout,
            http::get(
                &self.tls,
                &self.hq,
                &self.hq_path,
                None,
                &headers,
                HQ_BODY_MAX,
            ),
        )
        .await;
        let seen = self
            .seen
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        hq_outcome(seen, got.map_err(|_| ()))
    }
}

/// The HQ probe's result from what the verifier saw and how the GET ended
/// (`Err(())`: the bound passed).
fn hq_outcome(seen: Seen, got: Result<Result<http::Fetched, FetchError>, ()>) -> HqProbe {
    match (seen, got) {
        (Seen::Refused(chain), _) => HqProbe::Intercepted(chain),
        // HQ's CA verified the chain: whatever followed (an HTTP error,
        // HQ refusing the device certificate, a slow answer), HQ answered.
        (Seen::Verified, _) => HqProbe::Verified,
        (Seen::Nothing, Err(())) => HqProbe::Unreachable("timed out".into()),
        // An answer without a chain verified cannot be HQ's.
        (Seen::Nothing, Ok(Ok(_))) => HqProbe::NotTls("no certificate verified".into()),
        (Seen::Nothing, Ok(Err(FetchError::Io(e))))
            if e.kind() == std::io::ErrorKind::InvalidData =>
        {
            HqProbe::NotTls(e.to_string())
        }
        (Seen::Nothing, Ok(Err(e))) => HqProbe::Unreachable(e.to_string()),
    }
}

/// One plain-HTTP GET of the portal probe; at most the head is read.
async fn portal_probe(addr: SocketAddr, path: &str, bound: Duration) -> PortalProbe {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: dialgate-netcheck\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            let mut chunk = [0u8; 2048];
            let n = tcp.read(&mut chunk).await?;
            if n == 0 && buf.is_empty() {
                // Closed without a word: as silent as refused.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed without an answer",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(answer) = classify(&buf, n == 0) {
                return Ok::<_, std::io::Error>(answer);
            }
        }
    };
    match timeout(bound, exchange).await {
        Ok(Ok(answer)) => PortalProbe::Answered(answer),
        // Connected and then reset mid-answer is as silent as refused.
        Ok(Err(e)) => PortalProbe::Unreachable(e.to_string()),
        Err(_) => PortalProbe::Unreachable("timed out".into()),
    }
}

/// STUN Binding requests to `addr` until one is answered or `bound` ends.
async fn udp_probe(addr: SocketAddr, bound: Duration) -> UdpProbe {
    let local: IpAddr = match addr {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let Ok(sock) = UdpSocket::bind((local, 0)).await else {
        return UdpProbe::NoAnswer;
    };
    if sock.connect(addr).await.is_err() {
        return UdpProbe::NoAnswer;
    }
    let mut tx = [0u8; 12];
    if aws_lc_rs::rand::fill(&mut tx).is_err() {
        return UdpProbe::NoAnswer;
    }
    let request = binding_request(&tx);
    let start = tokio::time::Instant::now();
    let end = start + bound;
    let mut next_send = start;
    let mut rto = Duration::from_millis(500);
    let mut buf = [0u8; 1500];
    loop {
        let now = tokio::time::Instant::now();
        if now >= end {
            return UdpProbe::NoAnswer;
        }
        if now >= next_send {
            // A send error (no route, ICMP seen) is no answer; try again.
            let _ = sock.send(&request).await;
            next_send = now + rto;
            rto *= 2;
        }
        let wait = next_send.min(end);
        match tokio::time::timeout_at(wait, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                if let Ok(answer) = parse_binding_response(&buf[..n], &tx) {
                    let mapped = match answer {
                        BindingAnswer::Success(m) => m,
                        BindingAnswer::Error => None,
                    };
                    return UdpProbe::Answered {
                        rtt: start.elapsed(),
                        mapped,
                    };
                }
            }
            // ICMP port unreachable: no answer from a server; wait for
            // the next retransmission rather than spin.
            Ok(Err(_)) => tokio::time::sleep_until(wait).await,
            Err(_) => {}
        }
    }
}

/// The fields of a verdict's audit record.
struct Summary {
    hq: String,
    fingerprint: String,
    subject: String,
    issuer: String,
    portal: String,
    udp: String,
}

fn summary(p: Option<&Probes>) -> Summary {
    let none = || "-".to_string();
    let Some(p) = p else {
        return Summary {
            hq: "uplink-changed".into(),
            fingerprint: none(),
            subject: none(),
            issuer: none(),
            portal: none(),
            udp: none(),
        };
    };
    let (hq, chain) = match &p.hq {
        HqProbe::Verified => ("verified".to_string(), None),
        HqProbe::Intercepted(c) => (format!("other-chain: {}", c.error), Some(c)),
        HqProbe::NotTls(e) => (format!("not-tls: {e}"), None),
        HqProbe::Unreachable(e) => (format!("unreachable: {e}"), None),
    };
    let portal = match &p.portal {
        None => "not-configured".to_string(),
        Some(PortalProbe::Unreachable(e)) => format!("unreachable: {e}"),
        Some(PortalProbe::Answered(PortalAnswer::Expected)) => "expected-204".into(),
        Some(PortalProbe::Answered(PortalAnswer::Redirect { status, location })) => format!(
            "redirect {status} to {}",
            location.as_deref().unwrap_or("-")
        ),
        Some(PortalProbe::Answered(PortalAnswer::Unexpected {
            status,
            content_type,
        })) => format!(
            "status {status} ({})",
            content_type.as_deref().unwrap_or("-")
        ),
        Some(PortalProbe::Answered(PortalAnswer::NotHttp)) => "not-http".into(),
    };
    let udp = match &p.udp {
        None => "not-configured".to_string(),
        Some(UdpProbe::NoAnswer) => "no-answer".into(),
        Some(UdpProbe::Answered { rtt, mapped }) => format!(
            "answered in {} ms, mapped {}",
            rtt.as_millis(),
            mapped.map_or("-".to_string(), |m| m.to_string())
        ),
    };
    Summary {
        hq,
        fingerprint: chain.map_or_else(none, |c| c.fingerprint.clone()),
        subject: chain.map_or_else(none, |c| c.subject.clone()),
        issuer: chain.map_or_else(none, |c| c.issuer.clone()),
        portal,
        udp,
    }
}

fn audit_change(from: Verdict, to: Verdict, probes: Option<&Probes>, check_ms: u64) {
    let s = summary(probes);
    let reason = to
        .refusal()
        .map_or("-".to_string(), |r| r.reason().to_string());
    macro_rules! record {
        ($level:ident, $msg:literal) => {
            $level!(target: "audit", decision = "network", verdict = to.name(), from = from.name(),
                refusal = %reason, hq = %s.hq, chain_sha256 = %s.fingerprint,
                chain_subject = %s.subject, chain_issuer = %s.issuer, portal = %s.portal,
                udp = %s.udp, check_ms, $msg)
        };
    }
    match to {
        Verdict::Clean | Verdict::Checking => {
            record!(info, "network verdict changed")
        }
        _ => record!(
            warn,
            "network verdict changed: new calls refused unless clean"
        ),
    }
}

/// What the network check tells the call core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A verdict's effect on new calls (`None`: admitted).
    Verdict(Option<Refusal>),
    /// The uplink's public address as the STUN server saw it (`None`:
    /// unknown, after an uplink change or a check without an answer).
    Public(Option<IpAddr>),
}

/// The public address a STUN answer reports, if it is one a bridge could
/// send to: a unicast address, not loopback, link-local, unspecified or
/// broadcast. The STUN server is not authenticated: a forged answer can
/// cost a call its media from a bridge that does not latch (SRTP keeps it
/// secret either way), so nothing else is taken from it.
pub fn usable_public(p: &Probes) -> Option<IpAddr> {
    let Some(UdpProbe::Answered {
        mapped: Some(m), ..
    }) = &p.udp
    else {
        return None;
    };
    let ip = m.ip().to_canonical();
    let bad = match ip {
        IpAddr::V4(v) => {
            v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    (!bad).then_some(ip)
}

/// Starts the network check of `n` (HQ from `m`); each verdict's effect
/// on new calls, and the public address learnt, goes to `reports`.
/// Errors only at start; the task runs until the runtime stops.
pub fn start(
    n: &NetworkConfig,
    m: &ManagementConfig,
    verdicts: mpsc::Sender<Report>,
) -> Result<(), NetcheckError> {
    let prober = Arc::new(Prober::new(n, m)?);
    let uplink = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .map_err(NetcheckError::Signal)?;
    info!(
        hq = %m.addr,
        portal_probe = ?n.portal_probe.as_ref().map(|(a, p)| format!("http://{a}{p}")),
        stun = ?n.stun,
        interval_ms = n.interval.as_millis() as u64,
        recheck_ms = n.recheck.as_millis() as u64,
        "network check: new calls wait for a clean verdict"
    );
    info!(target: "audit", decision = "network", verdict = Verdict::Checking.name(), from = "-", hq = "starting", "network check started: new calls refused until the first verdict");
    let schedule = Schedule {
        interval: n.interval,
        recheck: n.recheck,
    };
    tokio::spawn(run(prober, schedule, uplink, verdicts));
    Ok(())
}

async fn run(
    prober: Arc<Prober>,
    schedule: Schedule,
    mut uplink: tokio::signal::unix::Signal,
    verdicts: mpsc::Sender<Report>,
) {
    let mut core = NetCheck::new(Instant::now(), schedule);
    let (results_tx, mut results) = mpsc::channel::<(Probes, u64)>(1);
    let mut last_check_ms = 0;
    let mut public: Option<IpAddr> = None;
    loop {
        while let Some(ev) = core.poll_event() {
            match ev {
                Event::Check => {
                    let (p, tx) = (Arc::clone(&prober), results_tx.clone());
                    tokio::spawn(async move {
                        let started = Instant::now();
                        let probes = p.check().await;
                        let _ = tx
                            .send((probes, started.elapsed().as_millis() as u64))
                            .await;
                    });
                }
                Event::Changed { from, to, probes } => {
                    // A change without results (the uplink changed) took no check.
                    let ms = if probes.is_some() { last_check_ms } else { 0 };
                    audit_change(from, to, probes.as_deref(), ms);
                    if verdicts.send(Report::Verdict(to.refusal())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let sleep = async {
            match core.next_timeout() {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => core.handle_timeout(Instant::now()),
            Some((probes, ms)) = results.recv() => {
                last_check_ms = ms;
                let seen = usable_public(&probes);
                if seen != public {
                    public = seen;
                    info!(target: "audit", decision = "network", reason = "public-address", public = ?public, "the uplink's public address (STUN) for new bridge legs");
                    if verdicts.send(Report::Public(public)).await.is_err() {
                        return;
                    }
                }
                core.handle_result(Instant::now(), probes);
            }
            Some(()) = uplink.recv() => {
                info!("network check: uplink changed (SIGUSR1), checking again");
                core.uplink_changed(Instant::now());
                if public.take().is_some() && verdicts.send(Report::Public(None)).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::*;
    use dialgate_hq::pki::{Ca, Validity};

    fn der(pem: &str) -> CertificateDer<'static> {
        let mut certs = dialgate_proto::pem::certificates(pem.as_bytes()).unwrap();
        CertificateDer::from(certs.remove(0))
    }

    fn verifier(ca: &Ca) -> RecordingVerifier {
        let mut roots = RootCertStore::empty();
        roots.add(der(&ca.cert_pem())).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        RecordingVerifier {
            inner: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap(),
            seen: Arc::new(Mutex::new(Seen::Nothing)),
        }
    }

    #[test]
    fn the_verifier_records_another_chain_and_passes_hqs() {
        let v = Validity::days_from_now(2);
        let hq = Ca::new("HQ CA", v).unwrap();
        let hotel = Ca::new("Hotel Interceptor CA", v).unwrap();
        let name = ServerName::IpAddress(std::net::IpAddr::from([10, 66, 1, 1]).into());
        let check = |issuer: &Ca| {
            let cert = issuer.issue_server("hq", &["10.66.1.1"], v).unwrap();
            let verifier = verifier(&hq);
            let r =
                verifier.verify_server_cert(&der(&cert.cert_pem), &[], &name, &[], UnixTime::now());
            let seen = std::mem::take(&mut *verifier.seen.lock().unwrap());
            (r.is_ok(), seen)
        };
        let (ok, seen) = check(&hq);
        assert!(ok);
        assert!(matches!(seen, Seen::Verified));
        let (ok, seen) = check(&hotel);
        assert!(!ok, "another CA's chain is never trusted");
        match seen {
            Seen::Refused(c) => {
                assert_eq!(c.subject, "hq");
                assert_eq!(c.issuer, "Hotel Interceptor CA");
                assert_eq!(c.certificates, 1);
                assert!(c.error.contains("UnknownIssuer"), "{}", c.error);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outcomes_blame_the_right_party() {
        let chain = Chain::record(b"x", 1, "UnknownIssuer");
        let io = |k| Ok(Err(FetchError::Io(std::io::Error::new(k, "e"))));
        assert!(matches!(
            hq_outcome(Seen::Refused(chain.clone()), Err(())),
            HqProbe::Intercepted(_)
        ));
        // HQ verified, then refused the device certificate (an alert).
        assert_eq!(
            hq_outcome(Seen::Verified, io(std::io::ErrorKind::InvalidData)),
            HqProbe::Verified
        );
        assert_eq!(
            hq_outcome(Seen::Verified, Ok(Err(FetchError::Status(404)))),
            HqProbe::Verified
        );
        assert!(matches!(
            hq_outcome(Seen::Nothing, io(std::io::ErrorKind::InvalidData)),
            HqProbe::NotTls(_)
        ));
        assert!(matches!(
            hq_outcome(Seen::Nothing, io(std::io::ErrorKind::ConnectionRefused)),
            HqProbe::Unreachable(_)
        ));
        assert!(matches!(
            hq_outcome(Seen::Nothing, Err(())),
            HqProbe::Unreachable(_)
        ));
        assert!(matches!(
            hq_outcome(Seen::Nothing, Ok(Ok(http::Fetched::NotModified))),
            HqProbe::NotTls(_)
        ));
    }

    #[test]
    fn only_a_unicast_mapping_is_a_public_address() {
        let probes = |mapped: Option<&str>| Probes {
            hq: HqProbe::Verified,
            portal: None,
            udp: Some(UdpProbe::Answered {
                rtt: std::time::Duration::from_millis(1),
                mapped: mapped.map(|m| m.parse().unwrap()),
            }),
        };
        assert_eq!(
            usable_public(&probes(Some("203.0.113.7:40000"))),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            usable_public(&probes(Some("[::ffff:198.51.100.2]:1"))),
            Some("198.51.100.2".parse().unwrap())
        );
        for bad in [
            "127.0.0.1:1",
            "0.0.0.0:1",
            "169.254.1.1:1",
            "255.255.255.255:1",
            "224.0.0.1:1",
            "[::1]:1",
            "[fe80::1]:1",
        ] {
            assert_eq!(usable_public(&probes(Some(bad))), None, "{bad}");
        }
        assert_eq!(usable_public(&probes(None)), None);
        let mut silent = probes(None);
        silent.udp = Some(UdpProbe::NoAnswer);
        assert_eq!(usable_public(&silent), None);
    }
}
