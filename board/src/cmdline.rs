//! The kernel command line: what the image's boot configuration tells PID 1
//! (slots and their trusted root hashes, the data partition, the network,
//! how to run the gateway). Parsed once into typed values; anything
//! malformed is an error, never a silent default.
//!
//! ```text
//! dialgate.slot=a:/dev/vda1:<data blocks>:<root hash hex>
//! dialgate.slot=b:/dev/vda:<data blocks>:<root hash hex>:<offset in 4 KiB blocks>
//! dialgate.version=<firmware version>  (optional: for the READY line)
//! dialgate.updates=on  (optional: booted by U-Boot from the boot environment,
//!                       so PID 1 runs the firmware agent)
//! dialgate.salt=<hex>  dialgate.data=/dev/vda3
//! dialgate.net=eth0:10.0.2.15/24:10.0.2.2  dialgate.mode=demo|run
//! dialgate.uplink=eth1:10.0.3.15/24  (optional: the uplink's own interface)
//! dialgate.uplink=eth1:dhcp  (... its address by DHCP: PID 1 runs dialgate-dhcp)
//! dialgate.dhcpd=10.0.2.100-10.0.2.131  (optional: PID 1 serves DHCP to the
//!                       phones on dialgate.net's interface from this pool;
//!                       needs dialgate.uplink, never served on the uplink)
//! ```
//!
//! The root hashes are the trust anchor of the verified root: on a board
//! they live with the kernel on the boot partition (signed boot is a
//! separate concern, see `image/README.md`).

use std::net::Ipv4Addr;

use crate::dhcp::server::{ConfigError as PoolError, ServerConfig};

/// One verified root slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// `a` or `b`.
    pub name: char,
    /// The partition holding the squashfs followed by its hash tree.
    pub device: String,
    /// Number of 4096-byte data blocks (the squashfs, padded).
    pub data_blocks: u64,
    /// SHA-256 root hash of the hash tree.
    pub root_hash: [u8; 32],
    /// Where the root image starts on `device`, in 4096-byte blocks (0:
    /// at its start). A firmware slot holds the kernel and initramfs
    /// first (`dialgate-firmware`'s slot layout), so its root sits at an
    /// offset of the disk.
    pub offset_blocks: u64,
}

/// Static IPv4 configuration of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    /// Interface name (`eth0`).
    pub interface: String,
    /// Address.
    pub address: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
}

impl BootParams {
    /// The uplink's interface name, if it has its own.
    pub fn uplink_interface(&self) -> Option<&str> {
        self.uplink
            .as_ref()
            .map(|n| n.interface.as_str())
            .or(self.uplink_dhcp.as_deref())
    }
}

/// How the gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `dialgate demo --dir /data/kit`: the gateway and the echo bridge.
    Demo,
    /// `dialgate run --config /data/kit/dialgate.toml`.
    Run,
}

/// Everything PID 1 takes from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    /// Slots in boot preference order.
    pub slots: Vec<Slot>,
    /// The dm-verity salt shared by the slots.
    pub salt: Vec<u8>,
    /// The data partition.
    pub data: String,
    /// The phone-side interface (`dialgate.net`).
    pub net: Option<Net>,
    /// The uplink interface (`dialgate.uplink`) with a fixed address, when
    /// it is not the phone-side one.
    pub uplink: Option<Net>,
    /// The uplink interface when it takes its address by DHCP
    /// (`dialgate.uplink=IFACE:dhcp`).
    pub uplink_dhcp: Option<String>,
    /// The phone side's DHCP server (`dialgate.dhcpd=FIRST-LAST`): the
    /// kit's `dialgate.net` address and prefix with this pool, the other
    /// settings their defaults; validated.
    pub dhcpd: Option<ServerConfig>,
    /// Gateway mode.
    pub mode: Mode,
    /// The firmware version the bootloader booted (`dialgate.version`).
    pub version: Option<u64>,
    /// Booted by the bootloader from the A/B environment
    /// (`dialgate.updates=on`): firmware updates are possible.
    pub updates: bool,
}

/// A malformed command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel command line: {key}: {problem}")]
pub struct CmdlineError {
    key: &'static str,
    problem: &'static str,
}

fn err(key: &'static str, problem: &'static str) -> CmdlineError {
    CmdlineError { key, problem }
}

