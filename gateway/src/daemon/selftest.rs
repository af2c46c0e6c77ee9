//! The self-test call: once the gateway serves, one call through its own
//! media relay for every SRTP suite it offers phones. Two sockets of the
//! gateway's own stand in for a phone (on the phone side's media address)
//! and a bridge (on the first trunk's media address); each sends SRTP
//! under its own key, and each must receive what the other sent,
//! re-encrypted under the key of its leg. It proves what a bad release
//! could break without a crash: the relay thread, the media sockets and
//! the firewall's loopback path, and every suite's protect and unprotect.
//! The outcome is audited (`decision="self-test"`) and handed to
//! [`crate::health`] for PID 1's firmware agent.
//!
//! What it does not prove: a phone's handshake (READY lists the listener)
//! and the bridge (its trunk opens when a call needs it).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::relay::net::{NetError, RelayHandle};
use crate::relay::LegConfig;
use crate::srtp::{MasterKey, Protector, Suite, Unprotector};

/// Packets sent each way per suite.
const PACKETS: u16 = 5;
/// How long one packet may take through the relay.
const WAIT: Duration = Duration::from_secs(2);

/// Why the self-test call failed.
#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    /// The relay refused the call or its ports.
    #[error("relay: {0}")]
    Relay(#[from] NetError),
    /// A socket of the test's own.
    #[error("test socket: {0}")]
    Io(#[from] std::io::Error),
    /// SRTP refused a packet.
    #[error("{suite}: SRTP: {error}")]
    Srtp {
        /// The suite.
        suite: &'static str,
        /// What it said.
        error: crate::srtp::Error,
    },
    /// A packet did not come through, or came through changed.
    #[error("{suite}: {what}")]
    Media {
        /// The suite.
        suite: &'static str,
        /// What went wrong.
        what: String,
    },
}

/// One end of the test call.
struct End {
    sock: UdpSocket,
    tx: Protector,
    rx: Unprotector,
}

impl End {
    fn new(ip: IpAddr, send: &MasterKey, recv: &MasterKey) -> Result<End, SelfTestError> {
        let sock = UdpSocket::bind((ip, 0))?;
        sock.set_read_timeout(Some(WAIT))?;
        let srtp = |error| SelfTestError::Srtp {
            suite: send.suite().name(),
            error,
        };
        Ok(End {
            sock,
            tx: Protector::new(send).map_err(srtp)?,
            rx: Unprotector::new(recv).map_err(srtp)?,
        })
    }

    fn send(&mut self, to: SocketAddr, seq: u16, ssrc: u32) -> Result<(), SelfTestError> {
        let mut b = [0u8; 256];
        b[0] = 0x80;
        b[1] = 0; // PCMU
        b[2..4].copy_from_slice(&seq.to_be_bytes());
        b[8..12].copy_from_slice(&ssrc.to_be_bytes());
        b[12..172].fill(seq as u8 ^ 0x5a);
        let suite = self.tx.suite().name();
        let p = self
            .tx
            .protect_rtp(&mut b, 172)
            .map_err(|error| SelfTestError::Srtp { suite, error })?;
        self.sock.send_to(p.as_bytes(), to)?;
        Ok(())
    }

    fn expect(&mut self, seq: u16) -> Result<(), SelfTestError> {
        let suite = self.rx.suite().name();
        let media = |what: String| SelfTestError::Media { suite, what };
        let mut b = [0u8; 512];
        let (n, _) = self.sock.recv_from(&mut b).map_err(|e| {
            media(format!(
                "packet {seq} did not come through the relay within {WAIT:?}: {e}"
            ))
        })?;
        let m = self
            .rx
            .unprotect_rtp(&mut b, n)
            .map_err(|error| SelfTestError::Srtp { suite, error })?;
        let got = u16::from_be_bytes([b[2], b[3]]);
        if m != 172 || got != seq || b[12..172].iter().any(|&x| x != seq as u8 ^ 0x5a) {
            return Err(media(format!(
                "packet {seq} came through changed (sequence {got}, {m} octets)"
            )));
        }
        Ok(())
    }
}

/// Places the test call once per suite in `suites`, phone end on
/// `phone_ip`, bridge end on `bridge_ip`; the time it took.
pub fn run(
    relay: &RelayHandle,
    phone_ip: IpAddr,
    bridge_ip: IpAddr,
    suites: &[Suite],
) -> Result<Report, SelfTestError> {
    let started = Instant::now();
    let mut connected = 0;
    for &suite in suites {
        connected = connected.max(one_call(relay, phone_ip, bridge_ip, suite)?);
    }
    Ok(Report {
        took: started.elapsed(),
        connected,
    })
}

/// A passed self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// All the calls, one per suite.
    pub took: Duration,
    /// The relay's sockets with a connected sibling while a call's media
    /// flowed (the most seen): 2 with `[media] connect_latched` (both legs
    /// latched), 0 without.
    pub connected: usize,
}

fn one_call(
    relay: &RelayHandle,
    phone_ip: IpAddr,
    bridge_ip: IpAddr,
    suite: Suite,
) -> Result<usize, SelfTestError> {
    let key = || {
        MasterKey::generate(suite).map_err(|error| SelfTestError::Srtp {
            suite: suite.name(),
            error,
        })
    };
    // What the phone protects with, what the gateway protects towards it;
    // the same for the bridge.
    let (p_in, p_out, b_in, b_out) = (key()?, key()?, key()?, key()?);
    let mut phone = End::new(phone_ip, &p_in, &p_out)?;
    let mut bridge = End::new(bridge_ip, &b_in, &b_out)?;
    let a = relay.allocate(phone_ip, true)?;
    let b = match relay.allocate(bridge_ip, true) {
        Ok(b) => b,
        Err(e) => {
            let _ = relay.release(a);
            return Err(e.into());
        }
    };
    let call = relay.add_call(
        (
            a,
            LegConfig {
                rtp: a.rtp,
                rtcp: None,
                remote_rtp: Some(phone.sock.local_addr()?),
                remote_rtcp: None,
                inbound: p_in.clone(),
                outbound: p_out.clone(),
            },
        ),
        (
            b,
            LegConfig {
                rtp: b.rtp,
                rtcp: None,
                remote_rtp: Some(bridge.sock.local_addr()?),
                remote_rtcp: None,
                inbound: b_in.clone(),
                outbound: b_out.clone(),
            },
        ),
    );
    let call = match call {
        Ok(c) => c,
        Err(e) => {
            let _ = relay.release(a);
            let _ = relay.release(b);
            return Err(e.into());
        }
    };
    let result = (|| {
        for seq in 0..PACKETS {
            phone.send(a.rtp_addr, seq, 0x5e1f_7e57)?;
            bridge.expect(seq)?;
            bridge.send(b.rtp_addr, seq, 0x5e1f_b41d)?;
            phone.expect(seq)?;
        }
        Ok(relay.counters()?.connected)
    })();
    // Removing the call closes its sockets and zeroizes its keys.
    relay.remove_call(call)?;
    result
}
