//! `dialgatectl kits --pushgateway URL`: every kit's last check-in,
//! versions and security counters, as its last status push left them in
//! a Prometheus Pushgateway (`docs/status.md`).
//!
//! One `GET <root>metrics` over HTTPS (TLS 1.3 or 1.2, the server
//! verified against `--ca` only, a client certificate with
//! `--cert`/`--key`), the Prometheus text read by
//! [`dialgate_proto::metrics::parse_text`], the samples of job `dialgate`
//! grouped by their `kit` label. A kit's last check-in is the
//! Pushgateway's own `push_time_seconds` of its group: the time the kit
//! last pushed, by the Pushgateway's clock, not the kit's. A kit whose
//! last check-in is older than `--overdue` seconds is flagged `OVERDUE`.
//!
//! The request is HTTP/1.0 (one per connection, no chunked body: the
//! body ends where the server closes the TLS session with close_notify or
//! where its Content-Length says), at most [`MAX_RESPONSE`] octets, every
//! step within [`TIMEOUT`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dialgate_proto::config::parse_management_url;
use dialgate_proto::http::{head_end, parse_response_head};
use dialgate_proto::metrics::kit::names;
use dialgate_proto::metrics::{parse_text, ParsedSample};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The most octets of a response read.
pub const MAX_RESPONSE: usize = 16 << 20;
/// Connecting, and each read or write after it.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The default `--overdue`: three of the kits' default push intervals
/// (a minute), so one lost push is not an alarm.
pub const DEFAULT_OVERDUE_SECS: u64 = 180;

/// `dialgatectl kits`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct KitsArgs {
    /// The Pushgateway's root: https://IP:PORT/PATH/.
    #[arg(long, value_name = "URL")]
    pub pushgateway: String,
    /// The CA that issued the Pushgateway's server certificate (PEM),
    /// the only one trusted.
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// A client certificate chain to present (PEM), with --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Flag kits whose last check-in is older than this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_OVERDUE_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub overdue: u64,
}

/// Why the kits could not be shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KitsError {
    /// `--pushgateway` is not `https://IP:PORT/PATH/`.
    #[error("--pushgateway: {0}")]
    Url(String),
    /// A certificate or key file could not be read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS configuration could not be made.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Connecting, the handshake or the exchange failed.
    #[error("the Pushgateway at {addr} is unreachable: {source}")]
    Unreachable {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The answer is not an HTTP response we read.
    #[error("the Pushgateway's answer is not one we read: {0}")]
    Response(String),
    /// A status other than 200.
    #[error("the Pushgateway answered HTTP status {0}")]
    Status(u16),
    /// The body is not Prometheus text.
    #[error("the Pushgateway's metrics do not parse: {0}")]
    Metrics(#[from] dialgate_proto::metrics::MetricsError),
}

/// One kit as its last push left it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KitView {
    /// The kit id.
    pub kit: String,
    /// The Pushgateway's time of the kit's last push (unix seconds).
    pub last_push: Option<f64>,
    /// Firmware version and slot.
    pub firmware: Option<(String, String)>,
    /// The policy version in force and its expiry (unix seconds).
    pub policy_version: Option<u64>,
    /// When that policy expires.
    pub policy_expires: Option<u64>,
    /// Calls up at the last push.
    pub in_progress: u64,
    /// Calls completed.
    pub completed: u64,
    /// Admitted calls that failed before being up.
    pub failed: u64,
    /// Refusals by reason.
    pub refused: BTreeMap<String, u64>,
    /// SRTP authentication failures, all legs.
    pub srtp_auth_failed: u64,
    /// SRTP replays, all legs.
    pub srtp_replayed: u64,
    /// Policy bundles refused.
    pub policy_refused: u64,
    /// The last successful repository poll (unix seconds).
    pub last_poll: Option<u64>,
    /// Seconds since the kit last verified signed time.
    pub time_floor_age: Option<u64>,
    /// The kit's bound on that age.
    pub time_stale_after: Option<u64>,
    /// The last signed command done.
    pub last_command: Option<u64>,
}

fn whole(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v as u64
    } else {
        0
    }
}

