//! The spec's mounts, in order, relative to the new root, plus the primitives (bind, fresh
//! mount, remount) the other rootfs steps share.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Mount;
use rustix::mount::{MountFlags, MoveMountFlags, OpenTreeFlags};

use super::options::{self, MountOptions};
use super::resolve::{self, Kind};
use super::{devices, RootfsPlan};
use crate::error::{Failure, Step};

/// Attaches a copy of the host tree at `source` (recursively for rbind) onto `target`.
pub(super) fn bind<Fd: AsFd>(source: &Path, target: Fd, recursive: bool) -> io::Result<()> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rustix::mount::open_tree(rustix::fs::CWD, source, flags)?;
    attach(&tree, target)
}

/// Attaches the detached tree `tree` onto `target`.
pub(super) fn attach<Fd: AsFd>(tree: &OwnedFd, target: Fd) -> io::Result<()> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    Ok(rustix::mount::move_mount(tree, "", target, "", flags)?)
}

/// Mounts a new instance of `fstype` on `target`.
pub(super) fn fresh<Fd: AsFd>(
    fstype: &str,
    source: &str,
    target: Fd,
    flags: MountFlags,
    data: &[String],
) -> io::Result<()> {
    let data =
        CString::new(data.join(",")).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::mount::mount(
        source,
        resolve::fd_path(target),
        fstype,
        flags,
        data.as_c_str(),
    )?)
}

/// Remounts the mount at `path` in the root with `flags` added to the flags it has.
pub(super) fn remount(root: &OwnedFd, path: &Path, flags: MountFlags) -> io::Result<()> {
    // Resolved again so the descriptor names the top of the mount stack just created.
    let fd = resolve::resolve(root, path)?;
    let current = options::current_flags(&fd)?;
    Ok(rustix::mount::mount_remount(
        resolve::fd_path(&fd),
        MountFlags::BIND | current | flags,
        "",
    )?)
}

fn errno_is(e: &io::Error, errnos: &[i32]) -> bool {
    e.raw_os_error().is_some_and(|n| errnos.contains(&n))
}

/// Mounts one entry of the spec's `mounts`.
pub(super) fn mount_one(root: &OwnedFd, m: &Mount, plan: &RootfsPlan<'_>) -> Result<(), Failure> {
    let dest = m.destination();
    let fstype = m.typ().as_deref().unwrap_or("none");
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| fstype.to_owned());
    let subject = format!("{fstype} on {}", dest.display());
    let fail = |e: io::Error| Failure::new(Step::Mount, &subject, e);

    if opts.bind || fstype == "bind" {
        return bind_mount(root, m, &opts);
    }
    let target = resolve::ensure(root, dest, Kind::Dir)
        .map_err(Failure::at(Step::MountTarget, dest.display()))?;
    match fstype {
        // A new procfs shows the pids of the pid namespace this process is in; without a new
        // one the kernel refuses it in a user namespace, so the host's /proc is bound instead.
        "proc" if !plan.new_pid_ns => bind_host(root, "/proc", dest, false).map_err(fail),
        // sysfs can only be mounted fresh by the owner of the network namespace.
        "sysfs" => {
            if plan.new_net_ns || !plan.in_user_ns {
                match fresh("sysfs", "sysfs", &target, opts.flags, &opts.data) {
                    Err(e) if errno_is(&e, &[libc::EPERM]) => {
                        bind_host(root, "/sys", dest, true).map_err(fail)
                    }
                    other => other.map_err(fail),
                }
            } else {
                bind_host(root, "/sys", dest, true).map_err(fail)
            }
        }
        // cgroup trees are managed outside the runtime; the container sees the host's
        // hierarchy read-only, and nothing at all if even that is refused.
        "cgroup" | "cgroup2" => {
            let _ = bind_host(root, "/sys/fs/cgroup", dest, true);
            Ok(())
        }
        "mqueue" => match fresh("mqueue", &source, &target, opts.flags, &opts.data) {
            // Not owning the IPC namespace: the container just has no POSIX message queues.
            Err(e) if errno_is(&e, &[libc::EPERM, libc::EACCES]) => Ok(()),
            other => other.map_err(fail),
        },
        "devpts" => {
            let data = devpts_data(&opts.data, plan.tty_gid_mapped);
            fresh("devpts", &source, &target, opts.flags, &data).map_err(fail)
        }
        _ => {
            fresh(fstype, &source, &target, opts.flags, &opts.data).map_err(fail)?;
            if fstype == "tmpfs" && dest == Path::new("/dev") {
                devices::populate(root)?;
            }
            Ok(())
        }
    }?;
    if let Some(p) = opts.propagation {
        let fd = resolve::resolve(root, dest).map_err(Failure::at(Step::Mount, &subject))?;
        rustix::mount::mount_change(resolve::fd_path(&fd), p)
            .map_err(Failure::at(Step::Mount, &subject))?;
    }
    Ok(())
}

