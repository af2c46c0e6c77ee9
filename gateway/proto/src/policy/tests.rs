//! Hostile fixtures for the policy bundle (STYLE.md 14, after the `tough`
//! crate's tests): every way a bundle can be wrong is refused with the
//! right error, and thousands of mutations of a good bundle are never
//! accepted. Keys are generated at run time; no private key is committed.

use super::body::sample;
use super::*;
use crate::admission::KeyHash;

const DOMAIN: &[u8] = POLICY.domain;

fn signed_message(domain: &'static [u8], body: &[u8]) -> Vec<u8> {
    dialgate_signed::signed_message(&dialgate_signed::Purpose { domain, ..POLICY }, body)
}

fn assemble(body: &[u8], key_id: &KeyId, sig: &[u8]) -> Vec<u8> {
    dialgate_signed::frame(&POLICY, body, key_id, sig)
}

/// Between the sample's `issued_at` and `expires_at`.
const NOW: u64 = 1_700_000_100;

struct Fixture {
    key: SigningKey,
    trust: Trust,
    bundle: Vec<u8>,
}

fn fixture() -> Fixture {
    let key = SigningKey::generate().unwrap();
    let trust = Trust {
        pinned_key: key.public_key().clone(),
        kit_id: "kit-02".into(),
        grace: GracePeriod::NONE,
    };
    let bundle = sign(&sample(), &key).unwrap();
    Fixture { key, trust, bundle }
}

impl Fixture {
    fn check(&self, bytes: &[u8]) -> Result<Verified, PolicyError> {
        verify_and_decide(bytes, &self.trust, &State::new(), NOW)
    }

    fn sign_body(&self, body: &PolicyBody) -> Vec<u8> {
        sign(body, &self.key).unwrap()
    }
}

/// Signs arbitrary body bytes, bypassing `sign`'s checks: what a buggy or
/// malicious signer holding the real key could produce.
fn sign_raw(key: &SigningKey, domain: &'static [u8], body: &[u8]) -> Vec<u8> {
    let sig = key.sign(&signed_message(domain, body)).unwrap();
    assemble(body, &key.public_key().id(), &sig)
}

fn body_range(bundle: &[u8]) -> std::ops::Range<usize> {
    let start = bundle.iter().position(|&b| b == b'\n').unwrap() + 1;
    let end = bundle.len()
        - bundle
            .iter()
            .rev()
            .skip(1)
            .position(|&b| b == b'\n')
            .unwrap()
        - 1;
    start..end
}

#[test]
fn a_valid_bundle_is_accepted_and_yields_the_registry_and_directory() {
    let f = fixture();
    let v = f.check(&f.bundle).unwrap();
    assert_eq!(v.version(), 7);
    assert_eq!(v.signer(), f.key.public_key().id());
    assert!(!v.is_reload());
    assert_eq!(v.freshness(NOW), Freshness::Valid);
    assert!(v.body().switches.require_post_quantum);

    let (registry, grants) = v.registry_and_grants();
    assert_eq!(registry.len(), 2);
    assert_eq!(registry.active(&KeyHash([0x11; 32])).unwrap().name, "alice");
    assert!(
        registry.active(&KeyHash([0x22; 32])).is_none(),
        "mallory is revoked"
    );
    assert!(grants["alice"].contains("echo"));
    assert!(
        !grants.contains_key("mallory"),
        "a revoked entry carries no grants"
    );
    let directory = v.directory();
    assert_eq!(directory["echo"].pin.as_deref(), Some("1234#"));
    assert_eq!(directory["echo"].trunk, "echo");

    let debug = format!("{v:?}");
    assert!(!debug.contains("1234"), "PIN in Debug: {debug}");
    assert!(debug.contains("alice"));

    // The file is what the module documentation says it is.
    let text = String::from_utf8(f.bundle.clone()).unwrap();
    let body = &f.bundle[body_range(&f.bundle)];
    assert!(text.starts_with(&format!("dialgate-policy-bundle v1 {}\n", body.len())));
    let last = text.lines().last().unwrap();
    assert!(last.starts_with(&format!(
        "signature ecdsa-p256-sha256 {} ",
        f.key.public_key().id().to_hex()
    )));
}

