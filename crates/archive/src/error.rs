//! The one error type of this crate.

use std::io;

use berth_types::Digest;

/// An error boxed by an [`ImageSink`](crate::ImageSink) implementation.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Why an archive could not be read, written or imported.
///
/// `file` is the archive on disk for `load`, `<output>` for `save` and `<import>` for
/// `import_rootfs`, so every message says which file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing failed.
    #[error("{file}: {what}: {source}")]
    Io {
        /// The archive.
        file: String,
        /// What was being done (`reading entry manifest.json`).
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// An entry name or link target is absolute or climbs out with `..`.
    #[error("{file}: entry {entry:?} refused: {reason}")]
    UnsafeEntry {
        /// The archive.
        file: String,
        /// The entry as named in the tar.
        entry: String,
        /// Absolute path, `..`, link loop…
        reason: String,
    },
    /// A file the archive's own metadata refers to is not in it.
    #[error("{file}: missing entry {entry:?}, referenced by {by}")]
    Missing {
        /// The archive.
        file: String,
        /// The missing entry.
        entry: String,
        /// Which document referred to it.
        by: String,
    },
    /// Content does not hash to the digest it is named or described by.
    #[error("{file}: {entry}: digest mismatch: expected {expected}, actual {actual}")]
    DigestMismatch {
        /// The archive.
        file: String,
        /// The entry or blob whose content is wrong.
        entry: String,
        /// The digest its name or descriptor promises.
        expected: Digest,
        /// The digest of what was read.
        actual: Digest,
    },
    /// Content has another length than its descriptor says.
    #[error("{file}: {entry}: size mismatch: expected {expected} bytes, actual {actual}")]
    SizeMismatch {
        /// The archive.
        file: String,
        /// The entry or blob whose length is wrong.
        entry: String,
        /// The length promised.
        expected: u64,
        /// The length read.
        actual: u64,
    },
    /// A JSON document could not be parsed or is not what its place requires.
    #[error("{file}: {entry}: {reason}")]
    Invalid {
        /// The archive.
        file: String,
        /// The document (`manifest.json`, `blobs/sha256/…`).
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither `manifest.json` nor `index.json` with `oci-layout` is in the archive.
    #[error("{file}: not an image archive: no manifest.json and no index.json with oci-layout")]
    UnknownFormat {
        /// The archive.
        file: String,
    },
    /// The caller's store refused a blob or an image.
    #[error("{file}: storing {what}: {source}")]
    Sink {
        /// The archive.
        file: String,
        /// What was being stored (`layer sha256:…`).
        what: String,
        /// The store's error.
        source: SinkError,
    },
    /// A `--change` line that is not an instruction `import` supports, or is malformed.
    #[error("import: --change {line:?}: {reason}")]
    Change {
        /// The line as given.
        line: String,
        /// Why it is refused.
        reason: String,
    },
}

impl ArchiveError {
    pub(crate) fn io(file: &str, what: impl Into<String>, source: io::Error) -> Self {
        ArchiveError::Io {
            file: file.to_string(),
            what: what.into(),
            source,
        }
    }

    pub(crate) fn invalid(file: &str, entry: &str, reason: impl Into<String>) -> Self {
        ArchiveError::Invalid {
            file: file.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn sink(file: &str, what: impl Into<String>, source: SinkError) -> Self {
        ArchiveError::Sink {
            file: file.to_string(),
            what: what.into(),
            source,
        }
    }
}
