//! `bench relay-server`: runs dialgate's relay (the production
//! `RelayHandle` socket thread) in its own process for the load benchmark.
//!
//! Line protocol on stdin/stdout:
//! `CALL <phone addr> <bridge addr> <a_in> <a_out> <b_in> <b_out>` with
//! hex master keys (leg A AES_CM_128_HMAC_SHA1_80, leg B
//! AES_CM_128_HMAC_SHA1_32, as in the rtpengine set-up) answers
//! `OK <leg A port> <leg B port>`; `COUNTERS` answers the socket counters.
//! EOF ends the process.

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dialgate::relay::net::{NetConfig, RelayHandle};
use dialgate::relay::{LegConfig, RelayConfig};
use dialgate::srtp::{MasterKey, Suite};
use dialgate_tests::libsrtp::unhex;

fn key(suite: Suite, hex: &str) -> Result<MasterKey, String> {
    let bytes = unhex(hex).ok_or("bad key hex")?;
    MasterKey::new(suite, &bytes).map_err(|e| e.to_string())
}

pub fn run(opts: &[String]) -> Result<(), String> {
    let port = |name: &str, default: u16| -> Result<u16, String> {
        super::opt(opts, name)
            .map(|s| s.parse().map_err(|_| format!("bad {name}")))
            .transpose()
            .map(|p| p.unwrap_or(default))
    };
    if super::opt(opts, "--io") == Some("tokio") {
        return super::server_tokio::run(port("--port-min", 20000)?);
    }
    let relay = RelayHandle::spawn(NetConfig {
        relay: RelayConfig {
            max_calls: 10_000,
            ..RelayConfig::default()
        },
        port_min: port("--port-min", 20000)?,
        port_max: port("--port-max", 29999)?,
        connect_latched: super::opt(opts, "--io") == Some("mio-connected"),
        busy_poll: super::opt(opts, "--io") == Some("mio-busy-poll"),
        ..NetConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut calls = Vec::new();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let reply = match f.as_slice() {
            ["CALL", phone, bridge, a_in, a_out, b_in, b_out] => (|| -> Result<String, String> {
                let phone: SocketAddr = phone.parse().map_err(|_| "bad phone addr")?;
                let bridge: SocketAddr = bridge.parse().map_err(|_| "bad bridge addr")?;
                let la = relay.allocate(lo, false).map_err(|e| e.to_string())?;
                let lb = relay.allocate(lo, false).map_err(|e| e.to_string())?;
                let leg = |l: &dialgate::relay::LocalLeg, remote: SocketAddr, i, o| LegConfig {
                    rtp: l.rtp,
                    rtcp: l.rtcp.map(|r| r.0),
                    remote_rtp: Some(remote),
                    remote_rtcp: Some(SocketAddr::new(remote.ip(), remote.port() + 1)),
                    inbound: i,
                    outbound: o,
                };
                let a80 = Suite::AesCm128HmacSha1_80;
                let b32 = Suite::AesCm128HmacSha1_32;
                let id = relay
                    .add_call(
                        (la, leg(&la, phone, key(a80, a_in)?, key(a80, a_out)?)),
                        (lb, leg(&lb, bridge, key(b32, b_in)?, key(b32, b_out)?)),
                    )
                    .map_err(|e| e.to_string())?;
                calls.push(id);
                Ok(format!("OK {} {}", la.rtp_addr.port(), lb.rtp_addr.port()))
            })()
            .unwrap_or_else(|e| format!("ERR {e}")),
            ["COUNTERS"] => match relay.counters() {
                Ok(c) => format!(
                    "COUNTERS received={} sent={} send_errors={} stray={} calls={}",
                    c.received, c.sent, c.send_errors, c.stray, c.calls
                ),
                Err(e) => format!("ERR {e}"),
            },
            _ => "ERR unknown command".to_string(),
        };
        writeln!(out, "{reply}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}
