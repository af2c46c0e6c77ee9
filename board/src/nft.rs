//! The firewall [`Ruleset`] encoded as one nftables netlink batch
//! (`NFNL_MSG_BATCH_BEGIN`, the table replaced, two base chains with policy
//! drop, one rule per accept, `NFNL_MSG_BATCH_END`): the kernel applies the
//! whole batch or none of it. The table is replaced as `nft -f` does it
//! (create it if absent, delete it, create it again, all in the batch), so
//! the same batch installs the first ruleset at boot and swaps in a new
//! one when the policy in force changes, with no moment in between where
//! the old rules are gone and the new ones not yet in. Every message asks for an acknowledgement, so the
//! sender learns which one failed. Constants are from
//! `linux/netfilter/nf_tables.h` and `linux/netfilter/nfnetlink.h`.

use crate::firewall::{Rule, Ruleset};

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// The table's name.
pub const TABLE: &str = "dialgate";

// Attribute numbers.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;

const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const CMP_LTE: u32 = 3;
const CMP_GTE: u32 = 5;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const CT_STATE: u32 = 0;
/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)`.
const CT_ESTABLISHED_RELATED: u32 = 2 | 4;

/// A netlink attribute builder.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }
    fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(ty, &b)
    }
    fn u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }
    fn nest(&mut self, ty: u16, inner: Attrs) -> &mut Self {
        self.put(ty | NLA_F_NESTED, &inner.0)
    }
}

fn attrs(f: impl FnOnce(&mut Attrs)) -> Attrs {
    let mut a = Attrs::default();
    f(&mut a);
    a
}

/// One expression of a rule.
enum Expr {
    Meta { key: u32 },
    Cmp { op: u32, data: Vec<u8> },
    Payload { base: u32, offset: u32, len: u32 },
    CtState,
    BitwiseMask { mask: u32 },
    Accept,
}

impl Expr {
    fn encode(&self) -> Attrs {
        let (name, data) = match self {
            Expr::Meta { key } => (
                "meta",
                attrs(|a| {
                    a.u32(1, REG_1).u32(2, *key); // DREG, KEY
                }),
            ),
            Expr::Cmp { op, data } => (
                "cmp",
                attrs(|a| {
                    a.u32(1, REG_1).u32(2, *op); // SREG, OP
                    a.nest(
                        3,
                        attrs(|d| {
                            d.put(NFTA_DATA_VALUE, data);
                        }),
                    );
                }),
            ),
            Expr::Payload { base, offset, len } => (
                "payload",
                attrs(|a| {
                    a.u32(1, REG_1).u32(2, *base).u32(3, *offset).u32(4, *len);
                }),
            ),
            Expr::CtState => (
                "ct",
                attrs(|a| {
                    a.u32(1, REG_1).u32(2, CT_STATE); // DREG, KEY
                }),
            ),
            Expr::BitwiseMask { mask } => (
                "bitwise",
                attrs(|a| {
                    a.u32(1, REG_1).u32(2, REG_1).u32(3, 4); // SREG, DREG, LEN
                    a.nest(
                        4,
                        attrs(|d| {
                            d.put(NFTA_DATA_VALUE, &mask.to_ne_bytes());
                        }),
                    );
                    a.nest(
                        5,
                        attrs(|d| {
                            d.put(NFTA_DATA_VALUE, &[0; 4]);
                        }),
                    );
                }),
            ),
            Expr::Accept => (
                "immediate",
                attrs(|a| {
                    a.u32(1, REG_VERDICT);
                    a.nest(
                        2,
                        attrs(|d| {
                            d.nest(
                                NFTA_DATA_VERDICT,
                                attrs(|v| {
                                    v.u32(NFTA_VERDICT_CODE, NF_ACCEPT);
                                }),
                            );
                        }),
                    );
                }),
            ),
        };
        attrs(|a| {
            a.str(NFTA_EXPR_NAME, name).nest(NFTA_EXPR_DATA, data);
        })
    }
}

fn ifname(key: u32, name: &str) -> [Expr; 2] {
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    [Expr::Meta { key }, Expr::Cmp { op: CMP_EQ, data }]
}

fn l4(proto: u8) -> [Expr; 2] {
    [
        Expr::Meta { key: META_L4PROTO },
        Expr::Cmp {
            op: CMP_EQ,
            data: vec![proto],
        },
    ]
}

fn port_range(offset: u32, lo: u16, hi: u16) -> Vec<Expr> {
    let load = Expr::Payload {
        base: PAYLOAD_TRANSPORT,
        offset,
        len: 2,
    };
    if lo == hi {
        return vec![
            load,
            Expr::Cmp {
                op: CMP_EQ,
                data: lo.to_be_bytes().to_vec(),
            },
        ];
    }
    vec![
        load,
        Expr::Cmp {
            op: CMP_GTE,
            data: lo.to_be_bytes().to_vec(),
        },
        Expr::Cmp {
            op: CMP_LTE,
            data: hi.to_be_bytes().to_vec(),
        },
    ]
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const DPORT: u32 = 2;
const SPORT: u32 = 0;

fn exprs(r: &Rule, output: bool) -> Vec<Expr> {
    let mut e: Vec<Expr> = Vec::new();
    match r {
        Rule::Loopback => e.extend(ifname(
            if output { META_OIFNAME } else { META_IIFNAME },
            "lo",
        )),
        Rule::Established => e.extend([
            Expr::CtState,
            Expr::BitwiseMask {
                mask: CT_ESTABLISHED_RELATED,
            },
            Expr::Cmp {
                op: CMP_NEQ,
                data: vec![0; 4],
            },
        ]),
        Rule::TcpIn { iface, port } => {
            e.extend(ifname(META_IIFNAME, iface));
            e.extend(l4(TCP));
            e.extend(port_range(DPORT, *port, *port));
        }
        Rule::UdpIn { iface, lo, hi } => {
            e.extend(ifname(META_IIFNAME, iface));
            e.extend(l4(UDP));
            e.extend(port_range(DPORT, *lo, *hi));
        }
        Rule::TcpOutPort { iface, port } => {
            e.extend(ifname(META_OIFNAME, iface));
            e.extend(l4(TCP));
            e.extend(port_range(DPORT, *port, *port));
        }
        Rule::TcpOut { iface, dest } => out_to(&mut e, iface, *dest, TCP),
        Rule::UdpOut { iface, dest } => out_to(&mut e, iface, *dest, UDP),
        Rule::UdpInPorts {
            iface,
            sport,
            dport,
        } => {
            e.extend(ifname(META_IIFNAME, iface));
            e.extend(l4(UDP));
            e.extend(port_range(SPORT, *sport, *sport));
            e.extend(port_range(DPORT, *dport, *dport));
        }
        Rule::UdpOutPorts {
            iface,
            sport,
            dport,
        } => {
            e.extend(ifname(META_OIFNAME, iface));
            e.extend(l4(UDP));
            e.extend(port_range(SPORT, *sport, *sport));
            e.extend(port_range(DPORT, *dport, *dport));
        }
        Rule::UdpOutFromMedia { iface, lo, hi } => {
            e.extend(ifname(META_OIFNAME, iface));
            e.extend(l4(UDP));
            e.extend(port_range(SPORT, *lo, *hi));
        }
    }
    e.push(Expr::Accept);
    e
}

/// Leaving `iface` for `dest` over `proto`.
fn out_to(e: &mut Vec<Expr>, iface: &str, dest: std::net::SocketAddr, proto: u8) {
    e.extend(ifname(META_OIFNAME, iface));
    let (fam, offset, addr) = match dest.ip() {
        std::net::IpAddr::V4(a) => (NFPROTO_IPV4, 16, a.octets().to_vec()),
        std::net::IpAddr::V6(a) => (NFPROTO_IPV6, 24, a.octets().to_vec()),
    };
    e.push(Expr::Meta { key: META_NFPROTO });
    e.push(Expr::Cmp {
        op: CMP_EQ,
        data: vec![fam],
    });
    e.push(Expr::Payload {
        base: PAYLOAD_NETWORK,
        offset,
        len: addr.len() as u32,
    });
    e.push(Expr::Cmp {
        op: CMP_EQ,
        data: addr,
    });
    e.extend(l4(proto));
    e.extend(port_range(DPORT, dest.port(), dest.port()));
}

/// The batch, one netlink message after the other; `seq` numbers from
/// `first_seq`. Returns the bytes and the number of messages that will be
/// acknowledged (all but the batch delimiters).
pub fn batch(r: &Ruleset, first_seq: u32) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    let mut seq = first_seq;
    let mut acked = 0;
    let mut msg = |out: &mut Vec<u8>, ty: u16, flags: u16, family: u8, res_id: u16, body: Attrs| {
        let len = 16 + 4 + body.0.len();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&[family, 0]);
        out.extend_from_slice(&res_id.to_be_bytes());
        out.extend_from_slice(&body.0);
        seq += 1;
    };
    let nft = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
    msg(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        0,
        NFNL_SUBSYS_NFTABLES,
        Attrs::default(),
    );
    let req = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    // Create (a no-op if it exists), delete, create: replaces the table
    // whether or not there was one.
    for (ty, flags) in [
        (NFT_MSG_NEWTABLE, req),
        (NFT_MSG_DELTABLE, NLM_F_REQUEST | NLM_F_ACK),
        (NFT_MSG_NEWTABLE, req),
    ] {
        msg(
            &mut out,
            nft(ty),
            flags,
            NFPROTO_INET,
            0,
            attrs(|a| {
                a.str(NFTA_TABLE_NAME, TABLE);
            }),
        );
        acked += 1;
    }
    for (chain, hook, rules) in [
        ("input", NF_INET_LOCAL_IN, &r.input),
        ("output", NF_INET_LOCAL_OUT, &r.output),
    ] {
        msg(
            &mut out,
            nft(NFT_MSG_NEWCHAIN),
            req,
            NFPROTO_INET,
            0,
            attrs(|a| {
                a.str(NFTA_CHAIN_TABLE, TABLE).str(NFTA_CHAIN_NAME, chain);
                a.nest(
                    NFTA_CHAIN_HOOK,
                    attrs(|h| {
                        h.u32(NFTA_HOOK_HOOKNUM, hook).u32(NFTA_HOOK_PRIORITY, 0);
                    }),
                );
                a.u32(NFTA_CHAIN_POLICY, NF_DROP)
                    .str(NFTA_CHAIN_TYPE, "filter");
            }),
        );
        acked += 1;
        for rule in rules.iter() {
            let list = attrs(|l| {
                for e in exprs(rule, hook == NF_INET_LOCAL_OUT) {
                    l.nest(NFTA_LIST_ELEM, e.encode());
                }
            });
            msg(
                &mut out,
                nft(NFT_MSG_NEWRULE),
                req | NLM_F_APPEND,
                NFPROTO_INET,
                0,
                attrs(|a| {
                    a.str(NFTA_RULE_TABLE, TABLE)
                        .str(NFTA_RULE_CHAIN, chain)
                        .nest(NFTA_RULE_EXPRESSIONS, list);
                }),
            );
            acked += 1;
        }
    }
    msg(
        &mut out,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        0,
        NFNL_SUBSYS_NFTABLES,
        Attrs::default(),
    );
    (out, acked)
}

/// The outcome of one acknowledgement (`NLMSG_ERROR`) from the kernel:
/// `(seq, errno)` with errno 0 for success; `None` for other messages.
pub fn parse_ack(msg: &[u8]) -> Option<(u32, i32)> {
    const NLMSG_ERROR: u16 = 2;
    let ty = u16::from_ne_bytes(msg.get(4..6)?.try_into().ok()?);
    if ty != NLMSG_ERROR {
        return None;
    }
    let err = i32::from_ne_bytes(msg.get(16..20)?.try_into().ok()?);
    // The original header follows the error code; its seq is at +8.
    let seq = u32::from_ne_bytes(msg.get(28..32)?.try_into().ok()?);
    Some((seq, -err))
}

/// Splits a buffer of netlink messages.
pub fn messages(buf: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut at = 0;
    while let Some(h) = buf.get(at..at + 4) {
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        v.push(&buf[at..at + len]);
        at += len.next_multiple_of(4);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::{build, Inputs};

    fn ruleset() -> Ruleset {
        build(&Inputs {
            phones: "eth0".into(),
            uplink: "eth0".into(),
            sip_port: 5061,
            media: (30000, 30009),
            bridge_listener: None,
            outbound: vec!["192.0.2.10:5061".parse().unwrap()],
            outbound_ports: vec![5071],
            udp_outbound: vec!["192.0.2.30:3478".parse().unwrap()],
            dhcp_client: true,
            dhcp_server: false,
        })
    }

    /// Walks attributes, returning (type without flags, payload).
    fn walk(b: &[u8]) -> Vec<(u16, &[u8])> {
        let mut v = Vec::new();
        let mut at = 0;
        while at + 4 <= b.len() {
            let len = u16::from_ne_bytes([b[at], b[at + 1]]) as usize;
            let ty = u16::from_ne_bytes([b[at + 2], b[at + 3]]) & 0x3fff;
            assert!(len >= 4 && at + len <= b.len(), "attribute overruns");
            v.push((ty, &b[at + 4..at + len]));
            at += len.next_multiple_of(4);
        }
        assert_eq!(at, b.len(), "trailing bytes");
        v
    }

    #[test]
    fn batch_is_framed_and_every_message_well_formed() {
        let r = ruleset();
        let (b, acked) = batch(&r, 100);
        let m = messages(&b);
        assert_eq!(m.len(), 2 + 3 + 2 + r.input.len() + r.output.len());
        assert_eq!(acked as usize, m.len() - 2);
        assert_eq!(u16::from_ne_bytes([m[0][4], m[0][5]]), NFNL_MSG_BATCH_BEGIN);
        assert_eq!(
            u16::from_ne_bytes([m[m.len() - 1][4], m[m.len() - 1][5]]),
            NFNL_MSG_BATCH_END
        );
        for (i, msg) in m.iter().enumerate() {
            assert_eq!(
                u32::from_ne_bytes(msg[8..12].try_into().unwrap()),
                100 + i as u32
            );
            walk(&msg[20..]);
        }
        // The table is replaced: created, deleted, created.
        let types: Vec<u16> = m[1..4]
            .iter()
            .map(|x| u16::from_ne_bytes([x[4], x[5]]) & 0xff)
            .collect();
        assert_eq!(
            types,
            [NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWTABLE]
        );
        // The chains drop by default.
        let chain = walk(&m[4][20..]);
        let policy = chain.iter().find(|(t, _)| *t == NFTA_CHAIN_POLICY).unwrap();
        assert_eq!(policy.1, &NF_DROP.to_be_bytes());
    }

    fn expr_names(rule_msg: &[u8]) -> Vec<String> {
        let top = walk(&rule_msg[20..]);
        let list = top
            .iter()
            .find(|(t, _)| *t == NFTA_RULE_EXPRESSIONS)
            .unwrap()
            .1;
        walk(list)
            .iter()
            .map(|(_, e)| {
                let name = walk(e)[0].1;
                String::from_utf8(name[..name.len() - 1].to_vec()).unwrap()
            })
            .collect()
    }

    #[test]
    fn rules_have_the_expected_expressions() {
        let (b, _) = batch(&ruleset(), 1);
        let m = messages(&b);
        // input: lo, established, tcp 5061, udp range.
        assert_eq!(expr_names(m[5]), ["meta", "cmp", "immediate"]);
        assert_eq!(expr_names(m[6]), ["ct", "bitwise", "cmp", "immediate"]);
        assert_eq!(
            expr_names(m[7]),
            ["meta", "cmp", "meta", "cmp", "payload", "cmp", "immediate"]
        );
        assert_eq!(
            expr_names(m[8]),
            [
                "meta",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "cmp",
                "immediate"
            ]
        );
        // The SIP port is compared big-endian, as on the wire.
        assert!(b.windows(2).any(|w| w == 5061u16.to_be_bytes()));
    }

    #[test]
    fn acks_parse() {
        let mut ack = vec![0u8; 36];
        ack[0..4].copy_from_slice(&36u32.to_ne_bytes());
        ack[4..6].copy_from_slice(&2u16.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-22i32).to_ne_bytes());
        ack[28..32].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(parse_ack(&ack), Some((7, 22)));
        assert_eq!(messages(&ack).len(), 1);
        ack[4] = 3;
        assert_eq!(parse_ack(&ack), None);
    }
}
