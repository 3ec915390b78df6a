//! The container's init, from clone to exec. It runs in the copy of the monitor's memory that
//! clone gave it, reports every failure to the monitor as a typed message, and never returns.

use std::path::Path;

use rustix::process::{DumpableBehavior, Signal};

use super::command::Command;
use super::credentials::Credentials;
use super::message::{FromInit, Receiver, Sender, ToInit};
use crate::error::{Failure, Step};
use crate::hooks;
use crate::namespaces::Namespaces;
use crate::rootfs::{self, RootfsPlan};
use crate::stdio::ChildStdio;
use crate::sys;

/// Everything the init needs, prepared by the monitor before clone.
pub(crate) struct InitContext<'a> {
    pub(crate) namespaces: Namespaces,
    pub(crate) wait_for_maps: bool,
    /// Become uid / gid 0 of the new user namespace once its maps are written, because the
    /// caller's own ids are not mapped (see `IdMaps::needs_root_switch`).
    pub(crate) root_switch: (bool, bool),
    pub(crate) rootfs: Option<RootfsPlan<'a>>,
    pub(crate) hostname: Option<&'a str>,
    pub(crate) domainname: Option<&'a str>,
    /// `linux.sysctl`, as paths under `/proc/sys` and the values to write there.
    pub(crate) sysctls: &'a [(std::path::PathBuf, String)],
    pub(crate) cwd: &'a Path,
    pub(crate) stdio: ChildStdio,
    pub(crate) credentials: Credentials,
    /// The monitor sends the seccomp filter over `control` (see `Sender::send_filter`).
    pub(crate) filter_follows: bool,
    pub(crate) command: Command,
    /// Stay as an init and run the command as a child (`--init`).
    pub(crate) init: bool,
    /// Descriptors passed on to the command (sorted).
    pub(crate) preserve_fds: &'a [i32],
    /// Monitor → init.
    pub(crate) control: Receiver,
    /// Init → monitor; close-on-exec, so its end of file tells the monitor exec worked.
    pub(crate) report: Sender,
    /// The spec and state for OCI hooks, when the spec has any.
    pub(crate) hooks: Option<HookPlan<'a>>,
}

/// What the init needs for the spec's hooks.
pub(crate) struct HookPlan<'a> {
    pub(crate) spec: &'a oci_spec::runtime::Spec,
    pub(crate) id: String,
    pub(crate) bundle: &'a Path,
}

impl HookPlan<'_> {
    fn state(&self, pid: i32) -> hooks::State<'_> {
        hooks::State {
            id: self.id.clone(),
            pid,
            bundle: self.bundle,
            spec: self.spec,
        }
    }
}

/// The stop before `pivot_root`: the monitor runs its hooks, then this process runs the
/// `createContainer` ones, in the container's namespaces with the root still outside.
fn before_pivot(
    plan: Option<&HookPlan<'_>>,
    control: &mut Receiver,
    report: &mut Sender,
    host_pid: &mut i32,
) -> Result<(), Failure> {
    let Some(plan) = plan.filter(|p| hooks::any_before_pivot(p.spec)) else {
        return Ok(());
    };
    report
        .send_from_init(&FromInit::Mounted)
        .map_err(Failure::at(Step::Sync, "report mounted"))?;
    match control.recv_to_init() {
        Ok(Some(ToInit::HooksDone(pid))) => *host_pid = pid,
        // The monitor's hooks failed and it gave up on us: it reports why.
        Ok(None) => sys::exit_now(1),
        Ok(Some(_)) => {
            return Err(Failure::new(
                Step::Sync,
                "unexpected message",
                std::io::ErrorKind::InvalidData.into(),
            ))
        }
        Err(e) => return Err(Failure::new(Step::Sync, "read", e)),
    }
    hooks::run(hooks::Point::CreateContainer, &plan.state(*host_pid)).map_err(hook_failure)
}

