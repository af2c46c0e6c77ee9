//! [`Config::parse`]: TOML text to the validated configuration.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::lists::directory_entries;
use super::*;

impl Config {
    /// Reads and validates a configuration file through `files`.
    pub fn load(path: &Path, files: &dyn ReadFile) -> Result<Config, ConfigError> {
        let text = read_text(path, files)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base, files).map_err(|e| e.at(path))
    }

    /// Parses and validates configuration text; relative paths are taken
    /// from `base`, and the files it names are read through `files`.
    pub fn parse(text: &str, base: &Path, files: &dyn ReadFile) -> Result<Config, ConfigError> {
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
            connect_latched: m.connect_latched.unwrap_or(false),
            busy_poll: m.busy_poll.unwrap_or(false),
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
                (Some(ca), None) => {
                    let path = resolve(base, ca);
                    let pem = files.read(&path).map_err(|source| ConfigError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                    TrunkTrust::Ca(crate::pem::certificates(&pem).map_err(|e| {
                        invalid(format!("{field}.ca"), format!("{}: {e}", path.display()))
                    })?)
                }
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
            check_routes(&t.routes).map_err(|reason| invalid(format!("{field}.routes"), reason))?;
            let connect = Connect::parse(&t.connect, t.srv)
                .map_err(|reason| invalid(format!("{field}.connect"), reason))?;
            if connect.needs_dns() && raw.dns.is_none() {
                return Err(invalid(
                    format!("{field}.connect"),
                    "a name needs [dns] servers to resolve it",
                ));
            }
            let trunk = TrunkConfig {
                suites: suites(&format!("{field}.suites"), t.suites, &DEFAULT_TRUNK_SUITES)?,
                name: t.name.clone(),
                connect,
                host: t.host,
                trust,
                media_address: t.media_address,
                tls,
                webex: t.webex,
                client_identity,
                routes: t.routes,
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
            Some(rp) => Some(policy_config(base, rp, files)?),
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
        let policy = policy.map(|mut p| {
            p.trunk_media_address = p
                .trunk_media_address
                .or(bridge_listener.as_ref().map(|b| b.listen.ip()));
            p
        });
        let audit = match raw.audit {
            None => None,
            Some(ra) => Some(super::audit::audit_config(
                base,
                ra,
                policy.as_ref().map(|p| p.trust.kit_id.as_str()),
            )?),
        };
        let management = match raw.management {
            None => None,
            Some(rm) => Some(super::management::management_config(
                base,
                rm,
                policy.as_ref().map(|p| p.trust.kit_id.as_str()),
                files,
            )?),
        };
        let time =
            super::time::time_config(base, raw.time, policy.as_ref().map(|p| p.state.as_path()))?;
        let status = match raw.status {
            None => None,
            Some(rs) => Some(super::status::status_config(
                base,
                rs,
                policy.as_ref().map(|p| p.trust.kit_id.as_str()),
            )?),
        };
        let network = raw
            .network
            .map(|rn| network::network_config(rn, management.is_some()))
            .transpose()?;
        let dns = raw.dns.map(super::dns::dns_config).transpose()?;
        Ok(Config {
            time,
            network,
            dns,
            management,
            status,
            phone,
            media,
            trunks,
            directory,
            limits,
            policy,
            bridge_listener,
            audit,
        })
    }
}

fn policy_config(
    base: &Path,
    rp: RawPolicy,
    files: &dyn ReadFile,
) -> Result<PolicyConfig, ConfigError> {
    use crate::policy::{GracePeriod, PolicyKey, Trust};
    let key_path = resolve(base, rp.key);
    let pem = files.read(&key_path).map_err(|source| ConfigError::Read {
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
    // The wildcard is allowed, as for a trunk's own media_address: the
    // address each added trunk's connection leaves from.
    Ok(PolicyConfig {
        trust: Trust {
            pinned_key,
            kit_id: rp.kit_id,
            grace,
        },
        bundle: resolve(base, rp.bundle),
        state: resolve(base, rp.state),
        trunk_media_address: rp.trunk_media_address,
    })
}

/// A file's text, through the shell's reader.
pub(super) fn read_text(path: &Path, files: &dyn ReadFile) -> Result<String, ConfigError> {
    let bytes = files.read(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| ConfigError::Syntax {
        path: path.display().to_string(),
        message: "not UTF-8 text".into(),
    })
}

impl ConfigError {
    /// The same error, naming `path` for a syntax error.
    pub(super) fn at(self, path: &Path) -> ConfigError {
        match self {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.display().to_string(),
                message,
            },
            other => other,
        }
    }
}
