//! Minimal client for rtpengine's *ng* control protocol, used to drive the
//! reference relay (rtpengine 10.5, userspace mode) in benchmarks.
//!
//! # Wire format
//!
//! One UDP datagram per message: `<cookie> <bencoded dictionary>`. The reply
//! echoes the cookie, and rtpengine recognises a repeated cookie as a
//! retransmission and replays its cached reply. That makes it safe to resend a
//! request after a timeout.
//!
//! # Why the fixed flags ([`rekey_flags`])
//!
//! Tested against rtpengine 10.5.3.5 (Debian 12). With a plain SDES offer and
//! answer, rtpengine does **not** re-encrypt. It copies the offerer's
//! `a=crypto` lines, keys included, into the offer it sends to B. If B accepts
//! one of those suites, it copies B's key into the answer it sends to A. Both
//! legs then share keys and rtpengine forwards the SRTP packets unchanged: a
//! packet with a corrupted auth tag still gets through. To make it decrypt and
//! re-encrypt every packet with its own fresh keys:
//!
//! * A offers only `AES_CM_128_HMAC_SHA1_80`.
//! * The flags leave rtpengine generating exactly one extra suite,
//!   `AES_CM_128_HMAC_SHA1_32`, with a fresh key. No other suites are
//!   generated and no DTLS is offered.
//! * B answers by picking that generated `_32` line (its tag), with B's own
//!   key. B's suite is not among A's suites, so rtpengine also generates a
//!   fresh `_80` key for the answer to A.
//!
//! Result: leg A is `_80`, leg B is `_32`, and the four keys are pairwise
//! distinct. Both ways the cost per packet is the same as with `_80` on both
//! legs: AES-128-CM plus a full HMAC-SHA1, where only the tag truncation
//! differs (10 bytes vs 4). [`pick_crypto`] finds the line for B to accept.
//!
//! The other flags: `ICE=remove` (no STUN/candidates), `DTLS=off` (no
//! `a=setup`/`a=fingerprint` next to SDES), `rtcp-mux=[demux]` (keep separate
//! RTP/RTCP ports; rtpengine adds `a=rtcp:<rtp+1>`), `replace=[origin,
//! session-connection]` (o=/c= show rtpengine's 127.0.0.1). Our SDPs need no
//! `a=rtcp` line: rtpengine assumes RTCP on RTP+1, and SRTCP is re-keyed too.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Maximum nesting depth accepted by the decoder. rtpengine replies nest about
/// six levels deep (`delete` statistics); 64 leaves headroom and keeps
/// recursion bounded so hostile input cannot overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// Largest datagram we send or accept (UDP payload limit).
pub const MAX_DATAGRAM: usize = 65_535;

/// A decoded/encodable bencode dictionary.
pub type Dict = BTreeMap<Vec<u8>, Bencode>;

/// A bencode value. Dictionaries use a `BTreeMap` so encoding is
/// deterministic and sorted (canonical bencode). The decoder still accepts
/// unsorted keys, because rtpengine documents that its replies do not sort
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    /// `i<digits>e`
    Int(i64),
    /// `<len>:<bytes>`: byte strings, not necessarily UTF-8.
    Bytes(Vec<u8>),
    /// `l...e`
    List(Vec<Bencode>),
    /// `d...e` with byte-string keys.
    Dict(Dict),
}

