//! The kit's repository: signed metadata in the manner of TUF, for the
//! subset a kit needs, verified without I/O.
//!
//! HQ publishes, per kit, a static tree (`dialgatectl publish`):
//!
//! ```text
//! <kit>/timestamp.signed            short-lived; names the snapshot
//! <kit>/snapshot-<V>.signed         names every target's version, length, SHA-256
//! <kit>/targets/<SHA-256>.<NAME>    policy.bundle, firmware.bundle, commands
//! ```
//!
//! Both documents travel in the crate's envelope ([`TIMESTAMP`],
//! [`SNAPSHOT`] purposes, so neither verifies as the other, nor as a policy)
//! and carry the kit id, a version and an expiry. The timestamp and the
//! snapshot have separate keys ([`RoleKeys`]): the timestamp key must sign
//! every few minutes, so it is the one most exposed; alone it can only
//! replay (freeze) until the snapshot expires, never name files HQ did not
//! publish. The targets carry their own signatures (policy key, firmware
//! key), checked by their own verifiers after [`Client::verify_target`].
//!
//! # Driving a [`Client`]
//!
//! Every poll, in this order; stop at the first error (audit it with
//! [`RepoError::reason`]), keep what is in force, poll again later:
//!
//! 1. Fetch `timestamp.signed` (at most [`TIMESTAMP`]`.max_bytes` + 1
//!    octets) and call [`Client::verify_timestamp`] with the kit's time
//!    floor.
//! 2. If [`Client::snapshot_wanted`] names a file, fetch it (at most the
//!    length it gives + 1 octets) and call [`Client::verify_snapshot`].
//! 3. For every target [`Client::target`] lists whose digest differs from
//!    the one in force, fetch it (at most its length + 1 octets) and call
//!    [`Client::verify_target`] (or, streaming a firmware bundle, hash it
//!    and call [`Client::verify_target_digest`]); hand the proof to the
//!    target's own verifier.
//! 4. Whenever [`Client::state_changed`] says so, persist
//!    [`State::encode`] atomically *before* acting on what was verified.
//!
//! Time enters only as the `now_floor` argument; [`Client::trusted_time`]
//! is the newest signed time verified, for the kit's time floor.
//!
//! ```
//! use dialgate_signed::repo::*;
//! use dialgate_signed::SigningKey;
//!
//! let (ts_key, snap_key) = (SigningKey::generate()?, SigningKey::generate()?);
//! let policy = b"a signed policy bundle".to_vec();
//! let header = |version| Header { kit: "kit-1".into(), version, signed_at: 1000, expires: 2000 };
//! let snapshot = Snapshot {
//!     header: header(1),
//!     targets: vec![(TargetName::Policy, FileMeta::of(1, &policy))],
//! }
//! .sign(&snap_key)?;
//! let timestamp = Timestamp { header: header(1), snapshot: FileMeta::of(1, &snapshot) }
//!     .sign(&ts_key)?;
//!
//! let keys = RoleKeys {
//!     timestamp: ts_key.public_key().clone(),
//!     snapshot: snap_key.public_key().clone(),
//! };
//! let mut kit = Client::new("kit-1", keys, State::new(900)).unwrap();
//! kit.verify_timestamp(&timestamp, 950).unwrap();
//! assert_eq!(kit.trusted_time(), 1000);
//! assert_eq!(kit.snapshot_wanted().unwrap().0, "snapshot-1.signed");
//! kit.verify_snapshot(&snapshot).unwrap();
//! let target = kit.verify_target(TargetName::Policy, &policy).unwrap();
//! assert_eq!(target.bytes(), &policy[..]);
//! assert!(kit.verify_target(TargetName::Policy, b"another bundle").is_err());
//! # Ok::<(), dialgate_signed::SignedError>(())
//! ```

mod meta;
mod state;
#[cfg(test)]
mod tests;

use std::fmt;

pub use meta::{
    is_kit_id, snapshot_file, target_file, FileMeta, Header, Snapshot, TargetName, Timestamp,
    MAX_COMMANDS_BYTES, MAX_FIRMWARE_BYTES, MAX_KIT_LEN, SNAPSHOT, TIMESTAMP, TIMESTAMP_FILE,
};
pub use state::{Seen, State};

use crate::{open, sha256, KeyId, PublicKey, Purpose, SignedError};

