//! More of `run`'s options and what the lifecycle commands show about them: `--mount`,
//! `--stop-timeout`, `ps --format`, `inspect` (`Mounts`, `State.ExitCode`, `Config`), the
//! window size of `-t`, the image's `USER` and `STOPSIGNAL`; `create`, `start`, `restart`,
//! `rename` and `system prune`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Berth;

fn with_busybox() -> Berth {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    b
}

fn inspect(b: &Berth, name: &str) -> Value {
    let v: Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

#[test]
fn mount_bind_tmpfs_and_volume() {
    let b = with_busybox();
    let host = b.dir.path().join("data");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "from host\n").unwrap();
    let bind_ro = format!("type=bind,source={},target=/b,readonly", host.display());
    let bind_rw = format!("type=bind,src={},dst=/w", host.display());
    let out = b.ok(&[
        "run",
        "--rm",
        "--mount",
        &bind_ro,
        "--mount",
        &bind_rw,
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "--mount",
        "type=volume,source=vol1,target=/v",
        "localhost/bb",
        "sh",
        "-c",
        "cat /b/f; touch /b/x 2>/dev/null || echo ro; echo new > /w/g; \
         grep ' /t ' /proc/mounts | cut -d' ' -f3,4; echo kept > /v/k",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "from host",
            "ro",
            "tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k"
        ]
    );
    assert_eq!(std::fs::read_to_string(host.join("g")).unwrap(), "new\n");
    // The named volume outlives the container, under either syntax.
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "vol1:/data",
            "localhost/bb",
            "cat",
            "/data/k"
        ]),
        "kept\n"
    );
    assert!(b.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "vol1"));
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--mount",
            "type=bind,source=/nonexistent,target=/x",
            "localhost/bb",
            "true",
        ],
        125,
    );
    assert!(err.contains("/nonexistent"), "{err}");
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--mount",
            "type=nfs,target=/x",
            "localhost/bb",
            "true",
        ],
        125,
    );
    assert!(err.contains("nfs"), "{err}");

    // inspect's Mounts as Docker shows them; --tmpfs is HostConfig.Tmpfs, not a mount.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "m",
        "--mount",
        &bind_ro,
        "--mount",
        "type=tmpfs,target=/t",
        "--mount",
        "type=volume,source=vol1,target=/v",
        "--tmpfs",
        "/scratch:size=1m",
        "localhost/bb",
        "sleep",
        "300",
    ]);
    let v = inspect(&b, "m");
    let mounts = v["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    let by_dest = |d: &str| {
        mounts
            .iter()
            .find(|m| m["Destination"] == d)
            .unwrap()
            .clone()
    };
    let bind = by_dest("/b");
    assert_eq!(bind["Type"], "bind");
    assert_eq!(bind["Source"], host.to_str().unwrap());
    assert_eq!(bind["RW"], false);
    let tmpfs = by_dest("/t");
    assert_eq!(
        (tmpfs["Type"].as_str(), tmpfs["RW"].as_bool()),
        (Some("tmpfs"), Some(true))
    );
    let vol = by_dest("/v");
    assert_eq!(vol["Type"], "volume");
    assert_eq!(vol["Name"], "vol1");
    assert_eq!(vol["Driver"], "local");
    assert_eq!(vol["RW"], true);
    assert!(
        vol["Source"].as_str().unwrap().ends_with("/vol1/_data"),
        "{vol}"
    );
    assert_eq!(v["HostConfig"]["Tmpfs"]["/scratch"], "size=1m");
    b.ok(&["rm", "-f", "m"]);
}

#[test]
fn stop_timeout_and_exit_codes_in_inspect() {
    let b = with_busybox();
    // A container that ignores SIGTERM is killed once its --stop-timeout has passed.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "deaf",
        "--stop-timeout",
        "1",
        "localhost/bb",
        "sh",
        "-c",
        "trap '' TERM; echo up; while :; do sleep 0.1; done",
    ]);
    assert_eq!(inspect(&b, "deaf")["Config"]["StopTimeout"], 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.ok(&["logs", "deaf"]).trim() != "up" {
        assert!(Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    b.ok(&["stop", "deaf"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "stop took {took:?}"
    );
    let v = inspect(&b, "deaf");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["State"]["Running"], false);
    // `stop -t` overrides it; the default is Docker's 10 s.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "deaf2",
        "localhost/bb",
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.1; done",
    ]);
    assert_eq!(inspect(&b, "deaf2")["Config"]["StopTimeout"], 10);
    let t = Instant::now();
    b.ok(&["stop", "-t", "0", "deaf2"]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    b.fails(
        &[
            "run",
            "--name",
            "three",
            "localhost/bb",
            "sh",
            "-c",
            "exit 3",
        ],
        3,
    );
    let v = inspect(&b, "three");
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["State"]["Pid"], 0);
    assert_eq!(inspect(&b, "deaf2")["State"]["ExitCode"], 137);
    b.ok(&["rm", "deaf", "deaf2", "three"]);
}

