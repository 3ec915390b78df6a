//! Berth's image archives: docker-archive and OCI layout tarballs, and `docker import`.
//!
//! This crate is format work only. It reads blobs through a [`BlobSource`] and hands what it
//! loads to an [`ImageSink`]; the store implements both. Every blob that crosses is verified
//! against its digest while it streams, and layers are never held in memory.
#![deny(missing_docs)]

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::Path;

use berth_types::{Digest, ImageRef};

mod changes;
mod common;
mod docker;
mod error;
mod flatten;
mod import;
mod index;
mod model;
mod oci;
mod sqsh;
mod stream;

pub use changes::apply_to as apply_changes;
pub use error::{ArchiveError, SinkError};
pub use flatten::{flatten, root_mode, Flattened};
pub use import::import_rootfs;
pub use sqsh::{read_config_trailer, write_config_trailer, TRAILER_MAGIC};

/// Which archive format `save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `docker save`'s format: `manifest.json`, uncompressed layers named by diff id.
    Docker,
    /// An OCI image layout in a tar (`--format oci-archive`).
    Oci,
}

/// Where blobs come from when saving (the store).
pub trait BlobSource {
    /// Opens the blob with this digest.
    fn open(&self, d: &Digest) -> io::Result<Box<dyn Read>>;
    /// The blob's size in bytes.
    fn size(&self, d: &Digest) -> io::Result<u64>;
}

/// Where loaded content goes (the store).
pub trait ImageSink {
    /// Stores everything `data` yields as a blob. When `expected` is given, the implementation
    /// must verify the content against it and fail on a mismatch. Returns digest and size.
    fn put_blob(
        &mut self,
        data: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), SinkError>;
    /// Records an image whose blobs have all been stored.
    fn add_image(&mut self, img: LoadedImage) -> Result<(), SinkError>;
}

/// One image to save.
#[derive(Clone, Debug)]
pub struct SaveImage {
    /// The manifest's bytes, exactly as stored.
    pub manifest: Vec<u8>,
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The manifest's media type (OCI or Docker schema 2).
    pub manifest_media_type: String,
    /// The config's bytes, exactly as stored.
    pub config: Vec<u8>,
    /// Names to record in the archive; digest-only references are left out.
    pub names: Vec<ImageRef>,
}

/// One image stored by `load` or `import_rootfs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Digest of the (stored) manifest.
    pub manifest_digest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// Digest of the config blob, which is also the image id.
    pub config: Digest,
    /// Names the archive gives the image, normalised; empty when it gives none.
    pub names: Vec<ImageRef>,
}

/// What `import_rootfs` makes of a root filesystem tar.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Names for the new image.
    pub names: Vec<ImageRef>,
    /// Architecture in Go's spelling (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// Dockerfile-like `--change` lines: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE,
    /// VOLUME, STOPSIGNAL.
    pub changes: Vec<String>,
    /// Commit message, recorded as the history entry's comment.
    pub message: Option<String>,
    /// Creation time (RFC 3339); default `SOURCE_DATE_EPOCH` when set, else now.
    pub created: Option<String>,
}

/// Writes `images` to `out` as one archive of `format`, reading layers from `blobs`.
///
/// Layers are streamed: docker-archives need uncompressed layers, and a compressed blob is
/// decompressed into a temporary file first because the tar header needs its size.
pub fn save(
    out: &mut dyn Write,
    format: Format,
    images: &[SaveImage],
    blobs: &dyn BlobSource,
) -> Result<(), ArchiveError> {
    match format {
        Format::Docker => docker::save(out, images, blobs),
        Format::Oci => oci::save(out, images, blobs),
    }
}

/// Loads every image of the archive at `path` into `sink` and returns them.
///
/// The format is detected: an OCI layout (`index.json` and `oci-layout`, preferred when Docker 25
/// writes both) or a docker-archive (`manifest.json`). A gzip or zstd compressed archive is first
/// decompressed into a temporary file, because reading members by position needs a seekable file.
pub fn load(path: &Path, sink: &mut dyn ImageSink) -> Result<Vec<LoadedImage>, ArchiveError> {
    let display = path.display().to_string();
    let io_err = |what: &str| {
        let display = display.clone();
        let what = what.to_string();
        move |e| ArchiveError::io(&display, what, e)
    };
    let file = File::open(path).map_err(io_err("opening"))?;
    let (compression, _) = stream::sniff(&file).map_err(io_err("reading"))?;
    let spooled;
    let tar_file = if compression == stream::Compression::None {
        &file
    } else {
        let mut input = &file;
        input.rewind().map_err(io_err("reading"))?;
        let mut decoder = stream::decompress(BufReader::new(input), compression)
            .map_err(io_err("decompressing"))?;
        let mut tmp = tempfile::tempfile().map_err(io_err("creating a temporary file"))?;
        io::copy(&mut decoder, &mut tmp).map_err(io_err("decompressing"))?;
        spooled = tmp;
        &spooled
    };
    let index = index::ArchiveIndex::build(tar_file, &display)?;
    if oci::detect(&index)? {
        oci::load(&index, sink)
    } else if index.contains("manifest.json")? {
        docker::load(&index, sink)
    } else {
        Err(ArchiveError::UnknownFormat { file: display })
    }
}
