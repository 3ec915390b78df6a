//! maskedPaths and readonlyPaths: hiding kernel files such as `/proc/kcore` and freezing
//! others such as `/proc/sys`.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::mount::{MountFlags, OpenTreeFlags};

use super::mounts::{attach, bind, fresh, remount};
use super::resolve;
use crate::error::{Failure, Step};

fn missing(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// Hides `path`: `/dev/null` over a file, an empty read-only tmpfs over a directory. A path
/// that does not exist needs no hiding.
pub(super) fn mask(root: &OwnedFd, path: &Path) -> Result<(), Failure> {
    let fail = Failure::at(Step::MaskPath, path.display());
    let fd = match resolve::resolve(root, path) {
        Err(e) if missing(&e) => return Ok(()),
        other => other.map_err(Failure::at(Step::MaskPath, path.display()))?,
    };
    let result = if resolve::is_dir(&fd).map_err(Failure::at(Step::MaskPath, path.display()))? {
        fresh("tmpfs", "tmpfs", &fd, MountFlags::RDONLY, &[])
    } else {
        bind(Path::new("/dev/null"), &fd, false)
    };
    result.map_err(fail)
}

/// Makes `path` read-only by binding it onto itself and remounting the bind read-only.
pub(super) fn make_readonly(root: &OwnedFd, path: &Path) -> Result<(), Failure> {
    let fd = match resolve::resolve(root, path) {
        Err(e) if missing(&e) => return Ok(()),
        other => other.map_err(Failure::at(Step::ReadonlyPath, path.display()))?,
    };
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = rustix::mount::open_tree(&fd, "", flags)
        .map_err(Failure::at(Step::ReadonlyPath, path.display()))?;
    attach(&tree, &fd).map_err(Failure::at(Step::ReadonlyPath, path.display()))?;
    remount(root, path, MountFlags::RDONLY).map_err(Failure::at(Step::ReadonlyPath, path.display()))
}
