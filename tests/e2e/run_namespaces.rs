//! `run`'s namespace and name-service flags: `--ipc`, `--shm-size`, `--pid`, `--uts`,
//! `--cgroupns`, `--add-host`, `--dns*`, `--group-add`, `--sysctl` and `--domainname`, as root
//! and as an unprivileged user, and compared with Docker on the same image.

use berth_testkit::unprivileged_user;

use crate::common::Berth;
use crate::dockerd::{Dockerd, BUSYBOX};
use crate::rootless::AsUser;

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// Each `run --rm FLAGS localhost/bb true` fails with 125 and one line containing its text.
pub(crate) fn refuses(b: &Berth, cases: &[(&[&str], &str)]) {
    for (flags, says) in cases {
        let err = b.fails(
            &[&["run", "--rm"], *flags, &["localhost/bb", "true"]].concat(),
            125,
        );
        assert!(err.contains(says), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

fn shm_kib(out: &str) -> String {
    out.lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn ipc_and_shm_size() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let df = ["df", "-k", "/dev/shm"];
    let run = |flags: &[&str], cmd: &[&str]| {
        b.ok(&[&["run", "--rm"], flags, &["localhost/bb"], cmd].concat())
    };
    assert_eq!(shm_kib(&run(&[], &df)), "65536");
    assert_eq!(shm_kib(&run(&["--shm-size", "128m"], &df)), "131072");
    assert_eq!(shm_kib(&run(&["--shm-size", "0"], &df)), "65536");
    assert!(!run(&["--ipc", "none"], &["ls", "/dev"]).contains("shm"));
    assert_ne!(
        run(&[], &["readlink", "/proc/self/ns/ipc"]).trim(),
        host_ns("ipc")
    );
    let shared = run(&["--ipc", "host"], &["readlink", "/proc/self/ns/ipc"]);
    assert_eq!(shared.trim(), host_ns("ipc"));
    // The host's /dev/shm: a file written inside is there outside.
    let name = format!("berth-ipc-test-{}", std::process::id());
    run(&["--ipc", "host"], &["touch", &format!("/dev/shm/{name}")]);
    let outside = std::path::Path::new("/dev/shm").join(&name);
    assert!(outside.exists());
    std::fs::remove_file(outside).unwrap();
    // The hpc profile shares the host's by default and takes a private one on request.
    let hpc = run(&["--hpc"], &["readlink", "/proc/self/ns/ipc"]);
    assert_eq!(hpc.trim(), host_ns("ipc"));
    let private = run(
        &["--hpc", "--ipc", "private"],
        &["readlink", "/proc/self/ns/ipc"],
    );
    assert_ne!(private.trim(), host_ns("ipc"));
    refuses(
        &b,
        &[
            (&["--ipc", "bogus"][..], "invalid --ipc \"bogus\""),
            (&["--ipc", "container:x"][..], "invalid --ipc"),
            (&["--shm-size", "lots"][..], "invalid --shm-size \"lots\""),
        ],
    );
}

#[test]
fn pid_uts_and_cgroup_namespaces_of_the_host() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let host_name = b.ok(&["run", "--rm", "--uts", "host", "localhost/bb", "hostname"]);
    assert_eq!(
        host_name.trim(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    for (flag, kind) in [("--pid", "pid"), ("--uts", "uts"), ("--cgroupns", "cgroup")] {
        let link = format!("/proc/self/ns/{kind}");
        let inside = b.ok(&[
            "run",
            "--rm",
            flag,
            "host",
            "localhost/bb",
            "readlink",
            &link,
        ]);
        assert_eq!(inside.trim(), host_ns(kind), "{flag} host");
        let own = b.ok(&[
            "run",
            "--rm",
            flag,
            "private",
            "localhost/bb",
            "readlink",
            &link,
        ]);
        assert_ne!(own.trim(), host_ns(kind), "{flag} private");
    }
    // The host's processes are visible, and exec joins such a container.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "shared",
        "--pid",
        "host",
        "--ipc",
        "host",
        "--uts",
        "host",
        "--cgroupns",
        "host",
        "localhost/bb",
        "sleep",
        "30",
    ]);
    let me = std::process::id().to_string();
    let ps = b.ok(&["exec", "shared", "ps", "-o", "pid"]);
    assert!(ps.lines().any(|l| l.trim() == me), "{ps}");
    b.ok(&["rm", "-f", "shared"]);
    let err = b.fails(
        &[
            "run",
            "--rm",
            "-h",
            "x",
            "--uts",
            "host",
            "localhost/bb",
            "true",
        ],
        125,
    );
    assert!(err.contains("conflicting options"), "{err}");
    let err = b.fails(
        &["run", "--rm", "--pid", "bogus", "localhost/bb", "true"],
        125,
    );
    assert!(err.contains("invalid --pid \"bogus\""), "{err}");
}

#[test]
fn hosts_resolver_and_groups() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let out = b.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.0.0.5",
        "--add-host",
        "six:::1",
        "--dns",
        "9.9.9.9",
        "--dns-search",
        "example.org",
        "--dns-option",
        "ndots:2",
        "localhost/bb",
        "sh",
        "-c",
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
    ]);
    let (hosts, resolv) = out.split_once("---\n").unwrap();
    assert!(hosts.ends_with("10.0.0.5\tdb\n::1\tsix\n"), "{hosts}");
    assert_eq!(
        resolv,
        "search example.org\nnameserver 9.9.9.9\noptions ndots:2\n"
    );
    let id = b.ok(&[
        "run",
        "--rm",
        "--group-add",
        "10",
        "--group-add",
        "nogroup",
        "localhost/bb",
        "id",
    ]);
    assert!(id.contains("groups=0(root),10,65534(nogroup)"), "{id}");
    refuses(
        &b,
        &[
            (&["--add-host", "nohost"], "invalid --add-host \"nohost\""),
            (&["--add-host", "h:not-an-ip"], "is not an IP address"),
            (&["--group-add", "nosuch"], "unable to find group nosuch"),
            (&["--hpc", "--group-add", "10"], "--group-add 10"),
        ],
    );
}

