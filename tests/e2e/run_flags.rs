//! The rest of `run`'s flags, and the protections against known runtime escapes.

use std::process::Command;

use crate::common::Berth;

fn with_busybox() -> Berth {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    b
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

#[test]
fn network_modes() {
    let b = with_busybox();
    let count = |net: &str| {
        let out = b.ok(&[
            "run",
            "--rm",
            "--network",
            net,
            "localhost/bb",
            "cat",
            "/proc/net/dev",
        ]);
        out.lines().filter(|l| l.contains(':')).count()
    };
    assert_eq!(count("none"), 1, "only loopback");
    assert_eq!(count("private"), 1, "only loopback");
    let host = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .filter(|l| l.contains(':'))
        .count();
    assert_eq!(count("host"), host);
    let err = b.fails(
        &["run", "--rm", "--network", "bogus", "localhost/bb", "true"],
        125,
    );
    assert!(err.contains("bogus"), "{err}");
}

/// A new network namespace's `lo` starts down; like Docker, the container gets it up, so a
/// server on 127.0.0.1 inside is reachable from inside. (httpd listens only after it has
/// gone to the background, hence the retries; busybox-static's `wget -T` crashes, hence
/// `timeout`.)
#[test]
fn loopback_is_up_in_a_new_network_namespace() {
    let b = with_busybox();
    for net in ["private", "none"] {
        let out = b.ok(&[
            "run",
            "--rm",
            "--network",
            net,
            "localhost/bb",
            "sh",
            "-c",
            "cat /sys/class/net/lo/flags; ip link show lo; \
             mkdir /tmp/www && echo served > /tmp/www/index.html && \
             httpd -p 127.0.0.1:8080 -h /tmp/www && \
             for i in $(seq 50); do \
               timeout 5 wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.1; \
             done",
        ]);
        let mut l = out.lines();
        let flags = l.next().unwrap_or_default();
        let flags = i64::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
        assert_eq!(flags & 1, 1, "--network {net}: lo is down: {out}");
        assert!(
            l.next().unwrap_or_default().contains(",UP"),
            "--network {net}: {out}"
        );
        assert!(l.any(|l| l == "served"), "--network {net}: {out}");
    }
}

#[test]
fn limits_and_capabilities() {
    let b = with_busybox();
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=100:100",
            "localhost/bb",
            "sh",
            "-c",
            "ulimit -n"
        ])
        .trim(),
        "100"
    );
    let eff = |args: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["localhost/bb", "grep", "CapEff", "/proc/self/status"]);
        let out = b.ok(&a);
        u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let default = eff(&[]);
    assert_ne!(default, 0);
    assert_eq!(default & (1 << 21), 0, "no CAP_SYS_ADMIN by default");
    assert_eq!(eff(&["--cap-drop", "ALL"]), 0);
    assert_ne!(eff(&["--cap-drop", "ALL", "--cap-add", "NET_RAW"]), 0);
    assert_ne!(eff(&["--privileged"]) & (1 << 21), 0);
    let out = b.ok(&[
        "run",
        "--rm",
        "localhost/bb",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(out.contains('1'), "{out}");
    let err = b.fails(
        &["run", "--rm", "--cap-add", "FLY", "localhost/bb", "true"],
        125,
    );
    assert!(err.contains("FLY"), "{err}");
}

#[test]
fn cgroup_limits_as_root() {
    let b = with_busybox();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--memory",
            "64m",
            "--pids-limit",
            "10",
            "--cpus",
            "0.5",
            "localhost/bb",
            "sleep",
            "30",
        ])
        .trim()
        .to_string();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(b.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let dirs: Vec<String> = state["Cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let read = |file: &str| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(format!("{d}/{file}")).ok())
            .unwrap_or_else(|| panic!("no {file} in {dirs:?}"))
    };
    if dirs.iter().any(|d| d.contains("/memory")) {
        assert_eq!(
            read("memory.limit_in_bytes").trim(),
            (64u64 << 20).to_string()
        );
        assert_eq!(read("pids.max").trim(), "10");
        assert_eq!(read("cpu.cfs_quota_us").trim(), "50000");
    } else {
        assert_eq!(read("memory.max").trim(), (64u64 << 20).to_string());
    }
    let pid = state["Pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("berth-{}", &id[..12])), "{cg}");
    b.ok(&["rm", "-f", &id]);
    for d in &dirs {
        assert!(!std::path::Path::new(d).exists(), "cgroup {d} left behind");
    }
}

#[test]
fn stop_signal_labels_devices_and_pull_policy() {
    let b = with_busybox();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "--stop-signal",
        "USR1",
        "--label",
        "team=hpc",
        "localhost/bb",
        "sh",
        "-c",
        "trap 'exit 9' USR1; while :; do sleep 0.1; done",
    ]);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "s"])).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["team"], "hpc");
    b.ok(&["stop", "s"]);
    assert_eq!(b.ok(&["wait", "s"]).trim(), "9");
    b.ok(&["rm", "s"]);

    let out = b.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "localhost/bb",
        "sh",
        "-c",
        "echo x > /dev/mynull && echo ok",
    ]);
    assert_eq!(out.trim(), "ok");
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--device",
            "/etc/passwd",
            "localhost/bb",
            "true",
        ],
        125,
    );
    assert!(err.contains("/etc/passwd"), "{err}");

    let err = b.fails(
        &["run", "--rm", "--pull", "never", "localhost/absent", "true"],
        125,
    );
    assert!(err.contains("localhost/absent"), "{err}");
    let reg = berth_testkit::Registry::start();
    let name = format!("{}/p/bb:1", reg.addr());
    b.ok(&["tag", "localhost/bb", &name]);
    b.ok(&["push", "-q", "--tls-verify=false", &name]);
    b.ok(&["rmi", &name]);
    let out = b.ok(&[
        "run",
        "--rm",
        "-q",
        "--tls-verify=false",
        &name,
        "echo",
        "pulled",
    ]);
    assert_eq!(out.trim(), "pulled");
    // The registry's tag moves to a new image while the local one stays: the default
    // (missing) runs the local image, --pull always the registry's.
    let ctx = b.dir.path().join("newer");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nRUN echo newer > /marker\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", &name, ctx.to_str().unwrap()]);
    b.ok(&["push", "-q", "--tls-verify=false", &name]);
    b.ok(&["tag", "localhost/bb", &name]);
    let run = |pull: &str| {
        b.cmd()
            .args([
                "run",
                "--rm",
                "--pull",
                pull,
                "-q",
                "--tls-verify=false",
                &name,
            ])
            .args(["cat", "/marker"])
            .output()
            .unwrap()
    };
    assert_eq!(run("missing").status.code(), Some(1), "the local image");
    let out = run("always");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "newer\n");
    assert_eq!(
        run("never").stdout,
        b"newer\n",
        "the pulled image is now the local one"
    );
}