#[test]
fn the_signed_message_is_domain_then_body_and_verifies_with_plain_ecdsa() {
    let f = fixture();
    let env = dialgate_signed::unframe(&POLICY, &f.bundle).unwrap();
    let mut msg = b"dialgate-policy-v1\0".to_vec();
    msg.extend_from_slice(env.body);
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        f.key.public_key().spki_der(),
    )
    .verify(&msg, &env.signature)
    .unwrap();
}

#[test]
fn another_key_is_an_unknown_signer() {
    let f = fixture();
    let other = SigningKey::generate().unwrap();
    let e = f.check(&sign(&sample(), &other).unwrap()).unwrap_err();
    let PolicyError::UnknownSigner { signer, pinned } = e else {
        panic!("{e:?}")
    };
    assert_eq!(signer, other.public_key().id());
    assert_eq!(pinned, f.key.public_key().id());
}

#[test]
fn another_key_claiming_the_pinned_id_is_a_bad_signature() {
    let f = fixture();
    let other = SigningKey::generate().unwrap();
    let body = body::to_toml(&sample()).unwrap();
    let sig = other
        .sign(&signed_message(DOMAIN, body.as_bytes()))
        .unwrap();
    let forged = assemble(body.as_bytes(), &f.key.public_key().id(), &sig);
    assert!(matches!(f.check(&forged), Err(PolicyError::BadSignature)));
}

#[test]
fn any_changed_body_byte_is_a_bad_signature() {
    let f = fixture();
    for i in body_range(&f.bundle) {
        for mask in [0x01, 0x20, 0x80] {
            let mut b = f.bundle.clone();
            b[i] ^= mask;
            assert!(
                matches!(f.check(&b), Err(PolicyError::BadSignature)),
                "byte {i} ^ {mask:#x}"
            );
        }
    }
}

#[test]
fn every_truncation_is_truncated() {
    let f = fixture();
    for cut in 0..f.bundle.len() {
        let e = f.check(&f.bundle[..cut]).unwrap_err();
        assert!(matches!(e, PolicyError::Truncated), "cut at {cut}: {e:?}");
    }
}

#[test]
fn a_second_signature_is_refused_whoever_made_it() {
    let f = fixture();
    let sig_line_start = body_range(&f.bundle).end;
    let line = f.bundle[sig_line_start..].to_vec();

    let mut copied = f.bundle.clone();
    copied.extend_from_slice(&line);
    // A second, different but valid signature by the same key (ECDSA
    // signatures are randomized).
    let resigned = sign(&sample(), &f.key).unwrap();
    let mut two_of_ours = f.bundle.clone();
    two_of_ours.extend_from_slice(&resigned[body_range(&resigned).end..]);
    // A second signature by someone else, first or last.
    let other = SigningKey::generate().unwrap();
    let theirs = sign(&sample(), &other).unwrap();
    let their_line = &theirs[body_range(&theirs).end..];
    let mut theirs_last = f.bundle.clone();
    theirs_last.extend_from_slice(their_line);
    let mut theirs_first = f.bundle[..sig_line_start].to_vec();
    theirs_first.extend_from_slice(their_line);
    theirs_first.extend_from_slice(&line);

    for b in [copied, two_of_ours, theirs_last, theirs_first] {
        assert!(matches!(f.check(&b), Err(PolicyError::DuplicateSignature)));
    }
}

#[test]
fn a_signature_made_for_another_purpose_does_not_verify() {
    let f = fixture();
    let body = body::to_toml(&sample()).unwrap();
    for domain in [
        &b""[..],
        b"dialgate-policy-v1",
        b"dialgate-policy-v2\0",
        b"dialgate-command-v1\0",
        b"dialgate-firmware-v1\0",
        b"dialgate-policy-v1\0\0",
    ] {
        let b = sign_raw(&f.key, domain, body.as_bytes());
        assert!(
            matches!(f.check(&b), Err(PolicyError::BadSignature)),
            "domain {domain:?}"
        );
    }
    // The right domain, for the control.
    f.check(&sign_raw(&f.key, DOMAIN, body.as_bytes())).unwrap();
}

