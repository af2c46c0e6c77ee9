//! The default-deny firewall, as data: which packets the appliance
//! accepts on which interface. Rendered in nft(8) syntax for review;
//! [`crate::nft`] encodes it as the netlink batch PID 1 loads, and
//! [`crate::allow`] derives the [`Inputs`] from the kit configuration and
//! the policy in force.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// What the ruleset is built from (the kit configuration and the policy
/// in force, see [`crate::allow::inputs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// Interface facing the phones.
    pub phones: String,
    /// Interface facing the internet (bridges, home).
    pub uplink: String,
    /// The phone-side SIP/TLS port.
    pub sip_port: u16,
    /// The phone-side media port range (inclusive).
    pub media: (u16, u16),
    /// The bridge listener's port (`[bridge_listener]`), accepted on the
    /// uplink: bridges that open their own connection for in-dialog
    /// requests. `None`: nothing new is accepted on the uplink.
    pub bridge_listener: Option<u16>,
    /// Bridges (trunks and their Record-Route hops) and home the gateway
    /// may connect to (TLS).
    pub outbound: Vec<SocketAddr>,
    /// TCP ports the gateway may connect to at any address (TLS): the
    /// ports of trunks by name (`connect = "NAME:PORT"`), whose addresses
    /// come from DNS at each connect; the trunk's TLS check decides the
    /// peer.
    pub outbound_ports: Vec<u16>,
    /// Servers the gateway may send UDP to from any port (the network
    /// check's STUN server).
    pub udp_outbound: Vec<SocketAddr>,
    /// The uplink takes its address by DHCP: its client's exchange (UDP
    /// 68 → 67 out, 67 → 68 in: the server's replies are broadcast, not
    /// replies conntrack knows).
    pub dhcp_client: bool,
    /// The phone side's DHCP server runs (`dialgate-dhcp --serve`): its
    /// exchange on the phone interface (UDP 68 → 67 in, 67 → 68 out: its
    /// answers to phones without an address are broadcast, not replies
    /// conntrack knows). Ignored when the phone and the uplink are one
    /// interface: no DHCP server is run on the uplink.
    pub dhcp_server: bool,
}

