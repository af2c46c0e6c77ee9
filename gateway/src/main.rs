//! `dialgate`, the daemon that runs on the appliance.
//!
//! Today it offers `dialgate demo`: the media path end to end on loopback.
//! The SIP/TLS call path, token admission and the full demo kit
//! (`dialgate demo --dir DIR`) arrive with the issue "SIP over TLS, the
//! B2BUA and the one-command demo"; until then `demo` shows what exists.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dialgate::media::G711;
use dialgate::relay::net::{LocalLeg, NetConfig, RelayHandle};
use dialgate::relay::{LegConfig, RelayConfig};
use dialgate::srtp::{MasterKey, Protector, Suite, Unprotector};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Waits for Ctrl-C or SIGTERM.
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn run(config: &str) -> Result<(), String> {
    logging();
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        dialgate::daemon::start(std::path::Path::new(config))
            .await
            .map_err(|e| e.to_string())?;
        interrupted().await;
        tracing::info!("stopping");
        Ok(())
    })
}

fn full_demo(
    dir: &str,
    aliases: &[dialgate::demo::ExternalAlias],
    bridge_ca: Option<&str>,
) -> Result<(), String> {
    use dialgate::demo;
    let dir = std::path::Path::new(dir);
    let fresh = !dir.join("dialgate.toml").exists();
    if fresh {
        demo::init(dir).map_err(|e| e.to_string())?;
    }
    if !aliases.is_empty() {
        let ca =
            bridge_ca.ok_or("--alias needs --bridge-ca FILE (the CA of the external bridge)")?;
        demo::add_external(dir, aliases, std::path::Path::new(ca)).map_err(|e| e.to_string())?;
        for a in aliases {
            println!("  alias {} -> {} (granted to alice)", a.name, a.uri);
        }
    }
    demo::write_baresip_configs(dir).map_err(|e| e.to_string())?;
    logging();
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let chain = dialgate::tls::load_certs(&dir.join("bridge/cert.pem")).map_err(|e| e.to_string())?;
        let key = dialgate::tls::load_key(&dir.join("bridge/key.pem")).map_err(|e| e.to_string())?;
        let bridge_addr: std::net::SocketAddr = demo::BRIDGE_LISTEN.parse().map_err(|_| "bridge address")?;
        dialgate::echo::start(bridge_addr, chain, key, bridge_addr.ip()).await?;
        let gw = dialgate::daemon::start(&dir.join("dialgate.toml"))
            .await
            .map_err(|e| e.to_string())?;
        let d = dir.display();
        println!("dialgate demo {} in {d}", if fresh { "kit created" } else { "kit reused" });
        println!("  gateway (phones): sips {} -- SIP over TLS 1.3, client certificate required", gw.phone_addr);
        println!("  echo bridge:      {} behind the alias `echo` (echoes what it hears)", demo::BRIDGE_LISTEN);
        println!("  dial:             sip:echo@127.0.0.1:5061;transport=tls");
        println!("  identities:       {d}/tokens/alice (registered), mallory (revoked), eve (not registered)");
        println!("  gateway CA:       {d}/ca.pem");
        println!("  baresip:          baresip -f {d}/baresip/alice -e \"/dial sip:echo@127.0.0.1:5061\" -t 15");
        println!("                    (plays a 1 kHz tone, records what it hears in {d}/baresip/alice/recordings)");
        println!("  Ctrl-C stops the demo.");
        interrupted().await;
        println!("dialgate demo stopped");
        Ok(())
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let Some(config) = arg(&args, "--config") else {
                eprintln!("usage: dialgate run --config FILE");
                return ExitCode::from(2);
            };
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dialgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("demo")
            if !args
                .iter()
                .any(|a| a == "--init-only" || a == "--media-only") =>
        {
            let mut aliases = Vec::new();
            for (i, a) in args.iter().enumerate() {
                if a == "--alias" {
                    match args
                        .get(i + 1)
                        .map(|v| dialgate::demo::ExternalAlias::parse(v))
                    {
                        Some(Ok(alias)) => aliases.push(alias),
                        Some(Err(e)) => {
                            eprintln!("dialgate demo: {e}");
                            return ExitCode::from(2);
                        }
                        None => {
                            eprintln!("dialgate demo: --alias needs NAME=URI");
                            return ExitCode::from(2);
                        }
                    }
                }
            }
            let dir = arg(&args, "--dir").unwrap_or("dialgate-demo");
            match full_demo(dir, &aliases, arg(&args, "--bridge-ca")) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dialgate demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("demo") if args.iter().any(|a| a == "--init-only") => {
            let Some(dir) = args
                .iter()
                .position(|a| a == "--dir")
                .and_then(|i| args.get(i + 1))
            else {
                eprintln!("dialgate demo --init-only needs --dir DIR");
                return ExitCode::from(2);
            };
            match dialgate::demo::init(std::path::Path::new(dir)) {
                Ok(kit) => {
                    println!("demo kit created in {}", kit.dir.display());
                    println!("  gateway configuration: {}", kit.config.display());
                    println!("  phone identities:      {dir}/tokens/{{alice,mallory,eve}}/{{cert,key}}.pem");
                    println!("  CA to verify the gateway: {dir}/ca.pem");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("dialgate demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("demo") => {
            let secs = args
                .iter()
                .position(|a| a == "--seconds")
                .and_then(|i| args.get(i + 1))
                .map_or(Ok(5), |s| s.parse::<u64>());
            let Ok(secs) = secs else {
                eprintln!("dialgate: --seconds needs a whole number");
                return ExitCode::from(2);
            };
            logging();
            match demo(Duration::from_secs(secs.clamp(1, 3600))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dialgate demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("--version") => {
            println!("dialgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: dialgate run --config FILE\n       \
                 dialgate demo [--dir DIR] [--init-only] [--alias NAME=URI ... --bridge-ca FILE]\n       \
                 dialgate demo --media-only [--seconds N]\n\n\
                 run    serve calls with the configuration FILE\n\
                 demo   create (or reuse) a demo kit in DIR (default ./dialgate-demo), start the\n       \
                 gateway on 127.0.0.1:5061 and an echo bridge behind the alias `echo`;\n       \
                 --init-only creates the kit and exits; --media-only relays a tone between\n       \
                 a simulated phone and bridge without SIP"
            );
            ExitCode::from(2)
        }
    }
}

/// 20 ms of a 1 kHz tone, G.711 mu-law, starting at sample `n`.
fn tone(n: u64) -> [u8; 160] {
    let mut out = [0u8; 160];
    for (i, b) in out.iter_mut().enumerate() {
        let t = (n + i as u64) as f64 / 8000.0;
        *b = G711::MuLaw.encode((8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16);
    }
    out
}

struct Peer {
    sock: UdpSocket,
    tx: Protector,
    rx: Unprotector,
}

impl Peer {
    fn new(send: &MasterKey, recv: &MasterKey) -> Result<Peer, String> {
        let sock = UdpSocket::bind((LO, 0)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        Ok(Peer {
            sock,
            tx: Protector::new(send).map_err(|e| e.to_string())?,
            rx: Unprotector::new(recv).map_err(|e| e.to_string())?,
        })
    }

    fn addr(&self) -> Result<SocketAddr, String> {
        self.sock.local_addr().map_err(|e| e.to_string())
    }
}

fn leg(l: &LocalLeg, remote: SocketAddr, inbound: MasterKey, outbound: MasterKey) -> LegConfig {
    LegConfig {
        rtp: l.rtp,
        rtcp: None,
        remote_rtp: Some(remote),
        remote_rtcp: None,
        inbound,
        outbound,
    }
}

fn demo(duration: Duration) -> Result<(), String> {
    let relay = RelayHandle::spawn(NetConfig {
        relay: RelayConfig::default(),
        port_min: 31000,
        port_max: 31999,
        ..NetConfig::default()
    })
    .map_err(|e| e.to_string())?;
    // Phone leg: AEAD_AES_256_GCM (phone-side default); bridge leg:
    // AES_CM_128_HMAC_SHA1_80 (trunk default). Four keys, one per leg and
    // direction, none shared.
    let g = |s| MasterKey::generate(s).map_err(|e| e.to_string());
    let (a_in, a_out) = (g(Suite::AeadAes256Gcm)?, g(Suite::AeadAes256Gcm)?);
    let (b_in, b_out) = (
        g(Suite::AesCm128HmacSha1_80)?,
        g(Suite::AesCm128HmacSha1_80)?,
    );
    let mut phone = Peer::new(&a_in, &a_out)?;
    let mut bridge = Peer::new(&b_in, &b_out)?;
    let la = relay.allocate(LO, true).map_err(|e| e.to_string())?;
    let lb = relay.allocate(LO, true).map_err(|e| e.to_string())?;
    let call = relay
        .add_call(
            (la, leg(&la, phone.addr()?, a_in, a_out)),
            (lb, leg(&lb, bridge.addr()?, b_in, b_out)),
        )
        .map_err(|e| e.to_string())?;
    println!(
        "dialgate demo: the media relay on loopback (SIP/TLS and admission are not built yet)"
    );
    println!(
        "  phone  {} <-> relay {} [AEAD_AES_256_GCM]   relay {} <-> echo bridge {} [AES_CM_128_HMAC_SHA1_80]",
        phone.addr()?,
        la.rtp_addr,
        lb.rtp_addr,
        bridge.addr()?
    );
    println!(
        "  sending a 1 kHz tone (G.711 mu-law, 50 packets/s) for {} s ...",
        duration.as_secs()
    );

    let start = Instant::now();
    let (mut seq, mut echoed_ok, mut cleartext_seen) = (0u16, 0u32, 0u32);
    let mut buf = [0u8; 1500];
    let mut last_wire = Vec::new();
    while start.elapsed() < duration {
        let payload = tone(u64::from(seq) * 160);
        buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0x1a]);
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        buf[12..172].copy_from_slice(&payload);
        let wire = phone
            .tx
            .protect_rtp(&mut buf, 172)
            .map_err(|e| e.to_string())?;
        last_wire = wire.as_bytes().to_vec();
        phone
            .sock
            .send_to(wire.as_bytes(), la.rtp_addr)
            .map_err(|e| e.to_string())?;
        // The echo bridge: receive, decrypt, send the same audio back.
        let mut b = [0u8; 1500];
        if let Ok((n, _)) = bridge.sock.recv_from(&mut b) {
            if b[12..172]
                .windows(8)
                .any(|w| payload.windows(8).any(|p| p == w))
            {
                cleartext_seen += 1;
            }
            if let Ok(m) = bridge.rx.unprotect_rtp(&mut b, n) {
                b[8..12].copy_from_slice(&0x0b1d_6e00u32.to_be_bytes());
                let back = bridge
                    .tx
                    .protect_rtp(&mut b, m)
                    .map_err(|e| e.to_string())?;
                bridge
                    .sock
                    .send_to(back.as_bytes(), lb.rtp_addr)
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut r = [0u8; 1500];
        if let Ok((n, _)) = phone.sock.recv_from(&mut r) {
            if let Ok(m) = phone.rx.unprotect_rtp(&mut r, n) {
                if m == 172 && r[12..172] == payload {
                    echoed_ok += 1;
                }
            }
        }
        seq = seq.wrapping_add(1);
        let due = start + Duration::from_millis(20) * u32::from(seq);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    // An eavesdropper replays a captured packet and forges another.
    phone
        .sock
        .send_to(&last_wire, la.rtp_addr)
        .map_err(|e| e.to_string())?;
    let mut forged = last_wire.clone();
    forged[3] = forged[3].wrapping_add(1);
    forged[40] ^= 0xff;
    phone
        .sock
        .send_to(&forged, la.rtp_addr)
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(200));

    let [a, b] = relay
        .stats(call)
        .map_err(|e| e.to_string())?
        .ok_or("call vanished")?;
    println!("  tone packets sent by the phone:           {seq}");
    println!("  heard back intact by the phone:           {echoed_ok}");
    println!("  bridge-leg packets with cleartext tone:   {cleartext_seen}");
    println!(
        "  phone leg:  {} authenticated in, {} out, dropped: {} replayed, {} forged",
        a.rx_packets, a.tx_packets, a.replayed, a.auth_failed
    );
    println!(
        "  bridge leg: {} authenticated in, {} out, dropped: {} replayed, {} forged",
        b.rx_packets, b.tx_packets, b.replayed, b.auth_failed
    );
    relay.remove_call(call).map_err(|e| e.to_string())?;
    if echoed_ok == 0 || cleartext_seen > 0 || a.replayed != 1 || a.auth_failed != 1 {
        return Err("the media path did not behave as it must (see the figures above)".into());
    }
    println!("  ok: every packet re-encrypted per leg, audio intact, replay and forgery dropped; keys zeroized");
    Ok(())
}