/// Decodes lowercase or uppercase hex.
pub fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn slot(v: &str) -> Result<Slot, CmdlineError> {
    const K: &str = "dialgate.slot";
    let mut it = v.split(':');
    let (Some(name), Some(device), Some(blocks), Some(hash), offset, None) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(err(K, "expected NAME:DEVICE:BLOCKS:ROOTHASH[:OFFSET]"));
    };
    let offset_blocks = match offset {
        None => 0,
        Some(o) => o
            .parse::<u64>()
            .ok()
            .filter(|n| n.to_string() == o && *n < (1 << 40))
            .ok_or(err(K, "bad offset"))?,
    };
    let name = match name {
        "a" => 'a',
        "b" => 'b',
        _ => return Err(err(K, "slot name must be a or b")),
    };
    if !device.starts_with("/dev/") {
        return Err(err(K, "device must be under /dev"));
    }
    let data_blocks = blocks
        .parse::<u64>()
        .ok()
        .filter(|b| *b > 0)
        .ok_or(err(K, "bad block count"))?;
    let root_hash = hex(hash)
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or(err(K, "root hash must be 64 hex digits"))?;
    Ok(Slot {
        name,
        device: device.to_string(),
        data_blocks,
        root_hash,
        offset_blocks,
    })
}

fn net(v: &str) -> Result<Net, CmdlineError> {
    const K: &str = "dialgate.net/uplink";
    let mut it = v.split(':');
    let (Some(interface), Some(cidr)) = (it.next(), it.next()) else {
        return Err(err(K, "expected IFACE:ADDR/PREFIX[:GATEWAY]"));
    };
    let gateway = match it.next() {
        Some(g) => Some(g.parse().map_err(|_| err(K, "bad gateway"))?),
        None => None,
    };
    if it.next().is_some() || interface.is_empty() || interface.len() > 15 {
        return Err(err(K, "expected IFACE:ADDR/PREFIX[:GATEWAY]"));
    }
    let (a, p) = cidr.split_once('/').ok_or(err(K, "missing /PREFIX"))?;
    let prefix = p
        .parse::<u8>()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .ok_or(err(K, "bad prefix"))?;
    Ok(Net {
        interface: interface.to_string(),
        address: a.parse().map_err(|_| err(K, "bad address"))?,
        prefix,
        gateway,
    })
}

/// Parses `/proc/cmdline`. Unknown `dialgate.*` keys are errors; other
/// words (the kernel's own) are ignored.
pub fn parse(cmdline: &str) -> Result<BootParams, CmdlineError> {
    let mut slots: Vec<Slot> = Vec::new();
    let (mut salt, mut data, mut netcfg, mut mode) = (None, None, None, Mode::Run);
    let (mut uplink, mut version, mut updates) = (None, None, false);
    let (mut uplink_dhcp, mut pool) = (None, None);
    for word in cmdline.split_ascii_whitespace() {
        let Some(rest) = word.strip_prefix("dialgate.") else {
            continue;
        };
        let (key, value) = rest
            .split_once('=')
            .ok_or(err("dialgate.*", "expected KEY=VALUE"))?;
        match key {
            "slot" => {
                let s = slot(value)?;
                if slots.iter().any(|o| o.name == s.name) {
                    return Err(err("dialgate.slot", "slot given twice"));
                }
                slots.push(s);
            }
            "salt" => {
                salt = Some(
                    hex(value)
                        .filter(|s| !s.is_empty() && s.len() <= 256)
                        .ok_or(err("dialgate.salt", "bad hex"))?,
                )
            }
            "data" if value.starts_with("/dev/") => data = Some(value.to_string()),
            "data" => return Err(err("dialgate.data", "device must be under /dev")),
            "net" => netcfg = Some(net(value)?),
            "uplink" if uplink.is_some() || uplink_dhcp.is_some() => {
                return Err(err("dialgate.uplink", "given twice"))
            }
            "uplink" => match value.split_once(':') {
                Some((iface, "dhcp")) if !iface.is_empty() && iface.len() <= 15 => {
                    uplink_dhcp = Some(iface.to_string())
                }
                _ => uplink = Some(net(value)?),
            },
            "dhcpd" if pool.is_some() => return Err(err("dialgate.dhcpd", "given twice")),
            "dhcpd" => {
                let (a, b) = value
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<Ipv4Addr>().ok()?, b.parse().ok()?)))
                    .ok_or(err(
                        "dialgate.dhcpd",
                        "expected FIRST-LAST (IPv4 addresses)",
                    ))?;
                pool = Some((a, b));
            }
            "updates" => {
                updates = match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(err("dialgate.updates", "on or off")),
                }
            }
            "version" => {
                version = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|v| *v > 0 && v.to_string() == value)
                        .ok_or(err("dialgate.version", "not a decimal version"))?,
                )
            }
            "mode" => {
                mode = match value {
                    "demo" => Mode::Demo,
                    "run" => Mode::Run,
                    _ => return Err(err("dialgate.mode", "demo or run")),
                }
            }
            _ => return Err(err("dialgate.*", "unknown key")),
        }
    }
    if slots.is_empty() {
        return Err(err("dialgate.slot", "no root slot"));
    }
    let dhcpd = match pool {
        None => None,
        Some(pool) => Some(dhcpd(
            pool,
            netcfg.as_ref(),
            uplink.is_some() || uplink_dhcp.is_some(),
        )?),
    };
    Ok(BootParams {
        slots,
        salt: salt.ok_or(err("dialgate.salt", "missing"))?,
        data: data.ok_or(err("dialgate.data", "missing"))?,
        net: netcfg,
        uplink,
        uplink_dhcp,
        dhcpd,
        mode,
        version,
        updates,
    })
}

