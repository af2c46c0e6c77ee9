use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::*;

/// The answer to `query` (the bytes a client sent) with `rcode` and, when
/// it asks for A, one A record `ip`; for SRV, one record naming `h.test`
/// port 5071.
fn answer(query: &[u8], rcode: u8, ip: [u8; 4]) -> Vec<u8> {
    let mut m = query.to_vec();
    m[2] = 0x81;
    m[3] = 0x80 | rcode;
    if rcode != 0 {
        return m;
    }
    m[7] = 1;
    let qtype = u16::from_be_bytes([m[query.len() - 4], m[query.len() - 3]]);
    m.extend([0xC0, 0x0C]);
    m.extend(qtype.to_be_bytes());
    m.extend([0, 1, 0, 0, 0, 60]);
    if qtype == 33 {
        let rdata = [
            0, 1, 0, 1, 0x13, 0xCF, 1, b'h', 4, b't', b'e', b's', b't', 0,
        ];
        m.extend((rdata.len() as u16).to_be_bytes());
        m.extend(rdata);
    } else if qtype == 1 {
        m.extend([0, 4]);
        m.extend(ip);
    } else {
        // AAAA: no data.
        m.truncate(query.len());
        m[7] = 0;
    }
    m
}

/// A server that answers each query with `reply(query)` (None: silent),
/// counting the queries it got.
async fn server(
    reply: impl Fn(&[u8], SocketAddr, usize) -> Option<Vec<u8>> + Send + 'static,
) -> (SocketAddr, tokio::sync::watch::Receiver<usize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(0);
    tokio::spawn(async move {
        let mut buf = [0u8; 600];
        let mut n = 0;
        loop {
            let Ok((len, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            n += 1;
            let _ = tx.send(n);
            if let Some(r) = reply(&buf[..len], from, n) {
                let _ = sock.send_to(&r, from).await;
            }
        }
    });
    (addr, rx)
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn fast() -> Bound {
    Bound {
        total: Duration::from_millis(600),
        retransmit: Duration::from_millis(100),
    }
}

#[tokio::test]
async fn answers_and_rcodes() {
    let (ok, _) = server(|q, _, _| Some(answer(q, 0, [192, 0, 2, 7]))).await;
    assert_eq!(
        resolve_host(&name("h.test"), &[ok], fast()).await,
        Ok(vec![IpAddr::from([192, 0, 2, 7])])
    );
    assert_eq!(
        resolve_name(&name("h.test"), 5071, &[ok], fast()).await,
        Ok(vec!["192.0.2.7:5071".parse().unwrap()])
    );
    assert_eq!(
        resolve_srv(&name("_sips._tcp.h.test"), &[ok], fast()).await,
        Ok(vec!["192.0.2.7:5071".parse().unwrap()])
    );
    // NXDOMAIN is the answer: the second server is not asked.
    let (nx, _) = server(|q, _, _| Some(answer(q, 3, [0; 4]))).await;
    let (second, asked) = server(|q, _, _| Some(answer(q, 0, [192, 0, 2, 8]))).await;
    let r = resolve_host(&name("h.test"), &[nx, second], fast()).await;
    assert!(
        matches!(
            &r,
            Err(ResolveError::Dns {
                error: DnsError::NxDomain,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(*asked.borrow(), 0);
    // SERVFAIL: the next server is asked and answers.
    let (sf, _) = server(|q, _, _| Some(answer(q, 2, [0; 4]))).await;
    assert_eq!(
        resolve_host(&name("h.test"), &[sf, second], fast()).await,
        Ok(vec![IpAddr::from([192, 0, 2, 8])])
    );
    assert_eq!(
        resolve_host(&name("h.test"), &[], fast()).await,
        Err(ResolveError::NoServers)
    );
}

#[tokio::test]
async fn silent_servers_are_retried_within_the_bound() {
    // The first server is silent, the second answers only its second query.
    let (silent, silent_asked) = server(|_, _, _| None).await;
    let (late, _) = server(|q, _, n| (n >= 2).then(|| answer(q, 0, [192, 0, 2, 9]))).await;
    let t = std::time::Instant::now();
    assert_eq!(
        resolve_host(&name("h.test"), &[silent, late], fast()).await,
        Ok(vec![IpAddr::from([192, 0, 2, 9])])
    );
    assert!(
        *silent_asked.borrow() >= 2,
        "retransmitted to the first server too"
    );
    assert!(t.elapsed() < Duration::from_millis(600));
    // Nobody answers: a timeout at the bound, not later.
    let t = std::time::Instant::now();
    let r = resolve_host(&name("h.test"), &[silent], fast()).await;
    assert!(matches!(r, Err(ResolveError::Timeout { .. })), "{r:?}");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(590) && took < Duration::from_millis(900),
        "{took:?}"
    );
}

#[tokio::test]
async fn answers_from_elsewhere_or_to_another_id_are_ignored() {
    // The server first lets a forger (another socket) answer the
    // client's port with a valid-looking answer, and sends one with
    // another id itself, then answers truly.
    let forger = std::sync::Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let forger2 = forger;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 600];
        let (len, from) = sock.recv_from(&mut buf).await.unwrap();
        let q = buf[..len].to_vec();
        forger2
            .send_to(&answer(&q, 0, [203, 0, 113, 66]), from)
            .unwrap();
        let mut wrong_id = answer(&q, 0, [203, 0, 113, 67]);
        wrong_id[0] ^= 0xFF;
        sock.send_to(&wrong_id, from).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        sock.send_to(&answer(&q, 0, [192, 0, 2, 10]), from)
            .await
            .unwrap();
    });
    assert_eq!(
        resolve_host(&name("h.test"), &[addr], fast()).await,
        Ok(vec![IpAddr::from([192, 0, 2, 10])])
    );
}

#[tokio::test]
async fn every_attempt_has_a_fresh_port_and_id() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = std::sync::Arc::clone(&seen);
    let (silent, _) = server(move |q, from, _| {
        s.lock().unwrap().push((from.port(), [q[0], q[1]]));
        None
    })
    .await;
    let _ = resolve_host(&name("h.test"), &[silent], fast()).await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    for (i, a) in seen.iter().enumerate() {
        assert!(
            !seen[..i].iter().any(|b| b.0 == a.0),
            "port reused: {seen:?}"
        );
    }
    let ids: std::collections::HashSet<_> = seen.iter().map(|s| s.1).collect();
    assert!(ids.len() >= seen.len() - 1, "ids drawn afresh: {seen:?}");
}

#[tokio::test]
async fn the_lease_file_is_read_at_each_resolution_and_asked_first() {
    let dir = std::env::temp_dir().join(format!("dialgate-lease-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lease-dns");
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    let dns = DnsConfig {
        servers: vec![a("10.0.0.53:53")],
        lease_file: Some(file.clone()),
        timeout: Duration::from_secs(2),
    };
    // No lease yet: the configured server only.
    assert_eq!(servers_now(&dns).await, [a("10.0.0.53:53")]);
    std::fs::write(&file, "192.168.77.1\n10.0.0.53\n").unwrap();
    assert_eq!(
        servers_now(&dns).await,
        [a("192.168.77.1:53"), a("10.0.0.53:53")]
    );
    // Rewritten (a new lease): read again, not cached.
    std::fs::write(&file, "192.168.88.1\n").unwrap();
    assert_eq!(
        servers_now(&dns).await,
        [a("192.168.88.1:53"), a("10.0.0.53:53")]
    );
    // The lease file alone, emptied (the lease lost): nobody to ask, and
    // a resolution says so.
    std::fs::write(&file, "").unwrap();
    let alone = DnsConfig {
        servers: Vec::new(),
        ..dns
    };
    let none = servers_now(&alone).await;
    assert!(none.is_empty());
    let name = Name::parse("bridge.hotel.test").unwrap();
    let e = resolve_host(&name, &none, Bound::default())
        .await
        .unwrap_err();
    assert_eq!(e, ResolveError::NoServers);
    std::fs::remove_dir_all(&dir).unwrap();
}
