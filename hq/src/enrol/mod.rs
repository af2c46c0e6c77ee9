//! Token enrolment, run at home by `dialgatectl token enroll`.
//!
//! A token is a P-256 key generated **inside** a hardware token (a PIV card,
//! a YubiKey, anything reachable through PKCS#11) that never leaves it, a
//! certificate the HQ token CA issues for it (its identity is the token's
//! name), and an entry in the token registry. Enrolment makes all three:
//!
//! 1. [`prepare`]: everything that can fail without touching the token —
//!    the name and aliases, the token CA (`HQ/token-ca.pem` and
//!    `HQ/token-ca-key.pem`, written by `dialgatectl pki init`), the
//!    registry (`HQ/registry.toml` unless another is named; it must parse
//!    and must not hold the name yet), and `HQ/tokens/NAME/` must not exist.
//! 2. The key: [`pkcs11`] generates it on the token (sensitive, never
//!    extractable) and signs through the token; `--software` reads a PKCS#8
//!    file instead (tests and demos only; always recorded `unattested`).
//! 3. [`Prepared::certification_request`] builds a PKCS#10 request signed by
//!    the key (rcgen, with the token as a remote key pair);
//!    [`Prepared::issue`] checks that signature (proof that the key can
//!    sign, and that the token's raw `r || s` was encoded right), that the
//!    key is not registered yet, and issues the certificate.
//! 4. Attestation: where the module exposes a PIV attestation (Yubico's
//!    ykcs11 shows the slot and f9 certificates as objects) [`attest`]
//!    verifies it against Yubico's root; otherwise the entry is
//!    `unattested`. [`Prepared::check_attestation`] refuses unattested keys
//!    when attestation is required.
//! 5. [`Prepared::commit`]: `HQ/tokens/NAME/cert.pem`, then the registry
//!    entry, appended and written atomically (temporary file, fsync,
//!    rename) after the whole registry is re-parsed as the gateway would.
//!
//! Everything here but [`pkcs11`] is free of PKCS#11, so the request,
//! issuance, registry and attestation logic are tested without a token.

pub mod attest;
pub mod der;
pub mod pkcs11;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use zeroize::Zeroizing;

use crate::pki::{Ca, IssuedForKey, PkiError, Validity};
use dialgate_proto::admission::{KeyHash, Refusal};
use dialgate_proto::config::{parse_registry, ConfigError};

pub use attest::{AttestationError, PivAttestation};

