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
//!
//! [[trunk]]
//! name = "echo"
//! connect = "127.0.0.1:5071"    # where the bridge (or its proxy) listens
//! host = "bridge.dialgate.test" # TLS server name and SIP host
//! ca = "bridge-ca.pem"          # or: pin_sha256 = "<64 hex digits>"
//! media_address = "127.0.0.1"
//! # tls = "1.3"                 # or "1.2" for Webex-class trunks
//! # suites = ["AES_CM_128_HMAC_SHA1_80"]
//! # webex = false
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
//!
//! # [bridge_listener]           # for bridges that send in-dialog requests
//! # listen = "192.0.2.10:5062"  # on a connection of their own (the Contact
//! # certificate = "gateway-cert.pem"  # they get); only bridges whose
//! # key = "gateway-key.pem"     # certificate their trunk trusts get in
//! ```
//!
//! With `[policy]`, the token registry, the meeting directory and trunk
//! settings come from the signed bundle: `phone.registry` and
//! `[[directory]]` must then be absent.
//!
//! Relative paths are relative to the configuration file's folder.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::srtp::Suite;
use crate::tls::{KeyHash, PqPolicy, Registry, TokenEntry, TrunkTls, TrunkTrust};

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    name: String,
    connect: SocketAddr,
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
}

