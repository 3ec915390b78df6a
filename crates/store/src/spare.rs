//! Directories of removed containers, emptied and kept for the next containers.
//!
//! Every container directory is a dozen inodes: the directory, `upper`, `work`, the mount point
//! `rootfs`, the record and the files bound over `/etc/hosts` and the like. Making and deleting
//! them on every start is a cost on any file system, and a growing one on ext4 without a
//! journal (a node's local disk, often): there an inode allocation first steps over every inode
//! of its group freed in the last minute or more, so a steady stream of `run --rm` makes each
//! start slower than the one before. A removed container's directory therefore loses what its
//! container made (the contents of its writable layer, its state, its log) and waits in
//! `spare/` for the next container of the same shape, which fills it in `tmp/` and publishes it
//! under its own id with one rename. Only what the next container would have made the same way
//! is kept: a directory that a container's root changed (owner, extended attributes) is
//! deleted as before.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Store;

/// At most this many directories wait in `spare/`: enough for a burst of starts.
const LIMIT: usize = 128;

/// Names of a container directory that hold its writable layer.
pub(crate) const LAYER_DIRS: [&str; 2] = ["upper", "work"];

/// The mode of a container's `upper` directory, which is the mode of its `/`: Docker's.
pub(crate) const UPPER_MODE: u32 = 0o755;

/// The mode files kept in a spare directory have: what they are written with.
const FILE_MODE: u32 = 0o644;

/// Files a removed container leaves that the next one must not find.
const DROPPED_FILES: [&str; 2] = ["state.json", "container.log"];

/// How spare directories are named in `spare/`, by shape.
fn kind(with_layer: bool) -> &'static str {
    if with_layer {
        "layer"
    } else {
        "bare"
    }
}

impl Store {
    /// Moves a spare directory of this shape (with `upper` and `work`, or without) to a fresh
    /// name in `tmp/` and returns that; `None` when there is none.
    pub(crate) fn take_spare(&self, with_layer: bool) -> Option<PathBuf> {
        let want = kind(with_layer);
        let of_shape = || {
            fs::read_dir(self.paths.spare_dir())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(want)))
        };
        // Starts at once would all race for the first one: each begins somewhere else, and
        // tries the ones before it last.
        let skip = std::process::id() as usize % 8;
        let staging = self.paths.temp("container-new");
        // Another start may have taken one first: then try the next.
        of_shape()
            .skip(skip)
            .chain(of_shape().take(skip))
            .any(|e| fs::rename(e.path(), &staging).is_ok())
            .then_some(staging)
    }

    /// Empties the directory of a removed container (already out of `containers/`) and keeps it
    /// in `spare/`, or deletes it when it cannot be kept.
    pub(crate) fn recycle_container_dir(&self, doomed: &Path) -> io::Result<()> {
        let spare = self.paths.spare_dir();
        let full = fs::read_dir(&spare).is_ok_and(|d| d.count() >= LIMIT);
        if !full {
            if let Ok(Some(with_layer)) = self.strip(doomed) {
                let kept = fs::create_dir_all(&spare).and_then(|()| {
                    let name = self.paths.temp(kind(with_layer));
                    fs::rename(
                        doomed,
                        spare.join(name.file_name().unwrap_or(OsStr::new("x"))),
                    )
                });
                if kept.is_ok() {
                    return Ok(());
                }
            }
        }
        self.remove_tree(doomed)
    }

    /// Deletes what the container made in `dir`; `Some(has a layer)` when what is left is what
    /// a new container of that shape would have made itself.
    fn strip(&self, dir: &Path) -> io::Result<Option<bool>> {
        let (uid, gid) = (rustix::process::geteuid(), rustix::process::getegid());
        let ours = |m: &fs::Metadata| m.uid() == uid.as_raw() && m.gid() == gid.as_raw();
        let meta = fs::symlink_metadata(dir)?;
        if !meta.is_dir() || !ours(&meta) {
            return Ok(None);
        }
        // What a process the container left running may still use (its layer, the files
        // bound into it) must not serve another container; the directory, its mount point and
        // the record can.
        let alone = all_processes_ended(&dir.join("config.json"));
        let mut layer = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let meta = entry.metadata()?;
            let name = name.to_str().unwrap_or("");
            if meta.is_dir() && LAYER_DIRS.contains(&name) && !alone {
                return Ok(None);
            }
            if meta.is_dir() && (LAYER_DIRS.contains(&name) || name == "rootfs") {
                // A layer root the container changed (its `/`, chowned or given attributes)
                // is not what a new one starts from. Overlayfs's own attributes describe the
                // layer that is about to be emptied.
                if !ours(&meta) || !no_xattrs_but_overlays(&path)? {
                    return Ok(None);
                }
                if name == "rootfs" {
                    // The mount point: empty, unless something went wrong.
                    if fs::read_dir(&path)?.next().is_some() {
                        return Ok(None);
                    }
                    continue;
                }
                for child in fs::read_dir(&path)? {
                    let child = child?;
                    if child.file_type()?.is_dir() {
                        self.remove_tree(&child.path())?;
                    } else {
                        fs::remove_file(child.path())?;
                    }
                }
                if name == "upper" && meta.permissions().mode() & 0o7777 != UPPER_MODE {
                    fs::set_permissions(&path, fs::Permissions::from_mode(UPPER_MODE))?;
                }
                layer += 1;
                continue;
            }
            // The record and the files bound into the container are rewritten in place by
            // the next one; one the container could have changed is not kept.
            let keep = meta.is_file()
                && !DROPPED_FILES.contains(&name)
                && (alone || name == "config.json")
                && ours(&meta)
                && meta.nlink() == 1
                && meta.permissions().mode() & 0o7777 == FILE_MODE
                && no_xattrs(&path)?;
            if keep {
                continue;
            }
            if meta.is_dir() {
                self.remove_tree(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
        Ok(match layer {
            0 => Some(false),
            2 => Some(true),
            _ => None,
        })
    }

    /// Deletes spare directories nobody took for `older_than`.
    pub(crate) fn sweep_spares(&self, older_than: std::time::SystemTime) -> io::Result<()> {
        let Ok(entries) = fs::read_dir(self.paths.spare_dir()) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < older_than);
            if !stale {
                continue;
            }
            // Taken first, as a start would, so that no start takes a half-deleted one.
            let doomed = self.paths.temp("gc-spare");
            if fs::rename(entry.path(), &doomed).is_ok() {
                self.remove_tree(&doomed)?;
            }
        }
        Ok(())
    }
}

