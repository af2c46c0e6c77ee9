//! Round trips, replay, reordering, rollover and tampering for every suite.
//! RFC test vectors live in `vectors.rs`.

use super::*;
use crate::testutil::Rng;

fn key(suite: Suite, fill: u8) -> MasterKey {
    let bytes: Vec<u8> = (0..suite.key_len() + suite.salt_len())
        .map(|i| fill.wrapping_add(i as u8))
        .collect();
    MasterKey::new(suite, &bytes).unwrap()
}

/// An RTP packet with a G.711-sized payload in a buffer with headroom.
fn rtp(seq: u16, ssrc: u32, payload_byte: u8) -> ([u8; 256], usize) {
    let mut b = [0u8; 256];
    b[0] = 0x80;
    b[1] = 0x00;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, x) in b[12..172].iter_mut().enumerate() {
        *x = payload_byte ^ i as u8;
    }
    (b, 172)
}

/// An RTCP receiver report with one report block.
fn rtcp(ssrc: u32) -> ([u8; 256], usize) {
    let mut b = [0u8; 256];
    b[0] = 0x81;
    b[1] = 201;
    b[2..4].copy_from_slice(&7u16.to_be_bytes());
    b[4..8].copy_from_slice(&ssrc.to_be_bytes());
    for (i, x) in b[8..32].iter_mut().enumerate() {
        *x = i as u8;
    }
    (b, 32)
}

fn pair(suite: Suite) -> (Protector, Unprotector) {
    let k = key(suite, 0x11);
    (Protector::new(&k).unwrap(), Unprotector::new(&k).unwrap())
}

#[test]
fn rtp_round_trip_every_suite() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        for seq in 0..200u16 {
            let (mut b, len) = rtp(seq, 0xdead_beef, seq as u8);
            let orig = b;
            let n = tx.protect_rtp(&mut b, len).unwrap().len();
            assert_eq!(n, len + suite.rtp_tag_len(), "{suite}");
            assert_eq!(b[..12], orig[..12], "header stays clear");
            assert_ne!(b[12..len], orig[12..len], "{suite}: payload is encrypted");
            let m = rx.unprotect_rtp(&mut b, n).unwrap();
            assert_eq!(m, len);
            assert_eq!(b[..len], orig[..len], "{suite}");
        }
    }
}

#[test]
fn rtcp_round_trip_every_suite() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        for _ in 0..50 {
            let (mut b, len) = rtcp(0x0102_0304);
            let orig = b;
            let n = tx.protect_rtcp(&mut b, len).unwrap().len();
            assert_eq!(n, len + suite.rtcp_overhead(), "{suite}");
            assert_eq!(b[..8], orig[..8]);
            assert_ne!(b[8..len], orig[8..len]);
            let m = rx.unprotect_rtcp(&mut b, n).unwrap();
            assert_eq!(b[..m], orig[..len], "{suite}");
        }
    }
}

#[test]
fn tampering_anywhere_is_rejected() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let (mut b, len) = rtp(1, 7, 0);
        let n = tx.protect_rtp(&mut b, len).unwrap().len();
        // Flip one bit in the header, the payload and the tag in turn.
        for pos in [1, 3, 11, 12, 100, n - 1] {
            let mut t = b;
            t[pos] ^= 0x04;
            assert_eq!(
                rx.unprotect_rtp(&mut t, n),
                Err(Error::AuthFailed),
                "{suite} pos {pos}"
            );
        }
        // Untouched packet still verifies: failures did not move the state.
        assert_eq!(rx.unprotect_rtp(&mut b, n), Ok(len));

        let (mut c, clen) = rtcp(7);
        let cn = tx.protect_rtcp(&mut c, clen).unwrap().len();
        for pos in [1, 9, clen, cn - 1] {
            let mut t = c;
            t[pos] ^= 0x01;
            let r = rx.unprotect_rtcp(&mut t, cn);
            assert!(
                matches!(r, Err(Error::AuthFailed)),
                "{suite} rtcp pos {pos}: {r:?}"
            );
        }
        assert_eq!(rx.unprotect_rtcp(&mut c, cn), Ok(clen));
    }
}

#[test]
fn wrong_key_is_rejected() {
    for suite in Suite::ALL {
        let mut tx = Protector::new(&key(suite, 1)).unwrap();
        let mut rx = Unprotector::new(&key(suite, 2)).unwrap();
        let (mut b, len) = rtp(1, 7, 0);
        let n = tx.protect_rtp(&mut b, len).unwrap().len();
        assert_eq!(rx.unprotect_rtp(&mut b, n), Err(Error::AuthFailed));
    }
}

