//! CPU visibility: the container sees exactly the CPUs it may use.
//!
//! Programs size their thread pools from different places: `sched_getaffinity` (glibc's
//! `nproc`, Go, Rust's `available_parallelism`), `/proc/cpuinfo` (many Python and R packages,
//! hand-written build scripts), `/sys/devices/system/cpu/online` (older glibc `get_nprocs`,
//! hwloc) and `OMP_NUM_THREADS` (OpenMP, and through it OpenBLAS and MKL, which read it when their
//! own variables are unset). A container narrowed to 2 of 64 CPUs that only narrows the first
//! of these runs 64 threads on 2 cores. [`cpu_visibility`] produces all four.
//!
//! TBB and the JVM are not given variables: both follow the affinity mask on their own.

use crate::{format_cpu_list, parse_cpu_list, Contribution, GeneratedFile, HpcError, Sourced};

/// Where the filtered copy of `/proc/cpuinfo` goes in the container.
pub const CPUINFO_PATH: &str = "/proc/cpuinfo";
/// Where the matching list of online CPUs goes in the container.
pub const CPU_ONLINE_PATH: &str = "/sys/devices/system/cpu/online";

/// How the caller's affinity is named in sources: the value the caller passes in is the calling
/// process's own affinity mask, which the kernel also prints under this name.
const ALLOWED_SOURCE: &str = "the inherited cpu affinity (Cpus_allowed_list in /proc/self/status)";

/// Works out which CPUs the container may use, and what it must see to agree.
///
/// - `allowed` is the caller's current affinity. It is never widened: a `cpuset` naming a CPU
///   outside it is an error naming both lists.
/// - `cpuset` is `--cpuset-cpus`, a CPU list chosen from `allowed`.
/// - `cpus` is `--cpus`, a possibly fractional count. The container gets `ceil(cpus)` CPUs, the
///   lowest-numbered of those left after `cpuset`; the fraction itself is the cgroup quota's
///   business, not this function's. Like Docker, it is taken to two decimal places.
/// - `host_cpuinfo` is the text of the host's `/proc/cpuinfo`.
/// - `env_keys` are the variables the container already has (image, user, passed through); a
///   variable listed there is never overridden.
///
/// The result holds the affinity to apply, a `/proc/cpuinfo` keeping only the chosen
/// processors' blocks renumbered `0..n-1` (blocks without a `processor` line, such as the
/// trailing machine description on POWER, are kept as they are), `/sys/devices/system/cpu/online`
/// as `0-(n-1)`, and `OMP_NUM_THREADS=n` unless already set.
///
/// When nothing narrows the host (no `cpuset`, no `cpus`, and `allowed` is every processor the
/// host's `/proc/cpuinfo` lists, numbered from 0), the container's own view is already true and
/// the result is empty: no files to bind, no variable to add (as under Docker), no affinity.
pub fn cpu_visibility(
    allowed: &[usize],
    cpuset: Option<&str>,
    cpus: Option<f64>,
    host_cpuinfo: &str,
    env_keys: &[String],
) -> Result<Contribution, HpcError> {
    let mut chosen = allowed.to_vec();
    chosen.sort_unstable();
    chosen.dedup();
    if chosen.is_empty() {
        return Err(HpcError::NoAllowedCpus);
    }
    if cpuset.is_none() && cpus.is_none() && host_processors(host_cpuinfo) == chosen {
        let whole = chosen.iter().enumerate().all(|(i, c)| i == *c);
        if whole {
            return Ok(Contribution::default());
        }
    }
    let mut source = format!("{} {}", ALLOWED_SOURCE, format_cpu_list(&chosen));

    if let Some(list) = cpuset {
        let wanted = parse_cpu_list(list)?;
        if wanted.is_empty() || wanted.iter().any(|c| chosen.binary_search(c).is_err()) {
            return Err(HpcError::CpusetOutsideAllowed {
                cpuset: list.trim().to_string(),
                allowed: format_cpu_list(&chosen),
            });
        }
        chosen = wanted;
        source = format!("--cpuset-cpus {}", list.trim());
    }

    if let Some(count) = cpus {
        let n = cpu_count(count)?;
        if n > chosen.len() {
            return Err(HpcError::TooManyCpus {
                requested: count,
                count: chosen.len(),
                available: format_cpu_list(&chosen),
            });
        }
        chosen.truncate(n);
        source = format!("--cpus {count} (the lowest {n} of {source})");
    }

    let n = chosen.len();
    let mut out = Contribution::default();
    let (cpuinfo, missing) = filter_cpuinfo(host_cpuinfo, &chosen);
    if !missing.is_empty() {
        out.warnings.push(format!(
            "/proc/cpuinfo has no processor entries for cpus {}; the container's copy lists only those it has",
            format_cpu_list(&missing)
        ));
    }
    match cpuinfo {
        Some(contents) => out.files.push(Sourced::new(
            GeneratedFile {
                container_path: CPUINFO_PATH.into(),
                contents,
            },
            format!("host /proc/cpuinfo filtered to {source}"),
        )),
        None => out.warnings.push(
            "/proc/cpuinfo has no processor entries in a known format; the container sees the host's"
                .into(),
        ),
    }
    out.files.push(Sourced::new(
        GeneratedFile {
            container_path: CPU_ONLINE_PATH.into(),
            contents: format!("{}\n", format_cpu_list(&(0..n).collect::<Vec<_>>())),
        },
        source.clone(),
    ));
    if !env_keys.iter().any(|k| k == "OMP_NUM_THREADS") {
        out.env.push(Sourced::new(
            ("OMP_NUM_THREADS".into(), n.to_string()),
            source.clone(),
        ));
    }
    out.cpus = Some(Sourced::new(chosen, source));
    Ok(out)
}

