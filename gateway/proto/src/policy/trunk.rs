//! Trunks in a policy: each `[[trunk]]` of a body either overrides the kit
//! configuration's trunk of that name or, if the kit has none, adds one.
//!
//! Both the gateway (which places calls over them) and the appliance's
//! PID 1 (whose firewall opens exactly their `connect` and `routes`)
//! take the trunks in force from one function,
//! [`Verified::trunks_in_force`], so the two cannot disagree.
//!
//! An added trunk carries everything a trunk needs except what belongs to
//! the kit itself: its local media address is the configuration's
//! [`PolicyConfig::trunk_media_address`](crate::config::PolicyConfig::trunk_media_address)
//! (a kit without one refuses a policy that adds a trunk,
//! [`PolicyError::NoTrunkMediaAddress`]), and it has no client identity (a
//! policy carries no private keys; a trunk that needs a client certificate
//! is configured in the kit).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::body::invalid;
use super::{PolicyError, Verified};
use crate::admission::{KeyHash, TrunkTls, TrunkTrust};
use crate::config::{check_routes, TrunkConfig, MAX_ROUTES};
use crate::srtp::Suite;

/// A trunk's settings as HQ sets them (see
/// [`PolicyBody::trunks`](super::PolicyBody::trunks)). Every field is
/// required in the TOML form except `ca_pem`/`pin_sha256` (exactly one) and
/// `routes` (default: none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTrunk {
    /// The kit trunk it overrides, or the name of the trunk it adds.
    pub name: String,
    /// Where to connect (`address:port`).
    pub connect: String,
    /// TLS server name and SIP host of the bridge.
    pub host: String,
    /// The bridge's CA certificates, PEM (exactly one of this and `pin_sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// SHA-256 of the bridge's public key, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_sha256: Option<String>,
    /// "1.3", or "1.2" to allow TLS 1.2.
    pub tls: String,
    /// SRTP suites offered to the bridge, preferred first.
    pub suites: Vec<String>,
    /// Webex-class behaviour.
    pub webex: bool,
    /// Record-Route hops (`address:port`) in-dialog requests may go to, as
    /// [`TrunkConfig::routes`]: at most [`MAX_ROUTES`], no duplicates.
    /// They replace the kit trunk's own list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// The typed settings of a [`PolicyTrunk`], every rule checked.
struct Settings {
    connect: SocketAddr,
    host: String,
    trust: TrunkTrust,
    tls: TrunkTls,
    suites: Vec<Suite>,
    webex: bool,
    routes: Vec<SocketAddr>,
}

impl PolicyTrunk {
    fn settings(&self) -> Result<Settings, PolicyError> {
        let field = |f: &str| format!("trunk.{}.{f}", self.name);
        let connect = self
            .connect
            .parse()
            .map_err(|_| invalid(field("connect"), "an address:port"))?;
        let trust = match (&self.ca_pem, &self.pin_sha256) {
            (Some(pem), None) => {
                let certs = crate::pem::certificates(pem.as_bytes())
                    .map_err(|e| invalid(field("ca_pem"), e.to_string()))?;
                TrunkTrust::Ca(certs)
            }
            (None, Some(pin)) => TrunkTrust::PinnedKey(
                KeyHash::from_hex(pin).map_err(|e| invalid(field("pin_sha256"), e.to_string()))?,
            ),
            _ => {
                return Err(invalid(
                    format!("trunk.{}", self.name),
                    "set exactly one of ca_pem and pin_sha256",
                ))
            }
        };
        let tls = match self.tls.as_str() {
            "1.3" => TrunkTls::Tls13,
            "1.2" => TrunkTls::Tls12Allowed,
            _ => return Err(invalid(field("tls"), "\"1.3\" or \"1.2\"")),
        };
        if self.suites.is_empty() {
            return Err(invalid(
                field("suites"),
                "at least one suite (SRTP cannot be turned off)",
            ));
        }
        let mut suites = Vec::new();
        for n in &self.suites {
            let suite = Suite::from_name(n)
                .map_err(|_| invalid(field("suites"), format!("unknown suite {n:?}")))?;
            if !suites.contains(&suite) {
                suites.push(suite);
            }
        }
        if self.host.is_empty()
            || self.host.len() > 253
            || self
                .host
                .contains(|c: char| c.is_whitespace() || c.is_control() || c == '@')
        {
            return Err(invalid(field("host"), "a host name or address"));
        }
        // Count before parsing any.
        if self.routes.len() > MAX_ROUTES {
            return Err(invalid(
                field("routes"),
                format!("at most {MAX_ROUTES} Record-Route hops"),
            ));
        }
        let routes = self
            .routes
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<SocketAddr>, _>>()
            .map_err(|_| invalid(field("routes"), "each an address:port"))?;
        check_routes(&routes).map_err(|reason| invalid(field("routes"), reason))?;
        Ok(Settings {
            connect,
            host: self.host.clone(),
            trust,
            tls,
            suites,
            webex: self.webex,
            routes,
        })
    }

