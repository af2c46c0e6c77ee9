//! The storage the update logic writes: a block device with positional
//! reads and writes and an explicit flush (the write barrier), plus two
//! in-memory implementations for tests.
//!
//! - [`MemDevice`]: a byte vector; every write is durable at once.
//! - [`LossyDevice`]: a **fake** that models a volatile write cache and a
//!   power cut at a chosen operation. It exists because a block device that
//!   really loses unflushed writes cannot be produced on the build machine
//!   (a file or loop device under Linux keeps the page cache across a
//!   process crash, and nothing here can cut a disk's power). The real,
//!   file-backed device belongs to the appliance shell.
//!
//! The update logic never assumes a write is durable before a
//! [`BlockDevice::flush`] returns: that is the contract eMMC, SD cards and
//! virtio-blk give (a write may sit in the device's cache, and writes may
//! reach the medium in any order, until a cache flush completes).

use std::fmt;

/// Why a block operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The range is outside the device: our bug (a layout that does not
    /// fit the device), never the bundle's.
    #[error("block access at {offset}+{len} is outside the {size}-byte device: the slot layout does not fit the storage")]
    OutOfRange {
        /// First byte asked for.
        offset: u64,
        /// Number of bytes.
        len: usize,
        /// The device's size.
        size: u64,
    },
    /// The (fake) power was cut: this and every later operation fails.
    #[error("power cut: the device is gone until the next boot")]
    PowerCut,
    /// The underlying device reported an I/O error (its kind only, so the
    /// error stays comparable and cheap).
    #[error("storage I/O error ({0:?}): check the storage medium")]
    Io(std::io::ErrorKind),
}

/// Positional storage with a write barrier. `write_at` may be cached
/// until `flush`; `read_at` sees every earlier write (cached or not).
pub trait BlockDevice {
    /// Size in bytes.
    fn len(&self) -> u64;

    /// Whether the device has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device's logical block size: writes the medium makes atomic
    /// (a torn write keeps whole blocks). 512 for SD and most eMMC.
    fn block_size(&self) -> usize;

    /// Fills `buf` from `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError>;

    /// Writes `data` at `offset`; not durable until [`BlockDevice::flush`].
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError>;

    /// Makes every earlier write durable (a cache flush / FUA barrier).
    fn flush(&mut self) -> Result<(), BlockError>;
}

fn range(offset: u64, len: usize, size: u64) -> Result<std::ops::Range<usize>, BlockError> {
    let err = BlockError::OutOfRange { offset, len, size };
    let end = offset
        .checked_add(u64::try_from(len).map_err(|_| err.clone())?)
        .ok_or_else(|| err.clone())?;
    if end > size {
        return Err(err);
    }
    let start = usize::try_from(offset).map_err(|_| err.clone())?;
    let end = usize::try_from(end).map_err(|_| err)?;
    Ok(start..end)
}

/// An in-memory device whose writes are durable at once.
#[derive(Clone, PartialEq, Eq)]
pub struct MemDevice {
    bytes: Vec<u8>,
    block_size: usize,
}

impl fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemDevice({} bytes)", self.bytes.len())
    }
}

impl MemDevice {
    /// `size` zero bytes, 512-byte blocks.
    pub fn new(size: usize) -> MemDevice {
        MemDevice::from_bytes(vec![0; size])
    }

    /// A device holding `bytes`, 512-byte blocks.
    pub fn from_bytes(bytes: Vec<u8>) -> MemDevice {
        MemDevice {
            bytes,
            block_size: 512,
        }
    }

    /// The device's content.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl BlockDevice for MemDevice {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = range(offset, buf.len(), self.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        let r = range(offset, data.len(), self.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}

/// What survives of the writes issued since the last flush when the power
/// is cut. Writes flushed before the cut always survive; the operation at
/// the cut point itself never completes (a write there is either lost or,
/// for [`CutMode::TornAt`], torn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CutMode {
    /// Every unflushed write is lost (the whole cache is gone).
    DropUnflushed,
    /// Every unflushed write reached the medium, in order, as if the cache
    /// were write-through; the interrupted write is lost.
    KeepUnflushed,
    /// The unflushed writes reached the medium in order, and the
    /// interrupted write (if the cut is at a write) reached it only for
    /// its first `blocks` device blocks: a torn write that keeps whole
    /// blocks, as SD/eMMC sector writes do.
    TornAt {
        /// Whole blocks of the interrupted write that survive.
        blocks: usize,
    },
    /// Only every other unflushed write survives (the 1st, 3rd, ...):
    /// the device reordered its cache and lost the rest. Deterministic
    /// stand-in for "any subset".
    Alternate,
}

