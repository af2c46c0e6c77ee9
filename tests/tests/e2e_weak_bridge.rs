//! A bridge that answers insecurely is refused, and the phone gets an error
//! rather than an insecure call. The trunk goes to a scripted SIP/TLS bridge
//! (`tests/peers/sip_tls_probe.py`) that answers 200 with plain RTP/AVP, or
//! with an SRTP suite the gateway never offered. baresip (alice) must get
//! 488 and no call; the gateway ACKs and hangs up the bridge leg.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{baresip, init_kit, repoint_trunk, start_demo, Procs, PEERS};

const PROBE_PORT: u16 = 5101;

#[test]
fn plain_rtp_or_unoffered_crypto_from_the_bridge_gives_the_phone_488() {
    for answer in ["none", "AES_CM_128_HMAC_SHA1_32"] {
        let work =
            std::env::temp_dir().join(format!("dialgate-e2e-weak-{}-{answer}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let kit = work.join("kit");
        std::fs::create_dir_all(&work).unwrap();
        init_kit(&kit);
        repoint_trunk(&kit, &format!("127.0.0.1:{PROBE_PORT}"), None, None);

        let mut procs = Procs(Vec::new());
        let probe_log = work.join("probe.log");
        procs.0.push(
            Command::new("python3")
                .arg(format!("{PEERS}/sip_tls_probe.py"))
                .args([
                    "--port",
                    &PROBE_PORT.to_string(),
                    "--reply",
                    "200",
                    "--answer-suite",
                    answer,
                ])
                .args(["--count", "1", "--timeout", "30", "--cert"])
                .arg(kit.join("bridge/cert.pem"))
                .arg("--key")
                .arg(kit.join("bridge/key.pem"))
                .arg("--log")
                .arg(&probe_log)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let log = work.join("gateway.log");
        start_demo(&mut procs, &kit, &log);
        std::thread::sleep(Duration::from_millis(300));

        let out = baresip(&kit, "alice", 6);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let gw = std::fs::read_to_string(&log).unwrap();
        let probe = std::fs::read_to_string(&probe_log).unwrap_or_default();
        assert!(
            !text.contains("Call established"),
            "{answer}: insecure call established:\n{text}"
        );
        assert!(
            text.contains("488"),
            "{answer}: phone told 488:\n{text}\n{gw}"
        );
        assert!(gw.contains("bridge answer refused"), "{answer}:\n{gw}");
        assert!(!gw.contains("call up"), "{answer}: media started:\n{gw}");
        assert!(
            probe.contains("ACK sip:"),
            "{answer}: the bridge's 200 was ACKed:\n{probe}"
        );
        assert!(
            probe.contains("BYE sip:"),
            "{answer}: and the bridge leg hung up:\n{probe}"
        );
        drop(procs);
        std::fs::remove_dir_all(&work).ok();
    }
}