/// Why an enrolment failed. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrolError {
    // The officer's input or the state of HQ.
    /// The token name is not usable as an identity.
    #[error("invalid token name {0:?}: 1 to 64 letters, digits, '-', '_' or '.'")]
    BadName(String),
    /// An alias is not a directory alias.
    #[error("invalid alias {0:?}: letters, digits, '-', '_' and '.'")]
    BadAlias(String),
    /// The token CA is not in HQ.
    #[error("CA missing: {0} not found; run dialgatectl pki init --dir {1}")]
    CaMissing(String, String),
    /// The name is in the registry already.
    #[error("a token named {0:?} is already in {1}; revoke it or choose another name")]
    NameTaken(String, String),
    /// The key is in the registry already.
    #[error("this key is already in the registry (as {0}); a key is enrolled once")]
    KeyTaken(String),
    /// `HQ/tokens/NAME` exists.
    #[error(
        "{0} exists: a token named {1:?} was enrolled before (remove that folder only if its enrolment failed)"
    )]
    AlreadyEnrolled(String, String),
    /// The registry does not parse.
    #[error("registry {path}: {source}; fix it before enrolling")]
    Registry {
        /// The file.
        path: String,
        /// Why.
        source: ConfigError,
    },
    /// The PIN file cannot be used.
    #[error("PIN file {path}: {reason}")]
    PinFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The software key file cannot be used.
    #[error("software key {path}: {reason}")]
    SoftwareKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The token CA could not be loaded or could not issue.
    #[error(transparent)]
    Pki(#[from] PkiError),

    // Local policy.
    /// Attestation is required and there is none.
    #[error("attestation required but {0}: this token cannot be enrolled (drop --require-attestation / require_attestation only for tokens you trust otherwise)")]
    AttestationRequired(String),

    // The token or its module.
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {module}: {reason}")]
    ModuleLoad {
        /// The module path.
        module: String,
        /// Why.
        reason: String,
    },
    /// No token (or no single token) matches.
    #[error("token not found: {wanted}; initialised tokens seen: {seen:?}")]
    TokenNotFound {
        /// What was looked for.
        wanted: String,
        /// The labels of the initialised tokens the module shows.
        seen: Vec<String>,
    },
    /// The user PIN was refused.
    #[error("wrong PIN for token {label:?}: login refused{tries}; check the PIN file")]
    WrongPin {
        /// The token.
        label: String,
        /// What the token says about the tries left, if anything.
        tries: String,
    },
    /// The user PIN is locked.
    #[error("the user PIN of token {0:?} is locked: unblock it with the SO PIN (e.g. pkcs11-tool --init-pin --login --login-type so) and retry")]
    PinLocked(String),
    /// An object with the key's label or id is on the token already.
    #[error("key already exists on the token: {0}; choose another --key-label/--key-id, or delete the old objects if they are not in use")]
    KeyExists(String),
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {op}: {reason}")]
    Token {
        /// What was being done.
        op: &'static str,
        /// The module's answer.
        reason: String,
    },

    // The device misbehaved.
    /// The request's signature does not verify with the key it names.
    #[error("the certificate request signed by the key does not verify ({0}); the token is faulty or not what it claims")]
    BadRequest(String),
    /// A presented attestation is invalid.
    #[error(transparent)]
    Attestation(#[from] AttestationError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EnrolError + '_ {
    move |source| EnrolError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What the officer asks for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The token's name: its identity in calls.
    pub name: String,
    /// The directory aliases it may call.
    pub aliases: Vec<String>,
    /// Certificate lifetime in days.
    pub days: u64,
    /// Refuse a key without a verified hardware attestation.
    pub require_attestation: bool,
}

/// Where HQ keeps the CA, the registry and the issued certificates.
#[derive(Debug, Clone)]
pub struct HqPaths {
    /// The HQ folder (`dialgatectl pki init --dir`).
    pub dir: PathBuf,
    /// The registry file the entry is added to.
    pub registry: PathBuf,
}

impl HqPaths {
    /// `dir` with its registry at `dir/registry.toml`.
    pub fn new(dir: &Path) -> HqPaths {
        HqPaths {
            dir: dir.to_path_buf(),
            registry: dir.join("registry.toml"),
        }
    }

    /// The token CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("token-ca.pem")
    }

    /// The token CA private key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("token-ca-key.pem")
    }

    /// The folder of one token's files.
    pub fn token_dir(&self, name: &str) -> PathBuf {
        self.dir.join("tokens").join(name)
    }
}

/// How the enrolled key is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Generated on a PKCS#11 token.
    Pkcs11,
    /// Read from a file (tests and demos).
    Software,
}

impl Origin {
    /// The registry spelling.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Pkcs11 => "pkcs11",
            Origin::Software => "software",
        }
    }
}

/// The attestation outcome, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attestation {
    /// A verified PIV attestation.
    Verified(PivAttestation),
    /// None was verified, and why.
    Unattested(String),
}

/// Everything checked before the token is touched. Holds the token CA
/// (its key is not shown by `Debug`).
#[derive(Debug)]
pub struct Prepared {
    request: Request,
    paths: HqPaths,
    ca: Ca,
}

/// A certificate issued for the enrolled key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert: IssuedForKey,
    /// The key's SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo: the registry key.
    pub key_hash: KeyHash,
}

