//! The OCI runtime command line (`berth oci create|start|state|kill|delete|run`), so that
//! callers of runc or crun, Slurm's `oci.conf` first, can use Berth.
//!
//! There is no daemon, as elsewhere in Berth: `create` starts a small monitor process
//! (`berth oci __monitor`) that creates the container and keeps its process waiting just
//! before exec, then returns. The monitor listens on `ROOT/ID/control.sock`; `start` asks it
//! to let the process exec and returns once exec succeeded (or with the reason it failed).
//! The monitor then waits for the process, forwarding the signals it receives, and records
//! the exit code in `ROOT/ID/state.json`. `run` without `--detach` is its own monitor and
//! removes the container when the process ends, as runc does.
//!
//! The bundle's `config.json` is used as written: process (args, env, cwd, user, terminal),
//! `root.path` (relative to the bundle) and `root.readonly`, mounts, namespaces, id maps,
//! hostname, capabilities, rlimits, seccomp, masked and read-only paths; `linux.resources`
//! (memory, CPU quota and set, pids) go into a child cgroup of the caller's (decision 4), so a
//! Slurm step keeps tracking the container.

mod limits;
mod monitor;
mod record;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as ProcStdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_cli::{OciCreateArgs, OciDeleteArgs, OciKillArgs, OciRunArgs};
use berth_runtime::handoff;
use oci_spec::runtime::{ContainerState, Spec};

use crate::dispatch::start::StartFailed;
pub use monitor::monitor;
pub use record::default_root;
use record::{Record, CONTROL_SOCKET};

/// Linux's SIGKILL.
const SIGKILL: i32 = 9;

/// How long `delete` waits for a monitor to record the end of a killed container.
const MONITOR_GRACE: Duration = Duration::from_secs(10);

/// A bundle read and checked, ready to run as container `id`.
struct Prepared {
    id: String,
    /// Absolute bundle directory.
    bundle: PathBuf,
    spec: Spec,
    rootfs: PathBuf,
    terminal: bool,
}

impl Prepared {
    fn new(a: &OciCreateArgs) -> Result<Prepared> {
        record::check_id(&a.id)?;
        let bundle = std::fs::canonicalize(&a.bundle)
            .with_context(|| format!("bundle {}", a.bundle.display()))?;
        let config = bundle.join("config.json");
        let spec = Spec::load(&config)
            .with_context(|| format!("bundle {}: cannot read config.json", bundle.display()))?;
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| PathBuf::from("rootfs"));
        let rootfs = bundle.join(root);
        if !rootfs.is_dir() {
            bail!(
                "bundle {}: root.path {} is not a directory",
                bundle.display(),
                rootfs.display()
            );
        }
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        Ok(Prepared {
            id: a.id.clone(),
            bundle,
            spec,
            rootfs,
            terminal,
        })
    }

    fn annotations(&self) -> Option<HashMap<String, String>> {
        self.spec.annotations().clone()
    }

    /// Makes `ROOT/ID`, refusing an id in use.
    fn make_dir(&self, root: &Path) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .with_context(|| format!("cannot create state directory {}", root.display()))?;
        let dir = record::dir(root, &self.id);
        // Traversable: with a user namespace that does not map us, the container's root
        // reaches its mount point (ROOT/ID/rootfs) as another uid.
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {} already exists", self.id)
            }
            Err(e) => Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
}

/// Writes `pid` to `path` (temporary file, then rename, as runc does for readers that poll).
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write pid file {}", path.display()))
}

/// Makes a path given on the command line absolute, for a process with another cwd.
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("invalid path {}", p.display()))
}

/// `create`: starts the monitor, which creates the container and reports its pid.
pub fn create(root: &Path, a: &OciCreateArgs) -> Result<u8> {
    let prep = Prepared::new(a)?;
    if prep.terminal && a.console_socket.is_none() {
        bail!("process.terminal is true: --console-socket is required to create a container");
    }
    let dir = prep.make_dir(root)?;
    let result = spawn_monitor(root, &prep, a);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let pid = result?;
    if let Some(f) = &a.pid_file {
        write_pid_file(f, pid)?;
    }
    Ok(0)
}

