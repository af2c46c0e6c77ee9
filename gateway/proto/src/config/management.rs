//! `[management]`: the kit's signed repository at home, which it polls
//! over mutual TLS (`docs/repository.md`, "Polling").
//!
//! ```toml
//! [management]
//! url = "https://192.0.2.20:443/repo/"   # the repository root; the kit reads URL<kit>/...
//! ca = "device/hq-ca.pem"                # HQ's server CA, the only one trusted
//! certificate = "device/cert.pem"        # the kit's device certificate
//! device_key = "device/key.pem"          # its key
//! state = "state/repo.state"             # what the kit has seen; never delete it
//! timestamp_key = "timestamp-key.pub.pem"  # pinned repository keys (PEM)
//! snapshot_key = "snapshot-key.pub.pem"
//! # interval_ms = 60000                  # between polls (at least 500), ±10 % jitter
//! # server_name = "hq.example.org"       # the name HQ's certificate must carry
//! #                                      # (default: the URL's IP address)
//! ```
//!
//! The kit id is `[policy] kit_id`, and a verified policy is written to
//! `[policy] bundle`, so `[management]` needs `[policy]`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dialgate_signed::repo::RoleKeys;
use dialgate_signed::PublicKey;
use serde::Deserialize;

use super::{invalid, resolve, ConfigError, ReadFile};

/// The default time between polls: a minute.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest time between polls.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManagement {
    url: String,
    ca: PathBuf,
    certificate: PathBuf,
    device_key: PathBuf,
    state: PathBuf,
    timestamp_key: PathBuf,
    snapshot_key: PathBuf,
    interval_ms: Option<u64>,
    server_name: Option<String>,
}

/// The repository the kit polls.
#[derive(Debug, Clone)]
pub struct ManagementConfig {
    /// The kit id (`[policy] kit_id`): the kit's folder in the repository.
    pub kit_id: String,
    /// The HTTPS server (an IP literal: the kit resolves no names).
    pub addr: SocketAddr,
    /// The repository root's path, starting and ending with `/`.
    pub path: String,
    /// HQ's server CA, the only one trusted.
    pub ca: PathBuf,
    /// The device certificate chain (PEM).
    pub certificate: PathBuf,
    /// The device key (PEM).
    pub device_key: PathBuf,
    /// The repository state (versions seen, trusted time), on the data
    /// partition. Never deleted: that would allow a rollback.
    pub state: PathBuf,
    /// The pinned timestamp and snapshot keys.
    pub keys: RoleKeys,
    /// The time between polls (before jitter).
    pub interval: Duration,
    /// The name HQ's certificate must carry, when it is not the URL's IP
    /// address (the kit resolves no names: the URL holds the address, this
    /// the name verified): a DNS name or an IP literal.
    pub server_name: Option<String>,
}

impl ManagementConfig {
    /// The request path of `file` under the kit's folder.
    pub fn file_path(&self, file: &str) -> String {
        format!("{}{}/{}", self.path, self.kit_id, file)
    }
}

/// Checks a TLS server name: an IP literal, or a DNS name of at most 253
/// octets in labels of 1 to 63 letters, digits and inner `-`, the last not
/// all digits.
pub fn check_server_name(name: &str) -> Result<(), String> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let last_numeric = labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if name.len() > 253 || !labels.iter().all(label_ok) || last_numeric {
        return Err(format!(
            "{name:?}: expected an IP address or a DNS name (labels of letters, digits and '-')"
        ));
    }
    Ok(())
}

/// Parses `https://IP[:PORT]/PATH/`: an IP literal (IPv6 in brackets),
/// port 443 by default, a path of unreserved characters and `/` that ends
/// with `/`.
pub fn parse_management_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url:?}: expected https://IP:PORT/PATH/"))?;
    let (addr, path) = split_ip_url(url, rest, 443)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~/".contains(&b);
    if !path.ends_with('/') || !path.bytes().all(allowed) || path.contains("//") {
        return Err(format!(
            "{url:?}: the path must end with '/' and hold only letters, digits, '-', '.', '_', '~' and single '/'"
        ));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("{url:?}: no '.' or '..' in the path"));
    }
    Ok((addr, path.to_string()))
}

