//! `berth update`: new resource limits for containers, in their records and, for running ones,
//! in their cgroups at once.

use anyhow::{bail, Result};
use berth_cli::UpdateArgs;
use berth_store::ContainerRecord;
use serde_json::{json, Value};

use crate::dispatch::host::effective_status;
use crate::dispatch::limits;
use crate::dispatch::run_flags::parse_bytes;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn update(s: &Settings, a: &UpdateArgs) -> Result<u8> {
    let given = a.limits.cpus.is_some()
        || a.limits.cpu_quota.is_some()
        || a.limits.cpu_period.is_some()
        || a.limits.cpu_shares.is_some()
        || a.limits.cpuset_cpus.is_some()
        || a.limits.cpuset_mems.is_some()
        || a.limits.memory.is_some()
        || a.limits.memory_reservation.is_some()
        || a.limits.memory_swap.is_some()
        || a.limits.pids_limit.is_some()
        || a.restart.is_some();
    if !given {
        bail!("you must provide one or more flags when using this command");
    }
    if let Some(policy) = a.restart.as_deref().filter(|p| *p != "no") {
        bail!("--restart {policy}: no daemon restarts Berth's containers; only \"no\" is accepted");
    }
    // The flags given, by run's rules; what they leave of the record stays valid.
    crate::dispatch::run_flags::cpus(&a.limits)?;
    let store = s.open_store()?;
    let p = Printer::new(false);
    let mut status = 0;
    for name in &a.containers {
        let done = store
            .lookup_container(name)
            .map_err(anyhow::Error::from)
            .and_then(|rec| update_one(&store, &rec, a, &p));
        match done {
            Ok(()) => p.out(name),
            Err(e) => {
                crate::printer::error(&e.context(format!("cannot update container {name}")), false);
                status = 1;
            }
        }
    }
    Ok(status)
}

fn update_one(
    store: &berth_store::Store,
    rec: &ContainerRecord,
    a: &UpdateArgs,
    p: &Printer,
) -> Result<()> {
    let mut h = rec.host_config.clone();
    let old_memory = h["Memory"].as_u64().unwrap_or(0);
    if let Some(m) = &a.limits.memory {
        h["Memory"] = json!(parse_bytes(m)?);
    }
    let memory = h["Memory"].as_u64().unwrap_or(0);
    // As Docker: the swap limit stays (a memory limit raised past it is refused) unless given;
    // a first memory limit gets the default, twice the memory.
    match a.limits.memory_swap.as_deref().map(str::trim) {
        Some("-1") => h["MemorySwap"] = json!(-1),
        Some(s) => h["MemorySwap"] = json!(parse_bytes(s)?),
        None if old_memory == 0 && memory > 0 => h["MemorySwap"] = json!(memory * 2),
        None => {}
    }
    if let Some(r) = &a.limits.memory_reservation {
        h["MemoryReservation"] = json!(parse_bytes(r)?);
    }
    if let Some(c) = a.limits.cpus {
        if !(c > 0.0 && c.is_finite()) {
            bail!("invalid --cpus {c}: it must be a positive number");
        }
        h["NanoCpus"] = json!((c * 1e9) as u64);
    }
    if a.limits.cpu_quota.is_some() || a.limits.cpu_period.is_some() {
        let quota = a.limits.cpu_quota.or(h["CpuQuota"].as_i64()).unwrap_or(0);
        let period = a
            .limits
            .cpu_period
            .or(h["CpuPeriod"].as_u64())
            .filter(|p| *p > 0);
        h["CpuQuota"] = json!(quota);
        h["CpuPeriod"] = json!(period.unwrap_or(0));
        let nano = (quota > 0).then(|| quota as f64 / period.unwrap_or(100_000) as f64 * 1e9);
        h["NanoCpus"] = json!(nano.map_or(0, |n| n as u64));
    }
    let set = |h: &mut Value, key: &str, v: Value| h[key] = v;
    if let Some(c) = a.limits.cpu_shares {
        set(&mut h, "CpuShares", json!(c));
    }
    if let Some(c) = &a.limits.cpuset_cpus {
        set(&mut h, "CpusetCpus", json!(c.trim()));
    }
    if let Some(m) = &a.limits.cpuset_mems {
        set(&mut h, "CpusetMems", json!(m.trim()));
    }
    if let Some(n) = a.limits.pids_limit {
        set(&mut h, "PidsLimit", json!(n));
    }
    limits::validate(&h)?;
    let st = store.container_state(&rec.id)?;
    if matches!(effective_status(&st).as_str(), "running" | "paused") {
        if st.cgroups.is_empty() {
            p.warn(format!(
                "container {} was started without limits, so it has no cgroup of its own: the \
                 new limits apply from its next start",
                rec.name
            ));
        } else {
            let layout = berth_cgroups::detect()?;
            let m = berth_cgroups::manager_at(&rec.id[..12], &layout, &st.cgroups);
            for w in m.apply(&limits::resources(&h))? {
                p.warn(w);
            }
        }
    }
    let mut updated = rec.clone();
    updated.host_config = h;
    store.update_container(&updated)?;
    Ok(())
}
