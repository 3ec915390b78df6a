//! `berth exec` and its flags, on a detached busybox container.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Berth;

/// A Berth with the busybox fixture and a running container `c` started with `run_flags`.
fn running(run_flags: &[&str]) -> Berth {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let mut args = vec!["run", "-d", "--name", "c"];
    args.extend_from_slice(run_flags);
    args.extend_from_slice(&["localhost/bb", "sleep", "300"]);
    b.ok(&args);
    b
}

/// `script(1)` running `cmd` on a pty of `rows`x`cols`, with `b`'s environment.
fn in_pty(b: &Berth, rows: u16, cols: u16, cmd: &str) -> std::process::Output {
    let line = format!("stty rows {rows} cols {cols}; {cmd}");
    b.in_terminal(&line)
}

#[test]
fn exec_env_workdir_user_and_stdin() {
    let b = running(&["-e", "FROM_RUN=run"]);
    // -e adds to and overrides the container's environment.
    let out = b.ok(&[
        "exec",
        "-e",
        "FROM_RUN=exec",
        "-e",
        "NEW=1",
        "c",
        "sh",
        "-c",
        "echo $FROM_RUN $NEW",
    ]);
    assert_eq!(out.trim(), "exec 1");
    // -w; unlike a WORKDIR, a missing one is an error (126, as with Docker).
    assert_eq!(b.ok(&["exec", "-w", "/tmp", "c", "pwd"]).trim(), "/tmp");
    let err = b.fails(&["exec", "-w", "/srv/x", "c", "pwd"], 126);
    assert!(err.contains("/srv/x"), "{err}");
    // -u by name, by id, and name:group, resolved in the container's own account files.
    assert_eq!(
        b.ok(&["exec", "-u", "nobody", "c", "id"]).trim(),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    );
    assert_eq!(
        b.ok(&[
            "exec",
            "-u",
            "1000",
            "c",
            "sh",
            "-c",
            "id -u; id -g; echo $HOME"
        ])
        .trim(),
        "1000\n1000\n/home/user"
    );
    assert_eq!(
        b.ok(&["exec", "-u", "user:nogroup", "c", "id", "-g"])
            .trim(),
        "65534"
    );
    assert_eq!(
        b.ok(&["exec", "-u", "4321:42", "c", "sh", "-c", "id -u; id -g"])
            .trim(),
        "4321\n42"
    );
    // A user added inside the running container is found too.
    b.ok(&[
        "exec",
        "c",
        "sh",
        "-c",
        "echo 'late:x:2000:2000::/home/late:/bin/sh' >> /etc/passwd",
    ]);
    assert_eq!(
        b.ok(&["exec", "-u", "late", "c", "id", "-u"]).trim(),
        "2000"
    );
    // A non-root user has no effective capabilities, root keeps the container's.
    let eff = |u: &str| {
        b.ok(&["exec", "-u", u, "c", "grep", "CapEff", "/proc/self/status"])
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(eff("nobody"), "0000000000000000");
    assert_ne!(eff("root"), "0000000000000000");
    let err = b.fails(&["exec", "-u", "ghost", "c", "true"], 126);
    assert!(err.contains("ghost"), "{err}");

    // -i passes stdin through; without it the process reads end of file.
    let with_stdin = |flags: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["c", "cat"]);
        let mut child = b
            .cmd()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"through stdin\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(with_stdin(&["-i"]), "through stdin\n");
    assert_eq!(with_stdin(&[]), "");
    b.ok(&["rm", "-f", "c"]);
}