#[test]
fn sysctls_and_domainname_stay_in_the_container() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let read =
        "cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shmmni /proc/sys/kernel/domainname";
    let before = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    let out = b.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.core.somaxconn=1000",
        "--sysctl",
        "kernel.shmmni=1000",
        "--domainname",
        "example.org",
        "localhost/bb",
        "sh",
        "-c",
        read,
    ]);
    assert_eq!(out, "1000\n1000\nexample.org\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap(),
        before
    );
    refuses(
        &b,
        &[
            (
                &["--sysctl", "kernel.panic=1"],
                "not a namespaced parameter",
            ),
            (&["--sysctl", "net.x/../y=1"], "not a namespaced parameter"),
            (
                &["--network", "host", "--sysctl", "net.core.somaxconn=1"],
                "host's network",
            ),
            (
                &["--ipc", "host", "--sysctl", "kernel.shmmni=1"],
                "host's ipc",
            ),
            (
                &["--sysctl", "net.core.nosuch=1"],
                "/proc/sys/net/core/nosuch",
            ),
            (&["--uts", "host", "--domainname", "x"], "--domainname x"),
        ],
    );
}

#[test]
fn unprivileged_user_shares_host_namespaces() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    for (flag, kind) in [("--pid", "pid"), ("--ipc", "ipc"), ("--uts", "uts")] {
        let link = format!("/proc/self/ns/{kind}");
        let inside = u.ok(&[
            "run",
            "--rm",
            flag,
            "host",
            "localhost/bb",
            "readlink",
            &link,
        ]);
        assert_eq!(inside.trim(), host_ns(kind), "{flag} host");
    }
    let df = u.ok(&[
        "run",
        "--rm",
        "--shm-size",
        "32m",
        "localhost/bb",
        "df",
        "-k",
        "/dev/shm",
    ]);
    assert_eq!(shm_kib(&df), "32768");
    u.ok(&[
        "run",
        "-d",
        "--name",
        "h",
        "--pid",
        "host",
        "--ipc",
        "host",
        "localhost/bb",
        "sleep",
        "30",
    ]);
    assert_eq!(u.ok(&["exec", "h", "echo", "in"]), "in\n");
    u.ok(&["rm", "-f", "h"]);
}

