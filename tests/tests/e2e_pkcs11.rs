//! End to end with a hardware-held key: a SoftHSM2 token enrolled with
//! `dialgatectl token enroll` into a demo kit's HQ, the kit's policy bundle
//! signed with `dialgatectl policy build`, then a call through
//! `dialgate run` placed by OpenSSL's `s_client` using the token-held key
//! through PKCS#11 (Debian's `libengine-pkcs11-openssl`), the private key
//! never leaving the token.
//!
//! - bob (the token) calls `echo`: 100, 200 with an SDES answer, ACK, BYE,
//!   200;
//! - bob's token with `From: alice` gets 403;
//! - eve (token CA, not registered), mallory (revoked), a certificate from
//!   another CA and an expired certificate from the token CA (both with
//!   their keys registered; the other CA even has the token CA's name) are
//!   refused at the TLS handshake: no SIP
//!   answer, an alert, and the gateway logs why.
//!
//! Ports: the gateway listens on 127.0.0.1:5161 (the demo's 5061 is left
//! to the other end-to-end tests), media 42000-42999, and the echo bridge
//! runs in this process on an ephemeral port.

mod common;
mod softhsm;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{edit_config, init_kit, publish_policy, wait_for, Procs, DIALGATE};
use dialgate_hq::pki::{Ca, Validity};

use softhsm::{text, Hsm, MODULE, PIN};

const PHONE_PORT: u16 = 5161;

/// An OpenSSL `s_client` connection to the gateway driven over its stdin
/// and stdout, and the SIP messages it received.
struct Phone {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    seen: usize,
    stderr: PathBuf,
}

