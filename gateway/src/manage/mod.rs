//! Polling the kit's signed repository at home (`[management]`,
//! `docs/repository.md`, "Polling"): the shell around
//! [`dialgate_signed::repo::Client`], which decides; this module only
//! moves bytes, time and files.
//!
//! Every poll, over mutual TLS (TLS 1.3, HQ's CA the only one trusted,
//! the device certificate), one request per connection:
//!
//! 1. `GET <root><kit>/timestamp.signed` with `If-None-Match` (the last
//!    verified timestamp's ETag): unchanged, the kept bytes are verified
//!    again at the kit's time, so an expired timestamp is noticed even
//!    when nothing changes.
//! 2. The snapshot it names, when the kit does not hold it.
//! 3. The policy target, when its SHA-256 is not that of the bundle at
//!    `[policy] bundle`: verified against the snapshot, the repository
//!    state persisted, then the bundle written atomically there, where
//!    the policy watcher verifies and applies it as any bundle (pinned
//!    policy key, version above the last applied, expiry; live calls of
//!    revoked tokens end).
//! 4. The commands target, when it changed (verified, at most once).
//! 5. The firmware target, when it is not the one last handed over:
//!    streamed to a file, checked against the snapshot, renamed to
//!    `firmware.bundle` beside the policy bundle for PID 1's firmware
//!    agent (which checks HQ's firmware signature before installing).
//!
//! The repository state is written (atomically) before anything is acted
//! on. Time is the system clock, never below the trusted time the state
//! holds. Every refusal and every change between reachable and not is an
//! audit record (`decision = "repository"`). Nothing here stops a call:
//! failing polls keep the policy in force and back off (doubling from the
//! interval to 60 s); successful ones come every interval ±10 %.

pub mod http;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dialgate_signed::command::{self, Command, CommandError};
use dialgate_signed::repo::{Client, RepoError, State, TargetName, TIMESTAMP, TIMESTAMP_FILE};
use dialgate_signed::store::{read_bounded, write_atomically};
use dialgate_signed::{Floor, PublicKey, COMMAND};
use rustls::ClientConfig;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::admission::{TrunkTls, TrunkTrust};
use crate::config::{ManagementConfig, PolicyConfig};
use crate::tls::{load_certs, load_key, trunk_client_config, TlsError};
use http::{FetchError, Fetched};

/// The longest wait between polls after failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Why polling could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// The device identity or HQ's CA could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The repository state could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The repository state does not decode, or the kit id is not one.
    #[error("{0}")]
    Repo(#[from] RepoError),
    /// The record of commands done does not decode.
    #[error("{path}: {source}")]
    CommandState {
        /// The file.
        path: String,
        /// What is wrong.
        source: dialgate_signed::SignedError,
    },
    /// `[management] server_name` is not a TLS server name.
    #[error("management.server_name: {0}")]
    ServerName(String),
}

/// Why one poll ended early.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    Refused(#[from] RepoError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What a poll did.
#[derive(Debug, PartialEq, Eq)]
enum Polled {
    /// The repository names what is in force.
    Current,
    /// A new policy bundle was written for the watcher.
    PolicyWritten { version: u64 },
}

/// `base` ±10 %, from the system's random source.
pub(crate) fn jittered(base: Duration) -> Duration {
    let mut b = [0u8; 4];
    let r = match aws_lc_rs::rand::fill(&mut b) {
        Ok(()) => u32::from_le_bytes(b),
        Err(_) => u32::MAX / 2,
    };
    // r / u32::MAX in [0, 1] -> factor in [0.9, 1.1].
    let factor = 0.9 + 0.2 * (f64::from(r) / f64::from(u32::MAX));
    base.mul_f64(factor)
}

/// The next wait after a failure.
pub(crate) fn backed_off(delay: Duration, interval: Duration) -> Duration {
    (delay * 2).clamp(interval, BACKOFF_MAX.max(interval))
}

