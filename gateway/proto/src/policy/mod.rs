//! The signed policy bundle: how a kit learns, from home, which tokens may
//! call, which are revoked, the meeting directory and the policy switches.
//!
//! Authority comes from the signature, not from the transport (DESIGN.md,
//! "Management"): a bundle may arrive over any HTTPS server, a CDN or a
//! USB stick. A kit applies it only if all of these hold, checked in this
//! order by [`verify_and_decide`]:
//!
//! 1. it is at most [`MAX_BUNDLE_BYTES`] and framed exactly as below, with
//!    exactly one signature line ([`PolicyError::DuplicateSignature`]);
//! 2. the signature names the policy key pinned in the kit's configuration
//!    ([`PolicyError::UnknownSigner`]) and verifies over the exact body
//!    bytes ([`PolicyError::BadSignature`]);
//! 3. only then is the body parsed, from those same bytes (never
//!    re-serialized), and checked ([`PolicyError::BodySyntax`],
//!    [`PolicyError::Invalid`], [`PolicyError::TooManyEntries`]);
//! 4. the kit is among its targets ([`PolicyError::NotForThisKit`]);
//! 5. its version is above the last one applied ([`PolicyError::RolledBack`]):
//!    an attacker replaying an old bundle cannot bring a revoked token back;
//! 6. it was not issued in the future, beyond [`MAX_CLOCK_SKEW_SECS`]
//!    ([`PolicyError::NotYetValid`]);
//! 7. it has not expired, give or take the configured [`GracePeriod`]
//!    ([`PolicyError::Expired`]): an attacker who withholds new bundles
//!    (a freeze attack) cannot keep a kit on an old policy for ever.
//!
//! The result is a [`Verified`], a proof value only this module constructs;
//! the gateway takes its registry, alias grants and directory from it.
//!
//! # Driving it (the shell's contract)
//!
//! - At start: `dialgate_signed::store::read_bounded` the anti-rollback state file and
//!   [`State::decode`] it (a missing file is a fresh kit, [`State::new`]; a
//!   corrupt one is an error to report, never a reset), then
//!   [`verify_reload`] the bundle last applied, which may be the same
//!   version as the state.
//! - On a new bundle: [`verify_and_decide`]; on success [`State::record`],
//!   `dialgate_signed::store::write_atomically` the encoded state, and only then swap in
//!   [`Verified::registry_and_grants`] and [`Verified::directory`]. On
//!   failure, log the error (its `Display` says what to do) and keep the
//!   last good policy.
//! - While running: [`Verified::freshness`] on a timer; once it is
//!   [`Freshness::Expired`], refuse new calls with 503 until a fresh bundle
//!   arrives.
//!
//! # Why ECDSA P-256
//!
//! Through aws-lc-rs, `ECDSA_P256_SHA256_ASN1`. Ed25519 was the other
//! candidate (deterministic signing, no signature malleability), but:
//! `dialgatectl pki init` makes P-256 keys for everything else (issue 4),
//! and the policy key is the one key worth moving into a hardware token or
//! HSM later, where P-256 ECDSA is universal through PKCS#11 and PIV and
//! Ed25519 is not (older YubiKey PIV firmware, many HSMs). A kit verifies
//! one signature per bundle, so speed does not decide. Malleability does
//! not matter here: a signature is never used as a name (the rollback state
//! records the body's digest) and a bundle has exactly one. The policy key
//! is its own key, separate from the token CA and the device CA: a stolen
//! CA key cannot sign policy, and the other way round.
//!
//! # File format, version 1
//!
//! A bundle is the following octets; anything else is refused:
//!
//! ```text
//! dialgate-policy-bundle v1 <N>\n
//! <N octets: the body>
//! signature ecdsa-p256-sha256 <KEY-ID> <SIGNATURE>\n
//! ```
//!
//! - The whole file is at most 1 MiB ([`MAX_BUNDLE_BYTES`]).
//! - Header: ASCII, single spaces. `N` is the body's length in octets, in
//!   decimal, no sign, no leading zero, 1 to 1048576. A different `vN` is
//!   [`PolicyError::UnsupportedFormat`].
//! - Body: exactly `N` octets, UTF-8 TOML (below). The framing never looks
//!   inside it, so it may contain anything, including lines that look like
//!   headers or signatures.
//! - Exactly one signature line follows the body, ending with `\n`, and
//!   nothing follows it. `KEY-ID` is 64 lower-case hex digits: SHA-256 of
//!   the signer's DER SubjectPublicKeyInfo (as for token keys:
//!   `openssl pkey -pubin -outform DER | sha256sum`). `SIGNATURE` is
//!   standard base64 (RFC 4648 section 4: padded, canonical, no line
//!   breaks) of the DER `ECDSA-Sig-Value` (RFC 3279 section 2.2.3), ECDSA
//!   P-256 with SHA-256, over the message
//!
//!   ```text
//!   "dialgate-policy-v1" 0x00 || body
//!   ```
//!
//!   The prefix (domain separation) keeps a signature made by the same key
//!   for anything else (a signed command, another format version) from
//!   verifying as a policy. The header is not signed; its only field that
//!   matters, the format version, is bound by the prefix, and `N` by the
//!   body itself.
//!
//! The body (every field required except `pin`; no other field allowed):
//!
//! ```toml
//! version = 42                   # 1 to 2^63-1; each bundle above the last
//! issued_at = 1767225600         # unix seconds
//! expires_at = 1767830400        # unix seconds, after issued_at
//! kits = ["kit-0001", "kit-0002"]
//!
//! [switches]                     # can only tighten the kit's configuration
//! require_post_quantum = false
//! require_attestation = true     # then no active token may be unattested
//!
//! [[token]]                      # the registry file's fields
//! name = "alice"
//! key_sha256 = "<64 hex digits: SHA-256 of the certificate's public key>"
//! aliases = ["echo"]             # each must be a directory alias
//! revoked = false
//! unattested = false
//!
//! [[directory]]                  # the configuration's [[directory]]
//! alias = "echo"
//! uri = "sip:echo@bridge.example"
//! trunk = "echo"                 # a trunk of the kit or of this policy
//! pin = "1234#"                  # optional; secret, never logged
//!
//! [[trunk]]                      # optional: overrides the kit's trunk of that
//! name = "echo"                  # name (which keeps its media address and
//! connect = "192.0.2.7:5061"     # client identity), or adds a trunk (see
//! host = "bridge.example"        # `trunk`: media on the kit's
//!                                # policy.trunk_media_address, no client identity)
//! pin_sha256 = "<64 hex digits>" # or ca_pem = """-----BEGIN CERTIFICATE-----..."""
//! tls = "1.3"                    # or "1.2"
//! suites = ["AES_CM_128_HMAC_SHA1_80"]
//! webex = false
//! routes = ["192.0.2.8:5062"]    # optional: Record-Route hops (at most 8)
//! ```
//!
//! Limits: [`body::MAX_TOKENS`] tokens, [`body::MAX_DIRECTORY`] directory
//! entries, [`body::MAX_KITS`] kits, [`body::MAX_ALIASES_PER_TOKEN`]
//! aliases per token, [`body::MAX_TRUNKS`] trunks,
//! [`crate::config::MAX_ROUTES`] routes per trunk; names, kit ids and trunks are 1 to 128 of
//! `A-Z a-z 0-9 - _ . @ +`. [`sign`] applies every rule the kit applies, so
//! what it signs a kit can apply.
//!
//! # Example
//!
//! ```
//! use dialgate_proto::policy::{sign, verify_and_decide, GracePeriod, PolicyBody, SigningKey, State, Trust};
//!
//! let key = SigningKey::generate()?;
//! let body = PolicyBody {
//!     version: 1,
//!     issued_at: 1_767_225_600,
//!     expires_at: 1_767_830_400,
//!     kits: vec!["kit-0001".into()],
//!     ..PolicyBody::default()
//! };
//! let bundle = sign(&body, &key)?;
//!
//! let trust = Trust {
//!     pinned_key: key.public_key().clone(),
//!     kit_id: "kit-0001".into(),
//!     grace: GracePeriod::NONE,
//! };
//! let mut state = State::new();
//! let verified = verify_and_decide(&bundle, &trust, &state, 1_767_225_700)?;
//! assert!(state.record(&verified));
//! // The same bundle again is a rollback now.
//! assert!(verify_and_decide(&bundle, &trust, &state, 1_767_225_800).is_err());
//! # Ok::<(), dialgate_proto::policy::PolicyError>(())
//! ```

