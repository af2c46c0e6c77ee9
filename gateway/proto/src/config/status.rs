//! `[status]`: where the kit pushes its status (`docs/status.md`): a
//! Prometheus Pushgateway at home, over mutual TLS.
//!
//! ```toml
//! [status]
//! url = "https://192.0.2.20:9091/"  # the Pushgateway's root; the kit PUTs
//!                                    # URLmetrics/job/dialgate/kit/<kit id>
//! ca = "device/hq-ca.pem"            # HQ's server CA, the only one trusted
//! certificate = "device/cert.pem"    # the kit's device certificate
//! device_key = "device/key.pem"      # its key
//! # interval_ms = 60000              # between pushes (at least 500), ±10 % jitter
//! ```
//!
//! The kit id is `[policy] kit_id`, so `[status]` needs `[policy]`. The
//! URL is as `[management]`'s: `https://IP[:PORT]/PATH/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::management::parse_management_url;
use super::{invalid, resolve, ConfigError};

/// The default time between pushes: a minute.
pub const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest time between pushes.
pub const MIN_PUSH_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatus {
    url: String,
    ca: PathBuf,
    certificate: PathBuf,
    device_key: PathBuf,
    interval_ms: Option<u64>,
}

/// The Pushgateway the kit pushes its status to.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// The kit id (`[policy] kit_id`): its grouping key at the Pushgateway.
    pub kit_id: String,
    /// The HTTPS server (an IP literal: the kit resolves no names).
    pub addr: SocketAddr,
    /// The Pushgateway's root path, starting and ending with `/`.
    pub path: String,
    /// HQ's server CA, the only one trusted.
    pub ca: PathBuf,
    /// The device certificate chain (PEM).
    pub certificate: PathBuf,
    /// The device key (PEM).
    pub device_key: PathBuf,
    /// The time between pushes (before jitter).
    pub interval: Duration,
}

impl StatusConfig {
    /// The request path of the kit's group:
    /// `<root>metrics/job/dialgate/kit/<kit id>`, the kit id in the
    /// Pushgateway's `@base64` form (RFC 4648 §5, unpadded) unless it is
    /// only letters, digits, `-`, `.` and `_`.
    pub fn push_path(&self) -> String {
        let plain = !self.kit_id.is_empty()
            && self
                .kit_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if plain {
            format!("{}metrics/job/dialgate/kit/{}", self.path, self.kit_id)
        } else {
            use base64::Engine;
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.kit_id);
            format!("{}metrics/job/dialgate/kit@base64/{b}", self.path)
        }
    }
}

pub(super) fn status_config(
    base: &Path,
    raw: RawStatus,
    policy_kit: Option<&str>,
) -> Result<StatusConfig, ConfigError> {
    let kit_id =
        policy_kit.ok_or_else(|| invalid("status", "needs [policy]: the kit id comes from it"))?;
    let (addr, path) = parse_management_url(&raw.url).map_err(|e| invalid("status.url", e))?;
    let interval = raw
        .interval_ms
        .map_or(DEFAULT_PUSH_INTERVAL, Duration::from_millis);
    if interval < MIN_PUSH_INTERVAL {
        return Err(invalid("status.interval_ms", "at least 500"));
    }
    Ok(StatusConfig {
        kit_id: kit_id.to_string(),
        addr,
        path,
        ca: resolve(base, raw.ca),
        certificate: resolve(base, raw.certificate),
        device_key: resolve(base, raw.device_key),
        interval,
    })
}
