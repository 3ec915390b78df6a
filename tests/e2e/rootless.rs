//! Berth as an unprivileged user: its own store, no root, nothing setuid; containers in a user
//! namespace with subordinate ids (`berthtest`) and with a single-id map (`berthnosub`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output};

use berth_testkit::{
    run_as, unprivileged_user, unprivileged_user_without_subids, Registry, TestUser,
};
use tempfile::TempDir;

use crate::common::files_under;

/// A copy of the binary and the busybox tar the user can read, and a store in its home.
struct AsUser {
    user: TestUser,
    _work: TempDir,
    bin: PathBuf,
    tar: PathBuf,
    home: PathBuf,
}

impl AsUser {
    fn new(user: TestUser) -> AsUser {
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
            _work: work,
            bin,
            tar,
            home,
        }
    }

    fn root(&self) -> PathBuf {
        self.home.join("store")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(&self.bin);
        c.env("HOME", &self.home)
            .env("BERTH_ROOT", self.root())
            .env("DOCKER_CONFIG", self.home.join(".docker"))
            .current_dir(&self.home)
            .args(args);
        run_as(&self.user, &mut c)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} as {}: {}",
            self.user.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn import(&self, name: &str) {
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING"));
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
    // Only one id is mapped: asking for another fails clearly, naming it.
    let out = u.run(&["run", "--rm", "-u", "1000", "localhost/bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1000"), "{err}");
}
