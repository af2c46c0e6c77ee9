//! Board support for the dialgate appliance: PID 1 of the image
//! (`dialgate-init`), the hardware watchdog, the power key, the hardware
//! RNG, network interfaces and the firewall ruleset.
//!
//! Every decision is a pure function or struct, unit-tested on the host:
//! the kernel command line ([`cmdline`]), the module load order
//! ([`modules`]), the dm-verity table and slot fallback ([`verity`]), the
//! listening-socket status ([`status`]), restart backoff, the watchdog
//! decision and the power key ([`supervise`]), the firewall ruleset
//! ([`firewall`]). The syscalls are in [`sys`], one `unsafe` call per
//! block with a `// SAFETY:` line (clippy enforces both; this is the only
//! crate of the workspace allowed `unsafe`). The boot sequence itself is
//! `src/bin/dialgate-init.rs`; `image/README.md` describes the image.

pub mod cmdline;
pub mod firewall;
pub mod modules;
pub mod status;
pub mod supervise;
#[cfg(target_os = "linux")]
pub mod sys;
pub mod verity;

/// The phone-side listen address from the kit's `dialgate.toml`
/// (`[phone] listen`): what readiness waits for.
pub fn phone_listen(config: &str) -> Option<std::net::SocketAddr> {
    let v: toml::Table = config.parse().ok()?;
    v.get("phone")?.get("listen")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn phone_listen_from_the_kit_config() {
        let c = "[phone]\nlisten = \"10.0.2.15:5061\"\nkey = \"k\"\n[[trunk]]\nconnect = \"127.0.0.1:5071\"\n";
        assert_eq!(
            super::phone_listen(c),
            Some("10.0.2.15:5061".parse().unwrap())
        );
        assert_eq!(super::phone_listen("[phone]\n"), None);
        assert_eq!(super::phone_listen("not toml ["), None);
    }
}
