use super::kit::{names, KitStatus, MAX_REASONS};
use super::*;

fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn both_dialects_render_types_help_escapes_and_eof() {
    let fams = [
        Family::counter("x_refused", "Refused \"calls\"\\ by\nreason.")
            .with(&[("reason", "a \"b\" \\ c\nd")], 2.0),
        Family::gauge("x_up", "Up.").with(&[], 0.5),
        Family::gauge("x_empty", "Never shown."),
        Family::gauge("x_inf", "Inf.").with(&[("a", "1"), ("b", "2")], f64::INFINITY),
    ];
    let om = render(&fams, Dialect::OpenMetrics).unwrap();
    assert_eq!(
        om,
        "# TYPE x_refused counter\n\
         # HELP x_refused Refused \\\"calls\\\"\\\\ by\\nreason.\n\
         x_refused_total{reason=\"a \\\"b\\\" \\\\ c\\nd\"} 2\n\
         # TYPE x_up gauge\n# HELP x_up Up.\nx_up 0.5\n\
         # TYPE x_inf gauge\n# HELP x_inf Inf.\nx_inf{a=\"1\",b=\"2\"} +Inf\n\
         # EOF\n"
    );
    let prom = render(&fams, Dialect::Prometheus).unwrap();
    assert!(prom.starts_with(
        "# TYPE x_refused_total counter\n# HELP x_refused_total Refused \"calls\"\\\\ by\\nreason.\n"
    ));
    assert!(!prom.contains("# EOF"));
    assert!(!prom.contains("x_empty"));
    assert!(Dialect::Prometheus.content_type().contains("0.0.4"));
}

#[test]
fn bad_names_and_counters_are_refused() {
    let r = |fam: Family| render(&[fam], Dialect::OpenMetrics);
    assert!(matches!(
        r(Family::gauge("1x", "").with(&[], 1.0)),
        Err(MetricsError::MetricName(_))
    ));
    assert!(matches!(
        r(Family::gauge("x-y", "").with(&[], 1.0)),
        Err(MetricsError::MetricName(_))
    ));
    assert!(matches!(
        r(Family::gauge("x", "").with(&[("a-b", "v")], 1.0)),
        Err(MetricsError::LabelName(_))
    ));
    assert!(matches!(
        r(Family::gauge("x", "").with(&[("__name__", "v")], 1.0)),
        Err(MetricsError::LabelName(_))
    ));
    assert!(matches!(
        r(Family::counter("x_total", "").with(&[], 1.0)),
        Err(MetricsError::CounterSuffix(_))
    ));
    assert!(matches!(
        r(Family::counter("x", "").with(&[], -1.0)),
        Err(MetricsError::CounterValue(_))
    ));
    assert!(matches!(
        r(Family::counter("x", "").with(&[], f64::NAN)),
        Err(MetricsError::CounterValue(_))
    ));
}

#[test]
fn text_reads_back_what_was_rendered_and_what_a_pushgateway_serves() {
    let fams = [
        Family::counter("x_refused", "h").with(&[("reason", "a \"b\" \\ c\nd, e}")], 7.0),
        Family::gauge("x_t", "h").with(&[], 1.7966042125010974e9),
    ];
    for d in [Dialect::OpenMetrics, Dialect::Prometheus] {
        let back = parse_text(&render(&fams, d).unwrap()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].name, "x_refused_total");
        assert_eq!(back[0].label("reason"), Some("a \"b\" \\ c\nd, e}"));
        assert_eq!(back[0].value, 7.0);
        assert_eq!(back[1].value, 1.7966042125010974e9);
    }
    // As Pushgateway 1.5.1 serves it (extra labels, exponent, timestamp).
    let served = "# HELP push_time_seconds Last Unix time when changing this group in the Pushgateway succeeded.\n\
        # TYPE push_time_seconds gauge\n\
        push_time_seconds{instance=\"\",job=\"dialgate\",kit=\"k1\"} 1.7966042125010974e+09\n\
        up 1 1700000000000\n\n";
    let s = parse_text(served).unwrap();
    assert_eq!(s[0].label("kit"), Some("k1"));
    assert_eq!(s[0].label("instance"), Some(""));
    assert_eq!(s[0].value, 1.7966042125010974e9);
    assert_eq!(s[1].name, "up");
    for bad in [
        "x",
        "x{a=\"1\" 2",
        "x{a=1} 2",
        "x{a=\"\\q\"} 2",
        "x{a=\"1\"b=\"2\"} 3",
        "x one",
        "x 1 2 3",
        "-x 1",
    ] {
        assert!(parse_text(bad).is_err(), "{bad}");
    }
    let many: String = (0..=MAX_LABELS).map(|i| format!("l{i}=\"v\",")).collect();
    assert!(parse_text(&format!("x{{{many}}} 1")).is_err());
    assert!(parse_text(&format!("x{{a=\"{}\"}} 1", "v".repeat(MAX_LINE))).is_err());
}

fn value(fams: &[Family], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    fams.iter().find(|f| f.name == name).and_then(|f| {
        f.samples
            .iter()
            .find(|s| label.is_none_or(|(k, v)| s.labels.iter().any(|l| l.0 == k && l.1 == v)))
            .map(|s| s.value)
    })
}

