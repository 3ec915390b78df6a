//! Berth as an unprivileged user: its own store, no root, nothing setuid; containers in a user
//! namespace with subordinate ids (`berthtest`) and with a single-id map (`berthnosub`).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{
    as_user, run_as, unprivileged_user, unprivileged_user_without_subids, Registry, TestUser,
};
use tempfile::TempDir;

use crate::common::files_under;

/// A copy of the binary and the busybox tar the user can read, and a store in its home.
pub(crate) struct AsUser {
    pub(crate) user: TestUser,
    work: TempDir,
    bin: PathBuf,
    pub(crate) tar: PathBuf,
    pub(crate) home: PathBuf,
}

impl AsUser {
    pub(crate) fn new(user: TestUser) -> AsUser {
        let work = tempfile::Builder::new()
            .prefix("berth-rootless-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = work.path().join("berth");
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), &bin).unwrap();
        let tar = work.path().join("bb.tar");
        std::fs::copy(berth_testkit::busybox_rootfs_tar(), &tar).unwrap();
        std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
        let home = work.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(&home)
            .status()
            .unwrap();
        AsUser {
            user,
            work,
            bin,
            tar,
            home,
        }
    }

    /// A directory the user can read, for more fixtures.
    pub(crate) fn dir(&self) -> &std::path::Path {
        self.work.path()
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.home.join("store")
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.run_env(&[], args)
    }

    /// [`AsUser::run`] with more variables in the environment.
    pub(crate) fn run_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut c = Command::new(&self.bin);
        c.envs(env.iter().copied())
            .env("HOME", &self.home)
            .env("BERTH_ROOT", self.root())
            .env("DOCKER_CONFIG", self.home.join(".docker"))
            .current_dir(&self.home)
            .args(args);
        run_as(&self.user, &mut c)
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} as {}: {}",
            self.user.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn import(&self, name: &str) {
        self.ok(&["import", self.tar.to_str().unwrap(), name]);
    }
}

#[test]
fn unprivileged_user_imports_pushes_and_pulls() {
    let u = AsUser::new(unprivileged_user());
    let reg = Registry::start();
    let name = format!("{}/rootless/busybox:1", reg.addr());
    u.import(&name);
    u.ok(&["push", "--tls-verify=false", &name]);
    u.ok(&["rmi", &name]);
    u.ok(&["pull", "--tls-verify=false", &name]);
    // Everything in the store belongs to the user; nothing is setuid.
    let root = u.root();
    for f in files_under(&root) {
        let m = std::fs::symlink_metadata(root.join(&f)).unwrap();
        assert_eq!(m.uid(), u.user.uid, "{f:?} not owned by the user");
        assert_eq!(m.mode() & 0o6000, 0, "{f:?} keeps a setuid/setgid bit");
    }
}

