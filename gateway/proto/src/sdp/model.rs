//! The SDP data model (RFC 8866 §5) and the attributes dialgate understands:
//! `rtpmap`/`fmtp` (RFC 8866 §6.6, §6.15), `crypto` (RFC 4568 §9.1), `rtcp`
//! (RFC 3605), `rtcp-mux` (RFC 5761), direction (RFC 8866 §6.7), `ptime` and
//! `maxptime` (RFC 8866 §6.4, §6.5). Everything else is kept raw.

use core::fmt;
use std::net::IpAddr;

use aws_lc_rs::constant_time;
use zeroize::Zeroizing;

use super::SdpError;

/// A whole session description (RFC 8866 §5). `v=0` is implied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` (§5.2).
    pub origin: Origin,
    /// `s=` (§5.3).
    pub session_name: String,
    /// `i=` (§5.4).
    pub info: Option<String>,
    /// `u=` (§5.5).
    pub uri: Option<String>,
    /// `e=` lines (§5.6).
    pub emails: Vec<String>,
    /// `p=` lines (§5.6).
    pub phones: Vec<String>,
    /// Session-level `c=` (§5.7); each media may override it.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines (§5.8).
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=` lines (§5.9, §5.10); at least one.
    pub times: Vec<Timing>,
    /// `z=` (§5.11), raw.
    pub time_zones: Option<String>,
    /// Session-level attributes (§5.13), in order.
    pub attributes: Vec<Attribute>,
    /// Media sections (§5.14), in order.
    pub media: Vec<Media>,
}

impl SessionDescription {
    /// Parses an SDP body; see [`super::SdpError`] for what is refused.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        super::parse::parse(body)
    }

    /// Session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`
/// (RFC 8866 §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Username, `-` when there is none.
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version; a changed description carries a higher one
    /// (RFC 3264 §8).
    pub session_version: u64,
    /// Address of the originating host.
    pub address: Connection,
}

/// Address type of `c=`, `o=` and `a=rtcp` (the network type is always
/// `IN`; others are refused by the parser).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddrType {
    /// The SDP token.
    pub fn name(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }
}

/// A connection address, `IN <addrtype> <address>` (RFC 8866 §5.7). The
/// address is kept as written (it may be a name or carry a multicast
/// TTL); [`Connection::ip`] is its unicast IP literal, if it is one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Connection {
    /// `IP4` or `IP6`.
    pub addr_type: AddrType,
    /// The address as written.
    pub address: String,
}

impl Connection {
    /// The connection for an IP address.
    pub fn from_ip(ip: IpAddr) -> Connection {
        Connection {
            addr_type: if ip.is_ipv4() {
                AddrType::Ip4
            } else {
                AddrType::Ip6
            },
            address: ip.to_string(),
        }
    }

    /// The address as an IP literal of the declared type, `None` for a host
    /// name, a multicast address or a mismatched type.
    pub fn ip(&self) -> Option<IpAddr> {
        let ip: IpAddr = self.address.parse().ok()?;
        let type_ok = match self.addr_type {
            AddrType::Ip4 => ip.is_ipv4(),
            AddrType::Ip6 => ip.is_ipv6(),
        };
        (type_ok && !ip.is_multicast()).then_some(ip)
    }
}

/// `b=<bwtype>:<bandwidth>` (RFC 8866 §5.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bandwidth {
    /// `CT`, `AS`, `TIAS`, ...
    pub bwtype: String,
    /// Kilobits per second (bits for `TIAS`).
    pub bandwidth: u64,
}

/// `t=<start> <stop>` and its `r=` lines (RFC 8866 §5.9, §5.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Start time (NTP seconds), 0 for unbounded.
    pub start: u64,
    /// Stop time (NTP seconds), 0 for unbounded.
    pub stop: u64,
    /// `r=` lines, raw.
    pub repeats: Vec<String>,
}

impl Timing {
    /// `t=0 0`, the timing of every SIP session.
    pub fn unbounded() -> Timing {
        Timing {
            start: 0,
            stop: 0,
            repeats: Vec::new(),
        }
    }
}

/// A media section (RFC 8866 §5.14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// Media type.
    pub kind: MediaType,
    /// Transport port; 0 rejects or disables the stream (RFC 3264 §5.1).
    pub port: u16,
    /// Number of ports (`<port>/<number>`), if given.
    pub port_count: Option<u16>,
    /// Transport protocol.
    pub proto: Proto,
    /// Formats: payload types for RTP profiles.
    pub formats: Formats,
    /// `i=`.
    pub info: Option<String>,
    /// Media-level `c=`, overriding the session's.
    pub connection: Option<Connection>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// Media-level attributes, in order.
    pub attributes: Vec<Attribute>,
}

