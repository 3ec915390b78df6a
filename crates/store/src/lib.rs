//! Berth's on-disk image store: content-addressed blobs, safe layer unpack, image index.
//!
//! # Layout
//!
//! The root is `/var/lib/berth` for uid 0, otherwise `$XDG_DATA_HOME/berth` or
//! `~/.local/share/berth` ([`Store::default_root`]). Below it, and computed only by [`Paths`]:
//!
//! ```text
//! layout.json              {"version":1}; a newer version is refused, a missing one created
//! blobs/sha256/<hex>       manifests, configs and compressed layers, named by their digest
//! layers/<hex>/            one layer (named by its diff_id) unpacked, immutable
//! layers/<hex>.json        the layer's record: content size and source blob
//! images.json              the image index: ids, names, manifests, layers
//! tmp/                     temps, on the same filesystem so that rename is atomic
//! locks/                   lock files for writers
//! containers/<id>/         container records (written by the runtime; read here for GC)
//! ```
//!
//! # Layers in overlayfs's own format
//!
//! Each layer is unpacked into its own directory so that the runtime can stack layers as
//! overlayfs lowerdirs without copying anything. OCI whiteouts are therefore converted on the
//! way in: `.wh.NAME` becomes a character device 0:0 named `NAME` (unprivileged users may
//! create that one device since Linux 5.8) and `.wh..wh..opq` becomes the xattr
//! `user.overlay.opaque=y` on its directory, which overlayfs reads when mounted with
//! `userxattr`, as it is inside a user namespace. Where the filesystem refuses either, the OCI
//! marker is kept as an empty file and a warning says so. The layer's own `*.overlay.*`
//! xattrs are never applied: that metadata is the store's to write.
//!
//! # Writing safely
//!
//! Every publication is a rename. A blob is streamed to a temp file while being hashed and is
//! renamed to `blobs/` only after its digest and size match; a layer is unpacked into a temp
//! directory, its uncompressed stream checked against the diff_id, flushed (one `syncfs`), and
//! only then renamed to `layers/`; `images.json` is rewritten whole and renamed over the old
//! one, and only ever names content that is present. A process killed at any instant thus
//! leaves temps, which nothing trusts and [`Store::prune`] removes, never a half-written entry
//! under a real name. A blob download interrupted mid-way is kept as
//! `tmp/blob-<hex>.partial`; the next writer re-hashes those bytes and resumes from
//! [`BlobWriter::offset`] with an HTTP range request.
//!
//! # Locks: writers only
//!
//! Published entries never change, so readers take no lock: thousands of ranks starting from
//! one cached image on a shared filesystem read files and nothing else. Writers take `flock`
//! locks in `locks/` (NFS emulates them with POSIX locks): `blob-<hex>` while a blob is
//! written, `layer-<hex>` while a layer is unpacked, `images` for each read-modify-write of the
//! index. Many processes pulling one image at once therefore download each blob once: the
//! first holds the lock and writes; the others block on it, then find the blob present.
//! Garbage collection holds `gc` exclusively and skips anything a writer has locked; a pull
//! holds it shared ([`Store::hold_gc`]) from its first blob to [`Store::commit_image`] so
//! that content not yet referenced by an image is not swept.
//!
//! # Unpacking untrusted tars
//!
//! The `tar` crate only reads entries; every filesystem write is made here, into a private
//! temp directory, and none can land outside it. Names lose leading `/` and `./` (with a
//! warning); a name with a `..` component is skipped. Before an entry is created, each parent
//! component is checked with `lstat`: a symlink parent (`a -> /etc` followed by `a/passwd`)
//! skips the entry, missing parents are created. An existing entry at the target is removed
//! first and files are created with `O_EXCL`, so nothing is written through a symlink. Symlinks
//! are created as-is: their targets are resolved inside the container, later. Hardlinks must
//! name an existing non-directory of this layer reached without symlinks. Directory modes are
//! applied after all entries, so that read-only directories can still be filled, and only to
//! directories still reachable without symlinks. Without root ([`UnpackOptions::rootless`])
//! files keep the caller's ownership, setuid/setgid bits are dropped and device nodes skipped,
//! each with a warning in the [`UnpackReport`].
#![deny(missing_docs)]