#[test]
fn truncated_packets_are_rejected() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let (mut b, len) = rtp(1, 7, 0);
        let n = tx.protect_rtp(&mut b, len).unwrap().len();
        for cut in [0, 1, 11, 12, 12 + suite.rtp_tag_len() - 1] {
            let mut t = b;
            let r = rx.unprotect_rtp(&mut t, cut);
            assert_eq!(r, Err(Error::Truncated), "{suite} cut {cut}");
        }
        // Shorter than sent but still long enough: the tag no longer matches.
        let mut t = b;
        assert_eq!(rx.unprotect_rtp(&mut t, n - 1), Err(Error::AuthFailed));
        // A length past the end of the buffer is a caller error, not a panic.
        assert_eq!(rx.unprotect_rtp(&mut t, 10_000), Err(Error::BufferTooSmall));
        // CSRC count pointing past the packet.
        let mut t = b;
        t[0] |= 0x0f;
        assert_eq!(rx.unprotect_rtp(&mut t, 30), Err(Error::Truncated));
        for cut in [0, 7, 8 + suite.rtcp_overhead() - 1] {
            let mut t = [0x81u8; 64];
            assert_eq!(
                rx.unprotect_rtcp(&mut t, cut),
                Err(Error::Truncated),
                "{suite} rtcp {cut}"
            );
        }
    }
}

#[test]
fn not_rtp_is_rejected() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let (mut b, len) = rtp(1, 7, 0);
    b[0] = 0x40; // version 1
    assert_eq!(tx.protect_rtp(&mut b, len).unwrap_err(), Error::NotRtp);
    assert_eq!(rx.unprotect_rtp(&mut b, len + 10), Err(Error::NotRtp));
}

#[test]
fn replay_is_rejected_every_suite() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let (mut b, len) = rtp(10, 7, 0);
        let n = tx.protect_rtp(&mut b, len).unwrap().len();
        let copy = b;
        assert!(rx.unprotect_rtp(&mut b, n).is_ok());
        let mut again = copy;
        assert_eq!(
            rx.unprotect_rtp(&mut again, n),
            Err(Error::Replayed),
            "{suite}"
        );

        let (mut c, clen) = rtcp(7);
        let cn = tx.protect_rtcp(&mut c, clen).unwrap().len();
        let ccopy = c;
        assert!(rx.unprotect_rtcp(&mut c, cn).is_ok());
        let mut again = ccopy;
        assert_eq!(
            rx.unprotect_rtcp(&mut again, cn),
            Err(Error::Replayed),
            "{suite}"
        );
    }
}

#[test]
fn reordering_within_window_accepted_older_rejected() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80);
    let mut sent = Vec::new();
    for seq in 1000..1300u16 {
        let (mut b, len) = rtp(seq, 9, 0);
        let n = tx.protect_rtp(&mut b, len).unwrap().len();
        sent.push((b, n));
    }
    // Deliver 1299 first, then 1299-127 (inside the window), then 1299-128.
    let (mut last, n) = sent[299];
    assert!(rx.unprotect_rtp(&mut last, n).is_ok());
    let (mut inside, n) = sent[299 - 127];
    assert!(rx.unprotect_rtp(&mut inside, n).is_ok());
    let (mut outside, n) = sent[299 - 128];
    assert_eq!(rx.unprotect_rtp(&mut outside, n), Err(Error::TooOld));
    // A reversed run inside the window is accepted in full.
    for i in (200..299).rev() {
        if i == 299 - 127 {
            continue;
        }
        let (mut p, n) = sent[i];
        assert!(rx.unprotect_rtp(&mut p, n).is_ok(), "index {i}");
    }
}