#[test]
fn rootless_run_with_subordinate_ids() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    assert_eq!(
        u.ok(&["run", "--rm", "localhost/bb", "id", "-u"]).trim(),
        "0"
    );
    // Other ids exist inside thanks to /etc/subuid: chown works, -u 1000 runs.
    let out = u.ok(&[
        "run",
        "--rm",
        "localhost/bb",
        "sh",
        "-c",
        "touch /tmp/f && chown 1000:1000 /tmp/f && stat -c %u /tmp/f",
    ]);
    assert_eq!(out.trim(), "1000");
    assert_eq!(
        u.ok(&["run", "--rm", "-u", "1000", "localhost/bb", "id", "-u"])
            .trim(),
        "1000"
    );
    // That file lies in the writable layer under a subordinate id, which the user cannot
    // delete on the host: the detached deletion after `run --rm` goes through the mapped
    // namespace and leaves nothing in tmp/.
    let tmp = u.root().join("tmp");
    let left = || -> Vec<_> {
        std::fs::read_dir(&tmp)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    for _ in 0..100 {
        if left().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(left().is_empty(), "left in tmp/: {:?}", left());
    // The hpc profile runs as the user itself.
    let out = u.ok(&["run", "--rm", "--hpc", "localhost/bb", "id", "-u"]);
    assert_eq!(out.trim(), u.user.uid.to_string());
    // Lifecycle without root.
    u.ok(&["run", "-d", "--name", "bg", "localhost/bb", "sleep", "100"]);
    assert_eq!(u.ok(&["exec", "bg", "echo", "hi"]).trim(), "hi");
    u.ok(&["stop", "-t", "1", "bg"]);
    u.ok(&["rm", "bg"]);
    // Limits without a delegated cgroup: a warning, and the CPU set still applies.
    let out = u.run(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--cpuset-cpus",
        "0",
        "localhost/bb",
        "nproc",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    // One line says the limits are not enforced; the CPU affinity still narrowed nproc.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("WARNING") && err.contains("not enforced"),
        "{err}"
    );
}

/// As under an MPI launcher: the `--hpc` containers of two ranks of one job share a user
/// namespace (made with the user's subordinate ids, through newuidmap), held while either runs;
/// a container outside the job gets its own.
#[test]
fn rootless_ranks_of_one_job_share_a_user_namespace() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    let rank = |n: &str, script: &str| {
        let out = u.run_env(
            &[("PMIX_RANK", n), ("PMIX_NAMESPACE", "job-e2e")],
            &["run", "--rm", "--hpc", "localhost/bb", "sh", "-c", script],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // All three at once, the first keeping the namespace: a namespace's number is reused once
    // it is gone, and two ranks share one only while someone holds it (the second sleeps too,
    // in case the first was slow to start).
    let (first, second, own) = std::thread::scope(|s| {
        let first = s.spawn(|| rank("0", "readlink /proc/self/ns/user; sleep 5"));
        std::thread::sleep(std::time::Duration::from_millis(700));
        let second = rank(
            "1",
            "readlink /proc/self/ns/user; cat /proc/self/uid_map; sleep 2",
        );
        let own = u.ok(&[
            "run",
            "--rm",
            "--hpc",
            "localhost/bb",
            "readlink",
            "/proc/self/ns/user",
        ]);
        (first.join().unwrap(), second, own)
    });
    let ns = first.trim();
    assert!(ns.starts_with("user:["), "{first}");
    assert_eq!(second.lines().next(), Some(ns), "{second}");
    assert!(
        second.lines().count() > 2,
        "not the subordinate ids' maps: {second}"
    );
    assert_ne!(own.trim(), ns, "a container outside the job joined it");
    // Once the job's last container is gone, its holder leaves and deletes the job's files.
    let dir = u.user.runtime_dir().join("berth/userns");
    let files = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("pmix-job-e2e-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    for _ in 0..100 {
        if files().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(files().is_empty(), "left: {:?}", files());
}

#[test]
fn rootless_run_with_a_single_id_map() {
    let u = AsUser::new(unprivileged_user_without_subids());
    u.import("localhost/bb");
    assert_eq!(
        u.ok(&["run", "--rm", "localhost/bb", "id", "-u"]).trim(),
        "0"
    );
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "localhost/bb",
            "sh",
            "-c",
            "echo ok > /tmp/x && cat /tmp/x"
        ])
        .trim(),
        "ok"
    );
    let out = u.ok(&["run", "--rm", "--hpc", "localhost/bb", "id", "-u"]);
    assert_eq!(out.trim(), u.user.uid.to_string());
    // The hpc profile keeps a --rm container's writable layer in memory, rootless too.
    let out = u.ok(&[
        "run",
        "--rm",
        "--hpc",
        "localhost/bb",
        "sh",
        "-c",
        "echo ok > /var/x && cat /var/x && grep -q upperdir=.*/rootfs/upper /proc/mounts && echo in-memory",
    ]);
    assert_eq!(out, "ok\nin-memory\n");
    // Only one id is mapped: asking for another fails clearly, naming it.
    let out = u.run(&["run", "--rm", "-u", "1000", "localhost/bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1000"), "{err}");
}