impl Bencode {
    /// Convenience constructor for a string value.
    pub fn str(s: &str) -> Self {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    /// Convenience constructor for a list of strings.
    pub fn str_list(items: &[&str]) -> Self {
        Bencode::List(items.iter().map(|s| Bencode::str(s)).collect())
    }

    /// The value as UTF-8 text, if it is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Bencode::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Appends the encoding of `self` to `out`. Encoding cannot fail.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Bencode::Bytes(b) => encode_bytes(b, out),
            Bencode::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Bencode::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Encodes `self` into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one value that must span all of `input`.
    pub fn decode(input: &[u8]) -> Result<Bencode, DecodeError> {
        let mut d = Decoder { buf: input, pos: 0 };
        let v = d.value(0)?;
        if d.pos != input.len() {
            return Err(DecodeError::TrailingData { pos: d.pos });
        }
        Ok(v)
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// Why a bencode document was rejected. Positions are byte offsets into the
/// input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Input ended inside a value.
    UnexpectedEof,
    /// A byte that cannot start or continue a value here.
    InvalidByte { pos: usize, byte: u8 },
    /// Malformed integer (empty, `-0`, leading zeros, stray characters).
    InvalidInteger { pos: usize },
    /// Integer does not fit in `i64`.
    IntegerOverflow { pos: usize },
    /// Malformed string length prefix (empty or with leading zeros).
    InvalidLength { pos: usize },
    /// String length runs past the end of the input.
    LengthOutOfBounds { pos: usize, len: usize },
    /// More than [`MAX_DEPTH`] nested lists/dicts.
    TooDeep { pos: usize },
    /// Dictionary key is not a byte string.
    NonStringKey { pos: usize },
    /// The same key appears twice in one dictionary.
    DuplicateKey { pos: usize },
    /// Bytes left over after the top-level value.
    TrailingData { pos: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEof => write!(f, "bencode: unexpected end of input"),
            DecodeError::InvalidByte { pos, byte } => {
                write!(f, "bencode: invalid byte 0x{byte:02x} at {pos}")
            }
            DecodeError::InvalidInteger { pos } => write!(f, "bencode: invalid integer at {pos}"),
            DecodeError::IntegerOverflow { pos } => write!(f, "bencode: integer overflow at {pos}"),
            DecodeError::InvalidLength { pos } => {
                write!(f, "bencode: invalid string length at {pos}")
            }
            DecodeError::LengthOutOfBounds { pos, len } => {
                write!(f, "bencode: string of length {len} at {pos} exceeds input")
            }
            DecodeError::TooDeep { pos } => {
                write!(f, "bencode: nesting deeper than {MAX_DEPTH} at {pos}")
            }
            DecodeError::NonStringKey { pos } => {
                write!(f, "bencode: dictionary key at {pos} is not a string")
            }
            DecodeError::DuplicateKey { pos } => write!(f, "bencode: duplicate key at {pos}"),
            DecodeError::TrailingData { pos } => write!(f, "bencode: trailing data at {pos}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Recursive-descent decoder, bounded by [`MAX_DEPTH`]. Every index is
/// checked, so no input can make it panic.
struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEof)
    }

    fn value(&mut self, depth: usize) -> Result<Bencode, DecodeError> {
        let start = self.pos;
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                self.int().map(Bencode::Int)
            }
            b'0'..=b'9' => self.bytes().map(Bencode::Bytes),
            b'l' | b'd' if depth >= MAX_DEPTH => Err(DecodeError::TooDeep { pos: start }),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek()? == b'e' {
                        self.pos += 1;
                        return Ok(Bencode::List(items));
                    }
                    items.push(self.value(depth + 1)?);
                }
            }
            b'd' => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                loop {
                    let key_pos = self.pos;
                    match self.peek()? {
                        b'e' => {
                            self.pos += 1;
                            return Ok(Bencode::Dict(map));
                        }
                        b'0'..=b'9' => {}
                        _ => return Err(DecodeError::NonStringKey { pos: key_pos }),
                    }
                    let key = self.bytes()?;
                    let val = self.value(depth + 1)?;
                    if map.insert(key, val).is_some() {
                        return Err(DecodeError::DuplicateKey { pos: key_pos });
                    }
                }
            }
            byte => Err(DecodeError::InvalidByte { pos: start, byte }),
        }
    }

    /// Parses the digits after `i` up to and including `e`.
    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        let end = self.buf[start..]
            .iter()
            .position(|&b| b == b'e')
            .map(|off| start + off)
            .ok_or(DecodeError::UnexpectedEof)?;
        let text = &self.buf[start..end];
        let (neg, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let bad = DecodeError::InvalidInteger { pos: start };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        if digits.len() > 1 && digits[0] == b'0' {
            return Err(bad); // leading zero
        }
        if neg && digits == b"0" {
            return Err(bad); // "-0"
        }
        // Accumulate negatively so i64::MIN parses without overflow.
        let mut acc: i64 = 0;
        for &d in digits {
            acc = acc
                .checked_mul(10)
                .and_then(|a| a.checked_sub(i64::from(d - b'0')))
                .ok_or(DecodeError::IntegerOverflow { pos: start })?;
        }
        let v = if neg {
            acc
        } else {
            acc.checked_neg()
                .ok_or(DecodeError::IntegerOverflow { pos: start })?
        };
        self.pos = end + 1;
        Ok(v)
    }

    /// Parses `<len>:<bytes>`.
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let start = self.pos;
        let colon = self.buf[start..]
            .iter()
            .position(|&b| b == b':')
            .map(|off| start + off)
            .ok_or(DecodeError::UnexpectedEof)?;
        let digits = &self.buf[start..colon];
        let bad = DecodeError::InvalidLength { pos: start };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        if digits.len() > 1 && digits[0] == b'0' {
            return Err(bad);
        }
        let mut len: usize = 0;
        for &d in digits {
            len = len
                .checked_mul(10)
                .and_then(|l| l.checked_add(usize::from(d - b'0')))
                .ok_or(DecodeError::LengthOutOfBounds {
                    pos: start,
                    len: usize::MAX,
                })?;
        }
        let data_start = colon + 1;
        let data_end = data_start
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::LengthOutOfBounds { pos: start, len })?;
        self.pos = data_end;
        Ok(self.buf[data_start..data_end].to_vec())
    }
}

