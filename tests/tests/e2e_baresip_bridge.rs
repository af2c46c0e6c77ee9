//! baresip as the phone *and* as the bridge: alice (baresip) calls `echo`
//! through the gateway; the trunk goes to a second baresip, auto-answering
//! with its echo module over SIP/TLS + SRTP with its own certificate. alice
//! hears her tone back through two independent SRTP legs. Then the bridge
//! hangs up: baresip sends its BYE to the gateway's Contact on a connection
//! of its own, which the bridge-side listener admits by the bridge's
//! certificate; the call ends on both legs.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    alice_heard_her_tone, baresip, edit_config, edit_directory, init_kit, render, repoint_trunk,
    start_demo, wait_port, Procs,
};
use dialgate_hq::pki::{write_file, Ca, Validity};

/// baresip's UDP/TCP port; its TLS listener is this + 1.
const BRIDGE_SIP: u16 = 5110;

#[test]
fn baresip_phone_to_baresip_bridge_through_the_gateway() {
    let work = std::env::temp_dir().join(format!("dialgate-e2e-bb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let kit = work.join("kit");
    let bridge = work.join("bridge");
    std::fs::create_dir_all(bridge.join("rec")).unwrap();
    init_kit(&kit);

    // The bridge's own CA and certificate (baresip wants cert and key in
    // one file).
    let v = Validity::days_from_now(30);
    let ca = Ca::new("baresip bridge CA", v).unwrap();
    let cert = ca
        .issue_server("baresip bridge", &["127.0.0.1"], v)
        .unwrap();
    write_file(&bridge.join("ca.pem"), ca.cert_pem().as_bytes(), 0o644).unwrap();
    let combined = format!("{}{}", cert.cert_pem, *cert.key_pem);
    write_file(&bridge.join("cert-and-key.pem"), combined.as_bytes(), 0o600).unwrap();
    let d = |p: &std::path::Path| p.display().to_string();
    let config = render(
        "baresip/config.echo.tmpl",
        &[
            ("SIP_PORT", BRIDGE_SIP.to_string()),
            ("CERT", d(&bridge.join("cert-and-key.pem"))),
            ("CAFILE", d(&bridge.join("ca.pem"))),
            ("REC_DIR", d(&bridge.join("rec"))),
            ("RTP_PORTS", "22000-22009".into()),
            ("CTRL_PORT", "4460".into()),
            ("ROLE", "bridge".into()),
        ],
    );
    std::fs::write(bridge.join("config"), config).unwrap();
    std::fs::write(
        bridge.join("accounts"),
        render("baresip/accounts.echo.tmpl", &[("USER", "echo".into())]),
    )
    .unwrap();

    // The kit's trunk goes to baresip instead of the built-in echo bridge.
    repoint_trunk(
        &kit,
        &format!("127.0.0.1:{}", BRIDGE_SIP + 1),
        Some("127.0.0.1"),
        Some(&format!("ca = \"{}\"", d(&bridge.join("ca.pem")))),
    );
    edit_directory(&kit, |dir| {
        dir.replace(
            &format!("uri = \"sip:echo@{}\"", dialgate::demo::BRIDGE_HOST),
            "uri = \"sip:echo@127.0.0.1\"",
        )
    });

    // Bridges that open their own connection reach the kit here.
    edit_config(&kit, |conf| {
        conf + "\n[bridge_listener]\nlisten = \"127.0.0.1:5073\"\n\
                certificate = \"gateway/cert.pem\"\nkey = \"gateway/key.pem\"\n"
    });

    let mut procs = Procs(Vec::new());
    let bridge_log = work.join("bridge.log");
    procs.0.push(
        Command::new("baresip")
            .arg("-f")
            .arg(&bridge)
            // The bridge quits (hanging up) about 5 s into alice's call.
            .args(["-t", "7"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&bridge_log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("baresip runs"),
    );
    assert!(
        wait_port(BRIDGE_SIP + 1, Duration::from_secs(15)),
        "baresip bridge listening"
    );
    let log = work.join("gateway.log");
    start_demo(&mut procs, &kit, &log);

    let out = baresip(&kit, "alice", 10);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let gw = std::fs::read_to_string(&log).unwrap();
    let bl = std::fs::read_to_string(&bridge_log).unwrap_or_default();
    assert!(
        text.contains("Call established"),
        "alice:\n{text}\ngateway:\n{gw}\nbridge:\n{bl}"
    );
    assert!(gw.contains("call up"), "{gw}");
    assert!(
        bl.contains("SRTP is Enabled"),
        "the bridge leg is SRTP:\n{bl}"
    );
    alice_heard_her_tone(&kit).expect("alice hears her tone back from baresip's echo");
    // The bridge's BYE came on its own connection, was admitted by its
    // certificate, and ended the call on both legs.
    assert!(
        gw.contains("bridge connected to the bridge-side listener"),
        "{gw}"
    );
    assert!(gw.contains("reason=\"bridge hung up\""), "{gw}");
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}