use std::collections::HashMap;

use dialgate_signed::{Floor, KeyId, SignedError, POLICY};

use crate::admission::{Registry, TokenEntry};
use crate::config::{AliasGrants, DirectoryEntry};

pub mod body;
#[cfg(test)]
mod tests;
mod trunk;
#[cfg(test)]
mod trunk_tests;

pub use body::{PolicyBody, PolicyToken, PolicyTrunk, Switches};
pub use dialgate_signed::{PublicKey as PolicyKey, SigningKey};

/// Largest bundle a kit reads, header and signature included.
pub const MAX_BUNDLE_BYTES: usize = POLICY.max_bytes;

/// The anti-rollback state of policy bundles: the version and body digest
/// of the last one applied (a [`Floor`] of purpose `policy`). Sans-IO: the
/// shell persists [`State::encode`] durably *before* it reports the new
/// policy as applied and reads it back with [`State::decode`] at start. A
/// state that does not decode is an error, never a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State(Floor);

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

impl State {
    /// Nothing applied yet.
    pub fn new() -> State {
        State(Floor::new(&POLICY))
    }

    /// A floor without an applied body (set when a kit is provisioned).
    pub fn with_floor(version: u64) -> State {
        State(Floor::at(&POLICY, version))
    }

    /// The version a new policy must exceed.
    pub fn last_applied_version(&self) -> u64 {
        self.0.version()
    }

