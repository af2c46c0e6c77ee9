//! The audio codecs dialgate passes through untouched (no transcoding):
//! G.711 µ-law and A-law (RFC 3551 §4.5.14), G.722 (RFC 3551 §4.5.2), Opus
//! (RFC 7587 §7), telephone-event (RFC 4733 §7) and SCIP (RFC 9607).
//!
//! A payload type keeps its number on both legs (the relay does not
//! rewrite payload types); see the module documentation of [`super`] for
//! how lists are mapped between the legs.

use super::model::{Attribute, Fmtp, Media, Rtpmap};

/// A codec dialgate relays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecKind {
    /// PCMU/8000, static payload type 0.
    Pcmu,
    /// PCMA/8000, static payload type 8.
    Pcma,
    /// G722/8000, static payload type 9 (the RTP clock is 8000 by RFC 3551).
    G722,
    /// opus/48000/2.
    Opus,
    /// telephone-event at any clock rate (DTMF, RFC 4733).
    TelephoneEvent,
    /// scip/8000 (RFC 9607), secure voice carried opaquely.
    Scip,
}

impl CodecKind {
    /// Recognises a codec from its `rtpmap` fields; `None` for a codec
    /// dialgate does not relay.
    pub fn classify(encoding: &str, clock_rate: u32, params: Option<&str>) -> Option<CodecKind> {
        let mono = matches!(params, None | Some("1"));
        let e = encoding.to_ascii_lowercase();
        Some(match (e.as_str(), clock_rate) {
            ("pcmu", 8000) if mono => CodecKind::Pcmu,
            ("pcma", 8000) if mono => CodecKind::Pcma,
            ("g722", 8000) if mono => CodecKind::G722,
            // RFC 7587 §7: always "opus/48000/2", whatever is actually sent.
            ("opus", 48000) if params == Some("2") => CodecKind::Opus,
            ("telephone-event", _) if mono => CodecKind::TelephoneEvent,
            ("scip", 8000) if mono => CodecKind::Scip,
            _ => return None,
        })
    }

    /// Whether this carries a voice (everything but telephone-event): a call
    /// needs at least one.
    pub fn is_voice(self) -> bool {
        !matches!(self, CodecKind::TelephoneEvent)
    }
}

/// One payload type of a media section: its `rtpmap` (written or, for the
/// static types 0, 8 and 9, implied) and its `fmtp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    /// Payload type number, the same on both legs.
    pub payload_type: u8,
    /// Encoding name as the peer wrote it.
    pub encoding: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Encoding parameters (channels).
    pub params: Option<String>,
    /// Format parameters, passed through as written.
    pub fmtp: Option<String>,
}

impl Codec {
    /// A codec without format parameters.
    pub fn new(payload_type: u8, encoding: &str, clock_rate: u32, params: Option<&str>) -> Codec {
        Codec {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            params: params.map(str::to_owned),
            fmtp: None,
        }
    }

    /// The same codec with format parameters.
    pub fn with_fmtp(mut self, fmtp: &str) -> Codec {
        self.fmtp = Some(fmtp.to_owned());
        self
    }

    /// Which relayed codec this is, if any.
    pub fn kind(&self) -> Option<CodecKind> {
        CodecKind::classify(&self.encoding, self.clock_rate, self.params.as_deref())
    }

    /// Same payload type number for the same codec (name case-insensitive,
    /// one channel whether written or not); format parameters may differ.
    pub fn same_as(&self, other: &Codec) -> bool {
        let channels = |c: &Codec| c.params.clone().unwrap_or_else(|| "1".to_owned());
        self.payload_type == other.payload_type
            && self.encoding.eq_ignore_ascii_case(&other.encoding)
            && self.clock_rate == other.clock_rate
            && channels(self) == channels(other)
    }

    /// The codec a media section lists under `pt`: its `rtpmap`, or the
    /// RFC 3551 static assignment for 0, 8 and 9.
    pub fn of_media(m: &Media, pt: u8) -> Option<Codec> {
        let mut c = match m.rtpmap(pt) {
            Some(r) => Codec::new(pt, &r.encoding, r.clock_rate, r.params.as_deref()),
            None => match pt {
                0 => Codec::new(0, "PCMU", 8000, None),
                8 => Codec::new(8, "PCMA", 8000, None),
                9 => Codec::new(9, "G722", 8000, None),
                _ => return None,
            },
        };
        c.fmtp = m.fmtp(pt).map(str::to_owned);
        Some(c)
    }
}

/// The codec list of an audio stream and its packetisation times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Codecs {
    /// Payload types in preference order.
    pub list: Vec<Codec>,
    /// `a=ptime`.
    pub ptime: Option<u32>,
    /// `a=maxptime`.
    pub maxptime: Option<u32>,
}

