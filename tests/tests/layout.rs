//! The crate layout holds: the protocol crate cannot reach the network,
//! TLS or an async runtime, and the appliance's binaries (as image/build
//! builds them) link no home-side code. Checked on the dependency graph
//! itself with `cargo tree`, so a new dependency that breaks it fails here.

use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The names of the crates `cargo tree ARGS` lists (normal dependencies).
fn tree(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(ROOT)
        .args(["tree", "--locked", "-e", "normal", "--prefix", "none"])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn assert_none_of(crates: &[String], forbidden: &[&str], what: &str) {
    assert!(
        crates.len() > 3,
        "{what}: cargo tree listed too little: {crates:?}"
    );
    for f in forbidden {
        assert!(
            !crates.iter().any(|c| c == f),
            "{what} depends on {f}: {crates:?}"
        );
    }
}

#[test]
fn the_protocol_crate_is_sans_io() {
    let crates = tree(&["-p", "dialgate-proto"]);
    assert!(crates.iter().any(|c| c == "dialgate-proto"));
    assert_none_of(
        &crates,
        &[
            "tokio",
            "mio",
            "rustls",
            "tokio-rustls",
            "socket2",
            "rustls-pki-types",
            "cryptoki",
            "rcgen",
        ],
        "dialgate-proto",
    );
}

#[test]
fn the_appliance_binaries_have_no_home_side_code() {
    // As image/build builds them: the daemon without its demo feature, and
    // board's PID 1.
    for args in [
        &["-p", "dialgate", "--no-default-features"][..],
        &["-p", "dialgate-board"][..],
    ] {
        let crates = tree(args);
        assert_none_of(
            &crates,
            &["dialgate-hq", "cryptoki", "cryptoki-sys", "rcgen", "yasna"],
            &format!("{args:?}"),
        );
    }
    // The check can fail: the demo build does link the home side.
    let demo = tree(&["-p", "dialgate"]);
    assert!(demo.iter().any(|c| c == "dialgate-hq"), "{demo:?}");
    assert!(demo.iter().any(|c| c == "cryptoki"), "{demo:?}");
}

/// Every `.rs` file of the workspace that is not test code (a `tests`
/// directory, a `tests.rs` module, the `tests/` crate), with its lines.
fn source_files(dir: &std::path::Path, out: &mut Vec<(String, usize)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "tests" | ".git") && !name.starts_with("target")
            {
                source_files(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push((path.display().to_string(), text.lines().count()));
        }
    }
}

#[test]
fn no_source_file_passes_800_lines() {
    let mut files = Vec::new();
    for dir in ["gateway", "hq", "board", "firmware"] {
        source_files(&std::path::Path::new(ROOT).join(dir), &mut files);
    }
    assert!(files.len() > 40, "found too few sources: {files:?}");
    let long: Vec<_> = files.iter().filter(|(_, n)| *n > 800).collect();
    assert!(long.is_empty(), "over 800 lines: {long:?}");
    // The check sees the big modules (it would notice one growing).
    assert!(files
        .iter()
        .any(|(p, n)| p.ends_with("b2bua/mod.rs") && *n > 300));
}
