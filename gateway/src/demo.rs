//! The demo kit: everything a gateway needs to run on one machine, created
//! under one folder by `dialgate demo --dir DIR --init-only`.
//!
//! ```text
//! DIR/ca.pem                      the CA a phone uses to verify the gateway
//! DIR/gateway/{cert,key}.pem      the gateway's phone-side server certificate
//! DIR/token-ca.pem                the token CA (phones' certificates chain to it)
//! DIR/tokens/alice/{cert,key}.pem registered
//! DIR/tokens/mallory/...          registered, then revoked
//! DIR/tokens/eve/...              issued by the token CA, never registered
//! DIR/bridge/{ca,cert,key}.pem    the local echo bridge's CA and certificate
//! DIR/registry.toml               the token registry
//! DIR/dialgate.toml               the gateway configuration
//! DIR/hq/                         the home side: the CAs' private keys
//! ```
//!
//! Token keys here are software keys, marked `unattested` in the registry:
//! the demo shows the call path, not hardware-token enrolment.

use std::path::{Path, PathBuf};

use crate::pki::{write_file, Ca, PkiError, Validity};
use crate::tls::KeyHash;

/// Where the demo's gateway listens for phones.
pub const PHONE_LISTEN: &str = "127.0.0.1:5061";
/// Where the demo's echo bridge listens (SIP over TLS).
pub const BRIDGE_LISTEN: &str = "127.0.0.1:5071";
/// The echo bridge's TLS and SIP host name.
pub const BRIDGE_HOST: &str = "echo-bridge.dialgate.test";

/// Paths of a created kit.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The kit folder.
    pub dir: PathBuf,
    /// The gateway configuration file.
    pub config: PathBuf,
}

/// Why a kit could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The folder exists and is not empty: a kit is never overwritten.
    #[error("{0} exists and is not empty; use a new folder (a kit is never overwritten)")]
    NotEmpty(String),
    /// Creating a folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Issuing or writing a certificate failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A certificate could not be hashed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

fn mkdir(p: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(p).map_err(|source| DemoError::Io {
        path: p.display().to_string(),
        source,
    })
}

/// Creates a kit in `dir`, which must be absent or empty.
pub fn init(dir: &Path) -> Result<Kit, DemoError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|source| DemoError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(DemoError::NotEmpty(dir.display().to_string()));
        }
    }
    for sub in [
        "gateway",
        "tokens/alice",
        "tokens/mallory",
        "tokens/eve",
        "bridge",
        "hq",
    ] {
        mkdir(&dir.join(sub))?;
    }
    let v = Validity::days_from_now(365);

    let kit_ca = Ca::new("dialgate demo kit CA", v)?;
    write_file(&dir.join("ca.pem"), kit_ca.cert_pem().as_bytes(), 0o644)?;
    write_file(
        &dir.join("hq/kit-ca-key.pem"),
        kit_ca.key_pem().as_bytes(),
        0o600,
    )?;
    kit_ca
        .issue_server("dialgate gateway", &["127.0.0.1", "localhost"], v)?
        .write_to(&dir.join("gateway"))?;

    let token_ca = Ca::new("dialgate demo token CA", v)?;
    write_file(
        &dir.join("token-ca.pem"),
        token_ca.cert_pem().as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join("hq/token-ca-key.pem"),
        token_ca.key_pem().as_bytes(),
        0o600,
    )?;
    let mut registry =
        String::from("# dialgate token registry (demo kit). Keys are software keys: unattested.\n");
    for (name, registered, revoked) in [
        ("alice", true, false),
        ("mallory", true, true),
        ("eve", false, false),
    ] {
        let issued = token_ca.issue_client(name, v)?;
        issued.write_to(&dir.join("tokens").join(name))?;
        if registered {
            let key = KeyHash::of_certificate(&issued.der)?;
            registry.push_str(&format!(
                "\n[[token]]\nname = \"{name}\"\nkey_sha256 = \"{}\"\naliases = [\"echo\"]\nunattested = true\n{}",
                key.to_hex(),
                if revoked { "revoked = true\n" } else { "" }
            ));
        }
    }
    write_file(&dir.join("registry.toml"), registry.as_bytes(), 0o644)?;

    let bridge_ca = Ca::new("dialgate demo bridge CA", v)?;
    write_file(
        &dir.join("bridge/ca.pem"),
        bridge_ca.cert_pem().as_bytes(),
        0o644,
    )?;
    bridge_ca
        .issue_server("echo bridge", &[BRIDGE_HOST, "127.0.0.1"], v)?
        .write_to(&dir.join("bridge"))?;

    let config = dir.join("dialgate.toml");
    let text = format!(
        r#"# dialgate demo kit configuration. Generous limits for trying and
# load-testing on one machine; a production kit keeps the strict defaults.

[phone]
listen = "{PHONE_LISTEN}"
certificate = "gateway/cert.pem"
key = "gateway/key.pem"
token_ca = "token-ca.pem"
registry = "registry.toml"
media_address = "127.0.0.1"
# Not required: stock OpenSSL 3.0 clients (baresip) lack X25519MLKEM768.
require_post_quantum = false

[media]
port_min = 30000
port_max = 39999

[[trunk]]
name = "echo"
connect = "{BRIDGE_LISTEN}"
host = "{BRIDGE_HOST}"
ca = "bridge/ca.pem"
media_address = "127.0.0.1"

[[directory]]
alias = "echo"
uri = "sip:echo@{BRIDGE_HOST}"
trunk = "echo"

[limits]
calls_per_token = 500
calls_per_address = 1000
attempts_per_minute_per_address = 100000
max_calls = 1000
loopback_exempt = true
"#
    );
    write_file(&config, text.as_bytes(), 0o644)?;
    Ok(Kit {
        dir: dir.to_path_buf(),
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_registry, Config};
    use crate::tls::load_certs;

    #[test]
    fn kit_is_complete_loadable_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("dialgate-demo-kit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kit = init(&dir).unwrap();
        let config = Config::load(&kit.config).unwrap();
        assert_eq!(config.phone.listen.to_string(), PHONE_LISTEN);
        assert!(config.limits.loopback_exempt && config.limits.calls_per_token >= 500);
        let (registry, grants) = load_registry(&config.phone.registry).unwrap();
        let key = |n: &str| {
            let c = load_certs(&dir.join("tokens").join(n).join("cert.pem")).unwrap();
            KeyHash::of_certificate(&c[0]).unwrap()
        };
        assert_eq!(registry.active(&key("alice")).unwrap().name, "alice");
        assert_eq!(
            registry.refusal(&key("mallory")),
            Some(crate::tls::Refusal::Revoked)
        );
        assert_eq!(
            registry.refusal(&key("eve")),
            Some(crate::tls::Refusal::NotRegistered)
        );
        assert!(grants["alice"].contains("echo"));
        use std::os::unix::fs::PermissionsExt;
        for secret in [
            "tokens/alice/key.pem",
            "gateway/key.pem",
            "hq/token-ca-key.pem",
            "bridge/key.pem",
        ] {
            let mode = std::fs::metadata(dir.join(secret))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{secret}");
        }
        assert!(matches!(init(&dir), Err(DemoError::NotEmpty(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
