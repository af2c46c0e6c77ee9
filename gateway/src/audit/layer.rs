//! The tracing layer that turns events of target `audit` into records.

use std::fmt::Write;

use dialgate_audit::{Event, Severity};
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Hands every event of target `audit` to the audit trail: field
/// `decision` is the MSGID, `message` the MSG, every other field a
/// parameter of the `dialgate@32473` element, the level the severity.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditLayer;

#[derive(Default)]
struct Fields {
    msgid: Option<String>,
    message: String,
    params: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, s);
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "decision" => self.msgid = Some(value),
            // `seq` and `prev` are the chain's own.
            "seq" | "prev" => self.params.push((format!("_{}", field.name()), value)),
            name => self.params.push((name.to_string(), value)),
        }
    }
}

impl<S: Subscriber> Layer<S> for AuditLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != "audit" {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let severity = match *meta.level() {
            Level::ERROR => Severity::Error,
            Level::WARN => Severity::Warning,
            _ => Severity::Info,
        };
        let msgid = f.msgid.unwrap_or_else(|| "event".into());
        // The kit's status counts what the trail records (`crate::status`).
        crate::status::observe(&msgid, &f.params);
        super::submit(Event {
            severity,
            msgid,
            params: f.params,
            message: f.message,
        });
    }
}
