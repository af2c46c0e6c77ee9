//! The signed policy bundle a kit receives. The first byte picks a mode:
//!
//! - 0: the rest as a whole bundle from the network into
//!   `verify_and_decide`, `verify_reload` and `dialgate_signed::unframe`:
//!   no panic; the fuzzer holds no key, so anything accepted must be the
//!   one valid bundle built here.
//! - 1: the rest as a body, sealed with the pinned key (a buggy or
//!   malicious signer): no panic; an accepted body is within its validity
//!   and lists this kit, yields a registry and directory, and re-signing it
//!   with `policy::sign` gives a bundle that verifies to the same version.
//! - 2: the rest as (offset, xor) pairs applied to the valid bundle:
//!   anything changed is refused.
#![no_main]

use std::sync::OnceLock;

use dialgate_proto::admission::KeyHash;
use dialgate_proto::config::DirectoryEntry;
use dialgate_proto::policy::{
    sign, verify_and_decide, verify_reload, GracePeriod, PolicyBody, PolicyToken, PolicyTrunk,
    SigningKey, State, Switches, Trust,
};
use dialgate_signed::POLICY;
use libfuzzer_sys::fuzz_target;

/// Between the body's `issued_at` and `expires_at`.
const NOW: u64 = 1_700_000_100;

struct Fixture {
    key: SigningKey,
    trust: Trust,
    bundle: Vec<u8>,
}

/// The sample body of the proto crate's policy tests.
fn body() -> PolicyBody {
    PolicyBody {
        version: 7,
        issued_at: 1_700_000_000,
        expires_at: 1_700_604_800,
        kits: vec!["kit-01".into(), "kit-02".into()],
        switches: Switches {
            require_post_quantum: true,
            require_attestation: false,
        },
        tokens: vec![
            PolicyToken {
                name: "alice".into(),
                key: KeyHash([0x11; 32]),
                aliases: vec!["echo".into()],
                revoked: false,
                unattested: true,
            },
            PolicyToken {
                name: "mallory".into(),
                key: KeyHash([0x22; 32]),
                aliases: vec![],
                revoked: true,
                unattested: false,
            },
        ],
        directory: vec![DirectoryEntry {
            alias: "echo".into(),
            uri: "sip:echo@bridge.test".into(),
            trunk: "echo".into(),
            pin: Some("1234#".into()),
        }],
        trunks: vec![PolicyTrunk {
            name: "echo".into(),
            connect: "192.0.2.7:5061".into(),
            host: "bridge.test".into(),
            ca_pem: None,
            pin_sha256: Some("33".repeat(32)),
            tls: "1.2".into(),
            suites: vec!["AES_CM_128_HMAC_SHA1_80".into()],
            webex: true,
            routes: vec!["192.0.2.8:5062".into()],
        }],
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::generate().unwrap();
        let trust = Trust {
            pinned_key: key.public_key().clone(),
            kit_id: "kit-02".into(),
            grace: GracePeriod::NONE,
        };
        let bundle = sign(&body(), &key).unwrap();
        Fixture { key, trust, bundle }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let state = State::new();
    match mode % 3 {
        0 => {
            let _ = dialgate_signed::unframe(&POLICY, rest);
            for r in [
                verify_and_decide(rest, &f.trust, &state, NOW),
                verify_reload(rest, &f.trust, &state, NOW),
            ] {
                if r.is_ok() {
                    assert_eq!(rest, &f.bundle[..], "accepted a bundle nobody signed");
                }
            }
        }
        1 => {
            let Ok(bundle) = dialgate_signed::seal(&POLICY, rest, &f.key) else {
                return;
            };
            let Ok(v) = verify_and_decide(&bundle, &f.trust, &state, NOW) else {
                return;
            };
            let b = v.body();
            assert!(b.version > state.last_applied_version());
            assert!(b.issued_at <= NOW + 300 && NOW < b.expires_at, "{b:?}");
            assert!(b.kits.iter().any(|k| k == "kit-02"));
            let _ = v.registry_and_grants();
            let _ = v.directory();
            let again = sign(b, &f.key).expect("an accepted body signs again");
            let w = verify_and_decide(&again, &f.trust, &state, NOW)
                .expect("a re-signed accepted body verifies");
            assert_eq!(w.version(), v.version());
            assert_eq!(w.directory().len(), v.directory().len());
        }
        _ => {
            let mut bundle = f.bundle.clone();
            for pair in rest.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % bundle.len();
                bundle[at] ^= pair[2];
            }
            if bundle != f.bundle {
                assert!(verify_and_decide(&bundle, &f.trust, &state, NOW).is_err());
                assert!(verify_reload(&bundle, &f.trust, &state, NOW).is_err());
            }
        }
    }
});
