//! More of `run`'s and `stop`'s Docker flags: `--oom-score-adj`, `--label-file`,
//! `--annotation`, `--cpu-quota`/`--cpu-period`, `stop`/`restart --signal`, and the
//! `HostConfig` fields `inspect` shows for them and for the namespace flags, compared with
//! Docker where it has the same.

use crate::common::Berth;
use crate::dockerd::{code_and_stdout, Dockerd, BUSYBOX};
use crate::run_namespaces::refuses;

#[test]
fn oom_score_cpu_quota_labels_and_annotations() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let adj = b.ok(&[
        "run",
        "--rm",
        "--oom-score-adj",
        "500",
        "localhost/bb",
        "cat",
        "/proc/self/oom_score_adj",
    ]);
    assert_eq!(adj, "500\n");
    // Half a CPU: one CPU visible, as --cpus 0.5 shows it.
    let n = b.ok(&[
        "run",
        "--rm",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "localhost/bb",
        "nproc",
    ]);
    assert_eq!(n, "1\n");
    let file = b.dir.path().join("labels");
    std::fs::write(&file, "# team\na=1\n\nb=2\n").unwrap();
    b.ok(&[
        "create",
        "--name",
        "labelled",
        "--label-file",
        file.to_str().unwrap(),
        "--label",
        "b=3",
        "--annotation",
        "org.example/x=y",
        "localhost/bb",
        "true",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&b.ok(&["container", "inspect", "labelled"])).unwrap();
    let v = &v[0];
    assert_eq!(
        v["Config"]["Labels"],
        serde_json::json!({"a": "1", "b": "3"})
    );
    assert_eq!(v["HostConfig"]["Annotations"]["org.example/x"], "y");
    b.ok(&["rm", "labelled"]);
    refuses(
        &b,
        &[
            (&["--oom-score-adj", "1001"], "between -1000 and 1000"),
            (
                &["--cpus", "1", "--cpu-quota", "50000"],
                "conflicting options",
            ),
            (&["--cpu-period", "10"], "invalid --cpu-period 10"),
            (
                &["--label-file", "/nonexistent"],
                "--label-file /nonexistent",
            ),
            (&["--annotation", "novalue"], "invalid --annotation"),
        ],
    );
}

#[test]
fn more_flags_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let file = b.dir.path().join("labels");
    std::fs::write(&file, "# team\na=1\n\nb=2\n").unwrap();
    let labels = file.to_str().unwrap();
    let mut differences = Vec::new();
    let mut same = |what: String, theirs: (Option<i32>, String), ours: (Option<i32>, String)| {
        if theirs != ours {
            differences.push(format!("{what}:\n docker {theirs:?}\n berth  {ours:?}"));
        }
    };
    for args in [
        &[
            "run",
            "--rm",
            "--oom-score-adj",
            "500",
            BUSYBOX,
            "cat",
            "/proc/self/oom_score_adj",
        ][..],
        &["run", "--rm", "--oom-score-adj", "1001", BUSYBOX, "true"],
    ] {
        let (theirs, ours) = d.both(&b, args);
        same(
            format!("{args:?}"),
            code_and_stdout(&theirs),
            code_and_stdout(&ours),
        );
    }
    // stop --signal: the container ends by that signal, not its own stop signal.
    let (theirs, ours) = d.both(
        &b,
        &["run", "-d", "--name", "stopme", BUSYBOX, "sleep", "60"],
    );
    assert!(theirs.status.success() && ours.status.success());
    let (theirs, ours) = d.both(&b, &["stop", "-s", "KILL", "stopme"]);
    same(
        "stop -s KILL".into(),
        code_and_stdout(&theirs),
        code_and_stdout(&ours),
    );
    let code = ["inspect", "-f", "{{.State.ExitCode}}", "stopme"];
    let (theirs, ours) = d.both(&b, &code);
    same(
        "exit code after stop -s KILL".into(),
        code_and_stdout(&theirs),
        code_and_stdout(&ours),
    );
    d.both(&b, &["rm", "-f", "stopme"]);
    // HostConfig as inspect shows it.
    let create = [
        "create",
        "--name",
        "hostcfg",
        "--label-file",
        labels,
        "--label",
        "b=3",
        "--shm-size",
        "128m",
        "--ipc",
        "shareable",
        "--pid",
        "host",
        "--add-host",
        "db:10.0.0.5",
        "--dns",
        "9.9.9.9",
        "--dns-search",
        "example.org",
        "--dns-option",
        "ndots:2",
        "--group-add",
        "10",
        "--sysctl",
        "net.core.somaxconn=1000",
        "--oom-score-adj",
        "100",
        BUSYBOX,
        "true",
    ];
    let (theirs, ours) = d.both(&b, &create);
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    for field in [
        ".Config.Labels",
        ".HostConfig.ShmSize",
        ".HostConfig.IpcMode",
        ".HostConfig.PidMode",
        ".HostConfig.ExtraHosts",
        ".HostConfig.Dns",
        ".HostConfig.DnsSearch",
        ".HostConfig.DnsOptions",
        ".HostConfig.GroupAdd",
        ".HostConfig.Sysctls",
        ".HostConfig.OomScoreAdj",
    ] {
        let format = format!("{{{{json {field}}}}}");
        let (theirs, ours) = d.both(&b, &["inspect", "-f", &format, "hostcfg"]);
        same(
            field.into(),
            code_and_stdout(&theirs),
            code_and_stdout(&ours),
        );
    }
    d.both(&b, &["rm", "-f", "hostcfg"]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn exec_env_file_matches_docker_and_privileged_has_every_capability() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let file = b.dir.path().join("env");
    std::fs::write(&file, "# vars\nA=1\nB=2\n").unwrap();
    let env = file.to_str().unwrap();
    let (theirs, ours) = d.both(
        &b,
        &["run", "-d", "--name", "execme", BUSYBOX, "sleep", "60"],
    );
    assert!(theirs.status.success() && ours.status.success());
    let mut differences = Vec::new();
    for args in [
        &[
            "exec",
            "--env-file",
            env,
            "-e",
            "B=3",
            "execme",
            "sh",
            "-c",
            "echo $A $B",
        ][..],
        &["exec", "execme", "grep", "CapEff", "/proc/self/status"],
        &["exec", "--env-file", "/nonexistent", "execme", "true"],
    ] {
        let (theirs, ours) = d.both(&b, args);
        let (theirs, ours) = (code_and_stdout(&theirs), code_and_stdout(&ours));
        if theirs != ours {
            differences.push(format!("{args:?}:\n docker {theirs:?}\n berth  {ours:?}"));
        }
    }
    // Docker's runc refuses `exec --privileged` on this host ("unable to apply caps"); Berth's
    // process gets every capability the kernel has, in the container's user namespace.
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let line = b.ok(&[
        "exec",
        "--privileged",
        "execme",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    let hex = line.split_whitespace().nth(1).unwrap();
    assert_eq!(
        u64::from_str_radix(hex, 16).unwrap(),
        (1u64 << (last + 1)) - 1,
        "{line}"
    );
    d.both(&b, &["rm", "-f", "execme"]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
