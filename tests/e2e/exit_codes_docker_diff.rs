//! Exit codes compared with Docker's for the same mistakes: flags that are unknown, lack a
//! value or get one they refuse (125), missing or extra arguments and unknown commands (1), a
//! command group given no command (0), and each command's failures: 1 for every command but
//! `run` (125 when the engine fails, 126/127 when the program cannot be started) and `exec`
//! (126 for whatever stops the program from starting).

use crate::dockerd::{Dockerd, BUSYBOX};

#[test]
fn exit_codes_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let (theirs, ours) = d.both(&b, &["run", "-d", "--name", "ec", BUSYBOX, "sleep", "60"]);
    assert!(theirs.status.success() && ours.status.success());
    let cases: &[&[&str]] = &[
        // The command line itself.
        &["images", "--bogus"],
        &["--bogus", "ps"],
        &["run"],
        &["run", "-e"],
        &["run", "--cpus", "abc", BUSYBOX],
        &["ps", "--format"],
        &["logs", "--tail"],
        &["stop"],
        &["rename", "ec", "other", "extra"],
        &["container", "bogus"],
        &["nosuchcommand"],
        &["volume"],
        // Failures of the commands.
        &["logs", "nosuch"],
        &["exec", "nosuch", "true"],
        &["exec", "ec", "nosuchbin"],
        &["exec", "ec", "/etc/passwd"],
        &["exec", "-u", "nosuchuser", "ec", "true"],
        &["exec", "-w", "/nonexistent", "ec", "true"],
        &["tag", "nosuch", "other"],
        &["history", "nosuch"],
        &["save", "nosuch"],
        &["volume", "inspect", "nosuch"],
        &["volume", "create", "bad/name"],
        &["stats", "--no-stream", "nosuch"],
        &["rename", "nosuch", "other"],
        &["start", "nosuch"],
        &["create", "--pull", "never", "nosuch"],
        &["import", "/nonexistent"],
        &["load", "-i", "/nonexistent"],
        &["run", "--rm", "--pull", "never", "nosuch"],
        &["run", "--rm", BUSYBOX, "nosuchbin"],
        &["run", "--rm", BUSYBOX, "/etc/passwd"],
        &["run", "--rm", "-u", "nosuchuser", BUSYBOX, "true"],
        &["run", "--rm", BUSYBOX, "sh", "-c", "exit 3"],
    ];
    let mut differences = Vec::new();
    for args in cases {
        let (theirs, ours) = d.both(&b, args);
        if theirs.status.code() != ours.status.code() {
            differences.push(format!(
                "{args:?}: docker {:?}, berth {:?} ({})",
                theirs.status.code(),
                ours.status.code(),
                String::from_utf8_lossy(&ours.stderr).trim()
            ));
        }
    }
    d.both(&b, &["rm", "-f", "ec"]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
