//! The appliance image under qemu (`image/run`), shared by the image and
//! firmware tests: boot it, read its console, press its buttons, and
//! handshake with it as a phone. Ports: SIP/TLS 5261, media 42000-42009,
//! 5299 forwarded where nothing may answer; tests using them run one at a
//! time (`.config/nextest.toml`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SIP: u16 = 5261;
pub const MEDIA: u16 = 42000;
/// Forwarded to the guest, where nothing may answer.
pub const PROBE: u16 = 5299;
pub const IMAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../image");

/// One booted appliance: `image/run` in its own process group (qemu is
/// its child); dropped, the whole group is killed.
pub struct Appliance {
    pub child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    pub monitor: PathBuf,
}

/// What `image/run` says its scratch folder is (removed on drop: a
/// `kill -9` leaves it behind).
const SCRATCH: &str = "image/run: scratch ";

impl Appliance {
    pub fn boot(work: &Path, kit: &Path, disk: Option<&Path>) -> Appliance {
        let mut args = vec!["--kit".into(), kit.display().to_string()];
        if let Some(d) = disk {
            args.extend(["--disk".into(), d.display().to_string()]);
        }
        Appliance::boot_with(work, &args)
    }

    pub fn boot_with(work: &Path, args: &[String]) -> Appliance {
        let out = Path::new(IMAGE).join("out");
        assert!(
            out.join("manifest").exists(),
            "no image: run image/build first (tests/run does)"
        );
        let monitor = work.join("monitor.sock");
        let mut cmd = Command::new(Path::new(IMAGE).join("run"));
        cmd.args(args)
            .args(["--port", &SIP.to_string(), "--media", &MEDIA.to_string()])
            .arg("--monitor")
            .arg(&monitor)
            .args(["--probe", &PROBE.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd.spawn().expect("image/run starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                eprintln!("guest| {line}");
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Appliance {
            child,
            lines,
            monitor,
        }
    }

    /// Waits for a console line containing `needle`; its arrival time.
    pub fn wait_line(&self, needle: &str, within: Duration) -> Option<(Instant, String)> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, l)| l.contains(needle))
            {
                return Some(l.clone());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// How many console lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .count()
    }

    pub fn console(&self) -> String {
        let l = self.lines.lock().unwrap();
        l.iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn monitor(&self, command: &str) {
        let mut s = std::os::unix::net::UnixStream::connect(&self.monitor).expect("qemu monitor");
        s.write_all(format!("{command}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-9", "--", &pgid]).status();
        let _ = self.child.wait();
        let scratch = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .find_map(|(_, l)| l.strip_prefix(SCRATCH).map(PathBuf::from));
        if let Some(dir) = scratch.filter(|d| d.starts_with(std::env::temp_dir())) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A TLS 1.3 handshake to the appliance with `who`'s token certificate:
/// when it completed, once the server has also kept the connection (it
/// judges the client certificate after the client's Finished).
pub fn handshake(kit: &Path, who: &str) -> Result<Instant, String> {
    use rustls::pki_types::ServerName;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in dialgate::tls::load_certs(&kit.join("ca.pem")).map_err(|e| e.to_string())? {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let token = kit.join("tokens").join(who);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            dialgate::tls::load_certs(&token.join("cert.pem")).map_err(|e| e.to_string())?,
            dialgate::tls::load_key(&token.join("key.pem")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect(("127.0.0.1", SIP)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    let done = Instant::now();
    // TLS 1.3: the server judges the client certificate after the client's
    // Finished; a refusal arrives as an alert. Send a CRLF keep-alive
    // (RFC 5626) and see whether the connection survives.
    conn.writer()
        .write_all(b"\r\n\r\n")
        .map_err(|e| e.to_string())?;
    conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    match conn.complete_io(&mut tcp) {
        Err(e)
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut =>
        {
            Err(e.to_string())
        }
        _ => Ok(done),
    }
}

pub fn workdir(name: &str) -> PathBuf {
    let work = std::env::temp_dir().join(format!("dialgate-image-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    work
}

/// Writes baresip configurations for alice and mallory into `kit` that use
/// ports of their own (5280/5282, media 43000-43019), not the demo's.
pub fn baresip_configs(kit: &Path) {
    dialgate::demo::write_baresip_configs(kit).expect("baresip configs");
    for (who, sip, rtp) in [("alice", 5280, 43000), ("mallory", 5282, 43010)] {
        let path = kit.join("baresip").join(who).join("config");
        let c = std::fs::read_to_string(&path).unwrap();
        let lo = dialgate::demo::baresip_port(who);
        let c = c
            .replace(&format!("127.0.0.1:{lo}"), &format!("127.0.0.1:{sip}"))
            .lines()
            .map(|l| {
                if l.starts_with("rtp_ports") {
                    format!("rtp_ports\t\t{rtp}-{}", rtp + 9)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        std::fs::write(&path, c).unwrap();
    }
}

/// `who` (see [`baresip_configs`]) calls the echo participant through the
/// appliance for `seconds`; baresip's output.
pub fn baresip(kit: &Path, who: &str, seconds: u32) -> String {
    let out = Command::new("baresip")
        .args(["-f", &kit.join("baresip").join(who).display().to_string()])
        .args([
            "-e",
            &format!("/dial sip:echo@127.0.0.1:{SIP}"),
            "-t",
            &seconds.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("baresip runs (apt-get install baresip)");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// A tap interface for one of the VM's NICs (`image/run --phones-tap` or
/// `--uplink-tap`) and the network namespace it moves into once qemu holds
/// it; both removed on drop (deleting the namespace deletes the tap in it).
pub struct TapNs {
    pub ns: String,
    pub tap: String,
}

impl TapNs {
    /// Makes the tap (in the host's namespace, for qemu to open by name)
    /// and the empty namespace.
    pub fn new(ns: String, tap: String) -> TapNs {
        let t = TapNs { ns, tap };
        dialgate_tests::run("ip", &["tuntap", "add", "dev", &t.tap, "mode", "tap"]);
        dialgate_tests::run("ip", &["netns", "add", &t.ns]);
        t
    }

    /// Waits until qemu holds the tap (a tap's carrier follows its file
    /// being open), then moves it into the namespace, with `addr` (CIDR)
    /// if given, and brings it and loopback up there.
    pub fn move_in(&self, addr: Option<&str>) {
        use dialgate_tests::run;
        run("ip", &["link", "set", &self.tap, "up"]);
        let carrier = format!("/sys/class/net/{}/carrier", self.tap);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&carrier).unwrap_or_default().trim() != "1" {
            assert!(Instant::now() < deadline, "qemu never opened {}", self.tap);
            std::thread::sleep(Duration::from_millis(20));
        }
        run("ip", &["link", "set", &self.tap, "netns", &self.ns]);
        run("ip", &["-n", &self.ns, "link", "set", "lo", "up"]);
        if let Some(a) = addr {
            run("ip", &["-n", &self.ns, "addr", "add", a, "dev", &self.tap]);
        }
        run("ip", &["-n", &self.ns, "link", "set", &self.tap, "up"]);
    }

    /// `cmd` in the namespace, to its end.
    pub fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(cmd)
            .output()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
    }

    /// `cmd` in the namespace, started: stdout to `log`, stderr beside it.
    pub fn spawn(&self, cmd: &[&str], log: &Path) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
    }
}

impl Drop for TapNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        // Still in the host's namespace if the test failed before the move.
        let _ = Command::new("ip")
            .args(["link", "del", &self.tap])
            .stderr(Stdio::null())
            .status();
    }
}