/// `rest` (a URL after its scheme) as an IP literal (IPv6 in brackets)
/// with an optional port (`default_port` else) and the path from the
/// first `/` (`/` when absent); `url` names it in errors. Shared by the
/// `https://` URLs here and `[network] portal_probe`'s `http://`.
pub(super) fn split_ip_url<'a>(
    url: &str,
    rest: &'a str,
    default_port: u16,
) -> Result<(SocketAddr, &'a str), String> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = match authority.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            let host = authority.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = host.parse().map_err(|_| {
                format!("{url:?}: the host must be an IP address (the kit resolves no names)")
            })?;
            SocketAddr::new(ip, default_port)
        }
    };
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(format!("{url:?}: not an address a server listens on"));
    }
    Ok((addr, path))
}

fn pinned_key(
    base: &Path,
    path: PathBuf,
    field: &str,
    files: &dyn ReadFile,
) -> Result<PublicKey, ConfigError> {
    let path = resolve(base, path);
    let pem = files.read(&path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    PublicKey::from_pem(&pem).map_err(|e| invalid(format!("management.{field}"), e.to_string()))
}

pub(super) fn management_config(
    base: &Path,
    raw: RawManagement,
    policy_kit: Option<&str>,
    files: &dyn ReadFile,
) -> Result<ManagementConfig, ConfigError> {
    let kit_id = policy_kit.ok_or_else(|| {
        invalid(
            "management",
            "needs [policy]: the kit id and the bundle path come from it",
        )
    })?;
    let (addr, path) = parse_management_url(&raw.url).map_err(|e| invalid("management.url", e))?;
    let interval = match raw.interval_ms {
        None => DEFAULT_POLL_INTERVAL,
        Some(ms) => Duration::from_millis(ms),
    };
    if interval < MIN_POLL_INTERVAL {
        return Err(invalid("management.interval_ms", "at least 500"));
    }
    if let Some(name) = &raw.server_name {
        check_server_name(name).map_err(|e| invalid("management.server_name", e))?;
    }
    let keys = RoleKeys {
        timestamp: pinned_key(base, raw.timestamp_key, "timestamp_key", files)?,
        snapshot: pinned_key(base, raw.snapshot_key, "snapshot_key", files)?,
    };
    Ok(ManagementConfig {
        kit_id: kit_id.to_string(),
        addr,
        path,
        ca: resolve(base, raw.ca),
        certificate: resolve(base, raw.certificate),
        device_key: resolve(base, raw.device_key),
        state: resolve(base, raw.state),
        keys,
        interval,
        server_name: raw.server_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (a, p) = parse_management_url("https://127.0.0.1:20443/").unwrap();
        assert_eq!((a.to_string(), p.as_str()), ("127.0.0.1:20443".into(), "/"));
        let (a, p) = parse_management_url("https://[::1]/repo/kits/").unwrap();
        assert_eq!(
            (a.to_string(), p.as_str()),
            ("[::1]:443".into(), "/repo/kits/")
        );
        let (a, _) = parse_management_url("https://192.0.2.1").unwrap();
        assert_eq!(a.port(), 443);
        for bad in [
            "http://127.0.0.1/",
            "https://hq.example/",
            "https://127.0.0.1:0/",
            "https://0.0.0.0:443/",
            "https://127.0.0.1/repo",
            "https://127.0.0.1/a/../b/",
            "https://127.0.0.1/a//b/",
            "https://127.0.0.1/a?b/",
        ] {
            assert!(parse_management_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_names() {
        for good in [
            "hq.example.org",
            "localhost",
            "127.0.0.1",
            "::1",
            "a-b.c9.example",
        ] {
            assert!(check_server_name(good).is_ok(), "{good}");
        }
        let long = format!("{}.example", "a".repeat(64));
        for bad in [
            "",
            "hq..example",
            "-hq.example",
            "hq-.example",
            "hq.example.",
            "hq_x.example",
            "1.2.3",
            "hq.example/x",
            "h q.example",
            long.as_str(),
        ] {
            assert!(check_server_name(bad).is_err(), "{bad:?}");
        }
    }
}