/// Groups the samples of job `dialgate` by their `kit` label.
pub fn kits_of(samples: &[ParsedSample]) -> Vec<KitView> {
    let mut kits: BTreeMap<String, KitView> = BTreeMap::new();
    let total = |n: &str| format!("{n}_total");
    for s in samples {
        if s.label("job") != Some("dialgate") {
            continue;
        }
        let Some(kit) = s.label("kit") else { continue };
        let k = kits.entry(kit.to_string()).or_insert_with(|| KitView {
            kit: kit.to_string(),
            ..KitView::default()
        });
        let v = s.value;
        match s.name.as_str() {
            "push_time_seconds" => k.last_push = Some(v),
            n if n == names::FIRMWARE => {
                k.firmware = Some((
                    s.label("version").unwrap_or("?").to_string(),
                    s.label("slot").unwrap_or("?").to_string(),
                ));
            }
            n if n == names::POLICY_VERSION => k.policy_version = Some(whole(v)),
            n if n == names::POLICY_EXPIRES => k.policy_expires = Some(whole(v)),
            n if n == names::CALLS_IN_PROGRESS => k.in_progress = whole(v),
            n if n == total(names::CALLS_COMPLETED) => k.completed = whole(v),
            n if n == total(names::CALLS_FAILED) => k.failed = whole(v),
            n if n == total(names::ADMISSION_REFUSED) => {
                let reason = s.label("reason").unwrap_or("-").to_string();
                *k.refused.entry(reason).or_insert(0) += whole(v);
            }
            n if n == total(names::SRTP_AUTH_FAILED) => k.srtp_auth_failed += whole(v),
            n if n == total(names::SRTP_REPLAYED) => k.srtp_replayed += whole(v),
            n if n == total(names::POLICY_REFUSED) => k.policy_refused = whole(v),
            n if n == names::LAST_POLL => k.last_poll = Some(whole(v)),
            n if n == names::TIME_FLOOR_AGE => k.time_floor_age = Some(whole(v)),
            n if n == names::TIME_STALE_AFTER => k.time_stale_after = Some(whole(v)),
            n if n == names::LAST_COMMAND => k.last_command = Some(whole(v)),
            _ => {}
        }
    }
    kits.into_values().collect()
}

/// `2027-01-31T12:00:00Z`.
pub fn utc(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => format!("{secs} (unix seconds)"),
    }
}

/// The report: one block per kit, `now` and `overdue` in seconds.
pub fn report(kits: &[KitView], now: u64, overdue: u64) -> String {
    let mut out = String::new();
    if kits.is_empty() {
        out.push_str("no kit has pushed its status to this Pushgateway\n");
        return out;
    }
    for k in kits {
        let _ = write!(out, "kit {}", k.kit);
        match k.last_push {
            Some(t) => {
                let at = whole(t);
                let age = now.saturating_sub(at);
                let _ = write!(out, "  last check-in {} ({age} s ago)", utc(at));
                if age > overdue {
                    let _ = write!(out, "  OVERDUE (more than {overdue} s)");
                }
            }
            None => out.push_str("  last check-in unknown  OVERDUE"),
        }
        out.push('\n');
        let (fw, slot) = k
            .firmware
            .as_ref()
            .map_or(("?", "?"), |(v, s)| (v.as_str(), s.as_str()));
        let _ = writeln!(out, "  firmware {fw} (slot {slot})");
        match (k.policy_version, k.policy_expires) {
            (Some(v), Some(e)) => {
                let expired = if e <= now { "  EXPIRED" } else { "" };
                let _ = writeln!(out, "  policy version {v}, expires {}{expired}", utc(e));
            }
            _ => out.push_str("  policy none in force\n"),
        }
        let _ = writeln!(
            out,
            "  calls in progress {}, completed {}, failed {}",
            k.in_progress, k.completed, k.failed
        );
        let refused: u64 = k.refused.values().sum();
        let _ = write!(out, "  refused {refused}");
        for (i, (reason, n)) in k.refused.iter().enumerate() {
            let _ = write!(out, "{}{reason}: {n}", if i == 0 { " (" } else { ", " });
        }
        if !k.refused.is_empty() {
            out.push(')');
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "  srtp auth failed {}, replayed {}; policy bundles refused {}",
            k.srtp_auth_failed, k.srtp_replayed, k.policy_refused
        );
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        let stale = match (k.time_floor_age, k.time_stale_after) {
            (Some(age), Some(bound)) if age > bound => " TIME STALE",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  last poll {}, time floor age {} s{stale}, last command {}",
            k.last_poll.map_or_else(|| "-".to_string(), utc),
            opt(k.time_floor_age),
            opt(k.last_command)
        );
    }
    out
}

