//! Thousands of deterministically mutated descriptions through the parser,
//! the printer and both negotiation directions: nothing panics, whatever
//! parses round-trips, and whatever is accepted is sound.

use super::fixtures::*;
use super::{addr, key_in, same, sdp, wire};
use crate::sdp::*;
use crate::testutil::Rng;

/// Mutated bodies per source description.
const ROUNDS: usize = 1000;

/// Lines and tokens that probe the interesting paths.
const LINES: &[&str] = &[
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e",
    "a=crypto:2 AEAD_AES_256_GCM inline:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUo=|2^48|1:1",
    "a=crypto:3 NULL_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e UNENCRYPTED_SRTP",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQID;inline:AQID",
    "a=crypto:999999999 AEAD_AES_128_GCM inline:FRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMA== KDR=0 WSH=64",
    "a=rtcp:0",
    "a=rtcp:65535 IN IP6 ::",
    "a=rtcp-mux",
    "a=sendonly",
    "a=inactive",
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:127 telephone-event/0",
    "a=fmtp:0 x",
    "a=ptime:0",
    "a=maxptime:4294967295",
    "c=IN IP4 0.0.0.0",
    "c=IN IP6 ::1",
    "c=IN IP4 239.0.0.1/255/3",
    "m=audio 0 RTP/SAVP 0",
    "m=audio 65535/2 RTP/SAVP 0 8 9 101",
    "m=audio 4000 RTP/AVP 0",
    "m=video 4000 RTP/SAVPF 96",
    "m=audio 9 UDP/TLS/RTP/SAVP 111",
    "t=0 0",
    "r=1 2 3",
    "k=clear:x",
    "b=AS:18446744073709551615",
    "o=- 18446744073709551615 0 IN IP4 ::",
    "v=0",
    "",
    "a=",
    "=",
];
const TOKENS: &[&str] = &[
    "0",
    "1",
    "127",
    "128",
    "255",
    "65535",
    "65536",
    "4294967296",
    "-1",
    "",
    " ",
    "/",
    ":",
    "|",
    ";",
    "IP4",
    "IP6",
    "IN",
    "RTP/SAVP",
    "RTP/AVP",
    "inline:",
    "2^31",
    "1:4",
    "\u{00e9}",
    "\t",
    "\u{0}",
];

fn mutate(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    for _ in 0..1 + rng.below(3) {
        let text = String::from_utf8_lossy(&b).into_owned();
        let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
        let n = lines.len();
        match rng.below(9) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
                continue;
            }
            1 => {
                lines.remove(rng.below(n));
            }
            2 => {
                let i = rng.below(n);
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            3 => {
                let (i, j) = (rng.below(n), rng.below(n));
                lines.swap(i, j);
            }
            4 => lines.insert(rng.below(n + 1), rng.pick(LINES).to_owned()),
            5 => {
                b.truncate(rng.below(b.len() + 1));
                continue;
            }
            6 | 7 => {
                // Replace one space-separated field of a line.
                let i = rng.below(n);
                let mut f: Vec<String> = lines[i].split(' ').map(str::to_owned).collect();
                let k = rng.below(f.len());
                f[k] = rng.pick(TOKENS).to_owned();
                lines[i] = f.join(" ");
            }
            _ => {
                // Glue a token into the middle of a line.
                let i = rng.below(n);
                let at = rng.below(lines[i].len() + 1);
                if lines[i].is_char_boundary(at) {
                    lines[i].insert_str(at, rng.pick(TOKENS));
                }
            }
        }
        b = lines.join("\r\n").into_bytes();
    }
    b
}

#[test]
fn mutated_descriptions_never_panic_and_stay_sound() {
    let local = LocalMedia::new(addr("192.0.2.1:30000"));
    let codecs = Codecs::new(vec![
        Codec::new(0, "PCMU", 8000, None),
        Codec::new(100, "telephone-event", 8000, None),
    ]);
    let (our_offer, pending) = offer(&codecs, &Policy::phone_default(), &local).unwrap();
    let (our_answer, _) = answer(&sdp(LINPHONE), &Policy::phone_default(), &local).unwrap();
    let mut sources: Vec<Vec<u8>> = OFFERS.iter().map(|t| wire(t).into_bytes()).collect();
    sources.push(wire(&CISCO_ANSWER.replace("{tag}", "3")).into_bytes());
    sources.push(our_offer.print().as_bytes().to_vec());
    sources.push(our_answer.print().as_bytes().to_vec());

    let policies = [Policy::phone_default(), Policy::trunk_default()];
    let mut rng = Rng(0x5eed_d1a1_6a7e_0001);
    let (mut total, mut parsed, mut answered, mut accepted) = (0, 0, 0, 0);
    for source in &sources {
        for _ in 0..ROUNDS {
            let body = mutate(&mut rng, source);
            total += 1;
            let Ok(sd) = SessionDescription::parse(&body) else {
                continue;
            };
            parsed += 1;
            let printed = sd.print();
            assert_eq!(
                SessionDescription::parse(printed.as_bytes()).as_ref(),
                Ok(&sd),
                "round trip of {}",
                sd.print_redacted()
            );
            let _ = sd.print_redacted();
            for policy in &policies {
                let Ok((a, n)) = answer(&sd, policy, &local) else {
                    continue;
                };
                answered += 1;
                assert!(policy.allows(n.suite));
                assert!(!same(&n.outbound, &n.inbound));
                assert!(n.codecs.has_voice());
                let a = SessionDescription::parse(a.print().as_bytes()).unwrap();
                assert_eq!(a.media.len(), sd.media.len());
                assert!(same(&key_in_any(&a), &n.outbound));
            }
            if let Ok(n) = pending.accept(&sd) {
                accepted += 1;
                assert!(!same(&n.inbound, &n.outbound));
                assert!(Policy::phone_default().allows(n.suite));
                assert!(n.payload_types().iter().all(|pt| [0, 100].contains(pt)));
            }
        }
    }
    eprintln!("{total} mutated: {parsed} parsed, {answered} answered, {accepted} accepted");
    // The mutations must reach deep enough to exercise every stage.
    assert_eq!(total, ROUNDS * sources.len());
    assert!(parsed > total / 4, "only {parsed} of {total} parsed");
    assert!(answered > total / 10, "only {answered} answered");
    assert!(accepted > 10, "only {accepted} accepted");
}

/// Our key in an answer: the one active audio section's crypto line.
fn key_in_any(a: &SessionDescription) -> crate::srtp::MasterKey {
    let m = a
        .media
        .iter()
        .find(|m| m.port != 0)
        .expect("an accepted stream");
    let tag = m.crypto().next().expect("a crypto line").tag;
    let single = SessionDescription {
        media: vec![m.clone()],
        ..a.clone()
    };
    key_in(&single, tag)
}
