//! The framing: a header that gives the body's exact length, the body
//! bytes, one signature line. See the format in [`super`].
//!
//! This is the only code that reads a document before its signature has
//! verified, so it is small, reads at most [`Purpose::max_bytes`], accepts
//! one spelling of everything and never looks inside the body.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{KeyId, Purpose, SignedError};

const FORMAT: u32 = 1;
const ALGORITHM: &[u8] = b"ecdsa-p256-sha256";
/// The header is at most the magic (< 40) + " v" + 9 digits + " " + 8
/// digits + "\n".
const MAX_HEADER: usize = 64;
/// "signature " + algorithm + " " + 64 hex + " " + 96 base64 + "\n", with room.
const MAX_SIG_LINE: usize = 256;
/// A DER ECDSA P-256 signature is 8 to 72 octets.
const SIG_LEN: std::ops::RangeInclusive<usize> = 8..=72;

/// A framed bundle, not yet verified.
#[derive(Debug)]
pub(super) struct Envelope<'a> {
    /// The exact body bytes the signature covers (after the domain).
    pub body: &'a [u8],
    /// The signer's key id as the bundle claims it.
    pub key_id: KeyId,
    /// The DER signature.
    pub signature: Vec<u8>,
}

/// The message that is signed: the purpose's domain then the body.
pub(super) fn signed_message(domain: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + body.len());
    m.extend_from_slice(domain);
    m.extend_from_slice(body);
    m
}

/// Frames a body and its signature.
pub(super) fn assemble(
    purpose: &Purpose,
    body: &[u8],
    key_id: &KeyId,
    signature: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(purpose.magic.as_bytes());
    out.extend_from_slice(format!(" v{FORMAT} {}\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"signature ");
    out.extend_from_slice(ALGORITHM);
    out.extend_from_slice(
        format!(" {} {}\n", key_id.to_hex(), STANDARD.encode(signature)).as_bytes(),
    );
    out
}

fn malformed(purpose: &Purpose, reason: &'static str) -> SignedError {
    SignedError::Malformed {
        purpose: purpose.name,
        reason,
    }
}

/// A decimal number without sign, leading zero or more than `max_digits`.
fn decimal(s: &[u8], max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || s[0] == b'0' || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Splits a bundle into header, body and signature. Refuses anything that
/// is not exactly one well-formed signature line after the body.
pub(super) fn parse<'a>(purpose: &Purpose, bytes: &'a [u8]) -> Result<Envelope<'a>, SignedError> {
    let p = purpose;
    let max = p.max_bytes;
    let truncated = SignedError::Truncated { purpose: p.name };
    if bytes.len() > max {
        return Err(SignedError::TooLarge {
            purpose: p.name,
            size: bytes.len(),
            max,
        });
    }
    let mut magic = p.magic.as_bytes().to_vec();
    magic.push(b' ');
    let magic = &magic[..];
    let Some(nl) = bytes.iter().take(MAX_HEADER).position(|&b| b == b'\n') else {
        // A cut inside the header is a truncation, anything else is not a
        // bundle at all.
        return Err(
            if bytes.len() < MAX_HEADER && (magic.starts_with(bytes) || bytes.starts_with(magic)) {
                truncated
            } else {
                malformed(p, "not a document of this kind")
            },
        );
    };
    let header = bytes[..nl]
        .strip_prefix(magic)
        .ok_or(malformed(p, "not a document of this kind"))?;
    let mut fields = header.split(|&b| b == b' ');
    let (Some(version), Some(length), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed(p, "the header is not `MAGIC vN LENGTH`"));
    };
    let found = version
        .strip_prefix(b"v")
        .and_then(|v| decimal(v, 9))
        .ok_or(malformed(p, "the header's format version is not `vN`"))?;
    if found != u64::from(FORMAT) {
        // At most 9 digits: fits.
        return Err(SignedError::UnsupportedFormat {
            purpose: p.name,
            found: u32::try_from(found).unwrap_or(u32::MAX),
        });
    }
    let length =
        decimal(length, 8).ok_or(malformed(p, "the header's body length is not a number"))?;
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    if length > max {
        return Err(SignedError::TooLarge {
            purpose: p.name,
            size: length,
            max,
        });
    }
    let start = nl + 1;
    let Some(body) = start
        .checked_add(length)
        .and_then(|end| bytes.get(start..end))
    else {
        return Err(truncated);
    };
    let end = start + length;

    let mut rest = &bytes[end..];
    let mut signature = None;
    while !rest.is_empty() {
        let Some(nl) = rest.iter().take(MAX_SIG_LINE).position(|&b| b == b'\n') else {
            return Err(if rest.len() < MAX_SIG_LINE {
                truncated
            } else {
                malformed(p, "a line after the body is too long to be a signature")
            });
        };
        let line = signature_line(p, &rest[..nl])?;
        rest = &rest[nl + 1..];
        if signature.replace(line).is_some() {
            // Exactly one signer exists; a second line, even a copy of the
            // first, is refused rather than ignored (a verifier that counts
            // or picks signatures is where such formats break).
            return Err(SignedError::DuplicateSignature { purpose: p.name });
        }
    }
    let (key_id, signature) = signature.ok_or(truncated)?;
    Ok(Envelope {
        body,
        key_id,
        signature,
    })
}

