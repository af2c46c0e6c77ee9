//! Phone connections after their admission, and the reader and writer
//! tasks every SIP connection (phone, trunk, bridge) uses.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tracing::warn;

use super::outbox::{writer, Outbox};
use super::Input;
use crate::sip::{salvage_response, Event as FrameEvent, Framer, Limits, Message, PONG};
use crate::transport::PhoneConnection;

/// Hands each admitted phone connection to the core, with a writer task,
/// a reader task, and the expiry of its certificate.
pub(super) async fn accept_phones(
    mut admitted: mpsc::Receiver<PhoneConnection>,
    input: mpsc::Sender<Input>,
) {
    let mut next_flow: u64 = 1;
    while let Some(conn) = admitted.recv().await {
        let flow = next_flow;
        next_flow += 1;
        let not_after = conn.admitted.not_after();
        let (read, write) = tokio::io::split(conn.stream);
        let (wtx, wrx) = Outbox::channel();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel();
        if input
            .send(Input::PhoneConnected {
                flow,
                admitted: conn.admitted,
                writer: wtx.clone(),
                close: close_tx,
            })
            .await
            .is_err()
        {
            return;
        }
        let slot = conn.slot;
        tokio::spawn(writer(write, wrx));
        let input = input.clone();
        tokio::spawn(async move {
            let _slot = slot; // the connection's place in the limits
            let framer = Framer::server(Limits::default());
            tokio::select! {
                () = read_messages(read, framer, &wtx, |m| Input::Phone(flow, m), || Some(Input::PhoneAlive(flow)), &input) => {}
                // The core closes the connection (revoked token).
                _ = close_rx => {}
                // Never completes: it tells the core, then waits with the rest.
                () = certificate_expiry(flow, not_after, &input) => {}
            }
            let _ = input.send(Input::PhoneClosed(flow)).await;
        });
    }
}

/// Tells the core when a phone connection's certificate expires, then
/// never completes (it lives as long as the connection's reader).
async fn certificate_expiry(flow: u64, not_after: Option<u64>, input: &mpsc::Sender<Input>) {
    if let Some(not_after) = not_after {
        let now = crate::clock::now();
        // RFC 5280: the certificate is valid through notAfter, inclusive.
        let left = not_after.saturating_add(1).saturating_sub(now);
        tokio::time::sleep(std::time::Duration::from_secs(left)).await;
        let _ = input.send(Input::CertificateExpired(flow)).await;
    }
    std::future::pending::<()>().await
}

/// Reads SIP messages until the peer closes or breaks the framing.
pub(super) async fn read_messages<R: AsyncRead + Unpin>(
    mut r: R,
    mut framer: Framer,
    writer: &Outbox,
    wrap: impl Fn(Message) -> Input,
    ping: impl Fn() -> Option<Input>,
    input: &mpsc::Sender<Input>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        framer.handle_data(&buf[..n]);
        // The framer holds the bytes now (and wipes them): none are left
        // behind here.
        zeroize::Zeroize::zeroize(&mut buf[..n]);
        loop {
            match framer.poll_event() {
                Ok(None) => break,
                Ok(Some(FrameEvent::Message(m))) => {
                    if input.send(wrap(m)).await.is_err() {
                        return;
                    }
                }
                Ok(Some(FrameEvent::Ping)) => {
                    let _ = writer.send(PONG.to_vec());
                    if let Some(alive) = ping() {
                        if input.send(alive).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Some(FrameEvent::Pong)) => {}
                Ok(Some(FrameEvent::Rejected { error, bytes })) => {
                    // Delimited but unparseable: answer a request with 400
                    // (or 505/513/416) where the transaction can be named,
                    // and go on; the stream is still in step. One that
                    // cannot be answered (no Call-ID, a response, an ACK)
                    // closes the connection: never silence on it.
                    let answered =
                        salvage_response(&bytes, &error).is_some_and(|r| writer.send(r).is_ok());
                    if !answered {
                        warn!(target: "audit", decision = "closed", %error, "malformed SIP message that cannot be answered: connection closed");
                        return;
                    }
                    warn!(%error, "malformed SIP message on a TLS connection: answered");
                }
                Err(error) => {
                    warn!(%error, "SIP framing failed: closing the connection");
                    return;
                }
            }
        }
    }
}
