//! Container directories: publication, name claims, and the reuse of removed ones.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use berth_store::{ContainerRecord, Store, StoreError};
use berth_types::Digest;
use common::env;

fn record(id_byte: char, name: &str, in_memory: bool) -> ContainerRecord {
    ContainerRecord {
        id: id_byte.to_string().repeat(64),
        name: name.to_string(),
        image: Digest::sha256_of(b"image"),
        image_name: "tiny".into(),
        created: "2026-01-01T00:00:00Z".into(),
        config: serde_json::json!({}),
        host_config: serde_json::json!({}),
        lower_dirs: Vec::new(),
        spec: serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}),
        volumes: Vec::new(),
        layer_in_memory: in_memory,
        default_seccomp: None,
    }
}

fn spares(store: &Store) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(store.paths().spare_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// What a container leaves in its directory: state, log, something in its layer, overlayfs's
/// work files and attributes.
fn run_in(store: &Store, rec: &ContainerRecord) {
    let dir = store.paths().container_dir(&rec.id);
    fs::write(dir.join("state.json"), b"{}").unwrap();
    fs::write(dir.join("container.log"), b"log\n").unwrap();
    fs::create_dir(dir.join("rootfs")).unwrap_or(());
    if !rec.layer_in_memory {
        let upper = store.paths().container_upper(&rec.id);
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/hostname"), b"").unwrap();
        fs::set_permissions(&upper, fs::Permissions::from_mode(0o700)).unwrap();
        rustix::fs::lsetxattr(
            &upper,
            "user.overlay.impure",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let work = store.paths().container_work(&rec.id).join("work");
        fs::create_dir_all(work.join("incompat/volatile")).unwrap();
        fs::write(work.join("incompat/volatile/dirty"), b"").unwrap();
        fs::set_permissions(&work, fs::Permissions::from_mode(0o0)).unwrap();
    }
}

#[test]
fn a_new_container_is_published_whole() {
    let env = env();
    let rec = record('a', "first", false);
    env.store
        .create_container(&rec, &[("etc_hosts", b"127.0.0.1 localhost\n")])
        .unwrap();
    let dir = env.store.paths().container_dir(&rec.id);
    assert_eq!(
        fs::read_to_string(dir.join("etc_hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    let upper = env.store.paths().container_upper(&rec.id);
    assert_eq!(fs::metadata(&upper).unwrap().mode() & 0o7777, 0o755);
    assert!(env.store.paths().container_work(&rec.id).is_dir());
    assert_eq!(env.store.lookup_container("first").unwrap().id, rec.id);
    assert_eq!(
        env.store.container_state(&rec.id).unwrap().status,
        "created"
    );
    // Nothing is left in tmp/.
    assert_eq!(
        fs::read_dir(env.store.paths().tmp_dir()).unwrap().count(),
        0
    );
}

#[test]
fn a_removed_container_directory_is_emptied_and_reused() {
    let env = env();
    let first = record('a', "first", false);
    env.store
        .create_container(
            &first,
            &[
                ("etc_hosts", b"one, longer than the next\n"),
                ("proc_cpuinfo", b"cpu\n"),
            ],
        )
        .unwrap();
    run_in(&env.store, &first);
    let inode = fs::metadata(env.store.paths().container_dir(&first.id))
        .unwrap()
        .ino();
    env.store.remove_container(&first.id).unwrap();
    let kept = spares(&env.store);
    assert_eq!(kept.len(), 1, "one spare directory");
    assert!(fs::read_dir(kept[0].join("upper"))
        .unwrap()
        .next()
        .is_none());
    assert!(fs::read_dir(kept[0].join("work")).unwrap().next().is_none());
    assert!(!kept[0].join("state.json").exists());
    assert!(!kept[0].join("container.log").exists());

    let second = record('b', "second", false);
    env.store
        .create_container(&second, &[("etc_hosts", b"two\n")])
        .unwrap();
    let dir = env.store.paths().container_dir(&second.id);
    assert_eq!(
        fs::metadata(&dir).unwrap().ino(),
        inode,
        "the same directory"
    );
    assert!(spares(&env.store).is_empty());
    assert_eq!(
        fs::read_to_string(dir.join("etc_hosts")).unwrap(),
        "two\n",
        "overwritten in place and cut to the new length"
    );
    assert!(
        !dir.join("proc_cpuinfo").exists(),
        "a file of the one before"
    );
    let upper = env.store.paths().container_upper(&second.id);
    assert_eq!(fs::metadata(&upper).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(rustix::fs::llistxattr_query(&upper).unwrap(), 0);
    let rec = env.store.lookup_container("second").unwrap();
    assert_eq!(rec.id, second.id);
    assert_eq!(
        env.store.container_state(&rec.id).unwrap().status,
        "created"
    );
    assert!(matches!(
        env.store.lookup_container("first"),
        Err(StoreError::ContainerNotFound(_))
    ));
}

#[test]
fn spare_directories_keep_their_shape() {
    let env = env();
    let bare = record('a', "bare", true);
    env.store.create_container(&bare, &[]).unwrap();
    run_in(&env.store, &bare);
    env.store.remove_container(&bare.id).unwrap();
    assert_eq!(spares(&env.store).len(), 1);
    // A container with a layer on disk does not take a directory without one…
    let layered = record('b', "layered", false);
    env.store.create_container(&layered, &[]).unwrap();
    assert_eq!(spares(&env.store).len(), 1);
    // …and one without does.
    let bare2 = record('c', "bare2", true);
    env.store.create_container(&bare2, &[]).unwrap();
    assert!(spares(&env.store).is_empty());
    assert!(!env.store.paths().container_upper(&bare2.id).exists());
}

#[test]
fn what_a_container_changed_is_not_reused() {
    let env = env();
    // Its `/` given an attribute of the user's own.
    let a = record('a', "a", false);
    env.store.create_container(&a, &[]).unwrap();
    let upper = env.store.paths().container_upper(&a.id);
    rustix::fs::lsetxattr(&upper, "user.mine", b"1", rustix::fs::XattrFlags::empty()).unwrap();
    env.store.remove_container(&a.id).unwrap();
    assert!(spares(&env.store).is_empty());
    // A bound file whose mode it changed is dropped, the rest kept.
    let b = record('b', "b", false);
    env.store
        .create_container(&b, &[("etc_hosts", b"h\n"), ("etc_hostname", b"n\n")])
        .unwrap();
    let dir = env.store.paths().container_dir(&b.id);
    fs::set_permissions(dir.join("etc_hosts"), fs::Permissions::from_mode(0o600)).unwrap();
    env.store.remove_container(&b.id).unwrap();
    let kept = spares(&env.store);
    assert_eq!(kept.len(), 1);
    assert!(!kept[0].join("etc_hosts").exists());
    assert!(kept[0].join("etc_hostname").exists());
    // A file with a second link (its record still named elsewhere) is not rewritten in place.
    let c = record('c', "c", false);
    env.store
        .create_container(&c, &[("etc_hostname", b"c\n")])
        .unwrap();
    let dir = env.store.paths().container_dir(&c.id);
    let outside = env.dir.path().join("outside");
    fs::hard_link(dir.join("etc_hostname"), &outside).unwrap();
    env.store.remove_container(&c.id).unwrap();
    assert!(!spares(&env.store)[0].join("etc_hostname").exists());
    assert_eq!(fs::read_to_string(&outside).unwrap(), "c\n");
}

#[test]
fn what_processes_left_running_may_use_is_not_reused() {
    let env = env();
    // The host's pid namespace, or another container's: what it started may still run, in
    // its layer and with the files bound into it.
    let host = serde_json::json!({"type": "mount"});
    let joined = serde_json::json!({"type": "pid", "path": "/proc/1/ns/pid"});
    for (c, pid) in [('a', host.clone()), ('b', joined)] {
        let mut rec = record(c, &c.to_string(), false);
        rec.spec = serde_json::json!({"linux": {"namespaces": [pid]}});
        env.store.create_container(&rec, &[]).unwrap();
        env.store.remove_container(&rec.id).unwrap();
        assert!(spares(&env.store).is_empty());
        assert!(!env.store.paths().container_dir(&rec.id).exists());
    }
    // With its layer in memory, its directory serves without the bound files.
    let mut rec = record('c', "c", true);
    rec.spec = serde_json::json!({"linux": {"namespaces": [host]}});
    env.store
        .create_container(&rec, &[("etc_hosts", b"h\n")])
        .unwrap();
    run_in(&env.store, &rec);
    env.store.remove_container(&rec.id).unwrap();
    let kept = spares(&env.store);
    assert_eq!(kept.len(), 1);
    let mut names: Vec<_> = fs::read_dir(&kept[0])
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["config.json", "rootfs"]);
}

#[test]
fn names_are_claimed_once() {
    let env = env();
    let a = record('a', "web", false);
    env.store.create_container(&a, &[]).unwrap();
    let b = record('b', "web", false);
    match env.store.create_container(&b, &[]) {
        Err(StoreError::NameInUse { name, id }) => {
            assert_eq!(name, "web");
            assert_eq!(id, a.id);
        }
        other => panic!("expected NameInUse, got {other:?}"),
    }
    // The failed start left nothing behind.
    assert!(!env.store.paths().container_dir(&b.id).exists());
    assert_eq!(
        fs::read_dir(env.store.paths().tmp_dir()).unwrap().count(),
        0
    );
    // Renamed, the old name is free and the new one taken.
    env.store.rename_container(&a, "api").unwrap();
    env.store.create_container(&b, &[]).unwrap();
    assert!(matches!(
        env.store.create_container(&record('c', "api", false), &[]),
        Err(StoreError::NameInUse { .. })
    ));
    env.store.remove_container(&b.id).unwrap();
    env.store
        .create_container(&record('d', "web", false), &[])
        .unwrap();
}

#[test]
fn claims_of_earlier_versions_are_understood() {
    let env = env();
    let names = env.store.paths().container_names_dir();
    fs::create_dir_all(&names).unwrap();
    let a = record('a', "old", false);
    env.store.create_container(&a, &[]).unwrap();
    // An id file naming a live container holds the name…
    fs::write(names.join("held"), &a.id).unwrap();
    assert!(matches!(
        env.store.create_container(&record('b', "held", false), &[]),
        Err(StoreError::NameInUse { .. })
    ));
    // …one naming a container that is gone does not.
    fs::write(names.join("stale"), "f".repeat(64)).unwrap();
    env.store
        .create_container(&record('c', "stale", false), &[])
        .unwrap();
    assert_eq!(
        env.store.lookup_container("stale").unwrap().id,
        "c".repeat(64)
    );
}

#[test]
fn concurrent_starts_with_one_name_make_one_container() {
    let env = env();
    let store = &env.store;
    let won: usize = std::thread::scope(|s| {
        let handles: Vec<_> = "abcdefgh"
            .chars()
            .map(|c| s.spawn(move || store.create_container(&record(c, "same", false), &[])))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|r| r.is_ok())
            .count()
    });
    assert_eq!(won, 1);
    assert_eq!(store.containers().unwrap().len(), 1);
}

#[test]
fn garbage_collection_deletes_spares_nobody_took() {
    let env = env();
    let a = record('a', "a", false);
    env.store.create_container(&a, &[]).unwrap();
    env.store.remove_container(&a.id).unwrap();
    let kept = spares(&env.store);
    assert_eq!(kept.len(), 1);
    // Fresh ones stay…
    env.store.collect_garbage().unwrap();
    assert_eq!(spares(&env.store).len(), 1);
    // …old ones go.
    let old = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_600_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_600_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        &kept[0],
        &old,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    env.store.collect_garbage().unwrap();
    assert!(spares(&env.store).is_empty());
}
