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

/// Where a request goes: the address connected to (the kit resolves no
/// names) and the name the server's certificate must carry.
#[derive(Debug, Clone)]
pub struct Server {
    addr: SocketAddr,
    name: ServerName<'static>,
    host: String,
}

impl Server {
    /// A server whose certificate names its IP address.
    pub fn ip(addr: SocketAddr) -> Server {
        Server {
            addr,
            name: ServerName::IpAddress(addr.ip().into()),
            host: addr.to_string(),
        }
    }

    /// A server at `addr` whose certificate names `name` (a DNS name or an
    /// IP literal; `None`: `addr`'s IP).
    pub fn named(addr: SocketAddr, name: Option<&str>) -> Result<Server, String> {
        let Some(name) = name else {
            return Ok(Server::ip(addr));
        };
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("{name:?}: not a TLS server name: {e}"))?;
        let host = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, addr.port()).to_string(),
            Err(_) => format!("{name}:{}", addr.port()),
        };
        Ok(Server {
            addr,
            name: server_name,
            host,
        })
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
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

/// GETs `path` from `server`, sending
/// `headers` (and `If-None-Match` when `etag` is set); reads at most
/// `max_body` + 1 octets of body.
pub async fn get(
    tls: &Arc<ClientConfig>,
    server: &Server,
    path: &str,
    etag: Option<&str>,
    headers: &[(&str, String)],
    max_body: u64,
) -> Result<Fetched, FetchError> {
    let mut stream = connect(tls, server).await?;
    let req = get_request(server, path, etag, headers);
    timeout(TIMEOUT, async {
        stream.write_all(req.as_bytes()).await?;
        stream.flush().await?;
        read_response(&mut stream, max_body).await
    })
    .await
    .map_err(|_| FetchError::Timeout("the exchange"))?
}

/// How long a streamed download may go without an octet arriving.
pub const STALL: Duration = Duration::from_secs(20);

/// GETs `path` from `server` as [`get`] does, but streams a 200's body into
/// `out` (at most `max_body` + 1 octets, each read within [`STALL`]),
/// hashing it on the way; returns the octets written and their SHA-256.
/// For a firmware bundle, too large to hold in memory.
pub async fn get_to_file(
    tls: &Arc<ClientConfig>,
    server: &Server,
    path: &str,
    headers: &[(&str, String)],
    max_body: u64,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(u64, [u8; 32]), FetchError> {
    let mut stream = connect(tls, server).await?;
    let req = get_request(server, path, None, headers);
    timeout(TIMEOUT, async {
        stream.write_all(req.as_bytes()).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| FetchError::Timeout("the request"))??;
    stream_body(&mut stream, max_body, out).await
}

/// Reads one response's head from `r`, then streams at most `max_body` + 1
/// octets of its 200 body into `out` (each read within [`STALL`]).
pub async fn stream_body<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: u64,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(u64, [u8; 32]), FetchError> {
    let (mut buf, end) = read_head(r).await?;
    let head = parse_response_head(&buf[..end])?;
    if head.status != 200 {
        return Err(FetchError::Status(head.status));
    }
    let length = head
        .content_length
        .ok_or(FetchError::Protocol("200 without Content-Length"))?;
    let want = length.min(max_body.saturating_add(1));
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut got = 0u64;
    let mut first = buf.split_off(end);
    first.truncate(usize::try_from(want).unwrap_or(usize::MAX));
    ctx.update(&first);
    out.write_all(&first)?;
    got += first.len() as u64;
    let mut chunk = vec![0u8; 1 << 16];
    while got < want {
        let room = usize::try_from(want - got)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        let n = timeout(STALL, r.read(&mut chunk[..room]))
            .await
            .map_err(|_| FetchError::Timeout("the body"))??;
        if n == 0 {
            // Short: the digest check says how short.
            break;
        }
        ctx.update(&chunk[..n]);
        out.write_all(&chunk[..n])?;
        got += n as u64;
    }
    let mut sha = [0u8; 32];
    sha.copy_from_slice(ctx.finish().as_ref());
    Ok((got, sha))
}

/// Sends `method path` with `body` (of `content_type`) to `server`, one
/// request per connection, and returns
/// the response's status once its head has arrived; its body is not
/// read. For pushing status (`crate::status`): a 2xx is the only answer
/// that means the server took it.
pub async fn send(
    tls: &Arc<ClientConfig>,
    server: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<u16, FetchError> {
    let mut stream = connect(tls, server).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        server.host,
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
    let (buf, end) = read_head(r).await?;
    Ok(parse_response_head(&buf[..end])?.status)
}

/// Reads one response from `r`: the head (parsed by
/// [`dialgate_proto::http`]), then at most `max_body` + 1 octets of the
/// body it announces.
pub async fn read_response<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: u64,
) -> Result<Fetched, FetchError> {
    let (mut buf, end) = read_head(r).await?;
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

/// Connects to `server` and completes the TLS handshake, each within
/// [`TIMEOUT`].
async fn connect(
    tls: &Arc<ClientConfig>,
    server: &Server,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, FetchError> {
    let tcp = timeout(TIMEOUT, TcpStream::connect(server.addr))
        .await
        .map_err(|_| FetchError::Timeout("connecting"))??;
    let name = server.name.clone();
    timeout(
        TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::clone(tls)).connect(name, tcp),
    )
    .await
    .map_err(|_| FetchError::Timeout("the TLS handshake"))?
    .map_err(FetchError::from)
}

/// A GET's head: one request per connection, `If-None-Match` when `etag`
/// is set, then `headers`.
fn get_request(
    server: &Server,
    path: &str,
    etag: Option<&str>,
    headers: &[(&str, String)],
) -> String {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        server.host
    );
    if let Some(tag) = etag {
        req.push_str(&format!("If-None-Match: {tag}\r\n"));
    }
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Reads from `r` until the end of a response head (bounded by
/// [`dialgate_proto::http::MAX_HEAD`]; each read within [`STALL`]):
/// what was read and where the head ends.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Vec<u8>, usize), FetchError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(i) = head_end(&buf)? {
            return Ok((buf, i));
        }
        let mut chunk = [0u8; 2048];
        let n = timeout(STALL, r.read(&mut chunk))
            .await
            .map_err(|_| FetchError::Timeout("the response head"))??;
        if n == 0 {
            return Err(FetchError::Protocol("closed before the end of the headers"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
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
    async fn streamed_bodies_are_bounded_and_hashed() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let mut out = Vec::new();
        let (n, sha) = stream_body(&mut { ok }, 10, &mut out).await.unwrap();
        assert_eq!((n, out.as_slice()), (5, &b"hello"[..]));
        assert_eq!(sha, dialgate_signed::sha256(b"hello"));
        // Longer than the bound: cut at bound + 1, so the digest check fails.
        let mut out = Vec::new();
        let (n, _) = stream_body(&mut { ok }, 2, &mut out).await.unwrap();
        assert_eq!((n, out.as_slice()), (3, &b"hel"[..]));
        let portal: &[u8] = b"HTTP/1.1 302 Found\r\nLocation: http://portal/\r\n\r\n";
        assert!(matches!(
            stream_body(&mut { portal }, 10, &mut Vec::new()).await,
            Err(FetchError::Status(302))
        ));
        let nolen: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nhello";
        assert!(stream_body(&mut { nolen }, 10, &mut Vec::new())
            .await
            .is_err());
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