fn spawn_monitor(root: &Path, prep: &Prepared, a: &OciCreateArgs) -> Result<i32> {
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let (ours, theirs) = UnixStream::pair().context("cannot create a socket pair")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(absolute(root)?)
        .args(["oci", "__monitor", "--bundle"])
        .arg(&prep.bundle);
    if let Some(s) = &a.console_socket {
        cmd.arg("--console-socket").arg(absolute(s)?);
    }
    cmd.arg(&prep.id)
        .current_dir(record::dir(root, &prep.id))
        .stdin(ProcStdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(ProcStdio::null())
        .stderr(ProcStdio::null());
    // Its own process group: a ^C meant for the caller must not reach the monitor.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("cannot start the container monitor")?;
    if !prep.terminal {
        // The container's stdio is ours, as with runc; the monitor installs them.
        let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        handoff::send_fds(&ours, &[i.as_fd(), o.as_fd(), e.as_fd()])
            .context("cannot pass stdio to the container monitor")?;
    }
    let mut line = String::new();
    BufReader::new(&ours).read_line(&mut line)?;
    match reply(&line) {
        Reply::Created(pid) => Ok(pid),
        Reply::Failed(e) => {
            let _ = child.wait();
            Err(e.into())
        }
        _ => {
            let _ = child.wait();
            bail!("the container monitor exited before the container was created")
        }
    }
}

/// A line from the monitor.
enum Reply {
    Created(i32),
    Ok,
    Failed(StartFailed),
    Other,
}

fn reply(line: &str) -> Reply {
    let line = line.trim_end();
    if line == "ok" {
        return Reply::Ok;
    }
    if let Some(pid) = line.strip_prefix("created ") {
        return pid.parse().map(Reply::Created).unwrap_or(Reply::Other);
    }
    if let Some(rest) = line.strip_prefix("failed ") {
        let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        return Reply::Failed(StartFailed {
            code: code.parse().unwrap_or(125),
            message: msg.to_string(),
        });
    }
    Reply::Other
}

/// `start`: asks the monitor to let the container's process exec.
pub fn start(root: &Path, id: &str) -> Result<u8> {
    let rec = Record::load(root, id)?;
    let status = rec.status();
    if status != ContainerState::Created {
        bail!("container {id} is {status}, not created");
    }
    // Relative to the container's directory: a socket path is limited to 107 bytes.
    std::env::set_current_dir(record::dir(root, id))
        .with_context(|| format!("container {id} does not exist"))?;
    let mut s = UnixStream::connect(CONTROL_SOCKET)
        .with_context(|| format!("container {id}: cannot reach its monitor"))?;
    s.write_all(b"start\n")?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    match reply(&line) {
        Reply::Ok => Ok(0),
        Reply::Failed(e) => Err(e.into()),
        _ => bail!("container {id}: its monitor ended before the process started"),
    }
}

/// `state`: the runtime-spec state JSON on stdout.
pub fn state(root: &Path, id: &str) -> Result<u8> {
    let rec = Record::load(root, id)?;
    let status = rec.status();
    let mut v = serde_json::json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "id": rec.id,
        "status": status,
        "bundle": rec.bundle,
        "created": rec.created,
    });
    if matches!(status, ContainerState::Created | ContainerState::Running) {
        v["pid"] = rec.pid.into();
    }
    if let Some(a) = &rec.annotations {
        v["annotations"] = serde_json::to_value(a)?;
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

/// `kill`: a signal to the container's process (or, with `--all`, to all of them).
pub fn kill(root: &Path, a: &OciKillArgs) -> Result<u8> {
    let rec = Record::load(root, &a.id)?;
    let sig = berth_runtime::signal_by_name(&a.signal)
        .with_context(|| format!("invalid signal {:?}", a.signal))?;
    let status = rec.status();
    if !matches!(status, ContainerState::Created | ContainerState::Running) {
        bail!("container {} is not running", a.id);
    }
    signal(&rec, sig, a.all)?;
    Ok(0)
}

fn signal(rec: &Record, sig: i32, all: bool) -> Result<()> {
    let pids = if all {
        record::processes(rec.pid)
    } else {
        vec![rec.pid]
    };
    for p in pids {
        // Processes of the container may end meanwhile; only its first one must exist.
        let r = berth_runtime::kill(p, sig);
        if p == rec.pid {
            r.with_context(|| format!("cannot signal container {}", rec.id))?;
        }
    }
    Ok(())
}

/// `delete`: removes the container's state, killing it first when created or forced.
pub fn delete(root: &Path, a: &OciDeleteArgs) -> Result<u8> {
    let dir = record::dir(root, &a.id);
    let rec = match Record::load(root, &a.id) {
        Ok(r) => r,
        Err(e) if e.downcast_ref::<record::NotExist>().is_some() => {
            // A create that died before writing its state leaves a directory without one.
            if dir.is_dir() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return if a.force { Ok(0) } else { Err(e) };
        }
        Err(e) => return Err(e),
    };
    match rec.status() {
        ContainerState::Stopped => {}
        // runc deletes a container that never ran without --force.
        ContainerState::Created => signal(&rec, SIGKILL, true)?,
        ContainerState::Running if a.force => signal(&rec, SIGKILL, true)?,
        ContainerState::Creating if a.force => {}
        s => bail!("cannot delete container {} that is not stopped: {s}", a.id),
    }
    wait_monitor(&rec);
    // Left behind when the monitor was killed.
    limits::remove(&a.id, &rec.cgroups);
    std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok(0)
}

/// Waits until the container's monitor has recorded its end and exited; kills it after
/// [`MONITOR_GRACE`].
fn wait_monitor(rec: &Record) {
    let Ok(handle) = handoff::process_handle(rec.monitor_pid) else {
        return;
    };
    // The handle pins the process: check it is still the monitor, not a reused pid.
    if !rec.monitor_alive() {
        return;
    }
    let done =
        handoff::wait_readable(&[handle.as_fd()], Some(MONITOR_GRACE)).is_ok_and(|r| !r.is_empty());
    if !done {
        let _ = berth_runtime::kill(rec.monitor_pid, SIGKILL);
        let _ = handoff::wait_readable(&[handle.as_fd()], Some(Duration::from_secs(2)));
    }
}

/// `run`: create and start; in the foreground this process is the monitor and returns the
/// container's exit code.
pub fn run(root: &Path, a: &OciRunArgs) -> Result<u8> {
    if a.detach {
        create(root, &a.create)?;
        if let Err(e) = start(root, &a.create.id) {
            let _ = delete(
                root,
                &OciDeleteArgs {
                    force: true,
                    id: a.create.id.clone(),
                },
            );
            return Err(e);
        }
        return Ok(0);
    }
    let prep = Prepared::new(&a.create)?;
    prep.make_dir(root)?;
    let code = monitor::foreground(root, &prep, &a.create);
    let _ = std::fs::remove_dir_all(record::dir(root, &prep.id));
    code.map(|c| c as u8)
}
