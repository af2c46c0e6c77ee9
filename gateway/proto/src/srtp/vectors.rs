//! Test vectors from RFC 3711 Appendix B.2/B.3, RFC 6188 §7.1/§7.2 and
//! RFC 7714 §16/§17, run against the code that dialgate ships.

use super::keys::{derive, Keys, SessionKeys};
use super::*;

fn h(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The AES-CM keystream of RFC 3711 B.2 / RFC 6188 7.1: SSRC 0, index 0,
/// salt f0f1..fd, over the 65282-block segment; returns the first three
/// and the last three blocks.
fn cm_keystream(session_key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let salt: [u8; 14] = h("f0f1f2f3f4f5f6f7f8f9fafbfcfd").try_into().unwrap();
    let keys = Keys::cm_from_session(session_key, &[0u8; 20], salt);
    let mut stream = vec![0u8; 1_044_512];
    keys.ctr_apply(0, 0, &mut stream).unwrap();
    (stream[..48].to_vec(), stream[stream.len() - 48..].to_vec())
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let (first, last) = cm_keystream(&h("2b7e151628aed2a6abf7158809cf4f3c"));
    assert_eq!(
        first,
        h("e03ead0935c95e80e166b16dd92b4eb4 d23513162b02d0f72a43a2fe4a5f97ab 41e95b3bb0a2e8dd477901e4fca894c0")
    );
    assert_eq!(
        last,
        h("ec8cdf7398607cb0f2d21675ea9ea1e4 362b7c3c6773516318a077d7fc5073ae 6a2cc3787889374fbeb4c81b17ba6c44")
    );
}

#[test]
fn rfc6188_7_1_aes256_cm_keystream() {
    let (first, last) = cm_keystream(&h(
        "57f82fe3613fd170a85ec93c40b1f0922ec4cb0dc025b58272147cc438944a98",
    ));
    assert_eq!(
        first,
        h("92bdd28a93c3f52511c677d08b5515a4 9da71b2378a854f67050756ded165bac 63c4868b7096d88421b563b8c94c9a31")
    );
    assert_eq!(
        last,
        h("cea518c90fd91ced9cbb18c078a54711 3dbc4814f4da5f00a08772b63c6a046d 6eb246913062a16891433e97dd01a57f")
    );
}

fn check_kdf(
    suite: Suite,
    master_key: &str,
    master_salt: &str,
    cipher: &str,
    salt: &str,
    auth: &str,
) {
    let mut ks = h(master_key);
    ks.extend(h(master_salt));
    let m = MasterKey::new(suite, &ks).unwrap();
    let mut out = vec![0u8; suite.key_len()];
    derive(&m, 0x00, &mut out).unwrap();
    assert_eq!(out, h(cipher), "cipher key");
    let mut out = [0u8; 14];
    derive(&m, 0x02, &mut out).unwrap();
    assert_eq!(out.to_vec(), h(salt), "salt");
    let mut out = vec![0u8; h(auth).len()];
    derive(&m, 0x01, &mut out).unwrap();
    assert_eq!(out, h(auth), "auth key");
}

#[test]
fn rfc3711_b3_key_derivation() {
    check_kdf(
        Suite::AesCm128HmacSha1_80,
        "e1f97a0d3e018be0d64fa32c06de4139",
        "0ec675ad498afeebb6960b3aabe6",
        "c61e7a93744f39ee10734afe3ff7a087",
        "30cbbc08863d8c85d49db34a9ae1",
        // The full 94-octet output the RFC prints (HMAC-SHA1 uses 20).
        "cebe321f6ff7716b6fd4ab49af256a15 6d38baa48f0a0acf3c34e2359e6cdbce
         e049646c43d9327ad175578ef7227098 6371c10c9a369ac2f94a8c5fbcdddc25
         6d6e919a48b610ef17c2041e47403576 6b68642c59bbfc2f34db60dbdfb2",
    );
}

#[test]
fn rfc6188_7_2_aes256_key_derivation() {
    check_kdf(
        Suite::AesCm256HmacSha1_80,
        "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6",
        "3b04803de51ee7c96423ab5b78d2",
        "5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4",
        "fa31791685ca444a9e07c6c64e93",
        "fd9c32d39ed5fbb5a9dc96b30818454d1313dc05",
    );
}

const RTP_PLAIN: &str = "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
const RTCP_PLAIN: &str = "81c8000d4d617273 4e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
const SALT: &str = "517569642070726f2071756f";
const KEY128: &str = "000102030405060708090a0b0c0d0e0f";
const KEY256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn gcm_session(suite: Suite, key: &str) -> SessionKeys {
    let salt: [u8; 12] = h(SALT).try_into().unwrap();
    SessionKeys {
        suite,
        rtp: Keys::gcm_from_session(&h(key), salt),
        rtcp: Keys::gcm_from_session(&h(key), salt),
    }
}

fn check_gcm_rtp(suite: Suite, key: &str, expected: &str) {
    let plain = h(RTP_PLAIN);
    let expected = h(expected);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let mut tx = Protector::from_session(gcm_session(suite, key));
    let out = tx.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(out.as_bytes(), &expected[..]);

    let mut rx = Unprotector::from_session(gcm_session(suite, key));
    buf[..expected.len()].copy_from_slice(&expected);
    let n = rx.unprotect_rtp(&mut buf, expected.len()).unwrap();
    assert_eq!(&buf[..n], &plain[..]);
}

#[test]
fn rfc7714_16_1_aead_aes_128_gcm_rtp() {
    check_gcm_rtp(
        Suite::AeadAes128Gcm,
        KEY128,
        "8040f17b8041f8d35501a0b2 f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833
         899d7f27beb16a9152cf765ee4390cce",
    );
}

#[test]
fn rfc7714_16_2_aead_aes_256_gcm_rtp() {
    check_gcm_rtp(
        Suite::AeadAes256Gcm,
        KEY256,
        "8040f17b8041f8d35501a0b2 32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b
         7aa3db36dfffd6b0f9bb7878d7a76c13",
    );
}

const SRTCP_128: &str = "81c8000d4d617273 63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275b
     c84aa45896cf4d2fc5abf87245d9eade 800005d4";
const SRTCP_256: &str = "81c8000d4d617273 d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad
     1d1eb30c4446839f57ff6f6cb26ac3be 800005d4";

#[test]
fn rfc7714_17_1_aead_aes_128_gcm_rtcp_protect_and_unprotect() {
    let plain = h(RTCP_PLAIN);
    let expected = h(SRTCP_128);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let mut tx = Protector::from_session(gcm_session(Suite::AeadAes128Gcm, KEY128));
    tx.set_next_rtcp_index(0x4d61_7273, 0x5d4);
    let out = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(out.as_bytes(), &expected[..]);

    let mut rx = Unprotector::from_session(gcm_session(Suite::AeadAes128Gcm, KEY128));
    buf[..expected.len()].copy_from_slice(&expected);
    let n = rx.unprotect_rtcp(&mut buf, expected.len()).unwrap();
    assert_eq!(&buf[..n], &plain[..]);
}

#[test]
fn rfc7714_17_2_aead_aes_256_gcm_rtcp_unprotect_and_protect() {
    let plain = h(RTCP_PLAIN);
    let input = h(SRTCP_256);
    let mut buf = [0u8; 128];
    buf[..input.len()].copy_from_slice(&input);
    let mut rx = Unprotector::from_session(gcm_session(Suite::AeadAes256Gcm, KEY256));
    let n = rx.unprotect_rtcp(&mut buf, input.len()).unwrap();
    assert_eq!(&buf[..n], &plain[..]);

    let mut tx = Protector::from_session(gcm_session(Suite::AeadAes256Gcm, KEY256));
    tx.set_next_rtcp_index(0x4d61_7273, 0x5d4);
    buf[..plain.len()].copy_from_slice(&plain);
    assert_eq!(
        tx.protect_rtcp(&mut buf, plain.len()).unwrap().as_bytes(),
        &input[..]
    );
}

#[test]
fn rfc7714_17_3_and_17_4_tag_only_srtcp_is_refused() {
    // Valid RFC vectors for authentication-only SRTCP (E = 0). dialgate
    // never accepts unencrypted media, so both must be refused.
    for (suite, key, pkt) in [
        (
            Suite::AeadAes128Gcm,
            KEY128,
            "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef
             841dd9683dd78ec92ae58790125f62b3 000005d4",
        ),
        (
            Suite::AeadAes256Gcm,
            KEY256,
            "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef
             91db4afbfeee5a978fab4393ed2615fe 000005d4",
        ),
    ] {
        let p = h(pkt);
        let mut buf = [0u8; 128];
        buf[..p.len()].copy_from_slice(&p);
        let mut rx = Unprotector::from_session(gcm_session(suite, key));
        assert_eq!(rx.unprotect_rtcp(&mut buf, p.len()), Err(Error::Unencrypted));
    }
}
