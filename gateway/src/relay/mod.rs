//! The media relay: the sans-IO core is `dialgate_proto::relay`
//! (re-exported here); [`net`] is its socket thread.

pub use dialgate_proto::relay::*;

pub mod net;
