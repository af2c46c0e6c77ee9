//! `[network]`: the network check before calls (`docs/network.md`,
//! "Network check"; the verdict logic is [`crate::netcheck`]).
//!
//! ```toml
//! [network]
//! portal_probe = "http://192.0.2.20:80/generate_204" # must answer a bodiless 204
//! stun = "192.0.2.20:3478"     # a STUN server (RFC 8489) HQ runs; UDP echo
//! # interval_ms = 60000        # between checks while calls are admitted (at least 500)
//! # recheck_ms = 5000          # between checks while they are refused (at least 200)
//! # timeout_ms = 3000          # each probe's bound (200..=10000)
//! ```
//!
//! HQ's TLS probe uses `[management]` (its address, its CA as the only
//! trust, the device identity), so `[network]` needs `[management]`.
//! Without `[network]` no check runs and calls are admitted as before (the
//! plain demo; kits of earlier configurations). `portal_probe` and `stun`
//! are each optional: a probe not configured is not run.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// The default time between checks while calls are admitted.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// The default time between checks while calls are refused.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(5);
/// The default bound of each probe.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    portal_probe: Option<String>,
    stun: Option<SocketAddr>,
    interval_ms: Option<u64>,
    recheck_ms: Option<u64>,
    timeout_ms: Option<u64>,
}

/// The network check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The captive-portal probe: where to connect and the request path.
    pub portal_probe: Option<(SocketAddr, String)>,
    /// The STUN server of the UDP probe.
    pub stun: Option<SocketAddr>,
    /// Between checks while calls are admitted.
    pub interval: Duration,
    /// Between checks while they are refused.
    pub recheck: Duration,
    /// Each probe's bound.
    pub timeout: Duration,
}

/// Parses `http://IP[:PORT]/PATH`: an IP literal (the kit resolves no
/// names), port 80 by default, a path of unreserved characters and `/`.
pub fn parse_probe_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: expected http://IP[:PORT]/PATH"))?;
    let (addr, path) = super::management::split_ip_url(url, rest, 80)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~/".contains(&b);
    if path.len() > 256 || !path.bytes().all(allowed) || path.contains("//") {
        return Err(format!(
            "{url:?}: the path holds only letters, digits, '-', '.', '_', '~' and single '/' (at most 256)"
        ));
    }
    Ok((addr, path.to_string()))
}

fn millis(
    field: &str,
    value: Option<u64>,
    default: Duration,
    range: (u64, u64),
) -> Result<Duration, ConfigError> {
    let d = value.map_or(default, Duration::from_millis);
    let ms = d.as_millis();
    if ms < u128::from(range.0) || ms > u128::from(range.1) {
        return Err(invalid(
            format!("network.{field}"),
            format!("between {} and {}", range.0, range.1),
        ));
    }
    Ok(d)
}

pub(super) fn network_config(
    raw: RawNetwork,
    has_management: bool,
) -> Result<NetworkConfig, ConfigError> {
    if !has_management {
        return Err(invalid(
            "network",
            "needs [management]: HQ's TLS probe uses its address, CA and device identity",
        ));
    }
    let portal_probe = raw
        .portal_probe
        .map(|u| parse_probe_url(&u))
        .transpose()
        .map_err(|e| invalid("network.portal_probe", e))?;
    if raw
        .stun
        .is_some_and(|s| s.port() == 0 || s.ip().is_unspecified())
    {
        return Err(invalid("network.stun", "an address a server listens on"));
    }
    const DAY_MS: u64 = 86_400_000;
    Ok(NetworkConfig {
        portal_probe,
        stun: raw.stun,
        interval: millis(
            "interval_ms",
            raw.interval_ms,
            DEFAULT_CHECK_INTERVAL,
            (500, DAY_MS),
        )?,
        recheck: millis("recheck_ms", raw.recheck_ms, DEFAULT_RECHECK, (200, DAY_MS))?,
        timeout: millis(
            "timeout_ms",
            raw.timeout_ms,
            DEFAULT_PROBE_TIMEOUT,
            (200, 10_000),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawNetwork {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_bounds() {
        let n = network_config(raw(""), true).unwrap();
        assert_eq!(n.portal_probe, None);
        assert_eq!(n.stun, None);
        assert_eq!(
            (n.interval, n.recheck, n.timeout),
            (
                DEFAULT_CHECK_INTERVAL,
                DEFAULT_RECHECK,
                DEFAULT_PROBE_TIMEOUT
            )
        );
        let n = network_config(
            raw("portal_probe = \"http://10.0.0.1:8080/generate_204\"\nstun = \"10.0.0.1:3478\"\ninterval_ms = 1000\nrecheck_ms = 500\ntimeout_ms = 1500"),
            true,
        )
        .unwrap();
        assert_eq!(
            n.portal_probe,
            Some(("10.0.0.1:8080".parse().unwrap(), "/generate_204".into()))
        );
        assert_eq!(n.stun, Some("10.0.0.1:3478".parse().unwrap()));
        assert_eq!(n.timeout, Duration::from_millis(1500));
        assert!(
            network_config(raw(""), false).is_err(),
            "needs [management]"
        );
        for bad in [
            "interval_ms = 10",
            "recheck_ms = 1",
            "timeout_ms = 60000",
            "stun = \"0.0.0.0:3478\"",
            "portal_probe = \"https://10.0.0.1/\"",
        ] {
            assert!(network_config(raw(bad), true).is_err(), "{bad}");
        }
        assert!(toml::from_str::<RawNetwork>("enabled = false").is_err());
    }

    #[test]
    fn probe_urls() {
        assert_eq!(
            parse_probe_url("http://192.0.2.1/generate_204").unwrap(),
            ("192.0.2.1:80".parse().unwrap(), "/generate_204".into())
        );
        assert_eq!(
            parse_probe_url("http://[::1]:8080").unwrap(),
            ("[::1]:8080".parse().unwrap(), "/".into())
        );
        for bad in [
            "http://portal.example/",
            "http://10.0.0.1:0/",
            "http://0.0.0.0/",
            "http://10.0.0.1/a b",
            "http://10.0.0.1/a?x=1",
            "http://10.0.0.1//",
            "ftp://10.0.0.1/",
        ] {
            assert!(parse_probe_url(bad).is_err(), "{bad}");
        }
    }
}
