//! What listens: parsed from `/proc/net/{tcp,tcp6,udp,udp6}`, for the
//! status line on the serial console and for the readiness check.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Transport of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// A TCP socket in LISTEN.
    Tcp,
    /// A bound UDP socket that is not connected.
    Udp,
}

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listening {
    /// Transport.
    pub proto: Proto,
    /// Local address.
    pub addr: SocketAddr,
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        write!(f, "{p}/{}", self.addr)
    }
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints each 32-bit word of the address in host order.
    let words: Option<Vec<u32>> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let words = words?;
    let ip = match (ip.len(), words.as_slice()) {
        (8, [w]) => IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes())),
        (32, [a, b, c, d]) => {
            let mut o = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Listening sockets in one `/proc/net/*` table.
pub fn parse_table(proto: Proto, text: &str) -> Vec<Listening> {
    // TCP_LISTEN is 0x0A; an unconnected UDP socket shows TCP_CLOSE (0x07).
    let want = match proto {
        Proto::Tcp => "0A",
        Proto::Udp => "07",
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3)? != &want {
                return None;
            }
            Some(Listening {
                proto,
                addr: parse_addr(f.get(1)?)?,
            })
        })
        .collect()
}

/// The status line's list: sorted, deduplicated, space-separated.
pub fn render(mut l: Vec<Listening>) -> String {
    l.sort();
    l.dedup();
    l.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `Key: value kB` field of `/proc/meminfo` or `/proc/PID/status`, in KiB.
pub fn kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The idle-memory status: memory in use by the whole system (MemTotal -
/// MemAvailable) and the gateway's resident set, in KiB.
pub fn memory_line(meminfo: &str, gateway_status: &str) -> String {
    let used = kib(meminfo, "MemTotal")
        .zip(kib(meminfo, "MemAvailable"))
        .map(|(t, a)| t.saturating_sub(a));
    let show = |v: Option<u64>| v.map_or("?".to_string(), |k| format!("{k} KiB"));
    format!(
        "memory: system in use {}, gateway resident {}",
        show(used),
        show(kib(gateway_status, "VmRSS"))
    )
}

/// Where a process's executable is mapped: the start of the first line of
/// its `/proc/PID/maps` (the ELF's first segment). A static-PIE under
/// ASLR lands at a random high address; a non-PIE one at its link address
/// (0x400000 on aarch64).
pub fn load_address(maps: &str) -> Option<u64> {
    let first = maps.lines().next()?;
    u64::from_str_radix(first.split('-').next()?, 16).ok()
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tables_parse() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0F02000A:13C5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:13CF 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:13C5 0202000A:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
";
        let l = parse_table(Proto::Tcp, tcp);
        assert_eq!(render(l), "tcp/10.0.2.15:5061 tcp/127.0.0.1:5071");
        let tcp6 =
            "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0";
        assert_eq!(render(parse_table(Proto::Tcp, tcp6)), "tcp/[::1]:8080");
        let udp = "   sl  local_address rem_address   st
  1: 0F02000A:7530 00000000:0000 07 00000000:00000000";
        assert_eq!(render(parse_table(Proto::Udp, udp)), "udp/10.0.2.15:30000");
        assert!(parse_table(Proto::Tcp, "header\n garbage").is_empty());
    }

    #[test]
    fn load_address_from_maps() {
        let maps = "aaaab3c21000-aaaab3d5e000 r-xp 00000000 fe:00 12 /bin/dialgate\n\
                    aaaab3d6d000-aaaab3d9a000 r--p 0013c000 fe:00 12 /bin/dialgate\n";
        assert_eq!(load_address(maps), Some(0xaaaa_b3c2_1000));
        assert_eq!(load_address(""), None);
        assert_eq!(load_address("zz-1 r-xp"), None);
    }

    #[test]
    fn memory_figures() {
        let mem = "MemTotal:         247000 kB\nMemFree:  1 kB\nMemAvailable:     200000 kB\n";
        let st = "Name:\tdialgate\nVmRSS:\t   12345 kB\n";
        assert_eq!(
            memory_line(mem, st),
            "memory: system in use 47000 KiB, gateway resident 12345 KiB"
        );
        assert_eq!(kib(mem, "MemFree"), Some(1));
        assert_eq!(
            memory_line("", ""),
            "memory: system in use ?, gateway resident ?"
        );
    }
}