#[test]
fn tty_allocation() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script(1) missing: skipped");
        return;
    }
    let b = with_busybox();
    let cmd = format!(
        "{} run --rm -t localhost/bb sh -c 'tty; stty size'",
        env!("CARGO_BIN_EXE_berth")
    );
    let out = b.in_terminal(&cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("/dev/pts/"), "{text}");
    let _ = lines(&text);
}

/// CVE-2024-21626: no host fd may serve as a working directory into the host.
#[test]
fn leaked_fd_workdir_is_refused() {
    let b = with_busybox();
    for fd in 3..8 {
        let w = format!("/proc/self/fd/{fd}");
        let out = b.run(&[
            "run",
            "--rm",
            "-w",
            &w,
            "localhost/bb",
            "sh",
            "-c",
            "ls .. | head -50",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() || !text.contains("berth-e2e-"),
            "workdir {w} reached the host: {text}"
        );
    }
}

/// CVE-2019-5736: the container cannot open the monitor's binary for writing, even when it
/// shares the host pid namespace and can see the monitor.
#[test]
fn monitor_binary_is_unreachable() {
    let b = with_busybox();
    let bin = env!("CARGO_BIN_EXE_berth");
    let before = std::fs::read(bin).unwrap();
    let out = b.run(&[
        "run",
        "--rm",
        "--hpc",
        "localhost/bb",
        "sh",
        "-c",
        "echo pwned >> /proc/$PPID/exe && echo wrote",
    ]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("wrote"));
    let out = b.run(&[
        "run",
        "--rm",
        "--hpc",
        "localhost/bb",
        "sh",
        "-c",
        "ls -l /proc/$PPID/exe && cat /proc/$PPID/exe > /dev/null && echo read",
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("read"),
        "monitor exe readable"
    );
    assert_eq!(std::fs::read(bin).unwrap(), before);
}

/// With a cgroup (root, limits asked), pause uses the freezer; without one, SIGSTOP.
#[test]
fn pause_with_and_without_freezer() {
    let b = with_busybox();
    for (name, extra) in [("frz", vec!["--pids-limit", "50"]), ("sig", vec![])] {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(extra);
        args.extend(["localhost/bb", "sleep", "30"]);
        b.ok(&args);
        let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
        let pid = v[0]["State"]["Pid"].as_i64().unwrap();
        b.ok(&["pause", name]);
        let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let st = state
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap()
            .to_string();
        assert!(st.contains('T') || st.contains('D'), "{name}: {st}");
        b.ok(&["unpause", name]);
        b.ok(&["rm", "-f", name]);
    }
}

/// The `Seccomp:` mode of a container's process: 0 none, 2 filtered.
fn seccomp_mode(b: &Berth, opts: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(opts);
    a.extend_from_slice(&["localhost/bb", "grep", "^Seccomp:", "/proc/self/status"]);
    b.ok(&a)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn seccomp_default_unconfined_and_custom_profiles() {
    let b = with_busybox();
    assert_eq!(seccomp_mode(&b, &[]), "2");
    assert_eq!(
        seccomp_mode(&b, &["--security-opt", "seccomp=unconfined"]),
        "0"
    );
    assert_eq!(seccomp_mode(&b, &["--privileged"]), "0");

    // A new user namespace needs no capability, only the filter stands in the way.
    let out = b.run(&["run", "--rm", "localhost/bb", "unshare", "-U", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");
    b.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "localhost/bb",
        "unshare",
        "-U",
        "true",
    ]);
    // Ordinary programs keep working under the default filter.
    let out = b.ok(&[
        "run",
        "--rm",
        "localhost/bb",
        "sh",
        "-c",
        "ls / >/dev/null && cat /etc/passwd >/dev/null && sleep 0.1 && id -u && echo $(echo sub)",
    ]);
    assert_eq!(lines(&out), ["0", "sub"]);
    // The record names the default profile, built again at each start: a detached container
    // and a process exec'd into it are confined alike.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "sc-exec",
        "localhost/bb",
        "sleep",
        "60",
    ]);
    let status = b.ok(&["exec", "sc-exec", "grep", "^Seccomp:", "/proc/self/status"]);
    assert_eq!(status.split_whitespace().nth(1), Some("2"), "{status}");
    let out = b.run(&["exec", "sc-exec", "unshare", "-U", "true"]);
    assert!(!out.status.success());
    b.ok(&["rm", "-f", "sc-exec"]);

    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("nomkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = b.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "localhost/bb",
        "mkdir",
        "/x",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "localhost/bb",
            "echo",
            "ok"
        ])
        .trim(),
        "ok"
    );

    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", broken.display());
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "localhost/bb",
            "true",
        ],
        125,
    );
    assert!(
        err.contains("broken.json") && err.contains("syscalls[0].action"),
        "{err}"
    );
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=/no/such.json",
            "localhost/bb",
            "true",
        ],
        125,
    );
    assert!(err.contains("/no/such.json"), "{err}");
}