fn read_file(path: &Path) -> Result<Vec<u8>, KitsError> {
    std::fs::read(path).map_err(|e| KitsError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn client_config(args: &KitsArgs) -> Result<Arc<rustls::ClientConfig>, KitsError> {
    let bad = |path: &Path, reason: &str| KitsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let mut roots = rustls::RootCertStore::empty();
    let ca = read_file(&args.ca)?;
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(&ca) {
        let c = c.map_err(|_| bad(&args.ca, "not PEM certificates"))?;
        roots
            .add(c)
            .map_err(|_| bad(&args.ca, "not a usable CA certificate"))?;
        n += 1;
    }
    if n == 0 {
        return Err(bad(&args.ca, "no certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let pem = read_file(cert)?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| bad(cert, "not PEM certificates"))?;
            if chain.is_empty() {
                return Err(bad(cert, "no certificate in it"));
            }
            let key_pem = read_file(key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|_| bad(key, "not a PEM private key"))?;
            builder.with_client_auth_cert(chain, key_der)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// GETs `path` from `addr` over `tls`; the body of a 200.
fn get(tls: Arc<rustls::ClientConfig>, addr: SocketAddr, path: &str) -> Result<Vec<u8>, KitsError> {
    let io = |source| KitsError::Unreachable { addr, source };
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    tcp.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    tcp.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let conn = rustls::ClientConnection::new(tls, ServerName::IpAddress(addr.ip().into()))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(io)?;
    s.flush().map_err(io)?;
    let mut buf = Vec::with_capacity(64 << 10);
    let mut chunk = [0u8; 16 << 10];
    let mut clean_end = false;
    loop {
        match s.read(&mut chunk) {
            Ok(0) => {
                clean_end = true;
                break;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_RESPONSE {
                    return Err(KitsError::Response(format!(
                        "longer than {MAX_RESPONSE} octets"
                    )));
                }
            }
            // Closed without close_notify: complete only if a
            // Content-Length says so (checked below).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io(e)),
        }
    }
    let bad = |e: &dyn std::fmt::Display| KitsError::Response(e.to_string());
    let end = head_end(&buf)
        .map_err(|e| bad(&e))?
        .ok_or_else(|| KitsError::Response("no complete HTTP head".into()))?;
    let head = parse_response_head(&buf[..end]).map_err(|e| bad(&e))?;
    if head.status != 200 {
        return Err(KitsError::Status(head.status));
    }
    let body = buf.split_off(end);
    match head.content_length {
        Some(n) if body.len() as u64 == n => Ok(body),
        Some(n) => Err(KitsError::Response(format!(
            "{} octets of body, {n} announced",
            body.len()
        ))),
        None if clean_end => Ok(body),
        None => Err(KitsError::Response(
            "the body ended without close_notify or a Content-Length: truncated?".into(),
        )),
    }
}

/// Reads the Pushgateway and returns the report at `now` (unix seconds).
pub fn run(args: &KitsArgs, now: u64) -> Result<String, KitsError> {
    let (addr, root) = parse_management_url(&args.pushgateway).map_err(KitsError::Url)?;
    let tls = client_config(args)?;
    let body = get(tls, addr, &format!("{root}metrics"))?;
    let text = String::from_utf8(body)
        .map_err(|_| KitsError::Response("the metrics are not UTF-8 text".into()))?;
    let samples = parse_text(&text)?;
    Ok(report(&kits_of(&samples), now, args.overdue))
}

/// `dialgatectl kits`: the report now, on standard output.
pub fn print(args: &KitsArgs) -> Result<(), KitsError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    print!("{}", run(args, now)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVED: &str = "\
# TYPE dialgate_admission_refused_total counter
dialgate_admission_refused_total{instance=\"\",job=\"dialgate\",kit=\"k1\",reason=\"revoked\"} 2
dialgate_admission_refused_total{instance=\"\",job=\"dialgate\",kit=\"k1\",reason=\"not registered\"} 1
dialgate_calls_completed_total{instance=\"\",job=\"dialgate\",kit=\"k1\"} 4
dialgate_calls_in_progress{instance=\"\",job=\"dialgate\",kit=\"k1\"} 1
dialgate_calls_in_progress{instance=\"\",job=\"dialgate\",kit=\"k2\"} 0
dialgate_firmware_info{instance=\"\",job=\"dialgate\",kit=\"k1\",slot=\"a\",version=\"1.2.0\"} 1
dialgate_policy_expires_at_seconds{instance=\"\",job=\"dialgate\",kit=\"k1\"} 1.828140445e+09
dialgate_policy_version{instance=\"\",job=\"dialgate\",kit=\"k1\"} 3
dialgate_srtp_auth_failed_total{instance=\"\",job=\"dialgate\",kit=\"k1\",leg=\"phone\"} 5
dialgate_srtp_auth_failed_total{instance=\"\",job=\"dialgate\",kit=\"k1\",leg=\"bridge\"} 1
dialgate_calls_in_progress{instance=\"\",job=\"other\",kit=\"k9\"} 7
dialgate_time_floor_age_seconds{instance=\"\",job=\"dialgate\",kit=\"k1\"} 30
dialgate_time_stale_after_seconds{instance=\"\",job=\"dialgate\",kit=\"k1\"} 86400
dialgate_time_floor_age_seconds{instance=\"\",job=\"dialgate\",kit=\"k2\"} 90000
dialgate_time_stale_after_seconds{instance=\"\",job=\"dialgate\",kit=\"k2\"} 86400
push_time_seconds{instance=\"\",job=\"dialgate\",kit=\"k1\"} 1.7966042e+09
push_time_seconds{instance=\"\",job=\"dialgate\",kit=\"k2\"} 1.7966000e+09
pushgateway_build_info{version=\"1.5.1\"} 1
";

    #[test]
    fn kits_are_grouped_counted_and_flagged() {
        let kits = kits_of(&parse_text(SERVED).unwrap());
        assert_eq!(kits.len(), 2, "job other is not a kit");
        let k1 = &kits[0];
        assert_eq!(k1.kit, "k1");
        assert_eq!(k1.refused.values().sum::<u64>(), 3);
        assert_eq!(k1.completed, 4);
        assert_eq!(k1.srtp_auth_failed, 6);
        assert_eq!(k1.policy_version, Some(3));
        assert_eq!(k1.firmware, Some(("1.2.0".into(), "a".into())));
        let text = report(&kits, 1_796_604_210, 60);
        let (b1, b2) = text.split_once("kit k2").unwrap();
        assert!(
            b1.contains("last check-in 2026-12-07T00:43:20Z (10 s ago)\n"),
            "{b1}"
        );
        assert!(!b1.contains("OVERDUE"), "{b1}");
        assert!(b1.contains("firmware 1.2.0 (slot a)"), "{b1}");
        assert!(
            b1.contains("policy version 3, expires 2027-12-07T00:47:25Z"),
            "{b1}"
        );
        assert!(
            b1.contains("calls in progress 1, completed 4, failed 0"),
            "{b1}"
        );
        assert!(
            b1.contains("refused 3 (not registered: 1, revoked: 2)"),
            "{b1}"
        );
        assert!(b1.contains("srtp auth failed 6, replayed 0"), "{b1}");
        assert!(
            b2.contains("(4210 s ago)  OVERDUE (more than 60 s)"),
            "{b2}"
        );
        assert!(b2.contains("policy none in force"), "{b2}");
        assert!(b1.contains("time floor age 30 s, last"), "{b1}");
        assert!(b2.contains("time floor age 90000 s TIME STALE"), "{b2}");
        assert!(report(&[], 0, 1).contains("no kit"));
    }

    #[test]
    fn bad_urls_and_files_are_errors() {
        let args = |url: &str, ca: &str| KitsArgs {
            pushgateway: url.into(),
            ca: ca.into(),
            cert: None,
            key: None,
            overdue: 1,
        };
        assert!(matches!(
            run(&args("http://127.0.0.1:1/", "/nonexistent"), 0),
            Err(KitsError::Url(_))
        ));
        assert!(matches!(
            run(&args("https://127.0.0.1:1/", "/nonexistent/ca.pem"), 0),
            Err(KitsError::File { .. })
        ));
        let dir = std::env::temp_dir().join(format!("dialgate-kits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = run(&args("https://127.0.0.1:1/", junk.to_str().unwrap()), 0).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
