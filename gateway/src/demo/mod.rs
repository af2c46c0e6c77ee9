//! The demo kit: everything a gateway needs to run on one machine, created
//! under one folder by `dialgate demo --dir DIR --init-only`.
//!
//! ```text
//! DIR/ca.pem                      the CA a phone uses to verify the gateway
//! DIR/gateway/{cert,key}.pem      the gateway's phone-side server certificate
//! DIR/token-ca.pem                the token CA (phones' certificates chain to it)
//! DIR/tokens/alice/{cert,key}.pem registered
//! DIR/tokens/mallory/...          registered, then revoked
//! DIR/tokens/eve/...              issued by the token CA, never registered
//! DIR/bridge/{ca,cert,key}.pem    the local echo bridge's CA and certificate
//! DIR/dialgate.toml               the gateway configuration
//! DIR/policy-key.pub.pem          the policy key the kit pins
//! DIR/policy.bundle               the signed policy in force (registry + directory)
//! DIR/state/policy.state          anti-rollback state (written by the gateway)
//! DIR/hq/                         the home side, for `dialgatectl --dir DIR/hq`:
//!                                 CA keys, policy signing key, registry.toml,
//!                                 directory.toml (see `crate::hq`)
//! DIR/hq/https/                   what HQ's HTTPS server (or SIEM) needs:
//!                                 server-cert.pem, server-key.pem (127.0.0.1,
//!                                 localhost), ca.pem (their CA, which the kit
//!                                 pins), client-ca.pem (the kit CA, which
//!                                 issued the device certificate)
//! DIR/hq/kits/demo-kit/audit-key.pub.pem  the kit's checkpoint key, public
//! DIR/device/{cert,key}.pem       the kit's device identity (mTLS home)
//! DIR/device/hq-ca.pem            the CA the kit trusts for HQ and the SIEM
//! DIR/audit/key.pk8               the kit's audit checkpoint key (secret)
//! DIR/state/audit/                the audit spool (docs/audit.md)
//! DIR/{timestamp,snapshot}-key.pub.pem, DIR/hq/repo/  with --hq-url (see `set_hq_url`)
//! [status] in DIR/dialgate.toml                    with --pushgateway (see `set_pushgateway`)
//! ```
//!
//! Token keys here are software keys, marked `unattested` in the registry:
//! the demo shows the call path, not hardware-token enrolment. The kit id
//! is [`KIT_ID`]; revoking a token is `dialgatectl token revoke --dir
//! DIR/hq NAME` then `dialgatectl policy build --dir DIR/hq --kit demo-kit
//! --out DIR/policy.bundle`.

use std::path::{Path, PathBuf};

use dialgate_hq::pki::{write_file, Ca, PkiError, Validity};

mod home;
mod manage;
mod status;
pub use home::{ensure_home, set_siem};
pub use manage::{set_hq_url, DEMO_POLL_MS};
pub use status::{set_pushgateway, DEMO_PUSH_MS};

/// The demo kit's id in policy bundles.
pub const KIT_ID: &str = "demo-kit";
/// Where the demo's gateway listens for phones.
pub const PHONE_LISTEN: &str = "127.0.0.1:5061";
/// Where the demo's echo bridge listens (SIP over TLS).
pub use crate::echo::DEMO_BRIDGE_LISTEN as BRIDGE_LISTEN;
/// The echo bridge's TLS and SIP host name.
pub const BRIDGE_HOST: &str = "echo-bridge.dialgate.test";

/// Paths of a created kit.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The kit folder.
    pub dir: PathBuf,
    /// The gateway configuration file.
    pub config: PathBuf,
}

