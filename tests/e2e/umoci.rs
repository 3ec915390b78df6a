//! The rootfs Berth unpacks for a Debian minbase image equals `umoci unpack`'s: paths, types,
//! modes, sizes, link targets and ownership.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use crate::common::{have, Berth};

#[derive(Debug, PartialEq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    size: u64,
    link: Option<String>,
    uid: u32,
    gid: u32,
}

fn walk(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let t = m.file_type();
            let kind = if t.is_dir() {
                stack.push(p.clone());
                "dir"
            } else if t.is_symlink() {
                "symlink"
            } else if t.is_file() {
                "file"
            } else if t.is_char_device() {
                "char"
            } else if t.is_block_device() {
                "block"
            } else if t.is_fifo() {
                "fifo"
            } else {
                "other"
            };
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            out.insert(
                rel,
                Entry {
                    kind,
                    mode: m.mode() & 0o7777,
                    size: if t.is_file() { m.len() } else { 0 },
                    link: t.is_symlink().then(|| {
                        std::fs::read_link(&p)
                            .unwrap()
                            .to_string_lossy()
                            .to_string()
                    }),
                    uid: m.uid(),
                    gid: m.gid(),
                },
            );
        }
    }
    out
}

#[test]
fn debian_unpack_equals_umoci() {
    if !have("umoci") {
        eprintln!("umoci not installed: skipped");
        return;
    }
    let Some(tar) = berth_testkit::debian_rootfs_tar() else {
        eprintln!("no debian minbase fixture: skipped");
        return;
    };
    let b = Berth::new();
    b.ok(&["import", tar.to_str().unwrap(), "localhost/debian:minbase"]);
    let archive = b.dir.path().join("deb.oci.tar");
    b.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        "localhost/debian:minbase",
    ]);
    let layout = b.dir.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    assert!(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap()
        .success());
    let bundle = b.dir.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:minbase", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let img = b.inspect("localhost/debian:minbase");
    let diff = img["RootFS"]["Layers"][0].as_str().unwrap();
    let ours = walk(&b.root().join("layers").join(&diff[7..]));
    let theirs = walk(&bundle.join("rootfs"));
    let mut differences = Vec::new();
    for (path, e) in &theirs {
        match ours.get(path) {
            None => differences.push(format!("missing {path}")),
            Some(o) if o != e => differences.push(format!("{path}: ours {o:?} umoci {e:?}")),
            _ => {}
        }
    }
    for path in ours.keys().filter(|p| !theirs.contains_key(*p)) {
        differences.push(format!("extra {path}"));
    }
    assert!(
        differences.is_empty(),
        "{} differences, first: {:#?}",
        differences.len(),
        &differences[..differences.len().min(20)]
    );
}
