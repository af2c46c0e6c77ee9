//! What a negotiation yields, our side's media parameters, and the pieces
//! shared by answering and offering.

use std::net::{IpAddr, SocketAddr};

use crate::relay::{LegConfig, SocketId};
use crate::srtp::{format_inline, MasterKey, Suite};

use super::codec::Codecs;
use super::crypto::random_id;
use super::model::{
    Attribute, Connection, Crypto, Direction, Formats, Media, MediaType, Origin, Proto, Rtcp,
    SessionDescription, Timing,
};
use super::policy::{Inconsistency, Reject};

/// Our media endpoint on one leg, as the socket layer bound it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalMedia {
    /// Where we receive RTP (and RTCP, with rtcp-mux). Its IP goes into
    /// `c=` and `o=`.
    pub rtp: SocketAddr,
    /// A separate RTCP socket, announced with `a=rtcp` (RFC 3605); `None`
    /// means RTP port + 1 if rtcp-mux is not agreed.
    pub rtcp: Option<SocketAddr>,
    /// Whether we offer or accept rtcp-mux (RFC 5761).
    pub rtcp_mux: bool,
    /// The direction we want (e.g. [`Direction::SendOnly`] to hold the
    /// far end); the result is intersected with the peer's.
    pub direction: Direction,
}

impl LocalMedia {
    /// Receiving on `rtp`, rtcp-mux supported, send and receive.
    pub fn new(rtp: SocketAddr) -> LocalMedia {
        LocalMedia {
            rtp,
            rtcp: None,
            rtcp_mux: true,
            direction: Direction::SendRecv,
        }
    }
}

/// The outcome of a successful offer/answer on one leg: everything the
/// relay needs ([`Negotiated::into_leg_config`]) plus what a later
/// re-INVITE on the same dialog needs. Keys are absent from `Debug`; a
/// clone's keys are zeroized on drop like the original's.
#[derive(Clone, Debug)]
pub struct Negotiated {
    /// The SRTP suite both directions use.
    pub suite: Suite,
    /// The tag of the agreed `a=crypto` line.
    pub crypto_tag: u32,
    /// The peer's key: unprotects what we receive.
    pub inbound: MasterKey,
    /// Our fresh key: protects what we send.
    pub outbound: MasterKey,
    /// Whether `inbound` differs from the previous negotiation's (always
    /// true for a first one): the relay must build a new receive context.
    pub new_inbound_key: bool,
    /// Whether `outbound` differs from the previous negotiation's (always
    /// true for a first one): the relay must build a new send context.
    pub new_outbound_key: bool,
    /// The peer's RTP address; `None` when it holds with `c=0.0.0.0`.
    pub remote_rtp: Option<SocketAddr>,
    /// The peer's RTCP address; `None` with rtcp-mux or on hold.
    pub remote_rtcp: Option<SocketAddr>,
    /// Whether RTP and RTCP share one port (RFC 5761).
    pub rtcp_mux: bool,
    /// The payload types in use, the same numbers on both legs.
    pub codecs: Codecs,
    /// Our direction: whether we send and receive on this leg.
    pub direction: Direction,
    /// Our `o=` line as last sent; the next description we send on this
    /// dialog carries the same id and a higher version (RFC 3264 §8).
    pub origin: Origin,
}

impl Negotiated {
    /// Whether the peer protects with the same key (and suite) in both
    /// negotiations (compared in constant time).
    pub fn same_inbound_key(&self, other: &Negotiated) -> bool {
        super::crypto::same_key(&self.inbound, &other.inbound)
    }

    /// The payload type numbers in use.
    pub fn payload_types(&self) -> Vec<u8> {
        self.codecs.payload_types()
    }

    /// The relay's leg configuration: `rtcp` is ignored with rtcp-mux.
    pub fn into_leg_config(self, rtp: SocketId, rtcp: Option<SocketId>) -> LegConfig {
        LegConfig {
            rtp,
            rtcp: if self.rtcp_mux { None } else { rtcp },
            remote_rtp: self.remote_rtp,
            remote_rtcp: if self.rtcp_mux {
                None
            } else {
                self.remote_rtcp
            },
            inbound: self.inbound,
            outbound: self.outbound,
        }
    }
}

/// The peer's media endpoint as its description states it.
#[derive(Debug)]
pub(super) struct Remote {
    pub rtp: Option<SocketAddr>,
    /// RTCP without rtcp-mux; an error only matters if mux is not agreed.
    pub rtcp: Result<Option<SocketAddr>, Inconsistency>,
    /// The direction the peer asked for, legacy hold folded in.
    pub direction: Direction,
}

