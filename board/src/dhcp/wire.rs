//! The DHCPv4 wire format (RFC 2131 §2, RFC 2132), as far as the uplink's
//! client and the phone side's server need it: strict, bounded readers of
//! BOOTREPLY messages ([`parse_reply`]) and of clients' BOOTREQUESTs
//! ([`parse_client`]) into typed values, and writers of the client's
//! requests ([`Request`]) and of the server's answers ([`Answer`]).
//!
//! Written here rather than taken from crates.io: `dhcproto`, the
//! maintained crate, pulls a DNS library with a Unicode stack and a second
//! random-number generator with its own cipher (chacha20) into a board
//! whose one crypto library is aws-lc-rs, and needs a newer Rust than the
//! workspace's. The subset a client reads is small: the fixed header,
//! the magic cookie and a dozen options.

use std::net::Ipv4Addr;

use super::Refused;

/// BOOTP's fixed header (RFC 2131 §2, figure 1) is 236 bytes; the magic
/// cookie follows.
const HEADER: usize = 236;
const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The largest datagram read: an Ethernet frame's UDP payload (1500 - 20
/// - 8). A longer one is refused, not truncated.
pub const MAX_DATAGRAM: usize = 1472;
/// BOOTP's minimum message (RFC 1542 §2.1): requests are padded to it.
const MIN_REQUEST: usize = 300;
/// The broadcast bit of `flags` (RFC 2131 §4.1): asks the server to
/// broadcast its reply, so an interface without an address hears it on a
/// plain UDP socket.
const BROADCAST_FLAG: u16 = 0x8000;
/// At most this many DNS servers are kept from a lease.
pub const MAX_DNS: usize = 3;

/// DHCP message types (option 53, RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }
}

// Option codes (RFC 2132).
const PAD: u8 = 0;
const SUBNET_MASK: u8 = 1;
const ROUTER: u8 = 3;
const DNS: u8 = 6;
const REQUESTED_IP: u8 = 50;
const LEASE_TIME: u8 = 51;
const OVERLOAD: u8 = 52;
const MESSAGE_TYPE: u8 = 53;
const SERVER_ID: u8 = 54;
const PARAMETER_LIST: u8 = 55;
const MAX_MESSAGE_SIZE: u8 = 57;
const RENEWAL_T1: u8 = 58;
const REBINDING_T2: u8 = 59;
const CLIENT_ID: u8 = 61;
/// SIP servers (RFC 3361): encoding byte 1, then IPv4 addresses.
const SIP_SERVERS: u8 = 120;
const END: u8 = 255;

/// A server's reply, parsed: only what the client uses, every field
/// checked for its length. Address sanity (is yiaddr usable, is the router
/// on the subnet) is the client's, which knows the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: MessageType,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub server_id: Option<Ipv4Addr>,
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3, in the server's order (at least one entry when present).
    pub routers: Vec<Ipv4Addr>,
    /// Option 6, in the server's order.
    pub dns: Vec<Ipv4Addr>,
    pub lease_secs: Option<u32>,
    pub t1_secs: Option<u32>,
    pub t2_secs: Option<u32>,
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// The value of a fixed-length option, or the option's refusal.
fn exact<const N: usize>(code: u8, v: &[u8]) -> Result<[u8; N], Refused> {
    v.try_into().map_err(|_| Refused::BadOptionLength(code))
}

fn addresses(code: u8, v: &[u8]) -> Result<Vec<Ipv4Addr>, Refused> {
    if v.is_empty() || v.len() % 4 != 0 {
        return Err(Refused::BadOptionLength(code));
    }
    Ok(v.chunks_exact(4).map(ip).collect())
}

/// Option data by code, concatenated per RFC 3396. The whole area is at
/// most `MAX_DATAGRAM - 240` bytes, so this is bounded too.
struct Options(Vec<(u8, Vec<u8>)>);

