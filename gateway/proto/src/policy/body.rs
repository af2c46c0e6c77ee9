//! The policy body: its typed form, its TOML form, and the rules both the
//! signer and the kit apply to it.
//!
//! The kit parses a body only after its signature has verified (see
//! [`super::verify_and_decide`]); [`super::sign`] runs the same checks before
//! signing, so `dialgatectl` cannot produce a bundle a kit would refuse for
//! its content.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub use super::trunk::{trunks_from_toml, PolicyTrunk};
use super::PolicyError;
use crate::admission::KeyHash;
use crate::config::{check_directory_entry, ConfigError, DirectoryEntry};

/// Most token entries a policy may hold (revoked ones included).
pub const MAX_TOKENS: usize = 4096;
/// Most meeting directory entries a policy may hold.
pub const MAX_DIRECTORY: usize = 4096;
/// Most kits a policy may target.
pub const MAX_KITS: usize = 4096;
/// Most aliases one token may be granted.
pub const MAX_ALIASES_PER_TOKEN: usize = 256;
/// Longest name, alias, kit id or trunk name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest directory URI, in bytes.
pub const MAX_URI_LEN: usize = 1024;
/// Most trunk entries a policy may hold.
pub const MAX_TRUNKS: usize = 64;
/// Longest inline CA (PEM) of a trunk, in bytes.
pub const MAX_TRUNK_CA_PEM: usize = 16 * 1024;
/// Longest meeting PIN, in characters.
pub const MAX_PIN_LEN: usize = 64;
/// Latest time a policy may name: 9999-12-31T23:59:59Z. Keeps every number
/// representable as a TOML integer (i64).
pub const MAX_TIME: u64 = 253_402_300_799;

/// A policy's content: what the kit officer signs and what a kit applies.
/// Fields are public so `dialgatectl` can build one; a kit only ever sees
/// one through [`super::Verified`], after every check.
#[derive(Clone, Debug, Default)]
pub struct PolicyBody {
    /// Policy version, from 1 up; a kit applies only versions above the
    /// last it applied.
    pub version: u64,
    /// When it was signed (unix seconds).
    pub issued_at: u64,
    /// When it stops being valid (unix seconds). Past it (and any grace
    /// period) a kit refuses new calls until a fresh policy arrives.
    pub expires_at: u64,
    /// The kit ids it is for. There is no wildcard.
    pub kits: Vec<String>,
    /// Policy switches.
    pub switches: Switches,
    /// The token registry, revoked entries included.
    pub tokens: Vec<PolicyToken>,
    /// The meeting directory.
    pub directory: Vec<DirectoryEntry>,
    /// Trunks: each overrides the kit configuration's trunk of the same
    /// name, or, if the kit has none of that name, adds one (see
    /// [`super::Verified::trunks_in_force`]).
    pub trunks: Vec<PolicyTrunk>,
}

/// Policy switches. They can only tighten what a kit's configuration
/// allows, never loosen it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    /// Refuse phones without the post-quantum hybrid key exchange.
    pub require_post_quantum: bool,
    /// Every active token must be an attested hardware token: a policy that
    /// lists an active `unattested` token is refused.
    pub require_attestation: bool,
}

/// One registry entry, the same fields as the registry file
/// (`crate::config::load_registry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyToken {
    /// The token's name: the identity its calls must carry.
    pub name: String,
    /// SHA-256 of the token certificate's SubjectPublicKeyInfo.
    pub key: KeyHash,
    /// The directory aliases it may call.
    pub aliases: Vec<String>,
    /// Revoked: refused at the TLS handshake, live calls ended.
    pub revoked: bool,
    /// A software key (demo/test), not a hardware token.
    pub unattested: bool,
}

// The TOML schema. Every field is required except `pin`, so that a body
// says everything explicitly (a missing `unattested` must not read as
// "attested"). `PartialEq` lets `sign` check that the text it is about to
// sign reads back as the body it was given.
#[derive(Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawBody {
    version: u64,
    issued_at: u64,
    expires_at: u64,
    kits: Vec<String>,
    switches: RawSwitches,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    token: Vec<RawToken>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    directory: Vec<RawDirectory>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    trunk: Vec<PolicyTrunk>,
}

#[derive(Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawSwitches {
    require_post_quantum: bool,
    require_attestation: bool,
}

#[derive(Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    key_sha256: String,
    aliases: Vec<String>,
    revoked: bool,
    unattested: bool,
}

#[derive(Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    alias: String,
    uri: String,
    trunk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pin: Option<String>,
}

pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl From<&PolicyBody> for RawBody {
    fn from(b: &PolicyBody) -> RawBody {
        RawBody {
            version: b.version,
            issued_at: b.issued_at,
            expires_at: b.expires_at,
            kits: b.kits.clone(),
            switches: RawSwitches {
                require_post_quantum: b.switches.require_post_quantum,
                require_attestation: b.switches.require_attestation,
            },
            token: b
                .tokens
                .iter()
                .map(|t| RawToken {
                    name: t.name.clone(),
                    key_sha256: t.key.to_hex(),
                    aliases: t.aliases.clone(),
                    revoked: t.revoked,
                    unattested: t.unattested,
                })
                .collect(),
            directory: b
                .directory
                .iter()
                .map(|d| RawDirectory {
                    alias: d.alias.clone(),
                    uri: d.uri.clone(),
                    trunk: d.trunk.clone(),
                    pin: d.pin.clone(),
                })
                .collect(),
            trunk: b.trunks.clone(),
        }
    }
}

impl RawBody {
    fn into_typed(self) -> Result<PolicyBody, PolicyError> {
        // Count before building anything per entry.
        check_count("tokens", self.token.len(), MAX_TOKENS)?;
        check_count("directory entries", self.directory.len(), MAX_DIRECTORY)?;
        check_count("kits", self.kits.len(), MAX_KITS)?;
        check_count("trunks", self.trunk.len(), MAX_TRUNKS)?;
        let mut tokens = Vec::with_capacity(self.token.len());
        for t in self.token {
            let key = KeyHash::from_hex(&t.key_sha256)
                .map_err(|e| invalid(format!("token.{}.key_sha256", t.name), e.to_string()))?;
            tokens.push(PolicyToken {
                name: t.name,
                key,
                aliases: t.aliases,
                revoked: t.revoked,
                unattested: t.unattested,
            });
        }
        Ok(PolicyBody {
            version: self.version,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            kits: self.kits,
            switches: Switches {
                require_post_quantum: self.switches.require_post_quantum,
                require_attestation: self.switches.require_attestation,
            },
            tokens,
            directory: self
                .directory
                .into_iter()
                .map(|d| DirectoryEntry {
                    alias: d.alias,
                    uri: d.uri,
                    trunk: d.trunk,
                    pin: d.pin,
                })
                .collect(),
            trunks: self.trunk,
        })
    }
}

fn check_count(what: &'static str, n: usize, max: usize) -> Result<(), PolicyError> {
    if n > max {
        return Err(PolicyError::TooManyEntries { what, max });
    }
    Ok(())
}

/// Names, kit ids and trunk names: short, printable ASCII, no spaces or
/// quotes, so they are safe in logs, audit records and SIP.
fn check_name(field: &str, s: &str) -> Result<(), PolicyError> {
    if s.is_empty()
        || s.len() > MAX_NAME_LEN
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c))
    {
        return Err(invalid(
            field,
            format!("1 to {MAX_NAME_LEN} letters, digits or '-', '_', '.', '@', '+'"),
        ));
    }
    Ok(())
}

