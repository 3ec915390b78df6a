//! Hostile input end to end: a blob tampered with in the registry's storage, crafted layers
//! imported as images, truncated archives, a full disk, a killed build. Each is refused or
//! contained, and the store stays consistent.

use std::os::unix::fs::MetadataExt;

use berth_testkit::Registry;

use crate::common::{files_under, Berth};

#[test]
fn tampered_blob_is_refused_with_both_digests() {
    let reg = Registry::start();
    let name = format!("{}/test/busybox:1", reg.addr());
    let b = Berth::new();
    b.import_busybox(&name);
    b.ok(&["push", "--tls-verify=false", &name]);
    let layer = b.inspect(&name);
    let _ = layer;
    // Find the layer blob in the registry's storage (the biggest data file) and flip its bytes.
    let blobs = reg.storage_dir().join("docker/registry/v2/blobs/sha256");
    let mut biggest = (0, std::path::PathBuf::new());
    for f in files_under(&blobs) {
        let p = blobs.join(&f);
        let len = std::fs::metadata(&p).unwrap().len();
        if len > biggest.0 {
            biggest = (len, p);
        }
    }
    let expected = format!(
        "sha256:{}",
        biggest
            .1
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    );
    let mut data = std::fs::read(&biggest.1).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&biggest.1, &data).unwrap();
    let actual = berth_types::Digest::sha256_of(&data).to_string();

    let fresh = Berth::new();
    let err = fresh.fails(&["pull", "--tls-verify=false", &name], 1);
    assert!(err.contains(&expected) && err.contains(&actual), "{err}");
    assert!(fresh.ok(&["images", "-q"]).trim().is_empty());
    assert!(!fresh
        .root()
        .join("blobs/sha256")
        .join(&expected[7..])
        .exists());
    // The layer is unpacked while it downloads; none is published from a refused blob.
    let layers = std::fs::read_dir(fresh.root().join("layers")).map_or(0, |d| d.count());
    assert_eq!(layers, 0, "a layer of the refused blob was kept");
}

/// A tar with raw (unvalidated) entry names, as an attacker would write it.
fn evil_tar(path: &std::path::Path, outside: &std::path::Path) {
    let f = std::fs::File::create(path).unwrap();
    let mut t = tar::Builder::new(f);
    let raw = |t: &mut tar::Builder<std::fs::File>,
               name: &str,
               kind: tar::EntryType,
               link: Option<&str>,
               data: &[u8]| {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append(&h, data).unwrap();
    };
    let out = outside.to_str().unwrap();
    let depth = "../".repeat(20);
    raw(
        &mut t,
        &format!("{depth}{}", &out[1..]),
        tar::EntryType::Regular,
        None,
        b"escape1",
    );
    raw(
        &mut t,
        &format!("{out}/abs"),
        tar::EntryType::Regular,
        None,
        b"escape2",
    );
    raw(&mut t, "link", tar::EntryType::Symlink, Some(out), b"");
    raw(
        &mut t,
        "link/through",
        tar::EntryType::Regular,
        None,
        b"escape3",
    );
    raw(
        &mut t,
        "chain1",
        tar::EntryType::Symlink,
        Some("chain2"),
        b"",
    );
    raw(&mut t, "chain2", tar::EntryType::Symlink, Some(&depth), b"");
    raw(
        &mut t,
        &format!("chain1/{}", &out[1..]),
        tar::EntryType::Regular,
        None,
        b"escape4",
    );
    raw(
        &mut t,
        "passwd",
        tar::EntryType::Link,
        Some("/etc/passwd"),
        b"",
    );
    raw(
        &mut t,
        "up",
        tar::EntryType::Link,
        Some("../../../../etc/passwd"),
        b"",
    );
    raw(&mut t, "fine", tar::EntryType::Regular, None, b"ok");
    t.finish().unwrap();
}

