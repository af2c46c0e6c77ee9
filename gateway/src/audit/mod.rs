//! The audit trail's shell: tracing events of target `audit` become
//! numbered, chained RFC 5424 records ([`dialgate_audit`]), each spooled
//! and flushed to the data partition before the code that emitted it goes
//! on (a call is not connected before its admission record is on disk),
//! checkpointed with the kit's key, and shipped to the home SIEM
//! ([`ship`]). Format and rules: `docs/audit.md`.
//!
//! - [`AuditLayer`] goes into the process's subscriber; events it sees
//!   before [`start`] (none in practice: the configuration is read first)
//!   wait in a small buffer.
//! - Refusals at the TLS layer (handshakes anyone can attempt) are
//!   recorded one by one up to [`FLOOD_LIMIT`] per [`FLOOD_WINDOW`]; past
//!   that they are counted and one `summary` record says how many.
//! - The spool is bounded. Past [`ADMIT_BELOW_PERCENT`] of it, new phone
//!   connections are refused (fail closed: a call whose records cannot be
//!   kept is not placed); a record that does not fit at all is counted and
//!   one `lost` record says how many, as soon as there is room again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dialgate_audit::{rfc3339, Chain, Event, Header, Severity};
use dialgate_signed::SigningKey;
use tokio::sync::Notify;

use crate::config::AuditConfig;

mod layer;
mod ship;
mod spool;

pub use layer::AuditLayer;
pub use spool::{Spool, SpoolError};

/// Pre-authentication refusals recorded one by one per window.
pub const FLOOD_LIMIT: u32 = 20;
/// The window of [`FLOOD_LIMIT`].
pub const FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// A checkpoint at the latest this long after the record before it.
pub const CHECKPOINT_IDLE: Duration = Duration::from_secs(10);
/// New phone connections are admitted only while the unshipped records
/// fill less than this share of the spool.
pub const ADMIT_BELOW_PERCENT: u64 = 90;
/// Events kept before [`start`].
const EARLY_EVENTS: usize = 256;

/// Why the audit trail could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The spool is unusable.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The checkpoint key is unusable.
    #[error("audit key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The SIEM's certificates or the device identity are unusable.
    #[error("audit SIEM TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The spool's last record does not continue a chain.
    #[error("audit spool: the newest record does not parse ({0})")]
    Chain(&'static str),
    /// Started twice in one process.
    #[error("the audit trail is already running in this process")]
    AlreadyStarted,
}

/// What the tasks share: the sink (spool, chain, key) and the shipper's
/// wake-up.
struct Shared {
    sink: Mutex<Sink>,
    wake: Notify,
    stopping: AtomicBool,
}

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
static EARLY: Mutex<Vec<Event>> = Mutex::new(Vec::new());
static REFUSING: AtomicBool = AtomicBool::new(false);

/// Whether new phone connections may be admitted: `false` while the spool
/// is nearly full (the audit trail cannot keep their records).
pub fn has_room() -> bool {
    !REFUSING.load(Ordering::Relaxed)
}

/// Records one event (from [`AuditLayer`]).
fn submit(ev: Event) {
    match SHARED.get() {
        Some(s) => {
            if let Ok(mut sink) = s.sink.lock() {
                sink.write(ev);
            }
            s.wake.notify_one();
        }
        None => {
            if let Ok(mut early) = EARLY.lock() {
                if early.len() < EARLY_EVENTS {
                    early.push(ev);
                }
            }
        }
    }
}

/// Counting what is not recorded one by one.
#[derive(Default)]
struct Flood {
    since: Option<Instant>,
    recorded: u32,
    suppressed: u64,
    peers: HashSet<String>,
    reasons: HashMap<String, u64>,
}

impl Flood {
    /// Whether `ev` is a refusal at the TLS layer (before any SIP request:
    /// what anyone who reaches the port can cause as fast as handshakes
    /// go). Refused calls carry their `alias` and are limited per token.
    fn applies(ev: &Event) -> bool {
        ev.msgid == "refused" && !ev.params.iter().any(|(k, _)| k == "alias")
    }