/// The extra dictionary entries sent with every `offer` and `answer`. See the
/// module documentation for why each one is needed.
pub fn rekey_flags() -> Vec<(&'static str, Bencode)> {
    /// Suites rtpengine would otherwise add to its offer. We drop all of them
    /// except `AES_CM_128_HMAC_SHA1_32`, the one B accepts.
    const SDES_NO: &[&str] = &[
        "no-AES_192_CM_HMAC_SHA1_80",
        "no-AES_192_CM_HMAC_SHA1_32",
        "no-AES_256_CM_HMAC_SHA1_80",
        "no-AES_256_CM_HMAC_SHA1_32",
        "no-F8_128_HMAC_SHA1_80",
        "no-F8_128_HMAC_SHA1_32",
        "no-AEAD_AES_256_GCM",
        "no-AEAD_AES_128_GCM",
        "no-NULL_HMAC_SHA1_80",
        "no-NULL_HMAC_SHA1_32",
    ];
    vec![
        ("transport-protocol", Bencode::str("RTP/SAVP")),
        ("ICE", Bencode::str("remove")),
        ("DTLS", Bencode::str("off")),
        ("SDES", Bencode::str_list(SDES_NO)),
        ("rtcp-mux", Bencode::str_list(&["demux"])),
        (
            "replace",
            Bencode::str_list(&["origin", "session-connection"]),
        ),
    ]
}

/// Errors from [`NgClient`].
#[derive(Debug)]
pub enum NgError {
    /// Socket error (bind, send, receive).
    Io(io::Error),
    /// No matching reply after all retransmissions.
    Timeout,
    /// We refuse to talk to anything but a loopback address.
    NotLoopback(SocketAddr),
    /// Request would not fit in one datagram.
    RequestTooLarge(usize),
    /// Reply is not `<cookie> <bencode>` or its dictionary is malformed.
    Decode(DecodeError),
    /// Reply decoded but lacks an expected field (named here).
    BadReply(&'static str),
    /// rtpengine answered `result=error`.
    Rtpengine(String),
    /// `result` was neither `ok`, `pong` nor `error`, e.g. `load limit`.
    UnexpectedResult(String),
}

impl fmt::Display for NgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NgError::Io(e) => write!(f, "ng: socket error: {e}"),
            NgError::Timeout => write!(f, "ng: no reply from rtpengine"),
            NgError::NotLoopback(a) => write!(f, "ng: refusing non-loopback server {a}"),
            NgError::RequestTooLarge(n) => write!(f, "ng: request of {n} bytes too large"),
            NgError::Decode(e) => write!(f, "ng: {e}"),
            NgError::BadReply(what) => write!(f, "ng: malformed reply: {what}"),
            NgError::Rtpengine(r) => write!(f, "ng: rtpengine error: {r}"),
            NgError::UnexpectedResult(r) => write!(f, "ng: unexpected result {r:?}"),
        }
    }
}

impl std::error::Error for NgError {}

impl From<io::Error> for NgError {
    fn from(e: io::Error) -> Self {
        NgError::Io(e)
    }
}

impl From<DecodeError> for NgError {
    fn from(e: DecodeError) -> Self {
        NgError::Decode(e)
    }
}

