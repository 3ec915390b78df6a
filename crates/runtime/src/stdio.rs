//! Connecting a container process's stdin, stdout and stderr.

use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};

use crate::error::{Failure, RuntimeError, Step};
use crate::{tty, Stdio};

/// The container side of [`Stdio`], prepared on the host before clone.
pub(crate) enum ChildStdio {
    Inherit,
    /// A socket to send the pty master, allocated inside the container, to the monitor.
    Tty(OwnedFd),
    Files {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// Splits `stdio` into what the container gets and, for a tty, the socket on which the
/// monitor receives the pty master (see [`receive_master`]).
pub(crate) fn prepare(stdio: Stdio) -> Result<(ChildStdio, Option<OwnedFd>), RuntimeError> {
    Ok(match stdio {
        Stdio::Inherit => (ChildStdio::Inherit, None),
        Stdio::Tty => {
            let (ours, theirs) = tty::fd_channel().map_err(RuntimeError::sys("socketpair"))?;
            (ChildStdio::Tty(theirs), Some(ours))
        }
        Stdio::Files {
            stdin,
            stdout,
            stderr,
        } => {
            let stdin = match stdin {
                Some(f) => f.into(),
                None => {
                    rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                        .map_err(|e| RuntimeError::Io {
                        what: "open",
                        path: "/dev/null".into(),
                        source: e.into(),
                    })?
                }
            };
            (
                ChildStdio::Files {
                    stdin,
                    stdout: stdout.into(),
                    stderr: stderr.into(),
                },
                None,
            )
        }
    })
}

impl ChildStdio {
    /// Installs the descriptors in the container process. The process always gets its own
    /// session, so terminal-generated signals reach only the monitor, which forwards them once.
    pub(crate) fn install(&self) -> Result<(), Failure> {
        let fail = Failure::at::<std::io::Error>(Step::Stdio, "0-2");
        rustix::process::setsid().map_err(Failure::at(Step::Stdio, "setsid"))?;
        match self {
            ChildStdio::Inherit => Ok(()),
            ChildStdio::Tty(socket) => (|| -> std::io::Result<()> {
                let pty = tty::open()?;
                // 0-2 are still the caller's here: the process must see its size from
                // its first instruction, before the monitor has received the master.
                tty::copy_window_size(&pty.master);
                tty::make_controlling(&pty.slave)?;
                tty::send_fd(socket, &pty.master)
            })()
            .map_err(Failure::at::<std::io::Error>(Step::Stdio, "pty")),
            ChildStdio::Files {
                stdin,
                stdout,
                stderr,
            } => (|| -> std::io::Result<()> {
                rustix::stdio::dup2_stdin(stdin)?;
                rustix::stdio::dup2_stdout(stdout)?;
                rustix::stdio::dup2_stderr(stderr)?;
                Ok(())
            })()
            .map_err(fail),
        }
    }
}

/// The pty master, once the container's process has reported that its stdio is installed.
pub(crate) fn receive_master(socket: Option<OwnedFd>) -> Result<Option<OwnedFd>, RuntimeError> {
    socket
        .map(|s| tty::recv_fd(&s).map_err(RuntimeError::sys("receive pty master")))
        .transpose()
}
