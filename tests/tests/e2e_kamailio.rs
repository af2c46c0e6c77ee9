//! End to end with a real SIP proxy on the trunk: the gateway's trunk goes
//! to **Kamailio** (TLS only, record-routing, verifying the gateway's
//! client certificate and the bridge's certificate), which forwards to the
//! demo's echo bridge. baresip as alice calls `echo` through
//! gateway -> Kamailio -> bridge and hears her own tone back.
//!
//! Needs kamailio (with its tls module), baresip and python3.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    alice_heard_her_tone, baresip, init_kit, render, repoint_trunk, start_demo, wait_port, Procs,
};
use dialgate_hq::pki::{write_file, Ca, Validity};

const PROXY_PORT: u16 = 5091;

#[test]
fn baresip_call_through_gateway_and_kamailio_to_the_bridge() {
    call_through_kamailio(false);
}

/// The proxy Record-Routes through a second TLS port (as Webex sends ACK
/// and BYE to port 5062): the gateway opens a connection to that hop and
/// sends the in-dialog requests there.
#[test]
fn in_dialog_requests_follow_record_route_to_a_second_proxy_port() {
    call_through_kamailio(true);
}

const REROUTE_PORT: u16 = 5092;

fn call_through_kamailio(reroute: bool) {
    let work =
        std::env::temp_dir().join(format!("dialgate-e2e-kam-{}-{reroute}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let kit = work.join("kit");
    let kam = work.join("kamailio");
    std::fs::create_dir_all(&kam).unwrap();
    init_kit(&kit);

    // The proxy's PKI: its server certificate (which the gateway's trunk
    // verifies, with the host name) and the gateway's client certificate
    // (which Kamailio requires).
    let v = Validity::days_from_now(30);
    let proxy_ca = Ca::new("proxy CA", v).unwrap();
    let proxy = proxy_ca
        .issue_server("kamailio", &["proxy.dialgate.test", "127.0.0.1"], v)
        .unwrap();
    let gw_client = proxy_ca.issue_client("dialgate kit", v).unwrap();
    std::fs::create_dir_all(kam.join("proxy")).unwrap();
    std::fs::create_dir_all(kam.join("gw")).unwrap();
    proxy.write_to(&kam.join("proxy")).unwrap();
    gw_client.write_to(&kam.join("gw")).unwrap();
    write_file(
        &kam.join("proxy-ca.pem"),
        proxy_ca.cert_pem().as_bytes(),
        0o644,
    )
    .unwrap();
    // Kamailio trusts the proxy CA (for the gateway) and the bridge CA.
    let bridge_ca = std::fs::read_to_string(kit.join("bridge/ca.pem")).unwrap();
    write_file(
        &kam.join("cas.pem"),
        format!("{}{bridge_ca}", proxy_ca.cert_pem()).as_bytes(),
        0o644,
    )
    .unwrap();

    let d = |p: &Path| p.display().to_string();
    let tls_cfg = render(
        "kamailio/tls.cfg.tmpl",
        &[
            ("PROXY_PORT", PROXY_PORT.to_string()),
            ("CERT", d(&kam.join("proxy/cert.pem"))),
            ("KEY", d(&kam.join("proxy/key.pem"))),
            ("CLIENT_CERT", d(&kam.join("proxy/cert.pem"))),
            ("CLIENT_KEY", d(&kam.join("proxy/key.pem"))),
            ("CA", d(&kam.join("cas.pem"))),
        ],
    );
    std::fs::write(kam.join("tls.cfg"), tls_cfg).unwrap();
    let cfg = render(
        "kamailio/kamailio.cfg.tmpl",
        &[
            ("PROXY_PORT", PROXY_PORT.to_string()),
            ("BRIDGE_ADDR", dialgate::demo::BRIDGE_LISTEN.to_string()),
            ("TLS_CFG", d(&kam.join("tls.cfg"))),
            ("RUN_DIR", d(&kam)),
        ],
    );
    let cfg = if reroute {
        let listen = format!("listen=tls:127.0.0.1:{PROXY_PORT}");
        let extra = format!(
            "{listen}\nlisten=tls:127.0.0.1:{REROUTE_PORT}\nalias=\"127.0.0.1:{REROUTE_PORT}\""
        );
        let rr = format!("record_route_preset(\"127.0.0.1:{REROUTE_PORT};transport=tls\");");
        assert!(cfg.contains(&listen) && cfg.contains("record_route();"));
        cfg.replacen(&listen, &extra, 1)
            .replacen("record_route();", &rr, 1)
    } else {
        cfg
    };
    // Log the port each request arrived on.
    let cfg = cfg.replacen("\"REQ $rm $ru from", "\"REQ $rm $ru port $Rp from", 1);
    std::fs::write(kam.join("kamailio.cfg"), cfg).unwrap();

    // Point the kit's trunk at Kamailio.
    let trust = format!(
        "ca = \"{}\"\nclient_certificate = \"{}\"\nclient_key = \"{}\"",
        d(&kam.join("proxy-ca.pem")),
        d(&kam.join("gw/cert.pem")),
        d(&kam.join("gw/key.pem"))
    );
    repoint_trunk(
        &kit,
        &format!("127.0.0.1:{PROXY_PORT}"),
        Some("proxy.dialgate.test"),
        Some(&trust),
    );
    if reroute {
        // The trunk lists the proxy's second port as a Record-Route hop:
        // the gateway follows no hop its configuration does not name.
        common::edit_config(&kit, |conf| {
            let connect = format!("connect = \"127.0.0.1:{PROXY_PORT}\"");
            assert!(conf.contains(&connect));
            conf.replacen(
                &connect,
                &format!("{connect}\nroutes = [\"127.0.0.1:{REROUTE_PORT}\"]"),
                1,
            )
        });
    }

    let mut procs = Procs(Vec::new());
    let kam_log = work.join("kamailio.log");
    procs.0.push(
        Command::new("kamailio")
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
            .arg(kam.join("kamailio.cfg"))
            .arg("-P")
            .arg(kam.join("kamailio.pid"))
            .arg("-Y")
            .arg(&kam)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&kam_log).unwrap())
            .spawn()
            .expect("kamailio runs (apt-get install kamailio kamailio-tls-modules)"),
    );
    assert!(
        wait_port(PROXY_PORT, Duration::from_secs(20)),
        "kamailio up: {}",
        std::fs::read_to_string(&kam_log).unwrap_or_default()
    );
    let log = work.join("gateway.log");
    start_demo(&mut procs, &kit, &log);

    let out = baresip(&kit, "alice", 10);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let gw = std::fs::read_to_string(&log).unwrap();
    let kl = std::fs::read_to_string(&kam_log).unwrap_or_default();
    assert!(
        text.contains("Call established"),
        "alice's call:\n{text}\ngateway:\n{gw}\nkamailio:\n{kl}"
    );
    alice_heard_her_tone(&kit).expect("alice hears her tone back through the proxy");
    assert!(
        kl.contains("REQ INVITE"),
        "the INVITE went through Kamailio:\n{kl}"
    );
    let arrived = |method: &str, port: u16| {
        kl.lines()
            .any(|l| l.contains(&format!("REQ {method} ")) && l.contains(&format!("port {port} ")))
    };
    assert!(arrived("INVITE", PROXY_PORT), "{kl}");
    if reroute {
        assert!(
            arrived("ACK", REROUTE_PORT),
            "ACK followed the Record-Route:\n{kl}"
        );
        assert!(
            arrived("BYE", REROUTE_PORT),
            "BYE followed the Record-Route:\n{kl}"
        );
    }
    assert!(
        kl.contains("REQ BYE") || kl.contains("REQ ACK"),
        "in-dialog requests followed the Record-Route:\n{kl}"
    );
    assert!(gw.contains("trunk connected"), "{gw}");
    assert!(gw.contains("call up"), "{gw}");
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}
