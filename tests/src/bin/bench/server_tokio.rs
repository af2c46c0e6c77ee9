//! `bench relay-server --io tokio`: the same sans-IO relay core driven by a
//! tokio current-thread runtime instead of dialgate's dedicated mio thread,
//! the alternative I/O model the relay benchmark measures against
//! (docs/benchmarks.md). One task per socket awaits `recv_from`, feeds the
//! shared core (`Rc<RefCell<Relay>>`, single thread) and sends with
//! `try_send_to`. Same line protocol as `server.rs`.

use std::cell::RefCell;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use dialgate::relay::{LegConfig, Relay, RelayConfig, SocketId};
use dialgate::srtp::{MasterKey, Suite};
use dialgate_tests::libsrtp::unhex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

type Sockets = Rc<RefCell<Vec<Rc<UdpSocket>>>>;

fn key(suite: Suite, hex: &str) -> Result<MasterKey, String> {
    let bytes = unhex(hex).ok_or("bad key hex")?;
    MasterKey::new(suite, &bytes).map_err(|e| e.to_string())
}

async fn serve(id: SocketId, relay: Rc<RefCell<Relay>>, sockets: Sockets) {
    let sock = Rc::clone(&sockets.borrow()[id.0 as usize]);
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((len, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let mut relay = relay.borrow_mut();
        if let Some(t) = relay.handle_datagram(Instant::now(), id, from, &mut buf, len) {
            let out = Rc::clone(&sockets.borrow()[t.socket.0 as usize]);
            let _ = out.try_send_to(t.packet.as_bytes(), t.dest);
        }
    }
}

async fn bind(sockets: &Sockets, port: &mut u16) -> Result<SocketId, String> {
    loop {
        let p = *port;
        *port = port.checked_add(1).ok_or("ports exhausted")?;
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)).await {
            let mut v = sockets.borrow_mut();
            v.push(Rc::new(s));
            return Ok(SocketId((v.len() - 1) as u32));
        }
    }
}

async fn add_call(
    line: &str,
    relay: &Rc<RefCell<Relay>>,
    sockets: &Sockets,
    next_port: &mut u16,
) -> Result<String, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let ["CALL", phone, bridge, a_in, a_out, b_in, b_out] = f.as_slice() else {
        return Err("unknown command".into());
    };
    let phone: SocketAddr = phone.parse().map_err(|_| "bad phone addr")?;
    let bridge: SocketAddr = bridge.parse().map_err(|_| "bad bridge addr")?;
    // Even RTP port, RTCP on the next one, like the mio server.
    if *next_port % 2 == 1 {
        *next_port += 1;
    }
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(bind(sockets, next_port).await?);
    }
    let leg = |rtp: SocketId, rtcp: SocketId, remote: SocketAddr, i, o| LegConfig {
        rtp,
        rtcp: Some(rtcp),
        remote_rtp: Some(remote),
        remote_rtcp: Some(SocketAddr::new(remote.ip(), remote.port() + 1)),
        inbound: i,
        outbound: o,
    };
    let (a80, b32) = (Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32);
    relay
        .borrow_mut()
        .add_call(
            Instant::now(),
            leg(ids[0], ids[1], phone, key(a80, a_in)?, key(a80, a_out)?),
            leg(ids[2], ids[3], bridge, key(b32, b_in)?, key(b32, b_out)?),
        )
        .map_err(|e| e.to_string())?;
    for &id in &ids {
        tokio::task::spawn_local(serve(id, Rc::clone(relay), Rc::clone(sockets)));
    }
    let port = |id: SocketId| {
        sockets.borrow()[id.0 as usize]
            .local_addr()
            .map(|a| a.port())
    };
    Ok(format!(
        "OK {} {}",
        port(ids[0]).map_err(|e| e.to_string())?,
        port(ids[2]).map_err(|e| e.to_string())?
    ))
}

pub fn run(port_min: u16) -> Result<(), String> {
    let (tx, mut rx) = mpsc::channel::<(String, std::sync::mpsc::SyncSender<String>)>(16);
    // Blocking stdin reader on its own thread; EOF ends the process.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let (rtx, rrx) = std::sync::mpsc::sync_channel(1);
            if tx.blocking_send((line, rtx)).is_err() {
                break;
            }
            let reply = rrx.recv().unwrap_or_else(|_| "ERR stopped".into());
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
                break;
            }
        }
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let relay = Rc::new(RefCell::new(Relay::new(RelayConfig {
            max_calls: 10_000,
            ..RelayConfig::default()
        })));
        let sockets: Sockets = Rc::new(RefCell::new(Vec::new()));
        let mut next_port = port_min;
        while let Some((line, reply)) = rx.recv().await {
            let r = add_call(&line, &relay, &sockets, &mut next_port)
                .await
                .unwrap_or_else(|e| format!("ERR {e}"));
            let _ = reply.send(r);
        }
    });
    Ok(())
}
