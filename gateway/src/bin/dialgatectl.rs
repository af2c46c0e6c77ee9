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
//! dialgatectl pki init     --dir HQ
//! dialgatectl policy build --dir HQ --registry FILE --config KIT.toml --kit ID --version N [--days D] --out BUNDLE
//! dialgatectl policy show  --key HQ/policy-key.pub.pem --kit ID BUNDLE
//! ```
//!
//! `pki init` creates the home side: the token CA and the policy signing
//! key (kept at home; kits pin its public key). `policy build` signs the
//! registry into a bundle (`dialgate::policy`); `policy show` verifies one
//! as a kit would and prints it. Wiring bundles into the gateway, and
//! PKCS#11 enrolment, are the rest of the issue "Hardware-token admission".

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use dialgate::config::parse_registry;

fn usage() -> ExitCode {
    eprintln!(
        "usage: dialgatectl token list   --registry FILE\n       \
         dialgatectl token show   --registry FILE NAME\n       \
         dialgatectl token revoke --registry FILE NAME\n       \
         dialgatectl pki init     --dir HQ\n       \
         dialgatectl policy build --dir HQ --registry FILE --config KIT.toml --kit ID --version N [--days D] --out BUNDLE\n       \
         dialgatectl policy show  --key PUBLIC_KEY_PEM --kit ID BUNDLE"
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
    let group = positional.first().map(|s| s.as_str());
    let cmd = positional.get(1).map(|s| s.as_str());
    let arg3 = positional.get(2).map(|s| s.as_str());
    let result = match (group, cmd, arg3) {
        (Some("token"), Some(cmd), name) => {
            let Some(registry) = opt("--registry") else {
                return usage();
            };
            match (cmd, name) {
                ("list", None) => list(Path::new(registry)),
                ("show", Some(name)) => show(Path::new(registry), name),
                ("revoke", Some(name)) => revoke(Path::new(registry), name),
                _ => return usage(),
            }
        }
        (Some("pki"), Some("init"), None) => match opt("--dir") {
            Some(dir) => pki_init(Path::new(dir)),
            None => return usage(),
        },
        (Some("policy"), Some("build"), None) => {
            let (Some(dir), Some(registry), Some(config), Some(kit), Some(version), Some(out)) = (
                opt("--dir"),
                opt("--registry"),
                opt("--config"),
                opt("--kit"),
                opt("--version"),
                opt("--out"),
            ) else {
                return usage();
            };
            let days = opt("--days").map_or("30", |d| d.as_str());
            let paths = BuildPaths {
                hq: Path::new(dir),
                registry: Path::new(registry),
                config: Path::new(config),
                out: Path::new(out),
            };
            policy_build(&paths, kit, version, days)
        }
        (Some("policy"), Some("show"), Some(bundle)) => match (opt("--key"), opt("--kit")) {
            (Some(key), Some(kit)) => policy_show(Path::new(key), kit, Path::new(bundle)),
            _ => return usage(),
        },
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

fn now_unix() -> Result<u64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "the system clock is before 1970".to_string())
}

/// Creates the home side in `dir` (absent or empty): the token CA and the
/// policy signing key. Private keys are written 0600; nothing is ever
/// overwritten.
fn pki_init(dir: &Path) -> Result<(), String> {
    use dialgate::pki::{write_file, Ca, Validity};
    use dialgate::policy::SigningKey;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "{} is not empty: refusing to overwrite a PKI",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca =
        Ca::new("dialgate token CA", Validity::days_from_now(3650)).map_err(|e| e.to_string())?;
    write_file(&dir.join("token-ca.pem"), ca.cert_pem().as_bytes(), 0o644)
        .map_err(|e| e.to_string())?;
    write_file(
        &dir.join("token-ca-key.pem"),
        ca.key_pem().as_bytes(),
        0o600,
    )
    .map_err(|e| e.to_string())?;
    let key = SigningKey::generate().map_err(|e| e.to_string())?;
    let pkcs8 = key.to_pkcs8().map_err(|e| e.to_string())?;
    write_file(&dir.join("policy-key.pk8"), &pkcs8, 0o600).map_err(|e| e.to_string())?;
    let public = pem("PUBLIC KEY", key.public_key().spki_der());
    write_file(&dir.join("policy-key.pub.pem"), public.as_bytes(), 0o644)
        .map_err(|e| e.to_string())?;
    println!("home PKI created in {}", dir.display());
    println!(
        "  token CA:          {}/token-ca.pem (key token-ca-key.pem, 0600)",
        dir.display()
    );
    println!(
        "  policy signing key: {}/policy-key.pk8 (0600, stays at home)",
        dir.display()
    );
    println!(
        "  policy public key:  {}/policy-key.pub.pem (kits pin it; id {})",
        dir.display(),
        key.public_key().id().to_hex()
    );
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Where `policy build` reads and writes.
struct BuildPaths<'a> {
    hq: &'a Path,
    registry: &'a Path,
    config: &'a Path,
    out: &'a Path,
}

/// Signs the tokens of a registry file and the meeting directory of a kit
/// configuration into a policy bundle for one kit.
fn policy_build(
    paths: &BuildPaths<'_>,
    kit: &str,
    version: &str,
    days: &str,
) -> Result<(), String> {
    let (dir, registry, out) = (paths.hq, paths.registry, paths.out);
    let config = dialgate::config::Config::load(paths.config).map_err(|e| e.to_string())?;
    let mut directory: Vec<dialgate::config::DirectoryEntry> =
        config.directory.into_values().collect();
    directory.sort_by(|a, b| a.alias.cmp(&b.alias));
    use dialgate::policy::{sign, store, PolicyBody, PolicyToken, SigningKey};
    use dialgate::tls::KeyHash;
    let version: u64 = version
        .parse()
        .map_err(|_| format!("--version {version}: a whole number"))?;
    let days: u64 = days
        .parse()
        .map_err(|_| format!("--days {days}: a whole number"))?;
    let text = read(registry)?;
    // The gateway's own checks first, then the fields the bundle carries.
    parse_registry(&text).map_err(|e| e.to_string())?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
    let mut tokens = Vec::new();
    for t in table
        .get("token")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let s = |k: &str| {
            t.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let b = |k: &str| t.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        tokens.push(PolicyToken {
            name: s("name"),
            key: KeyHash::from_hex(&s("key_sha256")).map_err(|e| e.to_string())?,
            aliases: t
                .get("aliases")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            revoked: b("revoked"),
            unattested: b("unattested"),
        });
    }
    let der = std::fs::read(dir.join("policy-key.pk8"))
        .map_err(|e| format!("{}/policy-key.pk8: {e}", dir.display()))?;
    let key = SigningKey::from_pkcs8(&der).map_err(|e| e.to_string())?;
    let now = now_unix()?;
    let body = PolicyBody {
        version,
        issued_at: now,
        expires_at: now + days * 86_400,
        kits: vec![kit.to_string()],
        tokens,
        directory,
        ..PolicyBody::default()
    };
    let bundle = sign(&body, &key).map_err(|e| e.to_string())?;
    store::write_atomically(out, &bundle).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "policy version {version} for kit {kit}, {} tokens, expires in {days} days: {}",
        body.tokens.len(),
        out.display()
    );
    Ok(())
}

/// Verifies a bundle as a kit would (pinned key, kit id, dates) and prints it.
fn policy_show(key: &Path, kit: &str, bundle: &Path) -> Result<(), String> {
    use dialgate::policy::{verify_and_decide, GracePeriod, PolicyKey, State, Trust};
    let pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let trust = Trust {
        pinned_key: PolicyKey::from_pem(&pem).map_err(|e| e.to_string())?,
        kit_id: kit.to_string(),
        grace: GracePeriod::NONE,
    };
    let bytes = std::fs::read(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let v =
        verify_and_decide(&bytes, &trust, &State::new(), now_unix()?).map_err(|e| e.to_string())?;
    let b = v.body();
    println!(
        "valid policy version {} for {:?}, issued {} expires {} (unix seconds), signer {}",
        b.version,
        b.kits,
        b.issued_at,
        b.expires_at,
        v.signer().to_hex()
    );
    for t in &b.tokens {
        println!(
            "  {:<16} {}{}  aliases {:?}",
            t.name,
            if t.revoked { "REVOKED" } else { "active" },
            if t.unattested { " (unattested)" } else { "" },
            t.aliases
        );
    }
    Ok(())
}
