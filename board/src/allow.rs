//! What the firewall opens: derived from the kit configuration, read with
//! the gateway's own parser ([`dialgate_proto::config::Config`]), and from
//! the signed policy in force, through the same function the gateway uses
//! to learn its trunks ([`Verified::trunks_in_force`]). So the firewall
//! opens exactly what the gateway will use:
//!
//! - inbound on the phone interface: the phone-side SIP/TLS port
//!   (`[phone] listen`) and the media range (`[media]`);
//! - inbound on the uplink: the bridge listener's port
//!   (`[bridge_listener] listen`), if there is one, and nothing else;
//! - outbound TLS on the uplink: the `connect` address and every
//!   Record-Route hop (`routes`) of every trunk in force (a trunk by name,
//!   `connect = "NAME:PORT"`, opens its **port at any address**: PID 1
//!   resolves no names, the addresses come from DNS at each connect, and
//!   the trunk's TLS check decides the peer; an SRV trunk, `srv = true`,
//!   takes its ports from DNS too and is **not** opened,
//!   `docs/network.md`, "DNS"), that is the
//!   configuration's trunks with the policy's settings applied (a trunk the
//!   policy moves is open at its new address only) and the trunks the
//!   policy adds; and home: the repository (`[management]`), the status
//!   push (`[status]`), the SIEM (`[audit.siem]`) and the network check's
//!   portal probe (`[network] portal_probe`, plain HTTP);
//! - outbound UDP on the uplink to the network check's STUN server
//!   (`[network] stun`) and to the resolvers (`[dns] servers`, and the
//!   uplink lease's DNS servers, [`AllowList::set_lease_dns`]), from any
//!   port (neither socket is a media socket).
//!
//! The policy comes from the gateway's kept copy of the bundle it last
//! applied, which PID 1 verifies itself ([`crate::copy`]).

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use dialgate_proto::config::{Config, ConfigError, Connect, ReadFile, TrunkConfig};
use dialgate_proto::policy::{PolicyError, Verified};

use crate::copy::{AppliedCopy, Change, Refused};
use crate::firewall::Inputs;

/// Largest file the configuration may name (as the gateway's reader).
pub const MAX_KIT_FILE: u64 = 1 << 20;

/// Reads the files the kit configuration names (the configuration itself,
/// trunk CAs, the pinned policy key), at most [`MAX_KIT_FILE`] bytes each,
/// so that a huge or endless file cannot exhaust PID 1's memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct KitFiles;

impl ReadFile for KitFiles {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_KIT_FILE + 1)
            .read_to_end(&mut out)?;
        if out.len() as u64 > MAX_KIT_FILE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {MAX_KIT_FILE} bytes"),
            ));
        }
        Ok(out)
    }
}

/// Reads and validates the kit configuration at `path`, exactly as the
/// gateway does.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    Config::load(path, &KitFiles)
}

/// The firewall's inputs for the configuration alone (no policy in force:
/// none configured, none applied yet, or its copy refused).
pub fn config_only(config: &Config, phones: &str, uplink: &str) -> Inputs {
    from_trunks(config, &config.trunks, phones, uplink)
}

/// The firewall's inputs for the configuration and the policy in force
/// (`None`: [`config_only`]). `phones` and `uplink` name the interfaces
/// (the same one for both on a single-interface board). Refuses a policy
/// the gateway would refuse for this configuration (it adds a trunk
/// without `policy.trunk_media_address`, or names an unknown trunk): the
/// caller then falls back to [`config_only`], as the gateway keeps no such
/// policy in force.
pub fn inputs(
    config: &Config,
    policy: Option<&Verified>,
    phones: &str,
    uplink: &str,
) -> Result<Inputs, PolicyError> {
    let Some(v) = policy else {
        return Ok(config_only(config, phones, uplink));
    };
    let added_media = config.policy.as_ref().and_then(|p| p.trunk_media_address);
    let trunks = v.trunks_in_force(&config.trunks, added_media)?;
    Ok(from_trunks(config, &trunks, phones, uplink))
}

