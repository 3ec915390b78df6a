//! The one error type of this crate.
//!
//! Every variant that comes from the filesystem names the file or directory involved: a
//! cgroup problem on a cluster node is only ever diagnosed by looking at that path.

use std::io;
use std::path::PathBuf;

/// What can go wrong while finding, creating, configuring or removing a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A value could not be written to a cgroup file.
    #[error("failed to write {value} to {path}: {source}")]
    Write {
        /// What we tried to write.
        value: String,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A cgroup directory could not be created for a reason other than permissions.
    #[error("failed to create cgroup {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A cgroup directory could not be removed.
    #[error("failed to remove cgroup {path}: {source}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The caller may not create or configure a child of its own cgroup. The caller should warn
    /// once and carry on without cgroup limits (CPU affinity still narrows the CPUs).
    #[error("cgroup {path} is not delegated to this user: {reason}")]
    NotDelegated {
        /// The cgroup (or cgroup file) we were refused.
        path: PathBuf,
        /// Why, in words a user can act on.
        reason: String,
    },
    /// The container's cgroup exists already; we never adopt a directory we did not create.
    #[error("cgroup {path} already exists")]
    AlreadyExists {
        /// The directory.
        path: PathBuf,
    },
    /// No cgroup filesystem is mounted, or none that this process belongs to.
    #[error("no usable cgroup hierarchy found in {path}")]
    NoCgroupFs {
        /// The file we looked in (normally `/proc/self/mountinfo`).
        path: PathBuf,
    },
    /// A kernel file did not have the expected format.
    #[error("malformed {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A requested limit is not valid on its own or not within what the caller was given.
    #[error("invalid {what} for {path}: {reason}")]
    Invalid {
        /// The limit (`memory`, `cpus`, ...).
        what: &'static str,
        /// The cgroup it was meant for.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A state change (freezing) did not complete in time.
    #[error("{path} did not reach {state} within {millis} ms")]
    Timeout {
        /// The file we watched.
        path: PathBuf,
        /// The state we waited for.
        state: &'static str,
        /// How long we waited.
        millis: u64,
    },
    /// The operation needs a controller this machine does not offer to us.
    #[error("{what} needs the {controller} controller, which is not available under {path}")]
    Unsupported {
        /// The operation.
        what: &'static str,
        /// The missing controller.
        controller: &'static str,
        /// Where we looked.
        path: PathBuf,
    },
    /// An operation that needs the cgroup was called before `create` (or after `destroy`).
    #[error("the cgroup for container {id} has not been created")]
    NotCreated {
        /// The container id.
        id: String,
    },
    /// A signal could not be delivered to a process of the cgroup.
    #[error("failed to send signal {signal} to process {pid} of {path}: {source}")]
    Signal {
        /// The signal number.
        signal: i32,
        /// The process.
        pid: i32,
        /// The cgroup it was listed in.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl CgroupError {
    /// True when the caller simply lacks delegation; callers fall back instead of failing.
    pub fn is_not_delegated(&self) -> bool {
        matches!(self, CgroupError::NotDelegated { .. })
    }
}
