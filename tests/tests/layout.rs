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
