//! Metrics as text, sans-IO: rendering families of counters and gauges in
//! the OpenMetrics 1.0 text format or the Prometheus text format 0.0.4,
//! and reading the latter back (what a Pushgateway serves at `/metrics`).
//!
//! Two dialects because the Pushgateway the tests run (Debian's
//! `prometheus-pushgateway` 1.5.1) parses only the Prometheus text format
//! (and protobuf): an OpenMetrics counter (`# TYPE x counter` with a
//! sample `x_total`) arrives there untyped and without its help. The two
//! differ only in the family name of a counter (OpenMetrics: without
//! `_total`; Prometheus: with it) and the closing `# EOF`; everything
//! else (escaping, `# HELP`/`# TYPE` lines, values) is common.
//!
//! ```
//! use dialgate_proto::metrics::{render, Dialect, Family};
//! let f = [Family::counter("dialgate_calls_completed", "Calls that ended after being up.")
//!     .with(&[], 3.0)];
//! let text = render(&f, Dialect::OpenMetrics).unwrap();
//! assert!(text.ends_with("dialgate_calls_completed_total 3\n# EOF\n"));
//! ```
//!
//! [`kit`] holds what a kit reports (`docs/status.md`) and how it is
//! derived from the audit events.

pub mod kit;
#[cfg(test)]
mod tests;

use std::fmt::Write;

/// The most labels a sample may carry, and the longest line read back.
pub const MAX_LABELS: usize = 16;
/// The longest line [`parse_text`] reads.
pub const MAX_LINE: usize = 4096;

/// Why a family could not be rendered, or text not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A metric name outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("not a metric name: {0:?}")]
    MetricName(String),
    /// A label name outside `[a-zA-Z_][a-zA-Z0-9_]*`, or one starting `__`.
    #[error("not a label name: {0:?}")]
    LabelName(String),
    /// A counter's name ends with `_total` (added by the renderer).
    #[error("a counter is named without _total: {0:?}")]
    CounterSuffix(String),
    /// A counter's value is negative or not a number.
    #[error("{0}: a counter cannot be negative or NaN")]
    CounterValue(String),
    /// A line of text that is not a sample we read.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (from the process's start).
    Counter,
    /// A value that may go up and down.
    Gauge,
}

/// The text dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`),
    /// which a Pushgateway parses.
    Prometheus,
}

impl Dialect {
    /// The Content-Type of a body in this dialect.
    pub fn content_type(self) -> &'static str {
        match self {
            Dialect::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Dialect::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// One sample: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `(name, value)`, in order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A metric family: a name, a help text, a kind and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// For a counter, without `_total`.
    pub name: String,
    /// One line of help.
    pub help: String,
    /// Counter or gauge.
    pub kind: Kind,
    /// The samples (a family with none is left out).
    pub samples: Vec<Sample>,
}

impl Family {
    /// A counter family (`name` without `_total`).
    pub fn counter(name: &str, help: &str) -> Family {
        Family::new(name, help, Kind::Counter)
    }

    /// A gauge family.
    pub fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, Kind::Gauge)
    }

    fn new(name: &str, help: &str, kind: Kind) -> Family {
        Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample.
    pub fn with(mut self, labels: &[(&str, &str)], value: f64) -> Family {
        self.push(labels, value);
        self
    }

    /// Adds a sample.
    pub fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        });
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    !s.starts_with("__")
        && matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A label value: `\` `"` and line feed escaped (both dialects).
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A help text: `\` and line feed escaped (and `"` in OpenMetrics).
fn escape_help(out: &mut String, v: &str, dialect: Dialect) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if dialect == Dialect::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // Rust prints integral floats without a fraction ("3") and
        // others in the shortest form that reads back exactly.
        let _ = write!(out, "{v}");
    }
}