/// Why a kit could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The folder exists and is not empty: a kit is never overwritten.
    #[error("{0} exists and is not empty; use a new folder (a kit is never overwritten)")]
    NotEmpty(String),
    /// Creating a folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Issuing or writing a certificate failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A certificate could not be hashed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The policy signing key or bundle could not be made.
    #[error(transparent)]
    Hq(#[from] dialgate_hq::hq::HqError),
    /// The policy signing key could not be made.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The policy signing key could not be made or written.
    #[error(transparent)]
    Signed(#[from] dialgate_signed::SignedError),
    /// An `--alias NAME=URI` is malformed or refused.
    #[error("--alias {0}: expected NAME=sip:user@host[:port] with a usable bridge CA")]
    BadAlias(String),
    /// A `--hq-url URL` that is not one.
    #[error("--hq-url: {0}")]
    BadHqUrl(String),
    /// A `--siem URL` that is not one.
    #[error("--siem: {0}")]
    BadSiem(String),
    /// A `--pushgateway URL` that is not one.
    #[error("--pushgateway: {0}")]
    BadPushgateway(String),
}

pub(crate) fn mkdir(p: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(p).map_err(|source| DemoError::Io {
        path: p.display().to_string(),
        source,
    })
}

/// Creates a kit in `dir`, which must be absent or empty.
pub fn init(dir: &Path) -> Result<Kit, DemoError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|source| DemoError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(DemoError::NotEmpty(dir.display().to_string()));
        }
    }
    for sub in [
        "gateway",
        "tokens/alice",
        "tokens/mallory",
        "tokens/eve",
        "bridge",
        "hq",
        "state",
    ] {
        mkdir(&dir.join(sub))?;
    }
    let v = Validity::days_from_now(365);

    let kit_ca = Ca::new("dialgate demo kit CA", v)?;
    write_file(&dir.join("ca.pem"), kit_ca.cert_pem().as_bytes(), 0o644)?;
    write_file(
        &dir.join("hq/kit-ca-key.pem"),
        kit_ca.key_pem().as_bytes(),
        0o600,
    )?;
    kit_ca
        .issue_server("dialgate gateway", &["127.0.0.1", "localhost"], v)?
        .write_to(&dir.join("gateway"))?;

    let token_ca = Ca::new("dialgate demo token CA", v)?;
    write_file(
        &dir.join("token-ca.pem"),
        token_ca.cert_pem().as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join("hq/token-ca.pem"),
        token_ca.cert_pem().as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join("hq/token-ca-key.pem"),
        token_ca.key_pem().as_bytes(),
        0o600,
    )?;
    let policy_key = crate::policy::SigningKey::generate()?;
    write_file(
        &dir.join("hq/policy-key.pk8"),
        &policy_key.to_pkcs8()?,
        0o600,
    )?;
    let public = dialgate_hq::pki::pem_encode("PUBLIC KEY", policy_key.public_key().spki_der());
    write_file(&dir.join("hq/policy-key.pub.pem"), public.as_bytes(), 0o644)?;
    write_file(&dir.join("policy-key.pub.pem"), public.as_bytes(), 0o644)?;
    let mut registry =
        String::from("# dialgate token registry (demo kit). Keys are software keys: unattested.\n");
    for (name, registered, revoked) in [
        ("alice", true, false),
        ("mallory", true, true),
        ("eve", false, false),
    ] {
        let issued = token_ca.issue_client(name, v)?;
        issued.write_to(&dir.join("tokens").join(name))?;
        if registered {
            let key = crate::tls::key_hash_of(&issued.der)?;
            registry.push_str(&format!(
                "\n[[token]]\nname = \"{name}\"\nkey_sha256 = \"{}\"\naliases = [\"echo\"]\nunattested = true\n{}",
                key.to_hex(),
                if revoked { "revoked = true\n" } else { "" }
            ));
        }
    }
    write_file(&dir.join("hq/registry.toml"), registry.as_bytes(), 0o644)?;
    let directory = format!(
        "# The meeting directory, signed into the kit's policy.\n\n[[directory]]\nalias = \"echo\"\nuri = \"sip:echo@{BRIDGE_HOST}\"\ntrunk = \"echo\"\n"
    );
    write_file(&dir.join("hq/directory.toml"), directory.as_bytes(), 0o644)?;

    let bridge_ca = Ca::new("dialgate demo bridge CA", v)?;
    write_file(
        &dir.join("bridge/ca.pem"),
        bridge_ca.cert_pem().as_bytes(),
        0o644,
    )?;
    bridge_ca
        .issue_server("echo bridge", &[BRIDGE_HOST, "127.0.0.1"], v)?
        .write_to(&dir.join("bridge"))?;

    let config = dir.join("dialgate.toml");
    let text = format!(
        r#"# dialgate demo kit configuration. Generous limits for trying and
# load-testing on one machine; a production kit keeps the strict defaults.

[phone]
listen = "{PHONE_LISTEN}"
certificate = "gateway/cert.pem"
key = "gateway/key.pem"
token_ca = "token-ca.pem"
media_address = "127.0.0.1"
# Not required: stock OpenSSL 3.0 clients (baresip) lack X25519MLKEM768.
require_post_quantum = false

[media]
port_min = 30000
port_max = 39999

[[trunk]]
name = "echo"
connect = "{BRIDGE_LISTEN}"
host = "{BRIDGE_HOST}"
ca = "bridge/ca.pem"
media_address = "127.0.0.1"

# The token registry and the meeting directory come from the signed
# policy bundle (built at home: dialgatectl policy build --dir hq ...).
[policy]
key = "policy-key.pub.pem"
kit_id = "{KIT_ID}"
bundle = "policy.bundle"
state = "state/policy.state"

[limits]
calls_per_token = 500
calls_per_address = 1000
attempts_per_minute_per_address = 100000
attempts_per_minute_per_token = 100000
max_calls = 1000
loopback_exempt = true
"#
    );
    write_file(&config, text.as_bytes(), 0o644)?;
    publish_policy(dir)?;
    Ok(Kit {
        dir: dir.to_path_buf(),
        config,
    })
}

