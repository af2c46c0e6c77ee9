//! A small, bounded HTTP/1.1 GET over TLS: one request per connection
//! (`Connection: close`), the response read as a status line, headers and
//! a `Content-Length` body (RFC 9112 §4, §5, §6.3). Enough for a static
//! file server (nginx, a CDN); nothing it does not need: no redirects, no
//! chunked bodies, no keep-alive, no names to resolve.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The longest status line and headers read.
pub const MAX_HEAD: usize = 16 << 10;
/// Connecting, the handshake, and the whole exchange after it, each.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a GET gave no usable answer. None of these is the repository's
/// content being refused: they are outages (the server down, TLS
/// interception, a captive portal answering something else).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connecting or the exchange.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Too slow.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// Not an HTTP/1.x response we read.
    #[error("not an HTTP response we read: {0}")]
    Protocol(&'static str),
    /// A status other than 200 or 304.
    #[error("HTTP status {0}")]
    Status(u16),
}

/// The answer to a GET.
#[derive(Debug)]
pub enum Fetched {
    /// 200: the body (at most the bound + 1 octets: anything longer was
    /// cut there, for the verifier to refuse as too large) and its ETag.
    Body {
        /// The octets read.
        body: Vec<u8>,
        /// The `ETag` header, if any.
        etag: Option<String>,
    },
    /// 304: unchanged since the ETag sent.
    NotModified,
}

/// GETs `path` from `addr` (TLS server name: its IP address), sending
/// `headers` (and `If-None-Match` when `etag` is set); reads at most
/// `max_body` + 1 octets of body.
pub async fn get(
    tls: &Arc<ClientConfig>,
    addr: SocketAddr,
    path: &str,
    etag: Option<&str>,
    headers: &[(&str, String)],
    max_body: u64,
) -> Result<Fetched, FetchError> {
    let tcp = timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| FetchError::Timeout("connecting"))??;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut stream = timeout(
        TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::clone(tls)).connect(name, tcp),
    )
    .await
    .map_err(|_| FetchError::Timeout("the TLS handshake"))??;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(tag) = etag {
        req.push_str(&format!("If-None-Match: {tag}\r\n"));
    }
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    timeout(TIMEOUT, async {
        stream.write_all(req.as_bytes()).await?;
        stream.flush().await?;
        read_response(&mut stream, max_body).await
    })
    .await
    .map_err(|_| FetchError::Timeout("the exchange"))?
}

/// Reads one response from `r`.
pub async fn read_response<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: u64,
) -> Result<Fetched, FetchError> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(FetchError::Protocol("headers longer than 16 KiB"));
        }
        let mut chunk = [0u8; 2048];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(FetchError::Protocol("closed before the end of the headers"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(FetchError::Protocol("headers longer than 16 KiB"));
    }
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| FetchError::Protocol("headers are not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(FetchError::Protocol("no HTTP/1.x status line"));
    }
    let status: u16 = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .ok_or(FetchError::Protocol("no status code"))?;
    let mut length: Option<u64> = None;
    let mut etag = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(FetchError::Protocol("a header line without ':'"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| FetchError::Protocol("a Content-Length that is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(FetchError::Protocol("two different Content-Length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(FetchError::Protocol(
                "Transfer-Encoding (we read Content-Length only)",
            ));
        } else if name.eq_ignore_ascii_case("etag") && value.len() <= 256 {
            etag = Some(value.to_string());
        }
    }
    match status {
        304 => return Ok(Fetched::NotModified),
        200 => {}
        s => return Err(FetchError::Status(s)),
    }
    let length = length.ok_or(FetchError::Protocol("200 without Content-Length"))?;
    // Read what was announced, but never more than the bound + 1: the
    // verifier refuses a file longer than the signed metadata names.
    let want = length.min(max_body.saturating_add(1)) as usize;
    let mut body = buf.split_off(head_end + 4);
    body.truncate(want);
    while body.len() < want {
        let mut chunk = [0u8; 8192];
        let room = (want - body.len()).min(chunk.len());
        let n = r.read(&mut chunk[..room]).await?;
        if n == 0 {
            // Short: hand over what came, the verifier says how short.
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Fetched::Body { body, etag })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8], max: u64) -> Result<Fetched, FetchError> {
        let mut r = bytes;
        read_response(&mut r, max).await
    }

    #[tokio::test]
    async fn bodies_etags_and_bounds() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\n\r\nhello";
        match parse(ok, 10).await.unwrap() {
            Fetched::Body { body, etag } => {
                assert_eq!(body, b"hello");
                assert_eq!(etag.as_deref(), Some("\"abc\""));
            }
            other => panic!("{other:?}"),
        }
        // Longer than the bound: cut at bound + 1.
        match parse(ok, 2).await.unwrap() {
            Fetched::Body { body, .. } => assert_eq!(body, b"hel"),
            other => panic!("{other:?}"),
        }
        let nm = b"HTTP/1.1 304 Not Modified\r\nETag: \"abc\"\r\n\r\n";
        assert!(matches!(parse(nm, 10).await, Ok(Fetched::NotModified)));
        let portal = b"HTTP/1.1 302 Found\r\nLocation: http://portal/\r\n\r\n";
        assert!(matches!(
            parse(portal, 10).await,
            Err(FetchError::Status(302))
        ));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert!(matches!(
            parse(chunked, 10).await,
            Err(FetchError::Protocol(_))
        ));
        let html = b"<html><body>Welcome to the hotel</body></html>";
        assert!(parse(html, 10).await.is_err());
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', 20 << 10));
        assert!(matches!(
            parse(&long, 10).await,
            Err(FetchError::Protocol(_))
        ));
    }
}
