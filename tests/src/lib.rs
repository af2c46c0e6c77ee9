//! Shared helpers for dialgate's end-to-end tests and benchmarks: drivers
//! for the real peers the tests run against.

pub mod kit;
pub mod libsrtp;
pub mod rtpengine;