/// What enrolment wrote.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The token's name.
    pub name: String,
    /// The registry key.
    pub key_hash: KeyHash,
    /// `HQ/tokens/NAME/cert.pem`.
    pub cert_path: PathBuf,
    /// The registry file.
    pub registry: PathBuf,
    /// The attestation outcome.
    pub attestation: Attestation,
    /// How the key is held.
    pub origin: Origin,
    /// The registry entry as written.
    pub entry: String,
}

impl Enrolled {
    /// Lines for the officer. Every line about an unattested key says so.
    pub fn describe(&self) -> Vec<String> {
        let tag = match (&self.attestation, self.origin) {
            (Attestation::Verified(a), _) => format!(
                "attested: YubiKey serial {} slot {}, firmware {}.{}.{}, PIN {}, touch {}",
                a.device_serial,
                a.slot,
                a.firmware.0,
                a.firmware.1,
                a.firmware.2,
                a.pin_policy.name(),
                a.touch_policy.name()
            ),
            (Attestation::Unattested(why), Origin::Software) => {
                format!("UNATTESTED software key ({why})")
            }
            (Attestation::Unattested(why), Origin::Pkcs11) => {
                format!("unattested PKCS#11 token ({why})")
            }
        };
        let unattested = matches!(self.attestation, Attestation::Unattested(_));
        let mark = if unattested { " [unattested]" } else { "" };
        vec![
            format!(
                "enrolled {} (key {}), {tag}",
                self.name,
                self.key_hash.to_hex()
            ),
            format!("  certificate: {}{mark}", self.cert_path.display()),
            format!(
                "  registry:    {}; next: dialgatectl policy build, and deliver the bundle to the kits{mark}",
                self.registry.display()
            ),
        ]
    }
}

fn valid_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !s.starts_with('.')
}

fn read_registry(path: &Path) -> Result<String, EnrolError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            parse_registry(&text).map_err(|source| EnrolError::Registry {
                path: path.display().to_string(),
                source,
            })?;
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn registry_has_name(text: &str, name: &str) -> bool {
    parse_registry(text).is_ok_and(|(_, grants)| grants.contains_key(name))
}

/// Checks everything that can be checked without the token.
pub fn prepare(paths: HqPaths, request: Request) -> Result<Prepared, EnrolError> {
    if !valid_word(&request.name) {
        return Err(EnrolError::BadName(request.name));
    }
    if let Some(a) = request.aliases.iter().find(|a| !valid_word(a)) {
        return Err(EnrolError::BadAlias(a.clone()));
    }
    let (cert_path, key_path) = (paths.ca_cert(), paths.ca_key());
    for p in [&cert_path, &key_path] {
        if !p.exists() {
            return Err(EnrolError::CaMissing(
                p.display().to_string(),
                paths.dir.display().to_string(),
            ));
        }
    }
    let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
    let key_pem = Zeroizing::new(std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?);
    let ca = Ca::load(&cert_pem, &key_pem)?;
    let text = read_registry(&paths.registry)?;
    if registry_has_name(&text, &request.name) {
        return Err(EnrolError::NameTaken(
            request.name,
            paths.registry.display().to_string(),
        ));
    }
    let dir = paths.token_dir(&request.name);
    if dir.exists() {
        return Err(EnrolError::AlreadyEnrolled(
            dir.display().to_string(),
            request.name,
        ));
    }
    Ok(Prepared { request, paths, ca })
}

