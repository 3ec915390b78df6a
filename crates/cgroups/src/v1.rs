//! The cgroup v1 manager: one child directory per controller hierarchy.
//!
//! v1 has a separate tree per hierarchy, and the caller may sit at a different place in each
//! (on this project's development machine only the memory hierarchy puts us below the root).
//! The container's cgroup is therefore created as `berth-<id>` under the caller's own cgroup *of
//! that hierarchy*, once per hierarchy we use. Co-mounted controllers (`cpu,cpuacct`) share one
//! directory. `devices`, `blkio`, `net_*` and named hierarchies are left alone: Berth sets no
//! limits there, and joining them would only add places to clean up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::detect::{mount_roots, own_cgroup_paths, own_dir};
use crate::error::CgroupError;
use crate::fsutil;
use crate::resources::{self, Resources, SwapLimit, V1_UNLIMITED_THRESHOLD};
use crate::{CgroupManager, Stats, FREEZE_TIMEOUT, SIGKILL};

/// The v1 controllers whose hierarchies get a child cgroup.
const USED: &[&str] = &["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"];

/// One v1 hierarchy we manage.
#[derive(Debug)]
struct Hierarchy {
    /// The controllers mounted together in it (only those of [`USED`]).
    controllers: Vec<String>,
    /// Its mount point.
    mount: PathBuf,
    /// The caller's own cgroup in it, known after `create`.
    parent: Option<PathBuf>,
    /// The container's cgroup, known after `create` (or given to [`V1Manager::at`]).
    dir: Option<PathBuf>,
}

/// Manages a container's cgroups on v1 (and the v1 part of a hybrid layout).
#[derive(Debug)]
pub(crate) struct V1Manager {
    id: String,
    hierarchies: Vec<Hierarchy>,
}

impl V1Manager {
    /// A manager for the v1 hierarchies in `controllers` (controller → mount point).
    pub(crate) fn new(id: &str, controllers: &BTreeMap<String, PathBuf>) -> Self {
        let mut by_mount: BTreeMap<&PathBuf, Vec<String>> = BTreeMap::new();
        for (controller, mount) in controllers {
            if USED.contains(&controller.as_str()) {
                by_mount.entry(mount).or_default().push(controller.clone());
            }
        }
        let hierarchies = by_mount
            .into_iter()
            .map(|(mount, controllers)| Hierarchy {
                controllers,
                mount: mount.clone(),
                parent: None,
                dir: None,
            })
            .collect();
        V1Manager {
            id: id.to_string(),
            hierarchies,
        }
    }

    /// A manager for cgroups created earlier (possibly by another process), from their paths:
    /// each path is matched to the hierarchy whose mount point it lies under.
    pub(crate) fn at(id: &str, controllers: &BTreeMap<String, PathBuf>, paths: &[PathBuf]) -> Self {
        let mut m = Self::new(id, controllers);
        for h in &mut m.hierarchies {
            h.dir = paths.iter().find(|p| p.starts_with(&h.mount)).cloned();
            h.parent = h
                .dir
                .as_ref()
                .and_then(|d| d.parent().map(Path::to_path_buf));
        }
        m.hierarchies.retain(|h| h.dir.is_some());
        m
    }

    fn name(&self) -> String {
        format!("berth-{}", self.id)
    }

