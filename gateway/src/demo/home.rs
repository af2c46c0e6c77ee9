//! The demo kit's channel home: HQ's HTTPS (and SIEM) server identity,
//! the kit's device identity, its audit checkpoint key and the `[audit]`
//! section. Idempotent: what exists is kept, so kits made before these
//! files existed get them on their next `dialgate demo`.

use std::path::Path;

use dialgate_hq::pki::{pem_encode, write_file, Ca, Validity};

use super::{mkdir, DemoError, KIT_ID};
use crate::config::parse_siem_url;

pub(super) fn read(path: &Path) -> Result<String, DemoError> {
    std::fs::read_to_string(path).map_err(|source| DemoError::Io {
        path: path.display().to_string(),
        source,
    })
}

pub(super) fn write_text(path: &Path, text: &str) -> Result<(), DemoError> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| DemoError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// Creates what is missing of the home side's HTTPS identity, the kit's
/// device identity and audit key, and the configuration's `[audit]`.
pub fn ensure_home(dir: &Path) -> Result<(), DemoError> {
    let v = Validity::days_from_now(365);
    let https = dir.join("hq/https");
    if !https.join("server-cert.pem").exists() {
        mkdir(&https)?;
        let hq_ca = Ca::new("dialgate demo HQ CA", v)?;
        write_file(&https.join("ca.pem"), hq_ca.cert_pem().as_bytes(), 0o644)?;
        write_file(
            &dir.join("hq/hq-ca-key.pem"),
            hq_ca.key_pem().as_bytes(),
            0o600,
        )?;
        let server = hq_ca.issue_server("dialgate demo HQ", &["127.0.0.1", "localhost"], v)?;
        write_file(
            &https.join("server-cert.pem"),
            server.cert_pem.as_bytes(),
            0o644,
        )?;
        write_file(
            &https.join("server-key.pem"),
            server.key_pem.as_bytes(),
            0o600,
        )?;
    }
    let kit_ca_pem = read(&dir.join("ca.pem"))?;
    if !https.join("client-ca.pem").exists() {
        write_file(&https.join("client-ca.pem"), kit_ca_pem.as_bytes(), 0o644)?;
    }
    let device = dir.join("device");
    if !device.join("cert.pem").exists() {
        mkdir(&device)?;
        let kit_ca = Ca::load(&kit_ca_pem, &read(&dir.join("hq/kit-ca-key.pem"))?)?;
        kit_ca.issue_client(KIT_ID, v)?.write_to(&device)?;
    }
    if !device.join("hq-ca.pem").exists() {
        let ca = read(&https.join("ca.pem"))?;
        write_file(&device.join("hq-ca.pem"), ca.as_bytes(), 0o644)?;
    }
    if !dir.join("audit/key.pk8").exists() {
        mkdir(&dir.join("audit"))?;
        let key = dialgate_signed::SigningKey::generate()?;
        write_file(&dir.join("audit/key.pk8"), &key.to_pkcs8()?, 0o600)?;
        let kits = dir.join("hq/kits").join(KIT_ID);
        mkdir(&kits)?;
        let public = pem_encode("PUBLIC KEY", key.public_key().spki_der());
        let pub_path = kits.join("audit-key.pub.pem");
        let _ = std::fs::remove_file(&pub_path);
        write_file(&pub_path, public.as_bytes(), 0o644)?;
    }
    let config = dir.join("dialgate.toml");
    let text = read(&config)?;
    if !text.lines().any(|l| l.trim() == "[audit]") {
        let mut text = text;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(
            "\n# The audit trail (docs/audit.md): spooled on the data partition,\n\
             # shipped to the home SIEM when `siem` is set (dialgate demo --siem URL).\n\
             [audit]\nspool = \"state/audit\"\nkey = \"audit/key.pk8\"\n",
        );
        write_text(&config, &text)?;
    }
    Ok(())
}

/// Points the kit's `[audit]` at the SIEM `url` (`relp-tls://IP:PORT` or
/// `syslog-tls://IP:PORT`), with the device identity and HQ's CA.
pub fn set_siem(dir: &Path, url: &str) -> Result<(), DemoError> {
    parse_siem_url(url).map_err(DemoError::BadSiem)?;
    ensure_home(dir)?;
    let config = dir.join("dialgate.toml");
    let text = read(&config)?;
    let mut out = String::new();
    let mut in_audit = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_audit = t == "[audit]";
        }
        let key = t.split('=').next().unwrap_or("").trim();
        if in_audit && ["siem", "siem_ca", "certificate", "device_key"].contains(&key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if in_audit && t == "[audit]" {
            out.push_str(&format!(
                "siem = \"{url}\"\nsiem_ca = \"device/hq-ca.pem\"\ncertificate = \"device/cert.pem\"\ndevice_key = \"device/key.pem\"\n"
            ));
        }
    }
    write_text(&config, &out)
}

/// The configuration text without its `section` (e.g. `[status]`) and the
/// comment line starting with `comment` that introduces it, then `block`
/// appended: how the demo points a kit at a new home URL.
pub(super) fn replace_section(text: &str, section: &str, comment: &str, block: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            skipping = t == section;
        }
        if t.starts_with(comment) {
            continue;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out.push_str(block);
    out
}