/// Splits a reply datagram into cookie and decoded dictionary.
pub fn parse_reply(datagram: &[u8]) -> Result<(&[u8], Dict), NgError> {
    let space = datagram
        .iter()
        .position(|&b| b == b' ')
        .ok_or(NgError::BadReply("no cookie separator"))?;
    let (cookie, rest) = datagram.split_at(space);
    match Bencode::decode(&rest[1..])? {
        Bencode::Dict(d) => Ok((cookie, d)),
        _ => Err(NgError::BadReply("top-level value is not a dictionary")),
    }
}

/// Synchronous ng client over UDP. One request in flight at a time, so it can
/// stay simple: the cookie tells our reply apart from a late reply to an
/// earlier, timed-out request.
#[derive(Debug)]
pub struct NgClient {
    sock: UdpSocket,
    server: SocketAddr,
    cookie_prefix: u32,
    seq: u64,
    /// Total attempts per request (1 = no retransmission).
    pub attempts: u32,
}

impl NgClient {
    /// Binds to `127.0.0.1:0`. Each receive waits at most `timeout`; a
    /// request is sent up to 3 times. `server` must be a loopback address:
    /// benchmarks only ever run on 127.0.0.1.
    pub fn new(server: SocketAddr, timeout: Duration) -> Result<Self, NgError> {
        if !server.ip().is_loopback() {
            return Err(NgError::NotLoopback(server));
        }
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        sock.set_read_timeout(Some(timeout))?;
        Ok(NgClient {
            sock,
            server,
            cookie_prefix: std::process::id(),
            seq: 0,
            attempts: 3,
        })
    }

    /// Sends one command dictionary and returns the reply dictionary when
    /// `result` is `ok` or `pong`. Retransmits with the same cookie on timeout:
    /// rtpengine replays its cached reply, so an `offer` is never applied
    /// twice.
    pub fn request(&mut self, dict: Dict) -> Result<Dict, NgError> {
        self.seq += 1;
        let cookie = format!("{}_{}", self.cookie_prefix, self.seq);
        let mut msg = cookie.clone().into_bytes();
        msg.push(b' ');
        Bencode::Dict(dict).encode_into(&mut msg);
        if msg.len() > MAX_DATAGRAM {
            return Err(NgError::RequestTooLarge(msg.len()));
        }
        let mut buf = vec![0u8; MAX_DATAGRAM];
        for _ in 0..self.attempts.max(1) {
            self.sock.send_to(&msg, self.server)?;
            loop {
                let (n, from) = match self.sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::TimedOut =>
                    {
                        break; // retransmit
                    }
                    Err(e) => return Err(e.into()),
                };
                if from != self.server {
                    continue; // stray datagram
                }
                let (got_cookie, reply) = match parse_reply(&buf[..n]) {
                    Ok(x) => x,
                    // A garbled datagram might be a stale reply. If ours
                    // really is garbled, the retries run out with Timeout.
                    Err(_) if !buf[..n].starts_with(cookie.as_bytes()) => continue,
                    Err(e) => return Err(e),
                };
                if got_cookie != cookie.as_bytes() {
                    continue; // late reply to an earlier request
                }
                return check_result(reply);
            }
        }
        Err(NgError::Timeout)
    }

    /// `ping` → expects `pong`.
    pub fn ping(&mut self) -> Result<(), NgError> {
        self.request(command("ping")).map(|_| ())
    }

    /// `offer` from A (`from_tag`). Returns the SDP rtpengine wants forwarded
    /// to B, containing rtpengine's B-side address and port and crypto lines.
    pub fn offer(&mut self, call_id: &str, from_tag: &str, sdp: &str) -> Result<String, NgError> {
        let mut d = command("offer");
        put(&mut d, "call-id", Bencode::str(call_id));
        put(&mut d, "from-tag", Bencode::str(from_tag));
        put(&mut d, "sdp", Bencode::str(sdp));
        for (k, v) in rekey_flags() {
            put(&mut d, k, v);
        }
        reply_sdp(self.request(d)?)
    }

    /// `answer` from B (`to_tag`) to A's offer (`from_tag`). Returns the SDP
    /// to forward to A.
    pub fn answer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
    ) -> Result<String, NgError> {
        let mut d = command("answer");
        put(&mut d, "call-id", Bencode::str(call_id));
        put(&mut d, "from-tag", Bencode::str(from_tag));
        put(&mut d, "to-tag", Bencode::str(to_tag));
        put(&mut d, "sdp", Bencode::str(sdp));
        for (k, v) in rekey_flags() {
            put(&mut d, k, v);
        }
        reply_sdp(self.request(d)?)
    }

    /// `delete` the whole call. With `--delete-delay=0` its ports are freed at
    /// once; the default delay is 30 s.
    pub fn delete(&mut self, call_id: &str, from_tag: &str) -> Result<(), NgError> {
        let mut d = command("delete");
        put(&mut d, "call-id", Bencode::str(call_id));
        put(&mut d, "from-tag", Bencode::str(from_tag));
        self.request(d).map(|_| ())
    }
}

