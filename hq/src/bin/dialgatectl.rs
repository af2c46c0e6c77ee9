//! `dialgatectl`, the kit officer's tool. It runs at home, never on the
//! appliance.
//!
//! ```text
//! dialgatectl pki init     --dir HQ
//! dialgatectl pki kit      --dir HQ --kit ID --address ADDR [--address ADDR ...]
//! dialgatectl token enroll --dir HQ --name NAME --pkcs11-module SO [--token-label L] --pin-file F [--aliases a,b]
//! dialgatectl token enroll --dir HQ --name NAME --software --key KEY.pem [--aliases a,b]
//! dialgatectl token list   --dir HQ | --registry FILE
//! dialgatectl token show   --dir HQ | --registry FILE  NAME
//! dialgatectl token revoke --dir HQ | --registry FILE  NAME
//! dialgatectl policy build --dir HQ --kit ID --out BUNDLE [--version N] [--days D | --valid-for SECONDS]
//!                          [--registry FILE] [--config KIT.toml]
//!                          [--require-post-quantum] [--require-attestation]
//! dialgatectl policy show  --key PUBLIC_KEY_PEM --kit ID BUNDLE
//! dialgatectl publish      --dir HQ --out REPO [--kit ID] [--policy BUNDLE] [--firmware BUNDLE]
//!                          [--timestamp-valid SECONDS] [--snapshot-valid SECONDS]
//! dialgatectl firmware    keygen | build | provision   (dialgate_hq::firmware)
//! dialgatectl kits         --pushgateway URL --ca FILE [--cert FILE --key FILE] [--overdue SECONDS]
//! ```
//!
//! `pki init` creates the home side (`dialgate_hq::hq`): the token CA, the
//! policy signing key and the repository's timestamp and snapshot keys
//! (kept at home; kits pin their public keys, which `pki kit` copies into
//! the kit's folder). `token`
//! edits the HQ registry (`HQ/registry.toml`). `policy build` signs the
//! registry and the meeting directory (`HQ/directory.toml`, or a kit
//! configuration's `[[directory]]`) into a bundle for one kit, one version
//! above the last built; placed at the kit's `policy.bundle` path it is
//! applied within a second. `policy show` verifies a bundle as a kit would
//! and prints it. `publish` writes every kit's signed repository under
//! REPO (`dialgate_hq::publish`; the format is in `docs/repository.md`),
//! rebuilding a kit's policy when the registry changed; run it again well
//! within the timestamp's validity (15 minutes by default). `kits` reads
//! the kits' last status pushes from a Pushgateway (`dialgate_hq::kits`,
//! `docs/status.md`) and flags those overdue.
//!
//! `token enroll` generates a P-256 key on a PKCS#11 token, has the HQ
//! token CA certify it and adds the registry entry (`dialgate_hq::enrol`);
//! options: `--key-label` and `--key-id` (default the name and 01, which
//! Yubico's ykcs11 maps to PIV slot 9a), `--attestation-root` (default
//! Yubico's PIV root), `--registry` (default HQ/registry.toml), `--days`
//! (365), `--require-attestation` (also `require_attestation = true` in
//! HQ/enrol.toml). `--software --key KEY.pem` enrols a key file instead,
//! marked unattested (tests and demos).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dialgate_hq::hq::{build_policy, BuildOptions, Hq};
use dialgate_proto::config::parse_registry;
use dialgate_proto::policy::Switches;

