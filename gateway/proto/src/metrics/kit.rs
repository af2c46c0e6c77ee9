//! What a kit reports about itself (`docs/status.md`), derived from the
//! audit events it already writes, plus a few values the shell sets.
//!
//! Feed every audit event to [`KitStatus::observe`] (its `decision` and
//! its other fields, as the audit layer has them) and set the values no
//! event carries ([`KitStatus::set_last_poll`], ...); [`KitStatus::families`]
//! gives what to render. Nothing in the call path changes for it.
//!
//! | event (`decision`) | counts |
//! |---|---|
//! | `admitted` with a `call` | a call being set up |
//! | `started` | the call is up: in progress |
//! | `ended` | completed (it was up) or failed (it was not); a second `ended` of a call is ignored |
//! | `refused` (without `bundle`) | an admission refusal, by `reason` |
//! | `refused` with `bundle` | a refused policy bundle |
//! | `media` | SRTP authentication failures and replays per leg, when a call's media stops |
//! | `applied` | the policy version and expiry in force |
//! | `network` with a known `verdict` | the network check's verdict in force, and changes into each verdict |

use std::collections::{BTreeMap, HashMap};

use super::Family;
use crate::netcheck::Verdict;

/// The most distinct refusal reasons kept; later ones count as `other`,
/// so a peer cannot grow the report.
pub const MAX_REASONS: usize = 32;
/// Reasons are cut to this many characters.
pub const MAX_REASON_LEN: usize = 80;
/// The most calls tracked between `admitted` and `ended`.
pub const MAX_TRACKED_CALLS: usize = 4096;

/// The metric names (also read by `dialgatectl kits`).
pub mod names {
    /// Gauge: calls up now.
    pub const CALLS_IN_PROGRESS: &str = "dialgate_calls_in_progress";
    /// Counter: calls that ended after being up.
    pub const CALLS_COMPLETED: &str = "dialgate_calls_completed";
    /// Counter: admitted calls that ended before they were up.
    pub const CALLS_FAILED: &str = "dialgate_calls_failed";
    /// Counter, label `reason`: connections and calls refused.
    pub const ADMISSION_REFUSED: &str = "dialgate_admission_refused";
    /// Counter, label `leg` (`phone`, `bridge`): SRTP packets failing authentication.
    pub const SRTP_AUTH_FAILED: &str = "dialgate_srtp_auth_failed";
    /// Counter, label `leg`: SRTP packets refused as replays.
    pub const SRTP_REPLAYED: &str = "dialgate_srtp_replayed";
    /// Counter: policy bundles refused.
    pub const POLICY_REFUSED: &str = "dialgate_policy_refused";
    /// Gauge: the policy version in force.
    pub const POLICY_VERSION: &str = "dialgate_policy_version";
    /// Gauge: when the policy in force expires (unix seconds).
    pub const POLICY_EXPIRES: &str = "dialgate_policy_expires_at_seconds";
    /// Gauge 1, labels `version` and `slot`: the running firmware.
    pub const FIRMWARE: &str = "dialgate_firmware_info";
    /// Gauge: the last successful repository poll (unix seconds).
    pub const LAST_POLL: &str = "dialgate_repository_last_poll_seconds";
    /// Gauge: seconds since the last signed time was verified.
    pub const TIME_FLOOR_AGE: &str = "dialgate_time_floor_age_seconds";
    /// Gauge: the kit's bound on that age (`[time] stale_after_s`).
    pub const TIME_STALE_AFTER: &str = "dialgate_time_stale_after_seconds";
    /// Gauge: the sequence number of the last signed command done.
    pub const LAST_COMMAND: &str = "dialgate_last_command_sequence";
    /// Gauge 1, label `verdict`: the network check's verdict in force.
    pub const NETWORK_VERDICT: &str = "dialgate_network_verdict";
    /// Counter, label `verdict`: changes of the verdict into each verdict.
    pub const NETWORK_CHANGES: &str = "dialgate_network_verdict_changes";
}

