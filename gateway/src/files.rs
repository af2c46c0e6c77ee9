//! The file system as the cores see it: [`Files`] reads what a
//! configuration names, bounded so that a huge or endless file (a FIFO, a
//! device) cannot exhaust memory.

use std::io::Read;
use std::path::Path;

use dialgate_proto::config::{Config, ConfigError, ReadFile};

/// Largest file a configuration may name (certificates, keys, the
/// configuration itself).
pub const MAX_CONFIG_FILE: u64 = 1 << 20;

/// Reads files for [`Config::load`], at most [`MAX_CONFIG_FILE`] bytes each.
#[derive(Debug, Clone, Copy, Default)]
pub struct Files;

impl ReadFile for Files {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_CONFIG_FILE + 1)
            .read_to_end(&mut out)?;
        if out.len() as u64 > MAX_CONFIG_FILE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {MAX_CONFIG_FILE} bytes"),
            ));
        }
        Ok(out)
    }
}

/// Reads and validates the kit configuration at `path`.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    Config::load(path, &Files)
}

/// Reads a lab kit's unsigned token registry file.
pub fn load_registry(
    path: &Path,
) -> Result<
    (
        dialgate_proto::admission::Registry,
        dialgate_proto::config::AliasGrants,
    ),
    ConfigError,
> {
    dialgate_proto::config::load_registry(path, &Files)
}
