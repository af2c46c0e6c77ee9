//! Shared helpers for dialgate's end-to-end tests and benchmarks: drivers
//! for the real peers the tests run against.

pub mod kit;
pub mod libsrtp;
pub mod rtpengine;

/// A binary of the workspace, beside the running test's own executable
/// (tests/run builds the binaries first: `cargo build --workspace --bins`).
pub fn bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let mut dir = exe.parent().expect("its folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

/// Runs a system tool to completion and returns its stdout; panics with
/// its stderr when it fails or cannot start (the namespace tests' `ip`,
/// `nsenter`: `tests/run` installs iproute2 and util-linux).
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} (install it: util-linux, iproute2): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