/// `--userns=keep-id` runs as the caller's own ids in the docker profile; a host path the caller
/// cannot read is refused before anything starts, in one line naming it.
#[test]
fn rootless_keep_id_and_unreadable_host_paths() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    let out = u.ok(&[
        "run",
        "--rm",
        "--userns=keep-id",
        "localhost/bb",
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [u.user.uid.to_string(), u.user.gid.to_string()],
        "{out}"
    );
    let closed = u.dir().join("roots-only");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let bind = format!("{}:/data", closed.display());
    for args in [
        vec!["run", "--rm", "-v", bind.as_str(), "localhost/bb", "true"],
        vec![
            "run",
            "--rm",
            "--hpc",
            "-v",
            bind.as_str(),
            "localhost/bb",
            "true",
        ],
    ] {
        let out = u.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains("not readable by the caller"), "{err}");
        assert!(err.contains(closed.to_str().unwrap()), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(u.ok(&["ps", "-aq"]).trim().is_empty(), "nothing recorded");
}

/// The lifecycle commands, volumes, signals and `--read-only` as the unprivileged user: no
/// cgroup is writable, so pause stops the processes with SIGSTOP.
#[test]
fn rootless_lifecycle_volumes_signals_and_read_only() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    let id = u
        .ok(&[
            "run",
            "-d",
            "--name",
            "bg",
            "localhost/bb",
            "sh",
            "-c",
            "echo started; trap 'echo got usr1' USR1; trap 'exit 5' TERM; \
             while :; do sleep 0.1; done",
        ])
        .trim()
        .to_string();
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = u.ok(&["logs", "bg"]);
            if logs.contains(what) {
                return logs;
            }
            assert!(Instant::now() < deadline, "no {what:?} in the logs: {logs}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("started");
    let v: serde_json::Value = serde_json::from_str(&u.ok(&["inspect", "bg"])).unwrap();
    let pid = v[0]["State"]["Pid"].as_i64().unwrap();
    let state = |pid: i64| {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        s[s.rfind(')').unwrap() + 2..].chars().next().unwrap()
    };
    u.ok(&["pause", "bg"]);
    assert_eq!(state(pid), 'T');
    assert!(u.ok(&["ps"]).contains("(Paused)"));
    u.ok(&["unpause", "bg"]);
    assert_ne!(state(pid), 'T');
    // Signals through kill, exec with a user name, loopback up: all without root.
    u.ok(&["kill", "-s", "USR1", "bg"]);
    wait_for("got usr1");
    assert_eq!(
        u.ok(&["exec", "-u", "user", "bg", "id", "-u"]).trim(),
        "1000"
    );
    assert_eq!(
        u.ok(&["exec", "bg", "cat", "/sys/class/net/lo/flags"])
            .trim(),
        "0x9"
    );
    u.ok(&["stop", "bg"]);
    assert_eq!(u.ok(&["wait", "bg"]).trim(), "5");
    assert_eq!(u.ok(&["logs", "--tail", "1", "bg"]).trim(), "got usr1");
    u.ok(&["rm", &id]);

    // A signal to the foreground `berth run` reaches the container.
    let mut c = Command::new(&u.bin);
    c.env("HOME", &u.home)
        .env("BERTH_ROOT", u.root())
        .current_dir(&u.home)
        .args([
            "run",
            "--rm",
            "localhost/bb",
            "sh",
            "-c",
            "trap 'exit 42' USR1; echo ready; while :; do sleep 0.1; done",
        ]);
    let mut child = as_user(&u.user, &c).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));

    // A named volume: kept between containers, owned by the user on the host.
    u.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "localhost/bb",
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/d",
            "localhost/bb",
            "cat",
            "/d/f"
        ]),
        "kept\n"
    );
    assert!(u.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
    let f = u.root().join("volumes/data/_data/f");
    assert_eq!(std::fs::metadata(&f).unwrap().uid(), u.user.uid);

    // --read-only: the root is read-only, a --tmpfs on it is writable.
    let out = u.run(&["run", "--rm", "--read-only", "localhost/bb", "touch", "/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only"));
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "localhost/bb",
            "sh",
            "-c",
            "touch /tmp/x && echo ok"
        ])
        .trim(),
        "ok"
    );
    assert!(u.ok(&["ps", "-aq"]).trim().is_empty());
}

/// A build context in the user's home: a Dockerfile and nothing else.
fn user_context(u: &AsUser, dockerfile: &str) -> PathBuf {
    let dir = u.home.join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", u.user.uid, u.user.gid))
        .arg(&dir)
        .status()
        .unwrap();
    dir
}

/// Ownership changes a package install or `useradd` makes (busybox has no `adduser` here).
const ACCOUNTS: &str = "FROM localhost/bb
RUN touch /x && chown 1:1 /x && echo bob:x:1001:1001::/home/bob:/bin/sh >> /etc/passwd \\
 && echo bob:x:1001: >> /etc/group && mkdir -p /home/bob && chown -R bob:bob /home/bob
";