impl Options {
    /// Walks the options after the magic cookie: refuses an option
    /// running past the end, no END option, bytes other than padding
    /// after it, and option overload (RFC 2132 §9.3, which would move
    /// options into `sname`/`file`).
    fn read(b: &[u8]) -> Result<Options, Refused> {
        let mut opts: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut at = HEADER + 4;
        let mut ended = false;
        while at < b.len() {
            let code = b[at];
            at += 1;
            match code {
                PAD => continue,
                END => {
                    ended = true;
                    break;
                }
                _ => {}
            }
            let Some(&len) = b.get(at) else {
                return Err(Refused::OptionPastEnd(code));
            };
            at += 1;
            let Some(v) = b.get(at..at + usize::from(len)) else {
                return Err(Refused::OptionPastEnd(code));
            };
            at += usize::from(len);
            match opts.iter_mut().find(|(c, _)| *c == code) {
                Some((_, data)) => data.extend_from_slice(v),
                None => opts.push((code, v.to_vec())),
            }
        }
        if !ended {
            return Err(Refused::NoEndOption);
        }
        if b[at..].iter().any(|&x| x != 0) {
            return Err(Refused::TrailingData);
        }
        let o = Options(opts);
        if o.get(OVERLOAD).is_some() {
            return Err(Refused::OptionOverload);
        }
        Ok(o)
    }

    fn get(&self, code: u8) -> Option<&[u8]> {
        self.0.iter().find(|(c, _)| *c == code).map(|(_, v)| &v[..])
    }

    fn kind(&self) -> Result<MessageType, Refused> {
        match self.get(MESSAGE_TYPE) {
            None => Err(Refused::NoMessageType),
            Some(v) => {
                let [t] = exact::<1>(MESSAGE_TYPE, v)?;
                MessageType::from_u8(t).ok_or(Refused::UnknownMessageType(t))
            }
        }
    }

    fn addr(&self, code: u8) -> Result<Option<Ipv4Addr>, Refused> {
        self.get(code)
            .map(|v| exact::<4>(code, v).map(Ipv4Addr::from))
            .transpose()
    }

    fn secs(&self, code: u8) -> Result<Option<u32>, Refused> {
        self.get(code)
            .map(|v| exact::<4>(code, v).map(u32::from_be_bytes))
            .transpose()
    }
}

/// The fixed checks of any DHCP datagram: size, `op`, Ethernet, cookie.
fn header(b: &[u8], op: u8, wrong_op: Refused) -> Result<(), Refused> {
    if b.len() > MAX_DATAGRAM {
        return Err(Refused::Oversize(b.len()));
    }
    if b.len() < HEADER + COOKIE.len() {
        return Err(Refused::Truncated);
    }
    if b[0] != op {
        return Err(wrong_op);
    }
    if b[1] != 1 || b[2] != 6 {
        return Err(Refused::NotEthernet);
    }
    if b[HEADER..HEADER + 4] != COOKIE {
        return Err(Refused::NoMagicCookie);
    }
    Ok(())
}

/// Reads a server's datagram. Refuses anything that is not a well-formed
/// DHCP BOOTREPLY for Ethernet: too short or too long, wrong `op`,
/// hardware type or length, no magic cookie, an option running past the
/// end, no END option, bytes other than padding after it, an option of the
/// wrong length, option overload (RFC 2132 §9.3, which would move options
/// into `sname`/`file`), no or an unknown message type.
///
/// Options that occur more than once are concatenated (RFC 3396) before
/// their length is judged.
pub fn parse_reply(b: &[u8]) -> Result<Reply, Refused> {
    header(b, 2, Refused::NotBootReply)?;
    let xid = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let yiaddr = ip(&b[16..20]);
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&b[28..34]);
    let o = Options::read(b)?;
    let kind = o.kind()?;
    Ok(Reply {
        kind,
        xid,
        yiaddr,
        chaddr,
        server_id: o.addr(SERVER_ID)?,
        subnet_mask: o.addr(SUBNET_MASK)?,
        routers: o
            .get(ROUTER)
            .map(|v| addresses(ROUTER, v))
            .transpose()?
            .unwrap_or_default(),
        dns: o
            .get(DNS)
            .map(|v| addresses(DNS, v))
            .transpose()?
            .unwrap_or_default(),
        lease_secs: o.secs(LEASE_TIME)?,
        t1_secs: o.secs(RENEWAL_T1)?,
        t2_secs: o.secs(REBINDING_T2)?,
    })
}

