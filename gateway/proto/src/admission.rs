//! Admission: which token keys may connect and call.
//!
//! A token is known by the SHA-256 of its SubjectPublicKeyInfo
//! ([`KeyHash`]), never by a certificate name; the [`Registry`] names it.
//! The shell's TLS verifier asks [`Registry::admit`] during the handshake
//! and keeps the [`Admitted`] it returns for the life of the connection;
//! the B2BUA turns it into an [`Authorized`] for one call (see
//! [`crate::b2bua`]), and neither value can be made any other way.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::digest;

/// A key hash that is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("key hash must be 64 hex digits")]
pub struct BadKeyHash;

/// SHA-256 of a certificate's SubjectPublicKeyInfo: how a token (or a
/// pinned bridge key) is named. `Display` shows the first 8 octets, enough
/// for logs and audit lines.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// The hash of a DER SubjectPublicKeyInfo (the shell extracts it from
    /// a certificate with its X.509 parser).
    pub fn of_spki(spki_der: &[u8]) -> KeyHash {
        let d = digest::digest(&digest::SHA256, spki_der);
        let mut h = [0u8; 32];
        h.copy_from_slice(d.as_ref());
        KeyHash(h)
    }

    /// Full lower-case hex, for configuration files.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<KeyHash, BadKeyHash> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return Err(BadKeyHash);
        }
        let mut h = [0u8; 32];
        for (i, b) in h.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| BadKeyHash)?;
        }
        Ok(KeyHash(h))
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({self})")
    }
}

/// One registered token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    /// The token's name, the identity its calls must carry.
    pub name: String,
    /// Revoked tokens are refused at the handshake.
    pub revoked: bool,
}

/// The token registry: which token keys may connect. Shared by the TLS
/// verifier and the call layer; replaced as a whole when a new policy is
/// applied.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    entries: HashMap<KeyHash, TokenEntry>,
}

impl Registry {
    /// Adds or replaces an entry.
    pub fn insert(&mut self, key: KeyHash, entry: TokenEntry) {
        self.entries.insert(key, entry);
    }

    /// The active (registered, not revoked) token with this key.
    pub fn active(&self, key: &KeyHash) -> Option<&TokenEntry> {
        self.entries.get(key).filter(|e| !e.revoked)
    }

    /// Why a key is not admitted, for logs and audit.
    /// The entry of `key`, active or revoked.
    pub fn entry(&self, key: &KeyHash) -> Option<&TokenEntry> {
        self.entries.get(key)
    }

    /// Why `key` is not admitted, or `None` if it is active.
    pub fn refusal(&self, key: &KeyHash) -> Option<Refusal> {
        match self.entries.get(key) {
            None => Some(Refusal::NotRegistered),
            Some(e) if e.revoked => Some(Refusal::Revoked),
            Some(_) => None,
        }
    }

    /// Names of the active (registered, not revoked) tokens.
    pub fn active_names(&self) -> std::collections::HashSet<String> {
        self.entries
            .values()
            .filter(|e| !e.revoked)
            .map(|e| e.name.clone())
            .collect()
    }

    /// Number of entries, revoked included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the registry is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why a token key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The key is not in the registry.
    NotRegistered,
    /// The key was registered and has been revoked.
    Revoked,
}

/// Whether the phone side insists on post-quantum key exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PqPolicy {
    /// Rank X25519MLKEM768 first, accept X25519 and P-256 from clients
    /// that lack it (stock OpenSSL 3.0 clients such as baresip). Use
    /// `Require` to insist.
    #[default]
    Prefer,
    /// Only X25519MLKEM768: clients without it fail the handshake.
    Require,
}

/// How a trunk's bridge certificate is trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrunkTrust {
    /// Chains to one of these CAs and is valid for the host name.
    Ca(Vec<Vec<u8>>),
    /// Carries exactly this public key and is valid for the host name.
    PinnedKey(KeyHash),
}

/// TLS versions a trunk may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrunkTls {
    /// TLS 1.3 only (the default).
    #[default]
    Tls13,
    /// TLS 1.3 preferred, 1.2 allowed (Webex-class trunks).
    Tls12Allowed,
}
