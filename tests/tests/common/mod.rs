//! Helpers shared by the end-to-end tests: processes started and stopped
//! by PID, waiting for log lines, driving baresip.

#![allow(dead_code)]

pub mod appliance;
pub mod hq;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers");

/// Kills (SIGTERM, then waits) the processes this test started.
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn wait_for(path: &Path, needle: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(path) {
            let _ = f.read_to_string(&mut s);
            if s.contains(needle) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub fn baresip(kit: &Path, who: &str, seconds: u32) -> std::process::Output {
    baresip_to(kit, who, "echo", seconds)
}

/// Like [`baresip`], dialling `alias`.
pub fn baresip_to(kit: &Path, who: &str, alias: &str, seconds: u32) -> std::process::Output {
    Command::new("baresip")
        .args(["-f", &kit.join("baresip").join(who).display().to_string()])
        .args([
            "-e",
            &format!("/dial sip:{alias}@127.0.0.1:5061"),
            "-t",
            &seconds.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("baresip runs (apt-get install baresip)")
}

pub fn recordings(kit: &Path, who: &str) -> Vec<PathBuf> {
    std::fs::read_dir(kit.join("baresip").join(who).join("recordings"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// alice's received-audio recordings that hold her 1 kHz tone.
pub fn alice_heard_her_tone(kit: &Path) -> Result<(), String> {
    let heard: Vec<PathBuf> = recordings(kit, "alice")
        .into_iter()
        .filter(|p| p.display().to_string().ends_with("-dec.wav"))
        .collect();
    if heard.len() != 1 {
        return Err(format!("expected one recording, found {heard:?}"));
    }
    let check = Command::new("python3")
        .arg(format!("{PEERS}/wavcheck.py"))
        .arg(&heard[0])
        .args(["1000", "0.6"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if check.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&check.stdout).into_owned())
    }
}

/// A template of tests/peers with its `@NAME@` placeholders filled.
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = std::fs::read_to_string(format!("{PEERS}/{template}")).expect("template");
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    // No `@NAME@` placeholder may be left.
    let left = s
        .split('@')
        .skip(1)
        .step_by(2)
        .find(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
    assert!(
        left.is_none(),
        "placeholder @{}@ left in {template}",
        left.unwrap_or_default()
    );
    s
}

pub fn wait_port(port: u16, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The `dialgate` binary of this build (tests/run builds the binaries
/// before the tests: `cargo build --workspace --bins`).
pub static DIALGATE: std::sync::LazyLock<PathBuf> = std::sync::LazyLock::new(|| bin("dialgate"));

pub use dialgate_tests::bin;

/// `dialgate demo --init-only --dir KIT`.
pub fn init_kit(kit: &Path) {
    let status = Command::new(&*DIALGATE)
        .args(["demo", "--init-only", "--dir"])
        .arg(kit)
        .stdout(Stdio::null())
        .status()
        .expect("dialgate runs");
    assert!(status.success(), "kit created");
}

/// Rewrites the kit's configuration with `edit`.
pub fn edit_config(kit: &Path, edit: impl FnOnce(String) -> String) {
    let path = kit.join("dialgate.toml");
    let text = std::fs::read_to_string(&path).expect("kit config");
    let edited = edit(text.clone());
    assert_ne!(text, edited, "the edit changed the configuration");
    std::fs::remove_file(&path).expect("remove config");
    std::fs::write(&path, edited).expect("write config");
}

/// Starts `dialgate demo --dir KIT` (stderr to `log`) among `procs` and
/// waits until it listens for phones.
pub fn start_demo(procs: &mut Procs, kit: &Path, log: &Path) {
    procs.0.push(
        Command::new(&*DIALGATE)
            .args(["demo", "--dir"])
            .arg(kit)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("dialgate runs"),
    );
    assert!(
        wait_for(log, "listening for phones", Duration::from_secs(30)),
        "gateway up: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Points the demo kit's trunk elsewhere: its `connect` address and,
/// optionally, its TLS host name and the lines that replace `ca = ...`.
/// Each replacement must take effect.
pub fn repoint_trunk(kit: &Path, connect: &str, host: Option<&str>, trust: Option<&str>) {
    let swap = |text: String, from: String, to: String| {
        assert!(text.contains(&from), "kit config lacks {from:?}");
        text.replace(&from, &to)
    };
    edit_config(kit, |conf| {
        let mut conf = swap(
            conf,
            format!("connect = \"{}\"", dialgate::demo::BRIDGE_LISTEN),
            format!("connect = \"{connect}\""),
        );
        if let Some(host) = host {
            conf = swap(
                conf,
                format!("host = \"{}\"", dialgate::demo::BRIDGE_HOST),
                format!("host = \"{host}\""),
            );
        }
        if let Some(trust) = trust {
            conf = swap(conf, "ca = \"bridge/ca.pem\"".into(), trust.into());
        }
        conf
    });
}

/// How a scripted call through the gateway ended.
#[derive(Debug)]
pub struct CallOutcome {
    /// The final status of the INVITE.
    pub status: u16,
    /// The whole final response, as text (for Warning headers and SDP).
    pub response: String,
}

fn tls_client(kit: &Path, who: &str) -> std::sync::Arc<rustls::ClientConfig> {
    use dialgate::tls::{load_certs, load_key};
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(&kit.join("ca.pem")).expect("kit CA") {
        roots.add(c).expect("kit CA usable");
    }
    let dir = kit.join("tokens").join(who);
    // A phone with the post-quantum hybrid first, as a modern client.
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: dialgate::tls::phone_kx_groups(dialgate::tls::PqPolicy::Prefer),
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            load_certs(&dir.join("cert.pem")).expect("token cert"),
            load_key(&dir.join("key.pem")).expect("token key"),
        )
        .expect("client config");
    std::sync::Arc::new(cfg)
}

/// A TLS connection to the gateway at `addr` with the kit's token `who`,
/// and its local address.
pub fn phone_tls(
    kit: &Path,
    addr: &str,
    who: &str,
) -> Result<(PhoneTls, std::net::SocketAddr), String> {
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let conn =
        rustls::ClientConnection::new(tls_client(kit, who), name).map_err(|e| e.to_string())?;
    Ok((rustls::StreamOwned::new(conn, tcp), local))
}

/// A phone's TLS connection.
pub type PhoneTls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A framer for reading a phone connection's messages (keep one per
/// connection: it holds bytes that arrived with the previous message).
pub fn framer() -> dialgate::sip::Framer {
    dialgate::sip::Framer::client(dialgate::sip::Limits::default())
}

/// Reads from `s` until a SIP message arrives (or the stream ends).
pub fn read_message(
    s: &mut PhoneTls,
    framer: &mut dialgate::sip::Framer,
) -> Result<dialgate::sip::Message, String> {
    use dialgate::sip::Event;
    let mut buf = vec![0u8; 16384];
    loop {
        match framer.poll_event() {
            Ok(Some(Event::Message(m))) => return Ok(m),
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let k = std::io::Read::read(s, &mut buf).map_err(|e| e.to_string())?;
        if k == 0 {
            return Err("connection closed".into());
        }
        framer.handle_data(&buf[..k]);
    }
}

/// Places one call as `who` (the kit's token `who`, with `from` as the SIP
/// identity) to `alias` through the gateway at `addr`, with a real SRTP
/// offer: INVITE, and on 200 ACK and BYE. `Err` when the TLS handshake or
/// the connection fails (the gateway refused the token).
pub fn sip_call(
    kit: &Path,
    addr: &str,
    who: &str,
    from: &str,
    alias: &str,
) -> Result<CallOutcome, String> {
    use dialgate::sip::{Event, Framer, Limits, Message};
    use dialgate::srtp::{format_inline, MasterKey, Suite};
    use std::io::Write;
    let (mut s, local) = phone_tls(kit, addr, who)?;
    let key = MasterKey::generate(Suite::AesCm128HmacSha1_80).map_err(|e| e.to_string())?;
    let n = local.port();
    let sdp = format!(
        "v=0\r\no=- {n} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\na=sendrecv\r\n",
        40000 + (n % 1000) * 2,
        &*format_inline(&key)
    );
    let head = |method: &str, cseq: u32, to_tag: &str| {
        format!(
            "{method} sip:{alias}@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bK-{method}-{n}\r\nMax-Forwards: 70\r\n\
             From: <sip:{from}@127.0.0.1>;tag=t{n}\r\nTo: <sip:{alias}@127.0.0.1>{to_tag}\r\n\
             Call-ID: scripted-{n}@test\r\nCSeq: {cseq} {method}\r\nContact: <sip:{from}@{local};transport=tls>\r\n"
        )
    };
    let invite = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        head("INVITE", 1, ""),
        sdp.len()
    );
    s.write_all(invite.as_bytes()).map_err(|e| e.to_string())?;
    let mut framer = Framer::client(Limits::default());
    let mut buf = vec![0u8; 16384];
    let mut read_until =
        |s: &mut rustls::StreamOwned<_, _>, cseq: u32| -> Result<Message, String> {
            loop {
                while let Ok(Some(ev)) = framer.poll_event() {
                    if let Event::Message(m) = ev {
                        if m.status().is_some_and(|c| c.as_u16() >= 200) && m.cseq().seq == cseq {
                            return Ok(m);
                        }
                    }
                }
                let k = std::io::Read::read(s, &mut buf).map_err(|e| e.to_string())?;
                if k == 0 {
                    return Err("connection closed".into());
                }
                framer.handle_data(&buf[..k]);
            }
        };
    let fin = read_until(&mut s, 1)?;
    let status = fin.status().map_or(0, |c| c.as_u16());
    let response = String::from_utf8_lossy(&fin.to_bytes()).to_string();
    if status == 200 {
        let tag = format!(";tag={}", fin.to().tag().unwrap_or_default());
        let ack = format!("{}Content-Length: 0\r\n\r\n", head("ACK", 1, &tag));
        let bye = format!("{}Content-Length: 0\r\n\r\n", head("BYE", 2, &tag));
        s.write_all(ack.as_bytes()).map_err(|e| e.to_string())?;
        s.write_all(bye.as_bytes()).map_err(|e| e.to_string())?;
        let done = read_until(&mut s, 2)?;
        if done.status().map(|c| c.as_u16()) != Some(200) {
            return Err(format!("BYE answered {:?}", done.status()));
        }
    }
    Ok(CallOutcome { status, response })
}

/// `dialgatectl ARGS...`; panics with its output if it fails.
pub fn ctl(args: &[&str]) -> String {
    let out = Command::new(bin("dialgatectl"))
        .args(args)
        .output()
        .expect("dialgatectl runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dialgatectl {args:?}: {text}");
    text
}

/// Signs the kit's HQ registry and directory into its policy bundle (the
/// next version), as the kit officer does; the running gateway applies it
/// within a second.
pub fn publish_policy(kit: &Path, extra: &[&str]) -> String {
    let hq = kit.join("hq");
    let out = kit.join("policy.bundle");
    let mut args = vec![
        "policy",
        "build",
        "--dir",
        hq.to_str().expect("utf-8 path"),
        "--kit",
        dialgate::demo::KIT_ID,
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    ctl(&args)
}

/// Rewrites the kit's HQ meeting directory with `edit` and publishes it.
pub fn edit_directory(kit: &Path, edit: impl FnOnce(String) -> String) {
    let path = kit.join("hq/directory.toml");
    let text = std::fs::read_to_string(&path).expect("HQ directory");
    let edited = edit(text.clone());
    assert_ne!(text, edited, "the edit changed the directory");
    std::fs::write(&path, edited).expect("write directory");
    publish_policy(kit, &[]);
}

/// A fresh work folder for one test, `TMP/dialgate-NAME-PID`, with the
/// kit and gateway log paths inside it (nothing created but the folder).
pub fn work_dir(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let work = std::env::temp_dir().join(format!("dialgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work folder");
    let kit = work.join("kit");
    let log = work.join("gateway.log");
    (work, kit, log)
}

/// A new directory entry `alias` to the demo's echo bridge (its SIP user
/// `user`), granted to alice, signed into the kit's policy.
pub fn add_echo_alias(kit: &Path, alias: &str, user: &str) {
    let registry = kit.join("hq/registry.toml");
    let text = std::fs::read_to_string(&registry).expect("HQ registry");
    let granted = text.replacen(
        "aliases = [\"echo\"]",
        &format!("aliases = [\"echo\", \"{alias}\"]"),
        1,
    );
    assert_ne!(text, granted, "alice's grant edited");
    std::fs::write(&registry, granted).expect("write registry");
    edit_directory(kit, |d| {
        d + &format!(
            "\n[[directory]]\nalias = \"{alias}\"\nuri = \"sip:{user}@{}\"\ntrunk = \"echo\"\n",
            dialgate::demo::BRIDGE_HOST
        )
    });
}

/// Removes a test's work folder when it ends without a panic (declare it
/// before the processes that write there, so that it drops after them);
/// a failed test keeps its folder for the post-mortem.
pub struct RemoveOnSuccess(pub PathBuf);

impl Drop for RemoveOnSuccess {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
