//! Admission of a call: an [`Admitted`] phone connection's INVITE becomes
//! an [`Authorized`] call, or a typed [`Refusal`].
//!
//! The checks, in order: the gate (an expired policy refuses new calls),
//! the connection's certificate still valid, the attempt rate per address
//! and per token, the caller's identity (From and P-Asserted-Identity
//! users are the token's name), the alias in the meeting directory, the
//! token's grant for it, its trunk, and the call limits.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::admission::Admitted;
use crate::config::{AliasGrants, DirectoryEntry, Limits};
use crate::sip::{Message, NameAddr, Uri};

use super::call::CallTable;
use super::refusal::Refusal;
use super::trunks::{TrunkId, TrunkTable};

/// Proof that a phone's INVITE passed the call admission checks: the
/// admitted connection, the directory entry and the trunk. Only
/// [`authorize`] constructs it; a call cannot be created without it.
#[derive(Debug)]
pub struct Authorized {
    admitted: Admitted,
    entry: DirectoryEntry,
    trunk: TrunkId,
}

impl Authorized {
    /// The token's name.
    pub fn token(&self) -> &str {
        self.admitted.token()
    }

    /// The connection's admission.
    pub fn admitted(&self) -> &Admitted {
        &self.admitted
    }

    /// The meeting alias.
    pub fn alias(&self) -> &str {
        &self.entry.alias
    }

    /// The directory entry the call was placed with.
    pub fn entry(&self) -> &DirectoryEntry {
        &self.entry
    }

    /// The trunk.
    pub fn trunk(&self) -> TrunkId {
        self.trunk
    }
}

/// What the admission checks consult.
pub(super) struct Checks<'a> {
    pub(super) directory: &'a HashMap<String, DirectoryEntry>,
    pub(super) grants: &'a AliasGrants,
    pub(super) trunks: &'a TrunkTable,
    pub(super) calls: &'a CallTable,
    pub(super) limits: Limits,
}

/// The identity, directory, grant, trunk and limit checks of an INVITE.
/// The only constructor of [`Authorized`].
pub(super) fn authorize(
    c: &Checks<'_>,
    admitted: &Admitted,
    msg: &Message,
) -> Result<Authorized, Refusal> {
    let token = admitted.token();
    let user_of = |n: &NameAddr| n.uri.as_sip().and_then(|u| u.user.clone());
    if user_of(msg.from()).as_deref() != Some(token)
        || msg
            .p_asserted_identity()
            .any(|p| user_of(p).as_deref() != Some(token))
    {
        return Err(Refusal::IDENTITY_MISMATCH);
    }
    let alias = msg
        .request_uri()
        .and_then(Uri::as_sip)
        .and_then(|u| u.user.clone())
        .ok_or(Refusal::NO_SUCH_MEETING)?;
    let entry = c.directory.get(&alias).ok_or(Refusal::NO_SUCH_MEETING)?;
    if !c.grants.get(token).is_some_and(|a| a.contains(&alias)) {
        return Err(Refusal::NOT_GRANTED);
    }
    let trunk = c.trunks.by_name(&entry.trunk).ok_or(Refusal::NO_TRUNK)?;
    let ip = admitted.peer().ip();
    let exempt = c.limits.loopback_exempt && ip.is_loopback();
    if c.calls.len() >= c.limits.max_calls as usize {
        return Err(Refusal::FULL);
    }
    if c.calls.token_calls(token) >= c.limits.calls_per_token {
        return Err(Refusal::TOKEN_BUSY);
    }
    if c.calls.address_calls(ip) >= c.limits.calls_per_address && !exempt {
        return Err(Refusal::ADDRESS_BUSY);
    }
    Ok(Authorized {
        admitted: admitted.clone(),
        entry: entry.clone(),
        trunk,
    })
}

/// Call attempts per source address and per token in a sliding minute.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    by_address: AttemptWindow<IpAddr>,
    by_token: AttemptWindow<String>,
}

impl Attempts {
    /// Counts an attempt; `false` if it is over a limit (loopback is
    /// exempt from the per-address one on demo kits).
    pub(super) fn allow(&mut self, now: Instant, limits: &Limits, a: &Admitted) -> bool {
        let ip = a.peer().ip();
        let by_address = (limits.loopback_exempt && ip.is_loopback())
            || self
                .by_address
                .allow(ip, now, limits.attempts_per_minute_per_address);
        by_address
            && self.by_token.allow(
                a.token().to_string(),
                now,
                limits.attempts_per_minute_per_token,
            )
    }
}

/// Most keys an attempt window remembers before it forgets idle ones.
const WINDOW_KEYS: usize = 4096;

/// Call attempts in the last minute, per key (address or token), bounded.
#[derive(Debug)]
struct AttemptWindow<K> {
    by_key: HashMap<K, VecDeque<Instant>>,
}

impl<K> Default for AttemptWindow<K> {
    fn default() -> Self {
        AttemptWindow {
            by_key: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> AttemptWindow<K> {
    /// Counts an attempt by `key` unless it already made `limit` in the
    /// last minute (then `false`, and nothing is counted).
    fn allow(&mut self, key: K, now: Instant, limit: u32) -> bool {
        let minute = Duration::from_secs(60);
        let window = self.by_key.entry(key).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= minute)
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return false;
        }
        window.push_back(now);
        if self.by_key.len() > WINDOW_KEYS {
            self.by_key
                .retain(|_, w| w.back().is_some_and(|t| now.duration_since(*t) < minute));
        }
        true
    }
}
