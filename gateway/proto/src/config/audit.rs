//! `[audit]`: where the kit spools its audit trail, the key it signs
//! checkpoints with, and the home SIEM it ships to (`docs/audit.md`).
//!
//! ```toml
//! [audit]
//! spool = "state/audit"          # a folder on the data partition
//! key = "audit/key.pk8"          # the kit's checkpoint key (PKCS#8 DER)
//! # kit_id = "kit-0001"          # default: policy.kit_id
//! # spool_bytes = 16777216       # the spool's bound (64 KiB ..= 1 GiB)
//! # siem = "relp-tls://192.0.2.20:2514"  # or syslog-tls://IP:PORT (RFC 5425)
//! # siem_ca = "device/hq-ca.pem" # the SIEM's CA, pinned (needed with siem)
//! # certificate = "device/cert.pem"  # the kit's device certificate (with siem)
//! # device_key = "device/key.pem"    # its key (with siem)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{invalid, resolve, ConfigError};

/// Default bound of the spool: 16 MiB, some 40 000 records.
pub const DEFAULT_SPOOL_BYTES: u64 = 16 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    spool: PathBuf,
    key: PathBuf,
    kit_id: Option<String>,
    spool_bytes: Option<u64>,
    siem: Option<String>,
    siem_ca: Option<PathBuf>,
    certificate: Option<PathBuf>,
    device_key: Option<PathBuf>,
}

/// The audit trail's settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The kit id: the HOSTNAME of every record.
    pub kit_id: String,
    /// The spool folder (created if absent).
    pub spool: PathBuf,
    /// The checkpoint signing key (PKCS#8 DER).
    pub key: PathBuf,
    /// The spool's bound in octets.
    pub spool_bytes: u64,
    /// Where records are shipped; `None`: spooled only.
    pub siem: Option<SiemConfig>,
}

/// How records reach the SIEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiemTransport {
    /// RELP over TLS: each record acknowledged.
    Relp,
    /// RFC 5425 syslog over TLS, octet counting; no acknowledgements.
    Syslog,
}

/// The home SIEM.
#[derive(Debug, Clone)]
pub struct SiemConfig {
    /// RELP or RFC 5425.
    pub transport: SiemTransport,
    /// Its address (an IP literal: the kit resolves no names for it).
    pub addr: SocketAddr,
    /// Its CA, the only one trusted for it.
    pub ca: PathBuf,
    /// The kit's device certificate chain (PEM).
    pub certificate: PathBuf,
    /// The device key (PEM).
    pub device_key: PathBuf,
}

/// Parses a SIEM URL: `relp-tls://IP:PORT` or `syslog-tls://IP:PORT`.
pub fn parse_siem_url(url: &str) -> Result<(SiemTransport, SocketAddr), String> {
    let (transport, rest) = if let Some(r) = url.strip_prefix("relp-tls://") {
        (SiemTransport::Relp, r)
    } else if let Some(r) = url.strip_prefix("syslog-tls://") {
        (SiemTransport::Syslog, r)
    } else {
        return Err(format!(
            "{url:?}: expected relp-tls://IP:PORT or syslog-tls://IP:PORT"
        ));
    };
    let addr: SocketAddr = rest.trim_end_matches('/').parse().map_err(|_| {
        format!("{url:?}: the host must be an IP address and a port (the kit resolves no names for its SIEM)")
    })?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(format!("{url:?}: not an address a SIEM listens on"));
    }
    Ok((transport, addr))
}

pub(super) fn audit_config(
    base: &Path,
    raw: RawAudit,
    policy_kit: Option<&str>,
) -> Result<AuditConfig, ConfigError> {
    let kit_id = match (raw.kit_id, policy_kit) {
        (Some(k), _) => k,
        (None, Some(k)) => k.to_string(),
        (None, None) => {
            return Err(invalid(
                "audit.kit_id",
                "set it (or [policy] kit_id): every record names its kit",
            ))
        }
    };
    // The HOSTNAME field: 1..=255 printable US-ASCII (RFC 5424 §6.2.4).
    if kit_id.is_empty() || kit_id.len() > 255 || !kit_id.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(invalid(
            "audit.kit_id",
            "1 to 255 printable ASCII characters without spaces",
        ));
    }
    let spool_bytes = raw.spool_bytes.unwrap_or(DEFAULT_SPOOL_BYTES);
    if !(64 << 10..=1 << 30).contains(&spool_bytes) {
        return Err(invalid(
            "audit.spool_bytes",
            "between 65536 (64 KiB) and 1073741824 (1 GiB)",
        ));
    }
    let siem = match raw.siem {
        None => {
            if raw.siem_ca.is_some() || raw.certificate.is_some() || raw.device_key.is_some() {
                return Err(invalid(
                    "audit.siem",
                    "siem_ca, certificate and device_key are for a SIEM: set siem too",
                ));
            }
            None
        }
        Some(url) => {
            let (transport, addr) = parse_siem_url(&url).map_err(|e| invalid("audit.siem", e))?;
            let need = |v: Option<PathBuf>, field: &str| {
                v.map(|p| resolve(base, p)).ok_or_else(|| {
                    invalid(
                        format!("audit.{field}"),
                        "needed with audit.siem (mutual TLS with the SIEM)",
                    )
                })
            };
            Some(SiemConfig {
                transport,
                addr,
                ca: need(raw.siem_ca, "siem_ca")?,
                certificate: need(raw.certificate, "certificate")?,
                device_key: need(raw.device_key, "device_key")?,
            })
        }
    };
    Ok(AuditConfig {
        kit_id,
        spool: resolve(base, raw.spool),
        key: resolve(base, raw.key),
        spool_bytes,
        siem,
    })
}