/// A request the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: MessageType,
    pub xid: u32,
    /// Seconds since the client began this exchange (RFC 2131 §2).
    pub secs: u16,
    /// Set only in BOUND, RENEWING and REBINDING (RFC 2131 table 5).
    pub ciaddr: Ipv4Addr,
    /// Ask for a broadcast reply (the client has no usable address yet).
    pub broadcast: bool,
    pub chaddr: [u8; 6],
    /// Option 50, in SELECTING's REQUEST (and INIT-REBOOT).
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54, in SELECTING's REQUEST.
    pub server_id: Option<Ipv4Addr>,
}

/// The parameters asked for (option 55): mask, router, DNS, lease,
/// server id, T1, T2. No host name and no client identifier are sent: a
/// kit on a hostile network says no more about itself than its MAC.
const WANTED: [u8; 7] = [
    SUBNET_MASK,
    ROUTER,
    DNS,
    LEASE_TIME,
    SERVER_ID,
    RENEWAL_T1,
    REBINDING_T2,
];

impl Request {
    /// The datagram, padded to BOOTP's 300-byte minimum.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER];
        b[0] = 1; // BOOTREQUEST
        b[1] = 1; // Ethernet
        b[2] = 6;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[8..10].copy_from_slice(&self.secs.to_be_bytes());
        if self.broadcast {
            b[10..12].copy_from_slice(&BROADCAST_FLAG.to_be_bytes());
        }
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[28..34].copy_from_slice(&self.chaddr);
        b.extend_from_slice(&COOKIE);
        b.extend_from_slice(&[MESSAGE_TYPE, 1, self.kind as u8]);
        if let Some(a) = self.requested_ip {
            b.extend_from_slice(&[REQUESTED_IP, 4]);
            b.extend_from_slice(&a.octets());
        }
        if let Some(a) = self.server_id {
            b.extend_from_slice(&[SERVER_ID, 4]);
            b.extend_from_slice(&a.octets());
        }
        b.extend_from_slice(&[MAX_MESSAGE_SIZE, 2]);
        b.extend_from_slice(&(MAX_DATAGRAM as u16 + 28).to_be_bytes());
        b.extend_from_slice(&[PARAMETER_LIST, WANTED.len() as u8]);
        b.extend_from_slice(&WANTED);
        b.push(END);
        if b.len() < MIN_REQUEST {
            b.resize(MIN_REQUEST, PAD);
        }
        b
    }
}

/// Test and fixture helper: a server's reply, built field by field.
/// Public so that the end-to-end tests' hostile server can use it.
#[derive(Debug, Clone)]
pub struct ReplyBuilder {
    pub kind: MessageType,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    /// (code, value) in order; written as they are, lengths unchecked.
    pub options: Vec<(u8, Vec<u8>)>,
}

impl ReplyBuilder {
    /// A reply with a message type and nothing else.
    pub fn new(kind: MessageType, xid: u32, yiaddr: Ipv4Addr, chaddr: [u8; 6]) -> Self {
        ReplyBuilder {
            kind,
            xid,
            yiaddr,
            chaddr,
            options: Vec::new(),
        }
    }

    /// Adds an option.
    pub fn option(mut self, code: u8, value: &[u8]) -> Self {
        self.options.push((code, value.to_vec()));
        self
    }

