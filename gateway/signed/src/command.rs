//! Signed commands from HQ: wipe, drop calls, reboot. Each is bound to one
//! kit, a sequence number and an expiry, travels in the [`COMMAND`]
//! envelope (so no policy, manifest or repository document verifies as
//! one) and reaches the kit as the `commands` target of its repository.
//!
//! A kit executes a command at most once: [`verify`] accepts only a
//! sequence number above the last one done (the [`Floor`] of purpose
//! [`COMMAND`]), and the shell persists the new floor *before* acting, so
//! a power cut during a wipe or a reboot never repeats it, and a replayed,
//! out-of-order, expired or foreign command is refused with its reason.
//!
//! The body, one spelling (re-encoded exactly or refused):
//!
//! ```text
//! kit demo-kit
//! seq 3
//! action drop-calls
//! issued-at 1767225600
//! expires-at 1767226500
//! ```
//!
//! ```
//! use dialgate_signed::command::{verify, Action, Command};
//! use dialgate_signed::{Floor, SigningKey, COMMAND};
//!
//! let key = SigningKey::generate()?;
//! let cmd = Command { kit: "kit-1".into(), seq: 1, action: Action::DropCalls, issued_at: 100, expires_at: 200 };
//! let signed = cmd.sign(&key)?;
//! let done = Floor::new(&COMMAND);
//! let v = verify(&signed, key.public_key(), "kit-1", &done, 150).unwrap();
//! assert_eq!(v.command, cmd);
//! assert!(verify(&signed, key.public_key(), "kit-2", &done, 150).is_err());
//! # Ok::<(), dialgate_signed::SignedError>(())
//! ```

use std::fmt;

use crate::{open, seal, Floor, PublicKey, SignedError, SigningKey, COMMAND};

/// The gateway's exit status after a verified wipe command (its files
/// wiped, the trail shipped): the appliance's PID 1 then wipes the data
/// partition and powers off, as for the panic button.
pub const EXIT_WIPE: u8 = 70;
/// The gateway's exit status after a verified reboot command: PID 1
/// restarts the appliance.
pub const EXIT_REBOOT: u8 = 71;

/// What HQ tells the kit to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// What the panic button does: keys and configuration destroyed, the
    /// kit unusable until re-provisioned.
    Wipe,
    /// End every call now (connections stay, new calls are admitted).
    DropCalls,
    /// Restart the appliance.
    Reboot,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 3] = [Action::Wipe, Action::DropCalls, Action::Reboot];

    /// Its name in documents, audit records and `dialgatectl command`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Wipe => "wipe",
            Action::DropCalls => "drop-calls",
            Action::Reboot => "reboot",
        }
    }

    /// The action of a name.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The kit it is for.
    pub kit: String,
    /// Its sequence number (from 1; each a kit does must be above the last).
    pub seq: u64,
    /// What to do.
    pub action: Action,
    /// When HQ signed it (unix seconds).
    pub issued_at: u64,
    /// After this (unix seconds, the kit's time) it is refused.
    pub expires_at: u64,
}

/// Why a kit refused a command. [`CommandError::reason`] names each for
/// the audit trail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The envelope: another key, tampered, truncated, another purpose.
    #[error("command refused: {0}")]
    Signature(#[from] SignedError),
    /// Signed, but not a command body.
    #[error("command refused: malformed body ({0})")]
    Malformed(&'static str),
    /// For another kit.
    #[error("command {seq} is for kit {kit:?}, this kit is {ours:?}: refused")]
    WrongKit {
        /// Its sequence number.
        seq: u64,
        /// The kit it names.
        kit: String,
        /// This kit.
        ours: String,
    },
    /// The sequence number of the last command done: a replay.
    #[error("command {seq} was already done: replay refused")]
    Replayed {
        /// Its sequence number.
        seq: u64,
    },
    /// The command last done, fetched again (after a restart): nothing to
    /// do, nothing to report.
    #[error("command {seq} is the one last done")]
    AlreadyDone {
        /// Its sequence number.
        seq: u64,
    },
    /// Below the last command done.
    #[error("command {seq} is older than command {done} already done: refused (out of order)")]
    OutOfOrder {
        /// Its sequence number.
        seq: u64,
        /// The last done.
        done: u64,
    },
    /// Expired at the kit's time.
    #[error("command {seq} ({action}) expired at {expires_at}, the kit's time is {now}: refused")]
    Expired {
        /// Its sequence number.
        seq: u64,
        /// What it asked.
        action: Action,
        /// Its expiry.
        expires_at: u64,
        /// The kit's time.
        now: u64,
    },
}

impl CommandError {
    /// A short name for audit records and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CommandError::Signature(SignedError::UnknownSigner { .. }) => "wrong-key",
            CommandError::Signature(_) => "bad-signature",
            CommandError::Malformed(_) => "malformed",
            CommandError::WrongKit { .. } => "wrong-kit",
            CommandError::Replayed { .. } => "replayed",
            CommandError::AlreadyDone { .. } => "already-done",
            CommandError::OutOfOrder { .. } => "out-of-order",
            CommandError::Expired { .. } => "expired",
        }
    }
}

