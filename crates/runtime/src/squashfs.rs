//! Single-file images: a squashfs file mounted read-only as a container's lower layer.
//!
//! As root the kernel mounts it from a loop device, in a mount namespace private to the
//! calling process (the container's monitor): when the monitor and the container are gone, so
//! are the mount and the loop device, whatever killed them. Containers started from the same
//! file while one runs share its loop device, and with it the file system's page cache. Without root, `squashfuse_ll`
//! serves it through FUSE, which needs access to `/dev/fuse`; that mount is in the caller's
//! namespace and [`SquashfsMount::release`] takes it down.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::mount::{
    mount, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags,
};

use crate::error::RuntimeError;
use crate::sys::process_ns::{attach_read_only, find_attached, unshare_mount_namespace};

/// How a squashfs image was mounted, so it can be released the matching way.
#[derive(Debug)]
pub enum SquashfsMount {
    /// A kernel mount on this directory, in this process's private mount namespace.
    Kernel(PathBuf),
    /// A FUSE mount by `squashfuse_ll`, in the caller's namespace.
    Fuse(PathBuf),
}

impl SquashfsMount {
    /// Takes the mount down, so its directory can be removed. A kernel mount would also go
    /// with the namespace, but the directory is only free once it is unmounted here.
    pub fn release(&self) {
        match self {
            SquashfsMount::Kernel(target) => {
                let _ = unmount(target, UnmountFlags::DETACH);
            }
            SquashfsMount::Fuse(target) => {
                let _ = Command::new("fusermount")
                    .arg("-u")
                    .arg("-z")
                    .arg(target)
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl SquashfsMount {
    /// A descriptor of a kernel mount's root: whoever holds it keeps the file system (and its
    /// page cache and loop device) alive after [`SquashfsMount::release`], and a new mount of
    /// the same device gets the same superblock. `None` for FUSE, whose daemon goes with the
    /// mount anyway.
    pub fn hold(&self) -> Option<std::os::fd::OwnedFd> {
        match self {
            SquashfsMount::Kernel(target) => rustix::fs::open(
                target,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ok(),
            SquashfsMount::Fuse(_) => None,
        }
    }
}

fn fail(file: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Squashfs {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// Mounts the squashfs image `file` read-only on the existing directory `target`.
///
/// As root this first moves the calling process into a mount namespace of its own; call it
/// before any other thread is started. With `fuse`, root too mounts it through FUSE.
pub fn mount_squashfs(
    file: &Path,
    target: &Path,
    fuse: bool,
) -> Result<SquashfsMount, RuntimeError> {
    if !fuse && rustix::process::geteuid().is_root() {
        let image = File::open(file).map_err(|e| fail(file, e.to_string()))?;
        unshare_mount_namespace().map_err(|e| fail(file, format!("unshare: {e}")))?;
        // Nothing mounted from here on may reach the host's namespace.
        mount_change(
            "/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )
        .map_err(|e| fail(file, format!("making / private: {e}")))?;
        let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let (dev, path) = match find_attached(&image, &canonical) {
            Some(found) => found,
            None => {
                attach_read_only(&image).map_err(|e| fail(file, format!("loop device: {e}")))?
            }
        };
        mount(
            &path,
            target,
            "squashfs",
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID,
            None,
        )
        .map_err(|e| fail(file, format!("mounting {}: {e}", path.display())))?;
        // The mount holds the device now; with autoclear it goes when the mount does.
        drop(dev);
        return Ok(SquashfsMount::Kernel(target.to_path_buf()));
    }
    let out = Command::new("squashfuse_ll")
        .arg(file)
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                fail(file, "squashfuse_ll not found (install squashfuse)")
            }
            _ => fail(file, format!("squashfuse_ll: {e}")),
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        return Err(fail(file, format!("squashfuse_ll: {}", last.trim())));
    }
    Ok(SquashfsMount::Fuse(target.to_path_buf()))
}