/// Which document or file an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `timestamp.signed`.
    Timestamp,
    /// `snapshot-<V>.signed`.
    Snapshot,
    /// A target.
    Target(TargetName),
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Timestamp => f.write_str("timestamp"),
            Role::Snapshot => f.write_str("snapshot"),
            Role::Target(t) => write!(f, "target {t}"),
        }
    }
}

/// Why the kit refused a file of its repository. All but the last three
/// are the network's or HQ's doing (the kit keeps what is in force and
/// polls again); [`RepoError::reason`] names each for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// Signed by a key other than the pinned one for its role.
    #[error("{role} is signed by key {signer}, not by the pinned {role} key {pinned}: refused")]
    WrongKey {
        /// The document.
        role: Role,
        /// The key id it names.
        signer: KeyId,
        /// The pinned key's id.
        pinned: KeyId,
    },
    /// The signature does not verify: tampered or forged.
    #[error("{role} signature does not verify (tampered or forged): refused")]
    BadSignature {
        /// The document.
        role: Role,
    },
    /// A version below the last one seen: a rollback.
    #[error("{role} version {got} is below version {seen} already seen: rollback refused")]
    Rollback {
        /// The document or target.
        role: Role,
        /// The last version seen.
        seen: u64,
        /// The version offered.
        got: u64,
    },
    /// The version last seen, with other content: HQ (or its key) signed
    /// two different files under one version.
    #[error(
        "{role} version {version} differs from the {role} of that version already seen: refused"
    )]
    Conflict {
        /// The document or target.
        role: Role,
        /// The version.
        version: u64,
    },
    /// Expired by the kit's trusted time: old metadata replayed (freeze),
    /// or HQ has not re-signed it.
    #[error("{role} expired at {expires}, the kit's time is {now} (unix seconds): replayed or not refreshed, refused")]
    Expired {
        /// The document.
        role: Role,
        /// Its expiry.
        expires: u64,
        /// The kit's trusted time.
        now: u64,
    },
    /// The bytes are not those the signed metadata names (mix-and-match).
    #[error("{role} does not have the SHA-256 the signed metadata names: refused")]
    HashMismatch {
        /// The file.
        role: Role,
    },
    /// Shorter than the signed metadata says.
    #[error("{role} is {got} octets, the signed metadata names {expected}: refused")]
    LengthMismatch {
        /// The file.
        role: Role,
        /// The signed length.
        expected: u64,
        /// The length received.
        got: u64,
    },
    /// Longer than the signed metadata names or than a kit reads (endless
    /// data): stop reading at `max` + 1 octets.
    #[error("{role} is more than {max} octets: refused")]
    TooLarge {
        /// The file.
        role: Role,
        /// The most octets accepted.
        max: u64,
    },
    /// For another kit.
    #[error("{role} is for kit {kit:?}, this kit is {ours:?}: refused")]
    WrongKit {
        /// The document.
        role: Role,
        /// The kit it names.
        kit: String,
        /// This kit.
        ours: String,
    },
    /// Not a document of its kind.
    #[error("{role} is malformed ({reason}): refused")]
    Malformed {
        /// The document.
        role: Role,
        /// What is wrong.
        reason: &'static str,
    },
    /// The current snapshot does not name this target.
    #[error("the snapshot names no {target}")]
    NotListed {
        /// The target.
        target: TargetName,
    },
    /// The shell called out of order (a snapshot before its timestamp, a
    /// target before its snapshot): our bug.
    #[error("{role} checked before the document naming it verified: fix the caller")]
    OutOfOrder {
        /// What was offered.
        role: Role,
    },
    /// The persisted state does not decode. Do not delete it (that would
    /// allow rollback): restore it or re-provision the kit.
    #[error("the repository state is damaged: refused; restore it from the kit's backup or re-provision the kit")]
    CorruptState,
    /// A kit id that is not one.
    #[error("{0:?} is not a kit id")]
    BadKitId(String),
}