#[test]
fn rootless_build_without_subordinate_ids_fakes_ownership() {
    let u = AsUser::new(unprivileged_user_without_subids());
    u.import("localhost/bb");
    let ctx = user_context(&u, ACCOUNTS);
    let out = u.run(&["build", "-t", "accounts", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("single-id user namespace") && err.contains("faked"),
        "{err}"
    );
    let passwd = u.ok(&["run", "--rm", "accounts", "grep", "^bob:", "/etc/passwd"]);
    assert!(passwd.starts_with("bob:x:"), "{passwd}");
    // Only one id exists: the files the faked chown touched stay root's.
    let owner = u.ok(&["run", "--rm", "accounts", "stat", "-c", "%u:%g", "/x"]);
    assert_eq!(owner.trim(), "0:0");
    // The filter is for builds only: a plain run still reports the failure.
    let out = u.run(&["run", "--rm", "localhost/bb", "chown", "1:1", "/tmp"]);
    assert!(!out.status.success());
    // Only root exists: a RUN under USER runs as root with that user's home, and says so;
    // the image keeps its USER.
    let ctx = user_context(&u, "FROM localhost/bb\nUSER user\nRUN touch $HOME/made\n");
    let out = u.run(&["build", "-t", "as-user", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("USER user: RUN steps run as root"), "{err}");
    assert_eq!(
        u.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}",
            "as-user"
        ])
        .trim(),
        "user"
    );
    u.ok(&["run", "--rm", "-u", "0", "as-user", "ls", "/home/user/made"]);

    // Debian's own tools and a package install, when the minbase fixture can be made here
    // (which also means the Debian mirror is reachable).
    let Some(deb) = berth_testkit::debian_rootfs_tar() else {
        return;
    };
    let tar = u.home.join("debian.tar");
    std::fs::copy(deb, &tar).unwrap();
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    u.ok(&["import", tar.to_str().unwrap(), "localhost/deb"]);
    let ctx = user_context(
        &u,
        "FROM localhost/deb
RUN useradd -m -s /bin/bash bob && chown -R bob:bob /home/bob && install -o bob -g bob -d /srv/data \\
 && su bob -c true && id bob
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends hello
",
    );
    let out = u.run(&["build", "-t", "deb-accounts", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let out = u.ok(&["run", "--rm", "deb-accounts", "getent", "passwd", "bob"]);
    assert!(out.contains("/home/bob"), "{out}");
    // apt drops to its sandbox user and checks that it did: Berth keeps it as root.
    let out = u.ok(&["run", "--rm", "deb-accounts", "hello"]);
    assert_eq!(out.trim(), "Hello, world!");
}

#[test]
fn rootless_build_with_subordinate_ids_keeps_ownership() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    let ctx = user_context(&u, &format!("{ACCOUNTS}USER bob\n"));
    let out = u.run(&["build", "-t", "accounts", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("subordinate ids"), "{err}");
    assert!(!err.contains("faked"), "{err}");
    // The layer records the ids set inside. (A rootless store unpacks every file as the
    // caller's, so the blob is where ownership is visible.)
    let mut listing = String::new();
    for f in files_under(&u.root().join("blobs")) {
        let out = Command::new("tar")
            .args(["--numeric-owner", "-tvzf"])
            .arg(u.root().join("blobs").join(&f))
            .output()
            .unwrap();
        listing.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let owner = |name: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(String::from)
    };
    assert_eq!(owner(" x").as_deref(), Some("1/1"), "{listing}");
    assert_eq!(
        owner(" home/bob/").as_deref(),
        Some("1001/1001"),
        "{listing}"
    );
    assert_eq!(u.ok(&["run", "--rm", "accounts", "whoami"]).trim(), "bob");
}

#[test]
fn rootless_build_mounts_cache_bind_and_secret() {
    let u = AsUser::new(unprivileged_user_without_subids());
    u.import("localhost/bb");
    let ctx = user_context(
        &u,
        "FROM localhost/bb\n\
         RUN --mount=type=cache,target=/c echo run >> /c/log && cat /c/log > /seen\n\
         RUN --mount=type=bind,target=/src cat /src/Dockerfile | head -1 > /first\n\
         RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len\n",
    );
    let tok = u.home.join("tok");
    std::fs::write(&tok, "abc").unwrap();
    Command::new("chown")
        .arg(format!("{}:{}", u.user.uid, u.user.gid))
        .arg(&tok)
        .status()
        .unwrap();
    let secret = format!("id=tok,src={}", tok.display());
    let out = u.run(&[
        "build",
        "-t",
        "m",
        "--secret",
        &secret,
        ctx.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(u.ok(&["run", "--rm", "m", "cat", "/seen"]), "run\n");
    assert_eq!(
        u.ok(&["run", "--rm", "m", "cat", "/first"]),
        "FROM localhost/bb\n"
    );
    assert_eq!(u.ok(&["run", "--rm", "m", "cat", "/len"]).trim(), "3");
    let out = u.run(&[
        "build",
        "--no-cache",
        "-t",
        "m",
        "--secret",
        &secret,
        ctx.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(u.ok(&["run", "--rm", "m", "cat", "/seen"]), "run\nrun\n");
}

/// `info` says how this caller's containers map ids: subordinate ranges, a single id, or root.
#[test]
fn info_reports_the_id_mapping() {
    let b = crate::common::Berth::new();
    let root: serde_json::Value =
        serde_json::from_str(&b.ok(&["info", "--format", "json"])).unwrap();
    if root["User"]["Uid"] == 0 {
        assert_eq!(root["IdMapping"], "root");
        assert_eq!(root["Rootless"], false);
    }
    assert_eq!(root["Images"], 0);
    assert!(root["NCPU"].as_u64().unwrap() >= 1);
    let text = b.ok(&["info"]);
    assert!(text.contains("StoreRoot: "), "{text}");
    for (user, want) in [
        (unprivileged_user(), "subordinate ids (newuidmap/newgidmap)"),
        (
            unprivileged_user_without_subids(),
            "single id (no /etc/subuid and /etc/subgid range)",
        ),
    ] {
        let u = AsUser::new(user);
        assert_eq!(
            u.ok(&["info", "--format", "{{.IdMapping}} {{.Rootless}}"]),
            format!("{want} true\n")
        );
    }
}
