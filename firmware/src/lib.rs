//! Signed firmware bundles for the dialgate appliance and the A/B update
//! decision logic: bundle format and verification, install into the
//! inactive slot, one trial boot through U-Boot, health-gated commit,
//! fallback by the bootloader alone, and the anti-rollback floor
//! (`DESIGN.md`, "Updates (A/B, signed)"; `docs/firmware.md`).
//!
//! Sans-IO in the sense that matters for testing: no clock, no files, no
//! sockets inside (the one exception is [`FileDevice`], the adapter a
//! shell hands in for real storage). Storage is a [`BlockDevice`] handed in per call, so the
//! whole path runs over [`MemDevice`] and, for power cuts, the
//! [`LossyDevice`] fake. The bootloader's choice is the pure
//! [`choose_slot`].
//!
//! Proof values, in order: [`verify_manifest`] makes a
//! [`VerifiedManifest`] (signature, model, floor); [`verify_slot`] makes a
//! [`VerifiedSlot`] (the stored manifest and every image read back);
//! arming ([`update::armed`]) and committing ([`update::committed`]) need
//! a `VerifiedSlot`.
//!
//! # Example
//!
//! ```
//! use dialgate_firmware::*;
//! use dialgate_signed::SigningKey;
//!
//! let key = SigningKey::generate()?;
//! let layout = Layout {
//!     env: EnvLocation { offsets: [0, 4096], size: 4096 },
//!     slots: [
//!         Region { offset: 8192, len: 256 << 10 },
//!         Region { offset: 8192 + (256 << 10), len: 256 << 10 },
//!     ],
//! };
//! let kit = Kit { key: key.public_key().clone(), model: "dialgate-pi4".into(), layout, slot_devices: ["/dev/vda1".into(), "/dev/vda2".into()] };
//! let mut dev = MemDevice::new(8192 + (512 << 10));
//! layout.env.provision(&mut dev, &BootEnv::provisioned(Slot::A, 1))?;
//!
//! let images: [&[u8]; 3] = [b"kernel", b"initramfs", b"rootfs"];
//! let manifest = describe(2, "dialgate-pi4", 1, 1_767_225_600, images, [7; 32]);
//! let bundle = build_bundle(&manifest, images, &key)?;
//!
//! let mut buf = [0u8; 4096];
//! let armed = install(&kit, &mut dev, Slot::A, 1, &mut &bundle[..], &mut buf)?;
//! assert_eq!(armed, Progress::Armed { slot: Slot::B, version: 2 });
//!
//! // Reboot: the bootloader spends the one try on B.
//! let mut stored = layout.env.read(&mut dev)?;
//! let (slot, env) = choose_slot(&stored.env);
//! stored = layout.env.write(&mut dev, &stored, &env)?;
//! assert_eq!(slot, Slot::B);
//! let healthy = Health { ready: true, self_test: true, management_reachable: true };
//! let done = commit(&kit, &mut dev, slot, healthy, &mut buf)?;
//! assert_eq!(done, Committed { slot: Slot::B, floor: 2 });
//! # let _ = stored;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod block;
pub mod bootenv;
pub mod bundle;
mod error;
pub mod file;
pub mod install;
pub mod manifest;
pub mod slot;
pub mod update;

pub use block::{BlockDevice, BlockError, CutMode, LossyDevice, MemDevice};
pub use bootenv::{BootEnv, EnvLocation, Slot, StoredEnv};
pub use bundle::{
    build_bundle, build_prefix, describe, read_prefix, verify_bundle, verify_manifest, Check,
    ImageStream, Policy, VerifiedManifest,
};
pub use error::{BundleError, EnvError, UpdateError};
pub use file::FileDevice;
pub use install::{commit, install, provision, verify_booted, Committed, Install, Kit, Progress};
pub use manifest::{Image, ImageKind, Manifest, VERITY_BLOCK};
pub use slot::{appliance_layout, verify_slot, Layout, Region, VerifiedSlot, SECTOR};
pub use update::{boot_role, choose_slot, BootRole, Health};
