//! Builds the libsrtp2 reference tool (`libsrtp/srtp_tool.c`) that the
//! cross-check tests and the SRTP benchmark drive. Needs Debian's
//! `libsrtp2-dev` and `pkg-config`, which `tests/run` installs; and, for
//! the benchmark's second reference, the static libsrtp2 `tests/run`
//! builds with OpenSSL (`SRTP_TOOL_OPENSSL`, when it is there).

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

    // libsrtp2 as production builds it, on OpenSSL (tests/run builds it
    // from Debian's source package): a second tool, if the library is there.
    println!("cargo:rerun-if-env-changed=DIALGATE_LIBSRTP2_OPENSSL");
    let prefix = std::env::var_os("DIALGATE_LIBSRTP2_OPENSSL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/dialgate-libsrtp2-openssl"));
    let lib = prefix.join("lib/libsrtp2.a");
    println!("cargo:rerun-if-changed={}", lib.display());
    if lib.exists() {
        let out_ossl = out.with_file_name("srtp_tool_openssl");
        let status = Command::new("sh")
            .arg("libsrtp/build.sh")
            .arg(&out_ossl)
            .arg(&prefix)
            .status()
            .expect("cannot run sh to build the libsrtp2 (OpenSSL) reference tool");
        assert!(
            status.success(),
            "building tests/libsrtp/srtp_tool.c against {} failed (libssl-dev?)",
            lib.display()
        );
        println!("cargo:rustc-env=SRTP_TOOL_OPENSSL={}", out_ossl.display());
    } else {
        println!(
            "cargo:warning=no {}: bench srtp compares against Debian's (NSS) libsrtp2 only; \
             tests/run builds the OpenSSL one",
            lib.display()
        );
    }
}
