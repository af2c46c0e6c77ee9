//! Re-INVITEs: hold and resume both ways, key re-use when the peer keeps
//! its key, fresh keys when it changes.

use super::fixtures::*;
use super::{addr, key_in, same, sdp};
use crate::sdp::*;
use crate::srtp::Suite;

fn phone_local() -> LocalMedia {
    LocalMedia::new(addr("192.0.2.1:30000"))
}

/// The first negotiation with baresip.
fn first() -> Negotiated {
    answer(&sdp(BARESIP), &Policy::phone_default(), &phone_local())
        .unwrap()
        .1
}

fn reanswer(text: &str, previous: &Negotiated) -> (SessionDescription, Negotiated) {
    check_offer(&sdp(text), &Policy::phone_default())
        .unwrap()
        .answer_update(&phone_local(), previous)
        .unwrap()
}

#[test]
fn hold_with_the_same_key_keeps_every_key() {
    let before = first();
    let hold = BARESIP
        .replace("a=sendrecv", "a=sendonly")
        .replace("1203938455", "1203938456");
    let checked = check_offer(&sdp(&hold), &Policy::phone_default()).unwrap();
    assert!(checked.is_hold());
    assert_eq!(checked.direction(), Direction::SendOnly);
    let (a, after) = reanswer(&hold, &before);
    assert_eq!(a.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(after.direction, Direction::RecvOnly);
    assert!(!after.new_inbound_key && !after.new_outbound_key);
    assert!(same(&after.outbound, &before.outbound));
    assert!(same(&key_in(&a, 2), &before.outbound));
    // Same session id, next version (RFC 3264 §8).
    assert_eq!(a.origin.session_id, before.origin.session_id);
    assert_eq!(a.origin.session_version, before.origin.session_version + 1);
    assert_eq!(after.origin, a.origin);

    // Resume, still the same key: sendrecv again, nothing re-keyed.
    let (a, resumed) = reanswer(BARESIP, &after);
    assert_eq!(a.media[0].direction(), Some(Direction::SendRecv));
    assert!(!resumed.new_inbound_key && !resumed.new_outbound_key);
    assert!(same(&resumed.outbound, &before.outbound));
    assert_eq!(a.origin.session_version, before.origin.session_version + 2);
}

#[test]
fn legacy_hold_with_zero_address_is_recognised() {
    let before = first();
    let hold = BARESIP.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
    let checked = check_offer(&sdp(&hold), &Policy::phone_default()).unwrap();
    assert!(checked.is_hold());
    assert_eq!(checked.remote_rtp(), None);
    let (a, after) = reanswer(&hold, &before);
    assert_eq!(a.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!((after.remote_rtp, after.remote_rtcp), (None, None));
    assert!(!after.new_outbound_key);
    // recvonly + 0.0.0.0: nobody sends.
    let both = hold.replace("a=sendrecv", "a=recvonly");
    let (a, _) = reanswer(&both, &before);
    assert_eq!(a.media[0].direction(), Some(Direction::Inactive));
    // An inactive hold, and a session-level direction.
    let inactive = BARESIP
        .replace("a=sendrecv\n", "")
        .replace("t=0 0\n", "t=0 0\na=inactive\n");
    let (a, n) = reanswer(&inactive, &before);
    assert_eq!(a.media[0].direction(), Some(Direction::Inactive));
    assert_eq!(n.direction, Direction::Inactive);
}

#[test]
fn a_new_key_or_suite_from_the_peer_gets_a_fresh_key_of_ours() {
    let before = first();
    let rekey = BARESIP.replace(CM128_A, CM128_D);
    let (a, after) = reanswer(&rekey, &before);
    assert!(after.new_inbound_key && after.new_outbound_key);
    assert!(!same(&after.outbound, &before.outbound));
    assert!(!same(&after.outbound, &after.inbound));
    assert!(same(&key_in(&a, 2), &after.outbound));
    // Same key under another tag: our key is renewed, the peer's is not.
    let retag = BARESIP.replace("a=crypto:2 ", "a=crypto:6 ");
    let (_, after) = reanswer(&retag, &before);
    assert!(!after.new_inbound_key && after.new_outbound_key);
    // Another suite.
    let gcm = BARESIP.replace(
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32",
    );
    let (_, after) = reanswer(&gcm, &before);
    assert_eq!(after.suite, Suite::AeadAes128Gcm);
    assert!(after.new_inbound_key && after.new_outbound_key);
}

#[test]
fn we_hold_and_resume_the_bridge_keeping_our_key() {
    let codecs = Codecs::new(vec![
        Codec::new(0, "PCMU", 8000, None),
        Codec::new(100, "telephone-event", 8000, None),
    ]);
    let trunk = Policy::trunk_default();
    let local = LocalMedia::new(addr("192.0.2.1:30002"));
    let (o, pending) = offer(&codecs, &trunk, &local).unwrap();
    let before = pending
        .accept(&sdp(&CISCO_ANSWER.replace("{tag}", "1")))
        .unwrap();

    // Hold: sendonly, our key and tag unchanged, one crypto line.
    let hold_local = LocalMedia {
        direction: Direction::SendOnly,
        ..local
    };
    let (ro, pending) = reoffer(&codecs, &trunk, &hold_local, &before).unwrap();
    let m = &ro.media[0];
    assert_eq!(m.direction(), Some(Direction::SendOnly));
    assert_eq!(m.crypto().count(), 1);
    assert!(same(&key_in(&ro, 1), &key_in(&o, 1)));
    assert_eq!(ro.origin.session_id, o.origin.session_id);
    assert_eq!(ro.origin.session_version, o.origin.session_version + 1);
    // The CUBE answers recvonly with its same key.
    let held = CISCO_ANSWER
        .replace("{tag}", "1")
        .replace("a=ptime:20", "a=ptime:20\na=recvonly");
    let after = pending.accept(&sdp(&held)).unwrap();
    assert_eq!(after.direction, Direction::SendOnly);
    assert!(!after.new_inbound_key && !after.new_outbound_key);
    // If it answers with a new key, only the inbound context changes.
    let after = pending
        .accept(&sdp(&held.replace(CM128_B, CM128_D)))
        .unwrap();
    assert!(after.new_inbound_key && !after.new_outbound_key);

    // A policy that no longer allows the agreed suite: a full fresh offer.
    let gcm = Policy::new(&[Suite::AeadAes128Gcm]).unwrap();
    let (ro, pending) = reoffer(&codecs, &gcm, &local, &before).unwrap();
    assert_eq!(pending.suites(), vec![Suite::AeadAes128Gcm]);
    let k = key_in(&ro, 1);
    assert_eq!(k.suite(), Suite::AeadAes128Gcm);
    assert!(!same(&k, &before.outbound));
}