/// A trunk to a conference bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Its name, referenced by directory entries.
    pub name: String,
    /// Where to connect.
    pub connect: SocketAddr,
    /// TLS server name and SIP host of the bridge.
    pub host: String,
    /// How the bridge's certificate is trusted.
    pub trust: TrunkTrust,
    /// Address media sockets bind and SDP advertises towards the bridge.
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
pub(crate) fn check_directory_entry(d: &DirectoryEntry) -> Result<(), ConfigError> {
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

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text; relative paths are taken
    /// from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: "<config>".into(),
            message: e.to_string(),
        })?;
        let p = raw.phone;
        let phone = PhoneConfig {
            listen: p.listen,
            certificate: resolve(base, p.certificate),
            key: resolve(base, p.key),
            token_ca: resolve(base, p.token_ca),
            registry: p.registry.map(|r| resolve(base, r)),
            media_address: p.media_address,
            advertise_address: p.advertise_address,
            suites: suites("phone.suites", p.suites, &DEFAULT_PHONE_SUITES)?,
            pq: if p.require_post_quantum {
                PqPolicy::Require
            } else {
                PqPolicy::Prefer
            },
        };
        if phone.advertise_address.is_some_and(|a| a.is_unspecified()) {
            return Err(invalid(
                "phone.advertise_address",
                "must be an address phones can reach, not 0.0.0.0/::",
            ));
        }
        if phone.media_address.is_unspecified() {
            return Err(invalid(
                "phone.media_address",
                "must be the phone interface's address, not 0.0.0.0/::",
            ));
        }

        let m = raw.media;
        let media = MediaConfig {
            port_min: m.port_min.unwrap_or(30000),
            port_max: m.port_max.unwrap_or(39999),
            inactivity: Duration::from_secs(m.inactivity_secs.unwrap_or(30)),
        };
        if media.port_min < 1024
            || media.port_max < media.port_min
            || media.port_max - media.port_min < 3
        {
            return Err(invalid(
                "media.port_min/port_max",
                "need an unprivileged range of at least 4 ports",
            ));
        }
        if media.inactivity < Duration::from_secs(5) || media.inactivity > Duration::from_secs(3600)
        {
            return Err(invalid(
                "media.inactivity_secs",
                "must be between 5 and 3600",
            ));
        }

        let mut trunks = HashMap::new();
        for t in raw.trunk {
            let field = format!("trunk.{}", t.name);
            let trust = match (t.ca, t.pin_sha256) {
                (Some(ca), None) => TrunkTrust::Ca(
                    crate::tls::load_certs(&resolve(base, ca))
                        .map_err(|e| invalid(format!("{field}.ca"), e.to_string()))?,
                ),
                (None, Some(pin)) => TrunkTrust::PinnedKey(
                    KeyHash::from_hex(&pin)
                        .map_err(|e| invalid(format!("{field}.pin_sha256"), e.to_string()))?,
                ),
                _ => return Err(invalid(field, "set exactly one of `ca` and `pin_sha256`")),
            };
            let tls = match t.tls.as_deref() {
                None | Some("1.3") => TrunkTls::Tls13,
                Some("1.2") => TrunkTls::Tls12Allowed,
                Some(v) => {
                    return Err(invalid(
                        format!("{field}.tls"),
                        format!("{v:?}: use \"1.3\" or \"1.2\""),
                    ))
                }
            };
            let client_identity = match (t.client_certificate, t.client_key) {
                (Some(c), Some(k)) => Some((resolve(base, c), resolve(base, k))),
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        field,
                        "client_certificate and client_key go together",
                    ))
                }
            };
            if t.host.is_empty() || t.host.contains(|c: char| c.is_whitespace() || c == '@') {
                return Err(invalid(format!("{field}.host"), "a host name or address"));
            }
            let trunk = TrunkConfig {
                suites: suites(&format!("{field}.suites"), t.suites, &DEFAULT_TRUNK_SUITES)?,
                name: t.name.clone(),
                connect: t.connect,
                host: t.host,
                trust,
                media_address: t.media_address,
                tls,
                webex: t.webex,
                client_identity,
            };
            if trunks.insert(t.name.clone(), trunk).is_some() {
                return Err(invalid(field, "trunk defined twice"));
            }
        }

        let mut directory = HashMap::new();
        for entry in directory_entries(raw.directory)? {
            if !trunks.contains_key(&entry.trunk) {
                return Err(invalid(
                    format!("directory.{}.trunk", entry.alias),
                    format!("no trunk named {:?}", entry.trunk),
                ));
            }
            directory.insert(entry.alias.clone(), entry);
        }

        let l = raw.limits;
        let limits = Limits {
            calls_per_token: l.calls_per_token.unwrap_or(4),
            calls_per_address: l.calls_per_address.unwrap_or(8),
            attempts_per_minute_per_address: l.attempts_per_minute_per_address.unwrap_or(30),
            attempts_per_minute_per_token: l.attempts_per_minute_per_token.unwrap_or(20),
            max_calls: l.max_calls.unwrap_or(64),
            loopback_exempt: l.loopback_exempt,
        };
        for (name, v) in [
            ("calls_per_token", limits.calls_per_token),
            ("calls_per_address", limits.calls_per_address),
            (
                "attempts_per_minute_per_address",
                limits.attempts_per_minute_per_address,
            ),
            (
                "attempts_per_minute_per_token",
                limits.attempts_per_minute_per_token,
            ),
            ("max_calls", limits.max_calls),
        ] {
            if v == 0 {
                return Err(invalid(format!("limits.{name}"), "must be at least 1"));
            }
        }
        let policy = match raw.policy {
            None => None,
            Some(rp) => Some(policy_config(base, rp)?),
        };
        match (&phone.registry, &policy) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "phone.registry",
                    "remove it: with [policy] the registry comes from the signed bundle",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "policy",
                    "set [policy] (signed bundles) or, for labs, phone.registry",
                ))
            }
            _ => {}
        }
        if policy.is_some() && !directory.is_empty() {
            return Err(invalid(
                "directory",
                "remove [[directory]]: with [policy] the directory comes from the signed bundle",
            ));
        }
        let bridge_listener = match raw.bridge_listener {
            None => None,
            Some(b) => {
                if b.listen.ip().is_unspecified() || b.listen.port() == 0 {
                    return Err(invalid(
                        "bridge_listener.listen",
                        "the uplink address and port bridges reach (it is their Contact), not 0.0.0.0 or port 0",
                    ));
                }
                if b.listen == phone.listen {
                    return Err(invalid(
                        "bridge_listener.listen",
                        "must differ from phone.listen",
                    ));
                }
                Some(BridgeListenerConfig {
                    listen: b.listen,
                    certificate: resolve(base, b.certificate),
                    key: resolve(base, b.key),
                })
            }
        };
        Ok(Config {
            phone,
            media,
            trunks,
            directory,
            limits,
            policy,
            bridge_listener,
        })
    }
}