fn from_trunks(
    config: &Config,
    trunks: &HashMap<String, TrunkConfig>,
    phones: &str,
    uplink: &str,
) -> Inputs {
    let mut outbound: Vec<SocketAddr> = trunks
        .values()
        .flat_map(|t| t.connect.addr().into_iter().chain(t.routes.iter().copied()))
        .chain(home(config))
        .collect();
    // A stable order, so that equal inputs compare equal (and an unchanged
    // allow-list is not loaded again).
    outbound.sort();
    outbound.dedup();
    let mut outbound_ports: Vec<u16> = trunks
        .values()
        .filter_map(|t| match t.connect {
            Connect::Name { port, .. } => Some(port),
            _ => None,
        })
        .collect();
    outbound_ports.sort_unstable();
    outbound_ports.dedup();
    Inputs {
        phones: phones.to_string(),
        uplink: uplink.to_string(),
        sip_port: config.phone.listen.port(),
        media: (config.media.port_min, config.media.port_max),
        bridge_listener: config.bridge_listener.as_ref().map(|b| b.listen.port()),
        outbound,
        outbound_ports,
        udp_outbound: config
            .network
            .as_ref()
            .and_then(|n| n.stun)
            .into_iter()
            .chain(config.dns.iter().flat_map(|d| d.servers.iter().copied()))
            .collect(),
        // Set by the allow-list PID 1 keeps ([`AllowList::with_dhcp_client`]).
        dhcp_client: false,
        // Set by the allow-list PID 1 keeps ([`AllowList::with_dhcp_server`]).
        dhcp_server: false,
    }
}

/// The servers at home the kit opens TCP connections to.
fn home(config: &Config) -> impl Iterator<Item = SocketAddr> + '_ {
    let management = config.management.as_ref().map(|m| m.addr);
    let status = config.status.as_ref().map(|s| s.addr);
    let siem = config
        .audit
        .as_ref()
        .and_then(|a| a.siem.as_ref())
        .map(|s| s.addr);
    let portal = config
        .network
        .as_ref()
        .and_then(|n| n.portal_probe.as_ref())
        .map(|(a, _)| *a);
    [management, status, siem, portal].into_iter().flatten()
}

/// The allow-list PID 1 keeps loaded: the configuration, the interfaces,
/// the watched policy copy ([`AppliedCopy`]) and the inputs loaded last.
///
/// Drive it with [`AllowList::poll`] (the first call at boot, before any
/// interface is up, then about once a second); when it returns
/// [`Next::load`], load that ruleset and report it with
/// [`AllowList::loaded`]. A load that failed is simply not reported: the
/// next poll offers the same inputs again.
#[derive(Debug)]
pub struct AllowList {
    config: Config,
    phones: String,
    uplink: String,
    dhcp_client: bool,
    dhcp_server: bool,
    lease_dns: Vec<SocketAddr>,
    copy: Option<AppliedCopy>,
    loaded: Option<Inputs>,
}

/// What [`AllowList::poll`] found.
#[derive(Debug, Default)]
pub struct Next {
    /// The inputs to load: they differ from those loaded (or none is).
    pub load: Option<Inputs>,
    /// The version of the policy whose trunks they open; `None`: the
    /// configuration's trunks only.
    pub policy: Option<u64>,
    /// Why only the configuration's trunks are open, when that became so.
    pub config_only: Option<Refused>,
}

impl AllowList {
    /// For `config`, with `phones` and `uplink` naming the interfaces.
    pub fn new(config: Config, phones: &str, uplink: &str) -> AllowList {
        AllowList {
            copy: AppliedCopy::new(&config),
            config,
            phones: phones.to_string(),
            uplink: uplink.to_string(),
            dhcp_client: false,
            dhcp_server: false,
            lease_dns: Vec::new(),
            loaded: None,
        }
    }

    /// The uplink lease's DNS servers now (port 53; none: no lease): they
    /// are opened with `[dns] servers` from the next [`AllowList::poll`].
    pub fn set_lease_dns(&mut self, servers: &[Ipv4Addr]) {
        self.lease_dns = servers.iter().map(|a| SocketAddr::from((*a, 53))).collect();
    }

