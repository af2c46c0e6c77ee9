use super::*;

const SCHEDULE: Schedule = Schedule {
    interval: Duration::from_secs(60),
    recheck: Duration::from_secs(5),
};

fn chain() -> Chain {
    Chain::record(
        b"not a certificate",
        1,
        "invalid peer certificate: UnknownIssuer",
    )
}

fn probes(hq: HqProbe, portal: Option<PortalProbe>, udp: Option<UdpProbe>) -> Probes {
    Probes { hq, portal, udp }
}

fn clean() -> Probes {
    probes(
        HqProbe::Verified,
        Some(PortalProbe::Answered(PortalAnswer::Expected)),
        Some(UdpProbe::Answered {
            rtt: Duration::from_millis(1),
            mapped: None,
        }),
    )
}

fn events(n: &mut NetCheck) -> Vec<Event> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

#[test]
fn verdicts_of_results() {
    let redirect = PortalProbe::Answered(PortalAnswer::Redirect {
        status: 302,
        location: None,
    });
    let udp_ok = Some(UdpProbe::Answered {
        rtt: Duration::ZERO,
        mapped: None,
    });
    let gone = || HqProbe::Unreachable("timed out".into());
    let cases = [
        (clean(), Verdict::Clean),
        (probes(HqProbe::Verified, None, None), Verdict::Clean),
        (
            probes(HqProbe::Intercepted(chain()), None, udp_ok.clone()),
            Verdict::Intercepted,
        ),
        (
            probes(HqProbe::NotTls("corrupt message".into()), None, None),
            Verdict::Intercepted,
        ),
        // A portal answering HTTPS with its own certificate is a portal.
        (
            probes(
                HqProbe::Intercepted(chain()),
                Some(redirect.clone()),
                Some(UdpProbe::NoAnswer),
            ),
            Verdict::CaptivePortal,
        ),
        (
            probes(
                gone(),
                Some(PortalProbe::Answered(PortalAnswer::NotHttp)),
                None,
            ),
            Verdict::CaptivePortal,
        ),
        (
            probes(HqProbe::Verified, None, Some(UdpProbe::NoAnswer)),
            Verdict::UdpBlocked,
        ),
        (
            probes(
                gone(),
                Some(PortalProbe::Answered(PortalAnswer::Expected)),
                Some(UdpProbe::NoAnswer),
            ),
            Verdict::UdpBlocked,
        ),
        (probes(gone(), None, udp_ok.clone()), Verdict::HqUnreachable),
        (probes(gone(), None, None), Verdict::HqUnreachable),
        (
            probes(
                gone(),
                Some(PortalProbe::Unreachable("refused".into())),
                Some(UdpProbe::NoAnswer),
            ),
            Verdict::Offline,
        ),
    ];
    for (p, want) in cases {
        assert_eq!(verdict(&p), want, "{p:?}");
    }
}

#[test]
fn only_clean_and_hq_unreachable_admit_calls() {
    for v in Verdict::ALL {
        let admits = matches!(v, Verdict::Clean | Verdict::HqUnreachable);
        assert_eq!(v.refusal().is_none(), admits, "{v:?}");
        assert_eq!(Verdict::from_name(v.name()), Some(v));
        if let Some(r) = v.refusal() {
            assert_eq!(r.status(), 503);
            assert!(r.warning().starts_with("399 dialgate \"network"), "{r:?}");
        }
    }
    assert_eq!(Verdict::from_name("fine"), None);
}

#[test]
fn a_kit_checks_at_start_and_then_every_interval() {
    let t0 = Instant::now();
    let mut n = NetCheck::new(t0, SCHEDULE);
    assert_eq!(n.verdict(), Verdict::Checking);
    assert_eq!(n.next_timeout(), Some(t0));
    n.handle_timeout(t0);
    assert_eq!(events(&mut n), vec![Event::Check]);
    assert_eq!(n.next_timeout(), None, "no second check while one runs");
    n.handle_timeout(t0 + Duration::from_secs(100));
    assert!(events(&mut n).is_empty());

    let t1 = t0 + Duration::from_millis(30);
    n.handle_result(t1, clean());
    match events(&mut n).as_slice() {
        [Event::Changed {
            from: Verdict::Checking,
            to: Verdict::Clean,
            probes: Some(p),
        }] => assert_eq!(**p, clean()),
        other => panic!("{other:?}"),
    }
    assert_eq!(n.next_timeout(), Some(t1 + SCHEDULE.interval));
    n.handle_timeout(t1 + SCHEDULE.interval - Duration::from_millis(1));
    assert!(events(&mut n).is_empty(), "not due yet");
    let t2 = t1 + SCHEDULE.interval;
    n.handle_timeout(t2);
    assert_eq!(events(&mut n), vec![Event::Check]);
    // The same verdict again: no event.
    n.handle_result(t2, clean());
    assert!(events(&mut n).is_empty());
}

