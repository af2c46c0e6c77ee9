//! The one adapter from the [`BlockDevice`] trait to real storage: a file
//! or a block device node (`/dev/vda` on the appliance, a disk image on
//! the build machine), read and written with `pread`/`pwrite`, flushed
//! with `fdatasync`. Everything that decides stays in the rest of the
//! crate; this is only the I/O a shell hands in.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::block::{BlockDevice, BlockError};

/// A disk image file as a [`BlockDevice`]: `pwrite`/`pread`, and
/// `fdatasync` for a flush.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    len: u64,
}

impl FileDevice {
    /// Opens `path` for reading and writing.
    pub fn open(path: &Path) -> std::io::Result<FileDevice> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        // A block device's metadata length is 0: its size is where it ends.
        let len = (&file).seek(SeekFrom::End(0))?;
        Ok(FileDevice { file, len })
    }
}

fn io_err(e: std::io::Error) -> BlockError {
    BlockError::Io(e.kind())
}

impl BlockDevice for FileDevice {
    fn len(&self) -> u64 {
        self.len
    }

    fn block_size(&self) -> usize {
        512
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.check(offset, buf.len())?;
        self.file.read_exact_at(buf, offset).map_err(io_err)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlockError> {
        self.check(offset, data.len())?;
        self.file.write_all_at(data, offset).map_err(io_err)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.file.sync_data().map_err(io_err)
    }
}

impl FileDevice {
    fn check(&self, offset: u64, len: usize) -> Result<(), BlockError> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(BlockError::OutOfRange {
                offset,
                len,
                size: self.len,
            });
        }
        Ok(())
    }
}