/// The kit's status: counters since start and the values in force.
#[derive(Debug, Clone, Default)]
pub struct KitStatus {
    /// Calls admitted, not ended: `true` once up.
    calls: HashMap<u64, bool>,
    /// Calls that ended after being up.
    pub completed: u64,
    /// Admitted calls that ended before being up.
    pub failed: u64,
    /// Refusals by reason.
    pub refused: BTreeMap<String, u64>,
    /// SRTP authentication failures: phone leg, bridge leg.
    pub auth_failed: [u64; 2],
    /// SRTP replays: phone leg, bridge leg.
    pub replayed: [u64; 2],
    /// Policy bundles refused.
    pub policy_refused: u64,
    /// The policy in force: version and expiry (unix seconds).
    pub policy: Option<(u64, u64)>,
    /// The firmware: version and slot.
    pub firmware: Option<(String, String)>,
    /// The last successful repository poll (unix seconds).
    pub last_poll: Option<u64>,
    /// Seconds since the last signed time was verified.
    pub time_floor_age: Option<u64>,
    /// The bound past which the kit says its time is stale.
    pub time_stale_after: Option<u64>,
    /// The last signed command done.
    pub last_command: Option<u64>,
    /// The network check's verdict in force (absent: no check runs).
    pub network: Option<Verdict>,
    /// Changes into each verdict.
    pub network_changes: BTreeMap<&'static str, u64>,
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn number(fields: &[(String, String)], name: &str) -> Option<u64> {
    field(fields, name).and_then(|v| v.parse().ok())
}

impl KitStatus {
    /// A status with nothing counted.
    pub fn new() -> KitStatus {
        KitStatus::default()
    }

    /// Calls up now.
    pub fn in_progress(&self) -> u64 {
        self.calls.values().filter(|up| **up).count() as u64
    }

    /// Counts one audit event: `decision` (its MSGID) and its fields.
    pub fn observe(&mut self, decision: &str, fields: &[(String, String)]) {
        match decision {
            "admitted" => {
                if let Some(call) = number(fields, "call") {
                    if self.calls.len() < MAX_TRACKED_CALLS {
                        self.calls.insert(call, false);
                    }
                }
            }
            "started" => {
                if let Some(call) = number(fields, "call") {
                    if let Some(up) = self.calls.get_mut(&call) {
                        *up = true;
                    } else if self.calls.len() < MAX_TRACKED_CALLS {
                        self.calls.insert(call, true);
                    }
                }
            }
            "ended" => {
                if let Some(up) = number(fields, "call").and_then(|c| self.calls.remove(&c)) {
                    if up {
                        self.completed += 1;
                    } else {
                        self.failed += 1;
                    }
                }
            }
            "refused" if field(fields, "bundle").is_some() => self.policy_refused += 1,
            "refused" => {
                let reason = bounded_reason(field(fields, "reason").unwrap_or("-"));
                let key = if self.refused.contains_key(&reason) || self.refused.len() < MAX_REASONS
                {
                    reason
                } else {
                    "other".to_string()
                };
                *self.refused.entry(key).or_insert(0) += 1;
            }
            "media" => {
                for (i, leg) in ["phone", "bridge"].iter().enumerate() {
                    let add = |n: &mut u64, what: &str| {
                        *n =
                            n.saturating_add(number(fields, &format!("{leg}_{what}")).unwrap_or(0));
                    };
                    add(&mut self.auth_failed[i], "auth_failed");
                    add(&mut self.replayed[i], "replayed");
                }
            }
            "applied" => {
                if let (Some(v), Some(e)) =
                    (number(fields, "version"), number(fields, "expires_at"))
                {
                    self.policy = Some((v, e));
                }
            }
            "network" => {
                if let Some(v) = field(fields, "verdict").and_then(Verdict::from_name) {
                    if self.network != Some(v) {
                        *self.network_changes.entry(v.name()).or_insert(0) += 1;
                    }
                    self.network = Some(v);
                }
            }
            _ => {}
        }
    }

