//! Knowing the network before a call (`docs/network.md`, "Network
//! check"): what the uplink is like, judged from three probes the shell
//! runs, and the verdict that admits or refuses new calls.
//!
//! The probes (each bounded in time and size by the shell):
//!
//! - **HQ over TLS**: a TLS 1.3 handshake with HQ's management server,
//!   the only trusted CA being `[management] ca`, then a GET of the kit's
//!   timestamp file. A chain that does not verify is TLS interception:
//!   its end-entity fingerprint, subject and issuer are recorded
//!   ([`Chain`]), never trusted.
//! - **Captive portal**: a plain-HTTP GET of `[network] portal_probe`,
//!   whose only expected answer is a bodiless 204 ([`portal`]).
//! - **UDP**: a STUN Binding request (RFC 8489) to `[network] stun`,
//!   retransmitted within a timeout ([`stun`]).
//!
//! [`verdict`] turns their results into a [`Verdict`]; [`NetCheck`]
//! decides when to check and reports every change.
//!
//! # Driving [`NetCheck`]
//!
//! Sans-IO, like the other cores: it reads no clock and opens nothing.
//!
//! 1. [`NetCheck::new`]`(now, ..)`: the verdict is [`Verdict::Checking`]
//!    and a check is due at once.
//! 2. Whenever [`NetCheck::next_timeout`] passes, call
//!    [`NetCheck::handle_timeout`]; when the uplink changes (a new lease,
//!    another address), call [`NetCheck::uplink_changed`].
//! 3. After every call, drain [`NetCheck::poll_event`]: on
//!    [`Event::Check`] run the probes and hand their results to
//!    [`NetCheck::handle_result`]; on [`Event::Changed`] apply the new
//!    verdict (its [`Verdict::refusal`]) to the B2BUA and audit it.
//!
//! One check runs at a time. A result that arrives after an uplink change
//! describes the old network: it is dropped and a new check starts.

pub mod portal;
pub mod stun;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::b2bua::Refusal;
use portal::{printable, PortalAnswer};

/// The certificate chain an interceptor presented, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// SHA-256 of the end-entity certificate's DER, lower-case hex.
    pub fingerprint: String,
    /// The end-entity subject's common name (bounded, printable), or `-`.
    pub subject: String,
    /// Its issuer's common name (bounded, printable), or `-`.
    pub issuer: String,
    /// How many certificates the peer sent.
    pub certificates: usize,
    /// Why the chain was refused (the verifier's words).
    pub error: String,
}

impl Chain {
    /// Records a refused chain: `end_entity` (DER, parsed only to read
    /// names; a certificate that does not parse still has a fingerprint),
    /// the number of certificates sent, and the refusal.
    pub fn record(end_entity: &[u8], certificates: usize, error: &str) -> Chain {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity);
        let fingerprint = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let (subject, issuer) = match crate::der::Certificate::parse(end_entity) {
            Ok(c) => {
                let issuer = crate::der::name_attributes(c.issuer)
                    .ok()
                    .and_then(|attrs| {
                        attrs
                            .iter()
                            .find(|a| a.oid == crate::der::oid::COMMON_NAME)
                            .and_then(|a| std::str::from_utf8(a.value).ok())
                            .map(printable)
                    });
                (c.common_name().map(printable), issuer)
            }
            Err(_) => (None, None),
        };
        Chain {
            fingerprint,
            subject: subject.unwrap_or_else(|| "-".into()),
            issuer: issuer.unwrap_or_else(|| "-".into()),
            certificates,
            error: printable(error),
        }
    }
}

/// What the HQ probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HqProbe {
    /// HQ's pinned CA verified the chain and HQ answered.
    Verified,
    /// Another chain: TLS interception.
    Intercepted(Chain),
    /// Something answered, but not with a TLS we accept (plain HTTP on
    /// the TLS port, a handshake failure).
    NotTls(String),
    /// No answer (refused, unreachable, timed out).
    Unreachable(String),
}

/// What the portal probe found (`None` in [`Probes`]: not configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalProbe {
    /// It answered.
    Answered(PortalAnswer),
    /// No answer.
    Unreachable(String),
}

/// What the UDP probe found (`None` in [`Probes`]: not configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpProbe {
    /// The STUN server answered: UDP goes out and comes back.
    Answered {
        /// Round trip of the answered request.
        rtt: Duration,
        /// The mapped address it reported (the network's word; reported,
        /// not used).
        mapped: Option<SocketAddr>,
    },
    /// No answer within the timeout.
    NoAnswer,
}

/// One check's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probes {
    /// HQ over TLS.
    pub hq: HqProbe,
    /// The captive-portal probe, if configured.
    pub portal: Option<PortalProbe>,
    /// The UDP probe, if configured.
    pub udp: Option<UdpProbe>,
}

/// What the kit knows of its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// No check finished since start or the last uplink change.
    Checking,
    /// HQ verified, no portal, UDP answered (those configured).
    Clean,
    /// HQ did not answer, nothing else is wrong: calls go on (their trunk
    /// verifies the bridge by its own pinned key or CA), HQ sees it later.
    HqUnreachable,
    /// Nothing answered at all.
    Offline,
    /// A captive portal answers in HQ's place.
    CaptivePortal,
    /// HQ's TLS chain is not HQ's: interception.
    Intercepted,
    /// UDP does not come back: no media path.
    UdpBlocked,
}