/// Reads the peer's endpoint and direction for media section `m` of `sd`.
///
/// RFC 3264 §8.4: `c=0.0.0.0` (or `::`) is the legacy way to hold; the peer
/// then does not want to receive, so its direction loses "receive".
pub(super) fn remote_of(sd: &SessionDescription, m: &Media) -> Result<Remote, Inconsistency> {
    if m.port_count.is_some_and(|n| n != 1) {
        return Err(Inconsistency::PortCount);
    }
    let conn = m
        .connection
        .as_ref()
        .or(sd.connection.as_ref())
        .ok_or(Inconsistency::MissingConnection)?;
    let ip = conn.ip().ok_or(Inconsistency::BadAddress)?;
    let hold = ip.is_unspecified();
    let mut direction = m
        .direction()
        .or(sd.direction())
        .unwrap_or(Direction::SendRecv);
    if hold {
        direction = direction.intersect(Direction::SendOnly);
    }
    let rtcp = match m.rtcp() {
        Some(Rtcp { port: 0, .. }) => Err(Inconsistency::BadRtcpPort),
        Some(Rtcp {
            port,
            connection: Some(c),
        }) => match c.ip() {
            Some(ip) => Ok((!ip.is_unspecified() && !hold).then(|| SocketAddr::new(ip, *port))),
            None => Err(Inconsistency::BadAddress),
        },
        Some(Rtcp {
            port,
            connection: None,
        }) => Ok((!hold).then(|| SocketAddr::new(ip, *port))),
        // RFC 3550 §11: the next port up.
        None => match m.port.checked_add(1) {
            Some(p) => Ok((!hold).then(|| SocketAddr::new(ip, p))),
            None => Err(Inconsistency::BadRtcpPort),
        },
    };
    Ok(Remote {
        rtp: (!hold).then(|| SocketAddr::new(ip, m.port)),
        rtcp,
        direction,
    })
}

/// A new `o=` for our descriptions: `-` as user name (nothing to leak), a
/// random session id.
pub(super) fn new_origin(ip: IpAddr) -> Result<Origin, Reject> {
    Ok(Origin {
        username: "-".to_owned(),
        session_id: random_id()?,
        session_version: 1,
        address: Connection::from_ip(ip),
    })
}

/// The `o=` of the next description on a dialog (RFC 3264 §8: same id,
/// version one higher).
pub(super) fn next_origin(previous: &Origin, ip: IpAddr) -> Origin {
    Origin {
        username: previous.username.clone(),
        session_id: previous.session_id,
        session_version: previous.session_version.saturating_add(1),
        address: Connection::from_ip(ip),
    }
}

/// A description of ours: `s=-`, `c=` at session level, `t=0 0`.
pub(super) fn description(origin: Origin, ip: IpAddr, media: Vec<Media>) -> SessionDescription {
    SessionDescription {
        origin,
        session_name: "-".to_owned(),
        info: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(Connection::from_ip(ip)),
        bandwidths: Vec::new(),
        times: vec![Timing::unbounded()],
        time_zones: None,
        attributes: Vec::new(),
        media,
    }
}

/// Our audio section: codecs, RTCP, direction and crypto lines.
pub(super) struct AudioSection<'a> {
    pub proto: Proto,
    pub local: &'a LocalMedia,
    pub codecs: &'a Codecs,
    pub direction: Direction,
    /// Whether to write `a=rtcp-mux` (offered, or agreed in an answer).
    pub rtcp_mux: bool,
    /// Whether to announce the separate RTCP socket (in an offer even with
    /// rtcp-mux, as the fallback of RFC 5761 §5.1.1).
    pub announce_rtcp: bool,
    pub crypto: &'a [(u32, &'a MasterKey)],
}

impl AudioSection<'_> {
    pub fn build(&self) -> Media {
        let pts = self.codecs.payload_types();
        let mut m = Media::new(
            MediaType::Audio,
            self.local.rtp.port(),
            self.proto.clone(),
            Formats::PayloadTypes(pts),
        );
        self.codecs.write_attributes(&mut m);
        if let (true, Some(rtcp)) = (self.announce_rtcp, self.local.rtcp) {
            m.attributes.push(Attribute::Rtcp(Rtcp {
                port: rtcp.port(),
                connection: (rtcp.ip() != self.local.rtp.ip())
                    .then(|| Connection::from_ip(rtcp.ip())),
            }));
        }
        if self.rtcp_mux {
            m.attributes.push(Attribute::RtcpMux);
        }
        m.attributes.push(Attribute::Direction(self.direction));
        for (tag, key) in self.crypto {
            m.attributes.push(Attribute::Crypto(Crypto::new(
                *tag,
                key.suite().name(),
                format_inline(key),
                Vec::new(),
            )));
        }
        m
    }
}
