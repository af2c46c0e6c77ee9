//! TLS on both sides of the gateway over real TCP on loopback.
//!
//! Phone side: only a certificate from the token CA whose key is an active
//! registry entry completes the handshake; revoked, unregistered, foreign,
//! expired and missing certificates, and TLS 1.2, are refused before any
//! application byte is read; the hybrid post-quantum group is preferred and
//! can be required.
//!
//! Bridge side: the bridge certificate is verified against the trunk's CA
//! or pinned key and the host name; TLS 1.2 only where the trunk allows it.

use std::net::SocketAddr;
use std::sync::Arc;

use dialgate::tls::{
    key_hash_of, trunk_client_config, KeyHash, PqPolicy, SharedRegistry, TokenEntry, TrunkTls,
    TrunkTrust,
};
use dialgate_hq::pki::{Ca, Issued, Validity};
use dialgate_tests::kit::{key_of, TestKit};
use rustls::crypto::aws_lc_rs as provider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, NamedGroup, ProtocolVersion, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The shared test kit plus two certificates that must be refused even
/// though their keys are registered: one from a foreign CA, one expired.
struct Kit {
    base: TestKit,
    foreign: Issued,
    expired: Issued,
}

impl std::ops::Deref for Kit {
    type Target = TestKit;
    fn deref(&self) -> &TestKit {
        &self.base
    }
}

fn kit() -> Kit {
    let base = TestKit::new();
    let v = Validity::days_from_now(30);
    let expired = base
        .token_ca
        .issue_client("old", Validity::expired())
        .unwrap();
    let foreign = Ca::new("someone else's CA", v)
        .unwrap()
        .issue_client("alice", v)
        .unwrap();
    for (who, name) in [(&expired, "old"), (&foreign, "alice")] {
        let entry = TokenEntry {
            name: name.into(),
            revoked: false,
        };
        base.registry
            .write()
            .unwrap()
            .insert(dialgate::tls::key_hash_of(&who.der).unwrap(), entry);
    }
    Kit {
        base,
        foreign,
        expired,
    }
}

fn phone_config(k: &Kit, pq: PqPolicy) -> Arc<ServerConfig> {
    k.phone_config(pq)
}

fn phone_client(
    k: &Kit,
    cert: Option<&Issued>,
    groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
    tls12_only: bool,
) -> Arc<ClientConfig> {
    k.client_with(cert, groups, tls12_only)
}

/// What the server saw of one connection.
#[derive(Debug)]
struct Accepted {
    token: Option<String>,
    group: Option<NamedGroup>,
    version: Option<ProtocolVersion>,
    /// Bytes read from the client after the handshake.
    read: Vec<u8>,
}

/// Accepts one connection; Err is the handshake failure.
async fn serve_once(
    config: Arc<ServerConfig>,
    registry: SharedRegistry,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Result<Accepted, String>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        // What the listener does after the handshake: the registry's
        // admission of the verified key.
        let token = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| key_hash_of(c).ok())
            .and_then(|key| registry.read().ok()?.active(&key).map(|e| e.name.clone()));
        let group = conn.negotiated_key_exchange_group().map(|g| g.name());
        let version = conn.protocol_version();
        let mut read = vec![0u8; 5];
        tls.read_exact(&mut read).await.map_err(|e| e.to_string())?;
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        Ok(Accepted {
            token,
            group,
            version,
            read,
        })
    });
    (addr, h)
}

/// Connects, sends "hello", expects "ok"; Err if the server refused.
async fn talk(addr: SocketAddr, cfg: Arc<ClientConfig>, name: &str) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let sn = ServerName::try_from(name.to_string()).unwrap();
    let mut tls = TlsConnector::from(cfg)
        .connect(sn, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"hello").await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 2];
    tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    Ok(())
}

