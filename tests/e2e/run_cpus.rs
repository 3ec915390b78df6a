//! CPU limits a container sees: `--cpuset-cpus`, `--cpus` and the affinity a batch system gave
//! the caller show in `nproc`, `/proc/cpuinfo`, `cpu/online` and `OMP_NUM_THREADS`, and are
//! never widened.

use crate::run::with_busybox;

#[test]
fn cpu_limits_are_visible() {
    let b = with_busybox();
    let out = b.ok(&[
        "run", "--rm", "--cpuset-cpus", "0", "localhost/bb", "sh", "-c",
        "nproc; grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; echo $OMP_NUM_THREADS",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1", "1", "0", "1"],
        "{out}"
    );
    // An explicit OMP_NUM_THREADS wins.
    let out = b.ok(&[
        "run",
        "--rm",
        "--cpus",
        "1",
        "-e",
        "OMP_NUM_THREADS=7",
        "localhost/bb",
        "sh",
        "-c",
        "echo $OMP_NUM_THREADS",
    ]);
    assert_eq!(out.trim(), "7");
    // --cpus narrows what the container sees just as a cpuset does.
    let show = "nproc; grep -c ^processor /proc/cpuinfo; cat /sys/devices/system/cpu/online; echo $OMP_NUM_THREADS";
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    if online.trim() != "0" {
        let out = b.ok(&[
            "run",
            "--rm",
            "--cpus",
            "1",
            "localhost/bb",
            "sh",
            "-c",
            show,
        ]);
        let seen: Vec<&str> = out.split_whitespace().collect();
        assert_eq!([seen[0], seen[1], seen[3]], ["1", "1", "1"], "{out}");
        assert!(!seen[2].contains(['-', ',']), "one CPU online: {out}");
    }
    // An affinity inherited from the caller (a batch system's binding) is kept, and never
    // widened: a cpuset outside it is refused, naming both.
    let last = online.trim().rsplit(['-', ',']).next().unwrap().to_string();
    if last != "0" {
        let taskset = ["taskset", "-c", last.as_str()];
        let out = b.wrapped(&taskset, &["run", "--rm", "localhost/bb", "sh", "-c", show]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        let seen: Vec<&str> = text.split_whitespace().collect();
        assert_eq!([seen[0], seen[1], seen[3]], ["1", "1", "1"], "{text}");
        assert!(!seen[2].contains(['-', ',']), "one CPU online: {text}");
        let cpuset = ["run", "--rm", "--cpuset-cpus", "0", "localhost/bb", "true"];
        let out = b.wrapped(&taskset, &cpuset);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