#[test]
fn ps_format() {
    let b = with_busybox();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "up",
        "--label",
        "k=v",
        "localhost/bb",
        "sleep",
        "300",
    ]);
    b.fails(
        &[
            "run",
            "--name",
            "down",
            "localhost/bb",
            "sh",
            "-c",
            "exit 4",
        ],
        4,
    );
    let rows = b.ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}",
    ]);
    let mut rows: Vec<&str> = rows.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            "down|localhost/bb|\"sh -c exit 4\"|exited",
            "up|localhost/bb|\"sleep 300\"|running"
        ]
    );
    // Without -a only running ones; `table` adds Docker's header.
    assert_eq!(b.ok(&["ps", "--format", "{{.Names}}"]), "up\n");
    let table = b.ok(&["ps", "--format", "table {{.Names}}\t{{.Status}}"]);
    let mut t = table.lines();
    let header: Vec<&str> = t.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAMES", "STATUS"]);
    assert!(t.next().unwrap().starts_with("up "), "{table}");
    // `json`: one object per line with Docker's field names.
    let line = b.ok(&["ps", "--format", "json"]);
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["Names"], "up");
    assert_eq!(v["State"], "running");
    assert_eq!(v["Labels"]["k"], "v");
    let id = b.ok(&["ps", "-q"]);
    assert_eq!(v["ID"], id.trim());
    let down = b.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(down.contains("down Exited (4) "), "{down}");
    b.ok(&["rm", "-f", "up", "down"]);
}

/// The image's USER and STOPSIGNAL apply as under Docker, and inspect shows ENTRYPOINT and
/// CMD apart.
#[test]
fn image_user_stop_signal_and_entrypoint() {
    let b = Berth::new();
    let tar = berth_testkit::busybox_rootfs_tar();
    b.ok(&[
        "import",
        "-c",
        "USER nobody",
        "-c",
        "STOPSIGNAL SIGUSR1",
        "-c",
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
        "-c",
        "CMD [\"id -un\"]",
        tar.to_str().unwrap(),
        "localhost/img",
    ]);
    assert_eq!(b.ok(&["run", "--rm", "localhost/img"]), "nobody\n");
    assert_eq!(
        b.ok(&["run", "--rm", "-u", "user", "localhost/img"]),
        "user\n"
    );
    b.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "localhost/img",
        "trap 'exit 9' USR1; while :; do sleep 0.1; done",
    ]);
    let v = inspect(&b, "s");
    assert_eq!(v["Config"]["User"], "nobody");
    assert_eq!(v["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(
        v["Config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    assert_eq!(
        v["Config"]["Cmd"],
        serde_json::json!(["trap 'exit 9' USR1; while :; do sleep 0.1; done"])
    );
    assert_eq!(v["Path"], "/bin/sh");
    assert_eq!(v["Args"][0], "-c");
    let t = Instant::now();
    b.ok(&["stop", "s"]);
    assert_eq!(b.ok(&["wait", "s"]).trim(), "9");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // --stop-signal beats the image's.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "t",
        "--stop-signal",
        "TERM",
        "localhost/img",
        "trap 'exit 7' TERM; while :; do sleep 0.1; done",
    ]);
    b.ok(&["stop", "t"]);
    assert_eq!(b.ok(&["wait", "t"]).trim(), "7");
    // Without an entrypoint, Config.Entrypoint is null and Cmd is the command.
    b.import_busybox("localhost/bb");
    b.ok(&["run", "--name", "plain", "localhost/bb", "true"]);
    let v = inspect(&b, "plain");
    assert_eq!(v["Config"]["Entrypoint"], Value::Null);
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["true"]));
    b.ok(&["rm", "s", "t", "plain"]);
}

/// `run -t` gives the container a terminal of the caller's size.
#[test]
fn tty_window_size() {
    let b = with_busybox();
    let line = format!(
        "stty rows 33 cols 97; {} run --rm -t localhost/bb stty size",
        env!("CARGO_BIN_EXE_berth")
    );
    let out = b.in_terminal(&line);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // (script(1) may echo a stray ^@ when its own stdin ends.)
    assert!(text.contains("33 97\r\n"), "{text:?}");
}