impl Media {
    /// A media section without `i=`, `c=`, `b=` or attributes.
    pub fn new(kind: MediaType, port: u16, proto: Proto, formats: Formats) -> Media {
        Media {
            kind,
            port,
            port_count: None,
            proto,
            formats,
            info: None,
            connection: None,
            bandwidths: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// The payload types, for an RTP profile; empty otherwise.
    pub fn payload_types(&self) -> &[u8] {
        match &self.formats {
            Formats::PayloadTypes(pts) => pts,
            Formats::Tokens(_) => &[],
        }
    }

    /// The `a=rtpmap` for payload type `pt`.
    pub fn rtpmap(&self, pt: u8) -> Option<&Rtpmap> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Rtpmap(r) if r.payload_type == pt => Some(r),
            _ => None,
        })
    }

    /// The `a=fmtp` parameters for payload type `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Fmtp(f) if f.payload_type == pt => Some(f.params.as_str()),
            _ => None,
        })
    }

    /// The `a=crypto` lines, in the order written (the offerer's preference,
    /// RFC 4568 §7.1.1).
    pub fn crypto(&self) -> impl Iterator<Item = &Crypto> {
        self.attributes.iter().filter_map(|a| match a {
            Attribute::Crypto(c) => Some(c),
            _ => None,
        })
    }

    /// The `a=rtcp` attribute (RFC 3605).
    pub fn rtcp(&self) -> Option<&Rtcp> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Rtcp(r) => Some(r),
            _ => None,
        })
    }

    /// Whether `a=rtcp-mux` is present (RFC 5761 §5.1.1).
    pub fn rtcp_mux(&self) -> bool {
        self.attributes
            .iter()
            .any(|a| matches!(a, Attribute::RtcpMux))
    }

    /// The media-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// `a=ptime`, milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Ptime(p) => Some(*p),
            _ => None,
        })
    }

    /// `a=maxptime`, milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Maxptime(p) => Some(*p),
            _ => None,
        })
    }
}

fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    attributes.iter().find_map(|a| match a {
        Attribute::Direction(d) => Some(*d),
        _ => None,
    })
}

/// The media type of an `m=` line (RFC 8866 §5.14).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaType {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `text`.
    Text,
    /// `application`.
    Application,
    /// `message`.
    Message,
    /// `image`.
    Image,
    /// Anything else, as written.
    Other(String),
}

impl MediaType {
    /// Parses the token.
    pub fn from_token(s: &str) -> MediaType {
        match s {
            "audio" => MediaType::Audio,
            "video" => MediaType::Video,
            "text" => MediaType::Text,
            "application" => MediaType::Application,
            "message" => MediaType::Message,
            "image" => MediaType::Image,
            other => MediaType::Other(other.to_owned()),
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        match self {
            MediaType::Audio => "audio",
            MediaType::Video => "video",
            MediaType::Text => "text",
            MediaType::Application => "application",
            MediaType::Message => "message",
            MediaType::Image => "image",
            MediaType::Other(s) => s,
        }
    }
}

/// The transport protocol of an `m=` line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Proto {
    /// `RTP/AVP`: plain RTP (RFC 3551). Never accepted.
    RtpAvp,
    /// `RTP/SAVP`: SRTP (RFC 3711 §12).
    RtpSavp,
    /// `RTP/AVPF`: plain RTP with feedback (RFC 4585). Never accepted.
    RtpAvpf,
    /// `RTP/SAVPF`: SRTP with feedback (RFC 5124).
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVP`: DTLS-SRTP (RFC 5764 §8).
    UdpTlsRtpSavp,
    /// `UDP/TLS/RTP/SAVPF`: DTLS-SRTP with feedback (RFC 5764 §8).
    UdpTlsRtpSavpf,
    /// Anything else, as written.
    Other(String),
}

impl Proto {
    /// Parses the token (case-sensitive, as registered).
    pub fn from_token(s: &str) -> Proto {
        match s {
            "RTP/AVP" => Proto::RtpAvp,
            "RTP/SAVP" => Proto::RtpSavp,
            "RTP/AVPF" => Proto::RtpAvpf,
            "RTP/SAVPF" => Proto::RtpSavpf,
            "UDP/TLS/RTP/SAVP" => Proto::UdpTlsRtpSavp,
            "UDP/TLS/RTP/SAVPF" => Proto::UdpTlsRtpSavpf,
            other => Proto::Other(other.to_owned()),
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        match self {
            Proto::RtpAvp => "RTP/AVP",
            Proto::RtpSavp => "RTP/SAVP",
            Proto::RtpAvpf => "RTP/AVPF",
            Proto::RtpSavpf => "RTP/SAVPF",
            Proto::UdpTlsRtpSavp => "UDP/TLS/RTP/SAVP",
            Proto::UdpTlsRtpSavpf => "UDP/TLS/RTP/SAVPF",
            Proto::Other(s) => s,
        }
    }

    /// Whether the formats are RTP payload types (any profile with an `RTP`
    /// component, e.g. `TCP/RTP/AVP`).
    pub fn is_rtp(&self) -> bool {
        match self {
            Proto::Other(s) => s.split('/').any(|p| p == "RTP"),
            _ => true,
        }
    }
}

/// The formats of an `m=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Formats {
    /// RTP payload types (0..=127), for RTP profiles.
    PayloadTypes(Vec<u8>),
    /// Format tokens of other protocols, as written.
    Tokens(Vec<String>),
}

/// One attribute line, `a=<name>[:<value>]` (RFC 8866 §5.13).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute {
    /// `a=rtpmap` (RFC 8866 §6.6).
    Rtpmap(Rtpmap),
    /// `a=fmtp` (RFC 8866 §6.15).
    Fmtp(Fmtp),
    /// `a=crypto` (RFC 4568 §9.1).
    Crypto(Crypto),
    /// `a=rtcp` (RFC 3605 §2.1).
    Rtcp(Rtcp),
    /// `a=rtcp-mux` (RFC 5761 §5.1.1).
    RtcpMux,
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly`, `a=inactive` (RFC 8866 §6.7).
    Direction(Direction),
    /// `a=ptime`, whole milliseconds (RFC 8866 §6.4).
    Ptime(u32),
    /// `a=maxptime`, whole milliseconds (RFC 8866 §6.5).
    Maxptime(u32),
    /// Any other attribute, kept as written.
    Other(RawAttribute),
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding
/// parameters>]` (RFC 8866 §6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rtpmap {
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters (channels, for audio), as written.
    pub params: Option<String>,
}

/// `a=fmtp:<payload type> <parameters>` (RFC 8866 §6.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Format parameters, as written.
    pub params: String,
}

/// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605 §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the media's connection.
    pub connection: Option<Connection>,
}

