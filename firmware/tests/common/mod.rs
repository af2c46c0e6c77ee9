//! Shared fixtures: a kit, a layout, deterministic images and bundles.
#![allow(dead_code)]

use dialgate_firmware::*;
use dialgate_signed::SigningKey;

pub const MODEL: &str = "dialgate-pi4";
pub const ENV_SIZE: usize = 4096;

/// Two env copies, then two slots of `slot_len` bytes each.
pub fn layout(slot_len: u64) -> Layout {
    let base = 2 * ENV_SIZE as u64;
    Layout {
        env: EnvLocation {
            offsets: [0, ENV_SIZE as u64],
            size: ENV_SIZE,
        },
        slots: [
            Region {
                offset: base,
                len: slot_len,
            },
            Region {
                offset: base + slot_len,
                len: slot_len,
            },
        ],
    }
}

pub fn device_len(layout: &Layout) -> usize {
    (layout.slots[1].offset + layout.slots[1].len) as usize
}

pub fn kit(key: &SigningKey, layout: Layout) -> Kit {
    Kit {
        key: key.public_key().clone(),
        model: MODEL.into(),
        layout,
        slot_devices: ["/dev/vda1".into(), "/dev/vda2".into()],
    }
}

/// Deterministic bytes that differ per `seed` (xorshift).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The images of `version`, sizes `sizes`.
pub fn images(version: u64, sizes: [usize; 3]) -> [Vec<u8>; 3] {
    [
        bytes(version * 3, sizes[0]),
        bytes(version * 3 + 1, sizes[1]),
        bytes(version * 3 + 2, sizes[2]),
    ]
}

pub fn manifest(version: u64, replaces: u64, imgs: &[Vec<u8>; 3]) -> Manifest {
    describe(
        version,
        MODEL,
        replaces,
        1_767_225_600 + version,
        [&imgs[0], &imgs[1], &imgs[2]],
        dialgate_signed::sha256(&imgs[2]),
    )
}

pub fn bundle(version: u64, replaces: u64, sizes: [usize; 3], key: &SigningKey) -> Vec<u8> {
    let imgs = images(version, sizes);
    let m = manifest(version, replaces, &imgs);
    build_bundle(&m, [&imgs[0], &imgs[1], &imgs[2]], key).expect("bundle builds")
}

pub fn healthy() -> Health {
    Health {
        ready: true,
        self_test: true,
        management_reachable: true,
    }
}

/// A provisioned kit: env says `slot` committed at `version`, and `slot`
/// holds a verified install of `version` (written as the factory would:
/// the same code path, onto the other slot first, then swapped).
pub fn provisioned(
    key: &SigningKey,
    layout: Layout,
    slot: Slot,
    version: u64,
    sizes: [usize; 3],
) -> MemDevice {
    let kit = kit(key, layout);
    let mut dev = MemDevice::new(device_len(&layout));
    // Factory: install `version` into `slot` by pretending the other slot
    // is committed at version - 1, then commit it.
    layout
        .env
        .provision(&mut dev, &BootEnv::provisioned(slot.other(), version - 1))
        .expect("provision");
    let b = bundle(version, 0, sizes, key);
    let mut buf = vec![0u8; 4096];
    install(
        &kit,
        &mut dev,
        slot.other(),
        version - 1,
        &mut &b[..],
        &mut buf,
    )
    .expect("factory install");
    let stored = layout.env.read(&mut dev).expect("env");
    let (booted, env) = choose_slot(&stored.env);
    assert_eq!(booted, slot);
    layout.env.write(&mut dev, &stored, &env).expect("env");
    commit(&kit, &mut dev, slot, healthy(), &mut buf).expect("factory commit");
    dev
}