    /// The container's cgroup directory in the hierarchy of `controller`, if we have one.
    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .and_then(|h| h.dir.as_deref())
    }

    fn parent_of(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .and_then(|h| h.parent.as_deref())
    }

    fn created_dirs(&self) -> Vec<&Path> {
        self.hierarchies
            .iter()
            .filter_map(|h| h.dir.as_deref())
            .collect()
    }

    fn require_created(&self) -> Result<(), CgroupError> {
        if self.created_dirs().is_empty() {
            Err(CgroupError::NotCreated {
                id: self.id.clone(),
            })
        } else {
            Ok(())
        }
    }

    /// A new cpuset cgroup starts with no CPUs and no memory nodes, and the kernel refuses tasks
    /// until both are set; we copy the parent's so the container starts with exactly what the
    /// caller had (narrowed later by `apply`).
    fn init_cpuset(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mut value = fsutil::read(&parent.join(file))?.trim().to_string();
            if value.is_empty() {
                // The parent only inherits its CPUs (clone_children off, never set): its
                // effective set is what its own tasks run on.
                let effective = file.replace("cpuset.", "cpuset.effective_");
                value = fsutil::read_opt(&parent.join(effective))?
                    .unwrap_or_default()
                    .trim()
                    .to_string();
            }
            if value.is_empty() {
                continue;
            }
            let path = dir.join(file);
            fsutil::write(&path, &value).map_err(|e| delegation_error(e, &path))?;
        }
        Ok(())
    }

    fn apply_memory(&self, r: &Resources, warnings: &mut Vec<String>) -> Result<(), CgroupError> {
        let Some(dir) = self.dir_of("memory") else {
            warnings.push("memory limit not enforced: no memory cgroup hierarchy".to_string());
            return Ok(());
        };
        let swap = resources::swap_limit(r.memory, r.memory_swap).map_err(|reason| {
            CgroupError::Invalid {
                what: "memory-swap",
                path: dir.to_path_buf(),
                reason,
            }
        })?;
        let Some(memory) = r.memory else {
            return Ok(());
        };
        let mem_path = dir.join("memory.limit_in_bytes");
        let memsw_path = dir.join("memory.memsw.limit_in_bytes");
        let mem_value = resources::memory_value_v1(Some(memory));
        let memsw_current = fsutil::read_u64_opt(&memsw_path)?;
        match (swap, memsw_current) {
            (Some(swap), Some(current)) => {
                // The kernel keeps memory ≤ memory+swap at every instant, so the order of the two
                // writes depends on whether the memory limit grows past the current total.
                let swap_value = swap.v1_value();
                if memory > current {
                    fsutil::write(&memsw_path, &swap_value)?;
                    fsutil::write(&mem_path, &mem_value)?;
                } else {
                    fsutil::write(&mem_path, &mem_value)?;
                    fsutil::write(&memsw_path, &swap_value)?;
                }
            }
            (swap, None) => {
                fsutil::write(&mem_path, &mem_value)?;
                // Only an explicit --memory-swap deserves a warning; Docker's implicit default
                // silently does nothing without swap accounting, as in Docker.
                if matches!(swap, Some(SwapLimit::Total(_))) && r.memory_swap.is_some_and(|s| s > 0)
                {
                    warnings.push(format!(
                        "swap limit not enforced: the kernel has no swap accounting ({} is missing)",
                        memsw_path.display()
                    ));
                }
            }
            (None, Some(_)) => fsutil::write(&mem_path, &mem_value)?,
        }
        Ok(())
    }

    fn apply_cpus(&self, cpus: f64, warnings: &mut Vec<String>) -> Result<(), CgroupError> {
        let Some(dir) = self.dir_of("cpu") else {
            warnings.push("--cpus not enforced: no cpu cgroup hierarchy".to_string());
            return Ok(());
        };
        let (quota, period) =
            resources::cpu_quota(cpus).map_err(|reason| CgroupError::Invalid {
                what: "cpus",
                path: dir.to_path_buf(),
                reason,
            })?;
        fsutil::write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
        fsutil::write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())
    }

    fn apply_cpuset(&self, cpus: &str, warnings: &mut Vec<String>) -> Result<(), CgroupError> {
        let Some(dir) = self.dir_of("cpuset") else {
            warnings
                .push("--cpuset-cpus not enforced by a cgroup: no cpuset hierarchy".to_string());
            return Ok(());
        };
        if let Some(parent) = self.parent_of("cpuset") {
            let allowed = fsutil::read_opt(&parent.join("cpuset.effective_cpus"))?
                .or(fsutil::read_opt(&parent.join("cpuset.cpus"))?)
                .unwrap_or_default();
            check_cpus(cpus, &allowed, dir)?;
        }
        fsutil::write(&dir.join("cpuset.cpus"), cpus.trim())
    }

    /// `--memory-reservation`, `--memory-swappiness` and `--oom-kill-disable`.
    fn apply_memory_policy(
        &self,
        r: &Resources,
        warnings: &mut Vec<String>,
    ) -> Result<(), CgroupError> {
        let writes = [
            (
                "memory.soft_limit_in_bytes",
                r.memory_reservation.map(|b| b.to_string()),
            ),
            (
                "memory.swappiness",
                r.memory_swappiness.map(|v| v.to_string()),
            ),
            ("memory.oom_control", r.oom_kill_disable.then(|| "1".into())),
        ];
        if writes.iter().all(|(_, v)| v.is_none()) {
            return Ok(());
        }
        let Some(dir) = self.dir_of("memory") else {
            warnings.push("memory settings not enforced: no memory cgroup hierarchy".into());
            return Ok(());
        };
        for (file, value) in writes {
            if let Some(value) = value {
                fsutil::write(&dir.join(file), &value)?;
            }
        }
        Ok(())
    }

    fn apply_mems(&self, mems: &str, warnings: &mut Vec<String>) -> Result<(), CgroupError> {
        let Some(dir) = self.dir_of("cpuset") else {
            warnings.push("--cpuset-mems not enforced: no cpuset hierarchy".into());
            return Ok(());
        };
        if let Some(parent) = self.parent_of("cpuset") {
            let allowed = fsutil::read_opt(&parent.join("cpuset.effective_mems"))?
                .or(fsutil::read_opt(&parent.join("cpuset.mems"))?)
                .unwrap_or_default();
            check_mems(mems, &allowed, dir)?;
        }
        fsutil::write(&dir.join("cpuset.mems"), mems.trim())
    }

    fn apply_pids(&self, limit: i64, warnings: &mut Vec<String>) -> Result<(), CgroupError> {
        let Some(dir) = self.dir_of("pids") else {
            warnings.push("--pids-limit not enforced: no pids cgroup hierarchy".to_string());
            return Ok(());
        };
        fsutil::write(&dir.join("pids.max"), &resources::pids_value(limit))
    }

    fn freezer_dir(&self, what: &'static str) -> Result<&Path, CgroupError> {
        self.require_created()?;
        self.dir_of("freezer")
            .ok_or_else(|| CgroupError::Unsupported {
                what,
                controller: "freezer",
                path: self
                    .created_dirs()
                    .first()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default(),
            })
    }

    /// Writes `state` to `freezer.state` until the kernel reports it. Freezing is asynchronous
    /// and can stall in `FREEZING` when tasks fork meanwhile; writing again retries it.
    fn set_freezer(&self, state: &'static str, what: &'static str) -> Result<(), CgroupError> {
        let path = self.freezer_dir(what)?.join("freezer.state");
        fsutil::write(&path, state)?;
        let reached = fsutil::wait_until(FREEZE_TIMEOUT, || {
            if fsutil::read(&path)?.trim() == state {
                return Ok(true);
            }
            fsutil::write(&path, state)?;
            Ok(false)
        })?;
        if reached {
            return Ok(());
        }
        if state == "FROZEN" {
            // A half-frozen container is worse than a running one: give it back its CPUs.
            let _ = fsutil::write(&path, "THAWED");
        }
        Err(CgroupError::Timeout {
            path,
            state,
            millis: FREEZE_TIMEOUT.as_millis() as u64,
        })
    }
}