/// A terminal resized while the container runs resizes the container's terminal, and the
/// program gets its SIGWINCH, as under `docker run -t`.
#[test]
fn tty_resize_reaches_the_container() {
    let b = with_busybox();
    let dir = b.dir.path().join("resize");
    std::fs::create_dir_all(&dir).unwrap();
    // The outer shell resizes its terminal once the program has its trap set; stty sends
    // SIGWINCH to the terminal's process group, berth included.
    let line = format!(
        "stty rows 33 cols 97; \
         {berth} run --rm -t -v {d}:/m localhost/bb sh -c \
           'trap \"stty size; exit 0\" WINCH; stty size; touch /m/ready; \
            i=0; while [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done' & \
         while [ ! -e {d}/ready ]; do sleep 0.05; done; \
         stty rows 40 cols 120; wait $!",
        berth = env!("CARGO_BIN_EXE_berth"),
        d = dir.display(),
    );
    let out = b.in_terminal(&line);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Both terminals turn "\n" into "\r\n".
    let sizes: Vec<&str> = text
        .lines()
        .map(|l| l.trim_matches(['\r', '\0']))
        .filter(|l| l.split(' ').count() == 2 && l.split(' ').all(|n| n.parse::<u32>().is_ok()))
        .collect();
    assert_eq!(sizes, ["33 97", "40 120"], "{text:?}");
}

