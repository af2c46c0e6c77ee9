//! The kit's audit trail as data, with no I/O: what a record looks like
//! (RFC 5424 with the `dialgate@32473` structured data), how records are
//! chained and checkpointed, how a received trail is verified, and the
//! two framings it is shipped in (RFC 5425 octet counting and RELP). The
//! daemon's spool and shipper (`dialgate::audit`) and `dialgatectl audit
//! verify` are the shells around it. Format: `docs/audit.md`.

#![forbid(unsafe_code)]

mod chain;
mod record;
pub mod relp;
mod verify;

pub use chain::{Chain, Record, CHECKPOINT_EVERY};
pub use record::{
    octet_counted, parse, rfc3339, unix_micros_of, Event, Header, Parsed, Severity, SD_ID,
};
pub use verify::{verify, Report, TrailError};

/// The chain hash before the first record: 32 zero octets.
pub const GENESIS: [u8; 32] = [0; 32];
