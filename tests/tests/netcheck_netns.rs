//! The network check before calls (`[network]`, `gateway/src/netcheck.rs`,
//! `docs/network.md`), in network namespaces made here: a "kit" namespace
//! running `dialgate demo` (its phone side and echo bridge on the
//! namespace's own loopback, so the demo's ports are private to it) with
//! a phone (`tests/peers/sip_tls_uac.py`, alice's token), and an
//! "internet" namespace at the other end of a veth pair holding Debian's
//! nginx (HQ's repository with HQ's pinned certificate and the portal
//! probe's 204; or an interceptor with another CA's certificate; or a
//! captive portal answering every request with a 302) and a STUN server
//! (`tests/peers/stun_server.py`). Asserted: the verdict's audit record
//! (with the interceptor's chain), the phone's final status and Warning,
//! and that a clean network admits the call again. UDP is blocked with
//! nftables in the kit's namespace.
//!
//! Needs root, `ip`, nft, nginx, openssl and python3 (`tests/run` installs
//! them). Only 10.66.N.0/24 inside the namespaces made here is used;
//! processes (by PID) and namespaces are removed on drop. The figures
//! (time to detect each state) are printed as `FIGURE` lines.

#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{render, wait_for, Procs, DIALGATE, PEERS};
use dialgate_tests::run;

const TLS_PORT: u16 = 8443;
const HTTP_PORT: u16 = 8080;
const STUN_PORT: u16 = 3478;

/// The namespaces, the kit and every process started; removed on drop.
struct World {
    kit_ns: String,
    net_ns: String,
    /// 10.66.N.1, the internet side.
    server: String,
    dir: PathBuf,
    kit: PathBuf,
    log: PathBuf,
    /// nginx in its current role (stopped by PID).
    nginx: Option<Procs>,
    /// The gateway and the STUN server (stopped by PID).
    procs: Procs,
}

