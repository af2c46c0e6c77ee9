//! Errors, typed by blame: the bundle is bad (built wrong, tampered, for
//! another kit, rolled back), the storage failed, or the kit's own state
//! does not allow the step. Every message says what to do.

use dialgate_signed::SignedError;

use crate::block::BlockError;
use crate::bootenv::Slot;
use crate::manifest::ImageKind;

/// Why a firmware bundle was refused. Nothing of a refused bundle is
/// armed for boot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The signed manifest did not open: wrong key, tampered, truncated,
    /// malformed envelope.
    #[error("firmware manifest refused: {0}")]
    Signature(#[from] SignedError),
    /// The bundle's own framing (header, lengths) is wrong.
    #[error("firmware bundle is malformed ({0}): refused; rebuild it with dialgatectl")]
    Malformed(&'static str),
    /// The bundle ends before its last image does.
    #[error("firmware bundle is truncated: refused; download or copy it again")]
    Truncated,
    /// Bytes follow the last image.
    #[error("firmware bundle has data after its last image: refused; rebuild it with dialgatectl")]
    TrailingData,
    /// The signed manifest's TOML does not parse or has unknown or
    /// duplicate fields.
    #[error("firmware manifest is not valid: {0}; rebuild it with dialgatectl")]
    ManifestSyntax(#[source] toml::de::Error),
    /// A manifest field has a value outside its spelling or bounds.
    #[error("firmware manifest field {field} is invalid ({reason}): rebuild it with dialgatectl")]
    BadManifestField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A manifest format this kit does not read.
    #[error("firmware manifest format {found} is not supported (this kit reads 1): install an intermediate firmware first")]
    UnsupportedManifest {
        /// The manifest's `format`.
        found: u32,
    },
    /// Built for another kit model.
    #[error("firmware is for model {found:?}, this kit is {expected:?}: refused; fetch the bundle for this model")]
    WrongModel {
        /// The manifest's model.
        found: String,
        /// This kit's.
        expected: String,
    },
    /// Not above the anti-rollback floor.
    #[error("firmware version {version} is not above this kit's floor {floor}: refused (rollback protection); install a newer release")]
    BelowFloor {
        /// The manifest's version.
        version: u64,
        /// The kit's floor.
        floor: u64,
    },
    /// The installed version is older than the bundle accepts to replace.
    #[error("firmware version {version} replaces only {minimum} or later, this kit runs {installed}: install an intermediate release first")]
    TooOldToReplace {
        /// The manifest's version.
        version: u64,
        /// The manifest's `replaces_at_least`.
        minimum: u64,
        /// The kit's installed version.
        installed: u64,
    },
    /// An image's bytes do not hash to the manifest's digest.
    #[error("firmware image {0} does not match its signed hash (tampered or corrupted): refused; download the bundle again")]
    ImageHash(ImageKind),
}

/// Why a boot environment could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// Neither copy has a valid checksum and spelling. Never a silent
    /// reset: that would lower the anti-rollback floor.
    #[error("boot environment: neither copy is valid: do not reset it (that would lower the rollback floor); re-provision the kit")]
    NoValidCopy,
    /// A variable the bootloader could not read back (empty name, `=` in
    /// the name, a control character, or one of ours given twice).
    #[error("boot environment variable {name:?} cannot be stored: our bug")]
    BadVariable {
        /// The variable's name.
        name: String,
    },
    /// The environment would not fit its copy.
    #[error("boot environment does not fit its {size}-byte copy: our bug")]
    TooLarge {
        /// The copy size.
        size: usize,
    },
    /// The storage failed.
    #[error("boot environment: {0}")]
    Block(#[from] BlockError),
}

/// Why an update step was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The bundle (or a slot's stored copy of it) is bad.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The storage failed; nothing unverified was armed.
    #[error("firmware storage: {0}")]
    Block(#[from] BlockError),
    /// The boot environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The bundle's images do not fit the slot.
    #[error("firmware images ({needed} bytes) do not fit slot {slot} ({capacity} bytes): refused; this bundle is for a larger storage layout")]
    DoesNotFit {
        /// The target slot.
        slot: Slot,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        capacity: u64,
    },
    /// What was read back is not what was written: the medium is failing.
    #[error("slot {slot} image {image} reads back wrong after writing: the storage is failing; the update is not armed")]
    ReadBack {
        /// The slot.
        slot: Slot,
        /// The image.
        image: ImageKind,
    },
    /// Running a slot other than the committed one (a trial boot): finish
    /// or abandon the trial first.
    #[error("running slot {running} on trial, committed is {committed}: commit or reboot before installing")]
    TrialInProgress {
        /// The slot running.
        running: Slot,
        /// The committed slot.
        committed: Slot,
    },
    /// Commit asked for on a slot that is not on trial.
    #[error("slot {0} is not on trial: nothing to commit")]
    NotOnTrial(Slot),
    /// Commit refused: the new system is not healthy.
    #[error("trial of slot {slot} is not healthy (ready: {ready}, self-test: {self_test}, management: {management}): not committed; the kit falls back on the next boot")]
    Unhealthy {
        /// The slot on trial.
        slot: Slot,
        /// READY was signalled.
        ready: bool,
        /// The self-test passed.
        self_test: bool,
        /// The management channel was reachable.
        management: bool,
    },
    /// An earlier step of this install failed; start a new one.
    #[error("this firmware install already failed: start it again")]
    Aborted,
    /// The buffer given for streaming is empty.
    #[error("streaming buffer of {0} bytes is too small: our bug")]
    BufferTooSmall(usize),
}
