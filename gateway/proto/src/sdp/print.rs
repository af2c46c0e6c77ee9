//! Writing a session description (RFC 8866 §5): lines in the order of
//! RFC 8866 §5 (`v o s i u e p c b t r z a`, then per media `m i c b a`),
//! CRLF line endings.
//!
//! There is deliberately no `Display`: the wire form carries SRTP keys, so
//! it is only produced on request, into a zeroizing buffer sized up front
//! (a growing `String` would leave copies of the keys in freed memory).

use core::fmt::{self, Write};

use zeroize::Zeroizing;

use super::model::{Attribute, Connection, Media, SessionDescription};

impl SessionDescription {
    /// The wire form. It contains keys: send it, never log it (see
    /// [`SessionDescription::print_redacted`]).
    pub fn print(&self) -> Zeroizing<String> {
        let mut len = Counter(0);
        // Neither writer can fail: `Counter` only counts and `String`
        // never errors.
        let _ = write_sdp(&mut len, self, false);
        let mut out = Zeroizing::new(String::with_capacity(len.0));
        let _ = write_sdp(&mut *out, self, false);
        out
    }

    /// The wire form with every key parameter replaced by `<redacted>`, for
    /// logs and error reports.
    pub fn print_redacted(&self) -> String {
        let mut out = String::new();
        let _ = write_sdp(&mut out, self, true);
        out
    }
}

/// Counts what would be written.
struct Counter(usize);

impl Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fn write_sdp(w: &mut impl Write, sd: &SessionDescription, redact: bool) -> fmt::Result {
    w.write_str("v=0\r\n")?;
    let o = &sd.origin;
    write!(
        w,
        "o={} {} {} {}\r\n",
        o.username,
        o.session_id,
        o.session_version,
        Conn(&o.address)
    )?;
    write!(w, "s={}\r\n", sd.session_name)?;
    if let Some(i) = &sd.info {
        write!(w, "i={i}\r\n")?;
    }
    if let Some(u) = &sd.uri {
        write!(w, "u={u}\r\n")?;
    }
    for e in &sd.emails {
        write!(w, "e={e}\r\n")?;
    }
    for p in &sd.phones {
        write!(w, "p={p}\r\n")?;
    }
    if let Some(c) = &sd.connection {
        write!(w, "c={}\r\n", Conn(c))?;
    }
    for b in &sd.bandwidths {
        write!(w, "b={}:{}\r\n", b.bwtype, b.bandwidth)?;
    }
    for t in &sd.times {
        write!(w, "t={} {}\r\n", t.start, t.stop)?;
        for r in &t.repeats {
            write!(w, "r={r}\r\n")?;
        }
    }
    if let Some(z) = &sd.time_zones {
        write!(w, "z={z}\r\n")?;
    }
    for a in &sd.attributes {
        write_attribute(w, a, redact)?;
    }
    for m in &sd.media {
        write_media(w, m, redact)?;
    }
    Ok(())
}

fn write_media(w: &mut impl Write, m: &Media, redact: bool) -> fmt::Result {
    write!(w, "m={} {}", m.kind.as_str(), m.port)?;
    if let Some(n) = m.port_count {
        write!(w, "/{n}")?;
    }
    write!(w, " {}", m.proto.as_str())?;
    match &m.formats {
        super::Formats::PayloadTypes(pts) => {
            for pt in pts {
                write!(w, " {pt}")?;
            }
        }
        super::Formats::Tokens(tokens) => {
            for t in tokens {
                write!(w, " {t}")?;
            }
        }
    }
    w.write_str("\r\n")?;
    if let Some(i) = &m.info {
        write!(w, "i={i}\r\n")?;
    }
    if let Some(c) = &m.connection {
        write!(w, "c={}\r\n", Conn(c))?;
    }
    for b in &m.bandwidths {
        write!(w, "b={}:{}\r\n", b.bwtype, b.bandwidth)?;
    }
    for a in &m.attributes {
        write_attribute(w, a, redact)?;
    }
    Ok(())
}

fn write_attribute(w: &mut impl Write, a: &Attribute, redact: bool) -> fmt::Result {
    w.write_str("a=")?;
    match a {
        Attribute::Rtpmap(r) => {
            write!(
                w,
                "rtpmap:{} {}/{}",
                r.payload_type, r.encoding, r.clock_rate
            )?;
            if let Some(p) = &r.params {
                write!(w, "/{p}")?;
            }
        }
        Attribute::Fmtp(f) => write!(w, "fmtp:{} {}", f.payload_type, f.params)?,
        Attribute::Crypto(c) => {
            let key = if redact { "<redacted>" } else { c.key_params() };
            write!(w, "crypto:{} {} {}", c.tag, c.suite, key)?;
            for p in &c.session_params {
                write!(w, " {p}")?;
            }
        }
        Attribute::Rtcp(r) => {
            write!(w, "rtcp:{}", r.port)?;
            if let Some(c) = &r.connection {
                write!(w, " {}", Conn(c))?;
            }
        }
        Attribute::RtcpMux => w.write_str("rtcp-mux")?,
        Attribute::Direction(d) => w.write_str(d.name())?,
        Attribute::Ptime(p) => write!(w, "ptime:{p}")?,
        Attribute::Maxptime(p) => write!(w, "maxptime:{p}")?,
        Attribute::Other(raw) => {
            w.write_str(&raw.name)?;
            match &raw.value {
                Some(_) if redact && raw.is_secret() => w.write_str(":<redacted>")?,
                Some(v) => write!(w, ":{v}")?,
                None => {}
            }
        }
    }
    w.write_str("\r\n")
}

/// `IN <addrtype> <address>`.
struct Conn<'a>(&'a Connection);

impl fmt::Display for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", self.0.addr_type.name(), self.0.address)
    }
}
