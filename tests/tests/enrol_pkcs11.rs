//! `dialgatectl token enroll` against SoftHSM2 (Debian `softhsm2`): the key
//! is generated on the token and can never leave it, the certificate is on
//! the token and in HQ and chains to the token CA, the registry entry
//! matches; and every refusal says what went wrong.

mod softhsm;

use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use dialgate::config::parse_registry;
use dialgate::tls::load_certs;
use rustls::pki_types::UnixTime;
use softhsm::{s, text, Hsm, MODULE, PIN};

/// The attributes of the objects labelled `label` on the token `token`,
/// read through PKCS#11 in this process.
struct OnToken {
    private_key: Vec<Attribute>,
    certificate_value: Option<Vec<u8>>,
    objects: usize,
}

fn read_token(conf: &Path, token: &str, label: &str) -> OnToken {
    // The only test in this binary that loads the module in-process, so
    // setting the variable races with nothing.
    std::env::set_var("SOFTHSM2_CONF", conf);
    let ctx = Pkcs11::new(MODULE).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == token)
        .expect("the token");
    let session = ctx.open_ro_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from(PIN)))
        .unwrap();
    let by_label = |class| {
        session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap()
    };
    let private = by_label(ObjectClass::PRIVATE_KEY);
    assert_eq!(private.len(), 1, "one private key labelled {label}");
    let private_key = session
        .get_attributes(
            private[0],
            &[
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::NeverExtractable,
                AttributeType::AlwaysSensitive,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Local,
            ],
        )
        .unwrap();
    let certificate_value = by_label(ObjectClass::CERTIFICATE).first().map(|h| {
        match session
            .get_attributes(*h, &[AttributeType::Value])
            .unwrap()
            .remove(0)
        {
            Attribute::Value(v) => v,
            other => panic!("{other:?}"),
        }
    });
    let objects = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .unwrap()
        .len();
    OnToken {
        private_key,
        certificate_value,
        objects,
    }
}

#[test]
fn enrolment_generates_a_non_extractable_key_on_the_token_and_registers_its_certificate() {
    let hsm = Hsm::new("enrol");
    hsm.init_token("bob-token");
    hsm.init_token("spare");
    let hq = hsm.pki_init();

    let out = hsm.enroll(&hq, "bob", "bob-token", &["--aliases", "echo,board"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("enrolled bob"), "{said}");
    // No attestation on SoftHSM: every line about the key says so.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        assert!(line.contains("unattested"), "{line}");
    }
    assert!(!said.contains(PIN), "the PIN is never printed: {said}");

    // On the token: the private key can never leave it; the certificate
    // object is the one HQ holds.
    let t = read_token(&hsm.conf, "bob-token", "bob");
    for expected in [
        Attribute::Extractable(false),
        Attribute::Sensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Local(true),
    ] {
        assert!(
            t.private_key.contains(&expected),
            "{expected:?} in {:?}",
            t.private_key
        );
    }
    assert_eq!(t.objects, 3, "private key, public key, certificate");
    let cert = load_certs(&hq.join("tokens/bob/cert.pem"))
        .unwrap()
        .remove(0);
    assert_eq!(t.certificate_value.as_deref(), Some(cert.as_ref()));

    // The certificate chains to the HQ token CA, for client authentication.
    let ca = load_certs(&hq.join("token-ca.pem")).unwrap().remove(0);
    let anchor = webpki::anchor_from_trusted_cert(&ca).unwrap();
    webpki::EndEntityCert::try_from(&cert)
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
        .expect("chains to the token CA");

    // The registry entry: the gateway's parser finds bob's key active,
    // granted both aliases; the record says how it was enrolled.
    let registry = std::fs::read_to_string(hq.join("registry.toml")).unwrap();
    let (reg, grants) = parse_registry(&registry).unwrap();
    let key = dialgate::tls::key_hash_of(&cert).unwrap();
    assert_eq!(reg.active(&key).unwrap().name, "bob");
    assert!(grants["bob"].contains("echo") && grants["bob"].contains("board"));
    for needle in [
        format!("key_sha256 = \"{}\"", key.to_hex()),
        "origin = \"pkcs11\"".into(),
        "unattested = true".into(),
        "certificate_serial = \"".into(),
        "not_after = ".into(),
    ] {
        assert!(registry.contains(&needle), "{needle} in {registry}");
    }
    let listed = text(&hsm.ctl(&["token", "list", "--registry", &s(&hq.join("registry.toml"))]));
    assert!(listed.contains("unattested PKCS#11 token"), "{listed}");
}

