//! `dialgatectl publish`: every kit's repository, as a static tree any
//! HTTPS server can serve (format: `docs/repository.md`; the kit's
//! verifier: [`dialgate_signed::repo`]).
//!
//! ```text
//! OUT/<kit>/timestamp.signed           re-signed on every publish (minutes)
//! OUT/<kit>/snapshot-<V>.signed        a new version when a target changes
//! OUT/<kit>/targets/<SHA-256>.<NAME>   policy.bundle, firmware.bundle, commands
//! ```
//!
//! Keys, in the HQ folder (created on the first publish, 0600):
//!
//! ```text
//! HQ/timestamp-key.pk8, timestamp-key.pub.pem   signs the timestamps
//! HQ/snapshot-key.pk8, snapshot-key.pub.pem     signs the snapshots
//! HQ/published/<kit>.policy-inputs              what the published policy was built from
//! ```
//!
//! Versions continue from what the tree holds: publish reads the current
//! timestamp and snapshot back (verifying them with its own keys, so a
//! tree altered on the web server is not continued from), raises the
//! timestamp's version every time, the snapshot's when a target changed
//! (or it nears expiry), and a target's when its bytes changed. Files are
//! written in the order a kit reads them backwards (targets, snapshot,
//! then the timestamp, each replaced atomically), and the previous
//! publication's files are kept, so a kit polling meanwhile sees one
//! publication or the other, never a mix.
//!
//! Without `--policy`, the kit's policy is rebuilt from the HQ registry,
//! directory and trunks when they changed since the last publish (after
//! `dialgatectl token revoke`) or when less than half of its validity is
//! left, keeping the switches (so a publish never loosens them) and the
//! validity of the policy in force.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use dialgate_proto::policy::{verify_and_decide, GracePeriod, PolicyKey, State, Switches, Trust};
use dialgate_signed::repo::{
    is_kit_id, snapshot_file, target_file, FileMeta, Header, RoleKeys, Snapshot, TargetName,
    Timestamp, SNAPSHOT, TIMESTAMP, TIMESTAMP_FILE,
};
use dialgate_signed::{hex, open, store, PublicKey, SigningKey, POLICY};

use crate::hq::{build_policy, BuildOptions, Hq, HqError};

/// Default validity of a timestamp: 15 minutes. Publish again (a timer)
/// well within it, or kits report their metadata expired.
pub const TIMESTAMP_VALID_SECS: u64 = 15 * 60;
/// Default validity of a snapshot: 30 days; re-signed when less than half
/// of it is left.
pub const SNAPSHOT_VALID_SECS: u64 = 30 * 86_400;
/// Validity of a policy publish builds for a kit that has none: 30 days,
/// as `policy build`; a rebuilt one keeps the validity of the one in force.
pub const POLICY_VALID_SECS: u64 = 30 * 86_400;

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The repository root (`OUT/<kit>/...`).
    pub out: PathBuf,
    /// One kit; `None`: every kit in `HQ/kits/` and in `OUT/`.
    pub kit: Option<String>,
    /// A policy bundle to publish (it must be for every kit published).
    pub policy: Option<PathBuf>,
    /// A firmware bundle to offer.
    pub firmware: Option<PathBuf>,
    /// The time to sign with (unix seconds).
    pub now: u64,
    /// How long the timestamps are valid.
    pub timestamp_valid_secs: u64,
    /// How long the snapshots are valid.
    pub snapshot_valid_secs: u64,
}

impl PublishOptions {
    /// Publish into `out` at `now` with the default validities.
    pub fn new(out: &Path, now: u64) -> PublishOptions {
        PublishOptions {
            out: out.to_path_buf(),
            kit: None,
            policy: None,
            firmware: None,
            now,
            timestamp_valid_secs: TIMESTAMP_VALID_SECS,
            snapshot_valid_secs: SNAPSHOT_VALID_SECS,
        }
    }
}

/// `dialgatectl publish`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The HQ folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// The repository root (one folder per kit).
    #[arg(long)]
    pub out: PathBuf,
    /// Only this kit (default: every kit of HQ/kits/ and of the root).
    #[arg(long)]
    pub kit: Option<String>,
    /// A policy bundle to publish (default: rebuilt when the registry,
    /// directory or trunks changed).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// A firmware bundle to offer.
    #[arg(long)]
    pub firmware: Option<PathBuf>,
    /// Validity of the timestamps, in seconds.
    #[arg(long, default_value_t = TIMESTAMP_VALID_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub timestamp_valid: u64,
    /// Validity of the snapshots, in seconds.
    #[arg(long, default_value_t = SNAPSHOT_VALID_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_valid: u64,
}

