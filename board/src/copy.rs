//! The policy in force, as PID 1 learns it: the gateway (the only decider
//! of signature, anti-rollback and expiry) keeps a copy of the bundle it
//! last applied ([`PolicyConfig::applied_copy`]). PID 1 watches that copy
//! and verifies it itself with the configuration's pinned policy key
//! before the firewall opens anything for it: the file is on the data
//! partition and is not trusted.
//!
//! A copy that is missing, does not verify, is for another kit, has
//! expired, is older than one already seen since boot, or does not fit the
//! configuration ([`crate::allow::inputs`]) leaves the configuration's
//! trunks only: the firewall fails closed, and [`Refused`] says why.
//!
//! # Driving it
//!
//! [`AppliedCopy::new`] from the configuration, then [`AppliedCopy::poll`]
//! about once a second: it only stats the file unless the file changed
//! (device, inode, size, modification time) or the policy in force
//! expired, and returns `Some` only when what is in force changed. The
//! decision itself, [`AppliedCopy::decide`], is pure.

use std::path::{Path, PathBuf};

use dialgate_proto::config::{Config, PolicyConfig};
use dialgate_proto::policy::{
    verify_reload, Freshness, PolicyError, State, Trust, Verified, MAX_BUNDLE_BYTES,
};

/// The system clock in unix seconds (what the gateway judges expiry by).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why no policy is in force for the firewall (configuration trunks
/// only).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// No copy to read (nothing applied yet, or it was removed).
    #[error("no applied policy at {path}: {source}")]
    Unreadable {
        /// The copy's path.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The copy does not verify, is for another kit, is older than one
    /// seen before, is not yet valid or has expired, or does not fit the
    /// configuration.
    #[error("applied policy at {path} refused: {source}")]
    Policy {
        /// The copy's path.
        path: String,
        /// The verifier's reason.
        source: PolicyError,
    },
    /// The policy in force has expired since it was verified.
    #[error("policy version {version} expired")]
    Expired {
        /// Its version.
        version: u64,
    },
}

/// What tells a changed file from an unchanged one without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<std::time::SystemTime>,
}

impl Stamp {
    /// The stamp of `path`, `None` if it cannot be stat'ed.
    pub fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.modified().ok(),
        })
    }
}

/// What changed at a [`AppliedCopy::poll`].
#[derive(Debug)]
pub enum Change {
    /// This policy is now in force.
    Policy(Box<Verified>),
    /// No policy is in force (any more): configuration trunks only.
    ConfigOnly(Refused),
}

/// The watched copy of the applied policy; see the module documentation.
#[derive(Debug)]
pub struct AppliedCopy {
    path: PathBuf,
    trust: Trust,
    /// The newest policy verified since boot: an older copy is refused.
    floor: State,
    /// The file as last examined; `None` before the first examination.
    stamp: Option<Option<Stamp>>,
    current: Option<Verified>,
}

impl AppliedCopy {
    /// The copy of a configuration with `[policy]`; `None` without one
    /// (then only the configuration's trunks exist).
    pub fn new(config: &Config) -> Option<AppliedCopy> {
        let p: &PolicyConfig = config.policy.as_ref()?;
        Some(AppliedCopy {
            path: p.applied_copy(),
            trust: p.trust.clone(),
            floor: State::new(),
            stamp: None,
            current: None,
        })
    }

    /// The copy's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force, if any.
    pub fn current(&self) -> Option<&Verified> {
        self.current.as_ref()
    }

    /// Decides on the copy's content (`bytes`, or why it could not be
    /// read) at `now_unix`: signature, kit, expiry, not older than a copy
    /// already seen, and a fit with `config`. Records the result as the
    /// policy in force (or none).
    pub fn decide(
        &mut self,
        config: &Config,
        bytes: std::io::Result<Vec<u8>>,
        now_unix: u64,
    ) -> Change {
        let path = self.path.display().to_string();
        let bytes = match bytes {
            Ok(b) => b,
            Err(source) => {
                self.current = None;
                return Change::ConfigOnly(Refused::Unreadable { path, source });
            }
        };
        // Accepts the copy seen before (same version and body) or a newer
        // one; every other check applies, and the trunks must fit.
        let decided = verify_reload(&bytes, &self.trust, &self.floor, now_unix)
            .and_then(|v| crate::allow::inputs(config, Some(&v), "", "").map(|_| v));
        match decided {
            Ok(v) => {
                self.floor.record(&v);
                self.current = Some(v.clone());
                Change::Policy(Box::new(v))
            }
            Err(source) => {
                self.current = None;
                Change::ConfigOnly(Refused::Policy { path, source })
            }
        }
    }

    /// Stats the copy; reads and decides it only if it changed since the
    /// last look (or at the first), or if the policy in force has expired
    /// at `now_unix`. `Some` when what is in force may have changed.
    pub fn poll(&mut self, config: &Config, now_unix: u64) -> Option<Change> {
        if let Some(v) = &self.current {
            if v.freshness(now_unix) == Freshness::Expired {
                let version = v.version();
                self.current = None;
                return Some(Change::ConfigOnly(Refused::Expired { version }));
            }
        }
        let stamp = Stamp::of(&self.path);
        if self.stamp == Some(stamp) {
            return None;
        }
        self.stamp = Some(stamp);
        let bytes = read_copy(&self.path);
        Some(self.decide(config, bytes, now_unix))
    }
}

