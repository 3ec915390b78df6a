//! Giving back the pages of the program's own code once a container runs.
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
