//! The client side of RELP (the Reliable Event Logging Protocol, as
//! rsyslog's librelp speaks it), sans-IO: frames to send, responses fed
//! in, which records the server has acknowledged.
//!
//! Frame: `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; TXNR 1..=999999999,
//! DATALEN at most 9 digits. The session opens with `open` (offering
//! `commands=syslog`), each record is one `syslog` transaction, and the
//! server answers each with `TXNR rsp LEN 200 OK`. A record counts as
//! delivered only on its `200`.

use std::collections::VecDeque;

/// Largest response a client accepts (servers send a few hundred octets).
const MAX_RESPONSE: usize = 64 << 10;
const MAX_TXNR: u32 = 999_999_999;

/// What the server said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelpEvent {
    /// The session is open: records may be sent.
    Opened,
    /// The record with this (audit) sequence number is acknowledged.
    Acked(u64),
    /// The server is closing the session.
    ServerClose,
}

/// A broken or refusing session: reconnect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelpError {
    /// Bytes that are not a RELP frame.
    #[error("malformed RELP frame from the server ({0})")]
    Malformed(&'static str),
    /// A status other than 200.
    #[error("the RELP server refused: {0}")]
    Refused(String),
    /// A response to a transaction never sent.
    #[error("RELP response to unknown transaction {0}")]
    Unexpected(u32),
}

/// One client session.
#[derive(Debug, Default)]
pub struct RelpClient {
    last_txnr: u32,
    open_txnr: Option<u32>,
    opened: bool,
    in_flight: VecDeque<(u32, u64)>,
    rx: Vec<u8>,
}

impl RelpClient {
    /// A new session (one per connection).
    pub fn new() -> RelpClient {
        RelpClient::default()
    }

    fn txnr(&mut self) -> u32 {
        self.last_txnr = if self.last_txnr >= MAX_TXNR {
            1
        } else {
            self.last_txnr + 1
        };
        self.last_txnr
    }

    fn frame(txnr: u32, command: &str, data: &[u8]) -> Vec<u8> {
        let mut f = if data.is_empty() {
            format!("{txnr} {command} 0").into_bytes()
        } else {
            let mut f = format!("{txnr} {command} {} ", data.len()).into_bytes();
            f.extend_from_slice(data);
            f
        };
        f.push(b'\n');
        f
    }

    /// The `open` frame: send first.
    pub fn open(&mut self) -> Vec<u8> {
        let t = self.txnr();
        self.open_txnr = Some(t);
        Self::frame(
            t,
            "open",
            b"relp_version=0\nrelp_software=dialgate\ncommands=syslog",
        )
    }

    /// Whether the server accepted `open`.
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// Records sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The frame carrying audit record `seq`.
    pub fn syslog(&mut self, seq: u64, record: &str) -> Vec<u8> {
        let t = self.txnr();
        self.in_flight.push_back((t, seq));
        Self::frame(t, "syslog", record.as_bytes())
    }

    /// The `close` frame, for a clean end.
    pub fn close(&mut self) -> Vec<u8> {
        let t = self.txnr();
        Self::frame(t, "close", b"")
    }

