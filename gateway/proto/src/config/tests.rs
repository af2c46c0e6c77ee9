use super::*;

const MINIMAL: &str = r#"
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
media_address = "127.0.0.1"

[[directory]]
alias = "echo"
uri = "sip:echo@bridge.test"
trunk = "echo"
pin = "1234#"
"#;

#[test]
fn minimal_config_gets_safe_defaults() {
    let c = Config::parse(MINIMAL, Path::new("/kit"), &NoFiles).unwrap();
    assert_eq!(c.phone.suites, DEFAULT_PHONE_SUITES.to_vec());
    assert_eq!(c.phone.pq, PqPolicy::Prefer);
    assert_eq!(c.phone.registry, Some(PathBuf::from("/kit/registry.toml")));
    let t = &c.trunks["echo"];
    assert_eq!(t.suites, DEFAULT_TRUNK_SUITES.to_vec());
    assert_eq!(t.tls, TrunkTls::Tls13);
    assert!(!t.webex);
    assert_eq!((c.media.port_min, c.media.port_max), (30000, 39999));
    assert_eq!(c.media.inactivity, Duration::from_secs(30));
    assert!(!c.media.connect_latched && !c.media.busy_poll);
    assert_eq!(c.limits.calls_per_token, 4);
    assert!(!c.limits.loopback_exempt);
    let d = format!("{:?}", c.directory["echo"]);
    assert!(!d.contains("1234"), "PIN redacted in Debug: {d}");
}

#[test]
fn the_relay_modes_are_media_settings() {
    let text = format!("{MINIMAL}\n[media]\nconnect_latched = true\nbusy_poll = true\n");
    let c = Config::parse(&text, Path::new("/kit"), &NoFiles).unwrap();
    assert!(c.media.connect_latched && c.media.busy_poll);
    let one = format!("{MINIMAL}\n[media]\nconnect_latched = true\n");
    let c = Config::parse(&one, Path::new("/kit"), &NoFiles).unwrap();
    assert!(c.media.connect_latched && !c.media.busy_poll);
    let bad = format!("{MINIMAL}\n[media]\nbusy_poll = \"yes\"\n");
    assert!(Config::parse(&bad, Path::new("/kit"), &NoFiles).is_err());
}

#[test]
fn advertise_address_is_optional_and_must_be_reachable() {
    assert_eq!(
        Config::parse(MINIMAL, Path::new("/kit"), &NoFiles)
            .unwrap()
            .phone
            .advertise_address,
        None
    );
    let nat = MINIMAL.replace(
        "media_address = \"127.0.0.1\"\n\n[[trunk]]",
        "media_address = \"10.0.2.15\"\nadvertise_address = \"127.0.0.1\"\n\n[[trunk]]",
    );
    let c = Config::parse(&nat, Path::new("/kit"), &NoFiles).unwrap();
    assert_eq!(
        c.phone.advertise_address,
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(c.phone.media_address.to_string(), "10.0.2.15");
    let err = Config::parse(
        &nat.replace("\"127.0.0.1\"\n\n", "\"0.0.0.0\"\n\n"),
        Path::new("/"),
        &NoFiles,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("phone.advertise_address"), "{err}");
}

#[test]
fn dangerous_or_wrong_settings_are_refused_with_the_field_named() {
    let cases = [
        (MINIMAL.replace("listen", "listne"), "unknown field"),
        (
            MINIMAL.replace("pin = \"1234#\"", "pin = \"12x\""),
            "directory.echo.pin",
        ),
        (
            MINIMAL.replace("trunk = \"echo\"\npin", "trunk = \"nope\"\npin"),
            "directory.echo.trunk",
        ),
        (
            MINIMAL.replace(
                "media_address = \"127.0.0.1\"\n\n[[trunk]]",
                "media_address = \"127.0.0.1\"\nsuites = []\n\n[[trunk]]",
            ),
            "SRTP cannot be turned off",
        ),
        (
            MINIMAL.replace(
                "media_address = \"127.0.0.1\"\n\n[[trunk]]",
                "media_address = \"127.0.0.1\"\nsuites = [\"NULL_HMAC_SHA1_80\"]\n\n[[trunk]]",
            ),
            "unknown suite",
        ),
        (
            MINIMAL.replace("pin_sha256 = \"00", "pin_sha256 = \"0"),
            "pin_sha256",
        ),
        (
            MINIMAL.replace("pin_sha256", "ca = \"x.pem\"\npin_sha256"),
            "exactly one",
        ),
        (
            MINIMAL.replacen(
                "media_address = \"127.0.0.1\"",
                "media_address = \"0.0.0.0\"",
                1,
            ),
            "phone interface",
        ),
        (
            format!("{MINIMAL}\n[media]\nport_min = 80\n"),
            "media.port_min",
        ),
        (
            format!("{MINIMAL}\n[limits]\nmax_calls = 0\n"),
            "limits.max_calls",
        ),
        (
            MINIMAL.replace("uri = \"sip:", "uri = \"http:"),
            "sip: or sips:",
        ),
    ];
    for (text, needle) in cases {
        let e = Config::parse(&text, Path::new("/"), &NoFiles)
            .expect_err(needle)
            .to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e:?}");
    }
}

