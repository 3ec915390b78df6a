//! How a container ends and what signals do to it: it dies with its monitor, every catchable
//! signal sent to `berth run` reaches it, it starts with default dispositions, and a killed
//! holder of a job's shared user namespace is replaced.

use std::process::Stdio;
use std::time::Duration;

use crate::run::{code, with_busybox};

/// Only the monitor records a container's end: a container whose monitor is killed must not
/// run on unrecorded (its state would read as exited).
#[test]
fn container_dies_with_its_monitor() {
    let b = with_busybox();
    for user in [None, Some("nobody")] {
        let mut args = vec!["run", "-d"];
        if let Some(u) = user {
            args.extend(["-u", u]);
        }
        args.extend(["localhost/bb", "sleep", "300"]);
        let id = b.ok(&args).trim().to_string();
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(b.root().join("containers").join(&id).join("state.json")).unwrap(),
        )
        .unwrap();
        let pid = state["Pid"].as_i64().unwrap();
        let monitor = state["MonitorPid"].as_i64().unwrap();
        std::process::Command::new("kill")
            .args(["-KILL", &monitor.to_string()])
            .status()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{user:?}: container outlived its monitor"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(b.ok(&["ps", "-q"]).trim().is_empty());
        b.ok(&["rm", &id]);
    }
    // With --rm the monitor had no chance to remove it: ps does, as Docker would have.
    let id = b
        .ok(&["run", "-d", "--rm", "localhost/bb", "sleep", "300"])
        .trim()
        .to_string();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(b.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &state["MonitorPid"].as_i64().unwrap().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !b.ok(&["ps", "-aq"]).trim().is_empty() {
        assert!(std::time::Instant::now() < deadline, "--rm record left");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!b.root().join("containers").join(&id).exists());
}

#[test]
fn signals_reach_the_container() {
    let b = with_busybox();
    let mut child = b
        .cmd()
        .args([
            "run",
            "--rm",
            "localhost/bb",
            "sh",
            "-c",
            "trap 'exit 42' USR1; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    std::process::Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));

    // A signal that arrives as soon as the container runs, before the monitor is waiting
    // (here sent by the process itself: in the hpc profile its parent is the monitor), is
    // forwarded too instead of killing the monitor.
    for _ in 0..3 {
        let (c, _, err) = code(
            &b,
            &[
                "run",
                "--rm",
                "--hpc",
                "localhost/bb",
                "sh",
                "-c",
                "trap 'exit 42' USR1; kill -USR1 $PPID; while :; do sleep 0.1; done",
            ],
        );
        assert_eq!(c, 42, "{err}");
    }

    // A scheduler sends SIGTERM more than once. Copies that arrive after the container has
    // exited must not kill the monitor during its clean-up: the exit code stays the
    // container's and the --rm record goes away.
    for profile in ["--hpc", "--profile=docker"] {
        let mut child = b
            .cmd()
            .args([
                "run",
                "--rm",
                profile,
                "localhost/bb",
                "sh",
                "-c",
                "trap 'exit 143' TERM; echo ready; while :; do sleep 0.01; done",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let pid = child.id().to_string();
        let status = loop {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .stderr(Stdio::null())
                .status();
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(143), "{profile}: {status:?} {err}");
        assert_eq!(b.ok(&["ps", "-aq"]).trim(), "", "{profile}: record left");
    }
}

/// A caller that ignores signals (`nohup`, a shell's background job) does not pass that on: the
/// container's process starts with every signal at its default and none blocked.
#[test]
fn container_starts_with_default_signal_dispositions() {
    let b = with_busybox();
    let berth = b.cmd();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' INT HUP USR2 PIPE; exec \"$0\" \"$@\"")
        .arg(berth.get_program())
        .args([
            "run",
            "--rm",
            "localhost/bb",
            "grep",
            "-E",
            "^Sig(Ign|Blk)",
            "/proc/self/status",
        ])
        .envs(berth.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
        "{text}"
    );
}

/// The process that holds an MPI job's shared user namespace, if killed, is replaced: the next
/// rank of the job starts a new holder, which joins the namespace the job's running containers
/// are still in (rather than split the job's ranks in two, or fail).
#[test]
fn a_killed_user_namespace_holder_is_replaced() {
    let b = with_busybox();
    let job = format!("e2e-killed-holder-{}", std::process::id());
    let rank = |n: &str| {
        let mut c = b.cmd();
        c.env("PMIX_RANK", n).env("PMIX_NAMESPACE", &job);
        c
    };
    let out = rank("0")
        .args([
            "run",
            "-d",
            "--hpc",
            "--name",
            "r0",
            "localhost/bb",
            "sleep",
            "30",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r0 = b.ok(&["inspect", "-f", "{{.State.Pid}}", "r0"]);
    let r0_ns = std::fs::read_link(format!("/proc/{}/ns/user", r0.trim())).unwrap();
    let pid_file = std::fs::read_dir("/run/berth/userns")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&format!("pmix-{job}-")) && n.ends_with(".pid")
        })
        .expect("no holder pid file");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let pid = pid.split_whitespace().next().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let out = rank("1")
        .args([
            "run",
            "--rm",
            "--hpc",
            "localhost/bb",
            "readlink",
            "/proc/self/ns/user",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r0_ns.to_string_lossy(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replaced = std::fs::read_to_string(&pid_file).unwrap_or_default();
    assert!(
        !replaced.starts_with(&format!("{pid} ")),
        "the dead holder is still named"
    );
    b.ok(&["rm", "-f", "r0"]);
}
