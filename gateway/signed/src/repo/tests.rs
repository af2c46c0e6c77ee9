//! Hostile fixtures in the manner of `tough`'s tests: for every attack the
//! repository must defeat, a publication that mounts it and the error the
//! kit answers with. Each also checks that a refusal leaves the state as
//! it was.

use super::*;
use crate::{frame, signed_message, unframe, SigningKey};

const KIT: &str = "kit-1";
/// The kit's build time: its time floor before it hears from HQ.
const BUILT: u64 = 1_000_000;
const T0: u64 = 1_000_100;

/// HQ's side of one kit's repository, in memory.
struct Hq {
    timestamp_key: SigningKey,
    snapshot_key: SigningKey,
    kit: String,
}

/// One publication: the three kinds of file, as a server would serve them.
#[derive(Clone)]
struct Published {
    timestamp: Vec<u8>,
    snapshot: Vec<u8>,
    snapshot_name: String,
    targets: Vec<(TargetName, Vec<u8>)>,
}

impl Published {
    fn target(&self, name: TargetName) -> &[u8] {
        &self.targets.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

fn header(kit: &str, version: u64, signed_at: u64, valid: u64) -> Header {
    Header {
        kit: kit.to_string(),
        version,
        signed_at,
        expires: signed_at + valid,
    }
}

impl Hq {
    fn new() -> Hq {
        Hq {
            timestamp_key: SigningKey::generate().unwrap(),
            snapshot_key: SigningKey::generate().unwrap(),
            kit: KIT.to_string(),
        }
    }

    fn keys(&self) -> RoleKeys {
        RoleKeys {
            timestamp: self.timestamp_key.public_key().clone(),
            snapshot: self.snapshot_key.public_key().clone(),
        }
    }

    fn snapshot(&self, version: u64, at: u64, targets: &[(TargetName, u64, &[u8])]) -> Vec<u8> {
        Snapshot {
            header: header(&self.kit, version, at, 86_400),
            targets: targets
                .iter()
                .map(|(n, v, b)| (*n, FileMeta::of(*v, b)))
                .collect(),
        }
        .sign(&self.snapshot_key)
        .unwrap()
    }

    fn timestamp(&self, version: u64, at: u64, snapshot: &[u8], snapshot_version: u64) -> Vec<u8> {
        Timestamp {
            header: header(&self.kit, version, at, 600),
            snapshot: FileMeta::of(snapshot_version, snapshot),
        }
        .sign(&self.timestamp_key)
        .unwrap()
    }

    /// Timestamp `version` at `at`, snapshot `snap`, policy and commands
    /// at version `snap`.
    fn publish(&self, version: u64, snap: u64, at: u64) -> Published {
        let policy = format!("policy bundle {snap}").into_bytes();
        let commands = format!("commands {snap}").into_bytes();
        let snapshot = self.snapshot(
            snap,
            at,
            &[
                (TargetName::Policy, snap, &policy),
                (TargetName::Commands, snap, &commands),
            ],
        );
        Published {
            timestamp: self.timestamp(version, at, &snapshot, snap),
            snapshot_name: snapshot_file(snap),
            snapshot,
            targets: vec![
                (TargetName::Policy, policy),
                (TargetName::Commands, commands),
            ],
        }
    }
}

fn client(hq: &Hq) -> Client {
    Client::new(KIT, hq.keys(), State::new(BUILT)).unwrap()
}

/// Runs one whole poll as a shell would.
fn poll(kit: &mut Client, p: &Published, now: u64) -> Result<(), RepoError> {
    kit.verify_timestamp(&p.timestamp, now)?;
    if let Some((name, _)) = kit.snapshot_wanted() {
        assert_eq!(name, p.snapshot_name);
        kit.verify_snapshot(&p.snapshot)?;
    }
    for (name, bytes) in &p.targets {
        kit.verify_target(*name, bytes)?;
    }
    Ok(())
}

/// `f` fails with an error matching `want`, and the state is unchanged.
fn refused(kit: &mut Client, f: impl FnOnce(&mut Client) -> Result<(), RepoError>) -> RepoError {
    let before = *kit.state();
    let e = f(kit).unwrap_err();
    assert_eq!(*kit.state(), before, "a refusal changed the state: {e}");
    e
}

#[test]
fn happy_path_two_publications() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let first = hq.publish(1, 1, T0);
    poll(&mut kit, &first, BUILT).unwrap();
    assert!(kit.state_changed());
    assert_eq!(kit.trusted_time(), T0);
    assert_eq!(kit.state().timestamp.version, 1);
    assert_eq!(kit.state().target(TargetName::Policy).version, 1);
    let (file, meta) = kit.target(TargetName::Policy).unwrap();
    assert_eq!(file, target_file(TargetName::Policy, &meta.sha256));
    assert_eq!(meta.length, first.target(TargetName::Policy).len() as u64);
    assert!(kit.target(TargetName::Firmware).is_none());

    // A refreshed timestamp naming the same snapshot: nothing to fetch.
    let same = hq.timestamp(2, T0 + 60, &first.snapshot, 1);
    kit.verify_timestamp(&same, BUILT).unwrap();
    assert!(kit.snapshot_wanted().is_none());
    assert!(kit
        .verify_target(TargetName::Policy, first.target(TargetName::Policy))
        .is_ok());
    assert_eq!(kit.trusted_time(), T0 + 60);

    // A new publication: every version rises.
    let second = hq.publish(3, 2, T0 + 120);
    poll(&mut kit, &second, T0).unwrap();
    assert_eq!(kit.state().snapshot.version, 2);
    assert_eq!(kit.state().target(TargetName::Commands).version, 2);
    let proof = kit
        .verify_target(TargetName::Commands, second.target(TargetName::Commands))
        .unwrap();
    assert_eq!(proof.bytes(), b"commands 2");
    assert_eq!(proof.meta().version, 2);
    assert_eq!(proof.name(), TargetName::Commands);
    // The same timestamp again (a poll without ETag): accepted, no change.
    kit.state_changed();
    kit.verify_timestamp(&second.timestamp, T0 + 130).unwrap();
    assert!(!kit.state_changed());
}

#[test]
fn state_survives_a_restart() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let first = hq.publish(1, 1, T0);
    let second = hq.publish(2, 2, T0 + 60);
    poll(&mut kit, &first, BUILT).unwrap();
    poll(&mut kit, &second, BUILT).unwrap();
    let saved = kit.state().encode();

