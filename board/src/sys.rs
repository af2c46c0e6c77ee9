//! The syscall side of PID 1: thin wrappers over `libc`, each `unsafe`
//! block one call with its `// SAFETY:` reasoning. Decisions live in the
//! pure modules; nothing here decides anything.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Error};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| Error::from(io::ErrorKind::InvalidInput))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(())
    }
}

/// mount(2).
pub fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let (s, t, f, d) = (cstr(src)?, cstr(target)?, cstr(fstype)?, cstr(data)?);
    // SAFETY: all four pointers are valid NUL-terminated strings that
    // outlive the call; the kernel copies them.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, d.as_ptr().cast()) };
    check(r)
}

/// umount2(2).
pub fn umount(target: &str, flags: libc::c_int) -> io::Result<()> {
    let t = cstr(target)?;
    // SAFETY: `t` is a valid NUL-terminated string for the call's duration.
    check(unsafe { libc::umount2(t.as_ptr(), flags) })
}

/// Loads a kernel module from its file (finit_module(2)); a module
/// already loaded is fine.
pub fn load_module(path: &str) -> io::Result<()> {
    let f = File::open(path)?;
    let params = c"";
    // SAFETY: the fd is open for the call's duration, `params` is a valid
    // empty C string, flags 0; finit_module reads only these.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
    if r < 0 {
        let e = Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Overwrites a whole block device with zeros and flushes it, then asks
/// the device to discard the range (BLKDISCARD; ignored where the device
/// cannot). Returns the bytes written.
pub fn wipe_block_device(path: &str) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = File::options().write(true).open(path)?;
    let size = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    let range: [u64; 2] = [0, size];
    // _IO(0x12, 119)
    const BLKDISCARD: u32 = 0x1277;
    // SAFETY: BLKDISCARD reads a u64[2] (start, length) during the call.
    let _ = unsafe { libc::ioctl(f.as_raw_fd(), BLKDISCARD as _, &range) };
    Ok(size)
}

/// Makes a block device node.
pub fn mknod_block(path: &str, dev: libc::dev_t) -> io::Result<()> {
    let p = cstr(path)?;
    // SAFETY: `p` is a valid C string; mknod does not retain it.
    check(unsafe { libc::mknod(p.as_ptr(), libc::S_IFBLK | 0o600, dev) })
}

/// Points stdin, stdout and stderr at the console.
pub fn console_stdio() -> io::Result<()> {
    let c = File::options()
        .read(true)
        .write(true)
        .open("/dev/console")?;
    for fd in 0..3 {
        // SAFETY: dup2 on an open fd onto 0..2; closes and replaces the
        // standard descriptors, which this process owns.
        check(unsafe { libc::dup2(c.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// Makes `new` the root (as switch_root does: move it over `/`, chroot).
pub fn switch_root(new: &str) -> io::Result<()> {
    std::env::set_current_dir(new)?;
    mount(".", "/", "", libc::MS_MOVE, "")?;
    let dot = c".";
    // SAFETY: `dot` is a valid C string; chroot only reads it.
    check(unsafe { libc::chroot(dot.as_ptr()) })?;
    std::env::set_current_dir("/")
}

/// fsync everything.
pub fn sync() {
    // SAFETY: sync(2) has no arguments and cannot fail.
    unsafe { libc::sync() }
}

/// Restarts the machine.
pub fn reboot() -> Error {
    // SAFETY: reboot(2) with a valid command; on success it does not return.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    Error::last_os_error()
}

/// Powers the machine off (PSCI under qemu `virt`: qemu exits).
pub fn power_off() -> Error {
    // SAFETY: reboot(2) with a valid command; on success it does not return.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    Error::last_os_error()
}

/// Reaps one exited child, if any: (pid, wait status).
pub fn reap() -> Option<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; WNOHANG never blocks.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Sends a signal.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we spawned; no memory is passed.
    unsafe { libc::kill(pid, sig) };
}

/// Adds `bytes` to the kernel's entropy pool, credited (RNDADDENTROPY):
/// used with bytes from the hardware RNG before anything draws keys.
pub fn add_entropy(bytes: &[u8]) -> io::Result<()> {
    #[repr(C)]
    struct Pool {
        entropy_count: libc::c_int,
        buf_size: libc::c_int,
        buf: [u8; 64],
    }
    let n = bytes.len().min(64);
    let mut p = Pool {
        entropy_count: (n * 8) as libc::c_int,
        buf_size: n as libc::c_int,
        buf: [0; 64],
    };
    p.buf[..n].copy_from_slice(&bytes[..n]);
    let f = File::options().write(true).open("/dev/urandom")?;
    // _IOW('R', 0x03, int[2])
    const RNDADDENTROPY: u32 = 0x4008_5203;
    // SAFETY: `p` is a rand_pool_info whose buf holds buf_size bytes; the
    // kernel reads it only during the call.
    check(unsafe { libc::ioctl(f.as_raw_fd(), RNDADDENTROPY as _, &p) })
}

#[repr(C)]
struct IfReqAddr {
    name: [u8; 16],
    addr: libc::sockaddr_in,
    _pad: [u8; 8],
}

#[repr(C)]
struct IfReqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn ifname(name: &str) -> io::Result<[u8; 16]> {
    let mut n = [0u8; 16];
    if name.is_empty() || name.len() > 15 {
        return Err(Error::from(io::ErrorKind::InvalidInput));
    }
    n[..name.len()].copy_from_slice(name.as_bytes());
    Ok(n)
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.octets()),
        },
        sin_zero: [0; 8],
    }
}

fn inet_socket() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Sets an interface's IPv4 address and prefix (ioctls, as ifconfig).
pub fn set_address(iface: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let s = inet_socket()?;
    let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0));
    for (req, a) in [(libc::SIOCSIFADDR, addr), (libc::SIOCSIFNETMASK, mask)] {
        let r = IfReqAddr {
            name: ifname(iface)?,
            addr: sockaddr(a),
            _pad: [0; 8],
        };
        // SAFETY: `r` has the layout of struct ifreq with an AF_INET
        // address; the kernel reads it only during the call.
        check(unsafe { libc::ioctl(s.as_raw_fd(), req as _, &r) })?;
    }
    Ok(())
}