/// `signature ecdsa-p256-sha256 <key id: 64 lower-case hex> <base64>`.
fn signature_line(p: &Purpose, line: &[u8]) -> Result<(KeyId, Vec<u8>), SignedError> {
    let mut f = line.split(|&b| b == b' ');
    let (Some(b"signature"), Some(alg), Some(id), Some(sig), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err(malformed(
            p,
            "after the body comes one line `signature ALGORITHM KEY-ID SIGNATURE`",
        ));
    };
    if alg != ALGORITHM {
        return Err(malformed(
            p,
            "unknown signature algorithm (a kit verifies ecdsa-p256-sha256)",
        ));
    }
    // One spelling only: lower-case hex, so a changed letter case is a
    // changed bundle.
    let id = std::str::from_utf8(id)
        .ok()
        .and_then(KeyId::from_hex)
        .ok_or(malformed(p, "the key id is not 64 lower-case hex digits"))?;
    // The standard engine refuses missing padding and non-zero trailing
    // bits: one signature has one spelling.
    let sig = STANDARD
        .decode(sig)
        .map_err(|_| malformed(p, "the signature is not base64"))?;
    if !SIG_LEN.contains(&sig.len()) {
        return Err(malformed(
            p,
            "the signature has the wrong length for ECDSA P-256",
        ));
    }
    Ok((id, sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::POLICY;

    fn assemble(body: &[u8], id: &KeyId, sig: &[u8]) -> Vec<u8> {
        super::assemble(&POLICY, body, id, sig)
    }
    fn parse(bytes: &[u8]) -> Result<Envelope<'_>, SignedError> {
        super::parse(&POLICY, bytes)
    }

    #[test]
    fn framing_round_trips_and_the_body_may_hold_anything() {
        let body = b"x\nsignature ecdsa-p256-sha256 \n\0\xff";
        let sig = [0x30u8; 70];
        let out = assemble(body, &KeyId([0xab; 32]), &sig);
        let header = format!("dialgate-policy-bundle v1 {}\n", body.len());
        assert!(out.starts_with(header.as_bytes()));
        let env = parse(&out).unwrap();
        assert_eq!(env.body, body);
        assert_eq!(env.key_id, KeyId([0xab; 32]));
        assert_eq!(env.signature, sig);
    }

    #[test]
    fn headers_have_one_spelling() {
        let good = assemble(b"abc", &KeyId([1; 32]), &[0x30; 70]);
        let tail = &good[good.iter().position(|&b| b == b'\n').unwrap()..];
        for (header, want) in [
            (&b"dialgate-policy-bundle v1 03"[..], "Malformed"),
            (b"dialgate-policy-bundle v1 +3", "Malformed"),
            (b"dialgate-policy-bundle v1  3", "Malformed"),
            (b"dialgate-policy-bundle v01 3", "Malformed"),
            (b"dialgate-policy-bundle V1 3", "Malformed"),
            (b"Dialgate-policy-bundle v1 3", "Malformed"),
            (b"dialgate-policy-bundle v1 3 ", "Malformed"),
            (b"dialgate-policy-bundle v2 3", "UnsupportedFormat"),
            (b"dialgate-policy-bundle v1 2000000", "TooLarge"),
            (b"dialgate-policy-bundle v1 4", "Malformed"),
            (b"dialgate-policy-bundle v1 300", "Truncated"),
        ] {
            let mut b = header.to_vec();
            b.extend_from_slice(tail);
            let e = format!("{:?}", parse(&b).unwrap_err());
            assert!(
                e.starts_with(want),
                "{:?}: {e}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[test]
    fn signature_lines_have_one_spelling() {
        let good = assemble(b"abc\n", &KeyId([0xab; 32]), &[0x30; 70]);
        let text = String::from_utf8(good.clone()).unwrap();
        let b64 = STANDARD.encode([0x30u8; 70]);
        for bad in [
            text.replace("ecdsa-p256-sha256", "ed25519"),
            text.replace(&"ab".repeat(32), &"AB".repeat(32)),
            text.replace(&"ab".repeat(32), &"ab".repeat(31)),
            text.replace("signature ", "signature  "),
            text.replace(&b64, &b64[..b64.len() - 1]),
            text.replace(&b64, &b64.replace('=', "")),
            text.replace(&b64, &format!("{b64} ")),
            text.replace(&b64, &STANDARD.encode([0x30u8; 73])),
            text.replace(&b64, "MA=="),
            format!("{text}\n"),
            text.replace("\nsignature", "\n\nsignature"),
        ] {
            assert_ne!(bad, text);
            assert!(
                matches!(parse(bad.as_bytes()), Err(SignedError::Malformed { .. })),
                "accepted or misclassified: {bad:?}"
            );
        }
        // Non-zero trailing bits: the last octet 0x30 is "MA=="; "MB=="
        // decodes loosely to the same octets.
        assert!(b64.ends_with("MA=="));
        let loose = text.replace(&b64, &format!("{}MB==", &b64[..b64.len() - 4]));
        assert!(parse(loose.as_bytes()).is_err());
    }
}
