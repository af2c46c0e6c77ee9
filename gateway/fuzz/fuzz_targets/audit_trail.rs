//! The audit trail's readers: what a SIEM file holds into
//! `dialgate_audit::parse` and `verify` (`dialgatectl audit verify` reads
//! files from the SIEM, which anyone who reached the SIEM may have
//! written), and what a RELP server answers into `RelpClient::receive`
//! (the kit reads it from the network). The input before the first NUL is
//! the trail, the rest the server's bytes. Asserts: no panic; a verified
//! trail's report is consistent with its lines; a record made from the
//! input's text by `Chain` verifies and reads back to the same values
//! (escaping round-trips); the RELP client acknowledges only records it
//! sent, each at most once.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use dialgate_audit::relp::{RelpClient, RelpEvent};
use dialgate_audit::{parse, verify, Chain, Event, Header, Severity};
use dialgate_signed::SigningKey;
use libfuzzer_sys::fuzz_target;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("a key"))
}

const H: Header<'static> = Header {
    timestamp: "2026-12-06T00:00:00.000000Z",
    hostname: "kit-f",
    procid: 7,
};

fuzz_target!(|data: &[u8]| {
    let (trail, server) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let keys = vec![("kit-f".to_string(), key().public_key().clone())];
    let text = String::from_utf8_lossy(trail);
    for line in text.lines() {
        assert_eq!(parse(line).is_ok(), parse(line).is_ok());
    }
    if let Ok(r) = verify(text.lines(), &keys, None) {
        assert!(r.verified >= 1 && r.verified <= text.lines().count() as u64);
        assert!(r.first <= r.last && r.checkpoints >= 1);
    }

    // The input's text as a record's values: it must verify and read back.
    let value: String = text.chars().take(200).collect();
    let mut chain = Chain::genesis();
    let ev = Event {
        severity: Severity::Warning,
        msgid: "refused".into(),
        params: vec![("reason".into(), value.clone())],
        message: value.clone(),
    };
    let rec = chain.append(&H, &ev);
    let cp = chain.checkpoint(&H, key(), 1).expect("signed");
    let lines = [rec.line.as_str(), cp.line.as_str()];
    let report = verify(lines, &keys, Some(2)).expect("a made trail verifies");
    assert_eq!(report.verified, 2);
    let back = parse(&rec.line).expect("a made record parses");
    if !value.chars().any(char::is_control) {
        assert_eq!(back.get("reason"), Some(value.as_str()));
    }

    // A RELP server's answers.
    let mut relp = RelpClient::new();
    let _ = relp.open();
    let sent: HashSet<u64> = (1..=3).collect();
    for s in &sent {
        let _ = relp.syslog(*s, "x");
    }
    let mut acked = HashSet::new();
    for chunk in server.chunks(7) {
        match relp.receive(chunk) {
            Ok(events) => {
                for e in events {
                    if let RelpEvent::Acked(s) = e {
                        assert!(sent.contains(&s), "acknowledged {s}, never sent");
                        assert!(acked.insert(s), "{s} acknowledged twice");
                    }
                }
            }
            Err(_) => break,
        }
    }
});