/// A command that verified: do it after persisting [`Verified::floor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The command.
    pub command: Command,
    /// The anti-replay floor recording it as done: persist it first.
    pub floor: Floor,
}

impl Command {
    /// The body, in its one spelling.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "kit {}\nseq {}\naction {}\nissued-at {}\nexpires-at {}\n",
            self.kit, self.seq, self.action, self.issued_at, self.expires_at
        )
        .into_bytes()
    }

    /// Reads [`Command::encode`]'s output; anything else is refused.
    pub fn decode(body: &[u8]) -> Result<Command, CommandError> {
        let text = std::str::from_utf8(body).map_err(|_| CommandError::Malformed("not UTF-8"))?;
        let mut lines = text.lines();
        let mut field = |name: &'static str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or(CommandError::Malformed(name))
        };
        let number = |v: &str, name| v.parse::<u64>().map_err(|_| CommandError::Malformed(name));
        let kit = field("kit")?.to_string();
        let seq = number(field("seq")?, "seq")?;
        let action = Action::parse(field("action")?).ok_or(CommandError::Malformed("action"))?;
        let issued_at = number(field("issued-at")?, "issued-at")?;
        let expires_at = number(field("expires-at")?, "expires-at")?;
        let cmd = Command {
            kit,
            seq,
            action,
            issued_at,
            expires_at,
        };
        if cmd.seq == 0 || !crate::repo::is_kit_id(&cmd.kit) {
            return Err(CommandError::Malformed("seq or kit"));
        }
        if cmd.expires_at <= cmd.issued_at {
            return Err(CommandError::Malformed("expires-at not after issued-at"));
        }
        if cmd.encode() != body {
            return Err(CommandError::Malformed("not in its one spelling"));
        }
        Ok(cmd)
    }

    /// Signs the command for the kit (HQ's command key).
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, SignedError> {
        seal(&COMMAND, &self.encode(), key)
    }
}

