//! The kit's status at home: `dialgate demo --pushgateway URL` pushes its
//! counters every second to a real Prometheus Pushgateway (Debian's
//! `prometheus-pushgateway`, 1.5.1) behind TLS 1.3 with client
//! certificates required (its own `--web.config.file`, the demo's
//! `DIR/hq/https/` files); calls by alice (one completed, one in
//! progress) and refused phones (eve not registered, mallory revoked,
//! both with baresip) show in the Pushgateway and in `dialgatectl kits`,
//! which flags the kit overdue once the demo stops. A Pushgateway with
//! another CA's certificate gets nothing while calls go on; the kit
//! pushes again, by itself, once the real one is back.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{baresip, bin, start_demo, wait_for, wait_port, Procs, DIALGATE};
use dialgate_proto::metrics::{parse_text, ParsedSample};

/// A Pushgateway on 127.0.0.1:`port`, everything it writes under `dir`.
struct Pushgateway {
    dir: PathBuf,
    child: Option<Child>,
}

impl Pushgateway {
    /// Serving with `cert`/`key`, requiring client certificates of the
    /// kit's `client-ca.pem`.
    fn start(dir: &Path, kit: &Path, port: u16, cert: &Path, key: &Path) -> Pushgateway {
        std::fs::create_dir_all(dir).unwrap();
        let web = dir.join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  min_version: TLS13\n",
                cert.display(),
                key.display(),
                kit.join("hq/https/client-ca.pem").display()
            ),
        )
        .unwrap();
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.config.file={}", web.display()))
            // Debian's build persists to /var/lib/prometheus by default.
            .arg(format!(
                "--persistence.file={}",
                dir.join("pg.data").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("pushgateway.log")).unwrap())
            .spawn()
            .expect("prometheus-pushgateway runs (apt-get install prometheus-pushgateway)");
        assert!(
            wait_port(port, Duration::from_secs(10)),
            "the Pushgateway listens: {}",
            std::fs::read_to_string(dir.join("pushgateway.log")).unwrap_or_default()
        );
        Pushgateway {
            dir: dir.to_path_buf(),
            child: Some(child),
        }
    }

    /// With the demo's HQ server certificate.
    fn hq(dir: &Path, kit: &Path, port: u16) -> Pushgateway {
        let https = kit.join("hq/https");
        Pushgateway::start(
            dir,
            kit,
            port,
            &https.join("server-cert.pem"),
            &https.join("server-key.pem"),
        )
    }

    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            drop(Procs(vec![c]));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pushgateway.log")).unwrap_or_default()
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        self.stop();
    }
}

fn url(port: u16) -> String {
    format!("https://127.0.0.1:{port}/")
}

/// `dialgate demo --init-only --pushgateway URL --dir KIT`.
fn init_kit(kit: &Path, port: u16) {
    let out = Command::new(&*DIALGATE)
        .args(["demo", "--init-only", "--pushgateway", &url(port), "--dir"])
        .arg(kit)
        .output()
        .expect("dialgate runs");
    assert!(
        out.status.success(),
        "kit created: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = std::fs::read_to_string(kit.join("dialgate.toml")).unwrap();
    assert!(config.contains("[status]"), "{config}");
}

/// curl against the Pushgateway with the kit's device certificate,
/// trusting `ca`: (body, HTTP code).
fn curl(kit: &Path, port: u16, ca: &Path, path: &str) -> (String, String) {
    let device = |f: &str| kit.join("device").join(f);
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg("--cert")
        .arg(device("cert.pem"))
        .arg("--key")
        .arg(device("key.pem"))
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_string(), code.to_string())
}

/// The demo kit's samples as the Pushgateway serves them (`/metrics`).
fn kit_samples(kit: &Path, port: u16) -> Vec<ParsedSample> {
    let (body, code) = curl(kit, port, &kit.join("hq/https/ca.pem"), "/metrics");
    assert_eq!(code, "200", "the Pushgateway answers: {body}");
    parse_text(&body)
        .expect("the Pushgateway's text parses")
        .into_iter()
        .filter(|s| s.label("job") == Some("dialgate") && s.label("kit") == Some("demo-kit"))
        .collect()
}