/// The rules a policy must follow, applied by the signer before signing
/// and by the kit after verifying.
pub(super) fn validate(b: &PolicyBody) -> Result<(), PolicyError> {
    if b.version == 0 || b.version > i64::MAX as u64 {
        return Err(invalid("version", "from 1 to 2^63-1"));
    }
    if b.expires_at > MAX_TIME {
        return Err(invalid("expires_at", "after the year 9999"));
    }
    if b.issued_at >= b.expires_at {
        return Err(invalid("expires_at", "must be later than issued_at"));
    }

    check_count("kits", b.kits.len(), MAX_KITS)?;
    if b.kits.is_empty() {
        return Err(invalid("kits", "name at least one kit id"));
    }
    let mut kits = HashSet::new();
    for k in &b.kits {
        check_name("kits", k)?;
        if !kits.insert(k.as_str()) {
            return Err(invalid("kits", format!("kit {k:?} listed twice")));
        }
    }

    check_count("directory entries", b.directory.len(), MAX_DIRECTORY)?;
    let mut aliases = HashSet::new();
    for d in &b.directory {
        let field = format!("directory.{}", d.alias);
        if d.alias.len() > MAX_NAME_LEN {
            return Err(invalid("directory", "an alias is too long"));
        }
        check_directory_entry(d).map_err(|e| match e {
            ConfigError::Invalid { field, reason } => PolicyError::Invalid { field, reason },
            // check_directory_entry only reports invalid values.
            _ => invalid(field.clone(), "invalid entry"),
        })?;
        check_name(&format!("{field}.trunk"), &d.trunk)?;
        if d.uri.len() > MAX_URI_LEN {
            return Err(invalid(
                format!("{field}.uri"),
                format!("at most {MAX_URI_LEN} bytes"),
            ));
        }
        if d.pin.as_ref().is_some_and(|p| p.len() > MAX_PIN_LEN) {
            return Err(invalid(
                format!("{field}.pin"),
                format!("at most {MAX_PIN_LEN} characters"),
            ));
        }
        if !aliases.insert(d.alias.as_str()) {
            return Err(invalid(field, "alias defined twice"));
        }
    }

    check_count("trunks", b.trunks.len(), MAX_TRUNKS)?;
    let mut trunk_names = HashSet::new();
    for t in &b.trunks {
        check_name("trunk.name", &t.name)?;
        if !trunk_names.insert(t.name.as_str()) {
            return Err(invalid(format!("trunk.{}", t.name), "trunk listed twice"));
        }
        if t.ca_pem
            .as_ref()
            .is_some_and(|p| p.len() > MAX_TRUNK_CA_PEM)
        {
            return Err(invalid(
                format!("trunk.{}.ca_pem", t.name),
                format!("at most {MAX_TRUNK_CA_PEM} bytes"),
            ));
        }
        // Everything else a kit checks when it puts the trunk in force.
        t.check()?;
    }

    check_count("tokens", b.tokens.len(), MAX_TOKENS)?;
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    for t in &b.tokens {
        check_name("token.name", &t.name)?;
        let field = format!("token.{}", t.name);
        if !names.insert(t.name.as_str()) || !keys.insert(t.key) {
            return Err(invalid(field, "token listed twice (by name or key)"));
        }
        check_count(
            "aliases for one token",
            t.aliases.len(),
            MAX_ALIASES_PER_TOKEN,
        )?;
        let mut granted = HashSet::new();
        for a in &t.aliases {
            if !aliases.contains(a.as_str()) {
                return Err(invalid(
                    format!("{field}.aliases"),
                    format!("{a:?} is not in the meeting directory"),
                ));
            }
            if !granted.insert(a.as_str()) {
                return Err(invalid(
                    format!("{field}.aliases"),
                    format!("{a:?} listed twice"),
                ));
            }
        }
        if b.switches.require_attestation && t.unattested && !t.revoked {
            return Err(invalid(
                format!("{field}.unattested"),
                "require_attestation is set: revoke this software key or enrol a hardware token",
            ));
        }
    }
    Ok(())
}

/// Parses and checks a body. Call only on bytes whose signature verified.
pub(super) fn parse(body: &[u8]) -> Result<PolicyBody, PolicyError> {
    let text = std::str::from_utf8(body).map_err(|_| PolicyError::Malformed {
        reason: "the body is not UTF-8",
    })?;
    // The parser's message is not kept: it may quote the offending value,
    // and that value may be a meeting PIN. The position is enough to find
    // it at home.
    let raw: RawBody = toml::from_str(text).map_err(|e| {
        let mut at = e.span().map_or(0, |s| s.start.min(text.len()));
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        PolicyError::BodySyntax { line, column }
    })?;
    let body = raw.into_typed()?;
    validate(&body)?;
    Ok(body)
}

/// The TOML text of a valid body, checked to read back as the same body.
pub(super) fn to_toml(b: &PolicyBody) -> Result<String, PolicyError> {
    validate(b)?;
    let raw = RawBody::from(b);
    let text = toml::to_string(&raw).map_err(|_| invalid("body", "cannot be written as TOML"))?;
    let back: RawBody = toml::from_str(&text)
        .map_err(|_| invalid("body", "does not read back from its own TOML"))?;
    if back != raw {
        return Err(invalid("body", "does not read back as itself from TOML"));
    }
    Ok(text)
}

