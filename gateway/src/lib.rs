//! dialgate's call path.
//!
//! - [`srtp`]: SRTP/SRTCP protect and unprotect (RFC 3711, 6188, 7714), in
//!   place and allocation-free.
//! - [`sdp`]: SDP with SDES keys and the offer/answer that gives each leg
//!   its SRTP keys, refusing anything unencrypted.
//! - [`relay`]: the media relay that re-encrypts every packet between two
//!   call legs, as a sans-IO core plus a thin socket layer.
//! - [`sip`]: the SIP message codec (parser, printer, stream framer),
//!   strict and bounded.
//! - [`policy`]: the signed, versioned, expiring policy bundle (token
//!   registry, revocations, meeting directory, switches) and the decision to
//!   apply one (signature, anti-rollback, expiry, target kit).
//! - [`enrol`]: token enrolment for `dialgatectl` (a key generated on a
//!   PKCS#11 token, its certificate from the HQ token CA, the registry
//!   entry) and YubiKey PIV attestation verification.
//!
//! Only the socket layer touches the network, the clock or threads; the
//! cores are fed bytes and `now` and return what to send.

pub mod b2bua;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod echo;
pub mod enrol;
pub mod hq;
pub mod media;
pub mod pki;
pub mod policy;
pub mod relay;
pub mod sdp;
pub mod sip;
pub mod srtp;
#[cfg(test)]
mod testutil;
pub mod tls;
pub mod transaction;
pub mod transport;
