//! The one STUN exchange the network check needs (RFC 8489): a Binding
//! request (§6.1) with the caller's transaction id, and a strict,
//! bounded reader of its answer (§6.3, §14.1–14.2). The answer proves that
//! UDP leaves the uplink and comes back; its mapped address is reported,
//! never acted on (the network's word, not trusted).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// The longest answer read: anything longer is not a Binding response
/// this client asked for (§6.3 keeps responses small; 548 is IPv4's
/// minimum reassembly size minus headers, rounded up here to 1280).
pub const MAX_RESPONSE: usize = 1280;

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// Comprehension-required attributes (below 0x8000) this reader knows and
/// skips; any other one makes the response discarded (§6.3.3).
const KNOWN_REQUIRED: [u16; 11] = [
    0x0001, 0x0006, 0x0008, 0x0009, 0x000A, 0x0014, 0x0015, 0x001C, 0x001D, 0x001E, 0x0020,
];

/// A Binding request (20 octets, no attributes) with transaction id `tx`.
pub fn binding_request(tx: &[u8; 12]) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0 (octets 2..4).
    out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out[8..].copy_from_slice(tx);
    out
}

/// Why a datagram is not the answer to our request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// Shorter than the header, longer than [`MAX_RESPONSE`], or its
    /// length field disagrees with its size.
    #[error("not a STUN message of a sane size")]
    Size,
    /// The first two bits, the magic cookie or the message type are not a
    /// Binding response's.
    #[error("not a STUN Binding response")]
    NotBinding,
    /// Another transaction id: not an answer to this request.
    #[error("another transaction")]
    OtherTransaction,
    /// An attribute runs past the end, or one we read is malformed.
    #[error("a malformed attribute")]
    Attribute,
    /// An unknown comprehension-required attribute (§6.3.3).
    #[error("an unknown comprehension-required attribute")]
    UnknownRequired,
}

/// What a Binding response said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingAnswer {
    /// A success response, with the mapped address if it carried one
    /// (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS).
    Success(Option<SocketAddr>),
    /// An error response: the server answered, so UDP works both ways.
    Error,
}

/// Reads `datagram` as the answer to the Binding request with id `tx`.
pub fn parse_binding_response(datagram: &[u8], tx: &[u8; 12]) -> Result<BindingAnswer, StunError> {
    if datagram.len() < 20 || datagram.len() > MAX_RESPONSE {
        return Err(StunError::Size);
    }
    let kind = u16::from_be_bytes([datagram[0], datagram[1]]);
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if length % 4 != 0 || length != datagram.len() - 20 {
        return Err(StunError::Size);
    }
    let cookie = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
    if cookie != MAGIC_COOKIE || !(kind == BINDING_SUCCESS || kind == BINDING_ERROR) {
        return Err(StunError::NotBinding);
    }
    if datagram[8..20] != tx[..] {
        return Err(StunError::OtherTransaction);
    }
    let mut xor_mapped = None;
    let mut mapped = None;
    let mut rest = &datagram[20..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(StunError::Attribute);
        }
        let typ = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let padded = len.div_ceil(4) * 4;
        if rest.len() < 4 + padded {
            return Err(StunError::Attribute);
        }
        let value = &rest[4..4 + len];
        match typ {
            XOR_MAPPED_ADDRESS if xor_mapped.is_none() => {
                xor_mapped = Some(address(value, Some(tx))?);
            }
            MAPPED_ADDRESS if mapped.is_none() => mapped = Some(address(value, None)?),
            t if t < 0x8000 && !KNOWN_REQUIRED.contains(&t) => {
                return Err(StunError::UnknownRequired)
            }
            _ => {}
        }
        rest = &rest[4 + padded..];
    }
    Ok(match kind {
        BINDING_SUCCESS => BindingAnswer::Success(xor_mapped.or(mapped)),
        _ => BindingAnswer::Error,
    })
}

