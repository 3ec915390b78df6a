//! The cgroup flags beyond the plain limits: `--memory-swap`, `--memory-reservation`,
//! `--memory-swappiness`, `--oom-kill-disable`, `-c/--cpu-shares` and `--cpuset-mems`. Their
//! values are read where the kernel keeps them, in the container's own cgroups on the host (found
//! through `/proc/PID/cgroup`), the same way for Berth's containers and Docker's.

use crate::common::Berth;
use crate::dockerd::{Dockerd, BUSYBOX};
use crate::run_namespaces::refuses;

const ALL: &[&str] = &[
    "-m",
    "100m",
    "--memory-swap",
    "300m",
    "--memory-reservation",
    "50m",
    "--memory-swappiness",
    "10",
    "--oom-kill-disable",
    "-c",
    "512",
    "--cpuset-mems",
    "0",
];

/// `controller` file `file` of the cgroup process `pid` is in, on cgroup v1.
pub(crate) fn cgroup_file(pid: &str, controller: &str, file: &str) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let path = cgroups
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':').skip(1);
            parts.next().zip(parts.next())
        })
        .find(|(names, _)| names.split(',').any(|n| n == controller))
        .map(|(_, path)| path.to_string())
        .unwrap_or_else(|| panic!("no {controller} hierarchy in {cgroups}"));
    let text = std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}{path}/{file}"))
        .unwrap_or_else(|e| panic!("{controller}{path}/{file}: {e}"));
    text.lines().next().unwrap_or_default().to_string()
}

/// Where this machine has cgroup v1 memory, cpu and cpuset hierarchies with swap accounting.
pub(crate) fn v1_with_swap_accounting() -> bool {
    std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        && std::path::Path::new("/sys/fs/cgroup/cpu/cpu.shares").exists()
        && std::path::Path::new("/sys/fs/cgroup/cpuset/cpuset.mems").exists()
}

/// The `HostConfig` fields of these flags.
const HOST_CONFIG: &[&str] = &[
    ".HostConfig.Memory",
    ".HostConfig.MemorySwap",
    ".HostConfig.MemoryReservation",
    ".HostConfig.MemorySwappiness",
    ".HostConfig.OomKillDisable",
    ".HostConfig.CpuShares",
    ".HostConfig.CpusetMems",
];

/// Where the cgroup files `files` of Docker's and Berth's running container `name` differ.
pub(crate) fn cgroup_differences(
    d: &Dockerd,
    b: &Berth,
    name: &str,
    files: &[(&str, &str)],
) -> Vec<String> {
    let (theirs, ours) = d.both(b, &["inspect", "-f", "{{.State.Pid}}", name]);
    let (theirs, ours) = (
        String::from_utf8_lossy(&theirs.stdout).into_owned(),
        String::from_utf8_lossy(&ours.stdout).into_owned(),
    );
    let mut out = Vec::new();
    for (controller, file) in files {
        let (t, o) = (
            cgroup_file(&theirs, controller, file),
            cgroup_file(&ours, controller, file),
        );
        if t != o {
            out.push(format!("{controller}/{file}: docker {t:?}, berth {o:?}"));
        }
    }
    out
}

const FILES: &[(&str, &str)] = &[
    ("memory", "memory.limit_in_bytes"),
    ("memory", "memory.memsw.limit_in_bytes"),
    ("memory", "memory.soft_limit_in_bytes"),
    ("memory", "memory.swappiness"),
    ("memory", "memory.oom_control"),
    ("cpu", "cpu.shares"),
    ("cpuset", "cpuset.mems"),
];

#[test]
fn cgroup_settings_reach_the_kernel() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    refuses(
        &b,
        &[
            (&["--memory-swap", "100m"], "--memory-swap needs --memory"),
            (&["-m", "100m", "--memory-swap", "50m"], "must be at least"),
            (
                &["-m", "40m", "--memory-reservation", "50m"],
                "above --memory",
            ),
            (&["--memory-reservation", "1k"], "smallest reservation"),
            (&["-m", "1m"], "smallest memory limit"),
            (&["--memory-swappiness", "101"], "between 0 and 100"),
            (&["-c", "1"], "between 2 and 262144"),
            (&["--cpuset-mems", "x"], "invalid --cpuset-mems"),
            (&["--cpuset-mems", "7"], "not available"),
        ],
    );
    // A start that fails at its limits leaves no --rm container behind.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    let out = b.run(&["run", "--rm", "--oom-kill-disable", "localhost/bb", "true"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no memory limit is set"));
    if !v1_with_swap_accounting() {
        eprintln!("no cgroup v1 with swap accounting here: values not checked");
        return;
    }
    b.ok(&[
        &["run", "-d", "--name", "limited"][..],
        ALL,
        &["localhost/bb", "sleep", "60"],
    ]
    .concat());
    let pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", "limited"]);
    let values: Vec<String> = FILES.iter().map(|(c, f)| cgroup_file(&pid, c, f)).collect();
    assert_eq!(
        values,
        [
            "104857600",
            "314572800",
            "52428800",
            "10",
            "oom_kill_disable 1",
            "512",
            "0"
        ]
    );
    b.ok(&["rm", "-f", "limited"]);
}

#[test]
fn cgroup_settings_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let bad: [&[&str]; 8] = [
        &["--memory-swap", "100m"],
        &["-m", "100m", "--memory-swap", "50m"],
        &["-m", "40m", "--memory-reservation", "50m"],
        &["--memory-reservation", "1k"],
        &["--memory-swappiness", "101"],
        &["-c", "1"],
        &["--cpuset-mems", "x"],
        &["--cpuset-mems", "1"],
    ];
    let mut differences = d.differences(
        &b,
        bad.iter()
            .map(|flags| [&["run", "--rm"][..], flags, &[BUSYBOX, "true"]].concat()),
    );
    // What inspect shows, with no flag, with --memory alone and with all of them.
    for (name, flags) in [
        ("plain", &[][..]),
        ("memonly", &["-m", "100m"]),
        ("all", ALL),
    ] {
        differences.extend(d.created_differences(&b, name, flags, HOST_CONFIG));
    }
    if v1_with_swap_accounting() {
        let run = [
            &["run", "-d", "--name", "limited"][..],
            ALL,
            &[BUSYBOX, "sleep", "60"],
        ]
        .concat();
        let (theirs, ours) = d.both(&b, &run);
        assert!(theirs.status.success() && ours.status.success());
        differences.extend(cgroup_differences(&d, &b, "limited", FILES));
        d.both(&b, &["rm", "-f", "limited"]);
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
