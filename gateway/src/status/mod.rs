//! The kit's status (`[status]`, `docs/status.md`): counted from the
//! audit events ([`crate::audit::AuditLayer`] hands each one to
//! [`observe`]), plus the values no event carries, set here by the parts
//! that know them ([`set_last_poll`], [`set_time_floor_age`],
//! [`set_last_command`], [`set_firmware`]); rendered by
//! [`dialgate_proto::metrics`] and pushed to a Prometheus Pushgateway at
//! home.
//!
//! Every interval (±10 %), over mutual TLS (TLS 1.3, HQ's CA the only one
//! trusted, the device certificate), one request per connection:
//! `PUT <root>metrics/job/dialgate/kit/<kit id>` with the status in the
//! Prometheus text format 0.0.4 (what a Pushgateway parses; the same
//! families render as OpenMetrics with [`render`]). A PUT replaces the
//! kit's group, so the Pushgateway holds the last status and, in
//! `push_time_seconds`, when it came: the kit's last check-in.
//!
//! Nothing here touches a call: the status sits behind a lock taken per
//! audit event and per push, for a few counter updates. A failing push
//! backs off (doubling from the interval to 60 s), is one audit record
//! per outage (`decision = "status"`, `reason = "unreachable"`, then
//! `"reachable"`), and pushing resumes by itself.

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use dialgate_proto::metrics::kit::KitStatus;
use dialgate_proto::metrics::{render as render_text, Dialect, MetricsError};
use rustls::ClientConfig;
use tracing::{info, warn};

use crate::admission::{TrunkTls, TrunkTrust};
use crate::config::StatusConfig;
use crate::manage::http::{self, FetchError};
use crate::manage::{backed_off, jittered};
use crate::tls::{load_certs, load_key, trunk_client_config, TlsError};

static STATUS: LazyLock<Mutex<KitStatus>> = LazyLock::new(|| Mutex::new(KitStatus::new()));

fn status() -> MutexGuard<'static, KitStatus> {
    // A panic elsewhere while holding it leaves counters, not invariants.
    STATUS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts one audit event (its MSGID and fields).
pub fn observe(decision: &str, fields: &[(String, String)]) {
    status().observe(decision, fields);
}

/// The last successful repository poll (unix seconds).
pub fn set_last_poll(at: u64) {
    status().set_last_poll(at);
}

/// Seconds since the last signed time was verified (`None`: not known;
/// the metric is then absent).
pub fn set_time_floor_age(age: Option<u64>, stale_after: u64) {
    let mut s = status();
    s.time_floor_age = age;
    s.time_stale_after = Some(stale_after);
}

/// The sequence number of the last signed command done.
pub fn set_last_command(sequence: u64) {
    status().last_command = Some(sequence);
}

/// The running firmware's version and boot slot.
pub fn set_firmware(version: &str, slot: &str) {
    status().firmware = Some((version.to_string(), slot.to_string()));
}

/// The firmware version this binary reports: `DIALGATE_FIRMWARE_VERSION`
/// at build time (the image's), else the crate's version.
pub const FIRMWARE_VERSION: &str = match option_env!("DIALGATE_FIRMWARE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// A copy of the status now.
pub fn snapshot() -> KitStatus {
    status().clone()
}

/// The status now, as text.
pub fn render(dialect: Dialect) -> Result<String, MetricsError> {
    let families = status().families();
    render_text(&families, dialect)
}

/// Why pushing could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The device identity or HQ's CA could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why one push failed.
#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("the Pushgateway answered HTTP status {0}")]
    Status(u16),
    #[error("rendering: {0}")]
    Render(#[from] MetricsError),
}

/// Starts pushing the status to `cfg`'s Pushgateway. The firmware is
/// [`FIRMWARE_VERSION`] in the slot named by the environment's
/// `DIALGATE_SLOT` (set by the image's PID 1), else `unknown`, unless
/// already set. Errors only at start (the device identity, HQ's CA).
pub fn start(cfg: &StatusConfig) -> Result<(), StatusError> {
    let cas = load_certs(&cfg.ca)?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    let tls = trunk_client_config(
        &TrunkTrust::Ca(cas),
        TrunkTls::Tls13,
        Some((load_certs(&cfg.certificate)?, load_key(&cfg.device_key)?)),
    )?;
    {
        let mut s = status();
        if s.firmware.is_none() {
            let slot = std::env::var("DIALGATE_SLOT")
                .ok()
                .filter(|v| !v.is_empty() && v.len() <= 16)
                .unwrap_or_else(|| "unknown".into());
            s.firmware = Some((FIRMWARE_VERSION.to_string(), slot));
        }
    }
    info!(
        pushgateway = %format!("https://{}{}", cfg.addr, cfg.push_path()),
        interval_ms = cfg.interval.as_millis() as u64,
        "pushing the kit's status"
    );
    tokio::spawn(run(cfg.clone(), tls));
    Ok(())
}

async fn push(cfg: &StatusConfig, tls: &Arc<ClientConfig>) -> Result<(), PushError> {
    let body = render(Dialect::Prometheus)?;
    let status = http::send(
        tls,
        &http::Server::ip(cfg.addr),
        "PUT",
        &cfg.push_path(),
        Dialect::Prometheus.content_type(),
        body.as_bytes(),
    )
    .await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(PushError::Status(status))
    }
}

async fn run(cfg: StatusConfig, tls: Arc<ClientConfig>) {
    let interval = cfg.interval;
    let mut delay = interval;
    // None until the first push: the first failure is an outage too.
    let mut reachable: Option<bool> = None;
    loop {
        match push(&cfg, &tls).await {
            Ok(()) => {
                if reachable == Some(false) {
                    info!(target: "audit", decision = "status", reason = "reachable", "Pushgateway reachable again: status pushed");
                }
                reachable = Some(true);
                delay = interval;
            }
            Err(e) => {
                if reachable != Some(false) {
                    warn!(target: "audit", decision = "status", reason = "unreachable", error = %e, "status not pushed: the Pushgateway is unreachable or refused it; calls go on, pushing goes on");
                }
                reachable = Some(false);
                delay = backed_off(delay, interval);
            }
        }
        tokio::time::sleep(jittered(delay)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_and_events_show_in_the_text() {
        observe(
            "refused",
            &[("reason".to_string(), "status-unit-test".to_string())],
        );
        set_time_floor_age(Some(42), 86_400);
        set_last_command(9);
        set_firmware("9.9.9", "b");
        let text = render(Dialect::OpenMetrics).unwrap();
        assert!(text.contains("dialgate_admission_refused_total{reason=\"status-unit-test\"} 1\n"));
        assert!(text.contains("dialgate_time_floor_age_seconds 42\n"));
        assert!(text.contains("dialgate_last_command_sequence 9\n"));
        assert!(text.contains("dialgate_firmware_info{version=\"9.9.9\",slot=\"b\"} 1\n"));
        assert!(text.ends_with("# EOF\n"));
        set_time_floor_age(None, 86_400);
        assert!(!render(Dialect::Prometheus)
            .unwrap()
            .contains("time_floor_age"));
        assert_eq!(snapshot().last_command, Some(9));
    }
}
