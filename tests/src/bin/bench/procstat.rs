//! System-wide CPU time and the VM's steal time, from the `cpu` line of
//! /proc/stat (proc(5): user, nice, system, idle, iowait, irq, softirq,
//! steal, in USER_HZ ticks, which the kernel ABI fixes at 100 per second).

const USER_HZ: f64 = 100.0;

/// One reading of the aggregate `cpu` line.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq: every CPU's busy time,
    /// including interrupt and softirq work no process is charged for.
    busy: u64,
    steal: u64,
    /// Everything, steal and idle included.
    total: u64,
}

impl CpuTimes {
    pub fn read() -> Result<CpuTimes, String> {
        let s = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
        let line = s
            .lines()
            .find(|l| l.starts_with("cpu "))
            .ok_or("/proc/stat has no cpu line")?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let f = |i: usize| v.get(i).copied().unwrap_or(0);
        Ok(CpuTimes {
            busy: f(0) + f(1) + f(2) + f(5) + f(6),
            steal: f(7),
            total: v.iter().take(8).sum(),
        })
    }

    /// Busy seconds (all CPUs) between `self` and a later reading.
    pub fn busy_s(&self, later: &CpuTimes) -> f64 {
        later.busy.saturating_sub(self.busy) as f64 / USER_HZ
    }

    /// Steal as a share of all CPU time between `self` and a later reading.
    pub fn steal_share(&self, later: &CpuTimes) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.steal.saturating_sub(self.steal) as f64 / total as f64
    }
}
