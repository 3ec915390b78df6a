//! Path checks that never follow a symlink, and tree removal that copes with read-only dirs.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why an entry's parent directory cannot be used.
pub(super) enum ParentError {
    /// A component is a symlink: writing through it could land outside the layer.
    Symlink(PathBuf),
    /// A component is missing (only when not creating).
    Missing(PathBuf),
    /// The filesystem refused.
    Io(PathBuf, io::Error),
}

/// Walks `components` below `root` with `symlink_metadata`, creating missing directories
/// (0755) and replacing non-directories when `create` is set, as tar does. Returns the
/// directory path, which from `root` down contains no symlink.
///
/// The walk and the later write are not atomic, but the tree is a private temp directory that
/// only this unpacker writes, so nothing can swap a component in between.
pub(super) fn walk_dirs(
    root: &Path,
    components: &[&OsStr],
    create: bool,
) -> Result<PathBuf, ParentError> {
    let mut cur = root.to_path_buf();
    for c in components {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return Err(ParentError::Symlink(cur)),
            Ok(m) if m.is_dir() => {}
            Ok(_) if create => {
                fs::remove_file(&cur).map_err(|e| ParentError::Io(cur.clone(), e))?;
                mkdir(&cur).map_err(|e| ParentError::Io(cur.clone(), e))?;
            }
            Ok(_) => return Err(ParentError::Missing(cur)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                mkdir(&cur).map_err(|e| ParentError::Io(cur.clone(), e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ParentError::Missing(cur)),
            Err(e) => return Err(ParentError::Io(cur, e)),
        }
    }
    Ok(cur)
}

/// True when every component of `path` below `root` is a real directory, not a symlink.
pub(super) fn dirs_intact(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let comps: Vec<&OsStr> = rel.iter().collect();
    walk_dirs(root, &comps, false).is_ok()
}

fn mkdir(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(0o755).create(path)
}

/// Removes whatever is at `path` without following a symlink there.
pub(super) fn clear(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_tree(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes a tree that may hold directories without write permission (unpacked layers keep
/// the image's modes; an unprivileged owner must restore `u+rwx` before it can empty them).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path)?;
            fs::remove_dir_all(path)
        }
        Err(e) => Err(e),
    }
}

fn make_writable(dir: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(dir)?;
    if !m.is_dir() {
        return Ok(());
    }
    let mode = m.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700))?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

/// Normalises a tar member name: leading `/` and `./` are dropped (reported through the
/// returned flag), empty and `.` components vanish, and a `..` component rejects the name.
pub(super) fn normalise(raw: &[u8]) -> Option<(Vec<&OsStr>, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let absolute = raw.first() == Some(&b'/');
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            _ => out.push(OsStr::from_bytes(c)),
        }
    }
    Some((out, absolute))
}

/// Whether a symlink at `link_dir` (components below the layer root) with target `target`
/// stays inside the root when resolved lexically. Absolute targets are resolved against the
/// layer root, as the container will see them.
pub(super) fn link_stays_inside(link_dir: &[&OsStr], target: &[u8]) -> bool {
    let mut depth: usize = if target.first() == Some(&b'/') {
        0
    } else {
        link_dir.len()
    };
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => depth += 1,
        }
    }
    true
}
