//! A signed command as the kit reads it from its repository's `commands`
//! target: arbitrary bytes into `dialgate_signed::command::verify` (with a
//! fixed pinned key and an arbitrary last-done floor) and the body decoder
//! `Command::decode`. Asserts: no panic; a command is accepted only for
//! this kit, above the floor, before its expiry, and its new floor is its
//! number; a body that decodes re-encodes to exactly its bytes.
#![no_main]

use std::sync::LazyLock;

use dialgate_signed::command::{verify, Command};
use dialgate_signed::{Floor, SigningKey, COMMAND};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().expect("key"));

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let (head, rest) = data.split_at(9);
    let done = Floor::at(&COMMAND, u64::from(head[0] % 8));
    let now = u64::from_le_bytes(head[1..9].try_into().unwrap());
    if let Ok(c) = Command::decode(rest) {
        assert_eq!(c.encode(), rest);
        // Signed by the pinned key: the verdict follows from the fields.
        let signed = c.sign(&KEY).expect("signs");
        match verify(&signed, KEY.public_key(), "kit-1", &done, now) {
            Ok(v) => {
                assert_eq!(v.command, c);
                assert!(c.kit == "kit-1" && c.seq > done.version() && now < c.expires_at);
                assert_eq!(v.floor.version(), c.seq);
            }
            Err(_) => assert!(c.kit != "kit-1" || c.seq <= done.version() || now >= c.expires_at),
        }
    }
    if let Ok(v) = verify(rest, KEY.public_key(), "kit-1", &done, now) {
        // Only the key's signature verifies; random bytes never do.
        panic!("unsigned bytes verified as {:?}", v.command);
    }
});
