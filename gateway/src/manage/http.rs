//! A small, bounded HTTP/1.1 GET over TLS: one request per connection
//! (`Connection: close`), the response read as a status line, headers and
//! a `Content-Length` body (RFC 9112 §4, §5, §6.3). Enough for a static
//! file server (nginx, a CDN); nothing it does not need: no redirects, no
//! chunked bodies, no keep-alive, no names to resolve.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dialgate_proto::http::{head_end, parse_response_head, HeadError};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

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
    /// Its head is not one we read.
    #[error("not an HTTP response we read: {0}")]
    Head(#[from] HeadError),
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

/// Sends `method path` with `body` (of `content_type`) to `addr` (TLS
/// server name: its IP address), one request per connection, and returns
/// the response's status once its head has arrived; its body is not
/// read. For pushing status (`crate::status`): a 2xx is the only answer
/// that means the server took it.
pub async fn send(
    tls: &Arc<ClientConfig>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<u16, FetchError> {
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
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    timeout(TIMEOUT, async {
        stream.write_all(req.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        read_status(&mut stream).await
    })
    .await
    .map_err(|_| FetchError::Timeout("the exchange"))?
}

/// Reads a response's head from `r` (bounded by
/// [`dialgate_proto::http::MAX_HEAD`]) and returns its status.
pub async fn read_status<R: AsyncRead + Unpin>(r: &mut R) -> Result<u16, FetchError> {
    let mut buf = Vec::with_capacity(512);
    let end = loop {
        if let Some(i) = head_end(&buf)? {
            break i;
        }
        let mut chunk = [0u8; 1024];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(FetchError::Protocol("closed before the end of the headers"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    Ok(parse_response_head(&buf[..end])?.status)
}

/// Reads one response from `r`: the head (parsed by
/// [`dialgate_proto::http`]), then at most `max_body` + 1 octets of the
/// body it announces.
pub async fn read_response<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: u64,
) -> Result<Fetched, FetchError> {
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(i) = head_end(&buf)? {
            break i;
        }
        let mut chunk = [0u8; 2048];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(FetchError::Protocol("closed before the end of the headers"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = parse_response_head(&buf[..end])?;
    match head.status {
        304 => return Ok(Fetched::NotModified),
        200 => {}
        s => return Err(FetchError::Status(s)),
    }
    let length = head
        .content_length
        .ok_or(FetchError::Protocol("200 without Content-Length"))?;
    // Read what was announced, but never more than the bound + 1: the
    // verifier refuses a file longer than the signed metadata names.
    let want = usize::try_from(length.min(max_body.saturating_add(1))).unwrap_or(usize::MAX);
    let mut body = buf.split_off(end);
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
    Ok(Fetched::Body {
        body,
        etag: head.etag,
    })
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
        assert!(matches!(parse(chunked, 10).await, Err(FetchError::Head(_))));
        let html = b"<html><body>Welcome to the hotel</body></html>";
        assert!(parse(html, 10).await.is_err());
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', 20 << 10));
        assert!(matches!(
            parse(&long, 10).await,
            Err(FetchError::Head(HeadError::TooLong))
        ));
    }

    #[tokio::test]
    async fn statuses_of_pushes() {
        let mut ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_status(&mut ok).await.unwrap(), 200);
        let mut bad: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\nnope!";
        assert_eq!(read_status(&mut bad).await.unwrap(), 400);
        let mut short: &[u8] = b"HTTP/1.1 200 OK\r\n";
        assert!(read_status(&mut short).await.is_err());
        let mut html: &[u8] = b"<html>portal</html>\r\n\r\n";
        assert!(read_status(&mut html).await.is_err());
    }
}
