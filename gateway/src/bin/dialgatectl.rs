//! `dialgatectl`, the kit officer's tool. It runs at home, never on the
//! appliance.
//!
//! Today it manages a token registry file (the kit applies a changed file
//! within a second; see the README's "revoke a lost token"):
//!
//! ```text
//! dialgatectl token list   --registry FILE
//! dialgatectl token show   --registry FILE NAME
//! dialgatectl token revoke --registry FILE NAME
//! ```
//!
//! PKCS#11 enrolment and signed policy bundles are the rest of the issue
//! "Hardware-token admission".

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use dialgate::config::parse_registry;

fn usage() -> ExitCode {
    eprintln!(
        "usage: dialgatectl token list   --registry FILE\n       \
         dialgatectl token show   --registry FILE NAME\n       \
         dialgatectl token revoke --registry FILE NAME"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let positional: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a)
        .collect();
    let (Some("token"), Some(cmd), Some(registry)) = (
        positional.first().map(|s| s.as_str()),
        positional.get(1).map(|s| s.as_str()),
        opt("--registry"),
    ) else {
        return usage();
    };
    let result = match (cmd, positional.get(2)) {
        ("list", None) => list(Path::new(registry)),
        ("show", Some(name)) => show(Path::new(registry), name),
        ("revoke", Some(name)) => revoke(Path::new(registry), name),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialgatectl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The `[[token]]` blocks of a registry: (name, lines of the block).
fn blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.trim() == "[[token]]" {
            out.push((String::new(), vec![line.to_string()]));
            continue;
        }
        if let Some((name, lines)) = out.last_mut() {
            if let Some(v) = line.trim().strip_prefix("name = ") {
                *name = v.trim_matches('"').to_string();
            }
            lines.push(line.to_string());
        }
    }
    out
}

fn list(path: &Path) -> Result<(), String> {
    let text = read(path)?;
    parse_registry(&text).map_err(|e| e.to_string())?;
    for (name, lines) in blocks(&text) {
        let revoked = lines.iter().any(|l| l.trim() == "revoked = true");
        let unattested = lines.iter().any(|l| l.trim() == "unattested = true");
        println!(
            "{name:<16} {}{}",
            if revoked { "REVOKED" } else { "active" },
            if unattested {
                "  (unattested software key)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn show(path: &Path, name: &str) -> Result<(), String> {
    let text = read(path)?;
    let (_, lines) = blocks(&text)
        .into_iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| format!("no token named {name:?} in {}", path.display()))?;
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

/// Marks a token revoked and replaces the file atomically, after checking
/// that the result is a registry the gateway accepts.
fn revoke(path: &Path, name: &str) -> Result<(), String> {
    let text = read(path)?;
    let mut found = false;
    let mut out = String::new();
    let mut in_target = false;
    for line in text.lines() {
        if line.trim() == "[[token]]" {
            in_target = false;
        }
        if line.trim() == format!("name = \"{name}\"") {
            in_target = true;
            found = true;
            out.push_str(line);
            out.push_str("\nrevoked = true\n");
            continue;
        }
        if in_target && line.trim().starts_with("revoked = ") {
            continue; // replaced above
        }
        out.push_str(line);
        out.push('\n');
    }
    if !found {
        return Err(format!("no token named {name:?} in {}", path.display()));
    }
    let (registry, _) = parse_registry(&out).map_err(|e| format!("refusing to write: {e}"))?;
    let tmp = path.with_extension("toml.new");
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(out.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{name} revoked in {} ({} active tokens left); a running kit applies it within a second",
        path.display(),
        registry.active_names().len()
    );
    Ok(())
}
