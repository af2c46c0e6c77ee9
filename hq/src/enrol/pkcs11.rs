//! The PKCS#11 side of enrolment (the `cryptoki` crate): load the module,
//! find the token, log in, generate the key on the token, sign the request
//! through it, read any attestation it exposes, store the certificate back.
//!
//! The key is generated with `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`,
//! `CKA_SIGN` true and `CKA_EXTRACTABLE`, `CKA_DECRYPT`, `CKA_UNWRAP`,
//! `CKA_DERIVE` false, and read back: a module that
//! does not keep it sensitive and non-extractable is refused (and the key
//! destroyed). Signing uses `CKM_ECDSA` over a SHA-256 digest computed here
//! (the most widely supported mechanism); the token's raw `r || s` is
//! DER-encoded for X.509.
//!
//! Attestation: Yubico's ykcs11 shows a PIV slot's attestation certificate
//! and the device's f9 certificate as certificate objects; any token whose
//! certificate objects include a "YubiKey PIV Attestation" certificate for
//! the new key gets it verified ([`super::attest`]). SoftHSM and most
//! tokens have none: the entry is recorded `unattested`.
//!
//! If anything fails after the key was generated, the key pair (and the
//! certificate object, if stored) is destroyed, so a retry starts clean.

use std::path::Path;
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rustls::pki_types::{CertificateDer, UnixTime};
use zeroize::Zeroizing;

use super::attest::{self, PivSlot};
use super::{der, Attestation, EnrolError, Enrolled, Origin, Prepared};

/// DER of the prime256v1 OID, as `CKA_EC_PARAMS` wants it.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// At most this many certificate objects are read looking for attestation.
const MAX_CERT_OBJECTS: usize = 64;

/// A user PIN read from a file. Wiped on drop; `Debug` does not show it
/// and no error or log line contains it.
pub struct Pin(AuthPin);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl Pin {
    /// Reads the PIN from the first line of `path` (a trailing newline is
    /// not part of it).
    pub fn from_file(path: &Path) -> Result<Pin, EnrolError> {
        let err = |reason: &str| EnrolError::PinFile {
            path: path.display().to_string(),
            reason: reason.into(),
        };
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| err(&format!("cannot read it: {e}")))?,
        );
        let pin = text.trim_end_matches(['\n', '\r']);
        if pin.is_empty() || pin.len() > 256 || pin.contains('\n') {
            return Err(err("expected the PIN alone on one line"));
        }
        Ok(Pin(AuthPin::from(pin)))
    }
}

fn token_error(op: &'static str) -> impl FnOnce(CkError) -> EnrolError {
    move |e| EnrolError::Token {
        op,
        reason: e.to_string(),
    }
}

/// An open, read-write session on one token.
pub struct Token {
    // Dropped before the context: the session closes, then the module is
    // finalised.
    session: Arc<Mutex<Session>>,
    _ctx: Pkcs11,
    label: String,
    manufacturer: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.label)
            .field("manufacturer", &self.manufacturer)
            .finish_non_exhaustive()
    }
}

/// A key pair generated on the token.
#[derive(Debug, Clone)]
pub struct TokenKey {
    public: ObjectHandle,
    private: ObjectHandle,
    point: Vec<u8>,
    /// Its SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
}

