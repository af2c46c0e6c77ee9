//! The phone-side listener under attack, on loopback with distinct source
//! addresses (127.0.0.x stand for different hosts): idle connects from many
//! addresses, a slowloris handshake and too many connections from one
//! address must not keep a registered phone out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dialgate::tls::PqPolicy;
use dialgate::transport::{serve, ListenerLimits, ListenerStats, PhoneConnection};
use dialgate_hq::pki::Issued;
use dialgate_tests::kit::TestKit;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

async fn connect_from(src: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    s.connect(to).await
}

async fn start(
    kit: &TestKit,
    limits: ListenerLimits,
) -> (
    SocketAddr,
    Arc<ListenerStats>,
    mpsc::Receiver<PhoneConnection>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ListenerStats::default());
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(serve(
        listener,
        kit.phone_config(PqPolicy::Prefer),
        Arc::clone(&kit.registry),
        limits,
        Arc::clone(&stats),
        tx,
    ));
    (addr, stats, rx)
}

/// A handshake with a certificate the listener refuses (eve, mallory).
async fn refused_token(kit: &TestKit, who: &Issued, src: Ipv4Addr, addr: SocketAddr) {
    let tcp = connect_from(src, addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    if let Ok(mut tls) = TlsConnector::from(kit.client(Some(who)))
        .connect(name, tcp)
        .await
    {
        let _ = tls.write_all(b"x").await;
    }
}

async fn phone(kit: &TestKit, src: Ipv4Addr, addr: SocketAddr) -> Result<(), String> {
    let tcp = connect_from(src, addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = TlsConnector::from(kit.client(Some(&kit.alice)))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"\r\n\r\n").await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn idle_connect_flood_from_many_addresses_does_not_lock_out_a_phone() {
    let kit = TestKit::new();
    let limits = ListenerLimits {
        max_pending_handshakes: 16,
        max_pending_per_address: 4,
        handshake_timeout: Duration::from_secs(30),
        ..ListenerLimits::default()
    };
    let (addr, stats, mut admitted) = start(&kit, limits).await;
    // One host opens five idle connects: the fifth is refused outright
    // (per-address limit).
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(
            connect_from(Ipv4Addr::new(127, 0, 0, 2), addr)
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.refused_by_limit.load(Ordering::Relaxed), 1);
    // Then 20 more hosts x 4 idle connects: 80 pending, far over 16.
    for host in 3..23u8 {
        for _ in 0..4 {
            idle.push(
                connect_from(Ipv4Addr::new(127, 0, 0, host), addr)
                    .await
                    .unwrap(),
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        stats.evicted.load(Ordering::Relaxed) >= 60,
        "oldest idle handshakes evicted"
    );

    // Alice, from her own address, still gets in, promptly.
    tokio::time::timeout(
        Duration::from_secs(5),
        phone(&kit, Ipv4Addr::new(127, 0, 0, 1), addr),
    )
    .await
    .expect("not starved")
    .expect("admitted");
    let conn = tokio::time::timeout(Duration::from_secs(5), admitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.admitted.token(), "alice");
    drop(idle);
}

#[tokio::test]
async fn slowloris_handshake_times_out() {
    let kit = TestKit::new();
    let limits = ListenerLimits {
        handshake_timeout: Duration::from_millis(300),
        ..ListenerLimits::default()
    };
    let (addr, stats, _admitted) = start(&kit, limits).await;
    let mut slow = connect_from(Ipv4Addr::new(127, 0, 0, 9), addr)
        .await
        .unwrap();
    // Half a TLS record header, then nothing.
    slow.write_all(&[0x16, 0x03]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(stats.handshake_timeout.load(Ordering::Relaxed), 1);
    assert_eq!(stats.admitted.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn connections_per_address_are_capped_and_refusals_do_not_count() {
    let kit = TestKit::new();
    let limits = ListenerLimits {
        max_connections_per_address: 2,
        ..ListenerLimits::default()
    };
    let (addr, stats, mut admitted) = start(&kit, limits).await;
    let src = Ipv4Addr::new(127, 0, 0, 30);
    // Eve and mallory fail the handshake and hold nothing.
    for who in [&kit.eve, &kit.mallory] {
        refused_token(&kit, who, src, addr).await;
    }
    let mut held = Vec::new();
    for _ in 0..2 {
        phone(&kit, src, addr).await.unwrap();
        held.push(admitted.recv().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.handshake_failed.load(Ordering::Relaxed), 2);
    // The third from the same address is refused before TLS...
    assert!(phone(&kit, src, addr).await.is_err());
    assert!(stats.refused_by_limit.load(Ordering::Relaxed) >= 1);
    // ...another address is not affected...
    phone(&kit, Ipv4Addr::new(127, 0, 0, 31), addr)
        .await
        .unwrap();
    admitted.recv().await.unwrap();
    // ...and closing one frees its slot.
    held.pop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    phone(&kit, src, addr).await.unwrap();
    assert_eq!(admitted.recv().await.unwrap().admitted.token(), "alice");
}

#[tokio::test]
async fn repeated_handshake_failures_slow_an_address_down() {
    let kit = TestKit::new();
    let (addr, stats, mut admitted) = start(&kit, ListenerLimits::default()).await;
    let src = Ipv4Addr::new(127, 0, 0, 40);
    let fail = |who| {
        let kit = &kit;
        async move {
            refused_token(kit, who, src, addr).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Three free failures: alice from the same address still gets in.
    for _ in 0..3 {
        fail(&kit.eve).await;
    }
    phone(&kit, src, addr).await.unwrap();
    assert_eq!(admitted.recv().await.unwrap().admitted.token(), "alice");
    // The admission cleared the record: three more are free again, the
    // fourth starts a one-second penalty.
    for _ in 0..4 {
        fail(&kit.mallory).await;
    }
    assert_eq!(stats.handshake_failed.load(Ordering::Relaxed), 7);
    assert!(phone(&kit, src, addr).await.is_err(), "slowed down");
    assert_eq!(stats.refused_by_penalty.load(Ordering::Relaxed), 1);
    // Another address is not affected.
    phone(&kit, Ipv4Addr::new(127, 0, 0, 41), addr)
        .await
        .unwrap();
    admitted.recv().await.unwrap();
    // After the penalty, the address is heard again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    phone(&kit, src, addr).await.unwrap();
    assert_eq!(admitted.recv().await.unwrap().admitted.token(), "alice");
}

#[tokio::test]
async fn connections_per_token_are_capped_across_addresses() {
    // A lost token used from many hosts holds at most its share: the
    // connection over the cap is refused after the handshake (audited).
    let kit = TestKit::new();
    let limits = ListenerLimits {
        max_connections_per_token: 2,
        ..ListenerLimits::default()
    };
    let (addr, stats, mut admitted) = start(&kit, limits).await;
    let mut held = Vec::new();
    for i in 0..2 {
        phone(&kit, Ipv4Addr::new(127, 0, 0, 50 + i), addr)
            .await
            .unwrap();
        held.push(admitted.recv().await.unwrap());
    }
    let before = stats.refused_by_limit.load(Ordering::Relaxed);
    let _ = phone(&kit, Ipv4Addr::new(127, 0, 0, 60), addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.refused_by_limit.load(Ordering::Relaxed), before + 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), admitted.recv())
            .await
            .is_err(),
        "a third connection of the token was handed to the core"
    );
    // Closing one frees the token's slot.
    held.pop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    phone(&kit, Ipv4Addr::new(127, 0, 0, 61), addr)
        .await
        .unwrap();
    assert_eq!(admitted.recv().await.unwrap().admitted.token(), "alice");
}

#[tokio::test]
async fn a_slow_real_handshake_survives_idle_connects_from_a_few_addresses() {
    // A phone whose token waits for a touch starts its handshake, then
    // three hosts fill the pending slots with idle connects: eviction
    // takes from the address with the most slots, never the lone phone.
    let kit = TestKit::new();
    let limits = ListenerLimits {
        max_pending_handshakes: 6,
        max_pending_per_address: 4,
        handshake_timeout: Duration::from_secs(10),
        ..ListenerLimits::default()
    };
    let (addr, stats, mut admitted) = start(&kit, limits).await;
    let slow = connect_from(Ipv4Addr::new(127, 0, 0, 70), addr)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut idle = Vec::new();
    for host in 71..74u8 {
        for _ in 0..4 {
            if let Ok(s) = connect_from(Ipv4Addr::new(127, 0, 0, host), addr).await {
                idle.push(s);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        stats.evicted.load(Ordering::Relaxed) >= 6,
        "the flood was evicted"
    );
    // The touch: the phone now sends its ClientHello on the old connection.
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = TlsConnector::from(kit.client(Some(&kit.alice)))
        .connect(name, slow)
        .await
        .expect("the slow handshake was not evicted");
    tls.write_all(b"\r\n\r\n").await.unwrap();
    let conn = tokio::time::timeout(Duration::from_secs(5), admitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.admitted.token(), "alice");
    drop(idle);
}
