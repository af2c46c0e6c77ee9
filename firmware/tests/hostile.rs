//! Hostile fixtures for firmware bundles (in the manner of the `tough`
//! crate's tests): every way a bundle can be wrong is refused, with the
//! error that names why, and a refused bundle never gets armed.

mod common;

use common::*;
use dialgate_firmware::*;
use dialgate_signed::{seal, Floor, SignedError, SigningKey, FIRMWARE, POLICY};

const SIZES: [usize; 3] = [700, 1300, 5000];

fn policy<'a>(key: &'a SigningKey, floor: u64, installed: u64) -> Policy<'a> {
    Policy {
        key: key.public_key(),
        model: MODEL,
        floor: Floor::at(&FIRMWARE, floor),
        check: Check::Install { installed },
    }
}

/// A bundle around an arbitrary signed body (for manifests the builder
/// refuses to write).
fn raw_bundle(body: &str, key: &SigningKey, images: &[u8]) -> Vec<u8> {
    let sealed = seal(&FIRMWARE, body.as_bytes(), key).unwrap();
    let mut out = format!("dialgate-firmware-bundle v1 {}\n", sealed.len()).into_bytes();
    out.extend_from_slice(&sealed);
    out.extend_from_slice(images);
    out
}

fn prefix_len(b: &[u8]) -> usize {
    let mut r = b;
    read_prefix(&mut r).unwrap().len()
}

#[test]
fn a_good_bundle_verifies_and_round_trips() {
    let key = SigningKey::generate().unwrap();
    let b = bundle(5, 4, SIZES, &key);
    let v = verify_bundle(&b, &policy(&key, 4, 4)).unwrap();
    assert_eq!(v.manifest().version, 5);
    assert_eq!(v.manifest().images_len(), 7000);
    assert_eq!(prefix_len(&b), v.prefix().len());
    // The proof carries no key material in its Debug.
    let kit = kit(&key, layout(128 << 10));
    assert!(!format!("{kit:?}").contains("private"));
    assert!(format!("{key:?}").contains("<private>"));
}

#[test]
fn another_key_is_refused() {
    let key = SigningKey::generate().unwrap();
    let other = SigningKey::generate().unwrap();
    let b = bundle(5, 4, SIZES, &other);
    assert!(matches!(
        verify_bundle(&b, &policy(&key, 4, 4)),
        Err(BundleError::Signature(SignedError::UnknownSigner { .. }))
    ));
}

#[test]
fn another_purpose_is_refused() {
    let key = SigningKey::generate().unwrap();
    let imgs = images(5, SIZES);
    let body = manifest(5, 4, &imgs).to_toml().unwrap();
    let sealed = seal(&POLICY, body.as_bytes(), &key).unwrap();
    let mut b = format!("dialgate-firmware-bundle v1 {}\n", sealed.len()).into_bytes();
    b.extend_from_slice(&sealed);
    b.extend(imgs.concat());
    assert!(matches!(
        verify_bundle(&b, &policy(&key, 4, 4)),
        Err(BundleError::Signature(_))
    ));
}

#[test]
fn another_model_is_refused() {
    let key = SigningKey::generate().unwrap();
    let imgs = images(5, SIZES);
    let mut m = manifest(5, 4, &imgs);
    m.model = "dialgate-rock5".into();
    let b = build_bundle(&m, [&imgs[0], &imgs[1], &imgs[2]], &key).unwrap();
    assert!(matches!(
        verify_bundle(&b, &policy(&key, 4, 4)),
        Err(BundleError::WrongModel { .. })
    ));
}

#[test]
fn a_tampered_manifest_is_refused() {
    let key = SigningKey::generate().unwrap();
    let b = bundle(5, 4, SIZES, &key);
    let text = String::from_utf8_lossy(&b[..prefix_len(&b)]).into_owned();
    // Same length, other version: the signature no longer verifies.
    let at = text.find("version = 5").unwrap() + "version = ".len();
    let mut bad = b.clone();
    bad[at] = b'9';
    assert!(matches!(
        verify_bundle(&bad, &policy(&key, 4, 4)),
        Err(BundleError::Signature(SignedError::BadSignature { .. }))
    ));
    // Every single flipped bit of the prefix is refused.
    for i in 0..prefix_len(&b) {
        let mut bad = b.clone();
        bad[i] ^= 0x01;
        assert!(
            verify_bundle(&bad, &policy(&key, 4, 4)).is_err(),
            "byte {i}"
        );
    }
}

