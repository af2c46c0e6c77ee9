//! The SRTP protection profiles dialgate speaks, and their master keys.
//!
//! NULL cipher and NULL authentication profiles do not exist in this enum, so
//! they can neither be offered nor accepted: there is no value to name them.

use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Error;

/// An SRTP crypto suite (RFC 4568 §6.2, RFC 6188 §7, RFC 7714 §12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 3711).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit SRTP tag; SRTCP keeps
    /// the 80-bit tag (RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
    /// AES-256 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 6188).
    AesCm256HmacSha1_80,
    /// AES-128 GCM with a 16-octet tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256 GCM with a 16-octet tag (RFC 7714).
    AeadAes256Gcm,
}

impl Suite {
    /// Every suite, strongest first (the order a default allow-list prefers).
    pub const ALL: [Suite; 5] = [
        Suite::AeadAes256Gcm,
        Suite::AeadAes128Gcm,
        Suite::AesCm256HmacSha1_80,
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
    ];

    /// The SDES name of the suite (the `a=crypto` attribute's crypto-suite).
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Looks a suite up by its SDES name. Unknown names, including every
    /// NULL profile, are refused.
    pub fn from_name(name: &str) -> Result<Suite, Error> {
        Suite::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or(Error::UnknownSuite)
    }

    /// Whether this is an AEAD (GCM) suite.
    pub fn is_aead(self) -> bool {
        matches!(self, Suite::AeadAes128Gcm | Suite::AeadAes256Gcm)
    }

    /// Master (and session) encryption key length in octets.
    pub fn key_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 | Suite::AeadAes128Gcm => 16,
            Suite::AesCm256HmacSha1_80 | Suite::AeadAes256Gcm => 32,
        }
    }

    /// Master (and session) salt length in octets: 112 bits for AES-CM,
    /// 96 bits for GCM (RFC 7714 §12).
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// Authentication tag length of an SRTP packet.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_32 => 4,
            Suite::AesCm128HmacSha1_80 | Suite::AesCm256HmacSha1_80 => 10,
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => 16,
        }
    }

    /// Authentication tag length of an SRTCP packet.
    pub fn rtcp_tag_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            10
        }
    }

    /// Octets that `protect_rtp` adds to a packet.
    pub fn rtp_overhead(self) -> usize {
        self.rtp_tag_len()
    }

    /// Octets that `protect_rtcp` adds to a packet (tag and E||index word).
    pub fn rtcp_overhead(self) -> usize {
        self.rtcp_tag_len() + 4
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest master key (AES-256) plus longest master salt.
pub(crate) const MAX_KEY_SALT: usize = 32 + 14;

/// A master key and master salt for one suite, as carried in an SDES
/// `inline:` parameter. Zeroized on drop; `Debug` shows only the suite.
/// The bytes live on the heap, so that moving a key (into a leg's
/// configuration, across the relay's channel) copies a pointer, never the
/// key: no stale copy is left on a stack.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    #[zeroize(skip)]
    suite: Suite,
    bytes: Box<[u8; MAX_KEY_SALT]>,
}

impl MasterKey {
    /// Builds a master key from `key || salt` (the layout of SDES `inline:`).
    pub fn new(suite: Suite, key_and_salt: &[u8]) -> Result<MasterKey, Error> {
        if key_and_salt.len() != suite.key_len() + suite.salt_len() {
            return Err(Error::BadKeyLength);
        }
        let mut bytes = Box::new([0u8; MAX_KEY_SALT]);
        bytes[..key_and_salt.len()].copy_from_slice(key_and_salt);
        Ok(MasterKey { suite, bytes })
    }

    /// Draws a fresh master key and salt from the system's CSPRNG.
    pub fn generate(suite: Suite) -> Result<MasterKey, Error> {
        let mut bytes = Box::new([0u8; MAX_KEY_SALT]);
        let n = suite.key_len() + suite.salt_len();
        aws_lc_rs::rand::fill(&mut bytes[..n]).map_err(|_| Error::Crypto)?;
        Ok(MasterKey { suite, bytes })
    }

    /// The suite this key is for.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The master key.
    pub fn key(&self) -> &[u8] {
        &self.bytes[..self.suite.key_len()]
    }

    /// The master salt.
    pub fn salt(&self) -> &[u8] {
        let k = self.suite.key_len();
        &self.bytes[k..k + self.suite.salt_len()]
    }

    /// `key || salt`, for encoding into an SDES `inline:` parameter. Callers
    /// must not log it.
    pub fn key_and_salt(&self) -> &[u8] {
        &self.bytes[..self.suite.key_len() + self.suite.salt_len()]
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}
