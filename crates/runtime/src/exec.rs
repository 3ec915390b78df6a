//! `docker exec`: running another process inside a running container.
//!
//! A helper forked from the monitor joins the container's cgroups while it still sees the
//! host's, then its namespaces (user first, so it holds capabilities there for the rest), then
//! clones the process that will exec with `CLONE_PARENT`, so it lands in the container's pid
//! namespace and cgroups yet is the monitor's child and can be waited for and signalled like
//! the container's init. The helper reports its pid and exits.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxSeccomp, Process};
use rustix::fs::{Mode, OFlags};
use rustix::process::{DumpableBehavior, Pid, PidfdFlags};
use rustix::thread::LinkNameSpaceType;

use crate::error::{Failure, RuntimeError, Step};
use crate::process::message::{self, FromInit, Sender};
use crate::process::{
    check_cwd_inside_root, descriptors_to_keep, hide_from_proc, prepare_exec, Command, Credentials,
};
use crate::seccomp::Filter;
use crate::stdio::{self, ChildStdio};
use crate::sys::{self, Forked};
use crate::{monitor, Stdio};

/// The namespaces to join, in the order they must be joined.
const ORDER: [(&str, LinkNameSpaceType); 7] = [
    ("user", LinkNameSpaceType::User),
    ("mnt", LinkNameSpaceType::Mount),
    ("pid", LinkNameSpaceType::ProcessID),
    ("ipc", LinkNameSpaceType::InterProcessCommunication),
    ("uts", LinkNameSpaceType::HostNameAndNISDomainName),
    ("net", LinkNameSpaceType::Network),
    ("cgroup", LinkNameSpaceType::ControlGroup),
];

/// Opens the namespaces of `pid` that differ from ours (joining one's own user namespace is
/// an error, and the others would be no-ops).
fn open_namespaces(
    pid: i32,
) -> Result<Vec<(&'static str, LinkNameSpaceType, OwnedFd)>, RuntimeError> {
    let mut out = Vec::new();
    for (name, kind) in ORDER {
        let path = format!("/proc/{pid}/ns/{name}");
        let theirs = match rustix::fs::stat(path.as_str()) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) if name == "cgroup" => continue,
            Err(e) => {
                return Err(RuntimeError::Io {
                    what: "stat",
                    path: path.into(),
                    source: e.into(),
                })
            }
        };
        if let Ok(ours) = rustix::fs::stat(format!("/proc/self/ns/{name}").as_str()) {
            if ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev {
                continue;
            }
        }
        let fd = rustix::fs::open(
            path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::Io {
            what: "open",
            path: path.into(),
            source: e.into(),
        })?;
        out.push((name, kind, fd));
    }
    Ok(out)
}

/// How a process joining a container is confined, beyond what its [`Process`] says: what the
/// container's own processes got from outside the spec.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExecOptions<'a> {
    /// A seccomp filter, normally the container's own `linux.seccomp`: a joined process does
    /// not inherit the filter of the container's init.
    pub seccomp: Option<&'a LinuxSeccomp>,
    /// CPUs to restrict the process to (the container's affinity), narrowed to the caller's
    /// own affinity, never widened.
    pub cpu_affinity: Option<&'a [usize]>,
    /// The container's cgroup directories; the process is in each of them (through its
    /// `cgroup.procs`) before it runs any code of the container, so the container's limits,
    /// freezer and accounting cover it.
    pub cgroups: &'a [PathBuf],
    /// Forward every catchable signal this process receives to the joined process while
    /// waiting for it.
    pub forward_signals: bool,
    /// Descriptors of this process that the joined process gets at the same numbers (see
    /// [`crate::Bundle::preserve_fds`]).
    pub preserve_fds: &'a [i32],
}

/// Runs `process` inside the container whose process is `pid` and returns Docker's exit code
/// for it; signals are forwarded and stdio handled as for [`crate::Container::wait`].
pub fn exec(
    pid: i32,
    process: &Process,
    stdio: Stdio,
    forward_signals: bool,
) -> Result<i32, RuntimeError> {
    let opts = ExecOptions {
        forward_signals,
        ..ExecOptions::default()
    };
    exec_confined(pid, process, stdio, &opts)
}

