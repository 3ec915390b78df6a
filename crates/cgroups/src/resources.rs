//! The limits a container asks for, and their translation into cgroup file values.
//!
//! The translations are pure functions: v1 and v2 spell the same limit differently (`-1` versus
//! `max`, two CFS files versus one `cpu.max`), and Docker's flag semantics (`--memory-swap` is
//! memory *plus* swap, unset means twice the memory) have to be applied identically for both.

use std::collections::BTreeSet;

/// Resource limits, with Docker's flag semantics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// `--memory`: the memory limit in bytes.
    pub memory: Option<u64>,
    /// `--memory-swap`: memory plus swap in bytes; `-1` for unlimited swap; unset (or `0`) with
    /// `memory` set means twice the memory, as in Docker.
    pub memory_swap: Option<i64>,
    /// `--cpus`: how many CPUs' worth of time per period (CFS quota over a 100 ms period).
    pub cpus: Option<f64>,
    /// `--cpuset-cpus`: the CPUs the container may run on, in kernel list syntax (`0-3,8`).
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`: the most processes at once; `0` or negative for unlimited.
    pub pids_limit: Option<i64>,
    /// `--memory-reservation`: the soft memory limit in bytes (v1 `memory.soft_limit_in_bytes`,
    /// v2 `memory.low`).
    pub memory_reservation: Option<u64>,
    /// `--memory-swappiness`: 0 to 100 (v1 only).
    pub memory_swappiness: Option<u64>,
    /// `--oom-kill-disable` (v1 only).
    pub oom_kill_disable: bool,
    /// `-c/--cpu-shares`: the relative CPU weight, 2 to 262144 (v2: converted to `cpu.weight`).
    pub cpu_shares: Option<u64>,
    /// `--cpuset-mems`: the memory nodes the container may allocate from (`0-1`).
    pub cpuset_mems: Option<String>,
}

impl Resources {
    /// True when no limit is asked for, so no cgroup needs configuring.
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.cpus.is_none()
            && self.cpuset_cpus.is_none()
            && self.pids_limit.is_none()
            && self.memory_reservation.is_none()
            && self.memory_swappiness.is_none()
            && !self.oom_kill_disable
            && self.cpu_shares.is_none()
            && self.cpuset_mems.is_none()
    }
}

/// The v2 `cpu.weight` (1 to 10000) for v1 `cpu.shares` (2 to 262144), as runc and crun map it:
/// the default 1024 shares become weight 39.
pub fn cpu_weight_from_shares(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The CFS period Docker uses for `--cpus`, in microseconds.
pub const CFS_PERIOD_US: u64 = 100_000;

/// The smallest quota the kernel accepts, in microseconds.
pub const MIN_CFS_QUOTA_US: u64 = 1_000;

/// Converts `--cpus` into a CFS `(quota, period)` pair in microseconds.
///
/// The quota is rounded to the nearest microsecond and raised to the kernel's 1 ms minimum, so
/// tiny values still start instead of failing with `EINVAL`.
pub fn cpu_quota(cpus: f64) -> Result<(u64, u64), String> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(format!("--cpus must be a positive number, not {cpus}"));
    }
    let quota = (cpus * CFS_PERIOD_US as f64).round();
    if quota > (i64::MAX / 2) as f64 {
        return Err(format!("--cpus {cpus} is too large"));
    }
    Ok(((quota as u64).max(MIN_CFS_QUOTA_US), CFS_PERIOD_US))
}

/// The v2 `cpu.max` value for `--cpus`.
pub fn cpu_max_value(cpus: f64) -> Result<String, String> {
    let (quota, period) = cpu_quota(cpus)?;
    Ok(format!("{quota} {period}"))
}

/// The swap limit to set next to a memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapLimit {
    /// No limit on swap.
    Unlimited,
    /// Memory plus swap, in bytes (v1's `memory.memsw.limit_in_bytes`).
    Total(u64),
}

impl SwapLimit {
    /// The v2 `memory.swap.max` value: v2 limits swap alone, not memory plus swap.
    pub fn v2_value(self, memory: u64) -> String {
        match self {
            SwapLimit::Unlimited => "max".to_string(),
            SwapLimit::Total(total) => total.saturating_sub(memory).to_string(),
        }
    }

    /// The v1 `memory.memsw.limit_in_bytes` value.
    pub fn v1_value(self) -> String {
        match self {
            SwapLimit::Unlimited => "-1".to_string(),
            SwapLimit::Total(total) => total.to_string(),
        }
    }
}

/// Applies Docker's `--memory`/`--memory-swap` rules; `None` means "leave swap alone".
pub fn swap_limit(
    memory: Option<u64>,
    memory_swap: Option<i64>,
) -> Result<Option<SwapLimit>, String> {
    match (memory, memory_swap) {
        (None, None | Some(0) | Some(-1)) => Ok(None),
        (None, Some(_)) => Err("--memory-swap needs --memory as well".to_string()),
        (Some(m), None | Some(0)) => Ok(Some(SwapLimit::Total(m.saturating_mul(2)))),
        (Some(_), Some(-1)) => Ok(Some(SwapLimit::Unlimited)),
        (Some(_), Some(s)) if s < 0 => Err(format!("--memory-swap {s} is not valid")),
        (Some(m), Some(s)) if (s as u64) < m => Err(format!(
            "--memory-swap ({s}) must be at least --memory ({m}): it counts memory plus swap"
        )),
        (Some(_), Some(s)) => Ok(Some(SwapLimit::Total(s as u64))),
    }
}

/// A memory limit as v1 writes it: bytes, or `-1` for none.
pub fn memory_value_v1(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-1".to_string(), |b| b.to_string())
}

/// A memory limit as v2 writes it: bytes, or `max` for none.
pub fn memory_value_v2(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "max".to_string(), |b| b.to_string())
}

/// The `pids.max` value (same spelling in v1 and v2): Docker treats `0` and negatives as
/// unlimited.
pub fn pids_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

/// v1 reports "no memory limit" as a huge page-aligned number near `i64::MAX`; anything above
/// this is treated as unlimited.
pub(crate) const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// Parses a kernel CPU list (`0-3,8,10-11`); whitespace around it is ignored.
pub fn parse_cpu_list(text: &str) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    let text = text.trim();
    if text.is_empty() {
        return Ok(out);
    }
    for part in text.split(',') {
        let part = part.trim();
        let bad = |e: std::num::ParseIntError| format!("bad cpu list entry {part:?}: {e}");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (
                    a.parse::<u32>().map_err(bad)?,
                    b.parse::<u32>().map_err(bad)?,
                );
                if a > b {
                    return Err(format!("bad cpu range {part:?}: start after end"));
                }
                if b - a > 1 << 16 {
                    return Err(format!("cpu range {part:?} is implausibly large"));
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse::<u32>().map_err(bad)?);
            }
        }
    }
    Ok(out)
}

/// Checks that `wanted` only names CPUs in `allowed` (Decision 9: only narrow what the
/// scheduler gave). Returns the CPUs that are outside, for the message.
pub fn cpus_outside(wanted: &str, allowed: &str) -> Result<Vec<u32>, String> {
    list_outside(wanted, allowed, "--cpuset-cpus")
}

/// [`cpus_outside`] for any kernel list (`--cpuset-mems` too); `flag` names it in errors.
pub fn list_outside(wanted: &str, allowed: &str, flag: &str) -> Result<Vec<u32>, String> {
    let wanted = parse_cpu_list(wanted)?;
    if wanted.is_empty() {
        return Err(format!("{flag} is empty"));
    }
    let allowed = parse_cpu_list(allowed)?;
    Ok(wanted.difference(&allowed).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_to_quota() {
        assert_eq!(cpu_quota(0.5).unwrap(), (50_000, 100_000));
        assert_eq!(cpu_quota(1.0).unwrap(), (100_000, 100_000));
        assert_eq!(cpu_quota(2.25).unwrap(), (225_000, 100_000));
        assert_eq!(cpu_quota(0.001).unwrap(), (1_000, 100_000));
        assert_eq!(cpu_quota(0.0000001).unwrap(), (1_000, 100_000));
        assert_eq!(cpu_quota(1.333_333).unwrap(), (133_333, 100_000));
        assert!(cpu_quota(0.0).is_err());
        assert!(cpu_quota(-1.0).is_err());
        assert!(cpu_quota(f64::NAN).is_err());
        assert!(cpu_quota(f64::INFINITY).is_err());
        assert_eq!(cpu_max_value(1.5).unwrap(), "150000 100000");
    }

    #[test]
    fn memory_values() {
        assert_eq!(memory_value_v1(Some(64 << 20)), "67108864");
        assert_eq!(memory_value_v1(None), "-1");
        assert_eq!(memory_value_v2(Some(64 << 20)), "67108864");
        assert_eq!(memory_value_v2(None), "max");
    }

    #[test]
    fn docker_swap_rules() {
        let m = 100u64;
        assert_eq!(swap_limit(None, None).unwrap(), None);
        assert_eq!(swap_limit(None, Some(-1)).unwrap(), None);
        assert!(swap_limit(None, Some(200)).is_err());
        assert_eq!(
            swap_limit(Some(m), None).unwrap(),
            Some(SwapLimit::Total(200))
        );
        assert_eq!(
            swap_limit(Some(m), Some(0)).unwrap(),
            Some(SwapLimit::Total(200))
        );
        assert_eq!(
            swap_limit(Some(m), Some(-1)).unwrap(),
            Some(SwapLimit::Unlimited)
        );
        assert_eq!(
            swap_limit(Some(m), Some(100)).unwrap(),
            Some(SwapLimit::Total(100))
        );
        assert_eq!(
            swap_limit(Some(m), Some(300)).unwrap(),
            Some(SwapLimit::Total(300))
        );
        assert!(swap_limit(Some(m), Some(50)).is_err());
        assert!(swap_limit(Some(m), Some(-2)).is_err());
        assert_eq!(SwapLimit::Total(300).v2_value(100), "200");
        assert_eq!(SwapLimit::Total(100).v2_value(100), "0");
        assert_eq!(SwapLimit::Unlimited.v2_value(100), "max");
        assert_eq!(SwapLimit::Total(300).v1_value(), "300");
        assert_eq!(SwapLimit::Unlimited.v1_value(), "-1");
    }

    #[test]
    fn pids_values() {
        assert_eq!(pids_value(20), "20");
        assert_eq!(pids_value(0), "max");
        assert_eq!(pids_value(-1), "max");
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8\n").unwrap(), [0, 1, 2, 3, 8].into());
        assert_eq!(parse_cpu_list("").unwrap(), BTreeSet::new());
        assert_eq!(parse_cpu_list("5").unwrap(), [5].into());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert_eq!(cpus_outside("0", "0-1").unwrap(), Vec::<u32>::new());
        assert_eq!(cpus_outside("0-3", "0-1").unwrap(), vec![2, 3]);
        assert!(cpus_outside("", "0-1").is_err());
    }

    #[test]
    fn shares_to_weight() {
        assert_eq!(cpu_weight_from_shares(2), 1);
        assert_eq!(cpu_weight_from_shares(1024), 39);
        assert_eq!(cpu_weight_from_shares(262_144), 10_000);
        assert_eq!(cpu_weight_from_shares(1), 1);
    }

    #[test]
    fn empty_resources() {
        assert!(Resources::default().is_empty());
        let r = Resources {
            pids_limit: Some(5),
            ..Resources::default()
        };
        assert!(!r.is_empty());
    }
}
