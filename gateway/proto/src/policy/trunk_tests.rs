//! Trunks a policy overrides or adds, and their Record-Route hops: the
//! trunks in force are what the gateway dials and what the firewall opens,
//! so every hostile variant is refused by signer and kit alike.

use std::collections::HashMap;
use std::path::Path;

use super::body::{sample, MAX_TRUNKS};
use super::*;
use crate::config::{Config, NoFiles, TrunkConfig, MAX_ROUTES};

/// Between the sample's `issued_at` and `expires_at`.
const NOW: u64 = 1_700_000_100;

/// A lab kit with the sample's trunk `echo`, a client identity on it.
const KIT: &str = r#"
[phone]
listen = "127.0.0.1:5061"
certificate = "c.pem"
key = "k.pem"
token_ca = "ca.pem"
registry = "registry.toml"
media_address = "127.0.0.1"

[[trunk]]
name = "echo"
connect = "127.0.0.1:5071"
host = "bridge.test"
pin_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
media_address = "10.0.0.2"
client_certificate = "kit-cert.pem"
client_key = "kit-key.pem"
routes = ["127.0.0.1:5072"]
"#;

fn kit() -> HashMap<String, TrunkConfig> {
    Config::parse(KIT, Path::new("/kit"), &NoFiles)
        .unwrap()
        .trunks
}

fn added(name: &str, connect: &str) -> PolicyTrunk {
    PolicyTrunk {
        name: name.into(),
        connect: connect.into(),
        host: "meet.example".into(),
        ca_pem: None,
        pin_sha256: Some("44".repeat(32)),
        tls: "1.2".into(),
        suites: vec!["AES_CM_128_HMAC_SHA1_80".into()],
        webex: true,
        routes: vec!["192.0.2.21:5062".into()],
    }
}

struct Signer {
    key: SigningKey,
    trust: Trust,
}

fn signer() -> Signer {
    let key = SigningKey::generate().unwrap();
    let trust = Trust {
        pinned_key: key.public_key().clone(),
        kit_id: "kit-01".into(),
        grace: GracePeriod::NONE,
    };
    Signer { key, trust }
}

impl Signer {
    fn verified(&self, body: &PolicyBody) -> Verified {
        let bundle = sign(body, &self.key).unwrap();
        verify_and_decide(&bundle, &self.trust, &State::new(), NOW).unwrap()
    }

    /// Signs body text as a buggy or malicious signer with the real key
    /// would, bypassing `sign`'s checks, and has the kit decide.
    fn kit_decides(&self, text: &str) -> Result<Verified, PolicyError> {
        let sig = self
            .key
            .sign(&dialgate_signed::signed_message(&POLICY, text.as_bytes()))
            .unwrap();
        let bundle =
            dialgate_signed::frame(&POLICY, text.as_bytes(), &self.key.public_key().id(), &sig);
        verify_and_decide(&bundle, &self.trust, &State::new(), NOW)
    }
}

#[test]
fn a_policy_adds_a_trunk_with_the_kits_media_address_and_no_client_identity() {
    let s = signer();
    let mut body = sample();
    body.trunks = vec![added("webex", "192.0.2.20:5061")];
    body.directory[0].trunk = "webex".into();
    let v = s.verified(&body);
    let media = "10.0.0.9".parse().unwrap();
    let trunks = v.trunks_in_force(&kit(), Some(media)).unwrap();
    assert_eq!(trunks.len(), 2, "the kit's trunk and the added one");
    let w = &trunks["webex"];
    assert_eq!(w.connect.addr(), Some("192.0.2.20:5061".parse().unwrap()));
    assert_eq!(w.routes, vec!["192.0.2.21:5062".parse().unwrap()]);
    assert_eq!(w.media_address, media);
    assert_eq!(w.client_identity, None);
    assert_eq!(w.tls, crate::admission::TrunkTls::Tls12Allowed);
    assert!(w.webex);
    // The kit's own trunk is untouched.
    assert_eq!(trunks["echo"], kit()["echo"]);
}