    /// Feeds bytes read from the server; returns what they said.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<RelpEvent>, RelpError> {
        self.rx.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((used, txnr, command, data)) = self.next_frame()? {
            self.rx.drain(..used);
            match command.as_str() {
                "rsp" => {
                    let status = data.get(..3).unwrap_or("");
                    if status != "200" {
                        return Err(RelpError::Refused(data.chars().take(200).collect()));
                    }
                    if Some(txnr) == self.open_txnr {
                        self.open_txnr = None;
                        self.opened = true;
                        events.push(RelpEvent::Opened);
                    } else if let Some(i) = self.in_flight.iter().position(|(t, _)| *t == txnr) {
                        // Responses may come in any order; each names its own.
                        let (_, seq) = self.in_flight.remove(i).unwrap_or((txnr, 0));
                        events.push(RelpEvent::Acked(seq));
                    } else if txnr != self.last_txnr {
                        // Not the response to our `close` either.
                        return Err(RelpError::Unexpected(txnr));
                    }
                }
                "serverclose" => events.push(RelpEvent::ServerClose),
                _ => return Err(RelpError::Malformed("unknown command from the server")),
            }
        }
        if self.rx.len() > MAX_RESPONSE {
            return Err(RelpError::Malformed("response too long"));
        }
        Ok(events)
    }

    /// One complete frame at the front of the buffer, if there is one.
    fn next_frame(&self) -> Result<Option<(usize, u32, String, String)>, RelpError> {
        let b = &self.rx;
        let Some(sp1) = b.iter().take(11).position(|&c| c == b' ') else {
            return if b.len() > 10 {
                Err(RelpError::Malformed("bad TXNR"))
            } else {
                Ok(None)
            };
        };
        let txnr = digits(&b[..sp1], 9).ok_or(RelpError::Malformed("bad TXNR"))?;
        let rest = &b[sp1 + 1..];
        let Some(sp2) = rest.iter().take(33).position(|&c| c == b' ') else {
            return if rest.len() > 32 {
                Err(RelpError::Malformed("bad command"))
            } else {
                Ok(None)
            };
        };
        let command = &rest[..sp2];
        if command.is_empty() || !command.iter().all(u8::is_ascii_alphabetic) {
            return Err(RelpError::Malformed("bad command"));
        }
        let rest = &rest[sp2 + 1..];
        let Some(end) = rest.iter().take(10).position(|&c| c == b' ' || c == b'\n') else {
            return if rest.len() > 9 {
                Err(RelpError::Malformed("bad DATALEN"))
            } else {
                Ok(None)
            };
        };
        let len = digits(&rest[..end], 9).ok_or(RelpError::Malformed("bad DATALEN"))? as usize;
        if len > MAX_RESPONSE {
            return Err(RelpError::Malformed("response too long"));
        }
        let head = sp1 + 1 + sp2 + 1 + end;
        let (data, used) = if len == 0 {
            if rest[end] != b'\n' {
                return Err(RelpError::Malformed("no trailer"));
            }
            (&b[0..0], head + 1)
        } else {
            if rest[end] != b' ' {
                return Err(RelpError::Malformed("no data after DATALEN"));
            }
            let start = head + 1;
            if b.len() < start + len + 1 {
                return Ok(None);
            }
            if b[start + len] != b'\n' {
                return Err(RelpError::Malformed("no trailer"));
            }
            (&b[start..start + len], start + len + 1)
        };
        Ok(Some((
            used,
            txnr,
            String::from_utf8_lossy(command).into_owned(),
            String::from_utf8_lossy(data).into_owned(),
        )))
    }
}

fn digits(b: &[u8], max: usize) -> Option<u32> {
    if b.is_empty() || b.len() > max || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_sends_and_is_acknowledged_out_of_order_and_in_pieces() {
        let mut c = RelpClient::new();
        let open = c.open();
        assert_eq!(
            open,
            b"1 open 53 relp_version=0\nrelp_software=dialgate\ncommands=syslog\n"
        );
        let rsp = b"1 rsp 93 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n";
        assert_eq!(c.receive(&rsp[..10]).unwrap(), vec![]);
        assert_eq!(c.receive(&rsp[10..]).unwrap(), vec![RelpEvent::Opened]);
        assert_eq!(c.syslog(7, "<110>1 x"), b"2 syslog 8 <110>1 x\n");
        c.syslog(8, "<110>1 y");
        assert_eq!(c.in_flight(), 2);
        assert_eq!(
            c.receive(b"3 rsp 6 200 OK\n2 rsp 6 200 OK\n").unwrap(),
            vec![RelpEvent::Acked(8), RelpEvent::Acked(7)]
        );
        assert_eq!(c.in_flight(), 0);
        assert_eq!(
            c.receive(b"0 serverclose 0\n").unwrap(),
            vec![RelpEvent::ServerClose]
        );
    }

    #[test]
    fn refusals_and_garbage_break_the_session() {
        let mut c = RelpClient::new();
        c.open();
        assert!(matches!(
            c.receive(b"1 rsp 17 500 not supported\n"),
            Err(RelpError::Refused(_))
        ));
        let mut c = RelpClient::new();
        c.open();
        assert_eq!(
            c.receive(b"9 rsp 6 200 OK\n"),
            Err(RelpError::Unexpected(9))
        );
        for junk in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"1 rsp 99999999999 x",
            b"1 r$p 6 200 OK\n",
            b"1 rsp 6 200 OKX",
        ] {
            let mut c = RelpClient::new();
            c.open();
            assert!(
                c.receive(junk).is_err(),
                "{:?}",
                String::from_utf8_lossy(junk)
            );
        }
        let mut c = RelpClient::new();
        c.open();
        assert!(c.receive(&[b'1'; 100]).is_err());
    }
}
