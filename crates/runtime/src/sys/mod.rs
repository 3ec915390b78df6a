//! The runtime's only `unsafe` code: thin, safe wrappers over the few calls that rustix does not
//! offer (clone with namespace flags, fork, a clone that shares memory, `_exit`, `execve`,
//! `close_range`, signal masks, signalfd, interface flags, loop devices, unshare of the calling
//! process, madvise).
//! Everything else in the crate goes through rustix.
#![allow(unsafe_code)]

pub(crate) mod allocator;
pub(crate) mod memory;
pub(crate) mod net;
pub(crate) mod process_ns;
pub(crate) mod seccomp;
pub(crate) mod shared_memory;
pub(crate) mod signal;

use std::ffi::{CStr, CString};
use std::io;
use std::os::raw::c_char;

/// Which side of a fork-like call we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// The new process.
    Child,
    /// The calling process, with the child's host pid.
    Parent(i32),
}

fn forked(ret: libc::c_long) -> io::Result<Forked> {
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// `clone(2)` without a new stack, so it behaves like `fork` but creates the namespaces in
/// `ns_flags` (`CLONE_NEW*`) at once: the child is pid 1 of a new pid namespace and starts with
/// full capabilities in a new user namespace. The caller must be single-threaded, since the
/// child only has a copy of the calling thread and no fork handlers run.
pub(crate) fn clone_with_namespaces(ns_flags: libc::c_int) -> io::Result<Forked> {
    let flags = (ns_flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: without CLONE_VM the child gets its own copy of the address space and resumes
    // here on its copy of the stack, exactly as after fork(); all pointer arguments are null.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    forked(ret)
}

/// `clone(CLONE_PARENT)`: the new process becomes a sibling of the caller, i.e. a child of the
/// caller's parent. `exec` uses it so the joined process, created after `setns` into a pid
/// namespace, can be waited for by the monitor directly.
pub(crate) fn clone_sibling() -> io::Result<Forked> {
    let flags = libc::CLONE_PARENT as libc::c_ulong;
    // SAFETY: as in clone_with_namespaces: a fork-like clone with null pointer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    forked(ret)
}

/// `fork(2)` through libc, so the C library's fork handlers keep its locks usable in the child
/// even when the caller has other threads.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions; the child only runs our own code.
    let ret = unsafe { libc::fork() };
    forked(libc::c_long::from(ret))
}

/// Ends the current process at once, without running destructors or atexit handlers that
/// belong to the parent's copy of the program.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Marks every descriptor from 3 up close-on-exec except those in `keep` (sorted, each
/// above 2), so nothing of the host survives `execve` but what was dup'ed onto 0, 1 and 2
/// and what the caller chose to pass on (CVE-2024-21626).
pub(crate) fn cloexec_from_3(keep: &[i32]) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    close_from_3_but(keep, CLOSE_RANGE_CLOEXEC)
}

/// `close_range(2)` with `flags` over every descriptor from 3 up but those in `keep` (sorted,
/// each above 2). Allocates nothing: the init calls it between clone and exec.
fn close_from_3_but(keep: &[i32], flags: libc::c_uint) -> io::Result<()> {
    let mut from: libc::c_uint = 3;
    for &fd in keep {
        let fd = fd as libc::c_uint;
        if fd > from {
            close_range(from, fd - 1, flags)?;
        }
        from = from.max(fd.saturating_add(1));
    }
    close_range(from, libc::c_uint::MAX, flags)
}

/// Whether the working directory is reachable from this process's root. A directory entered
/// through a descriptor of the host (`/proc/self/fd/N`) is not: the kernel then names it
/// `(unreachable)/…` (CVE-2024-21626).
pub(crate) fn cwd_inside_root() -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    // SAFETY: the kernel writes at most buf.len() bytes into buf, which outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf[0] == b'/')
}

/// Clears close-on-exec on `fd`, a descriptor the caller passes on to the container's process.
pub(crate) fn inherit_fd(fd: i32) -> io::Result<()> {
    // SAFETY: F_SETFD on a plain integer descriptor changes only its flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Closes every descriptor from 3 up.
pub(crate) fn close_from_3() -> io::Result<()> {
    close_from_3_but(&[], 0)
}

/// Closes every descriptor from 3 up except those in `keep` (sorted, each above 2).
pub(crate) fn close_from_3_keeping(keep: &[i32]) -> io::Result<()> {
    close_from_3_but(keep, 0)
}

/// The outcome of a system call issued without the C library (no errno), as `io::Result`.
fn done(r: Result<usize, syscalls::Errno>) -> io::Result<()> {
    r.map(drop)
        .map_err(|e| io::Error::from_raw_os_error(e.into_raw()))
}

fn close_range(first: libc::c_uint, last: libc::c_uint, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range takes plain integers. Closing (flags 0): the caller owns no Rust
    // object holding one of these descriptors that it will use again (it only uses those it
    // opens afterwards); CLOSE_RANGE_CLOEXEC only changes descriptor flags. Issued directly,
    // without the C library's errno: see `run_only_when_idle`.
    done(unsafe {
        syscalls::syscall3(
            syscalls::Sysno::close_range,
            first as usize,
            last as usize,
            flags as usize,
        )
    })
}

/// A null-terminated `char *[]` built ahead of time, so the child needs no allocation to exec.
pub(crate) struct CStringArray {
    // Owns the strings the pointers point into.
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStringArray {
    /// Builds the array; `None` if a string contains a NUL byte.
    pub(crate) fn new<S: AsRef<str>>(items: &[S]) -> Option<Self> {
        let strings = items
            .iter()
            .map(|s| CString::new(s.as_ref()).ok())
            .collect::<Option<Vec<_>>>()?;
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Some(Self {
            _strings: strings,
            ptrs,
        })
    }
}

/// `execve(2)`; returns only on failure, with the error.
pub(crate) fn execve(path: &CStr, argv: &CStringArray, envp: &CStringArray) -> io::Error {
    // SAFETY: path is a valid C string and both arrays are null-terminated arrays of valid C
    // strings kept alive by their owners for the duration of the call.
    unsafe { libc::execve(path.as_ptr(), argv.ptrs.as_ptr(), envp.ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// `kill(2)` with any signal number, realtime ones included (rustix's `Signal` only names the
/// classic ones safely).
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers and has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread to `SCHED_IDLE`: it runs only on CPU time no other thread wants.
pub(crate) fn run_only_when_idle() -> io::Result<()> {
    // SAFETY: sched_param is plain integers, for which all zeroes is a valid value.
    let param: libc::sched_param = unsafe { std::mem::zeroed() };
    // The system call, not the C library's wrapper: musl's refuses with ENOSYS, as the call
    // sets one thread's policy and not the process's. Only this thread exists here. Nor its
    // `syscall()`, which sets errno on failure: a process sharing its caller's memory (see
    // `background`) shares the caller's errno too, while the caller runs.
    // SAFETY: param is a valid sched_param that outlives the call; pid 0 is this thread.
    done(unsafe {
        syscalls::syscall3(
            syscalls::Sysno::sched_setscheduler,
            0,
            libc::SCHED_IDLE as usize,
            std::ptr::from_ref(&param) as usize,
        )
    })
}
