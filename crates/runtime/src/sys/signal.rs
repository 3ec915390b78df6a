//! Signal masks, dispositions and signalfd: what the monitor needs to forward signals and what
//! a container process needs to start with a clean signal state.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};

/// Highest signal number on Linux (`SIGRTMAX`).
pub(crate) const SIGRTMAX: i32 = 64;

/// A set of signal numbers.
#[derive(Clone, Copy)]
pub(crate) struct SigSet(libc::sigset_t);

impl SigSet {
    /// The empty set.
    pub(crate) fn empty() -> Self {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set it is given.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            Self(set.assume_init())
        }
    }

    /// Adds `signal`; out-of-range numbers are ignored.
    pub(crate) fn add(&mut self, signal: i32) {
        // SAFETY: self.0 is an initialised set; sigaddset validates the number.
        unsafe { libc::sigaddset(&mut self.0, signal) };
    }
}

/// Replaces the calling thread's signal mask, returning the previous one.
pub(crate) fn set_mask(set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: both pointers refer to initialised sigset_t values owned by this frame.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set.0, &mut old.0) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(old)
}

/// Adds `set` to the calling thread's signal mask, returning the previous mask.
pub(crate) fn block(set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: both pointers refer to initialised sigset_t values owned by this frame.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, &mut old.0) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(old)
}

/// A close-on-exec, non-blocking signalfd reporting the signals in `set`.
pub(crate) fn signalfd(set: &SigSet) -> io::Result<OwnedFd> {
    // SAFETY: set is initialised; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Size of `struct signalfd_siginfo`, what one read from a signalfd returns per signal.
pub(crate) const SIGINFO_SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();

/// Resets every signal to its default action and unblocks all signals, so the container does
/// not inherit dispositions such as Rust's ignored SIGPIPE or a blocked mask from the monitor.
///
/// Only ignored signals need a call: exec itself resets every caught signal to its default, and
/// `SigIgn` in `/proc/self/status` names the ignored ones (all are reset when it cannot be read).
pub(crate) fn reset_all() -> io::Result<()> {
    let ignored = ignored_signals().unwrap_or(u64::MAX);
    for signal in 1..=SIGRTMAX {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP || ignored & (1 << (signal - 1)) == 0
        {
            continue;
        }
        set_default(signal);
    }
    set_mask(&SigSet::empty()).map(|_| ())
}

/// The kernel's `struct sigaction` (not the C library's, which orders its fields differently).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// `rt_sigaction(signal, SIG_DFL)` straight to the kernel: the C library refuses the two
/// signals it reserves for its threads (32 and 33), yet a caller may have left them ignored,
/// and an ignored signal stays ignored across exec.
fn set_default(signal: i32) {
    let act = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: act is a valid kernel sigaction that lives across the call; the old action is not
    // asked for (null); the size is that of the kernel's 64-bit signal set.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            &act as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        )
    };
}

/// The `SigIgn` mask of this process: bit `n - 1` set when signal `n` is ignored.
fn ignored_signals() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    u64::from_str_radix(mask.trim(), 16).ok()
}

/// Ends this process by `signal` with its default action, as the process it waited for ended:
/// no core file of its own (the program's was written already, where one was due), the
/// signal's default disposition, unblocked, raised. Returns only when `signal` does not
/// terminate a process by default.
pub(crate) fn die_by(signal: i32) {
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: rustix::process::getrlimit(rustix::process::Resource::Core).maximum,
        },
    );
    set_default(signal);
    let mut set = SigSet::empty();
    set.add(signal);
    // SAFETY: set is an initialised sigset_t; the old mask is not asked for.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set.0, std::ptr::null_mut()) };
    // SAFETY: kill takes plain integers; this process signals itself.
    unsafe { libc::kill(libc::getpid(), signal) };
}