#[test]
fn a_refusing_verdict_is_checked_again_sooner_and_cleared() {
    let t0 = Instant::now();
    let mut n = NetCheck::new(t0, SCHEDULE);
    n.handle_timeout(t0);
    let portal = probes(
        HqProbe::Intercepted(chain()),
        Some(PortalProbe::Answered(PortalAnswer::Redirect {
            status: 302,
            location: Some("http://portal/".into()),
        })),
        None,
    );
    n.handle_result(t0, portal);
    let ev = events(&mut n);
    assert!(matches!(
        ev.as_slice(),
        [
            Event::Check,
            Event::Changed {
                to: Verdict::CaptivePortal,
                ..
            }
        ]
    ));
    assert_eq!(n.next_timeout(), Some(t0 + SCHEDULE.recheck));
    let t1 = t0 + SCHEDULE.recheck;
    n.handle_timeout(t1);
    n.handle_result(t1, clean());
    assert!(matches!(
        events(&mut n).as_slice(),
        [
            Event::Check,
            Event::Changed {
                from: Verdict::CaptivePortal,
                to: Verdict::Clean,
                ..
            }
        ]
    ));
}

#[test]
fn an_uplink_change_voids_the_verdict_and_a_running_check() {
    let t0 = Instant::now();
    let mut n = NetCheck::new(t0, SCHEDULE);
    n.handle_timeout(t0);
    n.handle_result(t0, clean());
    events(&mut n);
    // Idle: checking at once.
    let t1 = t0 + Duration::from_secs(1);
    n.uplink_changed(t1);
    assert!(matches!(
        events(&mut n).as_slice(),
        [
            Event::Changed {
                from: Verdict::Clean,
                to: Verdict::Checking,
                probes: None
            },
            Event::Check
        ]
    ));
    assert_eq!(n.verdict().refusal(), Some(Refusal::NETWORK_CHECKING));
    // Changed again while that check runs: its result is dropped and a
    // new check starts.
    n.uplink_changed(t1);
    assert!(
        events(&mut n).is_empty(),
        "already checking, one check runs"
    );
    n.handle_result(t1, clean());
    assert_eq!(events(&mut n), vec![Event::Check]);
    assert_eq!(n.verdict(), Verdict::Checking);
    n.handle_result(t1, clean());
    assert!(matches!(
        events(&mut n).as_slice(),
        [Event::Changed {
            to: Verdict::Clean,
            ..
        }]
    ));
    // A result nobody asked for changes nothing.
    n.handle_result(t1, probes(HqProbe::Intercepted(chain()), None, None));
    assert!(events(&mut n).is_empty());
    assert_eq!(n.verdict(), Verdict::Clean);
}

#[test]
fn a_recheck_longer_than_the_interval_is_capped() {
    let t0 = Instant::now();
    let mut n = NetCheck::new(
        t0,
        Schedule {
            interval: Duration::from_secs(2),
            recheck: Duration::from_secs(10),
        },
    );
    n.handle_timeout(t0);
    n.handle_result(
        t0,
        probes(HqProbe::Verified, None, Some(UdpProbe::NoAnswer)),
    );
    assert_eq!(n.next_timeout(), Some(t0 + Duration::from_secs(2)));
}

#[test]
fn chains_are_recorded_with_names_and_fingerprint() {
    let pem = include_bytes!("../../tests/data/bridge-ca.pem");
    let cert = crate::pem::certificates(pem).unwrap().remove(0);
    let c = Chain::record(&cert, 2, "invalid peer certificate: UnknownIssuer");
    assert_eq!(c.subject, "Yubico PIV Root CA Serial 263751");
    assert_eq!(c.issuer, "Yubico PIV Root CA Serial 263751");
    assert_eq!(c.certificates, 2);
    assert_eq!(c.fingerprint.len(), 64);
    assert!(c.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
    let junk = chain();
    assert_eq!((junk.subject.as_str(), junk.issuer.as_str()), ("-", "-"));
    assert_eq!(junk.fingerprint.len(), 64);
}
