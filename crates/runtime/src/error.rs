//! The runtime's error type. Messages are lower-case, one line, and name the path, mount or
//! argument involved.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A step of container setup, named in errors that happen inside the container's init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Waiting for or reading a message from the monitor.
    Sync,
    /// Connecting stdin, stdout and stderr.
    Stdio,
    /// Joining a namespace given by path.
    JoinNamespace,
    /// Changing mount propagation of `/`.
    Propagation,
    /// Mounting the root filesystem.
    MountRoot,
    /// Resolving or creating a mount target inside the root.
    MountTarget,
    /// Mounting a filesystem or bind mount.
    Mount,
    /// Remounting read-only or with new flags.
    Remount,
    /// Populating `/dev`.
    Devices,
    /// Masking a path.
    MaskPath,
    /// Making a path read-only.
    ReadonlyPath,
    /// `pivot_root` into the new root.
    PivotRoot,
    /// Setting the hostname.
    Hostname,
    /// Creating or entering the working directory.
    Cwd,
    /// Setting a resource limit.
    Rlimit,
    /// Setting the CPU affinity.
    Affinity,
    /// Setting supplementary groups, gid or uid.
    User,
    /// Setting capability sets.
    Capabilities,
    /// Setting `no_new_privs`.
    NoNewPrivileges,
    /// Resetting signals or closing descriptors before exec.
    PrepareExec,
    /// Installing the seccomp filter.
    Seccomp,
    /// Starting the process under the container's own init (`--init`).
    Init,
    /// Bringing up the loopback interface of a new network namespace.
    Loopback,
    /// Joining the container's cgroups (`exec`).
    Cgroup,
    /// Running an OCI hook of the spec.
    Hook,
    /// Writing a `linux.sysctl` value.
    Sysctl,
    /// Setting the NIS domain name.
    Domainname,
    /// Setting `oom_score_adj`.
    OomScoreAdj,
}

impl Step {
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: u8) -> Step {
        const ALL: [Step; 28] = [
            Step::Sync,
            Step::Stdio,
            Step::JoinNamespace,
            Step::Propagation,
            Step::MountRoot,
            Step::MountTarget,
            Step::Mount,
            Step::Remount,
            Step::Devices,
            Step::MaskPath,
            Step::ReadonlyPath,
            Step::PivotRoot,
            Step::Hostname,
            Step::Cwd,
            Step::Rlimit,
            Step::Affinity,
            Step::User,
            Step::Capabilities,
            Step::NoNewPrivileges,
            Step::PrepareExec,
            Step::Seccomp,
            Step::Init,
            Step::Loopback,
            Step::Cgroup,
            Step::Hook,
            Step::Sysctl,
            Step::Domainname,
            Step::OomScoreAdj,
        ];
        ALL.get(usize::from(code)).copied().unwrap_or(Step::Sync)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Sync => "sync with monitor",
            Step::Stdio => "set up stdio",
            Step::JoinNamespace => "join namespace",
            Step::Propagation => "make mounts private",
            Step::MountRoot => "mount root filesystem",
            Step::MountTarget => "create mount point",
            Step::Mount => "mount",
            Step::Remount => "remount",
            Step::Devices => "populate /dev",
            Step::MaskPath => "mask path",
            Step::ReadonlyPath => "make path read-only",
            Step::PivotRoot => "pivot_root",
            Step::Hostname => "set hostname",
            Step::Cwd => "enter working directory",
            Step::Rlimit => "set rlimit",
            Step::Affinity => "set cpu affinity",
            Step::User => "set user",
            Step::Capabilities => "set capabilities",
            Step::NoNewPrivileges => "set no_new_privs",
            Step::PrepareExec => "prepare exec",
            Step::Seccomp => "install seccomp",
            Step::Init => "start init",
            Step::Loopback => "bring up loopback",
            Step::Cgroup => "join cgroup",
            Step::Hook => "run hook",
            Step::Sysctl => "set sysctl",
            Step::Domainname => "set domainname",
            Step::OomScoreAdj => "set oom_score_adj",
        })
    }
}