#[test]
fn older_and_equal_versions_are_rollbacks() {
    let f = fixture();
    let mut state = State::new();
    assert!(state.record(&f.check(&f.bundle).unwrap()));
    assert_eq!(state.last_applied_version(), 7);

    let mut older = sample();
    older.version = 6;
    let e = verify_and_decide(&f.sign_body(&older), &f.trust, &state, NOW).unwrap_err();
    assert!(
        matches!(e, PolicyError::RolledBack { have: 7, got: 6 }),
        "{e:?}"
    );
    // Equal: the same bundle replayed, and a different body at version 7.
    let e = verify_and_decide(&f.bundle, &f.trust, &state, NOW).unwrap_err();
    assert!(
        matches!(e, PolicyError::RolledBack { have: 7, got: 7 }),
        "{e:?}"
    );
    let mut other = sample();
    other.tokens[1].revoked = false;
    let e = verify_and_decide(&f.sign_body(&other), &f.trust, &state, NOW).unwrap_err();
    assert!(
        matches!(e, PolicyError::RolledBack { have: 7, got: 7 }),
        "{e:?}"
    );

    let mut newer = sample();
    newer.version = 8;
    let v = verify_and_decide(&f.sign_body(&newer), &f.trust, &state, NOW).unwrap();
    assert!(state.record(&v));
    // Recording never lowers the floor.
    let mut s = State::with_floor(100);
    assert!(!s.record(&v));
    assert_eq!(s.last_applied_version(), 100);
}

#[test]
fn at_start_the_applied_bundle_is_accepted_again_and_nothing_else() {
    let f = fixture();
    let mut state = State::new();
    state.record(&f.check(&f.bundle).unwrap());
    // The state survives a restart through its encoding.
    let state = State::decode(&state.encode()).unwrap();

    let v = verify_reload(&f.bundle, &f.trust, &state, NOW).unwrap();
    assert!(v.is_reload());
    // The same body signed again (a new signature) is the same policy.
    let resigned = f.sign_body(&sample());
    assert_ne!(resigned, f.bundle);
    assert!(verify_reload(&resigned, &f.trust, &state, NOW).is_ok());
    // Another body with the applied version is a rollback even at start.
    let mut other = sample();
    other.tokens[1].revoked = false;
    let e = verify_reload(&f.sign_body(&other), &f.trust, &state, NOW).unwrap_err();
    assert!(matches!(e, PolicyError::RolledBack { .. }), "{e:?}");
    // A floor without a digest accepts no reload.
    let e = verify_reload(&f.bundle, &f.trust, &State::with_floor(7), NOW).unwrap_err();
    assert!(matches!(e, PolicyError::RolledBack { .. }), "{e:?}");
    // A newer one is accepted as new; an expired applied one is not kept.
    let mut newer = sample();
    newer.version = 9;
    assert!(!verify_reload(&f.sign_body(&newer), &f.trust, &state, NOW)
        .unwrap()
        .is_reload());
    let e = verify_reload(&f.bundle, &f.trust, &state, sample().expires_at).unwrap_err();
    assert!(matches!(e, PolicyError::Expired { .. }), "{e:?}");
}

