//! dm-verity: the table for one root slot and the slot decision.
//!
//! Layout of a slot partition (written by `image/build` with
//! `veritysetup format --no-superblock --hash-offset`): the squashfs padded
//! to whole 4096-byte blocks, then the hash tree. The root hash and salt
//! come from the kernel command line, never from the disk.

use crate::cmdline::Slot;

/// Data and hash block size.
pub const BLOCK: u64 = 4096;

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The `linear` target that exposes a slot's root data when it sits at
/// an offset of its device (a firmware slot): (length in sectors,
/// parameters). `None` for a root at the start of its device.
pub fn data_window(slot: &Slot) -> Option<(u64, String)> {
    (slot.offset_blocks > 0).then(|| {
        (
            slot.data_blocks * (BLOCK / 512),
            format!("{} {}", slot.device, slot.offset_blocks * (BLOCK / 512)),
        )
    })
}

/// The device-mapper target line for `slot`: (length in 512-byte sectors,
/// target parameters) of a `verity` target reading data from `data` (the
/// node for the partition, or for [`data_window`]) and the hash tree from
/// the slot's device, right after the data. Version 1 format, SHA-256;
/// any corruption makes reads fail with EIO (the kernel's default mode).
pub fn table(slot: &Slot, data: &str, salt: &[u8]) -> (u64, String) {
    let sectors = slot.data_blocks * (BLOCK / 512);
    let params = format!(
        "1 {data} {device} {BLOCK} {BLOCK} {blocks} {hash_start} sha256 {root} {salt}",
        device = slot.device,
        blocks = slot.data_blocks,
        // The hash tree starts right after the data, in hash-block units.
        hash_start = slot.offset_blocks + slot.data_blocks,
        root = hexs(&slot.root_hash),
        salt = if salt.is_empty() {
            "-".to_string()
        } else {
            hexs(salt)
        },
    );
    (sectors, params)
}

/// What happened to one slot when PID 1 tried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotOutcome {
    /// Verified end to end and mounted.
    Good,
    /// Refused, with the reason for the console.
    Bad(String),
}

/// The slot to try next: the first in preference order not yet tried.
/// `None` when every slot was tried and refused: the boot fails (and with
/// `panic=-1` the board resets rather than serving an unverified root).
pub fn next_slot<'a>(slots: &'a [Slot], tried: &[(char, SlotOutcome)]) -> Option<&'a Slot> {
    slots
        .iter()
        .find(|s| !tried.iter().any(|(n, _)| *n == s.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: char) -> Slot {
        let mut root_hash = [0u8; 32];
        root_hash[0] = 0xab;
        root_hash[31] = 0x01;
        Slot {
            name,
            device: format!("/dev/vda{}", if name == 'a' { 1 } else { 2 }),
            data_blocks: 1000,
            root_hash,
            offset_blocks: 0,
        }
    }

    #[test]
    fn table_matches_the_veritysetup_layout() {
        let (len, params) = table(&slot('a'), "/dev/vda1", &[0xde, 0xad]);
        assert_eq!(len, 8000);
        assert_eq!(
            params,
            format!(
                "1 /dev/vda1 /dev/vda1 4096 4096 1000 1000 sha256 ab{}01 dead",
                "00".repeat(30)
            )
        );
        assert!(table(&slot('a'), "/dev/x", &[]).1.ends_with(" -"));
        assert_eq!(data_window(&slot('a')), None);
    }

    #[test]
    fn a_root_at_an_offset_reads_data_through_a_window_and_hashes_after_it() {
        let mut s = slot('b');
        (s.device, s.offset_blocks) = ("/dev/vda".into(), 300);
        assert_eq!(data_window(&s), Some((8000, "/dev/vda 2400".into())));
        let (len, params) = table(&s, "/dev/root-b-data", &[1]);
        assert_eq!(len, 8000);
        assert!(
            params.starts_with("1 /dev/root-b-data /dev/vda 4096 4096 1000 1300 sha256 "),
            "{params}"
        );
    }

    #[test]
    fn a_refused_slot_falls_through_to_the_next_then_none() {
        let slots = [slot('a'), slot('b')];
        assert_eq!(next_slot(&slots, &[]).unwrap().name, 'a');
        let tried = [('a', SlotOutcome::Bad("EIO at block 7".into()))];
        assert_eq!(next_slot(&slots, &tried).unwrap().name, 'b');
        let tried = [
            ('a', SlotOutcome::Bad("EIO".into())),
            ('b', SlotOutcome::Bad("EIO".into())),
        ];
        assert!(next_slot(&slots, &tried).is_none());
    }
}
