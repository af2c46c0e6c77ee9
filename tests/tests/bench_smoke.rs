//! Keeps the benchmark harness honest: a short run of `bench relay` and
//! `bench srtp` must complete against the real references (rtpengine over
//! ng with re-keying verified, the bare forwarder in each variant,
//! libsrtp2) and report every target. This is
//! not a performance test; the figures are not asserted.

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_bench");

#[test]
fn relay_benchmark_runs_against_rtpengine_and_dialgate() {
    let out = Command::new(BENCH)
        .args(["relay", "--calls", "5", "--seconds", "1", "--warmup", "1"])
        .output()
        .expect("bench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench relay failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for target in [
        "direct (no relay)",
        "floor (recvfrom)",
        "floor (mmsg)",
        "floor (connected)",
        "floor (mmsg+conn)",
        "dialgate",
        "dialgate (connected)",
        "dialgate (busy-poll)",
        "rtpengine",
    ] {
        let row = text
            .lines()
            .find(|l| l.contains(target))
            .unwrap_or_else(|| panic!("no row for {target}:\n{text}"));
        let relayed: u64 = row
            .split_whitespace()
            .find_map(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("no figures in row {row}"));
        // 5 calls x 2 directions x 50 packets/s x 1 s, give or take pacing.
        assert!(relayed >= 400, "{target} relayed only {relayed}:\n{text}");
        assert!(!row.contains("failed to authenticate"), "{text}");
    }
    // Every relay's figures as multiples of the floor, which must have
    // forwarded every packet it was sent for the multiples to mean much.
    assert!(text.contains("as multiples of floor (recvfrom)"), "{text}");
    assert!(!text.contains("failed to authenticate"), "{text}");
    for target in ["dialgate", "rtpengine"] {
        let times = text
            .lines()
            .skip_while(|l| !l.contains("as multiples of"))
            .find(|l| l.contains(target))
            .unwrap_or_else(|| panic!("no multiples for {target}:\n{text}"));
        assert!(times.contains('x'), "{times}");
    }
}

#[test]
fn srtp_benchmark_runs_against_libsrtp2() {
    let out = Command::new(BENCH)
        .args(["srtp", "--iterations", "20000"])
        .output()
        .expect("bench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("HMAC-SHA1 tag of 176 octets"), "{text}");
    for suite in [
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AES_256_CM_HMAC_SHA1_80",
        "AEAD_AES_128_GCM",
        "AEAD_AES_256_GCM",
    ] {
        let row = text
            .lines()
            .find(|l| l.starts_with(suite))
            .unwrap_or_else(|| panic!("no row for {suite}:\n{text}"));
        let nums: Vec<f64> = row
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // tests/run builds the OpenSSL libsrtp2 before the tests.
        assert_eq!(
            nums.len(),
            6,
            "protect, libsrtp2 NSS, libsrtp2 OpenSSL, and the same for unprotect, in {row}"
        );
        assert!(nums.iter().all(|&n| n > 0.0), "{row}");
    }
}

#[test]
fn calls_benchmark_places_calls_through_the_gateway() {
    let out = Command::new(BENCH)
        .args(["calls", "--calls", "20", "--concurrency", "2"])
        .output()
        .expect("bench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench calls failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("completed 20 failed 0"), "{text}");
}

#[test]
fn calls_benchmark_with_media_gets_its_media_back() {
    let out = Command::new(BENCH)
        .args([
            "calls",
            "--calls",
            "4",
            "--concurrency",
            "2",
            "--media-seconds",
            "1",
        ])
        .output()
        .expect("bench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench calls --media-seconds failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("completed 4 failed 0"), "{text}");
    let total = text
        .lines()
        .find(|l| l.contains("media total:"))
        .unwrap_or_else(|| panic!("no media total:\n{text}"));
    // The integer after `label` in the line.
    let figure = |label: &str| -> u64 {
        total
            .split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no figure for {label} in {total}"))
    };
    let (sent, received, lost) = (figure("sent"), figure("received back"), figure("lost"));
    // 4 calls x 50 packets/s x 1 s; the first ~400 ms of each call's echo
    // give way to the gateway's secure tone ("muted"), the rest comes back.
    assert_eq!(sent, 200, "{text}");
    assert!(
        received * 2 >= sent,
        "only {received} of {sent} back:\n{text}"
    );
    assert!(lost * 20 <= sent, "{lost} of {sent} lost:\n{text}");
    assert_eq!(figure("failed to authenticate"), 0, "{text}");
}

#[test]
fn wipe_benchmark_measures_both_allocators() {
    let out = Command::new(BENCH)
        .args(["wipe", "--calls", "20"])
        .output()
        .expect("bench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench wipe failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in ["system allocator (reference)", "WipeOnFree"] {
        let line = text
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("no row for {row}:\n{text}"));
        let us: f64 = line
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no figure in: {line}"));
        assert!(us > 0.0, "{line}");
    }
}
