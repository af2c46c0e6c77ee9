//! Character classes and a small cursor for the RFC 3261 §25.1 grammar.
//!
//! Header values reach these helpers already unfolded (RFC 3261 §7.3.1:
//! a CRLF followed by whitespace is one SP), so linear whitespace here is
//! only SP and HTAB.

/// `alphanum` (RFC 3261 §25.1).
pub(crate) fn is_alphanum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `mark` (RFC 3261 §25.1).
pub(crate) fn is_mark(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
    )
}

/// `unreserved = alphanum / mark`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    is_alphanum(b) || is_mark(b)
}

/// `token` characters (RFC 3261 §25.1).
pub(crate) fn is_token(b: u8) -> bool {
    is_alphanum(b)
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// `word` characters, used by Call-ID (RFC 3261 §25.1).
pub(crate) fn is_word(b: u8) -> bool {
    is_token(b)
        || matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
}

/// Characters a SIP URI `user` may carry unescaped:
/// `unreserved / user-unreserved`.
pub(crate) fn is_user(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// Characters a SIP URI `password` may carry unescaped.
pub(crate) fn is_password(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar` without the escape: `param-unreserved / unreserved`.
pub(crate) fn is_paramchar(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hnv-unreserved / unreserved`: URI header names and values.
pub(crate) fn is_hnv(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// `uric` without the escape (RFC 3261 §25.1, from RFC 2396): the opaque
/// part of a URI whose scheme dialgate does not interpret.
pub(crate) fn is_uric(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b','
        )
}

/// SP or HTAB.
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A non-empty run of token characters.
pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// Decodes `%HH` escapes in `raw`, where every other byte must satisfy
/// `allowed`. Unescaping is done once, never recursively (RFC 3986 §2.4,
/// quoted by RFC 4475 §3.1.1.3). The result must be UTF-8.
pub(crate) fn unescape(raw: &str, allowed: fn(u8) -> bool) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = hex_val(*bytes.get(i + 1)?)?;
            let lo = hex_val(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else if allowed(b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// True if every `%` in `raw` starts a well-formed escape and every other
/// byte satisfies `allowed`; for opaque URIs kept as written.
pub(crate) fn is_escaped_text(raw: &str, allowed: fn(u8) -> bool) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.get(i + 1).is_some_and(|b| b.is_ascii_hexdigit())
                && bytes.get(i + 2).is_some_and(|b| b.is_ascii_hexdigit());
            if !ok {
                return false;
            }
            i += 3;
        } else if allowed(bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `s` to `out`, escaping every byte that `allowed` refuses (and
/// always `%`), so that [`unescape`] gives `s` back.
pub(crate) fn escape_into(out: &mut String, s: &str, allowed: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b != b'%' && allowed(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// Appends `s` as a `quoted-string` (RFC 3261 §25.1), escaping `"`, `\`
/// and the control characters that `qdtext` does not allow. CR and LF
/// cannot be escaped (`quoted-pair` excludes them) and a parsed value never
/// holds them; one set by code is written as SP so it cannot end the line.
pub(crate) fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\r' | '\n' => out.push(' '),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() && c != '\t' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends text that was validated when parsed (a token, a Call-ID, a raw
/// header value). A value set by code might hold CR or LF; those are
/// written as SP so that no value can start a header line of its own.
pub(crate) fn push_safe(out: &mut String, s: &str) {
    for c in s.chars() {
        out.push(if c == '\r' || c == '\n' { ' ' } else { c });
    }
}

/// A read position in an unfolded header value.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips SP and HTAB; returns whether any were skipped.
    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_wsp) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes `SWS b SWS` (e.g. `SEMI`, `COMMA`, `EQUAL`, `SLASH`) if
    /// `b` is next after optional whitespace; otherwise consumes nothing.
    pub(crate) fn eat_sep(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.eat(b) {
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consumes the longest run of bytes satisfying `pred`.
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        // Predicates only accept ASCII, so both ends are char boundaries.
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// A non-empty `token`.
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token);
        (!t.is_empty()).then_some(t)
    }

    /// A `quoted-string` starting at the cursor, returned as written
    /// (quotes included). `qdtext` allows LWS, `!`, `#`-`[`, `]`-`~` and
    /// UTF-8 beyond ASCII; `quoted-pair` escapes any byte but CR and LF.
    pub(crate) fn quoted_raw(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if !self.eat(b'"') {
            return None;
        }
        let bytes = self.s.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'"' => {
                    self.pos += 1;
                    return self.s.get(start..self.pos);
                }
                b'\\' => match bytes.get(self.pos + 1) {
                    Some(b'\r' | b'\n') | None => break,
                    Some(_) => {
                        self.pos += 2;
                        // Keep the position on a char boundary if the
                        // escaped character was multi-byte UTF-8.
                        while !self.s.is_char_boundary(self.pos) {
                            self.pos += 1;
                        }
                    }
                },
                b'\t' | b' ' | b'!' | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => self.pos += 1,
                _ => break,
            }
        }
        self.pos = start;
        None
    }
}

/// The text of a raw `quoted-string` (quotes included) with its
/// `quoted-pair`s resolved.
pub(crate) fn unquote(raw: &str) -> String {
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let mut s = String::new();
        escape_into(&mut s, "a b%\0", is_user);
        assert_eq!(s, "a%20b%25%00");
        assert_eq!(unescape(&s, is_user).as_deref(), Some("a b%\0"));
        assert_eq!(unescape("%4", is_user), None);
        assert_eq!(unescape("%zz", is_user), None);
        assert_eq!(unescape("%C3%28", is_user), None, "not UTF-8");
    }

    #[test]
    fn quoted_strings() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" <x>"#);
        assert_eq!(c.quoted_raw(), Some(r#""J Rosenberg \\\"""#));
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(Cursor::new("\"open").quoted_raw(), None);
        let mut q = String::new();
        quote_into(&mut q, "a\"\\\u{7}b");
        assert_eq!(q, "\"a\\\"\\\\\\\u{7}b\"");
        assert_eq!(unquote(&q), "a\"\\\u{7}b");
    }
}
