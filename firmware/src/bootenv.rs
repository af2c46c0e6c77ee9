//! The boot state U-Boot's boot script reads to choose a slot, and its
//! durable form: U-Boot's own *redundant environment* format, so the
//! bootloader reads it natively (`CONFIG_SYS_REDUNDAND_ENVIRONMENT`, two copies at
//! `CONFIG_ENV_OFFSET` and `CONFIG_ENV_OFFSET_REDUND`).
//!
//! # One copy (U-Boot `env_t` with the redundant flags byte)
//!
//! ```text
//! offset 0  crc32   u32 little-endian, IEEE CRC-32 (zlib) of `data`
//! offset 4  flags   u8, a generation counter: each save writes the copy
//!                   that is not current, with flags + 1 (wrapping)
//! offset 5  data    "name=value\0" ... "\0", zero-padded to the copy size
//! ```
//!
//! Which copy wins follows U-Boot's `env_check_redund` (`env/common.c`): a copy is
//! considered only if its CRC matches; of two, the one with the higher
//! flags wins, where 0 beats 255 (the counter wrapped); equal flags pick
//! the first. A save writes only the losing copy, so a torn save leaves
//! the winner untouched and the previous state boots.
//!
//! # Variables
//!
//! `BOOT_ORDER` (`A B` or `B A`) and `BOOT_A_LEFT` / `BOOT_B_LEFT` (tries
//! left, 0 to 3) are the names RAUC's U-Boot integration uses.
//! `dialgate_committed` (`A` or `B`) and `dialgate_floor` (the firmware
//! anti-rollback floor, decimal) are ours: unlike RAUC's script, a
//! committed slot boots without spending a try (see
//! [`crate::update::choose_slot`]). Any other variable (U-Boot's own
//! `bootcmd`, ...) is kept as it is, in order.

use std::fmt;

use crate::block::BlockDevice;
use crate::error::EnvError;

/// One of the two firmware slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// 0 for A, 1 for B.
    pub fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    fn letter(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }

    fn parse(s: &str) -> Option<Slot> {
        match s {
            "A" => Some(Slot::A),
            "B" => Some(Slot::B),
            _ => None,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}

/// Most tries a slot may be given (RAUC's default is 3; we arm with 1).
pub const MAX_TRIES: u8 = 3;

/// The boot state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootEnv {
    /// The order the bootloader considers the slots in.
    pub order: [Slot; 2],
    /// Tries left per slot (indexed by [`Slot::index`]); counts only for
    /// a slot that is not committed.
    pub tries: [u8; 2],
    /// The slot that proved healthy last: always bootable.
    pub committed: Slot,
    /// The firmware anti-rollback floor: the committed slot's version.
    pub floor: u64,
    /// Other variables, kept verbatim.
    pub other: Vec<(String, String)>,
}

impl BootEnv {
    /// A freshly provisioned kit: `committed` at version `floor`, the
    /// other slot empty.
    pub fn provisioned(committed: Slot, floor: u64) -> BootEnv {
        BootEnv {
            order: [committed, committed.other()],
            tries: [0, 0],
            committed,
            floor,
            other: Vec::new(),
        }
    }

    /// Tries left for `slot`.
    pub fn tries(&self, slot: Slot) -> u8 {
        self.tries[slot.index()]
    }

