//! `berth run` and the container lifecycle on real containers from the busybox image.

use std::process::Stdio;
use std::time::Duration;

use crate::common::Berth;

/// A Berth with the busybox fixture imported as `bb`.
pub(crate) fn with_busybox() -> Berth {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    b
}

pub(crate) fn code(b: &Berth, args: &[&str]) -> (i32, String, String) {
    let out = b.run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn exit_codes_like_docker() {
    let b = with_busybox();
    assert_eq!(code(&b, &["run", "--rm", "localhost/bb", "true"]).0, 0);
    assert_eq!(code(&b, &["run", "--rm", "localhost/bb", "false"]).0, 1);
    assert_eq!(
        code(&b, &["run", "--rm", "localhost/bb", "sh", "-c", "exit 7"]).0,
        7
    );
    // Killed by a signal: 128+N. (As PID 1 of its namespace a shell ignores its own SIGTERM,
    // as under Docker, so it runs under --init here.)
    assert_eq!(
        code(
            &b,
            &[
                "run",
                "--rm",
                "--init",
                "localhost/bb",
                "sh",
                "-c",
                "kill -TERM $$"
            ]
        )
        .0,
        143
    );
    // In the hpc profile berth ends by the program's signal, as the bare program would, so
    // that a batch system records the signal; a shell's `$?` is 143 all the same.
    use std::os::unix::process::ExitStatusExt;
    let hpc = |script: &str| b.run(&["run", "--rm", "--hpc", "localhost/bb", "sh", "-c", script]);
    let out = hpc("kill -TERM $$");
    assert_eq!(out.status.signal(), Some(15), "{out:?}");
    let out = hpc("exit 143");
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    let shell = b.wrapped(
        &["sh", "-c", "\"$@\"; echo $?", "sh"],
        &[
            "run",
            "--rm",
            "--hpc",
            "localhost/bb",
            "sh",
            "-c",
            "kill -USR1 $$",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&shell.stdout).trim(), "138");
    let (c, _, err) = code(&b, &["run", "--rm", "localhost/bb", "/nonexistent"]);
    assert_eq!(c, 127, "{err}");
    assert!(err.contains("/nonexistent"), "{err}");
    let (c, _, err) = code(&b, &["run", "--rm", "localhost/bb", "/etc/passwd"]);
    assert_eq!(c, 126, "{err}");
    let (c, _, err) = code(&b, &["run", "--rm", "localhost/nosuchimage", "true"]);
    assert_eq!(c, 125, "{err}");
    assert!(
        b.ok(&["ps", "-aq"]).trim().is_empty(),
        "--rm left containers"
    );
}

#[test]
fn image_config_and_flags() {
    let b = Berth::new();
    let tar = berth_testkit::busybox_rootfs_tar();
    b.ok(&[
        "import",
        "-c",
        "ENV FOO=image",
        "-c",
        "WORKDIR /srv/app",
        "-c",
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
        "-c",
        "CMD [\"echo default\"]",
        tar.to_str().unwrap(),
        "localhost/cfg",
    ]);
    assert_eq!(b.ok(&["run", "--rm", "localhost/cfg"]).trim(), "default");
    assert_eq!(
        b.ok(&["run", "--rm", "localhost/cfg", "echo $FOO; pwd"])
            .trim(),
        "image\n/srv/app"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-e",
            "FOO=flag",
            "-w",
            "/tmp",
            "localhost/cfg",
            "echo $FOO; pwd"
        ])
        .trim(),
        "flag\n/tmp"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "--entrypoint", "echo", "localhost/cfg", "hi"])
            .trim(),
        "hi"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "-u", "1000", "localhost/cfg", "id -u"])
            .trim(),
        "1000"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "-u", "nobody", "localhost/cfg", "id -u"])
            .trim(),
        "65534"
    );
    let err = b.fails(
        &["run", "--rm", "-u", "ghost", "localhost/cfg", "true"],
        125,
    );
    assert!(err.contains("ghost"), "{err}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--hostname",
            "box",
            "localhost/cfg",
            "hostname"
        ])
        .trim(),
        "box"
    );
    let env = b.dir.path().join("env");
    std::fs::write(&env, "# comment\nA=1\nB=two words\n").unwrap();
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--env-file",
            env.to_str().unwrap(),
            "localhost/cfg",
            "echo $A $B"
        ])
        .trim(),
        "1 two words"
    );
}

