//! dialgate's benchmarks, each side by side with its reference in the same
//! run on the same machine (see `docs/benchmarks.md` for results):
//!
//! - `bench srtp`: SRTP protect/unprotect cost per 172-byte packet, every
//!   suite, dialgate vs libsrtp2.
//! - `bench relay --calls 100,1000`: the relay under load over UDP on
//!   loopback, dialgate vs rtpengine (userspace) and vs the floor (a bare
//!   forwarder, no crypto, in four syscall patterns), with a direct (no
//!   relay) baseline: CPU per million packets (the relay's and
//!   system-wide), the VM's steal time, loss, latency, memory, and each
//!   figure as a multiple of the floor.
//! - `bench calls --calls 500 --concurrency 8`: calls per second and call
//!   set-up time through the gateway over TLS with client certificates;
//!   `--separate` runs the gateway as its own process (`dialgate run`,
//!   built beside the bench) and reports its CPU time per call;
//!   `--media-seconds S` keeps each call up with S seconds of SRTP both
//!   ways (echoed by the bridge) and reports packets sent, received back
//!   and lost.
//! - `bench audit --records 20000`: records per second the audit trail
//!   spools (vs bare write + fdatasync) and ships to rsyslog (RELP, RFC 5425).
//! - `bench poll --seconds 10`: the kit's repository poll on the wire,
//!   unchanged and with a change, vs one curl GET (real nginx).
//! - `bench wipe --calls 2000`: a call's signalling (TLS handshake with
//!   client certificates, INVITE and 200 with SDP, parsed) with the
//!   gateway's wiping allocator vs the system allocator, same process.
//! - `bench all`: all of them.
//!
//! `bench relay-server` is the child process the relay benchmark runs
//! dialgate's relay in, so that its CPU and memory are measured alone;
//! `bench floor-server` the bare forwarder's (`floor.rs`).

mod audit;
mod calls;
mod calls_media;
mod floor;
mod load;
mod poll;
mod procstat;
mod server;
mod server_tokio;
mod srtp_bench;
mod wipe;

/// The gateway's wiping allocator, switchable for `bench wipe`; off (the
/// system allocator) for every other benchmark, as before.
#[global_allocator]
static ALLOC: dialgate_wipe::BenchSwitch = dialgate_wipe::BenchSwitch;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench srtp [--iterations N]\n       \
         bench relay [--calls N[,N...]] [--seconds S] [--warmup S] [--targets direct,floor-recvfrom,floor-mmsg,floor-connected,floor-mmsg-connected,dialgate,dialgate-connected,dialgate-busy-poll,dialgate-tokio,rtpengine] [--no-pin]\n       \
         bench calls [--calls N] [--concurrency C] [--media-seconds S] [--separate]\n       \
         bench audit [--records N]\n       \
         bench poll [--seconds S]\n       \
         bench wipe [--calls N]\n       \
         bench all\n       \
         bench relay-server --port-min P --port-max P [--io mio|mio-connected|mio-busy-poll|tokio]\n       \
         bench floor-server --port-min P --port-max P [--mode recvfrom|mmsg|connected|mmsg-connected]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage();
    };
    let opts = &args[1..];
    let result = match cmd.as_str() {
        "srtp" => srtp_bench::run(opts),
        "relay" => load::run(opts),
        "relay-server" => server::run(opts),
        "floor-server" => floor::run(opts),
        "calls" => calls::run(opts),
        "audit" => audit::run(opts),
        "poll" => poll::run(opts),
        "wipe" => wipe::run(opts),
        "all" => srtp_bench::run(&[])
            .and_then(|()| load::run(&[]))
            .and_then(|()| calls::run(&[]))
            .and_then(|()| audit::run(&[]))
            .and_then(|()| wipe::run(&[])),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Processes a benchmark started, ended when it is dropped: SIGTERM to
/// each PID, then (after 10 s) SIGKILL.
#[derive(Debug)]
pub struct Killed(pub Vec<std::process::Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = std::process::Command::new("kill")
                .arg(c.id().to_string())
                .status();
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < until && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Looks up `--name VALUE` in `opts`.
pub fn opt<'a>(opts: &'a [String], name: &str) -> Option<&'a str> {
    opts.iter()
        .position(|o| o == name)
        .and_then(|i| opts.get(i + 1))
        .map(String::as_str)
}
