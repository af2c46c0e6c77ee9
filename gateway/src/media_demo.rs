//! `dialgate demo --media-only`: the media relay alone, without SIP: a
//! simulated phone and bridge exchange a tone through the relay thread on
//! loopback, each leg under its own SRTP keys.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dialgate::media::G711;
use dialgate::relay::net::{NetConfig, RelayHandle};
use dialgate::relay::{LegConfig, LocalLeg, RelayConfig};
use dialgate::srtp::{MasterKey, Protector, Suite, Unprotector};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// 20 ms of a 1 kHz tone, G.711 mu-law, starting at sample `n`.
fn tone(n: u64) -> [u8; 160] {
    let mut out = [0u8; 160];
    for (i, b) in out.iter_mut().enumerate() {
        let t = (n + i as u64) as f64 / 8000.0;
        *b = G711::MuLaw.encode((8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16);
    }
    out
}

struct Peer {
    sock: UdpSocket,
    tx: Protector,
    rx: Unprotector,
}

impl Peer {
    fn new(send: &MasterKey, recv: &MasterKey) -> Result<Peer, String> {
        let sock = UdpSocket::bind((LO, 0)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        Ok(Peer {
            sock,
            tx: Protector::new(send).map_err(|e| e.to_string())?,
            rx: Unprotector::new(recv).map_err(|e| e.to_string())?,
        })
    }

    fn addr(&self) -> Result<SocketAddr, String> {
        self.sock.local_addr().map_err(|e| e.to_string())
    }
}

fn leg(l: &LocalLeg, remote: SocketAddr, inbound: MasterKey, outbound: MasterKey) -> LegConfig {
    LegConfig {
        rtp: l.rtp,
        rtcp: None,
        remote_rtp: Some(remote),
        remote_rtcp: None,
        inbound,
        outbound,
    }
}

pub fn run(duration: Duration) -> Result<(), String> {
    let relay = RelayHandle::spawn(NetConfig {
        relay: RelayConfig::default(),
        port_min: 31000,
        port_max: 31999,
        ..NetConfig::default()
    })
    .map_err(|e| e.to_string())?;
    // Phone leg: AEAD_AES_256_GCM (phone-side default); bridge leg:
    // AES_CM_128_HMAC_SHA1_80 (trunk default). Four keys, one per leg and
    // direction, none shared.
    let g = |s| MasterKey::generate(s).map_err(|e| e.to_string());
    let (a_in, a_out) = (g(Suite::AeadAes256Gcm)?, g(Suite::AeadAes256Gcm)?);
    let (b_in, b_out) = (
        g(Suite::AesCm128HmacSha1_80)?,
        g(Suite::AesCm128HmacSha1_80)?,
    );
    let mut phone = Peer::new(&a_in, &a_out)?;
    let mut bridge = Peer::new(&b_in, &b_out)?;
    let la = relay.allocate(LO, true).map_err(|e| e.to_string())?;
    let lb = relay.allocate(LO, true).map_err(|e| e.to_string())?;
    let call = relay
        .add_call(
            (la, leg(&la, phone.addr()?, a_in, a_out)),
            (lb, leg(&lb, bridge.addr()?, b_in, b_out)),
        )
        .map_err(|e| e.to_string())?;
    println!(
        "dialgate demo: the media relay on loopback (SIP/TLS and admission are not built yet)"
    );
    println!(
        "  phone  {} <-> relay {} [AEAD_AES_256_GCM]   relay {} <-> echo bridge {} [AES_CM_128_HMAC_SHA1_80]",
        phone.addr()?,
        la.rtp_addr,
        lb.rtp_addr,
        bridge.addr()?
    );
    println!(
        "  sending a 1 kHz tone (G.711 mu-law, 50 packets/s) for {} s ...",
        duration.as_secs()
    );

    let start = Instant::now();
    let (mut seq, mut echoed_ok, mut cleartext_seen) = (0u16, 0u32, 0u32);
    let mut buf = [0u8; 1500];
    let mut last_wire = Vec::new();
    while start.elapsed() < duration {
        let payload = tone(u64::from(seq) * 160);
        buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0x1a]);
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        buf[12..172].copy_from_slice(&payload);
        let wire = phone
            .tx
            .protect_rtp(&mut buf, 172)
            .map_err(|e| e.to_string())?;
        last_wire = wire.as_bytes().to_vec();
        phone
            .sock
            .send_to(wire.as_bytes(), la.rtp_addr)
            .map_err(|e| e.to_string())?;
        // The echo bridge: receive, decrypt, send the same audio back.
        let mut b = [0u8; 1500];
        if let Ok((n, _)) = bridge.sock.recv_from(&mut b) {
            if b[12..172]
                .windows(8)
                .any(|w| payload.windows(8).any(|p| p == w))
            {
                cleartext_seen += 1;
            }
            if let Ok(m) = bridge.rx.unprotect_rtp(&mut b, n) {
                b[8..12].copy_from_slice(&0x0b1d_6e00u32.to_be_bytes());
                let back = bridge
                    .tx
                    .protect_rtp(&mut b, m)
                    .map_err(|e| e.to_string())?;
                bridge
                    .sock
                    .send_to(back.as_bytes(), lb.rtp_addr)
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut r = [0u8; 1500];
        if let Ok((n, _)) = phone.sock.recv_from(&mut r) {
            if let Ok(m) = phone.rx.unprotect_rtp(&mut r, n) {
                if m == 172 && r[12..172] == payload {
                    echoed_ok += 1;
                }
            }
        }
        seq = seq.wrapping_add(1);
        let due = start + Duration::from_millis(20) * u32::from(seq);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    // An eavesdropper replays a captured packet and forges another.
    phone
        .sock
        .send_to(&last_wire, la.rtp_addr)
        .map_err(|e| e.to_string())?;
    let mut forged = last_wire.clone();
    forged[3] = forged[3].wrapping_add(1);
    forged[40] ^= 0xff;
    phone
        .sock
        .send_to(&forged, la.rtp_addr)
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(200));

    let [a, b] = relay
        .stats(call)
        .map_err(|e| e.to_string())?
        .ok_or("call vanished")?;
    println!("  tone packets sent by the phone:           {seq}");
    println!("  heard back intact by the phone:           {echoed_ok}");
    println!("  bridge-leg packets with cleartext tone:   {cleartext_seen}");
    println!(
        "  phone leg:  {} authenticated in, {} out, dropped: {} replayed, {} forged",
        a.rx_packets, a.tx_packets, a.replayed, a.auth_failed
    );
    println!(
        "  bridge leg: {} authenticated in, {} out, dropped: {} replayed, {} forged",
        b.rx_packets, b.tx_packets, b.replayed, b.auth_failed
    );
    relay.remove_call(call).map_err(|e| e.to_string())?;
    if echoed_ok == 0 || cleartext_seen > 0 || a.replayed != 1 || a.auth_failed != 1 {
        return Err("the media path did not behave as it must (see the figures above)".into());
    }
    println!("  ok: every packet re-encrypted per leg, audio intact, replay and forgery dropped; keys zeroized");
    Ok(())
}
