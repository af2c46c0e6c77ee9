//! TLS for both sides of the gateway, on rustls with the aws-lc-rs provider
//! (the same crypto library as SRTP).
//!
//! **Phone side** ([`phone_server_config`]): TLS 1.3 only; a client
//! certificate is required, must chain to the kit's token CA and its public
//! key must be an active entry of the token [`Registry`], or the handshake
//! fails and no SIP is ever read. Key exchange prefers the hybrid
//! X25519MLKEM768 group; [`PqPolicy::Require`] refuses clients without it.
//!
//! **Bridge side** ([`trunk_client_config`]): TLS 1.3, or 1.2 where a trunk
//! is configured for it; the bridge's certificate is verified against that
//! trunk's CA, or against a pinned public key plus the host name.
//!
//! Identities are never taken from certificate names: a token is known by
//! the SHA-256 of its SubjectPublicKeyInfo ([`KeyHash`]), looked up in the
//! registry, which names it.

use std::fmt;
use std::sync::{Arc, RwLock};

pub use dialgate_proto::admission::{
    KeyHash, PqPolicy, Refusal, Registry, TokenEntry, TrunkTls, TrunkTrust,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{aws_lc_rs as provider, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

/// The registry as the handshake sees it.
pub type SharedRegistry = Arc<RwLock<Registry>>;

/// The [`KeyHash`] of a certificate: SHA-256 of its SubjectPublicKeyInfo.
pub fn key_hash_of(cert: &CertificateDer<'_>) -> Result<KeyHash, TlsError> {
    KeyHash::of_certificate(cert).map_err(|_| TlsError::BadCertificate)
}

/// Errors building TLS configurations or reading their files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no usable object.
    #[error("{what}: {reason}")]
    Pem {
        /// Which file or object.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// A certificate could not be parsed.
    #[error("malformed certificate")]
    BadCertificate,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built (e.g. no CA).
    #[error("client verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// No trust anchor was given for a trunk or the token CA.
    #[error("no trust anchor configured")]
    NoTrustAnchor,
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        what: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no certificate in file".into()));
    }
    Ok(certs)
}

/// Reads the private key of a PEM file.
pub fn load_key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        what: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn roots(certs: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    if certs.is_empty() {
        return Err(TlsError::NoTrustAnchor);
    }
    let mut store = RootCertStore::empty();
    for c in certs {
        store.add(c.clone())?;
    }
    Ok(Arc::new(store))
}

fn provider_with(groups: Vec<&'static dyn SupportedKxGroup>) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups: groups,
        ..provider::default_provider()
    })
}

/// The key exchange groups of the phone side, most preferred first.
pub fn phone_kx_groups(pq: PqPolicy) -> Vec<&'static dyn SupportedKxGroup> {
    match pq {
        PqPolicy::Require => vec![provider::kx_group::X25519MLKEM768],
        PqPolicy::Prefer => vec![
            provider::kx_group::X25519MLKEM768,
            provider::kx_group::X25519,
            provider::kx_group::SECP256R1,
        ],
    }
}

/// Why the phone side refused a client certificate. It travels inside the
/// handshake error (`CertificateError::Other`), so that the listener can
/// write one audit event with the key, the token and the address; the
/// phone gets the same `bad_certificate` alert for every reason.
#[derive(Debug, Clone)]
pub struct TokenRefused {
    /// The certificate's key.
    pub key: KeyHash,
    /// The registry's name for the key, if it has one.
    pub token: Option<String>,
    /// Why: "revoked", "not registered", or the certificate's own fault.
    pub reason: String,
}

impl fmt::Display for TokenRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token certificate refused: {}", self.reason)
    }
}

impl std::error::Error for TokenRefused {}

impl TokenRefused {
    /// The refusal inside a handshake error, if that is what it is.
    pub fn of(e: &rustls::Error) -> Option<&TokenRefused> {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(o)) => {
                o.0.downcast_ref::<TokenRefused>()
            }
            _ => None,
        }
    }

    fn into_error(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            self,
        ))))
    }
}

