//! The image index: commit, lookup, tag, rmi, prune, disk usage, layout version.

mod common;

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, SystemTime};

use berth_store::{NewImage, Store, StoreError, UnpackOptions};
use berth_types::{Digest, ImageRef};
use common::{env, gzip, rootless, tar, Env, E};

struct Built {
    new: NewImage,
    id: Digest,
    blobs: Vec<Digest>,
    diff_ids: Vec<Digest>,
}

fn r(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

/// Stores a one-layer image whose file content is `content`; `unpack` unpacks its layer.
fn build(env: &Env, content: &str, names: &[&str], unpack: bool) -> Built {
    let t = tar(&[E::File("data", content.as_bytes(), 0o644)]);
    let blob = env.store.put_blob(&gzip(&t)).unwrap();
    let diff_id = Digest::sha256_of(&t);
    if unpack {
        env.store
            .unpack_layer(&blob, &diff_id, &rootless())
            .unwrap();
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z","config":{{"Env":["C={content}"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let id = env.store.put_blob(config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{id}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{blob}","size":{}}}]}}"#,
        config.len(),
        env.store.blob_size(&blob).unwrap()
    );
    let m = env.store.put_blob(manifest.as_bytes()).unwrap();
    let refs: Vec<ImageRef> = names.iter().map(|n| r(n)).collect();
    let new = NewImage {
        manifest: m.clone(),
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        index: None,
        config: id.clone(),
        repo_digest_names: refs.iter().map(|n| n.with_digest(m.clone())).collect(),
        names: refs,
    };
    Built {
        new,
        id,
        blobs: vec![m, blob],
        diff_ids: vec![diff_id],
    }
}

fn commit(env: &Env, content: &str, names: &[&str]) -> Built {
    let b = build(env, content, names, true);
    env.store.commit_image(&b.new).unwrap();
    b
}

