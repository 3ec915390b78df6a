//! Resource limits for Berth containers, set in a child of the caller's own cgroup.
//!
//! On a cluster the batch scheduler has already put every job step in a cgroup: that is how it
//! accounts memory, enforces the allocation, suspends a job and kills what is left at the end.
//! A container engine that created its cgroups somewhere else (a daemon's slice, a fixed path
//! under the root) would take the container out of the scheduler's sight. Berth therefore puts
//! a container in `berth-<id>` directly *below the cgroup the caller already is in*, separately
//! in every hierarchy, and only ever narrows what that cgroup allows (design Decisions 4 and 9).
//! The kernel's hierarchical limits then guarantee that the job's limits still hold, and the
//! scheduler's freeze and kill still reach the container's processes.
//!
//! Three layouts exist in the wild and all three are handled:
//!
//! * **v2** (the unified hierarchy alone): one directory; controllers must be enabled in the
//!   parent's `cgroup.subtree_control`, which v2 allows only for delegated or process-free
//!   cgroups — see the `v2` module for what is reported when it is not possible.
//! * **v1**: one directory per hierarchy (`cpu`, `cpuacct`, `cpuset`, `memory`, `pids`,
//!   `freezer`), each under the caller's cgroup *of that hierarchy*; new cpusets get their
//!   parent's CPUs and memory nodes before any task joins.
//! * **hybrid**: v1 hierarchies plus a cgroup2 mount holding the left-over controllers (on
//!   Berth's development machine that is only `hugetlb`); the v1 manager is used.
//!
//! Without delegation (an unprivileged user facing root-owned hierarchies) [`CgroupManager::create`]
//! returns [`CgroupError::NotDelegated`]; the engine warns once and narrows CPUs with affinity
//! alone. Everything here is plain file I/O on cgroupfs, so the same code serves root and
//! rootless callers; the one exception is delivering signals in [`CgroupManager::kill_all`].
//!
//! ```no_run
//! use berth_cgroups::{detect, manager_for, Resources};
//! let layout = detect()?;
//! let mut cg = manager_for("0123abcd", &layout);
//! match cg.create() {
//!     Ok(()) => {
//!         for w in cg.apply(&Resources { memory: Some(64 << 20), ..Resources::default() })? {
//!             eprintln!("warning: {w}");
//!         }
//!     }
//!     Err(e) if e.is_not_delegated() => eprintln!("warning: {e}; limits not enforced"),
//!     Err(e) => return Err(e),
//! }
//! # Ok::<(), berth_cgroups::CgroupError>(())
//! ```

#![deny(missing_docs)]

mod detect;
mod error;
mod fsutil;
mod resources;
mod v1;
mod v2;

use std::path::PathBuf;
use std::time::Duration;

pub use detect::{
    detect, layout_from_mounts, own_cgroup_paths, parse_mountinfo, parse_proc_cgroup, CgroupMount,
    Layout, UNIFIED,
};
pub use error::CgroupError;
pub use resources::{
    cpu_max_value, cpu_quota, cpu_weight_from_shares, list_outside, memory_value_v1,
    memory_value_v2, parse_cpu_list, pids_value, swap_limit, Resources, SwapLimit, CFS_PERIOD_US,
    MIN_CFS_QUOTA_US,
};

/// The signal number of SIGKILL, for [`CgroupManager::kill_all`].
pub const SIGKILL: i32 = 9;

/// The signal number of SIGTERM, for [`CgroupManager::kill_all`].
pub const SIGTERM: i32 = 15;

/// How long freezing may take before it is reported as failed.
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Usage figures for `berth stats`. `None` means unknown (the controller is not there) or, for
/// `memory_limit`, unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory in use by the container, in bytes (page cache included, as the kernel counts it).
    pub memory_usage: Option<u64>,
    /// The container's memory limit in bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// CPU time used by all its processes, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// How many processes (tasks) it has.
    pub pids: Option<u64>,
}

/// One container's cgroup(s). Create, configure, populate, observe, remove.
pub trait CgroupManager: Send + std::fmt::Debug {
    /// Creates the container's cgroup, `berth-<id>`, as a child of the caller's own cgroup
    /// (from `/proc/self/cgroup`, per hierarchy) — never elsewhere, so a Slurm step keeps
    /// tracking it. Returns [`CgroupError::NotDelegated`] when the caller may not create it
    /// (rootless without delegation, or v2's no-internal-processes rule); the caller then warns
    /// once and falls back to CPU affinity. On error nothing is left behind. Calling it again
    /// after success does nothing.
    fn create(&mut self) -> Result<(), CgroupError>;

    /// Sets the limits. Returns one warning per limit this layout cannot enforce (no such
    /// hierarchy, controller not enabled, no swap accounting); invalid values, and CPUs outside
    /// the caller's own cpuset, are errors.
    fn apply(&self, r: &Resources) -> Result<Vec<String>, CgroupError>;

    /// Moves process `pid` into the container's cgroup in every hierarchy we created. Done
    /// before the process executes the container's program, so that its children are born
    /// inside.
    fn add_pid(&self, pid: i32) -> Result<(), CgroupError>;

    /// Freezes every process (`docker pause`); returns once the kernel reports them frozen.
    fn freeze(&self) -> Result<(), CgroupError>;

    /// Thaws what [`freeze`](CgroupManager::freeze) froze.
    fn thaw(&self) -> Result<(), CgroupError>;

    /// The processes now in the container's cgroup(s), sorted.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;

    /// Current usage, for `berth stats`.
    fn stats(&self) -> Result<Stats, CgroupError>;

    /// Sends `signal` to every process in the cgroup. For SIGKILL the group is frozen first (or
    /// v2's `cgroup.kill` is used) so that forking processes cannot escape.
    fn kill_all(&self, signal: i32) -> Result<(), CgroupError>;

    /// Removes the cgroup directories, retrying briefly while the last processes exit. It kills
    /// nothing: call [`kill_all`](CgroupManager::kill_all) first if processes may remain.
    /// Directories already gone are fine.
    fn destroy(&mut self) -> Result<(), CgroupError>;

    /// The cgroup directories created (one per hierarchy on v1), to record in the container's
    /// state so other Berth commands can find them with [`manager_at`].
    fn paths(&self) -> Vec<PathBuf>;
}

/// The manager for container `id` on this layout. Nothing is touched until
/// [`CgroupManager::create`].
pub fn manager_for(id: &str, layout: &Layout) -> Box<dyn CgroupManager> {
    match layout {
        Layout::V2 { mount } => Box::new(v2::V2Manager::new(id, mount)),
        Layout::V1 { controllers } => Box::new(v1::V1Manager::new(id, controllers)),
        Layout::Hybrid { v1, .. } => Box::new(v1::V1Manager::new(id, v1)),
    }
}

/// A manager for cgroups created earlier, possibly by another Berth process, given the
/// [`CgroupManager::paths`] recorded then; `berth pause`, `stats` and `rm` use it. Paths that
/// lie under no hierarchy of `layout` are ignored.
pub fn manager_at(id: &str, layout: &Layout, paths: &[PathBuf]) -> Box<dyn CgroupManager> {
    match layout {
        Layout::V2 { mount } => Box::new(v2::V2Manager::at(id, mount, paths)),
        Layout::V1 { controllers } => Box::new(v1::V1Manager::at(id, controllers, paths)),
        Layout::Hybrid { v1, .. } => Box::new(v1::V1Manager::at(id, v1, paths)),
    }
}