    /// Records an applied policy; never lowers the floor.
    pub fn record(&mut self, applied: &Verified) -> bool {
        self.0.record(applied.version(), applied.body_sha256())
    }

    /// The durable form.
    pub fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    /// Reads [`State::encode`]'s output; anything else is
    /// [`PolicyError::CorruptState`].
    pub fn decode(bytes: &[u8]) -> Result<State, PolicyError> {
        Floor::decode(&POLICY, bytes)
            .map(State)
            .map_err(|_| PolicyError::CorruptState)
    }
}

/// How far in the future `issued_at` may be, for clocks that disagree a
/// little (a kit's clock comes from NTP over the hotel network, or from
/// its RTC).
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// Why a bundle (or a key, or the rollback state) was refused. Every
/// message says what to do; none contains a meeting PIN. After any of
/// these the last good policy stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Larger than a kit reads.
    #[error("policy bundle is {size} bytes, more than the {max} a kit accepts: refused; build a smaller one")]
    TooLarge {
        /// The size found (or announced by the header).
        size: usize,
        /// [`MAX_BUNDLE_BYTES`].
        max: usize,
    },
    /// The file ends early: an interrupted download or copy.
    #[error("policy bundle is truncated: refused; fetch or copy it again")]
    Truncated,
    /// Not framed as a version 1 bundle.
    #[error("policy bundle is malformed ({reason}): refused; rebuild it with `dialgatectl policy build`")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// A format version this kit does not read.
    #[error("policy bundle format v{found} is not supported (this kit reads v1): refused; build it with a dialgatectl that matches the kit's firmware")]
    UnsupportedFormat {
        /// The header's version.
        found: u32,
    },
    /// More than one signature line.
    #[error("policy bundle carries more than one signature: refused; a bundle has exactly one, rebuild it with dialgatectl")]
    DuplicateSignature,
    /// Signed by a key other than the pinned policy key.
    #[error("policy bundle is signed by key {signer}, not by this kit's policy key {pinned}: refused; sign it with the kit's policy key, or check the policy key in the kit's configuration")]
    UnknownSigner {
        /// The key id the bundle names (first 8 octets shown).
        signer: KeyId,
        /// The pinned key's id.
        pinned: KeyId,
    },
    /// The signature does not verify: tampered, corrupted or forged.
    #[error("policy bundle signature does not verify (tampered or corrupted): refused; rebuild and re-sign it with dialgatectl")]
    BadSignature,
    /// Correctly signed, but the body is not the v1 TOML schema.
    #[error("signed policy body does not parse at line {line}, column {column}: refused; rebuild it with a dialgatectl that matches the kit's firmware")]
    BodySyntax {
        /// 1-based line of the body.
        line: usize,
        /// 1-based column, in bytes.
        column: usize,
    },
    /// Correctly signed, but breaks a rule (a duplicate token, an unknown
    /// alias, ...). Also what [`sign`] reports for such a body.
    #[error("policy {field}: {reason}; fix it and build the bundle again")]
    Invalid {
        /// The offending field, as `section.name.key`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// More entries of one kind than a kit holds.
    #[error(
        "policy has more than {max} {what}: refused; split the deployment or remove stale entries"
    )]
    TooManyEntries {
        /// Which entries.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Not newer than the applied policy: a replay or a mistake.
    #[error("policy version {got} is not newer than the applied version {have}: refused (anti-rollback); publish a bundle with a version above {have}")]
    RolledBack {
        /// The last applied version.
        have: u64,
        /// The bundle's version.
        got: u64,
    },
    /// Past its expiry and any grace period.
    #[error("policy bundle expired at {expires_at} (now {now}, unix seconds; grace included): refused (freeze protection); publish a fresh bundle")]
    Expired {
        /// Its `expires_at`.
        expires_at: u64,
        /// The kit's time.
        now: u64,
    },
    /// Issued in the future.
    #[error("policy bundle is issued at {issued_at}, in the future (now {now}, unix seconds): refused; check the kit's clock and the signing machine's clock")]
    NotYetValid {
        /// Its `issued_at`.
        issued_at: u64,
        /// The kit's time.
        now: u64,
    },
    /// This kit is not among its targets.
    #[error("policy bundle does not list this kit ({kit}) among its targets: refused; add the kit id when building it")]
    NotForThisKit {
        /// This kit's id.
        kit: String,
    },
    /// A key that is not a P-256 policy key.
    #[error("not a P-256 policy key (a kit pins a PEM or DER SubjectPublicKeyInfo; dialgatectl signs with PKCS#8): check the key file")]
    BadKey,
    /// The crypto library failed to generate or use a signing key.
    #[error("could not generate or use the policy signing key: retry; if it persists, the host's crypto library is broken")]
    Signing,
    /// A grace period longer than [`GracePeriod::MAX_SECS`].
    #[error(
        "a policy grace period is at most {max_secs} s: a longer one defeats freeze protection"
    )]
    GraceTooLong {
        /// [`GracePeriod::MAX_SECS`].
        max_secs: u64,
    },
    /// The policy adds a trunk, but this kit's configuration does not say
    /// which local address an added trunk's media uses.
    #[error("policy adds trunk {trunk:?}, which this kit does not have, and the kit's configuration sets no policy.trunk_media_address (nor [bridge_listener]) for the media of added trunks: refused; set it in the kit's configuration, or override an existing trunk instead")]
    NoTrunkMediaAddress {
        /// The trunk the policy adds.
        trunk: String,
    },
    /// The anti-rollback state does not decode.
    #[error("the policy anti-rollback state is damaged: refused; do not delete it (that would allow rollback), restore it from the kit's backup or re-provision the kit")]
    CorruptState,
}