fn add_container(env: &Env, id: &str, image: &Digest) {
    let dir = env.store.paths().containers_dir().join(id);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("config.json"), format!(r#"{{"Image":"{image}"}}"#)).unwrap();
}

#[test]
fn commit_and_lookup_by_every_form() {
    let env = env();
    let b = commit(&env, "one", &["alpine"]);
    let rec = env.store.lookup("alpine").unwrap();
    assert_eq!(rec.id, b.id);
    assert_eq!(rec.repo_tags, [r("docker.io/library/alpine:latest")]);
    assert_eq!(
        rec.repo_digests,
        [r("alpine").with_digest(b.new.manifest.clone())]
    );
    assert_eq!(rec.layers, b.diff_ids);
    assert_eq!(rec.created, "2024-01-02T03:04:05Z");
    assert!(rec.added > 0);
    for s in [
        "alpine:latest",
        "docker.io/library/alpine",
        "library/alpine:latest",
        &b.id.to_string(),
        b.id.hex(),
        &b.id.hex()[..4],
        &b.id.hex()[..12],
        &format!("sha256:{}", &b.id.hex()[..8]),
        &format!("alpine@{}", b.new.manifest),
    ] {
        assert_eq!(env.store.lookup(s).unwrap().id, b.id, "{s}");
    }
    for s in ["alpine:3", &b.id.hex()[..3], "busybox"] {
        match env.store.lookup(s) {
            Err(StoreError::ImageNotFound(x)) => assert_eq!(x, s),
            other => panic!("{s}: {other:?}"),
        }
    }
    assert_eq!(env.store.images().unwrap().len(), 1);
    assert_eq!(env.store.config(&rec).unwrap().os().to_string(), "linux");
    assert_eq!(env.store.manifest(&rec).unwrap().layers().len(), 1);
}

#[test]
fn ambiguous_prefix() {
    let env = env();
    let mut seen: HashMap<String, String> = HashMap::new();
    let (a, b) = (0..)
        .find_map(|i| {
            let content = format!("c{i}");
            let built = build(&env, &content, &[], false);
            let p = built.id.hex()[..4].to_string();
            seen.insert(p, content.clone()).map(|prev| (prev, content))
        })
        .unwrap();
    let ba = commit(&env, &a, &["a"]);
    commit(&env, &b, &["b"]);
    let prefix = &ba.id.hex()[..4];
    assert!(matches!(
        env.store.lookup(prefix),
        Err(StoreError::AmbiguousId { count: 2, .. })
    ));
    assert_eq!(env.store.lookup(&ba.id.hex()[..12]).unwrap().id, ba.id);
}

#[test]
fn names_move_and_leave_dangling_images() {
    let env = env();
    let old = commit(&env, "old", &["app:1", "app:latest"]);
    let new = commit(&env, "new", &["app:latest"]);
    assert_eq!(env.store.lookup("app").unwrap().id, new.id);
    assert_eq!(env.store.lookup("app:1").unwrap().repo_tags, [r("app:1")]);
    let third = commit(&env, "third", &["app:1"]);
    let images = env.store.images().unwrap();
    let old_rec = images.iter().find(|i| i.id == old.id).unwrap();
    assert!(old_rec.is_dangling());
    env.store.tag(&third.id, &r("other/name:v2")).unwrap();
    assert_eq!(env.store.lookup("other/name:v2").unwrap().id, third.id);
    env.store.tag(&third.id, &r("app:latest")).unwrap();
    assert_eq!(env.store.lookup("app").unwrap().id, third.id);
    assert!(env.store.lookup(&new.id.to_string()).unwrap().is_dangling());
    let missing = Digest::sha256_of(b"none");
    assert!(matches!(
        env.store.tag(&missing, &r("x")),
        Err(StoreError::ImageNotFound(_))
    ));
    // Committing the same config again merges into one record.
    env.store.commit_image(&third.new).unwrap();
    assert_eq!(env.store.images().unwrap().len(), 3);
}

#[test]
fn commit_requires_content() {
    let env = env();
    let b = build(&env, "x", &["x"], false);
    fs::remove_file(env.store.blob_path(&b.blobs[1])).unwrap();
    match env.store.commit_image(&b.new) {
        Err(StoreError::BlobNotFound(d)) => assert_eq!(d, b.blobs[1]),
        other => panic!("{other:?}"),
    }
    let mut wrong = b.new.clone();
    wrong.config = Digest::sha256_of(b"{}");
    env.store.put_blob(b"{}").unwrap();
    assert!(matches!(
        env.store.commit_image(&wrong),
        Err(StoreError::InvalidContent {
            what: "manifest",
            ..
        })
    ));
    assert!(env.store.images().unwrap().is_empty());
}

#[test]
fn rmi_semantics() {
    let env = env();
    let b = commit(&env, "img", &["app:1", "app:2"]);
    // One of several tags: untag only.
    let rep = env.store.remove("app:1", false).unwrap();
    assert_eq!(rep.untagged, [r("app:1")]);
    assert!(rep.deleted.is_empty());
    assert!(env.store.has_layer(&b.diff_ids[0]));
    // By id with tags in two repositories: must force.
    env.store.tag(&b.id, &r("other:1")).unwrap();
    assert!(matches!(
        env.store.remove(b.id.short(), false),
        Err(StoreError::MustForce { .. })
    ));
    env.store.remove("other:1", false).unwrap();
    // Used by a container: refused, naming the container.
    add_container(&env, "c0ffee", &b.id);
    let err = env.store.remove("app:2", false).unwrap_err();
    assert!(err.to_string().contains("c0ffee"), "{err}");
    assert_eq!(env.store.lookup("app:2").unwrap().id, b.id);
    // Forced: the record goes, but the container keeps its config and layers.
    let rep = env.store.remove("app:2", true).unwrap();
    assert_eq!(rep.deleted, std::slice::from_ref(&b.id));
    assert!(rep.untagged.contains(&r("app:2")));
    assert!(env.store.images().unwrap().is_empty());
    assert!(env.store.has_blob(&b.id));
    assert!(env.store.has_layer(&b.diff_ids[0]));
    assert!(!env.store.has_blob(&b.blobs[0]), "manifest kept");
    // Container gone: the next GC takes the rest.
    fs::remove_dir_all(env.store.paths().containers_dir().join("c0ffee")).unwrap();
    assert!(env.store.prune(false).unwrap().space_reclaimed > 0);
    assert!(!env.store.has_blob(&b.id));
    assert!(!env.store.has_layer(&b.diff_ids[0]));
}

#[test]
fn rmi_last_tag_deletes_and_collects() {
    let env = env();
    let keep = commit(&env, "keep", &["keep"]);
    let b = commit(&env, "gone", &["gone"]);
    let rep = env.store.remove("gone", false).unwrap();
    assert_eq!(rep.deleted, std::slice::from_ref(&b.id));
    assert_eq!(rep.untagged.len(), 2, "tag and repo digest");
    for d in b.blobs.iter().chain([&b.id]) {
        assert!(!env.store.has_blob(d), "{d}");
    }
    assert!(!env.store.has_layer(&b.diff_ids[0]));
    assert!(!env.store.paths().layer_record(&b.diff_ids[0]).exists());
    assert!(env.store.has_layer(&keep.diff_ids[0]));
    assert!(env.store.has_blob(&keep.blobs[1]));
    assert!(matches!(
        env.store.remove("gone", false),
        Err(StoreError::ImageNotFound(_))
    ));
}

#[test]
fn prune_dangling_all_and_stale_temps() {
    let env = env();
    let dangling = commit(&env, "d", &["x"]);
    let used = commit(&env, "u", &["x"]);
    let unused = commit(&env, "n", &["y"]);
    add_container(&env, "ctr", &used.id);
    let tmp = env.store.paths().tmp_dir();
    let old = tmp.join("write-1-2-3");
    fs::write(&old, b"stale").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let fresh = tmp.join("write-4-5-6");
    fs::write(&fresh, b"in use").unwrap();

    let du = env.store.disk_usage().unwrap();
    assert_eq!((du.images, du.active_images, du.containers), (3, 1, 1));
    assert_eq!(du.layers, 3);
    assert_eq!(du.images_size, 3);
    assert_eq!(du.reclaimable, 2);
    assert!(du.blobs >= 9);

    let rep = env.store.prune(false).unwrap();
    assert_eq!(rep.images_deleted, std::slice::from_ref(&dangling.id));
    assert!(rep.space_reclaimed > 0);
    assert!(!env.store.has_layer(&dangling.diff_ids[0]));
    assert!(!old.exists());
    assert!(fresh.exists());

    let rep = env.store.prune(true).unwrap();
    assert_eq!(rep.images_deleted, std::slice::from_ref(&unused.id));
    assert_eq!(env.store.images().unwrap().len(), 1);
    assert!(env.store.has_layer(&used.diff_ids[0]));
}

#[test]
fn image_size_prefers_unpacked_layers() {
    let env = env();
    let packed = build(&env, "compressed only", &["p"], false);
    env.store.commit_image(&packed.new).unwrap();
    let rec = env.store.lookup("p").unwrap();
    assert_eq!(
        env.store.image_size(&rec).unwrap(),
        env.store.blob_size(&packed.blobs[1]).unwrap()
    );
    env.store
        .unpack_layer(&packed.blobs[1], &packed.diff_ids[0], &rootless())
        .unwrap();
    assert_eq!(
        env.store.image_size(&rec).unwrap(),
        "compressed only".len() as u64
    );
}

#[test]
fn gc_waits_for_writers() {
    let env = env();
    let orphan = env.store.put_blob(b"not yet referenced").unwrap();
    let guard = env.store.hold_gc().unwrap();
    env.store.prune(false).unwrap();
    assert!(env.store.has_blob(&orphan));
    drop(guard);
    env.store.prune(false).unwrap();
    assert!(!env.store.has_blob(&orphan));
}

#[test]
fn layout_version_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    Store::open(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("layout.json")).unwrap(),
        r#"{"version":1}"#
    );
    fs::write(root.join("layout.json"), r#"{"version":2}"#).unwrap();
    let err = Store::open(&root).unwrap_err();
    assert!(matches!(err, StoreError::LayoutTooNew { found: 2, .. }));
    assert!(err
        .to_string()
        .contains(&root.join("layout.json").display().to_string()));
    fs::write(root.join("layout.json"), "garbage").unwrap();
    assert!(matches!(
        Store::open(&root),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn default_root_follows_xdg() {
    let root = Store::default_root();
    if rustix::process::geteuid().is_root() {
        assert_eq!(root, std::path::Path::new("/var/lib/berth"));
    } else {
        assert!(root.ends_with("berth"));
    }
}

#[test]
fn gc_removes_unreferenced_read_only_layers() {
    let env = env();
    let t = tar(&[
        E::Dir("ro/", 0o555),
        E::Dir("ro/sub/", 0o500),
        E::File("ro/sub/f", b"f", 0o400),
    ]);
    let blob = env.store.put_blob(&gzip(&t)).unwrap();
    let diff_id = Digest::sha256_of(&t);
    env.store
        .unpack_layer(&blob, &diff_id, &UnpackOptions::default())
        .unwrap();
    assert!(env.store.has_layer(&diff_id));
    let rep = env.store.prune(false).unwrap();
    assert!(rep.space_reclaimed >= 1);
    assert!(!env.store.has_layer(&diff_id));
    assert!(!env.store.has_blob(&blob));
    assert_eq!(
        fs::read_dir(env.store.paths().layers_dir())
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(env.store.paths().tmp_dir()).unwrap().count(),
        0
    );
}
