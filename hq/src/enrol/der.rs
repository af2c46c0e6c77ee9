//! The DER reader lives in `dialgate_proto::der` (the kit reads token
//! certificates with it too); this adds what only the home side needs.

pub use dialgate_proto::der::*;

/// Every `CERTIFICATE` block of a PEM text, as rustls certificates; a
/// block that does not decode is skipped.
pub fn pem_certificates(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let mut out = Vec::new();
    let mut rest = pem;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    while let Some(i) = rest.find(BEGIN) {
        let block = &rest[i..];
        let end = block
            .find("-----END CERTIFICATE-----")
            .map_or(block.len(), |e| e + "-----END CERTIFICATE-----".len());
        if let Ok(mut ders) = dialgate_proto::pem::certificates(&block.as_bytes()[..end]) {
            out.extend(ders.drain(..).map(Into::into));
        }
        rest = &block[end..];
    }
    out
}
