//! The client against a real `docker-registry` (CNCF distribution) on 127.0.0.1.

mod support;

use std::io::Read;

use berth_registry::credentials::{Credential, DockerConfig};
use berth_registry::{
    Client, RegistryError, RegistryOptions, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};
use berth_types::{Digest, DigestWriter, ImageRef, Platform};
use support::{push_bytes, Noise, Registry};

const LAYER_SIZE: u64 = 5 * 1024 * 1024 + 123;

/// Pushes a config blob and a manifest for `layers` (digest, size) under `image`.
fn push_image(
    client: &Client,
    image: &ImageRef,
    arch: &str,
    layers: &[(Digest, u64)],
    media_type: &str,
) -> (Digest, Vec<u8>) {
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{}}}}"#
    );
    let config_digest = push_bytes(client, image, config.as_bytes());
    let (config_type, layer_type) = if media_type == DOCKER_MANIFEST {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| format!(r#"{{"mediaType":"{layer_type}","digest":"{d}","size":{s}}}"#))
        .collect();
    // Odd spacing on purpose: the bytes must reach the registry exactly as written.
    let manifest = format!(
        r#"{{"schemaVersion":2,  "mediaType":"{media_type}","config":{{"mediaType":"{config_type}","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layers.join(",")
    );
    // A manifest pushed with a digest reference (no tag) goes under that digest.
    let target = if image.tag().is_none() {
        image.with_digest(Digest::sha256_of(manifest.as_bytes()))
    } else {
        image.clone()
    };
    let digest = client
        .put_manifest(&target, media_type, manifest.as_bytes())
        .unwrap();
    assert_eq!(digest, Digest::sha256_of(manifest.as_bytes()));
    (digest, manifest.into_bytes())
}

fn read_all(mut r: impl Read) -> (Digest, u64) {
    let mut w = DigestWriter::sha256();
    let n = std::io::copy(&mut r, &mut w).unwrap();
    (w.finish(), n)
}

#[test]
fn push_pull_range_and_mount() {
    let reg = Registry::start();
    let client = reg.client(None);
    let image = reg.image("team/app:v1");
    let layer = Noise::digest(7, LAYER_SIZE);

    assert!(!client.blob_exists(&image, &layer).unwrap());
    client
        .push_blob(
            &image,
            &layer,
            LAYER_SIZE,
            Box::new(Noise::new(7, LAYER_SIZE)),
        )
        .unwrap();
    assert!(client.blob_exists(&image, &layer).unwrap());

    // Whole blob.
    let s = client.blob(&image, &layer, 0).unwrap();
    assert_eq!((s.start, s.total), (0, Some(LAYER_SIZE)));
    assert_eq!(read_all(s), (layer.clone(), LAYER_SIZE));

    // Resumed from an offset: the tail matches the generator's tail.
    let offset = 3 * 1024 * 1024 + 5;
    let s = client.blob(&image, &layer, offset).unwrap();
    assert_eq!(s.start, offset);
    assert_eq!(s.total, Some(LAYER_SIZE));
    let mut head = Noise::new(7, offset);
    let mut w = DigestWriter::sha256();
    std::io::copy(&mut head, &mut w).unwrap();
    let n = std::io::copy(&mut { s }, &mut w).unwrap();
    assert_eq!(n, LAYER_SIZE - offset);
    assert_eq!(w.finish(), layer);

    // Manifest by tag and by digest.
    let (mdigest, mbytes) = push_image(
        &client,
        &image,
        "amd64",
        &[(layer.clone(), LAYER_SIZE)],
        OCI_MANIFEST,
    );
    let host = Platform::host();
    let by_tag = client.resolve(&image, &host).unwrap();
    assert!(by_tag.index.is_none());
    assert_eq!(by_tag.manifest.digest, mdigest);
    assert_eq!(by_tag.manifest.bytes, mbytes);
    assert_eq!(by_tag.manifest.media_type, OCI_MANIFEST);
    assert_eq!(
        by_tag.parsed.layers()[0].digest().to_string(),
        layer.to_string()
    );
    let by_digest = client
        .resolve(&image.with_digest(mdigest.clone()), &host)
        .unwrap();
    assert_eq!(by_digest.manifest.bytes, mbytes);

    // Cross-repository mount, and a mount the registry cannot do.
    let other = reg.image("other/app:v1");
    assert!(!client.blob_exists(&other, &layer).unwrap());
    assert!(client.mount_blob(&other, &layer, "team/app").unwrap());
    assert!(client.blob_exists(&other, &layer).unwrap());
    let third = reg.image("third/app:v1");
    assert!(!client.mount_blob(&third, &layer, "nowhere/repo").unwrap());
    assert!(!client.blob_exists(&third, &layer).unwrap());

    // Past the end: the stream starts over from 0 instead of failing.
    let s = client.blob(&image, &layer, LAYER_SIZE).unwrap();
    assert_eq!(s.start, 0);
}

#[test]
fn index_with_two_platforms() {
    let reg = Registry::start();
    let client = reg.client(None);
    let image = reg.image("multi:latest");
    let la = push_bytes(&client, &image, b"amd64 layer");
    let lb = push_bytes(&client, &image, b"arm64 layer");
    // Pushed by digest only: the index is what names it.
    let untagged = image.with_digest(Digest::sha256_of(b"placeholder"));
    let (ma, _) = push_image(&client, &untagged, "amd64", &[(la, 11)], OCI_MANIFEST);
    let (mb, _) = push_image(
        &client,
        &image.with_tag("arm"),
        "arm64",
        &[(lb, 11)],
        DOCKER_MANIFEST,
    );
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
{{"mediaType":"{OCI_MANIFEST}","digest":"{ma}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}},
{{"mediaType":"{DOCKER_MANIFEST}","digest":"{mb}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#
    );
    let idigest = client
        .put_manifest(&image, OCI_INDEX, index.as_bytes())
        .unwrap();

    let arm = client
        .resolve(&image, &"linux/arm64".parse().unwrap())
        .unwrap();
    let idx = arm.index.expect("the tag names an index");
    assert_eq!(idx.digest, idigest);
    assert_eq!(idx.media_type, OCI_INDEX);
    assert_eq!(arm.manifest.digest, mb);
    assert_eq!(arm.manifest.media_type, DOCKER_MANIFEST);
    let amd = client
        .resolve(&image, &"linux/amd64".parse().unwrap())
        .unwrap();
    assert_eq!(amd.manifest.digest, ma);

    match client.resolve(&image, &"linux/s390x".parse().unwrap()) {
        Err(RegistryError::NoPlatform { available, .. }) => {
            assert_eq!(available, vec!["linux/amd64", "linux/arm64/v8"])
        }
        other => panic!("expected NoPlatform, got {other:?}"),
    }
}

#[test]
fn errors_name_their_input() {
    let reg = Registry::start();
    let client = reg.client(None);
    let missing = reg.image("nothing/here:v9");
    match client.resolve(&missing, &Platform::host()) {
        Err(RegistryError::NotFound { reference }) => {
            assert!(reference.contains("nothing/here:v9"))
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let d = Digest::sha256_of(b"absent");
    assert!(matches!(
        client.blob(&missing, &d, 0),
        Err(RegistryError::NotFound { .. })
    ));

    // Content that does not match its digest is refused by the registry.
    let err = client
        .push_blob(
            &missing,
            &d,
            5,
            Box::new(std::io::Cursor::new(b"wrong".to_vec())),
        )
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().to_lowercase().contains("digest"), "{err}");

    // A manifest pushed under its digest must have that digest.
    let bad = missing.with_digest(d.clone());
    assert!(matches!(
        client.put_manifest(&bad, OCI_MANIFEST, b"{}"),
        Err(RegistryError::DigestMismatch { .. })
    ));

    // Nothing listens on the port of a stopped registry.
    let addr = reg.addr.clone();
    drop(reg);
    let c = Client::new(RegistryOptions {
        insecure: vec![addr.clone()],
        ..RegistryOptions::default()
    })
    .unwrap();
    let img = ImageRef::parse(&format!("{addr}/x:y")).unwrap();
    match c.resolve(&img, &Platform::host()) {
        Err(e @ RegistryError::Unreachable { .. }) => assert!(e.to_string().contains(&addr)),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[test]
fn basic_auth() {
    let reg = Registry::start_basic("user", "pass");
    let anonymous = reg.client(None);
    let image = reg.image("private/app:v1");

    anonymous.check_login(&reg.addr, "user", "pass").unwrap();
    match anonymous.check_login(&reg.addr, "user", "wrong") {
        Err(RegistryError::Unauthorized { registry, .. }) => assert_eq!(registry, reg.addr),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    match anonymous.blob_exists(&image, &Digest::sha256_of(b"x")) {
        Err(RegistryError::Unauthorized {
            registry,
            repository,
        }) => {
            assert_eq!(
                (registry.as_str(), repository.as_str()),
                (reg.addr.as_str(), "private/app")
            )
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }

    // Credentials saved as `berth login` would, then used for a push and a pull.
    let config_path = reg.dir.path().join("docker").join("config.json");
    let mut cfg = DockerConfig::load(&config_path).unwrap();
    let cred = Credential {
        username: "user".into(),
        password: "pass".into(),
    };
    cfg.set(&reg.addr, &cred).unwrap();
    cfg.save(&config_path).unwrap();
    let client = reg.client(Some(config_path.clone()));
    let layer = push_bytes(&client, &image, b"secret layer");
    let (digest, _) = push_image(&client, &image, "amd64", &[(layer, 12)], OCI_MANIFEST);
    assert_eq!(
        client
            .resolve(&image, &Platform::host())
            .unwrap()
            .manifest
            .digest,
        digest
    );

    // A stale password is refused with the registry and repository named.
    let mut cfg = DockerConfig::load(&config_path).unwrap();
    cfg.set(
        &reg.addr,
        &Credential {
            username: "user".into(),
            password: "old".into(),
        },
    )
    .unwrap();
    cfg.save(&config_path).unwrap();
    let stale = reg.client(Some(config_path));
    let err = stale.resolve(&image, &Platform::host()).unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("private/app") && err.to_string().contains(&reg.addr));
}

#[test]
fn mirror_is_tried_first_and_falls_back() {
    let origin = Registry::start();
    let mirror = Registry::start();
    let oc = origin.client(None);
    let mc = mirror.client(None);
    let in_origin = origin.image("lib/only-origin:v1");
    let l1 = push_bytes(&oc, &in_origin, b"origin layer");
    let (d1, _) = push_image(&oc, &in_origin, "amd64", &[(l1, 12)], OCI_MANIFEST);
    // The mirror holds the same name with different content, so the source is visible.
    let in_mirror = mirror.image("lib/only-origin:v1");
    let l2 = push_bytes(&mc, &in_mirror, b"mirror layer");
    let (d2, _) = push_image(&mc, &in_mirror, "amd64", &[(l2.clone(), 12)], OCI_MANIFEST);
    let missing_in_mirror = origin.image("lib/second:v1");
    push_image(&oc, &missing_in_mirror, "amd64", &[], OCI_MANIFEST);

    let client = Client::new(RegistryOptions {
        insecure: vec![origin.addr.clone(), mirror.addr.clone()],
        mirrors: [(origin.addr.clone(), vec![mirror.addr.clone()])]
            .into_iter()
            .collect(),
        docker_config: Some(origin.dir.path().join("none.json")),
        ..RegistryOptions::default()
    })
    .unwrap();
    let host = Platform::host();
    assert_eq!(
        client.resolve(&in_origin, &host).unwrap().manifest.digest,
        d2
    );
    assert_ne!(d1, d2);
    assert!(client.resolve(&missing_in_mirror, &host).is_ok());
    let (got, _) = read_all(client.blob(&in_origin, &l2, 0).unwrap());
    assert_eq!(got, l2);
}
