//! Resolving paths inside the container's root without ever leaving it.
//!
//! Every lookup goes through `openat2(RESOLVE_IN_ROOT)` from a descriptor of the root, so an
//! absolute symlink or `..` in the image is resolved as if the root were `/`: a link
//! `/mnt -> /etc` in the image leads to the image's `/etc`, never the host's. Mounts are then
//! made on the returned descriptor (`/proc/self/fd/N`), not on a path a later step could swap.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// What to create for a missing mount target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// Opens `path` (a host path) as the root for later lookups.
pub(crate) fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `path` made relative, keeping `..` for openat2 to clamp at the root.
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Opens `path`, interpreted inside `root`, as an `O_PATH` descriptor.
pub(crate) fn resolve(root: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    loop {
        match rustix::fs::openat2(
            root,
            relative(path),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        ) {
            // The kernel asks for a retry when a rename raced with the lookup.
            Err(rustix::io::Errno::AGAIN) => continue,
            other => return Ok(other?),
        }
    }
}

/// Like [`resolve`], but creates what is missing: directories along the way and, at the end,
/// a directory or an empty file as `kind` says.
pub(crate) fn ensure(root: &OwnedFd, path: &Path, kind: Kind) -> io::Result<OwnedFd> {
    match resolve(root, path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let rel = relative(path);
    let parts: Vec<Component<'_>> = rel.components().collect();
    let mut parent = resolve(root, Path::new("."))?;
    let mut prefix = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        prefix.push(part);
        match resolve(root, &prefix) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let Component::Normal(name) = part else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        let created = if i + 1 == parts.len() && kind == Kind::File {
            let flags =
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rustix::fs::openat(&parent, *name, flags, Mode::from_raw_mode(0o644)).map(drop)
        } else {
            rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o755))
        };
        match created {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        // Resolving again (rather than opening the new entry by name) keeps the answer right if
        // the name turned out to be a dangling symlink: then this fails instead of following it.
        parent = resolve(root, &prefix)?;
    }
    Ok(parent)
}

/// The magic-link path naming `fd`, for calls that only take paths (mount(2)).
pub(crate) fn fd_path<Fd: AsFd>(fd: Fd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// Whether `fd` is a directory.
pub(crate) fn is_dir<Fd: AsFd>(fd: Fd) -> io::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory)
}
