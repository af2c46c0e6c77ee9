//! `dialgate`, the daemon that runs on the appliance: `dialgate run
//! --config FILE` serves calls; `dialgate demo --dir DIR` runs a demo kit
//! (the gateway and the echo bridge). Creating a kit needs the home side's
//! PKI, so that part (a fresh DIR, `--init-only`, `--alias`) and
//! `--media-only` come with the `demo` feature: on by default, off in the
//! appliance image, which runs kits made on the host.
//!
//! Command lines are parsed by clap: an unknown flag or a bad value is an
//! error with the usage (exit status 2), and every subcommand has `--help`.

use std::path::{Path, PathBuf};

/// Every freed block is wiped first: keys in buffers the gateway does not
/// own (TLS records, parsed SDP strings) never linger in the heap.
#[global_allocator]
static ALLOC: dialgate_wipe::WipeOnFree = dialgate_wipe::WipeOnFree;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "demo")]
mod media_demo;

/// dialgate: a secure conference gateway (SIP over TLS with hardware-token
/// admission, SRTP re-encrypted on every leg).
#[derive(Debug, Parser)]
#[command(name = "dialgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve calls with a kit configuration.
    Run {
        /// The kit configuration (dialgate.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Create (or reuse) a demo kit in DIR and run it: the gateway on
    /// 127.0.0.1:5061 and an echo bridge behind the alias `echo`.
    Demo(DemoArgs),
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Where the kit lives (created if it has no dialgate.toml).
    #[arg(long, value_name = "DIR", default_value = "dialgate-demo")]
    dir: PathBuf,
    /// Create the kit and exit.
    #[arg(long, conflicts_with = "media_only")]
    init_only: bool,
    /// An external bridge: a trunk to the URI's host and port, a directory
    /// entry NAME granted to alice (repeatable; needs --bridge-ca).
    #[arg(long = "alias", value_name = "NAME=URI", value_parser = parse_alias)]
    aliases: Vec<Alias>,
    /// The CA of the external bridges named by --alias.
    #[arg(long, value_name = "FILE", requires = "aliases")]
    bridge_ca: Option<PathBuf>,
    /// Ship the kit's audit trail to this SIEM: relp-tls://IP:PORT (RELP
    /// over TLS) or syslog-tls://IP:PORT (RFC 5425), with the kit's device
    /// certificate, trusting the CA of DIR/hq/https/server-cert.pem.
    #[arg(long, value_name = "URL", conflicts_with = "media_only")]
    siem: Option<String>,
    /// Poll the kit's signed repository at this URL every second
    /// (https://IP:PORT/PATH/, serving DIR/hq/repo/ with
    /// DIR/hq/https/server-cert.pem and client certificates of
    /// DIR/hq/https/client-ca.pem); publishes DIR/hq/repo/ first.
    #[arg(long, value_name = "URL", conflicts_with = "media_only", value_parser = parse_hq_url)]
    hq_url: Option<String>,
    /// Push the kit's status every second to a Prometheus Pushgateway at
    /// this URL (https://IP:PORT/PATH/, served with
    /// DIR/hq/https/server-cert.pem, asking for client certificates of
    /// DIR/hq/https/client-ca.pem), with the kit's device certificate.
    #[arg(long, value_name = "URL", conflicts_with = "media_only", value_parser = parse_hq_url)]
    pushgateway: Option<String>,
    /// Relay a tone between a simulated phone and bridge, without SIP.
    #[arg(long)]
    media_only: bool,
    /// How long --media-only runs.
    #[arg(long, value_name = "N", default_value_t = 5, requires = "media_only",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
}

/// Checked before anything is created: `https://IP:PORT/PATH/` (for
/// --hq-url and --pushgateway).
fn parse_hq_url(v: &str) -> Result<String, String> {
    dialgate::config::parse_management_url(v)?;
    Ok(v.to_string())
}

#[cfg(feature = "demo")]
type Alias = dialgate::demo::ExternalAlias;
#[cfg(not(feature = "demo"))]
type Alias = String;

#[cfg(feature = "demo")]
fn parse_alias(v: &str) -> Result<Alias, String> {
    dialgate::demo::ExternalAlias::parse(v).map_err(|e| e.to_string())
}