fn value(samples: &[ParsedSample], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && label.is_none_or(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
}

/// Waits until `check` holds for the kit's samples; the last ones.
fn wait_samples(
    kit: &Path,
    port: u16,
    within: Duration,
    check: impl Fn(&[ParsedSample]) -> bool,
) -> Result<Vec<ParsedSample>, Vec<ParsedSample>> {
    let deadline = Instant::now() + within;
    loop {
        let s = kit_samples(kit, port);
        if check(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            return Err(s);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kits(kit: &Path, port: u16, overdue: &str, with_cert: bool) -> Output {
    let mut c = Command::new(bin("dialgatectl"));
    c.args([
        "kits",
        "--pushgateway",
        &url(port),
        "--overdue",
        overdue,
        "--ca",
    ])
    .arg(kit.join("hq/https/ca.pem"));
    if with_cert {
        c.arg("--cert")
            .arg(kit.join("device/cert.pem"))
            .arg("--key")
            .arg(kit.join("device/key.pem"));
    }
    c.output().expect("dialgatectl runs")
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Audit lines of the gateway's log holding every one of `needles`.
fn audit_count(log: &Path, needles: &[&str]) -> usize {
    log_text(log)
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// A self-signed certificate (another CA) valid for 127.0.0.1, as
/// `dir/{cert,key}.pem`.
fn other_ca_cert(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl makes a certificate");
    (cert, key)
}

#[test]
fn calls_and_refusals_reach_the_pushgateway_and_dialgatectl_kits() {
    const PORT: u16 = 20491;
    let (work, kit, log) = common::work_dir("e2e-status");
    init_kit(&kit, PORT);
    let pg = Pushgateway::hq(&work.join("pushgateway"), &kit, PORT);
    // Without a client certificate the Pushgateway serves no one.
    let refused = kits(&kit, PORT, "3", false);
    assert!(!refused.status.success(), "no client certificate: refused");
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    let first = wait_samples(&kit, PORT, Duration::from_secs(10), |s| {
        value(s, "push_time_seconds", None).is_some()
    })
    .unwrap_or_else(|s| panic!("the kit pushed: {s:?}\n{}", log_text(&log)));
    assert_eq!(
        value(&first, "dialgate_policy_version", None),
        Some(1.0),
        "{first:?}"
    );
    assert_eq!(
        value(&first, "dialgate_firmware_info", Some(("version", "0.1.0"))),
        Some(1.0)
    );
    assert_eq!(
        value(&first, "dialgate_calls_completed_total", None),
        Some(0.0)
    );

    // Refused: eve (not registered) and mallory (revoked), with baresip.
    // baresip waits ~32 s on a failed TLS connect and ignores -t meanwhile
    // (as in e2e_demo): both run at once and are stopped once the gateway
    // has recorded both refusals.
    let revoked = || audit_count(&log, &["decision=\"refused\"", "reason=\"revoked\""]);
    let unknown = || audit_count(&log, &["decision=\"refused\"", "reason=\"not registered\""]);
    let tries: Vec<(Child, PathBuf)> = ["eve", "mallory"]
        .into_iter()
        .map(|who| {
            let out = work.join(format!("{who}.log"));
            let child = Command::new("baresip")
                .args(["-f", &kit.join("baresip").join(who).display().to_string()])
                .args(["-e", "/dial sip:echo@127.0.0.1:5061", "-t", "5"])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .expect("baresip runs");
            (child, out)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (revoked() == 0 || unknown() == 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // A moment for retries, so that the counts below are final.
    std::thread::sleep(Duration::from_secs(1));
    for (child, out) in tries {
        drop(Procs(vec![child]));
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(
            !text.contains("Call established"),
            "a refused phone got a call: {text}"
        );
    }
    let (revoked, unknown) = (revoked(), unknown());
    assert!(revoked >= 1 && unknown >= 1, "{}", log_text(&log));

    // One completed call, then one in progress.
    let ups = audit_count(&log, &["call up"]);
    assert!(baresip(&kit, "alice", 3).status.success());
    assert_eq!(
        audit_count(&log, &["call up"]),
        ups + 1,
        "alice's call was up"
    );
    // Long enough to be seen live, short enough to hang up by itself
    // (a killed baresip sends no BYE: the call would wait for media
    // inactivity).
    let mut live = Procs(vec![Command::new("baresip")
        .args(["-f", &kit.join("baresip/alice").display().to_string()])
        .args(["-e", "/dial sip:echo@127.0.0.1:5061", "-t", "8"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip runs")]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while audit_count(&log, &["call up"]) < ups + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let expected = |s: &[ParsedSample]| {
        value(s, "dialgate_calls_in_progress", None) == Some(1.0)
            && value(s, "dialgate_calls_completed_total", None) == Some(1.0)
            && value(
                s,
                "dialgate_admission_refused_total",
                Some(("reason", "revoked")),
            ) == Some(revoked as f64)
            && value(
                s,
                "dialgate_admission_refused_total",
                Some(("reason", "not registered")),
            ) == Some(unknown as f64)
    };
    let during = wait_samples(&kit, PORT, Duration::from_secs(10), expected)
        .unwrap_or_else(|s| panic!("the calls in the Pushgateway: {s:?}\n{}", log_text(&log)));
    assert_eq!(
        value(
            &during,
            "dialgate_srtp_auth_failed_total",
            Some(("leg", "phone"))
        ),
        Some(0.0),
        "no forged media in these calls"
    );
    // The time floor's age: the demo's policy was signed minutes ago.
    let age = value(&during, "dialgate_time_floor_age_seconds", None);
    assert!(
        age.is_some_and(|a| (0.0..600.0).contains(&a)),
        "time floor age {age:?}"
    );
    // Its JSON API agrees that the last push succeeded.
    let (api, code) = curl(&kit, PORT, &kit.join("hq/https/ca.pem"), "/api/v1/metrics");
    assert_eq!(code, "200");
    assert!(api.contains("\"kit\":\"demo-kit\"") && api.contains("\"last_push_successful\":true"));

    let shown = kits(&kit, PORT, "3", true);
    let report = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    println!("{report}");
    assert!(
        report.starts_with("kit demo-kit  last check-in "),
        "{report}"
    );
    assert!(!report.contains("OVERDUE"), "{report}");
    for needle in [
        "firmware 0.1.0 (slot unknown)".to_string(),
        "policy version 1, expires ".to_string(),
        "calls in progress 1, completed 1, failed 0".to_string(),
        format!("not registered: {unknown}"),
        format!("revoked: {revoked}"),
        "srtp auth failed 0, replayed 0".to_string(),
    ] {
        assert!(report.contains(&needle), "{needle:?} in:\n{report}");
    }

    // The live call ends: completed 2, none in progress.
    let hung_up = Instant::now() + Duration::from_secs(20);
    while live.0[0].try_wait().unwrap().is_none() && Instant::now() < hung_up {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(live);
    wait_samples(&kit, PORT, Duration::from_secs(10), |s| {
        value(s, "dialgate_calls_in_progress", None) == Some(0.0)
            && value(s, "dialgate_calls_completed_total", None) == Some(2.0)
    })
    .unwrap_or_else(|s| panic!("the ended call in the Pushgateway: {s:?}"));

    // The kit stops: its check-in ages past --overdue.
    drop(procs);
    std::thread::sleep(Duration::from_millis(4500));
    let late = kits(&kit, PORT, "3", true);
    let report = String::from_utf8_lossy(&late.stdout).into_owned();
    assert!(late.status.success(), "{report}");
    assert!(report.contains("OVERDUE (more than 3 s)"), "{report}");
    assert!(
        report.contains("calls in progress 0, completed 2"),
        "{report}"
    );
    // The default (180 s) does not flag it.
    let lenient = kits(&kit, PORT, "180", true);
    assert!(!String::from_utf8_lossy(&lenient.stdout).contains("OVERDUE"));
    assert!(!pg.log().contains("level=error"), "{}", pg.log());
    drop(pg);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_pushgateway_of_another_ca_gets_nothing_and_calls_go_on() {
    const PORT: u16 = 20492;
    let (work, kit, log) = common::work_dir("e2e-status-other-ca");
    init_kit(&kit, PORT);
    let (cert, key) = other_ca_cert(&work.join("other-ca"));
    let mut impostor = Pushgateway::start(&work.join("impostor"), &kit, PORT, &cert, &key);
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    assert!(
        wait_for(
            &log,
            "decision=\"status\" reason=\"unreachable\"",
            Duration::from_secs(10)
        ),
        "the refused push is audited:\n{}",
        log_text(&log)
    );
    // Calls go on meanwhile.
    let ups = audit_count(&log, &["call up"]);
    assert!(baresip(&kit, "alice", 3).status.success());
    assert_eq!(
        audit_count(&log, &["call up"]),
        ups + 1,
        "a call during the outage"
    );
    // Nothing reached the impostor (asked with its own CA).
    let (body, code) = curl(&kit, PORT, &cert, "/metrics");
    assert_eq!(code, "200", "{body}");
    assert!(
        !body.contains("demo-kit"),
        "the impostor got a push:\n{body}"
    );
    assert!(!body.contains("dialgate_"), "{body}");
    // One audit record for the whole outage, however many pushes failed.
    assert_eq!(
        audit_count(&log, &["decision=\"status\"", "reason=\"unreachable\""]),
        1,
        "{}",
        log_text(&log)
    );
    // The real one back on that address: pushing resumes by itself.
    impostor.stop();
    let pg = Pushgateway::hq(&work.join("pushgateway"), &kit, PORT);
    assert!(
        wait_for(
            &log,
            "decision=\"status\" reason=\"reachable\"",
            Duration::from_secs(70)
        ),
        "pushing resumed:\n{}",
        log_text(&log)
    );
    let back = wait_samples(&kit, PORT, Duration::from_secs(5), |s| {
        value(s, "dialgate_calls_completed_total", None) == Some(1.0)
    })
    .unwrap_or_else(|s| panic!("the call made during the outage is counted: {s:?}"));
    assert!(value(&back, "push_time_seconds", None).is_some());
    drop(procs);
    drop(pg);
    std::fs::remove_dir_all(&work).ok();
}
