//! Work done inside a running container's file system (`cp`): a forked child joins the
//! container's user and mount namespaces and runs the caller's code there. Its root is then the
//! container's root and it sees the container's mounts (volumes, binds, tmpfs), so every path,
//! absolute symlinks included, resolves inside the container and cannot reach the host.

use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags};
use rustix::process::DumpableBehavior;
use rustix::thread::LinkNameSpaceType;

use crate::error::RuntimeError;
use crate::sys::{self, Forked};

/// A child process working in a container's file system; [`Visit::wait`] collects it.
#[derive(Debug)]
#[must_use = "the child must be waited for"]
pub struct Visit {
    pid: i32,
}

impl Visit {
    /// Waits for the child and returns the code its work returned (101 if it panicked, 125
    /// if it could not join the container).
    pub fn wait(self) -> Result<i32, RuntimeError> {
        let pid = rustix::process::Pid::from_raw(self.pid).expect("a child's pid is positive");
        loop {
            match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(RuntimeError::sys("waitpid")(e.into())),
                Ok(None) => continue,
                Ok(Some((_, status))) => {
                    return Ok(status
                        .exit_status()
                        .or(status.terminating_signal().map(|s| 128 + s))
                        .unwrap_or(125))
                }
            }
        }
    }
}

/// Exit code of a visiting child that could not join the container's namespaces.
pub const VISIT_JOIN_FAILED: i32 = 125;

/// Forks a child that joins the user and mount namespaces of `pid` (a process of a running
/// container) and runs `work` there as the container's root when the user namespace maps
/// root (as the caller otherwise), then exits with the code `work` returns.
///
/// `work` runs only in the child; the parent's copy is dropped at once, so descriptors it
/// captured (one end of a pipe) are the child's alone. The child is not dumpable, so the
/// container's processes cannot reach into it through `/proc`.
pub fn visit_filesystem<F: FnOnce() -> i32>(pid: i32, work: F) -> Result<Visit, RuntimeError> {
    let user = namespace(pid, "user")?;
    let mnt = namespace(pid, "mnt")?
        .ok_or_else(|| RuntimeError::sys("join")(std::io::Error::other("shares our mounts")))?;
    match sys::fork().map_err(RuntimeError::sys("fork"))? {
        Forked::Parent(child) => {
            drop(work);
            Ok(Visit { pid: child })
        }
        Forked::Child => {
            let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable);
            let joined = user
                .as_ref()
                .map_or(Ok(()), |fd| {
                    rustix::thread::move_into_link_name_space(
                        fd.as_fd(),
                        Some(LinkNameSpaceType::User),
                    )
                })
                .and_then(|()| {
                    rustix::thread::move_into_link_name_space(
                        mnt.as_fd(),
                        Some(LinkNameSpaceType::Mount),
                    )
                })
                .and_then(|()| rustix::process::chdir("/"));
            if let Err(e) = joined {
                eprintln!("Error: cannot join the container's namespaces: {e}");
                sys::exit_now(VISIT_JOIN_FAILED);
            }
            drop((user, mnt));
            // Root of the container where it has one (an hpc container maps only the caller).
            let root = rustix::process::Gid::ROOT;
            if rustix::thread::set_thread_res_gid(root, root, root).is_ok() {
                let root = rustix::process::Uid::ROOT;
                let _ = rustix::thread::set_thread_res_uid(root, root, root);
            }
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(101);
            sys::exit_now(code)
        }
    }
}

/// `/proc/PID/ns/NAME` opened, or None when it is ours (joining one's own user namespace is
/// an error).
fn namespace(pid: i32, name: &str) -> Result<Option<std::os::fd::OwnedFd>, RuntimeError> {
    let path = format!("/proc/{pid}/ns/{name}");
    let io = |what: &'static str, e: rustix::io::Errno| RuntimeError::Io {
        what,
        path: path.clone().into(),
        source: e.into(),
    };
    let theirs = rustix::fs::stat(path.as_str()).map_err(|e| io("stat", e))?;
    let ours =
        rustix::fs::stat(format!("/proc/self/ns/{name}").as_str()).map_err(|e| io("stat", e))?;
    if ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev {
        return Ok(None);
    }
    rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(Some)
    .map_err(|e| io("open", e))
}
