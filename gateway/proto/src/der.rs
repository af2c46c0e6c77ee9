//! A small, strict DER reader for the X.509 structures enrolment reads:
//! certificates (the token CA, attestation certificates) and PKCS#10
//! requests. Signatures and chains are checked by webpki and aws-lc-rs;
//! this only takes the fields apart.
//!
//! DER only: definite lengths in their shortest form, single-octet tags,
//! no trailing bytes anywhere, inputs bounded by [`MAX_DER`].

/// The largest structure accepted (a certificate is ~1 KiB).
pub const MAX_DER: usize = 16 * 1024;

/// Why bytes are not the expected DER.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DerError {
    /// Longer than [`MAX_DER`].
    #[error("larger than {MAX_DER} bytes")]
    TooLong,
    /// Not DER, or not the expected structure.
    #[error("malformed DER ({0})")]
    Malformed(&'static str),
}

fn bad(what: &'static str) -> DerError {
    DerError::Malformed(what)
}

/// Universal and context tags used here.
pub mod tag {
    /// BOOLEAN.
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// UTCTime.
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime.
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE.
    pub const SEQUENCE: u8 = 0x30;
    /// SET.
    pub const SET: u8 = 0x31;
    /// `[0]` constructed (certificate version, request attributes).
    pub const CONTEXT_0: u8 = 0xa0;
    /// `[1]` primitive (issuerUniqueID).
    pub const CONTEXT_1_PRIM: u8 = 0x81;
    /// `[2]` primitive (subjectUniqueID).
    pub const CONTEXT_2_PRIM: u8 = 0x82;
    /// `[3]` constructed (certificate extensions).
    pub const CONTEXT_3: u8 = 0xa3;
}

/// Object identifiers (DER contents, without tag and length).
pub mod oid {
    /// commonName (2.5.4.3).
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// id-ecPublicKey (1.2.840.10045.2.1).
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 / secp256r1 (1.2.840.10045.3.1.7).
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
    pub const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
}

/// Reads DER elements one after another from a slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub fn new(input: &'a [u8]) -> Reader<'a> {
        Reader { rest: input }
    }

    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: `(tag, contents, whole encoding)`.
    pub fn any(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), DerError> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(bad("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(bad("multi-octet tag"));
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(bad("truncated"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 3 {
                return Err(bad("length form"));
            }
            if after_len.len() < n {
                return Err(bad("truncated"));
            }
            let mut len = 0usize;
            for &b in &after_len[..n] {
                len = (len << 8) | usize::from(b);
            }
            // Shortest form only (X.690 §10.1).
            if after_len[0] == 0 || len < 0x80 {
                return Err(bad("non-minimal length"));
            }
            after_len = &after_len[n..];
            len
        };
        if after_len.len() < len {
            return Err(bad("truncated"));
        }
        let header = input.len() - after_len.len();
        let (whole, rest) = input.split_at(header + len);
        self.rest = rest;
        Ok((tag, &whole[header..], whole))
    }

    /// The contents of the next element, which must have `tag`.
    pub fn expect(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        let (t, contents, _) = self.any()?;
        if t != tag {
            return Err(bad("unexpected tag"));
        }
        Ok(contents)
    }

    /// The whole encoding of the next element, which must have `tag`.
    pub fn raw(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        let (t, _, whole) = self.any()?;
        if t != tag {
            return Err(bad("unexpected tag"));
        }
        Ok(whole)
    }

    /// The contents of the next element if it has `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.expect(tag).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails if anything is left.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing data"))
        }
    }
}

/// Reads exactly one element with `tag` from `input` and returns its
/// contents.
pub fn single(input: &[u8], tag: u8) -> Result<&[u8], DerError> {
    if input.len() > MAX_DER {
        return Err(DerError::TooLong);
    }
    let mut r = Reader::new(input);
    let contents = r.expect(tag)?;
    r.finish()?;
    Ok(contents)
}

/// A BIT STRING's bytes; only whole octets (no unused bits) are accepted.
pub fn bit_string_octets(contents: &[u8]) -> Result<&[u8], DerError> {
    match contents.split_first() {
        Some((0, bytes)) => Ok(bytes),
        _ => Err(bad("bit string with unused bits")),
    }
}

/// One certificate extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension<'a> {
    /// Its OID (contents).
    pub oid: &'a [u8],
    /// Marked critical.
    pub critical: bool,
    /// The extnValue OCTET STRING's contents.
    pub value: &'a [u8],
}

