//! Signed update bundles for the dialgate appliance: format, signing,
//! verification, A/B slot install, health-gated commit, rollback and
//! anti-rollback.
//!
//! **Not built yet.** This crate is reserved by the workspace layout
//! (`../shared/DESIGN.md`); the update decision logic will be sans-IO like
//! the rest of the product, so that it can be tested without a disk.
