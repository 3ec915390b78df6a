//! The one error type of the store.

use std::io;
use std::path::PathBuf;

use berth_types::Digest;

/// Everything that can go wrong in the store; each message names the input it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The store was written by a newer Berth whose layout this one does not know.
    #[error("{path}: store layout version {found} is newer than the supported version {supported}; upgrade berth")]
    LayoutTooNew {
        /// The `layout.json` file.
        path: PathBuf,
        /// The version found in it.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// A store metadata file (`layout.json`, `images.json`, a layer record) does not parse.
    #[error("{path}: corrupt store metadata: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A blob that was asked for is not in the store.
    #[error("blob {0} not found in the store")]
    BlobNotFound(Digest),
    /// Content hashed to something other than the digest it was announced or stored under.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the content should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A blob had another length than announced.
    #[error("size mismatch for blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The announced length.
        expected: u64,
        /// The length received.
        actual: u64,
    },
    /// The uncompressed stream of a layer blob does not hash to the image config's diff_id.
    #[error("layer blob {blob}: uncompressed digest mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch {
        /// The compressed layer blob.
        blob: Digest,
        /// The diff_id from the image config.
        expected: Digest,
        /// The digest of the uncompressed stream.
        actual: Digest,
    },
    /// A layer blob is not a readable (possibly compressed) tar stream.
    #[error("layer blob {blob}: {reason}")]
    CorruptLayer {
        /// The compressed layer blob.
        blob: Digest,
        /// What failed while reading it.
        reason: String,
    },
    /// A manifest or image config blob does not have the expected shape.
    #[error("{what} {digest}: {reason}")]
    InvalidContent {
        /// `manifest`, `image config` or `index`.
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// No image matches what the user typed.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// An id prefix matches several images.
    #[error("image id prefix {input} is ambiguous: it matches {count} images")]
    AmbiguousId {
        /// The prefix as given.
        input: String,
        /// How many images it matches.
        count: usize,
    },
    /// A container record still uses the image.
    #[error(
        "conflict: unable to remove image {image}: image is being used by container {container}"
    )]
    ImageInUse {
        /// The image id.
        image: Digest,
        /// The container id.
        container: String,
    },
    /// Removing the image needs `--force`.
    #[error("conflict: unable to delete {image} (must be forced): {reason}")]
    MustForce {
        /// The image id.
        image: Digest,
        /// Why.
        reason: String,
    },
    /// No container matches what the user typed.
    #[error("no such container: {0}")]
    ContainerNotFound(String),
    /// A container name is taken.
    #[error("conflict: the container name {name:?} is already in use by container {id}")]
    NameInUse {
        /// The name asked for.
        name: String,
        /// The container holding it.
        id: String,
    },
    /// No volume of that name.
    #[error("no such volume: {0}")]
    VolumeNotFound(String),
    /// A volume name that would not be a single path component.
    #[error("invalid volume name {0:?}: use letters, digits, '_', '.' and '-'")]
    InvalidVolumeName(String),
    /// A container still mounts the volume.
    #[error("volume {volume} is in use by container {container}")]
    VolumeInUse {
        /// The volume.
        volume: String,
        /// The container.
        container: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Attaches the path to an `io::Result`, since a bare `No such file or directory` helps nobody.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(path, e))
    }
}