    /// Sets the last successful repository poll (unix seconds).
    pub fn set_last_poll(&mut self, at: u64) {
        self.last_poll = Some(at);
    }

    /// The families to render.
    pub fn families(&self) -> Vec<Family> {
        use names::*;
        let mut out = vec![
            Family::gauge(CALLS_IN_PROGRESS, "Calls up now.").with(&[], self.in_progress() as f64),
            Family::counter(CALLS_COMPLETED, "Calls that ended after being up.")
                .with(&[], self.completed as f64),
            Family::counter(
                CALLS_FAILED,
                "Admitted calls that ended before they were up.",
            )
            .with(&[], self.failed as f64),
        ];
        let mut refused = Family::counter(
            ADMISSION_REFUSED,
            "Phone connections and calls refused, by reason.",
        );
        for (reason, n) in &self.refused {
            refused.push(&[("reason", reason)], *n as f64);
        }
        out.push(refused);
        let mut auth = Family::counter(
            SRTP_AUTH_FAILED,
            "SRTP packets that failed authentication (counted when a call's media stops).",
        );
        let mut replay = Family::counter(
            SRTP_REPLAYED,
            "SRTP packets refused as replays (counted when a call's media stops).",
        );
        for (i, leg) in ["phone", "bridge"].iter().enumerate() {
            auth.push(&[("leg", leg)], self.auth_failed[i] as f64);
            replay.push(&[("leg", leg)], self.replayed[i] as f64);
        }
        out.push(auth);
        out.push(replay);
        out.push(
            Family::counter(POLICY_REFUSED, "Policy bundles refused.")
                .with(&[], self.policy_refused as f64),
        );
        if let Some((version, expires)) = self.policy {
            out.push(
                Family::gauge(POLICY_VERSION, "The policy version in force.")
                    .with(&[], version as f64),
            );
            out.push(
                Family::gauge(
                    POLICY_EXPIRES,
                    "When the policy in force expires (unix seconds).",
                )
                .with(&[], expires as f64),
            );
        }
        if let Some((version, slot)) = &self.firmware {
            out.push(
                Family::gauge(FIRMWARE, "The running firmware: its version and boot slot.")
                    .with(&[("version", version), ("slot", slot)], 1.0),
            );
        }
        let gauges = [
            (
                LAST_POLL,
                "The last successful repository poll (unix seconds).",
                self.last_poll,
            ),
            (
                TIME_FLOOR_AGE,
                "Seconds since the last signed time was verified.",
                self.time_floor_age,
            ),
            (
                TIME_STALE_AFTER,
                "The age of the signed time past which the kit reports it stale.",
                self.time_stale_after,
            ),
            (
                LAST_COMMAND,
                "The sequence number of the last signed command done.",
                self.last_command,
            ),
        ];
        if let Some(v) = self.network {
            out.push(
                Family::gauge(
                    NETWORK_VERDICT,
                    "The network check's verdict in force (1 for that verdict).",
                )
                .with(&[("verdict", v.name())], 1.0),
            );
            let mut changes = Family::counter(
                NETWORK_CHANGES,
                "Changes of the network check's verdict, by the verdict changed to.",
            );
            for (verdict, n) in &self.network_changes {
                changes.push(&[("verdict", verdict)], *n as f64);
            }
            out.push(changes);
        }
        for (name, help, v) in gauges {
            if let Some(v) = v {
                out.push(Family::gauge(name, help).with(&[], v as f64));
            }
        }
        out
    }
}

/// A reason as a label value: printable ASCII, at most
/// [`MAX_REASON_LEN`] characters.
fn bounded_reason(r: &str) -> String {
    r.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(MAX_REASON_LEN)
        .collect()
}
