//! `dialgatectl firmware`: the home side of firmware updates (the format
//! and the kit's logic are in `dialgate-firmware`, `docs/firmware.md`).
//!
//! ```text
//! dialgatectl firmware keygen    --out KEY.pk8            (and KEY.pub.pem)
//! dialgatectl firmware build     --key KEY.pk8 --version V [--model M] [--replaces-at-least N]
//!                                --kernel F --initramfs F --rootfs F
//!                                --verity-root-hash HEX --verity-data-blocks N --out BUNDLE
//! dialgatectl firmware provision --bundle BUNDLE --public-key KEY.pub.pem [--model M]
//!                                --disk DISK --slot-mib N [--disk-name /dev/vda]
//! ```
//!
//! `build` signs a bundle (refusing images that do not match what it
//! describes); `provision` is the factory step `image/build` runs on a
//! disk image: both slots get the bundle, slot A is committed at its
//! version (the anti-rollback floor), and the boot environment carries
//! both slots' boot variables ([`dialgate_firmware::provision`]).

use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use dialgate_firmware::{appliance_layout, build_bundle, describe, FileDevice, Kit, VERITY_BLOCK};
use dialgate_signed::{parse_hex32, PublicKey, SigningKey};

use crate::hq::read_signing_key;

/// The kit model of the qemu `virt` appliance image.
pub const QEMU_MODEL: &str = "dialgate-qemu-virt";

/// `dialgatectl firmware`'s subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FirmwareCommand {
    /// Generates a firmware signing key (PKCS#8 DER, mode 0600) and its
    /// public key beside it (KEY.pub.pem), which kits pin.
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Signs a firmware bundle from its three images.
    Build(BuildArgs),
    /// Writes a bundle into both slots of a blank disk image and
    /// provisions its boot environment (factory use).
    Provision(ProvisionArgs),
}

/// `dialgatectl firmware build`'s command line.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The firmware signing key (PKCS#8 DER).
    #[arg(long)]
    pub key: PathBuf,
    /// The release's version (above every kit's floor to install).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub version: u64,
    /// The kit model it is for.
    #[arg(long, default_value = QEMU_MODEL)]
    pub model: String,
    /// The oldest installed version it may replace.
    #[arg(long, default_value_t = 1)]
    pub replaces_at_least: u64,
    /// Build time, unix seconds (informational; default SOURCE_DATE_EPOCH
    /// or 0).
    #[arg(long)]
    pub built_at: Option<u64>,
    /// The kernel image.
    #[arg(long)]
    pub kernel: PathBuf,
    /// The initramfs.
    #[arg(long)]
    pub initramfs: PathBuf,
    /// The root filesystem image, its dm-verity hash tree included.
    #[arg(long)]
    pub rootfs: PathBuf,
    /// dm-verity's root hash of the rootfs (64 lower-case hex digits).
    #[arg(long)]
    pub verity_root_hash: String,
    /// dm-verity's data blocks (4 KiB) before the hash tree.
    #[arg(long)]
    pub verity_data_blocks: u64,
    /// Where to write the bundle.
    #[arg(long)]
    pub out: PathBuf,
}

