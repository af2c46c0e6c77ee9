//! The captive-portal probe's answer: a plain-HTTP GET to a URL the
//! configuration names, whose only expected answer is `204 No Content`
//! without a body. Anything else that answers is a portal (or another
//! middlebox) speaking in HQ's place: a redirect (where to is recorded),
//! a page (HTML or anything), or bytes that are not HTTP. Only the head is
//! read, at most [`crate::http::MAX_HEAD`] octets; what it says is
//! reported, bounded and printable, never followed.

use crate::http::MAX_HEAD;

/// The longest `Location` or `Content-Type` reported.
pub const MAX_REPORTED: usize = 128;

/// What the probe URL answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalAnswer {
    /// `204`, no body: the network passes plain HTTP untouched.
    Expected,
    /// A redirect (3xx): a portal's login page, typically.
    Redirect {
        /// The status.
        status: u16,
        /// Its `Location` (bounded, printable), if any.
        location: Option<String>,
    },
    /// Another status, or a 204 with a body.
    Unexpected {
        /// The status.
        status: u16,
        /// Its `Content-Type` (bounded, printable), if any.
        content_type: Option<String>,
    },
    /// Not an HTTP/1.x response head (or longer than allowed).
    NotHttp,
}

/// Classifies the octets read from the probe's connection (the head and
/// perhaps some body; at most [`MAX_HEAD`] are looked at). `complete`:
/// the peer closed (no more octets will come), so a head still missing
/// is [`PortalAnswer::NotHttp`]. `None`: read more.
pub fn classify(buf: &[u8], complete: bool) -> Option<PortalAnswer> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let end = match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => i,
        None if complete || buf.len() >= MAX_HEAD => return Some(PortalAnswer::NotHttp),
        None => {
            // Not even a status line's start: no need to wait for more.
            let prefix = &buf[..buf.len().min(5)];
            if !b"HTTP/".starts_with(prefix) {
                return Some(PortalAnswer::NotHttp);
            }
            return None;
        }
    };
    Some(parse_head(&buf[..end]).unwrap_or(PortalAnswer::NotHttp))
}

fn parse_head(head: &[u8]) -> Option<PortalAnswer> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.splitn(3, ' ');
    let version = parts.next()?;
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    if status < 100 {
        return None;
    }
    let (mut location, mut content_type, mut length) = (None, None, None);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("location") && location.is_none() {
            location = Some(printable(value));
        } else if name.eq_ignore_ascii_case("content-type") && content_type.is_none() {
            content_type = Some(printable(value));
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<u64>().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            length = Some(u64::MAX);
        }
    }
    Some(match status {
        204 if length.unwrap_or(0) == 0 => PortalAnswer::Expected,
        300..=399 => PortalAnswer::Redirect { status, location },
        _ => PortalAnswer::Unexpected {
            status,
            content_type,
        },
    })
}

/// `s` cut to [`MAX_REPORTED`] characters, anything but printable ASCII
/// replaced by `?`: safe to put into an audit record.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(MAX_REPORTED)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bodiless_204_is_expected() {
        assert_eq!(
            classify(b"HTTP/1.1 204 No Content\r\nServer: nginx\r\n\r\n", false),
            Some(PortalAnswer::Expected)
        );
        assert_eq!(
            classify(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                true
            ),
            Some(PortalAnswer::Expected)
        );
        assert!(matches!(
            classify(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 12\r\n\r\n",
                true
            ),
            Some(PortalAnswer::Unexpected { status: 204, .. })
        ));
        assert!(matches!(
            classify(
                b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                true
            ),
            Some(PortalAnswer::Unexpected { status: 204, .. })
        ));
    }

    #[test]
    fn portals_are_recognised() {
        assert_eq!(
            classify(
                b"HTTP/1.1 302 Moved Temporarily\r\nLocation: http://portal.hotel/login?mac=02:00\r\nContent-Length: 0\r\n\r\n",
                false
            ),
            Some(PortalAnswer::Redirect {
                status: 302,
                location: Some("http://portal.hotel/login?mac=02:00".into())
            })
        );
        assert_eq!(
            classify(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 40\r\n\r\n<html>Welcome",
                false
            ),
            Some(PortalAnswer::Unexpected {
                status: 200,
                content_type: Some("text/html".into())
            })
        );
        assert_eq!(
            classify(b"<html><body>Login</body></html>", false),
            Some(PortalAnswer::NotHttp)
        );
        assert_eq!(
            classify(b"HTTP/1.1 200 OK\r\n", true),
            Some(PortalAnswer::NotHttp)
        );
        assert_eq!(classify(b"HTTP/1.1 200 OK\r\n", false), None);
        assert_eq!(classify(b"HT", false), None);
        assert_eq!(classify(b"", true), Some(PortalAnswer::NotHttp));
        assert_eq!(
            classify(b"HTTP/2 204\r\n\r\n", false),
            Some(PortalAnswer::NotHttp)
        );
        let mut long = b"HTTP/1.1 204 No Content\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(classify(&long, false), Some(PortalAnswer::NotHttp));
    }

    #[test]
    fn what_is_reported_is_bounded_and_printable() {
        let mut head = b"HTTP/1.1 302 Found\r\nLocation: http://x/".to_vec();
        head.extend(std::iter::repeat_n(b'a', 1000));
        head.extend_from_slice(b"\x1b[31m\r\n\r\n");
        match classify(&head, true) {
            Some(PortalAnswer::Redirect {
                location: Some(l), ..
            }) => {
                assert_eq!(l.len(), MAX_REPORTED);
                assert!(l.chars().all(|c| c.is_ascii_graphic()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(printable("a\u{1b}b\u{e9}"), "a?b?");
    }
}
