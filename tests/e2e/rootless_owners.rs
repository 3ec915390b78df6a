//! Image file owners for an unprivileged caller with subordinate ids: layers are unpacked in a
//! user namespace mapping them, so files keep their image owners inside the container, and the
//! store can still remove what it unpacked.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_testkit::{unprivileged_user, unprivileged_user_without_subids};

use crate::rootless::AsUser;

/// The user's fixtures plus the image below, readable by the user.
fn with_owners_image(u: &AsUser) -> PathBuf {
    let tar = image_tar(u.dir());
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    tar
}

/// The busybox fixture plus a home owned by uid 1000 with a private directory and file, and a
/// setuid-root program.
fn image_tar(dir: &Path) -> PathBuf {
    let out = dir.join("owners.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
    let mut base =
        tar::Archive::new(std::fs::File::open(berth_testkit::busybox_rootfs_tar()).unwrap());
    for e in base.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        if h.entry_type().is_symlink() || h.entry_type().is_hard_link() {
            let target = e.link_name().unwrap().unwrap().into_owned();
            b.append_link(&mut h, &path, &target).unwrap();
        } else {
            b.append_data(&mut h, &path, &mut e).unwrap();
        }
    }
    let entry =
        |b: &mut tar::Builder<std::fs::File>, path: &str, dir: bool, mode, uid, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(if dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(uid);
            h.set_size(data.len() as u64);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, path, data).unwrap();
        };
    entry(&mut b, "home/", true, 0o755, 0, b"");
    entry(&mut b, "home/app/", true, 0o700, 1000, b"");
    entry(&mut b, "home/app/secret", false, 0o600, 1000, b"s\n");
    entry(&mut b, "usr/local/bin/", true, 0o755, 0, b"");
    entry(
        &mut b,
        "usr/local/bin/setuid-root",
        false,
        0o4755,
        0,
        b"#!/bin/sh\n",
    );
    b.into_inner().unwrap();
    out
}

fn subuid_start(name: &str) -> u32 {
    let text = std::fs::read_to_string("/etc/subuid").unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no /etc/subuid line for {name}"))
}

const STAT: &str = "stat -c '%n %u:%g %a' /home/app /home/app/secret /usr/local/bin/setuid-root";

#[test]
fn image_owners_are_kept_with_subordinate_ids() {
    let u = AsUser::new(unprivileged_user());
    let tar = with_owners_image(&u);
    u.ok(&["import", tar.to_str().unwrap(), "localhost/owners"]);
    assert_eq!(
        u.ok(&["run", "--rm", "localhost/owners", "sh", "-c", STAT]),
        "/home/app 1000:1000 700\n/home/app/secret 1000:1000 600\n\
         /usr/local/bin/setuid-root 0:0 4755\n"
    );
    // The image's user reaches its private files.
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "-u",
            "1000",
            "localhost/owners",
            "cat",
            "/home/app/secret"
        ]),
        "s\n"
    );
    // On the host they belong to the matching subordinate id.
    let layers = u.root().join("layers");
    let layer = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap();
    let m = std::fs::symlink_metadata(layer.join("home/app")).unwrap();
    assert_eq!(m.uid(), subuid_start(&u.user.name) + 999);

    // Removing the image removes those files too (through the same namespace).
    u.ok(&["rmi", "localhost/owners"]);
    u.ok(&["image", "prune", "-a", "-f"]);
    let left: Vec<_> = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "layers left behind: {left:?}");
    let tmp: Vec<_> = std::fs::read_dir(u.root().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");
}

#[test]
fn without_subordinate_ids_files_belong_to_the_caller() {
    let u = AsUser::new(unprivileged_user_without_subids());
    let tar = with_owners_image(&u);
    u.ok(&["import", tar.to_str().unwrap(), "localhost/owners"]);
    // One id only: everything is the caller's, root inside; setuid bits are dropped.
    assert_eq!(
        u.ok(&["run", "--rm", "localhost/owners", "sh", "-c", STAT]),
        "/home/app 0:0 700\n/home/app/secret 0:0 600\n/usr/local/bin/setuid-root 0:0 755\n"
    );
    u.ok(&["rmi", "localhost/owners"]);
}
