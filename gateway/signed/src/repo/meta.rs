//! The two metadata documents (timestamp and snapshot), their one
//! spelling, and the target names. See the format in
//! `docs/repository.md`.
//!
//! A body is a few LF-terminated ASCII lines in a fixed order. It is
//! parsed only after its signature verified, by a strict reader whose
//! result must re-encode to exactly the input: one document has one
//! spelling (no leading zeros, no upper-case hex, no extra spaces, lines
//! or fields).

use std::fmt;

use crate::{hex, parse_hex32, seal, Purpose, SignedError, SigningKey, COMMAND, POLICY};

/// The timestamp document's envelope (file `timestamp.signed`).
pub const TIMESTAMP: Purpose = Purpose {
    magic: "dialgate-repo-timestamp",
    domain: b"dialgate-repo-timestamp-v1\0",
    max_bytes: 4 << 10,
    name: "timestamp",
};

/// The snapshot document's envelope (file `snapshot-<VERSION>.signed`).
pub const SNAPSHOT: Purpose = Purpose {
    magic: "dialgate-repo-snapshot",
    domain: b"dialgate-repo-snapshot-v1\0",
    max_bytes: 4 << 10,
    name: "snapshot",
};

/// The file a kit polls, under its repository root `<base>/<kit>/`.
pub const TIMESTAMP_FILE: &str = "timestamp.signed";

/// Largest firmware bundle a snapshot may name (the images included).
pub const MAX_FIRMWARE_BYTES: u64 = 4 << 30;

/// Largest commands file a snapshot may name.
pub const MAX_COMMANDS_BYTES: u64 = 16 * COMMAND.max_bytes as u64;

/// Longest kit id (as `dialgatectl pki kit` accepts it).
pub const MAX_KIT_LEN: usize = 128;

/// The snapshot's file under the kit's root: `snapshot-<VERSION>.signed`.
/// Versioned, so a kit holding an older timestamp still finds the snapshot
/// it names while HQ publishes (TUF's consistent snapshots).
pub fn snapshot_file(version: u64) -> String {
    format!("snapshot-{version}.signed")
}

/// A target's file under the kit's root: `targets/<SHA-256>.<NAME>`.
/// Named by content, so files of two publications never collide.
pub fn target_file(name: TargetName, sha256: &[u8; 32]) -> String {
    format!("targets/{}.{}", hex(sha256), name.as_str())
}

/// Whether `kit` is a kit id: 1 to [`MAX_KIT_LEN`] ASCII letters, digits,
/// `-`, `_`, `.`, `@`, `+`, starting with a letter or digit (so that it is
/// a safe file name: never `.`, `..` or hidden).
pub fn is_kit_id(kit: &str) -> bool {
    kit.bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && kit.len() <= MAX_KIT_LEN
        && kit
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.@+".contains(&c))
}

/// The files a snapshot can name. A fixed set, so the kit's state has a
/// fixed size and a snapshot at most three target lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetName {
    /// `policy.bundle`: a signed policy bundle (the policy key's).
    Policy,
    /// `firmware.bundle`: a firmware bundle (the firmware key's manifest).
    Firmware,
    /// `commands`: the kit's signed commands.
    Commands,
}

impl TargetName {
    /// Every target, in the order a snapshot lists them.
    pub const ALL: [TargetName; 3] = [
        TargetName::Policy,
        TargetName::Firmware,
        TargetName::Commands,
    ];

    /// The name in documents and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetName::Policy => "policy.bundle",
            TargetName::Firmware => "firmware.bundle",
            TargetName::Commands => "commands",
        }
    }

    /// The name's target, if it is one.
    pub fn parse(s: &str) -> Option<TargetName> {
        TargetName::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The largest file of this kind a snapshot may name (and a kit reads).
    pub fn max_len(self) -> u64 {
        match self {
            TargetName::Policy => POLICY.max_bytes as u64,
            TargetName::Firmware => MAX_FIRMWARE_BYTES,
            TargetName::Commands => MAX_COMMANDS_BYTES,
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            TargetName::Policy => 0,
            TargetName::Firmware => 1,
            TargetName::Commands => 2,
        }
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one document says of another file: its version, exact length and
/// SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// The file's version (a snapshot's own; a target's in this kit's
    /// repository, raised by HQ whenever the file changes).
    pub version: u64,
    /// Its exact length in octets.
    pub length: u64,
    /// SHA-256 of its exact bytes.
    pub sha256: [u8; 32],
}

impl FileMeta {
    /// The meta of `bytes` at `version`.
    pub fn of(version: u64, bytes: &[u8]) -> FileMeta {
        FileMeta {
            version,
            length: bytes.len() as u64,
            sha256: crate::sha256(bytes),
        }
    }

    fn encode(&self) -> String {
        format!("{} {} {}", self.version, self.length, hex(&self.sha256))
    }

    fn parse(fields: &mut std::str::Split<'_, char>) -> Option<FileMeta> {
        let version = number(fields.next()?)?;
        let length = number(fields.next()?)?;
        let sha256 = parse_hex32(fields.next()?)?;
        Some(FileMeta {
            version,
            length,
            sha256,
        })
    }
}

/// The fields both documents start with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The kit the document is for (one kit: there is no wildcard).
    pub kit: String,
    /// The document's version, from 1; never lower than the last a kit saw.
    pub version: u64,
    /// When HQ signed it (unix seconds): the kit's trusted time.
    pub signed_at: u64,
    /// When it stops being valid (unix seconds), after `signed_at`.
    pub expires: u64,
}

