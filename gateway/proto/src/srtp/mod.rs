//! SRTP and SRTCP (RFC 3711), with the AES-256 profile of RFC 6188 and the
//! AES-GCM profiles of RFC 7714.
//!
//! # Contract
//!
//! A [`Protector`] encrypts and authenticates packets that dialgate sends;
//! an [`Unprotector`] authenticates and decrypts packets that it receives.
//! Each is built from one [`MasterKey`] and owns the per-SSRC state
//! (rollover counter, highest sequence number, 128-packet replay window) of
//! every stream that key protects, in a fixed table of [`MAX_STREAMS`]
//! entries. A stream is never evicted: forgetting one would let a sender
//! protect an index twice under the key (keystream or GCM nonce reuse) and
//! a receiver accept replays of it; a packet of one more SSRC is refused
//! ([`Error::TooManyStreams`]) and the leg needs a new key.
//!
//! Both work **in place** on a caller-owned buffer and never allocate:
//!
//! ```
//! use dialgate_proto::srtp::{MasterKey, Protector, Suite, Unprotector};
//! let key = MasterKey::generate(Suite::AeadAes128Gcm).unwrap();
//! let mut tx = Protector::new(&key).unwrap();
//! let mut rx = Unprotector::new(&key).unwrap();
//!
//! let mut buf = [0u8; 1500];
//! let rtp = [0x80, 0, 0, 1, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3];
//! buf[..rtp.len()].copy_from_slice(&rtp);
//! let len = tx.protect_rtp(&mut buf, rtp.len()).unwrap().len();
//! assert_eq!(len, rtp.len() + 16);
//! let plain = rx.unprotect_rtp(&mut buf, len).unwrap();
//! assert_eq!(&buf[..plain], &rtp);
//! // The same packet again is a replay.
//! ```
//!
//! The only way to obtain a [`Protected`] value, the type the media relay
//! needs to send a packet, is a successful `protect_rtp` or `protect_rtcp`.
//!
//! Receiving state advances only after a packet authenticates, so forged
//! packets cannot move the rollover counter or the replay window, and a
//! sender refuses to reuse an index (which would reuse keystream).
//!
//! Master keys with an MKI, NULL ciphers and NULL authentication are not
//! supported and cannot be expressed; unencrypted SRTCP (E flag clear) is
//! refused on receipt and never sent.

mod keys;
mod replay;
mod sdes;
mod suite;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

use core::fmt;

use aws_lc_rs::aead::Aad;
use aws_lc_rs::constant_time;

use keys::SessionKeys;
pub use replay::WINDOW as REPLAY_WINDOW;
use replay::{ReplayWindow, Verdict};
pub use sdes::{format_inline, parse_inline};
pub use suite::{MasterKey, Suite};

/// SSRCs one key may carry in each direction; packets of more are refused.
pub const MAX_STREAMS: usize = 16;

/// Fixed RTP header length (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Fixed RTCP header length: the part SRTCP leaves in the clear (RFC 3711 §3.4).
pub const RTCP_HEADER_LEN: usize = 8;

/// Largest SRTCP index (31 bits, RFC 3711 §3.4).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;
/// Largest SRTP packet index (48 bits, RFC 3711 §3.3.1).
const MAX_SRTP_INDEX: u64 = (1 << 48) - 1;

/// Why a packet or a key was refused. Each variant names who is to blame,
/// see [`Error::blame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The packet is shorter than its headers and tag.
    #[error("packet truncated")]
    Truncated,
    /// The packet is not RTP/RTCP version 2.
    #[error("not an RTP/RTCP version 2 packet")]
    NotRtp,
    /// The authentication tag does not verify.
    #[error("authentication failed")]
    AuthFailed,
    /// The packet index was already received.
    #[error("replayed packet")]
    Replayed,
    /// The packet index is older than the replay window.
    #[error("packet older than the replay window")]
    TooOld,
    /// An SRTCP packet with the E flag clear (not encrypted).
    #[error("unencrypted SRTCP refused")]
    Unencrypted,
    /// The caller's buffer cannot hold the packet plus tag.
    #[error("buffer too small for the protected packet")]
    BufferTooSmall,
    /// Protecting this index again would reuse keystream.
    #[error("packet index already protected")]
    IndexReused,
    /// The key has protected as many packets as its index space allows.
    #[error("key exhausted: index space used up")]
    KeyExhausted,
    /// A crypto suite dialgate does not offer or accept (including NULL).
    #[error("unknown or unsupported crypto suite")]
    UnknownSuite,
    /// Master key or salt of the wrong length for the suite.
    #[error("master key or salt has the wrong length")]
    BadKeyLength,
    /// Key parameters carry a master key identifier, which is not supported.
    #[error("MKI is not supported")]
    MkiNotSupported,
    /// Malformed SDES key parameters (RFC 4568 §6.1).
    #[error("malformed key parameters")]
    BadKeyParams,
    /// The key already carries [`MAX_STREAMS`] SSRCs: a new one would
    /// need an old one's state forgotten, which is never done.
    #[error("too many SSRCs for one key")]
    TooManyStreams,
    /// The crypto library failed where it cannot fail: our bug.
    #[error("crypto library failure")]
    Crypto,
}