/// The phone side's DHCP server from its pool: served on `dialgate.net`'s
/// interface with its address, and only when the uplink has its own
/// interface (a server on the uplink would answer the hotel's clients).
fn dhcpd(
    (first, last): (Ipv4Addr, Ipv4Addr),
    phones: Option<&Net>,
    own_uplink: bool,
) -> Result<ServerConfig, CmdlineError> {
    const K: &str = "dialgate.dhcpd";
    let phones = phones.ok_or(err(K, "needs dialgate.net (the phone side's address)"))?;
    if !own_uplink {
        return Err(err(K, "needs dialgate.uplink: never served on the uplink"));
    }
    ServerConfig::new(phones.address, phones.prefix, first, last).map_err(|e| match e {
        PoolError::BadPrefix(_) => err(K, "dialgate.net's prefix must be /8../30"),
        PoolError::NotHost(_) => err(K, "dialgate.net's address is not a host address"),
        _ => err(
            K,
            "the pool must be host addresses of dialgate.net's subnet, FIRST <= LAST",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn full_command_line_parses_in_slot_order() {
        let c = format!(
            "console=ttyAMA0 panic=-1 dialgate.slot=b:/dev/vda2:10:{H} dialgate.slot=a:/dev/vda1:12:{H} \
             dialgate.salt=0a0b dialgate.data=/dev/vda3 dialgate.net=eth0:10.0.2.15/24:10.0.2.2 \
             dialgate.uplink=eth1:10.0.3.15/24 dialgate.mode=demo"
        );
        let p = parse(&c).unwrap();
        assert_eq!(p.slots.iter().map(|s| s.name).collect::<String>(), "ba");
        assert_eq!(p.slots[1].data_blocks, 12);
        assert_eq!(p.slots[0].root_hash[1], 0x11);
        assert_eq!(p.salt, vec![10, 11]);
        assert_eq!(p.mode, Mode::Demo);
        let n = p.net.unwrap();
        assert_eq!((n.interface.as_str(), n.prefix), ("eth0", 24));
        assert_eq!(n.gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
        let u = p.uplink.unwrap();
        assert_eq!(
            (u.interface.as_str(), u.prefix, u.gateway),
            ("eth1", 24, None)
        );
        // By DHCP: the interface only.
        let d = parse(&c.replace("eth1:10.0.3.15/24", "eth1:dhcp")).unwrap();
        assert_eq!((d.uplink, d.uplink_dhcp.as_deref()), (None, Some("eth1")));
        for bad in [":dhcp", "eth1:dhcp:x", "eth1:DHCP"] {
            assert!(
                parse(&c.replace("eth1:10.0.3.15/24", bad)).is_err(),
                "{bad}"
            );
        }
        let twice = format!("{c} dialgate.uplink=eth2:dhcp");
        assert!(parse(&twice).is_err());
        // Without dialgate.uplink, one interface plays both roles.
        let one = parse(&c.replace("dialgate.uplink=eth1:10.0.3.15/24", "")).unwrap();
        assert!(one.uplink.is_none());
        assert!(parse(&c.replace("eth1:10.0.3.15/24", "eth1:10.0.3.15")).is_err());
        assert_eq!((p.slots[0].offset_blocks, p.version), (0, None));
    }

    #[test]
    fn a_firmware_slot_names_its_offset_and_version() {
        // What U-Boot passes from the boot environment (Layout::boot_vars).
        let c = format!(
            "dialgate.salt=0a dialgate.data=/dev/vda3 dialgate.slot=b:/dev/vda:1492:{H}:8787 dialgate.version=7"
        );
        let p = parse(&c).unwrap();
        assert_eq!((p.slots[0].name, p.slots[0].offset_blocks), ('b', 8787));
        assert_eq!((p.version, p.updates), (Some(7), false));
        assert!(parse(&format!("{c} dialgate.updates=on")).unwrap().updates);
        assert!(parse(&format!("{c} dialgate.updates=yes")).is_err());
        for bad in [":x ", ":087 ", ":8787:1 ", ": "] {
            assert!(parse(&c.replace(":8787 ", bad)).is_err(), "{bad}");
        }
        for bad in ["=0", "=x", "=07", "=-1", "="] {
            assert!(
                parse(&c.replace("version=7", &format!("version{bad}"))).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        let ok =
            format!("dialgate.slot=a:/dev/vda1:12:{H} dialgate.salt=00 dialgate.data=/dev/vda3");
        assert!(parse(&ok).is_ok());
        for bad in [
            ok.replace(":12:", ":0:"),
            ok.replace(":12:", ":x:"),
            ok.replace("slot=a", "slot=c"),
            ok.replace("/dev/vda1", "vda1"),
            ok.replace(H, &H[2..]),
            ok.replace("salt=00", "salt=0"),
            ok.replace(" dialgate.data=/dev/vda3", ""),
            format!("{ok} dialgate.slot=a:/dev/vda2:1:{H}"),
            format!("{ok} dialgate.net=eth0:10.0.2.15/33"),
            format!("{ok} dialgate.net=eth0:10.0.2.15"),
            format!("{ok} dialgate.mode=shell"),
            format!("{ok} dialgate.init=/bin/sh"),
            "dialgate.salt=00 dialgate.data=/dev/vda3".to_string(),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_phone_side_dhcp_server_is_its_pool_on_dialgate_net() {
        let base = format!(
            "dialgate.slot=a:/dev/vda1:12:{H} dialgate.salt=00 dialgate.data=/dev/vda3 \
             dialgate.net=eth0:10.0.2.15/24 dialgate.uplink=eth1:dhcp"
        );
        assert_eq!(parse(&base).unwrap().dhcpd, None);
        let p = parse(&format!("{base} dialgate.dhcpd=10.0.2.100-10.0.2.131")).unwrap();
        let d = p.dhcpd.expect("a server");
        assert_eq!((d.addr, d.prefix), (Ipv4Addr::new(10, 0, 2, 15), 24));
        assert_eq!(
            (d.pool_first, d.pool_last),
            (Ipv4Addr::new(10, 0, 2, 100), Ipv4Addr::new(10, 0, 2, 131))
        );
        let fixed = base.replace("eth1:dhcp", "eth1:10.0.3.15/24");
        assert!(parse(&format!("{fixed} dialgate.dhcpd=10.0.2.100-10.0.2.101")).is_ok());
        for (bad, why) in [
            ("10.0.2.100", "FIRST-LAST"),
            ("10.0.2.100-", "FIRST-LAST"),
            ("10.0.2.131-10.0.2.100", "the pool"),
            ("10.0.3.100-10.0.3.131", "the pool"),
            ("10.0.2.0-10.0.2.10", "the pool"),
            ("10.0.2.250-10.0.2.255", "the pool"),
            ("10.0.2.15-10.0.2.15", "the pool"),
            (
                "10.0.2.100-10.0.2.131 dialgate.dhcpd=10.0.2.100-10.0.2.131",
                "twice",
            ),
        ] {
            let e = parse(&format!("{base} dialgate.dhcpd={bad}")).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        // Never on the uplink: one interface for both roles is refused, as
        // is a server without the phone side's address.
        let one = base.replace(" dialgate.uplink=eth1:dhcp", "");
        let e = parse(&format!("{one} dialgate.dhcpd=10.0.2.100-10.0.2.131")).unwrap_err();
        assert!(e.to_string().contains("never served on the uplink"), "{e}");
        let none = base.replace("dialgate.net=eth0:10.0.2.15/24 ", "");
        let e = parse(&format!("{none} dialgate.dhcpd=10.0.2.100-10.0.2.131")).unwrap_err();
        assert!(e.to_string().contains("needs dialgate.net"), "{e}");
        let wide = base.replace("/24", "/31");
        assert!(parse(&format!("{wide} dialgate.dhcpd=10.0.2.14-10.0.2.14")).is_err());
    }
}
