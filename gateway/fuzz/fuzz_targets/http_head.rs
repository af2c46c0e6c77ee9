//! The head of an HTTP/1.1 response as the kit's repository client reads
//! it from HQ's server (or from whatever answers in its place: a captive
//! portal, an interceptor): arbitrary bytes into
//! `dialgate_proto::http::head_end` and `parse_response_head`. Asserts: no
//! panic; a head is never found past `MAX_HEAD`; a head that parses has a
//! three-digit status and, if it names an ETag, one of at most 256 octets;
//! parsing is deterministic.
#![no_main]

use dialgate_proto::http::{head_end, parse_response_head, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(end)) = head_end(data) {
        assert!(end <= MAX_HEAD && end <= data.len());
        assert_eq!(&data[end - 4..end], b"\r\n\r\n");
        let first = parse_response_head(&data[..end]);
        assert_eq!(first, parse_response_head(&data[..end]));
        if let Ok(h) = first {
            assert!((100..=999).contains(&h.status));
            assert!(h.etag.is_none_or(|e| e.len() <= 256));
        }
    }
    let _ = parse_response_head(data);
});
