//! The real public chain (gateway/tests/data/attestation, see SOURCE.md)
//! and hostile variants made with rcgen in Yubico's shape.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};

use super::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/attestation");

fn pem_file(name: &str) -> CertificateDer<'static> {
    let text = std::fs::read_to_string(format!("{DATA}/{name}")).unwrap();
    pem_certificates(&text).remove(0)
}

fn public_key_der(name: &str) -> Vec<u8> {
    use base64::Engine;
    let text = std::fs::read_to_string(format!("{DATA}/{name}")).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// 2026-01-01, inside every validity period used here.
fn at_2026() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_767_225_600))
}

struct Real {
    root: CertificateDer<'static>,
    f9: CertificateDer<'static>,
    slot: [CertificateDer<'static>; 2],
    spki: Vec<u8>,
}

fn real() -> Real {
    Real {
        root: pem_file("yubico-piv-root-ca.pem"),
        f9: pem_file("yubikey-f9-intermediate.pem"),
        slot: [
            pem_file("yubikey-9c-attestation-1.pem"),
            pem_file("yubikey-9c-attestation-2.pem"),
        ],
        spki: public_key_der("yubikey-9c-public-key.pem"),
    }
}

#[test]
fn the_bundled_root_is_the_published_one() {
    assert_eq!(yubico_piv_root(), real().root);
    let der = real().root;
    let root = Certificate::parse(der.as_ref()).unwrap();
    assert_eq!(root.common_name(), Some("Yubico PIV Root CA Serial 263751"));
}

#[test]
fn a_real_yubikey_attestation_verifies_and_decodes() {
    let r = real();
    for slot in &r.slot {
        let a = verify_piv(
            slot,
            std::slice::from_ref(&r.f9),
            &[yubico_piv_root()],
            &r.spki,
            PivSlot::new(0x9c),
            at_2026(),
        )
        .unwrap();
        assert_eq!(
            a,
            PivAttestation {
                slot: PivSlot(0x9c),
                device_serial: 13_078_782,
                firmware: (5, 2, 6),
                pin_policy: PinPolicy::Always,
                touch_policy: TouchPolicy::Always,
            }
        );
        assert_eq!(a.slot.to_string(), "9c");
    }
}

#[test]
fn the_real_chain_is_refused_when_anything_is_off() {
    let r = real();
    let verify =
        |slot: &CertificateDer<'_>,
         inter: &[CertificateDer<'_>],
         roots: &[CertificateDer<'_>],
         spki: &[u8],
         expected: Option<PivSlot>,
         now: UnixTime| verify_piv(slot, inter, roots, spki, expected, now);
    let f9 = std::slice::from_ref(&r.f9);
    let root = std::slice::from_ref(&r.root);

    // Wrong slot: the key is said to be in 9a.
    let e = verify(&r.slot[0], f9, root, &r.spki, PivSlot::new(0x9a), at_2026()).unwrap_err();
    assert!(
        e.to_string().contains("slot 9c, the key is in slot 9a"),
        "{e}"
    );
    // Key mismatch: another key is being enrolled.
    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let e = verify(
        &r.slot[0],
        f9,
        root,
        &other.public_key_der(),
        None,
        at_2026(),
    )
    .unwrap_err();
    assert!(matches!(e, AttestationError::KeyMismatch), "{e}");
    // No intermediate: the slot certificate alone does not reach the root.
    let e = verify(&r.slot[0], &[], root, &r.spki, None, at_2026()).unwrap_err();
    assert!(matches!(e, AttestationError::Chain(_)), "{e}");
    // Before the chain's validity (2016-03-14).
    let e = verify(
        &r.slot[0],
        f9,
        root,
        &r.spki,
        None,
        UnixTime::since_unix_epoch(Duration::from_secs(1_400_000_000)),
    )
    .unwrap_err();
    assert!(matches!(e, AttestationError::Chain(_)), "{e}");
    // Another root: a self-made CA of the same name.
    let fake = fake_chain(&Options::default());
    let e = verify(
        &r.slot[0],
        f9,
        std::slice::from_ref(&fake.root),
        &r.spki,
        None,
        at_2026(),
    )
    .unwrap_err();
    assert!(matches!(e, AttestationError::Chain(_)), "{e}");
    // Every byte of the slot certificate's signature, and of its serial
    // number extension, matters.
    let der = r.slot[0].as_ref().to_vec();
    let serial_at = der
        .windows(4)
        .position(|w| w == [0x00, 0xc7, 0x90, 0xfe])
        .unwrap();
    for at in [der.len() - 1, der.len() - 100, serial_at + 3] {
        let mut tampered = der.clone();
        tampered[at] ^= 0x01;
        let e = verify(
            &CertificateDer::from(tampered),
            f9,
            root,
            &r.spki,
            None,
            at_2026(),
        )
        .unwrap_err();
        assert!(matches!(e, AttestationError::Chain(_)), "byte {at}: {e}");
    }
    // The f9 certificate presented as the slot attestation: a CA is no
    // end entity.
    let e = verify(&r.f9, &[], root, &r.spki, None, at_2026()).unwrap_err();
    assert!(e.to_string().contains("CaUsedAsEndEntity"), "{e}");
}

/// How to shape a fake Yubico-style chain.
struct Options {
    slot_cn: &'static str,
    slot_expired: bool,
    f9_is_ca: bool,
    firmware: Option<Vec<u8>>,
    serial: Option<Vec<u8>>,
    policy: Option<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            slot_cn: "YubiKey PIV Attestation 9a",
            slot_expired: false,
            f9_is_ca: true,
            firmware: Some(vec![5, 4, 3]),
            serial: Some(vec![0x02, 0x04, 0x00, 0xbc, 0x61, 0x4e]),
            policy: Some(vec![2, 3]),
        }
    }
}

struct Fake {
    root: CertificateDer<'static>,
    f9: CertificateDer<'static>,
    slot: CertificateDer<'static>,
    spki: Vec<u8>,
}

fn yubico_ext(last: u64, content: &Option<Vec<u8>>) -> Option<CustomExtension> {
    content
        .clone()
        .map(|c| CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 41482, 3, last], c))
}