impl Verdict {
    /// Every verdict, for metrics.
    pub const ALL: [Verdict; 7] = [
        Verdict::Checking,
        Verdict::Clean,
        Verdict::HqUnreachable,
        Verdict::Offline,
        Verdict::CaptivePortal,
        Verdict::Intercepted,
        Verdict::UdpBlocked,
    ];

    /// Its name in audit records and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Checking => "checking",
            Verdict::Clean => "clean",
            Verdict::HqUnreachable => "hq-unreachable",
            Verdict::Offline => "offline",
            Verdict::CaptivePortal => "captive-portal",
            Verdict::Intercepted => "intercepted",
            Verdict::UdpBlocked => "udp-blocked",
        }
    }

    /// The verdict named `name`.
    pub fn from_name(name: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.name() == name)
    }

    /// What a phone's INVITE gets under this verdict: `None`, admitted
    /// (the other checks permitting); else this refusal.
    pub fn refusal(self) -> Option<Refusal> {
        match self {
            Verdict::Clean | Verdict::HqUnreachable => None,
            Verdict::Checking => Some(Refusal::NETWORK_CHECKING),
            Verdict::Offline => Some(Refusal::NETWORK_OFFLINE),
            Verdict::CaptivePortal => Some(Refusal::NETWORK_PORTAL),
            Verdict::Intercepted => Some(Refusal::NETWORK_INTERCEPTED),
            Verdict::UdpBlocked => Some(Refusal::NETWORK_UDP_BLOCKED),
        }
    }
}

/// The verdict of one check's results. A portal explains a failing TLS
/// probe (portals answer HTTPS with their own certificate), so it comes
/// first; then interception; then UDP; an HQ that merely does not answer
/// refuses nothing unless nothing answers at all.
pub fn verdict(p: &Probes) -> Verdict {
    let portal = matches!(
        p.portal,
        Some(PortalProbe::Answered(ref a)) if *a != PortalAnswer::Expected
    );
    if portal {
        return Verdict::CaptivePortal;
    }
    if matches!(p.hq, HqProbe::Intercepted(_) | HqProbe::NotTls(_)) {
        return Verdict::Intercepted;
    }
    let hq_silent = matches!(p.hq, HqProbe::Unreachable(_));
    let portal_silent = matches!(p.portal, Some(PortalProbe::Unreachable(_)) | None);
    match p.udp {
        Some(UdpProbe::NoAnswer) if hq_silent && portal_silent => Verdict::Offline,
        Some(UdpProbe::NoAnswer) => Verdict::UdpBlocked,
        _ if hq_silent => Verdict::HqUnreachable,
        _ => Verdict::Clean,
    }
}

/// When to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Between checks while the verdict admits calls.
    pub interval: Duration,
    /// Between checks while it refuses them (a portal logged into, an
    /// interceptor gone: calls work again within this).
    pub recheck: Duration,
}

/// What the shell must do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Run the probes now and hand the results to
    /// [`NetCheck::handle_result`].
    Check,
    /// The verdict changed.
    Changed {
        /// The verdict before.
        from: Verdict,
        /// The verdict now.
        to: Verdict,
        /// The results it was judged on (`None`: the uplink changed, a
        /// new check is under way).
        probes: Option<Box<Probes>>,
    },
}

/// The network check's scheduler and memory. See the module docs for the
/// driving contract.
#[derive(Debug)]
pub struct NetCheck {
    schedule: Schedule,
    verdict: Verdict,
    /// When the next check is due (while none runs).
    due: Instant,
    running: bool,
    /// The uplink changed while a check ran: its result is stale.
    stale: bool,
    events: VecDeque<Event>,
}

impl NetCheck {
    /// A check of a network not known yet: [`Verdict::Checking`], the
    /// first check due at `now`.
    pub fn new(now: Instant, schedule: Schedule) -> NetCheck {
        NetCheck {
            schedule,
            verdict: Verdict::Checking,
            due: now,
            running: false,
            stale: false,
            events: VecDeque::new(),
        }
    }

    /// The verdict in force.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// When to call [`NetCheck::handle_timeout`] (`None`: a check runs,
    /// its result is awaited).
    pub fn next_timeout(&self) -> Option<Instant> {
        (!self.running).then_some(self.due)
    }

    /// Starts a check if one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.running && now >= self.due {
            self.running = true;
            self.events.push_back(Event::Check);
        }
    }

    /// The uplink changed: what was known is void. The verdict becomes
    /// [`Verdict::Checking`] (refusing calls until the new network is
    /// judged) and a check starts now (or as soon as the running one,
    /// whose result is dropped, returns).
    pub fn uplink_changed(&mut self, now: Instant) {
        self.set(Verdict::Checking, None);
        if self.running {
            self.stale = true;
        } else {
            self.due = now;
            self.handle_timeout(now);
        }
    }

    /// The results of the check last started.
    pub fn handle_result(&mut self, now: Instant, probes: Probes) {
        if !self.running {
            return;
        }
        self.running = false;
        if std::mem::take(&mut self.stale) {
            self.due = now;
            self.handle_timeout(now);
            return;
        }
        let v = verdict(&probes);
        self.set(v, Some(Box::new(probes)));
        let wait = if v.refusal().is_none() {
            self.schedule.interval
        } else {
            self.schedule.recheck.min(self.schedule.interval)
        };
        self.due = now + wait;
    }

    /// The next thing for the shell to do or know.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn set(&mut self, to: Verdict, probes: Option<Box<Probes>>) {
        if to != self.verdict {
            let from = std::mem::replace(&mut self.verdict, to);
            self.events.push_back(Event::Changed { from, to, probes });
        }
    }
}

#[cfg(test)]
mod tests;
