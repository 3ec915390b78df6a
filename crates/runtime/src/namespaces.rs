//! Which namespaces a spec asks for: new ones become clone flags, ones given by path are
//! joined with setns by the container's init.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;

use crate::error::{Failure, RuntimeError, Step};

/// The namespaces of a container.
#[derive(Debug, Default)]
pub(crate) struct Namespaces {
    /// `CLONE_NEW*` flags of the namespaces to create.
    pub(crate) clone_flags: i32,
    /// Namespaces to join, opened by the monitor before clone.
    pub(crate) joins: Vec<(LinkNameSpaceType, PathBuf, OwnedFd)>,
}

fn flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

fn link_type(t: LinuxNamespaceType) -> Option<LinkNameSpaceType> {
    Some(match t {
        LinuxNamespaceType::Mount => LinkNameSpaceType::Mount,
        LinuxNamespaceType::Cgroup => LinkNameSpaceType::ControlGroup,
        LinuxNamespaceType::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        LinuxNamespaceType::Ipc => LinkNameSpaceType::InterProcessCommunication,
        LinuxNamespaceType::Network => LinkNameSpaceType::Network,
        LinuxNamespaceType::Time => LinkNameSpaceType::Time,
        LinuxNamespaceType::User | LinuxNamespaceType::Pid => return None,
    })
}

impl Namespaces {
    /// Reads `linux.namespaces`, opening the ones given by path.
    pub(crate) fn from_spec(spec: &Spec) -> Result<Namespaces, RuntimeError> {
        let mut ns = Namespaces::default();
        let list = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
        for n in list.into_iter().flatten() {
            match n.path() {
                None => ns.clone_flags |= flag(n.typ()),
                Some(path) => {
                    // Joining a user or pid namespace would need another process in between;
                    // Berth joins whole containers through `exec` instead.
                    let Some(kind) = link_type(n.typ()) else {
                        return Err(RuntimeError::InvalidSpec(format!(
                            "joining a {} namespace by path ({}) is not supported",
                            n.typ(),
                            path.display()
                        )));
                    };
                    let fd =
                        rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                            .map_err(|e| RuntimeError::Io {
                                what: "open namespace",
                                path: path.clone(),
                                source: e.into(),
                            })?;
                    ns.joins.push((kind, path.clone(), fd));
                }
            }
        }
        Ok(ns)
    }

    /// Whether a new namespace of this kind is created.
    pub(crate) fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.clone_flags & flag(t) != 0
    }

    /// Joins the namespaces given by path (in the container's init).
    pub(crate) fn join(&self) -> Result<(), Failure> {
        for (kind, path, fd) in &self.joins {
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*kind))
                .map_err(Failure::at(Step::JoinNamespace, path.display()))?;
        }
        Ok(())
    }
}
