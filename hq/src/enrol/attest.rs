//! YubiKey PIV attestation, verified with pure functions.
//!
//! A YubiKey (firmware 4.3 and later) can attest that the key in a PIV slot
//! was generated on the device: it signs a certificate for that key
//! ("YubiKey PIV Attestation 9a", subject CN ending in the slot) with its
//! factory attestation key held in slot f9, whose certificate ("Yubico PIV
//! Attestation") is issued by Yubico's PIV root CA. The slot certificate
//! carries Yubico extensions (arc 1.3.6.1.4.1.41482.3):
//!
//! | OID | content |
//! |---|---|
//! | `.3.3` | firmware version: three octets, major minor patch |
//! | `.3.7` | device serial number: a DER INTEGER |
//! | `.3.8` | PIN policy octet, touch policy octet |
//!
//! [`verify_piv`] checks the chain (webpki: signatures, validity at `now`,
//! CA constraints), that the attested key is the enrolled key, the slot, and
//! decodes the extensions. Its result is what the registry records.
//!
//! Trust: [`yubico_piv_root`] is Yubico's published root for firmware
//! before 5.7.4 ("Yubico PIV Root CA Serial 263751"). Later firmware
//! attests under "Yubico Attestation Root 1" through intermediates the key
//! does not carry; an officer with such keys passes that root and the
//! intermediates (`dialgatectl token enroll --attestation-root`).

use rustls::pki_types::{CertificateDer, UnixTime};

use super::der::{self, pem_certificates, Certificate, DerError};

/// Yubico's published PIV attestation root (firmware before 5.7.4), PEM.
pub const YUBICO_PIV_ROOT_PEM: &str = include_str!("roots/yubico-piv-root-ca.pem");

/// Yubico's PIV attestation root, DER.
pub fn yubico_piv_root() -> CertificateDer<'static> {
    pem_certificates(YUBICO_PIV_ROOT_PEM)
        .into_iter()
        .next()
        .unwrap_or_else(|| CertificateDer::from(Vec::new()))
}

const OID_FIRMWARE: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xc4, 0x0a, 0x03, 0x03];
const OID_SERIAL: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xc4, 0x0a, 0x03, 0x07];
const OID_POLICY: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xc4, 0x0a, 0x03, 0x08];

/// The subject CN prefix of a slot attestation certificate.
const SLOT_CN_PREFIX: &str = "YubiKey PIV Attestation ";

/// A PIV key slot (SP 800-73-4 key references).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PivSlot(u8);

impl PivSlot {
    /// PIV Authentication (9a), the slot for TLS client keys.
    pub const AUTHENTICATION: PivSlot = PivSlot(0x9a);

    /// A slot that can hold an attestable key: 9a, 9c, 9d, 9e or a retired
    /// key slot 82..95.
    pub fn new(reference: u8) -> Option<PivSlot> {
        matches!(reference, 0x9a | 0x9c | 0x9d | 0x9e | 0x82..=0x95).then_some(PivSlot(reference))
    }

    /// The slot Yubico's PKCS#11 module (ykcs11) maps a key `CKA_ID` to:
    /// 1..4 are 9a, 9c, 9d, 9e; 5..24 are the retired slots 82..95.
    pub fn from_ykcs11_id(id: &[u8]) -> Option<PivSlot> {
        match id {
            [1] => Some(PivSlot(0x9a)),
            [2] => Some(PivSlot(0x9c)),
            [3] => Some(PivSlot(0x9d)),
            [4] => Some(PivSlot(0x9e)),
            [n @ 5..=24] => Some(PivSlot(0x82 + (n - 5))),
            _ => None,
        }
    }

    /// The key reference, e.g. 0x9a.
    pub fn reference(self) -> u8 {
        self.0
    }
}

impl std::fmt::Display for PivSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

/// When the key's PIN must be entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinPolicy {
    /// Never.
    Never,
    /// Once per session.
    Once,
    /// For every operation.
    Always,
    /// A value this version does not know.
    Other(u8),
}

impl PinPolicy {
    fn from_octet(v: u8) -> PinPolicy {
        match v {
            1 => PinPolicy::Never,
            2 => PinPolicy::Once,
            3 => PinPolicy::Always,
            v => PinPolicy::Other(v),
        }
    }

    /// The registry spelling.
    pub fn name(self) -> String {
        match self {
            PinPolicy::Never => "never".into(),
            PinPolicy::Once => "once".into(),
            PinPolicy::Always => "always".into(),
            PinPolicy::Other(v) => format!("other-{v}"),
        }
    }
}

/// When the key needs a touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TouchPolicy {
    /// Never.
    Never,
    /// For every operation.
    Always,
    /// Once every 15 seconds.
    Cached,
    /// A value this version does not know.
    Other(u8),
}

impl TouchPolicy {
    fn from_octet(v: u8) -> TouchPolicy {
        match v {
            1 => TouchPolicy::Never,
            2 => TouchPolicy::Always,
            3 => TouchPolicy::Cached,
            v => TouchPolicy::Other(v),
        }
    }

