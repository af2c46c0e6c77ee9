//! Board support for the dialgate appliance: PID 1 of the image
//! (`dialgate-init`), the hardware watchdog, the power key, the hardware
//! RNG, network interfaces (the uplink's DHCP client and the phone side's
//! DHCP server, [`dhcp`], with the server's shell in `dhcpd`) and the
//! firewall ruleset.
//!
//! Every decision is a pure function or struct, unit-tested on the host:
//! the kernel command line ([`cmdline`]), the module load order
//! ([`modules`]), the dm-verity table and slot fallback ([`verity`]), the
//! listening-socket status ([`status`]), restart backoff, the watchdog
//! decision and the power key ([`supervise`]), the firewall ruleset
//! ([`firewall`]), what it opens, from the kit configuration and the
//! signed policy in force ([`allow`], [`copy`]), and its netlink encoding
//! ([`nft`]). The syscalls are in [`sys`] (and the relay's batched UDP
//! calls in `mmsg`), one `unsafe` call per
//! block with a `// SAFETY:` line (clippy enforces both; this is the only
//! crate of the workspace allowed `unsafe`). The boot sequence itself is
//! `src/bin/dialgate-init.rs`; `image/README.md` describes the image.

pub mod allow;
pub mod cmdline;
pub mod copy;
pub mod dhcp;
#[cfg(target_os = "linux")]
pub mod dhcpd;
pub mod firewall;
#[cfg(target_os = "linux")]
pub mod mmsg;
pub mod modules;
pub mod nft;
pub mod status;
pub mod supervise;
#[cfg(target_os = "linux")]
pub mod sys;
#[cfg(test)]
mod testkit;
pub mod update;
pub mod uplink;
pub mod verity;