fn policy_config(base: &Path, rp: RawPolicy) -> Result<PolicyConfig, ConfigError> {
    use crate::policy::{GracePeriod, PolicyKey, Trust};
    let key_path = resolve(base, rp.key);
    let pem = std::fs::read(&key_path).map_err(|source| ConfigError::Read {
        path: key_path.display().to_string(),
        source,
    })?;
    let pinned_key = PolicyKey::from_pem(&pem).map_err(|e| invalid("policy.key", e.to_string()))?;
    if rp.kit_id.is_empty()
        || rp.kit_id.len() > crate::policy::body::MAX_NAME_LEN
        || !rp
            .kit_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c))
    {
        return Err(invalid(
            "policy.kit_id",
            "1 to 128 letters, digits, '-', '_', '.', '@' and '+'",
        ));
    }
    let grace = GracePeriod::from_secs(rp.grace_secs)
        .map_err(|e| invalid("policy.grace_secs", e.to_string()))?;
    Ok(PolicyConfig {
        trust: Trust {
            pinned_key,
            kit_id: rp.kit_id,
            grace,
        },
        bundle: resolve(base, rp.bundle),
        state: resolve(base, rp.state),
    })
}

/// Reads the `[[directory]]` entries of a directory file (the home side's
/// `HQ/directory.toml`, signed into policy bundles). Each entry's own
/// fields are checked; trunks are checked by the kit that applies it.
pub fn parse_directory(text: &str) -> Result<Vec<DirectoryEntry>, ConfigError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawDirectoryFile {
        #[serde(default)]
        directory: Vec<RawDirectory>,
    }
    let raw: RawDirectoryFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: "<directory>".into(),
        message: e.to_string(),
    })?;
    directory_entries(raw.directory)
}

/// Directory entries with their own fields checked and no alias twice.
fn directory_entries(raw: Vec<RawDirectory>) -> Result<Vec<DirectoryEntry>, ConfigError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for d in raw {
        let entry = DirectoryEntry {
            alias: d.alias,
            uri: d.uri,
            trunk: d.trunk,
            pin: d.pin,
        };
        check_directory_entry(&entry)?;
        if !seen.insert(entry.alias.clone()) {
            return Err(invalid(
                format!("directory.{}", entry.alias),
                "alias defined twice",
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    token: Vec<RawToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    key_sha256: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    unattested: bool,
    // Written by `dialgatectl token enroll`; informational for the gateway
    // (the certificate itself carries the validity webpki enforces).
    origin: Option<String>,
    certificate_serial: Option<String>,
    not_before: Option<toml::value::Datetime>,
    not_after: Option<toml::value::Datetime>,
    attestation: Option<RawAttestation>,
}

/// A verified hardware attestation, as enrolment recorded it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttestation {
    format: String,
    slot: String,
    device_serial: u64,
    firmware: String,
    pin_policy: String,
    touch_policy: String,
}

/// How a registry entry's key was enrolled (`origin = ...`).
pub const TOKEN_ORIGINS: [&str; 2] = ["pkcs11", "software"];

/// Checks the enrolment record fields of one registry entry.
fn check_enrolment_fields(field: &str, t: &RawToken) -> Result<(), ConfigError> {
    if let Some(o) = &t.origin {
        if !TOKEN_ORIGINS.contains(&o.as_str()) {
            return Err(invalid(
                format!("{field}.origin"),
                format!("{o:?}: one of {TOKEN_ORIGINS:?}"),
            ));
        }
        if o == "software" && !t.unattested {
            return Err(invalid(
                format!("{field}.origin"),
                "a software key is always `unattested = true`",
            ));
        }
    }
    if let Some(s) = &t.certificate_serial {
        if s.is_empty() || s.len() > 40 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(
                format!("{field}.certificate_serial"),
                "hex digits, at most 20 octets",
            ));
        }
    }
    for (name, d) in [("not_before", &t.not_before), ("not_after", &t.not_after)] {
        if let Some(d) = d {
            if d.date.is_none() || d.time.is_none() || d.offset.is_none() {
                return Err(invalid(
                    format!("{field}.{name}"),
                    "a full date and time with offset, e.g. 2027-01-31T12:00:00Z",
                ));
            }
        }
    }
    if let Some(a) = &t.attestation {
        if t.unattested {
            return Err(invalid(
                format!("{field}.attestation"),
                "an entry is either attested or `unattested = true`, not both",
            ));
        }
        if a.format != "yubico-piv"
            || a.slot.len() != 2
            || !a.slot.chars().all(|c| c.is_ascii_hexdigit())
            || a.firmware.is_empty()
            || a.pin_policy.is_empty()
            || a.touch_policy.is_empty()
            || a.device_serial > u64::from(u32::MAX)
        {
            return Err(invalid(
                format!("{field}.attestation"),
                "format \"yubico-piv\" with slot, device_serial, firmware, pin_policy, touch_policy",
            ));
        }
    }
    Ok(())
}

