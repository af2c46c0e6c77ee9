//! The replay window of RFC 3711 §3.3.2, 128 packets wide.

/// Width of the window in packets. RFC 3711 requires at least 64.
pub const WINDOW: u64 = 128;

/// A sliding bitmap over the highest index seen and the 127 before it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReplayWindow {
    /// Highest authenticated index; meaningless while `bits == 0`.
    top: u64,
    /// Bit `n` set: index `top - n` was accepted.
    bits: u128,
}

/// Why an index may not be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Fresh,
    Replayed,
    TooOld,
}

impl ReplayWindow {
    /// Checks an index without recording it (done before authentication).
    pub(crate) fn check(&self, index: u64) -> Verdict {
        if self.bits == 0 || index > self.top {
            return Verdict::Fresh;
        }
        let delta = self.top - index;
        if delta >= WINDOW {
            Verdict::TooOld
        } else if self.bits & (1u128 << delta) != 0 {
            Verdict::Replayed
        } else {
            Verdict::Fresh
        }
    }

    /// Records an index that passed `check` and authentication.
    pub(crate) fn accept(&mut self, index: u64) {
        if self.bits == 0 {
            self.top = index;
            self.bits = 1;
        } else if index > self.top {
            let shift = index - self.top;
            self.bits = if shift >= WINDOW {
                0
            } else {
                self.bits << shift
            } | 1;
            self.top = index;
        } else {
            let delta = self.top - index;
            if delta < WINDOW {
                self.bits |= 1u128 << delta;
            }
        }
    }

    /// The highest index accepted so far, if any.
    #[cfg(test)]
    pub(crate) fn top(&self) -> Option<u64> {
        (self.bits != 0).then_some(self.top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_reordered_rejects_duplicate_and_old() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(1000), Verdict::Fresh);
        w.accept(1000);
        assert_eq!(w.check(1000), Verdict::Replayed);
        assert_eq!(w.check(999), Verdict::Fresh);
        w.accept(999);
        assert_eq!(w.check(999), Verdict::Replayed);
        // The oldest index inside a 128-wide window is still accepted once.
        assert_eq!(w.check(1000 - 127), Verdict::Fresh);
        assert_eq!(w.check(1000 - 128), Verdict::TooOld);
        w.accept(1200);
        assert_eq!(w.check(1000), Verdict::TooOld);
        assert_eq!(w.check(1199), Verdict::Fresh);
        assert_eq!(w.check(1200), Verdict::Replayed);
        assert_eq!(w.top(), Some(1200));
    }

    #[test]
    fn big_jump_clears_window() {
        let mut w = ReplayWindow::default();
        w.accept(5);
        w.accept(5 + 10_000);
        assert_eq!(w.check(5 + 10_000 - 1), Verdict::Fresh);
        assert_eq!(w.check(5), Verdict::TooOld);
    }
}