/// Verifies phone certificates: the chain must reach the token CA (webpki,
/// including validity dates), and the key must be an active registry entry.
struct TokenVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    registry: SharedRegistry,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for TokenVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = key_hash_of(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let registry = self
            .registry
            .read()
            .map_err(|_| rustls::Error::General("token registry unavailable".into()))?;
        let token = registry.entry(&key).map(|e| e.name.clone());
        let refuse = |reason: String| TokenRefused {
            key,
            token: token.clone(),
            reason,
        };
        if let Err(e) = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)
        {
            let reason = match &e {
                rustls::Error::InvalidCertificate(CertificateError::Expired)
                | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
                    "certificate expired".to_string()
                }
                rustls::Error::InvalidCertificate(CertificateError::NotValidYet)
                | rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                    ..
                }) => "certificate not yet valid".to_string(),
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    "not issued by the token CA".to_string()
                }
                other => format!("certificate refused ({other})"),
            };
            return Err(refuse(reason).into_error());
        }
        match registry.refusal(&key) {
            None => Ok(ClientCertVerified::assertion()),
            Some(Refusal::Revoked) => Err(refuse("revoked".into()).into_error()),
            Some(_) => Err(refuse("not registered".into()).into_error()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The phone-side server configuration. See the module documentation.
pub fn phone_server_config(
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    token_ca: &[CertificateDer<'static>],
    registry: SharedRegistry,
    pq: PqPolicy,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider_with(phone_kx_groups(pq));
    let chain =
        WebPkiClientVerifier::builder_with_provider(roots(token_ca)?, Arc::clone(&provider))
            .build()?;
    let verifier = Arc::new(TokenVerifier { chain, registry });
    let mut config = ServerConfig::builder_with_details(provider, crate::clock::time_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_chain, server_key)?;
    // No session resumption on the phone side: a resumed session would
    // skip the token verifier (a revoked key could come back with an old
    // ticket). Every connection is a full handshake.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The handshake-signature methods of a verifier that has a `provider`:
/// checked with the provider's algorithms (the same for every verifier
/// here; only the certificate checks differ).
macro_rules! provider_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Verifies a bridge by its pinned key: the end-entity key must match the
/// pin and the certificate must name the host; the handshake signature is
/// checked with the provider's algorithms.
#[derive(Debug)]
struct PinnedVerifier {
    pin: KeyHash,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let key = key_hash_of(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if key != self.pin {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        let ee = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        ee.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        Ok(ServerCertVerified::assertion())
    }

    provider_signature_checks!();
}

/// How a trunk's bridge certificate is checked: chain to the trunk's CAs,
/// or the pinned key; valid for the trunk's host name either way.
fn bridge_verifier(
    trust: &TrunkTrust,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    Ok(match trust {
        TrunkTrust::Ca(cas) => {
            let cas: Vec<CertificateDer<'static>> = cas
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect();
            WebPkiServerVerifier::builder_with_provider(roots(&cas)?, Arc::clone(provider))
                .build()
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?
        }
        TrunkTrust::PinnedKey(pin) => Arc::new(PinnedVerifier {
            pin: *pin,
            provider: Arc::clone(provider),
        }),
    })
}

/// A bridge as the bridge-side listener recognises it: the certificate it
/// presents must pass its trunk's checks (as when we connect to it).
pub struct KnownBridge {
    /// The trunk's index ([`crate::b2bua::Flow::Trunk`]).
    pub trunk: usize,
    host: ServerName<'static>,
    verifier: Arc<dyn ServerCertVerifier>,
}

impl fmt::Debug for KnownBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownBridge")
            .field("trunk", &self.trunk)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl KnownBridge {
    /// The bridge of trunk `trunk`, reached as `host` and trusted by `trust`.
    pub fn new(trunk: usize, host: &str, trust: &TrunkTrust) -> Result<KnownBridge, TlsError> {
        let provider = provider_with(phone_kx_groups(PqPolicy::Prefer));
        Ok(KnownBridge {
            trunk,
            host: ServerName::try_from(host.to_string())
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?,
            verifier: bridge_verifier(trust, &provider)?,
        })
    }
}

/// The bridges the bridge-side listener accepts (replaced when a policy
/// changes trunk settings).
pub type SharedBridges = Arc<RwLock<Vec<KnownBridge>>>;

/// The trunk whose bridge presented `chain`, if any.
pub fn identify_bridge(
    bridges: &SharedBridges,
    chain: &[CertificateDer<'_>],
    now: UnixTime,
) -> Option<usize> {
    let (ee, intermediates) = chain.split_first()?;
    let bridges = bridges.read().ok()?;
    bridges
        .iter()
        .find(|b| {
            b.verifier
                .verify_server_cert(ee, intermediates, &b.host, &[], now)
                .is_ok()
        })
        .map(|b| b.trunk)
}

/// Accepts a client certificate only from a known bridge.
struct BridgeClientVerifier {
    bridges: SharedBridges,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for BridgeClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeClientVerifier")
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for BridgeClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone()];
        chain.extend(intermediates.iter().cloned());
        match identify_bridge(&self.bridges, &chain, now) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    provider_signature_checks!();
}

/// The bridge-side listener's server configuration: bridges that send
/// in-dialog requests on a connection of their own (baresip does) must
/// present a certificate their trunk trusts. TLS 1.2 only if `tls12`.
pub fn bridge_server_config(
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    bridges: SharedBridges,
    tls12: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider_with(phone_kx_groups(PqPolicy::Prefer));
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let verifier = Arc::new(BridgeClientVerifier {
        bridges,
        provider: Arc::clone(&provider),
    });
    let config = ServerConfig::builder_with_details(provider, crate::clock::time_provider())
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_chain, server_key)?;
    Ok(Arc::new(config))
}

/// The bridge-side client configuration for one trunk. `client_identity`
/// is the kit's device certificate and key, presented where the bridge asks.
pub fn trunk_client_config(
    trust: &TrunkTrust,
    versions: TrunkTls,
    client_identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider_with(phone_kx_groups(PqPolicy::Prefer));
    let versions: &[&rustls::SupportedProtocolVersion] = match versions {
        TrunkTls::Tls13 => &[&rustls::version::TLS13],
        TrunkTls::Tls12Allowed => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder =
        ClientConfig::builder_with_details(Arc::clone(&provider), crate::clock::time_provider())
            .with_protocol_versions(versions)?;
    let verifier = bridge_verifier(trust, &provider)?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client_identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
