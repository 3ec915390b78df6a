//! The monitor's resident memory.
//!
//! A `berth run` process stays as its container's monitor for as long as the container runs,
//! often one per task on every node of a job. What it needs then is a few pages of code (wait,
//! forward signals, record the exit), but setting the container up touched megabytes of the
//! binary (argument parsing, JSON, seccomp compilation), and those pages stay mapped in the
//! process and count in its resident set. [`shed_startup_pages`] unmaps them; they remain in the
//! page cache, shared, and come back on demand. The monitor calls it once the container has
//! run for a second, so short containers do not pay for it.

use std::fs;

use crate::sys::memory::drop_clean_file_pages;

/// Drops the resident pages of this program's code and read-only data that set-up touched.
///
/// Only the executable's read-only mappings whose pages all still come from the file are
/// affected. Relocated read-only data (RELRO, in position-independent builds) was written at
/// load time: its pages are the process's own copies, counted as `Anonymous` in
/// `/proc/self/smaps`, and are left alone, as is everything writable. The order of the segments
/// differs between linkers (glibc's static link puts read-only data before the code, musl's
/// after it), so each mapping is judged by what the kernel says of it. Failures are ignored: this
/// only saves memory.
pub fn shed_startup_pages() {
    let Ok(exe) = fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in clean_read_only_mappings(&smaps, &exe.to_string_lossy()) {
        let _ = drop_clean_file_pages(start, end - start);
    }
}

/// The `[start, end)` ranges of `exe`'s read-only mappings (`r--p`, `r-xp`) that hold no
/// anonymous (copied-on-write) page, in the format of `/proc/PID/smaps`.
fn clean_read_only_mappings(smaps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else {
            continue;
        };
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            // A mapping's header: range, perms, offset, device, inode, then the path (which
            // may contain spaces).
            let perms = f.next().unwrap_or_default();
            let path = f.skip(3).collect::<Vec<_>>().join(" ");
            current = match (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                (Ok(a), Ok(b)) if path == exe && matches!(perms, "r--p" | "r-xp") => Some((a, b)),
                _ => None,
            };
        } else if first == "Anonymous:" {
            if let Some(range) = current.take() {
                if f.next() == Some("0") {
                    out.push(range);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_mappings_with_copied_pages() {
        let smaps = "\
5558122ba000-555812534000 r--p 00000000 fe:00 42 /usr/bin/berth
Rss:                 400 kB
Anonymous:             0 kB
555812534000-555812c9a000 r-xp 0027a000 fe:00 42 /usr/bin/berth
Anonymous:             0 kB
555812c9a000-555812cf6000 r--p 009e0000 fe:00 42 /usr/bin/berth
Anonymous:            12 kB
555812cf6000-555812cf9000 rw-p 00a3b000 fe:00 42 /usr/bin/berth
Anonymous:             0 kB
555812cf9000-555812d00000 r--p 00a3e000 fe:00 42 /usr/bin/berth
Anonymous:             0 kB
7fdc9fd4c000-7fdc9fd72000 r--p 00000000 fe:00 7 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
";
        assert_eq!(
            clean_read_only_mappings(smaps, "/usr/bin/berth"),
            vec![
                (0x5558122ba000, 0x555812534000),
                (0x555812534000, 0x555812c9a000),
                (0x555812cf9000, 0x555812d00000),
            ]
        );
        assert!(clean_read_only_mappings(smaps, "/other").is_empty());
    }
}