/// One attribute of a distinguished name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAttribute<'a> {
    /// The attribute type OID (contents).
    pub oid: &'a [u8],
    /// The string tag (UTF8String, PrintableString, ...).
    pub tag: u8,
    /// The string's bytes.
    pub value: &'a [u8],
}

/// The fields of an X.509 certificate enrolment needs, borrowed from its
/// DER encoding.
#[derive(Debug, Clone)]
pub struct Certificate<'a> {
    /// The serial number's INTEGER contents.
    pub serial: &'a [u8],
    /// The issuer Name, whole encoding.
    pub issuer: &'a [u8],
    /// The subject Name, whole encoding.
    pub subject: &'a [u8],
    /// The subject's attributes, in order.
    pub subject_attributes: Vec<NameAttribute<'a>>,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// The SubjectPublicKeyInfo, whole encoding.
    pub spki: &'a [u8],
    /// The extensions, in order.
    pub extensions: Vec<Extension<'a>>,
}

impl<'a> Certificate<'a> {
    /// Parses a certificate (RFC 5280 §4.1).
    pub fn parse(der: &'a [u8]) -> Result<Certificate<'a>, DerError> {
        let cert = single(der, tag::SEQUENCE)?;
        let mut c = Reader::new(cert);
        let tbs = c.expect(tag::SEQUENCE)?;
        c.expect(tag::SEQUENCE)?; // signatureAlgorithm
        c.expect(tag::BIT_STRING)?; // signatureValue
        c.finish()?;

        let mut t = Reader::new(tbs);
        if let Some(v) = t.optional(tag::CONTEXT_0)? {
            let version = single(v, tag::INTEGER)?;
            if version != [2] {
                return Err(bad("not an X.509 v3 certificate"));
            }
        }
        let serial = t.expect(tag::INTEGER)?;
        t.expect(tag::SEQUENCE)?; // signature
        let issuer = t.raw(tag::SEQUENCE)?;
        let mut validity = Reader::new(t.expect(tag::SEQUENCE)?);
        let not_before = read_time(&mut validity)?;
        let not_after = read_time(&mut validity)?;
        validity.finish()?;
        let subject = t.raw(tag::SEQUENCE)?;
        let spki = t.raw(tag::SEQUENCE)?;
        t.optional(tag::CONTEXT_1_PRIM)?;
        t.optional(tag::CONTEXT_2_PRIM)?;
        let mut extensions = Vec::new();
        if let Some(exts) = t.optional(tag::CONTEXT_3)? {
            let mut list = Reader::new(single(exts, tag::SEQUENCE)?);
            while !list.is_empty() {
                let mut e = Reader::new(list.expect(tag::SEQUENCE)?);
                let oid = e.expect(tag::OID)?;
                let critical = match e.optional(tag::BOOLEAN)? {
                    None => false,
                    Some([0xff]) => true,
                    Some(_) => return Err(bad("critical flag")),
                };
                let value = e.expect(tag::OCTET_STRING)?;
                e.finish()?;
                if extensions.iter().any(|x: &Extension<'_>| x.oid == oid) {
                    return Err(bad("duplicate extension"));
                }
                extensions.push(Extension {
                    oid,
                    critical,
                    value,
                });
            }
        }
        t.finish()?;
        Ok(Certificate {
            serial,
            issuer,
            subject,
            subject_attributes: name_attributes(subject)?,
            not_before,
            not_after,
            spki,
            extensions,
        })
    }

    /// The subject's common name, if it has exactly one, as UTF-8.
    pub fn common_name(&self) -> Option<&'a str> {
        let mut cns = self
            .subject_attributes
            .iter()
            .filter(|a| a.oid == oid::COMMON_NAME);
        let cn = cns.next()?;
        if cns.next().is_some() {
            return None;
        }
        std::str::from_utf8(cn.value).ok()
    }

    /// The extension with `oid`, if present.
    pub fn extension(&self, oid: &[u8]) -> Option<&Extension<'a>> {
        self.extensions.iter().find(|e| e.oid == oid)
    }
}