    /// The `name=value` pairs, ours first.
    fn vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                "BOOT_ORDER".to_string(),
                format!("{} {}", self.order[0], self.order[1]),
            ),
            ("BOOT_A_LEFT".to_string(), self.tries[0].to_string()),
            ("BOOT_B_LEFT".to_string(), self.tries[1].to_string()),
            ("dialgate_committed".to_string(), self.committed.to_string()),
            ("dialgate_floor".to_string(), self.floor.to_string()),
        ];
        v.extend(self.other.iter().cloned());
        v
    }

    /// The `data` area: `name=value\0`... `\0`, zero-padded to `size`.
    pub fn encode_data(&self, size: usize) -> Result<Vec<u8>, EnvError> {
        let mut out = Vec::with_capacity(size);
        let vars = self.vars();
        for (i, (k, v)) in vars.iter().enumerate() {
            // What decode_data would refuse is never written: a copy that
            // passes its CRC but does not parse would hide the good one.
            let bad = k.is_empty()
                || k.contains('=')
                || k.bytes().chain(v.bytes()).any(|c| c.is_ascii_control())
                || vars[..i].iter().any(|(o, _)| o == k);
            if bad {
                return Err(EnvError::BadVariable { name: k.clone() });
            }
        }
        for (k, v) in vars {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out.push(0);
        if out.len() > size {
            return Err(EnvError::TooLarge { size });
        }
        out.resize(size, 0);
        Ok(out)
    }

    /// Parses a `data` area. `None` unless our five variables are present
    /// once each and spelled as [`BootEnv::encode_data`] writes them, and
    /// everything after the terminating empty string is zero.
    pub fn decode_data(data: &[u8]) -> Option<BootEnv> {
        let end = data.windows(2).position(|w| w == [0, 0])?;
        if data[end + 2..].iter().any(|b| *b != 0) {
            return None;
        }
        let text = std::str::from_utf8(&data[..end]).ok()?;
        let (mut order, mut a, mut b, mut committed, mut floor) = (None, None, None, None, None);
        let mut other: Vec<(String, String)> = Vec::new();
        if text.is_empty() {
            return None;
        }
        for pair in text.split('\0') {
            let (k, v) = pair.split_once('=')?;
            if k.is_empty() || v.bytes().any(|c| c.is_ascii_control()) {
                return None;
            }
            let slot = match k {
                "BOOT_ORDER" => &mut order,
                "BOOT_A_LEFT" => &mut a,
                "BOOT_B_LEFT" => &mut b,
                "dialgate_committed" => &mut committed,
                "dialgate_floor" => &mut floor,
                _ => {
                    if other.iter().any(|(o, _)| o == k) {
                        return None;
                    }
                    other.push((k.to_string(), v.to_string()));
                    continue;
                }
            };
            if slot.replace(v).is_some() {
                return None;
            }
        }
        let order = match order? {
            "A B" => [Slot::A, Slot::B],
            "B A" => [Slot::B, Slot::A],
            _ => return None,
        };
        let tries = [tries(a?)?, tries(b?)?];
        let committed = Slot::parse(committed?)?;
        let floor_s = floor?;
        let floor: u64 = floor_s.parse().ok()?;
        if floor.to_string() != floor_s {
            return None;
        }
        Some(BootEnv {
            order,
            tries,
            committed,
            floor,
            other,
        })
    }
}

fn tries(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [d @ b'0'..=b'9'] if d - b'0' <= MAX_TRIES => Some(d - b'0'),
        _ => None,
    }
}

/// IEEE CRC-32 as zlib and U-Boot compute it (reflected, polynomial
/// 0xEDB88320, initial and final XOR 0xFFFFFFFF).
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for b in bytes {
        c = TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Header bytes of a copy: CRC-32 and flags.
pub const COPY_HEADER: usize = 5;

/// Encodes one copy of `size` octets (U-Boot's `CONFIG_ENV_SIZE`).
pub fn encode_copy(env: &BootEnv, flags: u8, size: usize) -> Result<Vec<u8>, EnvError> {
    let data = env.encode_data(size.saturating_sub(COPY_HEADER))?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&crc32(&data).to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&data);
    Ok(out)
}

/// The flags of a copy whose CRC matches, else `None`.
fn valid_flags(copy: &[u8]) -> Option<u8> {
    let (crc, rest) = copy.split_first_chunk::<4>()?;
    let (flags, data) = rest.split_first()?;
    (u32::from_le_bytes(*crc) == crc32(data)).then_some(*flags)
}

/// Picks the current copy as U-Boot's `env_check_redund` does: returns
/// its index (0 or 1) and flags, or `None` if neither CRC matches.
pub fn current_copy(copies: [&[u8]; 2]) -> Option<(usize, u8)> {
    match (valid_flags(copies[0]), valid_flags(copies[1])) {
        (None, None) => None,
        (Some(f), None) => Some((0, f)),
        (None, Some(f)) => Some((1, f)),
        (Some(f1), Some(f2)) => {
            if f1 == 255 && f2 == 0 {
                Some((1, f2))
            } else if f2 == 255 && f1 == 0 {
                Some((0, f1))
            } else if f2 > f1 {
                Some((1, f2))
            } else {
                Some((0, f1))
            }
        }
    }
}

