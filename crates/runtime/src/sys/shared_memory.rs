//! A process that shares the caller's memory, for work that starts once the caller has exited.
#![allow(unsafe_code)]

use std::io;

/// Bytes of stack for the new process: reserved, not committed; pages are faulted in as used,
/// like a main thread's.
const STACK_BYTES: usize = 8 << 20;

/// What the new process starts with: copied out by the trampoline, never freed (the caller
/// leaks it, and the memory goes with the last process of the address space).
struct Start<T: 'static> {
    entry: fn(&'static T) -> !,
    arg: &'static T,
}

/// Starts `entry(arg)` in a new process that shares this process's address space
/// (`clone(CLONE_VM)`) on a stack of its own, and returns the new process's pid.
///
/// No page table is copied, so this costs a small fraction of a fork of this large program,
/// and neither process pays copy-on-write faults afterwards. The price: both processes run in
/// one address space with one heap and one set of thread-local variables (the new process
/// runs on the caller's thread pointer). Until every thread of the caller has exited, `entry`
/// must therefore only make plain system calls on what `arg` holds: no allocation, no
/// thread-locals, no locks. Its descriptors, working directory and signal dispositions are its
/// own copies, as after fork.
pub(crate) fn spawn_sharing_memory<T: Sync + 'static>(
    entry: fn(&'static T) -> !,
    arg: &'static T,
) -> io::Result<i32> {
    let start: &'static Start<T> = Box::leak(Box::new(Start { entry, arg }));
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing; nothing
    // else refers to it. It is never unmapped by this process: the new one runs on it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let page = rustix::param::page_size();
    // SAFETY: the lowest page of the mapping made above becomes a guard page: overflowing the
    // stack faults instead of writing over whatever lies below.
    unsafe { libc::mprotect(base, page, libc::PROT_NONE) };
    // SAFETY: `base + STACK_BYTES` is one past the end of the mapping, where a downward stack
    // starts (16-byte aligned, as the mapping is page-aligned).
    let top = unsafe { base.cast::<u8>().add(STACK_BYTES) }.cast::<libc::c_void>();
    let arg = std::ptr::from_ref(start).cast_mut().cast::<libc::c_void>();
    // SAFETY: the trampoline gets `arg`, a leaked `Start<T>` that stays valid for the life of
    // the address space; the new process runs on its own stack `top`, and with CLONE_VM but
    // without CLONE_THREAD it is a separate process (its own pid, descriptor table and signal
    // handlers) that the kernel reports to this one with SIGCHLD, as a fork's child.
    let pid = unsafe { libc::clone(trampoline::<T>, top, libc::CLONE_VM | libc::SIGCHLD, arg) };
    if pid == -1 {
        let e = io::Error::last_os_error();
        // SAFETY: the mapping made above; no process runs on it, since clone failed.
        unsafe { libc::munmap(base, STACK_BYTES) };
        return Err(e);
    }
    Ok(pid)
}

extern "C" fn trampoline<T: Sync + 'static>(start: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `start` is the `Start<T>` leaked by spawn_sharing_memory; reading it copies two
    // words and allocates nothing.
    let start = unsafe { &*start.cast::<Start<T>>() };
    (start.entry)(start.arg)
}