    /// The uplink takes its address by DHCP: open its client's exchange
    /// ([`Inputs::dhcp_client`]).
    pub fn with_dhcp_client(mut self) -> AllowList {
        self.dhcp_client = true;
        self
    }

    /// The phone side's DHCP server runs: open its exchange on the phone
    /// interface ([`Inputs::dhcp_server`]).
    pub fn with_dhcp_server(mut self) -> AllowList {
        self.dhcp_server = true;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Looks at the policy copy (a stat unless it changed) at `now_unix`;
    /// see [`Next`].
    pub fn poll(&mut self, now_unix: u64) -> Next {
        let mut next = Next::default();
        let change = match self.copy.as_mut() {
            Some(c) => c.poll(&self.config, now_unix),
            None => None,
        };
        if let Some(Change::ConfigOnly(why)) = change {
            next.config_only = Some(why);
        }
        let policy = self.copy.as_ref().and_then(AppliedCopy::current);
        let mut inputs = match inputs(&self.config, policy, &self.phones, &self.uplink) {
            Ok(i) => {
                next.policy = policy.map(Verified::version);
                i
            }
            // Not reached: the copy is refused when it does not fit.
            Err(_) => config_only(&self.config, &self.phones, &self.uplink),
        };
        inputs.dhcp_client = self.dhcp_client;
        inputs.dhcp_server = self.dhcp_server;
        for s in &self.lease_dns {
            if !inputs.udp_outbound.contains(s) {
                inputs.udp_outbound.push(*s);
            }
        }
        if self.loaded.as_ref() != Some(&inputs) {
            next.load = Some(inputs);
        }
        next
    }

    /// Records that `inputs` (from [`Next::load`]) are loaded now.
    pub fn loaded(&mut self, inputs: Inputs) {
        self.loaded = Some(inputs);
    }

    /// Whether a ruleset has been loaded yet (at boot: none is).
    pub fn is_loaded(&self) -> bool {
        self.loaded.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{kit_config, policy_body, Kit};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn config_only_opens_the_phone_services_the_trunks_and_their_routes() {
        let kit = Kit::new();
        let c = kit.config(&kit_config(None, true));
        let i = inputs(&c, None, "eth0", "eth1").unwrap();
        assert_eq!(i, config_only(&c, "eth0", "eth1"));
        assert_eq!((i.sip_port, i.media), (5261, (42000, 42009)));
        assert_eq!((i.phones.as_str(), i.uplink.as_str()), ("eth0", "eth1"));
        assert_eq!(i.bridge_listener, Some(5062));
        assert_eq!(
            i.outbound,
            [addr("10.199.0.2:5061"), addr("10.199.0.2:5062")],
            "the trunk and its Record-Route hop"
        );
        let c = kit.config(&kit_config(None, false));
        assert_eq!(inputs(&c, None, "a", "b").unwrap().bridge_listener, None);
    }

    #[test]
    fn a_trunk_by_name_opens_its_port_and_its_resolvers() {
        let kit = Kit::new();
        let mut text = kit_config(None, false).replace(
            "connect = \"10.199.0.2:5061\"",
            "connect = \"bridge.hotel.test:5061\"",
        );
        text.push_str("[dns]\nservers = [\"10.199.0.53\"]\n");
        let c = kit.config(&text);
        let i = inputs(&c, None, "eth0", "eth1").unwrap();
        assert_eq!(
            i.outbound,
            [addr("10.199.0.2:5062")],
            "no address for the name, its listed route"
        );
        assert_eq!(i.outbound_ports, [5061], "the name's port, any address");
        assert_eq!(i.udp_outbound, [addr("10.199.0.53:53")]);
        // By SRV: the ports come from DNS, nothing is opened.
        let srv = text.replace(
            "connect = \"bridge.hotel.test:5061\"",
            "connect = \"hotel.test\"\nsrv = true",
        );
        let i = inputs(&kit.config(&srv), None, "eth0", "eth1").unwrap();
        assert!(i.outbound_ports.is_empty(), "{:?}", i.outbound_ports);
    }

    #[test]
    fn the_lease_dns_servers_are_opened_until_the_lease_is_gone() {
        let kit = Kit::new();
        let mut text = kit_config(None, false);
        text.push_str("[dns]\nservers = [\"10.199.0.53\"]\n");
        let mut list = AllowList::new(kit.config(&text), "eth0", "eth1");
        let first = list.poll(0).load.expect("the first ruleset");
        assert_eq!(first.udp_outbound, [addr("10.199.0.53:53")]);
        list.loaded(first);
        assert!(list.poll(0).load.is_none(), "unchanged");
        // A lease naming two servers, one of them the configured one.
        list.set_lease_dns(&[
            Ipv4Addr::new(192, 168, 77, 1),
            Ipv4Addr::new(10, 199, 0, 53),
        ]);
        let leased = list.poll(0).load.expect("the lease's servers opened");
        assert_eq!(
            leased.udp_outbound,
            [addr("10.199.0.53:53"), addr("192.168.77.1:53")]
        );
        list.loaded(leased);
        // The lease lost: only the configuration's again.
        list.set_lease_dns(&[]);
        let lost = list.poll(0).load.expect("closed again");
        assert_eq!(lost.udp_outbound, [addr("10.199.0.53:53")]);
    }

    #[test]
    fn home_servers_are_opened_on_the_uplink_and_stun_over_udp() {
        let kit = Kit::new();
        let mut text = kit_config(None, false);
        text.push_str(
            "[management]\nurl = \"https://10.199.0.20:8443/\"\nca = \"ca.pem\"\n\
             certificate = \"c.pem\"\ndevice_key = \"k.pem\"\nstate = \"state/repo.state\"\n\
             timestamp_key = \"policy-key.pub.pem\"\nsnapshot_key = \"policy-key.pub.pem\"\n\
             [status]\nurl = \"https://10.199.0.21:9091/\"\nca = \"ca.pem\"\n\
             certificate = \"c.pem\"\ndevice_key = \"k.pem\"\n\
             [audit]\nspool = \"state/audit\"\nkey = \"audit.pk8\"\n\
             siem = \"relp-tls://10.199.0.22:2514\"\nsiem_ca = \"ca.pem\"\n\
             certificate = \"c.pem\"\ndevice_key = \"k.pem\"\n\
             [network]\nportal_probe = \"http://10.199.0.23/generate_204\"\n\
             stun = \"10.199.0.24:3478\"\n",
        );
        let c = kit.config(&text);
        let i = inputs(&c, None, "eth0", "eth1").unwrap();
        assert_eq!(
            i.outbound,
            [
                addr("10.199.0.2:5061"),
                addr("10.199.0.2:5062"),
                addr("10.199.0.20:8443"),
                addr("10.199.0.21:9091"),
                addr("10.199.0.22:2514"),
                addr("10.199.0.23:80"),
            ]
        );
        assert_eq!(i.udp_outbound, [addr("10.199.0.24:3478")]);
        let nft = crate::firewall::build(&i).to_nft();
        assert!(
            nft.contains("oifname \"eth1\" ip daddr 10.199.0.24 udp dport 3478 accept"),
            "{nft}"
        );
        assert!(
            nft.contains("oifname \"eth1\" ip daddr 10.199.0.20 tcp dport 8443 accept"),
            "{nft}"
        );
    }

    #[test]
    fn the_policy_in_force_adds_and_moves_trunks() {
        let kit = Kit::new();
        let c = kit.config(&kit_config(None, true));
        // Adds "webex" with a route; moves nothing of the kit's.
        let v1 = kit.verified(&policy_body(
            1,
            &[("webex", "10.199.0.3:5061", &["10.199.0.4:5062"])],
        ));
        let i = inputs(&c, Some(&v1), "eth0", "eth1").unwrap();
        assert_eq!(
            i.outbound,
            [
                addr("10.199.0.2:5061"),
                addr("10.199.0.2:5062"),
                addr("10.199.0.3:5061"),
                addr("10.199.0.4:5062")
            ]
        );
        // Moves "webex" and the kit's own trunk: the old addresses close.
        let v2 = kit.verified(&policy_body(
            2,
            &[
                ("webex", "10.199.0.5:5061", &[]),
                ("bridge", "10.199.0.6:5061", &["10.199.0.6:5062"]),
            ],
        ));
        let i = inputs(&c, Some(&v2), "eth0", "eth1").unwrap();
        assert_eq!(
            i.outbound,
            [
                addr("10.199.0.5:5061"),
                addr("10.199.0.6:5061"),
                addr("10.199.0.6:5062")
            ]
        );
    }

    #[test]
    fn a_policy_the_gateway_would_refuse_is_refused_here_too() {
        let kit = Kit::new();
        // No bridge listener and no trunk_media_address: nowhere for an
        // added trunk's media.
        let c = kit.config(&kit_config(None, false));
        let v = kit.verified(&policy_body(1, &[("webex", "10.199.0.3:5061", &[])]));
        assert!(matches!(
            inputs(&c, Some(&v), "eth0", "eth1"),
            Err(PolicyError::NoTrunkMediaAddress { .. })
        ));
        // With the address set, it fits.
        let c = kit.config(&kit_config(Some("10.199.0.1"), false));
        assert!(inputs(&c, Some(&v), "eth0", "eth1").is_ok());
    }

    #[test]
    fn kit_files_are_bounded() {
        let kit = Kit::new();
        let big = kit.dir.join("big");
        std::fs::write(&big, vec![b'x'; MAX_KIT_FILE as usize + 1]).unwrap();
        assert!(KitFiles.read(&big).is_err());
        std::fs::write(&big, b"x").unwrap();
        assert_eq!(KitFiles.read(&big).unwrap(), b"x");
        assert!(load_config(&kit.dir.join("nope.toml")).is_err());
    }

    #[test]
    fn the_allow_list_offers_a_ruleset_only_when_it_changes() {
        let kit = Kit::new();
        let c = kit.config(&kit_config(Some("10.199.0.1"), false));
        let copy = c.policy.as_ref().unwrap().applied_copy();
        let mut a = AllowList::new(c, "eth0", "eth1");
        let now = crate::copy::now_unix();
        // At boot: the configuration's trunks, and why.
        let n = a.poll(now);
        let first = n.load.expect("a first ruleset");
        assert_eq!(n.policy, None);
        assert!(matches!(n.config_only, Some(Refused::Unreadable { .. })));
        assert!(!a.is_loaded());
        // Not reported loaded (the load failed): offered again.
        assert_eq!(a.poll(now).load.as_ref(), Some(&first));
        a.loaded(first.clone());
        let n = a.poll(now);
        assert!(n.load.is_none() && n.config_only.is_none());
        // A policy that opens nothing new: nothing to load.
        std::fs::write(&copy, kit.bundle(&policy_body(1, &[]))).unwrap();
        let n = a.poll(now);
        assert_eq!(n.policy, Some(1));
        assert!(n.load.is_none());
        // One that adds a trunk: a new ruleset.
        std::fs::write(
            &copy,
            kit.bundle(&policy_body(2, &[("webex", "10.199.0.3:5061", &[])])),
        )
        .unwrap();
        let n = a.poll(now);
        assert_eq!(n.policy, Some(2));
        let second = n.load.expect("the added trunk opens");
        assert!(second.outbound.contains(&addr("10.199.0.3:5061")));
        a.loaded(second);
        // A forged one: back to the configuration's trunks, and why.
        std::fs::write(&copy, b"dialgate-policy-bundle v1 1\nx\n").unwrap();
        let n = a.poll(now);
        assert_eq!(n.load, Some(first));
        assert!(matches!(n.config_only, Some(Refused::Policy { .. })));
    }

    #[test]
    fn the_phone_dhcp_server_is_opened_when_pid_1_runs_it() {
        let kit = Kit::new();
        let c = kit.config(&kit_config(None, false));
        let now = crate::copy::now_unix();
        let plain = AllowList::new(c.clone(), "eth0", "eth1")
            .poll(now)
            .load
            .unwrap();
        assert!(!plain.dhcp_server);
        let with = AllowList::new(c, "eth0", "eth1")
            .with_dhcp_server()
            .poll(now)
            .load
            .unwrap();
        assert!(with.dhcp_server && !with.dhcp_client);
        assert_eq!(
            Inputs {
                dhcp_server: false,
                ..with
            },
            plain
        );
    }
}
