//! The policy signing key (kept by the kit officer, at home) and the
//! policy verification key (pinned in every kit's configuration).
//!
//! ECDSA P-256 with SHA-256, signatures in ASN.1 DER (see the module
//! documentation of [`super`] for why). A key is named by the SHA-256 of its
//! SubjectPublicKeyInfo, like token keys ([`KeyHash`]), so
//! `openssl pkey -pubin -in policy-key.pem -outform DER | sha256sum` gives
//! the same id the bundle carries.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::SubjectPublicKeyInfoDer;
use zeroize::Zeroizing;

use super::PolicyError;
use crate::tls::KeyHash;

/// The public half of the policy signing key, as a kit pins it.
#[derive(Clone)]
pub struct PolicyKey {
    key: ParsedPublicKey,
    spki: Vec<u8>,
    id: KeyHash,
}

impl PolicyKey {
    /// Parses a P-256 public key given as a DER SubjectPublicKeyInfo or as
    /// an uncompressed SEC1 point (65 octets). Any other curve or algorithm
    /// is refused: a kit trusts exactly one kind of policy key.
    pub fn from_der(der: &[u8]) -> Result<PolicyKey, PolicyError> {
        let key =
            ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).map_err(|_| PolicyError::BadKey)?;
        // The id is taken from aws-lc's own encoding, so both input forms
        // of one key get the same id.
        let spki = AsDer::<PublicKeyX509Der>::as_der(&key)
            .map_err(|_| PolicyError::BadKey)?
            .as_ref()
            .to_vec();
        let id = key_id(&spki);
        Ok(PolicyKey { key, spki, id })
    }

    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), the form
    /// `dialgatectl pki init` writes and a kit's configuration names.
    pub fn from_pem(pem: &[u8]) -> Result<PolicyKey, PolicyError> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| PolicyError::BadKey)?;
        PolicyKey::from_der(der.as_ref())
    }

    /// The key's id: SHA-256 of its DER SubjectPublicKeyInfo.
    pub fn id(&self) -> KeyHash {
        self.id
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

impl fmt::Debug for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyKey({})", self.id)
    }
}

impl PartialEq for PolicyKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for PolicyKey {}

/// The private policy signing key. Used by `dialgatectl` at home, never
/// present on a kit. `Debug` shows only the key id.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PolicyKey,
}

impl SigningKey {
    /// A fresh random key (for `dialgatectl pki init` and tests).
    pub fn generate() -> Result<SigningKey, PolicyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| PolicyError::Signing)?;
        SigningKey::from_pair(pair)
    }

    /// Loads a P-256 key from PKCS#8 DER (v1 or v2).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, PolicyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|_| PolicyError::BadKey)?;
        SigningKey::from_pair(pair)
    }

    fn from_pair(pair: EcdsaKeyPair) -> Result<SigningKey, PolicyError> {
        let public = PolicyKey::from_der(pair.public_key().as_ref())?;
        Ok(SigningKey { pair, public })
    }

    /// The key as PKCS#8 v1 DER, to be written with mode 0600. Zeroed when
    /// dropped.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, PolicyError> {
        let doc = self.pair.to_pkcs8v1().map_err(|_| PolicyError::Signing)?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// The public key kits pin.
    pub fn public_key(&self) -> &PolicyKey {
        &self.public
    }

    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PolicyError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| PolicyError::Signing)?;
        Ok(sig.as_ref().to_vec())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <private>)", self.public.id)
    }
}

pub(super) fn key_id(spki: &[u8]) -> KeyHash {
    let d = digest::digest(&digest::SHA256, spki);
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    KeyHash(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_public_key_forms_give_one_id_and_pkcs8_round_trips() {
        let k = SigningKey::generate().unwrap();
        let point = k.pair.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65);
        let from_point = PolicyKey::from_der(&point).unwrap();
        let from_spki = PolicyKey::from_der(k.public_key().spki_der()).unwrap();
        assert_eq!(from_point.id(), from_spki.id());
        assert_eq!(from_spki.id(), key_id(from_spki.spki_der()));

        let again = SigningKey::from_pkcs8(&k.to_pkcs8().unwrap()).unwrap();
        assert_eq!(again.public_key(), k.public_key());

        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(k.public_key().spki_der())
        };
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
        assert_eq!(
            PolicyKey::from_pem(pem.as_bytes()).unwrap(),
            *k.public_key()
        );
    }

    #[test]
    fn other_curves_and_garbage_are_not_policy_keys() {
        let ed = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
        let ed_spki = AsDer::<PublicKeyX509Der>::as_der(ed.public_key()).unwrap();
        assert!(matches!(
            PolicyKey::from_der(ed_spki.as_ref()),
            Err(PolicyError::BadKey)
        ));
        let p384 =
            EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
        assert!(PolicyKey::from_der(p384.public_key().as_ref()).is_err());
        assert!(PolicyKey::from_der(&[4u8; 65]).is_err());
        assert!(PolicyKey::from_der(b"").is_err());
        assert!(PolicyKey::from_pem(b"-----BEGIN PUBLIC KEY-----\n").is_err());
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let k = SigningKey::generate().unwrap();
        let d = format!("{k:?}");
        assert!(d.contains("<private>") && d.len() < 64, "{d}");
    }
}