/// How long past `expires_at` a kit keeps a policy in force. `NONE` (the
/// default) is the safe choice; a grace period trades freeze protection for
/// kits that are offline for a while (a traveller without a network).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GracePeriod {
    secs: u64,
}

impl GracePeriod {
    /// No grace: a policy is refused the second it expires.
    pub const NONE: GracePeriod = GracePeriod { secs: 0 };
    /// The longest grace period: 30 days.
    pub const MAX_SECS: u64 = 30 * 86_400;

    /// A grace period of `secs` seconds, at most [`GracePeriod::MAX_SECS`].
    pub fn from_secs(secs: u64) -> Result<GracePeriod, PolicyError> {
        if secs > GracePeriod::MAX_SECS {
            return Err(PolicyError::GraceTooLong {
                max_secs: GracePeriod::MAX_SECS,
            });
        }
        Ok(GracePeriod { secs })
    }

    /// Its length in seconds.
    pub fn secs(&self) -> u64 {
        self.secs
    }
}

/// What a kit trusts, from its configuration.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The kit officer's policy key (not a CA key).
    pub pinned_key: PolicyKey,
    /// This kit's id, which a bundle must list.
    pub kit_id: String,
    /// How long an expired policy stays in force.
    pub grace: GracePeriod,
}

/// Whether an applied policy is still in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Freshness {
    /// Before `expires_at`.
    Valid,
    /// Past `expires_at`, within the grace period: calls go on, the shell
    /// should log loudly that a fresh bundle is overdue.
    InGrace {
        /// When new calls will be refused (unix seconds).
        refuse_from: u64,
    },
    /// Past the grace period: refuse new calls (503) until a fresh bundle
    /// arrives.
    Expired,
}

