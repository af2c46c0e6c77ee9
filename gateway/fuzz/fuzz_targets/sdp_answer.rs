//! Arbitrary bytes as the bridge's SDP answer to a real offer of ours
//! (`sdp::offer` with the phone's relayed codecs under the trunk and
//! phone policies): `SessionDescription::parse` then
//! `PendingOffer::accept`. Asserts: no panic; parse/print round trip; a
//! refusal maps to 488 and is never our bug; an accepted answer uses a
//! suite the policy allows, a key that is not ours, and only payload types
//! the offer carried; `CheckedOffer::restrict_codecs` with what the bridge
//! accepted keeps the phone's answer possible or refuses with 488.
#![no_main]

use std::sync::OnceLock;

use dialgate_proto::sdp::{
    check_offer, offer, LocalMedia, PendingOffer, Policy, Reject, SessionDescription,
};
use dialgate_proto::srtp::MasterKey;
use libfuzzer_sys::fuzz_target;

const PHONE_OFFER: &[u8] =
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 4000 RTP/SAVP 0 8 9 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e\r\n\
a=rtcp-mux\r\n";

struct Offered {
    policy: Policy,
    pending: PendingOffer,
    offered_pts: Vec<u8>,
}

/// Our bridge offers: one under the trunk policy, one under the phone
/// policy (every suite), the second without rtcp-mux.
fn offers() -> &'static [Offered] {
    static OFFERS: OnceLock<Vec<Offered>> = OnceLock::new();
    OFFERS.get_or_init(|| {
        let phone = SessionDescription::parse(PHONE_OFFER).unwrap();
        let checked = check_offer(&phone, &Policy::phone_default()).unwrap();
        let mut out = Vec::new();
        for (policy, mux) in [
            (Policy::trunk_default(), true),
            (Policy::phone_default(), false),
        ] {
            let local = LocalMedia {
                rtcp_mux: mux,
                ..LocalMedia::new("192.0.2.1:30002".parse().unwrap())
            };
            let (o, pending) = offer(checked.codecs(), &policy, &local).unwrap();
            out.push(Offered {
                offered_pts: o.media[0].payload_types().to_vec(),
                policy,
                pending,
            });
        }
        out
    })
}

fn same(a: &MasterKey, b: &MasterKey) -> bool {
    a.suite() == b.suite() && a.key_and_salt() == b.key_and_salt()
}

fn refused(e: Reject) {
    assert_ne!(e, Reject::Internal, "our bug");
    assert_eq!(e.status(), 488);
}

fuzz_target!(|data: &[u8]| {
    let Ok(sd) = SessionDescription::parse(data) else {
        return;
    };
    let printed = sd.print();
    assert_eq!(
        SessionDescription::parse(printed.as_bytes()).as_ref(),
        Ok(&sd)
    );
    for o in offers() {
        let n = match o.pending.accept(&sd) {
            Ok(n) => n,
            Err(e) => {
                refused(e);
                continue;
            }
        };
        assert!(o.policy.allows(n.suite));
        assert!(o.pending.suites().contains(&n.suite));
        assert!(!same(&n.inbound, &n.outbound), "our key echoed back");
        assert!(n
            .payload_types()
            .iter()
            .all(|pt| o.offered_pts.contains(pt)));
        // The phone is answered with what the bridge accepted.
        let phone = SessionDescription::parse(PHONE_OFFER).unwrap();
        let mut checked = check_offer(&phone, &Policy::phone_default()).unwrap();
        match checked.restrict_codecs(&n.codecs) {
            Ok(()) => match checked.answer(&LocalMedia::new("192.0.2.1:30000".parse().unwrap())) {
                Ok((reply, pn)) => {
                    assert!(pn
                        .payload_types()
                        .iter()
                        .all(|pt| n.payload_types().contains(pt)));
                    assert!(SessionDescription::parse(reply.print().as_bytes()).is_ok());
                }
                Err(e) => refused(e),
            },
            Err(e) => refused(e),
        }
    }
});
