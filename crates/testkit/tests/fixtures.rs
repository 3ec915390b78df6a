//! The root file system tarballs have the promised contents and are usable.

use berth_testkit::{busybox_rootfs_tar, debian_rootfs_tar};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    link: Option<String>,
    data: Vec<u8>,
}

fn entries(path: &Path) -> HashMap<String, Entry> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).expect("open tar"));
    let mut out = HashMap::new();
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.insert(
            name,
            Entry {
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                link: h
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
                data,
            },
        );
    }
    out
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().unwrap().stdout == b"0\n"
}

#[test]
fn busybox_tar_has_the_promised_layout() {
    let tar = busybox_rootfs_tar();
    assert_eq!(tar, busybox_rootfs_tar(), "cached path is stable");
    let e = entries(&tar);
    let busybox = &e["bin/busybox"];
    assert_eq!(busybox.kind, tar::EntryType::Regular);
    assert_eq!(busybox.mode, 0o755);
    for applet in [
        "sh", "ls", "cat", "echo", "true", "false", "id", "sleep", "env",
    ] {
        let link = &e[&format!("bin/{applet}")];
        assert_eq!(link.kind, tar::EntryType::Symlink, "{applet}");
        assert_eq!(link.link.as_deref(), Some("busybox"), "{applet}");
    }
    assert_eq!(e["tmp"].mode, 0o1777);
    assert_eq!(e["root"].mode, 0o700);
    assert_eq!(e["home/user"].uid, 1000);
    let passwd = String::from_utf8_lossy(&e["etc/passwd"].data).into_owned();
    assert!(passwd.contains("root:x:0:0:"), "{passwd}");
    assert!(passwd.contains("user:x:1000:1000:"), "{passwd}");
    assert!(passwd.contains("nobody:x:65534:"), "{passwd}");
    let group = String::from_utf8_lossy(&e["etc/group"].data).into_owned();
    assert!(group.contains("user:x:1000:"), "{group}");
    assert!(e
        .keys()
        .all(|k| !k.starts_with("./") && !k.starts_with('/')));
}

#[test]
fn busybox_tar_runs_a_shell() {
    if !is_root() {
        eprintln!("skipped: chroot needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(busybox_rootfs_tar())
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("chroot")
        .arg(dir.path())
        .args(["/bin/sh", "-c", "id -un; ls /bin/true; echo ok"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "root\n/bin/true\nok\n"
    );
}

#[test]
fn debian_tar_is_a_debian_rootfs_when_available() {
    let Some(tar) = debian_rootfs_tar() else {
        eprintln!("skipped: no Debian fixture on this machine");
        return;
    };
    let out = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    for want in ["etc/debian_version", "bin", "usr/bin/apt-get", "etc/passwd"] {
        assert!(list.lines().any(|l| l == want), "missing {want}");
    }
    assert!(!list.lines().any(|l| l.starts_with("dev/") && l != "dev/"));
}