/// Who is at fault for an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Blame {
    /// The peer sent something malformed, forged or replayed: drop and count.
    Peer,
    /// The peer asked for something we do not support.
    Incompatible,
    /// A local limit or misuse by the caller.
    Local,
    /// A bug in dialgate or its crypto library.
    Bug,
}

impl Error {
    /// Who is at fault.
    pub fn blame(self) -> Blame {
        match self {
            Error::Truncated
            | Error::NotRtp
            | Error::AuthFailed
            | Error::Replayed
            | Error::TooOld
            | Error::Unencrypted
            | Error::TooManyStreams
            | Error::BadKeyParams => Blame::Peer,
            Error::UnknownSuite | Error::MkiNotSupported | Error::BadKeyLength => {
                Blame::Incompatible
            }
            Error::BufferTooSmall | Error::IndexReused | Error::KeyExhausted => Blame::Local,
            Error::Crypto => Blame::Bug,
        }
    }
}

/// A packet that has been through `protect`: the only thing the media
/// relay's socket layer accepts. It cannot be built any other way.
#[derive(Debug)]
pub struct Protected<'a> {
    bytes: &'a [u8],
}

impl<'a> Protected<'a> {
    /// The protected packet, ready for the wire.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Length on the wire.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a protected packet has at least a header and a tag.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The fields of an RTP header that SRTP needs (RFC 3550 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Header length including CSRCs and the extension.
    pub len: usize,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Parses the header at the start of `pkt`; the header (with CSRC list
    /// and extension) must fit inside `pkt`.
    pub fn parse(pkt: &[u8]) -> Result<RtpHeader, Error> {
        if pkt.len() < RTP_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if pkt[0] >> 6 != 2 {
            return Err(Error::NotRtp);
        }
        let mut len = RTP_HEADER_LEN + 4 * usize::from(pkt[0] & 0x0f);
        if pkt[0] & 0x10 != 0 {
            let ext = pkt.get(len..len + 4).ok_or(Error::Truncated)?;
            len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        }
        if len > pkt.len() {
            return Err(Error::Truncated);
        }
        Ok(RtpHeader {
            len,
            payload_type: pkt[1] & 0x7f,
            seq: u16::from_be_bytes([pkt[2], pkt[3]]),
            ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
        })
    }
}

/// Tells RTCP from RTP on a multiplexed port (RFC 5761 §4): RTCP packet
/// types 192..=223 occupy the second byte's whole range for 64..=95 with the
/// marker bit set, which RTP payload types avoid.
pub fn is_rtcp(pkt: &[u8]) -> bool {
    pkt.len() >= 2 && (192..=223).contains(&pkt[1])
}

fn rtcp_ssrc(pkt: &[u8]) -> Result<u32, Error> {
    if pkt.len() < RTCP_HEADER_LEN {
        return Err(Error::Truncated);
    }
    if pkt[0] >> 6 != 2 {
        return Err(Error::NotRtp);
    }
    Ok(u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]))
}

/// Per-SSRC state (RFC 3711 §3.2.1 "cryptographic context").
#[derive(Clone, Copy, Debug)]
struct Stream {
    ssrc: u32,
    roc: u32,
    /// Highest sequence number authenticated (s_l of RFC 3711 §3.3.1).
    s_l: u16,
    rtp: ReplayWindow,
    rtcp: ReplayWindow,
    /// Next SRTCP index to send.
    rtcp_next: u32,
}

impl Stream {
    fn new(ssrc: u32, seq: u16) -> Stream {
        Stream {
            ssrc,
            roc: 0,
            s_l: seq,
            rtp: ReplayWindow::default(),
            rtcp: ReplayWindow::default(),
            rtcp_next: 0,
        }
    }