#[test]
fn expired_is_refused_and_grace_is_honoured_where_configured() {
    let f = fixture();
    let exp = sample().expires_at;
    assert!(f
        .check(&f.bundle)
        .is_ok_and(|v| v.freshness(exp - 1) == Freshness::Valid));
    for now in [exp, exp + 1, exp + 3600, u64::MAX] {
        let e = verify_and_decide(&f.bundle, &f.trust, &State::new(), now).unwrap_err();
        assert!(matches!(e, PolicyError::Expired { expires_at, .. } if expires_at == exp));
    }

    let mut trust = f.trust.clone();
    trust.grace = GracePeriod::from_secs(3600).unwrap();
    let v = verify_and_decide(&f.bundle, &trust, &State::new(), exp + 10).unwrap();
    assert_eq!(
        v.freshness(exp + 10),
        Freshness::InGrace {
            refuse_from: exp + 3600
        }
    );
    assert_eq!(v.freshness(exp + 3600), Freshness::Expired);
    assert_eq!(v.refuse_calls_from(), exp + 3600);
    let e = verify_and_decide(&f.bundle, &trust, &State::new(), exp + 3600).unwrap_err();
    assert!(matches!(e, PolicyError::Expired { .. }));

    assert!(matches!(
        GracePeriod::from_secs(GracePeriod::MAX_SECS + 1),
        Err(PolicyError::GraceTooLong { .. })
    ));
    assert_eq!(GracePeriod::default(), GracePeriod::NONE);
}

#[test]
fn issued_in_the_future_is_refused_beyond_the_skew() {
    let f = fixture();
    let issued = sample().issued_at;
    let before = issued - MAX_CLOCK_SKEW_SECS;
    assert!(verify_and_decide(&f.bundle, &f.trust, &State::new(), before).is_ok());
    for now in [before - 1, 0] {
        let e = verify_and_decide(&f.bundle, &f.trust, &State::new(), now).unwrap_err();
        assert!(
            matches!(e, PolicyError::NotYetValid { issued_at, .. } if issued_at == issued),
            "{e:?}"
        );
    }
}

#[test]
fn a_bundle_for_other_kits_is_refused() {
    let f = fixture();
    for kit in ["kit-03", "kit-0", "KIT-02", "kit-02 ", ""] {
        let mut trust = f.trust.clone();
        trust.kit_id = kit.into();
        let e = verify_and_decide(&f.bundle, &trust, &State::new(), NOW).unwrap_err();
        assert!(
            matches!(e, PolicyError::NotForThisKit { .. }),
            "{kit:?}: {e:?}"
        );
    }
}

#[test]
fn oversized_bundles_and_too_many_entries_are_refused() {
    let f = fixture();
    let mut big = f.bundle.clone();
    big.resize(MAX_BUNDLE_BYTES + 1, b'\n');
    assert!(matches!(f.check(&big), Err(PolicyError::TooLarge { .. })));
    let mut huge_header = b"dialgate-policy-bundle v1 9999999\n".to_vec();
    huge_header.extend_from_slice(&f.bundle);
    assert!(matches!(
        f.check(&huge_header),
        Err(PolicyError::TooLarge {
            size: 9_999_999,
            ..
        })
    ));

    // Signed by the real key, but more tokens than a kit holds.
    let mut text = body::to_toml(&PolicyBody {
        tokens: vec![],
        directory: vec![],
        ..sample()
    })
    .unwrap();
    for i in 0..=body::MAX_TOKENS {
        text.push_str(&format!(
            "[[token]]\nname = \"t{i}\"\nkey_sha256 = \"{:064x}\"\naliases = []\nrevoked = false\nunattested = false\n",
            i
        ));
    }
    let e = f
        .check(&sign_raw(&f.key, DOMAIN, text.as_bytes()))
        .unwrap_err();
    assert!(
        matches!(e, PolicyError::TooManyEntries { what: "tokens", .. }),
        "{e:?}"
    );

    // And the signer refuses to make what a kit would refuse.
    let mut b = sample();
    b.directory = (0..1100)
        .map(|i| crate::config::DirectoryEntry {
            alias: format!("a{i}"),
            uri: format!("sip:{}@bridge.test", "m".repeat(1000)),
            trunk: "echo".into(),
            pin: None,
        })
        .collect();
    b.tokens[0].aliases = vec!["a1".into()];
    assert!(matches!(
        sign(&b, &f.key),
        Err(PolicyError::TooLarge { .. })
    ));
    b.tokens = (0..=body::MAX_TOKENS)
        .map(|i| PolicyToken {
            name: format!("t{i}"),
            key: KeyHash([0; 32]),
            aliases: vec![],
            revoked: false,
            unattested: false,
        })
        .collect();
    assert!(matches!(
        sign(&b, &f.key),
        Err(PolicyError::TooManyEntries { .. })
    ));
}

