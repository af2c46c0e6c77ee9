//! YubiKey PIV attestation as `dialgatectl token enroll` reads it
//! (`dialgate_hq::enrol::attest::verify_piv`). Random bytes stop at the
//! chain check, so the harness also makes slot certificates in Yubico's
//! shape with rcgen, signed by a root it trusts, whose common name and
//! Yubico extensions (firmware, serial number, PIN/touch policy) carry
//! the fuzzer's bytes: that reaches the slot, key and extension decoding
//! behind the signature. Asserts: no panic; arbitrary bytes as a slot
//! certificate never verify; an accepted attestation had a firmware of
//! three octets, a policy of two, the enrolled key and the expected slot.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use dialgate_hq::enrol::attest::{verify_piv, PivSlot};
use libfuzzer_sys::fuzz_target;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, UnixTime};

const YUBICO: [u64; 9] = [1, 3, 6, 1, 4, 1, 41482, 3, 0];

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    der: CertificateDer<'static>,
    slot_key: KeyPair,
    other_key: KeyPair,
}

static CA: LazyLock<Ca> = LazyLock::new(|| {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name
        .push(DnType::CommonName, "Fuzz PIV Root CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).expect("root");
    let der = cert.der().clone();
    Ca {
        cert,
        key,
        der,
        slot_key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key"),
        other_key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key"),
    }
});

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    cn_suffix: &'a str,
    firmware: Option<&'a [u8]>,
    serial: Option<&'a [u8]>,
    policy: Option<&'a [u8]>,
    enrolled_is_slot_key: bool,
    expected_slot: Option<u8>,
    raw: &'a [u8],
}

fn ext(last: u64, content: &[u8]) -> CustomExtension {
    let mut oid = YUBICO;
    oid[8] = last;
    CustomExtension::from_oid_content(&oid, content.to_vec())
}

fuzz_target!(|input: Input| {
    let ca = &*CA;
    let now = UnixTime::now();
    let roots = [ca.der.clone()];
    let spki = |k: &KeyPair| k.public_key_der().to_vec();
    let expected = input.expected_slot.and_then(PivSlot::new);

    // Bytes as a slot certificate: never an attestation.
    let raw = CertificateDer::from(input.raw.to_vec());
    assert!(verify_piv(&raw, &[], &roots, &spki(&ca.slot_key), expected, now).is_err());

    let Ok(mut p) = CertificateParams::new(Vec::<String>::new()) else {
        return;
    };
    p.distinguished_name.push(
        DnType::CommonName,
        format!("YubiKey PIV Attestation {}", input.cn_suffix),
    );
    for (last, content) in [(3, input.firmware), (7, input.serial), (8, input.policy)] {
        if let Some(c) = content {
            p.custom_extensions.push(ext(last, c));
        }
    }
    let Ok(cert) = p.signed_by(&ca.slot_key, &ca.cert, &ca.key) else {
        return;
    };
    let enrolled = if input.enrolled_is_slot_key {
        &ca.slot_key
    } else {
        &ca.other_key
    };
    if let Ok(a) = verify_piv(cert.der(), &[], &roots, &spki(enrolled), expected, now) {
        assert!(
            input.enrolled_is_slot_key,
            "another key's attestation accepted"
        );
        assert_eq!(input.firmware.map(<[u8]>::len), Some(3));
        assert_eq!(input.policy.map(<[u8]>::len), Some(2));
        assert!(input.serial.is_some());
        assert!(expected.is_none_or(|e| e == a.slot));
        assert_eq!(input.cn_suffix.len(), 2);
    }
});