impl RepoError {
    /// A short, stable name for the audit trail and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            RepoError::WrongKey { .. } => "wrong-key",
            RepoError::BadSignature { .. } => "bad-signature",
            RepoError::Rollback { .. } => "rollback",
            RepoError::Conflict { .. } => "conflict",
            RepoError::Expired { .. } => "expired",
            RepoError::HashMismatch { .. } => "hash-mismatch",
            RepoError::LengthMismatch { .. } => "length-mismatch",
            RepoError::TooLarge { .. } => "too-large",
            RepoError::WrongKit { .. } => "wrong-kit",
            RepoError::Malformed { .. } => "malformed",
            RepoError::NotListed { .. } => "not-listed",
            RepoError::OutOfOrder { .. } => "out-of-order",
            RepoError::CorruptState => "corrupt-state",
            RepoError::BadKitId(_) => "bad-kit-id",
        }
    }

    /// The document or file concerned, if any.
    pub fn role(&self) -> Option<Role> {
        match self {
            RepoError::WrongKey { role, .. }
            | RepoError::BadSignature { role }
            | RepoError::Rollback { role, .. }
            | RepoError::Conflict { role, .. }
            | RepoError::Expired { role, .. }
            | RepoError::HashMismatch { role }
            | RepoError::LengthMismatch { role, .. }
            | RepoError::TooLarge { role, .. }
            | RepoError::WrongKit { role, .. }
            | RepoError::Malformed { role, .. }
            | RepoError::OutOfOrder { role } => Some(*role),
            RepoError::NotListed { target } => Some(Role::Target(*target)),
            RepoError::CorruptState | RepoError::BadKitId(_) => None,
        }
    }
}

/// The public keys a kit pins for its repository.
#[derive(Clone, Debug)]
pub struct RoleKeys {
    /// Signs `timestamp.signed` (HQ's online key).
    pub timestamp: PublicKey,
    /// Signs the snapshots.
    pub snapshot: PublicKey,
}

/// A target whose length and SHA-256 are those the verified snapshot
/// names; only [`Client::verify_target`] makes one. Its own signature is
/// still to be checked (policy, firmware and command verifiers).
#[derive(Debug)]
pub struct VerifiedTarget<'a> {
    name: TargetName,
    meta: FileMeta,
    bytes: &'a [u8],
}

impl<'a> VerifiedTarget<'a> {
    /// Which target.
    pub fn name(&self) -> TargetName {
        self.name
    }
    /// Its version, length and digest as the snapshot names them.
    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }
    /// The exact bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A streamed target (a firmware bundle) whose length and digest match the
/// verified snapshot; only [`Client::verify_target_digest`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedDigest {
    name: TargetName,
    meta: FileMeta,
}

impl VerifiedDigest {
    /// Which target.
    pub fn name(&self) -> TargetName {
        self.name
    }
    /// Its version, length and digest as the snapshot names them.
    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }
}

/// The kit's side of its repository. See the [module docs](self) for the
/// order of calls. Holds the persisted [`State`], the current verified
/// snapshot (in memory only) and the trusted time of the last poll.
#[derive(Debug)]
pub struct Client {
    kit: String,
    keys: RoleKeys,
    state: State,
    /// `max(now_floor, trusted time)` at the last verified timestamp.
    now: u64,
    /// The snapshot the last verified timestamp names, not yet verified.
    wanted: Option<FileMeta>,
    /// The verified snapshot the last verified timestamp names.
    snapshot: Option<Snapshot>,
    changed: bool,
}

fn envelope_error(role: Role, e: SignedError) -> RepoError {
    match e {
        SignedError::UnknownSigner { signer, pinned, .. } => RepoError::WrongKey {
            role,
            signer,
            pinned,
        },
        SignedError::BadSignature { .. } => RepoError::BadSignature { role },
        SignedError::TooLarge { max, .. } => RepoError::TooLarge {
            role,
            max: max as u64,
        },
        SignedError::Truncated { .. } => RepoError::Malformed {
            role,
            reason: "truncated",
        },
        SignedError::Malformed { reason, .. } => RepoError::Malformed { role, reason },
        SignedError::UnsupportedFormat { .. } => RepoError::Malformed {
            role,
            reason: "a format version this kit does not read",
        },
        SignedError::DuplicateSignature { .. } => RepoError::Malformed {
            role,
            reason: "more than one signature",
        },
        _ => RepoError::Malformed {
            role,
            reason: "not a signed document",
        },
    }
}