    /// The index estimate of RFC 3711 §3.3.1 / Appendix A: the rollover
    /// counter `v` the packet most likely belongs to, and its 48-bit index.
    /// `None` for a packet that would predate rollover counter zero.
    fn estimate(&self, seq: u16) -> Option<(u32, u64)> {
        let v = if self.s_l < 0x8000 {
            if seq > self.s_l && seq - self.s_l > 0x8000 {
                self.roc.checked_sub(1)?
            } else {
                self.roc
            }
        } else if self.s_l - 0x8000 > seq {
            self.roc.checked_add(1)?
        } else {
            self.roc
        };
        Some((v, u64::from(v) << 16 | u64::from(seq)))
    }

    /// Advances ROC and s_l after an authenticated (or sent) packet.
    fn update(&mut self, v: u32, seq: u16, index: u64) {
        if v > self.roc {
            self.roc = v;
            self.s_l = seq;
        } else if v == self.roc && seq > self.s_l {
            self.s_l = seq;
        }
        self.rtp.accept(index);
    }
}

/// A fixed table of stream states; a stream, once there, stays for the
/// life of the key.
struct Streams {
    slots: [Option<Stream>; MAX_STREAMS],
}

impl Streams {
    fn new() -> Streams {
        Streams {
            slots: [None; MAX_STREAMS],
        }
    }

    /// The state for `ssrc`, or a fresh one (stored by [`Streams::put`])
    /// if the table has room for it.
    fn get(&self, ssrc: u32, seq: u16) -> Result<Stream, Error> {
        if let Some(s) = self.slots.iter().flatten().find(|s| s.ssrc == ssrc) {
            return Ok(*s);
        }
        if self.slots.iter().all(Option::is_some) {
            return Err(Error::TooManyStreams);
        }
        Ok(Stream::new(ssrc, seq))
    }

    /// Stores a stream's state in its slot, or in a free one (there is
    /// one: [`Streams::get`] checked).
    fn put(&mut self, stream: Stream) {
        let slot = self
            .slots
            .iter()
            .position(|s| s.is_some_and(|s| s.ssrc == stream.ssrc))
            .or_else(|| self.slots.iter().position(Option::is_none));
        if let Some(i) = slot {
            self.slots[i] = Some(stream);
        }
    }
}

/// Protects outgoing SRTP and SRTCP with one master key. See the module
/// documentation for the contract.
pub struct Protector {
    keys: SessionKeys,
    streams: Streams,
}

impl fmt::Debug for Protector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protector")
            .field("suite", &self.keys.suite)
            .finish_non_exhaustive()
    }
}

impl Protector {
    /// Derives the session keys for `master`.
    pub fn new(master: &MasterKey) -> Result<Protector, Error> {
        Ok(Protector {
            keys: SessionKeys::derive(master)?,
            streams: Streams::new(),
        })
    }

    /// The suite in use.
    pub fn suite(&self) -> Suite {
        self.keys.suite
    }

