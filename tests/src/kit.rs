//! A throwaway PKI and token registry for TLS tests: a kit CA with the
//! gateway's server certificate, a token CA with alice (registered),
//! mallory (revoked) and eve (unregistered), and client configs for them.

use std::sync::{Arc, RwLock};

use dialgate::tls::{phone_server_config, PqPolicy, Registry, SharedRegistry, TokenEntry};
use dialgate_hq::pki::{Ca, Issued, Validity};
use rustls::crypto::aws_lc_rs as provider;
use rustls::crypto::SupportedKxGroup;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The test kit.
#[derive(Debug)]
pub struct TestKit {
    /// Issues the gateway's server certificate.
    pub server_ca: Ca,
    /// The gateway's server certificate.
    pub server: Issued,
    /// Issues phone certificates.
    pub token_ca: Ca,
    /// The registry the gateway checks.
    pub registry: SharedRegistry,
    /// Registered.
    pub alice: Issued,
    /// Registered, revoked.
    pub mallory: Issued,
    /// Not registered.
    pub eve: Issued,
}

/// The private key of an issued certificate.
pub fn key_of(i: &Issued) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes()).expect("rcgen writes PKCS#8 PEM")
}

impl TestKit {
    /// A fresh kit, valid for 30 days.
    pub fn new() -> TestKit {
        let v = Validity::days_from_now(30);
        let server_ca = Ca::new("kit CA", v).expect("CA");
        let server = server_ca
            .issue_server("gateway", &["127.0.0.1", "localhost"], v)
            .expect("server cert");
        let token_ca = Ca::new("token CA", v).expect("CA");
        let alice = token_ca.issue_client("alice", v).expect("cert");
        let mallory = token_ca.issue_client("mallory", v).expect("cert");
        let eve = token_ca.issue_client("eve", v).expect("cert");
        let mut reg = Registry::default();
        for (who, name, revoked) in [(&alice, "alice", false), (&mallory, "mallory", true)] {
            reg.insert(
                dialgate::tls::key_hash_of(&who.der).expect("hash"),
                TokenEntry {
                    name: name.into(),
                    revoked,
                },
            );
        }
        TestKit {
            server_ca,
            server,
            token_ca,
            registry: Arc::new(RwLock::new(reg)),
            alice,
            mallory,
            eve,
        }
    }

    /// The phone-side server config.
    pub fn phone_config(&self, pq: PqPolicy) -> Arc<ServerConfig> {
        phone_server_config(
            vec![self.server.der.clone()],
            key_of(&self.server),
            &[self.token_ca.der()],
            Arc::clone(&self.registry),
            pq,
        )
        .expect("phone config")
    }

    /// A phone's client config: TLS 1.3, trusts the kit CA, presents `cert`.
    pub fn client(&self, cert: Option<&Issued>) -> Arc<ClientConfig> {
        self.client_with(cert, None, false)
    }

    /// A phone's client config with chosen key exchange groups (most
    /// preferred first) and, with `tls12_only`, TLS 1.2 instead of 1.3.
    pub fn client_with(
        &self,
        cert: Option<&Issued>,
        groups: Option<Vec<&'static dyn SupportedKxGroup>>,
        tls12_only: bool,
    ) -> Arc<ClientConfig> {
        let mut p = provider::default_provider();
        if let Some(g) = groups {
            p.kx_groups = g;
        }
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let mut roots = RootCertStore::empty();
        roots.add(self.server_ca.der()).expect("root");
        let b = ClientConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        Arc::new(match cert {
            Some(c) => b
                .with_client_auth_cert(vec![c.der.clone()], key_of(c))
                .expect("client cert"),
            None => b.with_no_client_auth(),
        })
    }
}

impl Default for TestKit {
    fn default() -> Self {
        TestKit::new()
    }
}