impl Token {
    /// Loads `module`, and opens the initialised token labelled `label`, or
    /// the only initialised one.
    pub fn open(module: &Path, label: Option<&str>) -> Result<Token, EnrolError> {
        let load = |reason: String| EnrolError::ModuleLoad {
            module: module.display().to_string(),
            reason,
        };
        let ctx = Pkcs11::new(module).map_err(|e| load(e.to_string()))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| load(format!("C_Initialize: {e}")))?;
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(token_error("listing slots"))?;
        let mut seen: Vec<(Slot, String, String)> = Vec::new();
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(token_error("reading token information"))?;
            seen.push((
                slot,
                info.label().trim().to_string(),
                info.manufacturer_id().trim().to_string(),
            ));
        }
        let labels = || seen.iter().map(|(_, l, _)| l.clone()).collect::<Vec<_>>();
        let chosen = match label {
            Some(want) => seen.iter().find(|(_, l, _)| l == want).ok_or_else(|| {
                EnrolError::TokenNotFound {
                    wanted: format!("no initialised token labelled {want:?}"),
                    seen: labels(),
                }
            })?,
            None => match seen.as_slice() {
                [one] => one,
                [] => {
                    return Err(EnrolError::TokenNotFound {
                        wanted: "no initialised token in the module".into(),
                        seen: Vec::new(),
                    })
                }
                _ => {
                    return Err(EnrolError::TokenNotFound {
                        wanted: "several initialised tokens; name one with --token-label".into(),
                        seen: labels(),
                    })
                }
            },
        };
        let (slot, label, manufacturer) = chosen.clone();
        let session = ctx
            .open_rw_session(slot)
            .map_err(token_error("opening a read-write session"))?;
        Ok(Token {
            session: Arc::new(Mutex::new(session)),
            _ctx: ctx,
            label,
            manufacturer,
        })
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Session>, EnrolError> {
        self.session.lock().map_err(|_| EnrolError::Token {
            op: "session",
            reason: "a previous operation panicked".into(),
        })
    }

    /// Logs in as the user. A refused PIN says how many tries the token
    /// reports left, when it reports anything.
    pub fn login(&self, pin: &Pin) -> Result<(), EnrolError> {
        let result = self.session()?.login(UserType::User, Some(&pin.0));
        match result {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                Err(EnrolError::PinLocked(self.label.clone()))
            }
            Err(CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            )) => {
                let slot = self.session()?.get_session_info().map(|i| i.slot_id());
                let info = slot.and_then(|s| self._ctx.get_token_info(s));
                let tries = match info {
                    Ok(i) if i.user_pin_locked() => {
                        return Err(EnrolError::PinLocked(self.label.clone()))
                    }
                    Ok(i) if i.user_pin_final_try() => {
                        "; ONE try left before the PIN locks".to_string()
                    }
                    Ok(i) if i.user_pin_count_low() => {
                        "; the token reports few tries left".to_string()
                    }
                    _ => "; the token does not report how many tries are left".to_string(),
                };
                Err(EnrolError::WrongPin {
                    label: self.label.clone(),
                    tries,
                })
            }
            Err(e) => Err(token_error("logging in")(e)),
        }
    }

    /// Fails if any object has `label` or `id`.
    pub fn ensure_free(&self, label: &str, id: &[u8]) -> Result<(), EnrolError> {
        let s = self.session()?;
        let by_label = s
            .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
            .map_err(token_error("searching objects"))?;
        let by_id = s
            .find_objects(&[Attribute::Id(id.to_vec())])
            .map_err(token_error("searching objects"))?;
        let mut found = Vec::new();
        if !by_label.is_empty() {
            found.push(format!("{} object(s) labelled {label:?}", by_label.len()));
        }
        if !by_id.is_empty() {
            found.push(format!("{} object(s) with id {}", by_id.len(), hex(id)));
        }
        if found.is_empty() {
            Ok(())
        } else {
            Err(EnrolError::KeyExists(format!(
                "{} on token {:?}",
                found.join(" and "),
                self.label
            )))
        }
    }

    /// Generates a P-256 key pair on the token and checks that the private
    /// key is sensitive and not extractable.
    pub fn generate_p256(&self, label: &str, id: &[u8]) -> Result<TokenKey, EnrolError> {
        let common = [
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        // A signing key and nothing else.
        let mut public = vec![
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Derive(false),
            Attribute::EcParams(P256_PARAMS.to_vec()),
        ];
        public.extend_from_slice(&common);
        let mut private = vec![
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ];
        private.extend_from_slice(&common);
        let (public, private) = self
            .session()?
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .map_err(token_error("generating a P-256 key pair"))?;
        let key = TokenKey {
            public,
            private,
            point: Vec::new(),
            spki: Vec::new(),
        };
        match self.inspect(&key) {
            Ok(point) => Ok(TokenKey {
                spki: der::p256_spki(&point),
                point,
                ..key
            }),
            Err(e) => {
                self.destroy(&key);
                Err(e)
            }
        }
    }

    /// The public point, after checking the private key's protection.
    fn inspect(&self, key: &TokenKey) -> Result<Vec<u8>, EnrolError> {
        let s = self.session()?;
        let attrs = s
            .get_attributes(
                key.private,
                &[AttributeType::Sensitive, AttributeType::Extractable],
            )
            .map_err(token_error("reading the private key's attributes"))?;
        let (mut sensitive, mut extractable) = (false, true);
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => sensitive = v,
                Attribute::Extractable(v) => extractable = v,
                _ => {}
            }
        }
        if !sensitive || extractable {
            return Err(EnrolError::Token {
                op: "generating the key",
                reason: "the token does not keep the private key sensitive and non-extractable"
                    .into(),
            });
        }
        let attrs = s
            .get_attributes(key.public, &[AttributeType::EcPoint])
            .map_err(token_error("reading the public key"))?;
        let raw = attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p),
                _ => None,
            })
            .unwrap_or_default();
        // CKA_EC_POINT is a DER OCTET STRING (PKCS#11 2.40 §2.3.3); some
        // modules return the bare point.
        let point = match der::single(&raw, der::tag::OCTET_STRING) {
            Ok(p) => p.to_vec(),
            Err(_) => raw,
        };
        if point.len() != 65 || point[0] != 0x04 {
            return Err(EnrolError::Token {
                op: "reading the public key",
                reason: "not an uncompressed P-256 point".into(),
            });
        }
        Ok(point)
    }

    /// The token key as an rcgen key pair whose signatures the token makes.
    pub fn key_pair(&self, key: &TokenKey) -> Result<rcgen::KeyPair, EnrolError> {
        rcgen::KeyPair::from_remote(Box::new(TokenSigner {
            session: Arc::clone(&self.session),
            private: key.private,
            point: key.point.clone(),
        }))
        .map_err(|e| EnrolError::BadRequest(e.to_string()))
    }

    /// Destroys the key pair (best effort: this runs on error paths).
    pub fn destroy(&self, key: &TokenKey) {
        if let Ok(s) = self.session() {
            for h in [key.private, key.public] {
                if let Err(e) = s.destroy_object(h) {
                    tracing::warn!(error = %e, "could not destroy a key object after a failed enrolment");
                }
            }
        }
    }

    /// Stores `cert` (DER) on the token as an X.509 certificate object with
    /// the key's label and id; returns its handle.
    pub fn store_certificate(
        &self,
        label: &str,
        id: &[u8],
        cert: &CertificateDer<'_>,
    ) -> Result<ObjectHandle, EnrolError> {
        let parsed = der::Certificate::parse(cert.as_ref())
            .map_err(|e| EnrolError::BadRequest(e.to_string()))?;
        let mut serial = vec![der::tag::INTEGER, parsed.serial.len() as u8];
        serial.extend_from_slice(parsed.serial);
        self.session()?
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
                Attribute::Subject(parsed.subject.to_vec()),
                Attribute::Issuer(parsed.issuer.to_vec()),
                Attribute::SerialNumber(serial),
                Attribute::Value(cert.as_ref().to_vec()),
            ])
            .map_err(token_error("storing the certificate on the token"))
    }

    /// The certificate objects on the token (at most [`MAX_CERT_OBJECTS`]).
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, EnrolError> {
        let s = self.session()?;
        let handles = s
            .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
            .map_err(token_error("searching certificates"))?;
        let mut out = Vec::new();
        for h in handles.into_iter().take(MAX_CERT_OBJECTS) {
            let attrs = s
                .get_attributes(h, &[AttributeType::Value])
                .map_err(token_error("reading a certificate"))?;
            for a in attrs {
                if let Attribute::Value(v) = a {
                    out.push(CertificateDer::from(v));
                }
            }
        }
        Ok(out)
    }

    /// Finds and verifies a PIV attestation of `key` among the token's
    /// certificate objects.
    pub fn attestation(
        &self,
        key: &TokenKey,
        key_id: &[u8],
        roots: &[CertificateDer<'_>],
    ) -> Result<Attestation, EnrolError> {
        let certs = self.certificates()?;
        let is_slot_attestation = |c: &CertificateDer<'_>| {
            der::Certificate::parse(c.as_ref()).is_ok_and(|p| {
                p.spki == key.spki.as_slice()
                    && p.common_name()
                        .is_some_and(|cn| cn.starts_with("YubiKey PIV Attestation "))
            })
        };
        let Some(slot_cert) = certs.iter().find(|c| is_slot_attestation(c)) else {
            return Ok(Attestation::Unattested(format!(
                "token {:?} ({}) exposes no attestation for this key",
                self.label, self.manufacturer
            )));
        };
        let others: Vec<CertificateDer<'_>> =
            certs.iter().filter(|c| *c != slot_cert).cloned().collect();
        let expected = if self.manufacturer.starts_with("Yubico") {
            PivSlot::from_ykcs11_id(key_id)
        } else {
            None
        };
        let verified = attest::verify_piv(
            slot_cert,
            &others,
            roots,
            &key.spki,
            expected,
            UnixTime::now(),
        )?;
        Ok(Attestation::Verified(verified))
    }

    fn destroy_object(&self, h: ObjectHandle) {
        if let Ok(s) = self.session() {
            let _ = s.destroy_object(h);
        }
    }
}

