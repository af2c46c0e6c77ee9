//! The two file operations every signed-document shell needs (policy,
//! firmware, commands, audit), kept apart from the pure checks: a bounded read (a bundle larger than the kit accepts is
//! not read into memory) and an atomic, durable replace (a power cut
//! leaves the old file or the new one, never half of either).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Reads at most `max + 1` bytes of a file: enough for [`crate::open`]
/// to see that it is too large, without reading all of it.
pub fn read_bounded(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    File::open(path)?.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

fn temp_path(path: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path names no file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(".tmp");
    Ok((dir.join(tmp), dir))
}

/// Replaces `path` with `bytes` atomically and durably: write a temporary
/// file in the same folder (mode 0600), fsync it, rename it over `path`,
/// fsync the folder. Readers see the old content or the new, never a mix,
/// and once this returns the new content survives a power cut.
///
/// One writer per path: the temporary name is fixed (`.NAME.tmp`), a stale
/// one from a crash is removed first, and it is created exclusively, so a
/// symbolic link planted there is not followed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (tmp, dir) = temp_path(path)?;
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable only once the folder's entry is on disk.
    File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// A fresh folder under the system temp folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let p = std::env::temp_dir().join(format!(
                "dialgate-policy-{tag}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn replaces_atomically_leaves_no_temporary_and_is_private() {
        let d = TempDir::new("store");
        let path = d.0.join("policy-state");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two, longer");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(&d.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("policy-state")]);
    }

    #[test]
    fn a_stale_temporary_or_planted_link_does_not_leak_the_write() {
        let d = TempDir::new("store-link");
        let path = d.0.join("state");
        let victim = d.0.join("victim");
        fs::write(&victim, b"keep me").unwrap();
        symlink(&victim, d.0.join(".state.tmp")).unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(fs::read(&path).unwrap(), b"new");

        fs::write(d.0.join(".state.tmp"), b"half a write from before a crash").unwrap();
        write_atomically(&path, b"newer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newer");
        assert!(!d.0.join(".state.tmp").exists());
    }

    #[test]
    fn failures_leave_the_old_file_and_no_temporary() {
        let d = TempDir::new("store-fail");
        // The target is a non-empty folder: rename fails.
        let path = d.0.join("busy");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), b"x").unwrap();
        assert!(write_atomically(&path, b"new").is_err());
        assert!(!d.0.join(".busy.tmp").exists());
        assert!(write_atomically(Path::new("/"), b"x").is_err());
    }

    #[test]
    fn bounded_read_stops_one_past_the_limit() {
        let d = TempDir::new("store-read");
        let path = d.0.join("big");
        fs::write(&path, vec![7u8; 5000]).unwrap();
        assert_eq!(read_bounded(&path, 100).unwrap().len(), 101);
        assert_eq!(read_bounded(&path, 10_000).unwrap().len(), 5000);
        assert!(read_bounded(&d.0.join("missing"), 10).is_err());
    }
}
