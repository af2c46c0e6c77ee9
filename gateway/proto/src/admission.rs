//! Admission: which token keys may connect and call.
//!
//! A token is known by the SHA-256 of its SubjectPublicKeyInfo
//! ([`KeyHash`]), never by a certificate name; the [`Registry`] names it.
//! The shell's TLS verifier refuses unknown and revoked keys inside the
//! handshake ([`Registry::refusal`]); once the handshake is complete it
//! asks [`Registry::admit`] with what the handshake established (the key,
//! the peer, whether the key exchange was post-quantum) and keeps the
//! [`Admitted`] it returns for the life of the connection. The B2BUA turns
//! an `Admitted` into a [`crate::b2bua::Authorized`] for one call, and
//! neither value can be made any other way: their fields are private and
//! these are their only constructors.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

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

    /// The hash of a DER X.509 certificate's SubjectPublicKeyInfo.
    pub fn of_certificate(der: &[u8]) -> Result<KeyHash, crate::der::DerError> {
        Ok(KeyHash::of_spki(crate::der::Certificate::parse(der)?.spki))
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
    /// The signed policy demands the hybrid post-quantum key exchange.
    require_post_quantum: bool,
}

/// What a completed phone-side TLS handshake established, as the shell's
/// TLS layer saw it.
#[derive(Clone, Copy, Debug)]
pub struct Handshake {
    /// The client certificate's key (the chain was verified to the token CA).
    pub key: KeyHash,
    /// The phone's address.
    pub peer: SocketAddr,
    /// The key exchange was X25519MLKEM768.
    pub post_quantum: bool,
    /// The certificate's notAfter (Unix seconds), if it has one.
    pub not_after: Option<u64>,
}

/// Proof that a phone connection was admitted: its key is an active token
/// of the registry in force and the handshake met the policy. Only
/// [`Registry::admit`] makes one; the B2BUA accepts phone connections only
/// with it.
#[derive(Clone, Debug)]
pub struct Admitted {
    token: String,
    key: KeyHash,
    peer: SocketAddr,
    not_after: Option<u64>,
}

impl Admitted {
    /// The token's name: the identity its calls must carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The token's key.
    pub fn key(&self) -> KeyHash {
        self.key
    }

    /// The phone's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// When the token certificate expires (Unix seconds), if it does.
    pub fn not_after(&self) -> Option<u64> {
        self.not_after
    }
}

impl Registry {
    /// Admits a completed handshake, or says why not. The only
    /// constructor of [`Admitted`].
    pub fn admit(&self, h: Handshake) -> Result<Admitted, Refusal> {
        if let Some(r) = self.refusal(&h.key) {
            return Err(r);
        }
        if self.require_post_quantum && !h.post_quantum {
            return Err(Refusal::PostQuantumRequired);
        }
        let token = self
            .active(&h.key)
            .map(|e| e.name.clone())
            .ok_or(Refusal::NotRegistered)?;
        Ok(Admitted {
            token,
            key: h.key,
            peer: h.peer,
            not_after: h.not_after,
        })
    }

    /// Requires (or not) the hybrid post-quantum key exchange of every
    /// connection admitted from now on (the signed policy's setting).
    pub fn set_require_post_quantum(&mut self, require: bool) {
        self.require_post_quantum = require;
    }

    /// Whether [`Registry::admit`] requires post-quantum key exchange.
    pub fn requires_post_quantum(&self) -> bool {
        self.require_post_quantum
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, key: KeyHash, entry: TokenEntry) {
        self.entries.insert(key, entry);
    }

    /// The active (registered, not revoked) token with this key.
    pub fn active(&self, key: &KeyHash) -> Option<&TokenEntry> {
        self.entries.get(key).filter(|e| !e.revoked)
    }

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The key is not in the registry.
    #[error("not registered")]
    NotRegistered,
    /// The key was registered and has been revoked.
    #[error("revoked")]
    Revoked,
    /// The policy requires X25519MLKEM768 and the handshake used another
    /// key exchange.
    #[error("the policy requires the X25519MLKEM768 key exchange")]
    PostQuantumRequired,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(key: u8, post_quantum: bool) -> Handshake {
        Handshake {
            key: KeyHash([key; 32]),
            peer: "192.0.2.1:40000".parse().unwrap(),
            post_quantum,
            not_after: Some(1_900_000_000),
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::default();
        let entry = |name: &str, revoked| TokenEntry {
            name: name.into(),
            revoked,
        };
        r.insert(KeyHash([1; 32]), entry("alice", false));
        r.insert(KeyHash([2; 32]), entry("mallory", true));
        r
    }

    #[test]
    fn admit_names_the_token_of_an_active_key_and_nothing_else() {
        let r = registry();
        let a = r.admit(handshake(1, false)).unwrap();
        assert_eq!((a.token(), a.key()), ("alice", KeyHash([1; 32])));
        assert_eq!(a.not_after(), Some(1_900_000_000));
        assert_eq!(r.admit(handshake(2, true)).unwrap_err(), Refusal::Revoked);
        assert_eq!(
            r.admit(handshake(3, true)).unwrap_err(),
            Refusal::NotRegistered
        );
    }

    #[test]
    fn a_policy_that_requires_post_quantum_refuses_classical_handshakes() {
        let mut r = registry();
        r.set_require_post_quantum(true);
        assert!(r.requires_post_quantum());
        assert_eq!(
            r.admit(handshake(1, false)).unwrap_err(),
            Refusal::PostQuantumRequired
        );
        assert!(r.admit(handshake(1, true)).is_ok());
        // A revoked key stays revoked whatever the key exchange.
        assert_eq!(r.admit(handshake(2, true)).unwrap_err(), Refusal::Revoked);
        assert_eq!(
            Refusal::PostQuantumRequired.to_string(),
            "the policy requires the X25519MLKEM768 key exchange"
        );
    }
}
