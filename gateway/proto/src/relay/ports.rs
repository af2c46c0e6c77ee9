//! Port allocation from a configured range: pure bookkeeping, the socket
//! layer does the binding and reports ports it could not bind.

/// A range of UDP ports for media, inclusive, and which of them are taken.
#[derive(Debug)]
pub struct PortAllocator {
    first: u16,
    last: u16,
    /// One bit per port in the range.
    used: Vec<u64>,
    /// Where the next search starts, so that freed ports are reused last
    /// (a late packet for an ended call does not reach a new one).
    cursor: u16,
}

impl PortAllocator {
    /// Ports `first..=last`. RTP conventionally uses even ports for RTP and
    /// the next odd one for RTCP; [`PortAllocator::allocate_pair`] keeps that.
    pub fn new(first: u16, last: u16) -> PortAllocator {
        let (first, last) = (first.min(last), first.max(last));
        let n = usize::from(last - first) + 1;
        PortAllocator {
            first,
            last,
            used: vec![0; n.div_ceil(64)],
            cursor: first,
        }
    }

    fn bit(&self, port: u16) -> Option<(usize, u64)> {
        if port < self.first || port > self.last {
            return None;
        }
        let i = usize::from(port - self.first);
        Some((i / 64, 1u64 << (i % 64)))
    }

    /// Whether `port` is taken (or outside the range).
    pub fn is_used(&self, port: u16) -> bool {
        self.bit(port).is_none_or(|(w, b)| self.used[w] & b != 0)
    }

    fn set(&mut self, port: u16, used: bool) {
        if let Some((w, b)) = self.bit(port) {
            if used {
                self.used[w] |= b;
            } else {
                self.used[w] &= !b;
            }
        }
    }

    /// Takes the next free even port, with the odd port after it when
    /// `with_rtcp`; `None` when the range is exhausted.
    pub fn allocate_pair(&mut self, with_rtcp: bool) -> Option<u16> {
        let span = u32::from(self.last - self.first) + 1;
        let mut port = self.cursor;
        for _ in 0..span {
            if port > self.last || (with_rtcp && port == self.last) {
                port = self.first;
            }
            let even = port % 2 == 0;
            let free = !self.is_used(port) && (!with_rtcp || !self.is_used(port + 1));
            if even && free {
                self.set(port, true);
                if with_rtcp {
                    self.set(port + 1, true);
                }
                self.cursor = port.saturating_add(2);
                return Some(port);
            }
            port = port.saturating_add(1);
        }
        None
    }

    /// Marks a port as taken without handing it out (another program has it).
    pub fn mark_used(&mut self, port: u16) {
        self.set(port, true);
    }

    /// Returns a port (and its RTCP partner) to the pool.
    pub fn release(&mut self, port: u16, with_rtcp: bool) {
        self.set(port, false);
        if with_rtcp {
            self.set(port.saturating_add(1), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_exhaust_cleanly() {
        let mut a = PortAllocator::new(30000, 30007);
        let got: Vec<u16> = std::iter::from_fn(|| a.allocate_pair(true)).collect();
        assert_eq!(got, vec![30000, 30002, 30004, 30006]);
        assert_eq!(a.allocate_pair(false), None);
        a.release(30002, true);
        assert_eq!(a.allocate_pair(true), Some(30002));
    }

    #[test]
    fn mux_uses_one_port_and_skips_foreign_ones() {
        let mut a = PortAllocator::new(40001, 40010);
        a.mark_used(40002);
        assert_eq!(a.allocate_pair(false), Some(40004));
        assert_eq!(a.allocate_pair(false), Some(40006));
        assert!(a.is_used(40004) && !a.is_used(40005));
        assert!(a.is_used(1));
    }
}
