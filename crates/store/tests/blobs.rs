//! Blobs: verified, atomic, written once under concurrency, resumable.

mod common;

use std::fs;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use berth_store::{Ingest, StoreError};
use berth_types::Digest;
use common::env;

fn no_temps(env: &common::Env) {
    let left: Vec<_> = fs::read_dir(env.store.paths().tmp_dir()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn put_read_and_sizes() {
    let env = env();
    let d = env.store.put_blob(b"hello").unwrap();
    assert_eq!(d, Digest::sha256_of(b"hello"));
    assert!(env.store.has_blob(&d));
    assert_eq!(env.store.blob_size(&d).unwrap(), 5);
    assert_eq!(env.store.read_blob(&d).unwrap(), b"hello");
    assert_eq!(env.store.put_blob(b"hello").unwrap(), d);
    assert_eq!(
        env.store.blob_path(&d),
        env.store.paths().root().join("blobs/sha256").join(d.hex())
    );
    let missing = Digest::sha256_of(b"nope");
    assert!(!env.store.has_blob(&missing));
    assert!(matches!(
        env.store.blob_size(&missing),
        Err(StoreError::BlobNotFound(_))
    ));
    assert!(matches!(
        env.store.open_blob(&missing),
        Err(StoreError::BlobNotFound(_))
    ));
    no_temps(&env);
}

#[test]
fn streaming_put_verifies() {
    let env = env();
    let data = vec![7u8; 1_000_000];
    let want = Digest::sha256_of(&data);
    let (d, n) = env
        .store
        .put_blob_from(&mut &data[..], Some(&want))
        .unwrap();
    assert_eq!((d.clone(), n), (want.clone(), 1_000_000));
    let (d2, _) = env.store.put_blob_from(&mut &b"other"[..], None).unwrap();
    assert_eq!(d2, Digest::sha256_of(b"other"));
    let wrong = Digest::sha256_of(b"x");
    let err = env
        .store
        .put_blob_from(&mut &b"y"[..], Some(&wrong))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&wrong.to_string()) && msg.contains(&Digest::sha256_of(b"y").to_string()),
        "{msg}"
    );
    assert!(!env.store.has_blob(&wrong));
    assert!(!env.store.has_blob(&Digest::sha256_of(b"y")));
    no_temps(&env);
}

#[test]
fn damaged_blob_is_detected_on_read() {
    let env = env();
    let d = env.store.put_blob(b"{\"a\":1}").unwrap();
    fs::write(env.store.blob_path(&d), b"{\"a\":2}").unwrap();
    assert!(matches!(
        env.store.read_blob(&d),
        Err(StoreError::DigestMismatch { .. })
    ));
}

#[test]
fn concurrent_writers_download_once() {
    let env = env();
    let data: Vec<u8> = (0..500_000u32).map(|i| i as u8).collect();
    let d = Digest::sha256_of(&data);
    let writes = AtomicUsize::new(0);
    let barrier = Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                match env.store.begin_blob(&d, Some(data.len() as u64)).unwrap() {
                    Ingest::Present => {}
                    Ingest::Write(mut w) => {
                        writes.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(w.offset(), 0);
                        for chunk in data.chunks(10_000) {
                            w.write_all(chunk).unwrap();
                            std::thread::sleep(std::time::Duration::from_micros(200));
                        }
                        w.commit().unwrap();
                    }
                }
                assert!(env.store.has_blob(&d));
            });
        }
    });
    assert_eq!(writes.load(Ordering::SeqCst), 1);
    assert_eq!(env.store.read_blob(&d).unwrap(), data);
    no_temps(&env);
}

#[test]
fn interrupted_download_resumes() {
    let env = env();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let d = Digest::sha256_of(&data);
    let Ingest::Write(mut w) = env.store.begin_blob(&d, Some(data.len() as u64)).unwrap() else {
        panic!("blob present");
    };
    w.write_all(&data[..40_000]).unwrap();
    drop(w); // as if the process had been killed
    assert!(!env.store.has_blob(&d));
    assert!(env.store.paths().partial_blob(&d).exists());
    let Ingest::Write(mut w) = env.store.begin_blob(&d, Some(data.len() as u64)).unwrap() else {
        panic!("blob present");
    };
    assert_eq!(w.offset(), 40_000);
    w.write_all(&data[40_000..]).unwrap();
    w.commit().unwrap();
    assert_eq!(env.store.read_blob(&d).unwrap(), data);
    assert!(matches!(
        env.store.begin_blob(&d, None).unwrap(),
        Ingest::Present
    ));
    no_temps(&env);
}

#[test]
fn restart_discards_partial_bytes() {
    let env = env();
    let data = b"the whole blob".to_vec();
    let d = Digest::sha256_of(&data);
    let Ingest::Write(mut w) = env.store.begin_blob(&d, None).unwrap() else {
        panic!()
    };
    w.write_all(b"junk").unwrap();
    drop(w);
    let Ingest::Write(mut w) = env.store.begin_blob(&d, None).unwrap() else {
        panic!()
    };
    assert_eq!(w.offset(), 4);
    w.restart().unwrap();
    assert_eq!(w.offset(), 0);
    w.write_all(&data).unwrap();
    w.commit().unwrap();
    assert_eq!(env.store.read_blob(&d).unwrap(), data);
}

#[test]
fn mismatch_on_commit_stores_nothing() {
    let env = env();
    let d = Digest::sha256_of(b"expected content");
    let Ingest::Write(mut w) = env.store.begin_blob(&d, None).unwrap() else {
        panic!()
    };
    w.write_all(b"something else").unwrap();
    match w.commit().unwrap_err() {
        StoreError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, d);
            assert_eq!(actual, Digest::sha256_of(b"something else"));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!env.store.has_blob(&d));
    assert!(!env.store.paths().partial_blob(&d).exists());

    let Ingest::Write(mut w) = env.store.begin_blob(&d, Some(3)).unwrap() else {
        panic!()
    };
    w.write_all(b"expected content").unwrap();
    let err = w.commit().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SizeMismatch {
                expected: 3,
                actual: 16,
                ..
            }
        ),
        "{err}"
    );
    assert!(!env.store.has_blob(&d));
    no_temps(&env);
}

#[test]
fn adopted_blobs_are_moved_not_copied() {
    let env = env();
    let tmp = env.store.paths().tmp_dir();
    fs::create_dir_all(&tmp).unwrap();
    let file = tmp.join("made-by-a-build");
    fs::write(&file, b"layer bytes").unwrap();
    let d = Digest::sha256_of(b"layer bytes");
    assert_eq!(env.store.adopt_blob(&file, &d).unwrap(), 11);
    assert_eq!(env.store.read_blob(&d).unwrap(), b"layer bytes");
    assert!(!file.exists());
    // A second copy of present content is dropped.
    fs::write(&file, b"layer bytes").unwrap();
    assert_eq!(env.store.adopt_blob(&file, &d).unwrap(), 11);
    assert!(!file.exists());
    no_temps(&env);
}