    /// Protects the RTP packet in `buf[..len]` in place, appending the tag;
    /// `buf` must have room for [`Suite::rtp_overhead`] more octets.
    pub fn protect_rtp<'b>(
        &mut self,
        buf: &'b mut [u8],
        len: usize,
    ) -> Result<Protected<'b>, Error> {
        let tag_len = self.keys.suite.rtp_tag_len();
        let out_len = len.checked_add(tag_len).ok_or(Error::BufferTooSmall)?;
        if out_len > buf.len() {
            return Err(Error::BufferTooSmall);
        }
        let hdr = RtpHeader::parse(&buf[..len])?;
        let mut stream = self.streams.get(hdr.ssrc, hdr.seq)?;
        let (v, index) = stream.estimate(hdr.seq).ok_or(Error::IndexReused)?;
        match stream.rtp.check(index) {
            Verdict::Fresh => {}
            Verdict::Replayed | Verdict::TooOld => return Err(Error::IndexReused),
        }
        if index >= MAX_SRTP_INDEX {
            return Err(Error::KeyExhausted);
        }
        let (head, rest) = buf.split_at_mut(hdr.len);
        let payload_len = len - hdr.len;
        if self.keys.suite.is_aead() {
            let (key, nonce) = self.keys.rtp.gcm(rtp_nonce(hdr.ssrc, v, hdr.seq))?;
            let tag = key
                .seal_in_place_separate_tag(nonce, Aad::from(&*head), &mut rest[..payload_len])
                .map_err(|_| Error::Crypto)?;
            rest[payload_len..payload_len + tag_len].copy_from_slice(tag.as_ref());
        } else {
            self.keys
                .rtp
                .ctr_apply(hdr.ssrc, index, &mut rest[..payload_len])?;
            let tag = self.keys.rtp.mac(&[&buf[..len], &v.to_be_bytes()])?;
            buf[len..out_len].copy_from_slice(&tag.as_ref()[..tag_len]);
        }
        stream.update(v, hdr.seq, index);
        self.streams.put(stream);
        Ok(Protected {
            bytes: &buf[..out_len],
        })
    }

    /// Protects the RTCP compound packet in `buf[..len]` in place, appending
    /// E||SRTCP index and the tag; `buf` must have room for
    /// [`Suite::rtcp_overhead`] more octets.
    pub fn protect_rtcp<'b>(
        &mut self,
        buf: &'b mut [u8],
        len: usize,
    ) -> Result<Protected<'b>, Error> {
        let suite = self.keys.suite;
        let tag_len = suite.rtcp_tag_len();
        let out_len = len
            .checked_add(suite.rtcp_overhead())
            .ok_or(Error::BufferTooSmall)?;
        if out_len > buf.len() {
            return Err(Error::BufferTooSmall);
        }
        let ssrc = rtcp_ssrc(&buf[..len])?;
        let mut stream = self.streams.get(ssrc, 0)?;
        let index = stream.rtcp_next;
        if index > MAX_SRTCP_INDEX {
            return Err(Error::KeyExhausted);
        }
        let e_index = (index | 0x8000_0000).to_be_bytes();
        if suite.is_aead() {
            // RFC 7714 §9: header || ciphertext || tag || E||index; the AAD
            // is the 8-octet header followed by E||index.
            let (key, nonce) = self.keys.rtcp.gcm(rtcp_nonce(ssrc, index))?;
            let mut aad = [0u8; RTCP_HEADER_LEN + 4];
            aad[..RTCP_HEADER_LEN].copy_from_slice(&buf[..RTCP_HEADER_LEN]);
            aad[RTCP_HEADER_LEN..].copy_from_slice(&e_index);
            let tag = key
                .seal_in_place_separate_tag(nonce, Aad::from(aad), &mut buf[RTCP_HEADER_LEN..len])
                .map_err(|_| Error::Crypto)?;
            buf[len..len + tag_len].copy_from_slice(tag.as_ref());
            buf[len + tag_len..out_len].copy_from_slice(&e_index);
        } else {
            // RFC 3711 §3.4: header || ciphertext || E||index || tag.
            self.keys
                .rtcp
                .ctr_apply(ssrc, u64::from(index), &mut buf[RTCP_HEADER_LEN..len])?;
            buf[len..len + 4].copy_from_slice(&e_index);
            let tag = self.keys.rtcp.mac(&[&buf[..len + 4]])?;
            buf[len + 4..out_len].copy_from_slice(&tag.as_ref()[..tag_len]);
        }
        stream.rtcp_next = index + 1;
        self.streams.put(stream);
        Ok(Protected {
            bytes: &buf[..out_len],
        })
    }
}

/// Authenticates and decrypts incoming SRTP and SRTCP with one master key.
/// See the module documentation for the contract.
pub struct Unprotector {
    keys: SessionKeys,
    streams: Streams,
}

impl fmt::Debug for Unprotector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unprotector")
            .field("suite", &self.keys.suite)
            .finish_non_exhaustive()
    }
}

impl Unprotector {
    /// Derives the session keys for `master`.
    pub fn new(master: &MasterKey) -> Result<Unprotector, Error> {
        Ok(Unprotector {
            keys: SessionKeys::derive(master)?,
            streams: Streams::new(),
        })
    }

    /// The suite in use.
    pub fn suite(&self) -> Suite {
        self.keys.suite
    }