fn hook_failure(message: String) -> Failure {
    Failure {
        step: Step::Hook,
        subject: message,
        errno: 0,
    }
}

/// Runs the init and exits with 1 after a reported failure, or after a failed exec.
pub(crate) fn run(mut ctx: InitContext<'_>) -> ! {
    match setup(&mut ctx) {
        Ok(true) => {
            if ctx.init {
                // Only the child returns; this process becomes the init and never does.
                if let Err(failure) = super::reaper::fork_init() {
                    let _ = ctx.report.send_from_init(&FromInit::Failed(failure));
                    sys::exit_now(1)
                }
            }
            let errno = ctx.command.exec();
            let _ = ctx.report.send_from_init(&FromInit::ExecFailed(errno));
            sys::exit_now(127)
        }
        // The monitor went away before starting us: nothing to run.
        Ok(false) => sys::exit_now(1),
        Err(failure) => {
            let _ = ctx.report.send_from_init(&FromInit::Failed(failure));
            sys::exit_now(1)
        }
    }
}

/// Waits for one message; `Ok(false)` if the monitor closed the pipe instead.
fn expect(control: &mut Receiver, want: ToInit) -> Result<bool, Failure> {
    match control.recv_to_init() {
        Ok(Some(got)) if got == want => Ok(true),
        Ok(None) => Ok(false),
        Ok(Some(_)) => Err(Failure::new(
            Step::Sync,
            "unexpected message",
            std::io::ErrorKind::InvalidData.into(),
        )),
        Err(e) => Err(Failure::new(Step::Sync, "read", e)),
    }
}

/// Everything up to exec; `Ok(true)` means exec now.
fn setup(ctx: &mut InitContext<'_>) -> Result<bool, Failure> {
    // A monitor that dies takes the container with it, half-built or running.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    if ctx.wait_for_maps && !expect(&mut ctx.control, ToInit::MapsWritten)? {
        return Ok(false);
    }
    ctx.namespaces.enter_user()?;
    if ctx.root_switch.1 {
        let g = rustix::process::Gid::from_raw(0);
        rustix::thread::set_thread_res_gid(g, g, g).map_err(Failure::at(Step::User, "gid 0"))?;
    }
    if ctx.root_switch.0 {
        let u = rustix::process::Uid::from_raw(0);
        rustix::thread::set_thread_res_uid(u, u, u).map_err(Failure::at(Step::User, "uid 0"))?;
    }
    // Until exec this process runs the monitor's binary: hide its /proc entries (exe, mem)
    // from anything else that can see it (CVE-2019-5736). Exec makes it dumpable again.
    hide_from_proc();
    ctx.namespaces.join()?;
    // After the joins: joining a mount namespace takes a process without other threads.
    let mut net = ctx.namespaces.start_network();
    // Through the host's /proc, still mounted here: a sysctl file belongs to the namespace of
    // whoever writes it, which this process must be in by then.
    if !ctx.sysctls.is_empty() {
        net.enter()?;
    }
    for (path, value) in ctx.sysctls {
        write_sysctl(path, value).map_err(|e| Failure::new(Step::Sysctl, path.display(), e))?;
    }
    let mut host_pid = 0;
    let hooks = ctx.hooks.as_ref();
    let mut pre = || before_pivot(hooks, &mut ctx.control, &mut ctx.report, &mut host_pid);
    match &ctx.rootfs {
        Some(plan) => rootfs::setup(plan, &mut || net.enter(), &mut pre)?,
        None => {
            net.enter()?;
            pre()?
        }
    }
    if let Some(name) = ctx.hostname {
        rustix::system::sethostname(name.as_bytes()).map_err(Failure::at(Step::Hostname, name))?;
    }
    if let Some(name) = ctx.domainname {
        rustix::system::setdomainname(name.as_bytes())
            .map_err(Failure::at(Step::Domainname, name))?;
    }
    // After pivot_root, so a pty comes from the container's own devpts.
    ctx.stdio.install()?;
    enter_cwd(ctx.cwd)?;
    if ctx.filter_follows {
        match ctx.control.recv_filter() {
            Ok(Some(filter)) => ctx.credentials.set_seccomp(Some(filter)),
            Ok(None) => return Ok(false),
            Err(e) => return Err(Failure::new(Step::Sync, "read seccomp filter", e)),
        }
    }
    ctx.credentials.apply()?;
    // A change of uid clears the parent-death signal: set it again, for good this time. A
    // container must not outlive its monitor, which alone records its end; exec keeps it.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    prepare_exec(ctx.preserve_fds)?;
    ctx.report
        .send_from_init(&FromInit::Ready)
        .map_err(Failure::at(Step::Sync, "report ready"))?;
    if !expect(&mut ctx.control, ToInit::Start)? {
        return Ok(false);
    }
    if let Some(plan) = &ctx.hooks {
        hooks::run(hooks::Point::StartContainer, &plan.state(host_pid)).map_err(hook_failure)?;
    }
    Ok(true)
}

