//! dialgate's call path as sans-IO protocol cores: plain structs fed with
//! bytes and `now`, returning bytes, events and the next timer. Nothing in
//! this crate opens a socket, reads a file, spawns a thread or reads the
//! clock; its dependency list cannot name tokio, mio, rustls, socket2 or
//! a file-system crate, so the compiler enforces it (as quinn-proto does).
//! The shell crate (`dialgate`) owns the I/O.
//!
//! Data flows through the modules in this order:
//!
//! - [`sip`]: the SIP message codec (parser, printer, stream framer),
//!   strict and bounded.
//! - [`transaction`]: RFC 3261 transactions on a timer table.
//! - [`admission`]: token keys, the registry, and the proof values a call
//!   needs.
//! - [`b2bua`]: the back-to-back user agent between a phone and a bridge.
//! - [`sdp`]: SDP with SDES keys and the offer/answer that gives each leg
//!   its SRTP keys, refusing anything unencrypted.
//! - [`srtp`]: SRTP/SRTCP protect and unprotect (RFC 3711, 6188, 7714), in
//!   place and allocation-free.
//! - [`relay`]: the media relay core that re-encrypts every packet between
//!   two call legs.
//! - [`media`]: the gateway's own audio (secure tone, RFC 4733 PIN digits).
//! - [`metrics`]: the kit's status as OpenMetrics / Prometheus text.
//! - [`netcheck`]: the network check's verdict (interception, captive
//!   portal, UDP blocked) and when to check; the STUN Binding codec.
//! - [`dns`]: the stub resolver's A/AAAA/SRV queries and a strict,
//!   bounded reader of their answers (nothing in them trusted).
//! - [`config`] and [`policy`]: the one parser of the kit configuration
//!   (used by the shell and by board's PID 1) and of signed policy bundles.

pub mod admission;
pub mod b2bua;
pub mod config;
pub mod der;
pub mod dns;
pub mod http;
pub mod media;
pub mod metrics;
pub mod netcheck;
pub mod pem;
pub mod policy;
pub mod relay;
pub mod sdp;
pub mod sip;
pub mod srtp;
#[cfg(test)]
mod testutil;
pub mod transaction;