/// Brings an interface up.
pub fn link_up(iface: &str) -> io::Result<()> {
    let s = inet_socket()?;
    let mut r = IfReqFlags {
        name: ifname(iface)?,
        flags: 0,
        _pad: [0; 22],
    };
    // SAFETY: `r` has the layout of struct ifreq; the kernel fills flags.
    check(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut r) })?;
    r.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as above; the kernel reads the flags.
    check(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS as _, &r) })
}

/// Adds a default route via `gw` (SIOCADDRT).
pub fn default_route(gw: Ipv4Addr) -> io::Result<()> {
    route(libc::SIOCADDRT, gw, libc::RTF_UP | libc::RTF_GATEWAY)
}

/// Removes the default route, whatever its gateway (SIOCDELRT, as `route
/// del default`); `ESRCH` when there is none.
pub fn delete_default_route() -> io::Result<()> {
    route(libc::SIOCDELRT, Ipv4Addr::UNSPECIFIED, libc::RTF_UP)
}

/// Removes an interface's (primary) IPv4 address: SIOCSIFADDR with
/// 0.0.0.0, as `ifconfig IF 0.0.0.0`. The routes through it go with it.
pub fn clear_address(iface: &str) -> io::Result<()> {
    let s = inet_socket()?;
    let r = IfReqAddr {
        name: ifname(iface)?,
        addr: sockaddr(Ipv4Addr::UNSPECIFIED),
        _pad: [0; 8],
    };
    // SAFETY: `r` has the layout of struct ifreq with an AF_INET address;
    // the kernel reads it only during the call.
    check(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFADDR as _, &r) })
}