/// Reads at most one byte more than a bundle may be (the verifier then
/// refuses it as too large without the rest being read).
fn read_copy(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{kit_config, policy_body, Kit};

    fn setup() -> (Kit, Config, AppliedCopy) {
        let kit = Kit::new();
        let config = kit.config(&kit_config(Some("10.199.0.1"), true));
        let copy = AppliedCopy::new(&config).unwrap();
        (kit, config, copy)
    }

    fn refused(c: Option<Change>) -> Refused {
        match c {
            Some(Change::ConfigOnly(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_copy_is_next_to_the_state_and_watched_from_the_first_poll() {
        let (kit, config, mut copy) = setup();
        assert_eq!(copy.path(), kit.dir.join("state/policy.applied"));
        let now = now_unix();
        // Nothing applied yet: configuration only, said once.
        assert!(matches!(
            refused(copy.poll(&config, now)),
            Refused::Unreadable { .. }
        ));
        assert!(copy.poll(&config, now).is_none(), "unchanged: no news");
        std::fs::write(copy.path(), kit.bundle(&policy_body(3, &[]))).unwrap();
        match copy.poll(&config, now) {
            Some(Change::Policy(v)) => assert_eq!(v.version(), 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(copy.current().map(Verified::version), Some(3));
        assert!(copy.poll(&config, now).is_none());
        // Removed: back to configuration only.
        std::fs::remove_file(copy.path()).unwrap();
        assert!(matches!(
            refused(copy.poll(&config, now)),
            Refused::Unreadable { .. }
        ));
        assert!(copy.current().is_none());
        // A kit without [policy] has no copy to watch.
        let lab = kit_config(None, false)
            .replace("[policy]\nkey = \"policy-key.pub.pem\"\nkit_id = \"kit-board\"\nbundle = \"policy.bundle\"\nstate = \"state/policy.state\"\n", "")
            .replace("[phone]\n", "[phone]\nregistry = \"r.toml\"\n");
        assert!(AppliedCopy::new(&kit.config(&lab)).is_none());
    }

    #[test]
    fn hostile_copies_leave_the_configuration_only() {
        let (kit, config, mut copy) = setup();
        let now = now_unix();
        let good = kit.bundle(&policy_body(5, &[("webex", "10.199.0.3:5061", &[])]));
        let other_key = Kit::new().bundle(&policy_body(5, &[]));
        let mut tampered = good.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 1;
        let mut other_kit = policy_body(6, &[]);
        other_kit.kits = vec!["kit-other".into()];
        let mut expired = policy_body(6, &[]);
        expired.issued_at = now - 7200;
        expired.expires_at = now - 3600;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("another key", other_key),
            ("tampered", tampered),
            ("truncated", good[..good.len() - 10].to_vec()),
            ("empty", Vec::new()),
            ("garbage", b"\xff\x00 not a bundle".to_vec()),
            ("other kit", kit.bundle(&other_kit)),
            ("expired", kit.bundle(&expired)),
            ("too large", vec![b'x'; MAX_BUNDLE_BYTES + 10]),
        ];
        for (what, bytes) in cases {
            match copy.decide(&config, Ok(bytes), now) {
                Change::ConfigOnly(Refused::Policy { .. }) => {}
                other => panic!("{what}: {other:?}"),
            }
            assert!(copy.current().is_none(), "{what}");
        }
        // Accepted, then an older one (a swapped-in old copy) is refused.
        assert!(matches!(
            copy.decide(&config, Ok(good.clone()), now),
            Change::Policy(_)
        ));
        assert!(matches!(
            copy.decide(&config, Ok(good), now),
            Change::Policy(_)
        ));
        let older = kit.bundle(&policy_body(4, &[]));
        let r = match copy.decide(&config, Ok(older), now) {
            Change::ConfigOnly(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(r.to_string().contains("anti-rollback"), "{r}");
        // A policy the gateway could not apply here (a directory entry on
        // a trunk nobody has) is refused as well.
        let mut unfit = policy_body(9, &[]);
        unfit.directory = vec![dialgate_proto::config::DirectoryEntry {
            alias: "m".into(),
            uri: "sip:m@meet.example".into(),
            trunk: "nowhere".into(),
            pin: None,
        }];
        assert!(matches!(
            copy.decide(&config, Ok(kit.bundle(&unfit)), now),
            Change::ConfigOnly(Refused::Policy { .. })
        ));
    }

    #[test]
    fn an_expiring_policy_closes_without_the_file_changing() {
        let (kit, config, mut copy) = setup();
        let now = now_unix();
        std::fs::write(copy.path(), kit.bundle(&policy_body(2, &[]))).unwrap();
        assert!(matches!(copy.poll(&config, now), Some(Change::Policy(_))));
        assert!(copy.poll(&config, now + 60).is_none());
        assert!(matches!(
            refused(copy.poll(&config, now + 7200)),
            Refused::Expired { version: 2 }
        ));
        assert!(copy.poll(&config, now + 7201).is_none());
    }
}