impl Prepared {
    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A PKCS#10 request for `key` (a P-256 key, local or a token's remote
    /// key pair) with the token's name as subject.
    pub fn certification_request(&self, key: &KeyPair) -> Result<Vec<u8>, EnrolError> {
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(EnrolError::BadRequest("the key is not P-256".into()));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, self.request.name.as_str());
        let csr = params
            .serialize_request(key)
            .map_err(|e| EnrolError::BadRequest(e.to_string()))?;
        Ok(csr.der().to_vec())
    }

    /// Verifies `csr` (signed by the key it names, ECDSA P-256 SHA-256),
    /// checks the key is not registered yet, and issues its certificate.
    pub fn issue(&self, csr: &[u8]) -> Result<Issued, EnrolError> {
        let bad = |e: der::DerError| EnrolError::BadRequest(e.to_string());
        let req = der::CertificationRequest::parse(csr).map_err(bad)?;
        if req.signature_algorithm != der::oid::ECDSA_SHA256 {
            return Err(EnrolError::BadRequest(
                "not signed with ECDSA P-256 SHA-256".into(),
            ));
        }
        let point = der::p256_point(req.spki).map_err(bad)?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            point,
        )
        .verify(req.info, req.signature)
        .map_err(|_| EnrolError::BadRequest("signature invalid".into()))?;
        let spki = req.spki.to_vec();
        let key_hash = KeyHash(sha256(&spki));
        let text = read_registry(&self.paths.registry)?;
        check_key_free(&text, &key_hash)?;
        let cert = self.ca.issue_client_for_key(
            &self.request.name,
            &spki,
            Validity::days_from_now(self.request.days),
        )?;
        Ok(Issued {
            cert,
            spki,
            key_hash,
        })
    }

    /// Applies the attestation policy.
    pub fn check_attestation(&self, a: &Attestation) -> Result<(), EnrolError> {
        match a {
            Attestation::Unattested(why) if self.request.require_attestation => {
                Err(EnrolError::AttestationRequired(why.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Writes `HQ/tokens/NAME/cert.pem` and adds the registry entry
    /// (atomically, after re-checking the whole registry).
    pub fn commit(
        &self,
        issued: &Issued,
        origin: Origin,
        attestation: Attestation,
    ) -> Result<Enrolled, EnrolError> {
        self.check_attestation(&attestation)?;
        if origin == Origin::Software && matches!(attestation, Attestation::Verified(_)) {
            return Err(EnrolError::BadRequest(
                "a software key cannot carry an attestation".into(),
            ));
        }
        let name = &self.request.name;
        let dir = self.paths.token_dir(name);
        let tokens = self.paths.dir.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(io_error(&tokens))?;
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                EnrolError::AlreadyEnrolled(dir.display().to_string(), name.clone())
            }
            _ => io_error(&dir)(e),
        })?;
        let cert_path = dir.join("cert.pem");
        crate::pki::write_file(&cert_path, issued.cert.cert_pem.as_bytes(), 0o644)?;

        // Re-read: another enrolment may have written meanwhile.
        let registry = &self.paths.registry;
        let mut text = read_registry(registry)?;
        if registry_has_name(&text, name) {
            return Err(EnrolError::NameTaken(
                name.clone(),
                registry.display().to_string(),
            ));
        }
        check_key_free(&text, &issued.key_hash)?;
        let entry = registry_entry(&RegistryEntry {
            name,
            key_hash: &issued.key_hash,
            aliases: &self.request.aliases,
            serial: &issued.cert.serial,
            validity: &issued.cert.validity,
            origin,
            attestation: &attestation,
        });
        if text.is_empty() {
            text.push_str("# dialgate token registry (dialgatectl token enroll appends to it)\n");
        } else if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&entry);
        parse_registry(&text).map_err(|source| EnrolError::Registry {
            path: registry.display().to_string(),
            source,
        })?;
        dialgate_signed::store::write_atomically(registry, text.as_bytes())
            .map_err(io_error(registry))?;
        Ok(Enrolled {
            name: name.clone(),
            key_hash: issued.key_hash,
            cert_path,
            registry: registry.clone(),
            attestation,
            origin,
            entry,
        })
    }
}

/// HQ's enrolment settings, `HQ/enrol.toml` (optional):
///
/// ```toml
/// require_attestation = true   # refuse tokens without a verified attestation
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HqSettings {
    /// Refuse keys without a verified hardware attestation.
    #[serde(default)]
    pub require_attestation: bool,
}

