//! The relays `bench relay` measures, by `--targets` name.

use super::super::floor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Direct,
    Dialgate,
    /// The relay with a connected sibling per latched socket.
    DialgateConnected,
    /// The relay spinning on its poll instead of sleeping.
    DialgateBusyPoll,
    DialgateTokio,
    Rtpengine,
    Floor(floor::Mode),
}

impl Target {
    pub(super) fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct (no relay)",
            Target::Dialgate => "dialgate",
            Target::DialgateConnected => "dialgate (connected)",
            Target::DialgateBusyPoll => "dialgate (busy-poll)",
            Target::DialgateTokio => "dialgate (tokio)",
            Target::Rtpengine => "rtpengine",
            Target::Floor(floor::Mode::RecvFrom) => "floor (recvfrom)",
            Target::Floor(floor::Mode::Mmsg) => "floor (mmsg)",
            Target::Floor(floor::Mode::Connected) => "floor (connected)",
            Target::Floor(floor::Mode::MmsgConnected) => "floor (mmsg+conn)",
        }
    }

    /// A `--targets` name.
    pub(super) fn parse(t: &str) -> Result<Target, String> {
        match t {
            "direct" => Ok(Target::Direct),
            "dialgate" => Ok(Target::Dialgate),
            "dialgate-connected" => Ok(Target::DialgateConnected),
            "dialgate-busy-poll" => Ok(Target::DialgateBusyPoll),
            "dialgate-tokio" => Ok(Target::DialgateTokio),
            "rtpengine" => Ok(Target::Rtpengine),
            _ => t
                .strip_prefix("floor-")
                .and_then(floor::Mode::parse)
                .map(Target::Floor)
                .ok_or_else(|| format!("unknown target {t}")),
        }
    }
}