/// A default-route request (`req` SIOCADDRT or SIOCDELRT) via `gw`.
fn route(req: libc::c_ulong, gw: Ipv4Addr, flags: libc::c_ushort) -> io::Result<()> {
    #[repr(C)]
    struct RtEntry {
        pad1: libc::c_ulong,
        dst: libc::sockaddr_in,
        gateway: libc::sockaddr_in,
        genmask: libc::sockaddr_in,
        flags: libc::c_ushort,
        pad2: libc::c_short,
        pad3: libc::c_ulong,
        pad4: *mut libc::c_void,
        metric: libc::c_short,
        dev: *mut libc::c_char,
        mtu: libc::c_ulong,
        window: libc::c_ulong,
        irtt: libc::c_ushort,
    }
    let s = inet_socket()?;
    let r = RtEntry {
        pad1: 0,
        dst: sockaddr(Ipv4Addr::UNSPECIFIED),
        gateway: sockaddr(gw),
        genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
        flags,
        pad2: 0,
        pad3: 0,
        pad4: std::ptr::null_mut(),
        metric: 0,
        dev: std::ptr::null_mut(),
        mtu: 0,
        window: 0,
        irtt: 0,
    };
    // SAFETY: `r` has the layout of struct rtentry (C field order and
    // alignment); null dev lets the kernel pick the interface.
    check(unsafe { libc::ioctl(s.as_raw_fd(), req as _, &r) })
}

/// device-mapper through `/dev/mapper/control` (linux/dm-ioctl.h).
pub mod dm {
    use super::*;

    const DM_IOCTL_SIZE: usize = 312;
    const SPEC_SIZE: usize = 40;
    const READONLY: u32 = 1;

    // _IOWR(0xfd, nr, struct dm_ioctl)
    const fn req(nr: u32) -> u32 {
        (3 << 30) | ((DM_IOCTL_SIZE as u32) << 16) | (0xfd << 8) | nr
    }
    const DEV_CREATE: u32 = req(3);
    const DEV_REMOVE: u32 = req(4);
    const DEV_SUSPEND: u32 = req(6);
    const TABLE_LOAD: u32 = req(9);

    /// A dm_ioctl header followed by `extra` bytes of payload; returns the
    /// buffer as u64 words (8-byte alignment for the kernel's structs).
    fn header(name: &str, flags: u32, extra: &[u8], targets: u32) -> io::Result<Vec<u64>> {
        let total = DM_IOCTL_SIZE + extra.len() + 8;
        let mut b = vec![0u8; total];
        if name.len() >= 128 {
            return Err(Error::from(io::ErrorKind::InvalidInput));
        }
        let put = |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put(&mut b, 0, 4); // version 4.0.0
        put(&mut b, 12, total as u32); // data_size
        put(&mut b, 16, DM_IOCTL_SIZE as u32); // data_start
        put(&mut b, 20, targets);
        put(&mut b, 28, flags);
        b[48..48 + name.len()].copy_from_slice(name.as_bytes());
        b[DM_IOCTL_SIZE..DM_IOCTL_SIZE + extra.len()].copy_from_slice(extra);
        let mut w = vec![0u64; total.div_ceil(8)];
        for (i, c) in b.chunks(8).enumerate() {
            let mut x = [0u8; 8];
            x[..c.len()].copy_from_slice(c);
            w[i] = u64::from_ne_bytes(x);
        }
        Ok(w)
    }

    fn call(ctl: &File, r: u32, buf: &mut [u64]) -> io::Result<()> {
        // SAFETY: `buf` is a dm_ioctl whose data_size is at most the
        // buffer's length in bytes; the kernel reads and writes within it.
        check(unsafe { libc::ioctl(ctl.as_raw_fd(), r as _, buf.as_mut_ptr()) })
    }

