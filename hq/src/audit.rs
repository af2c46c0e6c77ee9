//! `dialgatectl audit verify`: a trail as the SIEM stored it (one record
//! per line, rsyslog's `%rawmsg%`) checked against the kits' checkpoint
//! keys under `HQ/kits/ID/audit-key.pub.pem` (`docs/audit.md`).

use std::path::Path;

use dialgate_audit::{verify, Report, TrailError};
use dialgate_signed::PublicKey;

/// Why a trail could not be checked (before any record is looked at).
#[derive(Debug, thiserror::Error)]
pub enum AuditVerifyError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A kit's key does not parse.
    #[error("{path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No kit has a checkpoint key at HQ.
    #[error(
        "{0}: no kits/*/audit-key.pub.pem (a kit's checkpoint key is recorded when it is made)"
    )]
    NoKeys(String),
    /// The trail is not complete and untouched.
    #[error(transparent)]
    Trail(#[from] TrailError),
}

/// The checkpoint keys of every kit HQ knows.
pub fn kit_keys(hq: &Path) -> Result<Vec<(String, PublicKey)>, AuditVerifyError> {
    let kits = hq.join("kits");
    let read_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| AuditVerifyError::Read { path, source }
    };
    let mut keys = Vec::new();
    let entries = match std::fs::read_dir(&kits) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AuditVerifyError::NoKeys(kits.display().to_string()))
        }
        Err(e) => return Err(read_err(&kits)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(read_err(&kits))?;
        let path = entry.path().join("audit-key.pub.pem");
        let pem = match std::fs::read(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(read_err(&path)(e)),
        };
        let key = PublicKey::from_pem(&pem).map_err(|e| AuditVerifyError::Key {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        keys.push((entry.file_name().to_string_lossy().into_owned(), key));
    }
    if keys.is_empty() {
        return Err(AuditVerifyError::NoKeys(kits.display().to_string()));
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keys)
}

/// Verifies the trail in `file` with the keys under `hq`.
pub fn verify_file(
    hq: &Path,
    file: &Path,
    through: Option<u64>,
) -> Result<Report, AuditVerifyError> {
    let keys = kit_keys(hq)?;
    let bytes = std::fs::read(file).map_err(|source| AuditVerifyError::Read {
        path: file.display().to_string(),
        source,
    })?;
    // Not UTF-8 text is not a trail; lossy decoding shows it as altered.
    let text = String::from_utf8_lossy(&bytes);
    Ok(verify(text.lines(), &keys, through)?)
}
