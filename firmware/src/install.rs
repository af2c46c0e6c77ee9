//! The storage-driving steps: installing a bundle into the inactive slot
//! ([`Install`]) and committing a healthy trial ([`commit`]). They do I/O
//! only through [`BlockDevice`] and [`std::io::Read`] handed in per call,
//! hold no handles, read no clock, and use only the caller's buffer for
//! image data, so the whole update path runs against [`crate::MemDevice`]
//! and [`crate::LossyDevice`] in tests.
//!
//! Durability order (each arrow is a flush):
//!
//! 1. disarm: the target slot gets 0 tries, committed first -> (only if
//!    the environment was not like that already);
//! 2. invalidate: the target's old header is zeroed ->;
//! 3. images streamed from the bundle, chunk by chunk, hashed on the way ->;
//! 4. the bundle prefix (header + sealed manifest) is written ->;
//! 5. read back: [`verify_slot`] re-reads and re-hashes the whole slot;
//! 6. arm: tries = 1, target first -> (one redundant-environment save).
//!
//! Until 6 is durable the bootloader cannot pick the target; after it,
//! the target is whole and verified. A cut inside a save leaves the
//! previous environment (see [`crate::bootenv`]).

use std::io::Read;

use dialgate_signed::{Floor, PublicKey, FIRMWARE};

use crate::block::BlockDevice;
use crate::bootenv::{Slot, StoredEnv};
use crate::bundle::{read_prefix, verify_manifest, Check, ImageStream, Policy, VerifiedManifest};
use crate::error::{BundleError, UpdateError};
use crate::manifest::ImageKind;
use crate::slot::{set_vars, verify_slot, Layout, VerifiedSlot};
use crate::update::{self, boot_role, BootRole, Health};

/// What the kit checks firmware against: its pinned key and its model.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The pinned firmware signing key.
    pub key: PublicKey,
    /// This kit's model string.
    pub model: String,
    /// The storage layout.
    pub layout: Layout,
    /// The kernel's names of slot A's and slot B's partitions
    /// (`/dev/vda1`, `/dev/vda2`), for the boot arguments
    /// ([`Layout::boot_vars`]).
    pub slot_devices: [String; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Disarm,
    Invalidate,
    Images,
    FlushImages,
    WriteHeader,
    ReadBack,
    Arm,
    Done,
    Failed,
}

/// An install of one bundle into the inactive slot, one bounded step at a
/// time so the shell can keep calls flowing in between.
///
/// Driving contract: [`Install::begin`] once (it reads the boot
/// environment and verifies the manifest), then call [`Install::step`]
/// with the same device, the same bundle reader (positioned after the
/// prefix, as `begin` left it) and a buffer, until it returns
/// [`Progress::Armed`]. Any error ends the install (later steps return
/// [`UpdateError::Aborted`]) and leaves nothing armed; reboot the kit or
/// begin again.
#[derive(Debug)]
pub struct Install {
    kit: Kit,
    target: Slot,
    manifest: VerifiedManifest,
    offsets: [u64; 3],
    stream: ImageStream,
    env: StoredEnv,
    phase: Phase,
    staged: Option<VerifiedSlot>,
}

/// What a step achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// More steps to go.
    Working,
    /// The slot is written, verified and armed for one trial boot: reboot
    /// to try it.
    Armed {
        /// The slot.
        slot: Slot,
        /// Its firmware version.
        version: u64,
    },
}

impl Install {
    /// Starts an install on a kit running `running` at version
    /// `installed`: reads the boot environment, picks the slot that is not
    /// committed, reads the bundle prefix from `bundle` and verifies it
    /// (key, model, floor, `replaces_at_least`) and that it fits.
    pub fn begin<D: BlockDevice, R: Read>(
        kit: &Kit,
        dev: &mut D,
        running: Slot,
        installed: u64,
        bundle: &mut R,
    ) -> Result<Install, UpdateError> {
        let env = kit.layout.env.read(dev)?;
        let committed = env.env.committed;
        if running != committed {
            return Err(UpdateError::TrialInProgress { running, committed });
        }
        let target = committed.other();
        let prefix = read_prefix(bundle)?;
        let policy = Policy {
            key: &kit.key,
            model: &kit.model,
            floor: Floor::at(&FIRMWARE, env.env.floor),
            check: Check::Install { installed },
        };
        let manifest = verify_manifest(&prefix, &policy)?;
        let (offsets, _) = kit.layout.place(target, manifest.manifest())?;
        Ok(Install {
            kit: kit.clone(),
            target,
            stream: ImageStream::new(&manifest),
            manifest,
            offsets,
            env,
            phase: Phase::Disarm,
            staged: None,
        })
    }