/// The attributes of a Name (whole encoding), one per RDN.
pub fn name_attributes(name: &[u8]) -> Result<Vec<NameAttribute<'_>>, DerError> {
    let mut out = Vec::new();
    let mut rdns = Reader::new(single(name, tag::SEQUENCE)?);
    while !rdns.is_empty() {
        let mut set = Reader::new(rdns.expect(tag::SET)?);
        let mut atv = Reader::new(set.expect(tag::SEQUENCE)?);
        if !set.is_empty() {
            return Err(bad("multi-valued RDN"));
        }
        let oid = atv.expect(tag::OID)?;
        let (tag, value, _) = atv.any()?;
        atv.finish()?;
        out.push(NameAttribute { oid, tag, value });
    }
    Ok(out)
}

fn digits(s: &[u8]) -> Result<i64, DerError> {
    let mut v = 0i64;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err(bad("time digits"));
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Ok(v)
}

/// A UTCTime or GeneralizedTime in the `...Z` seconds form RFC 5280
/// §4.1.2.5 requires, as unix seconds.
fn read_time(r: &mut Reader<'_>) -> Result<i64, DerError> {
    let (t, s, _) = r.any()?;
    let (year, rest) = match (t, s.len()) {
        (tag::UTC_TIME, 13) => {
            let yy = digits(&s[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        (tag::GENERALIZED_TIME, 15) => (digits(&s[..4])?, &s[4..]),
        _ => return Err(bad("time form")),
    };
    if rest[10] != b'Z' {
        return Err(bad("time zone"));
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let month = u8::try_from(field(0)?).map_err(|_| bad("month"))?;
    let month = time::Month::try_from(month).map_err(|_| bad("month"))?;
    let day = u8::try_from(field(2)?).map_err(|_| bad("day"))?;
    let year = i32::try_from(year).map_err(|_| bad("year"))?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| bad("date"))?;
    let hms = |i: usize| -> Result<u8, DerError> {
        u8::try_from(field(i)?).map_err(|_| bad("time of day"))
    };
    let tod = time::Time::from_hms(hms(4)?, hms(6)?, hms(8)?).map_err(|_| bad("time of day"))?;
    Ok(time::PrimitiveDateTime::new(date, tod)
        .assume_utc()
        .unix_timestamp())
}

/// A PKCS#10 certification request (RFC 2986), borrowed.
#[derive(Debug, Clone)]
pub struct CertificationRequest<'a> {
    /// The signed part (CertificationRequestInfo), whole encoding.
    pub info: &'a [u8],
    /// The subject Name, whole encoding.
    pub subject: &'a [u8],
    /// The SubjectPublicKeyInfo, whole encoding.
    pub spki: &'a [u8],
    /// The signature algorithm OID.
    pub signature_algorithm: &'a [u8],
    /// The signature (DER ECDSA-Sig-Value for ECDSA).
    pub signature: &'a [u8],
}

impl<'a> CertificationRequest<'a> {
    /// Parses a request.
    pub fn parse(der: &'a [u8]) -> Result<CertificationRequest<'a>, DerError> {
        let mut r = Reader::new(single(der, tag::SEQUENCE)?);
        let info = r.raw(tag::SEQUENCE)?;
        let mut alg = Reader::new(r.expect(tag::SEQUENCE)?);
        let signature_algorithm = alg.expect(tag::OID)?;
        alg.finish()?; // ecdsa-with-SHA256 has no parameters (RFC 5758 §3.2)
        let signature = bit_string_octets(r.expect(tag::BIT_STRING)?)?;
        r.finish()?;
        let mut i = Reader::new(single(info, tag::SEQUENCE)?);
        if i.expect(tag::INTEGER)? != [0] {
            return Err(bad("request version"));
        }
        let subject = i.raw(tag::SEQUENCE)?;
        let spki = i.raw(tag::SEQUENCE)?;
        i.expect(tag::CONTEXT_0)?; // attributes
        i.finish()?;
        Ok(CertificationRequest {
            info,
            subject,
            spki,
            signature_algorithm,
            signature,
        })
    }
}

/// The uncompressed point of a P-256 SubjectPublicKeyInfo.
pub fn p256_point(spki: &[u8]) -> Result<&[u8], DerError> {
    let mut r = Reader::new(single(spki, tag::SEQUENCE)?);
    let mut alg = Reader::new(r.expect(tag::SEQUENCE)?);
    if alg.expect(tag::OID)? != oid::EC_PUBLIC_KEY || alg.expect(tag::OID)? != oid::P256 {
        return Err(bad("not a P-256 key"));
    }
    alg.finish()?;
    let point = bit_string_octets(r.expect(tag::BIT_STRING)?)?;
    r.finish()?;
    if point.len() != 65 || point[0] != 0x04 {
        return Err(bad("not an uncompressed P-256 point"));
    }
    Ok(point)
}

/// The SubjectPublicKeyInfo (whole encoding) of an uncompressed P-256
/// point.
pub fn p256_spki(point: &[u8]) -> Vec<u8> {
    let alg_len = 2 + oid::EC_PUBLIC_KEY.len() + 2 + oid::P256.len();
    let mut out = vec![tag::SEQUENCE, 0x59, tag::SEQUENCE, alg_len as u8];
    out.extend_from_slice(&[tag::OID, oid::EC_PUBLIC_KEY.len() as u8]);
    out.extend_from_slice(oid::EC_PUBLIC_KEY);
    out.extend_from_slice(&[tag::OID, oid::P256.len() as u8]);
    out.extend_from_slice(oid::P256);
    out.extend_from_slice(&[tag::BIT_STRING, 0x42, 0x00]);
    out.extend_from_slice(point);
    out
}

/// Encodes a raw ECDSA signature `r || s` (as PKCS#11 `CKM_ECDSA` returns
/// it, each half `n` octets) as the DER `ECDSA-Sig-Value` X.509 carries
/// (RFC 3279 §2.2.3).
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, DerError> {
    if raw.is_empty() || raw.len() % 2 != 0 || raw.len() > 132 {
        return Err(bad("raw ECDSA signature length"));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let int = |v: &[u8]| {
        let first = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
        let v = &v[first..];
        let mut out = vec![tag::INTEGER];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![tag::SEQUENCE];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Dotted-decimal arcs of an OID's contents.
pub fn oid_arcs(contents: &[u8]) -> Result<Vec<u64>, DerError> {
    let mut arcs = Vec::new();
    let mut v: u64 = 0;
    let mut in_arc = false;
    for &b in contents {
        if !in_arc && b == 0x80 {
            return Err(bad("OID arc padding"));
        }
        if v > (u64::MAX >> 7) {
            return Err(bad("OID arc too large"));
        }
        v = (v << 7) | u64::from(b & 0x7f);
        in_arc = b & 0x80 != 0;
        if !in_arc {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        }
    }
    if in_arc || arcs.is_empty() {
        return Err(bad("OID"));
    }
    Ok(arcs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_be_minimal_and_complete() {
        assert_eq!(
            single(&[0x04, 0x01, 0xaa], tag::OCTET_STRING),
            Ok(&[0xaa][..])
        );
        // Long form for a short length, a zero-led long form, truncation,
        // indefinite length, trailing data, a multi-octet tag.
        for bad in [
            &[0x04, 0x81, 0x01, 0xaa][..],
            &[0x04, 0x82, 0x00, 0x81][..],
            &[0x04, 0x02, 0xaa][..],
            &[0x04, 0x80, 0xaa, 0x00, 0x00][..],
            &[0x04, 0x01, 0xaa, 0x00][..],
            &[0x1f, 0x01, 0x00][..],
            &[][..],
        ] {
            assert!(single(bad, tag::OCTET_STRING).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn raw_ecdsa_signatures_become_der() {
        // High bit set in r (padded), leading zeros in s (stripped).
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[31] = 1;
        raw[62] = 0x01;
        raw[63] = 0x02;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x27, 0x02, 0x21]);
        assert_eq!(der[4], 0x00);
        assert_eq!(&der[der.len() - 4..], &[0x02, 0x02, 0x01, 0x02]);
        // All-zero halves stay one zero octet each.
        assert_eq!(
            ecdsa_raw_to_der(&[0u8; 64]).unwrap(),
            [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]
        );
        assert!(ecdsa_raw_to_der(&[0u8; 63]).is_err());
    }

    #[test]
    fn oids_decode_to_arcs() {
        assert_eq!(
            oid_arcs(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xc4, 0x0a, 0x03, 0x07]).unwrap(),
            vec![1, 3, 6, 1, 4, 1, 41482, 3, 7]
        );
        assert_eq!(oid_arcs(oid::COMMON_NAME).unwrap(), vec![2, 5, 4, 3]);
        assert!(oid_arcs(&[0x2b, 0x86]).is_err());
        assert!(oid_arcs(&[0x2b, 0x80, 0x01]).is_err());
    }

    #[test]
    fn p256_spki_round_trips() {
        let mut point = [7u8; 65];
        point[0] = 4;
        let spki = p256_spki(&point);
        assert_eq!(p256_point(&spki).unwrap(), &point[..]);
    }
}
