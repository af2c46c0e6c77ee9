//! Choosing and checking `a=crypto` lines (RFC 4568 §6, §7), and drawing
//! our own keys.

use aws_lc_rs::constant_time;

use crate::srtp::{self, parse_inline, MasterKey, Suite};

use super::model::{Crypto, Media};
use super::policy::{Inconsistency, Policy, Reject};

/// The crypto line picked from an offer, with the offerer's key.
#[derive(Debug)]
pub(super) struct Chosen {
    pub tag: u32,
    pub suite: Suite,
    pub key: MasterKey,
}

/// Picks the first crypto line, in the offerer's preference order
/// (RFC 4568 §7.1.1), whose suite `policy` allows and whose key and session
/// parameters are acceptable.
///
/// When none is, the refusal names the most useful reason: what was wrong
/// with the first line that had an allowed suite; otherwise "known suites,
/// none allowed"; otherwise NULL suites; otherwise unknown suites.
pub(super) fn select(media: &Media, policy: &Policy) -> Result<Chosen, Reject> {
    let lines: Vec<&Crypto> = media.crypto().collect();
    if lines.is_empty() {
        return Err(Reject::NoCrypto);
    }
    for (i, c) in lines.iter().enumerate() {
        if lines[..i].iter().any(|d| d.tag == c.tag) {
            return Err(Inconsistency::DuplicateCryptoTag.into());
        }
    }
    let mut first_failure = None;
    let mut known_suite = false;
    let mut null_suite = false;
    for c in lines {
        match Suite::from_name(&c.suite) {
            Err(_) => null_suite |= is_null_suite(&c.suite),
            Ok(s) if !policy.allows(s) => known_suite = true,
            Ok(suite) => match key_of(c, suite) {
                Ok(key) => {
                    return Ok(Chosen {
                        tag: c.tag,
                        suite,
                        key,
                    })
                }
                Err(r) => {
                    first_failure.get_or_insert(r);
                }
            },
        }
    }
    Err(first_failure.unwrap_or(if known_suite {
        Reject::NoAcceptableSuite
    } else if null_suite {
        Reject::NullCipher
    } else {
        Reject::UnknownSuitesOnly
    }))
}

/// NULL_HMAC_SHA1_80, AES_CM_128_NULL_AUTH and the like (RFC 4568 §6.2).
fn is_null_suite(name: &str) -> bool {
    name.split('_').any(|p| p.eq_ignore_ascii_case("NULL"))
}

/// The master key of a crypto line for `suite`, after its session
/// parameters pass.
pub(super) fn key_of(c: &Crypto, suite: Suite) -> Result<MasterKey, Reject> {
    check_session_params(&c.session_params)?;
    let mut keys = c.key_params().split(';');
    let first = keys.next().unwrap_or_default();
    if keys.next().is_some() {
        // Several keys in one line are told apart by their MKI
        // (RFC 4568 §6.1), which dialgate does not support.
        return Err(Reject::MkiNotSupported);
    }
    if !first.starts_with("inline:") {
        return Err(Reject::UnsupportedKeyParams);
    }
    parse_inline(suite, first).map_err(|e| match e {
        srtp::Error::MkiNotSupported => Reject::MkiNotSupported,
        _ => Reject::BadKeyParams,
    })
}

/// RFC 4568 §6.3. Parameters that weaken protection are refused first, so
/// that a line carrying both kinds is reported for the worse one.
fn check_session_params(params: &[String]) -> Result<(), Reject> {
    const INSECURE: [&str; 3] = [
        "UNENCRYPTED_SRTP",
        "UNENCRYPTED_SRTCP",
        "UNAUTHENTICATED_SRTP",
    ];
    if params.iter().any(|p| INSECURE.contains(&p.as_str())) {
        return Err(Reject::UnencryptedSessionParam);
    }
    for p in params {
        let ok = match p.split_once('=') {
            // Key derivation only once, which is what we implement.
            Some(("KDR", "0")) => true,
            // A window size hint (§6.3.7), at least 64; ours is 128 anyway.
            Some(("WSH", n)) => n.parse::<u32>().is_ok_and(|n| n >= 64),
            _ => false,
        };
        if !ok {
            return Err(Reject::UnsupportedSessionParam);
        }
    }
    Ok(())
}

/// Whether two master keys are the same, in constant time.
pub(super) fn same_key(a: &MasterKey, b: &MasterKey) -> bool {
    a.suite() == b.suite()
        && constant_time::verify_slices_are_equal(a.key_and_salt(), b.key_and_salt()).is_ok()
}

/// A fresh master key for `suite`, different from every key in `avoid`
/// (a collision is astronomically unlikely; it would mean a broken
/// generator, so a few redraws and then an error).
pub(super) fn fresh_key(suite: Suite, avoid: &[&MasterKey]) -> Result<MasterKey, Reject> {
    for _ in 0..4 {
        let k = MasterKey::generate(suite).map_err(|_| Reject::Internal)?;
        if !avoid.iter().any(|a| same_key(a, &k)) {
            return Ok(k);
        }
    }
    Err(Reject::Internal)
}

/// A random 62-bit number (session ids stay positive in signed 64-bit
/// arithmetic, which some peers use).
pub(super) fn random_id() -> Result<u64, Reject> {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| Reject::Internal)?;
    Ok(u64::from_be_bytes(b) >> 2)
}
