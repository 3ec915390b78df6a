//! Creating a container: the monitor (the calling process) clones the container's init with
//! all namespaces at once but the network one (which the init makes in a thread of its own
//! while it mounts the root, or joins when one was made ahead), writes its id maps, and waits
//! for it to build the root; `start` lets it exec; `wait` forwards signals and collects the
//! exit code.
//!
//! ```text
//! monitor                                   init (pid 1 of the new pid namespace)
//! clone(CLONE_NEWUSER|CLONE_NEWNS|…) ──────▶ blocks on the control pipe
//! write uid_map/gid_map, MapsWritten ──────▶ stdio, mounts, pivot_root, hostname, cwd,
//!                                            rlimits, user, caps, fds close-on-exec
//! create() returns              ◀────────── Ready
//! start(): Start ──────────────────────────▶ execve(args[0])
//! start() returns on end of file ◀───────── (report pipe closed by exec) or ExecFailed(errno)
//! ```
//!
//! [`Container::create_started`] (a `run`) sends `Start` right after the maps and the filter,
//! before `Ready` comes: the init finds it waiting and execs at once.
//!
//! A spec with hooks adds one stop before `pivot_root`: the init sends `Mounted`, the monitor
//! runs the `prestart` and `createRuntime` hooks and answers `HooksDone(pid)`, and the init runs
//! the `createContainer` ones (see `hooks`).

mod command;
mod credentials;
mod init;
pub(crate) mod message;
mod reaper;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use oci_spec::runtime::LinuxNamespaceType;
use rustix::process::{DumpableBehavior, Pid, PidfdFlags};

use crate::error::RuntimeError;
use crate::idmap::IdMaps;
use crate::namespaces::Namespaces;
use crate::rootfs::RootfsPlan;
use crate::seccomp::Filter;
use crate::sys::{self, Forked};
use crate::{hooks, monitor, stdio, Bundle, Cleaner, Stdio};

pub(crate) use command::Command;
pub(crate) use credentials::Credentials;
pub(crate) use init::{check_cwd_inside_root, descriptors_to_keep, hide_from_proc, prepare_exec};
use message::{FromInit, Receiver, Sender, ToInit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    Exited,
}

/// A container whose process exists. Dropping a container that was never started kills it.
pub struct Container {
    pid: i32,
    pidfd: OwnedFd,
    control: Option<Sender>,
    report: Receiver,
    master: Option<OwnedFd>,
    /// The monitor's parent when the container was created.
    parent: Option<Pid>,
    /// A pidfd of the monitor's parent, when the container must not outlive it.
    lifeline: Option<OwnedFd>,
    /// The signal mask from before [`Container::start`] blocked the forwarded signals.
    mask_before_start: Option<sys::signal::SigSet>,
    arg0: String,
    state: State,
    /// The spec's hooks and what they are told, when it has any.
    hooks: Option<OwnedHooks>,
    /// The container's own mount namespace, held so that its mounts outlive the process until
    /// [`Container::wait`] lets go, or whoever [`Container::take_mount_namespace`] does.
    mount_ns: Option<OwnedFd>,
}

/// What [`Container::create_started`] runs with the init's pid before letting it exec.
pub type BeforeExec<'a> = dyn FnMut(i32) -> Result<(), RuntimeError> + 'a;

/// What the monitor keeps to run hooks after `create` returns.
struct OwnedHooks {
    spec: oci_spec::runtime::Spec,
    id: String,
    bundle: std::path::PathBuf,
}

