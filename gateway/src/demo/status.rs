//! `dialgate demo --pushgateway URL`: the kit pushes its status (every
//! second) to a Prometheus Pushgateway at URL, over mutual TLS with its
//! device certificate, trusting the CA of `DIR/hq/https/server-cert.pem`
//! (those files are written as for `--hq-url`: a TLS front, or the
//! Pushgateway's own `--web.config.file`, serves with them and asks for
//! client certificates of `DIR/hq/https/client-ca.pem`).

use std::path::Path;

use super::{ensure_home, DemoError};
use crate::config::parse_management_url;

/// How often the demo kit pushes its status.
pub const DEMO_PUSH_MS: u64 = 1000;

/// Points the kit's `[status]` at the Pushgateway `url` (replacing one
/// that is there), with the device identity and HQ's CA.
pub fn set_pushgateway(dir: &Path, url: &str) -> Result<(), DemoError> {
    parse_management_url(url).map_err(DemoError::BadPushgateway)?;
    ensure_home(dir)?;
    let config = dir.join("dialgate.toml");
    let text = super::home::read(&config)?;
    let out = super::home::replace_section(
        &text,
        "[status]",
        "# The kit's status at home",
        &format!(
        "\n# The kit's status at home (docs/status.md): pushed to a Pushgateway over mutual TLS.\n\
         [status]\nurl = \"{url}\"\nca = \"device/hq-ca.pem\"\n\
         certificate = \"device/cert.pem\"\ndevice_key = \"device/key.pem\"\n\
         interval_ms = {DEMO_PUSH_MS}\n"
        ),
    );
    super::home::write_text(&config, &out)
}