/// A valid body for tests: two kits, alice (active, software key) and
/// mallory (revoked), one directory entry with a PIN.
#[cfg(test)]
pub(super) fn sample() -> PolicyBody {
    PolicyBody {
        version: 7,
        issued_at: 1_700_000_000,
        expires_at: 1_700_604_800,
        kits: vec!["kit-01".into(), "kit-02".into()],
        switches: Switches {
            require_post_quantum: true,
            require_attestation: false,
        },
        tokens: vec![
            PolicyToken {
                name: "alice".into(),
                key: KeyHash([0x11; 32]),
                aliases: vec!["echo".into()],
                revoked: false,
                unattested: true,
            },
            PolicyToken {
                name: "mallory".into(),
                key: KeyHash([0x22; 32]),
                aliases: vec![],
                revoked: true,
                unattested: false,
            },
        ],
        directory: vec![DirectoryEntry {
            alias: "echo".into(),
            uri: "sip:echo@bridge.test".into(),
            trunk: "echo".into(),
            pin: Some("1234#".into()),
        }],
        trunks: vec![PolicyTrunk {
            name: "echo".into(),
            connect: "192.0.2.7:5061".into(),
            host: "bridge.test".into(),
            ca_pem: None,
            pin_sha256: Some("33".repeat(32)),
            tls: "1.2".into(),
            suites: vec!["AES_CM_128_HMAC_SHA1_80".into()],
            webex: true,
            routes: vec!["192.0.2.8:5062".into()],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_reads_like_the_registry_file() {
        let text = to_toml(&sample()).unwrap();
        assert!(text.contains("[[trunk]]\nname = \"echo\""), "{text}");
        assert!(text.contains("[[token]]\nname = \"alice\""), "{text}");
        assert!(text.contains(&format!("key_sha256 = \"{}\"", "11".repeat(32))));
        let back = parse(text.as_bytes()).unwrap();
        assert!(RawBody::from(&back) == RawBody::from(&sample()));
    }

    #[test]
    fn content_rules_name_the_field() {
        type Case = (fn(&mut PolicyBody), &'static str);
        let cases: Vec<Case> = vec![
            (|b| b.version = 0, "version"),
            (|b| b.version = u64::MAX, "version"),
            (|b| b.expires_at = b.issued_at, "expires_at"),
            (|b| b.expires_at = MAX_TIME + 1, "expires_at"),
            (|b| b.kits.clear(), "kits"),
            (|b| b.kits.push("kit-01".into()), "listed twice"),
            (|b| b.kits[0] = "kit 01".into(), "kits"),
            (|b| b.tokens[1].name = "alice".into(), "token.alice"),
            (|b| b.tokens[1].key = KeyHash([0x11; 32]), "listed twice"),
            (|b| b.tokens[0].name = "".into(), "token.name"),
            (
                |b| b.tokens[0].aliases.push("nope".into()),
                "not in the meeting",
            ),
            (|b| b.tokens[0].aliases.push("echo".into()), "listed twice"),
            (
                |b| b.switches.require_attestation = true,
                "token.alice.unattested",
            ),
            (
                |b| b.directory[0].pin = Some("12x".into()),
                "directory.echo.pin",
            ),
            (
                |b| b.directory[0].uri = "http://x".into(),
                "directory.echo.uri",
            ),
            (|b| b.directory[0].trunk = "".into(), "directory.echo.trunk"),
            (
                |b| b.directory.push(b.directory[0].clone()),
                "alias defined twice",
            ),
        ];
        for (mutate, needle) in cases {
            let mut b = sample();
            mutate(&mut b);
            let e = validate(&b).expect_err(needle).to_string();
            assert!(e.contains(needle), "expected {needle:?} in {e:?}");
            assert!(!e.contains("1234"), "PIN in an error: {e}");
        }
        // A revoked software key does not matter under require_attestation.
        let mut b = sample();
        b.switches.require_attestation = true;
        b.tokens[0].revoked = true;
        validate(&b).unwrap();
    }

    #[test]
    fn syntax_errors_give_a_position_but_never_the_value() {
        let text = to_toml(&sample())
            .unwrap()
            .replace("pin = \"1234#\"", "pin = 1234");
        let e = parse(text.as_bytes()).unwrap_err();
        let PolicyError::BodySyntax { line, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(text.lines().nth(line - 1).unwrap(), "pin = 1234");
        assert!(!e.to_string().contains("1234"), "{e}");
        let unknown = format!("{}surprise = 1\n", to_toml(&sample()).unwrap());
        assert!(matches!(
            parse(unknown.as_bytes()),
            Err(PolicyError::BodySyntax { .. })
        ));
        let missing = to_toml(&sample())
            .unwrap()
            .replace("unattested = true\n", "");
        assert!(matches!(
            parse(missing.as_bytes()),
            Err(PolicyError::BodySyntax { .. })
        ));
        assert!(matches!(
            parse(b"version = 1\n\xff"),
            Err(PolicyError::Malformed { .. })
        ));
    }
}