#[cfg(not(feature = "demo"))]
fn parse_alias(_: &str) -> Result<Alias, String> {
    Err(NO_DEMO.into())
}

#[cfg(not(feature = "demo"))]
const NO_DEMO: &str = "this build has no demo feature (the appliance image): make the kit on the host with `dialgate demo --dir DIR --init-only`";

/// The console (INFO and above) and the audit trail (events of target
/// `audit`, spooled and shipped once the kit's `[audit]` is read).
fn logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(console)
        .with(
            dialgate::audit::AuditLayer.with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .init();
}

/// How long a stopping kit waits for the SIEM to take its last records.
const AUDIT_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

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

/// Waits for Ctrl-C, SIGTERM or HQ's command to halt; drains the audit
/// trail; carries out a wipe. The process's exit status follows.
async fn serve_until_stopped(gw: &mut dialgate::daemon::Gateway) -> ExitCode {
    let halt = async {
        match gw.halt.recv().await {
            Some(h) => h,
            // No repository: no commands.
            None => std::future::pending().await,
        }
    };
    let halt = tokio::select! {
        () = interrupted() => None,
        h = halt => Some(h),
    };
    tracing::info!("stopping");
    dialgate::audit::stop(AUDIT_DRAIN).await;
    match halt {
        None => ExitCode::SUCCESS,
        Some(h) => {
            if let dialgate::daemon::Halt::Wipe(files) = &h {
                let n = dialgate::daemon::commands::wipe_files(files);
                eprintln!("dialgate: wiped by HQ's command: {n} files destroyed; the kit must be re-provisioned");
            } else {
                eprintln!("dialgate: stopped by HQ's reboot command");
            }
            ExitCode::from(h.exit_status())
        }
    }
}

fn run(config: &Path) -> Result<ExitCode, String> {
    logging();
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut gw = dialgate::daemon::start(config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(serve_until_stopped(&mut gw).await)
    })
}

#[cfg(feature = "demo")]
fn init_only(args: &DemoArgs) -> Result<(), String> {
    let dir = args.dir.as_path();
    let kit = dialgate::demo::init(dir).map_err(|e| e.to_string())?;
    home(args)?;
    let d = dir.display();
    println!("demo kit created in {}", kit.dir.display());
    println!("  gateway configuration: {}", kit.config.display());
    println!("  phone identities:      {d}/tokens/{{alice,mallory,eve}}/{{cert,key}}.pem");
    println!("  CA to verify the gateway: {d}/ca.pem");
    Ok(())
}

#[cfg(not(feature = "demo"))]
fn init_only(_: &DemoArgs) -> Result<(), String> {
    Err(NO_DEMO.into())
}

/// Creates the kit where it is absent and adds `--alias` bridges (the
/// demo feature), or refuses without it.
#[cfg(feature = "demo")]
fn prepare_kit(args: &DemoArgs, fresh: bool) -> Result<(), String> {
    use dialgate::demo;
    let dir = args.dir.as_path();
    if fresh {
        demo::init(dir).map_err(|e| e.to_string())?;
    }
    if !args.aliases.is_empty() {
        let ca = args
            .bridge_ca
            .as_deref()
            .ok_or("--alias needs --bridge-ca FILE (the CA of the external bridge)")?;
        demo::add_external(dir, &args.aliases, ca).map_err(|e| e.to_string())?;
        for a in &args.aliases {
            println!("  alias {} -> {} (granted to alice)", a.name, a.uri);
        }
    }
    home(args)?;
    demo::write_baresip_configs(dir).map_err(|e| e.to_string())?;
    Ok(())
}