#[test]
fn rollover_counter_follows_wrap_and_reordering() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        // 65530..=65535 then 0..10 with two packets swapped across the wrap.
        let seqs: Vec<u16> = (65530..=65535).chain(0..10).collect();
        let mut sent: Vec<([u8; 256], usize)> = seqs
            .iter()
            .map(|&s| {
                let (mut b, len) = rtp(s, 5, s as u8);
                let n = tx.protect_rtp(&mut b, len).unwrap().len();
                (b, n)
            })
            .collect();
        sent.swap(5, 6); // 0 (ROC 1) arrives before 65535 (ROC 0)
        for (i, (b, n)) in sent.iter_mut().enumerate() {
            assert!(rx.unprotect_rtp(b, *n).is_ok(), "{suite} packet {i}");
        }
        // Both sides now agree ROC = 1: seq 20 of ROC 1 verifies.
        let (mut b, len) = rtp(20, 5, 1);
        let n = tx.protect_rtp(&mut b, len).unwrap().len();
        assert!(rx.unprotect_rtp(&mut b, n).is_ok(), "{suite}");
        // A replay of a pre-wrap packet is refused.
        let (mut b, len) = rtp(65535, 5, 0);
        let mut fresh = pair(suite).0;
        let n = fresh.protect_rtp(&mut b, len).unwrap().len();
        assert!(rx.unprotect_rtp(&mut b, n).is_err());
    }
}

#[test]
fn receiver_joining_late_at_high_sequence_works() {
    let (mut tx, mut rx) = pair(Suite::AeadAes256Gcm);
    for seq in 40_000..40_100u16 {
        let (mut b, len) = rtp(seq, 3, 0);
        let n = tx.protect_rtp(&mut b, len).unwrap().len();
        if seq >= 40_050 {
            assert!(rx.unprotect_rtp(&mut b, n).is_ok());
        }
    }
}

#[test]
fn ssrc_change_starts_a_new_stream_and_no_stream_is_ever_forgotten() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        for ssrc in 1..=MAX_STREAMS as u32 {
            for seq in [100u16, 101, 102] {
                let (mut b, len) = rtp(seq, ssrc, 0);
                let n = tx.protect_rtp(&mut b, len).unwrap().len();
                assert!(rx.unprotect_rtp(&mut b, n).is_ok(), "{suite} ssrc {ssrc}");
            }
        }
        // One SSRC more: refused both ways, nothing forgotten.
        let extra = MAX_STREAMS as u32 + 1;
        let (mut b, len) = rtp(100, extra, 0);
        assert_eq!(
            tx.protect_rtp(&mut b, len).unwrap_err(),
            Error::TooManyStreams
        );
        let mut other_tx = Protector::new(&key(suite, 0x11)).unwrap();
        let (mut b, len) = rtp(100, extra, 0);
        let n = other_tx.protect_rtp(&mut b, len).unwrap().len();
        assert_eq!(rx.unprotect_rtp(&mut b, n), Err(Error::TooManyStreams));
        // The first stream still has its state: its index cannot be
        // protected again, and a replay of it is refused.
        let (mut b, len) = rtp(102, 1, 0);
        assert_eq!(tx.protect_rtp(&mut b, len).unwrap_err(), Error::IndexReused);
        let mut fresh_tx = Protector::new(&key(suite, 0x11)).unwrap();
        let (mut b, len) = rtp(102, 1, 0);
        let n = fresh_tx.protect_rtp(&mut b, len).unwrap().len();
        assert_eq!(rx.unprotect_rtp(&mut b, n), Err(Error::Replayed));
    }
}

#[test]
fn sender_refuses_to_reuse_an_index() {
    let (mut tx, _) = pair(Suite::AesCm128HmacSha1_80);
    let (mut b, len) = rtp(5, 1, 0);
    tx.protect_rtp(&mut b, len).unwrap();
    let (mut b, len) = rtp(5, 1, 9);
    assert_eq!(tx.protect_rtp(&mut b, len).unwrap_err(), Error::IndexReused);
}

#[test]
fn buffer_without_room_for_tag_is_refused() {
    for suite in Suite::ALL {
        let (mut tx, _) = pair(suite);
        let (b, len) = rtp(5, 1, 0);
        let mut small = [0u8; 172];
        small.copy_from_slice(&b[..172]);
        assert_eq!(
            tx.protect_rtp(&mut small, len).unwrap_err(),
            Error::BufferTooSmall
        );
        let (c, clen) = rtcp(1);
        let mut small = [0u8; 40];
        small.copy_from_slice(&c[..40]);
        assert_eq!(
            tx.protect_rtcp(&mut small, clen).unwrap_err(),
            Error::BufferTooSmall
        );
    }
}

