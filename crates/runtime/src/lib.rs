//! Berth's container runtime: from a bundle (a root filesystem plus an OCI runtime `Spec`) to
//! a running, monitored process.
//!
//! There is no daemon and no helper process on the hot path. The caller becomes the
//! container's monitor: [`Container::create`] clones the container's init with every
//! namespace the spec asks for in one `clone` call, writes the user namespace's id maps
//! (directly, or through `newuidmap`/`newgidmap` for subordinate ranges), and lets the init
//! build its root: overlayfs or a bind mount, the spec's mounts resolved inside the root
//! without following symlinks out of it, a tmpfs `/dev` with bind-mounted device nodes,
//! masked and read-only paths, then `pivot_root`. [`Container::start`] lets it exec and
//! reports a missing or non-executable command before returning; [`Container::wait`] forwards
//! signals and returns Docker's exit code. [`exec`] joins a running container, and
//! [`visit_filesystem`] runs the caller's code in its file system (`cp`).
//!
//! Every raw system call lives in the private `sys` module behind a small safe API; the rest goes
//! through `rustix`.
#![deny(missing_docs)]

mod background;
mod delegate;
mod error;
mod exec;
pub mod handoff;
mod hooks;
mod idmap;
mod monitor;
mod namespaces;
mod process;
mod resident;
mod rootfs;
mod seccomp;
mod signal;
mod squashfs;
mod stdio;
mod sys;
mod tty;
mod visit;

use std::path::PathBuf;

pub use background::{in_background, Cleaner};
pub use delegate::{enter_user_namespace, join_user_namespace, write_id_maps};
pub use error::{RuntimeError, Step};
pub use exec::{exec, exec_confined, exec_detached, ExecOptions};
pub use monitor::{die_by_signal, last_exit_signal, RelayedSignals};
pub use namespaces::new_network_namespace;
pub use process::{BeforeExec, Container};
pub use resident::shed_startup_pages;
pub use seccomp::{default_seccomp, fake_root_seccomp, seccomp_from_docker_json};
pub use signal::signal_by_name;
pub use squashfs::{mount_squashfs, SquashfsMount};
pub use sys::allocator::keep_allocator_usable_after_fork;
pub use visit::{visit_filesystem, Visit, VISIT_JOIN_FAILED};

/// What to run: a root filesystem and the OCI runtime spec describing the process, its
/// namespaces, id maps and mounts.
#[derive(Debug)]
pub struct Bundle {
    /// The container's root filesystem.
    pub rootfs: Rootfs,
    /// The runtime spec: process, hostname, mounts (in order), namespaces, id maps, masked
    /// and read-only paths, `root.readonly`.
    pub spec: oci_spec::runtime::Spec,
    /// CPUs to restrict the process to, applied before exec; intersected with the current
    /// affinity, never widened.
    pub cpu_affinity: Option<Vec<usize>>,
    /// A private directory the runtime may use (the root's mount point lives here).
    pub state_dir: PathBuf,
    /// Docker's `--init`: the container's first process stays as a minimal init that
    /// forwards signals to the command (run as its child), reaps orphans, and exits with the
    /// command's status. No binary is needed in the image.
    pub init: bool,
    /// Descriptors of the caller that the container's process gets at the same numbers, such
    /// as the socket of a launcher's process-management interface (`PMI_FD`); every other
    /// descriptor above 2 is closed at exec (runc's `--preserve-fds`, by number).
    pub preserve_fds: Vec<i32>,
    /// Confine the process with Docker's default seccomp profile, when the spec has no
    /// `linux.seccomp` of its own. The monitor builds the filter while the container's init
    /// mounts its root, rather than before the init exists.
    pub default_seccomp: Option<DefaultSeccomp>,
    /// A new network namespace made ahead of time ([`new_network_namespace`]), owned by the
    /// user namespace the container's init will be root in: the init joins it where the spec
    /// asks for a new one (and ignores it otherwise), rather than make one on the start's path.
    pub network_namespace: Option<std::os::fd::OwnedFd>,
}