    /// Adds the options of a usual lease: server id, mask, router, DNS,
    /// lease time.
    pub fn lease(self, server: Ipv4Addr, prefix: u8, router: Ipv4Addr, secs: u32) -> Self {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        self.option(SERVER_ID, &server.octets())
            .option(SUBNET_MASK, &mask.to_be_bytes())
            .option(ROUTER, &router.octets())
            .option(DNS, &router.octets())
            .option(LEASE_TIME, &secs.to_be_bytes())
    }

    /// The datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER];
        b[0] = 2; // BOOTREPLY
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[10..12].copy_from_slice(&BROADCAST_FLAG.to_be_bytes());
        b[16..20].copy_from_slice(&self.yiaddr.octets());
        b[28..34].copy_from_slice(&self.chaddr);
        b.extend_from_slice(&COOKIE);
        b.extend_from_slice(&[MESSAGE_TYPE, 1, self.kind as u8]);
        for (code, v) in &self.options {
            b.push(*code);
            b.push(v.len() as u8);
            b.extend_from_slice(v);
        }
        b.push(END);
        b
    }
}

/// Reads a client's request (for the tests' servers): its type, xid,
/// ciaddr, broadcast flag, chaddr, requested address and server id.
pub fn parse_request(b: &[u8]) -> Option<Request> {
    if b.len() < HEADER + 4
        || b.len() > MAX_DATAGRAM
        || b[0] != 1
        || b[HEADER..HEADER + 4] != COOKIE
    {
        return None;
    }
    let mut r = Request {
        kind: MessageType::Discover,
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        secs: u16::from_be_bytes([b[8], b[9]]),
        ciaddr: ip(&b[12..16]),
        broadcast: u16::from_be_bytes([b[10], b[11]]) & BROADCAST_FLAG != 0,
        chaddr: b[28..34].try_into().ok()?,
        requested_ip: None,
        server_id: None,
    };
    let mut at = HEADER + 4;
    let mut kind = None;
    while at < b.len() {
        let code = b[at];
        if code == END {
            break;
        }
        if code == PAD {
            at += 1;
            continue;
        }
        let len = usize::from(*b.get(at + 1)?);
        let v = b.get(at + 2..at + 2 + len)?;
        match (code, v.len()) {
            (MESSAGE_TYPE, 1) => kind = MessageType::from_u8(v[0]),
            (REQUESTED_IP, 4) => r.requested_ip = Some(ip(v)),
            (SERVER_ID, 4) => r.server_id = Some(ip(v)),
            _ => {}
        }
        at += 2 + len;
    }
    r.kind = kind?;
    Some(r)
}

/// A client's message as the server reads it ([`parse_client`]): every
/// field checked for its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    /// DISCOVER, REQUEST, DECLINE, RELEASE or INFORM.
    pub kind: MessageType,
    pub xid: u32,
    /// Echoed in the answer (RFC 2131 table 3).
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 61, 2..=[`MAX_CLIENT_ID`] bytes.
    pub client_id: Option<Vec<u8>>,
}

/// The longest client identifier (option 61) accepted: one option's worth.
pub const MAX_CLIENT_ID: usize = 255;

/// Reads a client's datagram arriving on port 67. Refuses what
/// [`parse_reply`] refuses (with `op` 1, BOOTREQUEST, instead of 2), and
/// a relayed message (`giaddr` set: the phone side is one link, no relay
/// agent belongs on it), a message type only servers send, a requested
/// address or server id that is not 4 bytes, a client identifier under 2
/// or over [`MAX_CLIENT_ID`] bytes (RFC 2132 §9.14).
pub fn parse_client(b: &[u8]) -> Result<ClientMessage, Refused> {
    header(b, 1, Refused::NotBootRequest)?;
    let giaddr = ip(&b[24..28]);
    if !giaddr.is_unspecified() {
        return Err(Refused::Relayed(giaddr));
    }
    let o = Options::read(b)?;
    let kind = o.kind()?;
    if matches!(
        kind,
        MessageType::Offer | MessageType::Ack | MessageType::Nak
    ) {
        return Err(Refused::NotClientMessage(kind));
    }
    let client_id = match o.get(CLIENT_ID) {
        None => None,
        Some(v) if (2..=MAX_CLIENT_ID).contains(&v.len()) => Some(v.to_vec()),
        Some(_) => return Err(Refused::BadOptionLength(CLIENT_ID)),
    };
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&b[28..34]);
    Ok(ClientMessage {
        kind,
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        flags: u16::from_be_bytes([b[10], b[11]]),
        ciaddr: ip(&b[12..16]),
        chaddr,
        requested_ip: o.addr(REQUESTED_IP)?,
        server_id: o.addr(SERVER_ID)?,
        client_id,
    })
}

