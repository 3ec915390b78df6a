//! Publishing files so that a crash at any instant leaves either the old or the new content.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, StoreError};
use crate::paths::Paths;

/// Makes a completed rename durable: the rename is an update of the parent directory.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Writes `bytes` to `dest` via a temp file in `tmp/`: write, fsync, rename, fsync parent.
pub fn write_atomic(paths: &Paths, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = paths.temp("write");
    let result = (|| {
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        drop(f);
        fs::rename(&tmp, dest).at(dest)?;
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `dest` via a temp file and a rename, without forcing them to disk.
///
/// For container records and states: a reader never sees half a file, and a killed process
/// leaves the old or the new one; after a power loss the container is gone anyway (the boot id
/// in its state no longer matches), so the fsyncs would only slow every container start.
pub fn write_replace(paths: &Paths, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    replace_through(&paths.temp("write"), dest, bytes)
}

/// [`write_replace`] with the temporary file beside `dest` rather than in `tmp/`: its inode is
/// then allocated near the directory's (see `spare.rs` on why that matters for containers).
/// A killed process can leave a `.NAME-…` file there, which goes with the directory.
pub fn write_replace_beside(paths: &Paths, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let unique = paths.temp(&format!(".{name}"));
    let tmp = dest.with_file_name(unique.file_name().unwrap_or_default());
    replace_through(&tmp, dest, bytes)
}

/// Writes `bytes` to `tmp`, then renames it over `dest`; `tmp` does not outlive a failure.
fn replace_through(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let result = fs::write(tmp, bytes)
        .at(tmp)
        .and_then(|()| fs::rename(tmp, dest).at(dest));
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}