/// Where the two copies live on the boot-state device (never inside a
/// slot, so no firmware image can overwrite them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvLocation {
    /// Byte offsets of copy 1 and copy 2.
    pub offsets: [u64; 2],
    /// Size of each copy (U-Boot's `CONFIG_ENV_SIZE`).
    pub size: usize,
}

/// A boot environment as read: its value and which copy it came from,
/// needed to save the next one over the other copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnv {
    /// The environment.
    pub env: BootEnv,
    /// The copy it was read from (0 or 1).
    pub copy: usize,
    /// That copy's generation flags.
    pub flags: u8,
}

impl EnvLocation {
    /// Reads both copies and returns the current one, parsed.
    pub fn read<D: BlockDevice>(&self, dev: &mut D) -> Result<StoredEnv, EnvError> {
        let mut c0 = vec![0u8; self.size];
        let mut c1 = vec![0u8; self.size];
        dev.read_at(self.offsets[0], &mut c0)?;
        dev.read_at(self.offsets[1], &mut c1)?;
        let (copy, flags) = current_copy([&c0, &c1]).ok_or(EnvError::NoValidCopy)?;
        let chosen = if copy == 0 { &c0 } else { &c1 };
        let env = BootEnv::decode_data(&chosen[COPY_HEADER..]).ok_or(EnvError::NoValidCopy)?;
        Ok(StoredEnv { env, copy, flags })
    }

    /// Saves `env` as U-Boot's `saveenv` does with a redundant
    /// environment: over the copy that is not current, with the next
    /// flags, then a flush. Returns what a later read will find.
    pub fn write<D: BlockDevice>(
        &self,
        dev: &mut D,
        current: &StoredEnv,
        env: &BootEnv,
    ) -> Result<StoredEnv, EnvError> {
        let copy = 1 - current.copy.min(1);
        let flags = current.flags.wrapping_add(1);
        let bytes = encode_copy(env, flags, self.size)?;
        dev.write_at(self.offsets[copy], &bytes)?;
        dev.flush()?;
        Ok(StoredEnv {
            env: env.clone(),
            copy,
            flags,
        })
    }