#[test]
fn exec_tty_has_the_callers_window_size() {
    let b = running(&[]);
    // Several times: the size must be there from the process's first instruction, not once
    // the monitor gets round to it.
    for _ in 0..5 {
        let out = in_pty(
            &b,
            37,
            101,
            &format!(
                "{} exec -t c sh -c 'tty; stty size'",
                env!("CARGO_BIN_EXE_berth")
            ),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("/dev/pts/"), "{text}");
        assert!(text.contains("37 101"), "{text}");
    }
    // Without -t there is no terminal.
    let out = in_pty(
        &b,
        37,
        101,
        &format!("{} exec c tty", env!("CARGO_BIN_EXE_berth")),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not a tty"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    b.ok(&["rm", "-f", "c"]);
}

#[test]
fn exec_detach_returns_at_once() {
    let b = running(&[]);
    let t = Instant::now();
    b.ok(&[
        "exec",
        "-d",
        "c",
        "sh",
        "-c",
        "sleep 2; echo done > /tmp/detached; sleep 30",
    ]);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "exec -d waited {:?}",
        t.elapsed()
    );
    let top = b.ok(&["top", "c"]);
    assert!(top.contains("sleep 2"), "{top}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.run(&["exec", "c", "cat", "/tmp/detached"]).stdout != b"done\n" {
        assert!(Instant::now() < deadline, "the detached command never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A missing command is still reported, with Docker's code for exec.
    let err = b.fails(&["exec", "-d", "c", "/nonexistent"], 126);
    assert!(err.contains("/nonexistent"), "{err}");
    b.fails(&["exec", "c", "nosuchcmd"], 126);
    // Stopping the container ends what exec started in it.
    b.ok(&["rm", "-f", "c"]);
}

/// An exec'd process is limited like the container's own: same cgroups, same CPUs.
#[test]
fn exec_joins_the_containers_cgroup_and_cpus() {
    let b = running(&["--cpuset-cpus", "0", "--memory", "64m"]);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "c"])).unwrap();
    let pid = v[0]["State"]["Pid"].as_i64().unwrap();
    let cgroup_of = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let init = cgroup_of(&pid.to_string());
    assert!(init.contains("berth-"), "{init}");
    b.ok(&["exec", "-d", "c", "sleep", "999"]);
    let joined: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\0999\0"))
        .collect();
    assert_eq!(joined.len(), 1, "{joined:?}");
    let joined = &joined[0];
    assert_eq!(cgroup_of(joined), init);
    let cpus = b.ok(&[
        "exec",
        "c",
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    assert_eq!(cpus.split_whitespace().nth(1), Some("0"), "{cpus}");
    assert_eq!(b.ok(&["exec", "c", "nproc"]).trim(), "1");
    b.ok(&["rm", "-f", "c"]);
    // Gone with the container (at most a zombie until the host's init reaps it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{joined}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(
            Instant::now() < deadline,
            "exec'd process outlived its container"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An MPI launcher's variables reach a rank started with `berth exec` in an hpc-profile
/// container (one container per node, ranks joining it); other variables do not, and a
/// docker-profile container gets none of them, as with `docker exec`.
#[test]
fn exec_passes_launcher_variables_in_the_hpc_profile() {
    let show = "echo ${PMIX_RANK:-none} ${OMPI_COMM_WORLD_SIZE:-none} ${NOT_PASSED:-none}";
    for (flags, want) in [
        (&["--hpc"][..], "3 2 none\n"),
        (&[][..], "none none none\n"),
    ] {
        let b = running(flags);
        let out = b
            .cmd()
            .args(["exec", "c", "sh", "-c", show])
            .env("PMIX_RANK", "3")
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .env("NOT_PASSED", "x")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{flags:?}");
        // -e wins over the launcher's value.
        if !flags.is_empty() {
            let out = b
                .cmd()
                .args(["exec", "-e", "PMIX_RANK=9", "c", "sh", "-c", show])
                .env("PMIX_RANK", "3")
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "9 none none\n");
        }
        b.ok(&["rm", "-f", "c"]);
    }
}

/// As for `run`: SIGTERMs that reach `berth exec` after its process has exited (a scheduler
/// sends several) leave the process's exit code as the command's.
#[test]
fn exec_keeps_the_exit_code_under_repeated_sigterm() {
    let b = running(&["--hpc"]);
    let mut child = b
        .cmd()
        .args([
            "exec",
            "c",
            "sh",
            "-c",
            "trap 'exit 143' TERM; echo ready; while :; do sleep 0.01; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let pid = child.id().to_string();
    let status = loop {
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
    };
    assert_eq!(status.code(), Some(143), "{status:?}");
    b.ok(&["rm", "-f", "c"]);
}
