//! The anti-rollback floor: the version (and body digest) of the last
//! document of one purpose a kit applied (a policy bundle, a firmware
//! manifest, a command sequence). Sans-IO: the shell persists
//! [`Floor::encode`] with [`crate::store::write_atomically`] *before* it
//! reports the new document as applied, and reads it back with
//! [`Floor::decode`] at start.
//!
//! A floor that does not decode is an error, never a reset to version 0:
//! losing the floor silently would let an old, still-unexpired bundle with
//! a revoked token back in.

use super::{Purpose, SignedError};

/// The last applied document of one purpose, as far as rollback
/// protection is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Floor {
    purpose: &'static str,
    version: u64,
    body_sha256: Option<[u8; 32]>,
}

/// The encoding is a few short lines; anything longer is not a floor.
const MAX_ENCODED: usize = 256;

impl Floor {
    /// Nothing applied yet: any valid version (from 1) is acceptable.
    pub fn new(purpose: &Purpose) -> Floor {
        Floor::at(purpose, 0)
    }

    /// A floor without an applied body, e.g. set when a kit is provisioned
    /// so that documents older than its firmware are never accepted.
    pub fn at(purpose: &Purpose, version: u64) -> Floor {
        Floor {
            purpose: purpose.name,
            version,
            body_sha256: None,
        }
    }

    /// The version a new document must exceed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Records an applied document. Never lowers the floor: returns
    /// `false` (and changes nothing) for a version below the recorded one.
    pub fn record(&mut self, version: u64, body_sha256: [u8; 32]) -> bool {
        if version < self.version {
            return false;
        }
        self.version = version;
        self.body_sha256 = Some(body_sha256);
        true
    }

    /// Whether `digest` is the body recorded as applied at `version`.
    pub fn applied_body_is(&self, version: u64, digest: &[u8; 32]) -> bool {
        self.version == version && self.body_sha256.as_ref() == Some(digest)
    }

    fn header(purpose: &str) -> String {
        format!("dialgate-{purpose}-state v1\n")
    }

    /// The durable form: three text lines (`policy` is the purpose).
    ///
    /// ```text
    /// dialgate-policy-state v1
    /// version 42
    /// body-sha256 <64 lower-case hex digits, or "none">
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let digest = match &self.body_sha256 {
            Some(d) => d.iter().map(|b| format!("{b:02x}")).collect(),
            None => "none".to_string(),
        };
        format!(
            "{}version {}\nbody-sha256 {digest}\n",
            Floor::header(self.purpose),
            self.version
        )
        .into_bytes()
    }

    /// Reads [`Floor::encode`]'s output for `purpose`; anything else,
    /// including a torn or padded file or another purpose's floor, is
    /// [`SignedError::CorruptFloor`].
    pub fn decode(purpose: &Purpose, bytes: &[u8]) -> Result<Floor, SignedError> {
        let corrupt = SignedError::CorruptFloor {
            purpose: purpose.name,
        };
        if bytes.len() > MAX_ENCODED {
            return Err(corrupt);
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(corrupt);
        };
        let Some(rest) = text.strip_prefix(&Floor::header(purpose.name)) else {
            return Err(corrupt);
        };
        let mut lines = rest.lines();
        let Some(version) = lines
            .next()
            .and_then(|l| l.strip_prefix("version "))
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return Err(corrupt);
        };
        let Some(digest) = lines.next().and_then(|l| l.strip_prefix("body-sha256 ")) else {
            return Err(corrupt);
        };
        let body_sha256 = match digest {
            "none" => None,
            hex => match crate::parse_hex32(hex) {
                Some(d) => Some(d),
                None => return Err(corrupt),
            },
        };
        let floor = Floor {
            purpose: purpose.name,
            version,
            body_sha256,
        };
        // One spelling: whatever was parsed must re-encode to exactly the
        // input (no leading zeros, upper-case hex, extra lines or spaces).
        if floor.encode() != bytes {
            return Err(corrupt);
        }
        Ok(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FIRMWARE, POLICY};

    #[test]
    fn encodes_and_decodes_exactly() {
        let mut applied = Floor::new(&POLICY);
        assert!(applied.record(42, [0xa5; 32]));
        assert!(!applied.record(41, [0; 32]));
        for s in [Floor::new(&POLICY), Floor::at(&POLICY, u64::MAX), applied] {
            assert_eq!(Floor::decode(&POLICY, &s.encode()).unwrap(), s);
        }
        let good = applied.encode();
        assert!(good.starts_with(b"dialgate-policy-state v1\n"));
        assert!(Floor::decode(&FIRMWARE, &good).is_err());
        let text = String::from_utf8(good.clone()).unwrap();
        for bad in [
            String::new(),
            text.replace("42", "042"),
            text.replace("42", "+42"),
            text.replace("42", "-1"),
            text.replace("a5", "A5"),
            text.replace("v1", "v2"),
            format!("{text}\n"),
            text[..text.len() - 1].to_string(),
            text[..text.len() / 2].to_string(),
            text.replace('\n', "\r\n"),
            format!("{text}{}", "x".repeat(300)),
        ] {
            assert!(
                matches!(
                    Floor::decode(&POLICY, bad.as_bytes()),
                    Err(SignedError::CorruptFloor { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(Floor::decode(&POLICY, &good[..good.len() - 1]).is_err());
    }
}
