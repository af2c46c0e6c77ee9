//! Helpers shared by the end-to-end tests: processes started and stopped
//! by PID, waiting for log lines, driving baresip.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/peers");

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
    Command::new("baresip")
        .args(["-f", &kit.join("baresip").join(who).display().to_string()])
        .args([
            "-e",
            "/dial sip:echo@127.0.0.1:5061",
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

/// The `dialgate` binary under test.
pub const DIALGATE: &str = env!("CARGO_BIN_EXE_dialgate");

/// `dialgate demo --init-only --dir KIT`.
pub fn init_kit(kit: &Path) {
    let status = Command::new(DIALGATE)
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
        Command::new(DIALGATE)
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
