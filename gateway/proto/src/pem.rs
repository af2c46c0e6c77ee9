//! A strict reader of PEM certificate files (RFC 7468 §2, the
//! `CERTIFICATE` label only): what the kit configuration and policy
//! bundles use to carry trust anchors. The DER inside is checked by the
//! shell's X.509 parser when it builds a verifier.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Why a PEM text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// Not UTF-8 text.
    #[error("not a text file")]
    NotText,
    /// No `BEGIN CERTIFICATE` block at all.
    #[error("no certificate in it")]
    NoCertificate,
    /// A block without its `END` line.
    #[error("a certificate block has no END line")]
    Unterminated,
    /// The base64 inside a block does not decode.
    #[error("a certificate block is not valid base64")]
    BadBase64,
}

/// Every `CERTIFICATE` block of `text`, as DER, in order. Text outside the
/// blocks (comments, other labels) is ignored, as RFC 7468 §2 allows.
pub fn certificates(text: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    let text = std::str::from_utf8(text).map_err(|_| PemError::NotText)?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(BEGIN) {
        let body = &rest[i + BEGIN.len()..];
        let j = body.find(END).ok_or(PemError::Unterminated)?;
        let b64: String = body[..j].split_whitespace().collect();
        out.push(STANDARD.decode(b64).map_err(|_| PemError::BadBase64)?);
        rest = &body[j + END.len()..];
    }
    if out.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks_and_refuses_damage() {
        let one = format!("junk\n{BEGIN}\nAAEC\nAw==\n{END}\n");
        assert_eq!(
            certificates(one.as_bytes()).unwrap(),
            vec![vec![0, 1, 2, 3]]
        );
        let two = format!("{one}{BEGIN}\nBA==\n{END}\n");
        assert_eq!(certificates(two.as_bytes()).unwrap().len(), 2);
        assert_eq!(certificates(b"nothing"), Err(PemError::NoCertificate));
        assert_eq!(
            certificates(format!("{BEGIN}\nAAEC\n").as_bytes()),
            Err(PemError::Unterminated)
        );
        assert_eq!(
            certificates(format!("{BEGIN}\n!!\n{END}").as_bytes()),
            Err(PemError::BadBase64)
        );
        assert_eq!(certificates(&[0xff, 0xfe]), Err(PemError::NotText));
    }
}
