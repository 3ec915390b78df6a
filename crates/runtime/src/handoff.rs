//! Small pieces a detached monitor needs to talk to the short-lived commands around it:
//! passing descriptors over a Unix socket (a caller's stdio, a pty master for a console
//! socket), waiting on several descriptors at once, and watching a process that is not our
//! child end.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::process::{Pid, PidfdFlags};

/// Most descriptors [`send_fds`] passes in one message.
pub const MAX_FDS: usize = 8;

/// Sends `fds` (at most [`MAX_FDS`]) over the connected Unix socket `socket`, with one byte of
/// data so the receiver's read does not look like end of file.
pub fn send_fds(socket: impl AsFd, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors",
        ));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(
            "descriptors do not fit the control buffer",
        ));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(b"f")],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Receives descriptors sent with [`send_fds`] (close-on-exec in this process).
pub fn recv_fds(socket: impl AsFd) -> io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if msg.bytes == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let mut out = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            out.extend(fds);
        }
    }
    Ok(out)
}

/// Waits until one of `fds` is readable (or hung up), at most `timeout`; returns which ones
/// are. An empty answer means the time ran out.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut polled: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    loop {
        match rustix::event::poll(&mut polled, ts.as_ref()) {
            Ok(0) => return Ok(Vec::new()),
            Ok(_) => return Ok(polled.iter().map(|p| !p.revents().is_empty()).collect()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A descriptor that becomes readable when process `pid` ends; it need not be our child.
/// Taken before checking who `pid` is, it pins that process: a later reuse of the number
/// cannot fool it.
pub fn process_handle(pid: i32) -> io::Result<OwnedFd> {
    let pid = Pid::from_raw(pid).ok_or(io::ErrorKind::InvalidInput)?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}