impl OwnedHooks {
    fn state(&self, pid: i32) -> hooks::State<'_> {
        hooks::State {
            id: self.id.clone(),
            pid,
            bundle: &self.bundle,
            spec: &self.spec,
        }
    }
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("pid", &self.pid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Where a container's seccomp filter comes from.
#[derive(Clone, Copy)]
enum SeccompSource<'a> {
    /// The spec's `linux.seccomp`.
    Spec(&'a oci_spec::runtime::LinuxSeccomp),
    /// Docker's default profile ([`Bundle::default_seccomp`]).
    Default(&'a crate::DefaultSeccomp),
}

impl<'a> SeccompSource<'a> {
    fn of(bundle: &'a Bundle) -> Option<SeccompSource<'a>> {
        let own = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref());
        match (own, &bundle.default_seccomp) {
            (Some(s), _) => Some(SeccompSource::Spec(s)),
            (None, Some(d)) => Some(SeccompSource::Default(d)),
            (None, None) => None,
        }
    }

    fn compile(self) -> Result<Filter, RuntimeError> {
        match self {
            SeccompSource::Spec(s) => Filter::compile(s),
            SeccompSource::Default(d) => {
                crate::seccomp::default_filter(&d.caps, d.cache.as_deref())
            }
        }
    }
}

impl Container {
    /// Clones the container's init with the namespaces the spec asks for, writes its id maps,
    /// sets up the root filesystem and mounts, `pivot_root`s, and leaves the process blocked
    /// just before exec. Failures inside the init come back as [`RuntimeError::Setup`] naming
    /// the step and its mount target or path.
    ///
    /// The calling process must be single-threaded: the init is a copy of the calling thread
    /// only, made without the C library's fork handlers. Where the spec joins a user namespace
    /// by path and makes a new pid namespace, the calling process joins that user namespace
    /// first, and stays in it: a pid namespace the init made after joining would hold only its
    /// children.
    pub fn create(bundle: &Bundle, stdio: Stdio) -> Result<Container, RuntimeError> {
        Self::create_inner(bundle, stdio, None)
    }

    /// [`Container::create`] and [`Container::start`] at once: the process runs when this
    /// returns. `before_exec` gets the init's host pid as soon as it exists, and the process
    /// cannot exec before it has returned: the place to move it into a cgroup. An error from
    /// it ends the container and is returned.
    ///
    /// With `cleaner`, a [`Cleaner`] holding the container's mount namespace is started while
    /// the init builds the root and put there, where the caller finds it whether or not the
    /// start succeeds: a clean-up handed to it runs after the namespace is gone.
    ///
    /// Without hooks or a terminal, the monitor sends the init its go-ahead right after the id
    /// maps and the seccomp filter, so the init finds it waiting when it is ready, rather than
    /// stop there for a round trip through the monitor (about 0.1 ms, a fortieth of a start).
    pub fn create_started(
        bundle: &Bundle,
        stdio: Stdio,
        before_exec: &mut BeforeExec<'_>,
        cleaner: Option<&mut Option<Cleaner>>,
    ) -> Result<Container, RuntimeError> {
        let mut c = Self::create_inner(bundle, stdio, Some((&mut *before_exec, cleaner)))?;
        if c.state == State::Created {
            // Hooks or a terminal: created first, started after, as two calls would.
            // An error drops the container, which ends its init.
            before_exec(c.pid)?;
            c.start()?;
        }
        Ok(c)
    }

    fn create_inner(
        bundle: &Bundle,
        stdio: Stdio,
        early: Option<(&mut BeforeExec<'_>, Option<&mut Option<Cleaner>>)>,
    ) -> Result<Container, RuntimeError> {
        let spec = &bundle.spec;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| RuntimeError::InvalidSpec("no process".into()))?;
        let namespaces = Namespaces::from_spec(spec, bundle.network_namespace.as_ref())?;
        let user_ns = namespaces.creates(LinuxNamespaceType::User);
        // The spec's maps describe the user namespace whether it is made here (and its maps
        // written by this process) or joined (its maps already written by whoever made it).
        let declared = (user_ns || namespaces.user.is_some()).then(|| IdMaps::from_spec(spec));
        let maps = if user_ns { declared.clone() } else { None };
        let command = Command::from_process(process)?;
        let mut credentials = Credentials::from_process(process, bundle.cpu_affinity.as_deref())?;
        let rootfs = if namespaces.creates(LinuxNamespaceType::Mount) {
            let mount_point = bundle.state_dir.join("rootfs");
            std::fs::create_dir_all(&mount_point).map_err(|source| RuntimeError::Io {
                what: "create",
                path: mount_point.clone(),
                source,
            })?;
            Some(RootfsPlan {
                rootfs: &bundle.rootfs,
                spec,
                mount_point,
                new_pid_ns: namespaces.creates(LinuxNamespaceType::Pid),
                new_net_ns: namespaces.creates(LinuxNamespaceType::Network),
                in_user_ns: user_ns || namespaces.user.is_some(),
                tty_gid_mapped: declared.as_ref().is_none_or(|m| m.maps_gid(5)),
            })
        } else {
            None
        };
        let hostname = spec
            .hostname()
            .as_deref()
            .filter(|_| namespaces.creates(LinuxNamespaceType::Uts));
        let domainname = spec
            .domainname()
            .as_deref()
            .filter(|_| namespaces.creates(LinuxNamespaceType::Uts));
        let sysctls = sysctl_paths(spec)?;
        let has_hooks = spec
            .hooks()
            .as_ref()
            .is_some_and(|h| h != &Default::default());
        // Built and compiled once the init runs, while it mounts, and sent to it; with hooks
        // (rare) here and now, so the messages around the hooks keep their simple order.
        let seccomp = SeccompSource::of(bundle);
        let late_seccomp = seccomp.filter(|_| !has_hooks);
        if has_hooks {
            credentials.set_seccomp(seccomp.map(SeccompSource::compile).transpose()?);
        }
        let owned_hooks = has_hooks.then(|| OwnedHooks {
            spec: spec.clone(),
            id: bundle
                .state_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            // Its own directory: the caller may keep a config.json of its own in the state dir.
            bundle: bundle.state_dir.join("bundle"),
        });
        if let Some(h) = &owned_hooks {
            let root = rootfs
                .as_ref()
                .map_or_else(|| std::path::PathBuf::from("/"), |p| p.mount_point.clone());
            hooks::write_config(&h.bundle, spec, &root).map_err(|source| RuntimeError::Io {
                what: "write",
                path: h.bundle.join("config.json"),
                source,
            })?;
        }
        let preserve_fds = init::descriptors_to_keep(&bundle.preserve_fds);
        let (child_stdio, tty_socket) = stdio::prepare(stdio)?;
        let (control_rx, control_tx) = message::channel().map_err(RuntimeError::sys("pipe"))?;
        let (report_rx, report_tx) = message::channel().map_err(RuntimeError::sys("pipe"))?;
        namespaces.join_user_in_monitor()?;
        let clone_flags = namespaces.flags_for_clone();
        // Made by the clone itself, not later by an init that joins a user namespace first.
        let new_mount_ns = clone_flags & libc::CLONE_NEWNS != 0;
        let ctx = init::InitContext {
            namespaces,
            wait_for_maps: user_ns,
            root_switch: declared
                .as_ref()
                .map_or((false, false), IdMaps::needs_root_switch),
            rootfs,
            hostname,
            domainname,
            sysctls: &sysctls,
            cwd: process.cwd(),
            stdio: child_stdio,
            credentials,
            filter_follows: late_seccomp.is_some(),
            command,
            init: bundle.init,
            preserve_fds: &preserve_fds,
            control: control_rx,
            report: report_tx,
            hooks: owned_hooks.as_ref().map(|h| init::HookPlan {
                spec: &h.spec,
                id: h.id.clone(),
                bundle: &h.bundle,
            }),
        };
        // The init inherits this flag, and the monitor must be able to open its
        // /proc/PID/uid_map, which belongs to root while the process is non-dumpable. The
        // monitor is made non-dumpable again right after (see finish_create); it stays so.
        let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::Dumpable);
        let pid =
            match sys::clone_with_namespaces(clone_flags).map_err(RuntimeError::sys("clone"))? {
                Forked::Child => {
                    drop(control_tx);
                    drop(report_rx);
                    init::run(ctx)
                }
                Forked::Parent(pid) => pid,
            };
        let arg0 = ctx.command.arg0.clone();
        // The monitor's copies of the init's ends must go, so end of file means what it says.
        drop(ctx);
        let pidfd = Pid::from_raw(pid)
            .ok_or(RuntimeError::InitDied)
            .and_then(|p| {
                rustix::process::pidfd_open(p, PidfdFlags::empty()).map_err(|e| RuntimeError::Sys {
                    call: "pidfd_open",
                    source: e.into(),
                })
            });
        let pidfd = match pidfd {
            Ok(fd) => fd,
            Err(e) => {
                abort(pid);
                return Err(e);
            }
        };
        let mut container = Container {
            pid,
            pidfd,
            control: Some(control_tx),
            report: report_rx,
            master: None,
            parent: rustix::process::getppid(),
            lifeline: None,
            mask_before_start: None,
            arg0,
            state: State::Created,
            hooks: owned_hooks,
            mount_ns: None,
        };
        // The init waits for its maps before anything else: they go first.
        container.send_maps(maps.as_ref())?;
        if new_mount_ns {
            container.mount_ns = open_mount_namespace(pid);
        }
        // The go-ahead can be sent early only where nothing happens between the init's
        // report and its exec: no hooks to run, no terminal's size to set.
        let early = early.filter(|_| container.hooks.is_none() && tty_socket.is_none());
        if let Some((before_exec, cleaner)) = early {
            // An error drops the container, which ends its init (once: a second kill after
            // the reap could reach a process that got the pid since).
            before_exec(pid)?;
            container.mask_before_start = sys::signal::block(&monitor::forwarded()).ok();
            container.send_setup(late_seccomp, true)?;
            // Started now, while this process would only wait for the init: see Cleaner.
            if let Some(slot) = cleaner {
                match Cleaner::start(container.mount_ns.take()) {
                    Ok(c) => *slot = Some(c),
                    Err((_, ns)) => container.mount_ns = ns,
                }
            }
            container.await_ready()?;
            container.state = State::Running;
            container.await_exec()?;
            return Ok(container);
        }
        container.send_setup(late_seccomp, false)?;
        container.await_ready()?;
        container.master = stdio::receive_master(tty_socket)?;
        if let Some(master) = &container.master {
            // Before exec, so the process sees the right size from its first instruction.
            crate::tty::copy_window_size(master);
        }
        Ok(container)
    }

    /// Writes the init's id maps, which it waits for first.
    fn send_maps(&mut self, maps: Option<&IdMaps>) -> Result<(), RuntimeError> {
        // From here on the container could look at the monitor through /proc (shared pid
        // namespace); a non-dumpable monitor's /proc entries are root's (CVE-2019-5736).
        let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable);
        if let Some(maps) = maps {
            crate::idmap::write(self.pid, maps)?;
            self.send(ToInit::MapsWritten)?;
        }
        Ok(())
    }

    /// Sends the filter and, with `start`, the go-ahead.
    fn send_setup(
        &mut self,
        seccomp: Option<SeccompSource>,
        start: bool,
    ) -> Result<(), RuntimeError> {
        if let Some(seccomp) = seccomp {
            self.send_filter(&seccomp.compile()?)?;
        }
        if start {
            // An init that gave up cannot take it: what it reported says why, below.
            let _ = self.send(ToInit::Start);
            self.control = None;
        }
        Ok(())
    }

    /// Waits for the init to be ready to exec, running the runtime's hooks when it asks.
    fn await_ready(&mut self) -> Result<(), RuntimeError> {
        loop {
            match self.report.recv_from_init() {
                Ok(Some(FromInit::Ready)) => return Ok(()),
                Ok(Some(FromInit::Mounted)) => self.run_runtime_hooks()?,
                Ok(Some(FromInit::Failed(f))) => return Err(f.into()),
                Ok(_) => return Err(RuntimeError::InitDied),
                Err(e) => {
                    return Err(RuntimeError::Sys {
                        call: "read from container init",
                        source: e,
                    })
                }
            }
        }
    }

    /// `prestart` and `createRuntime`, here in the runtime's namespaces, while the init waits
    /// before `pivot_root`.
    fn run_runtime_hooks(&mut self) -> Result<(), RuntimeError> {
        if let Some(h) = &self.hooks {
            let state = h.state(self.pid);
            for point in [hooks::Point::Prestart, hooks::Point::CreateRuntime] {
                hooks::run(point, &state).map_err(RuntimeError::Hook)?;
            }
        }
        self.send(ToInit::HooksDone(self.pid))
    }

    fn send_filter(&mut self, filter: &Filter) -> Result<(), RuntimeError> {
        let (bytes, _) = filter.to_bytes();
        if bytes.len() > message::MAX_FILTER_BYTES {
            return Err(RuntimeError::InvalidSpec(format!(
                "linux.seccomp: the filter has {} instructions, more than the kernel's {}",
                bytes.len() / 8,
                message::MAX_FILTER_BYTES / 8
            )));
        }
        let control = self.control.as_mut().ok_or(RuntimeError::State("start"))?;
        match control.send_filter(filter) {
            Ok(()) => Ok(()),
            // The init gave up before reading it: what it reported says why.
            Err(source) => match self.report.recv_from_init() {
                Ok(Some(FromInit::Failed(f))) => Err(f.into()),
                _ => Err(RuntimeError::Sys {
                    call: "write to container init",
                    source,
                }),
            },
        }
    }

    fn send(&mut self, msg: ToInit) -> Result<(), RuntimeError> {
        let control = self.control.as_mut().ok_or(RuntimeError::State("start"))?;
        control.send_to_init(msg).map_err(|e| RuntimeError::Sys {
            call: "write to container init",
            source: e,
        })
    }

    /// The host pid of the container's process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the process exec. Returns once exec has succeeded, or with
    /// [`RuntimeError::NotFound`] (exit code 127) or [`RuntimeError::NotExecutable`] (126)
    /// naming `args[0]`.
    pub fn start(&mut self) -> Result<(), RuntimeError> {
        if self.state != State::Created {
            return Err(RuntimeError::State("start"));
        }
        // From its first instruction the process may signal us (a shell's `kill $PPID`) or
        // make someone else do so ("ready" on stdout): hold those signals until wait reads them,
        // rather than let them end the monitor in between.
        self.mask_before_start = sys::signal::block(&monitor::forwarded()).ok();
        self.send(ToInit::Start)?;
        self.control = None;
        self.state = State::Running;
        self.await_exec()
    }

    /// Waits for the started init to exec (end of file on the report pipe) or to report why
    /// it could not.
    fn await_exec(&mut self) -> Result<(), RuntimeError> {
        match self.report.recv_from_init() {
            Ok(None) => Ok(()),
            Ok(Some(FromInit::ExecFailed(errno))) => {
                let _ = monitor::reap(self.pid);
                self.state = State::Exited;
                Err(RuntimeError::from_exec_errno(&self.arg0, errno))
            }
            Ok(Some(FromInit::Failed(f))) => {
                let _ = monitor::reap(self.pid);
                self.state = State::Exited;
                Err(f.into())
            }
            Ok(Some(_)) => Err(RuntimeError::InitDied),
            Err(e) => Err(RuntimeError::Sys {
                call: "read from container init",
                source: e,
            }),
        }
        .inspect(|()| {
            if let Some(h) = &self.hooks {
                hooks::run_warning(hooks::Point::Poststart, &h.state(self.pid));
            }
        })
    }

    /// Waits for the process to end and returns Docker's exit code: its exit status, or
    /// 128+N when signal N killed it. With `forward_signals`, every catchable signal this
    /// process receives meanwhile is sent on to the container (except SIGCHLD, and SIGWINCH
    /// with a tty, which resizes the pty); without, those signals are neither forwarded nor
    /// able to end the monitor. Either way they stay blocked once it has ended, so a late one
    /// cannot end the monitor during its clean-up; a tty is relayed to this process's stdio.
    pub fn wait(&mut self, forward_signals: bool) -> Result<i32, RuntimeError> {
        if self.state != State::Running {
            return Err(RuntimeError::State("wait"));
        }
        // Without forwarding, the signals stay blocked all the same: one that ended the
        // monitor would end the container too (its parent-death signal) and leave its record
        // behind. They are dropped with the monitor (Docker's `--sig-proxy=false` leaves the
        // container alone as well).
        let code = monitor::wait(
            self.pid,
            &self.pidfd,
            forward_signals,
            self.master.as_ref(),
            self.lifeline.as_ref(),
        );
        // Forwarded signals stay blocked from here on: see monitor::wait.
        self.mask_before_start = None;
        self.state = State::Exited;
        // The mounts go now, unless someone took them to let go later.
        self.mount_ns = None;
        if let Some(h) = &self.hooks {
            hooks::run_warning(hooks::Point::Poststop, &h.state(self.pid));
        }
        code
    }

    /// Ties the container to the monitor's parent process: if that process ends during
    /// [`Container::wait`], the container's process is killed with SIGKILL and `wait` returns
    /// 137 as usual. A batch job's shell dies at the first SIGTERM of a time limit or
    /// `scancel`; the scheduler's SIGKILL after its grace period then only reaches what still
    /// descends from the job, which an orphaned monitor and its container no longer do. Should
    /// the monitor itself die, the container's process gets SIGKILL from the kernel anyway
    /// (its parent-death signal).
    pub fn end_with_parent(&mut self) {
        let fd = self
            .parent
            .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()).ok());
        // Reparented since create (or just before the pidfd was opened): that parent ended,
        // whoever the new one is.
        let gone = fd.is_none() || rustix::process::getppid() != self.parent;
        if gone {
            let _ = sys::kill(self.pid, libc::SIGKILL);
        }
        self.lifeline = fd.filter(|_| !gone);
    }

    /// The container's mount namespace, taken out of the container, when it made one and it
    /// could be opened. Tearing down a namespace's mounts (the overlay, `/proc`, `/dev` and the
    /// rest) is synchronous work of whoever drops the last reference: without this descriptor
    /// that is the container's process as it exits, before its parent learns the status, which
    /// then waits for it (about half a millisecond per container). The holder decides instead:
    /// a caller about to exit hands the descriptor to a process that outlives it.
    pub fn take_mount_namespace(&mut self) -> Option<OwnedFd> {
        self.mount_ns.take()
    }

    /// The pty master of a [`Stdio::Tty`] container, for callers that relay it themselves.
    pub fn pty_master(&self) -> Option<&OwnedFd> {
        self.master.as_ref()
    }

    /// Takes the pty master away from the container, for a caller that hands it to someone
    /// else (an OCI console socket): [`Container::wait`] then relays nothing.
    pub fn take_pty_master(&mut self) -> Option<OwnedFd> {
        self.master.take()
    }

    /// A descriptor that becomes readable once the container's process has ended, to wait for
    /// that together with other events (see [`crate::handoff::wait_readable`]).
    pub fn exit_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

