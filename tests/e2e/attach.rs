//! `attach`: a detached container's output from now on, this command's signals passed on, and
//! the container's exit code at its end; compared with Docker.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::Berth;
use crate::dockerd::{Dockerd, BUSYBOX};

const TICKER: &str = "trap 'echo got TERM; exit 3' TERM; while true; do echo tick; sleep 0.1; done";

/// Attaches with `attach` (a `berth` or `docker` command line), waits for its first line,
/// sends it SIGTERM and returns its exit code and whether the container's answer came through.
fn attach_and_terminate(mut attach: Command) -> (Option<i32>, bool) {
    let mut child = attach
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "tick\n");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let rest: Vec<String> = out.lines().map_while(Result::ok).collect();
    let code = child.wait().unwrap().code();
    (code, rest.iter().any(|l| l == "got TERM"))
}

#[test]
fn attach_relays_signals_and_ends_with_the_container() {
    let b = Berth::new();
    b.import_busybox(BUSYBOX);
    b.ok(&["run", "-d", "--name", "ticker", BUSYBOX, "sh", "-c", TICKER]);
    let mut cmd = b.cmd();
    cmd.args(["attach", "ticker"]);
    assert_eq!(attach_and_terminate(cmd), (Some(3), true));
    let err = b.fails(&["attach", "ticker"], 1);
    assert!(err.contains("stopped container"), "{err}");
    // Without the relay, the container goes on when attach is interrupted.
    b.ok(&["run", "-d", "--name", "keeps", BUSYBOX, "sh", "-c", TICKER]);
    let mut cmd = b.cmd();
    cmd.args(["attach", "--sig-proxy=false", "keeps"]);
    let (code, answered) = attach_and_terminate(cmd);
    assert_eq!((code, answered), (None, false));
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.State.Status}}", "keeps"])
            .trim(),
        "running"
    );
    b.ok(&["rm", "-f", "keeps"]);
}

#[test]
fn attach_matches_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let run = ["run", "-d", "--name", "ticker", BUSYBOX, "sh", "-c", TICKER];
    let (theirs, ours) = d.both(&b, &run);
    assert!(theirs.status.success() && ours.status.success());
    let mut docker = d.cmd();
    docker.args(["attach", "ticker"]);
    let mut berth = b.cmd();
    berth.args(["attach", "ticker"]);
    assert_eq!(
        attach_and_terminate(docker),
        attach_and_terminate(berth),
        "docker, then berth"
    );
    let (theirs, ours) = d.both(&b, &["attach", "ticker"]);
    assert_eq!(theirs.status.code(), ours.status.code());
    d.both(&b, &["rm", "-f", "ticker"]);
}