impl Codecs {
    /// A list without packetisation times.
    pub fn new(list: Vec<Codec>) -> Codecs {
        Codecs {
            list,
            ptime: None,
            maxptime: None,
        }
    }

    /// The relayed codecs of a media section, in its order; a payload type
    /// listed twice counts once.
    pub fn relayed(m: &Media) -> Codecs {
        let mut list: Vec<Codec> = Vec::new();
        for &pt in m.payload_types() {
            if list.iter().any(|c| c.payload_type == pt) {
                continue;
            }
            if let Some(c) = Codec::of_media(m, pt).filter(|c| c.kind().is_some()) {
                list.push(c);
            }
        }
        Codecs {
            list,
            ptime: m.ptime(),
            maxptime: m.maxptime(),
        }
    }

    /// The codecs, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Codec> {
        self.list.iter()
    }

    /// The payload type numbers, in order.
    pub fn payload_types(&self) -> Vec<u8> {
        self.list.iter().map(|c| c.payload_type).collect()
    }

    /// Whether at least one codec carries voice.
    pub fn has_voice(&self) -> bool {
        self.list
            .iter()
            .any(|c| c.kind().is_some_and(CodecKind::is_voice))
    }

    /// The codecs of `accepted` that are also in `self` (same payload type,
    /// same codec), in `accepted`'s order and with its format parameters
    /// and packetisation times: how the phone's answer follows the bridge's.
    pub fn restricted_to(&self, accepted: &Codecs) -> Codecs {
        Codecs {
            list: accepted
                .list
                .iter()
                .filter(|a| self.list.iter().any(|c| c.same_as(a)))
                .cloned()
                .collect(),
            ptime: accepted.ptime,
            maxptime: accepted.maxptime,
        }
    }

    /// Appends `rtpmap`, `fmtp`, `ptime` and `maxptime` attributes for this
    /// list to `m` (an `rtpmap` even for static types, which RFC 8866 §6.6
    /// allows and which spares the peer a table lookup).
    pub(super) fn write_attributes(&self, m: &mut Media) {
        for c in &self.list {
            m.attributes.push(Attribute::Rtpmap(Rtpmap {
                payload_type: c.payload_type,
                encoding: c.encoding.clone(),
                clock_rate: c.clock_rate,
                params: c.params.clone(),
            }));
            if let Some(f) = &c.fmtp {
                m.attributes.push(Attribute::Fmtp(Fmtp {
                    payload_type: c.payload_type,
                    params: f.clone(),
                }));
            }
        }
        if let Some(p) = self.ptime {
            m.attributes.push(Attribute::Ptime(p));
        }
        if let Some(p) = self.maxptime {
            m.attributes.push(Attribute::Maxptime(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(
            CodecKind::classify("PCMU", 8000, None),
            Some(CodecKind::Pcmu)
        );
        assert_eq!(
            CodecKind::classify("pcma", 8000, Some("1")),
            Some(CodecKind::Pcma)
        );
        assert_eq!(
            CodecKind::classify("opus", 48000, Some("2")),
            Some(CodecKind::Opus)
        );
        assert_eq!(CodecKind::classify("opus", 48000, None), None);
        assert_eq!(
            CodecKind::classify("telephone-event", 48000, None),
            Some(CodecKind::TelephoneEvent)
        );
        assert_eq!(
            CodecKind::classify("scip", 8000, None),
            Some(CodecKind::Scip)
        );
        assert_eq!(CodecKind::classify("G729", 8000, None), None);
        assert_eq!(CodecKind::classify("PCMU", 16000, None), None);
        assert_eq!(CodecKind::classify("PCMU", 8000, Some("2")), None);
        assert!(!CodecKind::TelephoneEvent.is_voice());
        assert!(CodecKind::Scip.is_voice());
    }

    #[test]
    fn restriction_follows_the_accepted_list() {
        let offered = Codecs::new(vec![
            Codec::new(96, "opus", 48000, Some("2")).with_fmtp("useinbandfec=1"),
            Codec::new(0, "PCMU", 8000, None),
            Codec::new(101, "telephone-event", 8000, None).with_fmtp("0-16"),
        ]);
        let mut accepted = Codecs::new(vec![
            Codec::new(0, "pcmu", 8000, Some("1")),
            Codec::new(101, "telephone-event", 8000, None).with_fmtp("0-15"),
            // Not offered under this number: dropped.
            Codec::new(97, "opus", 48000, Some("2")),
        ]);
        accepted.ptime = Some(20);
        let r = offered.restricted_to(&accepted);
        assert_eq!(r.payload_types(), vec![0, 101]);
        assert_eq!(r.list[1].fmtp.as_deref(), Some("0-15"));
        assert_eq!(r.ptime, Some(20));
        assert!(r.has_voice());
        let dtmf_only = Codecs::new(vec![Codec::new(101, "telephone-event", 8000, None)]);
        assert!(!dtmf_only.has_voice());
    }
}
