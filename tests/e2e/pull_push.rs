//! Import, push, pull and the image commands against a real local registry.

use std::process::Stdio;
use std::time::Duration;

use berth_testkit::Registry;
use berth_types::Digest;

use crate::common::{files_under, have, Berth};

fn push(b: &Berth, name: &str) -> String {
    b.ok(&["push", "--tls-verify=false", name])
}

#[test]
fn import_push_rmi_pull_round_trip() {
    let reg = Registry::start();
    let name = format!("{}/test/busybox:1", reg.addr());
    let b = Berth::new();
    let id = b.import_busybox(&name);
    assert!(id.starts_with("sha256:"), "{id}");
    let before = b.inspect(&name);
    assert_eq!(before["Id"], id.as_str());
    assert_eq!(before["RepoTags"][0], name.as_str());
    assert_eq!(before["Os"], "linux");
    assert_eq!(before["RootFS"]["Type"], "layers");

    let out = push(&b, &name);
    assert!(out.contains("digest: sha256:"), "{out}");
    let pushed: Digest = out
        .split("digest: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    b.ok(&["rmi", &name]);
    assert!(b.ok(&["images", "-q"]).trim().is_empty());

    let out = b.ok(&["pull", "--tls-verify=false", &name]);
    assert!(out.contains(&format!("Digest: {pushed}")), "{out}");
    assert!(out.trim_end().ends_with(&name), "{out}");
    let after = b.inspect(&name);
    assert_eq!(after["Id"], before["Id"]);
    assert_eq!(after["RootFS"], before["RootFS"]);
    assert_eq!(after["Config"], before["Config"]);
    assert_eq!(
        after["RepoDigests"][0],
        format!("{}/test/busybox@{pushed}", reg.addr()).as_str()
    );

    // A pull of what is there says so, and -q prints only the reference.
    let out = b.ok(&["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(out.trim(), name);

    // Listing formats.
    let list = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(list.trim(), name);
    let json: serde_json::Value = serde_json::from_str(
        b.ok(&["images", "--format", "json"])
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["Tag"], "1");
    let table = b.ok(&["images"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    let hist = b.ok(&["history", &name]);
    assert!(hist.starts_with("IMAGE"), "{hist}");
    let df = b.ok(&["system", "df"]);
    assert!(df.contains("Images"), "{df}");
}

#[test]
fn push_keeps_digests_and_skips_existing_blobs() {
    let reg = Registry::start();
    let b = Berth::new();
    let a = format!("{}/one/busybox:1", reg.addr());
    let c = format!("{}/two/busybox:1", reg.addr());
    b.import_busybox(&a);
    let first = push(&b, &a);
    let again = push(&b, &a);
    assert!(again.contains("already exists"), "{again}");
    b.ok(&["tag", &a, &c]);
    let other = push(&b, &c);
    assert!(
        other.contains("Mounted") || other.contains("already exists"),
        "{other}"
    );
    let digest = |s: &str| {
        s.split("digest: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(digest(&first), digest(&other));

    // Pulled elsewhere and pushed again: byte-identical manifests.
    let b2 = Berth::new();
    b2.ok(&["pull", "--tls-verify=false", &a]);
    let d = format!("{}/three/busybox:1", reg.addr());
    b2.ok(&["tag", &a, &d]);
    let third = push(&b2, &d);
    assert_eq!(digest(&first), digest(&third));
    if have("skopeo") {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", &format!("docker://{d}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Digest"], digest(&first).as_str());
    }
}

#[test]
fn tag_rmi_prune_semantics() {
    let b = Berth::new();
    let id = b.import_busybox("localhost/a:1");
    b.ok(&["tag", "localhost/a:1", "localhost/a:2"]);
    b.ok(&["tag", &id[7..19], "localhost/b"]);
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
    assert_eq!(b.ok(&["images", "--format", "{{.Tag}}"]).lines().count(), 3);
    // Removing by id while several names point at it needs -f.
    let err = b.fails(&["rmi", &id], 1);
    assert!(
        err.contains(&id[7..19]) || err.contains("multiple") || err.contains("force"),
        "{err}"
    );
    let out = b.ok(&["rmi", "localhost/a:2"]);
    assert!(out.contains("Untagged: localhost/a:2"), "{out}");
    assert!(!out.contains("Deleted"), "{out}");
    let out = b.ok(&["rmi", "-f", &id]);
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert!(b.ok(&["images", "-q"]).trim().is_empty());
    // Nothing of the image is left in the store.
    let blobs = files_under(&b.root().join("blobs"));
    assert!(blobs.is_empty(), "{blobs:?}");

    // A re-import under no name is dangling and goes with prune.
    b.import_busybox("localhost/c:1");
    b.ok(&["tag", "localhost/c:1", "localhost/c:2"]);
    let out = b.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
    let out = b.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("deleted: sha256:"), "{out}");
    assert!(b.ok(&["images", "-q"]).trim().is_empty());
}

#[test]
fn concurrent_pulls_share_one_download() {
    let reg = Registry::start();
    let name = format!("{}/test/busybox:1", reg.addr());
    let pusher = Berth::new();
    pusher.import_busybox(&name);
    push(&pusher, &name);

    let b = Berth::new();
    let children: Vec<_> = (0..6)
        .map(|_| {
            b.cmd()
                .args(["pull", "-q", "--tls-verify=false", &name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
    verify_store_blobs(&b);
}

/// Every published blob hashes to its name.
fn verify_store_blobs(b: &Berth) {
    let dir = b.root().join("blobs/sha256");
    for f in files_under(&dir) {
        let hex = f.to_str().unwrap();
        let data = std::fs::read(dir.join(&f)).unwrap();
        assert_eq!(Digest::sha256_of(&data).hex(), hex, "blob {hex} is corrupt");
    }
}

#[test]
fn killed_pulls_leave_nothing_trusted() {
    let reg = Registry::start();
    let name = format!("{}/test/big:1", reg.addr());
    let pusher = Berth::new();
    // A layer big enough that kills land mid-download.
    let rootfs = pusher.dir.path().join("big.tar");
    make_big_rootfs(&rootfs, 48 << 20);
    pusher.ok(&["import", rootfs.to_str().unwrap(), &name]);
    push(&pusher, &name);
    let want = pusher.inspect(&name);

    let b = Berth::new();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for _ in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis((seed >> 33) % 400);
        let mut c = b
            .cmd()
            .args(["pull", "-q", "--tls-verify=false", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = c.kill();
        let _ = c.wait();
        // Whatever state the kill left, no image is half there.
        let images = b.ok(&["images", "-q"]);
        if !images.trim().is_empty() {
            assert_eq!(b.inspect(&name)["Id"], want["Id"]);
        }
        verify_store_blobs(&b);
    }
    b.ok(&["pull", "--tls-verify=false", &name]);
    assert_eq!(b.inspect(&name)["Id"], want["Id"]);
    verify_store_blobs(&b);
}

/// A rootfs tar of `size` bytes of incompressible data plus busybox.
pub fn make_big_rootfs(path: &std::path::Path, size: usize) {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    let f = std::fs::File::create(path).unwrap();
    let mut t = tar::Builder::new(f);
    let mut h = tar::Header::new_gnu();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "data/random.bin", &data[..]).unwrap();
    t.finish().unwrap();
}