#[tokio::test]
async fn registered_token_is_admitted_with_post_quantum_key_exchange() {
    let k = kit();
    let (addr, srv) = serve_once(phone_config(&k, PqPolicy::Prefer), Arc::clone(&k.registry)).await;
    // A post-quantum capable client sends its hybrid key share first.
    let pq = Some(vec![
        provider::kx_group::X25519MLKEM768,
        provider::kx_group::X25519,
    ]);
    talk(
        addr,
        phone_client(&k, Some(&k.alice), pq, false),
        "127.0.0.1",
    )
    .await
    .expect("alice admitted");
    let a = srv.await.unwrap().expect("server accepted");
    assert_eq!(a.token.as_deref(), Some("alice"));
    assert_eq!(a.group, Some(NamedGroup::X25519MLKEM768));
    assert_eq!(a.version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(a.read, b"hello");
}

#[tokio::test]
async fn refused_certificates_never_reach_the_application() {
    let k = kit();
    // The reason travels in the handshake error (for the audit event);
    // the phone gets the same alert whatever it is.
    for (who, cert, reason) in [
        ("mallory (revoked)", Some(&k.mallory), "revoked"),
        ("eve (not registered)", Some(&k.eve), "not registered"),
        ("foreign CA", Some(&k.foreign), "not issued by the token CA"),
        ("expired", Some(&k.expired), "certificate expired"),
        ("no certificate", None, "ertificate"),
    ] {
        let (addr, srv) =
            serve_once(phone_config(&k, PqPolicy::Prefer), Arc::clone(&k.registry)).await;
        let client = talk(addr, phone_client(&k, cert, None, false), "127.0.0.1").await;
        assert!(client.is_err(), "{who}: client got through");
        let server = srv.await.unwrap();
        let err = server.expect_err(who);
        assert!(err.contains(reason), "{who}: {err}");
    }
}

#[tokio::test]
async fn revocation_applies_to_the_next_handshake() {
    let k = kit();
    k.registry.write().unwrap().insert(
        dialgate::tls::key_hash_of(&k.alice.der).unwrap(),
        TokenEntry {
            name: "alice".into(),
            revoked: true,
        },
    );
    let (addr, srv) = serve_once(phone_config(&k, PqPolicy::Prefer), Arc::clone(&k.registry)).await;
    assert!(talk(
        addr,
        phone_client(&k, Some(&k.alice), None, false),
        "127.0.0.1"
    )
    .await
    .is_err());
    assert!(srv.await.unwrap().is_err());
}

/// Connects, says hello and returns how the handshake went.
async fn talk_kind(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> Result<rustls::HandshakeKind, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let sn = ServerName::try_from("127.0.0.1".to_string()).unwrap();
    let mut tls = TlsConnector::from(cfg)
        .connect(sn, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"hello").await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 2];
    tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    // Any ticket the server sent has been read by now.
    let _ = tls.read(&mut [0u8; 1]).await;
    tls.get_ref()
        .1
        .handshake_kind()
        .ok_or("no handshake".into())
}

#[tokio::test]
async fn the_phone_side_never_resumes_a_session() {
    // A resumed session would skip the token verifier: a client that keeps
    // its session cache gets a full handshake every time, and a key revoked
    // in between is refused on the next connection.
    let k = kit();
    let client = phone_client(&k, Some(&k.alice), None, false);
    // One server configuration, as the listener has.
    let server = phone_config(&k, PqPolicy::Prefer);
    for _ in 0..2 {
        let (addr, srv) = serve_once(Arc::clone(&server), Arc::clone(&k.registry)).await;
        let kind = talk_kind(addr, Arc::clone(&client)).await.expect("alice");
        assert_eq!(kind, rustls::HandshakeKind::Full);
        assert_eq!(srv.await.unwrap().unwrap().token.as_deref(), Some("alice"));
    }
    k.registry.write().unwrap().insert(
        dialgate::tls::key_hash_of(&k.alice.der).unwrap(),
        TokenEntry {
            name: "alice".into(),
            revoked: true,
        },
    );
    let (addr, srv) = serve_once(server, Arc::clone(&k.registry)).await;
    assert!(
        talk_kind(addr, client).await.is_err(),
        "revoked key resumed"
    );
    assert!(srv.await.unwrap().is_err());
}

#[tokio::test]
async fn tls12_is_refused_on_the_phone_side() {
    let k = kit();
    let (addr, srv) = serve_once(phone_config(&k, PqPolicy::Prefer), Arc::clone(&k.registry)).await;
    assert!(talk(
        addr,
        phone_client(&k, Some(&k.alice), None, true),
        "127.0.0.1"
    )
    .await
    .is_err());
    assert!(srv.await.unwrap().is_err());
}

#[tokio::test]
async fn classic_key_exchange_is_accepted_unless_pq_is_required() {
    let k = kit();
    let classic = || Some(vec![provider::kx_group::X25519]);
    let (addr, srv) = serve_once(phone_config(&k, PqPolicy::Prefer), Arc::clone(&k.registry)).await;
    talk(
        addr,
        phone_client(&k, Some(&k.alice), classic(), false),
        "127.0.0.1",
    )
    .await
    .expect("X25519-only client allowed by default");
    assert_eq!(srv.await.unwrap().unwrap().group, Some(NamedGroup::X25519));

    let (addr, srv) =
        serve_once(phone_config(&k, PqPolicy::Require), Arc::clone(&k.registry)).await;
    assert!(talk(
        addr,
        phone_client(&k, Some(&k.alice), classic(), false),
        "127.0.0.1"
    )
    .await
    .is_err());
    assert!(
        srv.await.unwrap().is_err(),
        "PQ required: classic client refused"
    );

    let (addr, srv) =
        serve_once(phone_config(&k, PqPolicy::Require), Arc::clone(&k.registry)).await;
    talk(
        addr,
        phone_client(&k, Some(&k.alice), None, false),
        "127.0.0.1",
    )
    .await
    .expect("hybrid-capable client admitted");
    assert_eq!(
        srv.await.unwrap().unwrap().group,
        Some(NamedGroup::X25519MLKEM768)
    );
}

/// A bridge: plain server auth, TLS 1.3 or TLS 1.2 only.
fn bridge_config(cert: &Issued, tls12_only: bool) -> Arc<ServerConfig> {
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    Arc::new(
        ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], key_of(cert))
            .unwrap(),
    )
}

