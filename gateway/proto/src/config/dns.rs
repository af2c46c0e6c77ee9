//! `[dns]` and trunks by name (`docs/network.md`, "DNS").
//!
//! ```toml
//! [dns]
//! servers = ["192.168.77.1"]   # the network's resolvers, IP or IP:PORT (port 53)
//! # lease_file = "/tmp/lease-dns"  # the uplink lease's resolvers, one IP a line
//! #                            # (PID 1 writes it on the appliance), asked
//! #                            # first; with it, servers may be empty
//! # timeout_ms = 2000          # one resolution's whole bound (200..=10000)
//!
//! [[trunk]]
//! connect = "bridge.hotel.test:5061"  # a DNS name and port, resolved at each connect
//! # srv = true                 # instead: connect = "hotel.test", resolved as
//! #                            # _sips._tcp.hotel.test SRV (RFC 3263 §4.2)
//! ```
//!
//! A section of its own rather than a key of `[network]`: `[network]` turns
//! the network check on and needs `[management]`; a kit resolving its
//! bridges' names needs neither. What a resolver answers is only where to
//! try: the trunk's TLS check (its pinned key or CA, its `host` name) is
//! the same as for an IP literal. The DHCP lease's servers come in through
//! `lease_file` ([`lease_servers`] reads it; the shell at each resolution).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::dns::Name;

/// The default bound of one resolution.
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// The most resolvers listed.
pub const MAX_DNS_SERVERS: usize = 4;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    #[serde(default)]
    servers: Vec<String>,
    lease_file: Option<PathBuf>,
    timeout_ms: Option<u64>,
}

/// The resolvers the kit asks for the names in its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Asked in turn, after the lease's (0 to [`MAX_DNS_SERVERS`]; at
    /// least one without `lease_file`).
    pub servers: Vec<SocketAddr>,
    /// Where the uplink lease's resolvers are written (an absolute path;
    /// [`lease_servers`]): read at each resolution, asked first.
    pub lease_file: Option<PathBuf>,
    /// One resolution's whole bound.
    pub timeout: Duration,
}

/// The largest lease file read; the rest is ignored.
pub const MAX_LEASE_FILE: usize = 4096;

/// The resolvers of a lease file: one IP address a line (port 53), at
/// most [`MAX_DNS_SERVERS`], each once; a line that is not a unicast
/// address is skipped (the file is PID 1's, but a torn or foreign file
/// must not put anything else on the list).
pub fn lease_servers(text: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    let mut end = MAX_LEASE_FILE.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    for line in text.lines() {
        let Ok(ip) = line.trim().parse::<IpAddr>() else {
            continue;
        };
        let a = SocketAddr::new(ip, 53);
        let bad = ip.is_unspecified() || ip.is_multicast() || ip.is_loopback();
        if !bad && !out.contains(&a) && out.len() < MAX_DNS_SERVERS {
            out.push(a);
        }
    }
    out
}

pub(super) fn dns_config(raw: RawDns) -> Result<DnsConfig, ConfigError> {
    let none = raw.servers.is_empty() && raw.lease_file.is_none();
    if none || raw.servers.len() > MAX_DNS_SERVERS {
        return Err(invalid(
            "dns.servers",
            format!("1 to {MAX_DNS_SERVERS} resolvers (or lease_file)"),
        ));
    }
    if raw.lease_file.as_ref().is_some_and(|p| !p.is_absolute()) {
        return Err(invalid("dns.lease_file", "an absolute path"));
    }
    let mut servers = Vec::new();
    for s in &raw.servers {
        let addr = s
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, 53))
            .or_else(|_| s.parse::<SocketAddr>())
            .map_err(|_| invalid("dns.servers", format!("{s:?}: an IP or IP:PORT")))?;
        if addr.ip().is_unspecified() || addr.ip().is_multicast() || addr.port() == 0 {
            return Err(invalid(
                "dns.servers",
                format!("{s:?}: a unicast address and a port"),
            ));
        }
        if !servers.contains(&addr) {
            servers.push(addr);
        }
    }
    let timeout = Duration::from_millis(raw.timeout_ms.unwrap_or(2000));
    if !(200..=10_000).contains(&timeout.as_millis()) {
        return Err(invalid("dns.timeout_ms", "between 200 and 10000"));
    }
    Ok(DnsConfig {
        servers,
        lease_file: raw.lease_file,
        timeout,
    })
}

/// Where a trunk connects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Connect {
    /// An IP literal and port: no resolution.
    Addr(SocketAddr),
    /// A DNS name (A, then AAAA) and a port, resolved at each connect.
    Name {
        /// The name.
        host: Name,
        /// The port.
        port: u16,
    },
    /// `_sips._tcp.<name>` SRV (RFC 3263 §4.2, RFC 2782 order), resolved
    /// at each connect.
    Srv {
        /// The SRV name (with `_sips._tcp.`).
        name: Name,
    },
}

