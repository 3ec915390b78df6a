//! The process that owns a container made by `berth oci`: the detached monitor started by
//! `create`, or the `run` process itself in the foreground.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_cgroups::CgroupManager;
use berth_cli::OciCreateArgs;
use berth_runtime::{handoff, Bundle, Container, Rootfs, RuntimeError, Stdio};
use oci_spec::runtime::ContainerState;

use super::limits;
use super::record::{self, Record, CONTROL_SOCKET};
use super::{write_pid_file, Prepared};

fn bundle(root: &Path, prep: &Prepared) -> Bundle {
    Bundle {
        rootfs: Rootfs::Dir(prep.rootfs.clone()),
        spec: prep.spec.clone(),
        cpu_affinity: None,
        state_dir: record::dir(root, &prep.id),
        init: false,
        preserve_fds: Vec::new(),
        default_seccomp: None,
        network_namespace: None,
    }
}

/// Hands the pty master to the caller's console socket, as runc does.
fn send_console(container: &mut Container, socket: &Path) -> Result<()> {
    let master = container
        .take_pty_master()
        .context("the container has no terminal")?;
    let s = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to console socket {}", socket.display()))?;
    handoff::send_fds(&s, &[master.as_fd()])
        .with_context(|| format!("cannot send the terminal to {}", socket.display()))
}

/// A created container and the cgroup holding its limits.
struct Created {
    c: Container,
    cgroup: Option<Box<dyn CgroupManager>>,
}

/// Creates the container with `stdio`; on the way writes `creating`, then `created`.
fn create(
    root: &Path,
    prep: &Prepared,
    a: &OciCreateArgs,
    stdio: Stdio,
    rec: &mut Record,
) -> Result<Created> {
    rec.save(root)?;
    crate::dispatch::host::debug_assert_single_threaded();
    let mut c = Container::create(&bundle(root, prep), stdio)?;
    // Before exec: the program starts inside its limits.
    let cgroup = limits::apply(&prep.id, &prep.spec, c.pid())?;
    rec.cgroups = cgroup.as_ref().map(|m| m.paths()).unwrap_or_default();
    if let Some(sock) = &a.console_socket {
        send_console(&mut c, sock)?;
    }
    rec.set_pid(c.pid());
    rec.status = ContainerState::Created;
    rec.save(root)?;
    Ok(Created { c, cgroup })
}

/// Lets the process exec and waits for it; records `running`, then `stopped` with the code.
fn start_and_wait(root: &Path, mut cr: Created, rec: &mut Record) -> Result<i32> {
    if let Err(e) = cr.c.start() {
        stopped(root, rec, e.exit_code(), &mut cr);
        return Err(e.into());
    }
    rec.status = ContainerState::Running;
    rec.save(root)?;
    Ok(finish(root, cr, rec))
}

fn finish(root: &Path, mut cr: Created, rec: &mut Record) -> i32 {
    let code = cr.c.wait(true).unwrap_or(125);
    stopped(root, rec, code, &mut cr);
    code
}

fn stopped(root: &Path, rec: &mut Record, code: i32, cr: &mut Created) {
    if let Some(m) = &mut cr.cgroup {
        let _ = m.destroy();
    }
    rec.status = ContainerState::Stopped;
    rec.exit_code = Some(code);
    let _ = rec.save(root);
}

/// `run` in the foreground: this process creates, starts and waits.
pub(super) fn foreground(root: &Path, prep: &Prepared, a: &OciCreateArgs) -> Result<i32> {
    let mut rec = Record::new(&prep.id, &prep.bundle, prep.annotations());
    let stdio = if prep.terminal {
        Stdio::Tty
    } else {
        Stdio::Inherit
    };
    let cr = create(root, prep, a, stdio, &mut rec)?;
    if let Some(f) = &a.pid_file {
        write_pid_file(f, cr.c.pid())?;
    }
    start_and_wait(root, cr, &mut rec)
}

/// `berth oci __monitor`: started by `create` with a socket as stdin, on which it receives
/// the caller's stdio and reports `created PID` or `failed CODE MESSAGE`.
pub fn monitor(root: &Path, a: &OciCreateArgs) -> Result<u8> {
    let ctl = UnixStream::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("no control socket on stdin")?,
    );
    let created = Prepared::new(a).and_then(|prep| {
        let stdio = if prep.terminal {
            Stdio::Tty
        } else {
            let mut fds = handoff::recv_fds(&ctl)
                .context("cannot receive stdio")?
                .into_iter();
            match (fds.next(), fds.next(), fds.next()) {
                (Some(i), Some(o), Some(e)) => Stdio::Files {
                    stdin: Some(File::from(i)),
                    stdout: File::from(o),
                    stderr: File::from(e),
                },
                _ => bail!("cannot receive stdio: expected 3 descriptors"),
            }
        };
        // The cwd is ROOT/ID (set by create): the socket's name stays short.
        let listener = UnixListener::bind(CONTROL_SOCKET)
            .with_context(|| format!("cannot listen on {CONTROL_SOCKET}"))?;
        let mut rec = Record::new(&prep.id, &prep.bundle, prep.annotations());
        let c = create(root, &prep, a, stdio, &mut rec)?;
        Ok((c, rec, listener))
    });
    let mut ctl_w = &ctl;
    let (mut cr, mut rec, listener) = match created {
        Ok(x) => x,
        Err(e) => {
            let code = e
                .downcast_ref::<RuntimeError>()
                .map_or(125, RuntimeError::exit_code);
            let msg = format!("{e:#}").replace('\n', " ");
            let _ = writeln!(ctl_w, "failed {code} {msg}");
            return Ok(1);
        }
    };
    let _ = writeln!(ctl_w, "created {}", cr.c.pid());
    drop(ctl);
    let code = loop {
        let ready = handoff::wait_readable(&[cr.c.exit_fd(), listener.as_fd()], None)?;
        if ready.first() == Some(&true) {
            stopped(root, &mut rec, 137, &mut cr);
            // Killed before start: dropping the container reaps it.
            drop(cr);
            return Ok(0);
        }
        let Ok((s, _)) = listener.accept() else {
            continue;
        };
        let mut line = String::new();
        if BufReader::new(&s).read_line(&mut line).is_err() || line.trim() != "start" {
            continue;
        }
        let mut w = &s;
        match cr.c.start() {
            Ok(()) => {
                rec.status = ContainerState::Running;
                rec.save(root)?;
                let _ = writeln!(w, "ok");
                break finish(root, cr, &mut rec);
            }
            Err(e) => {
                let code = e.exit_code();
                stopped(root, &mut rec, code, &mut cr);
                let _ = writeln!(w, "failed {code} {e}");
                break code;
            }
        }
    };
    let _ = std::fs::remove_file(CONTROL_SOCKET);
    Ok(u8::try_from(code).unwrap_or(1))
}
