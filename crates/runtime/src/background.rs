//! Work that may finish after the caller has exited.
//!
//! A `--rm` container's exit status is known the moment its init is reaped, but taking down its
//! mounts and deleting its writable layer and record take another millisecond or more on every
//! start. [`in_background`] lets the monitor hand that work to a process of its own and exit
//! with the status at once.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::{self, Forked};

/// Runs `work` in a detached child and returns as soon as it is started.
///
/// The child has a session of its own (no terminal signal reaches it), standard streams on
/// `/dev/null` (a caller reading this process's output through a pipe sees end of file when
/// this process exits, not when `work` is done) and no other inherited descriptor (no lock or
/// pipe of the caller's outlives the caller). It is not waited for: this is for a caller about
/// to exit (a monitor whose container has ended), after which the child is reparented and
/// reaped by init; a caller that lives on keeps a zombie until it reaps it. One fork, not two:
/// forking this large program costs a quarter of a millisecond each time. When no process can
/// be started, the error comes back and `work` has not run. Since the child closes the
/// descriptors it inherited, `work` must not use (or drop) an object that owns one; paths are
/// fine.
///
/// `hold` (a container's mount namespace, say) is the exception: the child keeps its copy until
/// this process has exited, then closes it before `work`. Whatever closing the last reference
/// costs (the teardown of every mount of a namespace) is then the child's, not paid by this
/// process on its way out, as it would be if the child's copy were closed first.
pub fn in_background(hold: Option<OwnedFd>, work: impl FnOnce()) -> io::Result<()> {
    let parent = rustix::process::getpid();
    match sys::fork()? {
        Forked::Child => {
            detach_self(hold.as_ref().map(AsRawFd::as_raw_fd));
            if let Some(hold) = hold {
                if let Ok(p) =
                    rustix::process::pidfd_open(parent, rustix::process::PidfdFlags::empty())
                {
                    // Readable once the parent has exited (already, if it is a zombie).
                    let _ = crate::handoff::wait_readable(&[std::os::fd::AsFd::as_fd(&p)], None);
                }
                drop(hold);
            }
            work();
            sys::exit_now(0);
        }
        Forked::Parent(_) => Ok(()),
    }
}

/// `keep`: one descriptor above 2 not to close.
fn detach_self(keep: Option<i32>) {
    let _ = rustix::process::setsid();
    let _ = sys::close_from_3_except(keep);
    if let Ok(null) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    // A monitor blocks most signals for its signalfd: this process starts with none blocked.
    let _ = sys::signal::set_mask(&sys::signal::SigSet::empty());
}