impl Connect {
    /// The address, when it is an IP literal.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Connect::Addr(a) => Some(*a),
            _ => None,
        }
    }

    /// Whether connecting needs a resolver.
    pub fn needs_dns(&self) -> bool {
        !matches!(self, Connect::Addr(_))
    }

    /// Parses a trunk's `connect` (`IP:PORT`, `[IPv6]:PORT`, `name:PORT`;
    /// with `srv`, a bare `name`).
    pub fn parse(s: &str, srv: bool) -> Result<Connect, String> {
        if srv {
            let name = Name::parse(s)
                .map_err(|e| format!("{e}; with srv = true, a bare name (no port)"))?;
            return name
                .sips_srv()
                .map(|name| Connect::Srv { name })
                .map_err(|e| e.to_string());
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            if a.ip().is_unspecified() || a.port() == 0 {
                return Err(format!("{s}: a concrete address and port"));
            }
            return Ok(Connect::Addr(a));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected IP:PORT or NAME:PORT"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?}: a port of 1 to 65535"))?;
        if host.contains('_') {
            return Err(format!("{s:?}: a host name has no '_'"));
        }
        let host = Name::parse(host).map_err(|e| e.to_string())?;
        Ok(Connect::Name { host, port })
    }
}

impl std::fmt::Display for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connect::Addr(a) => write!(f, "{a}"),
            Connect::Name { host, port } => write!(f, "{host}:{port}"),
            Connect::Srv { name } => write!(f, "{name} SRV"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_forms() {
        assert_eq!(
            Connect::parse("192.0.2.1:5061", false),
            Ok(Connect::Addr("192.0.2.1:5061".parse().unwrap()))
        );
        assert_eq!(
            Connect::parse("[2001:db8::1]:5061", false),
            Ok(Connect::Addr("[2001:db8::1]:5061".parse().unwrap()))
        );
        let named = Connect::parse("Bridge.Hotel.Test:5071", false).unwrap();
        assert_eq!(named.to_string(), "bridge.hotel.test:5071");
        assert!(named.needs_dns() && named.addr().is_none());
        let srv = Connect::parse("hotel.test", true).unwrap();
        assert_eq!(srv.to_string(), "_sips._tcp.hotel.test SRV");
        for (bad, srv) in [
            ("bridge.hotel.test", false),
            ("bridge.hotel.test:0", false),
            ("bridge.hotel.test:70000", false),
            ("0.0.0.0:5061", false),
            ("10.0.0.1:0", false),
            ("-x.test:5061", false),
            ("_sips._tcp.x.test:5061", false),
            ("a b:5061", false),
            ("10.0.0.1", false),
            ("hotel.test:5061", true),
            ("", true),
        ] {
            assert!(Connect::parse(bad, srv).is_err(), "{bad} {srv}");
        }
    }

    fn raw(text: &str) -> RawDns {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn servers_and_bounds() {
        let d = dns_config(raw(
            "servers = [\"10.0.0.53\", \"10.0.0.54:5353\", \"10.0.0.53\"]",
        ))
        .unwrap();
        assert_eq!(
            d.servers,
            vec![
                "10.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "10.0.0.54:5353".parse().unwrap()
            ]
        );
        assert_eq!(d.timeout, DEFAULT_DNS_TIMEOUT);
        for bad in [
            "servers = []",
            "servers = [\"a.b\"]",
            "servers = [\"0.0.0.0\"]",
            "servers = [\"224.0.0.1\"]",
            "servers = [\"1.1.1.1\", \"1.1.1.2\", \"1.1.1.3\", \"1.1.1.4\", \"1.1.1.5\"]",
            "servers = [\"1.1.1.1\"]\ntimeout_ms = 50",
            "",
            "lease_file = \"lease-dns\"",
        ] {
            assert!(dns_config(raw(bad)).is_err(), "{bad}");
        }
        // The lease's servers alone.
        let d = dns_config(raw("lease_file = \"/tmp/lease-dns\"")).unwrap();
        assert!(d.servers.is_empty());
        assert_eq!(d.lease_file, Some(PathBuf::from("/tmp/lease-dns")));
    }

    #[test]
    fn a_lease_file_gives_at_most_four_unicast_servers() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            lease_servers("192.168.77.1\n 192.168.77.2 \n192.168.77.1\n"),
            [a("192.168.77.1:53"), a("192.168.77.2:53")]
        );
        assert_eq!(lease_servers(""), []);
        assert_eq!(
            lease_servers("0.0.0.0\n127.0.0.1\n224.0.0.1\n1.1.1.1:53\nx\n2001:db8::1\n"),
            [a("[2001:db8::1]:53")]
        );
        let many: String = (1..=9).map(|i| format!("10.0.0.{i}\n")).collect();
        assert_eq!(lease_servers(&many).len(), MAX_DNS_SERVERS);
        // Past the bound, nothing more is read.
        let long = format!("{}\n10.0.0.1\n", " ".repeat(MAX_LEASE_FILE));
        assert_eq!(lease_servers(&long), []);
    }
}