#[test]
fn kit_status_counts_the_audit_events() {
    let mut k = KitStatus::new();
    // Call 1 up then ended; call 2 up; call 3 admitted, never up.
    for c in ["1", "2", "3"] {
        k.observe("admitted", &f(&[("call", c), ("token", "alice")]));
    }
    k.observe("started", &f(&[("call", "1")]));
    k.observe("started", &f(&[("call", "2")]));
    assert_eq!(k.in_progress(), 2);
    k.observe("ended", &f(&[("call", "1"), ("reason", "bye")]));
    k.observe("ended", &f(&[("call", "3")]));
    // A revocation writes two "ended" for one call: counted once.
    k.observe("ended", &f(&[("call", "3")]));
    // A connection admitted at TLS (no call) is not a call.
    k.observe("admitted", &f(&[("peer", "127.0.0.1:1")]));
    assert_eq!((k.in_progress(), k.completed, k.failed), (1, 1, 1));
    k.observe("refused", &f(&[("reason", "not registered")]));
    k.observe("refused", &f(&[("reason", "revoked")]));
    k.observe("refused", &f(&[("reason", "revoked")]));
    k.observe("refused", &f(&[("bundle", "p"), ("reason", "expired")]));
    k.observe(
        "media",
        &f(&[
            ("phone_auth_failed", "3"),
            ("bridge_auth_failed", "1"),
            ("phone_replayed", "2"),
            ("bridge_replayed", "0"),
        ]),
    );
    k.observe(
        "applied",
        &f(&[("version", "7"), ("expires_at", "1800000000")]),
    );
    k.set_last_poll(1_700_000_000);
    k.firmware = Some(("1.2.3".into(), "b".into()));
    let fams = k.families();
    use names::*;
    assert_eq!(value(&fams, CALLS_IN_PROGRESS, None), Some(1.0));
    assert_eq!(value(&fams, CALLS_COMPLETED, None), Some(1.0));
    assert_eq!(value(&fams, CALLS_FAILED, None), Some(1.0));
    assert_eq!(
        value(&fams, ADMISSION_REFUSED, Some(("reason", "revoked"))),
        Some(2.0)
    );
    assert_eq!(
        value(&fams, ADMISSION_REFUSED, Some(("reason", "not registered"))),
        Some(1.0)
    );
    assert_eq!(value(&fams, POLICY_REFUSED, None), Some(1.0));
    assert_eq!(
        value(&fams, SRTP_AUTH_FAILED, Some(("leg", "phone"))),
        Some(3.0)
    );
    assert_eq!(
        value(&fams, SRTP_AUTH_FAILED, Some(("leg", "bridge"))),
        Some(1.0)
    );
    assert_eq!(
        value(&fams, SRTP_REPLAYED, Some(("leg", "phone"))),
        Some(2.0)
    );
    assert_eq!(value(&fams, POLICY_VERSION, None), Some(7.0));
    assert_eq!(value(&fams, POLICY_EXPIRES, None), Some(1.8e9));
    assert_eq!(value(&fams, FIRMWARE, Some(("slot", "b"))), Some(1.0));
    assert_eq!(value(&fams, LAST_POLL, None), Some(1.7e9));
    // Not set: absent, not 0.
    assert_eq!(value(&fams, TIME_FLOOR_AGE, None), None);
    assert_eq!(value(&fams, LAST_COMMAND, None), None);
    let text = render(&fams, Dialect::Prometheus).unwrap();
    assert!(text.contains("dialgate_admission_refused_total{reason=\"revoked\"} 2\n"));
}

#[test]
fn refusal_reasons_are_bounded() {
    let mut k = KitStatus::new();
    for i in 0..100 {
        k.observe(
            "refused",
            &f(&[("reason", &format!("r{i}\n{}", "x".repeat(200)))]),
        );
    }
    assert_eq!(k.refused.len(), MAX_REASONS + 1);
    assert_eq!(k.refused.get("other"), Some(&(100 - MAX_REASONS as u64)));
    assert!(k.refused.keys().all(|r| r.len() <= 80 && !r.contains('\n')));
    render(&k.families(), Dialect::OpenMetrics).unwrap();
}

#[test]
fn the_network_verdict_and_its_changes_are_reported() {
    let mut s = KitStatus::new();
    let text = |s: &KitStatus| render(&s.families(), Dialect::OpenMetrics).unwrap();
    assert!(!text(&s).contains("network"), "no check: no metric");
    for v in ["checking", "clean", "intercepted", "intercepted", "clean"] {
        s.observe("network", &f(&[("verdict", v), ("from", "x")]));
    }
    // A verdict nobody defined is not a label value.
    s.observe("network", &f(&[("verdict", "made-up")]));
    s.observe("network", &f(&[]));
    let t = text(&s);
    assert!(
        t.contains(&format!(
            "{}{{verdict=\"clean\"}} 1\n",
            names::NETWORK_VERDICT
        )),
        "{t}"
    );
    assert!(!t.contains("made-up"));
    for (v, n) in [("checking", 1), ("clean", 2), ("intercepted", 1)] {
        assert!(
            t.contains(&format!(
                "{}_total{{verdict=\"{v}\"}} {n}\n",
                names::NETWORK_CHANGES
            )),
            "{v}: {t}"
        );
    }
}
