//! The DER and PEM readers that see certificates from files and peers:
//! `pem::certificates`, then `der::Certificate::parse` and
//! `der::CertificationRequest::parse` on each block (and on the raw
//! input), the name, extension, SPKI and OID helpers on what parses.
//! Asserts: no panic; every slice a parsed certificate hands out lies
//! inside the input; a bounded `der::Reader` walk over the input never
//! reads past it.
//!
//! The YubiKey attestation extensions (`dialgate-hq`'s `enrol::attest`)
//! are decoded only after `webpki` has verified the chain to Yubico's
//! root, so fuzz bytes cannot reach them; the DER reader they use is this
//! one.
#![no_main]

use dialgate_proto::{der, pem};
use libfuzzer_sys::fuzz_target;

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fn certificate(input: &[u8]) {
    if let Ok(c) = der::Certificate::parse(input) {
        assert!(inside(input, c.spki));
        let _ = c.common_name();
        for e in &c.extensions {
            assert!(inside(input, e.value));
            let _ = der::oid_arcs(e.oid);
        }
        let _ = der::name_attributes(c.subject);
        let _ = der::name_attributes(c.issuer);
        let _ = der::p256_point(c.spki);
    }
    if let Ok(r) = der::CertificationRequest::parse(input) {
        let _ = der::name_attributes(r.subject);
        if let Ok(p) = der::p256_point(r.spki) {
            assert_eq!(der::p256_point(&der::p256_spki(p)), Ok(p));
        }
    }
    let _ = der::ecdsa_raw_to_der(input);
    // Walk the TLVs: each one consumed lies inside the input.
    let mut r = der::Reader::new(input);
    let mut n = 0;
    while let Ok((_, contents, whole)) = r.any() {
        assert!(inside(input, contents) && inside(input, whole));
        n += 1;
        assert!(n <= input.len());
    }
}

fuzz_target!(|data: &[u8]| {
    certificate(data);
    if let Ok(blocks) = pem::certificates(data) {
        assert!(!blocks.is_empty());
        for b in &blocks {
            assert!(b.len() <= data.len());
            certificate(b);
        }
    }
});
