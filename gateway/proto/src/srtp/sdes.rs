//! SDES key parameters (RFC 4568 §6.1): `inline:<key||salt base64>[|lifetime][|MKI:length]`.
//!
//! dialgate accepts exactly one key per crypto attribute, no MKI, and a
//! lifetime, if given, no shorter than what its index space enforces anyway.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::suite::MAX_KEY_SALT;
use super::{Error, MasterKey, Suite};

/// Shortest key lifetime accepted: 2^31 packets. A shorter lifetime would
/// require re-keying mid-call, which SDES cannot do without a re-INVITE.
const MIN_LIFETIME_LOG2: u32 = 31;

/// Parses one SDES key parameter for `suite` into a master key.
///
/// Refuses an MKI ([`Error::MkiNotSupported`]), a key of the wrong length
/// ([`Error::BadKeyLength`]), and anything else malformed
/// ([`Error::BadKeyParams`]).
pub fn parse_inline(suite: Suite, key_params: &str) -> Result<MasterKey, Error> {
    let rest = key_params
        .strip_prefix("inline:")
        .ok_or(Error::BadKeyParams)?;
    let mut fields = rest.split('|');
    let b64 = fields.next().ok_or(Error::BadKeyParams)?;
    if b64.len() > 64 {
        return Err(Error::BadKeyLength);
    }
    let mut lifetime_seen = false;
    for field in fields {
        if field.contains(':') {
            return Err(Error::MkiNotSupported);
        }
        if lifetime_seen {
            return Err(Error::BadKeyParams);
        }
        lifetime_seen = true;
        let log2 = if let Some(exp) = field.strip_prefix("2^") {
            exp.parse::<u32>().map_err(|_| Error::BadKeyParams)?
        } else {
            let n = field.parse::<u64>().map_err(|_| Error::BadKeyParams)?;
            63 - n.max(1).leading_zeros()
        };
        if log2 < MIN_LIFETIME_LOG2 {
            return Err(Error::BadKeyParams);
        }
    }
    let mut bytes = Zeroizing::new([0u8; 64]);
    let n = STANDARD
        .decode_slice(b64, &mut bytes[..])
        .map_err(|_| Error::BadKeyParams)?;
    MasterKey::new(suite, &bytes[..n])
}

/// Encodes a master key as an SDES `inline:` parameter (no lifetime, no MKI).
/// The result is secret; callers must not log it.
pub fn format_inline(key: &MasterKey) -> Zeroizing<String> {
    // Encoded straight into a heap buffer: `encode_string` goes through a
    // stack buffer that would keep the key's text after the call.
    let mut b64 = Zeroizing::new(vec![0u8; 4 * MAX_KEY_SALT.div_ceil(3)]);
    let n = STANDARD
        .encode_slice(key.key_and_salt(), &mut b64[..])
        .unwrap_or(0);
    let mut s = Zeroizing::new(String::with_capacity(7 + n));
    s.push_str("inline:");
    for &c in &b64[..n] {
        s.push(char::from(c));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4568_example_parses() {
        // RFC 4568 §4 example key (30 octets for AES_CM_128_HMAC_SHA1_80).
        let k = parse_inline(
            Suite::AesCm128HmacSha1_80,
            "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20",
        );
        // 2^20 is below our minimum lifetime, so it is refused...
        assert_eq!(k.unwrap_err(), Error::BadKeyParams);
        // ...and accepted without it.
        let k = parse_inline(
            Suite::AesCm128HmacSha1_80,
            "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        )
        .unwrap();
        assert_eq!(k.key().len(), 16);
        assert_eq!(k.salt().len(), 14);
        let again = format_inline(&k);
        assert_eq!(&*again, "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR");
    }

    #[test]
    fn mki_is_refused_cleanly() {
        let r = parse_inline(
            Suite::AesCm128HmacSha1_80,
            "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31|1:4",
        );
        assert_eq!(r.unwrap_err(), Error::MkiNotSupported);
        let r = parse_inline(
            Suite::AesCm128HmacSha1_80,
            "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:4",
        );
        assert_eq!(r.unwrap_err(), Error::MkiNotSupported);
    }

    #[test]
    fn malformed_params_are_refused() {
        let s = Suite::AesCm128HmacSha1_80;
        assert_eq!(
            parse_inline(s, "PS1uQCVe").unwrap_err(),
            Error::BadKeyParams
        );
        assert_eq!(
            parse_inline(s, "inline:!!!!").unwrap_err(),
            Error::BadKeyParams
        );
        // A 256-bit suite with a 128-bit key.
        assert_eq!(
            parse_inline(
                Suite::AesCm256HmacSha1_80,
                "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
            )
            .unwrap_err(),
            Error::BadKeyLength
        );
        assert_eq!(
            parse_inline(s, &format!("inline:{}", "A".repeat(200))).unwrap_err(),
            Error::BadKeyLength
        );
        assert_eq!(
            parse_inline(
                s,
                "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31|2^31"
            )
            .unwrap_err(),
            Error::BadKeyParams
        );
    }

    #[test]
    fn null_suites_do_not_exist() {
        for name in [
            "NULL_HMAC_SHA1_80",
            "AES_CM_128_NULL_AUTH",
            "NULL",
            "F8_128_HMAC_SHA1_80",
        ] {
            assert_eq!(Suite::from_name(name).unwrap_err(), Error::UnknownSuite);
        }
        for s in Suite::ALL {
            assert_eq!(Suite::from_name(s.name()).unwrap(), s);
        }
    }
}
