//! The command lines of `dialgate` and `dialgatectl` as a new user meets
//! them: every subcommand has `--help`, unknown flags and bad values are
//! errors with the usage (exit status 2) and do nothing.

mod common;

use std::process::{Command, Output};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(common::bin(bin))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{bin} runs: {e}"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn assert_usage_error(bin: &str, args: &[&str], says: &str) {
    let o = run(bin, args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{bin} {args:?}: {t}");
    // clap shows the usage for a wrong option, and points to --help for
    // a wrong value.
    assert!(
        t.contains("Usage:") || t.contains("try '--help'"),
        "{bin} {args:?} shows no usage: {t}"
    );
    assert!(
        t.contains(says),
        "{bin} {args:?} does not say {says:?}: {t}"
    );
}

#[test]
fn every_subcommand_has_help() {
    let commands: &[(&str, &[&str])] = &[
        ("dialgate", &[]),
        ("dialgate", &["run"]),
        ("dialgate", &["demo"]),
        ("dialgatectl", &[]),
        ("dialgatectl", &["pki"]),
        ("dialgatectl", &["pki", "init"]),
        ("dialgatectl", &["pki", "kit"]),
        ("dialgatectl", &["token"]),
        ("dialgatectl", &["token", "enroll"]),
        ("dialgatectl", &["token", "list"]),
        ("dialgatectl", &["token", "show"]),
        ("dialgatectl", &["token", "revoke"]),
        ("dialgatectl", &["policy"]),
        ("dialgatectl", &["policy", "build"]),
        ("dialgatectl", &["policy", "show"]),
    ];
    for (bin, sub) in commands {
        let mut args = sub.to_vec();
        args.push("--help");
        let o = run(bin, &args);
        let t = text(&o);
        assert!(o.status.success(), "{bin} {args:?}: {t}");
        assert!(t.contains("Usage:"), "{bin} {args:?}: {t}");
    }
}

#[test]
fn a_mistyped_option_is_an_error_and_creates_nothing() {
    let (work, kit, _) = common::work_dir("cli-bogus");
    let dir = kit.to_str().unwrap();
    assert_usage_error(
        "dialgate",
        &["demo", "--dir", dir, "--init-only", "--bogus-flag"],
        "--bogus-flag",
    );
    assert!(!kit.exists(), "a kit was created despite the error");
    assert_usage_error("dialgate", &["demo", "--seconds", "many"], "--seconds");
    assert_usage_error("dialgate", &["run"], "--config");
    assert_usage_error("dialgatectl", &["pki", "init", "--dri", dir], "--dri");
    assert!(!kit.exists());
    assert_usage_error(
        "dialgatectl",
        &["token", "list", "--dir", dir, "--registry", "r.toml"],
        "cannot be used with",
    );
    assert_usage_error(
        "dialgatectl",
        &[
            "token", "enroll", "--dir", dir, "--name", "a", "--days", "0",
        ],
        "--days",
    );
    assert_usage_error(
        "dialgatectl",
        &[
            "policy",
            "build",
            "--dir",
            dir,
            "--kit",
            "k",
            "--out",
            "o",
            "--days",
            "1",
            "--valid-for",
            "60",
        ],
        "cannot be used with",
    );
    assert_usage_error(
        "dialgatectl",
        &["pki", "kit", "--dir", dir, "--kit", "k"],
        "--address",
    );
    std::fs::remove_dir_all(&work).ok();
}