fn command(name: &str) -> Dict {
    let mut d = BTreeMap::new();
    put(&mut d, "command", Bencode::str(name));
    d
}

fn put(d: &mut Dict, k: &str, v: Bencode) {
    d.insert(k.as_bytes().to_vec(), v);
}

fn check_result(reply: Dict) -> Result<Dict, NgError> {
    let result = reply
        .get(b"result".as_slice())
        .and_then(Bencode::as_str)
        .ok_or(NgError::BadReply("missing result"))?;
    match result {
        "ok" | "pong" => Ok(reply),
        "error" => Err(NgError::Rtpengine(
            reply
                .get(b"error-reason".as_slice())
                .and_then(Bencode::as_str)
                .unwrap_or("(no error-reason)")
                .to_owned(),
        )),
        other => Err(NgError::UnexpectedResult(other.to_owned())),
    }
}

fn reply_sdp(reply: Dict) -> Result<String, NgError> {
    reply
        .get(b"sdp".as_slice())
        .and_then(Bencode::as_str)
        .map(str::to_owned)
        .ok_or(NgError::BadReply("missing or non-UTF-8 sdp"))
}

// ---------------------------------------------------------------- SDP helpers

/// One `a=crypto:<tag> <suite> inline:<key||salt base64>[|...]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoLine {
    pub tag: u32,
    pub suite: String,
    /// Base64 of master key || master salt. Lifetime/MKI suffixes are
    /// stripped; rtpengine adds none unless asked.
    pub key_b64: String,
}

/// All crypto lines of an SDP, in order. Lines that don't parse are skipped.
pub fn crypto_lines(sdp: &str) -> Vec<CryptoLine> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .filter_map(|rest| {
            let mut it = rest.split_ascii_whitespace();
            let tag = it.next()?.parse().ok()?;
            let suite = it.next()?.to_owned();
            let key = it.next()?.strip_prefix("inline:")?;
            let key_b64 = key.split('|').next()?.to_owned();
            Some(CryptoLine {
                tag,
                suite,
                key_b64,
            })
        })
        .collect()
}

/// The crypto line B must accept: the first one with `suite`. Use
/// `"AES_CM_128_HMAC_SHA1_32"` with [`rekey_flags`]; that line holds
/// rtpengine's fresh key towards B.
pub fn pick_crypto(sdp: &str, suite: &str) -> Option<CryptoLine> {
    crypto_lines(sdp).into_iter().find(|c| c.suite == suite)
}

/// Port of the first `m=audio` line.
pub fn audio_port(sdp: &str) -> Option<u16> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split_ascii_whitespace().next())
        .and_then(|p| p.parse().ok())
}

/// Address of the first `c=IN IP4` line.
pub fn connection_addr(sdp: &str) -> Option<Ipv4Addr> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("c=IN IP4 "))
        .and_then(|a| a.trim().parse().ok())
}