    let state = State::decode(&saved).unwrap();
    assert_eq!(state, *kit.state());
    let mut again = Client::new(KIT, hq.keys(), state).unwrap();
    assert_eq!(again.trusted_time(), T0 + 60);
    // The older publication stays refused after the restart...
    let e = refused(&mut again, |k| poll(k, &first, BUILT));
    assert_eq!(
        e,
        RepoError::Rollback {
            role: Role::Timestamp,
            seen: 2,
            got: 1
        }
    );
    // ...and the current one is fetched again and accepted as it is.
    poll(&mut again, &second, BUILT).unwrap();
    assert!(!again.state_changed());
    assert!(matches!(
        State::decode(&saved[..saved.len() - 1]),
        Err(RepoError::CorruptState)
    ));
}

#[test]
fn signature_by_another_key_is_refused() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let mallory = Hq {
        kit: KIT.to_string(),
        ..Hq::new()
    };
    let p = mallory.publish(1, 1, T0);
    let e = refused(&mut kit, |k| poll(k, &p, BUILT));
    assert!(
        matches!(e, RepoError::WrongKey { role: Role::Timestamp, signer, pinned }
        if signer == mallory.timestamp_key.public_key().id()
        && pinned == hq.timestamp_key.public_key().id())
    );
    assert_eq!(e.reason(), "wrong-key");

    // The pinned key's id on another key's signature: a forgery.
    let body = unframe(&TIMESTAMP, &p.timestamp).unwrap().body.to_vec();
    let forged_sig = mallory
        .timestamp_key
        .sign(&signed_message(&TIMESTAMP, &body))
        .unwrap();
    let forged = frame(
        &TIMESTAMP,
        &body,
        &hq.timestamp_key.public_key().id(),
        &forged_sig,
    );
    let e = refused(&mut kit, |k| k.verify_timestamp(&forged, BUILT).map(drop));
    assert_eq!(
        e,
        RepoError::BadSignature {
            role: Role::Timestamp
        }
    );

    // A snapshot signed with the timestamp key (role confusion), named
    // by a genuine timestamp.
    let wrong_role = Snapshot {
        header: header(KIT, 1, T0, 86_400),
        targets: vec![],
    }
    .sign(&hq.timestamp_key)
    .unwrap();
    let ts = hq.timestamp(1, T0, &wrong_role, 1);
    kit.verify_timestamp(&ts, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&wrong_role).map(drop));
    assert!(
        matches!(
            e,
            RepoError::WrongKey {
                role: Role::Snapshot,
                ..
            }
        ),
        "{e}"
    );

    // A timestamp is not a snapshot, even under the right key.
    let both = Hq {
        snapshot_key: SigningKey::from_pkcs8(&hq.timestamp_key.to_pkcs8().unwrap()).unwrap(),
        timestamp_key: SigningKey::from_pkcs8(&hq.timestamp_key.to_pkcs8().unwrap()).unwrap(),
        kit: KIT.to_string(),
    };
    let mut kit = client(&both);
    let other_ts = both.timestamp(1, T0, b"x", 1);
    let ts = both.timestamp(2, T0, &other_ts, 1);
    kit.verify_timestamp(&ts, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&other_ts).map(drop));
    assert!(
        matches!(
            e,
            RepoError::Malformed {
                role: Role::Snapshot,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn timestamp_rollback_is_refused() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let old = hq.publish(1, 1, T0);
    let new = hq.publish(2, 1, T0 + 10);
    poll(&mut kit, &new, BUILT).unwrap();
    // Still unexpired, validly signed, but older.
    let e = refused(&mut kit, |k| poll(k, &old, BUILT));
    assert_eq!(
        e,
        RepoError::Rollback {
            role: Role::Timestamp,
            seen: 2,
            got: 1
        }
    );
    // One version, two contents: refused, not picked.
    let twin = hq.timestamp(2, T0 + 20, &new.snapshot, 1);
    let e = refused(&mut kit, |k| k.verify_timestamp(&twin, BUILT).map(drop));
    assert_eq!(
        e,
        RepoError::Conflict {
            role: Role::Timestamp,
            version: 2
        }
    );
}

#[test]
fn snapshot_and_target_rollback_are_refused() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let old = hq.publish(1, 1, T0);
    let new = hq.publish(2, 2, T0 + 10);
    poll(&mut kit, &old, BUILT).unwrap();
    poll(&mut kit, &new, BUILT).unwrap();
    // A new timestamp naming the old snapshot.
    let ts = hq.timestamp(3, T0 + 20, &old.snapshot, 1);
    let e = refused(&mut kit, |k| k.verify_timestamp(&ts, BUILT).map(drop));
    assert_eq!(
        e,
        RepoError::Rollback {
            role: Role::Snapshot,
            seen: 2,
            got: 1
        }
    );
    // A new timestamp naming another snapshot under the current version.
    let other = hq.snapshot(2, T0 + 25, &[]);
    let ts = hq.timestamp(3, T0 + 25, &other, 2);
    let e = refused(&mut kit, |k| k.verify_timestamp(&ts, BUILT).map(drop));
    assert_eq!(
        e,
        RepoError::Conflict {
            role: Role::Snapshot,
            version: 2
        }
    );
    // A new snapshot naming the old policy under its old version.
    let policy = old.target(TargetName::Policy);
    let snap = hq.snapshot(3, T0 + 30, &[(TargetName::Policy, 1, policy)]);
    let ts = hq.timestamp(4, T0 + 30, &snap, 3);
    kit.verify_timestamp(&ts, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&snap).map(drop));
    assert_eq!(
        e,
        RepoError::Rollback {
            role: Role::Target(TargetName::Policy),
            seen: 2,
            got: 1
        }
    );
    // ...or under the current version: another file, one version.
    let snap = hq.snapshot(4, T0 + 40, &[(TargetName::Policy, 2, policy)]);
    let ts = hq.timestamp(5, T0 + 40, &snap, 4);
    kit.verify_timestamp(&ts, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&snap).map(drop));
    assert_eq!(
        e,
        RepoError::Conflict {
            role: Role::Target(TargetName::Policy),
            version: 2
        }
    );
}

