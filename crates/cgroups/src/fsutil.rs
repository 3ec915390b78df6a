//! Small wrappers around std file I/O on cgroupfs that attach the path to every error.
//!
//! cgroup files are pseudo-files: one `write` is one command to the kernel, so values are written
//! whole with a single call and never through a buffered writer that might split them.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::CgroupError;

/// Reads a whole cgroup file as text.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file that may legitimately be absent (a controller file the kernel does not offer).
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a single unsigned number, or `None` when the file is missing or holds `max`.
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    let text = text.trim();
    if text == "max" {
        return Ok(None);
    }
    text.parse::<u64>()
        .map(Some)
        .map_err(|e| CgroupError::Parse {
            path: path.to_path_buf(),
            reason: format!("expected a number, found {text:?}: {e}"),
        })
}

/// Writes `value` to a cgroup file in one `write` call. The file must exist: cgroupfs does not
/// let us create files, and opening without `create` keeps a typo from going unnoticed on a
/// plain directory in tests. Truncating is meaningless to cgroupfs but keeps plain files
/// (imitation trees in tests) holding exactly the last value.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let result = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| CgroupError::Write {
        value: value.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

/// True for the errors that mean "this user may not do that here" rather than a real failure.
pub(crate) fn is_permission(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Creates one cgroup directory. Refusals become `NotDelegated` so the caller can fall back,
/// and an existing directory is an error: we never adopt a cgroup someone else made.
pub(crate) fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(CgroupError::AlreadyExists {
            path: path.to_path_buf(),
        }),
        Err(e) if is_permission(&e) => Err(CgroupError::NotDelegated {
            path: path.parent().unwrap_or(path).to_path_buf(),
            reason: format!(
                "creating {} was refused for uid {} ({e})",
                path.display(),
                current_uid_text()
            ),
        }),
        Err(source) => Err(CgroupError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// How long `rmdir_retry` keeps trying while the last processes of a cgroup exit.
pub(crate) const RMDIR_PATIENCE: Duration = Duration::from_secs(2);

/// Removes a cgroup directory. A cgroup stays busy for a moment after its last process was
/// killed (the kernel reaps asynchronously), so `EBUSY` is retried for a short while.
/// A directory that is already gone counts as removed.
pub(crate) fn rmdir_retry(path: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.kind() == io::ErrorKind::ResourceBusy && start.elapsed() < RMDIR_PATIENCE =>
            {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Reads the pids listed in a `cgroup.procs` file.
pub(crate) fn read_procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        // A cgroup removed under us has no processes left.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CgroupError::Read { path, source }),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim().parse::<i32>().map_err(|e| CgroupError::Parse {
                path: path.clone(),
                reason: format!("bad pid {l:?}: {e}"),
            })
        })
        .collect()
}

/// Sends `signal` to every pid in `pids`; processes that already exited are not an error.
pub(crate) fn signal_all(pids: &[i32], signal: i32, dir: &Path) -> Result<(), CgroupError> {
    use rustix::process::{kill_process, Pid, Signal};
    let sig = Signal::from_named_raw(signal).ok_or_else(|| CgroupError::Invalid {
        what: "signal",
        path: dir.to_path_buf(),
        reason: format!("{signal} is not a known signal number"),
    })?;
    for &pid in pids {
        let Some(p) = Pid::from_raw(pid) else {
            continue;
        };
        match kill_process(p, sig) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                return Err(CgroupError::Signal {
                    signal,
                    pid,
                    path: dir.to_path_buf(),
                    source: e.into(),
                })
            }
        }
    }
    Ok(())
}

/// Polls `check` until it returns true or `limit` passes; used for freezing, which the kernel
/// completes asynchronously.
pub(crate) fn wait_until(
    limit: Duration,
    mut check: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if check()? {
            return Ok(true);
        }
        if start.elapsed() >= limit {
            return Ok(false);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The caller's uid as text, for messages; read from procfs so no syscall wrapper is needed.
pub(crate) fn current_uid_text() -> String {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "?".to_string())
}

/// Joins a cgroup path as found in `/proc/self/cgroup` (always absolute, `/` for the root)
/// onto a mount point, without letting `..` climb out of the mount.
pub(crate) fn join_cgroup(mount: &Path, cgroup: &str) -> PathBuf {
    let mut out = mount.to_path_buf();
    for part in cgroup.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            continue;
        }
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_cgroup_keeps_inside_mount() {
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(join_cgroup(m, "/"), m);
        assert_eq!(
            join_cgroup(m, "/process_api/abc"),
            Path::new("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert_eq!(
            join_cgroup(m, "/../x"),
            Path::new("/sys/fs/cgroup/memory/x")
        );
    }

    #[test]
    fn read_u64_opt_handles_max_and_missing() {
        let dir = std::env::temp_dir().join(format!("berth-cgroups-fsutil-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pids.max");
        fs::write(&f, "max\n").unwrap();
        assert_eq!(read_u64_opt(&f).unwrap(), None);
        fs::write(&f, "20\n").unwrap();
        assert_eq!(read_u64_opt(&f).unwrap(), Some(20));
        fs::write(&f, "x\n").unwrap();
        let err = read_u64_opt(&f).unwrap_err().to_string();
        assert!(err.contains("pids.max"), "{err}");
        assert_eq!(read_u64_opt(&dir.join("absent")).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_error_names_value_and_path() {
        let err = write(Path::new("/nonexistent-berth/memory.max"), "1024").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("failed to write 1024 to /nonexistent-berth/memory.max"),
            "{text}"
        );
    }
}
