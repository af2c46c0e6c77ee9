//! Why the gateway refuses or ends a call: one typed value that gives the
//! SIP status, the Warning header (RFC 3261 §20.43) and the audit reason,
//! so that the three never disagree and no Warning is formatted by hand.

use std::borrow::Cow;
use std::fmt;

use crate::sdp::Reject;

/// A refusal: the status for the phone, the reason (the Warning text and
/// the audit line's `reason`), and an optional Retry-After.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    status: u16,
    warn_code: u16,
    reason: Cow<'static, str>,
    retry_after: Option<u32>,
}

impl Refusal {
    /// A refusal with warn-code 399 (miscellaneous).
    pub const fn new(status: u16, reason: &'static str) -> Refusal {
        Refusal {
            status,
            warn_code: 399,
            reason: Cow::Borrowed(reason),
            retry_after: None,
        }
    }

    /// The refusal of an SDP offer or answer, with its own warn-code.
    pub fn media(r: Reject) -> Refusal {
        Refusal {
            status: r.status(),
            warn_code: r.warn_code(),
            reason: Cow::Owned(r.to_string()),
            retry_after: None,
        }
    }

    /// The same refusal with a Retry-After (seconds).
    pub const fn retry_after(mut self, seconds: u32) -> Refusal {
        self.retry_after = Some(seconds);
        self
    }

    /// The SIP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason, as the Warning text and the audit reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The Retry-After, if any.
    pub fn retry(&self) -> Option<u32> {
        self.retry_after
    }

    /// The Warning header value: `399 dialgate "reason"` (a quoted-string:
    /// quotes and backslashes in the reason are escaped).
    pub fn warning(&self) -> String {
        let mut quoted = String::with_capacity(self.reason.len());
        for c in self.reason.chars() {
            if c == '"' || c == '\\' {
                quoted.push('\\');
            }
            if !c.is_control() {
                quoted.push(c);
            }
        }
        format!("{} dialgate \"{quoted}\"", self.warn_code)
    }

    // Admission of a call.
    /// The From or P-Asserted-Identity user is not the token's name.
    pub const IDENTITY_MISMATCH: Refusal = Refusal::new(403, "identity does not match the token");
    /// The alias is not in the meeting directory.
    pub const NO_SUCH_MEETING: Refusal = Refusal::new(404, "no such meeting");
    /// The token has no grant for the alias.
    pub const NOT_GRANTED: Refusal = Refusal::new(403, "this token may not call this meeting");
    /// The directory entry names a trunk the kit does not have.
    pub const NO_TRUNK: Refusal = Refusal::new(503, "trunk not configured");
    /// The trunk's media address is the uplink's and its connection has
    /// not come up yet: the kit does not know the address to offer.
    pub const UPLINK_UNKNOWN: Refusal = Refusal::new(
        503,
        "trunk not connected yet: the uplink's address is unknown",
    )
    .retry_after(5);
    /// The connection's certificate expired after admission.
    pub const CERTIFICATE_EXPIRED: Refusal = Refusal::new(403, "token certificate expired");
    /// Too many attempts in the last minute.
    pub const RATE_LIMITED: Refusal =
        Refusal::new(503, "too many call attempts; try again later").retry_after(60);
    /// The gateway holds its maximum of calls.
    pub const FULL: Refusal = Refusal::new(503, "gateway full");
    /// The token holds its maximum of calls.
    pub const TOKEN_BUSY: Refusal = Refusal::new(486, "too many calls for this token");
    /// The address holds its maximum of calls.
    pub const ADDRESS_BUSY: Refusal = Refusal::new(486, "too many calls from this address");
    /// No SDP offer, or one without SDES SRTP.
    pub const SDES_REQUIRED: Refusal =
        Refusal::new(488, "an SDP offer with SRTP (SDES) is required");
    /// Calls come from phones only.
    pub const PHONES_ONLY: Refusal = Refusal::new(403, "calls are admitted from phones only");

    // The network check (`crate::netcheck`): the uplink is not one a
    // call may use. 503 (the gateway cannot serve this call now, RFC 3261
    // §21.5.4), never a weaker call.
    /// No check has finished since start or the last uplink change.
    pub const NETWORK_CHECKING: Refusal =
        Refusal::new(503, "network check in progress; try again shortly").retry_after(5);
    /// HQ's TLS chain is not HQ's.
    pub const NETWORK_INTERCEPTED: Refusal = Refusal::new(
        503,
        "network not secure: TLS interception detected; call refused",
    );
    /// A captive portal answers in HQ's place.
    pub const NETWORK_PORTAL: Refusal = Refusal::new(
        503,
        "network not secure: captive portal detected; call refused",
    );
    /// UDP does not come back.
    pub const NETWORK_UDP_BLOCKED: Refusal = Refusal::new(
        503,
        "network blocks UDP: no secure media path; call refused",
    );
    /// Nothing answered.
    pub const NETWORK_OFFLINE: Refusal =
        Refusal::new(503, "network unreachable: no uplink; call refused");

