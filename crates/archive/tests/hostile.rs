//! Archives that lie: hostile names, wrong content, missing members.

mod common;

use berth_archive::{load, save, ArchiveError, Format};
use berth_types::Digest;
use common::*;
use serde_json::json;
use tar::EntryType::{Regular, Symlink};

fn load_raw(members: &[(&str, tar::EntryType, &str, &[u8])]) -> ArchiveError {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "bad.tar", &raw_tar(members));
    let mut store = MemStore::new();
    let err = load(&path, &mut store).unwrap_err();
    assert!(store.images.is_empty(), "nothing recorded on failure");
    err
}

fn docker_manifest(config: &str, layers: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!([{"Config": config, "RepoTags": ["x:1"], "Layers": layers}])).unwrap()
}

#[test]
fn refused_entry_names_are_refused() {
    for name in ["../evil", "a/../../evil", "/etc/passwd"] {
        let err = load_raw(&[
            (name, Regular, "", b"x"),
            ("manifest.json", Regular, "", b"[]"),
        ]);
        let msg = err.to_string();
        assert!(
            matches!(err, ArchiveError::UnsafeEntry { .. }),
            "{name}: {msg}"
        );
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn escaping_links_are_refused() {
    let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
    for target in ["../../etc/passwd", "/etc/passwd"] {
        let manifest = docker_manifest("c.json", &["l/layer.tar"]);
        let err = load_raw(&[
            ("c.json", Regular, "", config),
            ("l/layer.tar", Symlink, target, b""),
            ("manifest.json", Regular, "", &manifest),
        ]);
        let msg = err.to_string();
        assert!(matches!(err, ArchiveError::UnsafeEntry { .. }), "{msg}");
        assert!(msg.contains("l/layer.tar"), "{msg}");
    }
    // A reference in manifest.json itself may not climb out either.
    let manifest = docker_manifest("../c.json", &[]);
    let err = load_raw(&[("manifest.json", Regular, "", &manifest)]);
    assert!(matches!(err, ArchiveError::UnsafeEntry { .. }), "{err}");
}

#[test]
fn link_cycles_end() {
    let manifest = docker_manifest("a", &[]);
    let err = load_raw(&[
        ("a", Symlink, "b", b""),
        ("b", Symlink, "a", b""),
        ("manifest.json", Regular, "", &manifest),
    ]);
    assert!(err.to_string().contains("links"), "{err}");
}

#[test]
fn missing_member_is_named() {
    let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
    let manifest = docker_manifest("c.json", &["gone/layer.tar"]);
    let err = load_raw(&[
        ("c.json", Regular, "", config),
        ("manifest.json", Regular, "", &manifest),
    ]);
    let msg = err.to_string();
    assert!(matches!(err, ArchiveError::Missing { .. }), "{msg}");
    assert!(
        msg.contains("gone/layer.tar") && msg.contains("manifest.json"),
        "{msg}"
    );
}

#[test]
fn docker_layer_with_wrong_diff_id_is_reported_with_both_digests() {
    let layer = layer_tar(&[("f", b"real")]);
    let claimed = Digest::sha256_of(b"something else");
    let config = serde_json::to_vec(
        &json!({"rootfs": {"type": "layers", "diff_ids": [claimed.to_string()]}}),
    )
    .unwrap();
    let manifest = docker_manifest("c.json", &["l/layer.tar"]);
    for trusting in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            "bad.tar",
            &raw_tar(&[
                ("c.json", Regular, "", &config),
                ("l/layer.tar", Regular, "", &layer),
                ("manifest.json", Regular, "", &manifest),
            ]),
        );
        let mut store = MemStore {
            trusting,
            ..Default::default()
        };
        let err = load(&path, &mut store).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{msg}");
        assert!(msg.contains(&claimed.to_string()), "{msg}");
        assert!(
            msg.contains(&Digest::sha256_of(&layer).to_string()),
            "{msg}"
        );
        assert!(msg.contains("l/layer.tar"), "{msg}");
        assert!(store.images.is_empty());
    }
}

#[test]
fn oci_blob_with_wrong_content_is_reported_with_both_digests() {
    let mut src = MemStore::new();
    let layer = add_layer(&mut src, &layer_tar(&[("f", b"x")]), true);
    let layer_digest = layer.digest.clone();
    let image = make_image(&mut src, &[layer], &["x:1"]);
    let mut out = Vec::new();
    save(&mut out, Format::Oci, &[image], &src).unwrap();

    // Same length, other bytes: only the digest can tell.
    let mut files = members(&out);
    let name = format!("blobs/sha256/{}", layer_digest.hex());
    let blob = files.get_mut(&name).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0xff;
    let tampered = Digest::sha256_of(blob);
    let raw: Vec<(&str, tar::EntryType, &str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), Regular, "", &d[..]))
        .collect();
    for trusting in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "bad.tar", &raw_tar(&raw));
        let mut store = MemStore {
            trusting,
            ..Default::default()
        };
        let err = load(&path, &mut store).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{msg}");
        assert!(
            msg.contains(&format!("expected {layer_digest}"))
                && msg.contains(&format!("actual {tampered}")),
            "{msg}"
        );
        assert!(msg.contains(&name) && msg.contains("bad.tar"), "{msg}");
    }
}

#[test]
fn save_refuses_a_store_blob_with_wrong_content() {
    let mut src = MemStore::new();
    let layer = add_layer(&mut src, &layer_tar(&[("f", b"x")]), false);
    let digest = layer.digest.clone();
    let image = make_image(&mut src, &[layer], &["x:1"]);
    let blob = src.blobs.get_mut(&digest).unwrap();
    blob[0] ^= 1;
    let actual = Digest::sha256_of(blob);
    for format in [Format::Oci, Format::Docker] {
        let err = save(&mut Vec::new(), format, std::slice::from_ref(&image), &src).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{msg}");
        assert!(
            msg.contains(&digest.to_string()) && msg.contains(&actual.to_string()),
            "{msg}"
        );
    }
}

#[test]
fn not_an_archive() {
    let err = load_raw(&[("hello.txt", Regular, "", b"hi")]);
    assert!(matches!(err, ArchiveError::UnknownFormat { .. }), "{err}");
}