#[test]
fn an_added_trunk_needs_a_media_address_from_the_kit() {
    let s = signer();
    let mut body = sample();
    body.trunks = vec![added("webex", "192.0.2.20:5061")];
    let v = s.verified(&body);
    let e = v.trunks_in_force(&kit(), None).unwrap_err();
    assert!(
        matches!(&e, PolicyError::NoTrunkMediaAddress { trunk } if trunk == "webex"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("trunk_media_address"), "{text}");
    // Overriding the kit's trunk needs none.
    let v = s.verified(&sample());
    assert!(v.trunks_in_force(&kit(), None).is_ok());
}

#[test]
fn an_override_keeps_the_kits_media_address_and_identity_and_replaces_routes() {
    let s = signer();
    let v = s.verified(&sample());
    let trunks = v.trunks_in_force(&kit(), None).unwrap();
    let (before, after) = (&kit()["echo"], &trunks["echo"]);
    assert_eq!(
        after.connect.addr(),
        Some("192.0.2.7:5061".parse().unwrap())
    );
    assert_eq!(after.media_address, before.media_address);
    assert_eq!(after.client_identity, before.client_identity);
    assert_eq!(before.routes, vec!["127.0.0.1:5072".parse().unwrap()]);
    assert_eq!(after.routes, vec!["192.0.2.8:5062".parse().unwrap()]);
    // Without routes in the policy, the trunk has none.
    let mut body = sample();
    body.trunks[0].routes.clear();
    let trunks = s.verified(&body).trunks_in_force(&kit(), None).unwrap();
    assert!(trunks["echo"].routes.is_empty());
}

#[test]
fn a_directory_entry_must_name_a_trunk_of_the_kit_or_of_the_policy() {
    let s = signer();
    let mut body = sample();
    body.directory[0].trunk = "elsewhere".into();
    let e = s
        .verified(&body)
        .trunks_in_force(&kit(), Some("10.0.0.9".parse().unwrap()))
        .unwrap_err();
    assert!(
        matches!(&e, PolicyError::Invalid { field, .. } if field == "directory.echo.trunk"),
        "{e:?}"
    );
}

#[test]
fn bad_routes_are_refused_by_signer_and_kit() {
    let s = signer();
    let too_many: Vec<String> = (0..=MAX_ROUTES)
        .map(|i| format!("192.0.2.30:{}", 5000 + i))
        .collect();
    let cases: Vec<Vec<String>> = vec![
        too_many,
        vec!["192.0.2.30:5062".into(), "192.0.2.30:5062".into()],
        vec!["bridge.example:5062".into()],
        vec!["192.0.2.30".into()],
        vec!["0.0.0.0:5062".into()],
        vec!["192.0.2.30:0".into()],
        vec!["[::]:5062".into()],
        vec!["".into()],
    ];
    for routes in cases {
        let mut body = sample();
        body.trunks[0].routes = routes.clone();
        match sign(&body, &s.key) {
            Err(PolicyError::Invalid { field, .. }) => {
                assert_eq!(field, "trunk.echo.routes", "{routes:?}")
            }
            other => panic!("{routes:?}: {other:?}"),
        }
        // A signer that skips the checks does not get past the kit.
        let mut ok = sample();
        ok.trunks[0].routes = vec!["192.0.2.99:1".into()];
        let text = body::to_toml(&ok).unwrap().replace(
            "routes = [\"192.0.2.99:1\"]",
            &format!("routes = {routes:?}"),
        );
        match s.kit_decides(&text) {
            Err(PolicyError::Invalid { field, .. }) => assert_eq!(field, "trunk.echo.routes"),
            other => panic!("{routes:?}: {other:?}"),
        }
    }
    // A huge list is refused by its length, before any entry is parsed.
    let mut ok = sample();
    ok.trunks[0].routes = vec!["192.0.2.99:1".into()];
    let huge = format!("routes = [{}]", vec!["\"x\""; 50_000].join(","));
    let text = body::to_toml(&ok)
        .unwrap()
        .replace("routes = [\"192.0.2.99:1\"]", &huge);
    let e = s.kit_decides(&text).unwrap_err();
    assert!(e.to_string().contains("at most 8"), "{e}");
    // Not a list at all: a syntax error, never a panic.
    let text = body::to_toml(&ok)
        .unwrap()
        .replace("routes = [\"192.0.2.99:1\"]", "routes = 5062");
    assert!(matches!(
        s.kit_decides(&text),
        Err(PolicyError::BodySyntax { .. })
    ));
}

#[test]
fn routes_are_optional_in_a_body_and_round_trip() {
    let s = signer();
    let mut body = sample();
    body.trunks[0].routes.clear();
    let text = body::to_toml(&body).unwrap();
    assert!(!text.contains("routes"), "{text}");
    assert!(s.kit_decides(&text).is_ok());
    let text = body::to_toml(&sample()).unwrap();
    assert!(text.contains("routes = [\"192.0.2.8:5062\"]"), "{text}");
    let v = s.kit_decides(&text).unwrap();
    assert_eq!(v.body().trunks, sample().trunks);
    // The home side's trunk settings file takes the same fields.
    let file = body::trunks_from_toml(
        "[[trunk]]\nname = \"w\"\nconnect = \"192.0.2.20:5061\"\nhost = \"h\"\n\
         pin_sha256 = \"00\"\ntls = \"1.3\"\nsuites = []\nwebex = false\nroutes = [\"192.0.2.21:5062\"]\n",
    )
    .unwrap();
    assert_eq!(file[0].routes, ["192.0.2.21:5062"]);
}

#[test]
fn no_more_trunks_than_a_kit_holds_and_no_name_twice() {
    let s = signer();
    let mut body = sample();
    body.trunks = (0..=MAX_TRUNKS)
        .map(|i| added(&format!("t{i}"), "192.0.2.20:5061"))
        .collect();
    assert!(matches!(
        sign(&body, &s.key),
        Err(PolicyError::TooManyEntries { what: "trunks", .. })
    ));
    body.trunks.truncate(MAX_TRUNKS);
    let v = s.verified(&body);
    let trunks = v
        .trunks_in_force(&kit(), Some("10.0.0.9".parse().unwrap()))
        .unwrap();
    assert_eq!(trunks.len(), MAX_TRUNKS + 1);
    body.trunks[1].name = "t0".into();
    assert!(matches!(
        sign(&body, &s.key),
        Err(PolicyError::Invalid { .. })
    ));
    // An added trunk's name follows the naming rule too.
    body.trunks = vec![added("web ex", "192.0.2.20:5061")];
    assert!(matches!(
        sign(&body, &s.key),
        Err(PolicyError::Invalid { field, .. }) if field == "trunk.name"
    ));
}