/// The server's answer to a [`ClientMessage`] (RFC 2131 table 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// OFFER, ACK or NAK.
    pub kind: MessageType,
    /// The client's message: xid, flags and chaddr are echoed, and its
    /// client identifier (RFC 6842).
    pub to: &'a ClientMessage,
    /// The client's `ciaddr` in an ACK to a renewal or an INFORM, else 0.
    pub ciaddr: Ipv4Addr,
    /// The address leased (0 in a NAK and in the ACK to an INFORM).
    pub yiaddr: Ipv4Addr,
    /// Option 54, the server's own address.
    pub server_id: Ipv4Addr,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Options 51, 58, 59: lease, T1, T2 in seconds.
    pub times: Option<(u32, u32, u32)>,
    /// Option 120 with encoding 1 (RFC 3361 §3.2): the SIP server's IPv4
    /// address.
    pub sip_server: Option<Ipv4Addr>,
}

impl Answer<'_> {
    /// The datagram, padded to BOOTP's 300-byte minimum; at most about
    /// 600 bytes (a 255-byte client identifier is the largest part).
    pub fn encode(&self) -> Vec<u8> {
        let m = self.to;
        let mut b = vec![0u8; HEADER];
        b[0] = 2; // BOOTREPLY
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&m.xid.to_be_bytes());
        b[10..12].copy_from_slice(&m.flags.to_be_bytes());
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[16..20].copy_from_slice(&self.yiaddr.octets());
        b[28..34].copy_from_slice(&m.chaddr);
        b.extend_from_slice(&COOKIE);
        b.extend_from_slice(&[MESSAGE_TYPE, 1, self.kind as u8]);
        b.extend_from_slice(&[SERVER_ID, 4]);
        b.extend_from_slice(&self.server_id.octets());
        if let Some((lease, t1, t2)) = self.times {
            for (code, v) in [(LEASE_TIME, lease), (RENEWAL_T1, t1), (REBINDING_T2, t2)] {
                b.extend_from_slice(&[code, 4]);
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        if let Some(mask) = self.subnet_mask {
            b.extend_from_slice(&[SUBNET_MASK, 4]);
            b.extend_from_slice(&mask.octets());
        }
        if let Some(sip) = self.sip_server {
            b.extend_from_slice(&[SIP_SERVERS, 5, 1]);
            b.extend_from_slice(&sip.octets());
        }
        if let Some(id) = m
            .client_id
            .as_deref()
            .filter(|id| id.len() <= MAX_CLIENT_ID)
        {
            b.extend_from_slice(&[CLIENT_ID, id.len() as u8]);
            b.extend_from_slice(id);
        }
        b.push(END);
        if b.len() < MIN_REQUEST {
            b.resize(MIN_REQUEST, PAD);
        }
        b
    }
}

/// Test helper: the raw value of option `code` in a well-formed datagram
/// (the first occurrence), for options [`Reply`] does not keep.
pub fn raw_option(b: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut at = HEADER + 4;
    while at < b.len() {
        match b[at] {
            END => return None,
            PAD => at += 1,
            c => {
                let len = usize::from(*b.get(at + 1)?);
                let v = b.get(at + 2..at + 2 + len)?;
                if c == code {
                    return Some(v.to_vec());
                }
                at += 2 + len;
            }
        }
    }
    None
}
