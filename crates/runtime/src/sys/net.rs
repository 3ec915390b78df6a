//! Interface flags through `ioctl`: a new network namespace starts with its loopback interface
//! down, and Docker brings it up so that `127.0.0.1` works inside every container.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

use rustix::net::{AddressFamily, SocketType};

/// Sets `IFF_UP` on the loopback interface `lo` of the calling process's network namespace
/// (which needs `CAP_NET_ADMIN` there).
pub(crate) fn loopback_up() -> io::Result<()> {
    // Any socket will do as a handle for interface ioctls; close-on-exec so it cannot leak.
    let sock = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data (integers, arrays and a union of them), for which all
    // zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the descriptor is an open socket and req a valid, NUL-terminated ifreq that the
    // kernel fills in with the current flags.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as libc::Ioctl,
            &mut req,
        )
    } == -1
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads req.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as libc::Ioctl, &req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
