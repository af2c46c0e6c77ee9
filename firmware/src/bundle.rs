//! The firmware bundle: how a release travels from home to a kit, and
//! the only code that turns its bytes into a [`VerifiedManifest`].
//!
//! # Layout, version 1
//!
//! ```text
//! dialgate-firmware-bundle v1 <N>\n     header: ASCII, N in decimal
//! <N octets>                            the sealed manifest: a
//!                                       dialgate-signed FIRMWARE envelope
//! <kernel><initramfs><rootfs>           the images, concatenated, in
//!                                       manifest order, exactly the sizes
//!                                       the manifest gives
//! end of file                           nothing follows the rootfs
//! ```
//!
//! The header exists so a reader knows how much to read before it can
//! verify anything: at most [`MAX_HEADER`] octets, then at most
//! [`FIRMWARE`]`.max_bytes`, both bounded before allocation. The images
//! are never held in memory: [`ImageStream`] hands them out in caller-sized
//! chunks while hashing, and refuses a digest mismatch, a short bundle and
//! trailing bytes.
//!
//! The same header + sealed manifest is stored at the start of each slot
//! (see [`crate::slot`]), so a slot can be re-verified at boot with the
//! same code.

use std::io::Read;

use aws_lc_rs::digest;
use dialgate_signed::{open, seal, Floor, PublicKey, SigningKey, FIRMWARE};

use crate::error::BundleError;
use crate::manifest::{Image, ImageKind, Manifest};

/// The header's first word.
pub const MAGIC: &str = "dialgate-firmware-bundle";

/// Longest header line: magic + " v1 " + 20 digits + "\n", with room.
pub const MAX_HEADER: usize = 64;

/// Largest bundle prefix (header + sealed manifest): what a slot reserves.
pub const MAX_PREFIX: usize = MAX_HEADER + FIRMWARE.max_bytes;

/// What a kit checks a manifest against.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The pinned firmware key.
    pub key: &'a PublicKey,
    /// This kit's model.
    pub model: &'a str,
    /// The firmware anti-rollback floor (the committed version).
    pub floor: Floor,
    /// What the check is for.
    pub check: Check,
}

/// Installing asks more of a bundle than booting a slot does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// A new bundle: its version must exceed the floor, and the installed
    /// version must be at least the bundle's `replaces_at_least`.
    Install {
        /// The version the kit runs.
        installed: u64,
    },
    /// A slot about to run: its version must be at least the floor (the
    /// committed slot sits exactly at it).
    Boot,
}

/// A manifest whose signature verified against the pinned firmware key,
/// for this kit's model, within the floor. Only [`verify_manifest`] makes
/// one; its images are not yet checked (see [`ImageStream`] and
/// [`crate::slot::verify_slot`]).
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    manifest: Manifest,
    prefix: Vec<u8>,
    body_sha256: [u8; 32],
}

impl VerifiedManifest {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Header + sealed manifest, as stored at the start of a slot.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// SHA-256 of the signed manifest body (what the floor records).
    pub fn body_sha256(&self) -> [u8; 32] {
        self.body_sha256
    }
}

fn header(len: usize) -> String {
    format!("{MAGIC} v1 {len}\n")
}

/// Describes three images as a manifest (for `dialgatectl` and tests).
pub fn describe(
    version: u64,
    model: &str,
    replaces_at_least: u64,
    built_at: u64,
    images: [&[u8]; 3],
    verity_root_hash: [u8; 32],
) -> Manifest {
    let image = |b: &[u8]| Image {
        size: b.len() as u64,
        sha256: dialgate_signed::sha256(b),
    };
    Manifest {
        version,
        model: model.to_string(),
        replaces_at_least,
        built_at,
        kernel: image(images[0]),
        initramfs: image(images[1]),
        rootfs: image(images[2]),
        verity_root_hash,
        // Every whole block of the image: callers with a real hash tree
        // set the data block count themselves.
        verity_data_blocks: images[2].len() as u64 / crate::manifest::VERITY_BLOCK,
    }
}

