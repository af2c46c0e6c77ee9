//! dialgate's call path.
//!
//! - [`srtp`]: SRTP/SRTCP protect and unprotect (RFC 3711, 6188, 7714), in
//!   place and allocation-free.
//! - [`relay`]: the media relay that re-encrypts every packet between two
//!   call legs, as a sans-IO core plus a thin socket layer.
//! - [`sip`]: the SIP message codec (parser, printer, stream framer),
//!   strict and bounded.
//!
//! Only the socket layer touches the network, the clock or threads; the
//! cores are fed bytes and `now` and return what to send.

pub mod relay;
pub mod sip;
pub mod srtp;