/// How the phone holds its key.
enum Key<'a> {
    /// On the SoftHSM token, through the pkcs11 engine.
    Token { hsm: &'a Hsm, uri: String },
    /// A PEM file.
    File(&'a Path),
}

impl Phone {
    fn connect(kit: &Path, cert: &Path, key: Key<'_>, stderr: PathBuf) -> Phone {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-connect", &format!("127.0.0.1:{PHONE_PORT}")])
            .args(["-quiet", "-nocommands", "-verify_return_error", "-CAfile"])
            .arg(kit.join("ca.pem"))
            .arg("-cert")
            .arg(cert);
        match key {
            Key::Token { hsm, uri } => {
                cmd.env("SOFTHSM2_CONF", &hsm.conf)
                    .env("OPENSSL_CONF", engine_conf(hsm))
                    .args(["-engine", "pkcs11", "-keyform", "engine", "-key", &uri]);
            }
            Key::File(path) => {
                cmd.arg("-key").arg(path);
            }
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("openssl runs");
        let mut stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Phone {
            stdin: child.stdin.take(),
            child,
            out,
            seen: 0,
            stderr,
        }
    }

    fn send(&mut self, msg: &str) {
        let stdin = self.stdin.as_mut().expect("open");
        // The connection may already be refused; the caller checks that.
        let _ = stdin.write_all(msg.as_bytes());
        let _ = stdin.flush();
    }

    /// The next whole SIP message received within `within`.
    fn next_message(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            {
                let out = self.out.lock().unwrap();
                let rest = &out[self.seen..];
                if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&rest[..end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            let k = k.trim().to_ascii_lowercase();
                            (k == "content-length" || k == "l").then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0usize);
                    if rest.len() >= end + 4 + len {
                        let msg = String::from_utf8_lossy(&rest[..end + 4 + len]).to_string();
                        self.seen += end + 4 + len;
                        return Some(msg);
                    }
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next response that is not provisional.
    fn final_response(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(m) = self.next_message(deadline.saturating_duration_since(Instant::now())) {
            if m.starts_with("SIP/2.0 1") {
                continue;
            }
            return Some(m);
        }
        None
    }

    /// Waits for s_client to end (within `within`), then returns
    /// everything it wrote.
    fn finish(&mut self, within: Duration) -> (String, String) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg(self.child.id().to_string())
                .status();
        }
        let _ = self.child.wait();
        let out = String::from_utf8_lossy(&self.out.lock().unwrap()).to_string();
        (
            out,
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }
}

/// An OpenSSL configuration that loads the pkcs11 engine with SoftHSM
/// (tests/peers/hsm/make-hsm-identity.sh, verified in tests/peers/NOTES.md).
fn engine_conf(hsm: &Hsm) -> PathBuf {
    let path = hsm.dir.join("openssl-pkcs11.cnf");
    if !path.exists() {
        // ENGINESDIR: "/usr/lib/x86_64-linux-gnu/engines-3"
        let dirs = Command::new("openssl")
            .args(["version", "-e"])
            .output()
            .expect("openssl runs");
        let engines = String::from_utf8_lossy(&dirs.stdout)
            .split('"')
            .nth(1)
            .expect("openssl version -e names ENGINESDIR")
            .to_string();
        std::fs::write(
            &path,
            format!(
                "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
                 [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n\
                 dynamic_path = {engines}/pkcs11.so\n\
                 MODULE_PATH = {MODULE}\ninit = 0\n"
            ),
        )
        .unwrap();
    }
    path
}

fn tag() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}{:x}", n, std::process::id())
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 42990 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=sendrecv\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIz\r\na=ptime:20\r\n";

struct Dialog {
    from_user: String,
    call_id: String,
    from_tag: String,
}

impl Dialog {
    fn new(from_user: &str) -> Dialog {
        Dialog {
            from_user: from_user.into(),
            call_id: format!("{}@e2e-pkcs11", tag()),
            from_tag: tag(),
        }
    }

    fn request(
        &self,
        method: &str,
        uri: &str,
        cseq: u32,
        to_tag: Option<&str>,
        extra: &str,
        body: &str,
    ) -> String {
        let mut m = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{}@127.0.0.1>;tag={}\r\nTo: <sip:echo@127.0.0.1:{PHONE_PORT}>{}\r\n\
             Call-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{}@127.0.0.1:5999;transport=tls>\r\n{extra}",
            tag(),
            self.from_user,
            self.from_tag,
            to_tag.map(|t| format!(";tag={t}")).unwrap_or_default(),
            self.call_id,
            self.from_user,
        );
        if !body.is_empty() {
            m.push_str("Content-Type: application/sdp\r\n");
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        m
    }

    fn invite(&self) -> String {
        self.request(
            "INVITE",
            &format!("sip:echo@127.0.0.1:{PHONE_PORT};transport=tls"),
            1,
            None,
            "",
            SDP,
        )
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

fn to_tag(msg: &str) -> String {
    let to = header(msg, "To").first().copied().unwrap_or_default();
    to.split(";tag=")
        .nth(1)
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn uri_in_brackets(v: &str) -> String {
    v.split('<')
        .nth(1)
        .and_then(|r| r.split('>').next())
        .unwrap_or(v)
        .to_string()
}

/// Appends a registry entry for the key of `cert` under `name`.
fn register(registry: &Path, name: &str, cert: &rustls::pki_types::CertificateDer<'_>) {
    let key = dialgate::tls::key_hash_of(cert).unwrap();
    let mut text = std::fs::read_to_string(registry).unwrap();
    text.push_str(&format!(
        "\n[[token]]\nname = \"{name}\"\nkey_sha256 = \"{}\"\naliases = [\"echo\"]\nunattested = true\n",
        key.to_hex()
    ));
    std::fs::write(registry, text).unwrap();
}

#[test]
fn a_token_held_key_places_a_call_and_everything_else_is_refused() {
    let hsm = Hsm::new("e2e");
    let kit = hsm.dir.join("kit");
    init_kit(&kit);
    // The kit's home side: its token CA and its registry, from which the
    // kit's signed policy bundle is built.
    let hq = kit.join("hq");
    let registry = hq.join("registry.toml");

    // Certificates that must be refused even though their keys are in the
    // registry: one from another CA that takes the token CA's name (its
    // signature gives it away), one from the token CA that expired.
    let rogue_dir = hsm.dir.join("rogue");
    let old_dir = hsm.dir.join("old");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    std::fs::create_dir_all(&old_dir).unwrap();
    let rogue = Ca::new("dialgate demo token CA", Validity::days_from_now(30))
        .unwrap()
        .issue_client("rogue", Validity::days_from_now(30))
        .unwrap();
    rogue.write_to(&rogue_dir).unwrap();
    let token_ca = Ca::load(
        &std::fs::read_to_string(hq.join("token-ca.pem")).unwrap(),
        &std::fs::read_to_string(hq.join("token-ca-key.pem")).unwrap(),
    )
    .unwrap();
    let old = token_ca.issue_client("old", Validity::expired()).unwrap();
    old.write_to(&old_dir).unwrap();
    register(&registry, "rogue", &rogue.der);
    register(&registry, "old", &old.der);

    // bob: a SoftHSM token, enrolled into the kit's HQ; then the policy is
    // signed for the kit, as the officer does.
    hsm.init_token("bob-token");
    let out = hsm.enroll(&hq, "bob", "bob-token", &["--aliases", "echo"]);
    assert!(out.status.success(), "enrolment: {}", text(&out));
    let published = publish_policy(&kit, &[]);
    assert!(published.contains("5 tokens"), "{published}");

    // The echo bridge in this process, the gateway on its own ports.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bridge = rt
        .block_on(dialgate::echo::start(
            "127.0.0.1:0".parse().unwrap(),
            dialgate::tls::load_certs(&kit.join("bridge/cert.pem")).unwrap(),
            dialgate::tls::load_key(&kit.join("bridge/key.pem")).unwrap(),
            "127.0.0.1".parse().unwrap(),
        ))
        .unwrap();
    edit_config(&kit, |c| {
        let swaps = [
            (
                format!("listen = \"{}\"", dialgate::demo::PHONE_LISTEN),
                format!("listen = \"127.0.0.1:{PHONE_PORT}\""),
            ),
            (
                format!("connect = \"{}\"", dialgate::demo::BRIDGE_LISTEN),
                format!("connect = \"{bridge}\""),
            ),
            ("port_min = 30000".into(), "port_min = 42000".into()),
            ("port_max = 39999".into(), "port_max = 42899".into()),
        ];
        swaps.into_iter().fold(c, |c, (from, to)| {
            assert!(c.contains(&from), "kit config lacks {from:?}");
            c.replace(&from, &to)
        })
    });
    let log = hsm.dir.join("gateway.log");
    let procs = Procs(vec![Command::new(&*DIALGATE)
        .args(["run", "--config"])
        .arg(kit.join("dialgate.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap()]);
    assert!(
        wait_for(&log, "listening for phones", Duration::from_secs(20)),
        "gateway up: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let gw = || std::fs::read_to_string(&log).unwrap_or_default();

    let bob_cert = hq.join("tokens/bob/cert.pem");
    let bob_key = || Key::Token {
        hsm: &hsm,
        uri: format!("pkcs11:token=bob-token;object=bob;type=private;pin-value={PIN}"),
    };

    // bob's token with alice's identity: 403.
    let mut phone = Phone::connect(
        &kit,
        &bob_cert,
        bob_key(),
        hsm.dir.join("s_client-mismatch.err"),
    );
    let d = Dialog::new("alice");
    phone.send(&d.invite());
    let answer = phone.final_response(Duration::from_secs(15));
    let (_, err) = phone.finish(Duration::from_millis(100));
    let answer = answer.unwrap_or_else(|| panic!("an answer to alice's INVITE: {err}\n{}", gw()));
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    assert!(gw().contains("phone admitted at TLS"), "{}", gw());

    // bob's call: 200 with an SDES answer, ACK, BYE, 200.
    let mut phone = Phone::connect(&kit, &bob_cert, bob_key(), hsm.dir.join("s_client-bob.err"));
    let d = Dialog::new("bob");
    phone.send(&d.invite());
    let ok = phone.final_response(Duration::from_secs(15));
    let ok = ok.unwrap_or_else(|| {
        let (o, e) = phone.finish(Duration::from_millis(100));
        panic!("no answer to bob's INVITE:\n{o}\n{e}\n{}", gw())
    });
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}\n{}", gw());
    let body = ok.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        body.contains("m=audio ") && body.contains("RTP/SAVP"),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")),
        "an SDES answer: {body}"
    );
    assert!(
        !body.contains("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIz"),
        "a fresh key, not ours"
    );
    let to = to_tag(&ok);
    let contact = uri_in_brackets(header(&ok, "Contact").first().copied().unwrap_or_default());
    let routes: Vec<String> = header(&ok, "Record-Route")
        .iter()
        .rev()
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    phone.send(&d.request("ACK", &contact, 1, Some(&to), &routes.concat(), ""));
    std::thread::sleep(Duration::from_millis(500));
    phone.send(&d.request("BYE", &contact, 2, Some(&to), &routes.concat(), ""));
    let bye_ok = phone.final_response(Duration::from_secs(10));
    let (_, err) = phone.finish(Duration::from_millis(100));
    let bye_ok = bye_ok.unwrap_or_else(|| panic!("an answer to BYE: {err}\n{}", gw()));
    assert!(
        bye_ok.starts_with("SIP/2.0 200") && bye_ok.contains("CSeq: 2 BYE"),
        "{bye_ok}"
    );
    assert!(gw().contains("token=bob"), "{}", gw());

    // Refused at the handshake: no SIP answer, an alert, and the reason
    // in the gateway's log.
    let cases: [(&str, PathBuf, PathBuf, &str); 4] = [
        (
            "eve",
            kit.join("tokens/eve/cert.pem"),
            kit.join("tokens/eve/key.pem"),
            "not registered",
        ),
        (
            "mallory",
            kit.join("tokens/mallory/cert.pem"),
            kit.join("tokens/mallory/key.pem"),
            "revoked",
        ),
        (
            "another CA",
            rogue_dir.join("cert.pem"),
            rogue_dir.join("key.pem"),
            "BadSignature",
        ),
        (
            "expired",
            old_dir.join("cert.pem"),
            old_dir.join("key.pem"),
            "certificate expired",
        ),
    ];
    for (who, cert, key, reason) in cases {
        let before = gw().len();
        let mut phone = Phone::connect(
            &kit,
            &cert,
            Key::File(&key),
            hsm.dir.join("s_client-refused.err"),
        );
        phone.send(&Dialog::new(who).invite());
        let (out, err) = phone.finish(Duration::from_secs(10));
        assert!(!out.contains("SIP/2.0"), "{who}: got SIP: {out}");
        assert!(err.contains("alert"), "{who}: no TLS alert: {err}");
        let deadline = Instant::now() + Duration::from_secs(5);
        let new_lines = loop {
            let now = gw()[before..].to_string();
            if now.contains("decision=\"refused\"") || Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            new_lines.contains("decision=\"refused\""),
            "{who}: the gateway refused the handshake:\n{new_lines}"
        );
        assert!(
            new_lines.contains(reason),
            "{who}: {reason:?} in\n{new_lines}"
        );
    }
    drop(procs);
    drop(rt);
}