#[test]
fn refusals_name_the_problem() {
    let hsm = Hsm::new("refuse");
    hsm.init_token("tok");
    let hq = hsm.pki_init();
    let refused = |out: std::process::Output, needle: &str| {
        let said = text(&out);
        assert!(!out.status.success(), "{needle}: succeeded: {said}");
        assert!(said.contains(needle), "expected {needle:?} in {said:?}");
        assert!(!said.contains(PIN), "the PIN is never printed: {said}");
    };

    // A wrong PIN: SoftHSM reports no exact count.
    let bad_pin = hsm.dir.join("bad-pin");
    std::fs::write(&bad_pin, "9999\n").unwrap();
    let (hq_s, bad_s) = (s(&hq), s(&bad_pin));
    refused(
        hsm.ctl(&[
            "token",
            "enroll",
            "--dir",
            &hq_s,
            "--name",
            "bob",
            "--pkcs11-module",
            MODULE,
            "--pin-file",
            &bad_s,
        ]),
        "wrong PIN for token \"tok\": login refused",
    );
    // No such module.
    refused(
        hsm.ctl(&[
            "token",
            "enroll",
            "--dir",
            &hq_s,
            "--name",
            "bob",
            "--pkcs11-module",
            "/nonexistent/libnothing.so",
            "--pin-file",
            &s(&hsm.pin_file),
        ]),
        "cannot load PKCS#11 module /nonexistent/libnothing.so:",
    );
    // An unknown token label: the labels seen are listed.
    refused(
        hsm.enroll(&hq, "bob", "nope", &[]),
        "token not found: no initialised token labelled \"nope\"; initialised tokens seen: [\"tok\"]",
    );
    // The CA missing.
    refused(
        hsm.enroll(&hsm.dir.join("empty-hq"), "bob", "tok", &[]),
        "CA missing: ",
    );
    // Attestation required: SoftHSM has none; the generated key is
    // destroyed again, so nothing is left behind.
    refused(
        hsm.enroll(&hq, "bob", "tok", &["--require-attestation"]),
        "attestation required but token \"tok\" (SoftHSM project) exposes no attestation",
    );
    assert!(!hq.join("tokens/bob").exists());
    assert!(!hq.join("registry.toml").exists());

    // Enrolled once; the same label (or id) again is refused on the token.
    let ok = hsm.enroll(&hq, "bob", "tok", &[]);
    assert!(ok.status.success(), "{}", text(&ok));
    refused(
        hsm.enroll(
            &hq,
            "bob2",
            "tok",
            &["--key-label", "bob", "--key-id", "07"],
        ),
        "key already exists on the token: 3 object(s) labelled \"bob\"",
    );
    refused(
        hsm.enroll(&hq, "carol", "tok", &[]),
        "key already exists on the token: 3 object(s) with id 01",
    );
    // The name again is refused before the token is touched.
    refused(
        hsm.enroll(&hq, "bob", "tok", &["--key-id", "02"]),
        "a token named \"bob\" is already in",
    );
    // A second key on the same token under another label and id is fine.
    let second = hsm.enroll(&hq, "carol", "tok", &["--key-id", "02"]);
    assert!(second.status.success(), "{}", text(&second));
}

#[test]
fn a_software_key_is_enrolled_and_marked_unattested() {
    let hsm = Hsm::new("software");
    let hq = hsm.pki_init();
    let ca =
        dialgate_hq::pki::Ca::new("other", dialgate_hq::pki::Validity::days_from_now(1)).unwrap();
    let issued = ca
        .issue_client("k", dialgate_hq::pki::Validity::days_from_now(1))
        .unwrap();
    std::fs::create_dir_all(hsm.dir.join("k")).unwrap();
    issued.write_to(&hsm.dir.join("k")).unwrap();
    let key = s(&hsm.dir.join("k/key.pem"));
    let out = hsm.ctl(&[
        "token",
        "enroll",
        "--dir",
        &s(&hq),
        "--name",
        "dan",
        "--software",
        "--key",
        &key,
        "--aliases",
        "echo",
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for line in said.lines() {
        assert!(
            line.to_lowercase().contains("unattested"),
            "every line says unattested: {line}"
        );
    }
    let registry = std::fs::read_to_string(hq.join("registry.toml")).unwrap();
    assert!(registry.contains("origin = \"software\"") && registry.contains("unattested = true"));
    // The new certificate is for the file's key.
    let cert = load_certs(&hq.join("tokens/dan/cert.pem"))
        .unwrap()
        .remove(0);
    assert_eq!(
        dialgate::tls::key_hash_of(&cert).unwrap(),
        dialgate::tls::key_hash_of(&issued.der).unwrap()
    );
    // Software and PKCS#11 options together are a usage error.
    let both = hsm.ctl(&[
        "token",
        "enroll",
        "--dir",
        &s(&hq),
        "--name",
        "x",
        "--software",
        "--key",
        &key,
        "--pkcs11-module",
        MODULE,
    ]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
}
