//! Board support for the dialgate appliance: PID 1 of the image, the
//! hardware watchdog, LEDs, power key and panic button, the hardware RNG,
//! network interfaces, the default-deny firewall and key storage.
//!
//! **Not built yet.** This crate is reserved by the workspace layout
//! (`../shared/DESIGN.md`) and is the work of the issue "The appliance
//! image: board support and a verified aarch64 root". It is the only crate
//! of the workspace allowed `unsafe` code; every block must carry a
//! `// SAFETY:` comment, which clippy enforces (see `Cargo.toml`).