    /// Writes both copies of a provisioned kit (the factory step).
    pub fn provision<D: BlockDevice>(&self, dev: &mut D, env: &BootEnv) -> Result<(), EnvError> {
        dev.write_at(self.offsets[0], &encode_copy(env, 1, self.size)?)?;
        dev.write_at(self.offsets[1], &encode_copy(env, 0, self.size)?)?;
        dev.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{CutMode, LossyDevice, MemDevice};

    const LOC: EnvLocation = EnvLocation {
        offsets: [0, 4096],
        size: 4096,
    };

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn data_round_trips_and_is_strict() {
        let mut env = BootEnv::provisioned(Slot::A, 7);
        env.other
            .push(("bootcmd".into(), "run dialgate_boot".into()));
        let data = env.encode_data(256).unwrap();
        assert!(data.starts_with(b"BOOT_ORDER=A B\0BOOT_A_LEFT=0\0"));
        assert_eq!(BootEnv::decode_data(&data), Some(env.clone()));
        let text = String::from_utf8(data.clone()).unwrap();
        for bad in [
            text.replace("A B", "A A"),
            text.replace("BOOT_A_LEFT=0", "BOOT_A_LEFT=4"),
            text.replace("BOOT_A_LEFT=0", "BOOT_A_LEFT=00"),
            text.replace("dialgate_floor=7", "dialgate_floor=07"),
            text.replace("dialgate_floor=7", "dialgate_floor=-7"),
            text.replace("dialgate_committed=A", "dialgate_committed=C"),
            text.replace("dialgate_floor=7\0", ""),
            text.replace("bootcmd", "BOOT_B_LEFT"),
            text.replace("\0\0", "\0\0x"),
            text.replace("bootcmd=", "bootcmd"),
            String::new(),
        ] {
            assert_eq!(BootEnv::decode_data(bad.as_bytes()), None, "{bad:?}");
        }
        assert!(env.encode_data(20).is_err());
        for (k, v) in [
            ("", "x"),
            ("a=b", "x"),
            ("x", "a\0b"),
            ("BOOT_ORDER", "A B"),
        ] {
            let mut bad = env.clone();
            bad.other.push((k.into(), v.into()));
            assert!(matches!(
                bad.encode_data(256),
                Err(EnvError::BadVariable { .. })
            ));
        }
    }

    #[test]
    fn random_bytes_never_panic_the_decoders() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let good = encode_copy(&BootEnv::provisioned(Slot::B, 9), 3, 256).unwrap();
        for i in 0..5000 {
            let mut copy = good.clone();
            for _ in 0..(i % 7 + 1) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % copy.len();
                copy[at] = (x >> 32) as u8;
            }
            let _ = BootEnv::decode_data(&copy[COPY_HEADER..]);
            let _ = current_copy([&copy, &good]);
            let _ = current_copy([&copy[..(x as usize) % copy.len()], &copy]);
        }
    }

    #[test]
    fn newest_valid_copy_wins_like_u_boot() {
        let a = encode_copy(&BootEnv::provisioned(Slot::A, 1), 9, 128).unwrap();
        let b = encode_copy(&BootEnv::provisioned(Slot::B, 2), 10, 128).unwrap();
        assert_eq!(current_copy([&a, &b]), Some((1, 10)));
        assert_eq!(current_copy([&b, &a]), Some((0, 10)));
        let wrap0 = encode_copy(&BootEnv::provisioned(Slot::A, 1), 0, 128).unwrap();
        let wrap255 = encode_copy(&BootEnv::provisioned(Slot::A, 1), 255, 128).unwrap();
        assert_eq!(current_copy([&wrap255, &wrap0]), Some((1, 0)));
        assert_eq!(current_copy([&wrap0, &wrap255]), Some((0, 0)));
        assert_eq!(current_copy([&a, &a]), Some((0, 9)));
        let mut torn = b.clone();
        torn[40] ^= 1;
        assert_eq!(current_copy([&a, &torn]), Some((0, 9)));
        assert_eq!(current_copy([&torn, &torn]), None);
    }

    #[test]
    fn a_torn_save_keeps_the_previous_state_and_generations_alternate() {
        let mut dev = MemDevice::new(8192);
        let env0 = BootEnv::provisioned(Slot::A, 1);
        LOC.provision(&mut dev, &env0).unwrap();
        let s0 = LOC.read(&mut dev).unwrap();
        assert_eq!((s0.copy, s0.flags), (0, 1));
        let mut env1 = env0.clone();
        env1.floor = 2;
        let s1 = LOC.write(&mut dev, &s0, &env1).unwrap();
        assert_eq!(LOC.read(&mut dev).unwrap(), s1);
        assert_eq!(s1.copy, 1);
        // Every torn shape of the next save leaves env1 or env2 in force.
        let mut env2 = env1.clone();
        env2.floor = 3;
        for blocks in 0..=8 {
            for mode in [
                CutMode::TornAt { blocks },
                CutMode::DropUnflushed,
                CutMode::KeepUnflushed,
            ] {
                for cut in 0..2 {
                    let mut lossy = LossyDevice::new(dev.bytes().to_vec(), Some(cut), mode);
                    assert!(LOC.write(&mut lossy, &s1, &env2).is_err());
                    let mut after = lossy.after_power_cut();
                    let got = LOC.read(&mut after).unwrap().env;
                    assert!(got == env1 || got == env2, "{mode:?} cut {cut}: {got:?}");
                    // A write cut before any block landed changes nothing.
                    // (A torn copy whose landed blocks are all that differ
                    // from the stale copy is the new environment, whole.)
                    if cut == 0 && !matches!(mode, CutMode::TornAt { blocks } if blocks > 0) {
                        assert_eq!(got, env1, "{mode:?}");
                    }
                }
            }
        }
        // Both copies garbage: an error, never a default (the floor would
        // drop to nothing).
        let mut wiped = MemDevice::new(8192);
        assert!(matches!(LOC.read(&mut wiped), Err(EnvError::NoValidCopy)));
    }
}