/// Builds an endpoint SDP (audio, PCMU, RTP/SAVP, 127.0.0.1) with the given
/// crypto lines. No `a=rtcp` line: RTCP is implicitly on `rtp_port + 1`.
pub fn endpoint_sdp(session_id: u64, rtp_port: u16, cryptos: &[CryptoLine]) -> String {
    let mut s = format!(
        "v=0\r\no=- {session_id} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    );
    for c in cryptos {
        s.push_str(&format!(
            "a=crypto:{} {} inline:{}\r\n",
            c.tag, c.suite, c.key_b64
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(entries: &[(&str, Bencode)]) -> Bencode {
        Bencode::Dict(
            entries
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn encodes_documented_ping() {
        // Example from rtpengine's ng_control_protocol.md.
        assert_eq!(
            dict(&[("command", Bencode::str("ping"))]).encode(),
            b"d7:command4:pinge"
        );
    }

    #[test]
    fn round_trip_nested() {
        let v = dict(&[
            ("sdp", Bencode::str("v=0\r\n")),
            ("int", Bencode::Int(-42)),
            ("min", Bencode::Int(i64::MIN)),
            ("max", Bencode::Int(i64::MAX)),
            ("zero", Bencode::Int(0)),
            ("empty", Bencode::Bytes(Vec::new())),
            ("bin", Bencode::Bytes(vec![0, 255, b':', b'e'])),
            (
                "list",
                Bencode::List(vec![Bencode::Int(1), Bencode::str_list(&["a", "b"])]),
            ),
            ("d", dict(&[("x", Bencode::List(Vec::new()))])),
        ]);
        let enc = v.encode();
        assert_eq!(Bencode::decode(&enc), Ok(v));
    }

    #[test]
    fn accepts_unsorted_keys() {
        // rtpengine does not sort dictionary keys in its replies.
        let v = Bencode::decode(b"d6:result4:pong3:abci1ee").expect("valid");
        let Bencode::Dict(d) = v else {
            panic!("not a dict")
        };
        assert_eq!(
            d.get(b"result".as_slice()).and_then(Bencode::as_str),
            Some("pong")
        );
    }

    #[test]
    fn rejects_malformed() {
        use DecodeError::*;
        let cases: &[(&[u8], DecodeError)] = &[
            (b"", UnexpectedEof),
            (b"i12", UnexpectedEof),
            (b"ie", InvalidInteger { pos: 1 }),
            (b"i-e", InvalidInteger { pos: 1 }),
            (b"i-0e", InvalidInteger { pos: 1 }),
            (b"i03e", InvalidInteger { pos: 1 }),
            (b"i1x2e", InvalidInteger { pos: 1 }),
            (b"i9223372036854775808e", IntegerOverflow { pos: 1 }),
            (b"i-9223372036854775809e", IntegerOverflow { pos: 1 }),
            (b"5:abc", LengthOutOfBounds { pos: 0, len: 5 }),
            (
                b"99999999999999999999999:a",
                LengthOutOfBounds {
                    pos: 0,
                    len: usize::MAX,
                },
            ),
            (b"03:abc", InvalidLength { pos: 0 }),
            (b"3abc", UnexpectedEof),
            (b"l", UnexpectedEof),
            (b"d3:abc", UnexpectedEof),
            (b"di1ei2ee", NonStringKey { pos: 1 }),
            (b"d1:ai1e1:ai2ee", DuplicateKey { pos: 7 }),
            (b"x", InvalidByte { pos: 0, byte: b'x' }),
            (b"le ", TrailingData { pos: 2 }),
            (b"i1ei2e", TrailingData { pos: 3 }),
        ];
        for (input, want) in cases {
            assert_eq!(
                Bencode::decode(input).as_ref(),
                Err(want),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn depth_is_bounded() {
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(Bencode::decode(&ok).is_ok());
        let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert_eq!(
            Bencode::decode(&deep),
            Err(DecodeError::TooDeep { pos: MAX_DEPTH })
        );
        // Far deeper than the stack could take unbounded: must not crash.
        let hostile = vec![b'l'; 1_000_000];
        assert!(Bencode::decode(&hostile).is_err());
    }

    #[test]
    fn decode_never_panics_on_truncations_and_bitflips() {
        let good = dict(&[
            ("sdp", Bencode::str("v=0")),
            (
                "l",
                Bencode::List(vec![Bencode::Int(-7), dict(&[("k", Bencode::str("v"))])]),
            ),
        ])
        .encode();
        for cut in 0..good.len() {
            let _ = Bencode::decode(&good[..cut]);
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut m = good.clone();
                m[i] ^= 1 << bit;
                let _ = Bencode::decode(&m);
            }
        }
    }

    #[test]
    fn reply_parsing() {
        let (cookie, d) = parse_reply(b"5323_1 d6:result4:ponge").expect("valid reply");
        assert_eq!(cookie, b"5323_1");
        assert!(check_result(d).is_ok());
        let (_, d) =
            parse_reply(b"c d6:result5:error12:error-reason7:Unknowne").expect("valid reply");
        assert!(matches!(check_result(d), Err(NgError::Rtpengine(r)) if r == "Unknown"));
        assert!(matches!(
            parse_reply(b"nocookie"),
            Err(NgError::BadReply(_))
        ));
        assert!(matches!(parse_reply(b"c le"), Err(NgError::BadReply(_))));
        assert!(matches!(parse_reply(b"c d"), Err(NgError::Decode(_))));
    }

    #[test]
    fn refuses_non_loopback() {
        let addr: SocketAddr = "192.0.2.1:2223".parse().expect("addr");
        assert!(matches!(
            NgClient::new(addr, Duration::from_millis(10)),
            Err(NgError::NotLoopback(_))
        ));
    }

    /// Fake rtpengine on 127.0.0.1: drops the first copy of each request (to
    /// exercise retransmission), sends a stale reply with a wrong cookie, then
    /// answers `offer` with an SDP that echoes the request's flags.
    #[test]
    fn client_against_fake_server() {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = server.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            let mut seen = std::collections::HashSet::new();
            for _ in 0..4 {
                let (n, from) = server.recv_from(&mut buf).expect("recv");
                let (cookie, req) = parse_reply(&buf[..n]).expect("request parses");
                let cookie = cookie.to_vec();
                if seen.insert(cookie.clone()) {
                    continue; // drop first transmission
                }
                let cmd = req
                    .get(b"command".as_slice())
                    .and_then(Bencode::as_str)
                    .unwrap_or("");
                let reply = match cmd {
                    "ping" => dict(&[("result", Bencode::str("pong"))]),
                    "offer" => {
                        let flags_ok = req.get(b"DTLS".as_slice()).and_then(Bencode::as_str)
                            == Some("off")
                            && req.contains_key(b"SDES".as_slice());
                        dict(&[
                            ("result", Bencode::str("ok")),
                            (
                                "sdp",
                                Bencode::str(if flags_ok { "v=0 flags" } else { "v=0" }),
                            ),
                        ])
                    }
                    _ => dict(&[
                        ("result", Bencode::str("error")),
                        ("error-reason", Bencode::str("nope")),
                    ]),
                };
                let mut stale = b"0_0 ".to_vec();
                dict(&[("result", Bencode::str("ok"))]).encode_into(&mut stale);
                server.send_to(&stale, from).expect("send");
                let mut msg = cookie;
                msg.push(b' ');
                reply.encode_into(&mut msg);
                server.send_to(&msg, from).expect("send");
            }
        });
        let mut c = NgClient::new(addr, Duration::from_millis(200)).expect("client");
        c.ping().expect("ping");
        assert_eq!(c.offer("cid", "ft", "v=0").expect("offer"), "v=0 flags");
        handle.join().expect("server thread");
        // Server is gone: the next request must time out, not hang or panic.
        c.attempts = 1;
        assert!(matches!(
            c.ping(),
            Err(NgError::Timeout) | Err(NgError::Io(_))
        ));
    }

    const RTPE_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
        t=0 0\r\nm=audio 30000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n\
        a=rtcp:30001\r\n\
        a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:2fUM9O8UpaGu3WR8XoCfZ82QJqJPs8bthXd6b8nr\r\n\
        a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:Su1jd75sT09KEyNGOcP83jIdHVEJGrZDXMuEVW98|2^31\r\n";

    #[test]
    fn sdp_helpers() {
        assert_eq!(audio_port(RTPE_OFFER), Some(30000));
        assert_eq!(connection_addr(RTPE_OFFER), Some(Ipv4Addr::LOCALHOST));
        let all = crypto_lines(RTPE_OFFER);
        assert_eq!(all.len(), 2);
        let b = pick_crypto(RTPE_OFFER, "AES_CM_128_HMAC_SHA1_32").expect("32 line");
        assert_eq!(b.tag, 2);
        assert_eq!(b.key_b64, "Su1jd75sT09KEyNGOcP83jIdHVEJGrZDXMuEVW98");
        let sdp = endpoint_sdp(7, 20000, std::slice::from_ref(&b));
        assert_eq!(audio_port(&sdp), Some(20000));
        assert_eq!(crypto_lines(&sdp), vec![b]);
        assert_eq!(audio_port("m=audio x RTP/SAVP 0"), None);
    }
}
