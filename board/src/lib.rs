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
pub mod nft;
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

/// The firewall's inputs from the kit's `dialgate.toml`: the phone-side
/// SIP port, the media range (default 30000-39999, as the gateway's) and
/// every trunk's `connect` address; `phones` and `uplink` name the
/// interfaces. `None` if the configuration lacks the phone listener.
pub fn firewall_inputs(config: &str, phones: &str, uplink: &str) -> Option<firewall::Inputs> {
    let v: toml::Table = config.parse().ok()?;
    let sip_port = phone_listen(config)?.port();
    let media = v.get("media");
    let port = |k: &str, d: u16| {
        media
            .and_then(|m| m.get(k))
            .and_then(|p| p.as_integer())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(d)
    };
    let outbound = v
        .get("trunk")
        .and_then(|t| t.as_array())
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t.get("connect")?.as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Some(firewall::Inputs {
        phones: phones.to_string(),
        uplink: uplink.to_string(),
        sip_port,
        media: (port("port_min", 30000), port("port_max", 39999)),
        outbound,
    })
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

    #[test]
    fn firewall_inputs_from_the_kit_config() {
        let c = "[phone]\nlisten = \"10.0.2.15:5261\"\n[media]\nport_min = 42000\nport_max = 42009\n\
                 [[trunk]]\nconnect = \"127.0.0.1:5071\"\n[[trunk]]\nconnect = \"192.0.2.7:5061\"\n";
        let i = super::firewall_inputs(c, "eth0", "eth1").unwrap();
        assert_eq!((i.sip_port, i.media), (5261, (42000, 42009)));
        assert_eq!(i.outbound.len(), 2);
        assert_eq!((i.phones.as_str(), i.uplink.as_str()), ("eth0", "eth1"));
        let d = super::firewall_inputs("[phone]\nlisten = \"10.0.2.15:5061\"\n", "a", "b").unwrap();
        assert_eq!(d.media, (30000, 39999));
        assert!(d.outbound.is_empty());
        assert!(super::firewall_inputs("[media]\n", "a", "b").is_none());
    }
}
