//! The gateway's configuration: one TOML file, parsed once at start into
//! validated types. Unknown keys are errors (a typo must not silently fall
//! back to a default). Every default is spelled out here and is the safe
//! one; there is no setting that turns SRTP or client certificates off.
//!
//! ```toml
//! [phone]                       # the phone-side listener (SIP over TLS)
//! listen = "127.0.0.1:5061"
//! certificate = "gateway-cert.pem"
//! key = "gateway-key.pem"
//! token_ca = "token-ca.pem"
//! # registry = "registry.toml"  # labs only: an unsigned registry instead of [policy]
//! media_address = "127.0.0.1"
//! # advertise_address = "127.0.0.1" # behind a NAT: the address phones reach (SDP, Contact)
//! # suites = ["AEAD_AES_256_GCM", "AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"]
//! # require_post_quantum = false
//!
//! [media]
//! # port_min = 30000
//! # port_max = 39999
//! # inactivity_secs = 30
//! # connect_latched = false    # a connected sibling per latched socket
//! #                            # (SO_REUSEPORT: for a kit whose gateway is
//! #                            # alone on its media range, e.g. the appliance)
//! # busy_poll = false          # the relay thread never sleeps (a core of its own)
//!
//! [[trunk]]
//! name = "echo"
//! connect = "127.0.0.1:5071"    # where the bridge (or its proxy) listens;
//! #                             # or "NAME:PORT" resolved through [dns], or
//! # srv = true                  # a bare NAME: _sips._tcp.NAME SRV (see
//! #                             # config::Connect)
//! host = "bridge.dialgate.test" # TLS server name and SIP host
//! ca = "bridge-ca.pem"          # or: pin_sha256 = "<64 hex digits>"
//! media_address = "127.0.0.1"    # or "0.0.0.0": the uplink's address, as the
//! #                             # trunk's connection leaves from (DHCP uplinks)
//! # tls = "1.3"                 # or "1.2" for Webex-class trunks
//! # suites = ["AES_CM_128_HMAC_SHA1_80"]
//! # webex = false
//! # routes = ["192.0.2.8:5062"] # Record-Route hops in-dialog requests may go
//! #                             # to (at most 8, no duplicates): the
//! #                             # appliance's firewall opens these and no other
//!
//! [[directory]]
//! alias = "echo"
//! uri = "sip:echo@bridge.dialgate.test"
//! trunk = "echo"
//! # pin = "1234#"               # sent as RFC 4733 events, never shown
//!
//! [limits]
//! # calls_per_token = 4
//! # calls_per_address = 8
//! # attempts_per_minute_per_address = 30
//! # attempts_per_minute_per_token = 20
//! # max_calls = 64
//! # loopback_exempt = false
//!
//! [policy]                      # signed policy bundles (see crate::policy)
//! key = "policy-key.pub.pem"    # the HQ policy key, pinned
//! kit_id = "kit-0001"
//! bundle = "policy.bundle"      # watched; also read on SIGHUP
//! state = "state/policy.state"  # anti-rollback state; never delete it
//! # grace_secs = 0
//! # trunk_media_address = "192.0.2.10" # media address of trunks the policy
//! #                             # adds (the uplink's); default: the
//! #                             # [bridge_listener] address, else a policy
//! #                             # that adds a trunk is refused
//!
//! # [management]              # polls HQ's signed repository over mTLS
//! # url = "https://192.0.2.20/repo/" # (see config::ManagementConfig)
//!
//! # [network]                 # the network check (see config::NetworkConfig)
//! # stun = "192.0.2.20:3478"  # needs [management]; absent: no check
//!
//! # [dns]                     # resolvers for trunks by name (config::DnsConfig)
//! # servers = ["192.168.77.1"] # IP or IP:PORT; timeout_ms = 2000
//!
//! # [time]                      # the time floor (see config::TimeConfig)
//! # floor = "state/time.floor"  # default: next to [policy] state
//! # stale_after_s = 86400       # no signed time for longer: status, audit
//!
//! # [status]                  # pushes the kit's status to a Pushgateway
//! # url = "https://192.0.2.20:9091/" # over mTLS (see config::StatusConfig)
//!
//! # [bridge_listener]           # for bridges that send in-dialog requests
//! # listen = "192.0.2.10:5062"  # on a connection of their own (the Contact
//! # certificate = "gateway-cert.pem"  # they get); only bridges whose
//! # key = "gateway-key.pem"     # certificate their trunk trusts get in
//! ```
//!
//! With `[policy]`, the token registry, the meeting directory and trunk
//! settings come from the signed bundle: `phone.registry` and
//! `[[directory]]` must then be absent. A policy may also add trunks; they
//! take their media address from `policy.trunk_media_address` (see
//! [`PolicyConfig::trunk_media_address`]) and have no client identity.
//!
//! Relative paths are relative to the configuration file's folder.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::admission::{KeyHash, PqPolicy, TrunkTls, TrunkTrust};
use crate::srtp::Suite;