/// Docker's default seccomp profile, for [`Bundle::default_seccomp`].
#[derive(Debug, Clone)]
pub struct DefaultSeccomp {
    /// The capabilities the profile is resolved for (`CAP_SYS_ADMIN` or `SYS_ADMIN`).
    pub caps: Vec<String>,
    /// A directory of the caller's own for compiled programs, reused by later starts with the
    /// same build, kernel and capabilities; created if missing. `None`: compile each time.
    pub cache: Option<PathBuf>,
}

/// Where the root filesystem comes from.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// Image layers, top-most first, stacked by kernel overlayfs inside the container's user
    /// and mount namespace with a writable upper directory. With `root.readonly` the root is
    /// remounted read-only once the mounts are in place (writes to create mount points land in
    /// `upper`, as with Docker's read-only containers).
    Overlay {
        /// Layer directories, top-most first.
        lower: Vec<PathBuf>,
        /// The container's writable layer.
        upper: PathBuf,
        /// overlayfs's work directory, on the same filesystem as `upper`.
        work: PathBuf,
        /// `upper` is deleted once the container has ended (`--rm`): overlayfs then skips
        /// syncing it to disk (`volatile`), which otherwise costs a journal commit of the host
        /// filesystem at every unmount. An upper layer used so cannot be mounted again.
        discard: bool,
    },
    /// Image layers as with `Overlay`, with the writable layer in memory: the upper and work
    /// directories live on a tmpfs mounted for this container alone, under the overlay, and
    /// go with its mount namespace. Nothing is written to the store for it, which may then be
    /// on a file system that cannot hold an upper layer (NFS and other network file systems).
    /// Writes to the root cost memory, charged to the container's cgroup.
    OverlayInMemory {
        /// Layer directories, top-most first.
        lower: Vec<PathBuf>,
    },
    /// An already assembled directory, bind-mounted (recursively) as the root.
    Dir(PathBuf),
}

/// The container process's stdin, stdout and stderr.
#[derive(Debug)]
pub enum Stdio {
    /// The monitor's own 0, 1 and 2.
    Inherit,
    /// A new pseudo-terminal, relayed by the monitor during [`Container::wait`], which puts its
    /// own terminal in raw mode meanwhile and passes window size changes on.
    Tty,
    /// The given files; stdin is `/dev/null` when `None`.
    Files {
        /// Standard input.
        stdin: Option<std::fs::File>,
        /// Standard output.
        stdout: std::fs::File,
        /// Standard error.
        stderr: std::fs::File,
    },
}

/// Sends `signal` to the process `pid` (a container's [`Container::pid`]).
pub fn kill(pid: i32, signal: i32) -> Result<(), RuntimeError> {
    sys::kill(pid, signal).map_err(RuntimeError::sys("kill"))
}

/// Gives the calling thread the lowest priority of normal scheduling (nice 19): the CPU goes
/// to nearly anything else first. For work done ahead of time, which must not slow down the
/// starts it is done for. Not `SCHED_IDLE`: such work takes locks that starts need too (the
/// kernel's `rtnl_lock` while it makes a network namespace), and a thread that runs only on
/// idle CPU time may wait for long, on a busy node, while it holds one.
pub fn run_at_lowest_priority() -> std::io::Result<()> {
    Ok(rustix::process::setpriority_process(
        Some(rustix::thread::gettid()),
        19,
    )?)
}

/// Whether this kernel can hold a container's writable layer in memory
/// ([`Rootfs::OverlayInMemory`]): overlayfs in a user namespace keeps its attributes in `user.*`
/// extended attributes, which tmpfs has since Linux 6.6.
pub fn layer_in_memory_supported() -> bool {
    kernel_at_least((6, 6))
}

/// Whether the running kernel's release is `min` (major, minor) or later.
pub(crate) fn kernel_at_least(min: (u32, u32)) -> bool {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= min
}
