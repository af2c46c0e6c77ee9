//! One audit record: an RFC 5424 message whose first structured-data
//! element is ours (`[dialgate@32473 seq=.. prev=.. ...]`), one per line.

use std::fmt::Write;

/// Our SD-ID. 32473 is the private enterprise number RFC 5612 reserves
/// for documentation; a registered number replaces it before fielding.
pub const SD_ID: &str = "dialgate@32473";
/// Facility 13, "log audit" (RFC 5424 §6.2.1).
const FACILITY: u8 = 13;
/// Longest parameter value kept (longer ones are cut, marked with `…`).
const MAX_VALUE: usize = 512;
/// Longest record a verifier reads.
pub const MAX_RECORD: usize = 16 << 10;

/// RFC 5424 severities the kit uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A security decision that leaves the kit degraded.
    Error = 3,
    /// A refusal, a closing, an ending forced by policy.
    Warning = 4,
    /// Routine decisions (admitted, started, ended).
    Info = 6,
}

/// What happened, before it is numbered and chained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// RFC 5424 severity.
    pub severity: Severity,
    /// The MSGID: the kind of decision (`admitted`, `refused`, `closed`,
    /// `ended`, `policy`, `start`, `stop`, `summary`, `checkpoint`, ...).
    pub msgid: String,
    /// Parameters of our SD element, in order (never `seq` or `prev`).
    pub params: Vec<(String, String)>,
    /// The human sentence (MSG).
    pub message: String,
}

/// The header fields a shell supplies.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    /// RFC 3339 time of the kit's clock (see [`rfc3339`]).
    pub timestamp: &'a str,
    /// The kit id.
    pub hostname: &'a str,
    /// The daemon's process id.
    pub procid: u32,
}

/// `LEN SP MSG` (RFC 5425 §4.3, octet counting).
pub fn octet_counted(record: &str) -> Vec<u8> {
    let mut out = format!("{} ", record.len()).into_bytes();
    out.extend_from_slice(record.as_bytes());
    out
}