/// Signs the kit's HQ registry and directory into `DIR/policy.bundle`
/// (the next version; valid a year), as `dialgatectl policy build` does.
pub fn publish_policy(dir: &Path) -> Result<u64, DemoError> {
    let built = dialgate_hq::hq::build_policy(
        &dialgate_hq::hq::Hq::new(&dir.join("hq")),
        dialgate_hq::hq::BuildOptions {
            kit: KIT_ID.to_string(),
            version: None,
            valid_for_secs: 365 * 86_400,
            switches: crate::policy::Switches::default(),
            directory: None,
            registry: None,
        },
    )?;
    let path = dir.join("policy.bundle");
    dialgate_signed::store::write_atomically(&path, &built.bundle).map_err(|source| {
        DemoError::Io {
            path: path.display().to_string(),
            source,
        }
    })?;
    Ok(built.body.version)
}

/// A WAV file (8 kHz, mono, 16-bit) of a 1 kHz tone, `seconds` long: the
/// demo phones' microphone.
pub fn tone_wav(seconds: u32) -> Vec<u8> {
    let samples = 8000 * seconds;
    let data_len = samples * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = f64::from(i) / 8000.0;
        let v = (12000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16;
        w.extend_from_slice(&v.to_le_bytes());
    }
    w
}

/// The SIP port a demo identity's baresip listens on (TLS on port + 1).
pub fn baresip_port(name: &str) -> u16 {
    match name {
        "alice" => 5080,
        "mallory" => 5082,
        _ => 5084,
    }
}

/// Writes `DIR/baresip/<name>/` for each demo identity: `config`,
/// `accounts`, `cert-and-key.pem` (baresip wants both in one file, 0600),
/// `mic.wav` (a 1 kHz tone it plays as its microphone) and `recordings/`
/// (what it hears). Existing folders are left alone.
pub fn write_baresip_configs(dir: &Path) -> Result<Vec<PathBuf>, DemoError> {
    let mut written = Vec::new();
    for (i, name) in ["alice", "mallory", "eve"].into_iter().enumerate() {
        let d = dir.join("baresip").join(name);
        if d.exists() {
            continue;
        }
        mkdir(&d.join("recordings"))?;
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).map_err(|source| DemoError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let token = dir.join("tokens").join(name);
        let combined = format!(
            "{}{}",
            read(token.join("cert.pem"))?,
            *zeroize::Zeroizing::new(read(token.join("key.pem"))?)
        );
        write_file(&d.join("cert-and-key.pem"), combined.as_bytes(), 0o600)?;
        write_file(&d.join("mic.wav"), &tone_wav(8), 0o644)?;
        let port = baresip_port(name);
        let config = format!(
            "# baresip 1.0.0 config for the demo identity {name} (generated by dialgate demo).\n\
             # Plays mic.wav as the microphone and records what it hears into recordings/.\n\
             # For a real microphone and speaker use e.g. `audio_source alsa,default`\n\
             # and `audio_player alsa,default` with `module alsa.so`.\n\
             poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{port}\n\
             sip_certificate\t\t{cert}\n\
             sip_cafile\t\t{ca}\n\
             net_interface\t\t127.0.0.1\n\
             call_local_timeout\t30\n\
             audio_path\t\t/usr/share/baresip\n\
             audio_source\t\taufile,{mic}\n\
             audio_player\t\taubridge,{name}-sink\n\
             audio_alert\t\taubridge,{name}-alert\n\
             ausrc_format\t\ts16\n\
             auplay_format\t\ts16\n\
             auenc_format\t\ts16\n\
             audec_format\t\ts16\n\
             audio_buffer\t\t20-160\n\
             rtp_ports\t\t{rtp_lo}-{rtp_hi}\n\
             rtcp_mux\t\tno\n\
             jitter_buffer_delay\t5-10\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\tsndfile.so\n\
             module\t\t\taufile.so\n\
             module\t\t\taubridge.so\n\
             module\t\t\tsrtp.so\n\
             module_tmp\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             snd_path\t\t{rec}\n\
             ringback_disabled\tyes\n",
            cert = d.join("cert-and-key.pem").display(),
            ca = dir.join("ca.pem").display(),
            mic = d.join("mic.wav").display(),
            rec = d.join("recordings").display(),
            rtp_lo = 21000 + 20 * i,
            rtp_hi = 21009 + 20 * i,
        );
        write_file(&d.join("config"), config.as_bytes(), 0o644)?;
        let accounts = format!(
            "<sip:{name}@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU/8000/1;answermode=manual\n"
        );
        write_file(&d.join("accounts"), accounts.as_bytes(), 0o644)?;
        written.push(d);
    }
    Ok(written)
}