/// The body of a document of `purpose` signed by `key`. The envelope
/// bounds the read before anything else.
fn open_doc<'a>(
    role: Role,
    purpose: &Purpose,
    key: &PublicKey,
    bytes: &'a [u8],
) -> Result<&'a [u8], RepoError> {
    let opened = open(purpose, bytes, key).map_err(|e| envelope_error(role, e))?;
    Ok(opened.bytes)
}

/// Refuses a version below what was seen, or the same version with other
/// bytes; `true` if it is new.
fn check_version(role: Role, seen: &Seen, got: u64, digest: &[u8; 32]) -> Result<bool, RepoError> {
    if got > seen.version {
        return Ok(true);
    }
    match &seen.sha256 {
        Some(d) if got == seen.version && d == digest => Ok(false),
        Some(_) if got == seen.version => Err(RepoError::Conflict { role, version: got }),
        // Below, or at a provisioned floor (a version without bytes).
        _ => Err(RepoError::Rollback {
            role,
            seen: seen.version,
            got,
        }),
    }
}

/// The length and digest check of a file named by signed metadata.
fn check_file(
    role: Role,
    meta: &FileMeta,
    length: u64,
    digest: &[u8; 32],
) -> Result<(), RepoError> {
    if length > meta.length {
        return Err(RepoError::TooLarge {
            role,
            max: meta.length,
        });
    }
    if length < meta.length {
        return Err(RepoError::LengthMismatch {
            role,
            expected: meta.length,
            got: length,
        });
    }
    if *digest != meta.sha256 {
        return Err(RepoError::HashMismatch { role });
    }
    Ok(())
}

impl Client {
    /// A client for kit `kit` with its pinned keys and persisted state.
    pub fn new(kit: &str, keys: RoleKeys, state: State) -> Result<Client, RepoError> {
        if !is_kit_id(kit) {
            return Err(RepoError::BadKitId(kit.to_string()));
        }
        Ok(Client {
            kit: kit.to_string(),
            keys,
            now: state.trusted_time,
            state,
            wanted: None,
            snapshot: None,
            changed: false,
        })
    }

    /// The state to persist.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether the state changed since the last call (and clears the flag):
    /// persist [`Client::state`] before acting when it did.
    pub fn state_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The newest signed time verified (or the provisioned floor), unix
    /// seconds: what the kit's time floor may rise to.
    pub fn trusted_time(&self) -> u64 {
        self.state.trusted_time
    }

    fn check_header(&self, role: Role, h: &Header) -> Result<(), RepoError> {
        if h.kit != self.kit {
            return Err(RepoError::WrongKit {
                role,
                kit: h.kit.clone(),
                ours: self.kit.clone(),
            });
        }
        if h.expires <= self.now {
            return Err(RepoError::Expired {
                role,
                expires: h.expires,
                now: self.now,
            });
        }
        Ok(())
    }

    /// Verifies `timestamp.signed`: envelope and pinned timestamp key, kit
    /// id, expiry by the kit's time (`now_floor`, never below the trusted
    /// time), version not below the last seen (the same version only with
    /// the same bytes), and that the snapshot it names does not roll back.
    /// On success the trusted time rises to its `signed-at`, and
    /// [`Client::snapshot_wanted`] says what to fetch next.
    pub fn verify_timestamp(
        &mut self,
        bytes: &[u8],
        now_floor: u64,
    ) -> Result<Timestamp, RepoError> {
        let role = Role::Timestamp;
        let body = open_doc(role, &TIMESTAMP, &self.keys.timestamp, bytes)?;
        let ts = Timestamp::parse(body).map_err(|reason| RepoError::Malformed { role, reason })?;
        self.now = self.now.max(now_floor).max(self.state.trusted_time);
        self.check_header(role, &ts.header)?;
        let digest = sha256(bytes);
        let new = check_version(role, &self.state.timestamp, ts.header.version, &digest)?;
        let snap = ts.snapshot;
        let seen = self.state.snapshot;
        check_version(Role::Snapshot, &seen, snap.version, &snap.sha256)?;
        if new {
            self.state.timestamp = Seen {
                version: ts.header.version,
                sha256: Some(digest),
            };
            self.changed = true;
        }
        if ts.header.signed_at > self.state.trusted_time {
            self.state.trusted_time = ts.header.signed_at;
            self.changed = true;
        }
        self.now = self.now.max(self.state.trusted_time);
        // The verified snapshot in memory stays current if it is the one
        // named and has not expired meanwhile.
        let keep = self.snapshot.as_ref().is_some_and(|s| {
            s.header.version == snap.version
                && seen.sha256 == Some(snap.sha256)
                && s.header.expires > self.now
        });
        if !keep {
            self.snapshot = None;
        }
        self.wanted = (!keep).then_some(snap);
        Ok(ts)
    }

