//! Detached signatures for short statements that travel inside another
//! format (an audit checkpoint inside a syslog record): the same keys and
//! the same domain separation as the envelope, without its framing.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::{PublicKey, SignedError, SigningKey};

/// A statement kind: its domain-separation prefix (ends in NUL), so that
/// a detached signature never verifies as an envelope or another kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The prefix signed before the statement.
    pub domain: &'static [u8],
}

/// A kit's audit checkpoint (kit, sequence, chain hash, time floor).
pub const AUDIT_CHECKPOINT: Statement = Statement {
    domain: b"dialgate-audit-checkpoint-v1\0",
};

fn message(kind: &Statement, statement: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(kind.domain.len() + statement.len());
    m.extend_from_slice(kind.domain);
    m.extend_from_slice(statement);
    m
}

/// Signs `statement` as `kind`: canonical padded base64 of the DER
/// ECDSA-Sig-Value over `kind.domain || statement`.
pub fn sign_detached(
    kind: &Statement,
    statement: &[u8],
    key: &SigningKey,
) -> Result<String, SignedError> {
    Ok(STANDARD.encode(key.sign(&message(kind, statement))?))
}

/// Whether `signature` (as [`sign_detached`] writes it) is `key`'s over
/// `statement` as `kind`. Malformed base64 is simply not a signature.
pub fn verify_detached(
    kind: &Statement,
    statement: &[u8],
    signature: &str,
    key: &PublicKey,
) -> bool {
    if signature.len() > 200 {
        return false;
    }
    match STANDARD.decode(signature) {
        Ok(sig) => key.verify(&message(kind, statement), &sig),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_signatures_bind_key_statement_and_kind() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let sig = sign_detached(&AUDIT_CHECKPOINT, b"kit 1 2", &key).unwrap();
        assert!(verify_detached(
            &AUDIT_CHECKPOINT,
            b"kit 1 2",
            &sig,
            key.public_key()
        ));
        assert!(!verify_detached(
            &AUDIT_CHECKPOINT,
            b"kit 1 3",
            &sig,
            key.public_key()
        ));
        assert!(!verify_detached(
            &AUDIT_CHECKPOINT,
            b"kit 1 2",
            &sig,
            other.public_key()
        ));
        let kind = Statement { domain: b"other\0" };
        assert!(!verify_detached(&kind, b"kit 1 2", &sig, key.public_key()));
        assert!(!verify_detached(
            &AUDIT_CHECKPOINT,
            b"kit 1 2",
            "%%%",
            key.public_key()
        ));
    }
}
