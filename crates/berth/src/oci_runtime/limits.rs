//! A bundle's `linux.resources`, applied as `berth run` applies `--memory`, `--cpus`,
//! `--cpuset-cpus` and `--pids-limit`: in a child cgroup of the caller's own (decision 4), so
//! a Slurm step keeps tracking the container. Device rules are left to the caller's cgroup.

use std::path::PathBuf;

use anyhow::Result;
use berth_cgroups::{CgroupError, CgroupManager, Resources};
use oci_spec::runtime::Spec;

/// The limits a spec asks for, in Docker's terms.
pub fn from_spec(spec: &Spec) -> Resources {
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return Resources::default();
    };
    let memory = r.memory().as_ref();
    let cpu = r.cpu().as_ref();
    Resources {
        memory: memory
            .and_then(|m| m.limit())
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > 0),
        memory_swap: memory.and_then(|m| m.swap()).filter(|s| *s != 0),
        cpus: cpu.and_then(|c| match (c.quota(), c.period()) {
            (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
            _ => None,
        }),
        cpuset_cpus: cpu.and_then(|c| c.cpus().clone()).filter(|s| !s.is_empty()),
        pids_limit: r.pids().as_ref().map(|p| p.limit()),
        memory_reservation: memory
            .and_then(|m| m.reservation())
            .and_then(|r| u64::try_from(r).ok())
            .filter(|r| *r > 0),
        memory_swappiness: memory.and_then(|m| m.swappiness()),
        oom_kill_disable: memory.and_then(|m| m.disable_oom_killer()) == Some(true),
        cpu_shares: cpu.and_then(|c| c.shares()).filter(|s| *s > 0),
        cpuset_mems: cpu.and_then(|c| c.mems().clone()).filter(|s| !s.is_empty()),
    }
}

/// Creates the container's cgroup with `spec`'s limits and moves `pid` into it; `None` when the
/// spec sets none. Without delegation the limits are not enforced, with a warning on stderr.
pub fn apply(id: &str, spec: &Spec, pid: i32) -> Result<Option<Box<dyn CgroupManager>>> {
    let r = from_spec(spec);
    if r.is_empty() {
        return Ok(None);
    }
    let layout = berth_cgroups::detect()?;
    let mut m = berth_cgroups::manager_for(&format!("oci-{id}"), &layout);
    match m.create() {
        Ok(()) => {}
        Err(e @ CgroupError::NotDelegated { .. }) => {
            eprintln!("warning: linux.resources not enforced ({e})");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    let applied = m.apply(&r).and_then(|warnings| {
        for w in warnings {
            eprintln!("warning: {w}");
        }
        m.add_pid(pid)
    });
    if let Err(e) = applied {
        let _ = m.destroy();
        return Err(e.into());
    }
    Ok(Some(m))
}

/// Removes a cgroup recorded at `paths` whose monitor is gone.
pub fn remove(id: &str, paths: &[PathBuf]) {
    if paths.is_empty() {
        return;
    }
    if let Ok(layout) = berth_cgroups::detect() {
        let _ = berth_cgroups::manager_at(&format!("oci-{id}"), &layout, paths).destroy();
    }
}
