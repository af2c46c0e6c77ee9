//! Signed A/B firmware updates on the appliance image, booted through
//! U-Boot (Debian's u-boot-qemu, `image/run --uboot`) with the boot script
//! of `image/boot.cmd` choosing the slot from the disk's boot environment:
//!
//! - version 1 boots from slot A; a signed version 2 placed on the data
//!   partition is installed into slot B by PID 1 while the gateway serves,
//!   read back, armed; the kit reboots, U-Boot spends the one try, version
//!   2 proves healthy and is committed (the floor rises to 2), and alice's
//!   token is admitted by it; resets in quick succession during the
//!   committed boot never revert it;
//! - a version 3 whose root does not verify (its signed dm-verity root
//!   hash is wrong) is installed and armed, fails its trial boot, and the
//!   bootloader falls back to version 2 by itself;
//! - bundles signed by another key, for another model, tampered, or not
//!   above the floor are refused with the reason, and nothing is armed;
//! - `kill -9` of qemu at random moments during install, trial and commit
//!   (20 cuts; `DIALGATE_FW_CUTS=N` for a longer campaign) always leaves a
//!   kit that boots to READY on a verified slot, and the floor never goes
//!   down.
//!
//! - a version 2 published at HQ (nginx with client certificates, the
//!   kit made with `--hq-url`) is fetched by the appliance over its
//!   uplink, installed and trial-booted, and committed only once the new
//!   gateway's self-test call passed and it reached HQ again; fetched once
//!   in all; a release whose trial cannot reach HQ (nginx stopped once it
//!   is armed) is abandoned after the health bound and the kit is back on
//!   version 1 by itself.
//!
//! Needs `image/build` to have run (tests/run does it). Ports: those of
//! `common::appliance` (runs alone, like e2e_image), and HQ's 20561.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::appliance::{baresip, baresip_configs, handshake, workdir, Appliance, IMAGE};
use common::hq::{init_managed_kit, publish_with, Nginx};
use common::{alice_heard_her_tone, bin, init_kit};

/// HQ's HTTPS server (nginx) for the repository test.
const HQ_PORT: u16 = 20561;

fn out() -> PathBuf {
    Path::new(IMAGE).join("out")
}

fn manifest(key: &str) -> String {
    let m = std::fs::read_to_string(out().join("manifest")).expect("image/build ran");
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("manifest lacks {key}"))
        .to_string()
}

