//! The lifecycle commands compared with Docker's on the same containers: `wait`, `logs` (and
//! `--tail`, `-t`, of detached and foreground containers), `ps` status, `stop` with a trapped
//! signal, `kill -s`, `kill`, `pause`, `top`'s columns, and the refusals of `rm` and `unpause`.
//! Exit codes and output must agree (timestamps and ids aside).

use std::process::Output;
use std::time::{Duration, Instant};

use crate::dockerd::{code_and_stdout, Differences, Dockerd, BUSYBOX};

fn err_of(o: &Output) -> (Option<i32>, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// RFC 3339 timestamps with nanoseconds, as `logs -t` prints them, replaced by a marker.
fn without_times(s: &str) -> String {
    s.lines()
        .map(|l| match l.split_once(' ') {
            Some((t, rest)) if t.len() == 30 && t.ends_with('Z') && t.as_bytes()[10] == b'T' => {
                format!("TIME {rest}")
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn lifecycle_matches_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let img = BUSYBOX;
    let both = |args: &[&str]| d.both(&b, args);
    let mut diff = Differences::default();

    // Paced: stdout and stderr reach the log through separate pipes, in Docker as here.
    let script = "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; exit 3";
    both(&["run", "-d", "--name", "l1", img, "sh", "-c", script]);
    let (t, o) = both(&["wait", "l1"]);
    diff.same("wait", code_and_stdout(&t), code_and_stdout(&o));
    let (t, o) = both(&["logs", "l1"]);
    diff.same("logs stdout", code_and_stdout(&t), code_and_stdout(&o));
    diff.same("logs stderr", err_of(&t), err_of(&o));
    let (t, o) = both(&["logs", "--tail", "2", "l1"]);
    diff.same(
        "logs --tail 2 stdout",
        code_and_stdout(&t),
        code_and_stdout(&o),
    );
    diff.same("logs --tail 2 stderr", err_of(&t), err_of(&o));
    let (t, o) = both(&["logs", "-t", "l1"]);
    diff.same(
        "logs -t",
        (t.status.code(), without_times(&code_and_stdout(&t).1)),
        (o.status.code(), without_times(&code_and_stdout(&o).1)),
    );
    let status = "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}";
    let (t, o) = both(&["inspect", "--format", status, "l1"]);
    diff.same(
        "inspect state of an exited container",
        code_and_stdout(&t),
        code_and_stdout(&o),
    );
    let ps = |o: &Output| -> (Option<i32>, String) {
        let text = String::from_utf8_lossy(&o.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("l1 "))
            .unwrap_or("")
            .to_string();
        // "Exited (3) 2 seconds ago": the age differs by when each ran.
        (
            o.status.code(),
            line.split(')').next().unwrap_or("").to_string(),
        )
    };
    let (t, o) = both(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    diff.same("ps -a status", ps(&t), ps(&o));
    let (t, o) = both(&["rm", "l1"]);
    diff.same(
        "rm of an exited container",
        code_and_stdout(&t),
        code_and_stdout(&o),
    );

    // stop: the stop signal (TERM), trapped; then the exit code the trap chose.
    let trap = "trap 'echo got term; exit 7' TERM; trap 'echo got usr1' USR1; \
                echo ready; while :; do sleep 0.1; done";
    both(&["run", "-d", "--name", "s1", img, "sh", "-c", trap]);
    let ready = |logs: &dyn Fn() -> String, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !logs().contains(what) {
            assert!(Instant::now() < deadline, "no {what:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    ready(&|| code_and_stdout(&d.docker(&["logs", "s1"])).1, "ready");
    ready(&|| code_and_stdout(&b.run(&["logs", "s1"])).1, "ready");
    let (t, o) = both(&["rm", "s1"]);
    diff.same(
        "rm of a running container",
        (t.status.code(), String::new()),
        (o.status.code(), String::new()),
    );
    let (t, o) = both(&["unpause", "s1"]);
    diff.same(
        "unpause of a running container",
        (t.status.code(), String::new()),
        (o.status.code(), String::new()),
    );
    let (t, o) = both(&["pause", "s1"]);
    diff.same("pause", code_and_stdout(&t), code_and_stdout(&o));
    let (t, o) = both(&["inspect", "--format", status, "s1"]);
    diff.same(
        "inspect state of a paused container",
        code_and_stdout(&t),
        code_and_stdout(&o),
    );
    let (t, o) = both(&["unpause", "s1"]);
    diff.same("unpause", code_and_stdout(&t), code_and_stdout(&o));
    let (t, o) = both(&["kill", "-s", "USR1", "s1"]);
    diff.same("kill -s USR1", code_and_stdout(&t), code_and_stdout(&o));
    ready(
        &|| code_and_stdout(&d.docker(&["logs", "s1"])).1,
        "got usr1",
    );
    ready(&|| code_and_stdout(&b.run(&["logs", "s1"])).1, "got usr1");
    let top = |o: &Output| -> (Option<i32>, String) {
        let text = String::from_utf8_lossy(&o.stdout);
        let header = text
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>();
        (o.status.code(), header.join(" "))
    };
    let (t, o) = both(&["top", "s1"]);
    diff.same("top columns", top(&t), top(&o));
    let (t, o) = both(&["top", "s1", "-o", "pid,comm"]);
    diff.same("top with ps options", top(&t), top(&o));
    let (t, o) = both(&["top", "s1", "--bogus"]);
    diff.same("top with a bad ps option", top(&t), top(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--bogus") && err.trim().lines().count() == 1,
        "{err}"
    );
    let (t, o) = both(&["stop", "s1"]);
    diff.same("stop", code_and_stdout(&t), code_and_stdout(&o));
    let (t, o) = both(&["wait", "s1"]);
    diff.same("wait after stop", code_and_stdout(&t), code_and_stdout(&o));
    let (t, o) = both(&["logs", "s1"]);
    diff.same("logs after stop", code_and_stdout(&t), code_and_stdout(&o));

    // kill: SIGKILL by default, 137.
    both(&["run", "-d", "--name", "k1", img, "sleep", "300"]);
    let (t, o) = both(&["kill", "k1"]);
    diff.same("kill", code_and_stdout(&t), code_and_stdout(&o));
    let (t, o) = both(&["wait", "k1"]);
    diff.same("wait after kill", code_and_stdout(&t), code_and_stdout(&o));
    let (t, o) = both(&["kill", "k1"]);
    diff.same(
        "kill of a stopped container",
        (t.status.code(), String::new()),
        (o.status.code(), String::new()),
    );
    let (t, o) = both(&["start", "k1"]);
    diff.same(
        "start of a stopped container",
        code_and_stdout(&t),
        code_and_stdout(&o),
    );
    let (t, o) = both(&["inspect", "--format", status, "k1"]);
    diff.same(
        "inspect state after start",
        code_and_stdout(&t),
        code_and_stdout(&o),
    );

    // ps --filter: s1 exited 7, k1 runs, lab runs with a label.
    both(&[
        "run",
        "-d",
        "--name",
        "lab",
        "--label",
        "tier=front",
        img,
        "sleep",
        "300",
    ]);
    let names = |o: &Output| -> (Option<i32>, String) {
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        (o.status.code(), v.join(" "))
    };
    for filter in [
        &["-f", "status=exited"][..],
        &["-f", "status=running"],
        &["-a", "-f", "name=^/k"],
        &["-a", "-f", "name=1"],
        &["-a", "-f", "exited=7"],
        &["-a", "-f", "exited=0"],
        &["-a", "-f", "ancestor=localhost/bb"],
        &["-f", "label=tier=front"],
        &["-f", "label=tier"],
        &["-a", "-f", "status=exited", "-f", "status=running"],
        &["-a", "-f", "name=1", "-f", "status=running"],
        &["-f", "color=red"],
        &["-f", "status=asleep"],
    ] {
        let mut args = vec!["ps", "--format", "{{.Names}}"];
        args.extend_from_slice(filter);
        let (t, o) = both(&args);
        diff.same(&format!("ps {filter:?}"), names(&t), names(&o));
    }

    for n in ["l1", "s1", "k1", "lab"] {
        let _ = d.docker(&["rm", "-f", n]);
        let _ = b.run(&["rm", "-f", n]);
    }
    diff.assert_none();
}

#[test]
fn ps_last_and_latest_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    for name in ["first", "second", "third"] {
        let (theirs, ours) = d.both(&b, &["run", "--name", name, BUSYBOX, "true"]);
        assert!(theirs.status.success() && ours.status.success());
    }
    let (theirs, ours) = d.both(&b, &["run", "-d", "--name", "up", BUSYBOX, "sleep", "30"]);
    assert!(theirs.status.success() && ours.status.success());
    let mut differences = Vec::new();
    for args in [
        &["ps", "--format", "{{.Names}}"][..],
        &["ps", "-n", "2", "--format", "{{.Names}}"],
        &["ps", "--last", "3", "--format", "{{.Names}} {{.State}}"],
        &["ps", "-l", "--format", "{{.Names}}"],
        &["ps", "-n", "0", "--format", "{{.Names}}"],
        &[
            "ps",
            "-n",
            "9",
            "-f",
            "status=exited",
            "--format",
            "{{.Names}}",
        ],
        &["ps", "-n", "abc"],
    ] {
        let (theirs, ours) = d.both(&b, args);
        let (theirs, ours) = (code_and_stdout(&theirs), code_and_stdout(&ours));
        if theirs != ours {
            differences.push(format!("{args:?}:\n docker {theirs:?}\n berth  {ours:?}"));
        }
    }
    d.both(&b, &["rm", "-f", "up"]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn prune_filters_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    for (name, label) in [("pa", "team=a"), ("pb", "team=b"), ("pc", "other=1")] {
        let (theirs, ours) = d.both(&b, &["run", "--name", name, "-l", label, BUSYBOX, "true"]);
        assert!(theirs.status.success() && ours.status.success());
    }
    let mut differences = Vec::new();
    let names = ["ps", "-a", "--format", "{{.Names}}"];
    for filter in ["until=1h", "label=team=a", "label!=team", "bogus=1"] {
        let (theirs, ours) = d.both(&b, &["container", "prune", "-f", "--filter", filter]);
        let codes = (theirs.status.code(), ours.status.code());
        let (theirs, ours) = d.both(&b, &names);
        let (theirs, ours) = (code_and_stdout(&theirs), code_and_stdout(&ours));
        if theirs != ours || codes.0 != codes.1 {
            differences.push(format!(
                "prune --filter {filter}: exit {codes:?}\n docker {theirs:?}\n berth  {ours:?}"
            ));
        }
    }
    d.both(&b, &["rm", "-f", "pb"]);
    let images = ["images", "--format", "{{.Repository}}"];
    for filter in ["label=nosuch", "until=1h", "bogus=1"] {
        let (theirs, ours) = d.both(&b, &["image", "prune", "-a", "-f", "--filter", filter]);
        let codes = (theirs.status.code(), ours.status.code());
        let (theirs, ours) = d.both(&b, &images);
        let (theirs, ours) = (code_and_stdout(&theirs), code_and_stdout(&ours));
        if theirs != ours || codes.0 != codes.1 {
            differences.push(format!(
                "image prune --filter {filter}: exit {codes:?}\n docker {theirs:?}\n berth  {ours:?}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn inspect_type_and_lookup_order_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    // A container and a volume named like the image: a name is a container first.
    let (theirs, ours) = d.both(&b, &["create", "--name", "localhost", BUSYBOX, "true"]);
    assert!(theirs.status.success() && ours.status.success());
    let (theirs, ours) = d.both(&b, &["volume", "create", "vol1"]);
    assert!(theirs.status.success() && ours.status.success());
    let mut differences = Vec::new();
    for args in [
        &["inspect", "-f", "{{.Name}}", "localhost"][..],
        &["inspect", "-f", "{{.Name}}", "vol1"],
        &["inspect", "--type", "volume", "-f", "{{.Name}}", "vol1"],
        &["inspect", "--type", "container", "-f", "{{.Name}}", "vol1"],
        &["inspect", "--type", "image", "-f", "{{.Os}}", BUSYBOX],
        &["inspect", "--type", "bogus", "vol1"],
        &["inspect", "nosuch"],
    ] {
        let (theirs, ours) = d.both(&b, args);
        let (theirs, ours) = (code_and_stdout(&theirs), code_and_stdout(&ours));
        if theirs != ours {
            differences.push(format!("{args:?}:\n docker {theirs:?}\n berth  {ours:?}"));
        }
    }
    d.both(&b, &["rm", "localhost"]);
    d.both(&b, &["volume", "rm", "vol1"]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn ps_and_inspect_sizes_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let script = "head -c 5000 /dev/zero > /five; mkdir -p /d; head -c 300 /dev/zero > /d/small";
    let (theirs, ours) = d.both(&b, &["run", "--name", "sized", BUSYBOX, "sh", "-c", script]);
    assert!(theirs.status.success() && ours.status.success());
    for args in [
        &["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"][..],
        &[
            "inspect",
            "-s",
            "-f",
            "{{.SizeRw}} {{.SizeRootFs}}",
            "sized",
        ],
        &[
            "container",
            "inspect",
            "--size",
            "-f",
            "{{.SizeRw}} {{.SizeRootFs}}",
            "sized",
        ],
    ] {
        let (theirs, ours) = d.both(&b, args);
        assert_eq!(code_and_stdout(&theirs), code_and_stdout(&ours), "{args:?}");
    }
    d.both(&b, &["rm", "sized"]);
}

/// A container run in the foreground and kept has its output in its log too, as in Docker;
/// the terminal still gets it as it comes.
#[test]
fn foreground_output_is_logged_as_in_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let mut diff = Differences::default();
    let script = "echo one; sleep 0.2; echo two >&2; sleep 0.2; printf three; exit 4";
    let (t, o) = d.both(&b, &["run", "--name", "fg", BUSYBOX, "sh", "-c", script]);
    diff.same("run stdout", code_and_stdout(&t), code_and_stdout(&o));
    diff.same("run stderr", err_of(&t), err_of(&o));
    for args in [&["logs", "fg"][..], &["logs", "--tail", "1", "fg"]] {
        let (t, o) = d.both(&b, args);
        diff.same(
            &format!("{args:?} stdout"),
            code_and_stdout(&t),
            code_and_stdout(&o),
        );
        diff.same(&format!("{args:?} stderr"), err_of(&t), err_of(&o));
    }
    let (t, o) = d.both(
        &b,
        &[
            "run",
            "--log-driver",
            "none",
            "--name",
            "fgn",
            BUSYBOX,
            "echo",
            "x",
        ],
    );
    diff.same("run, no log", code_and_stdout(&t), code_and_stdout(&o));
    // Docker's message comes "from daemon"; the rest is the same.
    let (t, o) = d.both(&b, &["logs", "fgn"]);
    let reason = |o: &Output| {
        let e = err_of(o);
        (e.0, e.1.rsplit(": ").next().unwrap_or_default().to_string())
    };
    diff.same("logs, no log", reason(&t), reason(&o));
    d.both(&b, &["create", "--name", "st", BUSYBOX, "echo", "started"]);
    d.both(&b, &["start", "-a", "st"]);
    let (t, o) = d.both(&b, &["logs", "st"]);
    diff.same(
        "logs after start -a",
        code_and_stdout(&t),
        code_and_stdout(&o),
    );
    d.both(&b, &["rm", "fg", "fgn", "st"]);
    diff.assert_none();
}

/// `run -a`: the streams this terminal gets; the others only reach the log. Recorded in
/// `Config.Attach*`; refused with `-d`.
#[test]
fn attach_flags_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let mut diff = Differences::default();
    let script = "echo out; echo err >&2";
    for attach in [
        &["-a", "stdout"][..],
        &["-a", "STDERR"],
        &["-a", "stdout", "-a", "stderr"],
        &["-a", "stdin"],
    ] {
        for kept in [false, true] {
            let mut args = vec!["run"];
            match kept {
                true => args.extend(["--name", "att"]),
                false => args.push("--rm"),
            }
            args.extend(attach);
            args.extend([BUSYBOX, "sh", "-c", script]);
            let (t, o) = d.both(&b, &args);
            diff.same(
                &format!("{args:?} stdout"),
                code_and_stdout(&t),
                code_and_stdout(&o),
            );
            diff.same(&format!("{args:?} stderr"), err_of(&t), err_of(&o));
            if kept {
                // The log has every stream, attached or not.
                let (t, o) = d.both(&b, &["logs", "att"]);
                diff.same("logs stdout", code_and_stdout(&t), code_and_stdout(&o));
                diff.same("logs stderr", err_of(&t), err_of(&o));
                d.both(&b, &["rm", "att"]);
            }
        }
    }
    for args in [
        &["run", "-d", "-a", "stdout", BUSYBOX, "true"][..],
        &["run", "--rm", "-a", "stdio", BUSYBOX, "true"],
    ] {
        let (t, o) = d.both(&b, args);
        diff.same(
            &format!("{args:?}"),
            code_and_stdout(&t),
            code_and_stdout(&o),
        );
    }
    d.both(&b, &["create", "--name", "c1", BUSYBOX]);
    d.both(
        &b,
        &["create", "--name", "c2", "-i", "-a", "stderr", BUSYBOX],
    );
    d.both(&b, &["run", "-d", "--name", "c3", BUSYBOX, "true"]);
    for name in ["c1", "c2", "c3"] {
        diff.0.extend(d.inspect_differences(
            &b,
            name,
            &[
                ".Config.AttachStdin",
                ".Config.AttachStdout",
                ".Config.AttachStderr",
            ],
        ));
    }
    d.both(&b, &["rm", "-f", "c1", "c2", "c3"]);
    diff.assert_none();
}
