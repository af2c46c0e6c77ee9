//! The firmware manifest: the signed body of a bundle (see
//! `docs/firmware.md`). A small, strict TOML document:
//!
//! ```toml
//! format = 1
//! version = 42                  # this firmware's version, > the kit's floor
//! model = "dialgate-pi4"        # the kit model it is built for
//! replaces_at_least = 40        # oldest installed version it may replace
//! built_at = 1767225600         # unix seconds, informational
//!
//! [kernel]
//! size = 8123456
//! sha256 = "<64 lower-case hex digits>"
//!
//! [initramfs]
//! size = 1234567
//! sha256 = "<64 hex>"
//!
//! [rootfs]                      # data followed by its dm-verity hash tree
//! size = 268435456
//! sha256 = "<64 hex>"
//! verity_root_hash = "<64 hex>" # passed to the kernel as dm-verity's root
//! verity_data_blocks = 65536    # 4 KiB data blocks before the hash tree
//! ```
//!
//! Unknown fields, duplicate keys, a missing image and a second spelling
//! of a hash are refused; so are sizes beyond [`MAX_IMAGE`] each. The
//! images of a bundle are always these three, in this order: the order
//! they follow the manifest in a bundle and sit in a slot.

use std::fmt;

use dialgate_signed::{hex, parse_hex32};
use serde::{Deserialize, Serialize};

use crate::error::BundleError;

/// The manifest format this crate reads and writes.
pub const FORMAT: u32 = 1;

/// Largest single image a kit accepts (4 GiB): more than any slot of the
/// kits we build, small enough that sizes never overflow.
pub const MAX_IMAGE: u64 = 4 << 30;

/// Longest kit model name.
pub const MAX_MODEL: usize = 64;

/// The images of a slot, in bundle and slot order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// The Linux kernel (U-Boot loads it).
    Kernel,
    /// The initramfs (PID 1 and the dm-verity setup).
    Initramfs,
    /// The root filesystem image, dm-verity hash tree included.
    Rootfs,
}

impl ImageKind {
    /// All images, in order.
    pub const ALL: [ImageKind; 3] = [ImageKind::Kernel, ImageKind::Initramfs, ImageKind::Rootfs];

    /// The manifest table name.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Kernel => "kernel",
            ImageKind::Initramfs => "initramfs",
            ImageKind::Rootfs => "rootfs",
        }
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One image as the manifest describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256 of the image's bytes.
    pub sha256: [u8; 32],
}

/// A parsed manifest. Building one is how `dialgatectl` describes a
/// release; a kit only ever sees one inside a
/// [`crate::VerifiedManifest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// This firmware's version; must exceed the kit's floor.
    pub version: u64,
    /// The kit model it is built for (exact match).
    pub model: String,
    /// The oldest installed version this bundle may replace (a bundle
    /// that needs a migration step refuses kits that skipped it).
    pub replaces_at_least: u64,
    /// Build time, unix seconds. Informational: kits have no trusted
    /// clock before the network is up, so nothing is decided on it.
    pub built_at: u64,
    /// The kernel image.
    pub kernel: Image,
    /// The initramfs image.
    pub initramfs: Image,
    /// The root filesystem image.
    pub rootfs: Image,
    /// dm-verity root hash of the root filesystem image.
    pub verity_root_hash: [u8; 32],
    /// How many 4 KiB data blocks of the root filesystem image dm-verity
    /// covers; its hash tree starts right after them.
    pub verity_data_blocks: u64,
}

/// dm-verity's data and hash block size in a root filesystem image.
pub const VERITY_BLOCK: u64 = 4096;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    size: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRootfs {
    size: u64,
    sha256: String,
    verity_root_hash: String,
    verity_data_blocks: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    format: u32,
    version: u64,
    model: String,
    replaces_at_least: u64,
    built_at: u64,
    kernel: RawImage,
    initramfs: RawImage,
    rootfs: RawRootfs,
}

fn digest(s: &str, field: &'static str) -> Result<[u8; 32], BundleError> {
    parse_hex32(s).ok_or(BundleError::BadManifestField {
        field,
        reason: "not 64 lower-case hex digits",
    })
}

fn image(size: u64, sha: &str, field: &'static str) -> Result<Image, BundleError> {
    if size == 0 || size > MAX_IMAGE {
        return Err(BundleError::BadManifestField {
            field,
            reason: "image empty or larger than 4 GiB",
        });
    }
    Ok(Image {
        size,
        sha256: digest(sha, field)?,
    })
}

impl Manifest {
    /// The image of `kind`.
    pub fn image(&self, kind: ImageKind) -> &Image {
        match kind {
            ImageKind::Kernel => &self.kernel,
            ImageKind::Initramfs => &self.initramfs,
            ImageKind::Rootfs => &self.rootfs,
        }
    }

    /// Sum of the image sizes (at most 3 × [`MAX_IMAGE`], no overflow).
    pub fn images_len(&self) -> u64 {
        ImageKind::ALL.iter().map(|k| self.image(*k).size).sum()
    }

