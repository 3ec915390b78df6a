//! Archives exchanged with skopeo (containers/image, the library behind podman).
//!
//! Skipped with a notice when skopeo is not installed.

mod common;

use std::path::Path;
use std::process::Command;

use berth_archive::{load, save, Format, SaveImage};
use berth_types::Digest;
use common::*;
use serde_json::Value;

fn skopeo() -> Option<Command> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("skopeo").is_file()));
    if !found {
        eprintln!("notice: skopeo not on PATH; skipping interoperability test");
        return None;
    }
    let mut cmd = Command::new("skopeo");
    // Local files only: no registry policy applies, and none may be configured here.
    cmd.arg("--insecure-policy");
    Some(cmd)
}

fn run(mut cmd: Command) -> String {
    let out = cmd.output().expect("skopeo runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn test_image(store: &mut MemStore) -> (SaveImage, Vec<Digest>) {
    let base = add_layer(
        store,
        &layer_tar(&[("etc/os-release", b"ID=berth-test\n")]),
        true,
    );
    let top = add_layer(
        store,
        &layer_tar(&[("bin/hello", b"#!/bin/sh\necho hi\n")]),
        true,
    );
    let diff_ids = vec![base.diff_id.clone(), top.diff_id.clone()];
    (
        make_image(store, &[base, top], &["example.com/berth/interop:1"]),
        diff_ids,
    )
}

fn save_to(dir: &Path, name: &str, format: Format, image: &SaveImage, store: &MemStore) -> String {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    save(&mut file, format, std::slice::from_ref(image), store).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn skopeo_inspects_our_docker_archive() {
    let Some(mut cmd) = skopeo() else { return };
    let mut store = MemStore::new();
    let (image, diff_ids) = test_image(&mut store);
    let dir = tempfile::tempdir().unwrap();
    let path = save_to(dir.path(), "img.tar", Format::Docker, &image, &store);
    cmd.args(["inspect", &format!("docker-archive:{path}")]);
    let info: Value = serde_json::from_str(&run(cmd)).unwrap();
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    let layers: Vec<&str> = info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let expected: Vec<String> = diff_ids.iter().map(Digest::to_string).collect();
    assert_eq!(layers, expected);
}

#[test]
fn skopeo_copies_our_archives_and_we_load_its_output() {
    let Some(_) = skopeo() else { return };
    let mut store = MemStore::new();
    let (image, _) = test_image(&mut store);
    let config_digest = Digest::sha256_of(&image.config);
    let dir = tempfile::tempdir().unwrap();

    // Ours (docker-archive) → skopeo → OCI archive → ours.
    let ours = save_to(
        dir.path(),
        "ours-docker.tar",
        Format::Docker,
        &image,
        &store,
    );
    let copied = dir.path().join("copied-oci.tar");
    let mut cmd = skopeo().unwrap();
    cmd.args([
        "copy",
        "--quiet",
        &format!("docker-archive:{ours}"),
        &format!("oci-archive:{}:example.com/copied:2", copied.display()),
    ]);
    run(cmd);
    let mut dst = MemStore::new();
    let loaded = load(&copied, &mut dst).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names[0].to_string(), "example.com/copied:2");
    let config = dst.json(&loaded[0].config);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::from_slice::<Value>(&image.config).unwrap()["rootfs"]["diff_ids"]
    );

    // Ours (OCI archive) → skopeo → docker-archive → ours: the config survives byte for byte.
    let ours = save_to(dir.path(), "ours-oci.tar", Format::Oci, &image, &store);
    let copied = dir.path().join("copied-docker.tar");
    let mut cmd = skopeo().unwrap();
    cmd.args([
        "copy",
        "--quiet",
        &format!("oci-archive:{ours}"),
        &format!("docker-archive:{}:example.com/copied:3", copied.display()),
    ]);
    run(cmd);
    let mut dst = MemStore::new();
    let loaded = load(&copied, &mut dst).unwrap();
    assert_eq!(loaded[0].config, config_digest);
    assert_eq!(loaded[0].names[0].to_string(), "example.com/copied:3");
}