/// An external bridge for the demo's directory: `--alias NAME=URI`.
#[derive(Debug, Clone)]
pub struct ExternalAlias {
    /// The alias phones dial.
    pub name: String,
    /// The bridge URI (`sip:` or `sips:`, with host and optional port).
    pub uri: String,
}

impl ExternalAlias {
    /// Parses `NAME=URI`.
    pub fn parse(arg: &str) -> Result<ExternalAlias, DemoError> {
        let bad = || DemoError::BadAlias(arg.to_string());
        let (name, uri) = arg.split_once('=').ok_or_else(bad)?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad());
        }
        if !(uri.starts_with("sip:") || uri.starts_with("sips:")) {
            return Err(bad());
        }
        Ok(ExternalAlias {
            name: name.to_string(),
            uri: uri.to_string(),
        })
    }
}

/// Adds external bridges to a kit: for each alias a trunk to the URI's
/// host and port (5061 when absent) trusting `bridge_ca`, with media on the
/// local address that routes to it, a directory entry, and a grant for
/// alice. The kit's configuration is checked again afterwards.
pub fn add_external(
    dir: &Path,
    aliases: &[ExternalAlias],
    bridge_ca: &Path,
) -> Result<(), DemoError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| DemoError::Io { path, source }
    };
    let config_path = dir.join("dialgate.toml");
    let mut config = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
    let registry_path = dir.join("hq/registry.toml");
    let mut registry = std::fs::read_to_string(&registry_path).map_err(io(&registry_path))?;
    let directory_path = dir.join("hq/directory.toml");
    let mut directory = std::fs::read_to_string(&directory_path).map_err(io(&directory_path))?;
    let ca = std::fs::canonicalize(bridge_ca).map_err(io(bridge_ca))?;
    for a in aliases {
        let uri = crate::sip::Uri::parse(&a.uri).map_err(|_| DemoError::BadAlias(a.uri.clone()))?;
        let sip = uri
            .as_sip()
            .ok_or_else(|| DemoError::BadAlias(a.uri.clone()))?;
        let host = sip.host.to_string();
        let port = sip.port.unwrap_or(5061);
        let connect = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .map_err(io(Path::new(&host)))?
            .next()
            .ok_or_else(|| DemoError::BadAlias(format!("{host}: no address")))?;
        // The interface that routes to the bridge (no packet is sent).
        let probe =
            std::net::UdpSocket::bind((if connect.is_ipv4() { "0.0.0.0" } else { "::" }, 0))
                .map_err(io(Path::new("udp")))?;
        probe.connect(connect).map_err(io(Path::new(&host)))?;
        let media = probe.local_addr().map_err(io(Path::new("udp")))?.ip();
        let trunk = format!("ext-{}", a.name);
        config.push_str(&format!(
            "\n[[trunk]]\nname = \"{trunk}\"\nconnect = \"{connect}\"\nhost = \"{host}\"\nca = \"{}\"\nmedia_address = \"{media}\"\n",
            ca.display(),
        ));
        directory.push_str(&format!(
            "\n[[directory]]\nalias = \"{}\"\nuri = \"{}\"\ntrunk = \"{trunk}\"\n",
            a.name, a.uri
        ));
        registry = grant_alice(&registry, &a.name);
    }
    // Refuse anything the gateway would refuse (duplicates, bad CA file).
    crate::config::Config::parse(&config, dir, &crate::files::Files)
        .map_err(|e| DemoError::BadAlias(e.to_string()))?;
    crate::config::parse_registry(&registry).map_err(|e| DemoError::BadAlias(e.to_string()))?;
    crate::config::parse_directory(&directory).map_err(|e| DemoError::BadAlias(e.to_string()))?;
    std::fs::write(&config_path, config).map_err(io(&config_path))?;
    std::fs::write(&registry_path, registry).map_err(io(&registry_path))?;
    std::fs::write(&directory_path, directory).map_err(io(&directory_path))?;
    publish_policy(dir)?;
    Ok(())
}

