//! Layer unpack: hostile tars stay inside the layer, whiteouts become overlayfs's format.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use berth_store::StoreError;
use berth_types::Digest;
use common::{env, gzip, is_root, native, root, rootless, tar, E};

fn mode(p: &std::path::Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn warned(warnings: &[String], needle: &str) -> bool {
    warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn ordinary_layer() {
    let env = env();
    let t = tar(&[
        E::Dir("./", 0o755),
        E::Dir("./bin/", 0o755),
        E::File("./bin/sh", b"#!shell", 0o755),
        E::Symlink("./bin/ash", "sh"),
        E::Hardlink("./bin/sh2", "./bin/sh"),
        E::File("etc/motd", b"hello", 0o640),
        E::Fifo("run-fifo"),
    ]);
    let (diff_id, report) = env.unpack(&t, &native());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // The two files' bytes and the symlink's target (`sh`); the hard link counts once.
    assert_eq!(report.size, 7 + 5 + 2);
    let l = env.store.layer_path(&diff_id);
    assert!(env.store.has_layer(&diff_id));
    assert_eq!(fs::read(l.join("bin/sh")).unwrap(), b"#!shell");
    assert_eq!(mode(&l.join("bin/sh")), 0o755);
    assert_eq!(mode(&l.join("etc/motd")), 0o640);
    assert_eq!(
        fs::read_link(l.join("bin/ash")).unwrap().to_str(),
        Some("sh")
    );
    let ino = |p: &str| fs::metadata(l.join(p)).unwrap().ino();
    assert_eq!(ino("bin/sh"), ino("bin/sh2"));
    assert_eq!(
        fs::metadata(l.join("etc/motd")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(fs::metadata(l.join("bin")).unwrap().mtime(), 1_600_000_000);
    assert!(fs::symlink_metadata(l.join("run-fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(env.store.layer_size(&diff_id).unwrap(), Some(14));
    // A second unpack is a no-op that reports the recorded size.
    let blob = env.store.put_blob(&gzip(&t)).unwrap();
    let again = env.store.unpack_layer(&blob, &diff_id, &native()).unwrap();
    assert_eq!(again.size, 14);
    env.assert_contained();
}

#[test]
fn zstd_and_plain_tar() {
    let env = env();
    let t = tar(&[E::File("a", b"x", 0o644)]);
    let plain = env.store.put_blob(&t).unwrap();
    let d = Digest::sha256_of(&t);
    env.store.unpack_layer(&plain, &d, &native()).unwrap();
    assert!(env.store.layer_path(&d).join("a").is_file());
    let t2 = tar(&[E::File("b", b"y", 0o644)]);
    let z = env
        .store
        .put_blob(&zstd::encode_all(&t2[..], 3).unwrap())
        .unwrap();
    let d2 = Digest::sha256_of(&t2);
    env.store.unpack_layer(&z, &d2, &native()).unwrap();
    assert!(env.store.layer_path(&d2).join("b").is_file());
}

#[test]
fn path_traversal_is_refused() {
    let env = env();
    let t = tar(&[
        E::File("../../etc/x", b"evil", 0o644),
        E::File("../../../sentinel/keep", b"evil", 0o644),
        E::File("a/../../../../sentinel/new", b"evil", 0o644),
        E::File("ok", b"fine", 0o644),
    ]);
    let (d, report) = env.unpack(&t, &native());
    assert_eq!(report.warnings.len(), 3, "{:?}", report.warnings);
    assert!(warned(&report.warnings, "../../etc/x"));
    let l = env.store.layer_path(&d);
    assert_eq!(fs::read(l.join("ok")).unwrap(), b"fine");
    assert!(!env.store.paths().root().join("etc").exists());
    env.assert_contained();
}

#[test]
fn absolute_names_become_relative() {
    let env = env();
    let t = tar(&[E::File("/etc/berth-store-test-x", b"inside", 0o644)]);
    let (d, report) = env.unpack(&t, &native());
    assert!(
        warned(&report.warnings, "absolute"),
        "{:?}",
        report.warnings
    );
    let l = env.store.layer_path(&d);
    assert_eq!(
        fs::read(l.join("etc/berth-store-test-x")).unwrap(),
        b"inside"
    );
    assert!(!std::path::Path::new("/etc/berth-store-test-x").exists());
    env.assert_contained();
}

#[test]
fn no_write_through_symlink_parent() {
    let env = env();
    let s = env.sentinel.to_str().unwrap().to_string();
    let t = tar(&[
        E::Symlink("a", &s),
        E::File("a/keep", b"evil", 0o644),
        E::File("a/passwd", b"evil", 0o644),
        E::Dir("a/sub/", 0o755),
    ]);
    let (d, report) = env.unpack(&t, &native());
    assert_eq!(report.warnings.len(), 3, "{:?}", report.warnings);
    assert!(warned(
        &report.warnings,
        "a/passwd: skipped: parent a is a symlink"
    ));
    let l = env.store.layer_path(&d);
    assert_eq!(
        fs::read_link(l.join("a")).unwrap().to_str(),
        Some(s.as_str())
    );
    env.assert_contained();
}

#[test]
fn symlink_chain_out_of_rootfs() {
    let env = env();
    let t = tar(&[
        E::Symlink("a", "b"),
        E::Symlink("b", "../../../sentinel"),
        E::File("a/x", b"evil", 0o644),
        E::File("b/y", b"evil", 0o644),
        E::Symlink("c", "/"),
        E::File("c/tmp/berth-store-test-z", b"evil", 0o644),
    ]);
    let (d, report) = env.unpack(&t, &native());
    assert_eq!(report.warnings.len(), 3, "{:?}", report.warnings);
    let l = env.store.layer_path(&d);
    assert!(fs::symlink_metadata(l.join("a"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!std::path::Path::new("/tmp/berth-store-test-z").exists());
    env.assert_contained();
}

#[test]
fn final_symlink_is_replaced_not_followed() {
    let env = env();
    let keep = env.sentinel.join("keep");
    let t = tar(&[
        E::Symlink("f", keep.to_str().unwrap()),
        E::File("f", b"replaced", 0o644),
        E::Symlink("d", env.sentinel.to_str().unwrap()),
        E::Dir("d/", 0o700),
        E::File("d/inner", b"in", 0o644),
    ]);
    let (d, report) = env.unpack(&t, &native());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let l = env.store.layer_path(&d);
    assert_eq!(fs::read(l.join("f")).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(l.join("d")).unwrap().is_dir());
    assert_eq!(mode(&l.join("d")), 0o700);
    env.assert_contained();
}

#[test]
fn directory_replaced_by_symlink_keeps_its_mode_off_the_target() {
    let env = env();
    let before = mode(&env.sentinel);
    let t = tar(&[
        E::Dir("x/", 0o700),
        E::Symlink("x", env.sentinel.to_str().unwrap()),
    ]);
    let (d, _) = env.unpack(&t, &native());
    assert!(fs::symlink_metadata(env.store.layer_path(&d).join("x"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(mode(&env.sentinel), before);
    env.assert_contained();
}

#[test]
fn hardlinks_never_reach_the_host() {
    let env = env();
    let s = env.sentinel.to_str().unwrap().to_string();
    let t = tar(&[
        E::Hardlink("passwd", "/etc/passwd"),
        E::Hardlink("out", "../outside"),
        E::Hardlink("out2", "../../../sentinel/keep"),
        E::Symlink("d", &s),
        E::Hardlink("via", "d/keep"),
        E::Symlink("esc", "../../../sentinel/keep"),
        E::Hardlink("via2", "esc"),
        E::File("real", b"r", 0o644),
        E::Hardlink("good", "real"),
    ]);
    let (d, report) = env.unpack(&t, &native());
    assert_eq!(report.warnings.len(), 5, "{:?}", report.warnings);
    let l = env.store.layer_path(&d);
    for n in ["passwd", "out", "out2", "via", "via2"] {
        assert!(fs::symlink_metadata(l.join(n)).is_err(), "{n} created");
    }
    assert_eq!(fs::read(l.join("good")).unwrap(), b"r");
    let host = fs::metadata("/etc/passwd").map(|m| m.ino()).ok();
    for e in fs::read_dir(&l).unwrap() {
        let m = fs::symlink_metadata(e.unwrap().path()).unwrap();
        assert!(Some(m.ino()) != host || m.dev() != fs::metadata("/etc/passwd").unwrap().dev());
    }
    assert_eq!(fs::metadata(env.sentinel.join("keep")).unwrap().nlink(), 1);
    env.assert_contained();
}

#[test]
fn truncated_gzip_publishes_nothing() {
    let env = env();
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let t = tar(&[E::File("big", &big, 0o644)]);
    let gz = gzip(&t);
    let cut = &gz[..gz.len() / 2];
    let diff_id = Digest::sha256_of(&t);
    let blob = Digest::sha256_of(cut);
    let err = env.try_unpack(cut, &diff_id).unwrap_err();
    assert!(matches!(err, StoreError::CorruptLayer { .. }), "{err}");
    assert!(err.to_string().contains(&blob.to_string()), "{err}");
    assert!(!env.store.has_layer(&diff_id));
    env.assert_contained();
    let garbage = b"\x1f\x8bthis is not gzip at all";
    let err = env.try_unpack(garbage, &diff_id).unwrap_err();
    assert!(matches!(err, StoreError::CorruptLayer { .. }), "{err}");
    assert!(!env.store.has_layer(&diff_id));
}

#[test]
fn wrong_diff_id_publishes_nothing() {
    let env = env();
    let t = tar(&[E::File("a", b"x", 0o644)]);
    let wrong = Digest::sha256_of(b"something else");
    let err = env.try_unpack(&gzip(&t), &wrong).unwrap_err();
    match &err {
        StoreError::DiffIdMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &Digest::sha256_of(&t));
        }
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&wrong.to_string()) && msg.contains(&Digest::sha256_of(&t).to_string()));
    assert!(!env.store.has_layer(&wrong));
    assert!(!env.store.paths().layer_record(&wrong).exists());
    env.assert_contained();
}

#[test]
fn whiteouts_use_overlayfs_format() {
    let env = env();
    let t = tar(&[
        E::Dir("dir/", 0o755),
        E::File("dir/.wh.gone", b"", 0o644),
        E::File(".wh.top", b"", 0o644),
        E::Dir("opq/", 0o755),
        E::File("opq/.wh..wh..opq", b"", 0o644),
        E::File("opq/keep", b"k", 0o644),
        E::File("new/.wh..wh..opq", b"", 0o644),
        E::File(".wh..wh.plnk", b"", 0o644),
    ]);
    let (d, report) = env.unpack(&t, &rootless());
    let l = env.store.layer_path(&d);
    for (dir, name) in [("dir", "gone"), (".", "top")] {
        let p = l.join(dir).join(name);
        match fs::symlink_metadata(&p) {
            Ok(m) => {
                assert!(m.file_type().is_char_device(), "{p:?}");
                assert_eq!(m.rdev(), 0);
            }
            Err(_) => {
                assert!(l.join(dir).join(format!(".wh.{name}")).is_file());
                assert!(warned(&report.warnings, "whiteout"));
            }
        }
    }
    for dir in ["opq", "new"] {
        let p = l.join(dir);
        let mut buf = [0u8; 8];
        match rustix::fs::lgetxattr(&p, "user.overlay.opaque", &mut buf[..]) {
            Ok(n) => {
                assert_eq!(&buf[..n], b"y");
                assert!(!p.join(".wh..wh..opq").exists());
            }
            Err(_) => assert!(p.join(".wh..wh..opq").is_file()),
        }
    }
    assert_eq!(fs::read(l.join("opq/keep")).unwrap(), b"k");
    assert!(!l.join(".wh..wh.plnk").exists());
    if report.warnings.is_empty() {
        for e in fs::read_dir(l.join("dir")).unwrap() {
            assert!(!e.unwrap().file_name().to_string_lossy().starts_with(".wh."));
        }
    }
    env.assert_contained();
}

#[test]
fn rootless_drops_setuid_and_devices() {
    let env = env();
    let t = tar(&[
        E::File("usr/bin/su", b"su", 0o4755),
        E::File("usr/bin/wall", b"wall", 0o2755),
        E::Char("dev/null", 1, 3),
        E::Fifo("fifo"),
    ]);
    let (d, report) = env.unpack(&t, &rootless());
    let l = env.store.layer_path(&d);
    assert_eq!(mode(&l.join("usr/bin/su")), 0o755);
    assert_eq!(mode(&l.join("usr/bin/wall")), 0o755);
    assert!(warned(
        &report.warnings,
        "usr/bin/su: setuid/setgid bits dropped"
    ));
    assert!(warned(
        &report.warnings,
        "dev/null: skipped: device nodes need root"
    ));
    assert!(!l.join("dev/null").exists());
    assert!(fs::symlink_metadata(l.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(fs::metadata(l.join("usr/bin/su")).unwrap().uid(), me);
}

#[test]
fn privileged_unpack_keeps_owners_setuid_and_devices() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = env();
    let mut h = tar::Header::new_gnu();
    h.set_path("owned").unwrap();
    h.set_size(1);
    h.set_mode(0o4750);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"x"[..]).unwrap();
    common::append(&mut b, &[E::Char("dev/null", 1, 3)]);
    let t = b.into_inner().unwrap();
    let (d, report) = env.unpack(&t, &root());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let l = env.store.layer_path(&d);
    let m = fs::metadata(l.join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 5678, 0o4750));
    let n = fs::symlink_metadata(l.join("dev/null")).unwrap();
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
}

#[test]
fn read_only_directories_are_filled() {
    let env = env();
    let t = tar(&[
        E::Dir("ro/", 0o555),
        E::File("ro/file", b"f", 0o444),
        E::Dir("ro/sub/", 0o500),
        E::File("ro/sub/deep", b"d", 0o400),
    ]);
    let (d, report) = env.unpack(&t, &rootless());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let l = env.store.layer_path(&d);
    assert_eq!(mode(&l.join("ro")), 0o555);
    assert_eq!(mode(&l.join("ro/sub")), 0o500);
    assert_eq!(fs::read(l.join("ro/sub/deep")).unwrap(), b"d");
}

#[test]
fn long_names_and_xattrs() {
    let env = env();
    let long = format!("{}/file", "d".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    b.append_pax_extensions([
        ("SCHILY.xattr.user.berth", &b"v"[..]),
        ("SCHILY.xattr.user.overlay.opaque", &b"y"[..]),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "withattr", &b"a"[..]).unwrap();
    let t = b.into_inner().unwrap();
    let (d, report) = env.unpack(&t, &rootless());
    let l = env.store.layer_path(&d);
    assert_eq!(fs::read(l.join(&long)).unwrap(), b"long");
    assert!(warned(
        &report.warnings,
        "ignored extended attribute user.overlay.opaque"
    ));
    let mut buf = [0u8; 8];
    if let Ok(n) = rustix::fs::lgetxattr(l.join("withattr"), "user.berth", &mut buf[..]) {
        assert_eq!(&buf[..n], b"v");
    } else {
        assert!(warned(&report.warnings, "user.berth"));
    }
    assert!(
        rustix::fs::lgetxattr(l.join("withattr"), "user.overlay.opaque", &mut buf[..]).is_err()
    );
}

#[test]
fn concurrent_unpacks_of_one_layer() {
    let env = env();
    let t = tar(&[E::File("a", b"x", 0o644), E::Dir("d/", 0o755)]);
    let blob = env.store.put_blob(&gzip(&t)).unwrap();
    let diff_id = Digest::sha256_of(&t);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| env.store.unpack_layer(&blob, &diff_id, &native()).unwrap());
        }
    });
    assert!(env.store.layer_path(&diff_id).join("a").is_file());
    env.assert_contained();
}

#[test]
fn a_streamed_layer_is_published_only_when_its_source_says_so() {
    let env = env();
    let t = tar(&[E::File("a", b"streamed", 0o644)]);
    let gz = gzip(&t);
    let blob = Digest::sha256_of(&gz);
    let diff_id = Digest::sha256_of(&t);
    // The download failed after every byte arrived: verified content, but nothing published.
    let mut started = 0;
    let err = env
        .store
        .unpack_layer_from(
            &mut &gz[..],
            &blob,
            &diff_id,
            &native(),
            &mut || started += 1,
            &mut || {
                Err(StoreError::CorruptLayer {
                    blob: blob.clone(),
                    reason: "the download failed".into(),
                })
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("the download failed"), "{err}");
    assert_eq!(started, 1);
    assert!(!env.store.has_layer(&diff_id));

    // A stream cut short is refused without asking the source.
    let mut asked = false;
    let cut = &gz[..gz.len() / 2];
    assert!(env
        .store
        .unpack_layer_from(
            &mut &cut[..],
            &blob,
            &diff_id,
            &native(),
            &mut || {},
            &mut || {
                asked = true;
                Ok(())
            }
        )
        .is_err());
    assert!(!asked);
    assert!(!env.store.has_layer(&diff_id));

    // Whole and confirmed: published; a second unpack does not even start its source.
    env.store
        .unpack_layer_from(
            &mut &gz[..],
            &blob,
            &diff_id,
            &native(),
            &mut || {},
            &mut || Ok(()),
        )
        .unwrap();
    assert_eq!(
        std::fs::read(env.store.layer_path(&diff_id).join("a")).unwrap(),
        b"streamed"
    );
    let mut started = false;
    env.store
        .unpack_layer_from(
            &mut &gz[..],
            &blob,
            &diff_id,
            &native(),
            &mut || started = true,
            &mut || Ok(()),
        )
        .unwrap();
    assert!(!started);
    env.assert_contained();
}
