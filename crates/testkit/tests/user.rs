//! The unprivileged test user exists and commands really run as it.

use berth_testkit::{busybox_rootfs_tar, run_as, unprivileged_user};
use std::process::Command;

fn is_root() -> bool {
    Command::new("id").arg("-u").output().unwrap().stdout == b"0\n"
}

#[test]
fn commands_run_as_the_test_user() {
    if !is_root() {
        eprintln!("skipped: creating and switching users needs root");
        return;
    }
    let user = unprivileged_user();
    assert_eq!(user, unprivileged_user());
    assert_eq!(user.name, "berthtest");
    assert_ne!(user.uid, 0);
    assert!(user.home.is_dir());
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    assert!(subuid.lines().any(|l| l.starts_with("berthtest:")));

    let out = run_as(
        &user,
        Command::new("sh")
            .args([
                "-c",
                "id -u; id -g; echo $HOME; echo $XDG_RUNTIME_DIR; echo $FOO",
            ])
            .env("FOO", "bar"),
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], user.uid.to_string());
    assert_eq!(lines[1], user.gid.to_string());
    assert_eq!(lines[2], user.home.to_string_lossy());
    assert_eq!(lines[3], format!("/run/user/{}", user.uid));
    assert_eq!(lines[4], "bar");
}

#[test]
fn files_can_be_handed_to_the_test_user() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let user = unprivileged_user();
    let copy = user.copy_to_home(&busybox_rootfs_tar());
    let out = run_as(&user, Command::new("tar").arg("-tf").arg(&copy));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("bin/busybox"));
}
