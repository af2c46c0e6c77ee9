//! SoftHSM2 tokens in a temporary folder for the enrolment tests: a
//! private configuration (`SOFTHSM2_CONF`) and token directory, tokens
//! initialised with `softhsm2-util`, and `dialgatectl` run against them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Debian's SoftHSM2 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of every test token.
pub const PIN: &str = "q7pX!9";
/// The `dialgatectl` binary of this build, beside the test executable.
pub static CTL: std::sync::LazyLock<std::path::PathBuf> =
    std::sync::LazyLock::new(|| dialgate_tests::bin("dialgatectl"));

/// A folder holding a SoftHSM configuration, its tokens, a PIN file and
/// an HQ made by `dialgatectl pki init`. Removed on drop.
pub struct Hsm {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub pin_file: PathBuf,
}

impl Hsm {
    pub fn new(tag: &str) -> Hsm {
        let dir = std::env::temp_dir().join(format!("dialgate-hsm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        let pin_file = dir.join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        Hsm {
            dir,
            conf,
            pin_file,
        }
    }

    /// Initialises a token labelled `label` with the user PIN [`PIN`].
    pub fn init_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", label, "--pin", PIN])
            .args(["--so-pin", "87654321"])
            .stdin(Stdio::null())
            .output()
            .expect("softhsm2-util runs (apt-get install softhsm2)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `dialgatectl ARGS` with this SoftHSM configuration.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&*CTL)
            .env("SOFTHSM2_CONF", &self.conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("dialgatectl runs")
    }

    /// `dialgatectl pki init --dir DIR/hq`; returns DIR/hq.
    pub fn pki_init(&self) -> PathBuf {
        let hq = self.dir.join("hq");
        let out = self.ctl(&["pki", "init", "--dir", &s(&hq)]);
        assert!(out.status.success(), "{}", text(&out));
        hq
    }

    /// `dialgatectl token enroll --dir HQ --name NAME --pkcs11-module ...
    /// --token-label LABEL --pin-file ... EXTRA...`.
    pub fn enroll(&self, hq: &Path, name: &str, label: &str, extra: &[&str]) -> Output {
        let hq = s(hq);
        let pin = s(&self.pin_file);
        let mut args = vec![
            "token",
            "enroll",
            "--dir",
            &hq,
            "--name",
            name,
            "--pkcs11-module",
            MODULE,
            "--token-label",
            label,
            "--pin-file",
            &pin,
        ];
        args.extend_from_slice(extra);
        self.ctl(&args)
    }
}

impl Drop for Hsm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// stdout and stderr together.
pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
