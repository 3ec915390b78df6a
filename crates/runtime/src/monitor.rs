//! The monitor's wait: forwarding signals to the container, relaying a pty, and turning the
//! exit status into Docker's exit code.
//!
//! Signals are blocked and read from a signalfd, so a SIGTERM meant for the container does not
//! end the monitor. SIGSTOP cannot be caught: the monitor stops, and the container stops too
//! because SIGTSTP (sent first by `scontrol suspend` and by ^Z) is forwarded; SIGCONT is
//! forwarded on resume. The kernel discards a pending SIGTSTP when SIGCONT arrives, so a
//! SIGTSTP sent back to back with SIGSTOP can be lost if the monitor had no time to read it;
//! under Slurm the container's processes sit in the step's cgroup and are stopped directly
//! too. Exit is noticed through a pidfd rather than SIGCHLD, which another
//! thread of the caller could consume.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, WaitOptions};

use crate::error::RuntimeError;
use crate::sys;
use crate::sys::signal::{self, SigSet, SIGINFO_SIZE, SIGRTMAX};
use crate::tty;

/// Signals never forwarded: uncatchable, about our own children, or raised synchronously by a
/// fault in the monitor itself (blocking those would hide a crash).
const NOT_FORWARDED: [i32; 9] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGCHLD,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// The signal that ended the process whose exit code was computed last (0: none).
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Docker's exit code for a wait status: the exit status, or 128+N for signal N.
fn exit_code(status: rustix::process::WaitStatus) -> i32 {
    let signal = status.terminating_signal().unwrap_or(0);
    LAST_SIGNAL.store(signal, Ordering::Relaxed);
    if let Some(code) = status.exit_status() {
        code
    } else if signal != 0 {
        128 + signal
    } else {
        125
    }
}

/// The signal that ended the process whose exit code [`crate::Container::wait`] or
/// [`crate::exec_confined`] returned last, when a signal ended it: exit code 128+N cannot tell
/// a process killed by signal N from one that exited with that status.
pub fn last_exit_signal() -> Option<i32> {
    Some(LAST_SIGNAL.load(Ordering::Relaxed)).filter(|&s| s != 0)
}

/// Ends this process by `signal`, as the process it waited for ended, so that its own parent
/// (a batch system's step daemon, a shell, `subprocess`) sees the same wait status as for
/// the bare program. No core file is written for this process. Returns only when `signal`
/// does not end a process by default.
pub fn die_by_signal(signal: i32) {
    signal::die_by(signal);
}

/// Blocks until `pid` (a child of this process) ends and returns its exit code.
pub(crate) fn reap(pid: i32) -> Result<i32, RuntimeError> {
    let pid = Pid::from_raw(pid).ok_or(RuntimeError::State("wait"))?;
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(exit_code(status)),
            Ok(None) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(RuntimeError::Sys {
                    call: "waitpid",
                    source: e.into(),
                })
            }
        }
    }
}

/// The signals [`wait`] forwards.
pub(crate) fn forwarded() -> SigSet {
    let mut set = SigSet::empty();
    for sig in 1..=SIGRTMAX {
        if !NOT_FORWARDED.contains(&sig) {
            set.add(sig);
        }
    }
    set
}

/// Restores the signal mask on drop.
struct MaskGuard(SigSet);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        let _ = signal::set_mask(&self.0);
    }
}