#[test]
fn mounts_and_read_only() {
    let b = with_busybox();
    let host = b.dir.path().join("data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from host").unwrap();
    let v = format!("{}:/data", host.display());
    assert_eq!(
        b.ok(&["run", "--rm", "-v", &v, "localhost/bb", "cat", "/data/in"]),
        "from host"
    );
    b.ok(&[
        "run",
        "--rm",
        "-v",
        &v,
        "localhost/bb",
        "sh",
        "-c",
        "echo out > /data/out",
    ]);
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "out\n");
    let ro = format!("{}:/data:ro", host.display());
    let (c, _, _) = code(
        &b,
        &[
            "run",
            "--rm",
            "-v",
            &ro,
            "localhost/bb",
            "sh",
            "-c",
            "echo x > /data/x",
        ],
    );
    assert_ne!(c, 0);
    assert!(!host.join("x").exists());
    let (c, _, _) = code(
        &b,
        &[
            "run",
            "--rm",
            "--read-only",
            "localhost/bb",
            "sh",
            "-c",
            "echo x > /x",
        ],
    );
    assert_ne!(c, 0);
    b.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "localhost/bb",
        "sh",
        "-c",
        "echo x > /scratch/x",
    ]);
    // Named volumes persist across containers.
    b.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/v",
        "localhost/bb",
        "sh",
        "-c",
        "echo kept > /v/f",
    ]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "vol1:/v",
            "localhost/bb",
            "cat",
            "/v/f"
        ]),
        "kept\n"
    );
    assert!(b.ok(&["volume", "ls", "-q"]).contains("vol1"));
    b.ok(&["volume", "rm", "vol1"]);
    // The writable layer is per container and discarded with --rm.
    b.ok(&[
        "run",
        "--rm",
        "localhost/bb",
        "sh",
        "-c",
        "echo x > /etc/changed",
    ]);
    let (c, _, _) = code(&b, &["run", "--rm", "localhost/bb", "cat", "/etc/changed"]);
    assert_ne!(c, 0);
}

