//! Memory mappings: the allocator's arena, and giving back the pages of the program's own code
//! once a container runs.
#![allow(unsafe_code)]

use std::io;

/// Drops this process's page-table entries for `len` bytes at `addr` (`MADV_DONTNEED`).
///
/// Only for read-only, never-written file mappings (code and read-only data): their pages come
/// back from the file, unchanged, on the next access.
pub(crate) fn drop_clean_file_pages(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller passes a whole mapping of /proc/self/maps that is read-only and
    // file-backed and was never written, so discarding its pages loses nothing: the kernel
    // refills them from the same file on the next access. No Rust reference points into a
    // mapping that disappears; the mapping itself stays.
    let r = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reserves `len` bytes of fresh, zeroed, private memory, pages made as touched; `None` when
/// the kernel refuses. Issued straight to the kernel: the allocator calls it, and the C
/// library's wrapper may itself allocate or set errno.
pub(crate) fn reserve(len: usize) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing; nothing
    // else refers to it.
    let r = unsafe {
        syscalls::syscall6(
            syscalls::Sysno::mmap,
            0,
            len,
            (libc::PROT_READ | libc::PROT_WRITE) as usize,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE) as usize,
            usize::MAX,
            0,
        )
    };
    r.ok().map(|addr| addr as *mut u8)
}

/// Unmaps what [`reserve`] gave, when nothing points into it any more.
pub(crate) fn release(addr: *mut u8, len: usize) {
    // SAFETY: the caller passes a whole mapping from `reserve` that no live reference points
    // into.
    let _ = unsafe { syscalls::syscall2(syscalls::Sysno::munmap, addr as usize, len) };
}