/// Adds `alias` to alice's `aliases = [...]` line.
fn grant_alice(registry: &str, alias: &str) -> String {
    let mut out = String::new();
    let mut in_alice = false;
    let mut done = false;
    for line in registry.lines() {
        if line.starts_with("name = ") {
            in_alice = line == "name = \"alice\"";
        }
        if in_alice && !done && line.starts_with("aliases = [") {
            out.push_str(&line.replacen("aliases = [", &format!("aliases = [\"{alias}\", "), 1));
            done = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::files::load_registry;
    use crate::tls::load_certs;

    /// The kit's bundle, verified as a fresh kit would.
    fn kit_policy(config: &Config) -> crate::policy::Verified {
        let pc = config.policy.as_ref().unwrap();
        let bundle = std::fs::read(&pc.bundle).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        crate::policy::verify_and_decide(&bundle, &pc.trust, &crate::policy::State::new(), now)
            .unwrap()
    }

    #[test]
    fn kit_is_complete_loadable_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("dialgate-demo-kit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kit = init(&dir).unwrap();
        let config = crate::files::load_config(&kit.config).unwrap();
        assert_eq!(config.phone.listen.to_string(), PHONE_LISTEN);
        assert!(config.limits.loopback_exempt && config.limits.calls_per_token >= 500);
        let (registry, grants) = load_registry(&dir.join("hq/registry.toml")).unwrap();
        // The signed policy carries the same registry, for this kit.
        let v = kit_policy(&config);
        assert_eq!(v.version(), 1);
        assert_eq!(
            v.registry_and_grants().0.active_names(),
            registry.active_names()
        );
        assert_eq!(v.directory()["echo"].trunk, "echo");
        let key = |n: &str| {
            let c = load_certs(&dir.join("tokens").join(n).join("cert.pem")).unwrap();
            crate::tls::key_hash_of(&c[0]).unwrap()
        };
        assert_eq!(registry.active(&key("alice")).unwrap().name, "alice");
        assert_eq!(
            registry.refusal(&key("mallory")),
            Some(crate::tls::Refusal::Revoked)
        );
        assert_eq!(
            registry.refusal(&key("eve")),
            Some(crate::tls::Refusal::NotRegistered)
        );
        assert!(grants["alice"].contains("echo"));
        use std::os::unix::fs::PermissionsExt;
        for secret in [
            "tokens/alice/key.pem",
            "gateway/key.pem",
            "hq/token-ca-key.pem",
            "hq/policy-key.pk8",
            "bridge/key.pem",
        ] {
            let mode = std::fs::metadata(dir.join(secret))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{secret}");
        }
        assert!(matches!(init(&dir), Err(DemoError::NotEmpty(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn external_aliases_add_a_trunk_a_directory_entry_and_a_grant() {
        let dir = std::env::temp_dir().join(format!("dialgate-demo-ext-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        init(&dir).unwrap();
        let a = ExternalAlias::parse("board=sip:8800@127.0.0.1:5201;transport=tls").unwrap();
        add_external(&dir, &[a], &dir.join("bridge/ca.pem")).unwrap();
        let config = crate::files::load_config(&dir.join("dialgate.toml")).unwrap();
        let dir_entries = dialgate_hq::hq::read_directory(&dir.join("hq/directory.toml")).unwrap();
        let entry = dir_entries.iter().find(|d| d.alias == "board").unwrap();
        assert_eq!(entry.trunk, "ext-board");
        // Published: the bundle is version 2 and carries the entry.
        let v = kit_policy(&config);
        assert_eq!(v.version(), 2);
        assert_eq!(v.directory()["board"].trunk, "ext-board");
        let trunk = &config.trunks["ext-board"];
        assert_eq!(trunk.connect.to_string(), "127.0.0.1:5201");
        assert_eq!(trunk.media_address.to_string(), "127.0.0.1");
        let (_, grants) = load_registry(&dir.join("hq/registry.toml")).unwrap();
        assert!(grants["alice"].contains("board") && grants["alice"].contains("echo"));
        // mallory is revoked: no grants at all.
        assert!(!grants.contains_key("mallory"));
        // The same alias twice is refused, and the kit is left as it was.
        let again = ExternalAlias::parse("board=sip:1@127.0.0.1:5202").unwrap();
        assert!(add_external(&dir, &[again], &dir.join("bridge/ca.pem")).is_err());
        assert!(crate::files::load_config(&dir.join("dialgate.toml")).is_ok());
        for bad in ["board", "=sip:x@h", "b d=sip:x@h", "x=http://h"] {
            assert!(ExternalAlias::parse(bad).is_err(), "{bad}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