#[test]
fn detached_lifecycle() {
    let b = with_busybox();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "localhost/bb",
            "sh",
            "-c",
            "echo started; trap 'echo bye; exit 3' TERM; while :; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = b.ok(&["ps"]);
    assert!(ps.contains("web") && ps.contains("Up"), "{ps}");
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "web"])).unwrap();
    assert_eq!(v[0]["State"]["Status"], "running");
    assert!(v[0]["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(b.ok(&["exec", "web", "echo", "inside"]).trim(), "inside");
    let (c, _, _) = code(&b, &["exec", "web", "sh", "-c", "exit 5"]);
    assert_eq!(c, 5);
    let top = b.ok(&["top", "web"]);
    assert!(top.contains("sh -c"), "{top}");
    b.ok(&["pause", "web"]);
    assert!(b.ok(&["ps"]).contains("Paused"));
    b.ok(&["unpause", "web"]);
    let err = b.fails(&["rm", "web"], 1);
    assert!(err.contains("running"), "{err}");
    b.ok(&["stop", "-t", "5", "web"]);
    assert_eq!(b.ok(&["wait", "web"]).trim(), "3");
    let logs = b.ok(&["logs", "web"]);
    assert!(logs.contains("started") && logs.contains("bye"), "{logs}");
    assert_eq!(b.ok(&["logs", "--tail", "1", "web"]).trim(), "bye");
    assert!(b.ok(&["logs", "-t", "web"]).starts_with("20"));
    let ps = b.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (3)"), "{ps}");
    b.ok(&["rm", "web"]);
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty());

    // kill -s and rm -f of a running container.
    b.ok(&["run", "-d", "--name", "k", "localhost/bb", "sleep", "100"]);
    b.ok(&["kill", "-s", "KILL", "k"]);
    assert_eq!(b.ok(&["wait", "k"]).trim(), "137");
    b.ok(&["run", "-d", "--name", "f", "localhost/bb", "sleep", "100"]);
    b.ok(&["rm", "-f", "f", "k"]);
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn hpc_profile_runs_as_the_caller() {
    let b = with_busybox();
    let home = b.home();
    std::fs::write(home.join("note"), "mine\n").unwrap();
    let out = b
        .cmd()
        .current_dir(&home)
        .env("MY_VAR", "passed")
        .args([
            "run",
            "--rm",
            "--hpc",
            "localhost/bb",
            "sh",
            "-c",
            "id -u; pwd; cat note; echo $MY_VAR",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["0", home.to_str().unwrap(), "mine", "passed"]);
}

#[test]
fn rm_flag_and_cidfile() {
    let b = with_busybox();
    let cid = b.dir.path().join("cid");
    b.ok(&[
        "run",
        "--cidfile",
        cid.to_str().unwrap(),
        "--name",
        "keep",
        "localhost/bb",
        "true",
    ]);
    let id = std::fs::read_to_string(&cid).unwrap();
    assert_eq!(id.len(), 64);
    assert!(b.ok(&["ps", "-a", "--no-trunc"]).contains(&id));
    let err = b.fails(&["run", "--name", "keep", "localhost/bb", "true"], 125);
    assert!(err.contains("keep"), "{err}");
    b.ok(&["container", "prune", "-f"]);
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty());

    // A --rm container is gone for every command once run returns; a detached process
    // deletes its files from tmp/ soon after, without holding run's output open.
    let out = b.ok(&[
        "run",
        "--rm",
        "--name",
        "brief",
        "localhost/bb",
        "sh",
        "-c",
        "echo x > /f",
    ]);
    assert_eq!(out, "");
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty());
    // Its writable layer is never synced to disk (overlayfs's `volatile`); a kept one is.
    let volatile = ["grep", "-c", "fsync=volatile", "/proc/self/mountinfo"];
    let out = b.ok(&[&["run", "--rm", "localhost/bb"][..], &volatile].concat());
    assert_eq!(out.trim(), "1");
    let out = b.run(&[&["run", "--name", "kept", "localhost/bb"][..], &volatile].concat());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    b.ok(&["rm", "kept"]);
    b.ok(&["run", "--rm", "--name", "brief", "localhost/bb", "true"]);
    let tmp = b.root().join("tmp");
    let left = || -> Vec<_> {
        std::fs::read_dir(&tmp)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    for _ in 0..100 {
        if left().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(left().is_empty(), "{:?}", left());
    std::thread::sleep(Duration::from_millis(1));
}

#[test]
fn site_mounts_from_config_in_the_hpc_profile() {
    let b = with_busybox();
    let softs = b.dir.path().join("softs");
    std::fs::create_dir_all(&softs).unwrap();
    std::fs::write(softs.join("tool"), "v1\n").unwrap();
    let dir = b.home().join(".config/berth");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "profile = \"hpc\"\nsite_mounts = [\"{}:/softs:ro\", \"/nonexistent-site-dir\"]\n",
            softs.display()
        ),
    )
    .unwrap();
    let out = b.run(&[
        "run",
        "--rm",
        "localhost/bb",
        "sh",
        "-c",
        "cat /softs/tool; echo x > /softs/new",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v1\n");
    assert!(!softs.join("new").exists(), "site mount is read-only");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nonexistent-site-dir"), "{err}");
    // The docker profile, chosen by flag, leaves site mounts out.
    let (c, _, _) = code(
        &b,
        &[
            "run",
            "--rm",
            "--profile",
            "docker",
            "localhost/bb",
            "cat",
            "/softs/tool",
        ],
    );
    assert_ne!(c, 0);
}

#[test]
fn stdin_cp_stats_and_follow() {
    use std::io::Write;
    let b = with_busybox();
    // -i passes stdin through; without -i the container's stdin is empty.
    let mut c = b
        .cmd()
        .args([
            "run",
            "--rm",
            "-i",
            "localhost/bb",
            "sh",
            "-c",
            "tr a-z A-Z",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout),
        "HELLO\n"
    );
    let out = b
        .cmd()
        .args(["run", "--rm", "localhost/bb", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");

    // --sig-proxy=false: a signal to berth is not passed on (the trap does not fire), and it
    // does not end the monitor either: the container runs to its end and is removed.
    let before = b.ok(&["ps", "-aq"]);
    let mut child = b
        .cmd()
        .args([
            "run",
            "--rm",
            "--sig-proxy=false",
            "localhost/bb",
            "sh",
            "-c",
            "trap 'exit 42' USR1; echo ready; sleep 1; exit 0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    std::process::Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(b.ok(&["ps", "-aq"]), before);

    // cp both ways, logs -f until exit, stats.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cp",
        "localhost/bb",
        "sh",
        "-c",
        "echo inside > /tmp/made; for i in 1 2 3; do echo tick $i; sleep 0.3; done; sleep 2",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let host = b.dir.path().join("from-container");
    b.ok(&["cp", "cp:/tmp/made", host.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "inside\n");
    let into = b.dir.path().join("into");
    std::fs::write(&into, "pushed\n").unwrap();
    b.ok(&["cp", into.to_str().unwrap(), "cp:/tmp/pushed"]);
    assert_eq!(b.ok(&["exec", "cp", "cat", "/tmp/pushed"]), "pushed\n");
    let stats = b.ok(&["stats", "--no-stream", "cp"]);
    assert!(
        stats.contains("CONTAINER ID") && stats.contains("cp"),
        "{stats}"
    );
    // No port is ever published (host or loopback-only networks): port lists nothing.
    assert_eq!(b.ok(&["port", "cp"]), "");
    let (c, _, err) = code(&b, &["port", "nosuch"]);
    assert_ne!(c, 0);
    assert!(
        err.contains("nosuch") && err.trim().lines().count() == 1,
        "{err}"
    );
    let followed = b.ok(&["logs", "-f", "cp"]);
    assert!(followed.contains("tick 3"), "{followed}");
    b.ok(&["rm", "cp"]);
    b.ok(&["volume", "create", "v2"]);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["volume", "inspect", "v2"])).unwrap();
    assert_eq!(v[0]["Name"], "v2");
    assert!(std::path::Path::new(v[0]["Mountpoint"].as_str().unwrap()).is_dir());
}

/// `logs --since` and `--until`, as Docker takes them: a timestamp, Unix seconds or a
/// duration ago; a bad one is refused in one line.
#[test]
fn logs_since_and_until() {
    let b = with_busybox();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "lg",
        "localhost/bb",
        "sh",
        "-c",
        "echo early; sleep 1.5; echo late",
    ]);
    std::thread::sleep(Duration::from_millis(700));
    let mid = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .to_string();
    assert_eq!(b.ok(&["wait", "lg"]).trim(), "0");
    assert_eq!(b.ok(&["logs", "lg"]), "early\nlate\n");
    assert_eq!(b.ok(&["logs", "--since", &mid, "lg"]), "late\n");
    assert_eq!(b.ok(&["logs", "--until", &mid, "lg"]), "early\n");
    assert_eq!(b.ok(&["logs", "--since", "1h", "lg"]), "early\nlate\n");
    assert_eq!(b.ok(&["logs", "--since", "2030-01-01T00:00:00Z", "lg"]), "");
    let (c, _, err) = code(&b, &["logs", "--since", "10x", "lg"]);
    assert_ne!(c, 0);
    assert!(
        err.contains("--since \"10x\"") && err.trim().lines().count() == 1,
        "{err}"
    );
    b.ok(&["rm", "lg"]);
}
