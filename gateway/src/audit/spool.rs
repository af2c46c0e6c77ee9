//! The audit spool on the data partition: one file of records, one line
//! each, appended and flushed to the device (`fdatasync`) before the
//! event it records goes on; a second file with the newest sequence
//! number the SIEM has acknowledged. Records after it are kept, in memory
//! and on disk, until they are acknowledged; the file is rewritten
//! (atomically) without the acknowledged ones when they take up room.
//!
//! After a power cut the file may end in a partial line: it is cut back to
//! the last whole record, which the chain then continues from.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const SPOOL: &str = "audit.spool";
const ACKED: &str = "audit.acked";

/// Why the spool cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading or writing failed.
    #[error("audit spool {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line that is not one of the kit's records (the data partition
    /// was written by something else): the kit does not start on it.
    #[error("audit spool {path}: line {line} is not an audit record ({reason}); move the file aside to start a new trail")]
    Corrupt {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The bound would be exceeded.
    #[error("audit spool full")]
    Full,
}

/// The spool of one kit.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    file: File,
    /// Octets in the file.
    file_bytes: u64,
    /// The bound on unacknowledged octets.
    bound: u64,
    /// Records not yet acknowledged, oldest first.
    pending: VecDeque<(u64, String)>,
    pending_bytes: u64,
    /// The newest record written (for the chain after a restart).
    last: Option<String>,
    /// The newest sequence number acknowledged, and whether that is on disk.
    acked: u64,
    acked_saved: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn seq_of(line: &str) -> Result<u64, &'static str> {
    let p = dialgate_audit::parse(line)?;
    p.get("seq")
        .and_then(|s| s.parse().ok())
        .ok_or("no sequence number")
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, bounded to `bound` octets
    /// of unacknowledged records.
    pub fn open(dir: &Path, bound: u64) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(SPOOL);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        // A partial last record (a power cut mid-write) is cut off.
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            file.set_len(whole as u64).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            bytes.truncate(whole);
        }
        let acked_path = dir.join(ACKED);
        let acked = match std::fs::read_to_string(&acked_path) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| SpoolError::Corrupt {
                path: acked_path.display().to_string(),
                line: 1,
                reason: "not a sequence number",
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&acked_path)(e)),
        };
        let text = String::from_utf8(bytes).map_err(|_| SpoolError::Corrupt {
            path: path.display().to_string(),
            line: 0,
            reason: "not UTF-8",
        })?;
        let mut pending = VecDeque::new();
        let mut pending_bytes = 0;
        let mut last = None;
        for (i, line) in text.lines().enumerate() {
            let seq = seq_of(line).map_err(|reason| SpoolError::Corrupt {
                path: path.display().to_string(),
                line: i + 1,
                reason,
            })?;
            if seq > acked {
                pending_bytes += line.len() as u64 + 1;
                pending.push_back((seq, line.to_string()));
            }
            last = Some(line.to_string());
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            file,
            file_bytes: text.len() as u64,
            bound,
            pending,
            pending_bytes,
            last,
            acked,
            acked_saved: acked,
        })
    }

    /// The newest record on disk, if any.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// Whether a record of `len` octets fits under the bound.
    pub fn has_room(&self, len: usize) -> bool {
        self.pending_bytes + (len as u64) < self.bound
    }

    /// Unacknowledged octets as a share of the bound, in percent.
    pub fn fill_percent(&self) -> u64 {
        self.pending_bytes * 100 / self.bound.max(1)
    }

    /// Appends record `seq` and flushes it to the device.
    pub fn append(&mut self, seq: u64, line: &str) -> Result<(), SpoolError> {
        if !self.has_room(line.len()) {
            return Err(SpoolError::Full);
        }
        let path = self.dir.join(SPOOL);
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            // Whatever part reached the file is cut off again.
            let _ = self.file.set_len(self.file_bytes);
            return Err(io(&path)(e));
        }
        self.file_bytes += buf.len() as u64;
        self.pending_bytes += buf.len() as u64;
        self.pending.push_back((seq, line.to_string()));
        self.last = Some(line.to_string());
        Ok(())
    }

    /// Up to `max` unacknowledged records after `after`, oldest first.
    pub fn after(&self, after: u64, max: usize) -> Vec<(u64, String)> {
        // Pending records are in sequence order: find the first by bisection
        // (a backlog after an outage can hold tens of thousands).
        let from = self.pending.partition_point(|(s, _)| *s <= after);
        self.pending.range(from..).take(max).cloned().collect()
    }

    /// The newest acknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The newest sequence number written.
    pub fn newest(&self) -> u64 {
        self.pending.back().map_or(self.acked, |(s, _)| *s)
    }

    /// Records every record up to `seq` as delivered.
    pub fn ack(&mut self, seq: u64) {
        if seq <= self.acked {
            return;
        }
        self.acked = seq;
        while self.pending.front().is_some_and(|(s, _)| *s <= seq) {
            if let Some((_, l)) = self.pending.pop_front() {
                self.pending_bytes -= l.len() as u64 + 1;
            }
        }
    }

    /// Saves the acknowledged point (atomically) and, when acknowledged
    /// records take more room than a quarter of the bound, rewrites the
    /// file without them (keeping the newest record for the chain).
    pub fn persist(&mut self) -> Result<(), SpoolError> {
        if self.acked != self.acked_saved {
            write_atomically(&self.dir, ACKED, format!("{}\n", self.acked).as_bytes())?;
            self.acked_saved = self.acked;
        }
        if self.file_bytes.saturating_sub(self.pending_bytes) > self.bound / 4 {
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&mut self) -> Result<(), SpoolError> {
        let mut text = String::new();
        if self.pending.is_empty() {
            if let Some(l) = &self.last {
                text.push_str(l);
                text.push('\n');
            }
        } else {
            for (_, l) in &self.pending {
                text.push_str(l);
                text.push('\n');
            }
        }
        write_atomically(&self.dir, SPOOL, text.as_bytes())?;
        let path = self.dir.join(SPOOL);
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.file_bytes = text.len() as u64;
        Ok(())
    }
}