#[test]
fn registry_parses_and_refuses_duplicates() {
    let k1 = "11".repeat(32);
    let k2 = "22".repeat(32);
    let text = format!(
            "[[token]]\nname = \"alice\"\nkey_sha256 = \"{k1}\"\naliases = [\"echo\"]\nunattested = true\n\
             [[token]]\nname = \"mallory\"\nkey_sha256 = \"{k2}\"\naliases = [\"echo\"]\nrevoked = true\n"
        );
    let (reg, grants) = parse_registry(&text).unwrap();
    assert!(
        !grants.contains_key("mallory"),
        "a revoked entry carries no grants"
    );
    assert_eq!(reg.len(), 2);
    assert_eq!(
        reg.active(&KeyHash::from_hex(&k1).unwrap()).unwrap().name,
        "alice"
    );
    assert!(reg.active(&KeyHash::from_hex(&k2).unwrap()).is_none());
    assert!(grants["alice"].contains("echo"));
    let dup = format!(
        "{text}[[token]]\nname = \"alice\"\nkey_sha256 = \"{}\"\n",
        "33".repeat(32)
    );
    assert!(parse_registry(&dup)
        .unwrap_err()
        .to_string()
        .contains("twice"));
    // The same key twice, the first entry revoked, is still a duplicate.
    let dup_key = format!("{text}[[token]]\nname = \"bob\"\nkey_sha256 = \"{k2}\"\n");
    assert!(parse_registry(&dup_key)
        .unwrap_err()
        .to_string()
        .contains("twice"));
    assert!(parse_registry("[[token]]\nname = \"x\"\nkey_sha256 = \"zz\"\n").is_err());
}

#[test]
fn enrolment_records_parse_and_contradictions_are_refused() {
    let k = "44".repeat(32);
    let base = format!("[[token]]\nname = \"bob\"\nkey_sha256 = \"{k}\"\naliases = [\"echo\"]\n");
    let attested = format!(
        "{base}origin = \"pkcs11\"\ncertificate_serial = \"5f0c01\"\n\
             not_before = 2026-05-01T10:00:00Z\nnot_after = 2027-05-01T10:00:00Z\n\
             attestation = {{ format = \"yubico-piv\", slot = \"9a\", device_serial = 12345678, \
             firmware = \"5.4.3\", pin_policy = \"once\", touch_policy = \"always\" }}\n"
    );
    let (reg, _) = parse_registry(&attested).unwrap();
    assert_eq!(
        reg.active(&KeyHash::from_hex(&k).unwrap()).unwrap().name,
        "bob"
    );
    let software = format!("{base}origin = \"software\"\nunattested = true\n");
    assert!(parse_registry(&software).is_ok());
    let cases = [
        (
            format!("{base}origin = \"software\"\n"),
            "unattested = true",
        ),
        (format!("{base}origin = \"usb\"\n"), "token.bob.origin"),
        (
            attested.replace("origin = \"pkcs11\"", "unattested = true"),
            "not both",
        ),
        (attested.replace("5f0c01", "xyz"), "certificate_serial"),
        (
            attested.replace("2027-05-01T10:00:00Z", "2027-05-01"),
            "token.bob.not_after",
        ),
        (
            attested.replace("yubico-piv", "tpm"),
            "token.bob.attestation",
        ),
        (attested.replace("touch_policy", "touch"), "unknown field"),
    ];
    for (text, needle) in cases {
        let e = parse_registry(&text).expect_err(needle).to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e:?}");
    }
}