/// A (XOR-)MAPPED-ADDRESS value (§14.1, §14.2); `tx` set: XORed.
fn address(v: &[u8], tx: Option<&[u8; 12]>) -> Result<SocketAddr, StunError> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let (family, port) = match v {
        [0, family, p0, p1, ..] => (*family, u16::from_be_bytes([*p0, *p1])),
        _ => return Err(StunError::Attribute),
    };
    let port = if tx.is_some() {
        port ^ (MAGIC_COOKIE >> 16) as u16
    } else {
        port
    };
    let ip = match (family, v.len()) {
        (1, 8) => {
            let mut a = [0u8; 4];
            a.copy_from_slice(&v[4..8]);
            if tx.is_some() {
                a.iter_mut().zip(cookie).for_each(|(b, k)| *b ^= k);
            }
            IpAddr::V4(Ipv4Addr::from(a))
        }
        (2, 20) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&v[4..20]);
            if let Some(tx) = tx {
                let key = cookie.iter().chain(tx.iter());
                a.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
            }
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return Err(StunError::Attribute),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    /// RFC 5769 §2.2, the IPv4 success response's header and
    /// XOR-MAPPED-ADDRESS (192.0.2.1:32853), with its SOFTWARE attribute;
    /// MESSAGE-INTEGRITY and FINGERPRINT are known and skipped.
    fn rfc5769_ipv4() -> Vec<u8> {
        let mut m = vec![0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&TX);
        // SOFTWARE "test vector " (0x8022, comprehension-optional).
        m.extend_from_slice(&[0x80, 0x22, 0x00, 0x0b]);
        m.extend_from_slice(b"test vector ");
        // XOR-MAPPED-ADDRESS.
        m.extend_from_slice(&[
            0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
        ]);
        // MESSAGE-INTEGRITY (20 octets, not checked: no credentials).
        m.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        m.extend_from_slice(&[0x2b; 20]);
        // FINGERPRINT.
        m.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96]);
        m
    }

    #[test]
    fn the_request_is_a_bare_binding_request() {
        let r = binding_request(&TX);
        assert_eq!(&r[..8], &[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
        assert_eq!(&r[8..], &TX);
    }

    #[test]
    fn rfc5769_success_response_gives_the_mapped_address() {
        let m = rfc5769_ipv4();
        assert_eq!(
            parse_binding_response(&m, &TX),
            Ok(BindingAnswer::Success(Some(
                "192.0.2.1:32853".parse().unwrap()
            )))
        );
    }

    #[test]
    fn rfc5769_ipv6_xor_mapped_address() {
        // RFC 5769 §2.3: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
        let mut m = vec![0x01, 0x01, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&TX);
        m.extend_from_slice(&[0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47]);
        m.extend_from_slice(&[
            0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2,
            0xb9, 0xd9,
        ]);
        assert_eq!(
            parse_binding_response(&m, &TX),
            Ok(BindingAnswer::Success(Some(
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                    .parse()
                    .unwrap()
            )))
        );
    }

    #[test]
    fn what_is_not_our_answer_is_refused() {
        let good = rfc5769_ipv4();
        let mut other = good.clone();
        other[19] ^= 1;
        assert_eq!(
            parse_binding_response(&other, &TX),
            Err(StunError::OtherTransaction)
        );
        let mut request = good.clone();
        request[1] = 0x01;
        request[0] = 0x00;
        assert_eq!(
            parse_binding_response(&request, &TX),
            Err(StunError::NotBinding)
        );
        let mut cookie = good.clone();
        cookie[4] = 0;
        assert_eq!(
            parse_binding_response(&cookie, &TX),
            Err(StunError::NotBinding)
        );
        assert_eq!(
            parse_binding_response(&good[..good.len() - 4], &TX),
            Err(StunError::Size)
        );
        assert_eq!(
            parse_binding_response(&good[..19], &TX),
            Err(StunError::Size)
        );
        let mut long = good.clone();
        long.resize(MAX_RESPONSE + 4, 0);
        assert_eq!(parse_binding_response(&long, &TX), Err(StunError::Size));
        // An attribute running past the end (length field fixed up).
        let mut past = good[..28].to_vec();
        past[2..4].copy_from_slice(&8u16.to_be_bytes());
        past[26..28].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(
            parse_binding_response(&past, &TX),
            Err(StunError::Attribute)
        );
        // An unknown comprehension-required attribute.
        let mut unknown = vec![0x01, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
        unknown.extend_from_slice(&TX);
        unknown.extend_from_slice(&[0x7f, 0x00, 0x00, 0x04, 1, 2, 3, 4]);
        assert_eq!(
            parse_binding_response(&unknown, &TX),
            Err(StunError::UnknownRequired)
        );
        // A bad family.
        let mut family = vec![0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
        family.extend_from_slice(&TX);
        family.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x03, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_binding_response(&family, &TX),
            Err(StunError::Attribute)
        );
    }

    #[test]
    fn an_error_response_still_proves_udp() {
        let mut m = vec![0x01, 0x11, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&TX);
        assert_eq!(parse_binding_response(&m, &TX), Ok(BindingAnswer::Error));
    }

    #[test]
    fn mutations_never_panic() {
        let good = rfc5769_ipv4();
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let mut m = good.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % m.len();
                m[i] = (x >> 8) as u8;
            }
            let _ = parse_binding_response(&m[..(x as usize % (m.len() + 1))], &TX);
            let _ = parse_binding_response(&m, &TX);
        }
    }
}
