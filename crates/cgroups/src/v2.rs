//! The cgroup v2 manager: one child directory in the unified hierarchy.
//!
//! v2 adds two rules v1 does not have. Controllers reach a child only when its parent lists them
//! in `cgroup.subtree_control`, and a non-root cgroup that holds processes may not enable any
//! there (the "no internal processes" rule). The caller's own cgroup always holds the caller,
//! so unless the controllers are already enabled for its children (a delegated sub-tree) or it
//! is the root, limits cannot be set below it. Moving the caller's processes elsewhere would
//! make the limits possible but would rearrange cgroups the scheduler owns, which Decision 4
//! rules out; `create` reports `NotDelegated` with the reason instead.

use std::path::{Path, PathBuf};

use crate::detect::{mount_roots, own_cgroup_paths, own_dir, UNIFIED};
use crate::error::CgroupError;
use crate::fsutil;
use crate::resources::{self, Resources, SwapLimit};
use crate::v1::check_cpus;
use crate::{CgroupManager, Stats, FREEZE_TIMEOUT, SIGKILL};

/// The controllers Berth sets limits with.
const WANTED: &[&str] = &["cpu", "cpuset", "memory", "pids"];

/// Manages a container's cgroup on the unified hierarchy.
#[derive(Debug)]
pub(crate) struct V2Manager {
    id: String,
    mount: PathBuf,
    parent: Option<PathBuf>,
    dir: Option<PathBuf>,
}

/// Splits a space-separated controller list (`cgroup.controllers`, `cgroup.subtree_control`).
fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The controllers still to enable for children: wanted, offered to the parent, not yet on.
pub(crate) fn controllers_to_enable(available: &str, enabled: &str) -> Vec<String> {
    let (available, enabled) = (words(available), words(enabled));
    WANTED
        .iter()
        .filter(|c| available.iter().any(|a| a == *c) && !enabled.iter().any(|e| e == *c))
        .map(|c| c.to_string())
        .collect()
}

/// Reads the `frozen` entry of a `cgroup.events` text.
pub(crate) fn events_frozen(text: &str) -> Option<bool> {
    text.lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .map(|v| v.trim() == "1")
}

/// Reads `usage_usec` from a `cpu.stat` text, as nanoseconds.
pub(crate) fn cpu_stat_usage_ns(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|us| us.saturating_mul(1000))
}

impl V2Manager {
    pub(crate) fn new(id: &str, mount: &Path) -> Self {
        V2Manager {
            id: id.to_string(),
            mount: mount.to_path_buf(),
            parent: None,
            dir: None,
        }
    }

    /// A manager for a cgroup created earlier, from its path.
    pub(crate) fn at(id: &str, mount: &Path, paths: &[PathBuf]) -> Self {
        let dir = paths.iter().find(|p| p.starts_with(mount)).cloned();
        V2Manager {
            id: id.to_string(),
            mount: mount.to_path_buf(),
            parent: dir.as_ref().and_then(|d| d.parent().map(Path::to_path_buf)),
            dir,
        }
    }

    fn dir(&self) -> Result<&Path, CgroupError> {
        self.dir.as_deref().ok_or_else(|| CgroupError::NotCreated {
            id: self.id.clone(),
        })
    }

