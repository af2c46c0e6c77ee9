//! Cross-check against libsrtp2, an independent implementation: for every
//! suite, packets protected by libsrtp2 are unprotected by dialgate and the
//! other way round, for SRTP and SRTCP, across a sequence-number wrap, with
//! CSRCs and header extensions, and with tampering detected on both sides.

use dialgate::srtp::{MasterKey, Protector, Suite, Unprotector};
use dialgate_tests::libsrtp::{run, Mode};

/// libsrtp2's srtp_err_status_auth_fail.
const LIBSRTP_AUTH_FAIL: i32 = 7;

fn rtp_packets() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    // 300 packets crossing the 16-bit wrap, so ROC becomes 1 on both sides.
    for (i, seq) in (65_400u32..65_700).enumerate() {
        let seq = (seq % 65_536) as u16;
        let payload_len = [160usize, 1, 0, 80, 320][i % 5];
        let mut p = vec![0x80, 0x00];
        if i % 7 == 3 {
            p[0] = 0x91; // X=1, CC=1
        }
        if i % 11 == 5 {
            p[1] = 0x80 | 101; // marker + telephone-event
        }
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(i as u32 * 160).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        if p[0] & 0x0f == 1 {
            p.extend_from_slice(&0xcafe_f00du32.to_be_bytes());
        }
        if p[0] & 0x10 != 0 {
            p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0x7f, 0x00, 0x00]);
        }
        p.extend((0..payload_len).map(|j| (j * 31 + i) as u8));
        v.push(p);
    }
    v
}

fn rtcp_packets() -> Vec<Vec<u8>> {
    (0..40u8)
        .map(|i| {
            // SR (or RR) with one report block plus an SDES CNAME chunk.
            let mut p = vec![0x81, 200 + (i % 2), 0x00, 0x0c];
            p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            p.extend((0..44).map(|j| j ^ i));
            p.extend_from_slice(&[0x81, 202, 0x00, 0x03]);
            p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            p.extend_from_slice(&[1, 3, b'a', b'b', b'c', 0, 0, 0]);
            p
        })
        .collect()
}

fn key(suite: Suite, seed: u8) -> MasterKey {
    let bytes: Vec<u8> = (0..suite.key_len() + suite.salt_len())
        .map(|i| seed.wrapping_mul(i as u8 + 1) ^ 0x5a)
        .collect();
    MasterKey::new(suite, &bytes).unwrap()
}

#[test]
fn libsrtp_protects_dialgate_unprotects_rtp() {
    for suite in Suite::ALL {
        let k = key(suite, 3);
        let plain = rtp_packets();
        let protected = run(Mode::Protect, suite, k.key_and_salt(), &plain);
        let mut rx = Unprotector::new(&k).unwrap();
        for (i, (p, q)) in plain.iter().zip(&protected).enumerate() {
            let q = q
                .as_ref()
                .unwrap_or_else(|e| panic!("{suite}: libsrtp2 error {e} on {i}"));
            assert_eq!(q.len(), p.len() + suite.rtp_tag_len());
            let mut buf = [0u8; 2048];
            buf[..q.len()].copy_from_slice(q);
            let n = rx
                .unprotect_rtp(&mut buf, q.len())
                .unwrap_or_else(|e| panic!("{suite}: packet {i} refused: {e}"));
            assert_eq!(&buf[..n], &p[..], "{suite}: packet {i}");
        }
    }
}