#[test]
fn init_runs_the_command_as_pid_2_and_forwards_stop() {
    let b = with_busybox();
    let out = b.ok(&[
        "run",
        "--rm",
        "--init",
        "localhost/bb",
        "sh",
        "-c",
        "echo $$",
    ]);
    assert_eq!(out.trim(), "2");
    assert_eq!(
        b.ok(&["run", "--rm", "localhost/bb", "sh", "-c", "echo $$"])
            .trim(),
        "1"
    );
    // The container's first child is pid 2, as in Docker: the thread of the init that made
    // the network namespace took that pid, and gave it back.
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "localhost/bb",
            "sh",
            "-c",
            "sleep 0 & echo $!"
        ])
        .trim(),
        "2"
    );
    // Exit status passes through; an orphan is reaped rather than left as a zombie.
    let out = b.run(&[
        "run",
        "--rm",
        "--init",
        "localhost/bb",
        "sh",
        "-c",
        "(sleep 0.1 &) ; sleep 0.5; cat /proc/[0-9]*/stat | grep -c ') Z'; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");

    b.ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        "i",
        "localhost/bb",
        "sleep",
        "100",
    ]);
    let t = std::time::Instant::now();
    b.ok(&["stop", "-t", "5", "i"]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(b.ok(&["wait", "i"]).trim(), "143");
    b.ok(&["rm", "i"]);
}
