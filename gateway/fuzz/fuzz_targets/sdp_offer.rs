//! Arbitrary bytes as a phone's SDP offer: `SessionDescription::parse`,
//! then `check_offer` under the phone and trunk policies, the answer and
//! the re-INVITE answer. Asserts: no panic; whatever parses survives
//! print-then-parse unchanged; a refusal maps to 488 (500 only for our
//! own bug, which fails); an accepted offer yields a suite the policy
//! allows, a fresh key of ours (never the peer's), a voice codec, and an
//! answer that parses back with one section per offered section.
#![no_main]

use std::sync::OnceLock;

use dialgate_proto::sdp::{
    answer, check_offer, LocalMedia, Negotiated, Policy, Reject, SessionDescription,
};
use dialgate_proto::srtp::MasterKey;
use libfuzzer_sys::fuzz_target;

const BARESIP: &[u8] =
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 4000 RTP/SAVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e\r\n";

fn same(a: &MasterKey, b: &MasterKey) -> bool {
    a.suite() == b.suite() && a.key_and_salt() == b.key_and_salt()
}

fn local() -> LocalMedia {
    LocalMedia::new("192.0.2.1:30000".parse().unwrap())
}

/// A session already set up, for the re-INVITE path.
fn previous() -> &'static Negotiated {
    static PREVIOUS: OnceLock<Negotiated> = OnceLock::new();
    PREVIOUS.get_or_init(|| {
        let offer = SessionDescription::parse(BARESIP).unwrap();
        answer(&offer, &Policy::phone_default(), &local())
            .unwrap()
            .1
    })
}

fn refused(e: Reject) {
    assert_ne!(e, Reject::Internal, "our bug");
    assert_eq!(e.status(), 488);
    assert!(e
        .warning()
        .starts_with(&format!("{} dialgate \"", e.warn_code())));
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
    let _ = sd.print_redacted();
    let local = local();
    for policy in [Policy::phone_default(), Policy::trunk_default()] {
        let checked = match check_offer(&sd, &policy) {
            Ok(c) => c,
            Err(e) => {
                refused(e);
                continue;
            }
        };
        assert!(policy.allows(checked.suite()));
        let _ = (checked.direction(), checked.is_hold(), checked.remote_rtp());
        for update in [false, true] {
            // The check is pure: running it again gives the same proof.
            let again = check_offer(&sd, &policy).expect("check_offer is deterministic");
            let result = if update {
                again.answer_update(&local, previous())
            } else {
                again.answer(&local)
            };
            let (reply, n) = match result {
                Ok(r) => r,
                Err(e) => {
                    refused(e);
                    continue;
                }
            };
            assert!(policy.allows(n.suite));
            assert!(!same(&n.outbound, &n.inbound), "key echoed");
            assert!(n.codecs.has_voice());
            let back = SessionDescription::parse(reply.print().as_bytes()).unwrap();
            assert_eq!(back, reply);
            assert_eq!(back.media.len(), sd.media.len());
        }
    }
});
