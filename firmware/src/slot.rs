//! Where things sit on the kit's storage, and the check a slot must pass
//! before it may run: [`verify_slot`].
//!
//! # A slot
//!
//! ```text
//! slot offset 0            bundle prefix: header + sealed manifest
//!                          (PREFIX_AREA bytes reserved)
//! PREFIX_AREA              kernel
//! next 4 KiB boundary      initramfs
//! next 4 KiB boundary      rootfs (data, then its dm-verity hash tree)
//! ```
//!
//! Images start on 4 KiB boundaries (a page, and dm-verity's block size)
//! so a real layout can map them to partitions. The boot environment
//! ([`crate::bootenv::EnvLocation`]) lies outside both slots: writing a
//! slot can never touch it.

use dialgate_signed::Floor;

use crate::block::BlockDevice;
use crate::bootenv::{EnvLocation, Slot};
use crate::bundle::{
    parse_header, verify_manifest, Check, ImageHasher, Policy, VerifiedManifest, MAX_HEADER,
    MAX_PREFIX,
};
use crate::error::{BundleError, UpdateError};
use crate::manifest::{ImageKind, Manifest};

/// Alignment of images in a slot.
pub const IMAGE_ALIGN: u64 = 4096;

/// Bytes reserved for the bundle prefix at the start of a slot.
pub const PREFIX_AREA: u64 = align_up(MAX_PREFIX as u64);

const fn align_up(n: u64) -> u64 {
    n.div_ceil(IMAGE_ALIGN) * IMAGE_ALIGN
}

/// A byte range of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The storage layout: the boot environment and the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The boot environment's two copies.
    pub env: EnvLocation,
    /// Slot A and slot B.
    pub slots: [Region; 2],
}

impl Layout {
    /// The region of `slot`.
    pub fn slot(&self, slot: Slot) -> Region {
        self.slots[slot.index()]
    }

    /// Absolute offset of `kind` in `slot` for `manifest`, and the slot's
    /// bytes needed in all. `Err` if it does not fit.
    pub fn place(&self, slot: Slot, manifest: &Manifest) -> Result<([u64; 3], u64), UpdateError> {
        let region = self.slot(slot);
        let mut at = PREFIX_AREA;
        let mut offsets = [0u64; 3];
        for (i, kind) in ImageKind::ALL.into_iter().enumerate() {
            offsets[i] = region.offset + at;
            // Sizes are at most 4 GiB each: no overflow.
            at = align_up(at + manifest.image(kind).size);
        }
        if at > region.len {
            return Err(UpdateError::DoesNotFit {
                slot,
                needed: at,
                capacity: region.len,
            });
        }
        Ok((offsets, at))
    }
}

/// The appliance's layout on its one disk (qemu `virt`'s `/dev/vda`, a
/// Pi's SD card): the environment's two 16 KiB copies at 256 KiB and
/// 512 KiB, in the gap GPT leaves before the first partition (U-Boot's
/// boot script, `image/boot.cmd`, reads them at sectors 0x200 and 0x400),
/// then slot A as the first partition at 1 MiB and slot B right after,
/// `slot_bytes` each. `image/build` partitions the disk to match.
pub const fn appliance_layout(slot_bytes: u64) -> Layout {
    const MIB: u64 = 1 << 20;
    Layout {
        env: EnvLocation {
            offsets: [256 << 10, 512 << 10],
            size: 16 << 10,
        },
        slots: [
            Region {
                offset: MIB,
                len: slot_bytes,
            },
            Region {
                offset: MIB + slot_bytes,
                len: slot_bytes,
            },
        ],
    }
}

/// Bytes per sector for the bootloader's block reads.
pub const SECTOR: u64 = 512;