/// One accept rule; everything else is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Loopback traffic (the gateway talks to itself, the demo bridge).
    Loopback,
    /// Replies on connections we accepted or opened.
    Established,
    /// New TCP to `port` arriving on `iface`.
    TcpIn {
        /// Interface.
        iface: String,
        /// Port.
        port: u16,
    },
    /// UDP to a port in the range arriving on `iface`.
    UdpIn {
        /// Interface.
        iface: String,
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
    /// New TCP from us to `port` at any address leaving on `iface`.
    TcpOutPort {
        /// Interface.
        iface: String,
        /// Destination port.
        port: u16,
    },
    /// New TCP from us to `dest` leaving on `iface`.
    TcpOut {
        /// Interface.
        iface: String,
        /// Destination.
        dest: SocketAddr,
    },
    /// UDP from us to `dest` leaving on `iface`, from any port.
    UdpOut {
        /// Interface.
        iface: String,
        /// Destination.
        dest: SocketAddr,
    },
    /// UDP from port `sport` to port `dport` arriving on `iface`.
    UdpInPorts {
        /// Interface.
        iface: String,
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// UDP from port `sport` to port `dport` leaving on `iface`.
    UdpOutPorts {
        /// Interface.
        iface: String,
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// Media leaving `iface` from the media range.
    UdpOutFromMedia {
        /// Interface.
        iface: String,
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
}

/// The input and output chains' accept rules (policy drop on both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Accepted inbound.
    pub input: Vec<Rule>,
    /// Accepted outbound.
    pub output: Vec<Rule>,
}

/// Builds the ruleset: phones may reach only SIP/TLS and the media range on
/// the phone interface; the uplink accepts nothing new inbound but the
/// bridge listener, when there is one; outbound only TLS to the listed
/// bridges/home and media from the media range.
pub fn build(i: &Inputs) -> Ruleset {
    let (lo, hi) = i.media;
    let mut output = vec![Rule::Loopback, Rule::Established];
    for d in &i.outbound {
        output.push(Rule::TcpOut {
            iface: i.uplink.clone(),
            dest: *d,
        });
    }
    for &port in &i.outbound_ports {
        output.push(Rule::TcpOutPort {
            iface: i.uplink.clone(),
            port,
        });
    }
    for d in &i.udp_outbound {
        output.push(Rule::UdpOut {
            iface: i.uplink.clone(),
            dest: *d,
        });
    }
    if i.dhcp_client {
        output.push(Rule::UdpOutPorts {
            iface: i.uplink.clone(),
            sport: 68,
            dport: 67,
        });
    }
    for iface in [&i.phones, &i.uplink] {
        let r = Rule::UdpOutFromMedia {
            iface: iface.clone(),
            lo,
            hi,
        };
        if !output.contains(&r) {
            output.push(r);
        }
    }
    let mut input = vec![
        Rule::Loopback,
        Rule::Established,
        Rule::TcpIn {
            iface: i.phones.clone(),
            port: i.sip_port,
        },
        Rule::UdpIn {
            iface: i.phones.clone(),
            lo,
            hi,
        },
    ];
    if i.dhcp_client {
        input.push(Rule::UdpInPorts {
            iface: i.uplink.clone(),
            sport: 67,
            dport: 68,
        });
    }
    if i.dhcp_server && i.phones != i.uplink {
        input.push(Rule::UdpInPorts {
            iface: i.phones.clone(),
            sport: 68,
            dport: 67,
        });
        output.push(Rule::UdpOutPorts {
            iface: i.phones.clone(),
            sport: 67,
            dport: 68,
        });
    }
    if let Some(port) = i.bridge_listener {
        let r = Rule::TcpIn {
            iface: i.uplink.clone(),
            port,
        };
        if !input.contains(&r) {
            input.push(r);
        }
    }
    Ruleset { input, output }
}

fn rule(r: &Rule) -> String {
    match r {
        Rule::Loopback => "iif lo accept".into(),
        Rule::Established => "ct state established,related accept".into(),
        Rule::TcpIn { iface, port } => format!("iifname {iface:?} tcp dport {port} accept"),
        Rule::UdpIn { iface, lo, hi } => format!("iifname {iface:?} udp dport {lo}-{hi} accept"),
        Rule::TcpOutPort { iface, port } => format!("oifname {iface:?} tcp dport {port} accept"),
        Rule::TcpOut { iface, dest } => {
            let fam = if dest.is_ipv4() { "ip" } else { "ip6" };
            format!(
                "oifname {iface:?} {fam} daddr {} tcp dport {} accept",
                dest.ip(),
                dest.port()
            )
        }
        Rule::UdpOut { iface, dest } => {
            let fam = if dest.is_ipv4() { "ip" } else { "ip6" };
            format!(
                "oifname {iface:?} {fam} daddr {} udp dport {} accept",
                dest.ip(),
                dest.port()
            )
        }
        Rule::UdpInPorts {
            iface,
            sport,
            dport,
        } => {
            format!("iifname {iface:?} udp sport {sport} udp dport {dport} accept")
        }
        Rule::UdpOutPorts {
            iface,
            sport,
            dport,
        } => {
            format!("oifname {iface:?} udp sport {sport} udp dport {dport} accept")
        }
        Rule::UdpOutFromMedia { iface, lo, hi } => {
            format!("oifname {iface:?} udp sport {lo}-{hi} accept")
        }
    }
}

impl Ruleset {
    /// nft(8) syntax of the whole table.
    pub fn to_nft(&self) -> String {
        let mut s = String::from("table inet dialgate {\n");
        for (name, hook, rules) in [
            ("input", "input", &self.input),
            ("output", "output", &self.output),
        ] {
            let _ = writeln!(
                s,
                "  chain {name} {{\n    type filter hook {hook} priority 0; policy drop;"
            );
            for r in rules {
                let _ = writeln!(
                    s,
                    "    {}",
                    rule(r).replace("iif lo", if hook == "output" { "oif lo" } else { "iif lo" })
                );
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            phones: "phones".into(),
            uplink: "uplink".into(),
            sip_port: 5061,
            media: (30000, 30009),
            bridge_listener: None,
            outbound: vec!["192.0.2.10:5061".parse().unwrap()],
            outbound_ports: vec![],
            udp_outbound: vec![],
            dhcp_client: false,
            dhcp_server: false,
        }
    }

    #[test]
    fn the_dhcp_server_opens_its_exchange_on_the_phone_side_only() {
        let mut i = inputs();
        let closed = build(&i);
        i.dhcp_server = true;
        let r = build(&i);
        let nft = r.to_nft();
        assert!(
            nft.contains("iifname \"phones\" udp sport 68 udp dport 67 accept"),
            "{nft}"
        );
        assert!(
            nft.contains("oifname \"phones\" udp sport 67 udp dport 68 accept"),
            "{nft}"
        );
        // Exactly two rules more, both on the phone interface.
        let added: Vec<&Rule> = r
            .input
            .iter()
            .chain(&r.output)
            .filter(|x| !closed.input.contains(x) && !closed.output.contains(x))
            .collect();
        assert_eq!(added.len(), 2, "{added:?}");
        assert!(added
            .iter()
            .all(|x| format!("{x:?}").contains("\"phones\"")));
        assert!(!nft.contains("\"uplink\" udp sport 6"), "{nft}");
        // With the uplink's client too, each keeps to its interface.
        i.dhcp_client = true;
        let nft = build(&i).to_nft();
        assert!(
            nft.contains("iifname \"uplink\" udp sport 67 udp dport 68 accept"),
            "{nft}"
        );
        assert!(!nft.contains("iifname \"uplink\" udp sport 68"), "{nft}");
        // No server on an interface that is also the uplink.
        i.uplink = "phones".into();
        i.dhcp_client = false;
        assert!(!build(&i).to_nft().contains("dport 67"));
    }

    #[test]
    fn a_dhcp_uplink_opens_its_client_exchange_and_nothing_more() {
        let mut i = inputs();
        let before = build(&i);
        i.dhcp_client = true;
        let r = build(&i);
        let nft = r.to_nft();
        assert!(
            nft.contains("iifname \"uplink\" udp sport 67 udp dport 68 accept"),
            "{nft}"
        );
        assert!(
            nft.contains("oifname \"uplink\" udp sport 68 udp dport 67 accept"),
            "{nft}"
        );
        assert_eq!(r.input.len(), before.input.len() + 1);
        assert_eq!(r.output.len(), before.output.len() + 1);
        assert!(!nft.contains("\"phones\" udp sport 67"), "{nft}");
    }

    #[test]
    fn default_deny_with_only_the_phone_services_open() {
        let r = build(&inputs());
        let nft = r.to_nft();
        assert_eq!(nft.matches("policy drop").count(), 2, "{nft}");
        assert!(nft.contains("iifname \"phones\" tcp dport 5061 accept"));
        assert!(nft.contains("iifname \"phones\" udp dport 30000-30009 accept"));
        assert!(nft.contains("oifname \"uplink\" ip daddr 192.0.2.10 tcp dport 5061 accept"));
        // Nothing new is accepted inbound on the uplink.
        assert!(!r.input.iter().any(|x| format!("{x:?}").contains("uplink")));
        assert!(nft.contains("oif lo accept") && nft.contains("iif lo accept"));
    }

    #[test]
    fn one_interface_for_both_roles_does_not_duplicate_rules() {
        let mut i = inputs();
        i.uplink = "phones".into();
        let r = build(&i);
        let media = r
            .output
            .iter()
            .filter(|x| matches!(x, Rule::UdpOutFromMedia { .. }))
            .count();
        assert_eq!(media, 1);
    }

    #[test]
    fn the_bridge_listener_is_the_one_port_open_on_the_uplink() {
        let mut i = inputs();
        i.bridge_listener = Some(5062);
        let r = build(&i);
        let uplink_in: Vec<_> = r
            .input
            .iter()
            .filter(|x| format!("{x:?}").contains("uplink"))
            .collect();
        assert_eq!(
            uplink_in,
            [&Rule::TcpIn {
                iface: "uplink".into(),
                port: 5062
            }]
        );
        assert!(r
            .to_nft()
            .contains("iifname \"uplink\" tcp dport 5062 accept"));
    }
}
