//! The daemon's side of signed policy bundles: reading the bundle file and
//! the anti-rollback state, deciding with [`crate::policy`], persisting the
//! state *before* anything is applied, and telling the shell what changed.
//!
//! Every refusal is a log line with the reason; the last good policy stays
//! in force. With no policy at all (a kit provisioned without one, or whose
//! bundle was refused at start) the registry is empty: every phone fails
//! the TLS handshake and the log says why.

use std::collections::HashMap;
use std::path::Path;

use aws_lc_rs::digest;
use tracing::{error, info, warn};

use crate::config::{AliasGrants, DirectoryEntry, PolicyConfig, TrunkConfig};
use dialgate_signed::store;

use crate::policy::{
    verify_and_decide, verify_reload, Freshness, PolicyError, State, Verified, MAX_BUNDLE_BYTES,
};
use crate::tls::Registry;

/// Why the policy machinery cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyStartError {
    /// The anti-rollback state exists but cannot be read or decoded.
    #[error("{path}: {reason}")]
    State {
        /// The state file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A policy to put in force: what the TLS verifier and the B2BUA use.
#[derive(Debug)]
pub(super) struct Apply {
    pub registry: Registry,
    pub grants: AliasGrants,
    pub directory: HashMap<String, DirectoryEntry>,
    /// Every trunk in force: the kit's, with the policy's settings
    /// applied, and those the policy adds (names not in the
    /// configuration), keyed by name.
    pub trunks: HashMap<String, TrunkConfig>,
    pub require_post_quantum: bool,
    pub version: u64,
}

/// Whether new calls are accepted, from the policy in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gate {
    Open,
    /// Refuse new calls with 503 and this reason.
    Closed(&'static str),
}

/// The kit's policy: configuration, durable state, the policy in force.
#[derive(Debug)]
pub(super) struct PolicyWatch {
    cfg: PolicyConfig,
    /// The configuration's trunks (the policy overrides their settings and
    /// may add others).
    trunks: HashMap<String, TrunkConfig>,
    state: State,
    current: Option<Verified>,
    /// Digest of the bundle file's bytes last examined, so an unchanged
    /// file is not decided (and refused as a "rollback") again.
    examined: Option<[u8; 32]>,
    /// Whether "no bundle" was already logged.
    told_missing: bool,
}

/// The kit's time (never below the time floor, `crate::clock`).
fn now_unix() -> u64 {
    crate::clock::now()
}

impl PolicyWatch {
    /// Reads the state (absent: nothing applied yet; damaged: refuse to
    /// start) and the bundle in place, which may be the one last applied.
    pub(super) fn open(
        cfg: PolicyConfig,
        trunks: HashMap<String, TrunkConfig>,
    ) -> Result<(PolicyWatch, Option<Apply>), PolicyStartError> {
        let state_err = |reason: String| PolicyStartError::State {
            path: cfg.state.display().to_string(),
            reason,
        };
        let state = match store::read_bounded(&cfg.state, 4096) {
            Ok(bytes) => State::decode(&bytes).map_err(|e| state_err(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                info!(state = %cfg.state.display(), "no policy applied yet on this kit: the first valid bundle is accepted");
                State::new()
            }
            Err(e) => return Err(state_err(e.to_string())),
        };
        let mut watch = PolicyWatch {
            cfg,
            trunks,
            state,
            current: None,
            examined: None,
            told_missing: false,
        };
        let applied = watch.examine(now_unix(), true);
        Ok((watch, applied))
    }

    /// Looks at the bundle file again (a poll tick or SIGHUP). Returns the
    /// policy to put in force if a new one was accepted and recorded.
    /// `force` re-decides a file already examined (SIGHUP).
    pub(super) fn poll(&mut self, force: bool) -> Option<Apply> {
        if force {
            self.examined = None;
        }
        self.examine(now_unix(), false)
    }

    /// Where the last applied bundle is kept (next to the state), so that
    /// a kit restarted with a refused bundle in place keeps its last good
    /// policy; the appliance's firewall follows it too
    /// ([`PolicyConfig::applied_copy`]).
    fn applied_copy(&self) -> std::path::PathBuf {
        self.cfg.applied_copy()
    }

    fn examine(&mut self, now: u64, at_start: bool) -> Option<Apply> {
        let applied = self.examine_file(now, at_start);
        if applied.is_some() || !at_start || self.current.is_some() {
            return applied;
        }
        // At start, the bundle in place was refused or absent: the copy of
        // the last applied one, if it is exactly what the state recorded.
        let copy = self.applied_copy();
        let bytes = store::read_bounded(&copy, MAX_BUNDLE_BYTES).ok()?;
        match verify_reload(&bytes, &self.cfg.trust, &self.state, now)
            .and_then(|v| self.check_trunks(v))
        {
            Ok((v, trunks)) if v.is_reload() => {
                warn!(copy = %copy.display(), version = v.version(), "the last applied policy stays in force (kept copy)");
                self.put_in_force(v, trunks, &bytes)
            }
            Ok(_) => None,
            Err(e) => {
                warn!(copy = %copy.display(), reason = %e, "the kept copy of the last applied policy is not usable");
                None
            }
        }
    }

    fn examine_file(&mut self, now: u64, at_start: bool) -> Option<Apply> {
        let path = self.cfg.bundle.clone();
        // Read at every poll (a bundle is small): a file rewritten in
        // place with the same size and times is still noticed; the digest
        // keeps an unchanged one from being decided again.
        let bytes = match store::read_bounded(&path, MAX_BUNDLE_BYTES) {
            Ok(b) => b,
            Err(e) => {
                if !self.told_missing {
                    self.told_missing = true;
                    if self.current.is_none() {
                        error!(bundle = %path.display(), error = %e, "no policy bundle: every call is refused until a valid one is placed there");
                    } else {
                        warn!(bundle = %path.display(), error = %e, "policy bundle unreadable; the policy in force stays");
                    }
                }
                return None;
            }
        };
        self.told_missing = false;
        let mut d = [0u8; 32];
        d.copy_from_slice(digest::digest(&digest::SHA256, &bytes).as_ref());
        if self.examined == Some(d) {
            return None;
        }
        self.examined = Some(d);
        let decided = if at_start {
            verify_reload(&bytes, &self.cfg.trust, &self.state, now)
        } else {
            verify_and_decide(&bytes, &self.cfg.trust, &self.state, now)
        };
        match decided.and_then(|v| self.check_trunks(v)) {
            Ok((v, trunks)) => self.put_in_force(v, trunks, &bytes),
            Err(e) => {
                if self.current.is_none() {
                    error!(target: "audit", decision = "refused", bundle = %path.display(), reason = %e, "policy bundle refused; no policy in force: every call is refused");
                } else {
                    warn!(target: "audit", decision = "refused", bundle = %path.display(), reason = %e, in_force = self.state.last_applied_version(), "policy bundle refused; the last good policy stays in force");
                }
                None
            }
        }
    }

    /// Records (durably, first) and returns a verified policy to apply.
    fn put_in_force(
        &mut self,
        verified: Verified,
        trunks: HashMap<String, TrunkConfig>,
        bytes: &[u8],
    ) -> Option<Apply> {
        if !verified.is_reload() {
            // Durable before applied: a power cut after this point cannot
            // bring back an older bundle.
            let mut next = self.state;
            next.record(&verified);
            if let Err(e) = store::write_atomically(&self.cfg.state, &next.encode()) {
                error!(state = %self.cfg.state.display(), error = %e, version = verified.version(), "cannot record the policy version durably: bundle NOT applied");
                // Try again at the next poll.
                self.examined = None;
                return None;
            }
            self.state = next;
            if let Err(e) = store::write_atomically(&self.applied_copy(), bytes) {
                warn!(copy = %self.applied_copy().display(), error = %e, "cannot keep a copy of the applied policy (it still applies)");
            }
        }
        let body = verified.body();
        let (registry, grants) = verified.registry_and_grants();
        let unattested: Vec<&str> = body
            .tokens
            .iter()
            .filter(|t| t.unattested && !t.revoked)
            .map(|t| t.name.as_str())
            .collect();
        info!(
            target: "audit",
            decision = "applied",
            version = body.version,
            signer = %verified.signer(),
            tokens = registry.active_names().len(),
            revoked = body.tokens.iter().filter(|t| t.revoked).count(),
            unattested = ?unattested,
            directory = body.directory.len(),
            trunk_settings = body.trunks.len(),
            expires_at = body.expires_at,
            reload = verified.is_reload(),
            "policy applied"
        );
        let added: Vec<&str> = trunks
            .keys()
            .filter(|n| !self.trunks.contains_key(*n))
            .map(String::as_str)
            .collect();
        if !added.is_empty() {
            info!(target: "audit", version = body.version, added = ?added, "policy adds trunks");
        }
        let apply = Apply {
            registry,
            grants,
            directory: verified.directory(),
            trunks,
            require_post_quantum: body.switches.require_post_quantum,
            version: body.version,
        };
        // Its issue time is signed by HQ: a time the network cannot move.
        crate::clock::observe_signed(body.issued_at, "policy");
        self.current = Some(verified);
        Some(apply)
    }

    /// The kit's trunks with the policy's settings applied, and the trunks
    /// it adds ([`Verified::trunks_in_force`], the very function the
    /// appliance's firewall uses). A directory entry naming a trunk
    /// neither has, an added trunk on a kit without
    /// `policy.trunk_media_address`, or a setting the kit cannot use,
    /// refuses the whole bundle (before the state records it).
    fn check_trunks(
        &self,
        v: Verified,
    ) -> Result<(Verified, HashMap<String, TrunkConfig>), PolicyError> {
        let trunks = v.trunks_in_force(&self.trunks, self.cfg.trunk_media_address)?;
        Ok((v, trunks))
    }

    /// Whether new calls are accepted now.
    pub(super) fn gate(&self) -> Gate {
        match &self.current {
            None => Gate::Closed("no valid policy on this kit"),
            Some(v) => match v.freshness(now_unix()) {
                Freshness::Valid | Freshness::InGrace { .. } => Gate::Open,
                _ => Gate::Closed("policy expired; the kit needs a fresh policy bundle"),
            },
        }
    }

    /// For the log: past expiry but inside the grace period.
    pub(super) fn in_grace(&self) -> Option<u64> {
        match self.current.as_ref()?.freshness(now_unix()) {
            Freshness::InGrace { refuse_from } => Some(refuse_from),
            _ => None,
        }
    }

    /// The bundle path (for log lines).
    pub(super) fn bundle_path(&self) -> &Path {
        &self.cfg.bundle
    }
}