/// The aliases each token may call, by token name.
pub type AliasGrants = HashMap<String, HashSet<String>>;

/// Reads a token registry file:
///
/// ```toml
/// [[token]]
/// name = "alice"
/// key_sha256 = "<64 hex digits: SHA-256 of the certificate's public key>"
/// aliases = ["echo"]
/// # revoked = false
/// # unattested = true   # no verified hardware attestation (a software key, or a token without one)
/// # Recorded by `dialgatectl token enroll` (all optional):
/// # origin = "pkcs11"             # or "software" (then unattested = true)
/// # certificate_serial = "5f0c..."  # hex
/// # not_before = 2026-05-01T10:00:00Z
/// # not_after = 2027-05-01T10:00:00Z
/// # attestation = { format = "yubico-piv", slot = "9a", device_serial = 12345678, firmware = "5.4.3", pin_policy = "once", touch_policy = "always" }
/// ```
pub fn load_registry(path: &Path) -> Result<(Registry, AliasGrants), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_registry(&text).map_err(|e| match e {
        ConfigError::Syntax { message, .. } => ConfigError::Syntax {
            path: path.display().to_string(),
            message,
        },
        other => other,
    })
}

/// Parses registry text (see [`load_registry`]).
pub fn parse_registry(text: &str) -> Result<(Registry, AliasGrants), ConfigError> {
    let raw: RawRegistry = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: "<registry>".into(),
        message: e.to_string(),
    })?;
    let mut registry = Registry::default();
    let mut grants = AliasGrants::new();
    let mut keys = HashSet::new();
    for t in raw.token {
        let field = format!("token.{}", t.name);
        check_enrolment_fields(&field, &t)?;
        let key = KeyHash::from_hex(&t.key_sha256)
            .map_err(|e| invalid(format!("{field}.key_sha256"), e.to_string()))?;
        if !keys.insert(key) || grants.contains_key(&t.name) {
            return Err(invalid(field, "token listed twice (by name or key)"));
        }
        registry.insert(
            key,
            TokenEntry {
                name: t.name.clone(),
                revoked: t.revoked,
            },
        );
        if t.unattested {
            tracing::info!(token = %t.name, key = %key, origin = t.origin.as_deref().unwrap_or("unknown"), "registry entry is unattested (no verified hardware attestation)");
        }
        grants.insert(t.name, t.aliases.into_iter().collect());
    }
    Ok((registry, grants))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[phone]
