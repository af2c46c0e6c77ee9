//! Each relay's figures as multiples of the floor's (`bench relay`).

use super::{floor, Target};

/// One target's figures at one call count, for the multiples of the floor.
pub(super) struct Row {
    pub(super) target: Target,
    /// Relay CPU s per million packets.
    pub(super) cpu: Option<f64>,
    /// System-wide CPU s per million packets (less the generator).
    pub(super) sys: Option<f64>,
    /// Added latency over `direct`, µs.
    pub(super) add50: Option<f64>,
    pub(super) add99: Option<f64>,
    pub(super) lost: u64,
}

/// Each relay's figures over the floor's: the `recvfrom` variant (the
/// relay's own syscall pattern) and the cheapest floor variant by CPU.
pub(super) fn print_multiples(n: usize, rows: &[Row]) {
    let floors: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.target, Target::Floor(_)))
        .collect();
    let same = floors
        .iter()
        .find(|r| r.target == Target::Floor(floor::Mode::RecvFrom))
        .copied();
    let best = floors
        .iter()
        .filter(|r| r.cpu.is_some())
        .min_by(|a, b| {
            a.cpu
                .partial_cmp(&b.cpu)
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .copied();
    let Some(reference) = same.or(best) else {
        return;
    };
    let times = |v: Option<f64>, f: Option<f64>| match (v, f) {
        (Some(v), Some(f)) if f > 0.0 => format!("{:.2}x", v / f),
        _ => "-".into(),
    };
    println!(
        "{:>5} calls as multiples of {} (and of the cheapest floor, {}):",
        n,
        reference.target.name(),
        best.map_or("-", |b| b.target.name())
    );
    println!(
        "{:>5}       {:<18} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12}",
        "", "target", "CPU", "(best)", "sys CPU", "(best)", "+p50", "+p99", "lost (floor)"
    );
    for r in rows
        .iter()
        .filter(|r| r.target != Target::Direct && r.target != reference.target)
    {
        println!(
            "{:>5}       {:<18} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12}",
            "",
            r.target.name(),
            times(r.cpu, reference.cpu),
            times(r.cpu, best.and_then(|b| b.cpu)),
            times(r.sys, reference.sys),
            times(r.sys, best.and_then(|b| b.sys)),
            times(r.add50, reference.add50),
            times(r.add99, reference.add99),
            format!("{} ({})", r.lost, reference.lost)
        );
    }
}
