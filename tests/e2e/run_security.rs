//! What a container cannot reach: descriptors and directories of the host (CVE-2024-21626),
//! Docker's masked and read-only `/proc` paths, a PID namespace of its own, the host's mounts.

use crate::common::Berth;
use crate::run::{code, with_busybox};

#[test]
fn no_host_fds_and_masked_paths() {
    let b = with_busybox();
    let out = b.ok(&["run", "--rm", "localhost/bb", "ls", "/proc/self/fd"]);
    let fds: Vec<&str> = out.split_whitespace().collect();
    // 0-2 plus the directory ls is reading.
    assert!(fds.len() <= 4, "leaked fds: {fds:?}");
    let (c, _, _) = code(
        &b,
        &[
            "run",
            "--rm",
            "localhost/bb",
            "sh",
            "-c",
            "head -c1 /proc/kcore",
        ],
    );
    assert_ne!(c, 0);
    // Docker's masked paths read as empty; its read-only ones refuse writes, even to what the
    // container's own namespaces would allow (its hostname).
    let out = b.ok(&[
        "run",
        "--rm",
        "localhost/bb",
        "sh",
        "-c",
        "cat /proc/keys /proc/timer_list | wc -c; \
         { echo x > /proc/sys/kernel/hostname; echo h > /proc/sysrq-trigger; } 2>&1; true",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "{out}");
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].contains("Read-only file system"), "{out}");
    assert!(
        lines[2].contains("can't create /proc/sysrq-trigger"),
        "{out}"
    );
    let out = b.ok(&["run", "--rm", "localhost/bb", "sh", "-c", "echo $$"]);
    assert_eq!(out.trim(), "1");
}

/// Runs berth with the host's `/` open as descriptor 7, as a careless caller might leave it.
fn with_host_root_on_fd7(b: &Berth, args: &[&str]) -> std::process::Output {
    b.wrapped(&["sh", "-c", "exec 7</ && exec \"$@\"", "sh"], args)
}

#[test]
fn a_working_directory_through_a_host_descriptor_is_refused() {
    // CVE-2024-21626: `-w /proc/self/fd/N` naming a descriptor inherited from the host would
    // put the process's working directory outside the container's root, before descriptors
    // are closed at exec.
    let b = with_busybox();
    let out = with_host_root_on_fd7(
        &b,
        &["run", "--rm", "-w", "/proc/self/fd/7", "localhost/bb", "ls"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("outside the container's root"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The descriptor itself does not reach the program either.
    let out = with_host_root_on_fd7(&b, &["run", "--rm", "localhost/bb", "ls", "/proc/self/fd"]);
    let fds = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count();
    assert!(out.status.success() && fds <= 4, "{out:?}");

    // The same through exec, which joins a running container.
    b.ok(&["run", "-d", "--name", "cwd", "localhost/bb", "sleep", "30"]);
    let out = with_host_root_on_fd7(&b, &["exec", "-w", "/proc/self/fd/7", "cwd", "ls"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert!(err.contains("outside the container's root"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    b.ok(&["rm", "-f", "cwd"]);
}

/// The host's mount table is gone from the container's namespace: its root is the overlay
/// alone (the old root, stacked on it by `pivot_root`, was taken down), and none of the host's
/// mount points is listed.
#[test]
fn nothing_of_the_host_mounts_stays_in_the_container() {
    let b = with_busybox();
    let host: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .collect();
    let out = b.ok(&["run", "--rm", "localhost/bb", "cat", "/proc/self/mountinfo"]);
    let points: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((f[4], *f.get(dash + 1)?))
        })
        .collect();
    let roots: Vec<&str> = points
        .iter()
        .filter(|(p, _)| *p == "/")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(roots, ["overlay"], "{out}");
    // What the container mounts itself (/proc, /dev, /sys and below, /etc's files) may share
    // a path with a host mount; anything else may not.
    let own = ["/proc", "/dev", "/sys", "/etc/"];
    for (point, _) in &points {
        if *point == "/" || own.iter().any(|o| point.starts_with(o)) {
            continue;
        }
        assert!(
            !host.iter().any(|h| h == point),
            "host mount {point} in {out}"
        );
    }
}
