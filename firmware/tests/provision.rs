//! Factory provisioning and the bootloader's variables: both slots
//! written and verified, slot A committed at the bundle's version, and
//! each slot's boot variables derived from its verified manifest; an
//! install rewrites the target's variables in the save that arms it.

mod common;

use common::*;
use dialgate_firmware::*;
use dialgate_signed::SigningKey;

fn var<'a>(env: &'a BootEnv, name: &str) -> &'a str {
    env.other
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {:?}", env.other))
}

#[test]
fn provisioning_writes_both_slots_and_their_boot_variables() {
    let key = SigningKey::generate().unwrap();
    let layout = layout(256 << 10);
    let kit = kit(&key, layout);
    let mut dev = MemDevice::new(device_len(&layout));
    let b3 = bundle(3, 1, [9000, 5000, 20_000], &key);
    let mut buf = [0u8; 4096];
    let [a, b] = provision(&kit, &mut dev, &mut &b3[..], &mut buf).unwrap();
    assert_eq!(
        (a.slot(), a.version(), b.slot(), b.version()),
        (Slot::A, 3, Slot::B, 3)
    );
    let env = layout.env.read(&mut dev).unwrap().env;
    assert_eq!((env.committed, env.floor, env.tries), (Slot::A, 3, [0, 0]));
    assert_eq!(choose_slot(&env).0, Slot::A);

    // Kernel right after the prefix area, in 512-byte sectors, hex.
    let a_k = layout.slots[0].offset + 69632;
    let load = var(&env, "A_load");
    assert!(
        load.starts_with(&format!(
            "setenv kblk 0x{:x}; setenv kcnt 0x{:x}; ",
            a_k / 512,
            9000u64.div_ceil(512)
        )),
        "{load}"
    );
    assert!(
        load.ends_with(&format!("setenv isize 0x{:x}", 5000)),
        "{load}"
    );
    assert!(var(&env, "B_load").starts_with(&format!(
        "setenv kblk 0x{:x};",
        (layout.slots[1].offset + 69632) / 512
    )));
    let root = dialgate_signed::hex(&a.manifest().manifest().verity_root_hash);
    let args = var(&env, "A_args");
    assert!(args.starts_with("dialgate.slot=a:/dev/vda1:4:"), "{args}");
    // The root's offset inside the slot: prefix area, kernel, initramfs.
    assert!(
        args.contains(&format!(":{} ", (69632 + 12288 + 8192) / 4096)),
        "{args}"
    );
    assert!(var(&env, "B_args").starts_with("dialgate.slot=b:/dev/vda2:"));
    assert!(
        args.contains(&root) && args.ends_with("dialgate.version=3"),
        "{args}"
    );

    // A bundle another key signed is refused, and nothing is written.
    let other = SigningKey::generate().unwrap();
    let mut blank = MemDevice::new(device_len(&layout));
    let forged = bundle(3, 1, [9000, 5000, 20_000], &other);
    assert!(provision(&kit, &mut blank, &mut &forged[..], &mut buf).is_err());
    assert!(layout.env.read(&mut blank).is_err());

    // An update to 4 arms B and gives B its new variables in that save.
    let b4 = bundle(4, 3, [7000, 5000, 30_000], &key);
    let armed = install(&kit, &mut dev, Slot::A, 3, &mut &b4[..], &mut buf).unwrap();
    assert_eq!(
        armed,
        Progress::Armed {
            slot: Slot::B,
            version: 4
        }
    );
    let env = layout.env.read(&mut dev).unwrap().env;
    assert!(var(&env, "B_load").contains(&format!("setenv kcnt 0x{:x};", 7000u64.div_ceil(512))));
    assert!(var(&env, "B_args").ends_with("dialgate.version=4"));
    assert!(var(&env, "A_args").ends_with("dialgate.version=3"));
}
