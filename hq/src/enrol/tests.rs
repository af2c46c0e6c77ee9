//! The enrolment core with software keys: no token needed.

use std::path::PathBuf;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, UnixTime};

use super::*;
use crate::pki::write_file;

struct Hq {
    dir: PathBuf,
    ca: CertificateDer<'static>,
}

impl Drop for Hq {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn hq(tag: &str) -> Hq {
    let dir = std::env::temp_dir().join(format!("dialgate-enrol-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new("dialgate token CA", Validity::days_from_now(30)).unwrap();
    write_file(&dir.join("token-ca.pem"), ca.cert_pem().as_bytes(), 0o644).unwrap();
    write_file(
        &dir.join("token-ca-key.pem"),
        ca.key_pem().as_bytes(),
        0o600,
    )
    .unwrap();
    Hq { dir, ca: ca.der() }
}

fn request(name: &str) -> Request {
    Request {
        name: name.into(),
        aliases: vec!["echo".into()],
        days: 10,
        require_attestation: false,
    }
}

fn enrol_software(h: &Hq, name: &str, key: &KeyPair) -> Result<Enrolled, EnrolError> {
    let p = prepare(HqPaths::new(&h.dir), request(name))?;
    let csr = p.certification_request(key)?;
    let issued = p.issue(&csr)?;
    p.commit(
        &issued,
        Origin::Software,
        Attestation::Unattested(software_why()),
    )
}

#[test]
fn a_software_key_is_enrolled_unattested_and_its_certificate_chains_to_the_ca() {
    let h = hq("sw");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let e = enrol_software(&h, "carol", &key).unwrap();
    assert!(e
        .describe()
        .iter()
        .all(|l| l.contains("unattested") || l.contains("UNATTESTED")));

    // The certificate: for this key, issued by the CA, usable for TLS
    // client authentication now.
    let pem = std::fs::read_to_string(&e.cert_path).unwrap();
    let cert = der::pem_certificates(&pem).remove(0);
    let parsed = der::Certificate::parse(cert.as_ref()).unwrap();
    assert_eq!(parsed.spki, key.public_key_der());
    assert_eq!(parsed.common_name(), Some("carol"));
    assert_chains_for_client_auth(&cert, &h.ca);

    // The registry: the gateway's parser finds the key active under the
    // name, with its alias, and the entry records what happened.
    let text = std::fs::read_to_string(h.dir.join("registry.toml")).unwrap();
    let (reg, grants) = parse_registry(&text).unwrap();
    assert_eq!(crate::key_hash_of(&cert).unwrap(), e.key_hash);
    assert_eq!(reg.active(&e.key_hash).unwrap().name, "carol");
    assert!(grants["carol"].contains("echo"));
    let serial: String = parsed.serial.iter().map(|b| format!("{b:02x}")).collect();
    for needle in [
        "origin = \"software\"",
        "unattested = true",
        &format!(
            "certificate_serial = \"{}\"",
            serial.trim_start_matches("00")
        ),
        "not_before = 20",
        "not_after = 20",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
    let mode = std::fs::metadata(&e.cert_path).unwrap();
    assert!(mode.is_file());

    // A second token is appended; the same key or name again is refused.
    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    enrol_software(&h, "dave", &other).unwrap();
    let text = std::fs::read_to_string(h.dir.join("registry.toml")).unwrap();
    assert_eq!(parse_registry(&text).unwrap().0.len(), 2);
    let e = enrol_software(&h, "erin", &key).unwrap_err();
    assert!(
        e.to_string()
            .contains("already in the registry (as \"carol\")"),
        "{e}"
    );
    let e = prepare(HqPaths::new(&h.dir), request("carol")).unwrap_err();
    assert!(
        e.to_string()
            .contains("a token named \"carol\" is already in"),
        "{e}"
    );
    // The refused attempt for erin left no folder behind... it never got
    // that far: the key check comes before anything is written.
    assert!(!h.dir.join("tokens/erin").exists());
}

#[test]
fn refusals_before_the_token_is_touched_say_what_to_do() {
    let h = hq("refuse");
    let paths = HqPaths::new(&h.dir);
    for bad in ["", "a b", "../x", ".hidden", &"x".repeat(65)] {
        let e = prepare(paths.clone(), request(bad)).unwrap_err();
        assert!(matches!(e, EnrolError::BadName(_)), "{bad:?}: {e}");
    }
    let mut r = request("bob");
    r.aliases.push("no way".into());
    assert!(matches!(
        prepare(paths.clone(), r),
        Err(EnrolError::BadAlias(_))
    ));

    std::fs::write(&paths.registry, "[[token]]\nname = 1\n").unwrap();
    let e = prepare(paths.clone(), request("bob")).unwrap_err();
    assert!(e.to_string().contains("fix it before enrolling"), "{e}");
    std::fs::remove_file(&paths.registry).unwrap();

    std::fs::create_dir_all(paths.token_dir("bob")).unwrap();
    let e = prepare(paths.clone(), request("bob")).unwrap_err();
    assert!(e.to_string().contains("was enrolled before"), "{e}");

    std::fs::remove_file(paths.ca_key()).unwrap();
    let e = prepare(paths.clone(), request("zed")).unwrap_err();
    assert!(
        e.to_string().starts_with("CA missing:")
            && e.to_string().contains("run dialgatectl pki init --dir"),
        "{e}"
    );
}

#[test]
fn attestation_policy_and_request_signatures_are_enforced() {
    let h = hq("policy");
    let mut r = request("bob");
    r.require_attestation = true;
    let p = prepare(HqPaths::new(&h.dir), r).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = p.certification_request(&key).unwrap();
    let issued = p.issue(&csr).unwrap();
    let e = p
        .commit(
            &issued,
            Origin::Pkcs11,
            Attestation::Unattested("none on SoftHSM".into()),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("attestation required but none on SoftHSM"),
        "{e}"
    );
    assert!(!h.dir.join("registry.toml").exists());

    // A request whose signature does not verify (a faulty token, or one
    // that signs something else) is refused; so is one for another curve.
    let mut tampered = csr.clone();
    let n = tampered.len();
    tampered[n - 3] ^= 0x01;
    assert!(matches!(p.issue(&tampered), Err(EnrolError::BadRequest(_))));
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(matches!(
        p.certification_request(&p384),
        Err(EnrolError::BadRequest(_))
    ));
}

#[test]
fn a_ca_written_by_pki_init_is_loaded_and_a_mismatched_key_refused() {
    let a = Ca::new("dialgate token CA", Validity::days_from_now(30)).unwrap();
    let b = Ca::new("dialgate token CA", Validity::days_from_now(30)).unwrap();
    let loaded = Ca::load(&a.cert_pem(), &a.key_pem()).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = loaded
        .issue_client_for_key("x", &key.public_key_der(), Validity::days_from_now(1))
        .unwrap();
    let a_der = a.der();
    assert_chains_for_client_auth(&cert.der, &a_der);
    let e = Ca::load(&a.cert_pem(), &b.key_pem()).unwrap_err();
    assert!(e.to_string().contains("does not belong"), "{e}");
}

#[test]
fn registry_entries_escape_and_record_attestation() {
    let a = PivAttestation {
        slot: attest::PivSlot::AUTHENTICATION,
        device_serial: 12_345_678,
        firmware: (5, 4, 3),
        pin_policy: attest::PinPolicy::Once,
        touch_policy: attest::TouchPolicy::Always,
    };
    let v = Validity::days_from_now(1);
    let entry = registry_entry(&RegistryEntry {
        name: "bob",
        key_hash: &KeyHash([7; 32]),
        aliases: &["echo".into(), "q\"x".into()],
        serial: &[0x5f, 0x0c],
        validity: &v,
        origin: Origin::Pkcs11,
        attestation: &Attestation::Verified(a),
    });
    assert!(
        entry.contains("aliases = [\"echo\", \"q\\\"x\"]"),
        "{entry}"
    );
    assert!(entry.contains(
        "attestation = { format = \"yubico-piv\", slot = \"9a\", device_serial = 12345678, firmware = \"5.4.3\", pin_policy = \"once\", touch_policy = \"always\" }"
    ), "{entry}");
    assert!(!entry.contains("unattested"));
    let (reg, _) = parse_registry(&entry).unwrap();
    assert_eq!(reg.active(&KeyHash([7; 32])).unwrap().name, "bob");
}

/// `cert` chains to `ca` (webpki) and may authenticate a TLS client; its
/// key hash as the kit's TLS layer sees it (webpki's SubjectPublicKeyInfo)
/// is the one the registry records (the DER reader's).
fn assert_chains_for_client_auth(
    cert: &rustls::pki_types::CertificateDer<'_>,
    ca: &rustls::pki_types::CertificateDer<'_>,
) {
    let spki = webpki::EndEntityCert::try_from(cert)
        .unwrap()
        .subject_public_key_info();
    assert_eq!(
        crate::key_hash_of(cert).unwrap(),
        KeyHash::of_spki(spki.as_ref())
    );
    let anchor = webpki::anchor_from_trusted_cert(ca).unwrap();
    webpki::EndEntityCert::try_from(cert)
        .unwrap()
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .unwrap();
}
