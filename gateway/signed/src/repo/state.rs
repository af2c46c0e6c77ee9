//! What a kit remembers of its repository between polls and reboots: the
//! last version (and digest) seen of every document and target, and the
//! newest signed time it verified. Sans-IO: the shell persists
//! [`State::encode`] with `store::write_atomically` after every verify
//! call that changed it (see [`super::Client::state_changed`]), and reads
//! it back with [`State::decode`] at start.
//!
//! A state that does not decode is an error, never a reset: a reset would
//! let old, still-unexpired metadata back in.

use crate::{hex, parse_hex32};

use super::meta::TargetName;
use super::RepoError;

/// The last version of one document or target a kit accepted, and the
/// SHA-256 of its bytes (a second, different file with the same version is
/// refused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Its version (0: none seen yet).
    pub version: u64,
    /// SHA-256 of the exact bytes seen at that version.
    pub sha256: Option<[u8; 32]>,
}

impl Seen {
    fn encode(&self) -> String {
        let digest = self.sha256.map_or_else(|| "none".to_string(), |d| hex(&d));
        format!("{} {digest}", self.version)
    }

    fn parse(s: &str) -> Option<Seen> {
        let (v, d) = s.split_once(' ')?;
        let version = v.parse().ok()?;
        let sha256 = match d {
            "none" => None,
            h => Some(parse_hex32(h)?),
        };
        Some(Seen { version, sha256 })
    }
}

/// The kit's repository state. Fixed size: three documents' worth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The newest timestamp accepted.
    pub timestamp: Seen,
    /// The newest snapshot accepted.
    pub snapshot: Seen,
    /// Per target ([`TargetName::ALL`] order): the newest version a
    /// verified snapshot named.
    pub targets: [Seen; 3],
    /// The newest `signed-at` of a verified timestamp (unix seconds), or
    /// the floor the kit was provisioned with (its build time).
    pub trusted_time: u64,
}

/// Anything longer is not a state.
const MAX_ENCODED: usize = 1024;
const HEADER: &str = "dialgate-repo-state v1\n";

impl State {
    /// Nothing seen yet; time trusted from `build_time` on (the firmware's
    /// build time, so that metadata older than the firmware is expired).
    pub fn new(build_time: u64) -> State {
        State {
            trusted_time: build_time,
            ..State::default()
        }
    }

    /// What was seen of `name`.
    pub fn target(&self, name: TargetName) -> Seen {
        self.targets[name.index()]
    }

    /// The durable form: seven text lines.
    ///
    /// ```text
    /// dialgate-repo-state v1
    /// timestamp <version> <sha256 | none>
    /// snapshot <version> <sha256 | none>
    /// target policy.bundle <version> <sha256 | none>
    /// target firmware.bundle <version> <sha256 | none>
    /// target commands <version> <sha256 | none>
    /// trusted-time <unix seconds>
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::from(HEADER);
        out.push_str(&format!("timestamp {}\n", self.timestamp.encode()));
        out.push_str(&format!("snapshot {}\n", self.snapshot.encode()));
        for name in TargetName::ALL {
            out.push_str(&format!(
                "target {name} {}\n",
                self.targets[name.index()].encode()
            ));
        }
        out.push_str(&format!("trusted-time {}\n", self.trusted_time));
        out.into_bytes()
    }

    /// Reads [`State::encode`]'s output; anything else (torn, padded,
    /// another spelling) is [`RepoError::CorruptState`].
    pub fn decode(bytes: &[u8]) -> Result<State, RepoError> {
        let corrupt = RepoError::CorruptState;
        if bytes.len() > MAX_ENCODED {
            return Err(corrupt);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| RepoError::CorruptState)?;
        let rest = text.strip_prefix(HEADER).ok_or(RepoError::CorruptState)?;
        let mut lines = rest.lines();
        let mut field = |prefix: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(prefix))
                .ok_or(RepoError::CorruptState)
        };
        let seen = |s: &str| Seen::parse(s).ok_or(RepoError::CorruptState);
        let timestamp = seen(field("timestamp ")?)?;
        let snapshot = seen(field("snapshot ")?)?;
        let mut targets = [Seen::default(); 3];
        for name in TargetName::ALL {
            targets[name.index()] = seen(field(&format!("target {name} "))?)?;
        }
        let trusted_time = field("trusted-time ")?
            .parse()
            .map_err(|_| RepoError::CorruptState)?;
        let state = State {
            timestamp,
            snapshot,
            targets,
            trusted_time,
        };
        // One spelling: the parse must re-encode to exactly the input.
        if state.encode() != bytes {
            return Err(corrupt);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_exactly() {
        let mut s = State::new(1_700_000_000);
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
        s.timestamp = Seen {
            version: 9,
            sha256: Some([0xa5; 32]),
        };
        s.targets[TargetName::Firmware.index()] = Seen {
            version: u64::MAX,
            sha256: Some([1; 32]),
        };
        let good = s.encode();
        assert_eq!(State::decode(&good).unwrap(), s);
        let text = String::from_utf8(good).unwrap();
        assert!(text.starts_with("dialgate-repo-state v1\ntimestamp 9 a5a5"));
        for bad in [
            String::new(),
            text.replace("timestamp 9", "timestamp 09"),
            text.replace("timestamp 9", "timestamp +9"),
            text.replace("a5", "A5"),
            text.replace("v1", "v2"),
            text.replace("target commands", "target policy.bundle"),
            format!("{text}\n"),
            text[..text.len() - 1].to_string(),
            text[..text.len() / 2].to_string(),
            text.replace('\n', "\r\n"),
            format!("{text}{}", "x".repeat(2000)),
        ] {
            assert!(
                matches!(State::decode(bad.as_bytes()), Err(RepoError::CorruptState)),
                "{bad:?}"
            );
        }
    }
}
