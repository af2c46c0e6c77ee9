//! Which kernel modules to load, in which order: the image lists the
//! modules it needs by name (`/etc/modules` in the initramfs); their
//! dependencies come from `modules.dep` (written by `depmod` at build time).
//! Dependencies load first, each module once.

use std::collections::{HashMap, HashSet};

/// A module name normalised the kernel's way (`dm-verity` == `dm_verity`).
fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// The name of a module from its path in `modules.dep`.
fn name_of(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    norm(stem)
}

/// A module that is neither in `modules.dep` nor built in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel module {0} not found")]
pub struct UnknownModule(pub String);

/// Module paths (relative to the modules directory) to load, in order, so
/// that every module's dependencies load before it. Names listed in
/// `builtin` (`modules.builtin`) are skipped.
pub fn load_order(
    wanted: &[&str],
    modules_dep: &str,
    builtin: &str,
) -> Result<Vec<String>, UnknownModule> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in modules_dep.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let d = rest.split_whitespace().map(str::to_string).collect();
        deps.insert(name_of(path), (path.to_string(), d));
    }
    let builtin: HashSet<String> = builtin.lines().map(name_of).collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative depth-first post-order; modules.dep lists the full closure
    // of each module, so one level of recursion per entry suffices, but the
    // walk does not rely on it.
    fn visit(
        name: &str,
        deps: &HashMap<String, (String, Vec<String>)>,
        builtin: &HashSet<String>,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), UnknownModule> {
        let name = norm(name);
        if seen.contains(&name) || depth > 64 {
            return Ok(());
        }
        let Some((path, ds)) = deps.get(&name) else {
            if builtin.contains(&name) {
                return Ok(());
            }
            return Err(UnknownModule(name));
        };
        seen.insert(name.clone());
        // modules.dep lists a module's dependencies so that the last one
        // must load first (modprobe loads them in reverse).
        for d in ds.iter().rev() {
            visit(&name_of(d), deps, builtin, seen, order, depth + 1)?;
        }
        order.push(path.clone());
        Ok(())
    }
    for w in wanted {
        visit(w, &deps, &builtin, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko kernel/lib/reed_solomon/reed_solomon.ko
kernel/drivers/md/dm-bufio.ko:
kernel/drivers/md/dm-mod.ko:
kernel/lib/reed_solomon/reed_solomon.ko:
kernel/fs/squashfs/squashfs.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
";

    #[test]
    fn dependencies_first_each_once() {
        let o = load_order(&["dm_verity", "ext4", "dm-mod", "squashfs"], DEP, "").unwrap();
        let names: Vec<String> = o.iter().map(|p| name_of(p)).collect();
        assert_eq!(
            names,
            [
                "reed_solomon",
                "dm_mod",
                "dm_bufio",
                "dm_verity",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4",
                "squashfs"
            ]
        );
        let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!(pos("dm_mod") < pos("dm_verity") && pos("crc16") < pos("ext4"));
    }

    #[test]
    fn builtin_is_skipped_unknown_is_an_error() {
        let o = load_order(&["unix", "squashfs"], DEP, "kernel/net/unix/unix.ko\n").unwrap();
        assert_eq!(o, ["kernel/fs/squashfs/squashfs.ko"]);
        assert_eq!(
            load_order(&["nope"], DEP, ""),
            Err(UnknownModule("nope".into()))
        );
    }
}
