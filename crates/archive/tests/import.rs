//! `import_rootfs`: digests, config and manifest of the image it builds.

mod common;

use berth_archive::{import_rootfs, ArchiveError, ImportOptions};
use berth_types::{Digest, ImageRef};
use common::*;

fn options(changes: &[&str]) -> ImportOptions {
    ImportOptions {
        names: vec![ImageRef::parse("example.com/imported:1").unwrap()],
        architecture: "arm64".into(),
        os: "linux".into(),
        changes: changes.iter().map(|s| s.to_string()).collect(),
        message: Some("from a tarball".into()),
        created: Some("2024-01-02T03:04:05Z".into()),
    }
}

#[test]
fn import_builds_a_one_layer_oci_image() {
    let rootfs = layer_tar(&[("bin/busybox", b"\x7fELF..."), ("etc/hostname", b"box\n")]);
    let diff_id = Digest::sha256_of(&rootfs);
    let mut store = MemStore::new();
    let img = import_rootfs(
        &mut &rootfs[..],
        &options(&["CMD [\"/bin/sh\"]", "ENV PATH=/bin"]),
        &mut store,
    )
    .unwrap();
    assert_eq!(
        img.manifest_media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(img.names[0].to_string(), "example.com/imported:1");
    assert_eq!(store.images, vec![img.clone()]);

    let manifest = store.json(&img.manifest_digest);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], img.manifest_media_type);
    assert_eq!(manifest["config"]["digest"], img.config.to_string());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let blob_digest: Digest = layer["digest"].as_str().unwrap().parse().unwrap();
    let blob = store.get(&blob_digest);
    assert_eq!(Digest::sha256_of(blob), blob_digest);
    assert_eq!(layer["size"], blob.len());
    assert_eq!(
        gunzip(blob),
        rootfs,
        "the layer is the input, gzip-compressed"
    );

    let config = store.json(&img.config);
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["created"], "2024-01-02T03:04:05Z");
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.to_string());
    assert_eq!(config["history"][0]["created_by"], "berth import");
    assert_eq!(config["history"][0]["comment"], "from a tarball");
    assert_eq!(config["config"]["Cmd"][0], "/bin/sh");
    assert_eq!(config["config"]["Env"][0], "PATH=/bin");
}

#[test]
fn compressed_input_gives_the_same_image() {
    let rootfs = layer_tar(&[("a", b"1")]);
    let mut ids = Vec::new();
    for input in [
        rootfs.clone(),
        gzip(&rootfs),
        zstd::encode_all(&rootfs[..], 3).unwrap(),
    ] {
        let mut store = MemStore::new();
        let img = import_rootfs(&mut &input[..], &options(&[]), &mut store).unwrap();
        let config = store.json(&img.config);
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            Digest::sha256_of(&rootfs).to_string()
        );
        ids.push(img.manifest_digest);
    }
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "same content, same created time, same image: {ids:?}"
    );
}

#[test]
fn bad_change_line_is_named() {
    let rootfs = layer_tar(&[("a", b"1")]);
    let mut store = MemStore::new();
    let err = import_rootfs(&mut &rootfs[..], &options(&["RUN rm -rf /"]), &mut store).unwrap_err();
    assert!(matches!(err, ArchiveError::Change { .. }), "{err}");
    assert!(err.to_string().contains("RUN rm -rf /"), "{err}");
    assert!(
        store.blobs.is_empty(),
        "nothing stored before the changes are checked"
    );
}

#[test]
fn non_tar_input_is_refused() {
    let mut store = MemStore::new();
    let junk = vec![b'x'; 4096];
    let err = import_rootfs(&mut &junk[..], &options(&[]), &mut store).unwrap_err();
    assert!(err.to_string().contains("not a tar archive"), "{err}");
    assert!(store.images.is_empty());
}
