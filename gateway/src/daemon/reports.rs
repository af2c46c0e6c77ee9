//! The firmware agent's reports (`board/src/update.rs`): PID 1 leaves one
//! file per decision (`<time>-<event>.event` in `firmware.events/` beside
//! the policy bundle: `/data/kit/firmware.events` on the appliance), and
//! the gateway, which owns the signed audit trail, turns each into a
//! record (`decision="firmware"`, `reason=` the event) and then removes
//! it. The record is written to the spool before the file goes, so a
//! crash in between repeats a record rather than losing one. A report
//! that does not parse is recorded as `reason="malformed-report"` (with
//! its name) and removed too: it never blocks the ones after it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{error, info, warn};

/// How often the folder is looked at.
pub const REPORT_POLL: Duration = Duration::from_secs(1);
/// The longest report read; the agent's are a few hundred octets.
pub const MAX_REPORT: usize = 4096;
/// Reports taken per look, so a flood cannot stall the task.
pub const MAX_PER_POLL: usize = 64;

/// The events the agent reports, and the fields each may carry.
const EVENTS: [&str; 5] = ["armed", "refused", "committed", "abandoned", "fell-back"];
const FIELDS: [&str; 6] = [
    "version",
    "slot",
    "from_version",
    "floor",
    "failed_slot",
    "reason",
];

/// One parsed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What happened (one of the agent's events).
    pub event: &'static str,
    /// `version=`, `slot=`, ... in file order.
    pub fields: Vec<(&'static str, String)>,
}

/// Parses a report: `event=` first, then known fields once each, values
/// printable and at most 300 characters.
pub fn parse(text: &str) -> Result<Report, String> {
    let mut lines = text.lines();
    let event = match lines.next().and_then(|l| l.strip_prefix("event=")) {
        Some(e) => EVENTS
            .iter()
            .copied()
            .find(|k| *k == e)
            .ok_or_else(|| format!("unknown event {e:?}"))?,
        None => return Err("does not start with event=".into()),
    };
    let mut fields: Vec<(&'static str, String)> = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line:?} is not key=value"))?;
        let key = FIELDS
            .iter()
            .copied()
            .find(|f| *f == k)
            .ok_or_else(|| format!("unknown field {k:?}"))?;
        if fields.iter().any(|(f, _)| *f == key) {
            return Err(format!("field {key} twice"));
        }
        if v.chars().count() > 300 || v.chars().any(char::is_control) {
            return Err(format!("field {key}: not a short printable value"));
        }
        fields.push((key, v.to_string()));
    }
    Ok(Report { event, fields })
}

fn field<'a>(r: &'a Report, name: &str) -> &'a str {
    r.fields
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn record(r: &Report, file: &str) {
    let (version, slot, reason) = (field(r, "version"), field(r, "slot"), field(r, "reason"));
    let (floor, failed, from) = (
        field(r, "floor"),
        field(r, "failed_slot"),
        field(r, "from_version"),
    );
    match r.event {
        "refused" => {
            warn!(target: "audit", decision = "firmware", reason = "refused", running_version = from, detail = reason, report = file, "firmware bundle refused by the kit: nothing installed")
        }
        "abandoned" => {
            error!(target: "audit", decision = "firmware", reason = "abandoned", version, slot, detail = reason, report = file, "firmware trial abandoned: back to the committed slot")
        }
        "fell-back" => {
            error!(target: "audit", decision = "firmware", reason = "fell-back", version, slot, failed_slot = failed, report = file, "the bootloader fell back from a trial that never committed")
        }
        "armed" => {
            info!(target: "audit", decision = "firmware", reason = "armed", version, slot, from_version = from, report = file, "firmware installed, read back and armed for one trial boot")
        }
        _ => {
            info!(target: "audit", decision = "firmware", reason = r.event, version, slot, floor, report = file, "firmware slot committed, floor raised")
        }
    }
}

/// Records and removes the reports in `dir` (oldest first, at most
/// [`MAX_PER_POLL`]); returns how many were taken. A missing folder is
/// none.
pub fn take(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "event")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    names.sort();
    names.truncate(MAX_PER_POLL);
    let mut taken = 0;
    for path in names {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed = dialgate_signed::store::read_bounded(&path, MAX_REPORT)
            .map_err(|e| e.to_string())
            .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8".into()))
            .and_then(|t| parse(&t));
        match parsed {
            Ok(r) => record(&r, &file),
            Err(why) => {
                warn!(target: "audit", decision = "firmware", reason = "malformed-report", report = %file, error = %why, "a firmware report that does not parse: removed")
            }
        }
        if let Err(e) = std::fs::remove_file(&path) {
            error!(target: "audit", decision = "firmware", reason = "io", report = %file, error = %e, "a firmware report could not be removed: it will be recorded again");
            break;
        }
        taken += 1;
    }
    taken
}

/// Takes `dir`'s reports every [`REPORT_POLL`], for as long as the gateway
/// runs.
pub async fn watch(dir: PathBuf) {
    loop {
        take(&dir);
        tokio::time::sleep(REPORT_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse_strictly() {
        let r = parse("event=committed\nversion=2\nslot=b\nfloor=2\n").unwrap();
        assert_eq!(r.event, "committed");
        assert_eq!(field(&r, "floor"), "2");
        let r = parse("event=refused\nreason=signature: another key\n").unwrap();
        assert_eq!(field(&r, "reason"), "signature: another key");
        for bad in [
            "",
            "version=2\nevent=armed\n",
            "event=exploded\n",
            "event=armed\nversion=1\nversion=2\n",
            "event=armed\ncolour=red\n",
            "event=armed\nversion\n",
            "event=armed\nreason=a\u{1b}[2J\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("event=refused\nreason={}\n", "x".repeat(301));
        assert!(parse(&long).is_err());
    }
}
