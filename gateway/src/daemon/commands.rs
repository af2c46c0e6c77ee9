//! Carrying out HQ's signed commands (`crate::manage` verifies them and
//! records each as done before it gets here, so none is done twice):
//!
//! - `drop-calls`: every call ends now (the core's `DropCalls`).
//! - `wipe`: what the panic button does, as far as the gateway can: the
//!   process stops (the audit trail drained home first), every key and
//!   certificate file the configuration names, the policy bundles and the
//!   configuration itself are overwritten with zeros, synced and removed;
//!   the kit cannot start again until re-provisioned. The exit status is
//!   [`EXIT_WIPE`]: the appliance's PID 1 then wipes the whole data
//!   partition and powers off.
//! - `reboot`: the process stops cleanly with [`EXIT_REBOOT`]; PID 1
//!   restarts the appliance (a demo kit just exits).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use dialgate_signed::command::{Action, Command, EXIT_REBOOT, EXIT_WIPE};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Input;
use crate::config::Config;

/// How the gateway process is to end, by HQ's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// Wipe these files, then exit with [`EXIT_WIPE`].
    Wipe(Vec<PathBuf>),
    /// Exit with [`EXIT_REBOOT`].
    Reboot,
}

impl Halt {
    /// The process's exit status.
    pub fn exit_status(&self) -> u8 {
        match self {
            Halt::Wipe(_) => EXIT_WIPE,
            Halt::Reboot => EXIT_REBOOT,
        }
    }
}

/// Every file a wipe destroys: the kit's secrets and what names them.
pub fn wipe_list(config: &Config, config_path: &Path) -> Vec<PathBuf> {
    let mut files = vec![config.phone.key.clone(), config.phone.certificate.clone()];
    if let Some(m) = &config.management {
        files.extend([m.device_key.clone(), m.certificate.clone(), m.state.clone()]);
    }
    if let Some(a) = &config.audit {
        files.push(a.key.clone());
        if let Some(s) = &a.siem {
            files.extend([s.device_key.clone(), s.certificate.clone()]);
        }
    }
    if let Some(b) = &config.bridge_listener {
        files.extend([b.key.clone(), b.certificate.clone()]);
    }
    for t in config.trunks.values() {
        if let Some((cert, key)) = &t.client_identity {
            files.extend([key.clone(), cert.clone()]);
        }
    }
    if let Some(p) = &config.policy {
        files.extend([p.bundle.clone(), p.applied_copy()]);
    }
    files.push(config_path.to_path_buf());
    files.sort();
    files.dedup();
    files
}

/// Overwrites each file with zeros, syncs and removes it; returns how
/// many were destroyed. Missing files are skipped; any other failure is
/// logged and the rest go on (a wipe never stops half-way by choice).
pub fn wipe_files(files: &[PathBuf]) -> usize {
    let mut done = 0;
    for f in files {
        let len = match std::fs::metadata(f) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                warn!(file = %f.display(), error = %e, "wipe: cannot read");
                continue;
            }
        };
        let overwritten = OpenOptions::new().write(true).open(f).and_then(|mut h| {
            let zeros = vec![0u8; 1 << 16];
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                h.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            h.sync_all()
        });
        if let Err(e) = overwritten {
            warn!(file = %f.display(), error = %e, "wipe: cannot overwrite");
        }
        match std::fs::remove_file(f) {
            Ok(()) => done += 1,
            Err(e) => warn!(file = %f.display(), error = %e, "wipe: cannot remove"),
        }
    }
    done
}

/// Carries out verified commands until the poller stops.
pub(super) async fn execute(
    mut commands: mpsc::Receiver<Command>,
    input: mpsc::Sender<Input>,
    halt: mpsc::Sender<Halt>,
    wipe: Vec<PathBuf>,
) {
    while let Some(c) = commands.recv().await {
        match c.action {
            Action::DropCalls => {
                let _ = input.send(Input::DropCalls).await;
                info!(target: "audit", decision = "command", reason = "done", seq = c.seq, action = %c.action, "HQ's command done");
            }
            Action::Wipe => {
                warn!(target: "audit", decision = "command", reason = "wiping", seq = c.seq, action = %c.action, files = wipe.len(), "HQ's wipe command: the gateway stops and its keys and configuration are destroyed");
                let _ = halt.send(Halt::Wipe(wipe.clone())).await;
            }
            Action::Reboot => {
                warn!(target: "audit", decision = "command", reason = "rebooting", seq = c.seq, action = %c.action, "HQ's reboot command: the gateway stops for a restart");
                let _ = halt.send(Halt::Reboot).await;
            }
        }
    }
}
