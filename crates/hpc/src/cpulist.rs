//! The kernel's CPU list format (`0-3,8,10-11`).
//!
//! The same syntax appears in `Cpus_allowed_list` of `/proc/<pid>/status`, in `cpuset.cpus` of
//! both cgroup versions, in `/sys/devices/system/cpu/online` and in Docker's `--cpuset-cpus`, so
//! one parser serves them all. The kernel also accepts a stride form (`0-7:2/4`) on input, but
//! never prints it and Docker does not accept it, so it is refused here rather than half-supported.

use crate::HpcError;

/// The highest CPU number accepted. Far above any machine's count, but low enough that a typo
/// such as `0-4000000000` is reported instead of allocating a list of four billion entries.
const MAX_CPU: usize = 1 << 20;

/// Parses a CPU list such as `0-3,8,10-11` into sorted, distinct CPU numbers.
///
/// Surrounding whitespace (the newline at the end of a kernel file) is ignored, and an empty list
/// is an empty vector, as the kernel writes an empty `cpuset.cpus`. Errors name the input.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, HpcError> {
    let input = s.trim();
    let invalid = |reason: String| HpcError::InvalidCpuList {
        input: s.to_string(),
        reason,
    };
    let mut cpus = Vec::new();
    if input.is_empty() {
        return Ok(cpus);
    }
    for item in input.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(invalid("empty item between commas".into()));
        }
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (cpu_number(a, s)?, cpu_number(b, s)?),
            None => {
                let n = cpu_number(item, s)?;
                (n, n)
            }
        };
        if first > last {
            return Err(invalid(format!("range {item} runs backwards")));
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn cpu_number(text: &str, input: &str) -> Result<usize, HpcError> {
    let text = text.trim();
    let invalid = |reason: String| HpcError::InvalidCpuList {
        input: input.to_string(),
        reason,
    };
    // `usize::from_str` would take a leading `+`; the kernel's list never has one.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("{text:?} is not a cpu number")));
    }
    match text.parse::<usize>() {
        Ok(n) if n <= MAX_CPU => Ok(n),
        _ => Err(invalid(format!("cpu {text} is larger than {MAX_CPU}"))),
    }
}

/// Formats CPU numbers as the kernel does: ascending, runs of two or more as `a-b`.
///
/// The input may be unsorted or hold duplicates; `[3, 0, 1, 2, 8]` becomes `0-3,8`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_forms() {
        let cases: &[(&str, &[usize])] = &[
            ("0", &[0]),
            ("0-3", &[0, 1, 2, 3]),
            ("0-3,8,10-11", &[0, 1, 2, 3, 8, 10, 11]),
            ("0-3,8,10-11\n", &[0, 1, 2, 3, 8, 10, 11]),
            ("8,1,3", &[1, 3, 8]),
            ("1-2,2-3", &[1, 2, 3]),
            (" 4 , 6 ", &[4, 6]),
            ("", &[]),
            ("\n", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_cpu_list(input).unwrap(), *want, "input {input:?}");
        }
    }

    #[test]
    fn refuses_malformed_lists_naming_the_input() {
        for input in [
            "a",
            "1,,2",
            "3-1",
            "-1",
            "1-",
            "0-7:2/4",
            "+1",
            "0-99999999",
            "1;2",
        ] {
            let err = parse_cpu_list(input).unwrap_err();
            let HpcError::InvalidCpuList { input: named, .. } = &err else {
                panic!("unexpected error {err:?} for {input:?}");
            };
            assert_eq!(named, input);
            assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
        }
    }

    #[test]
    fn formats_runs_as_the_kernel_does() {
        let cases: &[(&[usize], &str)] = &[
            (&[], ""),
            (&[0], "0"),
            (&[0, 1], "0-1"),
            (&[0, 1, 2, 3, 8, 10, 11], "0-3,8,10-11"),
            (&[3, 0, 2, 1, 8, 8], "0-3,8"),
            (&[1, 3, 5], "1,3,5"),
        ];
        for (cpus, want) in cases {
            assert_eq!(format_cpu_list(cpus), *want);
        }
    }

    #[test]
    fn format_and_parse_round_trip() {
        for text in ["0", "0-1", "0-3,8,10-11", "1,3,5-7,64-127"] {
            let cpus = parse_cpu_list(text).unwrap();
            assert_eq!(format_cpu_list(&cpus), text);
            assert_eq!(parse_cpu_list(&format_cpu_list(&cpus)).unwrap(), cpus);
        }
    }
}
