//! Batched UDP receive and send, recvmmsg(2) and sendmmsg(2), for the
//! media relay's benchmarks (the bare forwarder it is measured against,
//! `tests/src/bin/bench/floor.rs`) and for a relay loop that does not pay
//! one empty read per wake-up. Thin wrappers: each `unsafe` block is one
//! call or one conversion with its `// SAFETY:` reasoning.
//!
//! A batch is one caller-owned buffer cut into equal slots (the hot path
//! does not allocate): datagram `i` is `buf[i * slot..][..lens[i]]`.

use std::io::{self, Error};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::{SockAddr, SockAddrStorage};

/// The most datagrams one call moves (the header arrays live on the stack).
pub const MAX_BATCH: usize = 64;

fn empty_iov() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

fn zeroed_headers() -> [libc::mmsghdr; MAX_BATCH] {
    // SAFETY: `mmsghdr` is a plain C struct of integers and raw pointers
    // (plus private padding on musl), for which all zeros is a valid value
    // (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

/// Receives up to `min(buf.len() / slot, lens.len(), srcs.len(),
/// MAX_BATCH)` datagrams without blocking (`MSG_DONTWAIT`): returns their
/// count `n`; for `i < n`, `lens[i]` is datagram `i`'s length (at most
/// `slot`; a longer one is truncated, as recvfrom(2) would) and `srcs[i]`
/// its source. `WouldBlock` when nothing is queued.
///
/// A count below the batch size means the queue was empty when the call
/// returned: under edge-triggered readiness no further read is needed
/// until the next event (a datagram arriving later raises a new one), so
/// a wake-up costs one call instead of a read and an empty read.
pub fn recv_batch(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot: usize,
    lens: &mut [usize],
    srcs: &mut [Option<SocketAddr>],
) -> io::Result<usize> {
    if slot == 0 {
        return Err(Error::from(io::ErrorKind::InvalidInput));
    }
    let want = (buf.len() / slot)
        .min(lens.len())
        .min(srcs.len())
        .min(MAX_BATCH);
    if want == 0 {
        return Ok(0);
    }
    let mut iovs = [empty_iov(); MAX_BATCH];
    let mut names: [SockAddrStorage; MAX_BATCH] =
        std::array::from_fn(|_| SockAddrStorage::zeroed());
    let mut hdrs = zeroed_headers();
    for (i, chunk) in buf.chunks_exact_mut(slot).take(want).enumerate() {
        iovs[i].iov_base = chunk.as_mut_ptr().cast();
        iovs[i].iov_len = slot;
        let h = &mut hdrs[i].msg_hdr;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        h.msg_namelen = names[i].size_of();
        h.msg_name = (&mut names[i] as *mut SockAddrStorage).cast();
    }
    // SAFETY: the first `want` headers point at `want` live iovecs, each
    // covering `slot` writable bytes of `buf`, and at `want` live address
    // storages whose sizes are in `msg_namelen`; all outlive the call, the
    // kernel writes only within them, and a null timeout is allowed.
    let r = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            want as _,
            libc::MSG_DONTWAIT as _,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        return Err(Error::last_os_error());
    }
    let n = r as usize;
    for i in 0..n {
        lens[i] = (hdrs[i].msg_len as usize).min(slot);
        let storage = std::mem::replace(&mut names[i], SockAddrStorage::zeroed());
        // SAFETY: the kernel filled `storage` with an address of
        // `msg_namelen` bytes (never more than its size, which it was told).
        let addr = unsafe { SockAddr::new(storage, hdrs[i].msg_hdr.msg_namelen) };
        srcs[i] = addr.as_socket();
    }
    Ok(n)
}

/// Sends `lens.len()` (at most `MAX_BATCH`) datagrams, datagram `i` being
/// `buf[i * slot..][..lens[i]]`, to `dest` (or to the connected peer when
/// `None`), without blocking. Returns how many the kernel took (the first
/// ones, in order); `WouldBlock` when it took none.
pub fn send_batch(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    slot: usize,
    lens: &[usize],
    dest: Option<SocketAddr>,
) -> io::Result<usize> {
    let count = lens.len().min(MAX_BATCH);
    if count == 0 {
        return Ok(0);
    }
    if slot == 0 || lens[..count].iter().any(|&l| l > slot) || buf.len() < count * slot {
        return Err(Error::from(io::ErrorKind::InvalidInput));
    }
    let dest = dest.map(SockAddr::from);
    let mut iovs = [empty_iov(); MAX_BATCH];
    let mut hdrs = zeroed_headers();
    for (i, chunk) in buf.chunks_exact(slot).take(count).enumerate() {
        // sendmmsg only reads through iov_base; the type is `*mut` in C.
        iovs[i].iov_base = chunk.as_ptr().cast_mut().cast();
        iovs[i].iov_len = lens[i];
        let h = &mut hdrs[i].msg_hdr;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        if let Some(d) = &dest {
            h.msg_name = d.as_ptr().cast_mut().cast();
            h.msg_namelen = d.len();
        }
    }
    // SAFETY: the first `count` headers point at `count` live iovecs over
    // `lens[i] <= slot` readable bytes of `buf` (checked above) and, if
    // any, at one live destination of `d.len()` bytes; the kernel only
    // reads them, and only during the call.
    let r = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            count as _,
            libc::MSG_DONTWAIT as _,
        )
    };
    if r < 0 {
        return Err(Error::last_os_error());
    }
    Ok(r as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn a_batch_goes_through_and_a_short_batch_means_drained() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut out = vec![0u8; 3 * 32];
        for (i, s) in out.chunks_exact_mut(32).enumerate() {
            s.fill(i as u8 + 1);
        }
        let sent = send_batch(a.as_fd(), &out, 32, &[5, 32, 1], Some(ba)).unwrap();
        assert_eq!(sent, 3);
        let mut inb = vec![0u8; 8 * 16];
        let mut lens = [0usize; 8];
        let mut srcs = [None; 8];
        let mut got = 0;
        for _ in 0..100 {
            match recv_batch(b.as_fd(), &mut inb, 16, &mut lens, &mut srcs) {
                Ok(n) => {
                    got = n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, 3);
        assert_eq!(
            &lens[..3],
            &[5, 16, 1],
            "the 32-byte datagram is cut at the slot"
        );
        assert_eq!(&inb[..5], &[1; 5]);
        assert_eq!(&inb[16..32], &[2; 16]);
        assert_eq!(inb[32], 3);
        assert!(srcs[..3].iter().all(|s| *s == Some(aa)));
        let e = recv_batch(b.as_fd(), &mut inb, 16, &mut lens, &mut srcs).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn connected_sockets_send_without_a_destination() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        assert_eq!(send_batch(a.as_fd(), &[7u8; 4], 4, &[4], None).unwrap(), 1);
        let mut got = [0u8; 8];
        b.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        assert_eq!(b.recv(&mut got).unwrap(), 4);
        assert!(send_batch(a.as_fd(), &[0u8; 4], 4, &[5], None).is_err());
    }
}
