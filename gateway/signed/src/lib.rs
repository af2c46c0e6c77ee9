//! The signed envelope every document from home travels in: policy
//! bundles today, signed commands and firmware manifests next. One format,
//! one verifier, one anti-rollback floor, so a fix here fixes all three.
//! [`repo`] verifies the signed repository those documents reach a kit
//! through.
//!
//! A [`Purpose`] names what a document is for (its header magic and the
//! domain-separation prefix of its signature), so a signature made for one
//! purpose never verifies as another: a firmware manifest is not a policy,
//! a policy is not a wipe command, even when HQ signed both with one key.
//!
//! # Format, version 1
//!
//! ```text
//! <magic> v1 <N>\n
//! <N octets: the body>
//! signature ecdsa-p256-sha256 <KEY-ID> <SIGNATURE>\n
//! ```
//!
//! - At most [`Purpose::max_bytes`] in all. Header: ASCII, single spaces;
//!   `N` in decimal, no sign, no leading zero.
//! - Exactly one signature line follows the body, and nothing follows it.
//!   `KEY-ID` is 64 lower-case hex digits (SHA-256 of the signer's DER
//!   SubjectPublicKeyInfo, as `openssl pkey -pubin -outform DER |
//!   sha256sum` prints it). `SIGNATURE` is canonical padded base64 of the
//!   DER ECDSA-Sig-Value (RFC 3279 §2.2.3), P-256 with SHA-256, over
//!   `domain || body` ([`Purpose::domain`], which ends in a NUL).
//!
//! # Example
//!
//! ```
//! use dialgate_signed::{open, seal, SigningKey, POLICY, FIRMWARE};
//!
//! let key = SigningKey::generate()?;
//! let sealed = seal(&POLICY, b"version = 1\n", &key)?;
//! let body = open(&POLICY, &sealed, key.public_key())?;
//! assert_eq!(body.bytes, b"version = 1\n");
//! // The same bytes are not a firmware manifest.
//! assert!(open(&FIRMWARE, &sealed, key.public_key()).is_err());
//! # Ok::<(), dialgate_signed::SignedError>(())
//! ```

#![forbid(unsafe_code)]

pub mod command;
mod detached;
mod envelope;
mod floor;
mod keys;
pub mod repo;
#[cfg(feature = "store")]
pub mod store;
pub mod time;

use std::fmt;

use aws_lc_rs::digest;

pub use detached::{sign_detached, verify_detached, Statement, AUDIT_CHECKPOINT};
pub use floor::Floor;
pub use keys::{PublicKey, SigningKey};

/// What a signed document is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Purpose {
    /// The header's first word, e.g. `dialgate-policy-bundle`.
    pub magic: &'static str,
    /// The signature's domain-separation prefix (ends in NUL).
    pub domain: &'static [u8],
    /// Largest document of this purpose a kit reads.
    pub max_bytes: usize,
    /// Its name in error messages and floors.
    pub name: &'static str,
}

/// Policy bundles (token registry, directory, trunks, switches).
pub const POLICY: Purpose = Purpose {
    magic: "dialgate-policy-bundle",
    domain: b"dialgate-policy-v1\0",
    max_bytes: 1 << 20,
    name: "policy",
};

/// Firmware manifests (the signed part of a firmware bundle: versions,
/// model, the hashes of the slot images).
pub const FIRMWARE: Purpose = Purpose {
    magic: "dialgate-firmware-manifest",
    domain: b"dialgate-firmware-v1\0",
    max_bytes: 64 << 10,
    name: "firmware",
};

/// Signed commands (wipe, drop calls, reboot).
pub const COMMAND: Purpose = Purpose {
    magic: "dialgate-command",
    domain: b"dialgate-command-v1\0",
    max_bytes: 16 << 10,
    name: "command",
};