/// The `processor` numbers of a `/proc/cpuinfo` text, sorted.
/// Whether the container would see exactly the host's CPUs anyway: no `cpuset`, no `cpus`, and
/// `allowed` is every online CPU (`online`: the host's `/sys/devices/system/cpu/online`),
/// numbered from 0. Then [`cpu_visibility`] has nothing to do, and the caller need not read the
/// host's `/proc/cpuinfo` for it: that file grows with the node (tens of kilobytes and
/// milliseconds on a large one), where `online` is one short line.
pub fn narrows_nothing(
    allowed: &[usize],
    cpuset: Option<&str>,
    cpus: Option<f64>,
    online: &str,
) -> bool {
    let mut chosen = allowed.to_vec();
    chosen.sort_unstable();
    chosen.dedup();
    cpuset.is_none()
        && cpus.is_none()
        && !chosen.is_empty()
        && chosen.iter().enumerate().all(|(i, c)| i == *c)
        && parse_cpu_list(online.trim()).is_ok_and(|o| o == chosen)
}

fn host_processors(cpuinfo: &str) -> Vec<usize> {
    let mut out: Vec<usize> = cpuinfo
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "processor")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Whole CPUs needed for a `--cpus` value. Docker keeps `--cpus` as nano-CPUs, so 1.0000001 is
/// 1 CPU there, and must be here too rather than rounding up to 2.
fn cpu_count(cpus: f64) -> Result<usize, HpcError> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(HpcError::InvalidCpus(cpus));
    }
    let hundredths = (cpus * 100.0).round();
    if hundredths < 1.0 {
        return Err(HpcError::InvalidCpus(cpus));
    }
    Ok((hundredths / 100.0).ceil() as usize)
}