/// The kit officer's tool: the home PKI, the token registry and signed
/// policy bundles. It runs at home, never on the appliance.
#[derive(Debug, Parser)]
#[command(name = "dialgatectl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The home PKI: token CA, kit CA, policy signing key, kit identities.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// The token registry: enrol, list, show, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Signed policy bundles for the kits.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The kits' audit trails.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Writes every kit's signed repository (timestamp, snapshot, targets).
    Publish(dialgate_hq::publish::PublishArgs),
    /// Signs a command for one kit (wipe, drop-calls, reboot), published
    /// with its repository by the next `dialgatectl publish`.
    #[command(name = "command")]
    Order(dialgate_hq::command::CommandArgs),
    /// Every kit's last check-in (overdue flagged), versions and security
    /// counters, read from a Prometheus Pushgateway.
    Kits(dialgate_hq::kits::KitsArgs),
    /// Firmware: signing keys, signed bundles, factory provisioning.
    #[command(subcommand)]
    Firmware(dialgate_hq::firmware::FirmwareCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Checks a trail as the SIEM stored it (one record per line): no
    /// record missing, altered, reordered or forged, every one vouched for
    /// by a signed checkpoint. Exit 0 only then; otherwise names the first
    /// bad record.
    Verify {
        /// The HQ folder (the kits' checkpoint keys: kits/ID/audit-key.pub.pem).
        #[arg(long)]
        dir: PathBuf,
        /// The newest sequence number the kit reports (catches a trail cut
        /// just after a checkpoint).
        #[arg(long, value_name = "N")]
        through: Option<u64>,
        /// The received records.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Creates the home side in an absent or empty folder.
    Init {
        /// The HQ folder.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issues one kit's identities into HQ/kits/ID/.
    Kit {
        /// The HQ folder.
        #[arg(long)]
        dir: PathBuf,
        /// The kit's id.
        #[arg(long)]
        kit: String,
        /// An address phones reach the kit at (repeat for several).
        #[arg(long = "address", required = true)]
        addresses: Vec<String>,
    },
}

/// Which registry a token command edits: the HQ's, or a file.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct RegistryChoice {
    /// The HQ folder (its registry.toml).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A registry file.
    #[arg(long)]
    registry: Option<PathBuf>,
}

impl RegistryChoice {
    fn path(&self) -> PathBuf {
        match (&self.registry, &self.dir) {
            (Some(r), _) => r.clone(),
            (None, Some(d)) => Hq::new(d).registry(),
            // clap's group guarantees one of the two.
            (None, None) => PathBuf::from("registry.toml"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Enrols a token: a key on a PKCS#11 token (or, with --software, a key
    /// file marked unattested), certified by the HQ token CA.
    Enroll(Box<EnrollArgs>),
    /// Lists the registry's tokens.
    List {
        #[command(flatten)]
        registry: RegistryChoice,
    },
    /// Prints one token's registry entry.
    Show {
        #[command(flatten)]
        registry: RegistryChoice,
        /// The token's name.
        name: String,
    },
    /// Marks a token revoked (the file is replaced atomically).
    Revoke {
        #[command(flatten)]
        registry: RegistryChoice,
        /// The token's name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct EnrollArgs {
    /// The HQ folder.
    #[arg(long)]
    dir: PathBuf,
    /// The token's name (the identity its calls carry).
    #[arg(long)]
    name: String,
    /// Enrol a key file instead of a hardware token (tests and demos).
    #[arg(long, conflicts_with_all = ["pkcs11_module", "token_label", "pin_file", "key_label", "key_id", "attestation_root"], requires = "key")]
    software: bool,
    /// The key file of --software.
    #[arg(long, requires = "software")]
    key: Option<PathBuf>,
    /// The PKCS#11 module (a .so).
    #[arg(long, required_unless_present = "software", requires = "pin_file")]
    pkcs11_module: Option<PathBuf>,
    /// The token's label, if the module has several.
    #[arg(long)]
    token_label: Option<String>,
    /// A file holding the token's user PIN.
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// The key's label on the token (default: the name).
    #[arg(long)]
    key_label: Option<String>,
    /// The key's id on the token, in hex (default 01: PIV slot 9a).
    #[arg(long)]
    key_id: Option<String>,
    /// The attestation root (default: Yubico's PIV root).
    #[arg(long)]
    attestation_root: Option<PathBuf>,
    /// Meeting aliases the token may call, comma-separated.
    #[arg(long, value_delimiter = ',')]
    aliases: Vec<String>,
    /// The registry to add it to (default HQ/registry.toml).
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Validity of the token certificate, in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
    days: u64,
    /// Refuse a key whose hardware attestation does not verify.
    #[arg(long)]
    require_attestation: bool,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Signs the registry and the meeting directory into a bundle for one
    /// kit, one version above the last built.
    Build {
        /// The HQ folder.
        #[arg(long)]
        dir: PathBuf,
        /// The kit's id.
        #[arg(long)]
        kit: String,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
        /// The version (default: one above the last built).
        #[arg(long)]
        version: Option<u64>,
        /// Validity in days (default 30).
        #[arg(long, conflicts_with = "valid_for")]
        days: Option<u64>,
        /// Validity in seconds.
        #[arg(long)]
        valid_for: Option<u64>,
        /// The registry (default HQ/registry.toml).
        #[arg(long)]
        registry: Option<PathBuf>,
        /// Take the meeting directory from this kit configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Phones must use the hybrid post-quantum key exchange.
        #[arg(long)]
        require_post_quantum: bool,
        /// Only attested hardware tokens are admitted.
        #[arg(long)]
        require_attestation: bool,
    },
    /// Verifies a bundle as a kit would and prints it.
    Show {
        /// The pinned policy public key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The kit's id.
        #[arg(long)]
        kit: String,
        /// The bundle.
        bundle: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(TokenCommand::Enroll(args)) => enroll(&args),
        Command::Token(TokenCommand::List { registry }) => list(&registry.path()),
        Command::Token(TokenCommand::Show { registry, name }) => show(&registry.path(), &name),
        Command::Token(TokenCommand::Revoke { registry, name }) => revoke(&registry.path(), &name),
        Command::Pki(PkiCommand::Init { dir }) => pki_init(&dir),
        Command::Audit(AuditCommand::Verify { dir, through, file }) => {
            audit_verify(&dir, &file, through)
        }
        Command::Pki(PkiCommand::Kit {
            dir,
            kit,
            addresses,
        }) => {
            let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
            pki_kit(&dir, &kit, &addresses)
        }
        Command::Policy(PolicyCommand::Build {
            dir,
            kit,
            out,
            version,
            days,
            valid_for,
            registry,
            config,
            require_post_quantum,
            require_attestation,
        }) => {
            let valid_for_secs = match (days, valid_for) {
                (Some(d), _) => d.saturating_mul(86_400),
                (None, Some(s)) => s,
                (None, None) => 30 * 86_400,
            };
            policy_build(
                &dir,
                &kit,
                version,
                valid_for_secs,
                Switches {
                    require_post_quantum,
                    require_attestation,
                },
                registry.as_deref(),
                config.as_deref(),
                &out,
            )
        }
        Command::Policy(PolicyCommand::Show { key, kit, bundle }) => {
            policy_show(&key, &kit, &bundle)
        }
        Command::Publish(args) => publish(&args),
        Command::Order(args) => now_unix().and_then(|now| dialgate_hq::command::run(&args, now)),
        Command::Kits(args) => dialgate_hq::kits::print(&args).map_err(|e| e.to_string()),
        Command::Firmware(cmd) => dialgate_hq::firmware::run(&cmd).map(|m| println!("{m}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialgatectl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `token enroll`: a key generated on a PKCS#11 token (or, with
/// `--software`, read from a file and marked unattested), its certificate
/// from the HQ token CA, and its registry entry.
fn enroll(args: &EnrollArgs) -> Result<(), String> {
    use dialgate_hq::enrol::{self, pkcs11, HqPaths, HqSettings, Request};
    let name = &args.name;
    let mut paths = HqPaths::new(&args.dir);
    if let Some(r) = &args.registry {
        paths.registry = r.clone();
    }
    let settings = HqSettings::load(&args.dir).map_err(|e| e.to_string())?;
    let request = Request {
        name: name.clone(),
        aliases: args
            .aliases
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
        days: args.days,
        require_attestation: args.require_attestation || settings.require_attestation,
    };
    let prepared = enrol::prepare(paths, request).map_err(|e| e.to_string())?;
    let enrolled = if args.software {
        let key_path = args
            .key
            .as_deref()
            .ok_or("--software needs --key KEY.pem")?;
        eprintln!(
            "dialgatectl: enrolling {name} from a SOFTWARE key file: it will be marked unattested"
        );
        let key = enrol::software_key(key_path).map_err(|e| e.to_string())?;
        let csr = prepared
            .certification_request(&key)
            .map_err(|e| e.to_string())?;
        let issued = prepared.issue(&csr).map_err(|e| e.to_string())?;
        prepared
            .commit(
                &issued,
                enrol::Origin::Software,
                enrol::Attestation::Unattested(enrol::software_why()),
            )
            .map_err(|e| e.to_string())?
    } else {
        let module = args.pkcs11_module.as_deref().ok_or("--pkcs11-module SO")?;
        let pin_file = args
            .pin_file
            .as_deref()
            .ok_or("a PKCS#11 token needs --pin-file FILE")?;
        let pin = pkcs11::Pin::from_file(pin_file).map_err(|e| e.to_string())?;
        let key_id = match &args.key_id {
            Some(h) => pkcs11::parse_key_id(h)
                .ok_or_else(|| format!("--key-id {h}: 1 to 32 octets in hex, e.g. 01"))?,
            None => vec![1],
        };
        let roots = match &args.attestation_root {
            Some(f) => {
                let certs = dialgate_hq::enrol::der::pem_certificates(&read(f)?);
                if certs.is_empty() {
                    return Err(format!(
                        "--attestation-root {}: no certificate in it",
                        f.display()
                    ));
                }
                certs
            }
            None => vec![enrol::attest::yubico_piv_root()],
        };
        pkcs11::enrol(
            &prepared,
            &pkcs11::Options {
                module,
                token_label: args.token_label.as_deref(),
                pin: &pin,
                key_label: args.key_label.as_deref().unwrap_or(name.as_str()),
                key_id: &key_id,
                attestation_roots: &roots,
            },
        )
        .map_err(|e| e.to_string())?
    };
    for line in enrolled.describe() {
        println!("{line}");
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The `[[token]]` blocks of a registry: (name, lines of the block).
fn blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.trim() == "[[token]]" {
            out.push((String::new(), vec![line.to_string()]));
            continue;
        }
        if let Some((name, lines)) = out.last_mut() {
            if let Some(v) = line.trim().strip_prefix("name = ") {
                *name = v.trim_matches('"').to_string();
            }
            lines.push(line.to_string());
        }
    }
    out
}

fn list(path: &Path) -> Result<(), String> {
    let text = read(path)?;
    parse_registry(&text).map_err(|e| e.to_string())?;
    for (name, lines) in blocks(&text) {
        let revoked = lines.iter().any(|l| l.trim() == "revoked = true");
        let unattested = lines.iter().any(|l| l.trim() == "unattested = true");
        let pkcs11 = lines.iter().any(|l| l.trim() == "origin = \"pkcs11\"");
        let attested = lines.iter().any(|l| l.trim().starts_with("attestation = "));
        println!(
            "{name:<16} {}{}",
            if revoked { "REVOKED" } else { "active" },
            match (unattested, pkcs11, attested) {
                (_, _, true) => "  (attested hardware token)",
                (true, true, _) => "  (unattested PKCS#11 token)",
                (true, false, _) => "  (unattested software key)",
                _ => "",
            }
        );
    }
    Ok(())
}

fn show(path: &Path, name: &str) -> Result<(), String> {
    let text = read(path)?;
    let (_, lines) = blocks(&text)
        .into_iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| format!("no token named {name:?} in {}", path.display()))?;
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

/// Marks a token revoked and replaces the file atomically, after checking
/// that the result is a registry the gateway accepts.
fn revoke(path: &Path, name: &str) -> Result<(), String> {
    let text = read(path)?;
    let mut found = false;
    let mut out = String::new();
    let mut in_target = false;
    for line in text.lines() {
        if line.trim() == "[[token]]" {
            in_target = false;
        }
        if line.trim() == format!("name = \"{name}\"") {
            in_target = true;
            found = true;
            out.push_str(line);
            out.push_str("\nrevoked = true\n");
            continue;
        }
        if in_target && line.trim().starts_with("revoked = ") {
            continue; // replaced above
        }
        out.push_str(line);
        out.push('\n');
    }
    if !found {
        return Err(format!("no token named {name:?} in {}", path.display()));
    }
    let (registry, _) = parse_registry(&out).map_err(|e| format!("refusing to write: {e}"))?;
    let tmp = path.with_extension("toml.new");
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(out.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{name} revoked in {} ({} active tokens left); now `dialgatectl policy build` and deliver the bundle to the kits (a kit reading this file directly applies it within a second)",
        path.display(),
        registry.active_names().len()
    );
    Ok(())
}

fn now_unix() -> Result<u64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "the system clock is before 1970".to_string())
}

/// Creates the home side in `dir` (absent or empty): the token CA and the
/// policy signing key. Private keys are written 0600; nothing is ever
/// overwritten.
fn audit_verify(dir: &Path, file: &Path, through: Option<u64>) -> Result<(), String> {
    let r = dialgate_hq::audit::verify_file(dir, file, through).map_err(|e| e.to_string())?;
    println!(
        "{}: {} records verified (seq {}..={}), {} checkpoints, {} duplicates (redelivered, ignored)",
        file.display(),
        r.verified,
        r.first,
        r.last,
        r.checkpoints,
        r.duplicates
    );
    Ok(())
}

fn pki_init(dir: &Path) -> Result<(), String> {
    use dialgate_hq::pki::{write_file, Ca, Validity};
    use dialgate_proto::policy::SigningKey;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "{} is not empty: refusing to overwrite a PKI",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca =
        Ca::new("dialgate token CA", Validity::days_from_now(3650)).map_err(|e| e.to_string())?;
    write_file(&dir.join("token-ca.pem"), ca.cert_pem().as_bytes(), 0o644)
        .map_err(|e| e.to_string())?;
    write_file(
        &dir.join("token-ca-key.pem"),
        ca.key_pem().as_bytes(),
        0o600,
    )
    .map_err(|e| e.to_string())?;
    let kit_ca =
        Ca::new("dialgate kit CA", Validity::days_from_now(3650)).map_err(|e| e.to_string())?;
    write_file(&dir.join("kit-ca.pem"), kit_ca.cert_pem().as_bytes(), 0o644)
        .map_err(|e| e.to_string())?;
    write_file(
        &dir.join("kit-ca-key.pem"),
        kit_ca.key_pem().as_bytes(),
        0o600,
    )
    .map_err(|e| e.to_string())?;
    let key = SigningKey::generate().map_err(|e| e.to_string())?;
    let pkcs8 = key.to_pkcs8().map_err(|e| e.to_string())?;
    write_file(&dir.join("policy-key.pk8"), &pkcs8, 0o600).map_err(|e| e.to_string())?;
    let public = dialgate_hq::pki::pem_encode("PUBLIC KEY", key.public_key().spki_der());
    write_file(&dir.join("policy-key.pub.pem"), public.as_bytes(), 0o644)
        .map_err(|e| e.to_string())?;
    println!("home PKI created in {}", dir.display());
    println!(
        "  token CA:          {}/token-ca.pem (key token-ca-key.pem, 0600)",
        dir.display()
    );
    println!(
        "  kit CA:            {}/kit-ca.pem (key kit-ca-key.pem, 0600): issues kits' certificates",
        dir.display()
    );
    println!(
        "  policy signing key: {}/policy-key.pk8 (0600, stays at home)",
        dir.display()
    );
    println!(
        "  policy public key:  {}/policy-key.pub.pem (kits pin it; id {})",
        dir.display(),
        key.public_key().id().to_hex()
    );
    dialgate_hq::publish::RepoKeys::load_or_generate(&Hq::new(dir)).map_err(|e| e.to_string())?;
    println!(
        "  repository keys:    timestamp-key.pk8, snapshot-key.pk8 (0600; kits pin the .pub.pem)"
    );
    Ok(())
}

/// Issues one kit's identities from the HQ kit CA into `HQ/kits/ID/`: the
/// gateway's phone-side server certificate (for `addresses`), the kit's
/// device identity (a client certificate, e.g. for trunks that require
/// one), and the files the kit trusts (the kit CA for phones, the token
/// CA, the pinned policy key). Keys are P-256, written 0600; an existing
/// kit folder is never overwritten.
fn pki_kit(dir: &Path, kit: &str, addresses: &[&str]) -> Result<(), String> {
    use dialgate_hq::pki::{write_file, Ca, Validity};
    if kit.is_empty()
        || kit.len() > 128
        || !kit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c))
    {
        return Err(format!(
            "--kit {kit:?}: 1 to 128 letters, digits, '-', '_', '.', '@' and '+'"
        ));
    }
    let file = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| {
            format!(
                "{}: {e}; create the home PKI with `dialgatectl pki init --dir HQ`",
                p.display()
            )
        })
    };
    let kit_ca = file("kit-ca.pem")?;
    let ca = Ca::load(&kit_ca, &file("kit-ca-key.pem")?).map_err(|e| e.to_string())?;
    let (token_ca, policy_key) = (file("token-ca.pem")?, file("policy-key.pub.pem")?);
    // An HQ made before the repository existed gets its keys now.
    let repo = dialgate_hq::publish::RepoKeys::load_or_generate(&Hq::new(dir))
        .map_err(|e| e.to_string())?;
    let out = dir.join("kits").join(kit);
    if out.exists() {
        return Err(format!(
            "{} exists: refusing to overwrite a kit's identities",
            out.display()
        ));
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let v = Validity::days_from_now(825);
    let server = ca
        .issue_server(&format!("dialgate gateway {kit}"), addresses, v)
        .map_err(|e| e.to_string())?;
    let device = ca
        .issue_client(&format!("dialgate kit {kit}"), v)
        .map_err(|e| e.to_string())?;
    let w = |name: &str, data: &[u8], mode: u32| {
        write_file(&out.join(name), data, mode).map_err(|e| e.to_string())
    };
    w("gateway-cert.pem", server.cert_pem.as_bytes(), 0o644)?;
    w("gateway-key.pem", server.key_pem.as_bytes(), 0o600)?;
    w("device-cert.pem", device.cert_pem.as_bytes(), 0o644)?;
    w("device-key.pem", device.key_pem.as_bytes(), 0o600)?;
    w("ca.pem", kit_ca.as_bytes(), 0o644)?;
    w("token-ca.pem", token_ca.as_bytes(), 0o644)?;
    w("policy-key.pub.pem", policy_key.as_bytes(), 0o644)?;
    w(
        "timestamp-key.pub.pem",
        repo.timestamp.public_key().to_pem().as_bytes(),
        0o644,
    )?;
    w(
        "snapshot-key.pub.pem",
        repo.snapshot.public_key().to_pem().as_bytes(),
        0o644,
    )?;
    println!(
        "kit {kit}: identities in {} (valid 825 days)",
        out.display()
    );
    println!(
        "  gateway-cert.pem / gateway-key.pem  phone-side server certificate for {addresses:?}"
    );
    println!(
        "  device-cert.pem / device-key.pem    the kit's device identity (client certificate)"
    );
    println!(
        "  ca.pem, token-ca.pem, policy-key.pub.pem, timestamp-key.pub.pem, snapshot-key.pub.pem"
    );
    println!("                                      what the kit and its phones trust");
    Ok(())
}

/// Signs the HQ registry and a meeting directory (HQ/directory.toml, or
/// a kit configuration's) into a policy bundle for one kit.
#[allow(clippy::too_many_arguments)]
fn policy_build(
    dir: &Path,
    kit: &str,
    version: Option<u64>,
    valid_for_secs: u64,
    switches: Switches,
    registry: Option<&Path>,
    config: Option<&Path>,
    out: &Path,
) -> Result<(), String> {
    let directory = match config {
        Some(c) => {
            let config = dialgate_proto::config::Config::load(c, &dialgate_hq::Files)
                .map_err(|e| e.to_string())?;
            Some(config.directory.into_values().collect())
        }
        None => None,
    };
    let built = build_policy(
        &Hq::new(dir),
        BuildOptions {
            kit: kit.to_string(),
            version,
            valid_for_secs,
            switches,
            directory,
            registry: registry.map(Path::to_path_buf),
        },
    )
    .map_err(|e| e.to_string())?;
    dialgate_signed::store::write_atomically(out, &built.bundle)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let b = &built.body;
    println!(
        "policy version {} for kit {kit}: {} tokens ({} revoked), {} directory entries, expires at {} (unix seconds): {}",
        b.version,
        b.tokens.len(),
        b.tokens.iter().filter(|t| t.revoked).count(),
        b.directory.len(),
        b.expires_at,
        out.display()
    );
    Ok(())
}

/// Verifies a bundle as a kit would (pinned key, kit id, dates) and prints it.
fn policy_show(key: &Path, kit: &str, bundle: &Path) -> Result<(), String> {
    use dialgate_proto::policy::{verify_and_decide, GracePeriod, PolicyKey, State, Trust};
    let pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let trust = Trust {
        pinned_key: PolicyKey::from_pem(&pem).map_err(|e| e.to_string())?,
        kit_id: kit.to_string(),
        grace: GracePeriod::NONE,
    };
    let bytes = std::fs::read(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let v =
        verify_and_decide(&bytes, &trust, &State::new(), now_unix()?).map_err(|e| e.to_string())?;
    let b = v.body();
    println!(
        "valid policy version {} for {:?}, issued {} expires {} (unix seconds), signer {}",
        b.version,
        b.kits,
        b.issued_at,
        b.expires_at,
        v.signer().to_hex()
    );
    for t in &b.tokens {
        println!(
            "  {:<16} {}{}  aliases {:?}",
            t.name,
            if t.revoked { "REVOKED" } else { "active" },
            if t.unattested { " (unattested)" } else { "" },
            t.aliases
        );
    }
    Ok(())
}

/// Publishes the kits' repositories and prints what each now offers.
fn publish(args: &dialgate_hq::publish::PublishArgs) -> Result<(), String> {
    let opts = args.options(now_unix()?);
    let done = dialgate_hq::publish::publish(&Hq::new(&args.dir), &opts);
    for kit in done.map_err(|e| e.to_string())? {
        println!("{kit}");
    }
    println!("repository written under {}", args.out.display());
    Ok(())
}
