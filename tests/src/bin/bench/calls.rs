//! Calls per second through the gateway over real TLS with client
//! certificates, and call set-up time.
//!
//! A fresh demo kit in a temporary folder; the gateway (`daemon::start`)
//! and the echo bridge run in this process on ephemeral loopback ports.
//! `--concurrency` phones each open their own TLS connection with alice's
//! certificate per call (handshake, token admission) and place calls one
//! after another: INVITE with an SDES offer, wait for 200, ACK, BYE, wait
//! for its 200, close. Set-up time is INVITE sent to 200 received; it
//! includes the gateway's INVITE to the bridge, the bridge's answer (an
//! in-process echo bridge: sub-millisecond) and the relay call set-up.
//!
//! `--media-seconds S` keeps each call up for S seconds of SRTP after the
//! ACK, echoed by the bridge through the gateway, and accounts for every
//! packet (`calls_media.rs`); the concurrency is then the number of calls
//! with media at once, so calls/s is about C / (S + set-up + drain).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::calls_media::{self, MediaStats};
use dialgate::sip::{Event, Framer, Limits, Message};
use dialgate::srtp::{format_inline, MasterKey, Suite};
use dialgate::tls::{load_certs, load_key};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Sample {
    handshake: Duration,
    setup: Duration,
    /// With `--media-seconds`, what became of the call's media.
    media: Option<MediaStats>,
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Writes and flushes one message (TLS may hold records until a flush).
async fn send<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, msg: &str) -> Result<(), String> {
    s.write_all(msg.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())
}

async fn read_until<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    framer: &mut Framer,
    done: impl Fn(&Message) -> bool,
) -> Result<Message, String> {
    let mut buf = [0u8; 8192];
    // What came meanwhile, for the error (the status codes, or methods).
    let mut seen = Vec::new();
    loop {
        while let Some(ev) = framer.poll_event().map_err(|e| e.to_string())? {
            if let Event::Message(m) = ev {
                if done(&m) {
                    return Ok(m);
                }
                seen.push(match m.status() {
                    Some(st) => st.as_u16().to_string(),
                    None => format!("{:?}", m.method()),
                });
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .map_err(|_| {
                format!("timed out waiting for the gateway (received meanwhile: {seen:?})")
            })?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("gateway closed the connection".into());
        }
        framer.handle_data(&buf[..n]);
    }
}

/// The Warning header of a response, if any (why the gateway refused).
fn warning(m: &Message) -> String {
    String::from_utf8_lossy(&m.to_bytes())
        .lines()
        .find(|l| l.starts_with("Warning:"))
        .unwrap_or_default()
        .to_string()
}

fn status(m: &Message) -> u16 {
    m.status().map_or(0, |s| s.as_u16())
}

async fn one_call(
    addr: std::net::SocketAddr,
    tls: Arc<ClientConfig>,
    n: u64,
    media_seconds: f64,
) -> Result<Sample, String> {
    let t0 = Instant::now();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut s = TlsConnector::from(tls)
        .connect(
            ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?,
            tcp,
        )
        .await
        .map_err(|e| e.to_string())?;
    let handshake = t0.elapsed();
    let local = s.get_ref().0.local_addr().map_err(|e| e.to_string())?;
    let key = MasterKey::generate(Suite::AesCm128HmacSha1_80).map_err(|e| e.to_string())?;
    // With media, a real socket whose port the offer names; without, a
    // port nobody listens on (no media is sent).
    let media_socket = if media_seconds > 0.0 {
        Some(calls_media::bind(n).await?)
    } else {
        None
    };
    let media_port = match &media_socket {
        Some(m) => m.local_addr().map_err(|e| e.to_string())?.port(),
        None => (20000 + (n % 10000) * 2) as u16,
    };
    let sdp = format!(
        "v=0\r\no=- {n} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\na=sendrecv\r\n",
        media_port,
        &*format_inline(&key)
    );
    let call_id = format!("load-{n}@bench");
    let head = |method: &str, cseq: u32, branch: &str, to_tag: &str| {
        format!(
            "{method} sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bK-{branch}-{n}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.1>;tag=ph{n}\r\nTo: <sip:echo@127.0.0.1>{to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{local};transport=tls>\r\n"
        )
    };
    let invite = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        head("INVITE", 1, "inv", ""),
        sdp.len()
    );
    let mut framer = Framer::client(Limits::default());
    let t1 = Instant::now();
    send(&mut s, &invite).await?;
    let ok = read_until(&mut s, &mut framer, |m| status(m) >= 200)
        .await
        .map_err(|e| format!("call {n}, INVITE: {e}"))?;
    let setup = t1.elapsed();
    if status(&ok) != 200 {
        return Err(format!(
            "call refused with {} {}",
            status(&ok),
            warning(&ok)
        ));
    }
    let tag = format!(";tag={}", ok.to().tag().unwrap_or_default());
    let ack = format!("{}Content-Length: 0\r\n\r\n", head("ACK", 1, "ack", &tag));
    let bye = format!("{}Content-Length: 0\r\n\r\n", head("BYE", 2, "bye", &tag));
    send(&mut s, &ack).await?;
    let media = match &media_socket {
        Some(m) => Some(calls_media::exchange(m, &key, ok.body(), media_seconds, n).await?),
        None => None,
    };
    send(&mut s, &bye).await?;
    let done = read_until(&mut s, &mut framer, |m| {
        m.status().is_some() && m.cseq().seq == 2
    })
    .await
    .map_err(|e| format!("call {n}, BYE: {e}"))?;
    if status(&done) != 200 {
        return Err(format!("BYE answered {} {}", status(&done), warning(&done)));
    }
    let _ = s.shutdown().await;
    Ok(Sample {
        handshake,
        setup,
        media,
    })
}