#[test]
fn expired_timestamp_replayed_is_refused() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let p = hq.publish(1, 1, T0);
    poll(&mut kit, &p, T0).unwrap();
    // HQ is cut off; the network replays the last timestamp after its
    // ten minutes (freeze).
    let e = refused(&mut kit, |k| {
        k.verify_timestamp(&p.timestamp, T0 + 600).map(drop)
    });
    assert_eq!(
        e,
        RepoError::Expired {
            role: Role::Timestamp,
            expires: T0 + 600,
            now: T0 + 600
        }
    );
    assert_eq!(e.reason(), "expired");

    // A clock set back does not help: the trusted time is the floor.
    let mut state = *kit.state();
    state.trusted_time = T0 + 700;
    let mut restarted = Client::new(KIT, hq.keys(), state).unwrap();
    let e = refused(&mut restarted, |k| {
        k.verify_timestamp(&p.timestamp, 0).map(drop)
    });
    assert!(matches!(e, RepoError::Expired { now, .. } if now == T0 + 700));

    // A fresh timestamp naming an expired snapshot.
    let snap = Snapshot {
        header: header(KIT, 2, T0, 60),
        targets: vec![],
    }
    .sign(&hq.snapshot_key)
    .unwrap();
    let ts = hq.timestamp(2, T0 + 100, &snap, 2);
    kit.verify_timestamp(&ts, T0 + 100).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&snap).map(drop));
    assert!(
        matches!(
            e,
            RepoError::Expired {
                role: Role::Snapshot,
                ..
            }
        ),
        "{e}"
    );

    // The snapshot in memory expires too: the next timestamp asks for it
    // again, and a stale one is refused.
    let mut kit = client(&hq);
    poll(&mut kit, &p, T0).unwrap();
    let later = hq.timestamp(3, T0 + 86_400, &p.snapshot, 1);
    kit.verify_timestamp(&later, T0 + 86_400).unwrap();
    assert!(kit.snapshot_wanted().is_some());
    assert!(matches!(
        kit.verify_snapshot(&p.snapshot),
        Err(RepoError::Expired {
            role: Role::Snapshot,
            ..
        })
    ));
}