    /// `true`: record `ev`; `false`: it was counted instead.
    fn admit(&mut self, now: Instant, ev: &Event) -> bool {
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= FLOOD_WINDOW && self.suppressed == 0 {
            self.since = Some(now);
            self.recorded = 0;
        }
        if self.recorded < FLOOD_LIMIT {
            self.recorded += 1;
            return true;
        }
        self.suppressed += 1;
        if let Some((_, p)) = ev.params.iter().find(|(k, _)| k == "peer") {
            if self.peers.len() < 4096 {
                let ip = p.rsplit_once(':').map_or(p.as_str(), |(ip, _)| ip);
                self.peers.insert(ip.to_string());
            }
        }
        if let Some((_, r)) = ev.params.iter().find(|(k, _)| k == "reason") {
            if self.reasons.len() < 8 || self.reasons.contains_key(r) {
                *self.reasons.entry(r.clone()).or_default() += 1;
            }
        }
        false
    }

    /// The summary of a finished window, if anything was counted.
    fn summary(&mut self, now: Instant) -> Option<Event> {
        let since = self.since?;
        if now.duration_since(since) < FLOOD_WINDOW || self.suppressed == 0 {
            return None;
        }
        let mut reasons: Vec<_> = self.reasons.drain().collect();
        reasons.sort();
        let reasons = reasons
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect::<Vec<_>>()
            .join("; ");
        let ev = Event {
            severity: Severity::Warning,
            msgid: "summary".into(),
            params: vec![
                ("refused".into(), self.suppressed.to_string()),
                ("addresses".into(), self.peers.len().to_string()),
                (
                    "window_s".into(),
                    now.duration_since(since).as_secs().to_string(),
                ),
                ("reasons".into(), reasons),
            ],
            message: format!(
                "{} more refusals at the TLS layer (past {FLOOD_LIMIT} per {} s) from {} addresses, not recorded one by one",
                self.suppressed,
                FLOOD_WINDOW.as_secs(),
                self.peers.len()
            ),
        };
        *self = Flood {
            since: Some(now),
            ..Flood::default()
        };
        Some(ev)
    }
}

/// The spool, the chain head and the checkpoint key.
struct Sink {
    kit: String,
    procid: u32,
    key: SigningKey,
    chain: Chain,
    spool: Spool,
    last_micros: u64,
    last_record: Instant,
    flood: Flood,
    lost: u64,
}

/// The kit's time (`crate::clock`): a clock set back does not date
/// records before the floor.
fn unix_micros() -> u64 {
    crate::clock::now_micros()
}

impl Sink {
    fn write(&mut self, ev: Event) {
        let now = Instant::now();
        if Flood::applies(&ev) && !self.flood.admit(now, &ev) {
            return;
        }
        if self.lost > 0 {
            let lost = Event {
                severity: Severity::Error,
                msgid: "lost".into(),
                params: vec![("records".into(), self.lost.to_string())],
                message: format!(
                    "{} audit records could not be spooled (spool full) and are lost",
                    self.lost
                ),
            };
            if self.append(&lost) {
                self.lost = 0;
            }
        }
        if !self.append(&ev) {
            self.lost += 1;
        }
        if self.chain.checkpoint_due(false) {
            self.checkpoint();
        }
    }

    /// The next record's time: the trail's time never goes back,
    /// whatever the clock does.
    fn timestamp(&mut self) -> String {
        self.last_micros = self.last_micros.max(unix_micros());
        rfc3339(self.last_micros)
    }

    fn header<'a>(&'a self, timestamp: &'a str) -> Header<'a> {
        Header {
            timestamp,
            hostname: &self.kit,
            procid: self.procid,
        }
    }