impl Container {
    fn restore_mask(&mut self) {
        if let Some(mask) = self.mask_before_start.take() {
            let _ = sys::signal::set_mask(&mask);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.restore_mask();
        if self.state == State::Created {
            abort(self.pid);
        }
    }
}

/// `linux.sysctl` as files under `/proc/sys` (`net.ipv4.ip_forward` is
/// `/proc/sys/net/ipv4/ip_forward`), in name order. A name is dotted words only: one with a
/// `/` could lead the path out of `/proc/sys`, which the init writes before `pivot_root`.
fn sysctl_paths(
    spec: &oci_spec::runtime::Spec,
) -> Result<Vec<(std::path::PathBuf, String)>, RuntimeError> {
    let mut out = Vec::new();
    let all = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    for (k, v) in all.into_iter().flatten() {
        if k.is_empty() || k.contains('/') || k.split('.').any(str::is_empty) {
            return Err(RuntimeError::InvalidSpec(format!(
                "linux.sysctl: {k:?} is not a sysctl name"
            )));
        }
        let path = std::path::Path::new("/proc/sys").join(k.replace('.', "/"));
        out.push((path, v.clone()));
    }
    out.sort();
    Ok(out)
}

/// Opens the mount namespace of the init `pid`. Done before the id maps are written: the init
/// is still dumpable then, which lets a caller without privileges open its namespaces (it
/// becomes non-dumpable as soon as the maps are in place). `None` when that fails (an init
/// that joined a user namespace may already be non-dumpable): the namespace then goes with
/// the process, as it would anyway.
fn open_mount_namespace(pid: i32) -> Option<OwnedFd> {
    rustix::fs::open(
        format!("/proc/{pid}/ns/mnt"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

/// Kills and reaps a container process that will never run.
fn abort(pid: i32) {
    let _ = sys::kill(pid, libc::SIGKILL);
    let _ = monitor::reap(pid);
}