    /// Every rule the settings must follow, whichever kit they reach (the
    /// signer runs it before signing).
    pub(super) fn check(&self) -> Result<(), PolicyError> {
        self.settings().map(drop)
    }

    fn trunk(
        &self,
        s: Settings,
        media_address: IpAddr,
        client_identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> TrunkConfig {
        TrunkConfig {
            name: self.name.clone(),
            connect: crate::config::Connect::Addr(s.connect),
            host: s.host,
            trust: s.trust,
            media_address,
            tls: s.tls,
            suites: s.suites,
            webex: s.webex,
            client_identity,
            routes: s.routes,
        }
    }

    /// The kit's trunk `base` with these settings (its media address and
    /// client identity stay the kit's).
    pub fn apply_to(&self, base: &TrunkConfig) -> Result<TrunkConfig, PolicyError> {
        let s = self.settings()?;
        Ok(self.trunk(s, base.media_address, base.client_identity.clone()))
    }

    /// A trunk the kit does not have, with these settings, its media on
    /// `media_address` and no client identity.
    pub fn to_added(&self, media_address: IpAddr) -> Result<TrunkConfig, PolicyError> {
        let s = self.settings()?;
        Ok(self.trunk(s, media_address, None))
    }
}

impl Verified {
    /// Every trunk in force under this policy: the kit's trunks (`kit`,
    /// the configuration's), those the policy names overridden with its
    /// settings, plus those it adds, with their media on
    /// `added_media` (the configuration's
    /// [`PolicyConfig::trunk_media_address`](crate::config::PolicyConfig::trunk_media_address)).
    ///
    /// Refuses the whole policy if it adds a trunk and `added_media` is
    /// `None` ([`PolicyError::NoTrunkMediaAddress`]), or if a directory
    /// entry names a trunk that is neither the kit's nor added
    /// ([`PolicyError::Invalid`]). The gateway calls this before it records
    /// the policy; the appliance's firewall calls it on the copy the
    /// gateway keeps, with the same configuration, so both see the same
    /// trunks.
    pub fn trunks_in_force(
        &self,
        kit: &HashMap<String, TrunkConfig>,
        added_media: Option<IpAddr>,
    ) -> Result<HashMap<String, TrunkConfig>, PolicyError> {
        let mut trunks = kit.clone();
        for t in &self.body.trunks {
            let trunk = match kit.get(&t.name) {
                Some(base) => t.apply_to(base)?,
                None => {
                    let media = added_media.ok_or_else(|| PolicyError::NoTrunkMediaAddress {
                        trunk: t.name.clone(),
                    })?;
                    t.to_added(media)?
                }
            };
            trunks.insert(t.name.clone(), trunk);
        }
        for d in &self.body.directory {
            if !trunks.contains_key(&d.trunk) {
                return Err(invalid(
                    format!("directory.{}.trunk", d.alias),
                    format!(
                        "neither this kit nor the policy has a trunk named {:?}",
                        d.trunk
                    ),
                ));
            }
        }
        Ok(trunks)
    }
}

/// Reads the `[[trunk]]` entries of a trunk settings file (the home
/// side's `HQ/trunks.toml`, same fields as in a policy body).
pub fn trunks_from_toml(text: &str) -> Result<Vec<PolicyTrunk>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        trunk: Vec<PolicyTrunk>,
    }
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok(f.trunk)
}