fn write_sysctl(path: &Path, value: &str) -> std::io::Result<()> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    rustix::io::write(&fd, value.as_bytes())?;
    Ok(())
}

/// Enters the working directory, creating it as Docker does for `WORKDIR`.
fn enter_cwd(cwd: &Path) -> Result<(), Failure> {
    let cwd = if cwd.as_os_str().is_empty() {
        Path::new("/")
    } else {
        cwd
    };
    if let Err(e) = rustix::process::chdir(cwd) {
        if e != rustix::io::Errno::NOENT {
            return Err(Failure::new(Step::Cwd, cwd.display(), e.into()));
        }
        std::fs::create_dir_all(cwd).map_err(|e| Failure::new(Step::Cwd, cwd.display(), e))?;
        rustix::process::chdir(cwd).map_err(Failure::at(Step::Cwd, cwd.display()))?;
    }
    check_cwd_inside_root(cwd)
}

/// Refuses a working directory outside the container's root, which a path through a
/// descriptor inherited from the host (`-w /proc/self/fd/N`) would give (CVE-2024-21626):
/// descriptors are closed only at exec, after the directory is entered.
pub(crate) fn check_cwd_inside_root(cwd: &Path) -> Result<(), Failure> {
    match sys::cwd_inside_root() {
        Ok(true) => Ok(()),
        Ok(false) => Err(Failure::new(
            Step::Cwd,
            format_args!("{} (outside the container's root)", cwd.display()),
            rustix::io::Errno::NOENT.into(),
        )),
        Err(e) => Err(Failure::new(Step::Cwd, cwd.display(), e)),
    }
}

/// Makes the process non-dumpable, so its `/proc/PID` entries belong to root.
pub(crate) fn hide_from_proc() {
    let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable);
}

/// The descriptors a caller asked to pass on, as [`prepare_exec`] takes them: sorted, above 2
/// (0-2 are the process's stdio anyway). Made before clone, so the child allocates nothing.
pub(crate) fn descriptors_to_keep(fds: &[i32]) -> Vec<i32> {
    let mut keep: Vec<i32> = fds.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    keep
}

/// The last steps before exec shared with `exec`: a clean signal state and no inherited
/// descriptors beyond 0-2 but those the caller passes on, `keep` (sorted; CVE-2024-21626).
pub(crate) fn prepare_exec(keep: &[i32]) -> Result<(), Failure> {
    sys::signal::reset_all().map_err(|e| Failure::new(Step::PrepareExec, "signals", e))?;
    for &fd in keep {
        sys::inherit_fd(fd)
            .map_err(|e| Failure::new(Step::PrepareExec, "preserved descriptor", e))?;
    }
    sys::cloexec_from_3(keep).map_err(|e| Failure::new(Step::PrepareExec, "descriptors", e))
}