impl HqSettings {
    /// Reads `HQ/enrol.toml`; absent means the defaults.
    pub fn load(dir: &Path) -> Result<HqSettings, EnrolError> {
        let path = dir.join("enrol.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| EnrolError::Registry {
                path: path.display().to_string(),
                source: ConfigError::Syntax {
                    path: path.display().to_string(),
                    message: e.to_string(),
                },
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HqSettings::default()),
            Err(e) => Err(io_error(&path)(e)),
        }
    }
}

/// Why a software key is unattested.
pub fn software_why() -> String {
    "software key read from a file".into()
}

fn check_key_free(registry: &str, key: &KeyHash) -> Result<(), EnrolError> {
    let (reg, _) = parse_registry(registry).map_err(|source| EnrolError::Registry {
        path: "<registry>".into(),
        source,
    })?;
    match reg.refusal(key) {
        Some(Refusal::NotRegistered) => Ok(()),
        Some(_) => Err(EnrolError::KeyTaken("a revoked entry".into())),
        None => Err(EnrolError::KeyTaken(reg.active(key).map_or_else(
            || "another entry".into(),
            |t| format!("{:?}", t.name),
        ))),
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Reads a software key (PKCS#8 PEM, P-256) for `--software`.
pub fn software_key(path: &Path) -> Result<KeyPair, EnrolError> {
    let err = |reason: &str| EnrolError::SoftwareKey {
        path: path.display().to_string(),
        reason: reason.into(),
    };
    let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(io_error(path))?);
    let key = KeyPair::from_pem(&pem).map_err(|_| err("not a PKCS#8 PEM private key"))?;
    if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
        return Err(err("not a P-256 key"));
    }
    Ok(key)
}

/// The fields of one registry entry.
#[derive(Debug)]
pub struct RegistryEntry<'a> {
    /// Token name.
    pub name: &'a str,
    /// Key hash.
    pub key_hash: &'a KeyHash,
    /// Granted aliases.
    pub aliases: &'a [String],
    /// Certificate serial.
    pub serial: &'a [u8],
    /// Certificate validity.
    pub validity: &'a Validity,
    /// How the key is held.
    pub origin: Origin,
    /// The attestation outcome.
    pub attestation: &'a Attestation,
}

/// `2027-01-31T12:00:00Z` (a TOML offset date-time).
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => "1970-01-01T00:00:00Z".into(),
    }
}

fn quoted(s: &str) -> String {
    // Names and aliases are checked words; attestation strings come from
    // fixed spellings. Escape anyway so no value can break the TOML.
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `[[token]]` block for one enrolment.
pub fn registry_entry(e: &RegistryEntry<'_>) -> String {
    let aliases: Vec<String> = e.aliases.iter().map(|a| quoted(a)).collect();
    let serial: String = e.serial.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = format!(
        "[[token]]\nname = {}\nkey_sha256 = \"{}\"\naliases = [{}]\norigin = \"{}\"\ncertificate_serial = \"{serial}\"\nnot_before = {}\nnot_after = {}\n",
        quoted(e.name),
        e.key_hash.to_hex(),
        aliases.join(", "),
        e.origin.name(),
        rfc3339(e.validity.not_before),
        rfc3339(e.validity.not_after),
    );
    match e.attestation {
        Attestation::Verified(a) => out.push_str(&format!(
            "attestation = {{ format = \"yubico-piv\", slot = \"{}\", device_serial = {}, firmware = \"{}.{}.{}\", pin_policy = {}, touch_policy = {} }}\n",
            a.slot,
            a.device_serial,
            a.firmware.0,
            a.firmware.1,
            a.firmware.2,
            quoted(&a.pin_policy.name()),
            quoted(&a.touch_policy.name()),
        )),
        Attestation::Unattested(why) => {
            out.push_str(&format!("# unattested: {}\nunattested = true\n", why.replace('\n', " ")));
        }
    }
    out
}

#[cfg(test)]
mod tests;
