//! The strict, bounded reader of DNS responses (RFC 1035 §4.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    Answer, DnsError, Kind, Name, Query, SrvTarget, MAX_ANSWERS, MAX_CNAMES, MAX_POINTERS,
    MAX_UDP_RESPONSE,
};

const CLASS_IN: u16 = 1;
const TYPE_CNAME: u16 = 5;

/// What is wrong with a response, for the log and the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// Shorter than the header or longer than [`MAX_UDP_RESPONSE`].
    #[error("size out of bounds")]
    Size,
    /// Not exactly one question.
    #[error("question count is not 1")]
    QuestionCount,
    /// More than [`MAX_ANSWERS`] records in a section.
    #[error("too many records")]
    TooManyRecords,
    /// A field or record runs past the end.
    #[error("runs past the end")]
    Short,
    /// Bytes after the last record.
    #[error("trailing bytes")]
    Trailing,
    /// A label of a reserved type (0x40, 0x80), a forward or looping
    /// compression pointer, or a name over 255 octets.
    #[error("bad name encoding")]
    BadName,
    /// An A record not of 4 octets, AAAA not of 16, a CNAME or SRV whose
    /// name does not end at its data's end.
    #[error("bad record data")]
    BadRdata,
    /// More than [`MAX_CNAMES`] CNAMEs, or a CNAME loop.
    #[error("CNAME chain too long")]
    CnameChain,
    /// An SRV target that is not a host name.
    #[error("SRV target is not a host name")]
    BadTarget,
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed::Short)?;
        let s = self.msg.get(self.pos..end).ok_or(Malformed::Short)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name in wire form, lower case, pointers resolved. Pointers must
    /// point before the place they are read at (so they cannot loop), at
    /// most [`MAX_POINTERS`] of them.
    fn name(&mut self) -> Result<Vec<u8>, Malformed> {
        let mut out = Vec::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut pointers = 0;
        loop {
            let len = *self.msg.get(pos).ok_or(Malformed::Short)?;
            match len & 0xC0 {
                0x00 => {
                    let n = usize::from(len);
                    let label = self.msg.get(pos + 1..pos + 1 + n).ok_or(Malformed::Short)?;
                    out.push(len);
                    out.extend(label.iter().map(u8::to_ascii_lowercase));
                    if out.len() > 255 {
                        return Err(Malformed::BadName);
                    }
                    pos += 1 + n;
                    if n == 0 {
                        if !jumped {
                            self.pos = pos;
                        }
                        return Ok(out);
                    }
                }
                0xC0 => {
                    let b = *self.msg.get(pos + 1).ok_or(Malformed::Short)?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3F, b]));
                    pointers += 1;
                    if target >= pos || pointers > MAX_POINTERS {
                        return Err(Malformed::BadName);
                    }
                    if !jumped {
                        self.pos = pos + 2;
                        jumped = true;
                    }
                    pos = target;
                }
                _ => return Err(Malformed::BadName),
            }
        }
    }
}

struct Record<'a> {
    owner: Vec<u8>,
    rtype: u16,
    class: u16,
    ttl: u32,
    /// The data, and where it starts in the message (names inside it may
    /// point back into the message).
    rdata_at: usize,
    rdata: &'a [u8],
}

fn record<'a>(r: &mut Reader<'a>) -> Result<Record<'a>, Malformed> {
    let owner = r.name()?;
    let rtype = r.u16()?;
    let class = r.u16()?;
    // RFC 2181 §8: a TTL with the top bit set is taken as 0.
    let ttl = match r.u32()? {
        t if t > i32::MAX as u32 => 0,
        t => t,
    };
    let len = usize::from(r.u16()?);
    let rdata_at = r.pos;
    let rdata = r.take(len)?;
    Ok(Record {
        owner,
        rtype,
        class,
        ttl,
        rdata_at,
        rdata,
    })
}

/// A name inside a record's data that must end exactly at the data's end.
fn rdata_name(msg: &[u8], rec: &Record<'_>, skip: usize) -> Result<Vec<u8>, Malformed> {
    let end = rec.rdata_at + rec.rdata.len();
    let mut r = Reader {
        msg: &msg[..end],
        pos: rec.rdata_at + skip,
    };
    let n = r.name().map_err(|e| match e {
        Malformed::Short => Malformed::BadRdata,
        e => e,
    })?;
    if r.pos != end {
        return Err(Malformed::BadRdata);
    }
    Ok(n)
}