pub fn run(opts: &[String]) -> Result<(), String> {
    let calls: u64 = super::opt(opts, "--calls")
        .map(|s| s.parse().map_err(|_| "bad --calls"))
        .transpose()?
        .unwrap_or(500);
    let concurrency: u64 = super::opt(opts, "--concurrency")
        .map(|s| s.parse().map_err(|_| "bad --concurrency"))
        .transpose()?
        .unwrap_or(8);
    let media_seconds: f64 = super::opt(opts, "--media-seconds")
        .map(|s| s.parse().map_err(|_| "bad --media-seconds"))
        .transpose()?
        .unwrap_or(0.0);
    if !(0.0..=3600.0).contains(&media_seconds) {
        return Err("--media-seconds must be between 0 and 3600".into());
    }
    // --separate: the gateway runs as its own process (`dialgate run`),
    // so that its CPU time per call is measured alone.
    let separate = opts.iter().any(|o| o == "--separate");
    let dir = std::env::temp_dir().join(format!("dialgate-bench-calls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let kit = dialgate::demo::init(&dir).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        // The echo bridge and the gateway on ephemeral ports.
        let chain = load_certs(&dir.join("bridge/cert.pem")).map_err(|e| e.to_string())?;
        let key = load_key(&dir.join("bridge/key.pem")).map_err(|e| e.to_string())?;
        let lo: std::net::IpAddr = [127, 0, 0, 1].into();
        let bridge = dialgate::echo::start((lo, 0).into(), chain, key, lo).await?;
        let text = std::fs::read_to_string(&kit.config).map_err(|e| e.to_string())?;
        let listen = if separate {
            // A free port for the child (released just before it binds).
            let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            probe.local_addr().map_err(|e| e.to_string())?.to_string()
        } else {
            "127.0.0.1:0".to_string()
        };
        let text = text
            .replace(dialgate::demo::PHONE_LISTEN, &listen)
            .replace(dialgate::demo::BRIDGE_LISTEN, &bridge.to_string());
        let config = dir.join("bench.toml");
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let (phone_addr, child) = if separate {
            let child = GatewayProcess::spawn(&config, &dir.join("gateway.log"), &listen)?;
            (listen.parse().map_err(|e| format!("{e}"))?, Some(child))
        } else {
            let gw = dialgate::daemon::start(Path::new(&config))
                .await
                .map_err(|e| e.to_string())?;
            (gw.phone_addr, None)
        };
        let tls = client_config(&dir)?;
        // Warm-up: the first call opens the trunk connection.
        one_call(phone_addr, Arc::clone(&tls), u64::MAX / 2, 0.0).await?;
        let cpu_before = match &child {
            Some(c) => Some(super::load::cpu_seconds(c.pid())?),
            None => None,
        };
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let tls = Arc::clone(&tls);
            let addr = phone_addr;
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors = Vec::new();
                let mut n = w;
                while n < calls {
                    match one_call(addr, Arc::clone(&tls), n, media_seconds).await {
                        Ok(s) => samples.push(s),
                        Err(e) => errors.push(e),
                    }
                    n += concurrency;
                }
                (samples, errors)
            }));
        }
        let mut samples = Vec::new();
        let mut errors = Vec::new();
        for t in tasks {
            let (s, e) = t.await.map_err(|e| e.to_string())?;
            samples.extend(s);
            errors.extend(e);
        }
        let elapsed = start.elapsed();
        let gateway = match (&child, cpu_before) {
            (Some(c), Some(before)) => Some((
                super::load::cpu_seconds(c.pid())? - before,
                super::load::rss_kib(c.pid())?,
            )),
            _ => None,
        };
        drop(child);
        Ok::<_, String>((elapsed, samples, errors, gateway))
    });
    // With --separate, the gateway's own account of failures.
    let gateway_log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let (elapsed, samples, errors, gateway) = result?;
    if !errors.is_empty() {
        for l in gateway_log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("refused"))
            .take(5)
        {
            println!("  gateway: {l}");
        }
        // The whole log is kept for a look at the failed calls.
        if !gateway_log.is_empty() {
            let kept = dir.with_extension("gateway.log");
            if std::fs::write(&kept, &gateway_log).is_ok() {
                println!("  gateway log kept in {}", kept.display());
            }
        }
    }
    let mut setup: Vec<Duration> = samples.iter().map(|s| s.setup).collect();
    let mut hs: Vec<Duration> = samples.iter().map(|s| s.handshake).collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let flow = if media_seconds > 0.0 {
        format!("INVITE, 200, ACK, {media_seconds} s of SRTP both ways, BYE, 200")
    } else {
        "INVITE, 200, ACK, BYE, 200".to_string()
    };
    println!(
        "calls through the gateway over TLS 1.3 with client certificates: {calls} calls, {concurrency} concurrent phones, \
         a new TLS connection per call ({flow})"
    );
    println!(
        "  completed {} failed {}  calls/s {:.1}",
        samples.len(),
        errors.len(),
        samples.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  TLS handshake ms: p50 {:.2} p99 {:.2}   call set-up (INVITE -> 200) ms: p50 {:.2} p99 {:.2} max {:.2}",
        ms(percentile(&mut hs, 0.5)),
        ms(percentile(&mut hs, 0.99)),
        ms(percentile(&mut setup, 0.5)),
        ms(percentile(&mut setup, 0.99)),
        ms(percentile(&mut setup, 1.0)),
    );
    let media: Vec<MediaStats> = samples.iter().filter_map(|s| s.media).collect();
    if media_seconds > 0.0 {
        calls_media::report(&media);
    }
    match gateway {
        Some((cpu, rss)) => println!(
            "  gateway as its own process (dialgate run): CPU {:.3} ms per call{} ({:.1} % of one core), RSS after {:.1} MB",
            cpu * 1000.0 / samples.len().max(1) as f64,
            if media_seconds > 0.0 { ", its media relayed included" } else { "" },
            cpu * 100.0 / elapsed.as_secs_f64(),
            rss as f64 / 1024.0
        ),
        None => println!("  gateway, echo bridge and load generator in one process (--separate: gateway alone)"),
    }
    if let Some(e) = errors.first() {
        println!("  first error: {e}");
    }
    if !errors.is_empty() {
        return Err(format!("{} calls failed", errors.len()));
    }
    Ok(())
}

fn client_config(dir: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(&dir.join("ca.pem")).map_err(|e| e.to_string())? {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let chain = load_certs(&dir.join("tokens/alice/cert.pem")).map_err(|e| e.to_string())?;
    let key = load_key(&dir.join("tokens/alice/key.pem")).map_err(|e| e.to_string())?;
    let cfg = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// `dialgate run --config FILE` as a child process; killed on drop.
struct GatewayProcess(std::process::Child);

impl GatewayProcess {
    fn spawn(config: &Path, log: &Path, listen: &str) -> Result<GatewayProcess, String> {
        let exe = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("dialgate");
        if !exe.exists() {
            return Err(format!(
                "{} not found: build it first with the same profile (cargo build --release --bin dialgate)",
                exe.display()
            ));
        }
        let child = std::process::Command::new(&exe)
            .args(["run", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        let process = GatewayProcess(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(listen).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "the gateway did not listen on {listen}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(process)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