fn params(cn: &str, ca: IsCa, expired: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = ca;
    let now = time::OffsetDateTime::now_utc();
    if expired {
        p.not_before = now - time::Duration::days(30);
        p.not_after = now - time::Duration::days(1);
    } else {
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(3650);
    }
    p
}

fn fake_chain(o: &Options) -> Fake {
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let root = params(
        "Yubico PIV Root CA Serial 263751",
        IsCa::Ca(BasicConstraints::Constrained(1)),
        false,
    )
    .self_signed(&root_key)
    .unwrap();
    let f9_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let f9_ca = if o.f9_is_ca {
        IsCa::Ca(BasicConstraints::Constrained(0))
    } else {
        IsCa::NoCa
    };
    let f9 = params("Yubico PIV Attestation", f9_ca, false)
        .signed_by(&f9_key, &root, &root_key)
        .unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = params(o.slot_cn, IsCa::NoCa, o.slot_expired);
    p.custom_extensions = [
        yubico_ext(3, &o.firmware),
        yubico_ext(7, &o.serial),
        yubico_ext(8, &o.policy),
    ]
    .into_iter()
    .flatten()
    .collect();
    let slot = p.signed_by(&key, &f9, &f9_key).unwrap();
    Fake {
        root: root.der().clone(),
        f9: f9.der().clone(),
        slot: slot.der().clone(),
        spki: key.public_key_der(),
    }
}

fn verify_fake(f: &Fake, expected: Option<PivSlot>) -> Result<PivAttestation, AttestationError> {
    verify_piv(
        &f.slot,
        std::slice::from_ref(&f.f9),
        std::slice::from_ref(&f.root),
        &f.spki,
        expected,
        UnixTime::now(),
    )
}

#[test]
fn a_well_formed_fake_chain_verifies_against_its_own_root_only() {
    let f = fake_chain(&Options::default());
    let a = verify_fake(&f, Some(PivSlot::AUTHENTICATION)).unwrap();
    assert_eq!(a.device_serial, 12_345_678);
    assert_eq!(a.firmware, (5, 4, 3));
    assert_eq!(
        (a.pin_policy, a.touch_policy),
        (PinPolicy::Once, TouchPolicy::Cached)
    );
    // Not against Yubico's.
    let e = verify_piv(
        &f.slot,
        std::slice::from_ref(&f.f9),
        &[yubico_piv_root()],
        &f.spki,
        None,
        UnixTime::now(),
    )
    .unwrap_err();
    assert!(matches!(e, AttestationError::Chain(_)), "{e}");
}

#[test]
fn hostile_fake_chains_are_refused() {
    let cases: [(Options, &str); 8] = [
        (
            Options {
                slot_expired: true,
                ..Options::default()
            },
            "CertExpired",
        ),
        (
            Options {
                f9_is_ca: false,
                ..Options::default()
            },
            "does not verify",
        ),
        (
            Options {
                slot_cn: "YubiKey PIV Attestation 9c",
                ..Options::default()
            },
            "slot 9c, the key is in slot 9a",
        ),
        (
            Options {
                slot_cn: "YubiKey PIV Attestation f9",
                ..Options::default()
            },
            "not a YubiKey PIV slot attestation",
        ),
        (
            Options {
                firmware: None,
                ..Options::default()
            },
            "41482.3.3",
        ),
        (
            Options {
                serial: Some(vec![0x02, 0x01, 0x80]),
                ..Options::default()
            },
            "41482.3.7",
        ),
        (
            Options {
                policy: Some(vec![1]),
                ..Options::default()
            },
            "41482.3.8",
        ),
        (
            Options {
                serial: Some(vec![0x02, 0x05, 0x01, 0, 0, 0, 0]),
                ..Options::default()
            },
            "41482.3.7",
        ),
    ];
    for (o, needle) in cases {
        let f = fake_chain(&o);
        let e = verify_fake(&f, Some(PivSlot::AUTHENTICATION)).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn ykcs11_ids_map_to_slots() {
    assert_eq!(PivSlot::from_ykcs11_id(&[1]), Some(PivSlot(0x9a)));
    assert_eq!(PivSlot::from_ykcs11_id(&[4]), Some(PivSlot(0x9e)));
    assert_eq!(PivSlot::from_ykcs11_id(&[5]), Some(PivSlot(0x82)));
    assert_eq!(PivSlot::from_ykcs11_id(&[24]), Some(PivSlot(0x95)));
    assert_eq!(PivSlot::from_ykcs11_id(&[25]), None);
    assert_eq!(PivSlot::from_ykcs11_id(&[1, 2]), None);
    assert!(PivSlot::new(0xf9).is_none());
}
