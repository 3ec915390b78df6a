//! save → load for both formats, and the layouts they write.

mod common;

use berth_archive::{load, save, Format};
use berth_types::{Digest, ImageRef};
use common::*;
use serde_json::{json, Value};

fn two_layer_image(store: &mut MemStore, compress: bool) -> berth_archive::SaveImage {
    let base = add_layer(
        store,
        &layer_tar(&[("etc/os-release", b"ID=test\n")]),
        compress,
    );
    let top = add_layer(store, &layer_tar(&[("app/run.sh", b"echo hi\n")]), compress);
    make_image(
        store,
        &[base, top],
        &["alpine:latest", "example.com:5000/team/app:v1"],
    )
}

#[test]
fn oci_round_trip_keeps_manifest_digest() {
    let mut src = MemStore::new();
    let image = two_layer_image(&mut src, true);
    let mut out = Vec::new();
    save(&mut out, Format::Oci, std::slice::from_ref(&image), &src).unwrap();

    let files = members(&out);
    let layout: Value = serde_json::from_slice(&files["oci-layout"]).unwrap();
    assert_eq!(layout, json!({"imageLayoutVersion": "1.0.0"}));
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "one index entry per name");
    assert_eq!(entries[0]["digest"], image.manifest_digest.to_string());
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert_eq!(
        entries[0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/alpine:latest"
    );
    for (d, data) in &src.blobs {
        assert_eq!(
            &files[&format!("blobs/sha256/{}", d.hex())],
            data,
            "blob {d} copied as is"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "img.tar", &out);
    let mut dst = MemStore::new();
    let loaded = load(&path, &mut dst).unwrap();
    assert_eq!(loaded.len(), 1);
    let img = &loaded[0];
    assert_eq!(img.manifest_digest, image.manifest_digest);
    assert_eq!(img.manifest_media_type, image.manifest_media_type);
    assert_eq!(img.config, Digest::sha256_of(&image.config));
    assert_eq!(
        img.names,
        vec![
            ImageRef::parse("alpine").unwrap(),
            ImageRef::parse("example.com:5000/team/app:v1").unwrap()
        ]
    );
    assert_eq!(dst.images, loaded);
    assert_eq!(dst.blobs, src.blobs, "every blob arrives unchanged");
}

#[test]
fn docker_archive_layout_and_round_trip() {
    let mut src = MemStore::new();
    let image = two_layer_image(&mut src, true);
    let config: Value = serde_json::from_slice(&image.config).unwrap();
    let diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().parse().unwrap())
        .collect();
    let mut out = Vec::new();
    save(&mut out, Format::Docker, std::slice::from_ref(&image), &src).unwrap();

    let files = members(&out);
    let config_digest = Digest::sha256_of(&image.config);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layer_paths: Vec<String> = diff_ids
        .iter()
        .map(|d| format!("{}/layer.tar", d.hex()))
        .collect();
    assert_eq!(
        manifest,
        json!([{
            "Config": format!("{}.json", config_digest.hex()),
            "RepoTags": ["alpine:latest", "example.com:5000/team/app:v1"],
            "Layers": layer_paths,
        }])
    );
    assert_eq!(
        files[&format!("{}.json", config_digest.hex())],
        image.config
    );
    for (path, diff_id) in layer_paths.iter().zip(&diff_ids) {
        assert_eq!(
            Digest::sha256_of(&files[path]),
            *diff_id,
            "{path} is the uncompressed layer"
        );
    }
    let repositories: Value = serde_json::from_slice(&files["repositories"]).unwrap();
    let top = diff_ids[1].hex();
    assert_eq!(
        repositories,
        json!({"alpine": {"latest": top}, "example.com:5000/team/app": {"v1": top}})
    );

    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "img.tar", &out);
    let mut dst = MemStore::new();
    let loaded = load(&path, &mut dst).unwrap();
    assert_eq!(loaded.len(), 1);
    let img = &loaded[0];
    assert_eq!(img.config, config_digest);
    assert_eq!(dst.get(&config_digest), &image.config[..]);
    assert_eq!(
        img.manifest_media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(img.names[0].to_string(), "docker.io/library/alpine:latest");
    let built = dst.json(&img.manifest_digest);
    assert_eq!(built["schemaVersion"], 2);
    assert_eq!(built["mediaType"], img.manifest_media_type);
    assert_eq!(
        built["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(built["config"]["digest"], config_digest.to_string());
    let layers = built["layers"].as_array().unwrap();
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar"
        );
        assert_eq!(layer["digest"], diff_id.to_string());
        assert_eq!(layer["size"], dst.get(diff_id).len());
    }
}

#[test]
fn shared_layers_are_written_once() {
    let mut src = MemStore::new();
    let base = layer_tar(&[("bin/sh", b"#!")]);
    let l1 = add_layer(&mut src, &base, false);
    let l2 = add_layer(&mut src, &base, false);
    let own = add_layer(&mut src, &layer_tar(&[("x", b"x")]), false);
    let a = make_image(&mut src, &[l1], &["a:1"]);
    let b = make_image(&mut src, &[l2, own], &["b:1"]);
    for format in [Format::Docker, Format::Oci] {
        let mut out = Vec::new();
        save(&mut out, format, &[a.clone(), b.clone()], &src).unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&out[..]).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{format:?}: {names:?}");

        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "img.tar", &out);
        let mut dst = MemStore::new();
        let loaded = load(&path, &mut dst).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[1].names[0].to_string(), "docker.io/library/b:1");
    }
}

