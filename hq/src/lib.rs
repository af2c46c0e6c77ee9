//! dialgate's home side: everything `dialgatectl` does at HQ, and nothing
//! an appliance runs. The appliance image is built without this crate
//! (`tests/tests/layout.rs` checks that its binaries link no cryptoki or
//! rcgen code).
//!
//! - [`hq`]: the HQ folder (CAs, the policy signing key, registry,
//!   directory, trunk settings) and building signed policy bundles.
//! - [`pki`]: the dev and production PKI (rcgen): token CA, kit CA, kit
//!   gateway and device certificates.
//! - [`audit`]: verifying a kit's audit trail as the SIEM received it.
//! - [`publish`]: the kits' signed repositories (`dialgatectl publish`).
//! - [`kits`]: the kits' status as a Pushgateway holds it (`dialgatectl kits`).
//! - [`enrol`]: token enrolment over PKCS#11 (cryptoki) and YubiKey PIV
//!   attestation verification.

pub mod audit;
pub mod command;
pub mod enrol;
pub mod firmware;
pub mod hq;
pub mod kits;
pub mod pki;
pub mod publish;

use std::path::Path;

use dialgate_proto::admission::KeyHash;
use rustls::pki_types::CertificateDer;

/// The file system, for [`dialgate_proto::config::Config::load`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Files;

impl dialgate_proto::config::ReadFile for Files {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// A certificate that does not parse as X.509.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate")]
pub struct BadCertificate;

/// The [`KeyHash`] of a certificate: SHA-256 of its SubjectPublicKeyInfo.
pub fn key_hash_of(cert: &CertificateDer<'_>) -> Result<KeyHash, BadCertificate> {
    KeyHash::of_certificate(cert).map_err(|_| BadCertificate)
}
