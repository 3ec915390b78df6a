//! The memory allocator of a musl build (the static release binary).
//!
//! musl's own allocator hands freed memory back to the kernel at once: a bare `berth --version`
//! made 120 `mmap` and 114 `munmap` calls with it. dlmalloc keeps it, as glibc's allocator does,
//! which a process that lives a few milliseconds wants. glibc builds keep glibc's allocator.

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Keeps the allocator usable in the child of a `fork(2)` that another thread raced with an
/// allocation (glibc's allocator does this by itself). Call it first in `main`, while the process
/// has one thread.
pub fn keep_allocator_usable_after_fork() {
    #[cfg(target_env = "musl")]
    // SAFETY: called while the process has a single thread, so no other thread can hold the
    // allocator's lock while the fork handlers are registered; registering them twice is
    // harmless (the function remembers it did).
    unsafe {
        dlmalloc::enable_alloc_after_fork()
    }
}
