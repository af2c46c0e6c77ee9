//! `echo-bridge`: the demo's echo bridge (`dialgate::echo`) on an address
//! of its own, for namespace tests that put the bridge beyond a NAT.
//!
//! ```text
//! echo-bridge --dir KIT --listen IP:PORT --media IP [--no-latch]
//! ```
//!
//! It presents the demo kit's bridge certificate (`KIT/bridge/cert.pem`,
//! `key.pem`; the kit's trunk pins their CA). `--no-latch`: it sends its
//! media to the address the caller's SDP offered, as a bridge that does
//! not latch does. Prints `ECHO listening ADDR` once it listens; runs until
//! killed.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: echo-bridge --dir KIT --listen IP:PORT --media IP [--no-latch]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut listen, mut media, mut latch) = (None, None, None, true);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--listen" => listen = args.next().and_then(|v| v.parse::<SocketAddr>().ok()),
            "--media" => media = args.next().and_then(|v| v.parse::<IpAddr>().ok()),
            "--no-latch" => latch = false,
            _ => return usage(),
        }
    }
    let (Some(dir), Some(listen), Some(media)) = (dir, listen, media) else {
        return usage();
    };
    let bridge = dir.join("bridge");
    let loaded = dialgate::tls::load_certs(&bridge.join("cert.pem"))
        .and_then(|chain| dialgate::tls::load_key(&bridge.join("key.pem")).map(|key| (chain, key)));
    let (chain, key) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("echo-bridge: {}: {e}", bridge.display());
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo-bridge: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match dialgate::echo::start_with(listen, chain, key, media, latch).await {
            Ok(addr) => {
                println!("ECHO listening {addr}");
                std::future::pending::<()>().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("echo-bridge: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