listen = "127.0.0.1:5061"
certificate = "c.pem"
key = "k.pem"
token_ca = "ca.pem"
registry = "registry.toml"
media_address = "127.0.0.1"

[[trunk]]
name = "echo"
connect = "127.0.0.1:5071"
host = "bridge.test"
pin_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
media_address = "127.0.0.1"

[[directory]]
alias = "echo"
uri = "sip:echo@bridge.test"
trunk = "echo"
pin = "1234#"
"#;

    #[test]
    fn minimal_config_gets_safe_defaults() {
        let c = Config::parse(MINIMAL, Path::new("/kit")).unwrap();
        assert_eq!(c.phone.suites, DEFAULT_PHONE_SUITES.to_vec());
        assert_eq!(c.phone.pq, PqPolicy::Prefer);
        assert_eq!(c.phone.registry, Some(PathBuf::from("/kit/registry.toml")));
        let t = &c.trunks["echo"];
        assert_eq!(t.suites, DEFAULT_TRUNK_SUITES.to_vec());
        assert_eq!(t.tls, TrunkTls::Tls13);
        assert!(!t.webex);
        assert_eq!((c.media.port_min, c.media.port_max), (30000, 39999));
        assert_eq!(c.media.inactivity, Duration::from_secs(30));
        assert_eq!(c.limits.calls_per_token, 4);
        assert!(!c.limits.loopback_exempt);
        let d = format!("{:?}", c.directory["echo"]);
        assert!(!d.contains("1234"), "PIN redacted in Debug: {d}");
    }

    #[test]
    fn advertise_address_is_optional_and_must_be_reachable() {
        assert_eq!(
            Config::parse(MINIMAL, Path::new("/kit"))
                .unwrap()
                .phone
                .advertise_address,
            None
        );
        let nat = MINIMAL.replace(
            "media_address = \"127.0.0.1\"\n\n[[trunk]]",
            "media_address = \"10.0.2.15\"\nadvertise_address = \"127.0.0.1\"\n\n[[trunk]]",
        );
        let c = Config::parse(&nat, Path::new("/kit")).unwrap();
        assert_eq!(
            c.phone.advertise_address,
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(c.phone.media_address.to_string(), "10.0.2.15");
        let err = Config::parse(
            &nat.replace("\"127.0.0.1\"\n\n", "\"0.0.0.0\"\n\n"),
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("phone.advertise_address"), "{err}");
    }

    #[test]
    fn dangerous_or_wrong_settings_are_refused_with_the_field_named() {
        let cases = [
            (MINIMAL.replace("listen", "listne"), "unknown field"),
            (
                MINIMAL.replace("pin = \"1234#\"", "pin = \"12x\""),
                "directory.echo.pin",
            ),
            (
                MINIMAL.replace("trunk = \"echo\"\npin", "trunk = \"nope\"\npin"),
                "directory.echo.trunk",
            ),
            (
                MINIMAL.replace(
                    "media_address = \"127.0.0.1\"\n\n[[trunk]]",
                    "media_address = \"127.0.0.1\"\nsuites = []\n\n[[trunk]]",
                ),
                "SRTP cannot be turned off",
            ),
            (
                MINIMAL.replace(
                    "media_address = \"127.0.0.1\"\n\n[[trunk]]",
                    "media_address = \"127.0.0.1\"\nsuites = [\"NULL_HMAC_SHA1_80\"]\n\n[[trunk]]",
                ),
                "unknown suite",
            ),
            (
                MINIMAL.replace("pin_sha256 = \"00", "pin_sha256 = \"0"),
                "pin_sha256",
            ),
            (
                MINIMAL.replace("pin_sha256", "ca = \"x.pem\"\npin_sha256"),
                "exactly one",
            ),
            (
                MINIMAL.replacen(
                    "media_address = \"127.0.0.1\"",
                    "media_address = \"0.0.0.0\"",
                    1,
                ),
                "phone interface",
            ),
            (
                format!("{MINIMAL}\n[media]\nport_min = 80\n"),
                "media.port_min",
            ),
            (
                format!("{MINIMAL}\n[limits]\nmax_calls = 0\n"),
                "limits.max_calls",
            ),
            (
                MINIMAL.replace("uri = \"sip:", "uri = \"http:"),
                "sip: or sips:",
            ),
        ];
        for (text, needle) in cases {
            let e = Config::parse(&text, Path::new("/"))
                .expect_err(needle)
                .to_string();
            assert!(e.contains(needle), "expected {needle:?} in {e:?}");
        }
    }

    #[test]
    fn registry_parses_and_refuses_duplicates() {
        let k1 = "11".repeat(32);
        let k2 = "22".repeat(32);
        let text = format!(
            "[[token]]\nname = \"alice\"\nkey_sha256 = \"{k1}\"\naliases = [\"echo\"]\nunattested = true\n\
             [[token]]\nname = \"mallory\"\nkey_sha256 = \"{k2}\"\nrevoked = true\n"
        );
        let (reg, grants) = parse_registry(&text).unwrap();
        assert_eq!(reg.len(), 2);
        assert_eq!(
            reg.active(&KeyHash::from_hex(&k1).unwrap()).unwrap().name,
            "alice"
        );
        assert!(reg.active(&KeyHash::from_hex(&k2).unwrap()).is_none());
        assert!(grants["alice"].contains("echo"));
        let dup = format!(
            "{text}[[token]]\nname = \"alice\"\nkey_sha256 = \"{}\"\n",
            "33".repeat(32)
        );
        assert!(parse_registry(&dup)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        // The same key twice, the first entry revoked, is still a duplicate.
        let dup_key = format!("{text}[[token]]\nname = \"bob\"\nkey_sha256 = \"{k2}\"\n");
        assert!(parse_registry(&dup_key)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        assert!(parse_registry("[[token]]\nname = \"x\"\nkey_sha256 = \"zz\"\n").is_err());
    }

    #[test]
    fn enrolment_records_parse_and_contradictions_are_refused() {
        let k = "44".repeat(32);
        let base =
            format!("[[token]]\nname = \"bob\"\nkey_sha256 = \"{k}\"\naliases = [\"echo\"]\n");
        let attested = format!(
            "{base}origin = \"pkcs11\"\ncertificate_serial = \"5f0c01\"\n\
             not_before = 2026-05-01T10:00:00Z\nnot_after = 2027-05-01T10:00:00Z\n\
             attestation = {{ format = \"yubico-piv\", slot = \"9a\", device_serial = 12345678, \
             firmware = \"5.4.3\", pin_policy = \"once\", touch_policy = \"always\" }}\n"
        );
        let (reg, _) = parse_registry(&attested).unwrap();
        assert_eq!(
            reg.active(&KeyHash::from_hex(&k).unwrap()).unwrap().name,
            "bob"
        );
        let software = format!("{base}origin = \"software\"\nunattested = true\n");
        assert!(parse_registry(&software).is_ok());
        let cases = [
            (
                format!("{base}origin = \"software\"\n"),
                "unattested = true",
            ),
            (format!("{base}origin = \"usb\"\n"), "token.bob.origin"),
            (
                attested.replace("origin = \"pkcs11\"", "unattested = true"),
                "not both",
            ),
            (attested.replace("5f0c01", "xyz"), "certificate_serial"),
            (
                attested.replace("2027-05-01T10:00:00Z", "2027-05-01"),
                "token.bob.not_after",
            ),
            (
                attested.replace("yubico-piv", "tpm"),
                "token.bob.attestation",
            ),
            (attested.replace("touch_policy", "touch"), "unknown field"),
        ];
        for (text, needle) in cases {
            let e = parse_registry(&text).expect_err(needle).to_string();
            assert!(e.contains(needle), "expected {needle:?} in {e:?}");
        }
    }
}
