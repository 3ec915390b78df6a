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

    /// The `CLONE_NEW*` flags of the namespaces made at the start: all new ones but the network
    /// namespace, which the init gets through [`Namespaces::start_network`].
    fn flags_to_make(&self) -> i32 {
        self.clone_flags & !libc::CLONE_NEWNET
    }

    /// In the init, once in its user namespace: starts getting the new network namespace the
    /// spec asks for. One made ahead of time is taken as it is; otherwise a thread of the init
    /// makes it (loopback up), in parallel with the init's mounts, rather than the clone:
    /// setting one up is a tenth of a start, all of it in the kernel.
    pub(crate) fn start_network(&mut self) -> PendingNetwork {
        if !self.creates(LinuxNamespaceType::Network) {
            return PendingNetwork(Pending::Entered);
        }
        if let Some(fd) = self.premade_net.take() {
            return PendingNetwork(Pending::Made(Ok(fd)));
        }
        match std::thread::Builder::new().spawn(new_network_namespace_here) {
            Ok(thread) => PendingNetwork(Pending::Making {
                thread,
                own_pids: self.creates(LinuxNamespaceType::Pid),
            }),
            // No thread: made here, now, as the clone would have.
            Err(_) => PendingNetwork(Pending::Made(new_network_namespace_here())),
        }
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

    /// Joins the namespaces given by path (in the container's init).
    pub(crate) fn join(&self) -> Result<(), Failure> {
        for (kind, path, fd) in &self.joins {
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*kind))
                .map_err(Failure::at(Step::JoinNamespace, path.display()))?;
        }
        Ok(())
    }
}

/// The init's new network namespace, from [`Namespaces::start_network`] until it is entered.
pub(crate) struct PendingNetwork(Pending);

enum Pending {
    Making {
        thread: std::thread::JoinHandle<std::io::Result<OwnedFd>>,
        /// The init is pid 1 of a pid namespace of its own, where the thread took pid 2.
        own_pids: bool,
    },
    Made(std::io::Result<OwnedFd>),
    Entered,
}

impl PendingNetwork {
    /// Moves the init into the namespace, waiting for the thread making it; once entered, does
    /// nothing. Before anything that needs it: `net.*` sysctls, a fresh sysfs (which shows the
    /// network namespace of whoever mounts it), the root's hooks. The thread has exited when
    /// this returns, so the init's later changes of credentials reach all of it.
    pub(crate) fn enter(&mut self) -> Result<(), Failure> {
        let made = match std::mem::replace(&mut self.0, Pending::Entered) {
            Pending::Entered => return Ok(()),
            Pending::Made(made) => made,
            Pending::Making { thread, own_pids } => {
                let made = thread.join().unwrap_or_else(|_| {
                    Err(std::io::Error::other("the thread making it panicked"))
                });
                // The container's first child gets pid 2, as without the thread (and as in
                // Docker); where the kernel has no `ns_last_pid`, pids start one higher.
                if own_pids {
                    let _ = restart_pids();
                }
                made
            }
        };
        let fd = made.map_err(|e| Failure::new(Step::Loopback, "new network namespace", e))?;
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(Failure::at(Step::JoinNamespace, "new network namespace"))
    }
}

/// Makes the calling process's pid namespace give out pid 2 next, through the host's `/proc`
/// (the container's own is not mounted yet, and its `/proc/sys` will be read-only).
fn restart_pids() -> std::io::Result<()> {
    let fd = rustix::fs::open(
        "/proc/sys/kernel/ns_last_pid",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::io::write(&fd, b"1")?;
    Ok(())
}

/// Moves the calling thread into a new network namespace, owned by its user namespace, brings
/// its loopback interface up (Docker does too: without it 127.0.0.1 would not even reach the
/// container itself), and opens it.
fn new_network_namespace_here() -> std::io::Result<OwnedFd> {
    crate::sys::process_ns::unshare(libc::CLONE_NEWNET)?;
    crate::sys::net::loopback_up()?;
    Ok(rustix::fs::open(
        "/proc/thread-self/ns/net",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Makes a network namespace, owned by the calling thread's user namespace, with its loopback
/// interface up, and returns a descriptor of it for [`crate::Bundle::network_namespace`].
///
/// Setting up a network namespace is a tenth of a container's start, all of it in the kernel;
/// a process that holds a user namespace for several containers can make them ahead of time,
/// off every start's path. The calling thread is left in the new namespace: call it from a
/// thread that does nothing else (each call makes another).
pub fn new_network_namespace() -> Result<OwnedFd, RuntimeError> {
    new_network_namespace_here().map_err(RuntimeError::sys("making a network namespace"))
}