    /// The registry spelling.
    pub fn name(self) -> String {
        match self {
            TouchPolicy::Never => "never".into(),
            TouchPolicy::Always => "always".into(),
            TouchPolicy::Cached => "cached".into(),
            TouchPolicy::Other(v) => format!("other-{v}"),
        }
    }
}

/// What a verified PIV attestation says about the enrolled key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PivAttestation {
    /// The slot the key is in.
    pub slot: PivSlot,
    /// The device's serial number.
    pub device_serial: u32,
    /// Firmware version (major, minor, patch).
    pub firmware: (u8, u8, u8),
    /// PIN policy of the key.
    pub pin_policy: PinPolicy,
    /// Touch policy of the key.
    pub touch_policy: TouchPolicy,
}

/// Why an attestation is refused. Every variant means: do not believe that
/// this key was generated on a genuine device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// A certificate is not well-formed DER.
    #[error("attestation certificate: {0}")]
    Malformed(#[from] DerError),
    /// The chain does not verify to a trusted root (bad signature, expired,
    /// not yet valid, unknown issuer, an intermediate that is not a CA).
    #[error("attestation does not verify against the trusted attestation root: {0}")]
    Chain(webpki::Error),
    /// The slot certificate's subject is not "YubiKey PIV Attestation XX".
    #[error("not a YubiKey PIV slot attestation (subject CN {0:?})")]
    NotSlotAttestation(String),
    /// It attests another slot than the key is in.
    #[error("attestation is for slot {found}, the key is in slot {expected}")]
    WrongSlot {
        /// The key's slot.
        expected: PivSlot,
        /// The attested slot.
        found: PivSlot,
    },
    /// It attests another key than the one being enrolled.
    #[error("attestation is for another key than the one being enrolled")]
    KeyMismatch,
    /// A Yubico extension is missing or malformed.
    #[error("attestation extension {0} missing or malformed")]
    Extension(&'static str),
}

/// Verifies a YubiKey PIV slot attestation.
///
/// `slot_cert` is the slot's attestation certificate, `intermediates` the
/// device's f9 certificate (and, for firmware 5.7.4 and later, Yubico's
/// intermediates), `roots` the trusted attestation roots,
/// `enrolled_spki` the DER SubjectPublicKeyInfo of the key being enrolled,
/// `expected_slot` the slot the key was generated in when known.
pub fn verify_piv(
    slot_cert: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    enrolled_spki: &[u8],
    expected_slot: Option<PivSlot>,
    now: UnixTime,
) -> Result<PivAttestation, AttestationError> {
    let cert = Certificate::parse(slot_cert.as_ref())?;
    for i in intermediates {
        Certificate::parse(i.as_ref())?;
    }
    let anchors = roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(AttestationError::Chain)?;
    let ee = webpki::EndEntityCert::try_from(slot_cert).map_err(AttestationError::Chain)?;
    // Slot attestation certificates carry no extended key usage; one that
    // does must at least allow client authentication.
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        now,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(AttestationError::Chain)?;

    let cn = cert.common_name().unwrap_or_default();
    let slot = cn
        .strip_prefix(SLOT_CN_PREFIX)
        .filter(|s| s.len() == 2)
        .and_then(|s| u8::from_str_radix(s, 16).ok())
        .and_then(PivSlot::new)
        .ok_or_else(|| AttestationError::NotSlotAttestation(cn.to_string()))?;
    if let Some(expected) = expected_slot {
        if expected != slot {
            return Err(AttestationError::WrongSlot {
                expected,
                found: slot,
            });
        }
    }
    if cert.spki != enrolled_spki {
        return Err(AttestationError::KeyMismatch);
    }

    let firmware = match cert.extension(OID_FIRMWARE).map(|e| e.value) {
        Some(&[a, b, c]) => (a, b, c),
        _ => {
            return Err(AttestationError::Extension(
                "1.3.6.1.4.1.41482.3.3 (firmware)",
            ))
        }
    };
    let serial_ext = "1.3.6.1.4.1.41482.3.7 (serial number)";
    let serial = cert
        .extension(OID_SERIAL)
        .ok_or(AttestationError::Extension(serial_ext))?;
    let device_serial = der::single(serial.value, der::tag::INTEGER)
        .ok()
        .and_then(positive_u32)
        .ok_or(AttestationError::Extension(serial_ext))?;
    let (pin_policy, touch_policy) = match cert.extension(OID_POLICY).map(|e| e.value) {
        Some(&[pin, touch]) => (PinPolicy::from_octet(pin), TouchPolicy::from_octet(touch)),
        _ => {
            return Err(AttestationError::Extension(
                "1.3.6.1.4.1.41482.3.8 (PIN and touch policy)",
            ))
        }
    };
    Ok(PivAttestation {
        slot,
        device_serial,
        firmware,
        pin_policy,
        touch_policy,
    })
}

/// A non-negative DER INTEGER's contents that fit in 32 bits.
fn positive_u32(contents: &[u8]) -> Option<u32> {
    let digits = match contents {
        [0, rest @ ..] if rest.first().is_some_and(|b| b & 0x80 != 0) => rest,
        [b, ..] if b & 0x80 != 0 => return None,
        other => other,
    };
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    Some(digits.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
}

#[cfg(test)]
mod tests;