/// Verifies a command for kit `ours`, against the last one `done` and the
/// kit's time `now` (never an unauthenticated clock: the time floor's).
pub fn verify(
    bytes: &[u8],
    pinned: &PublicKey,
    ours: &str,
    done: &Floor,
    now: u64,
) -> Result<Verified, CommandError> {
    let opened = open(&COMMAND, bytes, pinned)?;
    let command = Command::decode(opened.bytes)?;
    if command.kit != ours {
        return Err(CommandError::WrongKit {
            seq: command.seq,
            kit: command.kit,
            ours: ours.to_string(),
        });
    }
    if command.seq == done.version() && done.version() > 0 {
        if done.applied_body_is(command.seq, &opened.sha256) {
            return Err(CommandError::AlreadyDone { seq: command.seq });
        }
        return Err(CommandError::Replayed { seq: command.seq });
    }
    if command.seq < done.version() {
        return Err(CommandError::OutOfOrder {
            seq: command.seq,
            done: done.version(),
        });
    }
    if now >= command.expires_at {
        return Err(CommandError::Expired {
            seq: command.seq,
            action: command.action,
            expires_at: command.expires_at,
            now,
        });
    }
    let mut floor = *done;
    floor.record(command.seq, opened.sha256);
    Ok(Verified { command, floor })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::POLICY;

    fn cmd(kit: &str, seq: u64, action: Action) -> Command {
        Command {
            kit: kit.into(),
            seq,
            action,
            issued_at: 1_000,
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_command_is_done_once_in_order_before_it_expires_and_only_by_its_kit() {
        let key = SigningKey::generate().unwrap();
        let pk = key.public_key();
        let mut done = Floor::new(&COMMAND);
        let first = cmd("kit-1", 1, Action::DropCalls).sign(&key).unwrap();
        let v = verify(&first, pk, "kit-1", &done, 1_500).unwrap();
        assert_eq!(v.floor.version(), 1);
        done = v.floor;
        // Fetched again: already done; the same number with another body
        // (HQ's key reused a number): a replay. Then older, another
        // kit's, expired.
        let e = verify(&first, pk, "kit-1", &done, 1_500).unwrap_err();
        assert_eq!(e.reason(), "already-done", "{e}");
        let other_body = Command {
            expires_at: 1_900,
            ..cmd("kit-1", 1, Action::DropCalls)
        };
        let e = verify(&other_body.sign(&key).unwrap(), pk, "kit-1", &done, 1_500).unwrap_err();
        assert_eq!(e.reason(), "replayed", "{e}");
        let third = cmd("kit-1", 3, Action::Reboot).sign(&key).unwrap();
        done = verify(&third, pk, "kit-1", &done, 1_500).unwrap().floor;
        let second = cmd("kit-1", 2, Action::Wipe).sign(&key).unwrap();
        let e = verify(&second, pk, "kit-1", &done, 1_500).unwrap_err();
        assert_eq!(e.reason(), "out-of-order", "{e}");
        let foreign = cmd("kit-2", 9, Action::Wipe).sign(&key).unwrap();
        let e = verify(&foreign, pk, "kit-1", &done, 1_500).unwrap_err();
        assert_eq!(e.reason(), "wrong-kit", "{e}");
        let late = cmd("kit-1", 4, Action::Wipe).sign(&key).unwrap();
        let e = verify(&late, pk, "kit-1", &done, 2_000).unwrap_err();
        assert_eq!(e.reason(), "expired", "{e}");
        // Gaps are fine: HQ may have superseded a command never fetched.
        assert!(verify(&late, pk, "kit-1", &done, 1_999).is_ok());
    }

    #[test]
    fn only_hqs_key_and_the_command_purpose_verify() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let done = Floor::new(&COMMAND);
        let c = cmd("kit-1", 1, Action::Wipe);
        let by_other = c.sign(&other).unwrap();
        let e = verify(&by_other, key.public_key(), "kit-1", &done, 1_500).unwrap_err();
        assert_eq!(e.reason(), "wrong-key", "{e}");
        // The same body sealed as a policy bundle is not a command.
        let as_policy = seal(&POLICY, &c.encode(), &key).unwrap();
        assert!(verify(&as_policy, key.public_key(), "kit-1", &done, 1_500).is_err());
        let mut tampered = c.sign(&key).unwrap();
        let at = tampered.iter().position(|b| *b == b'w').unwrap();
        tampered[at] = b'x';
        assert!(verify(&tampered, key.public_key(), "kit-1", &done, 1_500).is_err());
    }

    #[test]
    fn a_body_in_another_spelling_is_refused() {
        let good = String::from_utf8(cmd("kit-1", 7, Action::Reboot).encode()).unwrap();
        assert!(Command::decode(good.as_bytes()).is_ok());
        for bad in [
            String::new(),
            good.replace("seq 7", "seq 07"),
            good.replace("seq 7", "seq +7"),
            good.replace("seq 7", "seq 0"),
            good.replace("reboot", "shutdown"),
            good.replace("kit kit-1", "kit "),
            good.replace("kit kit-1", "kit ../x"),
            good.replace("expires-at 2000", "expires-at 1000"),
            good.replace("seq 7", "seq  7"),
            format!("{good}extra 1\n"),
            good.replace('\n', "\r\n"),
            good[..good.len() - 1].to_string(),
        ] {
            assert!(
                matches!(
                    Command::decode(bad.as_bytes()),
                    Err(CommandError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