#[test]
fn mix_and_match_is_refused() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let one = hq.publish(1, 1, T0);
    let two = hq.publish(2, 2, T0 + 10);
    poll(&mut kit, &one, BUILT).unwrap();
    // Two's timestamp, one's snapshot.
    kit.verify_timestamp(&two.timestamp, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&one.snapshot).map(drop));
    assert!(
        matches!(
            e,
            RepoError::HashMismatch {
                role: Role::Snapshot
            } | RepoError::LengthMismatch { .. }
        ),
        "{e}"
    );
    kit.verify_snapshot(&two.snapshot).unwrap();
    // Two's snapshot, one's policy (same length: only the digest differs).
    let old_policy = one.target(TargetName::Policy);
    assert_eq!(old_policy.len(), two.target(TargetName::Policy).len());
    let e = kit
        .verify_target(TargetName::Policy, old_policy)
        .unwrap_err();
    assert_eq!(
        e,
        RepoError::HashMismatch {
            role: Role::Target(TargetName::Policy)
        }
    );
    // A policy served as the commands file (longer than it).
    let e = kit
        .verify_target(TargetName::Commands, two.target(TargetName::Policy))
        .unwrap_err();
    assert!(
        matches!(
            e,
            RepoError::TooLarge {
                role: Role::Target(TargetName::Commands),
                ..
            }
        ),
        "{e}"
    );
    // A target the snapshot does not name.
    assert_eq!(
        kit.verify_target(TargetName::Firmware, b"firmware")
            .unwrap_err(),
        RepoError::NotListed {
            target: TargetName::Firmware
        }
    );
    let digest = crate::sha256(b"x");
    assert!(kit
        .verify_target_digest(TargetName::Firmware, 1, &digest)
        .is_err());
}