#[test]
fn compressed_archives_load() {
    let mut src = MemStore::new();
    let image = two_layer_image(&mut src, false);
    let mut out = Vec::new();
    save(&mut out, Format::Docker, std::slice::from_ref(&image), &src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz = write_file(dir.path(), "img.tar.gz", &gzip(&out));
    let zst = write_file(
        dir.path(),
        "img.tar.zst",
        &zstd::encode_all(&out[..], 3).unwrap(),
    );
    let mut first = None;
    for path in [gz, zst] {
        let mut dst = MemStore::new();
        let loaded = load(&path, &mut dst).unwrap();
        assert_eq!(loaded[0].config, Digest::sha256_of(&image.config));
        // The manifest is built from stored content, so it is the same for the same archive.
        let digest = loaded[0].manifest_digest.clone();
        assert_eq!(*first.get_or_insert(digest.clone()), digest);
    }
}

#[test]
fn docker_archive_with_gzip_layer_and_symlink() {
    // Older `docker save` links a layer shared by two images; some tools gzip layers.
    let layer = layer_tar(&[("f", b"data")]);
    let diff_id = Digest::sha256_of(&layer);
    let gz = gzip(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string(), diff_id.to_string()]},
    }))
    .unwrap();
    let config_name = format!("{}.json", Digest::sha256_of(&config).hex());
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name, "RepoTags": ["t:1"], "Layers": ["a/layer.tar", "b/layer.tar"],
    }]))
    .unwrap();
    let archive = raw_tar(&[
        ("a/layer.tar", tar::EntryType::Regular, "", &gz),
        (
            "b/layer.tar",
            tar::EntryType::Symlink,
            "../a/layer.tar",
            b"",
        ),
        (&config_name, tar::EntryType::Regular, "", &config),
        ("./manifest.json", tar::EntryType::Regular, "", &manifest),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "img.tar", &archive);
    let mut dst = MemStore::new();
    let loaded = load(&path, &mut dst).unwrap();
    let built = dst.json(&loaded[0].manifest_digest);
    let layer0 = &built["layers"][0];
    assert_eq!(
        layer0["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(layer0["digest"], Digest::sha256_of(&gz).to_string());
    assert_eq!(built["layers"][1], *layer0);
    assert_eq!(dst.get(&Digest::sha256_of(&gz)), &gz[..]);
}

#[test]
fn docker25_archive_takes_names_from_manifest_json() {
    // Docker 25 writes an OCI layout plus manifest.json; index entries may carry no name.
    let mut src = MemStore::new();
    let image = two_layer_image(&mut src, false);
    let mut members: Vec<(String, Vec<u8>)> = src
        .blobs
        .iter()
        .map(|(d, b)| (format!("blobs/sha256/{}", d.hex()), b.clone()))
        .collect();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": image.manifest_media_type,
        "digest": image.manifest_digest.to_string(),
        "size": image.manifest.len(),
    }]});
    let config_digest = Digest::sha256_of(&image.config);
    let manifest_json = json!([{
        "Config": format!("blobs/sha256/{}", config_digest.hex()),
        "RepoTags": ["busybox:1.36"],
        "Layers": [],
    }]);
    members.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    members.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    members.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest_json).unwrap(),
    ));
    let raw: Vec<(&str, tar::EntryType, &str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), tar::EntryType::Regular, "", &d[..]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "img.tar", &raw_tar(&raw));
    let mut dst = MemStore::new();
    let loaded = load(&path, &mut dst).unwrap();
    assert_eq!(loaded[0].manifest_digest, image.manifest_digest);
    assert_eq!(
        loaded[0].names,
        vec![ImageRef::parse("busybox:1.36").unwrap()]
    );
}

#[test]
fn nested_index_picks_host_platform() {
    let mut src = MemStore::new();
    let image = two_layer_image(&mut src, true);
    let other = src.add(br#"{"not":"used"}"#);
    let host = berth_types::Platform::host();
    let inner = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other.to_string(), "size": 14,
         "platform": {"os": "linux", "architecture": "s390x"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image.manifest_digest.to_string(),
         "size": image.manifest.len(), "platform": {"os": host.os, "architecture": host.architecture}},
    ]}))
    .unwrap();
    let inner_digest = src.add(&inner);
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": inner_digest.to_string(),
        "size": inner.len(), "annotations": {"org.opencontainers.image.ref.name": "example.com/multi:2"},
    }]});
    let mut members: Vec<(String, Vec<u8>)> = src
        .blobs
        .iter()
        .map(|(d, b)| (format!("blobs/sha256/{}", d.hex()), b.clone()))
        .collect();
    members.push(("index.json".into(), serde_json::to_vec(&top).unwrap()));
    members.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    let raw: Vec<(&str, tar::EntryType, &str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), tar::EntryType::Regular, "", &d[..]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "img.tar", &raw_tar(&raw));
    let mut dst = MemStore::new();
    let loaded = load(&path, &mut dst).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].manifest_digest, image.manifest_digest);
    assert_eq!(loaded[0].names[0].to_string(), "example.com/multi:2");
}

#[test]
fn bare_tag_gives_no_name() {
    let mut src = MemStore::new();
    let image = two_layer_image(&mut src, false);
    let mut members: Vec<(String, Vec<u8>)> = src
        .blobs
        .iter()
        .map(|(d, b)| (format!("blobs/sha256/{}", d.hex()), b.clone()))
        .collect();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": image.manifest_media_type, "digest": image.manifest_digest.to_string(),
        "size": image.manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }]});
    members.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    members.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    let raw: Vec<(&str, tar::EntryType, &str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), tar::EntryType::Regular, "", &d[..]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "img.tar", &raw_tar(&raw));
    let mut dst = MemStore::new();
    let loaded = load(&path, &mut dst).unwrap();
    assert!(loaded[0].names.is_empty());
}
