//! Advisory file locks for writers.
//!
//! `flock(2)` through std's `File::lock`: Linux NFS clients emulate it with POSIX byte-range
//! locks, so it also works for stores on shared filesystems. The lock belongs to the open file
//! description, so two threads of one process exclude each other just as two processes do.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{IoContext, StoreError};

/// A held lock; released when dropped (closing the file drops the flock).
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

fn open(path: &Path) -> Result<File, StoreError> {
    // Lock files are never deleted: unlinking a lock file another process has open and is about
    // to lock would let two writers hold "the" lock at once.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}

/// Blocks until the exclusive lock on `path` is held.
pub fn exclusive(path: &Path) -> Result<LockGuard, StoreError> {
    let file = open(path)?;
    file.lock().at(path)?;
    Ok(LockGuard { _file: file })
}

/// Blocks until a shared lock on `path` is held.
pub fn shared(path: &Path) -> Result<LockGuard, StoreError> {
    let file = open(path)?;
    file.lock_shared().at(path)?;
    Ok(LockGuard { _file: file })
}

/// The exclusive lock on `path` if nobody holds it, `None` if someone does.
pub fn try_exclusive(path: &Path) -> Result<Option<LockGuard>, StoreError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(LockGuard { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io(path, e)),
    }
}