    /// The snapshot to fetch after [`Client::verify_timestamp`], as its file
    /// name under the kit's root and what the timestamp says of it (read at
    /// most `length` + 1 octets). `None`: the verified snapshot in memory
    /// is still current.
    pub fn snapshot_wanted(&self) -> Option<(String, FileMeta)> {
        self.wanted.map(|m| (snapshot_file(m.version), m))
    }

    /// Verifies the snapshot the last verified timestamp names: length and
    /// SHA-256 as named (before its signature is even looked at), envelope
    /// and pinned snapshot key, kit id, version as named, expiry, and that
    /// no target it names rolls back. It then becomes the current snapshot.
    pub fn verify_snapshot(&mut self, bytes: &[u8]) -> Result<&Snapshot, RepoError> {
        let role = Role::Snapshot;
        let meta = self.wanted.ok_or(RepoError::OutOfOrder { role })?;
        check_file(role, &meta, bytes.len() as u64, &sha256(bytes))?;
        let body = open_doc(role, &SNAPSHOT, &self.keys.snapshot, bytes)?;
        let snap = Snapshot::parse(body).map_err(|reason| RepoError::Malformed { role, reason })?;
        self.check_header(role, &snap.header)?;
        if snap.header.version != meta.version {
            return Err(RepoError::Malformed {
                role,
                reason: "its version is not the one the timestamp names",
            });
        }
        let mut targets = self.state.targets;
        for (name, t) in &snap.targets {
            let seen = &mut targets[name.index()];
            if check_version(Role::Target(*name), seen, t.version, &t.sha256)? {
                *seen = Seen {
                    version: t.version,
                    sha256: Some(t.sha256),
                };
            }
        }
        // Every check passed: only now does anything change.
        let new_snapshot = Seen {
            version: meta.version,
            sha256: Some(meta.sha256),
        };
        if self.state.snapshot != new_snapshot || self.state.targets != targets {
            self.state.snapshot = new_snapshot;
            self.state.targets = targets;
            self.changed = true;
        }
        self.wanted = None;
        Ok(self.snapshot.insert(snap))
    }

    /// What the current verified snapshot names of `name`, and its file
    /// under the kit's root (read at most `length` + 1 octets). `None`
    /// before a snapshot verified or if it does not name the target.
    pub fn target(&self, name: TargetName) -> Option<(String, FileMeta)> {
        let m = *self.snapshot.as_ref()?.target(name)?;
        Some((target_file(name, &m.sha256), m))
    }

    fn current(&self, name: TargetName) -> Result<FileMeta, RepoError> {
        let role = Role::Target(name);
        let snap = self
            .snapshot
            .as_ref()
            .ok_or(RepoError::OutOfOrder { role })?;
        snap.target(name)
            .copied()
            .ok_or(RepoError::NotListed { target: name })
    }

    /// Verifies a target's bytes against the current snapshot: not longer
    /// (endless data), not shorter, the same SHA-256 (mix-and-match).
    pub fn verify_target<'a>(
        &self,
        name: TargetName,
        bytes: &'a [u8],
    ) -> Result<VerifiedTarget<'a>, RepoError> {
        let meta = self.current(name)?;
        check_file(
            Role::Target(name),
            &meta,
            bytes.len() as u64,
            &sha256(bytes),
        )?;
        Ok(VerifiedTarget { name, meta, bytes })
    }

    /// As [`Client::verify_target`], for a target the shell streamed (a
    /// firmware bundle): the octets it read (it stops at the named length
    /// + 1) and their SHA-256.
    pub fn verify_target_digest(
        &self,
        name: TargetName,
        length: u64,
        sha256: &[u8; 32],
    ) -> Result<VerifiedDigest, RepoError> {
        let meta = self.current(name)?;
        check_file(Role::Target(name), &meta, length, sha256)?;
        Ok(VerifiedDigest { name, meta })
    }
}