/// `dialgatectl firmware provision`'s command line.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// The bundle to put in both slots.
    #[arg(long)]
    pub bundle: PathBuf,
    /// The firmware public key the kit pins (PEM).
    #[arg(long)]
    pub public_key: PathBuf,
    /// The kit model.
    #[arg(long, default_value = QEMU_MODEL)]
    pub model: String,
    /// The disk image (already partitioned by `image/build`).
    #[arg(long)]
    pub disk: PathBuf,
    /// Size of each slot, MiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..4096))]
    pub slot_mib: u64,
    /// The kernel's name of the disk; its partitions 1 and 2 are the
    /// slots.
    #[arg(long, default_value = "/dev/vda")]
    pub disk_name: String,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            format!(
                "{}: {e} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The public key's path beside a private key: `KEY.pub.pem`.
pub fn public_path(key: &Path) -> PathBuf {
    key.with_extension("pub.pem")
}

fn keygen(out: &Path) -> Result<String, String> {
    let key = SigningKey::generate().map_err(|e| e.to_string())?;
    let der = key.to_pkcs8().map_err(|e| e.to_string())?;
    write_private(out, &der)?;
    let public = public_path(out);
    std::fs::write(&public, key.public_key().to_pem())
        .map_err(|e| format!("{}: {e}", public.display()))?;
    Ok(format!(
        "firmware signing key {} written; kits pin {}",
        out.display(),
        public.display()
    ))
}

fn build(a: &BuildArgs) -> Result<String, String> {
    let key = read_signing_key(&a.key).map_err(|e| e.to_string())?;
    let images = [read(&a.kernel)?, read(&a.initramfs)?, read(&a.rootfs)?];
    let root = parse_hex32(&a.verity_root_hash)
        .ok_or("--verity-root-hash: not 64 lower-case hex digits")?;
    let built_at = a.built_at.unwrap_or_else(|| {
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    });
    let imgs = [&images[0][..], &images[1][..], &images[2][..]];
    let mut m = describe(
        a.version,
        &a.model,
        a.replaces_at_least,
        built_at,
        imgs,
        root,
    );
    if a.verity_data_blocks == 0 || a.verity_data_blocks >= images[2].len() as u64 / VERITY_BLOCK {
        return Err(format!(
            "--verity-data-blocks {}: the rootfs of {} bytes has no room for a hash tree after that many 4 KiB blocks",
            a.verity_data_blocks,
            images[2].len()
        ));
    }
    m.verity_data_blocks = a.verity_data_blocks;
    let bundle = build_bundle(&m, imgs, &key).map_err(|e| e.to_string())?;
    let tmp = a.out.with_extension("tmp");
    std::fs::write(&tmp, &bundle)
        .and_then(|()| std::fs::rename(&tmp, &a.out))
        .map_err(|e| format!("{}: {e}", a.out.display()))?;
    Ok(format!(
        "firmware {} for {} written to {} ({} bytes)",
        a.version,
        a.model,
        a.out.display(),
        bundle.len()
    ))
}

fn provision(a: &ProvisionArgs) -> Result<String, String> {
    let key = PublicKey::from_pem(&read(&a.public_key)?)
        .map_err(|e| format!("{}: {e}", a.public_key.display()))?;
    let kit = Kit {
        key,
        model: a.model.clone(),
        layout: appliance_layout(a.slot_mib << 20),
        slot_devices: [format!("{}1", a.disk_name), format!("{}2", a.disk_name)],
    };
    let mut dev = FileDevice::open(&a.disk).map_err(|e| format!("{}: {e}", a.disk.display()))?;
    let file = File::open(&a.bundle).map_err(|e| format!("{}: {e}", a.bundle.display()))?;
    let mut bundle = BufReader::new(file);
    let mut buf = vec![0u8; 1 << 20];
    let [slot_a, _] = dialgate_firmware::provision(&kit, &mut dev, &mut bundle, &mut buf)
        .map_err(|e| format!("{}: {e}", a.bundle.display()))?;
    let env = kit
        .layout
        .env
        .read(&mut dev)
        .map_err(|e| format!("{}: {e}", a.disk.display()))?;
    let mut out = format!(
        "provisioned {}: slots A and B hold firmware {}, A committed; boot environment:",
        a.disk.display(),
        slot_a.version()
    );
    for (k, v) in &env.env.other {
        out.push_str(&format!("\n{k}={v}"));
    }
    Ok(out)
}

/// Runs one `dialgatectl firmware` subcommand; the message to print
/// (`provision` ends with the slots' boot variables, one `NAME=VALUE` a
/// line, which `image/build` reads).
pub fn run(cmd: &FirmwareCommand) -> Result<String, String> {
    match cmd {
        FirmwareCommand::Keygen { out } => keygen(out),
        FirmwareCommand::Build(a) => build(a),
        FirmwareCommand::Provision(a) => provision(a),
    }
}
