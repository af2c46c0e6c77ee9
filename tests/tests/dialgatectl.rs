//! `dialgatectl` as the kit officer uses it: create the home PKI, sign the
//! registry into a policy bundle for one kit, verify it as the kit would;
//! hostile variants (other kit, one byte changed, another HQ's key) are
//! refused, and a revocation shows up in the next version.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn ctl_bin() -> std::path::PathBuf {
    common::bin("dialgatectl")
}

fn ctl(args: &[&str]) -> Output {
    Command::new(ctl_bin())
        .args(args)
        .output()
        .expect("dialgatectl runs")
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn home_pki_policy_bundles_and_revocation() {
    let work = std::env::temp_dir().join(format!("dialgate-ctl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (hq, other_hq, kit) = (work.join("hq"), work.join("other-hq"), work.join("kit"));
    assert!(ctl(&["pki", "init", "--dir", p(&hq)]).status.success());
    let again = ctl(&["pki", "init", "--dir", p(&hq)]);
    assert!(!again.status.success() && text(&again).contains("refusing to overwrite"));
    for secret in ["policy-key.pk8", "token-ca-key.pem"] {
        let mode = std::fs::metadata(hq.join(secret))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{secret}");
    }
    assert!(ctl(&["pki", "init", "--dir", p(&other_hq)])
        .status
        .success());
    let status = Command::new(&*common::DIALGATE)
        .args(["demo", "--init-only", "--dir", p(&kit)])
        .output()
        .unwrap()
        .status;
    assert!(status.success());

    // The kit's own HQ registry and directory, signed with this HQ's key.
    let registry = kit.join("hq/registry.toml");
    std::fs::copy(kit.join("hq/directory.toml"), hq.join("directory.toml")).unwrap();
    let bundle = work.join("policy-1.bundle");
    let key = hq.join("policy-key.pub.pem");
    // No --version: one above the last built in this HQ.
    let build = |out: &Path| {
        ctl(&[
            "policy",
            "build",
            "--dir",
            p(&hq),
            "--registry",
            p(&registry),
            "--kit",
            "kit-1",
            "--out",
            p(out),
        ])
    };
    let b = build(&bundle);
    assert!(b.status.success(), "{}", text(&b));
    let show = ctl(&[
        "policy",
        "show",
        "--key",
        p(&key),
        "--kit",
        "kit-1",
        p(&bundle),
    ]);
    let shown = text(&show);
    assert!(show.status.success(), "{shown}");
    assert!(shown.contains("valid policy version 1"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.contains("alice") && l.contains("active")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.contains("mallory") && l.contains("REVOKED")),
        "{shown}"
    );

    // Hostile: another kit, one byte changed, another HQ's key.
    let other_kit = ctl(&[
        "policy",
        "show",
        "--key",
        p(&key),
        "--kit",
        "kit-2",
        p(&bundle),
    ]);
    assert!(!other_kit.status.success() && text(&other_kit).contains("does not list this kit"));
    let mut bytes = std::fs::read(&bundle).unwrap();
    let i = bytes.iter().position(|&c| c == b'=').unwrap() + 2; // inside the body
    bytes[i] ^= 0x01;
    let tampered = work.join("tampered.bundle");
    std::fs::write(&tampered, &bytes).unwrap();
    let t = ctl(&[
        "policy",
        "show",
        "--key",
        p(&key),
        "--kit",
        "kit-1",
        p(&tampered),
    ]);
    assert!(
        !t.status.success(),
        "tampered bundle accepted: {}",
        text(&t)
    );
    let other_key = other_hq.join("policy-key.pub.pem");
    let o = ctl(&[
        "policy",
        "show",
        "--key",
        p(&other_key),
        "--kit",
        "kit-1",
        p(&bundle),
    ]);
    assert!(
        !o.status.success(),
        "bundle accepted under another HQ's key: {}",
        text(&o)
    );

    // alice's token is lost: revoke, build version 2, verify.
    assert!(
        ctl(&["token", "revoke", "--registry", p(&registry), "alice"])
            .status
            .success()
    );
    let bundle2 = work.join("policy-2.bundle");
    let b2 = build(&bundle2);
    assert!(
        b2.status.success() && text(&b2).contains("policy version 2"),
        "{}",
        text(&b2)
    );
    let show2 = text(&ctl(&[
        "policy",
        "show",
        "--key",
        p(&key),
        "--kit",
        "kit-1",
        p(&bundle2),
    ]));
    assert!(
        show2
            .lines()
            .any(|l| l.contains("alice") && l.contains("REVOKED")),
        "{show2}"
    );
    // The demo kit's HQ is managed the same way, by --dir alone.
    let list = text(&ctl(&["token", "list", "--dir", p(&kit.join("hq"))]));
    assert!(list.contains("alice") && list.contains("REVOKED"), "{list}");
    // Without a signing key, build says what to do.
    let none = ctl(&[
        "policy",
        "build",
        "--dir",
        p(&work.join("nowhere")),
        "--kit",
        "k",
        "--out",
        p(&work.join("x.bundle")),
    ]);
    assert!(
        !none.status.success() && text(&none).contains("dialgatectl pki init"),
        "{}",
        text(&none)
    );
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn pki_kit_issues_a_kits_identities_from_the_kit_ca() {
    let work = std::env::temp_dir().join(format!("dialgate-ctl-kit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let hq = work.join("hq");
    let pki_kit = |kit: &str, rest: &[&str]| {
        ctl(&[&["pki", "kit", "--dir", p(&hq), "--kit", kit], rest].concat())
    };
    // Before pki init: says what to do.
    let early = pki_kit("k1", &["--address", "10.1.2.3"]);
    assert!(
        !early.status.success() && text(&early).contains("pki init"),
        "{}",
        text(&early)
    );
    assert!(ctl(&["pki", "init", "--dir", p(&hq)]).status.success());
    let out = pki_kit(
        "k1",
        &["--address", "10.1.2.3", "--address", "kit1.example"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let kit = hq.join("kits/k1");
    for (f, mode) in [
        ("gateway-key.pem", 0o600),
        ("device-key.pem", 0o600),
        ("gateway-cert.pem", 0o644),
        ("policy-key.pub.pem", 0o644),
    ] {
        let m = std::fs::metadata(kit.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{f}");
    }
    // Both certificates chain to the kit CA (checked by OpenSSL), the
    // server one for the given names, the device one for client auth.
    for (cert, purpose) in [
        ("gateway-cert.pem", "sslserver"),
        ("device-cert.pem", "sslclient"),
    ] {
        let v = openssl(&[
            "verify",
            "-purpose",
            purpose,
            "-CAfile",
            p(&hq.join("kit-ca.pem")),
            p(&kit.join(cert)),
        ]);
        assert!(v.status.success(), "{cert}: {}", text(&v));
    }
    let san = openssl(&[
        "x509",
        "-noout",
        "-ext",
        "subjectAltName",
        "-in",
        p(&kit.join("gateway-cert.pem")),
    ]);
    let san = text(&san);
    assert!(
        san.contains("10.1.2.3") && san.contains("kit1.example"),
        "{san}"
    );
    // The token CA does not vouch for a kit.
    let wrong = openssl(&[
        "verify",
        "-CAfile",
        p(&hq.join("token-ca.pem")),
        p(&kit.join("gateway-cert.pem")),
    ]);
    assert!(!wrong.status.success());
    // Never overwritten; bad kit ids refused.
    let again = pki_kit("k1", &["--address", "10.1.2.3"]);
    assert!(!again.status.success() && text(&again).contains("refusing to overwrite"));
    let bad = pki_kit("../x", &["--address", "10.1.2.3"]);
    assert!(!bad.status.success());
    std::fs::remove_dir_all(&work).ok();
}