    /// Verifies and decrypts the SRTP packet in `buf[..len]` in place and
    /// returns the length of the RTP packet now at `buf[..n]`.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let tag_len = self.keys.suite.rtp_tag_len();
        let pkt = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let body_len = len
            .checked_sub(tag_len)
            .filter(|&b| b >= RTP_HEADER_LEN)
            .ok_or(Error::Truncated)?;
        let hdr = RtpHeader::parse(&pkt[..body_len])?;
        let mut stream = self.streams.get(hdr.ssrc, hdr.seq)?;
        let (v, index) = stream.estimate(hdr.seq).ok_or(Error::TooOld)?;
        match stream.rtp.check(index) {
            Verdict::Fresh => {}
            Verdict::Replayed => return Err(Error::Replayed),
            Verdict::TooOld => return Err(Error::TooOld),
        }
        if self.keys.suite.is_aead() {
            let (key, nonce) = self.keys.rtp.gcm(rtp_nonce(hdr.ssrc, v, hdr.seq))?;
            let (head, rest) = pkt.split_at_mut(hdr.len);
            key.open_in_place(nonce, Aad::from(&*head), rest)
                .map_err(|_| Error::AuthFailed)?;
        } else {
            let tag = self.keys.rtp.mac(&[&pkt[..body_len], &v.to_be_bytes()])?;
            constant_time::verify_slices_are_equal(&tag.as_ref()[..tag_len], &pkt[body_len..])
                .map_err(|_| Error::AuthFailed)?;
            self.keys
                .rtp
                .ctr_apply(hdr.ssrc, index, &mut pkt[hdr.len..body_len])?;
        }
        stream.update(v, hdr.seq, index);
        self.streams.put(stream);
        Ok(body_len)
    }

    /// Verifies and decrypts the SRTCP packet in `buf[..len]` in place and
    /// returns the length of the RTCP packet now at `buf[..n]`.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let suite = self.keys.suite;
        let tag_len = suite.rtcp_tag_len();
        let pkt = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let body_len = len
            .checked_sub(suite.rtcp_overhead())
            .filter(|&b| b >= RTCP_HEADER_LEN)
            .ok_or(Error::Truncated)?;
        let ssrc = rtcp_ssrc(pkt)?;
        let e_index_at = if suite.is_aead() { len - 4 } else { body_len };
        let e_index = u32::from_be_bytes([
            pkt[e_index_at],
            pkt[e_index_at + 1],
            pkt[e_index_at + 2],
            pkt[e_index_at + 3],
        ]);
        if e_index & 0x8000_0000 == 0 {
            return Err(Error::Unencrypted);
        }
        let index = e_index & MAX_SRTCP_INDEX;
        let mut stream = self.streams.get(ssrc, 0)?;
        match stream.rtcp.check(u64::from(index)) {
            Verdict::Fresh => {}
            Verdict::Replayed => return Err(Error::Replayed),
            Verdict::TooOld => return Err(Error::TooOld),
        }
        if suite.is_aead() {
            let (key, nonce) = self.keys.rtcp.gcm(rtcp_nonce(ssrc, index))?;
            let mut aad = [0u8; RTCP_HEADER_LEN + 4];
            aad[..RTCP_HEADER_LEN].copy_from_slice(&pkt[..RTCP_HEADER_LEN]);
            aad[RTCP_HEADER_LEN..].copy_from_slice(&e_index.to_be_bytes());
            key.open_in_place(nonce, Aad::from(aad), &mut pkt[RTCP_HEADER_LEN..len - 4])
                .map_err(|_| Error::AuthFailed)?;
        } else {
            let tag = self.keys.rtcp.mac(&[&pkt[..body_len + 4]])?;
            constant_time::verify_slices_are_equal(&tag.as_ref()[..tag_len], &pkt[body_len + 4..])
                .map_err(|_| Error::AuthFailed)?;
            self.keys.rtcp.ctr_apply(
                ssrc,
                u64::from(index),
                &mut pkt[RTCP_HEADER_LEN..body_len],
            )?;
        }
        stream.rtcp.accept(u64::from(index));
        self.streams.put(stream);
        Ok(body_len)
    }
}

/// RFC 7714 §8.1: 0x0000 || SSRC || ROC || SEQ, to be XORed with the salt.
fn rtp_nonce(ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[6..10].copy_from_slice(&roc.to_be_bytes());
    n[10..12].copy_from_slice(&seq.to_be_bytes());
    n
}

/// RFC 7714 §9.1: 0x0000 || SSRC || 0x0000 || 0 || SRTCP index.
fn rtcp_nonce(ssrc: u32, index: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[8..12].copy_from_slice(&index.to_be_bytes());
    n
}

#[cfg(test)]
impl Protector {
    fn from_session(keys: SessionKeys) -> Protector {
        Protector {
            keys,
            streams: Streams::new(),
        }
    }

    /// Sets the next SRTCP index for `ssrc` (the RFC vectors start at 0x5d4).
    fn set_next_rtcp_index(&mut self, ssrc: u32, index: u32) {
        let mut s = self.streams.get(ssrc, 0).expect("room for a stream");
        s.rtcp_next = index;
        self.streams.put(s);
    }
}

#[cfg(test)]
impl Unprotector {
    fn from_session(keys: SessionKeys) -> Unprotector {
        Unprotector {
            keys,
            streams: Streams::new(),
        }
    }
}