/// Writes `name` in `dir` through a temporary file, flushed, renamed,
/// and the folder flushed: after a power cut it is the old or the new.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SpoolError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialgate_audit::{Chain, Event, Header, Severity};

    /// A fresh folder under the system's temporary folder, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p =
                std::env::temp_dir().join(format!("dialgate-spool-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(chain: &mut Chain, n: u32) -> (u64, String) {
        let h = Header {
            timestamp: "2026-12-06T00:00:00.000000Z",
            hostname: "kit-t",
            procid: 1,
        };
        let r = chain.append(
            &h,
            &Event {
                severity: Severity::Info,
                msgid: "test".into(),
                params: vec![("n".into(), n.to_string())],
                message: format!("record {n}"),
            },
        );
        (r.seq, r.line)
    }

    #[test]
    fn survives_a_cut_last_line_and_resumes_the_chain() {
        let dir = TempDir::new("survives");
        let mut chain = Chain::genesis();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        for n in 0..3 {
            let (seq, line) = record(&mut chain, n);
            s.append(seq, &line).unwrap();
        }
        drop(s);
        // A power cut in the middle of the fourth record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(SPOOL))
            .unwrap();
        f.write_all(b"<110>1 2026-12-06T00:00:00Z kit-t dial")
            .unwrap();
        drop(f);
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.newest(), 3);
        let mut resumed = Chain::resume(s.last().unwrap()).unwrap();
        assert_eq!(record(&mut resumed, 9), record(&mut chain, 9));
        assert_eq!(s.after(0, 10).len(), 3);
    }

    #[test]
    fn acknowledged_records_leave_and_the_point_survives_a_restart() {
        let dir = TempDir::new("acked");
        let mut chain = Chain::genesis();
        let mut s = Spool::open(dir.path(), 64 << 10).unwrap();
        let mut n = 0;
        while s.has_room(400) {
            let (seq, line) = record(&mut chain, n);
            s.append(seq, &line).unwrap();
            n += 1;
        }
        let (seq, line) = record(&mut chain.clone(), n);
        let line = line + &"x".repeat(400);
        assert!(matches!(s.append(seq, &line), Err(SpoolError::Full)));
        let newest = s.newest();
        s.ack(newest - 2);
        s.persist().unwrap();
        assert!(std::fs::metadata(dir.path().join(SPOOL)).unwrap().len() < 1024);
        drop(s);
        let s = Spool::open(dir.path(), 64 << 10).unwrap();
        assert_eq!(s.acked(), newest - 2);
        let left: Vec<u64> = s.after(0, 10).iter().map(|(q, _)| *q).collect();
        assert_eq!(left, vec![newest - 1, newest]);
        let mut resumed = Chain::resume(s.last().unwrap()).unwrap();
        assert_eq!(record(&mut resumed, 9), record(&mut chain, 9));
    }

    #[test]
    fn a_foreign_line_is_an_error_not_a_new_trail() {
        let dir = TempDir::new("foreign");
        std::fs::write(dir.path().join(SPOOL), "hello\n").unwrap();
        let e = Spool::open(dir.path(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