/// SHA-256 of a DER SubjectPublicKeyInfo: how a signing key is named.
/// `Display` shows the first 8 octets.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The id of the key whose DER SubjectPublicKeyInfo is `spki`.
    pub fn of_spki(spki: &[u8]) -> KeyId {
        KeyId(sha256(spki))
    }

    /// Full lower-case hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses exactly 64 lower-case hex digits (one spelling only).
    pub fn from_hex(s: &str) -> Option<KeyId> {
        parse_hex32(s).map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0[..8]))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    h
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly 64 lower-case hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Why a signed document (or a key, or a floor) was refused. Every
/// message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignedError {
    /// Larger than a kit reads.
    #[error("{purpose} document is {size} bytes, more than the {max} a kit accepts: refused; build a smaller one")]
    TooLarge {
        /// The purpose's name.
        purpose: &'static str,
        /// The size found (or announced by the header).
        size: usize,
        /// [`Purpose::max_bytes`].
        max: usize,
    },
    /// The file ends early: an interrupted download or copy.
    #[error("{purpose} document is truncated: refused; fetch or copy it again")]
    Truncated {
        /// The purpose's name.
        purpose: &'static str,
    },
    /// Not framed as a version 1 document of this purpose.
    #[error("{purpose} document is malformed ({reason}): refused; rebuild it with dialgatectl")]
    Malformed {
        /// The purpose's name.
        purpose: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A format version this kit does not read.
    #[error("{purpose} document format v{found} is not supported (this kit reads v1): refused; build it with a dialgatectl that matches the kit's firmware")]
    UnsupportedFormat {
        /// The purpose's name.
        purpose: &'static str,
        /// The header's version.
        found: u32,
    },
    /// More than one signature line.
    #[error("{purpose} document carries more than one signature: refused; it has exactly one, rebuild it with dialgatectl")]
    DuplicateSignature {
        /// The purpose's name.
        purpose: &'static str,
    },
    /// Signed by a key other than the pinned one.
    #[error("{purpose} document is signed by key {signer}, not by this kit's {purpose} key {pinned}: refused; sign it with the right key, or check the key the kit pins")]
    UnknownSigner {
        /// The purpose's name.
        purpose: &'static str,
        /// The key id the document names.
        signer: KeyId,
        /// The pinned key's id.
        pinned: KeyId,
    },
    /// The signature does not verify: tampered, corrupted or forged.
    #[error("{purpose} document signature does not verify (tampered or corrupted): refused; rebuild and re-sign it with dialgatectl")]
    BadSignature {
        /// The purpose's name.
        purpose: &'static str,
    },
    /// A key that is not a P-256 key.
    #[error("not a P-256 signing key (a kit pins a PEM or DER SubjectPublicKeyInfo; dialgatectl signs with PKCS#8): check the key file")]
    BadKey,
    /// The crypto library failed to generate or use a signing key.
    #[error("could not generate or use the signing key: retry; if it persists, the host's crypto library is broken")]
    Signing,
    /// The anti-rollback floor does not decode.
    #[error("the {purpose} anti-rollback state is damaged: refused; do not delete it (that would allow rollback), restore it from the kit's backup or re-provision the kit")]
    CorruptFloor {
        /// The purpose's name.
        purpose: &'static str,
    },
}

/// A body whose signature verified against the pinned key for its
/// purpose; only [`open`] makes one.
#[derive(Debug)]
pub struct Opened<'a> {
    /// The exact body bytes that were signed.
    pub bytes: &'a [u8],
    /// SHA-256 of those bytes.
    pub sha256: [u8; 32],
    /// The signer's key id (the pinned key's).
    pub signer: KeyId,
}

/// A framed document whose signature has not been checked: for tools and
/// hostile-fixture tests. A kit uses [`open`], which checks it.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The body bytes.
    pub body: &'a [u8],
    /// The key id the document claims.
    pub key_id: KeyId,
    /// The DER signature it carries.
    pub signature: Vec<u8>,
}

/// Splits a document into body, claimed key id and signature, checking
/// only the framing.
pub fn unframe<'a>(purpose: &Purpose, bytes: &'a [u8]) -> Result<Unverified<'a>, SignedError> {
    let e = envelope::parse(purpose, bytes)?;
    Ok(Unverified {
        body: e.body,
        key_id: e.key_id,
        signature: e.signature,
    })
}