/// Header + sealed manifest for `manifest`.
pub fn build_prefix(manifest: &Manifest, key: &SigningKey) -> Result<Vec<u8>, BundleError> {
    let sealed = seal(&FIRMWARE, manifest.to_toml()?.as_bytes(), key)?;
    let mut out = header(sealed.len()).into_bytes();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// A whole bundle in memory. Refuses images that do not match the
/// manifest, so a builder cannot ship what a kit would refuse.
pub fn build_bundle(
    manifest: &Manifest,
    images: [&[u8]; 3],
    key: &SigningKey,
) -> Result<Vec<u8>, BundleError> {
    for (kind, bytes) in ImageKind::ALL.into_iter().zip(images) {
        let want = manifest.image(kind);
        if bytes.len() as u64 != want.size || dialgate_signed::sha256(bytes) != want.sha256 {
            return Err(BundleError::ImageHash(kind));
        }
    }
    let mut out = build_prefix(manifest, key)?;
    for bytes in images {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// A decimal without sign or leading zero, at most 20 digits.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || (s[0] == b'0' && s.len() > 1) {
        return None;
    }
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), BundleError> {
    r.read_exact(buf).map_err(|_| BundleError::Truncated)
}

/// Parses a header line (with its `\n`): the sealed manifest's length.
pub(crate) fn parse_header(line: &[u8]) -> Result<usize, BundleError> {
    let rest = line
        .strip_prefix(MAGIC.as_bytes())
        .and_then(|r| r.strip_prefix(b" v"))
        .ok_or(BundleError::Malformed("not a dialgate firmware bundle"))?;
    let rest = rest
        .strip_prefix(b"1 ")
        .ok_or(BundleError::Malformed("bundle format is not v1"))?;
    let len = rest
        .strip_suffix(b"\n")
        .and_then(decimal)
        .ok_or(BundleError::Malformed("manifest length is not a decimal"))?;
    usize::try_from(len)
        .ok()
        .filter(|l| *l <= FIRMWARE.max_bytes && *l > 0)
        .ok_or(BundleError::Malformed("manifest length out of bounds"))
}

/// Reads the header and the sealed manifest from `r` (bounded: at most
/// [`MAX_PREFIX`] octets), returning header + sealed manifest. The
/// reader is left at the first image.
pub fn read_prefix<R: Read>(r: &mut R) -> Result<Vec<u8>, BundleError> {
    let mut line = Vec::with_capacity(MAX_HEADER);
    loop {
        let mut b = [0u8; 1];
        read_exact(r, &mut b)?;
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
        if line.len() >= MAX_HEADER {
            return Err(BundleError::Malformed("header line too long"));
        }
    }
    let len = parse_header(&line)?;
    let start = line.len();
    line.resize(start + len, 0);
    read_exact(r, &mut line[start..])?;
    Ok(line)
}

/// Verifies a bundle prefix (header + sealed manifest) against `policy`.
pub fn verify_manifest(
    prefix: &[u8],
    policy: &Policy<'_>,
) -> Result<VerifiedManifest, BundleError> {
    let mut r = prefix;
    let parsed = read_prefix(&mut r)?;
    if !r.is_empty() || parsed.len() != prefix.len() {
        return Err(BundleError::Malformed("data after the sealed manifest"));
    }
    let at = prefix
        .iter()
        .position(|b| *b == b'\n')
        .map_or(prefix.len(), |p| p + 1);
    let opened = open(&FIRMWARE, &prefix[at..], policy.key)?;
    let manifest = Manifest::parse(opened.bytes)?;
    if manifest.model != policy.model {
        return Err(BundleError::WrongModel {
            found: manifest.model,
            expected: policy.model.to_string(),
        });
    }
    let floor = policy.floor.version();
    match policy.check {
        Check::Install { installed } => {
            if manifest.version <= floor {
                return Err(BundleError::BelowFloor {
                    version: manifest.version,
                    floor,
                });
            }
            if installed < manifest.replaces_at_least {
                return Err(BundleError::TooOldToReplace {
                    version: manifest.version,
                    minimum: manifest.replaces_at_least,
                    installed,
                });
            }
        }
        Check::Boot => {
            if manifest.version < floor {
                return Err(BundleError::BelowFloor {
                    version: manifest.version,
                    floor,
                });
            }
        }
    }
    Ok(VerifiedManifest {
        body_sha256: opened.sha256,
        manifest,
        prefix: prefix.to_vec(),
    })
}

/// Hashes one image as it passes in chunks and compares it with the
/// manifest at the end.
#[derive(Clone)]
pub(crate) struct ImageHasher {
    ctx: digest::Context,
    kind: ImageKind,
    want: Image,
    seen: u64,
}

impl std::fmt::Debug for ImageHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ImageHasher({}, {}/{})",
            self.kind, self.seen, self.want.size
        )
    }
}