/// How long a container runs before its monitor gives back its start-up pages.
const SHED_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits for `pid`, forwarding signals when `forward` and relaying `master` when given. When
/// the process behind `lifeline` (a pidfd) ends first, `pid` is killed with SIGKILL.
///
/// With `forward`, the forwarded signals stay blocked after the process has ended: the caller
/// is a monitor about to clean up and exit with the process's status, and a late copy of a
/// signal (schedulers send SIGTERM more than once) must neither cut that short nor replace the
/// status with the monitor's own death. Blocked signals are discarded when the caller exits.
pub(crate) fn wait(
    pid: i32,
    pidfd: &OwnedFd,
    forward: bool,
    master: Option<&OwnedFd>,
    lifeline: Option<&OwnedFd>,
) -> Result<i32, RuntimeError> {
    if !forward && master.is_none() && lifeline.is_none() {
        return reap(pid);
    }
    let mut set = if forward {
        forwarded()
    } else {
        SigSet::empty()
    };
    if master.is_some() {
        set.add(libc::SIGWINCH);
    }
    let before = signal::block(&set).map_err(RuntimeError::sys("block signals"))?;
    let _mask = (!forward).then(|| MaskGuard(before));
    let sigfd = signal::signalfd(&set).map_err(RuntimeError::sys("signalfd"))?;
    let stdin = rustix::stdio::stdin();
    let _raw = master.and_then(|_| tty::RawMode::enter(stdin));
    if let Some(m) = master {
        tty::copy_window_size(m);
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut lifeline = lifeline;
    let mut buf = vec![0u8; 16 * 1024];
    // A container still running after a second gets a monitor that gave back the code pages
    // its set-up touched; a short one is not worth the page-table work.
    let mut shed_at = Some(std::time::Instant::now() + SHED_AFTER);
    loop {
        let mut fds = vec![
            PollFd::new(pidfd, PollFlags::IN),
            PollFd::new(&sigfd, PollFlags::IN),
        ];
        let stdin_idx = stdin_open.then(|| {
            fds.push(PollFd::from_borrowed_fd(stdin, PollFlags::IN));
            fds.len() - 1
        });
        let master_idx = match master {
            Some(m) if master_open => {
                fds.push(PollFd::new(m, PollFlags::IN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        let lifeline_idx = lifeline.map(|l| {
            fds.push(PollFd::new(l, PollFlags::IN));
            fds.len() - 1
        });
        let timeout = shed_at.map(|t| {
            let left = t.saturating_duration_since(std::time::Instant::now());
            rustix::event::Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) if shed_at.is_some() => {
                shed_at = None;
                crate::resident::shed_startup_pages();
                continue;
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(RuntimeError::Sys {
                    call: "poll",
                    source: e.into(),
                })
            }
        }
        let ready = |i: Option<usize>| i.is_some_and(|i| !fds[i].revents().is_empty());
        let exited = ready(Some(0));
        let signalled = ready(Some(1));
        let stdin_ready = ready(stdin_idx);
        let master_ready = ready(master_idx);
        let orphaned = ready(lifeline_idx);
        drop(fds);
        if orphaned {
            // The exit is picked up through the pidfd as usual.
            let _ = sys::kill(pid, libc::SIGKILL);
            lifeline = None;
        }
        if signalled {
            forward_pending(&sigfd, pid, master);
        }
        if stdin_ready {
            if let Some(m) = master {
                stdin_open = copy_once(stdin, m, &mut buf);
            }
        }
        if master_ready {
            if let Some(m) = master {
                master_open = copy_to_stdout(m, &mut buf);
            }
        }
        if exited {
            if let Some(m) = master.filter(|_| master_open) {
                drain(m, &mut buf);
            }
            return reap(pid);
        }
    }
}

/// Reads every pending signal and sends it on (SIGWINCH resizes the pty instead).
fn forward_pending(sigfd: &OwnedFd, pid: i32, master: Option<&OwnedFd>) {
    let mut info = [0u8; SIGINFO_SIZE];
    while let Ok(n) = rustix::io::read(sigfd, &mut info) {
        if n < 4 {
            break;
        }
        let sig = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32;
        match master {
            Some(m) if sig == libc::SIGWINCH => tty::copy_window_size(m),
            // The container may already be gone; its exit is picked up through the pidfd.
            _ => drop(sys::kill(pid, sig)),
        }
    }
}

/// Copies one chunk from `from` to `to`; false at end of input or on error.
fn copy_once<A: AsFd, B: AsFd>(from: A, to: B, buf: &mut [u8]) -> bool {
    match rustix::io::read(&from, &mut *buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => write_all(to, &buf[..n]).is_ok(),
    }
}

fn copy_to_stdout(master: &OwnedFd, buf: &mut [u8]) -> bool {
    match rustix::io::read(master, &mut *buf) {
        // EIO: every slave descriptor is closed.
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
            true
        }
    }
}

/// Copies what is left in the pty after the process ended, without waiting for more (a
/// background process in the container may still hold the slave open).
fn drain(master: &OwnedFd, buf: &mut [u8]) {
    loop {
        let mut fds = [PollFd::new(master, PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(n) if n > 0 && copy_to_stdout(master, buf) => {}
            _ => return,
        }
    }
}

fn write_all<Fd: AsFd>(fd: Fd, mut data: &[u8]) -> io::Result<()> {
    let fd: BorrowedFd<'_> = fd.as_fd();
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The signals a foreground command relays to a container it does not monitor itself
/// (`attach`): those [`wait`] forwards, blocked and read from a signalfd instead of delivered.
pub struct RelayedSignals {
    fd: OwnedFd,
    _mask: MaskGuard,
}

impl RelayedSignals {
    /// Blocks the forwarded signals for this thread (the caller must not have started others
    /// that would take them instead) and opens the descriptor that reports them.
    pub fn new() -> Result<RelayedSignals, RuntimeError> {
        let set = forwarded();
        let old = signal::block(&set).map_err(RuntimeError::sys("sigprocmask"))?;
        let mask = MaskGuard(old);
        let fd = signal::signalfd(&set).map_err(RuntimeError::sys("signalfd"))?;
        Ok(RelayedSignals { fd, _mask: mask })
    }

    /// Readable while a signal is pending, to wait for it together with other events.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// Sends every pending signal to `pid`.
    pub fn relay_to(&self, pid: i32) {
        forward_pending(&self.fd, pid, None);
    }
}