struct Poller {
    cfg: ManagementConfig,
    bundle: PathBuf,
    policy_state: PathBuf,
    tls: Arc<ClientConfig>,
    server: http::Server,
    client: Client,
    /// The last verified timestamp and its ETag.
    last_timestamp: Option<(Vec<u8>, String)>,
    /// Commands: HQ's pinned key, the last one done (persisted at
    /// `command_state` before one is handed on), where verified ones go,
    /// and the digest of the commands file last examined (so a refused
    /// one is audited once, not every poll).
    policy_key: PublicKey,
    command_state: PathBuf,
    command_floor: Floor,
    commands: mpsc::Sender<Command>,
    commands_examined: Option<[u8; 32]>,
    /// The digest of a firmware target refused (not fetched again).
    firmware_refused: Option<[u8; 32]>,
    /// `firmware.fetched` (hex SHA-256 of the last bundle handed over),
    /// read on the first poll that names a firmware target.
    firmware_fetched: Option<String>,
}

/// Where the kit records the last command done: next to the policy state.
pub fn command_state_path(policy: &PolicyConfig) -> PathBuf {
    policy.state.with_file_name("command.state")
}

/// The last command done (0: none).
pub fn load_command_floor(path: &Path) -> Result<Floor, ManageError> {
    match read_bounded(path, 256) {
        Ok(bytes) => Floor::decode(&COMMAND, &bytes).map_err(|source| ManageError::CommandState {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Floor::new(&COMMAND)),
        Err(source) => Err(ManageError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The repository state; a kit that has none yet trusts no metadata older
/// than its time floor.
fn load_state(path: &Path, floor: u64) -> Result<State, ManageError> {
    match read_bounded(path, 1024) {
        Ok(bytes) => Ok(State::decode(&bytes)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::new(floor)),
        Err(source) => Err(ManageError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Starts polling `m`'s repository, writing policies to `policy.bundle`
/// and handing verified commands (recorded as done first) to `commands`.
/// Errors only at start (the device identity, the state); after that the
/// task runs until the runtime stops.
pub fn start(
    m: &ManagementConfig,
    policy: &PolicyConfig,
    commands: mpsc::Sender<Command>,
) -> Result<(), ManageError> {
    let cas = load_certs(&m.ca)?.into_iter().map(|c| c.to_vec()).collect();
    let tls = trunk_client_config(
        &TrunkTrust::Ca(cas),
        TrunkTls::Tls13,
        Some((load_certs(&m.certificate)?, load_key(&m.device_key)?)),
    )?;
    let state = load_state(&m.state, crate::clock::floor())?;
    let client = Client::new(&m.kit_id, m.keys.clone(), state)?;
    let poller = Poller {
        cfg: m.clone(),
        bundle: policy.bundle.clone(),
        policy_state: policy.state.clone(),
        tls,
        server: http::Server::named(m.addr, m.server_name.as_deref())
            .map_err(ManageError::ServerName)?,
        client,
        last_timestamp: None,
        policy_key: policy.trust.pinned_key.clone(),
        command_state: command_state_path(policy),
        command_floor: load_command_floor(&command_state_path(policy))?,
        commands,
        commands_examined: None,
        firmware_refused: None,
        firmware_fetched: None,
    };
    info!(
        repository = %format!("https://{}{}", m.addr, m.file_path("")),
        server_name = m.server_name.as_deref().unwrap_or("(its address)"),
        interval_ms = m.interval.as_millis() as u64,
        "polling the kit's repository"
    );
    if poller.command_floor.version() > 0 {
        crate::status::set_last_command(poller.command_floor.version());
    }
    tokio::spawn(poller.run());
    Ok(())
}

impl Poller {
    async fn run(mut self) {
        let interval = self.cfg.interval;
        let mut delay = interval;
        // None until the first poll: the first failure is an outage too.
        let mut reachable: Option<bool> = None;
        let mut uplink =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).ok();
        loop {
            match self.poll().await {
                Ok(polled) => {
                    crate::status::set_last_poll(crate::clock::now());
                    crate::health::management_reachable();
                    if reachable == Some(false) {
                        info!(target: "audit", decision = "repository", reason = "reachable", "HQ repository reachable again");
                    }
                    reachable = Some(true);
                    if let Polled::PolicyWritten { version } = polled {
                        info!(target: "audit", decision = "repository", reason = "policy-fetched", target_version = version, bundle = %self.bundle.display(), "new policy from the repository written for the policy watcher");
                    }
                    delay = interval;
                }
                Err(PollError::Fetch(e)) => {
                    if reachable != Some(false) {
                        warn!(target: "audit", decision = "repository", reason = "unreachable", error = %e, "HQ repository unreachable: the policy in force stays, polling goes on");
                    }
                    reachable = Some(false);
                    delay = backed_off(delay, interval);
                }
                Err(PollError::Refused(e)) => {
                    // Something answered: the refusal is the news.
                    if reachable == Some(false) {
                        info!(target: "audit", decision = "repository", reason = "reachable", "HQ repository reachable again");
                    }
                    reachable = Some(true);
                    warn!(target: "audit", decision = "repository", reason = e.reason(), error = %e, "repository file refused: the policy in force stays");
                    delay = backed_off(delay, interval);
                }
                Err(PollError::Io { what, source }) => {
                    error!(target: "audit", decision = "repository", reason = "io", what = %what, error = %source, "repository poll could not write its files: the policy in force stays");
                    delay = backed_off(delay, interval);
                }
            }
            // An uplink change (SIGUSR1 from PID 1's DHCP client: a lease
            // applied, an address changed) polls at once, without backoff.
            let wait = tokio::time::sleep(jittered(delay));
            match uplink.as_mut() {
                Some(u) => {
                    tokio::select! {
                        () = wait => {}
                        Some(()) = u.recv() => {
                            info!("uplink changed: polling the repository now");
                            delay = interval;
                        }
                    }
                }
                None => wait.await,
            }
        }
    }

    /// The identity headers: the kit and the policy version in force.
    fn identity(&self) -> Vec<(&'static str, String)> {
        let policy_version = read_bounded(&self.policy_state, 256)
            .ok()
            .and_then(|b| dialgate_proto::policy::State::decode(&b).ok())
            .map(|s| s.last_applied_version())
            .unwrap_or(0);
        vec![
            ("X-Dialgate-Kit", self.cfg.kit_id.clone()),
            ("X-Dialgate-Firmware", env!("CARGO_PKG_VERSION").to_string()),
            ("X-Dialgate-Policy-Version", policy_version.to_string()),
            (
                "X-Dialgate-Command-Done",
                self.command_floor.version().to_string(),
            ),
        ]
    }

    fn persist(&mut self) -> Result<(), PollError> {
        if self.client.state_changed() {
            if let Some(dir) = self.cfg.state.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            write_atomically(&self.cfg.state, &self.client.state().encode()).map_err(|source| {
                PollError::Io {
                    what: format!("writing {}", self.cfg.state.display()),
                    source,
                }
            })?;
        }
        Ok(())
    }

    async fn poll(&mut self) -> Result<Polled, PollError> {
        let headers = self.identity();
        let (server, tls) = (self.server.clone(), Arc::clone(&self.tls));
        let etag = self.last_timestamp.as_ref().map(|(_, e)| e.as_str());
        let path = self.cfg.file_path(TIMESTAMP_FILE);
        let max = TIMESTAMP.max_bytes as u64;
        let (bytes, etag) = match http::get(&tls, &server, &path, etag, &headers, max).await? {
            Fetched::Body { body, etag } => (body, etag),
            Fetched::NotModified => match self.last_timestamp.take() {
                Some((b, e)) => (b, Some(e)),
                None => return Err(FetchError::Protocol("304 to a request without an ETag").into()),
            },
        };
        let now = crate::clock::now().max(self.client.trusted_time());
        let verified = self.client.verify_timestamp(&bytes, now);
        self.persist()?;
        verified?;
        crate::clock::observe_signed(self.client.trusted_time(), "repository timestamp");
        self.last_timestamp = etag.map(|e| (bytes, e));

        if let Some((file, meta)) = self.client.snapshot_wanted() {
            let path = self.cfg.file_path(&file);
            let body = fetch_body(&tls, &server, &path, &headers, meta.length).await?;
            let verified = self.client.verify_snapshot(&body).map(|_| ());
            self.persist()?;
            verified?;
        }

        let policy = self.policy_step(&tls, &server, &headers).await?;
        let commands = self.commands_step(&tls, &server, &headers).await;
        let firmware = match commands {
            Ok(()) => self.firmware_step(&tls, &server, &headers).await,
            Err(e) => Err(e),
        };
        match firmware {
            Ok(()) => Ok(policy),
            Err(e) if policy == Polled::Current => Err(e),
            // The new policy is the news of this poll; the commands are
            // fetched again on the next.
            Err(e) => {
                warn!(target: "audit", decision = "repository", reason = "commands-not-fetched", error = %e, "the kit's commands could not be fetched this poll");
                Ok(policy)
            }
        }
    }

    async fn policy_step(
        &mut self,
        tls: &Arc<ClientConfig>,
        server: &http::Server,
        headers: &[(&'static str, String)],
    ) -> Result<Polled, PollError> {
        let Some((file, meta)) = self.client.target(TargetName::Policy) else {
            return Ok(Polled::Current);
        };
        let in_place = read_bounded(&self.bundle, meta.length as usize)
            .map(|b| dialgate_signed::sha256(&b))
            .ok();
        if in_place == Some(meta.sha256) {
            return Ok(Polled::Current);
        }
        let path = self.cfg.file_path(&file);
        let body = fetch_body(tls, server, &path, headers, meta.length).await?;
        let target = self.client.verify_target(TargetName::Policy, &body)?;
        let version = target.meta().version;
        // The repository state first, then the bundle.
        self.persist()?;
        write_atomically(&self.bundle, &body).map_err(|source| PollError::Io {
            what: format!("writing {}", self.bundle.display()),
            source,
        })?;
        Ok(Polled::PolicyWritten { version })
    }

    /// The `commands` target: verified by the repository (snapshot digest)
    /// and by HQ's signature, bound to this kit, above the last one done,
    /// unexpired at the kit's time; recorded as done, then handed on.
    async fn commands_step(
        &mut self,
        tls: &Arc<ClientConfig>,
        server: &http::Server,
        headers: &[(&'static str, String)],
    ) -> Result<(), PollError> {
        let Some((file, meta)) = self.client.target(TargetName::Commands) else {
            return Ok(());
        };
        if self.commands_examined == Some(meta.sha256) {
            return Ok(());
        }
        let path = self.cfg.file_path(&file);
        let body = fetch_body(tls, server, &path, headers, meta.length).await?;
        self.client.verify_target(TargetName::Commands, &body)?;
        self.persist()?;
        self.commands_examined = Some(meta.sha256);
        let now = crate::clock::now();
        let kit = self.cfg.kit_id.clone();
        match command::verify(&body, &self.policy_key, &kit, &self.command_floor, now) {
            Ok(v) => {
                // At most once: the record first, then the deed.
                write_atomically(&self.command_state, &v.floor.encode()).map_err(|source| {
                    PollError::Io {
                        what: format!("writing {}", self.command_state.display()),
                        source,
                    }
                })?;
                self.command_floor = v.floor;
                crate::status::set_last_command(v.floor.version());
                let c = v.command;
                warn!(target: "audit", decision = "command", reason = "accepted", seq = c.seq, action = %c.action, issued_at = c.issued_at, expires_at = c.expires_at, "HQ's signed command accepted: recorded as done, now carried out");
                if self.commands.send(c).await.is_err() {
                    error!(target: "audit", decision = "command", reason = "not-carried-out", "the command executor is gone");
                }
            }
            Err(CommandError::AlreadyDone { .. }) => {}
            Err(e) => {
                warn!(target: "audit", decision = "command", reason = e.reason(), error = %e, "HQ command refused");
            }
        }
        Ok(())
    }
}

impl Poller {
    /// The `firmware` target: streamed to `firmware.bundle.part` beside the
    /// policy bundle (never held in memory), checked against the
    /// snapshot's length and SHA-256, then renamed to `firmware.bundle`,
    /// where PID 1's firmware agent verifies HQ's firmware signature, the
    /// model and the floor and installs it (`board/src/update.rs`).
    /// Fetched once per published bundle: `firmware.fetched` records the
    /// SHA-256 of the last one handed over; one refused by its digest is
    /// not fetched again until the snapshot names another.
    async fn firmware_step(
        &mut self,
        tls: &Arc<ClientConfig>,
        server: &http::Server,
        headers: &[(&'static str, String)],
    ) -> Result<(), PollError> {
        let Some((file, meta)) = self.client.target(TargetName::Firmware) else {
            return Ok(());
        };
        let digest = dialgate_signed::hex(&meta.sha256);
        let record = self.bundle.with_file_name("firmware.fetched");
        if self.firmware_fetched.is_none() {
            // Once per process: the record of the last one handed over.
            self.firmware_fetched = Some(
                read_bounded(&record, 128)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default(),
            );
        }
        if self.firmware_fetched.as_deref() == Some(digest.as_str())
            || self.firmware_refused == Some(meta.sha256)
        {
            return Ok(());
        }
        let dest = self.bundle.with_file_name("firmware.bundle");
        let part = self.bundle.with_file_name("firmware.bundle.part");
        let io_error = |what: &Path| {
            let what = format!("writing {}", what.display());
            move |source| PollError::Io { what, source }
        };
        let _ = std::fs::remove_file(&part);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&part)
            .map_err(io_error(&part))?;
        let path = self.cfg.file_path(&file);
        let started = std::time::Instant::now();
        let fetched = http::get_to_file(tls, server, &path, headers, meta.length, &mut out)
            .await
            .map_err(PollError::from)
            .and_then(|(length, sha)| {
                self.client
                    .verify_target_digest(TargetName::Firmware, length, &sha)
                    .map_err(PollError::from)
                    .map(|_| length)
            });
        let length = match fetched {
            Ok(length) => length,
            Err(e) => {
                drop(out);
                let _ = std::fs::remove_file(&part);
                if matches!(e, PollError::Refused(_)) {
                    self.firmware_refused = Some(meta.sha256);
                }
                return Err(e);
            }
        };
        out.sync_all().map_err(io_error(&part))?;
        drop(out);
        self.persist()?;
        std::fs::rename(&part, &dest).map_err(io_error(&dest))?;
        if let Some(dir) = dest.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(dir))?;
        }
        write_atomically(&record, digest.as_bytes()).map_err(io_error(&record))?;
        self.firmware_fetched = Some(digest.clone());
        info!(target: "audit", decision = "firmware", reason = "fetched", target_version = meta.version, bytes = length, sha256 = %digest, took_ms = started.elapsed().as_millis() as u64, path = %dest.display(), "firmware bundle from the repository written for the firmware agent");
        Ok(())
    }
}

async fn fetch_body(
    tls: &Arc<ClientConfig>,
    server: &http::Server,
    path: &str,
    headers: &[(&str, String)],
    max: u64,
) -> Result<Vec<u8>, PollError> {
    match http::get(tls, server, path, None, headers, max).await? {
        Fetched::Body { body, .. } => Ok(body),
        Fetched::NotModified => Err(FetchError::Protocol("304 without a condition").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_and_backoff_stay_in_bounds() {
        let base = Duration::from_millis(1000);
        for _ in 0..200 {
            let j = jittered(base);
            assert!(j >= Duration::from_millis(900) && j <= Duration::from_millis(1100));
        }
        let mut d = base;
        for _ in 0..10 {
            d = backed_off(d, base);
        }
        assert_eq!(d, BACKOFF_MAX);
        let long = Duration::from_secs(120);
        assert_eq!(backed_off(long, long), long);
    }
}