#[test]
fn dialgate_protects_libsrtp_unprotects_rtp() {
    for suite in Suite::ALL {
        let k = key(suite, 5);
        let plain = rtp_packets();
        let mut tx = Protector::new(&k).unwrap();
        let mut protected: Vec<Vec<u8>> = plain
            .iter()
            .map(|p| {
                let mut buf = [0u8; 2048];
                buf[..p.len()].copy_from_slice(p);
                tx.protect_rtp(&mut buf, p.len())
                    .unwrap()
                    .as_bytes()
                    .to_vec()
            })
            .collect();
        // Append a tampered copy of a fresh packet: libsrtp2 must refuse it.
        let mut bad_src = plain[0].clone();
        bad_src[2..4].copy_from_slice(&200u16.to_be_bytes()); // seq 200 of ROC 1
        let mut buf = [0u8; 2048];
        buf[..bad_src.len()].copy_from_slice(&bad_src);
        let mut bad = tx
            .protect_rtp(&mut buf, bad_src.len())
            .unwrap()
            .as_bytes()
            .to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        protected.push(bad);
        let out = run(Mode::Unprotect, suite, k.key_and_salt(), &protected);
        for (i, (p, q)) in plain.iter().zip(&out).enumerate() {
            assert_eq!(
                q.as_ref()
                    .unwrap_or_else(|e| panic!("{suite}: libsrtp2 error {e} on {i}")),
                p
            );
        }
        assert_eq!(
            out.last().unwrap(),
            &Err(LIBSRTP_AUTH_FAIL),
            "{suite}: tampered packet"
        );
    }
}

#[test]
fn srtcp_both_directions() {
    for suite in Suite::ALL {
        let k = key(suite, 9);
        let plain = rtcp_packets();

        let protected = run(Mode::ProtectRtcp, suite, k.key_and_salt(), &plain);
        let mut rx = Unprotector::new(&k).unwrap();
        for (i, (p, q)) in plain.iter().zip(&protected).enumerate() {
            let q = q.as_ref().unwrap();
            assert_eq!(q.len(), p.len() + suite.rtcp_overhead(), "{suite}");
            let mut buf = [0u8; 2048];
            buf[..q.len()].copy_from_slice(q);
            let n = rx
                .unprotect_rtcp(&mut buf, q.len())
                .unwrap_or_else(|e| panic!("{suite}: SRTCP {i} refused: {e}"));
            assert_eq!(&buf[..n], &p[..], "{suite}: SRTCP {i}");
        }

        let mut tx = Protector::new(&k).unwrap();
        let mut ours: Vec<Vec<u8>> = plain
            .iter()
            .map(|p| {
                let mut buf = [0u8; 2048];
                buf[..p.len()].copy_from_slice(p);
                tx.protect_rtcp(&mut buf, p.len())
                    .unwrap()
                    .as_bytes()
                    .to_vec()
            })
            .collect();
        // A fresh index, so that it fails on authentication, not replay.
        let mut buf = [0u8; 2048];
        buf[..plain[0].len()].copy_from_slice(&plain[0]);
        let mut bad = tx
            .protect_rtcp(&mut buf, plain[0].len())
            .unwrap()
            .as_bytes()
            .to_vec();
        bad[10] ^= 0x20;
        ours.push(bad);
        let out = run(Mode::UnprotectRtcp, suite, k.key_and_salt(), &ours);
        for (i, (p, q)) in plain.iter().zip(&out).enumerate() {
            assert_eq!(
                q.as_ref()
                    .unwrap_or_else(|e| panic!("{suite}: libsrtp2 error {e} on SRTCP {i}")),
                p
            );
        }
        assert_eq!(
            out.last().unwrap(),
            &Err(LIBSRTP_AUTH_FAIL),
            "{suite}: tampered SRTCP"
        );
    }
}

#[test]
fn libsrtp_tampered_packets_are_refused_by_dialgate() {
    for suite in Suite::ALL {
        let k = key(suite, 11);
        let plain = rtp_packets();
        let protected = run(Mode::Protect, suite, k.key_and_salt(), &plain[..20]);
        let mut rx = Unprotector::new(&k).unwrap();
        for q in protected {
            let mut q = q.unwrap();
            let mid = q.len() / 2;
            q[mid] ^= 0x80;
            let mut buf = [0u8; 2048];
            buf[..q.len()].copy_from_slice(&q);
            assert_eq!(
                rx.unprotect_rtp(&mut buf, q.len()),
                Err(dialgate::srtp::Error::AuthFailed),
                "{suite}"
            );
        }
    }
}