/// Media direction (RFC 8866 §6.7, RFC 3264 §5.1), from the point of view
/// of whoever wrote the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sends and receives (the default).
    SendRecv,
    /// Only sends (e.g. the writer puts the other side on hold).
    SendOnly,
    /// Only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an attribute name.
    pub fn from_name(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// Whether this side sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The direction seen from the other side (RFC 3264 §6.1): the answer
    /// to `sendonly` is `recvonly`, and so on.
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both allow.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }
}

/// `a=crypto:<tag> <crypto-suite> <key-params> [<session-param>...]`
/// (RFC 4568 §9.1). The key parameters are secret: zeroized on drop,
/// absent from `Debug`, compared in constant time.
#[derive(Clone)]
pub struct Crypto {
    /// Tag, 1 to 9 digits, unique within the media section.
    pub tag: u32,
    /// Crypto-suite name as written (see [`crate::srtp::Suite::from_name`]).
    pub suite: String,
    key_params: Zeroizing<String>,
    /// Session parameters, as written (RFC 4568 §6.3).
    pub session_params: Vec<String>,
}

impl Crypto {
    /// A crypto attribute; `key_params` is e.g. the output of
    /// [`crate::srtp::format_inline`].
    pub fn new(
        tag: u32,
        suite: impl Into<String>,
        key_params: Zeroizing<String>,
        session_params: Vec<String>,
    ) -> Crypto {
        Crypto {
            tag,
            suite: suite.into(),
            key_params,
            session_params,
        }
    }

    /// The key parameters (`inline:...`, `;`-separated if several). Secret:
    /// do not log.
    pub fn key_params(&self) -> &str {
        &self.key_params
    }
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypto")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("session_params", &self.session_params)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Crypto {
    fn eq(&self, other: &Crypto) -> bool {
        let keys_equal = constant_time::verify_slices_are_equal(
            self.key_params.as_bytes(),
            other.key_params.as_bytes(),
        )
        .is_ok();
        keys_equal
            && self.tag == other.tag
            && self.suite == other.suite
            && self.session_params == other.session_params
    }
}

impl Eq for Crypto {}

/// Attributes whose values may carry keying material: their values are
/// left out of `Debug` and redacted output.
pub(crate) const SECRET_ATTRIBUTES: &[&str] = &["key-mgmt", "crypto"];

/// An attribute dialgate does not interpret, kept as written.
#[derive(Clone, PartialEq, Eq)]
pub struct RawAttribute {
    /// The name (before `:`).
    pub name: String,
    /// The value (after `:`), if there is one.
    pub value: Option<String>,
}

impl RawAttribute {
    pub(crate) fn is_secret(&self) -> bool {
        SECRET_ATTRIBUTES.contains(&self.name.as_str())
    }
}

impl fmt::Debug for RawAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RawAttribute");
        d.field("name", &self.name);
        if self.is_secret() {
            d.finish_non_exhaustive()
        } else {
            d.field("value", &self.value).finish()
        }
    }
}