    /// The TOML body that gets signed.
    pub fn to_toml(&self) -> Result<String, BundleError> {
        let raw_image = |i: &Image| RawImage {
            size: i.size,
            sha256: hex(&i.sha256),
        };
        let raw = RawManifest {
            format: FORMAT,
            version: self.version,
            model: self.model.clone(),
            replaces_at_least: self.replaces_at_least,
            built_at: self.built_at,
            kernel: raw_image(&self.kernel),
            initramfs: raw_image(&self.initramfs),
            rootfs: RawRootfs {
                size: self.rootfs.size,
                sha256: hex(&self.rootfs.sha256),
                verity_root_hash: hex(&self.verity_root_hash),
                verity_data_blocks: self.verity_data_blocks,
            },
        };
        let text = toml::to_string(&raw).map_err(|_| BundleError::BadManifestField {
            field: "model",
            reason: "cannot be written as TOML",
        })?;
        // What we write must be what we read: the builder refuses what a
        // kit would refuse.
        Manifest::parse(text.as_bytes())?;
        Ok(text)
    }

    /// Parses a manifest body (after its signature verified).
    pub fn parse(body: &[u8]) -> Result<Manifest, BundleError> {
        let text = std::str::from_utf8(body).map_err(|_| BundleError::BadManifestField {
            field: "manifest",
            reason: "not UTF-8",
        })?;
        let raw: RawManifest = toml::from_str(text).map_err(BundleError::ManifestSyntax)?;
        if raw.format != FORMAT {
            return Err(BundleError::UnsupportedManifest { found: raw.format });
        }
        if raw.model.is_empty()
            || raw.model.len() > MAX_MODEL
            || !raw
                .model
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(BundleError::BadManifestField {
                field: "model",
                reason: "not 1 to 64 characters of A-Z a-z 0-9 - . _",
            });
        }
        if raw.version == 0 {
            return Err(BundleError::BadManifestField {
                field: "version",
                reason: "versions start at 1",
            });
        }
        if raw.replaces_at_least > raw.version {
            return Err(BundleError::BadManifestField {
                field: "replaces_at_least",
                reason: "above the bundle's own version",
            });
        }
        // The data blocks lie inside the image (no overflow: the image is
        // at most 4 GiB, so a larger count is refused before multiplying).
        if raw.rootfs.verity_data_blocks > raw.rootfs.size / VERITY_BLOCK {
            return Err(BundleError::BadManifestField {
                field: "rootfs.verity_data_blocks",
                reason: "more data blocks than the image holds",
            });
        }
        Ok(Manifest {
            version: raw.version,
            model: raw.model,
            replaces_at_least: raw.replaces_at_least,
            built_at: raw.built_at,
            kernel: image(raw.kernel.size, &raw.kernel.sha256, "kernel")?,
            initramfs: image(raw.initramfs.size, &raw.initramfs.sha256, "initramfs")?,
            rootfs: image(raw.rootfs.size, &raw.rootfs.sha256, "rootfs")?,
            verity_root_hash: digest(&raw.rootfs.verity_root_hash, "rootfs.verity_root_hash")?,
            verity_data_blocks: raw.rootfs.verity_data_blocks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            version: 42,
            model: "dialgate-pi4".into(),
            replaces_at_least: 40,
            built_at: 1_767_225_600,
            kernel: Image {
                size: 10,
                sha256: [0xab; 32],
            },
            initramfs: Image {
                size: 20,
                sha256: [2; 32],
            },
            rootfs: Image {
                size: 30,
                sha256: [3; 32],
            },
            verity_root_hash: [4; 32],
            verity_data_blocks: 0,
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let text = m.to_toml().unwrap();
        assert!(text.contains("[rootfs]"), "{text}");
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
        assert_eq!(m.images_len(), 60);
    }

    #[test]
    fn strict_fields() {
        let text = sample().to_toml().unwrap();
        let bad = [
            // unknown top-level and image fields
            format!("{text}extra = 1\n"),
            text.replace("[kernel]\n", "[kernel]\nsigned = true\n"),
            // duplicate key
            text.replace("version = 42\n", "version = 42\nversion = 43\n"),
            // missing image
            text.replace("[initramfs]", "[initrd]"),
            // other spellings
            text.replace(&hex(&[0xab; 32]), &hex(&[0xab; 32]).to_uppercase()),
            text.replace(&hex(&[0xab; 32]), &hex(&[0xab; 31])),
            text.replace("version = 42", "version = -1"),
            text.replace("version = 42", "version = 0"),
            text.replace("format = 1", "format = 2"),
            text.replace("dialgate-pi4", "dialgate pi4"),
            text.replace("dialgate-pi4", ""),
            text.replace("replaces_at_least = 40", "replaces_at_least = 43"),
            text.replace("size = 30", &format!("size = {}", MAX_IMAGE + 1)),
            text.replace("size = 30", "size = 0"),
            text.replace("verity_data_blocks = 0", "verity_data_blocks = 1"),
            text.replace("verity_data_blocks = 0\n", ""),
            "\u{0}".into(),
        ];
        for (i, b) in bad.iter().enumerate() {
            assert!(Manifest::parse(b.as_bytes()).is_err(), "case {i}: {b}");
        }
        assert!(Manifest::parse(&[0xff, 0xfe]).is_err());
    }
}