/// A policy that passed every check of [`verify_and_decide`] (or
/// [`verify_reload`]); nothing else can construct one. `Debug` redacts
/// meeting PINs.
#[derive(Clone, Debug)]
pub struct Verified {
    body: PolicyBody,
    body_sha256: [u8; 32],
    signer: KeyId,
    grace: GracePeriod,
    reload: bool,
}

impl Verified {
    /// The policy's content.
    pub fn body(&self) -> &PolicyBody {
        &self.body
    }

    /// Its version.
    pub fn version(&self) -> u64 {
        self.body.version
    }

    /// SHA-256 of the exact body bytes that were signed.
    pub fn body_sha256(&self) -> [u8; 32] {
        self.body_sha256
    }

    /// The id of the key that signed it.
    pub fn signer(&self) -> KeyId {
        self.signer
    }

    /// Whether this is the already applied policy read again at start
    /// ([`verify_reload`]), rather than a new one.
    pub fn is_reload(&self) -> bool {
        self.reload
    }

    /// When new calls must be refused: `expires_at` plus the grace period.
    pub fn refuse_calls_from(&self) -> u64 {
        self.body.expires_at.saturating_add(self.grace.secs)
    }

    /// Whether the policy is still in force at `now_unix`.
    pub fn freshness(&self, now_unix: u64) -> Freshness {
        if now_unix < self.body.expires_at {
            Freshness::Valid
        } else if now_unix < self.refuse_calls_from() {
            Freshness::InGrace {
                refuse_from: self.refuse_calls_from(),
            }
        } else {
            Freshness::Expired
        }
    }

    /// The token registry and alias grants, in the form the TLS verifier
    /// and the call layer already use for the registry file.
    pub fn registry_and_grants(&self) -> (Registry, AliasGrants) {
        let mut registry = Registry::default();
        let mut grants = AliasGrants::new();
        for t in &self.body.tokens {
            registry.insert(
                t.key,
                TokenEntry {
                    name: t.name.clone(),
                    revoked: t.revoked,
                },
            );
            // A revoked entry carries no grants.
            if !t.revoked {
                grants.insert(t.name.clone(), t.aliases.iter().cloned().collect());
            }
        }
        (registry, grants)
    }

