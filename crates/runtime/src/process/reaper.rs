//! `--init`: the container's first process forks the command and stays as its init, like
//! Docker's tini but without a binary in the image. It forwards every catchable signal it
//! gets to the command (a shell without a SIGTERM handler is not pid 1 any more, so
//! `docker stop` ends it), reaps every zombie re-parented to it, and exits with the command's
//! status, or 128+N when signal N killed it; the kernel then kills what is left in the pid
//! namespace.
//!
//! The init keeps running the monitor's code, but it is not dumpable and its memory belongs to
//! the host's user namespace, so nothing in the container can read or write it through
//! `/proc/1` (CVE-2019-5736). It runs with the command's user, capabilities and seccomp
//! filter, since those are applied before the fork.

use rustix::event::{PollFd, PollFlags};
use rustix::process::WaitOptions;

use crate::error::{Failure, Step};
use crate::sys::signal::{self, SigSet, SIGINFO_SIZE, SIGRTMAX};
use crate::sys::{self, Forked};

/// Signals the init leaves alone, as tini does: uncatchable ones, faults that would be its own
/// (blocking them would hide a crash), and terminal stops that are not meant for it.
const NOT_FORWARDED: [i32; 11] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGCHLD,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Forks the command's process and returns in it; the calling process becomes the init and
/// never returns.
pub(crate) fn fork_init() -> Result<(), Failure> {
    let mut set = SigSet::empty();
    for sig in 1..=SIGRTMAX {
        if !NOT_FORWARDED.contains(&sig) || sig == libc::SIGCHLD || sig == libc::SIGTTOU {
            set.add(sig);
        }
    }
    // Blocked before the fork, so a signal sent meanwhile waits for the init's signalfd, and
    // the child can take the terminal (which needs SIGTTOU blocked) before it runs anything.
    let old = signal::block(&set).map_err(|e| Failure::new(Step::Init, "block signals", e))?;
    // Without a new pid namespace, orphans of the command still come to us, not to the host.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    match sys::fork().map_err(|e| Failure::new(Step::Init, "fork", e))? {
        Forked::Child => {
            // A process group of its own, in the foreground of a terminal, so ^C and ^Z from
            // the terminal reach it once, not again through the init.
            let _ = rustix::process::setpgid(None, None);
            if rustix::termios::isatty(rustix::stdio::stdin()) {
                let _ =
                    rustix::termios::tcsetpgrp(rustix::stdio::stdin(), rustix::process::getpid());
            }
            let _ = rustix::process::set_child_subreaper(None);
            signal::set_mask(&old).map_err(|e| Failure::new(Step::Init, "unblock signals", e))?;
            Ok(())
        }
        Forked::Parent(child) => supervise(child, &set),
    }
}

/// The init's loop: forward signals to `child`, reap zombies, exit with the child's code.
fn supervise(child: i32, set: &SigSet) -> ! {
    // Everything inherited beyond stdio (the monitor's pipes above all) goes, so the monitor
    // sees end of file when the command execs.
    let _ = sys::close_from_3();
    let Ok(sigfd) = signal::signalfd(set) else {
        let _ = sys::kill(child, libc::SIGKILL);
        sys::exit_now(125)
    };
    let mut info = [0u8; SIGINFO_SIZE];
    loop {
        if let Some(code) = reap_all(child) {
            sys::exit_now(code)
        }
        let mut fds = [PollFd::new(&sigfd, PollFlags::IN)];
        let _ = rustix::event::poll(&mut fds, None);
        while let Ok(n) = rustix::io::read(&sigfd, &mut info) {
            if n < 4 {
                break;
            }
            let sig = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32;
            if !NOT_FORWARDED.contains(&sig) {
                let _ = sys::kill(child, sig);
            }
        }
    }
}

/// Reaps every exited child; `Some(code)` once `child` itself has ended.
fn reap_all(child: i32) -> Option<i32> {
    let mut code = None;
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if pid.as_raw_nonzero().get() == child {
                    code = Some(if let Some(c) = status.exit_status() {
                        c
                    } else if let Some(sig) = status.terminating_signal() {
                        128 + sig
                    } else {
                        125
                    });
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            // No child left to wait for, or none has exited yet.
            Ok(None) | Err(_) => return code,
        }
    }
}