impl Drop for World {
    fn drop(&mut self) {
        self.nginx.take();
        self.procs.0.drain(..).for_each(|c| drop(Procs(vec![c])));
        for ns in [&self.kit_ns, &self.net_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A certificate for `cn` valid for IP `ip` as `dir/NAME{cert,key}.pem`:
/// issued by `ca` (cert, key) or self-signed.
fn certificate(
    dir: &Path,
    name: &str,
    cn: &str,
    ip: &str,
    ca: Option<(&Path, &Path)>,
) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
    ])
    .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
    .args(["-addext", &format!("subjectAltName=IP:{ip}")])
    .args(["-addext", "basicConstraints=critical,CA:FALSE"])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    if let Some((ca_cert, ca_key)) = ca {
        cmd.arg("-CA").arg(ca_cert).arg("-CAkey").arg(ca_key);
    }
    let out = cmd.output().expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[derive(Clone, Copy, Debug)]
enum Role {
    Hq,
    Interceptor,
    Portal,
}

impl World {
    fn new(test: &str, subnet: u8) -> World {
        let uid = run("id", &["-u"]);
        assert_eq!(
            uid.trim(),
            "0",
            "network namespaces need root: run `bash tests/run` as root"
        );
        let tag = format!("{}{test}", std::process::id());
        let dir = std::env::temp_dir().join(format!("dialgate-netcheck-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let server = format!("10.66.{subnet}.1");
        let w = World {
            kit_ns: format!("dg-nck-{tag}"),
            net_ns: format!("dg-ncn-{tag}"),
            server: server.clone(),
            kit: dir.join("kit"),
            log: dir.join("gateway.log"),
            dir,
            nginx: None,
            procs: Procs(Vec::new()),
        };
        run("ip", &["netns", "add", &w.kit_ns]);
        run("ip", &["netns", "add", &w.net_ns]);
        run(
            "ip",
            &[
                "-n", &w.kit_ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "inet0",
                "netns", &w.net_ns,
            ],
        );
        for (ns, ifname, addr) in [
            (&w.kit_ns, "uplink0", format!("10.66.{subnet}.2/24")),
            (&w.net_ns, "inet0", format!("{server}/24")),
        ] {
            run("ip", &["-n", ns, "addr", "add", &addr, "dev", ifname]);
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        // The kit, made on the host (no network needed), pointed at HQ in
        // the internet namespace, with the network check.
        let out = Command::new(&*DIALGATE)
            .args(["demo", "--init-only", "--hq-url"])
            .arg(format!("https://{server}:{TLS_PORT}/"))
            .arg("--dir")
            .arg(&w.kit)
            .output()
            .expect("dialgate runs");
        assert!(
            out.status.success(),
            "kit created: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = w.kit.join("dialgate.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        assert!(
            !text.contains("[network]"),
            "the demo has no network check of its own"
        );
        text.push_str(&format!(
            "\n[network]\nportal_probe = \"http://{server}:{HTTP_PORT}/generate_204\"\n\
             stun = \"{server}:{STUN_PORT}\"\ninterval_ms = 1000\nrecheck_ms = 500\ntimeout_ms = 1500\n"
        ));
        std::fs::write(&config, text).unwrap();
        // HQ's certificate for its address in the namespace, from HQ's CA.
        let https = w.kit.join("hq/https");
        certificate(
            &w.dir,
            "hq",
            "dialgate test HQ",
            &server,
            Some((&https.join("ca.pem"), &w.kit.join("hq/hq-ca-key.pem"))),
        );
        certificate(&w.dir, "interceptor", "Hotel Interceptor", &server, None);
        certificate(&w.dir, "portal", "Hotel Portal", &server, None);
        w
    }

    /// `cmd` in namespace `ns`, output to `log`: `ip netns exec` execs
    /// it, so the child's PID is the command's.
    fn spawn(ns: &str, cmd: &[&str], log: &Path) -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
    }

    /// nginx in `role` (the one before stopped first); returns once it
    /// answers on the TLS port.
    fn nginx(&mut self, role: Role) {
        self.nginx.take();
        let dir = self.dir.join(format!("nginx-{role:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let name = match role {
            Role::Hq => "hq",
            Role::Interceptor => "interceptor",
            Role::Portal => "portal",
        };
        let p = |f: &str| self.dir.join(f).display().to_string();
        let redirect = "return 302 http://portal.hotel.test/login?ap=lobby;".to_string();
        let (tls_answer, http_answer, verify) = match role {
            Role::Hq => ("etag on;".to_string(), "return 204;".to_string(), "on"),
            Role::Interceptor => ("etag on;".to_string(), "return 204;".to_string(), "on"),
            Role::Portal => (redirect.clone(), redirect, "off"),
        };
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            render(
                "nginx-netcheck.conf",
                &[
                    ("WORK", dir.display().to_string()),
                    ("ADDR", self.server.clone()),
                    ("TLS_PORT", TLS_PORT.to_string()),
                    ("HTTP_PORT", HTTP_PORT.to_string()),
                    ("SERVER_CERT", p(&format!("{name}-cert.pem"))),
                    ("SERVER_KEY", p(&format!("{name}-key.pem"))),
                    (
                        "CLIENT_CA",
                        self.kit
                            .join("hq/https/client-ca.pem")
                            .display()
                            .to_string(),
                    ),
                    ("VERIFY_CLIENT", verify.to_string()),
                    ("REPO", self.kit.join("hq/repo").display().to_string()),
                    ("TLS_ANSWER", tls_answer),
                    ("HTTP_ANSWER", http_answer),
                ],
            ),
        )
        .unwrap();
        let conf_s = conf.display().to_string();
        let child = World::spawn(
            &self.net_ns,
            &["nginx", "-c", &conf_s, "-g", "daemon off;"],
            &dir.join("stdout.log"),
        );
        self.nginx = Some(Procs(vec![child]));
        let deadline = Instant::now() + Duration::from_secs(10);
        let target = format!("{}:{TLS_PORT}", self.server);
        while Instant::now() < deadline {
            let probe = Command::new("ip")
                .args(["netns", "exec", &self.kit_ns, "bash", "-c"])
                .arg(format!("exec 3<>/dev/tcp/{}/{TLS_PORT}", self.server))
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if probe.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "nginx ({role:?}) listens on {target}: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }

    fn start(&mut self) {
        let stun_log = self.dir.join("stun.log");
        let stun = World::spawn(
            &self.net_ns,
            &[
                "python3",
                &format!("{PEERS}/stun_server.py"),
                &self.server,
                &STUN_PORT.to_string(),
            ],
            &stun_log,
        );
        self.procs.0.push(stun);
        assert!(
            wait_for(&stun_log, "STUN listening", Duration::from_secs(10)),
            "STUN server up"
        );
        let kit = self.kit.display().to_string();
        let dialgate = DIALGATE.display().to_string();
        let gw = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.kit_ns,
                &dialgate,
                "demo",
                "--dir",
                &kit,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap())
            .spawn()
            .expect("dialgate runs");
        self.procs.0.push(gw);
        assert!(
            wait_for(&self.log, "listening for phones", Duration::from_secs(30)),
            "gateway up: {}",
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    /// Waits for one more audit record of `verdict` than `before`; the
    /// time it took.
    fn wait_verdict(&self, verdict: &str, before: usize, within: Duration) -> Duration {
        let needle = format!("decision=\"network\" verdict=\"{verdict}\"");
        let start = Instant::now();
        while start.elapsed() < within {
            if self.count(&needle) > before {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no verdict {verdict} within {within:?}:\n{}",
            self.log_text()
        );
    }

    fn verdicts(&self, verdict: &str) -> usize {
        self.count(&format!("decision=\"network\" verdict=\"{verdict}\""))
    }

    /// alice dials `echo` from the kit's namespace; the UAC's output.
    fn call(&self) -> String {
        let tokens = self.kit.join("tokens/alice");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.kit_ns, "python3"])
            .arg(format!("{PEERS}/sip_tls_uac.py"))
            .args([
                "--target",
                "127.0.0.1:5061",
                "--user",
                "echo",
                "--from-user",
                "alice",
            ])
            .arg("--cert")
            .arg(tokens.join("cert.pem"))
            .arg("--key")
            .arg(tokens.join("key.pem"))
            .args([
                "--suites",
                "AES_CM_128_HMAC_SHA1_80",
                "--rtp-port",
                "30700",
                "--hold",
                "1",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("python3 runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn assert_admitted(&self) {
        let out = self.call();
        assert!(
            out.contains("SIP/2.0 200"),
            "the call is answered:\n{out}\n{}",
            self.log_text()
        );
        assert!(!out.contains("SIP/2.0 503"), "{out}");
    }

    fn assert_refused(&self, reason: &str) {
        let out = self.call();
        assert!(out.contains("SIP/2.0 503"), "refused with 503:\n{out}");
        let warning = format!("Warning: 399 dialgate \"{reason}\"");
        assert!(out.contains(&warning), "with {warning}:\n{out}");
        assert!(!out.contains("SIP/2.0 200"), "{out}");
    }

    /// nftables in the kit's namespace: UDP out of the uplink dropped.
    fn block_udp(&self, on: bool) {
        let script = if on {
            "table inet dgtest {\n chain out {\n  type filter hook output priority 0; policy accept;\n  oifname \"uplink0\" meta l4proto udp drop\n }\n}\n"
        } else {
            "delete table inet dgtest\n"
        };
        let path = self.dir.join("block.nft");
        std::fs::write(&path, script).unwrap();
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.kit_ns,
                "nft",
                "-f",
                path.to_str().unwrap(),
            ],
        );
    }

    /// Records of the audit spool that mention `needle` (the trail, not
    /// the console).
    fn spooled(&self, needle: &str) -> bool {
        let spool = self.kit.join("state/audit");
        walk(&spool).iter().any(|f| {
            std::fs::read(f)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        })
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

const INTERCEPTED: &str = "network not secure: TLS interception detected; call refused";
const PORTAL: &str = "network not secure: captive portal detected; call refused";
const UDP_BLOCKED: &str = "network blocks UDP: no secure media path; call refused";
const OFFLINE: &str = "network unreachable: no uplink; call refused";

#[test]
fn hq_interception_and_a_captive_portal_refuse_calls_and_a_clean_network_admits_them() {
    let mut w = World::new("tls", 1);
    w.nginx(Role::Hq);
    let started = Instant::now();
    w.start();
    let t = w.wait_verdict("clean", 0, Duration::from_secs(15));
    println!(
        "FIGURE gateway start to first clean verdict: {} ms (from the gateway's 'listening' line: {} ms)",
        started.elapsed().as_millis(),
        t.as_millis()
    );
    assert!(w.log_text().contains("hq=verified"), "{}", w.log_text());
    w.assert_admitted();

    // An interceptor with another CA's certificate in HQ's place.
    let before = w.verdicts("intercepted");
    w.nginx(Role::Interceptor);
    let t = w.wait_verdict("intercepted", before, Duration::from_secs(15));
    println!(
        "FIGURE interception detected {} ms after the interceptor listened (interval 1 s)",
        t.as_millis()
    );
    let log = w.log_text();
    assert!(
        log.contains("chain_subject=Hotel Interceptor"),
        "the chain seen is recorded:\n{log}"
    );
    assert!(log.contains("chain_issuer=Hotel Interceptor"), "{log}");
    w.assert_refused(INTERCEPTED);
    assert!(
        w.spooled("intercepted"),
        "the verdict is in the audit trail's spool"
    );
    assert!(
        w.log_text().contains(&format!("reason=\"{INTERCEPTED}\"")),
        "the refusal is audited"
    );

    // A captive portal answering everything with a redirect.
    let before = w.verdicts("captive-portal");
    w.nginx(Role::Portal);
    let t = w.wait_verdict("captive-portal", before, Duration::from_secs(15));
    println!(
        "FIGURE captive portal detected {} ms after the portal listened (recheck 0.5 s)",
        t.as_millis()
    );
    assert!(
        w.log_text()
            .contains("portal=redirect 302 to http://portal.hotel.test/login?ap=lobby"),
        "{}",
        w.log_text()
    );
    w.assert_refused(PORTAL);

    // Portal off, HQ back: clean again, calls work.
    let before = w.verdicts("clean");
    w.nginx(Role::Hq);
    let t = w.wait_verdict("clean", before, Duration::from_secs(15));
    println!(
        "FIGURE clean again {} ms after HQ listened (recheck 0.5 s)",
        t.as_millis()
    );
    w.assert_admitted();

    // The uplink hook: SIGUSR1 voids the verdict and checks at once.
    let (checking, clean) = (w.verdicts("checking"), w.verdicts("clean"));
    let gateway = w.procs.0[1].id().to_string();
    run("kill", &["-USR1", &gateway]);
    let signalled = Instant::now();
    w.wait_verdict("checking", checking, Duration::from_secs(5));
    w.wait_verdict("clean", clean, Duration::from_secs(5));
    println!(
        "FIGURE uplink change (SIGUSR1) to clean again: {} ms",
        signalled.elapsed().as_millis()
    );
    assert!(w.log_text().contains("uplink changed (SIGUSR1)"));
    w.assert_admitted();
    // The records, for the docs (`--no-capture`).
    for l in w
        .log_text()
        .lines()
        .filter(|l| l.contains("decision=\"network\""))
    {
        println!("RECORD {l}");
    }
}

#[test]
fn udp_blocked_by_nftables_refuses_calls_until_it_flows_again() {
    let mut w = World::new("udp", 2);
    w.nginx(Role::Hq);
    w.start();
    w.wait_verdict("clean", 0, Duration::from_secs(15));
    assert!(w.log_text().contains("udp=answered in"), "{}", w.log_text());

    let before = w.verdicts("udp-blocked");
    let blocked = Instant::now();
    w.block_udp(true);
    w.wait_verdict("udp-blocked", before, Duration::from_secs(15));
    println!(
        "FIGURE UDP blocked detected {} ms after nft dropped it (interval 1 s, probe bound 1.5 s)",
        blocked.elapsed().as_millis()
    );
    assert!(w.log_text().contains("udp=no-answer"), "{}", w.log_text());
    w.assert_refused(UDP_BLOCKED);

    let before = w.verdicts("clean");
    let open = Instant::now();
    w.block_udp(false);
    w.wait_verdict("clean", before, Duration::from_secs(15));
    println!(
        "FIGURE clean again {} ms after the rule was removed",
        open.elapsed().as_millis()
    );
    w.assert_admitted();

    // HQ (and the portal probe's server) gone, UDP still answered: HQ is
    // merely unreachable, calls go on (the trunk verifies the bridge).
    let before = w.verdicts("hq-unreachable");
    w.nginx.take();
    let gone = Instant::now();
    w.wait_verdict("hq-unreachable", before, Duration::from_secs(15));
    println!(
        "FIGURE hq-unreachable {} ms after nginx stopped",
        gone.elapsed().as_millis()
    );
    w.assert_admitted();
    // And nothing answering at all: offline, refused.
    let before = w.verdicts("offline");
    let stun = w.procs.0.remove(0);
    drop(Procs(vec![stun]));
    w.wait_verdict("offline", before, Duration::from_secs(15));
    w.assert_refused(OFFLINE);
}