mod audit;
mod dns;
mod lists;
mod management;
mod network;
mod parse;
mod status;
#[cfg(test)]
mod tests;
mod time;

pub use audit::{parse_siem_url, AuditConfig, SiemConfig, SiemTransport, DEFAULT_SPOOL_BYTES};
pub use dns::{
    lease_servers, Connect, DnsConfig, DEFAULT_DNS_TIMEOUT, MAX_DNS_SERVERS, MAX_LEASE_FILE,
};
pub use lists::{load_registry, parse_directory, parse_registry, AliasGrants, TOKEN_ORIGINS};
pub use management::{
    check_server_name, parse_management_url, ManagementConfig, DEFAULT_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
};
pub use network::{
    parse_probe_url, NetworkConfig, DEFAULT_CHECK_INTERVAL, DEFAULT_PROBE_TIMEOUT, DEFAULT_RECHECK,
};
pub use status::{StatusConfig, DEFAULT_PUSH_INTERVAL, MIN_PUSH_INTERVAL};
pub use time::{TimeConfig, DEFAULT_STALE_AFTER};

/// How the parser reads the files a configuration names (CA
/// certificates, the pinned policy key): the shell passes the real file
/// system, tests a map. This crate never opens a file itself.
pub trait ReadFile {
    /// The whole content of `path`.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML, or a key is unknown or of the wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Well-formed but not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending setting, as `section.key`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    phone: RawPhone,
    #[serde(default)]
    media: RawMedia,
    #[serde(default)]
    trunk: Vec<RawTrunk>,
    #[serde(default)]
    directory: Vec<RawDirectory>,
    #[serde(default)]
    limits: RawLimits,
    policy: Option<RawPolicy>,
    bridge_listener: Option<RawBridgeListener>,
    audit: Option<audit::RawAudit>,
    management: Option<management::RawManagement>,
    network: Option<network::RawNetwork>,
    dns: Option<dns::RawDns>,
    #[serde(default)]
    time: time::RawTime,
    status: Option<status::RawStatus>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBridgeListener {
    listen: SocketAddr,
    certificate: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    key: PathBuf,
    kit_id: String,
    bundle: PathBuf,
    state: PathBuf,
    #[serde(default)]
    grace_secs: u64,
    trunk_media_address: Option<IpAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhone {
    listen: SocketAddr,
    certificate: PathBuf,
    key: PathBuf,
    token_ca: PathBuf,
    registry: Option<PathBuf>,
    media_address: IpAddr,
    advertise_address: Option<IpAddr>,
    suites: Option<Vec<String>>,
    #[serde(default)]
    require_post_quantum: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    port_min: Option<u16>,
    port_max: Option<u16>,
    inactivity_secs: Option<u64>,
    connect_latched: Option<bool>,
    busy_poll: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    name: String,
    connect: String,
    #[serde(default)]
    srv: bool,
    host: String,
    ca: Option<PathBuf>,
    pin_sha256: Option<String>,
    media_address: IpAddr,
    tls: Option<String>,
    suites: Option<Vec<String>>,
    #[serde(default)]
    webex: bool,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    #[serde(default)]
    routes: Vec<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    alias: String,
    uri: String,
    trunk: String,
    pin: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    calls_per_token: Option<u32>,
    calls_per_address: Option<u32>,
    attempts_per_minute_per_address: Option<u32>,
    attempts_per_minute_per_token: Option<u32>,
    max_calls: Option<u32>,
    #[serde(default)]
    loopback_exempt: bool,
}

/// The phone-side suites when none are configured, strongest first.
pub const DEFAULT_PHONE_SUITES: [Suite; 3] = [
    Suite::AeadAes256Gcm,
    Suite::AeadAes128Gcm,
    Suite::AesCm128HmacSha1_80,
];
/// The trunk suites when none are configured (what bridges commonly take).
pub const DEFAULT_TRUNK_SUITES: [Suite; 1] = [Suite::AesCm128HmacSha1_80];

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Phone side.
    pub phone: PhoneConfig,
    /// Media relay.
    pub media: MediaConfig,
    /// Trunks by name.
    pub trunks: HashMap<String, TrunkConfig>,
    /// Meeting directory by alias.
    pub directory: HashMap<String, DirectoryEntry>,
    /// Admission limits.
    pub limits: Limits,
    /// Signed policy bundles: where the registry and the directory come
    /// from when set (then `phone.registry` and `[[directory]]` are absent).
    pub policy: Option<PolicyConfig>,
    /// Where bridges that open their own connection for in-dialog requests
    /// reach the kit (advertised as the Contact of calls to bridges).
    pub bridge_listener: Option<BridgeListenerConfig>,
    /// The audit trail (`[audit]`); `None`: records go to the console
    /// only, which a fielded kit never does (`docs/audit.md`).
    pub audit: Option<AuditConfig>,
    /// The signed repository at home the kit polls (`[management]`);
    /// `None`: policies arrive only as files at `[policy] bundle`.
    pub management: Option<ManagementConfig>,
    /// The network check before calls (`[network]`, needs
    /// `[management]`); `None`: no check, calls admitted as before.
    pub network: Option<NetworkConfig>,
    /// The resolvers for trunks by name (`[dns]`); `None`: every trunk
    /// must be an IP literal.
    pub dns: Option<DnsConfig>,
    /// The time floor (`[time]`).
    pub time: TimeConfig,
    /// The Pushgateway the kit pushes its status to (`[status]`); `None`:
    /// no status leaves the kit.
    pub status: Option<StatusConfig>,
}

/// The bridge-side listener (`[bridge_listener]`): on the uplink, for
/// bridges that send in-dialog requests (BYE, re-INVITE) on a connection of
/// their own rather than the one the kit opened. Only bridges whose
/// certificate their trunk trusts get in.
#[derive(Debug, Clone)]
pub struct BridgeListenerConfig {
    /// Address to bind; also the Contact given to bridges.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub certificate: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
}

/// Signed policy bundles (`[policy]`). See [`crate::policy`].
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// The pinned policy key, the kit id and the grace period.
    pub trust: crate::policy::Trust,
    /// Where new bundles are placed (watched, and read on SIGHUP).
    pub bundle: PathBuf,
    /// The anti-rollback state (on the data partition). Never deleted.
    pub state: PathBuf,
    /// The local media address of trunks a policy adds (they are not in
    /// the configuration, so nothing else says which interface their media
    /// uses): `policy.trunk_media_address`, else the `[bridge_listener]`
    /// address (the uplink's, by its own definition). `None`: a policy
    /// that adds a trunk is refused.
    pub trunk_media_address: Option<IpAddr>,
}