/// [`exec`] confined as `opts` says.
pub fn exec_confined(
    pid: i32,
    process: &Process,
    stdio: Stdio,
    opts: &ExecOptions<'_>,
) -> Result<i32, RuntimeError> {
    // From its first instruction the process may make someone signal us (a launcher that
    // reads its "ready"): hold the signals from before it runs until wait forwards them, as
    // Container::start does. The process itself starts with none blocked (prepare_exec).
    let before = if opts.forward_signals {
        Some(
            crate::sys::signal::block(&monitor::forwarded())
                .map_err(RuntimeError::sys("block signals"))?,
        )
    } else {
        None
    };
    let joined = match spawn(pid, process, stdio, opts) {
        Ok(j) => j,
        Err(e) => {
            if let Some(mask) = before {
                let _ = crate::sys::signal::set_mask(&mask);
            }
            return Err(e);
        }
    };
    monitor::wait(
        joined.pid,
        &joined.pidfd,
        opts.forward_signals,
        joined.master.as_ref(),
        None,
    )
}

/// `docker exec -d`: starts `process` as [`exec_confined`] does and returns its host pid as
/// soon as it runs, without waiting for it. This process does not reap it: when this process
/// exits, the kernel hands it to the nearest subreaper or the host's init. `stdio` should not
/// be [`Stdio::Tty`], whose relay would end with this process.
pub fn exec_detached(
    pid: i32,
    process: &Process,
    stdio: Stdio,
    opts: &ExecOptions<'_>,
) -> Result<i32, RuntimeError> {
    Ok(spawn(pid, process, stdio, opts)?.pid)
}

/// A process that joined a container and has exec'd.
struct Joined {
    pid: i32,
    pidfd: OwnedFd,
    master: Option<OwnedFd>,
}

/// Starts the joined process; returns once it has exec'd, or with why it could not.
fn spawn(
    pid: i32,
    process: &Process,
    stdio: Stdio,
    opts: &ExecOptions<'_>,
) -> Result<Joined, RuntimeError> {
    let command = Command::from_process(process)?;
    let mut credentials = Credentials::from_process(process, opts.cpu_affinity)?;
    credentials.set_seccomp(opts.seccomp.map(Filter::compile).transpose()?);
    let cgroups = open_cgroups(opts.cgroups)?;
    let namespaces = open_namespaces(pid)?;
    let (child_stdio, tty_socket) = stdio::prepare(stdio)?;
    let (mut report_rx, report_tx) = message::channel().map_err(RuntimeError::sys("pipe"))?;
    let tenant = Tenant {
        cgroups,
        namespaces,
        stdio: child_stdio,
        credentials,
        command,
        process,
        report: report_tx,
        preserve_fds: descriptors_to_keep(opts.preserve_fds),
    };

    let helper = match sys::fork().map_err(RuntimeError::sys("fork"))? {
        Forked::Child => {
            drop(report_rx);
            tenant.run_helper()
        }
        Forked::Parent(helper) => helper,
    };
    let arg0 = tenant.command.arg0.clone();
    drop(tenant);
    let first = report_rx.recv_from_init();
    let _ = monitor::reap(helper);
    let joined = match first {
        Ok(Some(FromInit::Pid(p))) => p,
        Ok(Some(FromInit::Failed(f))) => return Err(f.into()),
        Ok(_) => return Err(RuntimeError::InitDied),
        Err(e) => {
            return Err(RuntimeError::Sys {
                call: "read from exec helper",
                source: e,
            })
        }
    };
    let pidfd = Pid::from_raw(joined)
        .ok_or(RuntimeError::InitDied)
        .and_then(|p| {
            rustix::process::pidfd_open(p, PidfdFlags::empty()).map_err(|e| RuntimeError::Sys {
                call: "pidfd_open",
                source: e.into(),
            })
        });
    let reply = report_rx.recv_from_init();
    let pidfd = match (pidfd, reply) {
        (Ok(fd), Ok(None)) => fd,
        (_, Ok(Some(FromInit::ExecFailed(errno)))) => {
            let _ = monitor::reap(joined);
            return Err(RuntimeError::from_exec_errno(&arg0, errno));
        }
        (_, Ok(Some(FromInit::Failed(f)))) => {
            let _ = monitor::reap(joined);
            return Err(f.into());
        }
        (Err(e), _) => {
            let _ = sys::kill(joined, libc::SIGKILL);
            let _ = monitor::reap(joined);
            return Err(e);
        }
        (Ok(_), reply) => {
            let _ = monitor::reap(joined);
            return Err(match reply {
                Err(e) => RuntimeError::Sys {
                    call: "read from exec process",
                    source: e,
                },
                Ok(_) => RuntimeError::InitDied,
            });
        }
    };
    let master = match stdio::receive_master(tty_socket) {
        Ok(m) => m,
        Err(e) => {
            let _ = sys::kill(joined, libc::SIGKILL);
            let _ = monitor::reap(joined);
            return Err(e);
        }
    };
    let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable);
    Ok(Joined {
        pid: joined,
        pidfd,
        master,
    })
}