/// Frames `body` with a given signature line, signed or not: for tools
/// and hostile-fixture tests (a forged or foreign signature).
pub fn frame(purpose: &Purpose, body: &[u8], key_id: &KeyId, signature: &[u8]) -> Vec<u8> {
    envelope::assemble(purpose, body, key_id, signature)
}

/// The message a signature of `purpose` covers: its domain, then `body`.
pub fn signed_message(purpose: &Purpose, body: &[u8]) -> Vec<u8> {
    envelope::signed_message(purpose.domain, body)
}

/// Signs `body` for `purpose`.
pub fn seal(purpose: &Purpose, body: &[u8], key: &SigningKey) -> Result<Vec<u8>, SignedError> {
    let signature = key.sign(&envelope::signed_message(purpose.domain, body))?;
    let out = envelope::assemble(purpose, body, &key.public_key().id(), &signature);
    if out.len() > purpose.max_bytes {
        return Err(SignedError::TooLarge {
            purpose: purpose.name,
            size: out.len(),
            max: purpose.max_bytes,
        });
    }
    Ok(out)
}

/// Reads a document of `purpose` and verifies its one signature against
/// `pinned`. Nothing inside the body is looked at before the signature
/// verifies; the caller parses [`Opened::bytes`] after this returns.
pub fn open<'a>(
    purpose: &Purpose,
    bytes: &'a [u8],
    pinned: &PublicKey,
) -> Result<Opened<'a>, SignedError> {
    let env = envelope::parse(purpose, bytes)?;
    let pinned_id = pinned.id();
    if env.key_id != pinned_id {
        return Err(SignedError::UnknownSigner {
            purpose: purpose.name,
            signer: env.key_id,
            pinned: pinned_id,
        });
    }
    if !pinned.verify(
        &envelope::signed_message(purpose.domain, env.body),
        &env.signature,
    ) {
        return Err(SignedError::BadSignature {
            purpose: purpose.name,
        });
    }
    Ok(Opened {
        bytes: env.body,
        sha256: sha256(env.body),
        signer: pinned_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_do_not_cross() {
        let key = SigningKey::generate().unwrap();
        for (a, b) in [(POLICY, FIRMWARE), (FIRMWARE, COMMAND), (COMMAND, POLICY)] {
            let sealed = seal(&a, b"body", &key).unwrap();
            assert_eq!(open(&a, &sealed, key.public_key()).unwrap().bytes, b"body");
            assert!(open(&b, &sealed, key.public_key()).is_err());
            // Same magic, other domain: the signature fails.
            let relabelled = String::from_utf8(sealed.clone())
                .unwrap()
                .replacen(a.magic, b.magic, 1);
            assert!(matches!(
                open(&b, relabelled.as_bytes(), key.public_key()),
                Err(SignedError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn another_key_and_a_flipped_bit_are_refused() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let sealed = seal(&COMMAND, b"wipe", &key).unwrap();
        assert!(matches!(
            open(&COMMAND, &sealed, other.public_key()),
            Err(SignedError::UnknownSigner { .. })
        ));
        let header_len = sealed.iter().position(|&b| b == b'\n').unwrap() + 1;
        let mut bad = sealed.clone();
        bad[header_len] ^= 1;
        assert!(matches!(
            open(&COMMAND, &bad, key.public_key()),
            Err(SignedError::BadSignature { .. })
        ));
        assert!(seal(&COMMAND, &vec![b'x'; COMMAND.max_bytes], &key).is_err());
    }

    #[test]
    fn hex_has_one_spelling() {
        let id = KeyId([0xab; 32]);
        assert_eq!(KeyId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(KeyId::from_hex(&id.to_hex().to_uppercase()), None);
        assert_eq!(KeyId::from_hex(&id.to_hex()[1..]), None);
        assert_eq!(format!("{id}"), "abababababababab");
    }
}