#[test]
fn crafted_layer_is_contained() {
    let b = Berth::new();
    let outside = b.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let tar = b.dir.path().join("evil.tar");
    evil_tar(&tar, &outside);
    let links_before = std::fs::metadata("/etc/passwd").unwrap().nlink();
    let out = b.run(&["import", tar.to_str().unwrap(), "localhost/evil"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        files_under(&outside).is_empty(),
        "escaped: {:?}\n{stderr}",
        files_under(&outside)
    );
    assert_eq!(
        std::fs::metadata("/etc/passwd").unwrap().nlink(),
        links_before
    );
    if out.status.success() {
        assert!(
            stderr.contains("WARNING"),
            "no warning for refused entries: {stderr}"
        );
        let img = b.inspect("localhost/evil");
        let layer = img["RootFS"]["Layers"][0].as_str().unwrap();
        let dir = b.root().join("layers").join(&layer[7..]);
        assert_eq!(std::fs::read(dir.join("fine")).unwrap(), b"ok");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(b.ok(&["images", "-q"]).trim().is_empty());
    }
}

#[test]
fn truncated_gzip_import_stores_nothing() {
    let b = Berth::new();
    let src = berth_testkit::busybox_rootfs_tar();
    let gz = b.dir.path().join("bb.tar.gz");
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "gzip -c {} | head -c 300000 > {}",
                src.display(),
                gz.display()
            ),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let err = b.fails(&["import", gz.to_str().unwrap(), "localhost/trunc"], 1);
    assert!(err.contains("bb.tar.gz"), "{err}");
    assert!(b.ok(&["images", "-q"]).trim().is_empty());
    assert!(files_under(&b.root().join("blobs")).is_empty());
    assert!(files_under(&b.root().join("layers")).is_empty());
}

/// Unmounts (lazily) when dropped, so a failed assertion does not leave a mount behind.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A full disk, while the blob is written or while the layer is unpacked: one line naming the
/// cause, a non-zero exit, no image, nothing half-written left in the store, and the same import
/// succeeds once there is room. Needs root, for the small tmpfs under the store.
#[test]
fn full_disk_leaves_the_store_consistent() {
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) != 0 {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let tar = berth_testkit::busybox_rootfs_tar();
    // 600 KiB: the compressed blob (about 1 MB) does not fit; 1300 KiB: it does, its unpacked
    // layer does not.
    for size in ["600k", "1300k"] {
        let b = Berth::new();
        std::fs::create_dir_all(b.root()).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(b.root())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        let _mounted = Mounted(b.root());
        let out = b.run(&["import", tar.to_str().unwrap(), "localhost/full"]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{size}: import succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{size}: {err}");
        assert!(err.contains("No space left on device"), "{size}: {err}");
        assert!(b.ok(&["images", "-q"]).trim().is_empty(), "{size}");
        assert!(files_under(&b.root().join("layers")).is_empty(), "{size}");
        assert!(files_under(&b.root().join("tmp")).is_empty(), "{size}");
        // Room again: the same import works and the image runs.
        let status = std::process::Command::new("mount")
            .args(["-o", "remount,size=64m"])
            .arg(b.root())
            .status()
            .unwrap();
        assert!(status.success(), "remount");
        b.ok(&["import", tar.to_str().unwrap(), "localhost/full"]);
        assert_eq!(
            b.ok(&["run", "--rm", "localhost/full", "echo", "room"]),
            "room\n"
        );
    }
}

/// A build killed with SIGKILL in the middle of a RUN step: the step's process goes with it,
/// no image or container is recorded, and the same build then runs to the end.
#[test]
fn killed_build_leaves_nothing_running_or_recorded() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let ctx = b.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nRUN echo a > /a && sleep 3141 && echo done\nRUN echo b > /b\n",
    )
    .unwrap();
    let mut child = b
        .cmd()
        .args(["build", "-q", "-t", "killed", ctx.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sleeping = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .any(|c| String::from_utf8_lossy(&c).contains("sleep\u{0}3141"))
    };
    // Once the RUN step runs, kill the build outright.
    let wait_until = |want: bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while sleeping() != want && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        sleeping() == want
    };
    assert!(wait_until(true), "the RUN step never started");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(false);
    assert!(!sleeping(), "the RUN step outlived its build");
    let images = b.ok(&["images", "--format", "{{.Repository}}"]);
    assert_eq!(images, "localhost/bb\n");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
    // The same Dockerfile without the long sleep builds and runs.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nRUN echo a > /a\nRUN echo b > /b\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "killed", ctx.to_str().unwrap()]);
    assert_eq!(
        b.ok(&["run", "--rm", "killed", "cat", "/a", "/b"]),
        "a\nb\n"
    );
}