#[test]
fn trunk_routes_are_an_explicit_bounded_list() {
    let with = |routes: &str| {
        MINIMAL.replace(
            "media_address = \"127.0.0.1\"\n\n[[directory]]",
            &format!("media_address = \"127.0.0.1\"\nroutes = {routes}\n\n[[directory]]"),
        )
    };
    let c = Config::parse(MINIMAL, Path::new("/"), &NoFiles).unwrap();
    assert!(c.trunks["echo"].routes.is_empty(), "none by default");
    let c = Config::parse(
        &with("[\"192.0.2.8:5062\", \"[2001:db8::8]:5062\"]"),
        Path::new("/"),
        &NoFiles,
    )
    .unwrap();
    assert_eq!(
        c.trunks["echo"].routes,
        [
            "192.0.2.8:5062".parse().unwrap(),
            "[2001:db8::8]:5062".parse().unwrap()
        ]
    );
    let nine = (0..=MAX_ROUTES)
        .map(|i| format!("\"192.0.2.8:{}\"", 5000 + i))
        .collect::<Vec<_>>()
        .join(", ");
    for (routes, needle) in [
        (format!("[{nine}]"), "at most 8"),
        ("[\"192.0.2.8:5062\", \"192.0.2.8:5062\"]".into(), "twice"),
        ("[\"0.0.0.0:5062\"]".into(), "concrete"),
        ("[\"192.0.2.8:0\"]".into(), "concrete"),
        ("[\"bridge.test:5062\"]".into(), "routes"),
    ] {
        let e = Config::parse(&with(&routes), Path::new("/"), &NoFiles)
            .expect_err(needle)
            .to_string();
        assert!(e.contains(needle), "expected {needle:?} in {e:?}");
        assert!(e.contains("routes"), "{e}");
    }
}

/// Files from a map, for configurations with `[policy]`.
struct Map(HashMap<PathBuf, Vec<u8>>);

