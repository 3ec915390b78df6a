//! `update`: new limits in the record, and at once in a running container's cgroups; compared
//! with Docker.

use crate::common::Berth;
use crate::dockerd::{Dockerd, BUSYBOX};
use crate::run_limits::{cgroup_differences, cgroup_file, v1_with_swap_accounting};

const FIELDS: &[&str] = &[
    ".HostConfig.Memory",
    ".HostConfig.MemorySwap",
    ".HostConfig.MemoryReservation",
    ".HostConfig.CpuShares",
    ".HostConfig.PidsLimit",
    ".HostConfig.NanoCpus",
    ".HostConfig.CpusetCpus",
];

const FILES: &[(&str, &str)] = &[
    ("memory", "memory.limit_in_bytes"),
    ("memory", "memory.memsw.limit_in_bytes"),
    ("memory", "memory.soft_limit_in_bytes"),
    ("cpu", "cpu.shares"),
    ("cpu", "cpu.cfs_quota_us"),
    ("pids", "pids.max"),
];

#[test]
fn update_created_and_running_containers() {
    let b = Berth::new();
    b.import_busybox(BUSYBOX);
    // Not started yet: the record changes, and the start applies it.
    b.ok(&["create", "--name", "later", BUSYBOX, "sleep", "60"]);
    assert_eq!(b.ok(&["update", "-m", "64m", "later"]), "later\n");
    assert_eq!(
        b.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
            "later"
        ])
        .trim(),
        "67108864 134217728"
    );
    b.ok(&["start", "later"]);
    let pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", "later"]);
    if v1_with_swap_accounting() {
        assert_eq!(
            cgroup_file(&pid, "memory", "memory.limit_in_bytes"),
            "67108864"
        );
        // Running: at once.
        b.ok(&["update", "-m", "96m", "--pids-limit", "40", "later"]);
        assert_eq!(
            cgroup_file(&pid, "memory", "memory.limit_in_bytes"),
            (96u64 << 20).to_string()
        );
        assert_eq!(cgroup_file(&pid, "pids", "pids.max"), "40");
    }
    b.ok(&["rm", "-f", "later"]);
    // Started without limits: no cgroup to change, which it says; the record changes.
    b.ok(&["run", "-d", "--name", "free", BUSYBOX, "sleep", "60"]);
    let out = b.run(&["update", "--cpus", "1", "free"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("next start"));
    b.ok(&["rm", "-f", "free"]);
    let err = b.fails(&["update", "free"], 1);
    assert!(err.contains("one or more flags"), "{err}");
    // No daemon restarts containers (Docker's accepts a policy here).
    let err = b.fails(&["update", "--restart", "always", "later"], 1);
    assert!(err.contains("no daemon"), "{err}");
    let err = b.fails(&["update", "-m", "10m", "nosuch"], 1);
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn update_matches_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let run = [
        "run", "-d", "--name", "upd", "-m", "100m", BUSYBOX, "sleep", "60",
    ];
    let (theirs, ours) = d.both(&b, &run);
    assert!(theirs.status.success() && ours.status.success());
    let cases: [&[&str]; 5] = [
        &[
            "update",
            "--memory",
            "200m",
            "--memory-reservation",
            "50m",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "upd",
        ],
        &["update", "--memory-swap", "100m", "upd"],
        &["update", "upd"],
        &["update", "--cpus", "1", "nosuch"],
        &["update", "-m", "300m", "upd"],
    ];
    let mut differences = d.differences(&b, cases.iter().map(|c| c.to_vec()));
    differences.extend(d.inspect_differences(&b, "upd", FIELDS));
    if v1_with_swap_accounting() {
        differences.extend(cgroup_differences(&d, &b, "upd", FILES));
    }
    d.both(&b, &["rm", "-f", "upd"]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