/// Signs a bundle of the image's own kernel, initramfs and root as
/// `version`, with `key` (default: image/build's development key), naming
/// `root` as its dm-verity root hash.
fn bundle(dest: &Path, version: u64, key: Option<&Path>, root: &str, extra: &[&str]) {
    let o = out();
    let dev_key = Path::new(IMAGE).join("cache/firmware-dev.pk8");
    let out = Command::new(bin("dialgatectl"))
        .args(["firmware", "build", "--version", &version.to_string()])
        .args(["--verity-root-hash", root])
        .arg("--key")
        .arg(key.unwrap_or(&dev_key))
        .arg("--kernel")
        .arg(o.join("vmlinuz"))
        .arg("--initramfs")
        .arg(o.join("initramfs.img"))
        .arg("--rootfs")
        .arg(o.join("root.img"))
        .args(["--verity-data-blocks", &manifest("root_blocks")])
        .args(extra)
        .arg("--out")
        .arg(dest)
        .output()
        .expect("dialgatectl runs");
    assert!(
        out.status.success(),
        "firmware build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn root_hash() -> String {
    manifest("root_hash")
}

/// A kit whose data partition carries `bundle` as firmware.bundle.
fn kit_with(work: &Path, bundle: Option<&Path>) -> PathBuf {
    let kit = work.join("kit");
    if !kit.exists() {
        init_kit(&kit);
    }
    let dest = kit.join("firmware.bundle");
    let _ = std::fs::remove_file(&dest);
    if let Some(b) = bundle {
        std::fs::copy(b, &dest).unwrap();
    }
    kit
}

fn boot(work: &Path, kit: &Path, disk: &Path) -> Appliance {
    Appliance::boot_with(
        work,
        &[
            "--uboot".into(),
            "--kit".into(),
            kit.display().to_string(),
            "--persist".into(),
            disk.display().to_string(),
        ],
    )
}

fn must(vm: &Appliance, needle: &str, secs: u64) -> Instant {
    vm.wait_line(needle, Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("no {needle:?} within {secs} s:\n{}", vm.console()))
        .0
}

fn must_nth(vm: &Appliance, needle: &str, n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while vm.count(needle) < n {
        assert!(
            Instant::now() < deadline,
            "{needle:?} not seen {n} times within {secs} s:\n{}",
            vm.console()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_update_installs_trial_boots_and_commits_then_survives_resets() {
    let work = workdir("fw-update");
    let b2 = work.join("v2.bundle");
    bundle(&b2, 2, None, &root_hash(), &[]);
    let kit = kit_with(&work, Some(&b2));
    let disk = work.join("disk.img");
    let vm = boot(&work, &kit, &disk);
    let start = must(&vm, "image/run: qemu starting", 30);
    let ready1 = must(&vm, "READY slot=a version=1", 60);
    assert!(vm
        .console()
        .contains("firmware: slot A version 1 committed (floor 1)"));
    let installing = must(&vm, "firmware: installing", 30);
    let armed = must(&vm, "version 2 written to slot B, read back and armed", 120);
    must(&vm, "dialgate: slot B on trial (try spent)", 60);
    let ready2 = must(&vm, "READY slot=b version=2", 60);
    handshake(&kit, "alice").expect("version 2 admits alice");
    assert!(handshake(&kit, "mallory").is_err(), "mallory admitted");
    must(&vm, "firmware: slot B version 2 COMMITTED (floor 2)", 60);
    // PID 1's reports, in the gateway's audit trail: the arming (left
    // before the reboot, recorded by version 2's gateway) and the commit.
    must(&vm, "firmware installed, read back and armed", 15);
    must(&vm, "firmware slot committed, floor raised", 15);
    eprintln!(
        "figures: boot through U-Boot to READY {:?}; install of {} bytes {:?}; armed to READY on the new slot {:?}",
        ready1 - start,
        std::fs::metadata(&b2).unwrap().len(),
        armed - installing,
        ready2 - armed
    );

    // Three resets in quick succession during the committed boot: each is
    // a boot that spends no try, so version 2 stays.
    for _ in 0..3 {
        vm.monitor("system_reset");
        std::thread::sleep(Duration::from_millis(700));
    }
    must_nth(&vm, "READY slot=b version=2", 2, 90);
    let console = vm.console();
    assert_eq!(
        console.matches("on trial (try spent)").count(),
        1,
        "{console}"
    );
    assert!(
        console.contains("slot B version 2 committed (floor 2)"),
        "{console}"
    );
    drop(vm);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_release_published_at_hq_is_fetched_installed_and_committed_once_healthy() {
    let work = workdir("fw-repo");
    let kit = work.join("kit");
    init_managed_kit(&kit, HQ_PORT);
    baresip_configs(&kit);
    let mut nginx = Nginx::new(&work, &kit, HQ_PORT);
    nginx.start();
    let b2 = work.join("v2.bundle");
    bundle(&b2, 2, None, &root_hash(), &[]);
    let published = publish_with(&kit, &["--firmware", b2.to_str().unwrap()]);
    assert!(published.contains("firmware"), "{published}");
    let disk = work.join("disk.img");
    let vm = boot(&work, &kit, &disk);
    must(&vm, "READY slot=a version=1", 60);
    // The appliance reaches HQ from its uplink and fetches the bundle.
    let fetched = must(
        &vm,
        "firmware bundle from the repository written for the firmware agent",
        60,
    );
    let armed = must(&vm, "version 2 written to slot B, read back and armed", 120);
    must(&vm, "dialgate: slot B on trial (try spent)", 60);
    must(&vm, "READY slot=b version=2", 60);
    // Version 2's own word: its self-test call, then HQ reached.
    let self_test = must(&vm, "self-test call passed", 60);
    let committed = must(&vm, "firmware: slot B version 2 COMMITTED (floor 2)", 120);
    assert!(self_test < committed);
    // ... and HQ reached by version 2 before it was committed.
    let console = vm.console();
    let trial = console
        .find("slot B version 2 ON TRIAL")
        .expect("trial line");
    let reached = console[trial..]
        .find("health word for PID 1 written: management reachable")
        .unwrap_or_else(|| panic!("version 2 never reached HQ:\n{console}"));
    let commit = console[trial..].find("COMMITTED (floor 2)").unwrap();
    assert!(reached < commit, "{console}");
    // A call on version 2: alice hears her tone back through it.
    let text = baresip(&kit, "alice", 12);
    assert!(
        text.contains("Call established") && text.contains("SRTP is Enabled"),
        "alice's call on version 2: {text}\n{}",
        vm.console()
    );
    alice_heard_her_tone(&kit).unwrap_or_else(|e| panic!("alice heard: {e}\n{}", vm.console()));
    // Fetched once: the second boot's gateway found it handed over.
    let access = std::fs::read_to_string(work.join("nginx/access.log")).unwrap_or_default();
    assert_eq!(
        access.matches(".firmware.bundle HTTP/1.1\" 200").count(),
        1,
        "{access}"
    );
    eprintln!(
        "figures: fetched to armed {:?}; armed to committed {:?}",
        armed - fetched,
        committed - armed
    );
    drop(vm);
    nginx.stop();
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_release_whose_trial_cannot_reach_hq_is_abandoned_and_the_kit_falls_back() {
    let work = workdir("fw-repo-gone");
    let kit = work.join("kit");
    init_managed_kit(&kit, HQ_PORT);
    let mut nginx = Nginx::new(&work, &kit, HQ_PORT);
    nginx.start();
    let b2 = work.join("v2.bundle");
    bundle(&b2, 2, None, &root_hash(), &[]);
    publish_with(&kit, &["--firmware", b2.to_str().unwrap()]);
    let disk = work.join("disk.img");
    let vm = boot(&work, &kit, &disk);
    must(&vm, "READY slot=a version=1", 60);
    must(&vm, "version 2 written to slot B, read back and armed", 120);
    // HQ goes away before version 2 can poll it.
    nginx.stop();
    let trial = must(&vm, "slot B version 2 ON TRIAL", 60);
    must(&vm, "self-test call passed", 60);
    let (abandoned, line) = vm
        .wait_line("firmware: trial abandoned", Duration::from_secs(240))
        .unwrap_or_else(|| panic!("not abandoned:\n{}", vm.console()));
    assert!(
        line.contains("not healthy within 180 s: self-test passed, management waiting"),
        "{line}"
    );
    must_nth(&vm, "READY slot=a version=1", 2, 120);
    let console = vm.console();
    assert!(!console.contains("COMMITTED"), "{console}");
    assert!(
        console.contains("slot A version 1 committed (floor 1)"),
        "{console}"
    );
    // Version 1's gateway records the agent's report.
    must(
        &vm,
        "firmware trial abandoned: back to the committed slot",
        15,
    );
    handshake(&kit, "alice").expect("version 1 serves after the fallback");
    eprintln!("figures: trial start to abandoned {:?}", abandoned - trial);
    drop(vm);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn a_release_that_fails_its_trial_falls_back_by_itself() {
    let work = workdir("fw-fallback");
    // Signed by the right key, but the root hash it names is not the
    // root's: the trial's dm-verity refuses the root.
    let bad = work.join("v3.bundle");
    let wrong = "11".repeat(32);
    bundle(&bad, 3, None, &wrong, &[]);
    let kit = kit_with(&work, Some(&bad));
    let disk = work.join("disk.img");
    let vm = boot(&work, &kit, &disk);
    must(&vm, "READY slot=a version=1", 60);
    must(&vm, "version 3 written to slot B, read back and armed", 120);
    must(&vm, "dialgate: slot B on trial (try spent)", 60);
    must(&vm, "slot b: REFUSED", 60);
    must_nth(&vm, "READY slot=a version=1", 2, 120);
    let console = vm.console();
    assert!(
        console.contains("FELL BACK from the failed trial of slot B"),
        "{console}"
    );
    assert!(!console.contains("COMMITTED"), "{console}");
    must(
        &vm,
        "the bootloader fell back from a trial that never committed",
        15,
    );
    handshake(&kit, "alice").expect("version 1 serves after the fallback");
    drop(vm);
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn bundles_that_must_not_install_are_refused() {
    let work = workdir("fw-refused");
    let other_key = work.join("other.pk8");
    let st = Command::new(bin("dialgatectl"))
        .args(["firmware", "keygen", "--out"])
        .arg(&other_key)
        .output()
        .unwrap();
    assert!(st.status.success());
    let wrong_key = work.join("wrong-key.bundle");
    bundle(&wrong_key, 2, Some(&other_key), &root_hash(), &[]);
    let wrong_model = work.join("wrong-model.bundle");
    bundle(
        &wrong_model,
        2,
        None,
        &root_hash(),
        &["--model", "dialgate-pi4"],
    );
    let old = work.join("old.bundle");
    bundle(&old, 1, None, &root_hash(), &[]);
    let tampered = work.join("tampered.bundle");
    bundle(&tampered, 2, None, &root_hash(), &[]);
    let mut bytes = std::fs::read(&tampered).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&tampered, bytes).unwrap();

    for (file, reason) in [
        (&wrong_key, "firmware manifest refused"),
        (&wrong_model, "is for model \"dialgate-pi4\""),
        (&old, "not above this kit's floor 1"),
        (&tampered, "does not match its signed hash"),
    ] {
        let kit = kit_with(&work, Some(file));
        let disk = work.join(format!(
            "{}.img",
            file.file_stem().unwrap().to_string_lossy()
        ));
        let vm = boot(&work, &kit, &disk);
        must(&vm, "READY slot=a version=1", 60);
        let (_, line) = vm
            .wait_line("firmware: bundle REFUSED", Duration::from_secs(120))
            .unwrap_or_else(|| panic!("{file:?} not refused:\n{}", vm.console()));
        assert!(line.contains(reason), "{file:?}: {line}");
        // The gateway records PID 1's report in the audit trail.
        vm.wait_line(
            "firmware bundle refused by the kit",
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| panic!("{file:?}: no audit record:\n{}", vm.console()));
        assert!(!vm.console().contains("armed"), "{}", vm.console());
        handshake(&kit, "alice").expect("version 1 still serves");
        drop(vm);
    }
    std::fs::remove_dir_all(&work).ok();
}

/// xorshift: the same cut moments for the same seed.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn kill_9_during_install_and_commit_always_leaves_a_verified_slot() {
    let cuts: usize = std::env::var("DIALGATE_FW_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut seed: u64 = std::env::var("DIALGATE_FW_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f1a5);
    eprintln!("campaign: {cuts} cuts, seed {seed:#x}");
    let work = workdir("fw-cuts");
    let disk = work.join("disk.img");
    let mut floor = 1u64;
    let (mut in_install, mut in_trial, mut after_commit, mut elsewhere) = (0, 0, 0, 0);
    for i in 0..=cuts {
        // Always offer the release just above the floor.
        let b = work.join("next.bundle");
        bundle(&b, floor + 1, None, &root_hash(), &[]);
        let kit = kit_with(&work, Some(&b));
        let vm = boot(&work, &kit, &disk);
        let (_, ready) = vm
            .wait_line("READY slot=", Duration::from_secs(120))
            .unwrap_or_else(|| panic!("boot {i}: no READY:\n{}", vm.console()));
        let console = vm.console();
        assert!(
            console.contains(": verified, mounted") && !console.contains("FATAL"),
            "boot {i}: {console}"
        );
        let version: u64 = ready
            .split("version=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{ready}"));
        assert!(
            version >= floor,
            "boot {i}: running {version} below the floor {floor}"
        );
        if i == cuts {
            break;
        }
        // Cut anywhere in the next 30 s: install (about 2-4 s), the
        // reboot (about 5 s), the trial and its commit (READY, the
        // self-test call at 3 s, 10 s of service: about 17 s after the
        // arming), and a little of the committed boot after it.
        let wait = Duration::from_millis(next(&mut seed) % 30_000);
        std::thread::sleep(wait);
        let c = vm.console();
        let installing = c.contains("firmware: installing") && !c.contains("armed for one trial");
        let trial = c.contains("ON TRIAL") && !c.contains("COMMITTED");
        match (installing, trial, c.contains("COMMITTED")) {
            (true, _, _) => in_install += 1,
            (_, true, _) => in_trial += 1,
            (_, _, true) => after_commit += 1,
            _ => elsewhere += 1,
        }
        for l in c.lines().filter(|l| l.contains("(floor ")) {
            if let Some(f) = l
                .split("(floor ")
                .nth(1)
                .and_then(|r| r.split(')').next()?.parse::<u64>().ok())
            {
                assert!(f >= floor, "floor went down: {f} < {floor}\n{c}");
                floor = f;
            }
        }
        drop(vm); // kill -9 of image/run's process group, qemu included
    }
    eprintln!(
        "campaign: {cuts} cuts: {in_install} during an install, {in_trial} during a trial before its commit, {after_commit} after a commit, {elsewhere} elsewhere; final floor {floor}"
    );
    assert!(in_install + in_trial > 0, "no cut hit an update");
    std::fs::remove_dir_all(&work).ok();
}