    /// Enables the wanted controllers for the parent's children, one at a time so that one
    /// refused controller does not hide which ones were accepted.
    fn enable_controllers(parent: &Path) -> Result<(), CgroupError> {
        let available = fsutil::read(&parent.join("cgroup.controllers"))?;
        let control = parent.join("cgroup.subtree_control");
        let enabled = fsutil::read(&control)?;
        for c in controllers_to_enable(&available, &enabled) {
            let value = format!("+{c}");
            if let Err(e) = fsutil::write(&control, &value) {
                let CgroupError::Write { source, .. } = &e else {
                    return Err(e);
                };
                if fsutil::is_permission(source) {
                    return Err(CgroupError::NotDelegated {
                        path: control,
                        reason: format!(
                            "uid {} may not enable controllers there ({source}); ask for a \
                             delegated cgroup (systemd Delegate=yes, or the scheduler's \
                             delegation)",
                            fsutil::current_uid_text()
                        ),
                    });
                }
                if source.kind() == std::io::ErrorKind::ResourceBusy {
                    return Err(CgroupError::NotDelegated {
                        path: control,
                        reason: format!(
                            "the caller's cgroup {} holds processes itself, and cgroup v2 lets \
                             such a cgroup enable no controllers for children (the \"no \
                             internal processes\" rule); run berth in a cgroup whose \
                             controllers are already enabled for children",
                            parent.display()
                        ),
                    });
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn write_freeze(
        &self,
        value: &str,
        frozen: bool,
        state: &'static str,
    ) -> Result<(), CgroupError> {
        let dir = self.dir()?;
        let path = dir.join("cgroup.freeze");
        if !path.exists() {
            return Err(CgroupError::Unsupported {
                what: if frozen { "pause" } else { "unpause" },
                controller: "freezer (cgroup.freeze, Linux 5.2+)",
                path: dir.to_path_buf(),
            });
        }
        fsutil::write(&path, value)?;
        let events = dir.join("cgroup.events");
        let reached = fsutil::wait_until(FREEZE_TIMEOUT, || {
            Ok(events_frozen(&fsutil::read(&events)?) == Some(frozen))
        })?;
        if reached {
            return Ok(());
        }
        if frozen {
            // A half-frozen container is worse than a running one.
            let _ = fsutil::write(&path, "0");
        }
        Err(CgroupError::Timeout {
            path: events,
            state,
            millis: FREEZE_TIMEOUT.as_millis() as u64,
        })
    }
}

impl V2Manager {
    /// The part of `create` after the parent is known; separate so it can be exercised on a
    /// directory tree that imitates cgroupfs.
    fn create_under(&mut self, parent: PathBuf) -> Result<(), CgroupError> {
        Self::enable_controllers(&parent)?;
        let dir = parent.join(format!("berth-{}", self.id));
        fsutil::mkdir(&dir)?;
        self.parent = Some(parent);
        self.dir = Some(dir);
        Ok(())
    }
}

impl CgroupManager for V2Manager {
    fn create(&mut self) -> Result<(), CgroupError> {
        if self.dir.is_some() {
            return Ok(());
        }
        let own = own_cgroup_paths()?;
        let Some(own_path) = own.get(UNIFIED) else {
            return Err(CgroupError::Parse {
                path: PathBuf::from("/proc/self/cgroup"),
                reason: "no unified (0::) entry, although cgroup2 is mounted".to_string(),
            });
        };
        let roots = mount_roots();
        let root = roots.get(&self.mount).map_or("/", String::as_str);
        let parent = own_dir(&self.mount, root, own_path);
        self.create_under(parent)
    }

    fn apply(&self, r: &Resources) -> Result<Vec<String>, CgroupError> {
        let dir = self.dir()?;
        let available = words(&fsutil::read(&dir.join("cgroup.controllers"))?);
        let has = |c: &str| available.iter().any(|a| a == c);
        let invalid = |what, reason| CgroupError::Invalid {
            what,
            path: dir.to_path_buf(),
            reason,
        };
        let mut warnings = Vec::new();
        let swap = resources::swap_limit(r.memory, r.memory_swap)
            .map_err(|e| invalid("memory-swap", e))?;
        if let Some(memory) = r.memory {
            if has("memory") {
                fsutil::write(
                    &dir.join("memory.max"),
                    &resources::memory_value_v2(Some(memory)),
                )?;
                let swap_path = dir.join("memory.swap.max");
                match swap {
                    Some(s) if swap_path.exists() => {
                        fsutil::write(&swap_path, &s.v2_value(memory))?
                    }
                    Some(SwapLimit::Total(_)) if r.memory_swap.is_some_and(|s| s > 0) => {
                        warnings.push(format!(
                            "swap limit not enforced: the kernel has no swap accounting ({} is missing)",
                            swap_path.display()
                        ));
                    }
                    _ => {}
                }
            } else {
                warnings.push(format!(
                    "memory limit not enforced: the memory controller is not enabled for {}",
                    dir.display()
                ));
            }
        }
        if let Some(cpus) = r.cpus {
            if has("cpu") {
                let value = resources::cpu_max_value(cpus).map_err(|e| invalid("cpus", e))?;
                fsutil::write(&dir.join("cpu.max"), &value)?;
            } else {
                warnings.push(format!(
                    "--cpus not enforced: the cpu controller is not enabled for {}",
                    dir.display()
                ));
            }
        }
        if let Some(cpus) = &r.cpuset_cpus {
            if has("cpuset") {
                if let Some(parent) = &self.parent {
                    let allowed = fsutil::read_opt(&parent.join("cpuset.cpus.effective"))?
                        .unwrap_or_default();
                    check_cpus(cpus, &allowed, dir)?;
                }
                fsutil::write(&dir.join("cpuset.cpus"), cpus.trim())?;
            } else {
                warnings.push(format!(
                    "--cpuset-cpus not enforced by a cgroup: the cpuset controller is not enabled for {}",
                    dir.display()
                ));
            }
        }
        if let Some(bytes) = r.memory_reservation {
            if has("memory") {
                fsutil::write(&dir.join("memory.low"), &bytes.to_string())?;
            } else {
                warnings.push(format!(
                    "--memory-reservation not enforced: the memory controller is not enabled for {}",
                    dir.display()
                ));
            }
        }
        if r.memory_swappiness.is_some() {
            warnings.push("--memory-swappiness not enforced: cgroup v2 has no such setting".into());
        }
        if r.oom_kill_disable {
            warnings.push("--oom-kill-disable not enforced: cgroup v2 has no such setting".into());
        }
        if let Some(shares) = r.cpu_shares {
            if has("cpu") {
                let weight = resources::cpu_weight_from_shares(shares);
                fsutil::write(&dir.join("cpu.weight"), &weight.to_string())?;
            } else {
                warnings.push(format!(
                    "--cpu-shares not enforced: the cpu controller is not enabled for {}",
                    dir.display()
                ));
            }
        }
        if let Some(mems) = &r.cpuset_mems {
            if has("cpuset") {
                if let Some(parent) = &self.parent {
                    let allowed = fsutil::read_opt(&parent.join("cpuset.mems.effective"))?
                        .unwrap_or_default();
                    crate::v1::check_mems(mems, &allowed, dir)?;
                }
                fsutil::write(&dir.join("cpuset.mems"), mems.trim())?;
            } else {
                warnings.push(format!(
                    "--cpuset-mems not enforced by a cgroup: the cpuset controller is not enabled for {}",
                    dir.display()
                ));
            }
        }
        if let Some(limit) = r.pids_limit {
            if has("pids") {
                fsutil::write(&dir.join("pids.max"), &resources::pids_value(limit))?;
            } else {
                warnings.push(format!(
                    "--pids-limit not enforced: the pids controller is not enabled for {}",
                    dir.display()
                ));
            }
        }
        Ok(warnings)
    }

    fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        fsutil::write(&self.dir()?.join("cgroup.procs"), &pid.to_string())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        self.write_freeze("1", true, "frozen 1")
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        self.write_freeze("0", false, "frozen 0")
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = fsutil::read_procs(self.dir()?)?;
        pids.sort_unstable();
        Ok(pids)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let dir = self.dir()?;
        Ok(Stats {
            memory_usage: fsutil::read_u64_opt(&dir.join("memory.current"))?,
            memory_limit: fsutil::read_u64_opt(&dir.join("memory.max"))?,
            cpu_usage_ns: fsutil::read_opt(&dir.join("cpu.stat"))?
                .as_deref()
                .and_then(cpu_stat_usage_ns),
            pids: fsutil::read_u64_opt(&dir.join("pids.current"))?,
        })
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        let dir = self.dir()?;
        let kill_file = dir.join("cgroup.kill");
        // cgroup.kill (Linux 5.14+) kills the whole sub-tree atomically, forks included.
        if signal == SIGKILL && kill_file.exists() {
            return fsutil::write(&kill_file, "1");
        }
        let frozen = signal == SIGKILL && self.freeze().is_ok();
        let result = fsutil::signal_all(&self.pids()?, signal, dir);
        if frozen {
            self.thaw()?;
        }
        result
    }

    fn destroy(&mut self) -> Result<(), CgroupError> {
        if let Some(dir) = &self.dir {
            fsutil::rmdir_retry(dir)?;
            self.dir = None;
        }
        Ok(())
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.dir.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_to_enable_skips_unavailable_and_enabled() {
        assert_eq!(
            controllers_to_enable("cpuset cpu io memory hugetlb pids rdma misc\n", "memory\n"),
            vec!["cpu", "cpuset", "pids"]
        );
        // This machine's hybrid cgroup2 offers only hugetlb.
        assert!(controllers_to_enable("hugetlb\n", "").is_empty());
        assert!(controllers_to_enable("cpu memory\n", "cpu memory\n").is_empty());
    }

    #[test]
    fn events_and_cpu_stat() {
        assert_eq!(events_frozen("populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(events_frozen("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(events_frozen("populated 0\n"), None);
        let stat = "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n";
        assert_eq!(cpu_stat_usage_ns(stat), Some(1_234_000));
        assert_eq!(cpu_stat_usage_ns("nr_periods 0\n"), None);
    }

    /// A plain directory tree with the files a delegated v2 cgroup has: checks which values
    /// `apply` writes where. The kernel's own checks are of course not imitated.
    fn get_in(dir: &Path, f: &str) -> String {
        std::fs::read_to_string(dir.join(f)).unwrap()
    }

    #[test]
    fn apply_writes_v2_values_on_an_imitation_tree() {
        let parent =
            std::env::temp_dir().join(format!("berth-cgroups-v2sim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        std::fs::create_dir_all(&parent).unwrap();
        let put = |p: &Path, f: &str, v: &str| std::fs::write(p.join(f), v).unwrap();
        put(&parent, "cgroup.controllers", "cpuset cpu io memory pids\n");
        put(&parent, "cgroup.subtree_control", "");
        put(&parent, "cpuset.cpus.effective", "0-3\n");
        put(&parent, "cpuset.mems.effective", "0-1\n");
        let mut m = V2Manager::new("sim", &parent);
        m.create_under(parent.clone()).unwrap();
        let dir = parent.join("berth-sim");
        assert!(dir.is_dir());
        // Enabling is one write per controller; a plain file keeps the last one.
        assert_eq!(
            std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap(),
            "+pids"
        );
        put(&dir, "cgroup.controllers", "cpuset cpu memory pids\n");
        for f in [
            "memory.max",
            "memory.swap.max",
            "cpu.max",
            "cpuset.cpus",
            "pids.max",
            "memory.low",
            "cpu.weight",
            "cpuset.mems",
        ] {
            put(&dir, f, "");
        }
        let warnings = m
            .apply(&Resources {
                memory: Some(64 << 20),
                memory_swap: Some(96 << 20),
                cpus: Some(0.5),
                cpuset_cpus: Some("1-2".to_string()),
                pids_limit: Some(20),
                memory_reservation: Some(32 << 20),
                cpu_shares: Some(512),
                cpuset_mems: Some("1".to_string()),
                ..Resources::default()
            })
            .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(get_in(&dir, "memory.low"), (32u64 << 20).to_string());
        assert_eq!(get_in(&dir, "cpu.weight"), "20");
        assert_eq!(get_in(&dir, "cpuset.mems"), "1");
        // v2 has neither: said, not silently dropped.
        let warnings = m
            .apply(&Resources {
                memory_swappiness: Some(10),
                oom_kill_disable: true,
                ..Resources::default()
            })
            .unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let err = m
            .apply(&Resources {
                cpuset_mems: Some("2".to_string()),
                ..Resources::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("not available"), "{err}");
        let get = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(get("memory.max"), "67108864");
        assert_eq!(get("memory.swap.max"), (32u64 << 20).to_string());
        assert_eq!(get("cpu.max"), "50000 100000");
        assert_eq!(get("cpuset.cpus"), "1-2");
        assert_eq!(get("pids.max"), "20");
        let err = m
            .apply(&Resources {
                cpuset_cpus: Some("7".to_string()),
                ..Resources::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("berth-sim"), "{err}");
        // Without the controllers, each limit becomes a warning instead.
        put(&dir, "cgroup.controllers", "\n");
        let warnings = m
            .apply(&Resources {
                memory: Some(1 << 20),
                pids_limit: Some(3),
                ..Resources::default()
            })
            .unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        std::fs::remove_dir_all(&parent).unwrap();
    }

    #[test]
    fn not_created_errors_and_at() {
        let m = V2Manager::new("x", Path::new("/sys/fs/cgroup"));
        assert!(matches!(m.stats(), Err(CgroupError::NotCreated { .. })));
        assert!(m.paths().is_empty());
        let p = PathBuf::from("/sys/fs/cgroup/job/berth-x");
        let m = V2Manager::at("x", Path::new("/sys/fs/cgroup"), std::slice::from_ref(&p));
        assert_eq!(m.paths(), vec![p]);
        assert_eq!(m.parent.as_deref(), Some(Path::new("/sys/fs/cgroup/job")));
    }
}