#[test]
fn signed_but_wrong_content_is_refused() {
    let f = fixture();
    let good = body::to_toml(&sample()).unwrap();
    // An unknown field (a newer dialgatectl?), a non-UTF-8 body, an
    // unattested active token under require_attestation, a duplicate.
    let unknown = format!("{good}\n[extra]\nx = 1\n");
    let e = f
        .check(&sign_raw(&f.key, DOMAIN, unknown.as_bytes()))
        .unwrap_err();
    assert!(matches!(e, PolicyError::BodySyntax { .. }), "{e:?}");

    let mut not_utf8 = good.clone().into_bytes();
    not_utf8.push(0xff);
    let e = f.check(&sign_raw(&f.key, DOMAIN, &not_utf8)).unwrap_err();
    assert!(matches!(e, PolicyError::Malformed { .. }), "{e:?}");

    let unattested = good.replace("require_attestation = false", "require_attestation = true");
    assert_ne!(unattested, good);
    let e = f
        .check(&sign_raw(&f.key, DOMAIN, unattested.as_bytes()))
        .unwrap_err();
    assert!(
        matches!(&e, PolicyError::Invalid { field, .. } if field == "token.alice.unattested"),
        "{e:?}"
    );
    let mut b = sample();
    b.switches.require_attestation = true;
    assert!(matches!(sign(&b, &f.key), Err(PolicyError::Invalid { .. })));

    let duplicate_key = good.replace(&"22".repeat(32), &"11".repeat(32));
    let e = f
        .check(&sign_raw(&f.key, DOMAIN, duplicate_key.as_bytes()))
        .unwrap_err();
    assert!(e.to_string().contains("listed twice"), "{e}");

    // A TOML body that means the same but is spelled differently is a
    // different body: it is the signed bytes that count.
    let respaced = good.replace("version = 7", "version =  7");
    assert_ne!(respaced, good);
    let mut b = Vec::new();
    b.extend_from_slice(format!("dialgate-policy-bundle v1 {}\n", respaced.len()).as_bytes());
    b.extend_from_slice(respaced.as_bytes());
    b.extend_from_slice(&f.bundle[body_range(&f.bundle).end..]);
    assert!(matches!(f.check(&b), Err(PolicyError::BadSignature)));
}

#[test]
fn another_format_version_is_unsupported() {
    let f = fixture();
    let text = String::from_utf8(f.bundle.clone()).unwrap();
    let v2 = text.replacen("bundle v1 ", "bundle v2 ", 1);
    assert!(matches!(
        f.check(v2.as_bytes()),
        Err(PolicyError::UnsupportedFormat { found: 2 })
    ));
}

/// A small deterministic generator: the same mutations on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }
}

#[test]
fn garbage_is_refused_without_panic() {
    let f = fixture();
    let mut rng = XorShift(0x0dd_ba11);
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 100],
        b"\n".to_vec(),
        b"{\"version\": 99}".to_vec(),
        b"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n".to_vec(),
        b"dialgate-policy-bundle v1 0\nsignature \n".to_vec(),
        b"dialgate-policy-bundle v18446744073709551616 1\nx".to_vec(),
        b"dialgate-policy-bundle v1 18446744073709551616\nx".to_vec(),
        b"dialgate-policy-bundle \xff\xfe 1\nx".to_vec(),
        f.bundle[body_range(&f.bundle)].to_vec(),
        f.bundle.repeat(2),
    ];
    for len in [1, 10, 100, 1000, 100_000] {
        inputs.push((0..len).map(|_| rng.next() as u8).collect());
    }
    for b in inputs {
        assert!(f.check(&b).is_err(), "{:?}", String::from_utf8_lossy(&b));
    }
}

