//! The tasks that put new admission data in force: signed policy bundles
//! (or, on lab kits, an unsigned registry file), and the gate that opens
//! and closes new calls as the policy in force is renewed or expires.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::policy::{Gate, PolicyWatch};
use super::Input;
use crate::files::load_registry;
use dialgate_proto::config::ReadFile;

/// How often the registry file is checked for a new version.
pub const REGISTRY_POLL: Duration = Duration::from_secs(1);

/// How often the policy bundle file is checked for a new version (and the
/// policy in force for expiry). SIGHUP checks at once.
pub const POLICY_POLL: Duration = Duration::from_millis(500);

/// Token names admitted before and not after (for the log; the core ends
/// calls and closes connections by key).
fn lost_admission(
    shared: &crate::tls::SharedRegistry,
    after: &crate::tls::Registry,
) -> Vec<String> {
    let before = match shared.read() {
        Ok(r) => r.active_names(),
        Err(_) => return Vec::new(),
    };
    before.difference(&after.active_names()).cloned().collect()
}

/// Applies new signed policy bundles within [`POLICY_POLL`] (or at once on
/// SIGHUP), and opens or closes admission of new calls as the policy in
/// force expires or is renewed.
pub(super) async fn watch_policy(
    mut watch: PolicyWatch,
    mut hangup: tokio::signal::unix::Signal,
    shared: crate::tls::SharedRegistry,
    mut gate: Gate,
    input: mpsc::Sender<Input>,
) {
    let mut grace_logged: Option<std::time::Instant> = None;
    loop {
        let forced = tokio::select! {
            () = tokio::time::sleep(POLICY_POLL) => false,
            s = hangup.recv() => s.is_some(),
        };
        if forced {
            info!(bundle = %watch.bundle_path().display(), "SIGHUP: reading the policy bundle");
        }
        if let Some(mut a) = watch.poll(forced) {
            // The post-quantum requirement travels with the registry: the
            // admission after each handshake applies both at once.
            a.registry.set_require_post_quantum(a.require_post_quantum);
            let revoked = lost_admission(&shared, &a.registry);
            if let Ok(mut r) = shared.write() {
                *r = a.registry.clone();
            }
            if !revoked.is_empty() {
                warn!(version = a.version, revoked = ?revoked, "policy revokes tokens: ending their calls and connections");
            }
            let msg = Input::Registry {
                registry: a.registry,
                grants: a.grants,
                directory: Some(a.directory),
                trunks: Some(a.trunks),
            };
            if input.send(msg).await.is_err() {
                return;
            }
        }
        let now_gate = watch.gate();
        if now_gate != gate {
            match now_gate {
                Gate::Open => info!("new calls accepted: a valid policy is in force"),
                Gate::Closed(reason) => {
                    error!(
                        reason,
                        "new calls refused with 503 until a fresh policy bundle arrives"
                    )
                }
            }
            gate = now_gate;
            if input.send(Input::Gate(gate)).await.is_err() {
                return;
            }
        }
        if let Some(refuse_from) = watch.in_grace() {
            if grace_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(600)) {
                warn!(refuse_from, "policy expired, in its grace period: new calls will be refused from then unless a fresh bundle arrives");
                grace_logged = Some(std::time::Instant::now());
            }
        }
    }
}

/// Applies a changed registry file within [`REGISTRY_POLL`]: the TLS
/// verifier sees it at the next handshake, and tokens no longer admitted
/// lose their live calls and connections. A file that does not parse is
/// refused with a log line and the last good registry stays in force.
pub(super) async fn watch_registry(
    path: std::path::PathBuf,
    mut hangup: tokio::signal::unix::Signal,
    shared: crate::tls::SharedRegistry,
    input: mpsc::Sender<Input>,
) {
    // The file's digest, read at every poll (a registry is small): a file
    // rewritten in place with the same size and times is still noticed.
    let digest = |p: &Path| {
        crate::files::Files
            .read(p)
            .ok()
            .map(|b| dialgate_signed::sha256(&b))
    };
    let mut last = digest(&path);
    loop {
        let forced = tokio::select! {
            () = tokio::time::sleep(REGISTRY_POLL) => false,
            s = hangup.recv() => s.is_some(),
        };
        let now = digest(&path);
        if now == last && !forced {
            continue;
        }
        last = now;
        match load_registry(&path) {
            Ok((registry, grants)) => {
                let before = match shared.read() {
                    Ok(r) => r.active_names(),
                    Err(_) => continue,
                };
                let after = registry.active_names();
                let revoked: Vec<String> = before.difference(&after).cloned().collect();
                if let Ok(mut r) = shared.write() {
                    *r = registry.clone();
                }
                info!(tokens = after.len(), revoked = ?revoked, "token registry applied");
                if input
                    .send(Input::Registry {
                        registry,
                        grants,
                        directory: None,
                        trunks: None,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, "new token registry refused; the last good one stays in force")
            }
        }
    }
}