/// devpts options: a private instance whose `ptmx` anyone in the container may open, and
/// `gid=5` only when that group exists in the user namespace (else the mount fails).
fn devpts_data(data: &[String], tty_gid_mapped: bool) -> Vec<String> {
    let mut out: Vec<String> = data
        .iter()
        .filter(|o| tty_gid_mapped || !o.starts_with("gid="))
        .cloned()
        .collect();
    for required in ["newinstance", "ptmxmode=0666"] {
        let key = required.split('=').next().unwrap_or(required);
        if !out.iter().any(|o| o.split('=').next() == Some(key)) {
            out.push(required.to_owned());
        }
    }
    out
}

fn bind_mount(root: &OwnedFd, m: &Mount, opts: &MountOptions) -> Result<(), Failure> {
    let dest = m.destination();
    let Some(source) = m.source().as_ref() else {
        return Err(Failure::new(
            Step::Mount,
            format!("bind on {}", dest.display()),
            io::Error::from_raw_os_error(libc::EINVAL),
        ));
    };
    let subject = format!("{} on {}", source.display(), dest.display());
    let kind = match std::fs::metadata(source) {
        Ok(md) if md.is_dir() => Kind::Dir,
        Ok(_) => Kind::File,
        Err(e) => return Err(Failure::new(Step::Mount, format!("{}: source", subject), e)),
    };
    let target = resolve::ensure(root, dest, kind)
        .map_err(Failure::at(Step::MountTarget, dest.display()))?;
    bind(source, &target, opts.recursive).map_err(Failure::at(Step::Mount, &subject))?;
    drop(target);
    if opts.needs_remount() {
        remount(root, dest, opts.flags).map_err(Failure::at(Step::Remount, &subject))?;
    }
    if let Some(p) = opts.propagation {
        let fd = resolve::resolve(root, dest).map_err(Failure::at(Step::Mount, &subject))?;
        rustix::mount::mount_change(resolve::fd_path(&fd), p)
            .map_err(Failure::at(Step::Mount, &subject))?;
    }
    Ok(())
}

/// Binds a host tree at `dest` (read-only if asked), for filesystems a user namespace cannot mount fresh.
fn bind_host(root: &OwnedFd, host: &str, dest: &Path, readonly: bool) -> io::Result<()> {
    let target = resolve::ensure(root, dest, Kind::Dir)?;
    bind(Path::new(host), &target, true)?;
    drop(target);
    if readonly {
        remount(root, dest, MountFlags::RDONLY)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devpts_options() {
        let given: Vec<String> = ["nosuid", "gid=5", "mode=0620", "ptmxmode=0666"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            devpts_data(&given, false),
            ["nosuid", "mode=0620", "ptmxmode=0666", "newinstance"]
        );
        assert_eq!(
            devpts_data(&given, true),
            [
                "nosuid",
                "gid=5",
                "mode=0620",
                "ptmxmode=0666",
                "newinstance"
            ]
        );
    }
}
