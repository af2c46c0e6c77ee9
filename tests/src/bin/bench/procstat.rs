//! System-wide CPU time and the VM's steal time, from the `cpu` lines of
//! /proc/stat (proc(5): user, nice, system, idle, iowait, irq, softirq,
//! steal, in USER_HZ ticks, which the kernel ABI fixes at 100 per second).
//!
//! Busy time is the wall time of every CPU less its idle, iowait and steal
//! time: on a tickless kernel idle time is measured exactly while user and
//! system time are sampled at the tick, so summing the busy fields instead
//! undercounts a relay that wakes thousands of times a second for a few
//! microseconds each (it is rarely running when the tick lands).

use std::time::Instant;

const USER_HZ: f64 = 100.0;

/// One reading of the aggregate `cpu` line.
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    at: Instant,
    cpus: usize,
    /// idle + iowait, ticks.
    idle: u64,
    steal: u64,
}

impl CpuTimes {
    pub fn read() -> Result<CpuTimes, String> {
        let s = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
        let at = Instant::now();
        let line = s
            .lines()
            .find(|l| l.starts_with("cpu "))
            .ok_or("/proc/stat has no cpu line")?;
        let cpus = s
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count()
            .max(1);
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let f = |i: usize| v.get(i).copied().unwrap_or(0);
        Ok(CpuTimes {
            at,
            cpus,
            idle: f(3) + f(4),
            steal: f(7),
        })
    }

    /// Busy seconds (all CPUs, irq and softirq included) between `self`
    /// and a later reading.
    pub fn busy_s(&self, later: &CpuTimes) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64() * self.cpus as f64;
        let idle = later.idle.saturating_sub(self.idle) as f64 / USER_HZ;
        let steal = later.steal.saturating_sub(self.steal) as f64 / USER_HZ;
        (wall - idle - steal).max(0.0)
    }

    /// Steal as a share of all CPUs' time between `self` and a later reading.
    pub fn steal_share(&self, later: &CpuTimes) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64() * self.cpus as f64;
        if wall <= 0.0 {
            return 0.0;
        }
        later.steal.saturating_sub(self.steal) as f64 / USER_HZ / wall
    }
}