/// Opens `cgroup.procs` of each directory, for the helper to write itself into.
fn open_cgroups(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, OwnedFd)>, RuntimeError> {
    dirs.iter()
        .map(|d| {
            let path = d.join("cgroup.procs");
            rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                .map(|fd| (path.clone(), fd))
                .map_err(|e| RuntimeError::Io {
                    what: "open",
                    path,
                    source: e.into(),
                })
        })
        .collect()
}

/// What the helper and the joined process need, prepared before fork.
struct Tenant<'a> {
    /// `cgroup.procs` files of the container's cgroups.
    cgroups: Vec<(PathBuf, OwnedFd)>,
    namespaces: Vec<(&'static str, LinkNameSpaceType, OwnedFd)>,
    stdio: ChildStdio,
    credentials: Credentials,
    command: Command,
    process: &'a Process,
    report: Sender,
    preserve_fds: Vec<i32>,
}

impl Tenant<'_> {
    fn run_helper(mut self) -> ! {
        // Before any setns: the files name cgroups as the host sees them, and "0" moves the
        // writer; the joined process, cloned from here, starts in them.
        for (path, fd) in &self.cgroups {
            if let Err(e) = rustix::io::write(fd, b"0") {
                let _ = self.report.send_from_init(&FromInit::Failed(Failure::new(
                    Step::Cgroup,
                    path.display(),
                    e.into(),
                )));
                sys::exit_now(1);
            }
        }
        self.cgroups.clear();
        for (name, kind, fd) in &self.namespaces {
            if let Err(e) = rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*kind)) {
                let _ = self.report.send_from_init(&FromInit::Failed(Failure::new(
                    Step::JoinNamespace,
                    name,
                    e.into(),
                )));
                sys::exit_now(1);
            }
        }
        self.namespaces.clear();
        match sys::clone_sibling() {
            Ok(Forked::Child) => self.run_joined(),
            Ok(Forked::Parent(pid)) => {
                let _ = self.report.send_from_init(&FromInit::Pid(pid));
                sys::exit_now(0)
            }
            Err(e) => {
                let _ = self.report.send_from_init(&FromInit::Failed(Failure::new(
                    Step::JoinNamespace,
                    "pid",
                    e,
                )));
                sys::exit_now(1)
            }
        }
    }

    fn run_joined(mut self) -> ! {
        hide_from_proc();
        let setup = (|| -> Result<(), Failure> {
            self.stdio.install()?;
            // Unlike a container's WORKDIR, an exec's working directory must exist (Docker).
            let cwd = self.process.cwd();
            let cwd = if cwd.as_os_str().is_empty() {
                std::path::Path::new("/")
            } else {
                cwd
            };
            rustix::process::chdir(cwd).map_err(Failure::at(Step::Cwd, cwd.display()))?;
            check_cwd_inside_root(cwd)?;
            self.credentials.apply()?;
            prepare_exec(&self.preserve_fds)
        })();
        if let Err(f) = setup {
            let _ = self.report.send_from_init(&FromInit::Failed(f));
            sys::exit_now(1);
        }
        let errno = self.command.exec();
        let _ = self.report.send_from_init(&FromInit::ExecFailed(errno));
        sys::exit_now(127)
    }
}