#[test]
fn unencrypted_srtcp_is_refused() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let (mut c, clen) = rtcp(1);
        let n = tx.protect_rtcp(&mut c, clen).unwrap().len();
        let e_at = if suite.is_aead() { n - 4 } else { clen };
        c[e_at] &= 0x7f;
        assert_eq!(
            rx.unprotect_rtcp(&mut c, n),
            Err(Error::Unencrypted),
            "{suite}"
        );
    }
}

#[test]
fn header_extension_and_csrcs_stay_clear_and_authenticated() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let mut b = [0u8; 256];
        // V=2, X=1, CC=1; one CSRC; a one-word extension; 20 bytes payload.
        b[0] = 0x91;
        b[1] = 101; // telephone-event: passes untouched
        b[2..4].copy_from_slice(&1u16.to_be_bytes());
        b[8..12].copy_from_slice(&42u32.to_be_bytes());
        b[12..16].copy_from_slice(&7u32.to_be_bytes());
        b[16..18].copy_from_slice(&0xbedeu16.to_be_bytes());
        b[18..20].copy_from_slice(&1u16.to_be_bytes());
        b[20..24].copy_from_slice(&[0x10, 0xaa, 0, 0]);
        b[24..44].fill(0x55);
        let orig = b;
        let hdr = RtpHeader::parse(&b[..44]).unwrap();
        assert_eq!(hdr.len, 24);
        assert_eq!(hdr.payload_type, 101);
        let n = tx.protect_rtp(&mut b, 44).unwrap().len();
        assert_eq!(b[..24], orig[..24]);
        assert_ne!(b[24..44], orig[24..44]);
        let mut t = b;
        t[21] ^= 1; // inside the extension
        assert_eq!(rx.unprotect_rtp(&mut t, n), Err(Error::AuthFailed));
        assert_eq!(rx.unprotect_rtp(&mut b, n), Ok(44));
        assert_eq!(b[..44], orig[..44]);
    }
}

#[test]
fn keys_never_appear_in_debug() {
    for suite in Suite::ALL {
        let k = key(suite, 0xa5);
        let (tx, rx) = (Protector::new(&k).unwrap(), Unprotector::new(&k).unwrap());
        for s in [format!("{k:?}"), format!("{tx:?}"), format!("{rx:?}")] {
            assert!(
                s.contains(suite.name().split('_').next().unwrap())
                    || s.contains("Aes")
                    || s.contains("Aead"),
                "{s}"
            );
            let hex: String = k
                .key_and_salt()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert!(!s.to_lowercase().contains(&hex[..8]), "{s}");
            assert!(!s.contains("165"), "decimal key bytes leaked: {s}");
        }
    }
}

#[test]
fn rtcp_mux_classification() {
    let (r, _) = rtp(1, 1, 0);
    let (c, _) = rtcp(1);
    assert!(!is_rtcp(&r));
    assert!(is_rtcp(&c));
    assert!(!is_rtcp(&[0x80]));
}

#[test]
fn arbitrary_and_mutated_input_never_panics_and_never_authenticates() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        for round in 0..4000u32 {
            // Random bytes of random length, sometimes with a valid-looking
            // first octet so that parsing goes deeper.
            let len = (rng.next() % 300) as usize;
            let mut b = [0u8; 512];
            for x in b[..len].iter_mut() {
                *x = rng.next() as u8;
            }
            if round % 2 == 0 && len > 0 {
                b[0] = 0x80 | (b[0] & 0x3f);
            }
            let mut c = b;
            assert!(
                rx.unprotect_rtp(&mut b, len).is_err(),
                "{suite}: random RTP accepted"
            );
            assert!(
                rx.unprotect_rtcp(&mut c, len).is_err(),
                "{suite}: random RTCP accepted"
            );

            // A genuine packet with 1..4 random bit flips is always refused.
            let (mut p, plen) = rtp(round as u16, 0x77, round as u8);
            let n = tx.protect_rtp(&mut p, plen).unwrap().len();
            let orig = p;
            let flips = 1 + rng.next() % 4;
            for _ in 0..flips {
                let bit = (rng.next() % (n as u64 * 8)) as usize;
                p[bit / 8] ^= 1 << (bit % 8);
            }
            // Flips can cancel out (the same bit twice): then the packet is
            // the genuine one and must pass; any real change must fail.
            let changed = p[..n] != orig[..n];
            let r = rx.unprotect_rtp(&mut p, n);
            assert_eq!(r.is_err(), changed, "{suite}: round {round}: {r:?}");
        }
    }
}
