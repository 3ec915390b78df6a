//! The fixture cache: one directory, entries built once under a lock and renamed into place.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where cached fixtures live: `$BERTH_FIXTURES_DIR`, else `$XDG_CACHE_HOME/berth-fixtures`,
/// else `$HOME/.cache/berth-fixtures`, else `/tmp/berth-fixtures-<uid>`.
///
/// The cache sits outside the cargo target directory so that `cargo clean` does not throw away
/// a Debian root file system that takes minutes to bootstrap.
pub fn cache_dir() -> PathBuf {
    let dir = if let Some(d) = non_empty_env("BERTH_FIXTURES_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = non_empty_env("XDG_CACHE_HOME") {
        Path::new(&d).join("berth-fixtures")
    } else if let Some(d) = non_empty_env("HOME") {
        Path::new(&d).join(".cache/berth-fixtures")
    } else {
        let uid = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        PathBuf::from(format!("/tmp/berth-fixtures-{uid}"))
    };
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create fixture cache {}: {e}", dir.display()));
    dir
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Holds an exclusive lock on `<cache>/.<name>.lock` until dropped (the lock is released when
/// the file is closed).
pub(crate) struct CacheLock {
    _file: File,
}

/// Takes the named lock in the cache directory, waiting for other holders.
pub(crate) fn lock(name: &str) -> CacheLock {
    let path = cache_dir().join(format!(".{name}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open lock {}: {e}", path.display()));
    // flock(2): held per open file description, so it also serialises threads of this process
    // that open the file separately, not just other processes.
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    CacheLock { _file: file }
}

/// Returns `<cache>/<name>`, building it first with `build` if it does not exist yet.
///
/// `build` receives a temporary path next to the final one and must create the entry there
/// (file or directory); it is renamed into place only when `build` succeeds, so readers never
/// see a partial entry and need no lock.
pub(crate) fn cached<F>(name: &str, build: F) -> Result<PathBuf, String>
where
    F: FnOnce(&Path) -> Result<(), String>,
{
    let dir = cache_dir();
    let target = dir.join(name);
    if target.exists() {
        return Ok(target);
    }
    let _guard = lock(name);
    if target.exists() {
        return Ok(target);
    }
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), nanos()));
    remove_any(&tmp);
    let result = build(&tmp).and_then(|()| {
        fs::rename(&tmp, &target)
            .map_err(|e| format!("rename {} -> {}: {e}", tmp.display(), target.display()))
    });
    if result.is_err() {
        remove_any(&tmp);
    }
    result.map(|()| target)
}

/// Removes a file or directory tree, ignoring "not found".
pub(crate) fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// A value that differs between calls, for unique temporary names.
pub(crate) fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Finds an executable: the first existing candidate path, else a `PATH` lookup.
///
/// Absolute candidates come first because `cargo test` may run with a `PATH` that lacks
/// `/usr/sbin` (where `debootstrap` and `useradd` live).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let sys_dirs = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"];
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    sys_dirs
        .iter()
        .map(PathBuf::from)
        .chain(path_dirs)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Like [`find_program`], but panics with an installation hint.
pub(crate) fn require_program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!("`{name}` is not installed; run scripts/install-deps (as root) first")
    })
}
