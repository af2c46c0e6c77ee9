//! Answering an incoming offer (RFC 3264 §6, RFC 4568 §7.1.2).

use std::net::SocketAddr;

use crate::srtp::{MasterKey, Suite};

use super::codec::Codecs;
use super::crypto::{fresh_key, same_key, select, Chosen};
use super::model::{Direction, Formats, Media, MediaType, Origin, Proto, SessionDescription};
use super::negotiated::{
    description, new_origin, next_origin, remote_of, AudioSection, LocalMedia, Negotiated, Remote,
};
use super::policy::{Inconsistency, Policy, Reject};

/// Checks an offer and answers it with a fresh key: [`check_offer`] then
/// [`CheckedOffer::answer`].
pub fn answer(
    offer: &SessionDescription,
    policy: &Policy,
    local: &LocalMedia,
) -> Result<(SessionDescription, Negotiated), Reject> {
    check_offer(offer, policy)?.answer(local)
}

/// Runs every check on an incoming offer and picks what to accept: the
/// first audio stream that passes, and in it the first `a=crypto` line (in
/// the offerer's order) with a suite `policy` allows and a usable key.
///
/// Other streams are refused in the answer (port 0, RFC 3264 §6). When no
/// audio stream passes, the refusal is that of the first active audio
/// stream.
pub fn check_offer(offer: &SessionDescription, policy: &Policy) -> Result<CheckedOffer, Reject> {
    let mut first_failure = None;
    let mut audio = false;
    for (index, m) in offer.media.iter().enumerate() {
        if m.kind != MediaType::Audio {
            continue;
        }
        audio = true;
        if m.port == 0 {
            continue;
        }
        match check_audio(offer, m, policy) {
            Ok((chosen, codecs, remote)) => {
                return Ok(CheckedOffer {
                    index,
                    sections: offer
                        .media
                        .iter()
                        .map(|m| (m.kind.clone(), m.proto.clone(), m.formats.clone()))
                        .collect(),
                    proto: m.proto.clone(),
                    chosen,
                    codecs,
                    remote,
                    rtcp_mux_offered: m.rtcp_mux(),
                })
            }
            Err(r) => {
                first_failure.get_or_insert(r);
            }
        }
    }
    Err(match (audio, first_failure) {
        (false, _) => Inconsistency::NoAudio.into(),
        (true, None) => Inconsistency::NoActiveAudio.into(),
        (true, Some(r)) => r,
    })
}

/// The security checks first (transport, crypto), then codecs, then
/// addresses.
fn check_audio(
    sd: &SessionDescription,
    m: &Media,
    policy: &Policy,
) -> Result<(Chosen, Codecs, Remote), Reject> {
    check_proto(m)?;
    let chosen = select(m, policy)?;
    let codecs = Codecs::relayed(m);
    if !codecs.has_voice() {
        return Err(Reject::NoCommonCodec);
    }
    let remote = remote_of(sd, m)?;
    Ok((chosen, codecs, remote))
}

/// Only SDES-keyed SRTP: RTP/SAVP and RTP/SAVPF.
pub(super) fn check_proto(m: &Media) -> Result<(), Reject> {
    match m.proto {
        Proto::RtpSavp | Proto::RtpSavpf => Ok(()),
        Proto::RtpAvp | Proto::RtpAvpf if m.crypto().next().is_some() => {
            Err(Inconsistency::CryptoOnPlainRtp.into())
        }
        Proto::RtpAvp | Proto::RtpAvpf => Err(Reject::PlainRtp),
        Proto::UdpTlsRtpSavp | Proto::UdpTlsRtpSavpf => Err(Reject::DtlsNotSupported),
        _ => Err(Reject::UnsupportedTransport),
    }
}

/// An offer that passed [`check_offer`]: the proof value needed to answer.
/// Keys are absent from `Debug`.
#[derive(Debug)]
pub struct CheckedOffer {
    /// The accepted audio section.
    index: usize,
    /// Every offered section, to refuse the others in the answer.
    sections: Vec<(MediaType, Proto, Formats)>,
    proto: Proto,
    chosen: Chosen,
    codecs: Codecs,
    remote: Remote,
    rtcp_mux_offered: bool,
}

impl CheckedOffer {
    /// The suite that will be used.
    pub fn suite(&self) -> Suite {
        self.chosen.suite
    }