    /// Creates a read-only device `name` with one target and activates it;
    /// returns its device number.
    pub fn create(name: &str, target: &str, sectors: u64, params: &str) -> io::Result<libc::dev_t> {
        let ctl = File::options()
            .read(true)
            .write(true)
            .open("/dev/mapper/control")?;
        let mut c = header(name, 0, &[], 0)?;
        call(&ctl, DEV_CREATE, &mut c)?;
        let mut spec = vec![0u8; SPEC_SIZE];
        spec[8..16].copy_from_slice(&sectors.to_ne_bytes());
        let next = (SPEC_SIZE + params.len() + 1).next_multiple_of(8);
        spec[20..24].copy_from_slice(&(next as u32).to_ne_bytes());
        spec[24..24 + target.len()].copy_from_slice(target.as_bytes());
        spec.extend_from_slice(params.as_bytes());
        spec.resize(next, 0);
        let mut t = header(name, READONLY, &spec, 1)?;
        let loaded = call(&ctl, TABLE_LOAD, &mut t).and_then(|()| {
            let mut r = header(name, 0, &[], 0)?;
            call(&ctl, DEV_SUSPEND, &mut r)?; // no SUSPEND flag: resume
            Ok(r[5]) // the `dev` field at byte 40
        });
        match loaded {
            Ok(dev) => Ok(dev as libc::dev_t),
            Err(e) => {
                let _ = remove(name);
                Err(e)
            }
        }
    }

    /// Removes device `name`.
    pub fn remove(name: &str) -> io::Result<()> {
        let ctl = File::options()
            .read(true)
            .write(true)
            .open("/dev/mapper/control")?;
        let mut r = header(name, 0, &[], 0)?;
        call(&ctl, DEV_REMOVE, &mut r)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ioctl_numbers_match_the_kernel_header() {
            // Values of DM_DEV_CREATE etc. on 64-bit Linux.
            assert_eq!(DEV_CREATE, 0xc138_fd03);
            assert_eq!(DEV_REMOVE, 0xc138_fd04);
            assert_eq!(DEV_SUSPEND, 0xc138_fd06);
            assert_eq!(TABLE_LOAD, 0xc138_fd09);
        }

        #[test]
        fn header_layout() {
            let w = header("root-a", READONLY, &[1, 2, 3], 1).unwrap();
            let b: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
            assert_eq!(&b[0..4], &4u32.to_ne_bytes());
            assert_eq!(
                u32::from_ne_bytes(b[12..16].try_into().unwrap()),
                312 + 3 + 8
            );
            assert_eq!(u32::from_ne_bytes(b[16..20].try_into().unwrap()), 312);
            assert_eq!(&b[48..54], b"root-a");
            assert_eq!(&b[312..315], &[1, 2, 3]);
        }
    }
}

/// Sends an nftables batch over NETLINK_NETFILTER and waits for the
/// kernel's acknowledgement of each of its `acked` messages; the first
/// error fails the whole (atomic) batch.
pub fn nft_apply(batch: &[u8], first_seq: u32, acked: u32) -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    check(fd)?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: `tv` is a valid timeval for SO_RCVTIMEO, its size passed.
    check(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    // SAFETY: an all-zero sockaddr_nl is valid (pid 0, groups 0: the kernel).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `batch` is readable for its length; `kernel` is a valid
    // sockaddr_nl of the size passed.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            batch.as_ptr().cast(),
            batch.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut ok = 0;
    while ok < acked {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(Error::last_os_error());
        }
        for m in crate::nft::messages(&buf[..n as usize]) {
            match crate::nft::parse_ack(m) {
                Some((_, 0)) => ok += 1,
                Some((seq, errno)) => {
                    return Err(Error::other(format!(
                        "nftables message {} refused: {}",
                        seq.wrapping_sub(first_seq),
                        Error::from_raw_os_error(errno)
                    )))
                }
                None => {}
            }
        }
    }
    Ok(())
}
