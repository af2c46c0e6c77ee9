//! The directory and registry files (the home side's `directory.toml` and
//! `registry.toml`, and a lab kit's unsigned registry).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::{check_directory_entry, invalid, ConfigError, DirectoryEntry, RawDirectory};
use crate::admission::{KeyHash, Registry, TokenEntry};

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
pub(super) fn directory_entries(
    raw: Vec<RawDirectory>,
) -> Result<Vec<DirectoryEntry>, ConfigError> {
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

/// Reads a registry file through the shell's reader and parses it
/// ([`parse_registry`]); errors name the file.
pub fn load_registry(
    path: &std::path::Path,
    files: &dyn super::ReadFile,
) -> Result<(Registry, AliasGrants), ConfigError> {
    parse_registry(&super::parse::read_text(path, files)?).map_err(|e| e.at(path))
}

/// Parses a token registry file:
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
pub fn parse_registry(text: &str) -> Result<(Registry, AliasGrants), ConfigError> {
    let raw: RawRegistry = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: "<registry>".into(),
        message: e.to_string(),
    })?;
    let mut registry = Registry::default();
    let mut grants = AliasGrants::new();
    let mut keys = HashSet::new();
    let mut names = HashSet::new();
    for t in raw.token {
        let field = format!("token.{}", t.name);
        check_enrolment_fields(&field, &t)?;
        let key = KeyHash::from_hex(&t.key_sha256)
            .map_err(|e| invalid(format!("{field}.key_sha256"), e.to_string()))?;
        if !keys.insert(key) || !names.insert(t.name.clone()) {
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
        // A revoked entry carries no grants.
        if !t.revoked {
            grants.insert(t.name, t.aliases.into_iter().collect());
        }
    }
    Ok((registry, grants))
}