    // Resources.
    /// No transaction or call state left.
    pub const OVERLOADED: Refusal = Refusal::new(503, "overloaded");
    /// No media port could be bound.
    pub const NO_MEDIA_PORTS: Refusal = Refusal::new(503, "no media ports");
    /// The directory entry's URI does not parse.
    pub const BAD_DIRECTORY_URI: Refusal = Refusal::new(500, "bad directory URI");
    /// A message could not be built (an internal fault).
    pub const INTERNAL: Refusal = Refusal::new(500, "internal error");

    // In-dialog.
    /// A request on a call of another token or trunk.
    pub const NOT_YOUR_CALL: Refusal = Refusal::new(403, "not your call");

    // Ends of a call being set up, as the phone is told.
    /// The token was revoked.
    pub const TOKEN_REVOKED: Refusal = Refusal::new(403, "token revoked");
    /// HQ's signed command ended every call.
    pub const DROPPED_BY_HQ: Refusal = Refusal::new(503, "calls dropped by HQ's command");
    /// The bridge's trunk connection failed.
    pub const BRIDGE_UNREACHABLE: Refusal = Refusal::new(503, "bridge unreachable");
    /// The bridge never answered the INVITE.
    pub const BRIDGE_SILENT: Refusal = Refusal::new(503, "bridge did not answer");
    /// A signed policy changed the trunk's settings.
    pub const TRUNK_CHANGED: Refusal = Refusal::new(503, "trunk settings changed");
    /// The bridge's answer had no acceptable SRTP.
    pub const BRIDGE_MEDIA: Refusal =
        Refusal::new(488, "the bridge answered without acceptable SRTP");
    /// The bridge's answer carries a route set longer than the gateway
    /// keeps.
    pub const ROUTE_SET: Refusal = Refusal::new(502, "the bridge's route set is too long");
    /// Phone and bridge have no codec in common.
    pub const NO_COMMON_MEDIA: Refusal = Refusal::new(488, "no media in common with the bridge");
    /// The relay saw no media.
    pub const MEDIA_INACTIVE: Refusal = Refusal::new(480, "media inactive");
    /// The session timer ran out without a refresh (RFC 4028 §10).
    pub const SESSION_EXPIRED: Refusal = Refusal::new(408, "session timer expired");
    /// The bridge neither answered nor failed within the set-up time.
    pub const SETUP_TIMED_OUT: Refusal = Refusal::new(408, "the bridge did not answer in time");
    /// The trunk connection of an established call was lost.
    pub const TRUNK_LOST: Refusal = Refusal::new(503, "trunk connection lost");
    /// The phone hung up (its INVITE, if still pending, gets 487).
    pub const PHONE_HUNG_UP: Refusal = Refusal::new(487, "phone hung up");
    /// The bridge hung up (a pending phone INVITE gets 480).
    pub const BRIDGE_HUNG_UP: Refusal = Refusal::new(480, "bridge hung up");
    /// The phone cancelled its INVITE (RFC 3261 §9.2: 487).
    pub const CANCELLED: Refusal = Refusal::new(487, "cancelled by the phone");

    /// What the phone is told of a bridge's final failure (status and
    /// reason by the bridge's status class).
    pub fn of_bridge_failure(code: u16) -> Refusal {
        match code {
            404 | 410 | 484 => Refusal::new(404, "no such meeting at the bridge"),
            486 | 600 => Refusal::new(486, "meeting busy"),
            603 => Refusal::new(603, "declined by the bridge"),
            487 => Refusal::new(487, "cancelled"),
            488 | 606 => Refusal::new(488, "no acceptable media at the bridge"),
            401 | 403 | 407 => Refusal::new(403, "refused by the bridge"),
            408 | 480 => Refusal::new(480, "bridge did not answer"),
            _ => Refusal::new(503, "bridge failed"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_is_a_quoted_string_whatever_the_reason() {
        assert_eq!(
            Refusal::NO_SUCH_MEETING.warning(),
            "399 dialgate \"no such meeting\""
        );
        let r = Refusal {
            reason: Cow::Owned("a \"quoted\\\" \r\nreason".into()),
            ..Refusal::INTERNAL
        };
        assert_eq!(r.warning(), "399 dialgate \"a \\\"quoted\\\\\\\" reason\"");
        assert_eq!(Refusal::RATE_LIMITED.retry(), Some(60));
        assert_eq!(
            Refusal::media(Reject::NoCommonCodec).warning()[..4],
            *"305 "
        );
    }

    #[test]
    fn bridge_failures_map_by_class() {
        for (bridge, phone) in [(404, 404), (600, 486), (603, 603), (606, 488), (407, 403)] {
            assert_eq!(Refusal::of_bridge_failure(bridge).status(), phone);
        }
        assert_eq!(Refusal::of_bridge_failure(500).status(), 503);
    }
}
