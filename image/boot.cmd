# dialgate's U-Boot boot script (hush), for qemu `virt` as for a Pi 4.
# image/build wraps it with mkimage; U-Boot's own environment (bootcmd,
# in the bootloader's flash, never written by the kit) sources it.
#
# The boot state is the kit's redundant environment on the disk, in the
# gap before the first partition (dialgate_firmware::appliance_layout):
# two copies of 16 KiB at sectors 0x200 and 0x400, each
#   crc32 (4, little-endian, over the data) | flags (1) | data
# exactly as U-Boot's CONFIG_SYS_REDUNDAND_ENVIRONMENT lays them out. This
# script does by hand what that option does (this U-Boot keeps its own
# environment in flash): the copy with the higher flags wins (0 beats
# 255), a copy whose CRC fails is ignored, and a save writes the other
# copy with flags + 1.
#
# The choice is dialgate_firmware::choose_slot:
#   for s in BOOT_ORDER: the committed slot boots without a try spent and
#   without a write; another slot with tries left spends one (saved before
#   booting) and boots; otherwise the committed slot boots.
# Each slot's kernel, initramfs and arguments come from the variables the
# kit saved when it armed (or the factory provisioned) that slot
# (dialgate_firmware::Layout::boot_vars):
#   X_load  sets kblk kcnt (kernel sectors), iblk icnt isize (initramfs)
#   X_args  dialgate.slot=... dialgate.version=...

echo "dialgate: reading the boot environment"
virtio scan
virtio dev 0
virtio read 0x4a000000 0x200 0x20
virtio read 0x4a100000 0x400 0x20

# Which copy to try first (env_check_redund's rule on the flags bytes).
setenv first 1
if itest.b *0x4a000004 == 0 && itest.b *0x4a100004 == 0xff; then
    setenv first 1
elif itest.b *0x4a100004 == 0 && itest.b *0x4a000004 == 0xff; then
    setenv first 2
elif itest.b *0x4a100004 > *0x4a000004; then
    setenv first 2
fi
setexpr.b nf1 *0x4a000004 + 1
setexpr.b nf2 *0x4a100004 + 1

# `env import -c` wants crc32 right before the data: move each copy's CRC
# one byte up, over its flags (read above).
cp.b 0x4a000000 0x4a300000 4
cp.b 0x4a300000 0x4a000001 4
cp.b 0x4a100000 0x4a300000 4
cp.b 0x4a300000 0x4a100001 4

setenv cur
if test "${first}" = 1; then
    if env import -c 0x4a000001 0x3fff; then setenv cur 1;
    elif env import -c 0x4a100001 0x3fff; then setenv cur 2; fi
else
    if env import -c 0x4a100001 0x3fff; then setenv cur 2;
    elif env import -c 0x4a000001 0x3fff; then setenv cur 1; fi
fi
if test -z "${cur}"; then
    # Cannot follow from a power cut (a save touches one copy); the kit
    # refuses to run on it too. Boot the factory slot without writing.
    echo "dialgate: NO VALID BOOT ENVIRONMENT: booting slot A, nothing saved"
    setenv dialgate_committed A
    setenv BOOT_ORDER "A B"
    setenv BOOT_A_LEFT 0
    setenv BOOT_B_LEFT 0
fi

setenv slot
setenv save
for s in ${BOOT_ORDER}; do
    if test -z "${slot}"; then
        if test "${s}" = "${dialgate_committed}"; then
            setenv slot ${s}
        elif test "${s}" = A && itest ${BOOT_A_LEFT} > 0; then
            setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
            setenv slot A
            setenv save 1
        elif test "${s}" = B && itest ${BOOT_B_LEFT} > 0; then
            setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
            setenv slot B
            setenv save 1
        fi
    fi
done
if test -z "${slot}"; then setenv slot ${dialgate_committed}; fi

if test "${save}" = 1; then
    # The try is spent before the trial boots: a reset during it falls
    # back. The variables the kit owns, nothing of U-Boot's own.
    # (At most 16 words on a command line: 6 + 9 variables.)
    if env export -c -s 0x3fff 0x4a200000 BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT dialgate_committed dialgate_floor A_load A_args B_load B_args; then
        echo "dialgate: boot environment exported"
    else
        echo "dialgate: SAVING THE BOOT ENVIRONMENT FAILED: booting the committed slot"
        setenv slot ${dialgate_committed}
        setenv cur 0
    fi
    if test "${cur}" = 0; then
        echo "dialgate: nothing saved"
    elif test "${cur}" = 1; then
        cp.b 0x4a200000 0x4a100000 4
        mw.b 0x4a100004 ${nf1}
        cp.b 0x4a200004 0x4a100005 0x3ffb
        virtio write 0x4a100000 0x400 0x20
    else
        cp.b 0x4a200000 0x4a000000 4
        mw.b 0x4a000004 ${nf2}
        cp.b 0x4a200004 0x4a000005 0x3ffb
        virtio write 0x4a000000 0x200 0x20
    fi
    if test "${cur}" != 0; then echo "dialgate: slot ${slot} on trial (try spent)"; fi
fi

if test "${slot}" = A; then
    run A_load
    setenv args ${A_args}
else
    run B_load
    setenv args ${B_args}
fi
echo "dialgate: booting slot ${slot}"
# Our own load addresses (the flash environment replaces U-Boot's default
# one): the kernel at 64 MiB into RAM, the initramfs 128 MiB in, both
# below the scratch buffers at 0x4a000000 and U-Boot at the top.
virtio read 0x44000000 ${kblk} ${kcnt}
virtio read 0x48000000 ${iblk} ${icnt}
setenv bootargs "${dialgate_cmdline} ${args}"
booti 0x44000000 0x48000000:${isize} ${fdtcontroladdr}
echo "dialgate: slot ${slot} did not boot"
reset