async fn bridge_once(
    cfg: Arc<ServerConfig>,
) -> (SocketAddr, tokio::task::JoinHandle<Option<ProtocolVersion>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.ok()?;
        let mut tls = TlsAcceptor::from(cfg).accept(tcp).await.ok()?;
        let v = tls.get_ref().1.protocol_version();
        let mut b = [0u8; 5];
        tls.read_exact(&mut b).await.ok()?;
        tls.write_all(b"ok").await.ok()?;
        v
    });
    (addr, h)
}

#[tokio::test]
async fn trunk_verifies_bridge_by_ca_name_and_pin() {
    let v = Validity::days_from_now(30);
    let bridge_ca = Ca::new("bridge CA", v).unwrap();
    let bridge = bridge_ca
        .issue_server("bridge", &["bridge.test", "127.0.0.1"], v)
        .unwrap();
    let rogue = Ca::new("rogue CA", v)
        .unwrap()
        .issue_server("bridge", &["bridge.test"], v)
        .unwrap();
    let pin = dialgate::tls::key_hash_of(&bridge.der).unwrap();
    let rogue_pin = dialgate::tls::key_hash_of(&rogue.der).unwrap();

    let cases: Vec<(&str, &Issued, TrunkTrust, &str, bool)> = vec![
        (
            "CA, right name",
            &bridge,
            TrunkTrust::Ca(vec![bridge_ca.der().to_vec()]),
            "bridge.test",
            true,
        ),
        (
            "CA, wrong name",
            &bridge,
            TrunkTrust::Ca(vec![bridge_ca.der().to_vec()]),
            "other.test",
            false,
        ),
        (
            "rogue bridge vs CA",
            &rogue,
            TrunkTrust::Ca(vec![bridge_ca.der().to_vec()]),
            "bridge.test",
            false,
        ),
        (
            "pinned key",
            &bridge,
            TrunkTrust::PinnedKey(pin),
            "bridge.test",
            true,
        ),
        (
            "pinned key, wrong name",
            &bridge,
            TrunkTrust::PinnedKey(pin),
            "other.test",
            false,
        ),
        (
            "rogue bridge vs pin",
            &rogue,
            TrunkTrust::PinnedKey(pin),
            "bridge.test",
            false,
        ),
        (
            "pin of rogue, real bridge",
            &bridge,
            TrunkTrust::PinnedKey(rogue_pin),
            "bridge.test",
            false,
        ),
    ];
    for (what, cert, trust, name, ok) in cases {
        let (addr, srv) = bridge_once(bridge_config(cert, false)).await;
        let cfg = trunk_client_config(&trust, TrunkTls::Tls13, None).unwrap();
        let r = talk(addr, cfg, name).await;
        assert_eq!(r.is_ok(), ok, "{what}: {r:?}");
        let _ = srv.await;
    }
}

#[tokio::test]
async fn tls12_only_where_the_trunk_allows_it() {
    let v = Validity::days_from_now(30);
    let ca = Ca::new("bridge CA", v).unwrap();
    let bridge = ca.issue_server("bridge", &["bridge.test"], v).unwrap();
    let trust = TrunkTrust::Ca(vec![ca.der().to_vec()]);

    let (addr, srv) = bridge_once(bridge_config(&bridge, true)).await;
    let strict = trunk_client_config(&trust, TrunkTls::Tls13, None).unwrap();
    assert!(talk(addr, strict, "bridge.test").await.is_err());
    assert_eq!(srv.await.unwrap(), None);

    let (addr, srv) = bridge_once(bridge_config(&bridge, true)).await;
    let webex = trunk_client_config(&trust, TrunkTls::Tls12Allowed, None).unwrap();
    talk(addr, webex, "bridge.test")
        .await
        .expect("TLS 1.2 allowed for this trunk");
    assert_eq!(srv.await.unwrap(), Some(ProtocolVersion::TLSv1_2));
}

#[test]
fn key_hashes_round_trip_and_pem_files_are_private() {
    let v = Validity::days_from_now(1);
    let ca = Ca::new("t", v).unwrap();
    let c = ca.issue_client("alice", v).unwrap();
    let h = dialgate::tls::key_hash_of(&c.der).unwrap();
    assert_eq!(KeyHash::from_hex(&h.to_hex()).unwrap(), h);
    assert!(KeyHash::from_hex("zz").is_err());
    assert_eq!(h.to_string().len(), 16, "log form is a prefix");

    let dir = std::env::temp_dir().join(format!("dialgate-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    c.write_to(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(c.write_to(&dir).is_err(), "refuses to overwrite");
    let loaded = dialgate::tls::load_certs(&dir.join("cert.pem")).unwrap();
    assert_eq!(loaded, vec![CertificateDer::from(c.der.to_vec())]);
    assert!(dialgate::tls::load_key(&dir.join("key.pem")).is_ok());
    assert!(format!("{c:?}").len() < 40, "Debug shows no key");
    std::fs::remove_dir_all(&dir).unwrap();
}
