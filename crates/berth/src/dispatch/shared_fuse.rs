//! Single-file images mounted through FUSE, shared by the containers of one store.
//!
//! A FUSE mount of a `.sqsh` file (`squashfuse_ll`, for callers without root or with
//! `squashfs_mount = "fuse"`) lives in the caller's mount namespace at `ROOT/sqsh/<key>`, the
//! key naming the file (path, device, inode, size, modification time), and serves every
//! container of the store started from that file. Each container holds a shared `flock` on
//! `ROOT/sqsh/<key>.lock` for its life; the mount is made under the exclusive lock. When a
//! container ends, a `berth __linger` process keeps its shared lock a few seconds more and then
//! unmounts only if it can take the lock exclusively, that is when no container uses the mount
//! any more. A container started meanwhile finds the mount alive, with the daemon's and the
//! kernel's caches warm, and pays neither the daemon's start nor the inflating again. A mount
//! whose daemon died is taken down and made again; one left by a killed monitor is reused.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use berth_store::Store;
use berth_types::Digest;

/// Locks this process holds, by mount directory: released when the container ends.
static HELD: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

/// Mounts `file` (canonical) where the store shares it, or finds it mounted there, and holds
/// it for this process's container. Returns the mount directory.
pub fn acquire(store: &Store, file: &Path) -> Result<PathBuf> {
    let meta =
        std::fs::metadata(file).with_context(|| format!("cannot open image {}", file.display()))?;
    let key = format!(
        "{}\0{}\0{}\0{}\0{}.{}",
        file.display(),
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    let hex = Digest::sha256_of(key.as_bytes()).hex().to_string();
    let dir = store.paths().root().join("sqsh").join(&hex[..32]);
    acquire_at(file, &dir)?;
    Ok(dir)
}

/// [`acquire`] at a known mount directory (a container's, started again).
pub fn acquire_at(file: &Path, dir: &Path) -> Result<()> {
    // `run` holds it already when its own process goes on to start the container.
    if HELD
        .lock()
        .expect("not poisoned")
        .iter()
        .any(|(d, _)| d == dir)
    {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let base = dir.parent().unwrap_or(Path::new("/"));
    let lock_path = dir.with_extension("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    let locked = |exclusive: bool| {
        if exclusive {
            lock.lock()
        } else {
            lock.lock_shared()
        }
        .with_context(|| format!("cannot lock {}", lock_path.display()))
    };
    let base_dev = std::fs::metadata(base).map(|b| b.dev()).ok();
    // Another device than its parent's: mounted, and the daemon answers.
    let alive = || std::fs::metadata(dir).is_ok_and(|m| Some(m.dev()) != base_dev);
    // A shared hold is enough to use a live mount, and keeps it from being taken down.
    locked(false)?;
    if !alive() {
        locked(true)?;
        if !alive() {
            if std::fs::metadata(dir).is_err() {
                // ENOTCONN and the like: a mount whose daemon is gone.
                berth_runtime::SquashfsMount::Fuse(dir.to_path_buf()).release();
            }
            berth_runtime::mount_squashfs(file, dir, true)?;
        }
        locked(false)?;
    }
    HELD.lock()
        .expect("not poisoned")
        .push((dir.to_path_buf(), lock));
    Ok(())
}

/// Lets go of this process's hold on the mount at `dir`. With `linger`, a `berth __linger`
/// process keeps one hold a few seconds and then unmounts if nobody else holds it; without,
/// the mount is taken down at once when nobody else holds it.
pub fn release(dir: &Path, file: &str, linger: bool) {
    let mut held: Vec<File> = {
        let mut all = HELD.lock().expect("not poisoned");
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(d, _)| d == dir);
        *all = rest;
        mine.into_iter().map(|(_, f)| f).collect()
    };
    let last = match held.pop() {
        Some(last) => last,
        // Held by nobody here (`rm` of a container another process created).
        None => match File::options().write(true).open(dir.with_extension("lock")) {
            Ok(lock) => lock,
            Err(_) => return,
        },
    };
    drop(held);
    if linger {
        super::local_image::spawn_linger(last.into(), file, Some(dir));
    } else {
        unmount_if_unused(&last, dir);
    }
}

/// Takes the mount at `dir` down if `lock` (a hold on it) can become the only one.
pub fn unmount_if_unused(lock: &File, dir: &Path) {
    if lock.try_lock().is_ok() {
        berth_runtime::SquashfsMount::Fuse(dir.to_path_buf()).release();
    }
}

/// Takes down the store's FUSE mounts that no container holds (left by a monitor that was
/// killed before it could hand its hold to a `berth __linger`).
pub fn prune(store: &Store) {
    let Ok(entries) = std::fs::read_dir(store.paths().root().join("sqsh")) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "lock") {
            if let Ok(lock) = File::options().write(true).open(&path) {
                unmount_if_unused(&lock, &path.with_extension(""));
            }
        }
    }
}