/// The timestamp: short-lived (minutes), re-signed by HQ on every
/// publish, naming the current snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// Kit, version, signing time, expiry.
    pub header: Header,
    /// The snapshot's version, length and SHA-256.
    pub snapshot: FileMeta,
}

/// The snapshot: names version, length and SHA-256 of every target this
/// kit is offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Kit, version, signing time, expiry.
    pub header: Header,
    /// The targets, in [`TargetName::ALL`] order, each at most once.
    pub targets: Vec<(TargetName, FileMeta)>,
}

impl Snapshot {
    /// What the snapshot says of `name`.
    pub fn target(&self, name: TargetName) -> Option<&FileMeta> {
        self.targets
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m)
    }
}

/// A decimal u64 with one spelling ("0", or no leading zero).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Why a body does not parse (for `RepoError::Malformed`).
pub(super) type Reason = &'static str;

impl Header {
    fn encode(&self, out: &mut String) {
        out.push_str(&format!(
            "kit {}\nversion {}\nsigned-at {}\nexpires {}\n",
            self.kit, self.version, self.signed_at, self.expires
        ));
    }

    fn parse<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Result<Header, Reason> {
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
        };
        let kit = field("kit").ok_or("the first line is not `kit ID`")?;
        if !is_kit_id(kit) {
            return Err("the kit id is not 1 to 128 letters, digits, '-', '_', '.', '@', '+' starting with a letter or digit");
        }
        let kit = kit.to_string();
        let version = field("version")
            .and_then(number)
            .ok_or("the second line is not `version N`")?;
        let signed_at = field("signed-at")
            .and_then(number)
            .ok_or("the third line is not `signed-at SECONDS`")?;
        let expires = field("expires")
            .and_then(number)
            .ok_or("the fourth line is not `expires SECONDS`")?;
        if version == 0 {
            return Err("version 0 (versions start at 1)");
        }
        if expires <= signed_at {
            return Err("it expires before it was signed");
        }
        Ok(Header {
            kit,
            version,
            signed_at,
            expires,
        })
    }
}

/// Splits a body into lines; every line ends in LF, none is empty.
fn lines(body: &[u8]) -> Result<Vec<&str>, Reason> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8")?;
    let text = text
        .strip_suffix('\n')
        .ok_or("the last line does not end in LF")?;
    Ok(text.split('\n').collect())
}

impl Timestamp {
    /// The body as it is signed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        self.header.encode(&mut out);
        out.push_str(&format!("snapshot {}\n", self.snapshot.encode()));
        out.into_bytes()
    }

    /// The signed document (HQ side).
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, SignedError> {
        seal(&TIMESTAMP, &self.encode(), key)
    }

    /// Parses a body (after its signature verified, or, for HQ's own
    /// files, after [`crate::open`]).
    pub fn parse(body: &[u8]) -> Result<Timestamp, Reason> {
        let lines = lines(body)?;
        let mut it = lines.iter().copied();
        let header = Header::parse(&mut it)?;
        let snapshot = it
            .next()
            .and_then(|l| l.strip_prefix("snapshot "))
            .and_then(|l| {
                let mut f = l.split(' ');
                let m = FileMeta::parse(&mut f)?;
                f.next().is_none().then_some(m)
            })
            .ok_or("the fifth line is not `snapshot VERSION LENGTH SHA256`")?;
        if it.next().is_some() {
            return Err("a line follows the snapshot line");
        }
        if snapshot.version == 0 {
            return Err("snapshot version 0 (versions start at 1)");
        }
        if snapshot.length > SNAPSHOT.max_bytes as u64 {
            return Err("it names a snapshot larger than a kit reads");
        }
        let t = Timestamp { header, snapshot };
        if t.encode() != body {
            return Err("not in its one spelling");
        }
        Ok(t)
    }
}