/// Everything that can go wrong creating, starting, waiting for or joining a container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A single-file (squashfs) image could not be mounted.
    #[error("cannot mount {}: {message}", file.display())]
    Squashfs {
        /// The image file.
        file: std::path::PathBuf,
        /// What failed.
        message: String,
    },
    /// `args[0]` was not found (exit code 127).
    #[error("{cmd}: executable file not found in $PATH")]
    NotFound {
        /// The command as given.
        cmd: String,
    },
    /// `args[0]` exists but cannot be executed (exit code 126).
    #[error("{cmd}: cannot execute: {source}")]
    NotExecutable {
        /// The command as given.
        cmd: String,
        /// Why execve refused it.
        source: io::Error,
    },
    /// `execve` failed for another reason.
    #[error("exec {cmd}: {source}")]
    Exec {
        /// The command as given.
        cmd: String,
        /// The error from execve.
        source: io::Error,
    },
    /// A setup step inside the container's init failed.
    #[error("{step} {subject}: {source}")]
    Setup {
        /// What was being done.
        step: Step,
        /// The mount target, path, limit or id it was done to.
        subject: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A host-side file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "write".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A system call in the monitor failed.
    #[error("{call}: {source}")]
    Sys {
        /// The call that failed.
        call: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A seccomp profile in Docker's format is malformed.
    #[error("invalid seccomp profile: {field}: {message}")]
    SeccompProfile {
        /// Where in the profile: `syscalls[3].action`, or `json` for a syntax error.
        field: String,
        /// What is wrong there.
        message: String,
    },
    /// An OCI hook of the spec failed: the point, the hook, and how (one line).
    #[error("{0}")]
    Hook(String),
    /// The spec asks for something the runtime cannot do.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// `newuidmap`/`newgidmap` is needed for subordinate id ranges but missing.
    #[error("{tool} not found: install the uidmap package to map subordinate ids")]
    IdMapToolMissing {
        /// "newuidmap" or "newgidmap".
        tool: &'static str,
    },
    /// `newuidmap`/`newgidmap` ran and failed.
    #[error("{tool} {pid} failed: {message}")]
    IdMapTool {
        /// "newuidmap" or "newgidmap".
        tool: &'static str,
        /// The container's pid.
        pid: i32,
        /// The tool's stderr or exit status.
        message: String,
    },
    /// The container's init ended before reporting success or an error.
    #[error("container init exited during setup")]
    InitDied,
    /// The operation needs a container that has not started or has already been waited for.
    #[error("container is not in a state to {0}")]
    State(&'static str),
}

impl RuntimeError {
    /// Docker's exit code for this error: 127 command not found, 126 command not executable,
    /// 125 for a failure of the runtime itself.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::NotFound { .. } => 127,
            RuntimeError::NotExecutable { .. } => 126,
            _ => 125,
        }
    }

    pub(crate) fn sys(call: &'static str) -> impl FnOnce(io::Error) -> RuntimeError {
        move |source| RuntimeError::Sys { call, source }
    }

    pub(crate) fn from_exec_errno(cmd: &str, errno: i32) -> RuntimeError {
        let source = io::Error::from_raw_os_error(errno);
        let cmd = cmd.to_owned();
        match errno {
            libc::ENOENT | libc::ENOTDIR => RuntimeError::NotFound { cmd },
            libc::EACCES | libc::ENOEXEC | libc::EPERM | libc::EISDIR => {
                RuntimeError::NotExecutable { cmd, source }
            }
            _ => RuntimeError::Exec { cmd, source },
        }
    }
}

/// A failed step inside a container process, as sent to the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) step: Step,
    pub(crate) subject: String,
    pub(crate) errno: i32,
}

impl Failure {
    pub(crate) fn new(step: Step, subject: impl fmt::Display, err: io::Error) -> Failure {
        Failure {
            step,
            subject: subject.to_string(),
            errno: err.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// Builds a `map_err` adapter for rustix or std errors.
    pub(crate) fn at<E: Into<io::Error>>(
        step: Step,
        subject: impl fmt::Display,
    ) -> impl FnOnce(E) -> Failure {
        let subject = subject.to_string();
        move |e| Failure::new(step, subject, e.into())
    }
}

impl From<Failure> for RuntimeError {
    fn from(f: Failure) -> RuntimeError {
        if f.step == Step::Hook {
            return RuntimeError::Hook(f.subject);
        }
        RuntimeError::Setup {
            step: f.step,
            subject: f.subject,
            source: io::Error::from_raw_os_error(f.errno),
        }
    }
}