/// Signs for rcgen through the token: SHA-256 here, `CKM_ECDSA` on the
/// token, the raw signature DER-encoded.
struct TokenSigner {
    session: Arc<Mutex<Session>>,
    private: ObjectHandle,
    point: Vec<u8>,
}

impl rcgen::RemoteKeyPair for TokenSigner {
    fn public_key(&self) -> &[u8] {
        &self.point
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg);
        let raw = self
            .session
            .lock()
            .map_err(|_| rcgen::Error::RemoteKeyError)?
            .sign(&Mechanism::Ecdsa, self.private, digest.as_ref())
            .map_err(|e| {
                tracing::warn!(error = %e, "the token refused to sign");
                rcgen::Error::RemoteKeyError
            })?;
        der::ecdsa_raw_to_der(&raw).map_err(|_| rcgen::Error::RemoteKeyError)
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// What `dialgatectl token enroll` passes for a PKCS#11 token.
#[derive(Debug)]
pub struct Options<'a> {
    /// The PKCS#11 module (shared library).
    pub module: &'a Path,
    /// The token's label; `None` takes the only initialised token.
    pub token_label: Option<&'a str>,
    /// The user PIN.
    pub pin: &'a Pin,
    /// The label of the key pair and certificate objects.
    pub key_label: &'a str,
    /// The `CKA_ID` of the key pair and certificate objects.
    pub key_id: &'a [u8],
    /// Trusted attestation roots.
    pub attestation_roots: &'a [CertificateDer<'a>],
}

/// Enrols a key generated on a PKCS#11 token.
pub fn enrol(prepared: &Prepared, o: &Options<'_>) -> Result<Enrolled, EnrolError> {
    let token = Token::open(o.module, o.token_label)?;
    token.login(o.pin)?;
    token.ensure_free(o.key_label, o.key_id)?;
    let key = token.generate_p256(o.key_label, o.key_id)?;
    let mut stored = None;
    let result = (|| {
        let csr = prepared.certification_request(&token.key_pair(&key)?)?;
        let issued = prepared.issue(&csr)?;
        let attestation = token.attestation(&key, o.key_id, o.attestation_roots)?;
        prepared.check_attestation(&attestation)?;
        stored = Some(token.store_certificate(o.key_label, o.key_id, &issued.cert.der)?);
        prepared.commit(&issued, Origin::Pkcs11, attestation)
    })();
    if result.is_err() {
        if let Some(h) = stored {
            token.destroy_object(h);
        }
        token.destroy(&key);
    }
    result
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses a `--key-id` (hex, 1 to 32 octets).
pub fn parse_key_id(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 || s.len() > 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}