    /// The relayed codecs of the offer, in the offerer's order with its
    /// payload type numbers: what to offer the other leg.
    pub fn codecs(&self) -> &Codecs {
        &self.codecs
    }

    /// The offerer's direction (legacy `c=0.0.0.0` hold folded in).
    pub fn direction(&self) -> Direction {
        self.remote.direction
    }

    /// Whether the offerer holds (does not want to receive media).
    pub fn is_hold(&self) -> bool {
        !self.remote.direction.receives()
    }

    /// The offerer's RTP address (`None` on legacy hold).
    pub fn remote_rtp(&self) -> Option<SocketAddr> {
        self.remote.rtp
    }

    /// Whether the offer asks for rtcp-mux.
    pub fn rtcp_mux_offered(&self) -> bool {
        self.rtcp_mux_offered
    }

    /// Answers only with the codecs of `accepted` (what the other leg
    /// accepted) that this offer carries under the same payload type, in
    /// `accepted`'s order.
    pub fn restrict_codecs(&mut self, accepted: &Codecs) -> Result<(), Reject> {
        let r = self.codecs.restricted_to(accepted);
        if !r.has_voice() {
            return Err(Reject::NoCommonCodec);
        }
        self.codecs = r;
        Ok(())
    }

    /// Answers a new offer with a fresh key of ours.
    pub fn answer(self, local: &LocalMedia) -> Result<(SessionDescription, Negotiated), Reject> {
        let outbound = fresh_key(self.chosen.suite, &[&self.chosen.key])?;
        let origin = new_origin(local.rtp.ip())?;
        self.build(local, outbound, origin, true, true)
    }

    /// Answers an offer that updates the session `previous` (a re-INVITE:
    /// hold, resume, new address). If the offerer kept its crypto line
    /// (tag, suite and key), our key is kept too and no SRTP context
    /// changes; otherwise ours is fresh. See the module documentation.
    pub fn answer_update(
        self,
        local: &LocalMedia,
        previous: &Negotiated,
    ) -> Result<(SessionDescription, Negotiated), Reject> {
        let same_inbound =
            previous.suite == self.chosen.suite && same_key(&previous.inbound, &self.chosen.key);
        let unchanged = same_inbound && previous.crypto_tag == self.chosen.tag;
        let outbound = if unchanged {
            previous.outbound.clone()
        } else {
            fresh_key(
                self.chosen.suite,
                &[&self.chosen.key, &previous.outbound, &previous.inbound],
            )?
        };
        let origin = next_origin(&previous.origin, local.rtp.ip());
        self.build(local, outbound, origin, !same_inbound, !unchanged)
    }

    fn build(
        self,
        local: &LocalMedia,
        outbound: MasterKey,
        origin: Origin,
        new_inbound_key: bool,
        new_outbound_key: bool,
    ) -> Result<(SessionDescription, Negotiated), Reject> {
        if !self.codecs.has_voice() {
            return Err(Reject::NoCommonCodec);
        }
        let rtcp_mux = self.rtcp_mux_offered && local.rtcp_mux;
        let remote_rtcp = if rtcp_mux { None } else { self.remote.rtcp? };
        let direction = self.remote.direction.reversed().intersect(local.direction);
        let crypto = [(self.chosen.tag, &outbound)];
        let audio = AudioSection {
            proto: self.proto.clone(),
            local,
            codecs: &self.codecs,
            direction,
            rtcp_mux,
            announce_rtcp: !rtcp_mux,
            crypto: &crypto,
        }
        .build();
        let mut audio = Some(audio);
        let media = self
            .sections
            .iter()
            .enumerate()
            .map(
                |(i, (kind, proto, formats))| match audio.take_if(|_| i == self.index) {
                    Some(a) => a,
                    // RFC 3264 §6: a refused stream keeps its formats, port 0.
                    None => Media::new(kind.clone(), 0, proto.clone(), formats.clone()),
                },
            )
            .collect();
        let sd = description(origin.clone(), local.rtp.ip(), media);
        let negotiated = Negotiated {
            suite: self.chosen.suite,
            crypto_tag: self.chosen.tag,
            inbound: self.chosen.key,
            outbound,
            new_inbound_key,
            new_outbound_key,
            remote_rtp: self.remote.rtp,
            remote_rtcp,
            rtcp_mux,
            codecs: self.codecs,
            direction,
            origin,
        };
        Ok((sd, negotiated))
    }
}
