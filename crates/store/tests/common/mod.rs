//! Helpers shared by the store's integration tests: crafted tars and a scratch store.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use berth_store::{Store, StoreError, UnpackOptions, UnpackReport};
use berth_types::Digest;
use tar::{EntryType, Header};

/// One crafted tar member; names and link targets are raw bytes so `..` and `/` survive.
pub enum E<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    Char(&'a str, u32, u32),
}

fn header(name: &str, kind: EntryType, size: u64, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    let raw = name.as_bytes();
    assert!(raw.len() < 100, "use append_data for long names");
    h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn set_link(h: &mut Header, target: &str) {
    let raw = target.as_bytes();
    h.as_old_mut().linkname[..raw.len()].copy_from_slice(raw);
}

/// Appends crafted members to `b`.
pub fn append(b: &mut tar::Builder<Vec<u8>>, entries: &[E]) {
    for e in entries {
        let (mut h, data): (Header, &[u8]) = match e {
            E::File(n, d, m) => (header(n, EntryType::Regular, d.len() as u64, *m), d),
            E::Dir(n, m) => (header(n, EntryType::Directory, 0, *m), b""),
            E::Symlink(n, t) => {
                let mut h = header(n, EntryType::Symlink, 0, 0o777);
                set_link(&mut h, t);
                (h, b"")
            }
            E::Hardlink(n, t) => {
                let mut h = header(n, EntryType::Link, 0, 0o644);
                set_link(&mut h, t);
                (h, b"")
            }
            E::Fifo(n) => (header(n, EntryType::Fifo, 0, 0o644), b""),
            E::Char(n, maj, min) => {
                let mut h = header(n, EntryType::Char, 0, 0o666);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                (h, b"")
            }
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
}

/// A whole uncompressed tar of `entries`.
pub fn tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, entries);
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A store at `<tmp>/store` with a sentinel directory `<tmp>/sentinel` beside it that no
/// unpack may touch.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub sentinel: PathBuf,
}

pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let sentinel = dir.path().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    fs::write(sentinel.join("keep"), b"original").unwrap();
    Env {
        dir,
        store,
        sentinel,
    }
}

impl Env {
    /// Stores `tar_bytes` (gzipped) as a blob and unpacks it.
    pub fn unpack(&self, tar_bytes: &[u8], opts: &UnpackOptions) -> (Digest, UnpackReport) {
        let blob = self.store.put_blob(&gzip(tar_bytes)).unwrap();
        let diff_id = Digest::sha256_of(tar_bytes);
        let report = self.store.unpack_layer(&blob, &diff_id, opts).unwrap();
        (diff_id, report)
    }

    pub fn try_unpack(
        &self,
        compressed: &[u8],
        diff_id: &Digest,
    ) -> Result<UnpackReport, StoreError> {
        let blob = self.store.put_blob(compressed).unwrap();
        self.store.unpack_layer(&blob, diff_id, &native())
    }

    /// Nothing was written next to the store or into the sentinel directory.
    pub fn assert_contained(&self) {
        let mut names: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["sentinel", "store"]);
        let inside: Vec<_> = fs::read_dir(&self.sentinel)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(inside, ["keep"]);
        assert_eq!(fs::read(self.sentinel.join("keep")).unwrap(), b"original");
        let mut top: Vec<_> = fs::read_dir(self.store.paths().root())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        for n in &top {
            assert!(
                [
                    "blobs",
                    "containers",
                    "images.json",
                    "layers",
                    "layout.json",
                    "locks",
                    "tmp"
                ]
                .contains(&n.as_str()),
                "unexpected {n} in the store root"
            );
        }
        // No leftover temp directories from a failed or finished unpack.
        for e in fs::read_dir(self.store.paths().tmp_dir()).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(!name.starts_with("layer-"), "leftover temp {name}");
        }
    }
}

/// What the caller may do: privileged as root, rootless otherwise.
pub fn native() -> UnpackOptions {
    UnpackOptions::default()
}

pub fn root() -> UnpackOptions {
    UnpackOptions { rootless: false }
}

pub fn rootless() -> UnpackOptions {
    UnpackOptions { rootless: true }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