impl PolicyConfig {
    /// Where the gateway keeps a copy of the last bundle it applied: next
    /// to the anti-rollback state, with the extension `applied`. The
    /// gateway falls back to it at start when the bundle in place is
    /// refused; the appliance's PID 1 watches it to open the firewall for
    /// the trunks in force (verifying it itself: the file is not trusted).
    pub fn applied_copy(&self) -> PathBuf {
        self.state.with_extension("applied")
    }
}

/// The phone-side listener.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// Address the SIP/TLS listener binds (only the phone interface).
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub certificate: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// The token CA (PEM).
    pub token_ca: PathBuf,
    /// The unsigned token registry file (labs and tests), when the kit
    /// does not take signed policy bundles.
    pub registry: Option<PathBuf>,
    /// Address media sockets bind and SDP advertises on the phone side.
    pub media_address: IpAddr,
    /// Where phones reach this gateway when a NAT sits between (the
    /// appliance under qemu user networking): put into SDP and Contact
    /// towards phones instead of the bound addresses (ports unchanged).
    /// `None` (the default): the bound addresses are advertised.
    pub advertise_address: Option<IpAddr>,
    /// SRTP suites accepted from phones, preferred first.
    pub suites: Vec<Suite>,
    /// Post-quantum key exchange policy.
    pub pq: PqPolicy,
}

/// Media relay settings.
#[derive(Debug, Clone, Copy)]
pub struct MediaConfig {
    /// First media port.
    pub port_min: u16,
    /// Last media port.
    pub port_max: u16,
    /// No authenticated media for this long ends a call.
    pub inactivity: Duration,
    /// Each latched media socket gets a sibling `connect()`ed to its far
    /// end (`SO_REUSEPORT`; off by default: another process of the same
    /// user on the same range would share the ports instead of being
    /// refused them). `docs/benchmarks.md`: about −4 % CPU per packet.
    pub connect_latched: bool,
    /// The relay thread spins on its poll instead of sleeping: for a core
    /// dedicated to it (it then uses all of that core). Off by default.
    pub busy_poll: bool,
}