/// Refuses CPUs outside what the caller was given (Decision 9), naming them.
pub(crate) fn check_cpus(wanted: &str, allowed: &str, dir: &Path) -> Result<(), CgroupError> {
    let invalid = |reason| CgroupError::Invalid {
        what: "cpuset-cpus",
        path: dir.to_path_buf(),
        reason,
    };
    let outside = resources::cpus_outside(wanted, allowed).map_err(invalid)?;
    if !outside.is_empty() && !allowed.trim().is_empty() {
        return Err(invalid(format!(
            "CPUs {outside:?} are outside the CPUs this job may use ({})",
            allowed.trim()
        )));
    }
    Ok(())
}

/// Refuses memory nodes outside those the caller may use, naming them.
pub(crate) fn check_mems(wanted: &str, allowed: &str, dir: &Path) -> Result<(), CgroupError> {
    let invalid = |reason| CgroupError::Invalid {
        what: "cpuset-mems",
        path: dir.to_path_buf(),
        reason,
    };
    let outside = resources::list_outside(wanted, allowed, "--cpuset-mems").map_err(invalid)?;
    if !outside.is_empty() && !allowed.trim().is_empty() {
        return Err(invalid(format!(
            "memory nodes {outside:?} are not available (this job may use {})",
            allowed.trim()
        )));
    }
    Ok(())
}

