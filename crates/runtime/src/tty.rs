//! Pseudo-terminals: the pty a `Tty` container gets, the monitor's raw mode, window sizes.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Termios};

/// A pty pair.
pub(crate) struct Pty {
    /// The monitor's side.
    pub(crate) master: OwnedFd,
    /// The container's side, its controlling terminal.
    pub(crate) slave: OwnedFd,
}

/// Opens a new pty pair from `/dev/ptmx` as the calling process sees it. The container's
/// process calls it once in its own root, so the pty belongs to the container's devpts and
/// `/dev/pts/N` names it there (`tty`, `ttyname` work); the master then goes to the monitor.
pub(crate) fn open() -> io::Result<Pty> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    // Opening the peer through the master avoids a path lookup of /dev/pts/N.
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags)?;
    Ok(Pty { master, slave })
}

/// A connected pair of Unix sockets to pass the pty master from the container to the monitor.
pub(crate) fn fd_channel() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Sends `fd` over `socket`.
pub(crate) fn send_fd<Fd: AsFd>(socket: &OwnedFd, fd: Fd) -> io::Result<()> {
    let fds = [fd.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(b"m")],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Receives a descriptor sent with [`send_fd`].
pub(crate) fn recv_fd(socket: &OwnedFd) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "no pty master received",
    ))
}

/// Makes `slave` the calling process's controlling terminal and its stdin, stdout and stderr.
/// The caller must have called `setsid` already.
pub(crate) fn make_controlling(slave: &OwnedFd) -> io::Result<()> {
    rustix::process::ioctl_tiocsctty(slave)?;
    rustix::stdio::dup2_stdin(slave)?;
    rustix::stdio::dup2_stdout(slave)?;
    rustix::stdio::dup2_stderr(slave)?;
    Ok(())
}

/// Copies the window size of the caller's terminal to `to` (the pty master): that of stdin,
/// else stdout, else stderr, as a Docker client takes it from whichever stream is a terminal
/// (`run -t` with stdin from a file or `/dev/null` still has one); nothing happens when none is.
pub(crate) fn copy_window_size<B: AsFd>(to: B) {
    let size = rustix::termios::tcgetwinsize(rustix::stdio::stdin())
        .or_else(|_| rustix::termios::tcgetwinsize(rustix::stdio::stdout()))
        .or_else(|_| rustix::termios::tcgetwinsize(rustix::stdio::stderr()));
    if let Ok(size) = size {
        let _ = rustix::termios::tcsetwinsize(to, size);
    }
}

/// The monitor's terminal in raw mode; the saved settings come back on drop, also when the
/// monitor returns early with an error.
pub(crate) struct RawMode<Fd: AsFd> {
    fd: Fd,
    saved: Termios,
}

impl<Fd: AsFd> RawMode<Fd> {
    /// Puts `fd` in raw mode; `None` if it is not a terminal.
    pub(crate) fn enter(fd: Fd) -> Option<RawMode<Fd>> {
        let saved = rustix::termios::tcgetattr(&fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&fd, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl<Fd: AsFd> Drop for RawMode<Fd> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(&self.fd, OptionalActions::Now, &self.saved);
    }
}
