//! Offering (RFC 3264 §5, RFC 4568 §7.1.1) and checking the answer
//! (RFC 3264 §7, RFC 4568 §7.1.3).

use crate::srtp::{MasterKey, Suite};

use super::answer::check_proto;
use super::codec::{Codec, Codecs};
use super::crypto::{fresh_key, key_of, same_key};
use super::model::{Direction, Media, MediaType, Origin, Proto, SessionDescription};
use super::negotiated::{
    description, new_origin, next_origin, remote_of, AudioSection, LocalMedia, Negotiated,
};
use super::policy::{Inconsistency, Policy, Reject};

/// Offers one RTP/SAVP audio stream with `codecs` and one `a=crypto` line
/// per suite `policy` allows, in its order, tags 1..n, each with a fresh
/// key.
pub fn offer(
    codecs: &Codecs,
    policy: &Policy,
    local: &LocalMedia,
) -> Result<(SessionDescription, PendingOffer), Reject> {
    let origin = new_origin(local.rtp.ip())?;
    build(codecs, fresh_keys(policy)?, local, origin, None)
}

/// Offers an update of the session `previous` (a re-INVITE: hold, resume,
/// new address). If `policy` still allows the agreed suite, the offer
/// carries only the agreed crypto line with our current key, so nothing
/// changes in SRTP unless the answerer changes its key; otherwise it is a
/// full offer with fresh keys. See the module documentation.
pub fn reoffer(
    codecs: &Codecs,
    policy: &Policy,
    local: &LocalMedia,
    previous: &Negotiated,
) -> Result<(SessionDescription, PendingOffer), Reject> {
    let origin = next_origin(&previous.origin, local.rtp.ip());
    if policy.allows(previous.suite) {
        let keys = vec![(previous.crypto_tag, previous.outbound.clone())];
        build(codecs, keys, local, origin, Some(previous))
    } else {
        let mut keys = fresh_keys(policy)?;
        for (_, k) in &mut keys {
            if same_key(k, &previous.outbound) || same_key(k, &previous.inbound) {
                *k = fresh_key(k.suite(), &[&previous.outbound, &previous.inbound])?;
            }
        }
        build(codecs, keys, local, origin, None)
    }
}

fn fresh_keys(policy: &Policy) -> Result<Vec<(u32, MasterKey)>, Reject> {
    let mut keys: Vec<(u32, MasterKey)> = Vec::with_capacity(policy.suites().len());
    for (tag, &suite) in (1u32..).zip(policy.suites()) {
        let taken: Vec<&MasterKey> = keys.iter().map(|(_, k)| k).collect();
        let key = fresh_key(suite, &taken)?;
        keys.push((tag, key));
    }
    Ok(keys)
}

fn build(
    codecs: &Codecs,
    keys: Vec<(u32, MasterKey)>,
    local: &LocalMedia,
    origin: Origin,
    previous: Option<&Negotiated>,
) -> Result<(SessionDescription, PendingOffer), Reject> {
    if !codecs.has_voice() {
        return Err(Reject::NoCommonCodec);
    }
    let crypto: Vec<(u32, &MasterKey)> = keys.iter().map(|(t, k)| (*t, k)).collect();
    let audio = AudioSection {
        proto: Proto::RtpSavp,
        local,
        codecs,
        direction: local.direction,
        rtcp_mux: local.rtcp_mux,
        announce_rtcp: true,
        crypto: &crypto,
    }
    .build();
    let sd = description(origin.clone(), local.rtp.ip(), vec![audio]);
    let pending = PendingOffer {
        keys,
        codecs: codecs.clone(),
        rtcp_mux: local.rtcp_mux,
        direction: local.direction,
        origin,
        previous_inbound: previous.map(|p| p.inbound.clone()),
        keeps_outbound: previous.is_some(),
    };
    Ok((sd, pending))
}