    /// The slot being written.
    pub fn target(&self) -> Slot {
        self.target
    }

    /// The verified manifest being installed.
    pub fn manifest(&self) -> &VerifiedManifest {
        &self.manifest
    }

    /// Does one bounded step (at most one chunk of `buf.len()` octets, one
    /// save or one flush; the read-back step re-reads the slot through
    /// `buf`).
    pub fn step<D: BlockDevice, R: Read>(
        &mut self,
        dev: &mut D,
        bundle: &mut R,
        buf: &mut [u8],
    ) -> Result<Progress, UpdateError> {
        if buf.is_empty() {
            self.phase = Phase::Failed;
            return Err(UpdateError::BufferTooSmall(0));
        }
        match self.advance(dev, bundle, buf) {
            Ok(p) => Ok(p),
            Err(e) => {
                self.phase = Phase::Failed;
                Err(e)
            }
        }
    }

    fn advance<D: BlockDevice, R: Read>(
        &mut self,
        dev: &mut D,
        bundle: &mut R,
        buf: &mut [u8],
    ) -> Result<Progress, UpdateError> {
        let layout = self.kit.layout;
        let base = layout.slot(self.target).offset;
        match self.phase {
            Phase::Disarm => {
                let want = update::disarmed(&self.env.env, self.target);
                if want != self.env.env {
                    self.env = layout.env.write(dev, &self.env, &want)?;
                }
                self.phase = Phase::Invalidate;
            }
            Phase::Invalidate => {
                // One block: the header line lies in it.
                let zeros = vec![0u8; dev.block_size().max(crate::bundle::MAX_HEADER)];
                dev.write_at(base, &zeros)?;
                dev.flush()?;
                self.phase = Phase::Images;
            }
            Phase::Images => match self.stream.next_chunk(bundle, buf)? {
                Some((kind, offset, n)) => {
                    let at = self.offsets[index(kind)] + offset;
                    dev.write_at(at, &buf[..n])?;
                }
                None => self.phase = Phase::FlushImages,
            },
            Phase::FlushImages => {
                dev.flush()?;
                self.phase = Phase::WriteHeader;
            }
            Phase::WriteHeader => {
                dev.write_at(base, self.manifest.prefix())?;
                dev.flush()?;
                self.phase = Phase::ReadBack;
            }
            Phase::ReadBack => {
                let floor = Floor::at(&FIRMWARE, self.env.env.floor);
                let (key, model) = (&self.kit.key, self.kit.model.as_str());
                let read = verify_slot(dev, &layout, self.target, key, model, floor, buf);
                let staged = match read {
                    Ok(s) => s,
                    Err(UpdateError::Bundle(BundleError::ImageHash(image))) => {
                        return Err(UpdateError::ReadBack {
                            slot: self.target,
                            image,
                        })
                    }
                    Err(e) => return Err(e),
                };
                if staged.manifest().prefix() != self.manifest.prefix() {
                    return Err(UpdateError::ReadBack {
                        slot: self.target,
                        image: ImageKind::Kernel,
                    });
                }
                self.staged = Some(staged);
                self.phase = Phase::Arm;
            }
            Phase::Arm => {
                let Some(staged) = self.staged.as_ref() else {
                    return Err(UpdateError::Aborted);
                };
                let mut want = update::armed(&self.env.env, staged);
                set_vars(
                    &mut want.other,
                    layout.boot_vars(staged, &self.kit.slot_devices[self.target.index()])?,
                );
                self.env = layout.env.write(dev, &self.env, &want)?;
                self.phase = Phase::Done;
                return Ok(Progress::Armed {
                    slot: self.target,
                    version: staged.version(),
                });
            }
            Phase::Done | Phase::Failed => return Err(UpdateError::Aborted),
        }
        Ok(Progress::Working)
    }
}

fn index(kind: ImageKind) -> usize {
    match kind {
        ImageKind::Kernel => 0,
        ImageKind::Initramfs => 1,
        ImageKind::Rootfs => 2,
    }
}

/// Runs an install to the end (tests, and shells with nothing else to do).
pub fn install<D: BlockDevice, R: Read>(
    kit: &Kit,
    dev: &mut D,
    running: Slot,
    installed: u64,
    bundle: &mut R,
    buf: &mut [u8],
) -> Result<Progress, UpdateError> {
    let mut job = Install::begin(kit, dev, running, installed, bundle)?;
    loop {
        if let p @ Progress::Armed { .. } = job.step(dev, bundle, buf)? {
            return Ok(p);
        }
    }
}

