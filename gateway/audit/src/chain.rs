//! Numbering, chaining and checkpointing records.

use dialgate_signed::{sha256, sign_detached, SignedError, SigningKey, AUDIT_CHECKPOINT};

use crate::record::{format, parse, Event, Header, Severity};
use crate::GENESIS;

/// A checkpoint after this many records at the latest (and after
/// [`crate::Chain::checkpoint_due`]'s time bound).
pub const CHECKPOINT_EVERY: u64 = 64;

/// One numbered, chained record: the line as written and shipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number (1 for a kit's first record).
    pub seq: u64,
    /// The RFC 5424 text (no line end).
    pub line: String,
    /// SHA-256 of `line`: the next record's `prev`.
    pub hash: [u8; 32],
}

/// The kit's chain head: the next sequence number and the last hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    next: u64,
    prev: [u8; 32],
    since_checkpoint: u64,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::genesis()
    }
}

/// The statement a checkpoint signs: kit, its own sequence number, the
/// hash of the record before it, the kit's time floor.
pub(crate) fn checkpoint_statement(kit: &str, seq: u64, prev: &[u8; 32], floor: u64) -> Vec<u8> {
    format!("{kit}\n{seq}\n{}\n{floor}", dialgate_signed::hex(prev)).into_bytes()
}

impl Chain {
    /// A kit's first chain.
    pub fn genesis() -> Chain {
        Chain {
            next: 1,
            prev: GENESIS,
            since_checkpoint: 0,
        }
    }

    /// Continues after `last`, the newest record on the kit's spool.
    pub fn resume(last: &str) -> Result<Chain, &'static str> {
        let p = parse(last)?;
        let seq: u64 = p.get("seq").and_then(|s| s.parse().ok()).ok_or("no seq")?;
        let since_checkpoint = if p.msgid == "checkpoint" { 0 } else { 1 };
        Ok(Chain {
            next: seq.checked_add(1).ok_or("seq overflow")?,
            prev: sha256(last.as_bytes()),
            since_checkpoint,
        })
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Records since the last checkpoint.
    pub fn since_checkpoint(&self) -> u64 {
        self.since_checkpoint
    }

    /// Numbers and chains `event`.
    pub fn append(&mut self, h: &Header<'_>, event: &Event) -> Record {
        let seq = self.next;
        let line = format(h, seq, &self.prev, event);
        let hash = sha256(line.as_bytes());
        self.next += 1;
        self.prev = hash;
        self.since_checkpoint += 1;
        Record { seq, line, hash }
    }

    /// Whether a checkpoint is due: [`CHECKPOINT_EVERY`] records, or any
    /// record at all when `idle` says the time bound has passed.
    pub fn checkpoint_due(&self, idle: bool) -> bool {
        self.since_checkpoint >= CHECKPOINT_EVERY || (idle && self.since_checkpoint > 0)
    }

    /// A checkpoint record signed with the kit's `key`, vouching for
    /// every record before it; `floor` is the kit's time floor (Unix s).
    pub fn checkpoint(
        &mut self,
        h: &Header<'_>,
        key: &SigningKey,
        floor: u64,
    ) -> Result<Record, SignedError> {
        let seq = self.next;
        let statement = checkpoint_statement(h.hostname, seq, &self.prev, floor);
        let sig = sign_detached(&AUDIT_CHECKPOINT, &statement, key)?;
        let event = Event {
            severity: Severity::Info,
            msgid: "checkpoint".into(),
            params: vec![
                ("floor".into(), floor.to_string()),
                ("key".into(), key.public_key().id().to_hex()),
                ("sig".into(), sig),
            ],
            message: format!("audit checkpoint: records up to {} vouched for", seq - 1),
        };
        let r = self.append(h, &event);
        self.since_checkpoint = 0;
        Ok(r)
    }
}