/// The kit's channel home (device identity, audit key, `[audit]`) and,
/// with `--siem`, where its audit trail goes.
#[cfg(feature = "demo")]
fn home(args: &DemoArgs) -> Result<(), String> {
    let dir = args.dir.as_path();
    dialgate::demo::ensure_home(dir).map_err(|e| e.to_string())?;
    if let Some(url) = &args.siem {
        dialgate::demo::set_siem(dir, url).map_err(|e| e.to_string())?;
        println!(
            "  audit trail shipped to {url} (device certificate {}/device/cert.pem)",
            dir.display()
        );
    }
    if let Some(url) = &args.pushgateway {
        dialgate::demo::set_pushgateway(dir, url).map_err(|e| e.to_string())?;
        println!(
            "  pushes its status to the Pushgateway at {url} every {} ms (read it with dialgatectl kits --pushgateway {url})",
            dialgate::demo::DEMO_PUSH_MS
        );
    }
    if let Some(url) = &args.hq_url {
        dialgate::demo::set_hq_url(dir, url).map_err(|e| e.to_string())?;
        println!(
            "  polls its repository at {url} every {} ms (serve {}/hq/repo/; publish with dialgatectl publish --dir {}/hq --out {}/hq/repo)",
            dialgate::demo::DEMO_POLL_MS,
            dir.display(),
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

#[cfg(not(feature = "demo"))]
fn prepare_kit(args: &DemoArgs, fresh: bool) -> Result<(), String> {
    if fresh {
        return Err(format!("{}: no kit here; {NO_DEMO}", args.dir.display()));
    }
    if args.siem.is_some() {
        return Err(format!("--siem: {NO_DEMO}"));
    }
    if args.hq_url.is_some() {
        return Err(format!("--hq-url: {NO_DEMO}"));
    }
    if args.pushgateway.is_some() {
        return Err(format!("--pushgateway: {NO_DEMO}"));
    }
    Ok(())
}

fn full_demo(args: &DemoArgs) -> Result<ExitCode, String> {
    let dir = args.dir.as_path();
    let fresh = !dir.join("dialgate.toml").exists();
    prepare_kit(args, fresh)?;
    logging();
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let chain = dialgate::tls::load_certs(&dir.join("bridge/cert.pem"))
            .map_err(|e| e.to_string())?;
        let key =
            dialgate::tls::load_key(&dir.join("bridge/key.pem")).map_err(|e| e.to_string())?;
        let bridge_addr: std::net::SocketAddr = dialgate::echo::DEMO_BRIDGE_LISTEN
            .parse()
            .map_err(|_| "bridge address")?;
        dialgate::echo::start(bridge_addr, chain, key, bridge_addr.ip()).await?;
        let mut gw = dialgate::daemon::start(&dir.join("dialgate.toml"))
            .await
            .map_err(|e| e.to_string())?;
        let d = dir.display();
        let state = if fresh { "kit created" } else { "kit reused" };
        println!("dialgate demo {state} in {d}");
        println!(
            "  gateway (phones): sips {} -- SIP over TLS 1.3, client certificate required",
            gw.phone_addr
        );
        println!(
            "  echo bridge:      {} behind the alias `echo` (echoes what it hears)",
            dialgate::echo::DEMO_BRIDGE_LISTEN
        );
        println!("  dial:             sip:echo@127.0.0.1:5061;transport=tls");
        println!("  identities:       {d}/tokens/alice (registered), mallory (revoked), eve (not registered)");
        println!("  gateway CA:       {d}/ca.pem");
        println!("  baresip:          baresip -f {d}/baresip/alice -e \"/dial sip:echo@127.0.0.1:5061\" -t 15");
        println!("                    (plays a 1 kHz tone, records what it hears in {d}/baresip/alice/recordings)");
        println!("  Ctrl-C stops the demo.");
        let status = serve_until_stopped(&mut gw).await;
        println!("dialgate demo stopped");
        Ok(status)
    })
}

#[cfg(feature = "demo")]
fn media_only(seconds: u64) -> Result<(), String> {
    logging();
    media_demo::run(std::time::Duration::from_secs(seconds))
}

#[cfg(not(feature = "demo"))]
fn media_only(_: u64) -> Result<(), String> {
    Err(NO_DEMO.into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (what, result) = match cli.command {
        Command::Run { config } => ("dialgate", run(&config)),
        Command::Demo(args) => (
            "dialgate demo",
            if args.init_only {
                init_only(&args).map(|()| ExitCode::SUCCESS)
            } else if args.media_only {
                media_only(args.seconds).map(|()| ExitCode::SUCCESS)
            } else {
                full_demo(&args)
            },
        ),
    };
    match result {
        Ok(status) => status,
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}