impl ReadFile for Map {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

#[test]
fn added_trunks_take_the_policy_media_address_or_the_bridge_listeners() {
    let key = crate::policy::SigningKey::generate().unwrap();
    let files = Map(HashMap::from([(
        PathBuf::from("/kit/policy.pem"),
        key.public_key().to_pem().into_bytes(),
    )]));
    let kit = MINIMAL
        .replace("registry = \"registry.toml\"\n", "")
        .replace(
            "[[directory]]\nalias = \"echo\"\nuri = \"sip:echo@bridge.test\"\ntrunk = \"echo\"\npin = \"1234#\"\n",
            "[policy]\nkey = \"policy.pem\"\nkit_id = \"kit-01\"\nbundle = \"p.bundle\"\nstate = \"p.state\"\n",
        );
    let parse = |t: &str| Config::parse(t, Path::new("/kit"), &files);
    let c = parse(&kit).unwrap();
    assert_eq!(c.policy.unwrap().trunk_media_address, None);
    let listener = format!(
        "{kit}\n[bridge_listener]\nlisten = \"192.0.2.10:5062\"\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n"
    );
    let c = parse(&listener).unwrap();
    assert_eq!(
        c.policy.unwrap().trunk_media_address,
        Some("192.0.2.10".parse().unwrap())
    );
    let explicit = listener.replace(
        "state = \"p.state\"\n",
        "state = \"p.state\"\ntrunk_media_address = \"192.0.2.11\"\n",
    );
    let c = parse(&explicit).unwrap();
    assert_eq!(
        c.policy.unwrap().trunk_media_address,
        Some("192.0.2.11".parse().unwrap())
    );
    // The wildcard: each added trunk's media follows its connection's
    // local address (b2bua::Input::TrunkLocal).
    let c = parse(&explicit.replace("192.0.2.11", "0.0.0.0")).unwrap();
    assert!(c
        .policy
        .unwrap()
        .trunk_media_address
        .unwrap()
        .is_unspecified());
    let e = parse(&explicit.replace("192.0.2.11", "x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("trunk_media_address"), "{e}");
}

#[test]
fn management_needs_policy_pins_both_keys_and_bounds_the_interval() {
    let policy = crate::policy::SigningKey::generate().unwrap();
    let ts = dialgate_signed::SigningKey::generate().unwrap();
    let snap = dialgate_signed::SigningKey::generate().unwrap();
    let files = Map(HashMap::from([
        (
            PathBuf::from("/kit/policy.pem"),
            policy.public_key().to_pem().into_bytes(),
        ),
        (
            PathBuf::from("/kit/ts.pem"),
            ts.public_key().to_pem().into_bytes(),
        ),
        (
            PathBuf::from("/kit/snap.pem"),
            snap.public_key().to_pem().into_bytes(),
        ),
    ]));
    let management = "\n[management]\nurl = \"https://192.0.2.20:8443/repo/\"\nca = \"hq-ca.pem\"\ncertificate = \"device/cert.pem\"\ndevice_key = \"device/key.pem\"\nstate = \"state/repo.state\"\ntimestamp_key = \"ts.pem\"\nsnapshot_key = \"snap.pem\"\n";
    let kit = MINIMAL
        .replace("registry = \"registry.toml\"\n", "")
        .replace(
            "[[directory]]\nalias = \"echo\"\nuri = \"sip:echo@bridge.test\"\ntrunk = \"echo\"\npin = \"1234#\"\n",
            "[policy]\nkey = \"policy.pem\"\nkit_id = \"kit-01\"\nbundle = \"p.bundle\"\nstate = \"p.state\"\n",
        )
        + management;
    let parse = |t: &str| Config::parse(t, Path::new("/kit"), &files);
    let m = parse(&kit).unwrap().management.unwrap();
    assert_eq!(m.kit_id, "kit-01");
    assert_eq!(m.addr, "192.0.2.20:8443".parse().unwrap());
    assert_eq!(
        m.file_path("timestamp.signed"),
        "/repo/kit-01/timestamp.signed"
    );
    assert_eq!(m.interval, DEFAULT_POLL_INTERVAL);
    assert_eq!(m.state, PathBuf::from("/kit/state/repo.state"));
    assert_eq!(m.keys.timestamp.id(), ts.public_key().id());
    assert_eq!(m.keys.snapshot.id(), snap.public_key().id());
    let fast = parse(&format!("{kit}interval_ms = 1000\n")).unwrap();
    assert_eq!(
        fast.management.unwrap().interval,
        Duration::from_millis(1000)
    );
    let e = parse(&format!("{kit}interval_ms = 100\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("management.interval_ms"), "{e}");
    let e = parse(&kit.replace("https://192.0.2.20:8443", "https://hq.example"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("management.url"), "{e}");
    let e = parse(&kit.replace("snap.pem", "missing.pem"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
    // Without [policy]: no kit id, nowhere to put the bundle.
    let e = parse(&(MINIMAL.to_string() + management))
        .unwrap_err()
        .to_string();
    assert!(e.contains("management"), "{e}");
}

#[test]
fn status_needs_policy_an_https_ip_url_and_bounds_the_interval() {
    let policy = crate::policy::SigningKey::generate().unwrap();
    let files = Map(HashMap::from([(
        PathBuf::from("/kit/policy.pem"),
        policy.public_key().to_pem().into_bytes(),
    )]));
    let status = "\n[status]\nurl = \"https://192.0.2.20:9091/\"\nca = \"hq-ca.pem\"\ncertificate = \"device/cert.pem\"\ndevice_key = \"device/key.pem\"\n";
    let with_policy = |kit_id: &str| {
        MINIMAL
            .replace("registry = \"registry.toml\"\n", "")
            .replace(
                "[[directory]]\nalias = \"echo\"\nuri = \"sip:echo@bridge.test\"\ntrunk = \"echo\"\npin = \"1234#\"\n",
                &format!("[policy]\nkey = \"policy.pem\"\nkit_id = \"{kit_id}\"\nbundle = \"p.bundle\"\nstate = \"p.state\"\n"),
            )
    };
    let parse = |t: &str| Config::parse(t, Path::new("/kit"), &files);
    let s = parse(&(with_policy("kit-01") + status))
        .unwrap()
        .status
        .unwrap();
    assert_eq!(s.kit_id, "kit-01");
    assert_eq!(s.addr.to_string(), "192.0.2.20:9091");
    assert_eq!(s.ca, PathBuf::from("/kit/hq-ca.pem"));
    assert_eq!(s.certificate, PathBuf::from("/kit/device/cert.pem"));
    assert_eq!(s.interval, crate::config::DEFAULT_PUSH_INTERVAL);
    assert_eq!(s.push_path(), "/metrics/job/dialgate/kit/kit-01");
    let odd = parse(&(with_policy("kit+01@x") + status))
        .unwrap()
        .status
        .unwrap();
    // "kit+01@x" in URL-safe base64, unpadded.
    assert_eq!(
        odd.push_path(),
        "/metrics/job/dialgate/kit@base64/a2l0KzAxQHg"
    );
    let fast = parse(&(with_policy("k") + status + "interval_ms = 1000\n")).unwrap();
    assert_eq!(fast.status.unwrap().interval, Duration::from_millis(1000));
    let e = parse(&(with_policy("k") + status + "interval_ms = 10\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("status.interval_ms"), "{e}");
    let e = parse(
        &(with_policy("k")
            + &status.replace("https://192.0.2.20:9091/", "http://192.0.2.20:9091/")),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("status.url"), "{e}");
    let e = parse(&(with_policy("k") + status + "typo = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("typo"), "{e}");
    let e = parse(&(MINIMAL.to_string() + status))
        .unwrap_err()
        .to_string();
    assert!(e.contains("status"), "{e}");
}

#[test]
fn trunks_by_name_need_dns_servers() {
    let named = MINIMAL.replace(
        "connect = \"127.0.0.1:5071\"",
        "connect = \"bridge.hotel.test:5071\"",
    );
    let e = Config::parse(&named, Path::new("/kit"), &NoFiles).unwrap_err();
    assert!(e.to_string().contains("trunk.echo.connect"), "{e}");
    let with_dns = format!("{named}\n[dns]\nservers = [\"10.0.0.53\"]\n");
    let c = Config::parse(&with_dns, Path::new("/kit"), &NoFiles).unwrap();
    assert_eq!(
        c.trunks["echo"].connect,
        Connect::Name {
            host: crate::dns::Name::parse("bridge.hotel.test").unwrap(),
            port: 5071
        }
    );
    assert_eq!(
        c.dns.unwrap().servers,
        vec!["10.0.0.53:53".parse().unwrap()]
    );
    let srv = with_dns.replace(
        "connect = \"bridge.hotel.test:5071\"",
        "connect = \"hotel.test\"\nsrv = true",
    );
    let c = Config::parse(&srv, Path::new("/kit"), &NoFiles).unwrap();
    assert_eq!(
        c.trunks["echo"].connect.to_string(),
        "_sips._tcp.hotel.test SRV"
    );
    let bad = with_dns.replace("bridge.hotel.test:5071", "bridge..test:5071");
    assert!(Config::parse(&bad, Path::new("/kit"), &NoFiles).is_err());
    // A literal needs no [dns]; [dns] alone is fine.
    let c = Config::parse(MINIMAL, Path::new("/kit"), &NoFiles).unwrap();
    assert!(c.dns.is_none());
    assert_eq!(
        c.trunks["echo"].connect.addr(),
        Some("127.0.0.1:5071".parse().unwrap())
    );
}
