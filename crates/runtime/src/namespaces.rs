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
    /// A user namespace to join (given by path) before the others are created in it.
    pub(crate) user: Option<(PathBuf, OwnedFd)>,
    /// The monitor joins `user` itself before the clone, so that a new pid namespace is made
    /// in it (one the init made by `unshare` would hold only its children).
    monitor_joins_user: bool,
    /// A new network namespace made ahead of time ([`new_network_namespace`]), which the init
    /// joins instead of creating one: the spec's new network namespace, bought earlier.
    premade_net: Option<OwnedFd>,
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

fn open_namespace(path: &std::path::Path) -> Result<OwnedFd, RuntimeError> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
        RuntimeError::Io {
            what: "open namespace",
            path: path.to_path_buf(),
            source: e.into(),
        }
    })
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
    /// Reads `linux.namespaces`, opening the ones given by path. A new network namespace is
    /// `premade_net` where one is given (see [`crate::Bundle::network_namespace`]).
    pub(crate) fn from_spec(
        spec: &Spec,
        premade_net: Option<&OwnedFd>,
    ) -> Result<Namespaces, RuntimeError> {
        let mut ns = Namespaces::default();
        let list = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
        for n in list.into_iter().flatten() {
            match n.path() {
                None => ns.clone_flags |= flag(n.typ()),
                Some(path) if n.typ() == LinuxNamespaceType::User => {
                    let fd = open_namespace(path)?;
                    ns.user = Some((path.clone(), fd));
                }
                Some(path) => {
                    // Joining a pid namespace would need another process in between; Berth
                    // joins whole containers through `exec` instead.
                    let Some(kind) = link_type(n.typ()) else {
                        return Err(RuntimeError::InvalidSpec(format!(
                            "joining a {} namespace by path ({}) is not supported",
                            n.typ(),
                            path.display()
                        )));
                    };
                    let fd = open_namespace(path)?;
                    ns.joins.push((kind, path.clone(), fd));
                }
            }
        }
        ns.monitor_joins_user = ns.user.is_some() && ns.clone_flags & libc::CLONE_NEWPID != 0;
        if let Some(fd) = premade_net.filter(|_| ns.creates(LinuxNamespaceType::Network)) {
            let fd = fd.try_clone().map_err(RuntimeError::sys("dup"))?;
            ns.premade_net = Some(fd);
        }
        Ok(ns)
    }

    /// Before the clone, in the monitor: joins the user namespace given by path where the
    /// container gets a new pid namespace. The monitor stays in it, with every capability
    /// there and none more on the host; it must be single-threaded.
    pub(crate) fn join_user_in_monitor(&self) -> Result<(), RuntimeError> {
        match &self.user {
            Some((path, fd)) if self.monitor_joins_user => {
                rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::User))
                    .map_err(|e| RuntimeError::Io {
                        what: "join user namespace",
                        path: path.clone(),
                        source: e.into(),
                    })
            }
            _ => Ok(()),
        }
    }

    /// The flags for clone: with a user namespace the init joins, none (it creates its
    /// namespaces once inside that one, see [`Namespaces::enter_user`]).
    pub(crate) fn flags_for_clone(&self) -> i32 {
        if self.user.is_some() && !self.monitor_joins_user {
            0
        } else {
            self.flags_to_make()
        }
    }

    /// The `CLONE_NEW*` flags of the namespaces made at the start: all new ones but a network
    /// namespace made ahead of time.
    fn flags_to_make(&self) -> i32 {
        match self.premade_net {
            Some(_) => self.clone_flags & !libc::CLONE_NEWNET,
            None => self.clone_flags,
        }
    }

    /// Whether the init must bring up the loopback interface of a new network namespace: not
    /// of one made ahead of time, where that was done.
    pub(crate) fn loopback_down(&self) -> bool {
        self.creates(LinuxNamespaceType::Network) && self.premade_net.is_none()
    }

    /// In the init, first thing: joins the user namespace given by path, where this process then
    /// has every capability, and creates the other new namespaces in it.
    pub(crate) fn enter_user(&self) -> Result<(), Failure> {
        let Some((path, fd)) = self.user.as_ref().filter(|_| !self.monitor_joins_user) else {
            return Ok(());
        };
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::User))
            .map_err(Failure::at(Step::JoinNamespace, path.display()))?;
        crate::sys::process_ns::unshare(self.flags_to_make())
            .map_err(|e| Failure::new(Step::JoinNamespace, "unshare", e))
    }

    /// Whether a new namespace of this kind is created.
    pub(crate) fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.clone_flags & flag(t) != 0
    }

    /// Joins the namespaces given by path and a network namespace made ahead of time (in the
    /// container's init).
    pub(crate) fn join(&self) -> Result<(), Failure> {
        if let Some(fd) = &self.premade_net {
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network))
                .map_err(Failure::at(
                    Step::JoinNamespace,
                    "network namespace made ahead",
                ))?;
        }
        for (kind, path, fd) in &self.joins {
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*kind))
                .map_err(Failure::at(Step::JoinNamespace, path.display()))?;
        }
        Ok(())
    }
}

/// Makes a network namespace, owned by the calling thread's user namespace, with its loopback
/// interface up, and returns a descriptor of it for [`crate::Bundle::network_namespace`].
///
/// Setting up a network namespace is a tenth of a container's start, all of it in the kernel;
/// a process that holds a user namespace for several containers can make them ahead of time,
/// off every start's path. The calling thread is left in the new namespace: call it from a
/// thread that does nothing else (each call makes another).
pub fn new_network_namespace() -> Result<OwnedFd, RuntimeError> {
    crate::sys::process_ns::unshare(libc::CLONE_NEWNET)
        .map_err(RuntimeError::sys("unshare(CLONE_NEWNET)"))?;
    crate::sys::net::loopback_up().map_err(RuntimeError::sys("bringing up lo"))?;
    let path = std::path::Path::new("/proc/thread-self/ns/net");
    open_namespace(path)
}
