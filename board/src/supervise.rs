//! Supervising the gateway: restart backoff, the watchdog decision and the
//! power key. Pure decisions; the clock and the events come from the caller.

use std::time::Duration;

/// Restart delays for a crashing gateway: 250 ms doubling up to 30 s; a
/// run of at least [`Backoff::STABLE`] resets it.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// A run this long counts as healthy: the next crash restarts quickly.
    pub const STABLE: Duration = Duration::from_secs(60);
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);

    /// The gateway exited after running `ran_for`: how long to wait before
    /// starting it again.
    pub fn on_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= Self::STABLE {
            self.failures = 0;
        }
        let d = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        d
    }
}

/// What PID 1 knows about the gateway at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The gateway process is running.
    pub running: bool,
    /// Its phone-side listener is in `/proc/net/tcp`.
    pub listening: bool,
    /// A shutdown is in progress.
    pub shutting_down: bool,
}

/// Feed the hardware watchdog only while the gateway serves. During a
/// start-up (not yet listening) the watchdog is not fed either: its
/// timeout (the hardware's, tens of seconds) is the start-up budget, so a
/// gateway that never comes up resets the board.
pub fn feed_watchdog(h: Health) -> bool {
    h.running && h.listening && !h.shutting_down
}

/// Linux `EV_KEY`.
const EV_KEY: u16 = 1;
/// Linux `KEY_POWER`.
pub const KEY_POWER: u16 = 116;
/// The panic button's key code: Linux `KEY_STOP`. On a board it is a
/// gpio-keys button with `linux,code = <128>`; under qemu, the monitor's
/// `sendkey stop` on a virtio keyboard.
pub const KEY_PANIC: u16 = 128;

/// What a batch of input events asks PID 1 to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    /// Wipe the data partition's keys, then power off.
    Panic,
    /// A clean power-off.
    Power,
}

/// The button pressed in `buf`, the panic button first: pressed together,
/// the wipe wins.
pub fn button(buf: &[u8]) -> Option<Button> {
    if key_pressed(buf, KEY_PANIC) {
        Some(Button::Panic)
    } else if key_pressed(buf, KEY_POWER) {
        Some(Button::Power)
    } else {
        None
    }
}

/// Size of `struct input_event` on 64-bit Linux.
pub const INPUT_EVENT_SIZE: usize = 24;

/// Whether a buffer of `struct input_event`s (64-bit layout: 16 bytes of
/// time, type, code, value) holds a press of `key`. Partial trailing
/// events are ignored.
pub fn key_pressed(buf: &[u8], key: u16) -> bool {
    buf.chunks_exact(INPUT_EVENT_SIZE).any(|e| {
        let ty = u16::from_ne_bytes([e[16], e[17]]);
        let code = u16::from_ne_bytes([e[18], e[19]]);
        let value = i32::from_ne_bytes([e[20], e[21], e[22], e[23]]);
        ty == EV_KEY && code == key && value == 1
    })
}

/// What PID 1 does when the gateway exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayExit {
    /// A crash or a stop: restart it after the back-off.
    Restart,
    /// HQ's verified wipe command (exit status
    /// [`dialgate_signed::command::EXIT_WIPE`]): wipe the data partition
    /// and power off, as for the panic button.
    Wipe,
    /// HQ's verified reboot command
    /// ([`dialgate_signed::command::EXIT_REBOOT`]).
    Reboot,
}

/// The decision for a gateway that ended with `exit_code` (`None`: killed
/// by a signal, which never means a command).
pub fn on_gateway_exit(exit_code: Option<i32>) -> GatewayExit {
    use dialgate_signed::command::{EXIT_REBOOT, EXIT_WIPE};
    match exit_code {
        Some(c) if c == i32::from(EXIT_WIPE) => GatewayExit::Wipe,
        Some(c) if c == i32::from(EXIT_REBOOT) => GatewayExit::Reboot,
        _ => GatewayExit::Restart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_command_exit_statuses_wipe_or_reboot() {
        assert_eq!(on_gateway_exit(Some(70)), GatewayExit::Wipe);
        assert_eq!(on_gateway_exit(Some(71)), GatewayExit::Reboot);
        for other in [
            None,
            Some(0),
            Some(1),
            Some(69),
            Some(72),
            Some(-70),
            Some(70 + 256),
        ] {
            assert_eq!(on_gateway_exit(other), GatewayExit::Restart, "{other:?}");
        }
    }

    #[test]
    fn backoff_doubles_caps_and_resets_after_a_stable_run() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let d: Vec<u128> = (0..10).map(|_| b.on_exit(short).as_millis()).collect();
        assert_eq!(
            d,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(b.on_exit(Backoff::STABLE).as_millis(), 250);
        assert_eq!(b.on_exit(short).as_millis(), 500);
    }

    #[test]
    fn watchdog_is_fed_only_while_serving() {
        let h = |running, listening, shutting_down| Health {
            running,
            listening,
            shutting_down,
        };
        assert!(feed_watchdog(h(true, true, false)));
        assert!(!feed_watchdog(h(true, false, false)));
        assert!(!feed_watchdog(h(false, true, false)));
        assert!(!feed_watchdog(h(true, true, true)));
    }

    fn ev(ty: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; 16];
        e.extend_from_slice(&ty.to_ne_bytes());
        e.extend_from_slice(&code.to_ne_bytes());
        e.extend_from_slice(&value.to_ne_bytes());
        e
    }

    #[test]
    fn power_key_press_is_recognised_release_and_others_are_not() {
        let mut buf = ev(EV_KEY, KEY_POWER, 0);
        buf.extend(ev(0, 0, 0));
        assert!(!key_pressed(&buf, KEY_POWER));
        buf.extend(ev(EV_KEY, 115, 1));
        assert!(!key_pressed(&buf, KEY_POWER));
        buf.extend(ev(EV_KEY, KEY_POWER, 1));
        assert!(key_pressed(&buf, KEY_POWER));
        assert!(!key_pressed(&buf[..buf.len() - 1][..47], KEY_POWER));
    }

    #[test]
    fn the_panic_button_wins_over_the_power_key() {
        let power = ev(EV_KEY, KEY_POWER, 1);
        let panic = ev(EV_KEY, KEY_PANIC, 1);
        assert_eq!(button(&power), Some(Button::Power));
        assert_eq!(button(&panic), Some(Button::Panic));
        assert_eq!(
            button(&[power.clone(), panic].concat()),
            Some(Button::Panic)
        );
        assert_eq!(button(&ev(EV_KEY, KEY_PANIC, 0)), None);
        assert_eq!(button(&[]), None);
    }
}