    /// The meeting directory by alias. The shell must still check that
    /// each entry's trunk is one of the kit's configured trunks.
    pub fn directory(&self) -> HashMap<String, DirectoryEntry> {
        self.body
            .directory
            .iter()
            .map(|d| (d.alias.clone(), d.clone()))
            .collect()
    }
}

/// Signs a policy for distribution (for `dialgatectl`). Refuses a body a
/// kit would refuse for its content ([`PolicyError::Invalid`],
/// [`PolicyError::TooManyEntries`]) or size ([`PolicyError::TooLarge`]).
/// Time, kit and version checks are the kit's: they depend on its clock,
/// identity and state.
pub fn sign(body: &PolicyBody, key: &SigningKey) -> Result<Vec<u8>, PolicyError> {
    let text = body::to_toml(body)?;
    Ok(dialgate_signed::seal(&POLICY, text.as_bytes(), key)?)
}

impl From<SignedError> for PolicyError {
    fn from(e: SignedError) -> PolicyError {
        match e {
            SignedError::TooLarge { size, max, .. } => PolicyError::TooLarge { size, max },
            SignedError::Truncated { .. } => PolicyError::Truncated,
            SignedError::Malformed { reason, .. } => PolicyError::Malformed { reason },
            SignedError::UnsupportedFormat { found, .. } => {
                PolicyError::UnsupportedFormat { found }
            }
            SignedError::DuplicateSignature { .. } => PolicyError::DuplicateSignature,
            SignedError::UnknownSigner { signer, pinned, .. } => {
                PolicyError::UnknownSigner { signer, pinned }
            }
            SignedError::BadSignature { .. } => PolicyError::BadSignature,
            SignedError::BadKey => PolicyError::BadKey,
            SignedError::CorruptFloor { .. } => PolicyError::CorruptState,
            _ => PolicyError::Signing,
        }
    }
}

/// Decides whether a kit applies a newly received bundle; see the module
/// documentation for the checks and their order. `now_unix` is the kit's
/// clock. Pure: the caller records the result in its [`State`] and
/// persists it.
pub fn verify_and_decide(
    bytes: &[u8],
    trust: &Trust,
    state: &State,
    now_unix: u64,
) -> Result<Verified, PolicyError> {
    decide(bytes, trust, state, now_unix, false)
}

/// Like [`verify_and_decide`], for the bundle a kit re-reads at start:
/// the policy it last applied (same version and same body digest as the
/// [`State`]) is accepted again; a different body with that version is
/// still a rollback. Every other check, expiry included, applies.
pub fn verify_reload(
    bytes: &[u8],
    trust: &Trust,
    state: &State,
    now_unix: u64,
) -> Result<Verified, PolicyError> {
    decide(bytes, trust, state, now_unix, true)
}

fn decide(
    bytes: &[u8],
    trust: &Trust,
    state: &State,
    now: u64,
    reload: bool,
) -> Result<Verified, PolicyError> {
    let opened = dialgate_signed::open(&POLICY, bytes, &trust.pinned_key)?;
    let pinned = opened.signer;
    // Only now is the body read, from the very bytes that were verified.
    let body = body::parse(opened.bytes)?;
    let body_sha256 = opened.sha256;

    if !body.kits.contains(&trust.kit_id) {
        return Err(PolicyError::NotForThisKit {
            kit: trust.kit_id.clone(),
        });
    }
    let have = state.last_applied_version();
    let same_as_applied = reload && state.0.applied_body_is(body.version, &body_sha256);
    if body.version <= have && !same_as_applied {
        return Err(PolicyError::RolledBack {
            have,
            got: body.version,
        });
    }
    if body.issued_at > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(PolicyError::NotYetValid {
            issued_at: body.issued_at,
            now,
        });
    }
    if now >= body.expires_at.saturating_add(trust.grace.secs) {
        return Err(PolicyError::Expired {
            expires_at: body.expires_at,
            now,
        });
    }
    Ok(Verified {
        body,
        body_sha256,
        signer: pinned,
        grace: trust.grace,
        reload: same_as_applied,
    })
}
