//! `/dev` on a fresh tmpfs. A user namespace may not `mknod`, so the standard device nodes
//! are bind mounts of the host's nodes; the rest are the usual symlinks.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxDevice;

use super::mounts::bind;
use super::resolve::{self, Kind};
use crate::error::{Failure, Step};

const NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

const LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Fills the container's new `/dev` tmpfs.
pub(super) fn populate(root: &OwnedFd) -> Result<(), Failure> {
    for name in NODES {
        let host = PathBuf::from("/dev").join(name);
        bind_node(root, &host, &host)?;
    }
    let dev =
        resolve::resolve(root, Path::new("/dev")).map_err(Failure::at(Step::Devices, "/dev"))?;
    for (name, target) in LINKS {
        match rustix::fs::symlinkat(target, &dev, name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(Failure::new(
                    Step::Devices,
                    format!("/dev/{name}"),
                    e.into(),
                ))
            }
        }
    }
    Ok(())
}

fn bind_node(root: &OwnedFd, host: &Path, dest: &Path) -> Result<(), Failure> {
    let target = resolve::ensure(root, dest, Kind::File)
        .map_err(Failure::at(Step::Devices, dest.display()))?;
    bind(host, &target, false).map_err(Failure::at(Step::Devices, dest.display()))
}

/// Binds the devices the spec lists (GPUs, /dev/fuse…) from the host where they exist; a
/// missing host node is skipped, since the spec may list optional devices.
pub(super) fn bind_spec_devices(root: &OwnedFd, devices: &[LinuxDevice]) -> Result<(), Failure> {
    for d in devices {
        let path = d.path();
        match std::fs::symlink_metadata(path) {
            Ok(_) => bind_node(root, path, path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::new(Step::Devices, path.display(), e)),
        }
    }
    Ok(())
}
