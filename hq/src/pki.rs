//! A small X.509 PKI for the demo kit and the tests: a CA that issues
//! server certificates (the gateway, a test bridge) and client certificates
//! (phone tokens), P-256 keys throughout (fast on small ARM cores).
//!
//! Production tokens hold their keys in hardware and are enrolled through
//! PKCS#11 by `dialgatectl` at home; this module is for software keys that
//! are marked as such.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

/// Errors issuing certificates or writing them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused the parameters.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A validity time is not representable.
    #[error("validity period out of range")]
    BadValidity,
    /// The CA certificate or key cannot be used.
    #[error("token CA: {0}")]
    BadCa(String),
    /// The public key to certify is not a P-256 key.
    #[error("the public key to certify is not a P-256 key")]
    BadPublicKey,
    /// A name is neither an IP address nor a DNS name.
    #[error("invalid subject alternative name {0:?}")]
    BadName(String),
    /// Writing a file failed (existing files are never overwritten).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A validity period.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Not valid before.
    pub not_before: SystemTime,
    /// Not valid after.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (tolerating small clock skew) for `days` days.
    pub fn days_from_now(days: u64) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(days * 86_400),
        }
    }

    /// A period that ended yesterday (for tests of expiry).
    pub fn expired() -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(30 * 86_400),
            not_after: now - Duration::from_secs(86_400),
        }
    }

    fn apply(&self, params: &mut CertificateParams) -> Result<(), PkiError> {
        let t = |s: SystemTime| -> Result<time::OffsetDateTime, PkiError> {
            let secs = s
                .duration_since(UNIX_EPOCH)
                .map_err(|_| PkiError::BadValidity)?
                .as_secs();
            time::OffsetDateTime::from_unix_timestamp(
                i64::try_from(secs).map_err(|_| PkiError::BadValidity)?,
            )
            .map_err(|_| PkiError::BadValidity)
        };
        params.not_before = t(self.not_before)?;
        params.not_after = t(self.not_after)?;
        Ok(())
    }
}

/// A certificate and its private key, PEM encoded. The key is zeroized on
/// drop and not shown by `Debug`.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM. Secret.
    pub key_pem: Zeroizing<String>,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

impl Issued {
    /// Writes `cert.pem` (0644) and `key.pem` (0600) into `dir`; refuses to
    /// overwrite either.
    pub fn write_to(&self, dir: &Path) -> Result<(), PkiError> {
        write_file(&dir.join("cert.pem"), self.cert_pem.as_bytes(), 0o644)?;
        write_file(&dir.join("key.pem"), self.key_pem.as_bytes(), 0o600)
    }
}

/// A certificate authority held in memory.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn base_params(common_name: &str, validity: Validity) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "dialgate");
    validity.apply(&mut params)?;
    // A random serial: rcgen's default is derived from the key, which is
    // fine, but explicit randomness makes re-issued certificates distinct.
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| PkiError::BadValidity)?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    Ok(params)
}

impl Ca {
    /// A new self-signed CA with a fresh P-256 key.
    pub fn new(common_name: &str, validity: Validity) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = base_params(common_name, validity)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The CA's private key, PEM. Secret.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    fn issue(&self, mut params: CertificateParams) -> Result<Issued, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
            der: cert.der().clone(),
        })
    }

    /// A TLS server certificate for `names` (IP addresses or DNS names).
    pub fn issue_server(
        &self,
        common_name: &str,
        names: &[&str],
        validity: Validity,
    ) -> Result<Issued, PkiError> {
        let mut params = base_params(common_name, validity)?;
        for n in names {
            let san = match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    (*n).try_into()
                        .map_err(|_| PkiError::BadName((*n).to_string()))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A TLS client certificate (a phone token) named `common_name`.
    pub fn issue_client(&self, common_name: &str, validity: Validity) -> Result<Issued, PkiError> {
        let mut params = base_params(common_name, validity)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    /// Loads a CA written by [`Ca::new`] (or any CA with a P-256 key whose
    /// name rcgen reproduces byte for byte) from its certificate and
    /// private key, PEM.
    ///
    /// rcgen 0.13 signs with a `Certificate` built from parameters, so the
    /// CA's parameters are rebuilt from its certificate: its subject name
    /// attributes and its key. Certificates issued this way name the CA
    /// exactly as its certificate does (checked), so they chain to it.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        use crate::enrol::der;
        let ders = der::pem_certificates(cert_pem);
        let [ca_der] = ders.as_slice() else {
            return Err(PkiError::BadCa("expected one certificate".into()));
        };
        let parsed =
            der::Certificate::parse(ca_der.as_ref()).map_err(|e| PkiError::BadCa(e.to_string()))?;
        let key =
            KeyPair::from_pem(key_pem).map_err(|_| PkiError::BadCa("unreadable key".into()))?;
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::BadCa("the CA key is not P-256".into()));
        }
        if key.public_key_der() != parsed.spki {
            return Err(PkiError::BadCa(
                "the key does not belong to the certificate".into(),
            ));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for a in &parsed.subject_attributes {
            let oid = der::oid_arcs(a.oid).map_err(|e| PkiError::BadCa(e.to_string()))?;
            let text = std::str::from_utf8(a.value)
                .map_err(|_| PkiError::BadCa("name is not text".into()))?;
            let value = match a.tag {
                0x0c => rcgen::DnValue::Utf8String(text.into()),
                0x13 => rcgen::DnValue::PrintableString(
                    text.try_into()
                        .map_err(|_| PkiError::BadCa("PrintableString".into()))?,
                ),
                0x16 => rcgen::DnValue::Ia5String(
                    text.try_into()
                        .map_err(|_| PkiError::BadCa("IA5String".into()))?,
                ),
                _ => return Err(PkiError::BadCa("unsupported name string type".into())),
            };
            params
                .distinguished_name
                .push(DnType::CustomDnType(oid), value);
        }
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        let rebuilt = der::Certificate::parse(cert.der().as_ref())
            .map_err(|e| PkiError::BadCa(e.to_string()))?;
        if rebuilt.subject != parsed.subject {
            return Err(PkiError::BadCa(
                "its name cannot be reproduced exactly".into(),
            ));
        }
        Ok(Ca { cert, key })
    }

    /// A TLS client certificate named `common_name` for a P-256 public key
    /// held elsewhere (a hardware token), given as its SubjectPublicKeyInfo.
    pub fn issue_client_for_key(
        &self,
        common_name: &str,
        spki: &[u8],
        validity: Validity,
    ) -> Result<IssuedForKey, PkiError> {
        let point = crate::enrol::der::p256_point(spki)
            .map_err(|_| PkiError::BadPublicKey)?
            .to_vec();
        let mut params = base_params(common_name, validity)?;
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| s.to_bytes())
            .unwrap_or_default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&P256Public(point), &self.cert, &self.key)?;
        Ok(IssuedForKey {
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            serial,
            validity,
        })
    }
}

/// A P-256 public key by its uncompressed point.
struct P256Public(Vec<u8>);

impl rcgen::PublicKeyData for P256Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// A certificate issued for a key held elsewhere.
#[derive(Debug, Clone)]
pub struct IssuedForKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    /// Its serial number (big-endian, positive).
    pub serial: Vec<u8>,
    /// Its validity.
    pub validity: Validity,
}

/// PEM text of DER `der` under `label` (e.g. "PUBLIC KEY").
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Creates `path` with `mode` and writes `data`; never overwrites.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}