/// A **fake** device with a volatile write cache that loses power at
/// operation number `cut_at` (writes and flushes are counted from 0;
/// reads are not counted, they change nothing). See the module docs for
/// why it is a fake.
///
/// Before the cut it behaves like a disk with a write-back cache: reads
/// see every write, [`BlockDevice::flush`] makes them durable. At the cut
/// point the pending writes are resolved by the [`CutMode`], the
/// operation fails with [`BlockError::PowerCut`], and so does every later
/// one. [`LossyDevice::after_power_cut`] gives the medium as the next boot
/// finds it. With `cut_at = None` it never cuts, which is how a test
/// counts the operations of a run.
#[derive(Clone)]
pub struct LossyDevice {
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    block_size: usize,
    ops: u64,
    cut_at: Option<u64>,
    mode: CutMode,
    cut: bool,
}

impl fmt::Debug for LossyDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LossyDevice")
            .field("size", &self.durable.len())
            .field("pending_writes", &self.pending.len())
            .field("ops", &self.ops)
            .field("cut_at", &self.cut_at)
            .field("mode", &self.mode)
            .field("cut", &self.cut)
            .finish()
    }
}

impl LossyDevice {
    /// A device holding `medium` (all durable) that cuts power at
    /// operation `cut_at` the way `mode` says. 512-byte blocks.
    pub fn new(medium: Vec<u8>, cut_at: Option<u64>, mode: CutMode) -> LossyDevice {
        LossyDevice {
            durable: medium,
            pending: Vec::new(),
            block_size: 512,
            ops: 0,
            cut_at,
            mode,
            cut: false,
        }
    }

    /// Writes and flushes issued so far (including a cut one).
    pub fn operations(&self) -> u64 {
        self.ops
    }

    /// Whether the power has been cut.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// The medium as the next boot sees it: the durable bytes only. If
    /// the power was never cut, pending writes are lost too (the power
    /// goes off at the end of the run), which is [`CutMode::DropUnflushed`]
    /// whatever the mode.
    pub fn after_power_cut(self) -> MemDevice {
        MemDevice::from_bytes(self.durable)
    }

    fn apply(durable: &mut [u8], offset: u64, data: &[u8]) {
        // Ranges were checked when the write was accepted.
        if let Ok(r) = range(offset, data.len(), durable.len() as u64) {
            durable[r].copy_from_slice(data);
        }
    }

    /// Counts an operation; at the cut point resolves the cache and
    /// returns the error. `interrupted` is the write being cut, if any.
    fn tick(&mut self, interrupted: Option<(u64, &[u8])>) -> Result<(), BlockError> {
        if self.cut {
            return Err(BlockError::PowerCut);
        }
        let this = self.ops;
        self.ops += 1;
        if self.cut_at != Some(this) {
            return Ok(());
        }
        self.cut = true;
        let pending = std::mem::take(&mut self.pending);
        match self.mode {
            CutMode::DropUnflushed => {}
            CutMode::KeepUnflushed => {
                for (o, d) in &pending {
                    Self::apply(&mut self.durable, *o, d);
                }
            }
            CutMode::TornAt { blocks } => {
                for (o, d) in &pending {
                    Self::apply(&mut self.durable, *o, d);
                }
                if let Some((o, d)) = interrupted {
                    let keep = d.len().min(blocks.saturating_mul(self.block_size));
                    Self::apply(&mut self.durable, o, &d[..keep]);
                }
            }
            CutMode::Alternate => {
                for (o, d) in pending.iter().step_by(2) {
                    Self::apply(&mut self.durable, *o, d);
                }
            }
        }
        Err(BlockError::PowerCut)
    }
}