/// Verifies the slot the kit booted (its stored manifest and images, as
/// at every boot) against the floor in the current environment.
pub fn verify_booted<D: BlockDevice>(
    kit: &Kit,
    dev: &mut D,
    booted: Slot,
    buf: &mut [u8],
) -> Result<VerifiedSlot, UpdateError> {
    let env = kit.layout.env.read(dev)?;
    let floor = Floor::at(&FIRMWARE, env.env.floor);
    verify_slot(dev, &kit.layout, booted, &kit.key, &kit.model, floor, buf)
}

/// The result of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The slot now committed.
    pub slot: Slot,
    /// The new floor (its version).
    pub floor: u64,
}

/// On a trial boot of `booted`: with `health` proven, commits it (one
/// environment save: committed, no tries, floor raised). Without it, saves
/// the abandoned environment so the next boot is the old slot, and
/// returns [`UpdateError::Unhealthy`]; the shell then reboots.
pub fn commit<D: BlockDevice>(
    kit: &Kit,
    dev: &mut D,
    booted: Slot,
    health: Health,
    buf: &mut [u8],
) -> Result<Committed, UpdateError> {
    let stored = kit.layout.env.read(dev)?;
    if boot_role(&stored.env, booted) != BootRole::Trial {
        return Err(UpdateError::NotOnTrial(booted));
    }
    let floor = Floor::at(&FIRMWARE, stored.env.floor);
    let trial = verify_slot(dev, &kit.layout, booted, &kit.key, &kit.model, floor, buf)?;
    match update::committed(&stored.env, &trial, health) {
        Ok(next) => {
            kit.layout.env.write(dev, &stored, &next)?;
            Ok(Committed {
                slot: booted,
                floor: next.floor,
            })
        }
        Err(e @ UpdateError::Unhealthy { .. }) => {
            kit.layout
                .env
                .write(dev, &stored, &update::abandoned(&stored.env))?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Factory provisioning of a blank medium: writes `bundle` into both
/// slots, reads both back, and saves a fresh environment (slot A
/// committed, the floor at the bundle's version, both slots' boot
/// variables). What `image/build` does to a disk image through
/// `dialgatectl firmware provision`; never run on a kit in service (it
/// resets the floor).
pub fn provision<D: BlockDevice, R: Read>(
    kit: &Kit,
    dev: &mut D,
    bundle: &mut R,
    buf: &mut [u8],
) -> Result<[VerifiedSlot; 2], UpdateError> {
    if buf.is_empty() {
        return Err(UpdateError::BufferTooSmall(0));
    }
    let prefix = read_prefix(bundle)?;
    let policy = Policy {
        key: &kit.key,
        model: &kit.model,
        floor: Floor::new(&FIRMWARE),
        check: Check::Boot,
    };
    let manifest = verify_manifest(&prefix, &policy)?;
    let layout = kit.layout;
    let (offsets, needed) = layout.place(Slot::A, manifest.manifest())?;
    layout.place(Slot::B, manifest.manifest())?;
    let mut stream = ImageStream::new(&manifest);
    while let Some((kind, offset, n)) = stream.next_chunk(bundle, buf)? {
        dev.write_at(offsets[index(kind)] + offset, &buf[..n])?;
    }
    dev.write_at(layout.slot(Slot::A).offset, manifest.prefix())?;
    // Slot B: a copy of slot A, through the same buffer.
    let (a, b) = (layout.slot(Slot::A).offset, layout.slot(Slot::B).offset);
    let mut done = 0u64;
    while done < needed {
        let n = usize::try_from(needed - done).map_or(buf.len(), |r| r.min(buf.len()));
        dev.read_at(a + done, &mut buf[..n])?;
        dev.write_at(b + done, &buf[..n])?;
        done += n as u64;
    }
    dev.flush()?;
    let version = manifest.manifest().version;
    let floor = Floor::at(&FIRMWARE, version);
    let mut env = crate::bootenv::BootEnv::provisioned(Slot::A, version);
    let mut slots = Vec::with_capacity(2);
    for slot in [Slot::A, Slot::B] {
        let v = verify_slot(dev, &layout, slot, &kit.key, &kit.model, floor, buf)?;
        set_vars(
            &mut env.other,
            layout.boot_vars(&v, &kit.slot_devices[slot.index()])?,
        );
        slots.push(v);
    }
    layout.env.provision(dev, &env)?;
    let b = slots.pop().ok_or(UpdateError::Aborted)?;
    let a = slots.pop().ok_or(UpdateError::Aborted)?;
    Ok([a, b])
}
