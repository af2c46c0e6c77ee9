//! The kit's repository client (`dialgate_signed::repo::Client`) under a
//! sequence of operations: genuine documents of three publications offered
//! in any order and at any time, and bytes of the fuzzer's own offered as
//! a timestamp, a snapshot, a target or a persisted state. Each operation
//! is one byte (and its arguments):
//!
//! - 0 P: publication P's timestamp; 1 P: its snapshot; 2 P T: its target T
//! - 3 N BYTES / 4 N BYTES / 5 T N BYTES: N fuzz bytes as a timestamp, a
//!   snapshot, target T
//! - 6 M: the clock moves M minutes (forward or, with the high bit, back)
//! - 7: the kit restarts from its encoded state; 8 N BYTES: from fuzz bytes
//!
//! Asserts: the fuzzer holds no key, so a timestamp or snapshot it made is
//! accepted only if it is byte for byte one HQ signed; a verified target is
//! one HQ published; versions and the trusted time never go down; the
//! state always decodes back to itself, and fuzz bytes that decode as a
//! state re-encode to exactly themselves.
#![no_main]

use std::sync::OnceLock;

use dialgate_signed::repo::{
    Client, FileMeta, Header, RoleKeys, Snapshot, State, TargetName, Timestamp,
};
use dialgate_signed::SigningKey;
use libfuzzer_sys::fuzz_target;

const KIT: &str = "kit-1";
const BUILT: u64 = 1_700_000_000;

struct Publication {
    timestamp: Vec<u8>,
    snapshot: Vec<u8>,
    targets: Vec<(TargetName, Vec<u8>)>,
}

struct Fixture {
    keys: RoleKeys,
    publications: Vec<Publication>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ts_key = SigningKey::generate().unwrap();
        let snap_key = SigningKey::generate().unwrap();
        let publications = (1..=3u64)
            .map(|v| {
                let at = BUILT + 600 * v;
                let header = |version, valid| Header {
                    kit: KIT.into(),
                    version,
                    signed_at: at,
                    expires: at + valid,
                };
                // Publication 3 changes no target: the same snapshot as 2.
                let sv = v.min(2);
                let targets = vec![
                    (TargetName::Policy, format!("policy {sv}").into_bytes()),
                    (TargetName::Commands, format!("commands {sv}").into_bytes()),
                ];
                let snapshot = Snapshot {
                    header: Header {
                        signed_at: BUILT + 600 * sv,
                        expires: BUILT + 600 * sv + 86_400,
                        ..header(sv, 0)
                    },
                    targets: targets
                        .iter()
                        .map(|(n, b)| (*n, FileMeta::of(sv, b)))
                        .collect(),
                }
                .sign(&snap_key)
                .unwrap();
                let timestamp = Timestamp {
                    header: header(v, 900),
                    snapshot: FileMeta::of(sv, &snapshot),
                }
                .sign(&ts_key)
                .unwrap();
                Publication {
                    timestamp,
                    snapshot,
                    targets,
                }
            })
            .collect();
        Fixture {
            keys: RoleKeys {
                timestamp: ts_key.public_key().clone(),
                snapshot: snap_key.public_key().clone(),
            },
            publications,
        }
    })
}

/// Takes one byte.
fn byte(data: &mut &[u8]) -> Option<u8> {
    let (&b, rest) = data.split_first()?;
    *data = rest;
    Some(b)
}

/// Takes a length byte and that many bytes (times 8, up to 2 KiB).
fn chunk<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = (usize::from(byte(data)?) * 8).min(data.len());
    let (c, rest) = data.split_at(n);
    *data = rest;
    Some(c)
}

fn target(b: u8) -> TargetName {
    TargetName::ALL[usize::from(b) % 3]
}

fuzz_target!(|input: &[u8]| {
    let f = fixture();
    let mut data = input;
    let mut kit = Client::new(KIT, f.keys.clone(), State::new(BUILT)).unwrap();
    let mut now = BUILT;
    let mut floor = *kit.state();
    while let Some(op) = byte(&mut data) {
        let p = |d: &mut &[u8]| byte(d).map(|b| &f.publications[usize::from(b) % 3]);
        match op % 9 {
            0 => {
                let Some(p) = p(&mut data) else { break };
                let _ = kit.verify_timestamp(&p.timestamp, now);
            }
            1 => {
                let Some(p) = p(&mut data) else { break };
                let _ = kit.verify_snapshot(&p.snapshot);
            }
            2 => {
                let (Some(p), Some(t)) = (p(&mut data), byte(&mut data)) else {
                    break;
                };
                if let Some((name, bytes)) = p.targets.iter().find(|(n, _)| *n == target(t)) {
                    let _ = kit.verify_target(*name, bytes);
                }
            }
            3 => {
                let Some(c) = chunk(&mut data) else { break };
                if kit.verify_timestamp(c, now).is_ok() {
                    assert!(
                        f.publications.iter().any(|p| p.timestamp == c),
                        "accepted a timestamp nobody signed"
                    );
                }
            }
            4 => {
                let Some(c) = chunk(&mut data) else { break };
                if kit.verify_snapshot(c).is_ok() {
                    assert!(
                        f.publications.iter().any(|p| p.snapshot == c),
                        "accepted a snapshot nobody signed"
                    );
                }
            }
            5 => {
                let (Some(t), Some(c)) = (byte(&mut data), chunk(&mut data)) else {
                    break;
                };
                if let Ok(v) = kit.verify_target(target(t), c) {
                    assert!(
                        f.publications
                            .iter()
                            .flat_map(|p| &p.targets)
                            .any(|(n, b)| *n == v.name() && b == c),
                        "accepted a target nobody published"
                    );
                }
            }
            6 => {
                let Some(m) = byte(&mut data) else { break };
                let minutes = u64::from(m & 0x7f) * 60;
                now = if m & 0x80 != 0 {
                    now.saturating_sub(minutes)
                } else {
                    now + minutes
                };
            }
            7 => {
                let state = State::decode(&kit.state().encode()).expect("a state decodes");
                kit = Client::new(KIT, f.keys.clone(), state).unwrap();
            }
            _ => {
                let Some(c) = chunk(&mut data) else { break };
                if let Ok(s) = State::decode(c) {
                    assert_eq!(s.encode(), c, "a state with two spellings");
                    // A different state is a different kit: start over.
                    kit = Client::new(KIT, f.keys.clone(), s).unwrap();
                    floor = s;
                    continue;
                }
            }
        }
        let s = *kit.state();
        assert!(s.timestamp.version >= floor.timestamp.version);
        assert!(s.snapshot.version >= floor.snapshot.version);
        assert!(s.trusted_time >= floor.trusted_time);
        for (now, before) in s.targets.iter().zip(floor.targets.iter()) {
            assert!(now.version >= before.version);
        }
        assert_eq!(State::decode(&s.encode()).expect("decodes"), s);
        floor = s;
    }
});
