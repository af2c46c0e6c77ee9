//! Arbitrary bytes into `Message::parse` and `Message::parse_datagram`:
//! no panic, and whatever parses survives print-then-parse unchanged.
#![no_main]

use dialgate_proto::sip::{Limits, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for parsed in [
        Message::parse(data, &limits),
        Message::parse_datagram(data, &limits),
    ] {
        match parsed {
            Ok(m) => {
                let printed = m.to_bytes();
                assert_eq!(Message::parse(&printed, &limits), Ok(m));
            }
            Err(e) => {
                let status = e.status().as_u16();
                assert!(matches!(status, 400 | 416 | 505 | 513), "{e:?}");
            }
        }
    }
});