#[test]
fn endless_data_is_refused() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let p = hq.publish(1, 1, T0);
    poll(&mut kit, &p, BUILT).unwrap();
    let policy = p.target(TargetName::Policy);
    let named = policy.len() as u64;
    // One octet more than named: the shell read named + 1 and stopped.
    let mut longer = policy.to_vec();
    longer.push(b'x');
    assert_eq!(
        kit.verify_target(TargetName::Policy, &longer).unwrap_err(),
        RepoError::TooLarge {
            role: Role::Target(TargetName::Policy),
            max: named
        }
    );
    assert_eq!(
        kit.verify_target(TargetName::Policy, &policy[..policy.len() - 1])
            .unwrap_err(),
        RepoError::LengthMismatch {
            role: Role::Target(TargetName::Policy),
            expected: named,
            got: named - 1
        }
    );
    // Streamed: the same checks on length and digest.
    let digest = crate::sha256(policy);
    assert!(kit
        .verify_target_digest(TargetName::Policy, named, &digest)
        .is_ok());
    assert!(matches!(
        kit.verify_target_digest(TargetName::Policy, named + 1, &digest),
        Err(RepoError::TooLarge { .. })
    ));
    // A timestamp that does not end: refused by its size alone.
    let mut endless = p.timestamp.clone();
    endless.resize(TIMESTAMP.max_bytes + 1, b' ');
    let e = refused(&mut kit, |k| k.verify_timestamp(&endless, BUILT).map(drop));
    assert_eq!(
        e,
        RepoError::TooLarge {
            role: Role::Timestamp,
            max: TIMESTAMP.max_bytes as u64
        }
    );
    // A snapshot longer than its timestamp names.
    let mut kit = client(&hq);
    kit.verify_timestamp(&p.timestamp, BUILT).unwrap();
    let mut padded = p.snapshot.clone();
    padded.extend_from_slice(b"\n");
    let e = refused(&mut kit, |k| k.verify_snapshot(&padded).map(drop));
    assert!(
        matches!(
            e,
            RepoError::TooLarge {
                role: Role::Snapshot,
                ..
            }
        ),
        "{e}"
    );
    // Signed metadata naming a policy larger than a kit reads: HQ's
    // mistake or HQ's key misused, refused before any download.
    let body = format!(
        "kit {KIT}\nversion 2\nsigned-at {T0}\nexpires {}\ntarget policy.bundle 2 {} {}\n",
        T0 + 600,
        TargetName::Policy.max_len() + 1,
        "ab".repeat(32)
    );
    let huge = crate::seal(&SNAPSHOT, body.as_bytes(), &hq.snapshot_key).unwrap();
    let ts = hq.timestamp(2, T0, &huge, 2);
    kit.verify_timestamp(&ts, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&huge).map(drop));
    assert!(
        matches!(
            e,
            RepoError::Malformed {
                role: Role::Snapshot,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn documents_for_another_kit_are_refused() {
    let hq = Hq::new();
    let other = Hq {
        timestamp_key: SigningKey::from_pkcs8(&hq.timestamp_key.to_pkcs8().unwrap()).unwrap(),
        snapshot_key: SigningKey::from_pkcs8(&hq.snapshot_key.to_pkcs8().unwrap()).unwrap(),
        kit: "kit-2".to_string(),
    };
    let mut kit = client(&hq);
    // Kit 2's repository, served to kit 1: same HQ keys, other kit.
    let p = other.publish(1, 1, T0);
    let e = refused(&mut kit, |k| poll(k, &p, BUILT));
    assert_eq!(
        e,
        RepoError::WrongKit {
            role: Role::Timestamp,
            kit: "kit-2".into(),
            ours: KIT.into()
        }
    );
    // Kit 2's snapshot behind a timestamp for kit 1.
    let ts = hq.timestamp(1, T0, &p.snapshot, 1);
    kit.verify_timestamp(&ts, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&p.snapshot).map(drop));
    assert!(
        matches!(
            e,
            RepoError::WrongKit {
                role: Role::Snapshot,
                ..
            }
        ),
        "{e}"
    );
    assert!(Client::new("../kit", hq.keys(), State::new(0)).is_err());
}

#[test]
fn malformed_input_is_refused() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let p = hq.publish(1, 1, T0);
    let sealed_body = |body: &[u8]| crate::seal(&TIMESTAMP, body, &hq.timestamp_key).unwrap();
    let good_body = unframe(&TIMESTAMP, &p.timestamp).unwrap().body.to_vec();
    let text = String::from_utf8(good_body).unwrap();
    let at = p
        .timestamp
        .windows(11)
        .rposition(|w| w == b"\nsignature ")
        .unwrap();
    let mut duplicate = p.timestamp.clone();
    duplicate.extend_from_slice(&p.timestamp[at + 1..]);
    for (what, bytes) in [
        ("empty", Vec::new()),
        ("garbage", b"<html>captive portal</html>\n".to_vec()),
        ("truncated", p.timestamp[..p.timestamp.len() - 10].to_vec()),
        ("header only", p.timestamp[..30].to_vec()),
        ("duplicate signature", duplicate),
        ("a snapshot", p.snapshot.clone()),
        ("signed garbage", sealed_body(b"hello\n")),
        (
            "signed, extra line",
            sealed_body(format!("{text}x\n").as_bytes()),
        ),
        (
            "signed, CRLF",
            sealed_body(text.replace('\n', "\r\n").as_bytes()),
        ),
        (
            "signed, no snapshot",
            sealed_body(
                text.lines()
                    .take(4)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .as_bytes(),
            ),
        ),
        (
            "signed, version 0",
            sealed_body(text.replace("version 1", "version 0").as_bytes()),
        ),
    ] {
        let e = refused(&mut kit, |k| k.verify_timestamp(&bytes, BUILT).map(drop));
        assert!(
            matches!(
                e,
                RepoError::Malformed {
                    role: Role::Timestamp,
                    ..
                }
            ),
            "{what}: {e}"
        );
        assert_eq!(e.role(), Some(Role::Timestamp));
    }
    // A signed snapshot body that does not parse.
    let bad = crate::seal(&SNAPSHOT, b"kit kit-1\n", &hq.snapshot_key).unwrap();
    let ts = hq.timestamp(1, T0, &bad, 1);
    kit.verify_timestamp(&ts, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&bad).map(drop));
    assert!(
        matches!(
            e,
            RepoError::Malformed {
                role: Role::Snapshot,
                ..
            }
        ),
        "{e}"
    );
    // A snapshot whose version is not the one its timestamp names.
    let snap = hq.snapshot(5, T0, &[]);
    let ts = hq.timestamp(2, T0, &snap, 4);
    kit.verify_timestamp(&ts, BUILT).unwrap();
    let e = refused(&mut kit, |k| k.verify_snapshot(&snap).map(drop));
    assert!(
        matches!(
            e,
            RepoError::Malformed {
                role: Role::Snapshot,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn calls_out_of_order_are_refused() {
    let hq = Hq::new();
    let mut kit = client(&hq);
    let p = hq.publish(1, 1, T0);
    assert_eq!(
        kit.verify_snapshot(&p.snapshot).unwrap_err(),
        RepoError::OutOfOrder {
            role: Role::Snapshot
        }
    );
    assert_eq!(
        kit.verify_target(TargetName::Policy, p.target(TargetName::Policy))
            .unwrap_err(),
        RepoError::OutOfOrder {
            role: Role::Target(TargetName::Policy)
        }
    );
    kit.verify_timestamp(&p.timestamp, BUILT).unwrap();
    assert!(kit
        .verify_target(TargetName::Policy, p.target(TargetName::Policy))
        .is_err());
    kit.verify_snapshot(&p.snapshot).unwrap();
    // Once verified, a snapshot is not verified twice.
    assert!(matches!(
        kit.verify_snapshot(&p.snapshot),
        Err(RepoError::OutOfOrder { .. })
    ));
}
