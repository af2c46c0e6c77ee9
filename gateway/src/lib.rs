//! dialgate's shell: the appliance daemon around the sans-IO cores of
//! [`dialgate_proto`]. It owns every socket, TLS stream, timer, thread and
//! file; the cores are fed bytes and `now` and return what to send.
//!
//! - [`audit`]: the audit trail's spool and its shipper to the home SIEM.
//! - [`daemon`]: `dialgate run`: the listeners, one task per core, policy
//!   watching.
//! - [`tls`]: rustls on both sides (the token verifier on the phone side,
//!   trunk verification on the bridge side).
//! - [`transport`]: the phone-side listener (handshake limits, per-address
//!   slow-down).
//! - [`relay`]: the relay core and its socket thread ([`relay::net`]).
//! - [`netcheck`]: the network check before calls (interception,
//!   captive portal, UDP blocked), the shell of
//!   [`dialgate_proto::netcheck`].
//! - [`status`]: the kit's status (counted from the audit events),
//!   pushed to a Pushgateway at home.
//! - [`dns`]: the stub resolver over UDP (trunks by name), the shell of
//!   [`dialgate_proto::dns`].
//! - [`echo`]: the local test bridge of the demo.
//! - `demo` (feature `demo`, on by default, off in the appliance image):
//!   `dialgate demo`, which needs the home side's PKI to make a dev kit.
//!
//! The protocol modules are re-exported under their usual names so that
//! `dialgate::sip`, `dialgate::sdp`, ... keep working for the tests.

pub use dialgate_proto::{admission, b2bua, config, media, policy, sdp, sip, srtp, transaction};

pub mod audit;
pub mod clock;
pub mod daemon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dns;
pub mod echo;
pub mod files;
pub mod health;
pub mod manage;
pub mod netcheck;
pub mod relay;
pub mod status;
pub mod tls;
pub mod transport;
