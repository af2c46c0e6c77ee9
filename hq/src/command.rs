//! `dialgatectl command`: signed commands for one kit (wipe, drop calls,
//! reboot), written where `dialgatectl publish` takes them:
//! `HQ/kits/<kit>/command.signed`, the kit's `commands` target.
//!
//! Each command gets the kit's next sequence number (kept in
//! `HQ/kits/<kit>/command.seq`), an expiry (`--valid`, default 15
//! minutes: a command that reaches a kit late is not done) and HQ's policy
//! signature in the command envelope (a policy signature never verifies as
//! a command). Only the newest command is published; a kit does a command
//! at most once (`docs/repository.md`, "Signed commands").

use std::fs;
use std::path::{Path, PathBuf};

use dialgate_signed::command::{Action, Command};
use dialgate_signed::repo::is_kit_id;

use crate::hq::{read_signing_key, Hq, HqError};

/// Where `dialgatectl publish` takes a kit's command.
pub const COMMAND_FILE: &str = "command.signed";
/// Default validity of a command: 15 minutes.
pub const COMMAND_VALID_SECS: u64 = 15 * 60;

/// `dialgatectl command`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct CommandArgs {
    /// What the kit is to do: wipe, drop-calls or reboot.
    #[arg(value_parser = parse_action)]
    pub action: Action,
    /// The HQ folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// The kit.
    #[arg(long)]
    pub kit: String,
    /// Seconds the command stays valid.
    #[arg(long, default_value_t = COMMAND_VALID_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub valid: u64,
    /// The sequence number (default: the kit's next). A number at or below
    /// one already issued makes a command the kit refuses (for drills).
    #[arg(long)]
    pub seq: Option<u64>,
    /// Where to write it (default: HQ/kits/KIT/command.signed).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The signing key (PKCS#8 DER; default: HQ/policy-key.pk8).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

fn parse_action(s: &str) -> Result<Action, String> {
    Action::parse(s).ok_or_else(|| format!("{s:?}: expected wipe, drop-calls or reboot"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HqError + '_ {
    move |source| HqError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Signs `args`'s command at `now`; returns where it was written and what.
pub fn issue(args: &CommandArgs, now: u64) -> Result<(PathBuf, Command), HqError> {
    let hq = Hq::new(&args.dir);
    if !is_kit_id(&args.kit) {
        return Err(HqError::Invalid {
            path: args.kit.clone(),
            reason: "not a kit id".into(),
        });
    }
    let kit_dir = hq.dir().join("kits").join(&args.kit);
    fs::create_dir_all(&kit_dir).map_err(io(&kit_dir))?;
    let seq_file = kit_dir.join("command.seq");
    let last = match fs::read_to_string(&seq_file) {
        Ok(s) => s.trim().parse::<u64>().map_err(|_| HqError::Invalid {
            path: seq_file.display().to_string(),
            reason: "not a sequence number".into(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(&seq_file)(e)),
    };
    let seq = args.seq.unwrap_or(last + 1);
    let key = match &args.key {
        Some(k) => read_signing_key(k)?,
        None => hq.policy_signing_key()?,
    };
    let command = Command {
        kit: args.kit.clone(),
        seq,
        action: args.action,
        issued_at: now,
        expires_at: now.saturating_add(args.valid),
    };
    let signed = command.sign(&key).map_err(|e| HqError::Invalid {
        path: args.kit.clone(),
        reason: e.to_string(),
    })?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| kit_dir.join(COMMAND_FILE));
    // The number first: a crash between the two never reuses it.
    dialgate_signed::store::write_atomically(&seq_file, format!("{}\n", seq.max(last)).as_bytes())
        .map_err(io(&seq_file))?;
    dialgate_signed::store::write_atomically(&out, &signed).map_err(io(&out))?;
    Ok((out, command))
}

/// `dialgatectl command`: issues the command and says what was written.
pub fn run(args: &CommandArgs, now: u64) -> Result<(), String> {
    let (out, c) = issue(args, now).map_err(|e| e.to_string())?;
    println!(
        "command {} ({}) for kit {} written to {}, valid until {}; publish to send it",
        c.seq,
        c.action,
        c.kit,
        out.display(),
        c.expires_at
    );
    Ok(())
}