#[test]
fn a_tampered_image_is_refused_by_hash() {
    let key = SigningKey::generate().unwrap();
    let b = bundle(5, 4, SIZES, &key);
    let p = prefix_len(&b);
    for (at, kind) in [
        (p, ImageKind::Kernel),
        (p + 699, ImageKind::Kernel),
        (p + 700, ImageKind::Initramfs),
        (p + 2000 + 4999, ImageKind::Rootfs),
    ] {
        let mut bad = b.clone();
        bad[at] ^= 0x80;
        match verify_bundle(&bad, &policy(&key, 4, 4)) {
            Err(BundleError::ImageHash(k)) => assert_eq!(k, kind),
            other => panic!("byte {at}: {other:?}"),
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let key = SigningKey::generate().unwrap();
    let b = bundle(5, 4, [10, 20, 30], &key);
    for len in 0..b.len() {
        let r = verify_bundle(&b[..len], &policy(&key, 4, 4));
        assert!(
            matches!(
                r,
                Err(BundleError::Truncated | BundleError::Malformed(_) | BundleError::Signature(_))
            ),
            "length {len}: {r:?}"
        );
    }
    assert!(matches!(
        verify_bundle(&b[..b.len() - 1], &policy(&key, 4, 4)),
        Err(BundleError::Truncated)
    ));
}

#[test]
fn trailing_data_is_refused() {
    let key = SigningKey::generate().unwrap();
    let mut b = bundle(5, 4, SIZES, &key);
    b.push(0);
    assert!(matches!(
        verify_bundle(&b, &policy(&key, 4, 4)),
        Err(BundleError::TrailingData)
    ));
}

#[test]
fn image_size_mismatches_and_oversized_images_are_refused() {
    let key = SigningKey::generate().unwrap();
    let imgs = images(5, SIZES);
    let m = manifest(5, 4, &imgs);
    // The builder refuses images that differ from the manifest.
    let mut longer = imgs[0].clone();
    longer.push(1);
    assert!(build_bundle(&m, [&longer, &imgs[1], &imgs[2]], &key).is_err());
    // A signed manifest whose kernel size is one short of the bytes sent:
    // the hash over the announced size fails.
    let mut short = m.clone();
    short.kernel.size -= 1;
    let body = short.to_toml().unwrap();
    let b = raw_bundle(&body, &key, &imgs.concat());
    assert!(matches!(
        verify_bundle(&b, &policy(&key, 4, 4)),
        Err(BundleError::ImageHash(ImageKind::Kernel))
    ));
    // A signed manifest claiming more than 4 GiB.
    let body = m
        .to_toml()
        .unwrap()
        .replace("size = 5000", &format!("size = {}", (4u64 << 30) + 1));
    let b = raw_bundle(&body, &key, &imgs.concat());
    assert!(matches!(
        verify_bundle(&b, &policy(&key, 4, 4)),
        Err(BundleError::BadManifestField {
            field: "rootfs",
            ..
        })
    ));
    // Images that do not fit the slot: refused before anything is written.
    let lay = layout(128 << 10);
    let kit = kit(&key, lay);
    let mut dev = provisioned(&key, lay, Slot::A, 4, [10, 10, 10]);
    let before = dev.clone();
    let big = bundle(5, 4, [10, 10, 64 << 10 | 1], &key);
    let mut buf = [0u8; 512];
    assert!(matches!(
        install(&kit, &mut dev, Slot::A, 4, &mut &big[..], &mut buf),
        Err(UpdateError::DoesNotFit { slot: Slot::B, .. })
    ));
    assert_eq!(dev, before);
}

#[test]
fn rollback_below_or_at_the_floor_is_refused() {
    let key = SigningKey::generate().unwrap();
    for (version, floor) in [(4, 4), (3, 4), (1, u64::MAX)] {
        let b = bundle(version, 0, SIZES, &key);
        assert!(
            matches!(
                verify_bundle(&b, &policy(&key, floor, floor)),
                Err(BundleError::BelowFloor { .. })
            ),
            "{version} over {floor}"
        );
    }
    // At boot the committed slot sits at the floor: accepted there.
    let b = bundle(4, 0, SIZES, &key);
    let mut boot = policy(&key, 4, 4);
    boot.check = Check::Boot;
    assert!(verify_bundle(&b, &boot).is_ok());
    boot.floor = Floor::at(&FIRMWARE, 5);
    assert!(matches!(
        verify_bundle(&b, &boot),
        Err(BundleError::BelowFloor { .. })
    ));
}

#[test]
fn a_kit_older_than_the_bundle_replaces_is_refused() {
    let key = SigningKey::generate().unwrap();
    let b = bundle(9, 7, SIZES, &key);
    assert!(matches!(
        verify_bundle(&b, &policy(&key, 4, 6)),
        Err(BundleError::TooOldToReplace {
            minimum: 7,
            installed: 6,
            ..
        })
    ));
    assert!(verify_bundle(&b, &policy(&key, 4, 7)).is_ok());
}

#[test]
fn duplicate_and_unknown_fields_in_a_signed_manifest_are_refused() {
    let key = SigningKey::generate().unwrap();
    let imgs = images(5, SIZES);
    let good = manifest(5, 4, &imgs).to_toml().unwrap();
    for body in [
        good.replace("version = 5\n", "version = 5\nversion = 6\n"),
        good.replace("[kernel]\n", "[kernel]\nsize = 700\n"),
        format!("{good}\n[kernel]\nsize = 1\n"),
        good.replace("built_at", "dangerous_skip_verity = true\nbuilt_at"),
        format!("{good}\n[bootloader]\nsize = 1\n"),
        good.replace("format = 1", "format = 2"),
    ] {
        let b = raw_bundle(&body, &key, &imgs.concat());
        let r = verify_bundle(&b, &policy(&key, 4, 4));
        assert!(
            matches!(
                r,
                Err(BundleError::ManifestSyntax(_) | BundleError::UnsupportedManifest { .. })
            ),
            "{body}: {r:?}"
        );
    }
}

#[test]
fn malformed_headers_are_refused_before_any_crypto() {
    let key = SigningKey::generate().unwrap();
    let b = bundle(5, 4, SIZES, &key);
    let nl = b.iter().position(|c| *c == b'\n').unwrap();
    let body = &b[nl + 1..];
    let len = prefix_len(&b) - nl - 1;
    for header in [
        format!("dialgate-firmware-bundle v2 {len}\n"),
        format!("dialgate-firmware-bundle v1 0{len}\n"),
        format!("dialgate-firmware-bundle v1 +{len}\n"),
        format!("dialgate-firmware-bundle  v1 {len}\n"),
        format!("dialgate-policy-bundle v1 {len}\n"),
        format!("dialgate-firmware-bundle v1 {}\n", 64 << 10 | 1),
        "dialgate-firmware-bundle v1 0\n".to_string(),
        format!("dialgate-firmware-bundle v1 {len}{}\n", " ".repeat(64)),
        format!("dialgate-firmware-bundle v1 {len}\r\n"),
    ] {
        let mut bad = header.clone().into_bytes();
        bad.extend_from_slice(body);
        let r = verify_bundle(&bad, &policy(&key, 4, 4));
        assert!(
            matches!(r, Err(BundleError::Malformed(_))),
            "{header:?}: {r:?}"
        );
    }
}

#[test]
fn a_tampered_bundle_is_never_armed() {
    let key = SigningKey::generate().unwrap();
    let lay = layout(128 << 10);
    let kit = kit(&key, lay);
    let mut dev = provisioned(&key, lay, Slot::A, 4, SIZES);
    let env_before = lay.env.read(&mut dev).unwrap().env;
    let mut b = bundle(5, 4, SIZES, &key);
    let last = b.len() - 1;
    b[last] ^= 1;
    let mut buf = [0u8; 512];
    assert!(matches!(
        install(&kit, &mut dev, Slot::A, 4, &mut &b[..], &mut buf),
        Err(UpdateError::Bundle(BundleError::ImageHash(
            ImageKind::Rootfs
        )))
    ));
    // The env is unchanged, the bootloader boots A, and B is not a
    // bootable slot (its header was invalidated before writing).
    let env = lay.env.read(&mut dev).unwrap().env;
    assert_eq!(env, env_before);
    assert_eq!(choose_slot(&env).0, Slot::A);
    assert!(verify_booted(&kit, &mut dev, Slot::B, &mut buf).is_err());
    assert!(verify_booted(&kit, &mut dev, Slot::A, &mut buf).is_ok());
}

#[test]
fn installing_during_a_trial_and_committing_when_unhealthy_are_refused() {
    let key = SigningKey::generate().unwrap();
    let lay = layout(128 << 10);
    let kit = kit(&key, lay);
    let mut dev = provisioned(&key, lay, Slot::A, 4, SIZES);
    let mut buf = [0u8; 512];
    let b5 = bundle(5, 4, SIZES, &key);
    install(&kit, &mut dev, Slot::A, 4, &mut &b5[..], &mut buf).unwrap();
    // Committing from the committed slot: nothing on trial.
    assert!(matches!(
        commit(&kit, &mut dev, Slot::A, healthy(), &mut buf),
        Err(UpdateError::NotOnTrial(Slot::A))
    ));
    let stored = lay.env.read(&mut dev).unwrap();
    let (slot, env) = choose_slot(&stored.env);
    lay.env.write(&mut dev, &stored, &env).unwrap();
    assert_eq!(slot, Slot::B);
    let b6 = bundle(6, 4, SIZES, &key);
    assert!(matches!(
        install(&kit, &mut dev, Slot::B, 5, &mut &b6[..], &mut buf),
        Err(UpdateError::TrialInProgress { .. })
    ));
    for health in [
        Health::default(),
        Health {
            self_test: false,
            ..healthy()
        },
        Health {
            management_reachable: false,
            ..healthy()
        },
        Health {
            ready: false,
            ..healthy()
        },
    ] {
        let mut d = dev.clone();
        assert!(matches!(
            commit(&kit, &mut d, Slot::B, health, &mut buf),
            Err(UpdateError::Unhealthy { .. })
        ));
        let env = lay.env.read(&mut d).unwrap().env;
        assert_eq!((env.committed, env.floor), (Slot::A, 4));
        assert_eq!(choose_slot(&env).0, Slot::A);
    }
    let done = commit(&kit, &mut dev, Slot::B, healthy(), &mut buf).unwrap();
    assert_eq!(done.floor, 5);
    // The old release can no longer be installed.
    let b4 = bundle(4, 0, SIZES, &key);
    assert!(matches!(
        install(&kit, &mut dev, Slot::B, 5, &mut &b4[..], &mut buf),
        Err(UpdateError::Bundle(BundleError::BelowFloor { .. }))
    ));
}

#[test]
fn random_mutations_are_refused_without_panicking() {
    let key = SigningKey::generate().unwrap();
    let b = bundle(5, 4, [10, 20, 30], &key);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..3000 {
        let mut bad = b.clone();
        for _ in 0..(i % 4 + 1) {
            if bad.is_empty() {
                break;
            }
            let r = next();
            let at = (r as usize) % bad.len();
            match r >> 62 {
                0 => bad[at] = (r >> 8) as u8,
                1 => {
                    bad.remove(at);
                }
                2 => bad.insert(at, (r >> 8) as u8),
                _ => bad.truncate(at),
            }
        }
        if bad != b {
            assert!(
                verify_bundle(&bad, &policy(&key, 4, 4)).is_err(),
                "mutation {i}"
            );
        }
        let _ = Manifest::parse(&bad);
    }
}
