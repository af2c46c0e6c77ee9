//! Builds the libsrtp2 reference tool (`libsrtp/srtp_tool.c`) that the
//! cross-check tests and the SRTP benchmark drive. Needs Debian's
//! `libsrtp2-dev` and `pkg-config`, which `.ci/run` installs.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=libsrtp/srtp_tool.c");
    println!("cargo:rerun-if-changed=libsrtp/build.sh");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("srtp_tool");
    let status = Command::new("sh")
        .arg("libsrtp/build.sh")
        .arg(&out)
        .status()
        .expect("cannot run sh to build the libsrtp2 reference tool");
    assert!(
        status.success(),
        "building tests/libsrtp/srtp_tool.c failed: install libsrtp2-dev and pkg-config \
         (apt-get install -y libsrtp2-dev pkg-config; .ci/run does this)"
    );
    println!("cargo:rustc-env=SRTP_TOOL={}", out.display());
}