impl Snapshot {
    /// The body as it is signed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        self.header.encode(&mut out);
        for (name, meta) in &self.targets {
            out.push_str(&format!("target {name} {}\n", meta.encode()));
        }
        out.into_bytes()
    }

    /// The signed document (HQ side). Targets are put in their order.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, SignedError> {
        seal(&SNAPSHOT, &self.encode(), key)
    }

    /// Parses a body (after its signature verified).
    pub fn parse(body: &[u8]) -> Result<Snapshot, Reason> {
        let lines = lines(body)?;
        let mut it = lines.iter().copied();
        let header = Header::parse(&mut it)?;
        let mut targets: Vec<(TargetName, FileMeta)> = Vec::new();
        for line in it {
            let mut f = line
                .strip_prefix("target ")
                .ok_or("a line after the header is not `target NAME VERSION LENGTH SHA256`")?
                .split(' ');
            let name = f
                .next()
                .and_then(TargetName::parse)
                .ok_or("an unknown target name")?;
            let meta = FileMeta::parse(&mut f)
                .filter(|_| f.next().is_none())
                .ok_or("a target line is not `target NAME VERSION LENGTH SHA256`")?;
            if targets.last().is_some_and(|(last, _)| *last >= name) {
                return Err("targets repeated or out of order");
            }
            if meta.version == 0 {
                return Err("target version 0 (versions start at 1)");
            }
            if meta.length > name.max_len() {
                return Err("it names a target larger than a kit reads");
            }
            targets.push((name, meta));
        }
        let s = Snapshot { header, targets };
        if s.encode() != body {
            return Err("not in its one spelling");
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> Timestamp {
        Timestamp {
            header: Header {
                kit: "kit-1".into(),
                version: 7,
                signed_at: 1000,
                expires: 1900,
            },
            snapshot: FileMeta {
                version: 3,
                length: 600,
                sha256: [0xab; 32],
            },
        }
    }

    #[test]
    fn bodies_round_trip_and_have_one_spelling() {
        let t = ts();
        let body = t.encode();
        assert_eq!(Timestamp::parse(&body).unwrap(), t);
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(
            "kit kit-1\nversion 7\nsigned-at 1000\nexpires 1900\nsnapshot 3 600 abab"
        ));
        for bad in [
            text.replace("version 7", "version 07"),
            text.replace("version 7", "version +7"),
            text.replace("version 7", "version  7"),
            text.replace("version 7", "version 0"),
            text.replace("expires 1900", "expires 900"),
            text.replace("abab", "ABAB"),
            text.replace("kit kit-1", "kit kit/1"),
            text.replace("kit kit-1", "kit "),
            text.replace('\n', "\r\n"),
            format!("{text}\n"),
            format!("{text}snapshot 3 600 {}\n", "ab".repeat(32)),
            text[..text.len() - 1].to_string(),
            text.replace("snapshot 3 600", "snapshot 3 99999"),
            text.replace("snapshot 3", "snapshot 0"),
            String::from_utf8_lossy(b"\xff").into_owned(),
            String::new(),
        ] {
            assert!(Timestamp::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }

        let s = Snapshot {
            header: t.header.clone(),
            targets: vec![
                (TargetName::Policy, FileMeta::of(4, b"policy")),
                (TargetName::Commands, FileMeta::of(1, b"")),
            ],
        };
        let body = s.encode();
        assert_eq!(Snapshot::parse(&body).unwrap(), s);
        let text = String::from_utf8(body).unwrap();
        let policy_line = text.lines().nth(4).unwrap().to_string();
        for bad in [
            format!("{text}{policy_line}\n"),
            text.replace("target commands", "target firmware"),
            text.replace("target policy.bundle", "target other"),
            text.replace(
                "target policy.bundle 4 6",
                "target policy.bundle 4 9999999999",
            ),
            text.replace("target policy.bundle 4", "target policy.bundle 0"),
            text.replace("target commands 1 0", "target commands 1 0 x"),
        ] {
            assert!(Snapshot::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        // No targets at all is a valid (empty) snapshot.
        let empty = Snapshot {
            header: t.header.clone(),
            targets: vec![],
        };
        assert_eq!(Snapshot::parse(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn file_names() {
        assert_eq!(snapshot_file(12), "snapshot-12.signed");
        assert_eq!(
            target_file(TargetName::Policy, &[0; 32]),
            format!("targets/{}.policy.bundle", "0".repeat(64))
        );
        assert!(is_kit_id("kit-1@x.y+z_") && !is_kit_id("") && !is_kit_id("a b"));
        assert!(!is_kit_id(&"a".repeat(129)) && !is_kit_id("../x"));
        assert!(!is_kit_id("..") && !is_kit_id(".hidden") && !is_kit_id("-x"));
    }
}
