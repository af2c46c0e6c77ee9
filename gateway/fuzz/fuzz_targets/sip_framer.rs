//! Arbitrary bytes, cut into chunks, into a `Framer`: no panic, bounded
//! buffering, framed messages round-trip, and a failed framer stays
//! failed. The first byte picks the role and the chunk size.
#![no_main]

use dialgate_proto::sip::{Event, Framer, Limits, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_message_size: 4096,
        max_headers: 32,
        max_line_length: 1024,
    };
    let mut framer = if control & 1 == 0 {
        Framer::server(limits)
    } else {
        Framer::client(limits)
    };
    let chunk = usize::from(control >> 1) + 1;
    for piece in stream.chunks(chunk) {
        framer.handle_data(piece);
        loop {
            match framer.poll_event() {
                Ok(Some(Event::Message(m))) => {
                    assert_eq!(Message::parse(&m.to_bytes(), &limits), Ok(m));
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(framer.poll_event(), Err(e));
                    return;
                }
            }
        }
        assert!(framer.buffered() <= limits.max_message_size + chunk);
    }
});