impl Layout {
    /// The boot environment variables that tell the bootloader how to
    /// boot `staged` (see `image/boot.cmd`): for slot A, `A_load`, which
    /// U-Boot runs to set `kblk` and `kcnt` (the kernel's first sector on
    /// the disk and its sector count), `iblk`, `icnt` and `isize` (the
    /// initramfs's, and its exact size), all hexadecimal as U-Boot reads
    /// them (two variables a slot: U-Boot's save names every variable it
    /// keeps on one command line of at most 16 words); and `A_args`, the kernel
    /// arguments naming the slot for PID 1: `dialgate.slot=a:DEVICE:<data
    /// blocks>:<root hash>:<offset of the rootfs in the slot, 4 KiB
    /// blocks>` and `dialgate.version=<version>`. `device` is the
    /// kernel's name of the slot's partition (the sectors are the whole
    /// disk's, as U-Boot reads it). Derived from a verified slot only,
    /// and saved in the same environment write that arms (or
    /// provisions) it.
    pub fn boot_vars(
        &self,
        staged: &VerifiedSlot,
        device: &str,
    ) -> Result<Vec<(String, String)>, UpdateError> {
        let m = staged.manifest().manifest();
        let slot = staged.slot();
        let (offsets, _) = self.place(slot, m)?;
        let sectors = |n: u64| n.div_ceil(SECTOR);
        let p = slot.to_string();
        Ok(vec![
            (
                format!("{p}_load"),
                format!(
                    "setenv kblk 0x{:x}; setenv kcnt 0x{:x}; setenv iblk 0x{:x}; setenv icnt 0x{:x}; setenv isize 0x{:x}",
                    offsets[0] / SECTOR,
                    sectors(m.kernel.size),
                    offsets[1] / SECTOR,
                    sectors(m.initramfs.size),
                    m.initramfs.size
                ),
            ),
            (
                format!("{p}_args"),
                format!(
                    "dialgate.slot={}:{device}:{}:{}:{} dialgate.version={}",
                    p.to_ascii_lowercase(),
                    m.verity_data_blocks,
                    dialgate_signed::hex(&m.verity_root_hash),
                    (offsets[2] - self.slot(slot).offset) / IMAGE_ALIGN,
                    m.version
                ),
            ),
        ])
    }
}

/// Replaces (or adds) `vars` among `other`, keeping the rest in order.
pub(crate) fn set_vars(other: &mut Vec<(String, String)>, vars: Vec<(String, String)>) {
    for (k, v) in vars {
        match other.iter_mut().find(|(o, _)| *o == k) {
            Some(slot) => slot.1 = v,
            None => other.push((k, v)),
        }
    }
}

/// A slot whose stored manifest verified and whose images, read back from
/// the device, match it. Only [`verify_slot`] makes one; booting a slot,
/// arming it and committing it all require one.
#[derive(Debug, Clone)]
pub struct VerifiedSlot {
    slot: Slot,
    manifest: VerifiedManifest,
}

impl VerifiedSlot {
    /// The slot.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// Its verified manifest.
    pub fn manifest(&self) -> &VerifiedManifest {
        &self.manifest
    }

    /// Its firmware version.
    pub fn version(&self) -> u64 {
        self.manifest.manifest().version
    }
}

/// Reads the bundle prefix stored at the start of `slot` (bounded by the
/// header's length, at most [`MAX_PREFIX`]).
pub(crate) fn read_slot_prefix<D: BlockDevice>(
    dev: &mut D,
    layout: &Layout,
    slot: Slot,
) -> Result<Vec<u8>, UpdateError> {
    let base = layout.slot(slot).offset;
    let mut head = [0u8; MAX_HEADER];
    dev.read_at(base, &mut head)?;
    let line_len = head
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(BundleError::Malformed("slot holds no firmware header"))?
        + 1;
    let len = parse_header(&head[..line_len])?;
    let mut prefix = vec![0u8; line_len + len];
    dev.read_at(base, &mut prefix)?;
    Ok(prefix)
}

/// Hashes `kind` of `manifest` as stored at `offset`, chunk by chunk
/// through `buf`.
pub(crate) fn image_matches<D: BlockDevice>(
    dev: &mut D,
    offset: u64,
    kind: ImageKind,
    manifest: &Manifest,
    buf: &mut [u8],
) -> Result<bool, UpdateError> {
    if buf.is_empty() {
        return Err(UpdateError::BufferTooSmall(0));
    }
    let want = *manifest.image(kind);
    let mut hasher = ImageHasher::new(kind, want);
    let mut done = 0u64;
    while done < want.size {
        let n = usize::try_from(want.size - done).map_or(buf.len(), |r| r.min(buf.len()));
        dev.read_at(offset + done, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(hasher.matches())
}

/// The check a slot passes before the bootloader may be pointed at it,
/// and again at boot (what the initramfs does before dm-verity takes
/// over): the stored manifest opens under the pinned key, names this
/// model, is not below the floor, and every image reads back to its
/// signed SHA-256. `buf` bounds the memory used.
pub fn verify_slot<D: BlockDevice>(
    dev: &mut D,
    layout: &Layout,
    slot: Slot,
    key: &dialgate_signed::PublicKey,
    model: &str,
    floor: Floor,
    buf: &mut [u8],
) -> Result<VerifiedSlot, UpdateError> {
    let prefix = read_slot_prefix(dev, layout, slot)?;
    let policy = Policy {
        key,
        model,
        floor,
        check: Check::Boot,
    };
    let manifest = verify_manifest(&prefix, &policy)?;
    let (offsets, _) = layout.place(slot, manifest.manifest())?;
    for (kind, offset) in ImageKind::ALL.into_iter().zip(offsets) {
        if !image_matches(dev, offset, kind, manifest.manifest(), buf)? {
            return Err(BundleError::ImageHash(kind).into());
        }
    }
    Ok(VerifiedSlot { slot, manifest })
}