#[test]
fn namespace_and_name_flags_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let cases: &[&[&str]] = &[
        &[
            "run",
            "--rm",
            "--shm-size",
            "128m",
            BUSYBOX,
            "df",
            "-k",
            "/dev/shm",
        ],
        &[
            "run",
            "--rm",
            "--shm-size",
            "0",
            BUSYBOX,
            "df",
            "-k",
            "/dev/shm",
        ],
        &["run", "--rm", "--ipc", "none", BUSYBOX, "ls", "/dev"],
        &[
            "run",
            "--rm",
            "--ipc",
            "host",
            BUSYBOX,
            "readlink",
            "/proc/self/ns/ipc",
        ],
        &[
            "run",
            "--rm",
            "--pid",
            "host",
            BUSYBOX,
            "readlink",
            "/proc/self/ns/pid",
        ],
        &["run", "--rm", "--uts", "host", BUSYBOX, "hostname"],
        &[
            "run",
            "--rm",
            "--add-host",
            "db:10.0.0.5",
            BUSYBOX,
            "sh",
            "-c",
            "tail -1 /etc/hosts",
        ],
        &[
            "run",
            "--rm",
            "--dns",
            "9.9.9.9",
            "--dns-search",
            "example.org",
            "--dns-option",
            "ndots:2",
            BUSYBOX,
            "cat",
            "/etc/resolv.conf",
        ],
        &[
            "run",
            "--rm",
            "--group-add",
            "10",
            "--group-add",
            "nogroup",
            BUSYBOX,
            "id",
        ],
        &["run", "--rm", "-h", "x", "--uts", "host", BUSYBOX, "true"],
        &["run", "--rm", "--ipc", "bogus", BUSYBOX, "true"],
        &["run", "--rm", "--group-add", "nosuch", BUSYBOX, "true"],
        &[
            "run",
            "--rm",
            "--sysctl",
            "net.core.somaxconn=1000",
            "--sysctl",
            "kernel.shmmni=1000",
            BUSYBOX,
            "cat",
            "/proc/sys/net/core/somaxconn",
            "/proc/sys/kernel/shmmni",
        ],
        &[
            "run",
            "--rm",
            "--domainname",
            "example.org",
            BUSYBOX,
            "cat",
            "/proc/sys/kernel/domainname",
        ],
        &["run", "--rm", "--sysctl", "kernel.panic=1", BUSYBOX, "true"],
    ];
    let mut differences = Vec::new();
    for args in cases {
        let (theirs, ours) = d.both(&b, args);
        let (theirs, ours) = (
            crate::dockerd::code_and_stdout(&theirs),
            crate::dockerd::code_and_stdout(&ours),
        );
        if theirs != ours {
            differences.push(format!("{args:?}:\n docker {theirs:?}\n berth  {ours:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn restart_and_publish_need_what_there_is_not() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    b.ok(&["run", "--rm", "--restart", "no", "localhost/bb", "true"]);
    refuses(
        &b,
        &[
            (&["--restart", "always"][..], "no daemon restarts"),
            (&["-p", "8080:80"][..], "use --network host"),
        ],
    );
    let out = b.run(&[
        "run",
        "--rm",
        "-p",
        "8080:80",
        "--network",
        "host",
        "localhost/bb",
        "true",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Published ports are discarded"), "{err}");
}