/// `create`, `start [-a]` and `restart` as Docker has them: a created container runs only when
/// started, keeps its writable layer from one start to the next, and `start -a` returns its
/// exit code.
#[test]
fn create_start_and_restart() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let id = b.ok(&[
        "create",
        "--name",
        "c1",
        "localhost/bb",
        "sh",
        "-c",
        "echo run $(cat /count 2>/dev/null); echo x >> /count; exit 3",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(
        b.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]),
        "c1 Created\n"
    );
    let out = b.cmd().args(["start", "-a", "c1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "run\n");
    // Detached, then attached again: the file the first run wrote is still there.
    assert_eq!(b.ok(&["start", "c1"]), "c1\n");
    assert_eq!(b.ok(&["wait", "c1"]), "3\n");
    // The log has both runs, attached or not, as Docker's does.
    assert_eq!(b.ok(&["logs", "c1"]), "run\nrun x\n");
    let out = b.cmd().args(["start", "-a", "c1"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "run x x\n");

    b.ok(&["create", "--name", "c2", "localhost/bb", "sleep", "100"]);
    b.ok(&["start", "c2"]);
    let pid = |b: &Berth| inspect(b, "c2")["State"]["Pid"].as_i64().unwrap();
    let first = pid(&b);
    // Starting a running container changes nothing.
    assert_eq!(b.ok(&["start", "c2"]), "c2\n");
    assert_eq!(pid(&b), first);
    assert_eq!(b.ok(&["restart", "-t", "1", "c2"]), "c2\n");
    let second = pid(&b);
    assert_ne!(second, first);
    assert_eq!(
        b.ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>(),
        ["c2", "Up"]
    );
    let err = b.fails(&["start", "-a", "c1", "c2"], 1);
    assert!(err.contains("multiple containers"), "{err}");

    // rename: a taken or invalid name is refused; the running container keeps going under its
    // new name, and the old one is free again.
    let err = b.fails(&["rename", "c2", "c1"], 1);
    assert!(err.contains("already in use"), "{err}");
    let err = b.fails(&["rename", "c2", "bad name"], 1);
    assert!(err.contains("invalid container name"), "{err}");
    b.ok(&["rename", "c2", "renamed"]);
    assert_eq!(b.ok(&["exec", "renamed", "echo", "ok"]), "ok\n");
    assert_eq!(
        inspect(&b, "renamed")["State"]["Pid"].as_i64().unwrap(),
        second
    );
    b.ok(&["create", "--name", "c2", "localhost/bb", "true"]);
    b.ok(&["rm", "-f", "c1", "c2", "renamed"]);
}

/// `system prune`: stopped containers go and running ones stay; with `-a`, every image no
/// container uses and all build cache go too.
#[test]
fn system_prune_removes_what_nothing_uses() {
    let b = with_busybox();
    b.ok(&["tag", "localhost/bb", "localhost/spare"]);
    b.ok(&["run", "--name", "stopped", "localhost/bb", "true"]);
    b.ok(&["run", "-d", "--name", "up", "localhost/bb", "sleep", "60"]);
    let c = tempfile::tempdir().unwrap();
    std::fs::write(
        c.path().join("Dockerfile"),
        "FROM localhost/bb\nRUN echo x > /x\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "built", c.path().to_str().unwrap()]);
    b.ok(&["rmi", "built"]);
    b.ok(&["system", "prune", "-f"]);
    assert_eq!(b.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up\n");
    b.ok(&["rm", "-f", "up"]);
    let out = b.ok(&["system", "prune", "-a", "-f"]);
    assert!(out.contains("Deleted build cache entries"), "{out}");
    assert_eq!(b.ok(&["images", "-q"]).trim(), "");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
}

/// `stats` as `docker stats`: CPU % between two samples (one busy loop reads about 100%), memory
/// against the `--memory` limit, network and block I/O, PIDs; `--format json` has Docker's
/// keys; without `--no-stream` a new frame comes every second.
#[test]
fn stats_show_cpu_memory_io_and_stream() {
    let b = with_busybox();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "localhost/bb",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "idle",
        "--memory",
        "64m",
        "localhost/bb",
        "sleep",
        "100",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "io",
        "localhost/bb",
        "sh",
        "-c",
        "dd if=/dev/zero of=/f bs=1M count=8 conv=fsync 2>/dev/null; touch /done; sleep 100",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while b
        .cmd()
        .args(["exec", "io", "test", "-e", "/done"])
        .status()
        .unwrap()
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "dd did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = b.ok(&["stats", "--no-stream"]);
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        [
            "CONTAINER",
            "ID",
            "NAME",
            "CPU",
            "%",
            "MEM",
            "USAGE",
            "/",
            "LIMIT",
            "MEM",
            "%",
            "NET",
            "I/O",
            "BLOCK",
            "I/O",
            "PIDS"
        ],
        "{table}"
    );
    assert_eq!(table.lines().count(), 4, "{table}");
    let json = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "json",
        "busy",
        "idle",
        "io",
    ]);
    let rows: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "BlockIO",
            "CPUPerc",
            "Container",
            "ID",
            "MemPerc",
            "MemUsage",
            "Name",
            "NetIO",
            "PIDs"
        ]
    );
    let by = |name: &str| rows.iter().find(|r| r["Name"] == name).unwrap().clone();
    let perc = |v: &Value| {
        v.as_str()
            .unwrap()
            .trim_end_matches('%')
            .parse::<f64>()
            .unwrap()
    };
    // A shared, loaded machine: the loop gets much of one CPU, the sleeper next to none.
    assert!(perc(&by("busy")["CPUPerc"]) > 30.0, "{json}");
    assert!(perc(&by("idle")["CPUPerc"]) < 5.0, "{json}");
    assert!(
        by("idle")["MemUsage"]
            .as_str()
            .unwrap()
            .ends_with(" / 64MiB"),
        "{json}"
    );
    assert_eq!(by("idle")["NetIO"], "0B / 0B");
    assert_eq!(by("idle")["PIDs"], "1");
    assert_eq!(by("idle")["Container"], "idle", "as given");
    let full = b.ok(&[
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "{{.ID}}",
        "idle",
    ]);
    assert_eq!(
        full.trim(),
        b.ok(&["inspect", "--format", "{{.Id}}", "idle"]).trim()
    );
    // 8 MiB written and synced: at least 8.39MB reached the disk (more on a filesystem that
    // journals data). Memory-backed stores write no blocks.
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(b.dir.path())
        .output()
        .unwrap();
    let on_disk = !String::from_utf8_lossy(&fs.stdout).contains("tmpfs");
    let written = by("io")["BlockIO"]
        .as_str()
        .unwrap()
        .rsplit(" / ")
        .next()
        .unwrap()
        .to_string();
    let mb: f64 = written.trim_end_matches("MB").parse().unwrap_or(0.0);
    assert!(!on_disk || (written.ends_with("MB") && mb >= 8.3), "{json}");

    let mut stream = b
        .cmd()
        .args(["stats", "--format", "{{.Name}} {{.PIDs}}", "idle"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2600));
    stream.kill().unwrap();
    let out = stream.wait_with_output().unwrap();
    let frames = String::from_utf8_lossy(&out.stdout)
        .matches("idle 1")
        .count();
    assert!((2..=3).contains(&frames), "{frames} frames");
    b.ok(&["rm", "-f", "busy", "idle", "io"]);
}