mod atomic;
mod blobs;
mod containers;
mod error;
mod gc;
mod images;
mod lock;
mod paths;
mod spare;
mod unpack;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use blobs::{BlobWriter, Ingest};
pub use containers::{ContainerRecord, ContainerState};
pub use error::StoreError;
pub use gc::{DiskUsage, GcGuard, PruneReport, RemoveReport};
pub use images::{ImageRecord, NewImage};
pub use paths::Paths;
pub use unpack::{remove_tree, UnpackOptions, UnpackReport};

use error::IoContext;

/// The newest store layout this build reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

/// Deletes a tree the calling process cannot delete itself (files owned by its subordinate
/// ids); set with [`Store::with_remover`].
pub type TreeRemover = std::sync::Arc<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;

/// An opened image store.
#[derive(Clone)]
pub struct Store {
    paths: Paths,
    remover: Option<TreeRemover>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("paths", &self.paths).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Layout {
    version: u32,
}

/// Refuses a `layout.json` that does not parse or names a newer layout than this build knows.
fn check_layout(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let l: Layout = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if l.version > LAYOUT_VERSION {
        return Err(StoreError::LayoutTooNew {
            path: path.to_path_buf(),
            found: l.version,
            supported: LAYOUT_VERSION,
        });
    }
    Ok(())
}

impl Store {
    /// `/var/lib/berth` for root, else `$XDG_DATA_HOME/berth`, else `~/.local/share/berth`.
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/berth");
        }
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        if let Some(data) = env_dir("XDG_DATA_HOME") {
            return data.join("berth");
        }
        let home = env_dir("HOME").unwrap_or_else(|| PathBuf::from("/"));
        home.join(".local/share/berth")
    }

    /// Opens (creating when needed) the store at `root` and checks its layout version.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let paths = Paths::new(root);
        fs::create_dir_all(root).at(root)?;
        let layout = paths.layout_file();
        match fs::read(&layout) {
            Ok(bytes) => check_layout(&layout, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(layout, e)),
        }
        for dir in [
            paths.blob_algorithm_dir("sha256"),
            paths.layers_dir(),
            paths.tmp_dir(),
            paths.locks_dir(),
            paths.containers_dir(),
        ] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        if !layout.exists() {
            let json = serde_json::to_vec(&Layout {
                version: LAYOUT_VERSION,
            })
            .expect("layout serialises");
            atomic::write_atomic(&paths, &layout, &json)?;
        }
        Ok(Store {
            paths,
            remover: None,
        })
    }

    /// Opens an existing store without writing to it: a site's shared store, often on a
    /// read-only file system. Nothing is created, and no lock is ever taken for reading.
    pub fn open_read_only(root: &Path) -> Result<Store, StoreError> {
        let paths = Paths::new(root);
        let layout = paths.layout_file();
        let bytes = fs::read(&layout).map_err(|e| StoreError::io(layout.clone(), e))?;
        check_layout(&layout, &bytes)?;
        Ok(Store {
            paths,
            remover: None,
        })
    }

    /// Uses `remover` for trees this process is not allowed to delete: layers and container
    /// layers holding files of the caller's subordinate ids, which only a process in a user
    /// namespace mapping them may remove. The store decides what goes; the caller how.
    pub fn with_remover(mut self, remover: TreeRemover) -> Store {
        self.remover = Some(remover);
        self
    }

    /// Deletes `path` and everything below it, through the remover when this process may not.
    pub(crate) fn remove_tree(&self, path: &Path) -> io::Result<()> {
        match unpack::remove_tree(path) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => match &self.remover {
                Some(r) => r(path),
                None => Err(e),
            },
            other => other,
        }
    }

    /// Deletes every `RUN --mount=type=cache` directory of the builder (`builder prune --all`).
    pub fn remove_build_cache_mounts(&self) -> Result<(), StoreError> {
        let dir = self.paths.build_cache_mounts();
        match self.remove_tree(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(dir, e)),
            _ => Ok(()),
        }
    }

    /// The store's paths.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }
}
