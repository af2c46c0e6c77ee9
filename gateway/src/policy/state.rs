//! The anti-rollback state: the version (and body digest) of the last
//! policy a kit applied. Sans-IO: the shell persists [`State::encode`]
//! with [`super::store::write_atomically`] *before* it reports the new
//! policy as applied, and reads it back with [`State::decode`] at start.
//!
//! A state that does not decode is an error, never a reset to version 0:
//! losing the floor silently would let an old, still-unexpired bundle with
//! a revoked token back in.

use super::{PolicyError, Verified};

/// The last applied policy, as far as rollback protection is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    version: u64,
    body_sha256: Option<[u8; 32]>,
}

const HEADER: &str = "dialgate-policy-state v1\n";
/// The encoding is a few short lines; anything longer is not a state.
const MAX_ENCODED: usize = 256;

impl State {
    /// Nothing applied yet: any valid version (from 1) is acceptable.
    pub fn new() -> State {
        State::default()
    }

    /// A floor without an applied body, e.g. set when a kit is provisioned
    /// so that bundles older than its firmware are never accepted.
    pub fn with_floor(version: u64) -> State {
        State {
            version,
            body_sha256: None,
        }
    }

    /// The version a new policy must exceed.
    pub fn last_applied_version(&self) -> u64 {
        self.version
    }

    /// Records an applied policy. Never lowers the floor: returns `false`
    /// (and changes nothing) for a policy older than the recorded one.
    pub fn record(&mut self, applied: &Verified) -> bool {
        if applied.version() < self.version {
            return false;
        }
        self.version = applied.version();
        self.body_sha256 = Some(applied.body_sha256());
        true
    }

    /// Whether `digest` is the body recorded as applied at `version`.
    pub(super) fn applied_body_is(&self, version: u64, digest: &[u8; 32]) -> bool {
        self.version == version && self.body_sha256.as_ref() == Some(digest)
    }

    /// The durable form: three text lines.
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
        format!("{HEADER}version {}\nbody-sha256 {digest}\n", self.version).into_bytes()
    }

    /// Reads [`State::encode`]'s output; anything else, including a torn
    /// or padded file, is [`PolicyError::CorruptState`].
    pub fn decode(bytes: &[u8]) -> Result<State, PolicyError> {
        if bytes.len() > MAX_ENCODED {
            return Err(PolicyError::CorruptState);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| PolicyError::CorruptState)?;
        let rest = text.strip_prefix(HEADER).ok_or(PolicyError::CorruptState)?;
        let mut lines = rest.lines();
        let version = lines
            .next()
            .and_then(|l| l.strip_prefix("version "))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(PolicyError::CorruptState)?;
        let digest = lines
            .next()
            .and_then(|l| l.strip_prefix("body-sha256 "))
            .ok_or(PolicyError::CorruptState)?;
        let body_sha256 = match digest {
            "none" => None,
            hex => Some(
                crate::tls::KeyHash::from_hex(hex)
                    .map_err(|_| PolicyError::CorruptState)?
                    .0,
            ),
        };
        let state = State {
            version,
            body_sha256,
        };
        // One spelling: whatever was parsed must re-encode to exactly the
        // input (no leading zeros, upper-case hex, extra lines or spaces).
        if state.encode() != bytes {
            return Err(PolicyError::CorruptState);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_exactly() {
        for s in [
            State::new(),
            State::with_floor(u64::MAX),
            State {
                version: 42,
                body_sha256: Some([0xa5; 32]),
            },
        ] {
            assert_eq!(State::decode(&s.encode()).unwrap(), s);
        }
        let good = State {
            version: 42,
            body_sha256: Some([0xa5; 32]),
        }
        .encode();
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
                    State::decode(bad.as_bytes()),
                    Err(PolicyError::CorruptState)
                ),
                "{bad:?}"
            );
        }
        assert!(State::decode(&good[..good.len() - 1]).is_err());
    }
}