impl ImageHasher {
    pub(crate) fn new(kind: ImageKind, want: Image) -> ImageHasher {
        ImageHasher {
            ctx: digest::Context::new(&digest::SHA256),
            kind,
            want,
            seen: 0,
        }
    }

    /// Bytes still expected.
    pub(crate) fn remaining(&self) -> u64 {
        self.want.size - self.seen
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.ctx.update(chunk);
        self.seen += chunk.len() as u64;
    }

    /// Whether everything was seen and hashes to the manifest's digest.
    pub(crate) fn matches(self) -> bool {
        self.seen == self.want.size && self.ctx.finish().as_ref() == self.want.sha256
    }
}

/// The images of a verified bundle, read from `R` in chunks. Call
/// [`ImageStream::next_chunk`] until it returns `Ok(None)`; only then were
/// all images complete, matching and followed by end of file.
#[derive(Debug)]
pub struct ImageStream {
    images: [Image; 3],
    index: usize,
    hasher: Option<ImageHasher>,
}

impl ImageStream {
    /// Streams the images `manifest` describes.
    pub fn new(manifest: &VerifiedManifest) -> ImageStream {
        let m = manifest.manifest();
        ImageStream {
            images: [m.kernel, m.initramfs, m.rootfs],
            index: 0,
            hasher: None,
        }
    }

    /// Reads the next chunk (at most `buf.len()` octets, never crossing an
    /// image) into `buf`: returns the image, the chunk's offset in it and
    /// its length. An image's last chunk is returned only after its hash
    /// matched, so a caller that writes chunks never writes the tail of a
    /// tampered image; it may have written its earlier chunks, which is why
    /// nothing is armed before [`crate::slot::verify_slot`] reads it back.
    pub fn next_chunk<R: Read>(
        &mut self,
        r: &mut R,
        buf: &mut [u8],
    ) -> Result<Option<(ImageKind, u64, usize)>, BundleError> {
        loop {
            let Some(kind) = ImageKind::ALL.get(self.index).copied() else {
                // After the last image: end of file, nothing else.
                let mut probe = [0u8; 1];
                return match r.read(&mut probe) {
                    Ok(0) => Ok(None),
                    Ok(_) => Err(BundleError::TrailingData),
                    Err(_) => Err(BundleError::Truncated),
                };
            };
            let want = self.images[self.index];
            let hasher = self
                .hasher
                .get_or_insert_with(|| ImageHasher::new(kind, want));
            let remaining = hasher.remaining();
            if remaining == 0 {
                let done = self.hasher.take();
                self.index += 1;
                if done.is_some_and(ImageHasher::matches) {
                    continue;
                }
                return Err(BundleError::ImageHash(kind));
            }
            let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
            if n == 0 {
                return Err(BundleError::Malformed("empty streaming buffer"));
            }
            read_exact(r, &mut buf[..n])?;
            let offset = want.size - remaining;
            hasher.update(&buf[..n]);
            if n as u64 == remaining {
                let done = self.hasher.take();
                self.index += 1;
                if !done.is_some_and(ImageHasher::matches) {
                    return Err(BundleError::ImageHash(kind));
                }
            }
            return Ok(Some((kind, offset, n)));
        }
    }
}

/// Verifies a whole bundle held in memory: the manifest against
/// `policy`, every image against its digest, and nothing after the last.
pub fn verify_bundle(bytes: &[u8], policy: &Policy<'_>) -> Result<VerifiedManifest, BundleError> {
    let mut r = bytes;
    let prefix = read_prefix(&mut r)?;
    let verified = verify_manifest(&prefix, policy)?;
    let mut stream = ImageStream::new(&verified);
    let mut buf = vec![0u8; 64 << 10];
    while stream.next_chunk(&mut r, &mut buf)?.is_some() {}
    Ok(verified)
}