/// RFC 3339 UTC with microseconds of a Unix time.
pub fn rfc3339(unix_micros: u64) -> String {
    let secs = unix_micros / 1_000_000;
    let micros = unix_micros % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (H. Hinnant's algorithm), days since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The Unix time (µs) of a timestamp as [`rfc3339`] writes it
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`); `None` for anything else.
pub fn unix_micros_of(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    if b.len() != 27
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[19] != b'.'
        || b[26] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = ts.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm), the inverse of rfc3339.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(us as u64)
}

/// A PARAM-NAME or MSGID: 1 to 32 printable US-ASCII, no `=`, space,
/// `]` or `"`; anything else becomes `_`.
fn name(s: &str) -> String {
    let n: String = s
        .chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_graphic() && !"=]\"".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() {
        "-".into()
    } else {
        n
    }
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped (§6.3.3); control characters
/// (a record is one line) become `?`; cut at [`MAX_VALUE`].
fn value(out: &mut String, s: &str) {
    for (n, c) in s.chars().enumerate() {
        if n >= MAX_VALUE {
            out.push('…');
            return;
        }
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
}

/// Formats the record numbered `seq` whose predecessor hashes to `prev`.
pub(crate) fn format(h: &Header<'_>, seq: u64, prev: &[u8; 32], e: &Event) -> String {
    let pri = FACILITY * 8 + e.severity as u8;
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "<{pri}>1 {} {} dialgate {} {} [{SD_ID} seq=\"{seq}\" prev=\"{}\"",
        name(h.timestamp),
        name(h.hostname),
        h.procid,
        name(&e.msgid),
        dialgate_signed::hex(prev)
    );
    for (k, v) in &e.params {
        if k == "seq" || k == "prev" {
            continue;
        }
        let _ = write!(out, " {}=\"", name(k));
        value(&mut out, v);
        out.push('"');
    }
    out.push_str("] ");
    for c in e.message.chars().take(1024) {
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// What the verifier needs from a record line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// TIMESTAMP, as written.
    pub timestamp: String,
    /// HOSTNAME: the kit.
    pub hostname: String,
    /// MSGID.
    pub msgid: String,
    /// Our parameters, unescaped, `seq` and `prev` included.
    pub params: Vec<(String, String)>,
}

impl Parsed {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the header and our SD element of one record (a strict reader of
/// what [`format`] writes; any RFC 5424 receiver reads more).
pub fn parse(line: &str) -> Result<Parsed, &'static str> {
    if line.len() > MAX_RECORD {
        return Err("record longer than 16 KiB");
    }
    let rest = line.strip_prefix('<').ok_or("no PRI")?;
    let (pri, rest) = rest.split_once('>').ok_or("no PRI")?;
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad PRI");
    }
    let rest = rest.strip_prefix("1 ").ok_or("not RFC 5424 version 1")?;
    let mut fields = rest.splitn(6, ' ');
    let timestamp = fields.next().ok_or("no TIMESTAMP")?;
    let hostname = fields.next().ok_or("no HOSTNAME")?;
    let app = fields.next().ok_or("no APP-NAME")?;
    let _procid = fields.next().ok_or("no PROCID")?;
    let msgid = fields.next().ok_or("no MSGID")?;
    let sd = fields.next().ok_or("no STRUCTURED-DATA")?;
    if app != "dialgate" {
        return Err("APP-NAME is not dialgate");
    }
    let sd = sd
        .strip_prefix('[')
        .and_then(|s| s.strip_prefix(SD_ID))
        .ok_or("no dialgate@32473 element")?;
    let mut params = Vec::new();
    let mut s = sd;
    loop {
        if let Some(after) = s.strip_prefix(']') {
            if !(after.is_empty() || after.starts_with(' ')) {
                return Err("text after the structured data");
            }
            break;
        }
        s = s.strip_prefix(' ').ok_or("malformed SD-PARAM")?;
        let (k, r) = s.split_once("=\"").ok_or("malformed SD-PARAM")?;
        let mut v = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated PARAM-VALUE"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, c)) => {
                        if !"\"\\]".contains(c) {
                            v.push('\\');
                        }
                        v.push(c);
                    }
                    None => return Err("unterminated PARAM-VALUE"),
                },
                Some((_, c)) => v.push(c),
            }
        };
        params.push((k.to_string(), v));
        s = &r[end + 1..];
        if params.len() > 64 {
            return Err("too many SD-PARAMs");
        }
    }
    Ok(Parsed {
        timestamp: timestamp.to_string(),
        hostname: hostname.to_string(),
        msgid: msgid.to_string(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_back_to_the_same_instant() {
        for t in [
            0u64,
            1_764_979_200_123_456,
            951_782_400_000_001,
            4_102_444_799_999_999,
        ] {
            assert_eq!(unix_micros_of(&rfc3339(t)), Some(t), "{}", rfc3339(t));
        }
        assert_eq!(unix_micros_of("2026-13-01T00:00:00.000000Z"), None);
        assert_eq!(unix_micros_of("2026-12-06T00:00:00Z"), None);
    }

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(
            rfc3339(1_796_256_000_000_000),
            "2026-12-03T00:00:00.000000Z"
        );
    }

    #[test]
    fn values_are_escaped_and_read_back() {
        let h = Header {
            timestamp: "2026-12-03T00:00:00.000000Z",
            hostname: "kit-1",
            procid: 7,
        };
        let e = Event {
            severity: Severity::Warning,
            msgid: "refused".into(),
            params: vec![
                ("reason".into(), "a \"quoted\" ] \\ thing\nnext".into()),
                ("seq".into(), "999".into()),
            ],
            message: "phone refused\r\n".into(),
        };
        let line = format(&h, 5, &[0xab; 32], &e);
        assert!(line.starts_with("<108>1 2026-12-03T00:00:00.000000Z kit-1 dialgate 7 refused [dialgate@32473 seq=\"5\" prev=\"abab"), "{line}");
        assert!(!line.contains('\n') && !line.contains('\r'));
        let p = parse(&line).unwrap();
        assert_eq!(p.get("seq"), Some("5"));
        assert_eq!(p.get("reason"), Some("a \"quoted\" ] \\ thing?next"));
        assert_eq!(p.params.iter().filter(|(k, _)| k == "seq").count(), 1);
        assert_eq!(p.hostname, "kit-1");
        assert!(parse("<13>1 - h other 1 x [dialgate@32473] m").is_err());
        assert!(parse("<13>1 - h dialgate 1 x [dialgate@32473 a=\"b] m").is_err());
        assert!(parse("garbage").is_err());
    }
}
