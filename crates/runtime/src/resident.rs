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
/// Only the executable's mappings that precede its writable ones are affected: the read-only
/// segment before the code, and the code itself. The relocated read-only data (RELRO) and
/// everything writable come later in the file and are left alone, since their pages hold
/// values written at load time. Failures are ignored: this only saves memory.
pub fn shed_startup_pages() {
    let Ok(exe) = fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let exe = exe.to_string_lossy();
    for (start, end) in leading_read_only_mappings(&maps, &exe) {
        let _ = drop_clean_file_pages(start, end - start);
    }
}

/// The `[start, end)` ranges of `exe`'s mappings, in address order, up to (not including) the
/// first one that is writable or follows the code segment.
fn leading_read_only_mappings(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut seen_code = false;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        // offset, device, inode, then the path (which may contain spaces)
        let path = f.skip(3).collect::<Vec<_>>().join(" ");
        if path != exe {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            break;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            break;
        };
        match perms {
            "r--p" if !seen_code => out.push((a, b)),
            "r-xp" => {
                seen_code = true;
                out.push((a, b));
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_before_relro_and_data() {
        let maps = "\
5558122ba000-555812534000 r--p 00000000 fe:00 42 /usr/bin/berth
555812534000-555812c9a000 r-xp 0027a000 fe:00 42 /usr/bin/berth
555812c9a000-555812cf6000 r--p 009e0000 fe:00 42 /usr/bin/berth
555812cf6000-555812cf9000 rw-p 00a3b000 fe:00 42 /usr/bin/berth
7fdc9fd4c000-7fdc9fd72000 r--p 00000000 fe:00 7 /usr/lib/x86_64-linux-gnu/libc.so.6
";
        assert_eq!(
            leading_read_only_mappings(maps, "/usr/bin/berth"),
            vec![
                (0x5558122ba000, 0x555812534000),
                (0x555812534000, 0x555812c9a000)
            ]
        );
        assert!(leading_read_only_mappings(maps, "/other").is_empty());
    }
}
