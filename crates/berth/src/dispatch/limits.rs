//! The cgroup settings of `run` and `create` beyond the plain limits: `--memory-swap`,
//! `--memory-reservation`, `--memory-swappiness`, `--oom-kill-disable`, `--cpu-shares` and
//! `--cpuset-mems`, checked with Docker's rules and kept in the record's `HostConfig` under
//! Docker's names; and the [`Resources`] a start asks the cgroup manager for.

use anyhow::{bail, Context, Result};
use berth_cgroups::Resources;
use berth_cli::RunArgs;
use serde_json::{json, Value};

use super::run_flags::parse_bytes;

/// Docker's smallest memory limit and reservation.
const MIN_MEMORY: u64 = 6 << 20;

/// The `HostConfig` entries of these flags, once Docker's rules accept them ([`validate`]);
/// `memory` is `--memory` in bytes. Disabling the out-of-memory killer without a memory limit
/// gets Docker's warning.
pub fn host_config(
    a: &RunArgs,
    memory: Option<u64>,
    warnings: &mut Vec<String>,
) -> Result<Vec<(&'static str, Value)>> {
    let memory = memory.filter(|m| *m > 0);
    let swap: i64 = match a.limits.memory_swap.as_deref().map(str::trim) {
        None => 0,
        Some("-1") => -1,
        Some(s) => i64::try_from(parse_bytes(s)?).context("--memory-swap is too large")?,
    };
    // As Docker records it: twice the memory when only --memory is given.
    let swap = match (memory, swap) {
        (Some(m), 0) => i64::try_from(m.saturating_mul(2)).unwrap_or(i64::MAX),
        _ => swap,
    };
    let reservation = a
        .limits
        .memory_reservation
        .as_deref()
        .map(parse_bytes)
        .transpose()?
        .unwrap_or(0);
    let swappiness = a.memory_swappiness.filter(|v| *v != -1);
    if a.oom_kill_disable && memory.is_none() {
        warnings.push(
            "OOM killer is disabled for the container, but no memory limit is set, this can \
             result in the system running out of resources."
                .into(),
        );
    }
    let mems = a.limits.cpuset_mems.as_deref().map(str::trim);
    let entries = vec![
        ("MemorySwap", json!(swap)),
        ("MemoryReservation", json!(reservation)),
        ("MemorySwappiness", json!(swappiness)),
        ("OomKillDisable", json!(a.oom_kill_disable)),
        ("CpuShares", json!(a.limits.cpu_shares.unwrap_or(0))),
        ("CpusetMems", json!(mems.unwrap_or_default())),
    ];
    let mut checked = serde_json::Map::new();
    checked.insert("Memory".into(), json!(memory.unwrap_or(0)));
    checked.extend(entries.iter().map(|(k, v)| (k.to_string(), v.clone())));
    validate(&Value::Object(checked))?;
    Ok(entries)
}

/// The cgroup settings a container's `HostConfig` asks for (empty when none).
pub fn resources(h: &Value) -> Resources {
    let text = |k: &str| h[k].as_str().filter(|s| !s.is_empty()).map(String::from);
    let memory = h["Memory"].as_u64().filter(|m| *m > 0);
    Resources {
        memory,
        // The record holds twice the memory for --memory alone, as Docker's does: that is the
        // default, which warns of nothing where the kernel cannot limit swap.
        memory_swap: h["MemorySwap"].as_i64().filter(|s| {
            memory.is_some_and(|m| *s != 0 && u64::try_from(*s) != Ok(m.saturating_mul(2)))
        }),
        cpus: h["NanoCpus"]
            .as_u64()
            .filter(|c| *c > 0)
            .map(|c| c as f64 / 1e9),
        cpuset_cpus: text("CpusetCpus"),
        pids_limit: h["PidsLimit"].as_i64(),
        memory_reservation: h["MemoryReservation"].as_u64().filter(|r| *r > 0),
        memory_swappiness: h["MemorySwappiness"].as_u64(),
        oom_kill_disable: h["OomKillDisable"].as_bool().unwrap_or(false),
        cpu_shares: h["CpuShares"].as_u64().filter(|s| *s > 0),
        cpuset_mems: text("CpusetMems"),
    }
}

/// Checks a `HostConfig`'s limits with Docker's rules, as `create` makes them and `update`
/// leaves them.
pub fn validate(h: &Value) -> Result<()> {
    let memory = h["Memory"].as_u64().filter(|m| *m > 0);
    if let Some(m) = memory.filter(|m| *m < MIN_MEMORY) {
        bail!("invalid --memory {m}: the smallest memory limit is 6MB");
    }
    let swap = h["MemorySwap"].as_i64().unwrap_or(0);
    berth_cgroups::swap_limit(memory, (swap != 0).then_some(swap))
        .map_err(|e| anyhow::anyhow!("invalid {e}"))?;
    let reservation = h["MemoryReservation"].as_u64().unwrap_or(0);
    if reservation > 0 && reservation < MIN_MEMORY {
        bail!("invalid --memory-reservation {reservation}: the smallest reservation is 6MB");
    }
    if let Some(m) = memory.filter(|m| reservation > *m) {
        bail!("invalid --memory-reservation {reservation}: it is above --memory {m}");
    }
    if let Some(v) = h["MemorySwappiness"]
        .as_i64()
        .filter(|v| !(0..=100).contains(v))
    {
        bail!("invalid --memory-swappiness {v}: it must be between 0 and 100");
    }
    let shares = h["CpuShares"].as_i64().unwrap_or(0);
    if shares != 0 && !(2..=262_144).contains(&shares) {
        bail!("invalid --cpu-shares {shares}: it must be between 2 and 262144");
    }
    for (key, flag) in [
        ("CpusetCpus", "--cpuset-cpus"),
        ("CpusetMems", "--cpuset-mems"),
    ] {
        let list = h[key].as_str().unwrap_or_default();
        berth_cgroups::parse_cpu_list(list)
            .map_err(|e| anyhow::anyhow!("invalid {flag} {list:?}: {e}"))?;
    }
    Ok(())
}