impl BlockDevice for LossyDevice {
    fn len(&self) -> u64 {
        self.durable.len() as u64
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        if self.cut {
            return Err(BlockError::PowerCut);
        }
        let r = range(offset, buf.len(), self.len())?;
        buf.copy_from_slice(&self.durable[r.clone()]);
        // Overlay the cache, oldest first, so the newest write wins.
        for (o, d) in &self.pending {
            let (o, end) = (*o, *o + d.len() as u64);
            let (lo, hi) = (o.max(offset), end.min(offset + buf.len() as u64));
            if lo < hi {
                let (lo, hi) = ((lo - offset) as usize, (hi - offset) as usize);
                let src = (o.max(offset) - o) as usize;
                buf[lo..hi].copy_from_slice(&d[src..src + (hi - lo)]);
            }
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        if self.cut {
            return Err(BlockError::PowerCut);
        }
        range(offset, data.len(), self.len())?;
        self.tick(Some((offset, data)))?;
        self.pending.push((offset, data.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.tick(None)?;
        for (o, d) in std::mem::take(&mut self.pending) {
            Self::apply(&mut self.durable, o, &d);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(mode: CutMode, cut_at: u64) -> Vec<u8> {
        let mut d = LossyDevice::new(vec![0; 2048], Some(cut_at), mode);
        // Evaluated in order: ops 0 to 5.
        let results = [
            d.write_at(0, &[1; 512]),
            d.flush(),
            d.write_at(512, &[2; 512]),
            d.write_at(1024, &[3; 512]),
            d.write_at(1536, &[4; 512]),
            d.flush(),
        ];
        let cut = usize::try_from(cut_at).unwrap();
        for (i, r) in results.iter().enumerate() {
            if i < cut {
                assert_eq!(*r, Ok(()), "op {i}");
            } else {
                assert_eq!(*r, Err(BlockError::PowerCut), "op {i}");
            }
        }
        let mut buf = [0u8; 1];
        assert_eq!(d.read_at(0, &mut buf).is_err(), d.was_cut());
        assert_eq!(d.was_cut(), cut < results.len());
        d.after_power_cut().bytes().to_vec()
    }

    fn blocks(bytes: &[u8]) -> Vec<u8> {
        bytes.chunks(512).map(|c| c[0]).collect()
    }

    #[test]
    fn flushed_writes_survive_and_unflushed_ones_follow_the_mode() {
        assert_eq!(blocks(&written(CutMode::DropUnflushed, 0)), [0, 0, 0, 0]);
        assert_eq!(blocks(&written(CutMode::DropUnflushed, 1)), [0, 0, 0, 0]);
        assert_eq!(blocks(&written(CutMode::DropUnflushed, 2)), [1, 0, 0, 0]);
        assert_eq!(blocks(&written(CutMode::DropUnflushed, 5)), [1, 0, 0, 0]);
        assert_eq!(blocks(&written(CutMode::KeepUnflushed, 4)), [1, 2, 3, 0]);
        assert_eq!(blocks(&written(CutMode::KeepUnflushed, 5)), [1, 2, 3, 4]);
        assert_eq!(blocks(&written(CutMode::Alternate, 5)), [1, 2, 0, 4]);
        assert_eq!(
            blocks(&written(CutMode::TornAt { blocks: 1 }, 4)),
            [1, 2, 3, 4]
        );
        assert_eq!(
            blocks(&written(CutMode::TornAt { blocks: 0 }, 4)),
            [1, 2, 3, 0]
        );
        assert_eq!(blocks(&written(CutMode::DropUnflushed, 6)), [1, 2, 3, 4]);
    }

    #[test]
    fn a_torn_write_keeps_whole_blocks_only() {
        let mut d = LossyDevice::new(vec![0; 2048], Some(0), CutMode::TornAt { blocks: 2 });
        assert_eq!(d.write_at(0, &[9; 1536]), Err(BlockError::PowerCut));
        assert_eq!(blocks(d.after_power_cut().bytes()), [9, 9, 0, 0]);
    }

    #[test]
    fn reads_see_the_cache_and_ranges_are_checked() {
        let mut d = LossyDevice::new(vec![0; 16], None, CutMode::DropUnflushed);
        d.write_at(2, &[1, 2, 3, 4]).unwrap();
        d.write_at(4, &[9]).unwrap();
        let mut buf = [0u8; 6];
        d.read_at(1, &mut buf).unwrap();
        assert_eq!(buf, [0, 1, 2, 9, 4, 0]);
        assert!(matches!(
            d.write_at(15, &[0, 0]),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(d.read_at(u64::MAX, &mut buf).is_err());
        assert_eq!(d.operations(), 2);
        // Never flushed: the end of the run loses the cache.
        assert_eq!(d.after_power_cut().bytes(), &[0; 16]);
        let mut m = MemDevice::new(4);
        assert!(m.write_at(3, &[1, 2]).is_err());
    }
}