/// A trunk to a conference bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Its name, referenced by directory entries.
    pub name: String,
    /// Where to connect: an IP literal, or a name resolved through
    /// `[dns]` at each connect (never in a signed policy's trunks, which
    /// stay IP literals). A name is only where to try: the TLS check below
    /// is the same.
    pub connect: Connect,
    /// TLS server name and SIP host of the bridge.
    pub host: String,
    /// How the bridge's certificate is trusted.
    pub trust: TrunkTrust,
    /// Address media sockets bind and SDP advertises towards the bridge.
    /// The wildcard (`0.0.0.0`, `::`): the address the trunk's connection
    /// leaves from, learnt when it connects (the call core's
    /// `Input::TrunkLocal`); calls before that get 503.
    pub media_address: IpAddr,
    /// TLS versions.
    pub tls: TrunkTls,
    /// SRTP suites offered to the bridge, preferred first.
    pub suites: Vec<Suite>,
    /// Webex-class behaviour (sips: for lookup, sip: in messages,
    /// Record-Route honoured for ACK/BYE).
    pub webex: bool,
    /// The kit's client certificate and key for this trunk, if any.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// The Record-Route hops in-dialog requests may be sent to, besides
    /// `connect` (a bridge whose Record-Route names another address, such
    /// as Webex's port 5062). An explicit allow-list: the appliance's
    /// firewall opens exactly these (the B2BUA is to use no hop not
    /// listed).
    /// At most [`MAX_ROUTES`], no duplicates ([`check_routes`]); empty by
    /// default.
    pub routes: Vec<SocketAddr>,
}

/// Most Record-Route hops one trunk may list ([`TrunkConfig::routes`]).
pub const MAX_ROUTES: usize = 8;

/// Checks a trunk's Record-Route allow-list: at most [`MAX_ROUTES`]
/// entries, no duplicates, each a concrete address and port. Shared with
/// the signed policy bundle; `Err` is the reason, for the caller to name
/// its field.
pub fn check_routes(routes: &[SocketAddr]) -> Result<(), String> {
    if routes.len() > MAX_ROUTES {
        return Err(format!("at most {MAX_ROUTES} Record-Route hops"));
    }
    for (i, r) in routes.iter().enumerate() {
        if r.ip().is_unspecified() || r.port() == 0 {
            return Err(format!("{r}: a concrete address and port"));
        }
        if routes[..i].contains(r) {
            return Err(format!("{r} listed twice"));
        }
    }
    Ok(())
}

/// A meeting directory entry.
#[derive(Clone)]
pub struct DirectoryEntry {
    /// The alias phones dial.
    pub alias: String,
    /// The bridge URI to call.
    pub uri: String,
    /// The trunk to use.
    pub trunk: String,
    /// Meeting PIN sent as RFC 4733 events after answer. Secret.
    pub pin: Option<String>,
}

impl std::fmt::Debug for DirectoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryEntry")
            .field("alias", &self.alias)
            .field("uri", &self.uri)
            .field("trunk", &self.trunk)
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Checks a directory entry's own fields (its trunk is checked by the
/// caller, which knows the trunks). Shared with the signed policy bundle so
/// that a kit accepts the same entries from either source. The PIN is never
/// part of an error.
pub fn check_directory_entry(d: &DirectoryEntry) -> Result<(), ConfigError> {
    let field = format!("directory.{}", d.alias);
    if !(d.uri.starts_with("sip:") || d.uri.starts_with("sips:")) {
        return Err(invalid(format!("{field}.uri"), "a sip: or sips: URI"));
    }
    if let Some(pin) = &d.pin {
        if pin.is_empty()
            || !pin
                .chars()
                .all(|c| c.is_ascii_digit() || "*#ABCD".contains(c))
        {
            return Err(invalid(format!("{field}.pin"), "digits, *, #, A-D only"));
        }
    }
    if d.alias.is_empty()
        || !d
            .alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(invalid(
            field,
            "aliases are letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// Admission limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Concurrent calls per token.
    pub calls_per_token: u32,
    /// Concurrent calls per source address.
    pub calls_per_address: u32,
    /// Call attempts per minute per source address.
    pub attempts_per_minute_per_address: u32,
    /// Call attempts per minute per token.
    pub attempts_per_minute_per_token: u32,
    /// Concurrent calls in all.
    pub max_calls: u32,
    /// Exempt loopback sources from the attempt rate limit (demo kits).
    pub loopback_exempt: bool,
}

fn suites(
    field: &str,
    names: Option<Vec<String>>,
    default: &[Suite],
) -> Result<Vec<Suite>, ConfigError> {
    let Some(names) = names else {
        return Ok(default.to_vec());
    };
    if names.is_empty() {
        return Err(invalid(
            field,
            "needs at least one suite (SRTP cannot be turned off)",
        ));
    }
    let mut out = Vec::new();
    for n in names {
        let s = Suite::from_name(&n).map_err(|_| {
            invalid(
                field,
                format!(
                    "unknown suite {n:?}; supported: {}",
                    Suite::ALL.map(Suite::name).join(", ")
                ),
            )
        })?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// A [`ReadFile`] without files: for configurations that name none (pins
/// instead of CA files, a lab registry instead of `[policy]`) and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl ReadFile for NoFiles {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: no files here", path.display()),
        ))
    }
}