/// Renders `families` in `dialect`; families without samples are left
/// out. Refuses names that are not metric or label names, counters named
/// with `_total`, and negative or NaN counters.
pub fn render(families: &[Family], dialect: Dialect) -> Result<String, MetricsError> {
    let mut out = String::with_capacity(64 * families.len() + 16);
    for f in families {
        if !is_metric_name(&f.name) {
            return Err(MetricsError::MetricName(f.name.clone()));
        }
        if f.samples.is_empty() {
            continue;
        }
        let (type_name, kind) = match f.kind {
            Kind::Counter => {
                if f.name.ends_with("_total") {
                    return Err(MetricsError::CounterSuffix(f.name.clone()));
                }
                let total = format!("{}_total", f.name);
                match dialect {
                    Dialect::OpenMetrics => (f.name.clone(), "counter"),
                    Dialect::Prometheus => (total, "counter"),
                }
            }
            Kind::Gauge => (f.name.clone(), "gauge"),
        };
        let sample_name = match f.kind {
            Kind::Counter => format!("{}_total", f.name),
            Kind::Gauge => f.name.clone(),
        };
        let _ = writeln!(out, "# TYPE {type_name} {kind}");
        out.push_str("# HELP ");
        out.push_str(&type_name);
        out.push(' ');
        escape_help(&mut out, &f.help, dialect);
        out.push('\n');
        for s in &f.samples {
            if f.kind == Kind::Counter && (s.value.is_nan() || s.value < 0.0) {
                return Err(MetricsError::CounterValue(f.name.clone()));
            }
            out.push_str(&sample_name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if !is_label_name(k) {
                        return Err(MetricsError::LabelName(k.clone()));
                    }
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    escape_label(&mut out, v);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            value(&mut out, s.value);
            out.push('\n');
        }
    }
    if dialect == Dialect::OpenMetrics {
        out.push_str("# EOF\n");
    }
    Ok(out)
}

/// A sample read back by [`parse_text`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The sample's name (a counter's with `_total`).
    pub name: String,
    /// Its labels, unescaped, in order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl ParsedSample {
    /// The value of label `name`, if it has one.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the samples of Prometheus (0.0.4) or OpenMetrics text: comment
/// lines (`#`) and blank lines are skipped, a timestamp after the value
/// is ignored. Lines longer than [`MAX_LINE`], more than [`MAX_LABELS`]
/// labels, bad escapes or values are errors naming the line.
pub fn parse_text(text: &str) -> Result<Vec<ParsedSample>, MetricsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |reason| MetricsError::Syntax {
            line: line_no,
            reason,
        };
        if line.len() > MAX_LINE {
            return Err(err("line too long"));
        }
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' ', '\t'])
            .ok_or(err("a name without a value"))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(err("not a metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = parse_labels(r, &mut labels).map_err(err)?;
        }
        let mut fields = rest.split_ascii_whitespace();
        let v = fields.next().ok_or(err("no value"))?;
        let value = match v {
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse::<f64>().map_err(|_| err("not a number"))?,
        };
        // An optional timestamp, then nothing.
        if fields.nth(1).is_some() {
            return Err(err("trailing data after the value"));
        }
        out.push(ParsedSample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// Reads `name="value",...}` (after the `{`); returns what follows.
fn parse_labels<'a>(
    mut r: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, &'static str> {
    loop {
        r = r.trim_start();
        if let Some(rest) = r.strip_prefix('}') {
            return Ok(rest);
        }
        if labels.len() == MAX_LABELS {
            return Err("too many labels");
        }
        let eq = r.find('=').ok_or("a label without a value")?;
        let name = r[..eq].trim();
        if !is_label_name(name) && !name.starts_with("__") {
            return Err("not a label name");
        }
        r = r[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value must be quoted")?;
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("a bad escape in a label value"),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        r = r[end + 1..].trim_start();
        if let Some(rest) = r.strip_prefix(',') {
            r = rest;
        } else if !r.starts_with('}') {
            return Err("labels must be separated by ','");
        }
    }
}