/// Whether no process of the container can have outlived it: the container had a pid namespace
/// of its own, whose processes the kernel kills and reaps before its first process can be
/// reaped. Without one (`--pid host`, the hpc profile) a process the container left running
/// may still use its layer and the files bound into it.
fn all_processes_ended(record: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Record {
        #[serde(rename = "Spec")]
        spec: Spec,
    }
    #[derive(serde::Deserialize)]
    struct Spec {
        linux: Option<Linux>,
    }
    #[derive(serde::Deserialize)]
    struct Linux {
        #[serde(default)]
        namespaces: Vec<Namespace>,
    }
    #[derive(serde::Deserialize)]
    struct Namespace {
        #[serde(rename = "type")]
        typ: String,
        path: Option<String>,
    }
    let Ok(bytes) = fs::read(record) else {
        return false;
    };
    serde_json::from_slice::<Record>(&bytes).is_ok_and(|r| {
        r.spec.linux.is_some_and(|l| {
            l.namespaces
                .iter()
                .any(|n| n.typ == "pid" && n.path.is_none())
        })
    })
}

/// True when `path` has no extended attribute but security labels (which a new file gets the
/// same way).
fn no_xattrs(path: &Path) -> io::Result<bool> {
    Ok(xattr_names(path)?.is_empty())
}

/// Like [`no_xattrs`], after removing those overlayfs set on a layer's root (`uuid`, `impure`):
/// a container cannot set these itself, overlayfs refuses it.
fn no_xattrs_but_overlays(path: &Path) -> io::Result<bool> {
    let mut clean = true;
    for name in xattr_names(path)? {
        if name.starts_with(b"user.overlay.") || name.starts_with(b"trusted.overlay.") {
            rustix::fs::lremovexattr(path, name.as_slice())?;
        } else {
            clean = false;
        }
    }
    Ok(clean)
}

/// The extended attributes of `path` (not followed), security labels left out.
fn xattr_names(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(0) | Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Ok(n) => n,
        Err(e) => return Err(e.into()),
    };
    let mut buf = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut buf)?;
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty() && !name.starts_with(b"security."))
        .map(<[u8]>::to_vec)
        .collect())
}

/// Asks the file system to spread the directories made in `dir` over its block groups, as it
/// does those made at its root (ext4's "top of directory hierarchy" flag, `chattr +T`).
///
/// Containers' directories are made in `tmp/`, and a container's inodes (its mount point, the
/// files overlayfs makes at each mount, its state) are allocated near its directory. In one
/// group, the inodes freed there in the last minutes are stepped over one by one at every
/// allocation (ext4 without a journal); spread over many, each group sees few of them. Other
/// file systems ignore the flag or refuse it, which is fine.
pub(crate) fn spread_subdirectories(dir: &Path) {
    use rustix::fs::{IFlags, Mode, OFlags};
    let Ok(fd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    if let Ok(flags) = rustix::fs::ioctl_getflags(&fd) {
        if !flags.contains(IFlags::TOPDIR) {
            let _ = rustix::fs::ioctl_setflags(&fd, flags | IFlags::TOPDIR);
        }
    }
}

/// Writes `bytes` to `path`, replacing what a spare directory held there.
///
/// The file is overwritten and then cut to its new length rather than truncated first: freeing
/// its block and taking another costs a synchronous discard on file systems mounted with
/// `discard` (0.1 ms each here), and the old and new contents are nearly always of one block.
/// Nothing reads the file half-written: the directory is not published yet.
pub(crate) fn write_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    f.write_all_at(bytes, 0)?;
    f.set_len(bytes.len() as u64)
}
