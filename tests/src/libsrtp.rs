//! Drives `srtp_tool`, a thin CLI over Debian's libsrtp2 (see
//! `tests/libsrtp/srtp_tool.c`), as an independent SRTP implementation.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use dialgate::srtp::Suite;

/// Path of the reference tool, built by this crate's build script.
pub const TOOL: &str = env!("SRTP_TOOL");

/// The same tool over libsrtp2 built from Debian's source package with
/// `--enable-openssl` (tests/run), if it was there at build time. Debian's
/// own libsrtp2 (`TOOL`) uses NSS.
pub const TOOL_OPENSSL: Option<&str> = option_env!("SRTP_TOOL_OPENSSL");

/// What libsrtp2 should do with each packet.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// SRTP protect.
    Protect,
    /// SRTP unprotect.
    Unprotect,
    /// SRTCP protect.
    ProtectRtcp,
    /// SRTCP unprotect.
    UnprotectRtcp,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Protect => "protect",
            Mode::Unprotect => "unprotect",
            Mode::ProtectRtcp => "protect-rtcp",
            Mode::UnprotectRtcp => "unprotect-rtcp",
        }
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses lower- or upper-case hex; `None` on anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Runs every packet through one libsrtp2 session. Each result is the
/// output packet or libsrtp2's numeric error status.
pub fn run(
    mode: Mode,
    suite: Suite,
    key_and_salt: &[u8],
    packets: &[Vec<u8>],
) -> Vec<Result<Vec<u8>, i32>> {
    let mut child = Command::new(TOOL)
        .args([mode.arg(), suite.name(), &hex(key_and_salt)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("srtp_tool runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input: String = packets.iter().map(|p| hex(p) + "\n").collect();
    // Write from a thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let out: Vec<Result<Vec<u8>, i32>> = stdout
        .lines()
        .map(|l| {
            let l = l.expect("srtp_tool output is text");
            match l.strip_prefix("ERR ") {
                Some(code) => Err(code.trim().parse().expect("numeric error")),
                None => Ok(unhex(&l).expect("srtp_tool prints hex")),
            }
        })
        .collect();
    writer
        .join()
        .expect("writer thread")
        .expect("write to srtp_tool");
    let status = child.wait().expect("srtp_tool exits");
    assert!(status.success(), "srtp_tool failed: {status}");
    assert_eq!(out.len(), packets.len(), "one output line per packet");
    out
}
