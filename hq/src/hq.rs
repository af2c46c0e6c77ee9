//! The home side's files ("HQ"), as `dialgatectl --dir HQ` and the demo
//! manage them. Never on an appliance.
//!
//! ```text
//! HQ/token-ca.pem, token-ca-key.pem (0600)   the token CA
//! HQ/policy-key.pk8 (0600), policy-key.pub.pem  the policy signing key
//! HQ/registry.toml      the token registry (config::parse_registry format)
//! HQ/directory.toml     the meeting directory ([[directory]] entries)
//! HQ/trunks.toml        optional trunk settings ([[trunk]]: name, connect,
//!                       host, ca_pem or pin_sha256, tls, suites, webex),
//!                       each overriding the kit's trunk of that name
//! HQ/policy-version     the last policy version built here
//! HQ/tokens/NAME/cert.pem  issued token certificates (crate::enrol)
//! HQ/enrol.toml        enrolment settings (require_attestation), optional
//! ```
//!
//! [`build_policy`] signs the registry and the directory into a bundle for
//! one kit, with the next version number.

use std::path::{Path, PathBuf};

use dialgate_proto::admission::KeyHash;
use dialgate_proto::config::{parse_directory, parse_registry, DirectoryEntry};
use dialgate_proto::policy::{sign, PolicyBody, PolicyToken, SigningKey, Switches};
use dialgate_signed::store;

/// Why an HQ operation failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HqError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The policy signing key is missing.
    #[error(
        "{0}: no policy signing key here; create the home PKI with `dialgatectl pki init --dir HQ`"
    )]
    NoSigningKey(String),
    /// A file's content is refused.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// An HQ folder.
#[derive(Debug, Clone)]
pub struct Hq {
    dir: PathBuf,
}

/// What [`build_policy`] produced.
#[derive(Debug)]
pub struct Built {
    /// The signed bundle.
    pub bundle: Vec<u8>,
    /// Its content.
    pub body: PolicyBody,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HqError + '_ {
    move |source| HqError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Hq {
    /// The HQ in `dir`.
    pub fn new(dir: &Path) -> Hq {
        Hq {
            dir: dir.to_path_buf(),
        }
    }

    /// The policy signing key (`HQ/policy-key.pk8`), which also signs
    /// the kits' commands.
    pub fn policy_signing_key(&self) -> Result<SigningKey, HqError> {
        read_signing_key(&self.dir.join("policy-key.pk8"))
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `HQ/registry.toml`.
    pub fn registry(&self) -> PathBuf {
        self.dir.join("registry.toml")
    }

    /// `HQ/directory.toml`.
    pub fn directory(&self) -> PathBuf {
        self.dir.join("directory.toml")
    }

    fn version_file(&self) -> PathBuf {
        self.dir.join("policy-version")
    }

    /// The last policy version built here (0 if none).
    pub fn last_version(&self) -> Result<u64, HqError> {
        let path = self.version_file();
        match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().parse().map_err(|_| HqError::Invalid {
                path: path.display().to_string(),
                reason: "not a version number; restore it (a lower number makes kits refuse the next bundles)".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

/// Reads the tokens of a registry file, checked as a kit checks them.
pub fn read_tokens(path: &Path) -> Result<Vec<PolicyToken>, HqError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let bad = |reason: String| HqError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    parse_registry(&text).map_err(|e| bad(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut tokens = Vec::new();
    for t in table
        .get("token")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let s = |k: &str| {
            t.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let b = |k: &str| t.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        tokens.push(PolicyToken {
            name: s("name"),
            key: KeyHash::from_hex(&s("key_sha256")).map_err(|e| bad(e.to_string()))?,
            aliases: t
                .get("aliases")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            revoked: b("revoked"),
            unattested: b("unattested"),
        });
    }
    Ok(tokens)
}

/// Reads a directory file (`HQ/directory.toml`).
pub fn read_directory(path: &Path) -> Result<Vec<DirectoryEntry>, HqError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    parse_directory(&text).map_err(|e| HqError::Invalid {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// What goes into a policy besides the HQ's registry and directory.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The kit it is for.
    pub kit: String,
    /// Its version; `None`: one above the last built here.
    pub version: Option<u64>,
    /// How long it is valid, in seconds from now.
    pub valid_for_secs: u64,
    /// Policy switches.
    pub switches: Switches,
    /// The directory, if not `HQ/directory.toml`.
    pub directory: Option<Vec<DirectoryEntry>>,
    /// The registry file, if not `HQ/registry.toml`.
    pub registry: Option<PathBuf>,
}

/// Reads a PKCS#8 signing key (`HQ/policy-key.pk8` by default).
pub fn read_signing_key(key_path: &Path) -> Result<SigningKey, HqError> {
    let der = match std::fs::read(key_path) {
        Ok(d) => zeroize::Zeroizing::new(d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HqError::NoSigningKey(key_path.display().to_string()))
        }
        Err(e) => return Err(io(key_path)(e)),
    };
    SigningKey::from_pkcs8(&der).map_err(|e| HqError::Invalid {
        path: key_path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Signs the HQ's registry and directory into a bundle for one kit and
/// records the version used. The body passes every check a kit applies to
/// content ([`dialgate_proto::policy::sign`]).
pub fn build_policy(hq: &Hq, opts: BuildOptions) -> Result<Built, HqError> {
    let key = hq.policy_signing_key()?;
    let registry = opts.registry.clone().unwrap_or_else(|| hq.registry());
    let tokens = read_tokens(&registry)?;
    let mut directory = match opts.directory {
        Some(d) => d,
        None => read_directory(&hq.directory())?,
    };
    directory.sort_by(|a, b| a.alias.cmp(&b.alias));
    let trunks_path = hq.dir.join("trunks.toml");
    let trunks = match std::fs::read_to_string(&trunks_path) {
        Ok(text) => dialgate_proto::policy::body::trunks_from_toml(&text).map_err(|reason| {
            HqError::Invalid {
                path: trunks_path.display().to_string(),
                reason,
            }
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(&trunks_path)(e)),
    };
    let last = hq.last_version()?;
    let version = opts.version.unwrap_or(last + 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| HqError::Invalid {
            path: "system clock".into(),
            reason: "before 1970".into(),
        })?
        .as_secs();
    let body = PolicyBody {
        version,
        issued_at: now,
        expires_at: now.saturating_add(opts.valid_for_secs),
        kits: vec![opts.kit],
        switches: opts.switches,
        tokens,
        directory,
        trunks,
    };
    let bundle = sign(&body, &key).map_err(|e| HqError::Invalid {
        path: registry.display().to_string(),
        reason: e.to_string(),
    })?;
    if version > last {
        let path = hq.version_file();
        store::write_atomically(&path, format!("{version}\n").as_bytes()).map_err(io(&path))?;
    }
    Ok(Built { bundle, body })
}