/// Keeps the blocks of `cpuinfo` whose `processor` is in `chosen` (sorted), renumbered in that
/// order. Returns `None` when the text has no `processor` lines at all (s390x prints one block
/// per machine instead), and the chosen CPUs that had no block.
fn filter_cpuinfo(cpuinfo: &str, chosen: &[usize]) -> (Option<String>, Vec<usize>) {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    let mut current = Vec::new();
    for line in cpuinfo.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }

    let processor_of = |block: &[&str]| -> Option<usize> {
        block.iter().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "processor")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
    };
    if !blocks.iter().any(|b| processor_of(b).is_some()) {
        return (None, Vec::new());
    }

    let mut out = String::new();
    let mut seen = Vec::new();
    for block in &blocks {
        let new_number = match processor_of(block) {
            None => None,
            Some(cpu) => match chosen.binary_search(&cpu) {
                Ok(index) => {
                    seen.push(cpu);
                    Some(index)
                }
                Err(_) => continue,
            },
        };
        for line in block {
            match (new_number, line.split_once(':')) {
                (Some(n), Some((key, _))) if key.trim() == "processor" => {
                    out.push_str(&format!("{key}: {n}"))
                }
                _ => out.push_str(line),
            }
            out.push('\n');
        }
        out.push('\n');
    }
    let missing = chosen
        .iter()
        .copied()
        .filter(|c| !seen.contains(c))
        .collect();
    (Some(out), missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four processors as an x86 machine prints them, trimmed to a few fields each.
    const CPUINFO: &str = "\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Example CPU @ 2.00GHz
core id\t\t: 0
cpu cores\t: 4

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Example CPU @ 2.00GHz
core id\t\t: 1
cpu cores\t: 4

processor\t: 2
vendor_id\t: GenuineIntel
model name\t: Example CPU @ 2.00GHz
core id\t\t: 2
cpu cores\t: 4

processor\t: 3
vendor_id\t: GenuineIntel
model name\t: Example CPU @ 2.00GHz
core id\t\t: 3
cpu cores\t: 4

";

    fn file<'a>(c: &'a Contribution, path: &str) -> &'a str {
        &c.files
            .iter()
            .find(|f| f.value.container_path == path)
            .unwrap_or_else(|| panic!("no {path} in {c:?}"))
            .value
            .contents
    }

    fn env<'a>(c: &'a Contribution, key: &str) -> Option<&'a str> {
        c.env
            .iter()
            .find(|e| e.value.0 == key)
            .map(|e| e.value.1.as_str())
    }

    #[test]
    fn cpuset_keeps_only_its_blocks_renumbered() {
        let c = cpu_visibility(&[0, 1, 2, 3], Some("1,3"), None, CPUINFO, &[]).unwrap();
        assert_eq!(c.cpus.as_ref().unwrap().value, vec![1, 3]);
        assert_eq!(c.cpus.as_ref().unwrap().source, "--cpuset-cpus 1,3");
        let info = file(&c, CPUINFO_PATH);
        let blocks: Vec<&str> = info.trim_end().split("\n\n").collect();
        assert_eq!(blocks.len(), 2, "{info}");
        assert!(blocks[0].starts_with("processor\t: 0\n"), "{info}");
        assert!(blocks[0].contains("core id\t\t: 1"), "{info}");
        assert!(blocks[1].starts_with("processor\t: 1\n"), "{info}");
        assert!(blocks[1].contains("core id\t\t: 3"), "{info}");
        assert!(info.ends_with("\n\n"));
        assert_eq!(file(&c, CPU_ONLINE_PATH), "0-1\n");
        assert_eq!(env(&c, "OMP_NUM_THREADS"), Some("2"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn fractional_cpus_round_up_to_the_lowest_allowed() {
        let cases: &[(f64, &[usize])] = &[
            (1.5, &[0, 2]),
            (1.0, &[0]),
            (0.25, &[0]),
            (1.000_000_1, &[0]),
            (3.0, &[0, 2, 5]),
        ];
        for (cpus, want) in cases {
            let c = cpu_visibility(&[5, 2, 0], None, Some(*cpus), CPUINFO, &[]).unwrap();
            let got = &c.cpus.as_ref().unwrap();
            assert_eq!(got.value, *want, "--cpus {cpus}");
            assert!(
                got.source.starts_with(&format!("--cpus {cpus}")),
                "{}",
                got.source
            );
            assert_eq!(env(&c, "OMP_NUM_THREADS"), Some(&*want.len().to_string()));
        }
    }

    #[test]
    fn cpus_applies_after_cpuset() {
        let c = cpu_visibility(&[0, 1, 2, 3], Some("1-3"), Some(1.5), CPUINFO, &[]).unwrap();
        assert_eq!(c.cpus.unwrap().value, vec![1, 2]);
    }

    #[test]
    fn cpuset_outside_allowed_is_refused_naming_both() {
        let err = cpu_visibility(&[0, 1], Some("1-2"), None, CPUINFO, &[]).unwrap_err();
        assert_eq!(
            err,
            HpcError::CpusetOutsideAllowed {
                cpuset: "1-2".into(),
                allowed: "0-1".into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("1-2") && text.contains("0-1"), "{text}");
    }

    #[test]
    fn bad_counts_are_refused() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.001] {
            let err = cpu_visibility(&[0, 1], None, Some(bad), CPUINFO, &[]).unwrap_err();
            assert!(matches!(err, HpcError::InvalidCpus(_)), "{bad}: {err:?}");
        }
        let err = cpu_visibility(&[0, 1], None, Some(2.5), CPUINFO, &[]).unwrap_err();
        assert!(
            matches!(err, HpcError::TooManyCpus { count: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("0-1"), "{err}");
        assert_eq!(
            cpu_visibility(&[], None, None, CPUINFO, &[]).unwrap_err(),
            HpcError::NoAllowedCpus
        );
        assert!(matches!(
            cpu_visibility(&[0], Some("x"), None, CPUINFO, &[]).unwrap_err(),
            HpcError::InvalidCpuList { .. }
        ));
    }

    #[test]
    fn omp_num_threads_already_set_is_left_alone() {
        let keys = vec!["PATH".to_string(), "OMP_NUM_THREADS".to_string()];
        let c = cpu_visibility(&[0, 1, 2, 3], Some("1,3"), None, CPUINFO, &keys).unwrap();
        assert_eq!(env(&c, "OMP_NUM_THREADS"), None);
        assert!(c.env.is_empty());
    }

    #[test]
    fn nothing_narrowed_shows_nothing() {
        let c = cpu_visibility(&[3, 2, 1, 0], None, None, CPUINFO, &[]).unwrap();
        assert!(
            c.files.is_empty() && c.env.is_empty() && c.cpus.is_none(),
            "{c:?}"
        );
        // The same CPUs asked for explicitly are still shown (and pinned).
        let c = cpu_visibility(&[0, 1, 2, 3], Some("0-3"), None, CPUINFO, &[]).unwrap();
        assert_eq!(env(&c, "OMP_NUM_THREADS"), Some("4"));
    }

    #[test]
    fn affinity_alone_is_sourced_to_the_kernel() {
        let c = cpu_visibility(&[2, 3], None, None, CPUINFO, &[]).unwrap();
        let cpus = c.cpus.unwrap();
        assert_eq!(cpus.value, vec![2, 3]);
        assert!(cpus.source.contains("Cpus_allowed_list"), "{}", cpus.source);
    }

    #[test]
    fn blocks_without_processor_are_kept_and_missing_cpus_warned() {
        let power = "processor\t: 0\ncpu\t\t: POWER9\n\nprocessor\t: 8\ncpu\t\t: POWER9\n\n\
                     timebase\t: 512000000\nplatform\t: PowerNV\n";
        let c = cpu_visibility(&[8, 9], None, None, power, &[]).unwrap();
        let info = file(&c, CPUINFO_PATH);
        assert_eq!(
            info,
            "processor\t: 0\ncpu\t\t: POWER9\n\ntimebase\t: 512000000\nplatform\t: PowerNV\n\n"
        );
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("cpus 9"), "{:?}", c.warnings);
        assert_eq!(file(&c, CPU_ONLINE_PATH), "0-1\n");
    }

    #[test]
    fn unknown_cpuinfo_format_leaves_the_host_file() {
        let c = cpu_visibility(&[0], None, None, "vendor_id : IBM/S390\n", &[]).unwrap();
        assert!(c
            .files
            .iter()
            .all(|f| f.value.container_path != CPUINFO_PATH));
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(file(&c, CPU_ONLINE_PATH), "0\n");
    }

    #[test]
    fn whole_host_is_recognised_from_the_online_list() {
        assert!(narrows_nothing(&[1, 0], None, None, "0-1\n"));
        assert!(!narrows_nothing(&[0], None, None, "0-1\n"));
        assert!(!narrows_nothing(&[1, 2], None, None, "1-2\n"));
        assert!(!narrows_nothing(&[0, 1], Some("0"), None, "0-1\n"));
        assert!(!narrows_nothing(&[0, 1], None, Some(1.0), "0-1\n"));
        assert!(!narrows_nothing(&[0, 1], None, None, ""));
    }
}
