//! HQ's side for the management tests: nginx serving the kit's repository
//! (Debian's nginx, `tests/peers/nginx-hq.conf`, with client-certificate
//! verification), a managed demo kit, and log helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ctl, render, start_demo, wait_for, wait_port, Procs, DIALGATE};

/// nginx as HQ's HTTPS server, everything it writes under `dir`.
pub struct Nginx {
    conf: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Nginx {
    pub fn new(work: &Path, kit: &Path, port: u16) -> Nginx {
        let https = kit.join("hq/https");
        Nginx::serving_as(
            &work.join("nginx"),
            kit,
            port,
            &https.join("server-cert.pem"),
            &https.join("server-key.pem"),
        )
    }

    /// An nginx in `dir` presenting `cert` (an interceptor: another CA's).
    pub fn serving_as(dir: &Path, kit: &Path, port: u16, cert: &Path, key: &Path) -> Nginx {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let https = kit.join("hq/https");
        let p = |f: &str| https.join(f).display().to_string();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            render(
                "nginx-hq.conf",
                &[
                    ("WORK", dir.display().to_string()),
                    ("PORT", port.to_string()),
                    ("SERVER_CERT", cert.display().to_string()),
                    ("SERVER_KEY", key.display().to_string()),
                    ("CLIENT_CA", p("client-ca.pem")),
                    ("REPO", kit.join("hq/repo").display().to_string()),
                ],
            ),
        )
        .unwrap();
        Nginx {
            conf,
            dir,
            port,
            child: None,
        }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&self.conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(self.dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("nginx runs (apt-get install nginx)");
        self.child = Some(child);
        assert!(
            wait_port(self.port, Duration::from_secs(10)),
            "nginx listens: {}",
            std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
        );
    }

    /// Stops nginx (SIGTERM to the PID this test started) and waits.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            drop(Procs(vec![c]));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `dialgate demo --init-only --hq-url https://127.0.0.1:PORT/ --dir KIT`.
pub fn init_managed_kit(kit: &Path, port: u16) {
    let out = Command::new(&*DIALGATE)
        .args(["demo", "--init-only", "--hq-url"])
        .arg(format!("https://127.0.0.1:{port}/"))
        .arg("--dir")
        .arg(kit)
        .output()
        .expect("dialgate runs");
    assert!(
        out.status.success(),
        "kit created: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kit.join("hq/repo/demo-kit/timestamp.signed").exists());
}

pub fn publish(kit: &Path) -> String {
    publish_with(kit, &[])
}

/// `dialgatectl publish` for the demo kit's HQ with `extra` arguments.
pub fn publish_with(kit: &Path, extra: &[&str]) -> String {
    let hq = kit.join("hq");
    let repo = kit.join("hq/repo");
    let mut args = vec![
        "publish",
        "--dir",
        hq.to_str().unwrap(),
        "--out",
        repo.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ctl(&args)
}

pub fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

pub fn count(log: &Path, needle: &str) -> usize {
    log_text(log).matches(needle).count()
}

/// Waits until `needle` occurs more than `before` times in `log`.
pub fn wait_more(log: &Path, needle: &str, before: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if count(log, needle) > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A gateway up on a kit that fetched its first policy from nginx.
pub fn managed_demo(name: &str, port: u16) -> (PathBuf, PathBuf, PathBuf, Nginx, Procs) {
    let (work, kit, log) = super::work_dir(name);
    init_managed_kit(&kit, port);
    let mut nginx = Nginx::new(&work, &kit, port);
    nginx.start();
    let mut procs = Procs(Vec::new());
    start_demo(&mut procs, &kit, &log);
    // The demo's own bundle is version 1; the first publication's, 2.
    assert!(
        wait_for(
            &log,
            "policy applied decision=\"applied\" version=2",
            Duration::from_secs(10)
        ),
        "the repository's policy applied:\n{}",
        log_text(&log)
    );
    (work, kit, log, nginx, procs)
}
