//! A connection's outgoing queue, bounded in messages and in bytes: a peer
//! that stops reading fills it, and the core then closes the connection
//! (audited) instead of holding its bytes without end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Messages queued per connection before it counts as stuck.
pub(super) const MAX_QUEUED_MESSAGES: usize = 256;

/// Bytes queued per connection before it counts as stuck.
pub(super) const MAX_QUEUED_BYTES: usize = 256 * 1024;

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stuck {
    /// The peer stopped reading: the queue is full.
    Full,
    /// The connection is gone.
    Closed,
}

/// The sending side of a connection's queue.
#[derive(Debug, Clone)]
pub(super) struct Outbox {
    tx: mpsc::Sender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

/// The writer's side of a connection's queue.
#[derive(Debug)]
pub(super) struct OutboxRx {
    rx: mpsc::Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    /// A new queue.
    pub(super) fn channel() -> (Outbox, OutboxRx) {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_MESSAGES);
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Outbox {
                tx,
                queued: Arc::clone(&queued),
            },
            OutboxRx { rx, queued },
        )
    }

    /// Queues `bytes`, unless that would pass either bound.
    pub(super) fn send(&self, bytes: Vec<u8>) -> Result<(), Stuck> {
        if self.tx.is_closed() {
            return Err(Stuck::Closed);
        }
        let n = bytes.len();
        let mut bytes = bytes;
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > MAX_QUEUED_BYTES {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            zeroize::Zeroize::zeroize(&mut bytes);
            return Err(Stuck::Full);
        }
        self.tx.try_send(bytes).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            let (mut lost, stuck) = match e {
                mpsc::error::TrySendError::Full(b) => (b, Stuck::Full),
                mpsc::error::TrySendError::Closed(b) => (b, Stuck::Closed),
            };
            zeroize::Zeroize::zeroize(&mut lost);
            stuck
        })
    }

    /// Whether the writer is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Writes what is queued until the queue closes or a write fails, then
/// shuts the stream down. Each message is zeroized once written; messages
/// still queued when the connection goes are zeroized too.
///
/// Flushed whenever the queue runs dry: a TLS stream accepts a message
/// into its session and returns before its records are on the wire when
/// the socket is not writable, and only a flush (or the next write) sends
/// them: without it a 200 could wait for the connection's next message.
pub(super) async fn writer<W: AsyncWrite + Unpin>(mut w: W, mut rx: OutboxRx) {
    while let Some(mut bytes) = rx.rx.recv().await {
        let n = bytes.len();
        let mut ok = w.write_all(&bytes).await.is_ok();
        if ok && rx.rx.is_empty() {
            ok = w.flush().await.is_ok();
        }
        // A message may carry keys (an SDES answer): wiped once written.
        zeroize::Zeroize::zeroize(&mut bytes);
        rx.queued.fetch_sub(n, Ordering::AcqRel);
        if !ok {
            break;
        }
    }
    rx.rx.close();
    while let Ok(mut bytes) = rx.rx.try_recv() {
        zeroize::Zeroize::zeroize(&mut bytes);
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real rustls over a 512-byte pipe: a message larger than the pipe
    /// reaches a reader that starts late, with nothing queued after it.
    #[cfg(feature = "demo")]
    #[tokio::test]
    async fn a_message_is_sent_whole_without_waiting_for_the_next_one() {
        use dialgate_hq::pki::{Ca, Validity};
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio::io::AsyncReadExt;
        let v = Validity::days_from_now(1);
        let ca = Ca::new("outbox test CA", v).unwrap();
        let cert = ca.issue_server("gateway", &["localhost"], v).unwrap();
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.der.to_vec())], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (a, b) = tokio::io::duplex(512);
        let name = ServerName::try_from("localhost").unwrap();
        let (s, c) = tokio::join!(
            tokio_rustls::TlsAcceptor::from(Arc::new(server)).accept(a),
            tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, b)
        );
        let (s, mut c) = (s.unwrap(), c.unwrap());
        let (out, rx) = Outbox::channel();
        let task = tokio::spawn(writer(s, rx));
        let message: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        out.send(message.clone()).unwrap();
        // The reader starts after the writer has filled the pipe.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut got = vec![0u8; message.len()];
        tokio::time::timeout(std::time::Duration::from_secs(5), c.read_exact(&mut got))
            .await
            .expect("the whole message arrives with nothing queued after it")
            .unwrap();
        assert_eq!(got, message);
        drop(out);
        task.await.unwrap();
    }

    #[test]
    fn a_reader_that_stops_fills_the_queue_by_bytes_or_messages() {
        let (out, rx) = Outbox::channel();
        let big = vec![0u8; MAX_QUEUED_BYTES / 4];
        for _ in 0..4 {
            out.send(big.clone()).unwrap();
        }
        assert_eq!(out.send(vec![0u8; 1]), Err(Stuck::Full), "byte bound");
        let (small, _rx2) = Outbox::channel();
        for _ in 0..MAX_QUEUED_MESSAGES {
            small.send(b"x".to_vec()).unwrap();
        }
        assert_eq!(small.send(b"x".to_vec()), Err(Stuck::Full), "message bound");
        drop(rx);
        assert_eq!(out.send(b"x".to_vec()), Err(Stuck::Closed));
        assert!(out.is_closed());
    }
}