impl PublishArgs {
    /// The options these arguments give, signing at `now`.
    pub fn options(&self, now: u64) -> PublishOptions {
        PublishOptions {
            kit: self.kit.clone(),
            policy: self.policy.clone(),
            firmware: self.firmware.clone(),
            timestamp_valid_secs: self.timestamp_valid,
            snapshot_valid_secs: self.snapshot_valid,
            ..PublishOptions::new(&self.out, now)
        }
    }
}

/// What was published for one kit.
#[derive(Debug, Clone)]
pub struct KitPublished {
    /// The kit.
    pub kit: String,
    /// The new timestamp's version.
    pub timestamp_version: u64,
    /// The snapshot it names.
    pub snapshot: FileMeta,
    /// Whether that snapshot is new.
    pub snapshot_changed: bool,
    /// The targets it names.
    pub targets: Vec<(TargetName, FileMeta)>,
    /// The policy version published, if a policy was (re)built or given.
    pub policy_version: Option<u64>,
}

/// One line: `kit ID: timestamp vN, snapshot vM (new): TARGETS[; policy version P published]`.
impl std::fmt::Display for KitPublished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kit {}: timestamp v{}, snapshot v{}{}: ",
            self.kit,
            self.timestamp_version,
            self.snapshot.version,
            if self.snapshot_changed { " (new)" } else { "" }
        )?;
        if self.targets.is_empty() {
            f.write_str("no targets")?;
        }
        for (i, (name, m)) in self.targets.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} v{} ({} octets)", m.version, m.length)?;
        }
        if let Some(v) = self.policy_version {
            write!(f, "; policy version {v} published")?;
        }
        Ok(())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HqError + '_ {
    move |source| HqError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> HqError {
    HqError::Invalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The repository's signing keys, kept in the HQ folder.
#[derive(Debug)]
pub struct RepoKeys {
    /// Signs timestamps.
    pub timestamp: SigningKey,
    /// Signs snapshots.
    pub snapshot: SigningKey,
}

impl RepoKeys {
    /// Loads `HQ/timestamp-key.pk8` and `HQ/snapshot-key.pk8`, generating
    /// (and writing, 0600, with their public halves) the ones absent.
    pub fn load_or_generate(hq: &Hq) -> Result<RepoKeys, HqError> {
        Ok(RepoKeys {
            timestamp: load_or_generate(hq.dir(), "timestamp-key")?,
            snapshot: load_or_generate(hq.dir(), "snapshot-key")?,
        })
    }

    /// The public keys a kit pins.
    pub fn role_keys(&self) -> RoleKeys {
        RoleKeys {
            timestamp: self.timestamp.public_key().clone(),
            snapshot: self.snapshot.public_key().clone(),
        }
    }
}

/// The public keys a kit pins, read from `HQ/timestamp-key.pub.pem` and
/// `HQ/snapshot-key.pub.pem`.
pub fn pinned_keys(hq: &Hq) -> Result<RoleKeys, HqError> {
    let read = |name: &str| {
        let path = hq.dir().join(name);
        let pem = fs::read(&path).map_err(io(&path))?;
        PublicKey::from_pem(&pem).map_err(|e| invalid(&path, e.to_string()))
    };
    Ok(RoleKeys {
        timestamp: read("timestamp-key.pub.pem")?,
        snapshot: read("snapshot-key.pub.pem")?,
    })
}

fn load_or_generate(dir: &Path, stem: &str) -> Result<SigningKey, HqError> {
    let path = dir.join(format!("{stem}.pk8"));
    match fs::read(&path) {
        Ok(der) => {
            let der = zeroize::Zeroizing::new(der);
            SigningKey::from_pkcs8(&der).map_err(|e| invalid(&path, e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate().map_err(|e| invalid(&path, e.to_string()))?;
            let der = key.to_pkcs8().map_err(|e| invalid(&path, e.to_string()))?;
            crate::pki::write_file(&path, &der, 0o600)
                .map_err(|e| invalid(&path, e.to_string()))?;
            let public = dir.join(format!("{stem}.pub.pem"));
            write_public(&public, key.public_key().to_pem().as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(io(&path)(e)),
    }
}

/// Replaces `path` atomically and durably, readable by the web server
/// (0644): the files of a repository are public, their signatures make
/// them trustworthy.
fn write_public(path: &Path, bytes: &[u8]) -> Result<(), HqError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// The previous publication of one kit, read back and verified.
struct Previous {
    timestamp: Timestamp,
    snapshot: Snapshot,
}

fn read_previous(root: &Path, keys: &RoleKeys) -> Result<Option<Previous>, HqError> {
    let path = root.join(TIMESTAMP_FILE);
    let bytes = match store::read_bounded(&path, TIMESTAMP.max_bytes) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let refuse = |path: &Path, why: String| {
        invalid(
            path,
            format!("{why}: not this HQ's publication; move the kit's folder away to start it afresh (its kit then refuses versions below those it saw)"),
        )
    };
    let body =
        open(&TIMESTAMP, &bytes, &keys.timestamp).map_err(|e| refuse(&path, e.to_string()))?;
    let timestamp = Timestamp::parse(body.bytes).map_err(|r| refuse(&path, r.to_string()))?;
    let path = root.join(snapshot_file(timestamp.snapshot.version));
    let bytes = store::read_bounded(&path, SNAPSHOT.max_bytes).map_err(io(&path))?;
    if FileMeta::of(timestamp.snapshot.version, &bytes) != timestamp.snapshot {
        return Err(refuse(&path, "not the snapshot the timestamp names".into()));
    }
    let body = open(&SNAPSHOT, &bytes, &keys.snapshot).map_err(|e| refuse(&path, e.to_string()))?;
    let snapshot = Snapshot::parse(body.bytes).map_err(|r| refuse(&path, r.to_string()))?;
    Ok(Some(Previous {
        timestamp,
        snapshot,
    }))
}

/// The kits to publish for: the one named, or every kit of `HQ/kits/` and
/// of the repository root.
fn kits(hq: &Hq, opts: &PublishOptions) -> Result<Vec<String>, HqError> {
    if let Some(k) = &opts.kit {
        if !is_kit_id(k) {
            return Err(invalid(
                Path::new(k),
                "not a kit id (1 to 128 letters, digits, '-', '_', '.', '@', '+', starting with a letter or digit)",
            ));
        }
        return Ok(vec![k.clone()]);
    }
    let mut out = BTreeSet::new();
    for dir in [hq.dir().join("kits"), opts.out.clone()] {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        for e in entries {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_kit_id(&name) && e.path().is_dir() {
                out.insert(name);
            }
        }
    }
    if out.is_empty() {
        return Err(invalid(
            hq.dir(),
            "no kits: issue one with `dialgatectl pki kit` or name it with --kit",
        ));
    }
    Ok(out.into_iter().collect())
}

/// SHA-256 over what a policy is built from (registry, directory,
/// trunks), to tell whether it must be rebuilt.
fn policy_inputs(hq: &Hq) -> Result<String, HqError> {
    let mut all = Vec::new();
    for name in ["registry.toml", "directory.toml", "trunks.toml"] {
        let path = hq.dir().join(name);
        all.extend_from_slice(name.as_bytes());
        match fs::read(&path) {
            Ok(b) => {
                all.extend_from_slice(format!(" {}\n", b.len()).as_bytes());
                all.extend_from_slice(&b);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => all.extend_from_slice(b" -\n"),
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(hex(&dialgate_signed::sha256(&all)))
}

fn policy_key(hq: &Hq) -> Result<PolicyKey, HqError> {
    let path = hq.dir().join("policy-key.pub.pem");
    let pem = fs::read(&path).map_err(io(&path))?;
    PolicyKey::from_pem(&pem).map_err(|e| invalid(&path, e.to_string()))
}

/// A policy to publish, and what it was built from: recorded only once
/// the publication is complete, so a publish that fails half-way is
/// retried in full (a revocation is never lost).
struct NewPolicy {
    bytes: Vec<u8>,
    version: u64,
    inputs_path: PathBuf,
    inputs: String,
}

/// The policy to publish for `kit`, if it changes: the one given, or one
/// rebuilt when the HQ's inputs changed.
fn policy_for(
    hq: &Hq,
    kit: &str,
    root: &Path,
    current: Option<&FileMeta>,
    opts: &PublishOptions,
) -> Result<Option<NewPolicy>, HqError> {
    let trust = Trust {
        pinned_key: policy_key(hq)?,
        kit_id: kit.to_string(),
        grace: GracePeriod::NONE,
    };
    let check = |path: &Path, bytes: &[u8]| {
        verify_and_decide(bytes, &trust, &State::new(), opts.now)
            .map_err(|e| invalid(path, format!("a kit {kit} would refuse it: {e}")))
    };
    let inputs_path = hq
        .dir()
        .join("published")
        .join(format!("{kit}.policy-inputs"));
    let inputs = policy_inputs(hq)?;
    let in_force = match current {
        Some(m) => {
            let path = root.join(target_file(TargetName::Policy, &m.sha256));
            Some(published_policy(&path, &trust.pinned_key)?)
        }
        None => None,
    };
    if let Some(path) = &opts.policy {
        let bytes = store::read_bounded(path, POLICY.max_bytes).map_err(io(path))?;
        let version = check(path, &bytes)?.version();
        let same = current.is_some_and(|m| m.sha256 == dialgate_signed::sha256(&bytes));
        if let Some(have) = in_force
            .map(|p| p.version)
            .filter(|have| !same && version <= *have)
        {
            return Err(invalid(
                path,
                format!("policy version {version} is not above version {have} published for kit {kit}: a kit would refuse it as a rollback; build it with a higher --version"),
            ));
        }
        return Ok(Some(NewPolicy {
            bytes,
            version,
            inputs_path,
            inputs,
        }));
    }
    let changed = fs::read_to_string(&inputs_path).ok().as_deref() != Some(inputs.as_str());
    // Re-signed when half its validity is gone, so a publish on a timer
    // keeps kits from running into its expiry.
    let aging = in_force.is_some_and(|p| p.aging(opts.now));
    if in_force.is_some() && !changed && !aging {
        return Ok(None);
    }
    if !hq.registry().exists() {
        // Nothing to build from: keep what is published (or publish none).
        return Ok(None);
    }
    if !hq.directory().exists() {
        if in_force.is_some() && !changed {
            // Only aging, and its directory came from elsewhere: keep it
            // (the kit reports its expiry); the officer rebuilds it.
            return Ok(None);
        }
        return Err(invalid(
            &hq.directory(),
            "absent, so publish cannot rebuild the policy; build it with `dialgatectl policy build --config KIT.toml` and publish it with --policy",
        ));
    }
    let valid_for_secs = in_force.map_or(POLICY_VALID_SECS, |p| p.validity().max(1));
    let in_force = in_force.unwrap_or_default();
    let version = hq.last_version()?.max(in_force.version) + 1;
    let built = build_policy(
        hq,
        BuildOptions {
            kit: kit.to_string(),
            version: Some(version),
            valid_for_secs,
            switches: in_force.switches,
            directory: None,
            registry: None,
        },
    )?;
    check(&hq.registry(), &built.bundle)?;
    Ok(Some(NewPolicy {
        bytes: built.bundle,
        version,
        inputs_path,
        inputs,
    }))
}

/// What publish needs of the policy in force.
#[derive(Debug, Clone, Copy, Default)]
struct InForce {
    version: u64,
    switches: Switches,
    issued_at: u64,
    expires_at: u64,
}

impl InForce {
    /// How long it was made valid for.
    fn validity(&self) -> u64 {
        self.expires_at.saturating_sub(self.issued_at)
    }

    /// Whether less than half of its validity is left at `now`.
    fn aging(&self, now: u64) -> bool {
        self.expires_at.saturating_sub(now) < self.validity() / 2
    }
}

/// The policy published, whose signature is checked (its dates are not:
/// an expired one is what gets replaced).
fn published_policy(path: &Path, key: &PolicyKey) -> Result<InForce, HqError> {
    let bytes = store::read_bounded(path, POLICY.max_bytes).map_err(io(path))?;
    let opened = open(&POLICY, &bytes, key).map_err(|e| invalid(path, e.to_string()))?;
    let body: toml::Table = std::str::from_utf8(opened.bytes)
        .ok()
        .and_then(|t| toml::from_str(t).ok())
        .ok_or_else(|| invalid(path, "the published policy's body is not TOML"))?;
    let number = |name: &str| {
        body.get(name)
            .and_then(toml::Value::as_integer)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| invalid(path, format!("the published policy has no {name}")))
    };
    // Signed bundles always spell both switches out; one missing is not
    // read as "off" (that would loosen the policy on the next publish).
    let switch = |name: &str| {
        body.get("switches")
            .and_then(|s| s.get(name))
            .and_then(toml::Value::as_bool)
            .ok_or_else(|| invalid(path, format!("the published policy has no switch {name}")))
    };
    Ok(InForce {
        version: number("version")?,
        switches: Switches {
            require_post_quantum: switch("require_post_quantum")?,
            require_attestation: switch("require_attestation")?,
        },
        issued_at: number("issued_at")?,
        expires_at: number("expires_at")?,
    })
}

fn record_inputs(path: &Path, inputs: &str) -> Result<(), HqError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    store::write_atomically(path, inputs.as_bytes()).map_err(io(path))
}

/// Gives a new timestamp file a modification time at least a second after
/// the one it replaced: static servers derive the ETag from the mtime in
/// whole seconds and the size (nginx), so two publications within one
/// second would otherwise share an ETag and a polling kit would be told
/// "304 Not Modified" about the second.
fn later_mtime(path: &Path, before: Option<std::time::SystemTime>) -> Result<(), HqError> {
    let Some(before) = before else {
        return Ok(());
    };
    let now = fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(io(path))?;
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    if secs(now) > secs(before) {
        return Ok(());
    }
    let bumped = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs(before) + 1);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(bumped))
        .map_err(io(path))
}

/// Copies a firmware bundle into `targets/`, hashing as it goes (it may
/// be large); returns its length and SHA-256.
fn copy_firmware(src: &Path, root: &Path) -> Result<(u64, [u8; 32]), HqError> {
    let max = TargetName::Firmware.max_len();
    let mut input = fs::File::open(src).map_err(io(src))?.take(max + 1);
    let tmp = root.join("targets").join(".firmware.bundle.tmp");
    let _ = fs::remove_file(&tmp);
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut length = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(io(src))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(&tmp))?;
        length += n as u64;
    }
    if length > max {
        let _ = fs::remove_file(&tmp);
        return Err(invalid(
            src,
            format!("larger than the {max} octets a kit reads"),
        ));
    }
    out.sync_all().map_err(io(&tmp))?;
    let mut sha = [0u8; 32];
    sha.copy_from_slice(ctx.finish().as_ref());
    let dest = root.join(target_file(TargetName::Firmware, &sha));
    fs::rename(&tmp, &dest).map_err(io(&dest))?;
    Ok((length, sha))
}

/// Publishes every kit's repository; see the [module docs](self).
pub fn publish(hq: &Hq, opts: &PublishOptions) -> Result<Vec<KitPublished>, HqError> {
    let keys = RepoKeys::load_or_generate(hq)?;
    let mut done = Vec::new();
    for kit in kits(hq, opts)? {
        done.push(publish_kit(hq, &keys, &kit, opts)?);
    }
    Ok(done)
}

fn publish_kit(
    hq: &Hq,
    keys: &RepoKeys,
    kit: &str,
    opts: &PublishOptions,
) -> Result<KitPublished, HqError> {
    let root = opts.out.join(kit);
    let targets_dir = root.join("targets");
    fs::create_dir_all(&targets_dir).map_err(io(&targets_dir))?;
    let previous = read_previous(&root, &keys.role_keys())?;
    let old_targets = previous
        .as_ref()
        .map(|p| p.snapshot.targets.clone())
        .unwrap_or_default();
    let mut targets = old_targets.clone();
    let mut set = |name: TargetName, length: u64, sha256: [u8; 32]| {
        let old = targets.iter().position(|(n, _)| *n == name);
        let version = match old.map(|i| targets[i].1) {
            Some(m) if m.sha256 == sha256 && m.length == length => return,
            Some(m) => m.version + 1,
            None => 1,
        };
        let meta = FileMeta {
            version,
            length,
            sha256,
        };
        match old {
            Some(i) => targets[i].1 = meta,
            None => {
                targets.push((name, meta));
                targets.sort_by_key(|(n, _)| *n);
            }
        }
    };

    let current_policy = old_targets
        .iter()
        .find(|(n, _)| *n == TargetName::Policy)
        .map(|(_, m)| *m);
    let policy = policy_for(hq, kit, &root, current_policy.as_ref(), opts)?;
    if let Some(p) = &policy {
        let meta = FileMeta::of(0, &p.bytes);
        write_public(
            &root.join(target_file(TargetName::Policy, &meta.sha256)),
            &p.bytes,
        )?;
        set(TargetName::Policy, meta.length, meta.sha256);
    }
    if let Some(fw) = &opts.firmware {
        let (length, sha) = copy_firmware(fw, &root)?;
        set(TargetName::Firmware, length, sha);
    }
    // The kit's newest signed command (`dialgatectl command`), if any.
    let command = hq
        .dir()
        .join("kits")
        .join(kit)
        .join(crate::command::COMMAND_FILE);
    match store::read_bounded(&command, TargetName::Commands.max_len() as usize) {
        Ok(bytes) => {
            let meta = FileMeta::of(0, &bytes);
            write_public(
                &root.join(target_file(TargetName::Commands, &meta.sha256)),
                &bytes,
            )?;
            set(TargetName::Commands, meta.length, meta.sha256);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&command)(e)),
    }

    // Signing times never go down: a kit's trusted time is the newest it
    // verified, and a timestamp signed "earlier" (this host's clock stepped
    // back) could expire before that and be refused.
    let now = opts.now.max(
        previous
            .as_ref()
            .map_or(0, |p| p.timestamp.header.signed_at),
    );
    let header = |version, valid: u64| Header {
        kit: kit.to_string(),
        version,
        signed_at: now,
        expires: now.saturating_add(valid.max(1)),
    };
    let sign_err = |e: dialgate_signed::SignedError| invalid(&root, e.to_string());
    let keep_snapshot = previous.as_ref().is_some_and(|p| {
        p.snapshot.targets == targets
            && p.snapshot.header.expires > now.saturating_add(opts.snapshot_valid_secs / 2)
    });
    let (snapshot_meta, snapshot_changed) = match &previous {
        Some(p) if keep_snapshot => (p.timestamp.snapshot, false),
        _ => {
            let version = previous.as_ref().map_or(0, |p| p.snapshot.header.version) + 1;
            let snapshot = Snapshot {
                header: header(version, opts.snapshot_valid_secs),
                targets: targets.clone(),
            }
            .sign(&keys.snapshot)
            .map_err(sign_err)?;
            write_public(&root.join(snapshot_file(version)), &snapshot)?;
            (FileMeta::of(version, &snapshot), true)
        }
    };
    let timestamp_version = previous.as_ref().map_or(0, |p| p.timestamp.header.version) + 1;
    let timestamp = Timestamp {
        header: header(timestamp_version, opts.timestamp_valid_secs),
        snapshot: snapshot_meta,
    }
    .sign(&keys.timestamp)
    .map_err(sign_err)?;
    let ts_path = root.join(TIMESTAMP_FILE);
    let before = fs::metadata(&ts_path).and_then(|m| m.modified()).ok();
    write_public(&ts_path, &timestamp)?;
    later_mtime(&ts_path, before)?;
    // Published: only now is the policy's origin recorded.
    if let Some(p) = &policy {
        record_inputs(&p.inputs_path, &p.inputs)?;
    }

    // Keep this publication's files and the previous one's (a kit may be
    // between the two); remove the rest.
    let mut keep: BTreeSet<String> = BTreeSet::new();
    keep.insert(snapshot_file(snapshot_meta.version));
    for (n, m) in targets.iter().chain(old_targets.iter()) {
        keep.insert(target_file(*n, &m.sha256));
    }
    if let Some(p) = &previous {
        keep.insert(snapshot_file(p.timestamp.snapshot.version));
    }
    remove_unreferenced(&root, &keep)?;

    Ok(KitPublished {
        kit: kit.to_string(),
        timestamp_version,
        snapshot: snapshot_meta,
        snapshot_changed,
        targets,
        policy_version: policy.map(|p| p.version),
    })
}

fn remove_unreferenced(root: &Path, keep: &BTreeSet<String>) -> Result<(), HqError> {
    for (dir, prefix) in [(root.to_path_buf(), ""), (root.join("targets"), "targets/")] {
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = if prefix.is_empty() {
                name.starts_with("snapshot-") && name.ends_with(".signed")
            } else {
                !name.starts_with('.')
            };
            if ours && !keep.contains(&format!("{prefix}{name}")) {
                fs::remove_file(e.path()).map_err(io(&e.path()))?;
            }
        }
    }
    Ok(())
}