/// Wire form to a validated host name (no root, no underscore labels).
fn host_name(wire: &[u8]) -> Option<Name> {
    let mut labels = Vec::new();
    let mut i = 0;
    while let Some(&n) = wire.get(i) {
        if n == 0 {
            break;
        }
        let l = wire.get(i + 1..i + 1 + usize::from(n))?;
        labels.push(std::str::from_utf8(l).ok()?);
        i += 1 + usize::from(n);
    }
    let name = Name::parse(&labels.join(".")).ok()?;
    (!name.0.contains('_')).then_some(name)
}

pub(super) fn read_response(q: &Query, msg: &[u8]) -> Result<Answer, DnsError> {
    if msg.len() < 12 || msg.len() > MAX_UDP_RESPONSE {
        return Err(Malformed::Size.into());
    }
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    if id != q.id {
        return Err(DnsError::NotOurs("another id"));
    }
    if flags & 0x8000 == 0 || (flags >> 11) & 0xF != 0 {
        return Err(DnsError::NotOurs("not a standard query response"));
    }
    let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    // RFC 1035 §4.1.2: the question is echoed; 0x20-insensitive compare
    // (the name is read lower case). A response without it cannot be
    // matched to this query.
    if qd != 1 {
        return Err(DnsError::NotOurs("no echoed question"));
    }
    let qname = r.name()?;
    let (qtype, qclass) = (r.u16()?, r.u16()?);
    if qname != q.qname || qtype != q.kind.rr_type() || qclass != CLASS_IN {
        return Err(DnsError::NotOurs("another question"));
    }
    if flags & 0x0200 != 0 {
        return Err(DnsError::Truncated);
    }
    match (flags & 0xF) as u8 {
        0 => {}
        2 => return Err(DnsError::ServFail),
        3 => return Err(DnsError::NxDomain),
        5 => return Err(DnsError::Refused),
        c => return Err(DnsError::Rcode(c)),
    }
    let limit = MAX_ANSWERS as u16;
    if an > limit || ns > limit || ar > limit {
        return Err(Malformed::TooManyRecords.into());
    }
    let mut answers = Vec::with_capacity(usize::from(an));
    for _ in 0..an {
        answers.push(record(&mut r)?);
    }
    // Authority and additional records are read for their shape only:
    // nothing outside the answer section is used.
    for _ in 0..u32::from(ns) + u32::from(ar) {
        record(&mut r)?;
    }
    if r.pos != msg.len() {
        return Err(Malformed::Trailing.into());
    }
    // Follow CNAMEs from the question's name, through this response only.
    let mut current = q.qname.clone();
    let mut ttl = u32::MAX;
    let mut hops = 0;
    loop {
        let cname = answers
            .iter()
            .find(|a| a.owner == current && a.rtype == TYPE_CNAME && a.class == CLASS_IN);
        let Some(c) = cname else { break };
        hops += 1;
        if hops > MAX_CNAMES {
            return Err(Malformed::CnameChain.into());
        }
        ttl = ttl.min(c.ttl);
        current = rdata_name(msg, c, 0)?;
    }
    let mine = answers
        .iter()
        .filter(|a| a.owner == current && a.rtype == q.kind.rr_type() && a.class == CLASS_IN);
    match q.kind {
        Kind::A | Kind::Aaaa => {
            let mut addrs = Vec::new();
            for a in mine {
                let ip = match (q.kind, a.rdata.len()) {
                    (Kind::A, 4) => IpAddr::V4(Ipv4Addr::new(
                        a.rdata[0], a.rdata[1], a.rdata[2], a.rdata[3],
                    )),
                    (Kind::Aaaa, 16) => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(a.rdata);
                        IpAddr::V6(Ipv6Addr::from(b))
                    }
                    _ => return Err(Malformed::BadRdata.into()),
                };
                ttl = ttl.min(a.ttl);
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
            if addrs.is_empty() {
                return Err(DnsError::NoData(q.kind.as_str()));
            }
            Ok(Answer::Addresses { addrs, ttl })
        }
        Kind::Srv => {
            let mut targets = Vec::new();
            let mut root = false;
            for a in mine {
                if a.rdata.len() < 7 {
                    return Err(Malformed::BadRdata.into());
                }
                let d = a.rdata;
                let field = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
                let target = rdata_name(msg, a, 6)?;
                ttl = ttl.min(a.ttl);
                if target == [0] {
                    root = true;
                    continue;
                }
                targets.push(SrvTarget {
                    priority: field(0),
                    weight: field(2),
                    port: field(4),
                    target: host_name(&target).ok_or(Malformed::BadTarget)?,
                });
            }
            match (targets.is_empty(), root) {
                (false, _) => Ok(Answer::Srv { targets, ttl }),
                (true, true) => Err(DnsError::NoService),
                (true, false) => Err(DnsError::NoData("SRV")),
            }
        }
    }
}
