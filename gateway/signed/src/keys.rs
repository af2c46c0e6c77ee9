//! Signing keys (kept by the kit officer, at home) and the public keys a
//! kit pins (one per purpose: policy, firmware, commands).
//!
//! ECDSA P-256 with SHA-256, signatures in ASN.1 DER. P-256 rather than
//! Ed25519 because these are the keys worth moving into a hardware token
//! or HSM, where P-256 ECDSA is universal through PKCS#11 and PIV. A key is
//! named by the SHA-256 of its SubjectPublicKeyInfo ([`KeyId`]), so
//! `openssl pkey -pubin -in policy-key.pem -outform DER | sha256sum` gives
//! the same id a document carries.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::{KeyId, SignedError};

/// The public half of a signing key, as a kit pins it.
#[derive(Clone)]
pub struct PublicKey {
    key: ParsedPublicKey,
    spki: Vec<u8>,
    id: KeyId,
}

impl PublicKey {
    /// Parses a P-256 public key given as a DER SubjectPublicKeyInfo or as
    /// an uncompressed SEC1 point (65 octets). Any other curve or algorithm
    /// is refused: a kit trusts exactly one kind of policy key.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, SignedError> {
        let key =
            ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).map_err(|_| SignedError::BadKey)?;
        // The id is taken from aws-lc's own encoding, so both input forms
        // of one key get the same id.
        let spki = AsDer::<PublicKeyX509Der>::as_der(&key)
            .map_err(|_| SignedError::BadKey)?
            .as_ref()
            .to_vec();
        let id = key_id(&spki);
        Ok(PublicKey { key, spki, id })
    }

    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), the form
    /// `dialgatectl pki init` writes and a kit's configuration names.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, SignedError> {
        let text = std::str::from_utf8(pem).map_err(|_| SignedError::BadKey)?;
        let start = text
            .find("-----BEGIN PUBLIC KEY-----")
            .ok_or(SignedError::BadKey)?;
        let body = &text[start + "-----BEGIN PUBLIC KEY-----".len()..];
        let end = body
            .find("-----END PUBLIC KEY-----")
            .ok_or(SignedError::BadKey)?;
        let b64: String = body[..end].split_whitespace().collect();
        let der = STANDARD.decode(b64).map_err(|_| SignedError::BadKey)?;
        PublicKey::from_der(&der)
    }

    /// The PEM `PUBLIC KEY` form (what [`PublicKey::from_pem`] reads).
    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.spki);
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    /// The key's id: SHA-256 of its DER SubjectPublicKeyInfo.
    pub fn id(&self) -> KeyId {
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

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for PublicKey {}

/// A private signing key. Used by `dialgatectl` at home, never present
/// on a kit. `Debug` shows only the key id.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
}

impl SigningKey {
    /// A fresh random key (for `dialgatectl pki init` and tests).
    pub fn generate() -> Result<SigningKey, SignedError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| SignedError::Signing)?;
        SigningKey::from_pair(pair)
    }

    /// Loads a P-256 key from PKCS#8 DER (v1 or v2).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, SignedError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map_err(|_| SignedError::BadKey)?;
        SigningKey::from_pair(pair)
    }

    fn from_pair(pair: EcdsaKeyPair) -> Result<SigningKey, SignedError> {
        let public = PublicKey::from_der(pair.public_key().as_ref())?;
        Ok(SigningKey { pair, public })
    }

    /// The key as PKCS#8 v1 DER, to be written with mode 0600. Zeroed when
    /// dropped.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, SignedError> {
        let doc = self.pair.to_pkcs8v1().map_err(|_| SignedError::Signing)?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// The public key kits pin.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` as it is (ECDSA P-256, SHA-256, DER). Documents
    /// are signed with [`crate::seal`], which adds the purpose's domain.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignedError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| SignedError::Signing)?;
        Ok(sig.as_ref().to_vec())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <private>)", self.public.id)
    }
}

fn key_id(spki: &[u8]) -> KeyId {
    KeyId::of_spki(spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_public_key_forms_give_one_id_and_pkcs8_round_trips() {
        let k = SigningKey::generate().unwrap();
        let point = k.pair.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65);
        let from_point = PublicKey::from_der(&point).unwrap();
        let from_spki = PublicKey::from_der(k.public_key().spki_der()).unwrap();
        assert_eq!(from_point.id(), from_spki.id());
        assert_eq!(from_spki.id(), key_id(from_spki.spki_der()));

        let again = SigningKey::from_pkcs8(&k.to_pkcs8().unwrap()).unwrap();
        assert_eq!(again.public_key(), k.public_key());

        let b64 = STANDARD.encode(k.public_key().spki_der());
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
        assert_eq!(
            PublicKey::from_pem(pem.as_bytes()).unwrap(),
            *k.public_key()
        );
        let written = k.public_key().to_pem();
        assert_eq!(
            PublicKey::from_pem(written.as_bytes()).unwrap(),
            *k.public_key()
        );
    }

    #[test]
    fn other_curves_and_garbage_are_not_policy_keys() {
        let ed = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
        let ed_spki = AsDer::<PublicKeyX509Der>::as_der(ed.public_key()).unwrap();
        assert!(matches!(
            PublicKey::from_der(ed_spki.as_ref()),
            Err(SignedError::BadKey)
        ));
        let p384 =
            EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
        assert!(PublicKey::from_der(p384.public_key().as_ref()).is_err());
        assert!(PublicKey::from_der(&[4u8; 65]).is_err());
        assert!(PublicKey::from_der(b"").is_err());
        assert!(PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----\n").is_err());
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let k = SigningKey::generate().unwrap();
        let d = format!("{k:?}");
        assert!(d.contains("<private>") && d.len() < 64, "{d}");
    }
}