    /// Numbers, chains and spools one record; `false` if it is not on disk.
    fn append(&mut self, ev: &Event) -> bool {
        let ts = self.timestamp();
        let mut next = self.chain.clone();
        let record = next.append(&self.header(&ts), ev);
        self.commit(next, record.seq, &record.line)
    }

    fn commit(&mut self, next: Chain, seq: u64, line: &str) -> bool {
        match self.spool.append(seq, line) {
            Ok(()) => {
                self.chain = next;
                self.last_record = Instant::now();
                REFUSING.store(
                    self.spool.fill_percent() >= ADMIT_BELOW_PERCENT,
                    Ordering::Relaxed,
                );
                true
            }
            Err(e) => {
                // Not through tracing: this is the audit trail's own path.
                eprintln!("dialgate: audit record {seq} not spooled: {e}");
                REFUSING.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    fn checkpoint(&mut self) {
        let ts = self.timestamp();
        let mut next = self.chain.clone();
        match next.checkpoint(&self.header(&ts), &self.key, self.last_micros / 1_000_000) {
            Ok(r) => {
                self.commit(next, r.seq, &r.line);
            }
            Err(e) => eprintln!("dialgate: audit checkpoint not signed: {e}"),
        }
    }

    /// Once a second: summaries, idle checkpoints, the acknowledged point.
    fn tick(&mut self) {
        let now = Instant::now();
        if let Some(s) = self.flood.summary(now) {
            if !self.append(&s) {
                self.lost += 1;
            }
        }
        if now.duration_since(self.last_record) >= CHECKPOINT_IDLE
            && self.chain.checkpoint_due(true)
        {
            self.checkpoint();
        }
        if let Err(e) = self.spool.persist() {
            eprintln!("dialgate: audit spool: {e}");
        }
        REFUSING.store(
            self.spool.fill_percent() >= ADMIT_BELOW_PERCENT,
            Ordering::Relaxed,
        );
    }
}

fn load_key(path: &std::path::Path) -> Result<SigningKey, AuditError> {
    let err = |reason: String| AuditError::Key {
        path: path.display().to_string(),
        reason,
    };
    let der = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| err(e.to_string()))?);
    SigningKey::from_pkcs8(&der).map_err(|e| err(e.to_string()))
}

/// Opens the spool, resumes the chain, records the kit's start, and
/// starts the once-a-second tick and (with a SIEM) the shipper on the
/// current tokio runtime.
pub fn start(cfg: &AuditConfig) -> Result<(), AuditError> {
    if SHARED.get().is_some() {
        return Err(AuditError::AlreadyStarted);
    }
    let key = load_key(&cfg.key)?;
    let spool = Spool::open(&cfg.spool, cfg.spool_bytes)?;
    let chain = match spool.last() {
        Some(l) => Chain::resume(l).map_err(AuditError::Chain)?,
        None => Chain::genesis(),
    };
    let last_micros = spool
        .last()
        .and_then(|l| dialgate_audit::parse(l).ok())
        .and_then(|p| dialgate_audit::unix_micros_of(&p.timestamp))
        .unwrap_or(0);
    let tls = match &cfg.siem {
        Some(s) => Some(ship::client_config(s)?),
        None => None,
    };
    let sink = Sink {
        kit: cfg.kit_id.clone(),
        procid: std::process::id(),
        key,
        chain,
        spool,
        last_micros,
        last_record: Instant::now(),
        flood: Flood::default(),
        lost: 0,
    };
    let shared = Arc::new(Shared {
        sink: Mutex::new(sink),
        wake: Notify::new(),
        stopping: AtomicBool::new(false),
    });
    SHARED
        .set(Arc::clone(&shared))
        .map_err(|_| AuditError::AlreadyStarted)?;
    let early = EARLY.lock().map(|mut e| std::mem::take(&mut *e));
    let start = Event {
        severity: Severity::Info,
        msgid: "start".into(),
        params: vec![
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
            (
                "siem".into(),
                cfg.siem
                    .as_ref()
                    .map_or("-".into(), |s| format!("{:?} {}", s.transport, s.addr)),
            ),
        ],
        message: "dialgate started".into(),
    };
    submit(start);
    for ev in early.unwrap_or_default() {
        submit(ev);
    }
    let tick = Arc::clone(&shared);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            if let Ok(mut s) = tick.sink.lock() {
                s.tick();
            }
            tick.wake.notify_one();
        }
    });
    if let (Some(siem), Some(tls)) = (cfg.siem.clone(), tls) {
        tokio::spawn(ship::run(siem, tls, shared));
    }
    Ok(())
}

