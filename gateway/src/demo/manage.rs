//! `dialgate demo --hq-url URL`: the kit polls its signed repository at
//! URL (every second) instead of waiting for bundles copied onto it.
//!
//! ```text
//! DIR/hq/{timestamp,snapshot}-key.{pk8,pub.pem}  the repository keys (HQ)
//! DIR/{timestamp,snapshot}-key.pub.pem           the same public keys, pinned by the kit
//! DIR/hq/repo/demo-kit/...                       the repository (dialgatectl publish)
//! DIR/state/repo.state                           what the kit has seen (written by it)
//! ```
//!
//! The HTTPS server serves `DIR/hq/repo/` at URL with
//! `DIR/hq/https/server-{cert,key}.pem`, asking for client certificates
//! issued by `DIR/hq/https/client-ca.pem` (`tests/peers/nginx-hq.conf`).

use std::path::Path;

use dialgate_hq::hq::Hq;
use dialgate_hq::pki::write_file;
use dialgate_hq::publish::{publish, PublishOptions, RepoKeys};

use super::{ensure_home, DemoError};
use crate::config::parse_management_url;

/// How often the demo kit polls.
pub const DEMO_POLL_MS: u64 = 1000;

/// Points the kit at the repository `url`: the repository keys (made if
/// absent) pinned by the kit, `[management]` written (replacing one that
/// is there), and a first publication into `DIR/hq/repo/`.
pub fn set_hq_url(dir: &Path, url: &str) -> Result<(), DemoError> {
    parse_management_url(url).map_err(DemoError::BadHqUrl)?;
    ensure_home(dir)?;
    let hq = Hq::new(&dir.join("hq"));
    let keys = RepoKeys::load_or_generate(&hq)?;
    let pinned = keys.role_keys();
    for (file, key) in [
        ("timestamp-key.pub.pem", &pinned.timestamp),
        ("snapshot-key.pub.pem", &pinned.snapshot),
    ] {
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        write_file(&path, key.to_pem().as_bytes(), 0o644)?;
    }
    let config = dir.join("dialgate.toml");
    let text = super::home::read(&config)?;
    let out = super::home::replace_section(
        &text,
        "[management]",
        "# The kit's repository at home",
        &format!(
            "\n# The kit's repository at home (docs/repository.md): polled over mutual TLS.\n\
         [management]\nurl = \"{url}\"\nca = \"device/hq-ca.pem\"\n\
         certificate = \"device/cert.pem\"\ndevice_key = \"device/key.pem\"\n\
         state = \"state/repo.state\"\ntimestamp_key = \"timestamp-key.pub.pem\"\n\
         snapshot_key = \"snapshot-key.pub.pem\"\ninterval_ms = {DEMO_POLL_MS}\n"
        ),
    );
    super::home::write_text(&config, &out)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    publish(&hq, &PublishOptions::new(&dir.join("hq/repo"), now))?;
    Ok(())
}
