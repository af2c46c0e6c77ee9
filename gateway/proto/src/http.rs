//! The head of an HTTP/1.1 response (RFC 9112 §4 status line, §5 header
//! fields, §6.3 message body length), for the kit's repository client:
//! bytes in, a typed head out, nothing else read. Only what a static file
//! server needs is accepted: a `Content-Length` body (no
//! `Transfer-Encoding`), at most [`MAX_HEAD`] octets of head.

/// The longest status line and header fields accepted, the final CRLF
/// CRLF included.
pub const MAX_HEAD: usize = 16 << 10;

/// Why a response head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// Longer than [`MAX_HEAD`].
    #[error("headers longer than 16 KiB")]
    TooLong,
    /// Not an HTTP/1.x response head we read.
    #[error("{0}")]
    Malformed(&'static str),
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code (100..=999 as three digits).
    pub status: u16,
    /// `Content-Length`, if present (all copies agree).
    pub content_length: Option<u64>,
    /// `ETag`, if present and at most 256 octets.
    pub etag: Option<String>,
}

/// Where the head ends in `buf`: the offset just after its CRLF CRLF.
/// `Ok(None)`: not complete yet (read more); an error once `buf` holds
/// more than [`MAX_HEAD`] octets without one.
pub fn head_end(buf: &[u8]) -> Result<Option<usize>, HeadError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => Ok(Some(i + 4)),
        None if buf.len() >= MAX_HEAD => Err(HeadError::TooLong),
        None => Ok(None),
    }
}

/// Parses a complete head (as [`head_end`] delimits it, CRLF CRLF
/// included).
pub fn parse_response_head(head: &[u8]) -> Result<ResponseHead, HeadError> {
    if head.len() > MAX_HEAD {
        return Err(HeadError::TooLong);
    }
    let head = head
        .strip_suffix(b"\r\n\r\n")
        .ok_or(HeadError::Malformed("a head ends with an empty line"))?;
    let text =
        std::str::from_utf8(head).map_err(|_| HeadError::Malformed("headers are not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HeadError::Malformed("no HTTP/1.x status line"));
    }
    let status: u16 = parts
        .next()
        .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .filter(|s| *s >= 100)
        .ok_or(HeadError::Malformed("no status code"))?;
    let mut content_length: Option<u64> = None;
    let mut etag = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(HeadError::Malformed("a header line without ':'"))?;
        // RFC 9112 §5.1: no whitespace between the name and the colon.
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(HeadError::Malformed("a header name with whitespace"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadError::Malformed(
                    "a Content-Length that is not a number",
                ));
            }
            let n: u64 = value
                .parse()
                .map_err(|_| HeadError::Malformed("a Content-Length that is not a number"))?;
            if content_length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("two different Content-Length"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HeadError::Malformed(
                "Transfer-Encoding (only Content-Length is read)",
            ));
        } else if name.eq_ignore_ascii_case("etag") && value.len() <= 256 {
            etag = Some(value.to_string());
        }
    }
    Ok(ResponseHead {
        status,
        content_length,
        etag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\ncontent-length:5\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, Some(5));
        assert_eq!(h.etag.as_deref(), Some("\"abc\""));
        let h = parse_response_head(b"HTTP/1.1 304 Not Modified\r\n\r\n").unwrap();
        assert_eq!((h.status, h.content_length), (304, None));
        for bad in [
            &b"HTTP/2 200\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 +20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"<html>hotel portal</html>\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            assert!(
                parse_response_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn head_end_is_bounded() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nbody").unwrap(), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        let long = vec![b'a'; MAX_HEAD];
        assert_eq!(head_end(&long), Err(HeadError::TooLong));
        let mut late = vec![b'a'; MAX_HEAD];
        late.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head_end(&late), Err(HeadError::TooLong));
    }
}
