//! Session keys: the key derivation of RFC 3711 §4.3 and the cipher and
//! MAC objects built from its output.
//!
//! Every session key lives only inside aws-lc-rs key objects, which wipe
//! their key schedules on drop; the intermediate buffers here are
//! `Zeroizing`.

use aws_lc_rs::aead::{self, LessSafeKey, UnboundKey};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_256};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroizing;

use super::{Error, MasterKey, Suite};

/// Key derivation labels (RFC 3711 §4.3.2, §4.3.1).
#[derive(Clone, Copy)]
#[repr(u8)]
enum Label {
    RtpEncryption = 0x00,
    RtpAuth = 0x01,
    RtpSalt = 0x02,
    RtcpEncryption = 0x03,
    RtcpAuth = 0x04,
    RtcpSalt = 0x05,
}

/// Session authentication key length for HMAC-SHA1 (n_a = 160 bits).
const AUTH_KEY_LEN: usize = 20;

/// The AES-CM PRF of RFC 3711 §4.3.3 with a key derivation rate of zero:
/// the keystream for IV = (master_salt XOR (label << 48)) << 16.
///
/// GCM suites use the same PRF with their 96-bit master salt occupying the
/// leading octets of the 112-bit input (RFC 7714 §11).
pub(crate) fn derive(master: &MasterKey, label: u8, out: &mut [u8]) -> Result<(), Error> {
    let mut iv = Zeroizing::new([0u8; 16]);
    iv[..master.salt().len()].copy_from_slice(master.salt());
    iv[7] ^= label;
    out.fill(0);
    let key = ctr_key(master.key())?;
    key.less_safe_encrypt(out, EncryptionContext::Iv128(FixedLength::from(*iv)))
        .map_err(|_| Error::Crypto)?;
    Ok(())
}

fn ctr_key(key: &[u8]) -> Result<EncryptingKey, Error> {
    let alg = match key.len() {
        16 => &AES_128,
        32 => &AES_256,
        _ => return Err(Error::BadKeyLength),
    };
    let unbound = UnboundCipherKey::new(alg, key).map_err(|_| Error::Crypto)?;
    EncryptingKey::ctr(unbound).map_err(|_| Error::Crypto)
}

/// The keys of one of SRTP or SRTCP.
// Kept inline, not boxed: it is read on every packet and lives once per
// call direction, so the size difference costs nothing that matters.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Keys {
    /// AES counter mode with HMAC-SHA1 (RFC 3711 §4.1.1, §4.2.1).
    Cm {
        cipher: EncryptingKey,
        mac: hmac::Key,
        salt: [u8; 14],
    },
    /// AES-GCM (RFC 7714).
    Gcm { aead: LessSafeKey, salt: [u8; 12] },
}

impl Drop for Keys {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        match self {
            Keys::Cm { salt, .. } => salt.zeroize(),
            Keys::Gcm { salt, .. } => salt.zeroize(),
        }
    }
}

impl Keys {
    fn new(master: &MasterKey, enc: Label, auth: Label, salt_label: Label) -> Result<Keys, Error> {
        let suite = master.suite();
        let mut key = Zeroizing::new([0u8; 32]);
        let key = &mut key[..suite.key_len()];
        derive(master, enc as u8, key)?;
        if suite.is_aead() {
            let mut salt = [0u8; 12];
            derive(master, salt_label as u8, &mut salt)?;
            let alg = match suite {
                Suite::AeadAes256Gcm => &aead::AES_256_GCM,
                _ => &aead::AES_128_GCM,
            };
            let unbound = UnboundKey::new(alg, key).map_err(|_| Error::Crypto)?;
            Ok(Keys::Gcm {
                aead: LessSafeKey::new(unbound),
                salt,
            })
        } else {
            let mut auth_key = Zeroizing::new([0u8; AUTH_KEY_LEN]);
            derive(master, auth as u8, &mut auth_key[..])?;
            let mut salt = [0u8; 14];
            derive(master, salt_label as u8, &mut salt)?;
            Ok(Keys::Cm {
                cipher: ctr_key(key)?,
                mac: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &auth_key[..]),
                salt,
            })
        }
    }

    /// AES-CM encryption (RFC 3711 §4.1.1): IV = (salt << 16) XOR (SSRC << 64)
    /// XOR (index << 16). Encryption and decryption are the same operation.
    pub(crate) fn ctr_apply(&self, ssrc: u32, index: u64, data: &mut [u8]) -> Result<(), Error> {
        let Keys::Cm { cipher, salt, .. } = self else {
            return Err(Error::Crypto);
        };
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(salt);
        for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *d ^= s;
        }
        for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *d ^= s;
        }
        cipher
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| Error::Crypto)?;
        Ok(())
    }

    /// HMAC-SHA1 over `parts` (RFC 3711 §4.2.1), full 20-octet output.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> Result<hmac::Tag, Error> {
        let Keys::Cm { mac, .. } = self else {
            return Err(Error::Crypto);
        };
        let mut ctx = hmac::Context::with_key(mac);
        for p in parts {
            ctx.update(p);
        }
        Ok(ctx.sign())
    }

    /// The GCM key and the 96-bit IV for `nonce_input` (RFC 7714 §8.1, §9.1):
    /// the session salt XORed with the 12-octet `nonce_input`.
    pub(crate) fn gcm(&self, nonce_input: [u8; 12]) -> Result<(&LessSafeKey, aead::Nonce), Error> {
        let Keys::Gcm { aead, salt } = self else {
            return Err(Error::Crypto);
        };
        let mut iv = nonce_input;
        for (d, s) in iv.iter_mut().zip(salt) {
            *d ^= s;
        }
        Ok((aead, aead::Nonce::assume_unique_for_key(iv)))
    }
}

/// The SRTP and SRTCP session keys derived from one master key.
pub(crate) struct SessionKeys {
    pub(crate) suite: Suite,
    pub(crate) rtp: Keys,
    pub(crate) rtcp: Keys,
}

impl SessionKeys {
    pub(crate) fn derive(master: &MasterKey) -> Result<SessionKeys, Error> {
        Ok(SessionKeys {
            suite: master.suite(),
            rtp: Keys::new(master, Label::RtpEncryption, Label::RtpAuth, Label::RtpSalt)?,
            rtcp: Keys::new(
                master,
                Label::RtcpEncryption,
                Label::RtcpAuth,
                Label::RtcpSalt,
            )?,
        })
    }
}

#[cfg(test)]
impl Keys {
    /// Keys from given session keys (the RFC vectors give session keys).
    pub(crate) fn cm_from_session(key: &[u8], auth: &[u8], salt: [u8; 14]) -> Keys {
        Keys::Cm {
            cipher: ctr_key(key).unwrap(),
            mac: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth),
            salt,
        }
    }

    pub(crate) fn gcm_from_session(key: &[u8], salt: [u8; 12]) -> Keys {
        let alg = if key.len() == 32 {
            &aead::AES_256_GCM
        } else {
            &aead::AES_128_GCM
        };
        Keys::Gcm {
            aead: LessSafeKey::new(UnboundKey::new(alg, key).unwrap()),
            salt,
        }
    }
}