#[test]
fn thousands_of_mutations_are_never_accepted() {
    let f = fixture();
    let original = &f.bundle;
    let tail = body_range(original).end;
    let mut rng = XorShift(0x5eed_1234_5678_9abc);
    let mut refused = 0;
    for round in 0..4000 {
        let mut b = original.clone();
        // Half the mutations aim at what is read before verification: the
        // header and the signature line.
        let pos = |rng: &mut XorShift, len: usize| match rng.below(4) {
            0 => rng.below(40.min(len)),
            1 => (tail + rng.below(len.saturating_sub(tail))).min(len.saturating_sub(1)),
            _ => rng.below(len),
        };
        for _ in 0..=rng.below(3) {
            let len = b.len();
            if len == 0 {
                break;
            }
            let at = pos(&mut rng, len);
            match rng.below(8) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = rng.next() as u8,
                2 => {
                    b.remove(at);
                }
                3 => b.insert(at, rng.next() as u8),
                4 => b.truncate(at),
                5 => {
                    let end = (at + 1 + rng.below(80)).min(len);
                    let piece = b[at..end].to_vec();
                    let to = rng.below(b.len() + 1);
                    b.splice(to..to, piece);
                }
                6 => b.swap(at, rng.below(len)),
                _ => b[at] = b" \n=\"[]0123456789vAaf+/#"[rng.below(23)],
            }
        }
        match f.check(&b) {
            Ok(_) => assert_eq!(&b, original, "round {round}: a mutated bundle was accepted"),
            Err(_) => refused += 1,
        }
    }
    assert!(
        refused > 3500,
        "most mutations change the bundle: {refused}"
    );
}

#[test]
fn errors_say_what_to_do_and_never_show_the_pin() {
    let f = fixture();
    let errors = [
        f.check(&f.bundle[..10]).unwrap_err(),
        f.check(b"hello\n").unwrap_err(),
        f.check(&sign(&sample(), &SigningKey::generate().unwrap()).unwrap())
            .unwrap_err(),
        verify_and_decide(&f.bundle, &f.trust, &State::with_floor(9), NOW).unwrap_err(),
        verify_and_decide(&f.bundle, &f.trust, &State::new(), u64::MAX).unwrap_err(),
        State::decode(b"x").unwrap_err(),
    ];
    for e in errors {
        let s = e.to_string();
        assert!(s.contains("refused") || s.contains("restore"), "{s}");
        assert!(!s.contains("1234"), "{s}");
    }
}

#[test]
fn trunk_settings_are_checked_by_signer_and_kit() {
    let key = SigningKey::generate().unwrap();
    type Spoil = fn(&mut PolicyTrunk);
    let cases: [(&str, Spoil); 8] = [
        ("trunk.echo.connect", |t| t.connect = "bridge:5061".into()),
        ("trunk.echo", |t| t.ca_pem = Some("x".into())),
        ("trunk.echo", |t| t.pin_sha256 = None),
        ("trunk.echo.pin_sha256", |t| {
            t.pin_sha256 = Some("12".into())
        }),
        ("trunk.echo.tls", |t| t.tls = "1.1".into()),
        ("trunk.echo.suites", |t| t.suites.clear()),
        ("trunk.echo.suites", |t| {
            t.suites = vec!["NULL_HMAC_SHA1_80".into()]
        }),
        ("trunk.echo.host", |t| t.host = "a b".into()),
    ];
    for (field, spoil) in cases {
        let mut body = sample();
        spoil(&mut body.trunks[0]);
        match sign(&body, &key) {
            Err(PolicyError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // A CA given inline works; twice the same trunk does not.
    let mut body = sample();
    body.trunks[0].pin_sha256 = None;
    body.trunks[0].ca_pem = Some(include_str!("../../tests/data/bridge-ca.pem").to_string());
    let v = verify_and_decide(
        &sign(&body, &key).unwrap(),
        &Trust {
            pinned_key: key.public_key().clone(),
            kit_id: "kit-01".into(),
            grace: GracePeriod::NONE,
        },
        &State::new(),
        NOW,
    )
    .unwrap();
    assert!(v.body().trunks[0].ca_pem.is_some());
    body.trunks.push(body.trunks[0].clone());
    assert!(sign(&body, &key).is_err());
}
