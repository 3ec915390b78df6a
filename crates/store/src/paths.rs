//! Every path in the store, computed in one place.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_types::Digest;

/// The store's directory layout. Nothing else in Berth builds a path under the store root.
#[derive(Clone, Debug)]
pub struct Paths {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Paths {
    /// The layout rooted at `root`.
    pub fn new(root: &Path) -> Paths {
        Paths {
            root: root.to_path_buf(),
        }
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `layout.json`, which carries the layout version.
    pub fn layout_file(&self) -> PathBuf {
        self.root.join("layout.json")
    }

    /// `blobs/`, parent of one directory per digest algorithm.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `blobs/<algorithm>/`.
    pub fn blob_algorithm_dir(&self, algorithm: &str) -> PathBuf {
        self.blobs_dir().join(algorithm)
    }

    /// `blobs/<algorithm>/<hex>`.
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.blob_algorithm_dir(d.algorithm()).join(d.hex())
    }

    /// `layers/`.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// `layers/<diff_id hex>/`, the unpacked layer, usable as an overlayfs lowerdir.
    pub fn layer(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.hex())
    }

    /// `layers/<diff_id hex>.json`, the layer's record (size, source blob), written before the
    /// layer directory is published so that a present layer always has one.
    pub fn layer_record(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(format!("{}.json", diff_id.hex()))
    }

    /// `images.json`, the name → image index.
    pub fn images_file(&self) -> PathBuf {
        self.root.join("images.json")
    }

    /// `build-cache/index.json`: the builder's step cache (step key to result).
    pub fn build_cache_index(&self) -> PathBuf {
        self.root.join("build-cache").join("index.json")
    }

    /// The directories of `RUN --mount=type=cache`, beside the build cache index.
    pub fn build_cache_mounts(&self) -> PathBuf {
        self.root.join("build-cache").join("mounts")
    }

    /// `tmp/`, on the same filesystem as everything else so that rename is atomic.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh, unique name in `tmp/` starting with `prefix`.
    pub fn temp(&self, prefix: &str) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.tmp_dir()
            .join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()))
    }

    /// `tmp/blob-<hex>.partial`, a download kept across processes so the next pull resumes.
    pub fn partial_blob(&self, d: &Digest) -> PathBuf {
        self.tmp_dir().join(format!("blob-{}.partial", d.hex()))
    }

    /// `locks/`.
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// `locks/blob-<hex>`, held while a blob is written.
    pub fn blob_lock(&self, d: &Digest) -> PathBuf {
        self.locks_dir().join(format!("blob-{}", d.hex()))
    }

    /// `locks/layer-<hex>`, held while a layer is unpacked.
    pub fn layer_lock(&self, diff_id: &Digest) -> PathBuf {
        self.locks_dir().join(format!("layer-{}", diff_id.hex()))
    }

    /// `locks/images`, held for every read-modify-write of `images.json`.
    pub fn images_lock(&self) -> PathBuf {
        self.locks_dir().join("images")
    }

    /// `locks/gc`: held shared by writers that add content not yet referenced by an image,
    /// exclusively by garbage collection.
    pub fn gc_lock(&self) -> PathBuf {
        self.locks_dir().join("gc")
    }

    /// `containers/`.
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// `containers/<id>/config.json`, the container record that names its image.
    pub fn container_config(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id).join("config.json")
    }

    /// `containers/<id>/`: record, state, writable layer and logs of one container.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// `containers/<id>/state.json`, rewritten by the container's monitor.
    pub fn container_state(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("state.json")
    }

    /// `containers/<id>/upper` and `work`: the writable overlay layer.
    pub fn container_upper(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("upper")
    }

    /// `containers/<id>/work`: overlayfs's work directory, beside the upper one.
    pub fn container_work(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("work")
    }

    /// `containers/<id>/container.log`: JSON lines of a detached container's output.
    pub fn container_log(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("container.log")
    }

    /// `spare/`: directories of removed containers, emptied for the next ones.
    pub fn spare_dir(&self) -> PathBuf {
        self.root.join("spare")
    }

    /// `container-names/<name>`: a hard link to the record of the container that claimed the
    /// name (a file holding its id, from earlier versions).
    pub fn container_names_dir(&self) -> PathBuf {
        self.root.join("container-names")
    }

    /// `volumes/`.
    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// `volumes/<name>/_data`, what a named volume mounts.
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name).join("_data")
    }
}