/// Records the kit's stop and a final checkpoint, then gives the shipper
/// up to `drain` to deliver what is spooled (what it cannot deliver stays
/// in the spool for the next start).
pub async fn stop(drain: Duration) {
    let Some(shared) = SHARED.get() else {
        return;
    };
    submit(Event {
        severity: Severity::Info,
        msgid: "stop".into(),
        params: Vec::new(),
        message: "dialgate stopping".into(),
    });
    let until = Instant::now() + drain;
    loop {
        // Whatever is still recorded while the kit drains (a connection
        // that came up late) is vouched for by a checkpoint after it.
        let done = shared
            .sink
            .lock()
            .map(|mut s| {
                if s.chain.checkpoint_due(true) {
                    s.checkpoint();
                }
                s.spool.acked() >= s.spool.newest()
            })
            .unwrap_or(true);
        shared.wake.notify_one();
        if done || Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.stopping.store(true, Ordering::Relaxed);
    shared.wake.notify_one();
    if let Ok(mut s) = shared.sink.lock() {
        let _ = s.spool.persist();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(peer: &str, reason: &str, alias: Option<&str>) -> Event {
        let mut params = vec![
            ("peer".to_string(), peer.to_string()),
            ("reason".to_string(), reason.to_string()),
        ];
        if let Some(a) = alias {
            params.push(("alias".into(), a.into()));
        }
        Event {
            severity: Severity::Warning,
            msgid: "refused".into(),
            params,
            message: "refused".into(),
        }
    }

    #[test]
    fn a_flood_is_recorded_up_to_the_limit_then_counted_once() {
        let mut f = Flood::default();
        let t0 = Instant::now();
        let mut recorded = 0;
        for i in 0..100u32 {
            let ev = refusal(
                &format!("192.0.2.{}:4000", i % 7),
                if i % 2 == 0 {
                    "revoked"
                } else {
                    "not registered"
                },
                None,
            );
            assert!(Flood::applies(&ev));
            if f.admit(t0 + Duration::from_millis(u64::from(i)), &ev) {
                recorded += 1;
            }
        }
        assert_eq!(recorded, FLOOD_LIMIT);
        assert!(
            f.summary(t0 + Duration::from_secs(5)).is_none(),
            "the window is still open"
        );
        let s = f
            .summary(t0 + FLOOD_WINDOW)
            .expect("a summary when the window closes");
        let get = |k: &str| {
            s.params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("refused"), "80");
        assert_eq!(get("addresses"), "7");
        assert_eq!(get("reasons"), "not registered: 40; revoked: 40");
        // A new window records one by one again; nothing is counted twice.
        assert!(f.summary(t0 + FLOOD_WINDOW * 3).is_none());
        let later = t0 + FLOOD_WINDOW * 3;
        assert!(f.admit(later, &refusal("192.0.2.1:1", "revoked", None)));
    }

    #[test]
    fn refused_calls_are_never_summarised() {
        let ev = refusal("192.0.2.1:5", "not granted", Some("echo"));
        assert!(!Flood::applies(&ev));
        let mut admitted = refusal("192.0.2.1:5", "x", None);
        admitted.msgid = "admitted".into();
        assert!(!Flood::applies(&admitted));
    }
}
