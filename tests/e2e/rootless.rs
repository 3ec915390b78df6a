//! Berth as an unprivileged user: its own store, no root, nothing setuid.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use berth_testkit::{run_as, unprivileged_user, Registry};

use crate::common::files_under;

#[test]
fn unprivileged_user_imports_pushes_and_pulls() {
    let user = unprivileged_user();
    let reg = Registry::start();
    // A directory the user owns, holding a copy of the binary it can execute.
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
    let root = home.join("store");
    let name = format!("{}/rootless/busybox:1", reg.addr());
    let berth = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.env("HOME", &home)
            .env("BERTH_ROOT", &root)
            .env("DOCKER_CONFIG", home.join(".docker"))
            .args(args);
        let out = run_as(&user, &mut c);
        assert!(
            out.status.success(),
            "berth {args:?} as {}: {}",
            user.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    berth(&["import", tar.to_str().unwrap(), &name]);
    berth(&["push", "--tls-verify=false", &name]);
    berth(&["rmi", &name]);
    berth(&["pull", "--tls-verify=false", &name]);
    // Everything in the store belongs to the user; nothing is setuid.
    for f in files_under(&root) {
        let m = std::fs::symlink_metadata(root.join(&f)).unwrap();
        assert_eq!(m.uid(), user.uid, "{f:?} not owned by the user");
        assert_eq!(m.mode() & 0o6000, 0, "{f:?} keeps a setuid/setgid bit");
    }
}