/// An offer we sent, waiting for its answer. Keys are absent from `Debug`.
#[derive(Debug)]
pub struct PendingOffer {
    /// Our crypto lines: tag and our key (the suite is the key's).
    keys: Vec<(u32, MasterKey)>,
    codecs: Codecs,
    rtcp_mux: bool,
    direction: Direction,
    origin: Origin,
    /// For a re-offer: the peer's key so far, to tell whether it changed.
    previous_inbound: Option<MasterKey>,
    /// For a re-offer that kept our key.
    keeps_outbound: bool,
}

impl PendingOffer {
    /// The suites offered, in order.
    pub fn suites(&self) -> Vec<Suite> {
        self.keys.iter().map(|(_, k)| k.suite()).collect()
    }

    /// Checks the answer (RFC 3264 §6, RFC 4568 §7.1.2): one audio stream,
    /// the offered transport, exactly one `a=crypto` line naming one of our
    /// tags with its suite and a key of the answerer's own, payload types we
    /// offered for the same codecs. Takes `&self` so that forked answers can
    /// each be checked.
    pub fn accept(&self, answer: &SessionDescription) -> Result<Negotiated, Reject> {
        let [m] = &answer.media[..] else {
            return Err(Inconsistency::MediaCount.into());
        };
        if m.kind != MediaType::Audio {
            return Err(Inconsistency::ProtoMismatch.into());
        }
        if m.port == 0 {
            return Err(Reject::StreamRefused);
        }
        check_proto(m)?;
        if m.proto != Proto::RtpSavp {
            return Err(Inconsistency::ProtoMismatch.into());
        }
        let mut lines = m.crypto();
        let (Some(c), None) = (lines.next(), lines.next()) else {
            return Err(match m.crypto().count() {
                0 => Reject::NoCrypto,
                _ => Inconsistency::MultipleCrypto.into(),
            });
        };
        let (tag, ours) = self
            .keys
            .iter()
            .find(|(t, _)| *t == c.tag)
            .ok_or(Reject::TagNotOffered)?;
        let suite = ours.suite();
        if Suite::from_name(&c.suite) != Ok(suite) {
            return Err(Reject::SuiteMismatch);
        }
        let inbound = key_of(c, suite)?;
        if self.keys.iter().any(|(_, k)| same_key(k, &inbound)) {
            return Err(Reject::KeyEchoed);
        }
        let codecs = self.answered_codecs(m)?;
        if m.rtcp_mux() && !self.rtcp_mux {
            return Err(Inconsistency::UnofferedRtcpMux.into());
        }
        let rtcp_mux = m.rtcp_mux();
        let remote = remote_of(answer, m)?;
        let remote_rtcp = if rtcp_mux { None } else { remote.rtcp? };
        let new_inbound_key = !self
            .previous_inbound
            .as_ref()
            .is_some_and(|p| same_key(p, &inbound));
        Ok(Negotiated {
            suite,
            crypto_tag: *tag,
            inbound,
            outbound: ours.clone(),
            new_inbound_key,
            new_outbound_key: !self.keeps_outbound,
            remote_rtp: remote.rtp,
            remote_rtcp,
            rtcp_mux,
            codecs,
            direction: self.direction.intersect(remote.direction.reversed()),
            origin: self.origin.clone(),
        })
    }

    /// The answer's payload types: each must be one we offered, for the
    /// same codec (the relay does not rewrite payload types). An answer
    /// without `rtpmap` for a type refers to ours.
    fn answered_codecs(&self, m: &Media) -> Result<Codecs, Reject> {
        let mut list: Vec<Codec> = Vec::new();
        for &pt in m.payload_types() {
            let ours = self
                .codecs
                .list
                .iter()
                .find(|c| c.payload_type == pt)
                .ok_or(Inconsistency::CodecNotOffered)?;
            let theirs = match Codec::of_media(m, pt) {
                Some(c) if c.same_as(ours) => c,
                Some(_) => return Err(Inconsistency::CodecNotOffered.into()),
                None => ours.clone(),
            };
            if !list.iter().any(|c| c.payload_type == pt) {
                list.push(theirs);
            }
        }
        let codecs = Codecs {
            list,
            ptime: m.ptime(),
            maxptime: m.maxptime(),
        };
        if !codecs.has_voice() {
            return Err(Reject::NoCommonCodec);
        }
        Ok(codecs)
    }
}