/// Turns a permission error from a write during `create` into `NotDelegated`.
pub(crate) fn delegation_error(e: CgroupError, path: &Path) -> CgroupError {
    match e {
        CgroupError::Write { source, .. } if fsutil::is_permission(&source) => {
            CgroupError::NotDelegated {
                path: path.to_path_buf(),
                reason: format!(
                    "writing it was refused ({source}) for uid {}",
                    fsutil::current_uid_text()
                ),
            }
        }
        other => other,
    }
}

impl CgroupManager for V1Manager {
    fn create(&mut self) -> Result<(), CgroupError> {
        if !self.created_dirs().is_empty() {
            return Ok(());
        }
        let own = own_cgroup_paths()?;
        let roots = mount_roots();
        let name = self.name();
        let mut made: Vec<PathBuf> = Vec::new();
        let result = (|| {
            for h in &mut self.hierarchies {
                let Some(own_path) = h.controllers.iter().find_map(|c| own.get(c)) else {
                    // Mounted but not ours (absent from /proc/self/cgroup): leave it alone.
                    continue;
                };
                let root = roots.get(&h.mount).map_or("/", String::as_str);
                let parent = own_dir(&h.mount, root, own_path);
                let dir = parent.join(&name);
                fsutil::mkdir(&dir)?;
                made.push(dir.clone());
                if h.controllers.iter().any(|c| c == "cpuset") {
                    Self::init_cpuset(&parent, &dir)?;
                }
                h.parent = Some(parent);
                h.dir = Some(dir);
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Leave nothing half-made behind: remove what this call created, newest first.
            for dir in made.iter().rev() {
                let _ = fsutil::rmdir_retry(dir);
            }
            for h in &mut self.hierarchies {
                h.parent = None;
                h.dir = None;
            }
            return Err(e);
        }
        if made.is_empty() {
            return Err(CgroupError::NoCgroupFs {
                path: PathBuf::from("/proc/self/cgroup"),
            });
        }
        Ok(())
    }

    fn apply(&self, r: &Resources) -> Result<Vec<String>, CgroupError> {
        self.require_created()?;
        let mut warnings = Vec::new();
        if r.memory.is_some() || r.memory_swap.is_some() {
            self.apply_memory(r, &mut warnings)?;
        }
        if let Some(cpus) = r.cpus {
            self.apply_cpus(cpus, &mut warnings)?;
        }
        if let Some(cpus) = &r.cpuset_cpus {
            self.apply_cpuset(cpus, &mut warnings)?;
        }
        if let Some(limit) = r.pids_limit {
            self.apply_pids(limit, &mut warnings)?;
        }
        self.apply_memory_policy(r, &mut warnings)?;
        if let Some(shares) = r.cpu_shares {
            match self.dir_of("cpu") {
                Some(dir) => fsutil::write(&dir.join("cpu.shares"), &shares.to_string())?,
                None => warnings.push("--cpu-shares not enforced: no cpu cgroup hierarchy".into()),
            }
        }
        if let Some(mems) = &r.cpuset_mems {
            self.apply_mems(mems, &mut warnings)?;
        }
        Ok(warnings)
    }

    fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        self.require_created()?;
        for dir in self.created_dirs() {
            fsutil::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        self.set_freezer("FROZEN", "pause")
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        self.set_freezer("THAWED", "unpause")
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        self.require_created()?;
        let mut all = Vec::new();
        for dir in self.created_dirs() {
            all.extend(fsutil::read_procs(dir)?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        self.require_created()?;
        let mut stats = Stats::default();
        if let Some(dir) = self.dir_of("memory") {
            stats.memory_usage = fsutil::read_u64_opt(&dir.join("memory.usage_in_bytes"))?;
            stats.memory_limit = fsutil::read_u64_opt(&dir.join("memory.limit_in_bytes"))?
                .filter(|&l| l < V1_UNLIMITED_THRESHOLD);
        }
        if let Some(dir) = self.dir_of("cpuacct") {
            stats.cpu_usage_ns = fsutil::read_u64_opt(&dir.join("cpuacct.usage"))?;
        }
        if let Some(dir) = self.dir_of("pids") {
            stats.pids = fsutil::read_u64_opt(&dir.join("pids.current"))?;
        }
        Ok(stats)
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        self.require_created()?;
        // Freezing first keeps a fork loop from outrunning us; signals are delivered on thaw.
        let frozen = signal == SIGKILL && self.dir_of("freezer").is_some() && self.freeze().is_ok();
        let dir = self.created_dirs()[0].to_path_buf();
        let result = fsutil::signal_all(&self.pids()?, signal, &dir);
        if frozen {
            self.thaw()?;
        }
        result
    }

    fn destroy(&mut self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for h in self.hierarchies.iter_mut().rev() {
            let Some(dir) = &h.dir else { continue };
            match fsutil::rmdir_retry(dir) {
                Ok(()) => h.dir = None,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.created_dirs()
            .into_iter()
            .map(Path::to_path_buf)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, PathBuf> {
        let mut c = BTreeMap::new();
        for (k, v) in [
            ("cpu", "/sys/fs/cgroup/cpu,cpuacct"),
            ("cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
            ("memory", "/sys/fs/cgroup/memory"),
            ("devices", "/sys/fs/cgroup/devices"),
            ("name=systemd", "/sys/fs/cgroup/systemd"),
        ] {
            c.insert(k.to_string(), PathBuf::from(v));
        }
        c
    }

    #[test]
    fn comounted_hierarchies_get_one_dir_and_unused_ones_none() {
        let m = V1Manager::new("abc", &sample());
        assert_eq!(m.hierarchies.len(), 2);
        assert_eq!(m.hierarchies[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m.hierarchies[1].controllers, vec!["memory"]);
        assert!(m.paths().is_empty());
        assert!(matches!(m.pids(), Err(CgroupError::NotCreated { .. })));
    }

    #[test]
    fn at_matches_paths_to_hierarchies() {
        let paths = vec![
            PathBuf::from("/sys/fs/cgroup/memory/job/berth-abc"),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth-abc"),
        ];
        let m = V1Manager::at("abc", &sample(), &paths);
        assert_eq!(
            m.dir_of("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/berth-abc"))
        );
        assert_eq!(
            m.parent_of("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/job"))
        );
        assert_eq!(m.paths().len(), 2);
    }

    #[test]
    fn cpus_outside_the_job_are_refused() {
        let dir = Path::new("/sys/fs/cgroup/cpuset/berth-x");
        assert!(check_cpus("0", "0-1", dir).is_ok());
        let err = check_cpus("2-3", "0-1", dir).unwrap_err().to_string();
        assert!(err.contains("[2, 3]") && err.contains("berth-x"), "{err}");
    }
}
