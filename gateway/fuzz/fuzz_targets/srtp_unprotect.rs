//! SRTP and SRTCP for every suite: arbitrary packets into
//! `Unprotector::unprotect_rtp`/`unprotect_rtcp`, interleaved with packets
//! our own `Protector` (same master key) protected, some with one bit
//! flipped. The first byte picks the suite; then each record is an op
//! byte, a length byte and that many bytes. Asserts: no panic; an `Ok`
//! length is never more than the input length (nor less than a header);
//! what our protector sends, the peer's unprotector accepts and decrypts
//! to the original packet (for SRTP, as long as no packet of that SSRC was
//! lost: the receiver estimates the rollover counter from what it
//! received, RFC 3711 §3.3.1, so after a loss and a sequence number jump
//! of more than 2^15 it may guess another index; SRTCP carries its index);
//! a protected packet with any bit flipped is refused.
#![no_main]

use std::collections::HashSet;

use dialgate_proto::srtp::{MasterKey, Protector, Suite, Unprotector};
use libfuzzer_sys::fuzz_target;

const ROOM: usize = 32;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let suite = Suite::ALL[usize::from(pick) % Suite::ALL.len()];
    let key = MasterKey::new(suite, &vec![0x5a; suite.key_len() + suite.salt_len()]).unwrap();
    let mut protector = Protector::new(&key).unwrap();
    let mut unprotector = Unprotector::new(&key).unwrap();
    let mut ops = 0;
    // SSRCs of SRTP packets we protected that never arrived intact.
    let mut lost: HashSet<[u8; 4]> = HashSet::new();
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (pkt, next) = tail.split_at(n);
        rest = next;
        ops += 1;
        if ops > 64 {
            break;
        }
        let rtcp = op & 1 == 1;
        let mut buf = vec![0u8; pkt.len() + ROOM];
        buf[..pkt.len()].copy_from_slice(pkt);
        match (op >> 1) % 3 {
            // Arbitrary bytes, as from the network.
            0 => {
                let r = if rtcp {
                    unprotector.unprotect_rtcp(&mut buf, pkt.len())
                } else {
                    unprotector.unprotect_rtp(&mut buf, pkt.len())
                };
                if let Ok(out) = r {
                    assert!(out <= pkt.len());
                    assert!(out >= if rtcp { 8 } else { 12 });
                }
                // A length past the buffer is refused, not a panic.
                let len = buf.len() + 1;
                assert!(unprotector.unprotect_rtp(&mut buf, len).is_err());
                assert!(unprotector.unprotect_rtcp(&mut buf, len).is_err());
            }
            // Protected by us, delivered intact or with one bit flipped.
            mode => {
                let protected = if rtcp {
                    protector.protect_rtcp(&mut buf, pkt.len())
                } else {
                    protector.protect_rtp(&mut buf, pkt.len())
                };
                let Ok(protected) = protected else {
                    continue;
                };
                let mut wire = protected.as_bytes().to_vec();
                assert!(wire.len() > pkt.len());
                let wire_len = wire.len();
                wire.resize(wire_len + ROOM, 0);
                if mode == 2 {
                    let bit = usize::from(*op >> 3) * 131 + pkt.len() * 7;
                    let bit = bit % (wire_len * 8);
                    wire[bit / 8] ^= 1 << (bit % 8);
                }
                let r = if rtcp {
                    unprotector.unprotect_rtcp(&mut wire, wire_len)
                } else {
                    unprotector.unprotect_rtp(&mut wire, wire_len)
                };
                // A protected SRTP packet has at least the 12-octet header.
                let ssrc = (!rtcp).then(|| <[u8; 4]>::try_from(&pkt[8..12]).unwrap());
                if mode == 2 {
                    assert!(r.is_err(), "a flipped bit was accepted: {suite:?}");
                    lost.extend(ssrc);
                } else if ssrc.is_some_and(|s| lost.contains(&s)) {
                    if let Ok(out) = r {
                        assert_eq!(&wire[..out], pkt);
                    }
                } else {
                    let out =
                        r.unwrap_or_else(|e| panic!("our own packet refused: {e} ({suite:?})"));
                    assert_eq!(&wire[..out], pkt);
                }
            }
        }
    }
});
