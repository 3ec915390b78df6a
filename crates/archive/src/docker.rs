//! Docker's `docker save` format: `manifest.json`, `<config hex>.json`, `<diff id>/layer.tar`.
//!
//! Layers in this format are uncompressed tars named by position, not by digest, and there is no
//! manifest: loading builds a schema-2 manifest for what was stored; saving decompresses layers
//! and checks each against the config's `rootfs.diff_ids`, which is the only thing that ties the
//! files together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufReader, BufWriter, Seek, Write};

use berth_types::{Digest, ImageRef};
use oci_spec::image::{Descriptor as OciDescriptor, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

use crate::common::{self, OUTPUT};
use crate::error::ArchiveError;
use crate::index::ArchiveIndex;
use crate::model::{self, Config, Manifest};
use crate::stream::{self, Compression, HashingWriter, VerifyingReader};
use crate::{BlobSource, ImageSink, LoadedImage, SaveImage};

/// One image in `manifest.json`.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct Entry {
    #[serde(rename = "Config")]
    pub(crate) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(crate) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub(crate) layers: Vec<String>,
}

const MANIFEST_JSON: &str = "manifest.json";

/// Writes `images` as a docker-archive.
pub(crate) fn save(
    out: &mut dyn Write,
    images: &[SaveImage],
    blobs: &dyn BlobSource,
) -> Result<(), ArchiveError> {
    let mut builder = tar::Builder::new(out);
    let mut written: HashSet<Digest> = HashSet::new();
    let mut entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let what = format!("manifest {}", image.manifest_digest);
        let manifest: Manifest = model::parse(&image.manifest, OUTPUT, &what)?;
        let media = manifest
            .media_type
            .as_deref()
            .unwrap_or(&image.manifest_media_type);
        if model::is_index(media) {
            return Err(ArchiveError::invalid(
                OUTPUT,
                &what,
                "is an index; a docker-archive holds single-platform images only",
            ));
        }
        let config_digest = Digest::sha256_of(&image.config);
        if config_digest != manifest.config.digest {
            return Err(ArchiveError::DigestMismatch {
                file: OUTPUT.to_string(),
                entry: format!("config of {what}"),
                expected: manifest.config.digest.clone(),
                actual: config_digest,
            });
        }
        let config_name = format!("config {config_digest}");
        let config: Config = model::parse(&image.config, OUTPUT, &config_name)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(ArchiveError::invalid(
                OUTPUT,
                &config_name,
                format!(
                    "{} diff_ids for {} layers in {what}",
                    diff_ids.len(),
                    manifest.layers.len()
                ),
            ));
        }
        let mut layer_paths = Vec::new();
        for (layer, diff_id) in manifest.layers.iter().zip(diff_ids) {
            let path = format!("{}/layer.tar", diff_id.hex());
            if written.insert(diff_id.clone()) {
                common::append_dir(&mut builder, &format!("{}/", diff_id.hex()))?;
                write_layer(&mut builder, &path, layer, diff_id, blobs)?;
            }
            layer_paths.push(path);
        }
        let config_path = format!("{}.json", config_digest.hex());
        if written.insert(config_digest.clone()) {
            common::append_bytes(&mut builder, &config_path, &image.config)?;
        }
        let mut tags = Vec::new();
        for name in &image.names {
            // RepoTags has no place for a digest-only name.
            let Some(tag) = name.tag() else { continue };
            let familiar = name.familiar_name();
            tags.push(format!("{familiar}:{tag}"));
            if let Some(top) = diff_ids.last() {
                repositories
                    .entry(familiar)
                    .or_default()
                    .insert(tag.to_string(), top.hex().to_string());
            }
        }
        entries.push(Entry {
            config: config_path,
            repo_tags: Some(tags),
            layers: layer_paths,
        });
    }
    let manifest_json = serde_json::to_vec(&entries).expect("manifest.json serialises");
    common::append_bytes(&mut builder, MANIFEST_JSON, &manifest_json)?;
    if !repositories.is_empty() {
        let repos = serde_json::to_vec(&repositories).expect("repositories serialises");
        common::append_bytes(&mut builder, "repositories", &repos)?;
    }
    builder
        .into_inner()
        .and_then(|out| out.flush())
        .map_err(|e| ArchiveError::io(OUTPUT, "finishing the archive", e))
}

/// Writes one layer uncompressed, checked against both its blob digest and its diff id.
fn write_layer<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    layer: &model::Descriptor,
    diff_id: &Digest,
    blobs: &dyn BlobSource,
) -> Result<(), ArchiveError> {
    let digest = &layer.digest;
    let blob_err = |e| ArchiveError::io(OUTPUT, format!("reading blob {digest}"), e);
    let size = blobs.size(digest).map_err(blob_err)?;
    if size != layer.size {
        return Err(ArchiveError::SizeMismatch {
            file: OUTPUT.to_string(),
            entry: format!("blob {digest}"),
            expected: layer.size,
            actual: size,
        });
    }
    let (compression, source) =
        stream::sniff(blobs.open(digest).map_err(blob_err)?).map_err(blob_err)?;
    if compression == Compression::None {
        if digest != diff_id {
            return Err(ArchiveError::DigestMismatch {
                file: OUTPUT.to_string(),
                entry: format!("uncompressed layer {digest}"),
                expected: diff_id.clone(),
                actual: digest.clone(),
            });
        }
        return common::append_verified(builder, path, source, digest, size);
    }
    // The tar header needs the uncompressed size before the data, so the layer is decompressed
    // to a temporary file first: memory stays bounded whatever the layer's size.
    let tmp_err = |e| ArchiveError::io(OUTPUT, format!("spooling layer {digest}"), e);
    let mut spool = tempfile::tempfile().map_err(tmp_err)?;
    let mut verifying = VerifyingReader::new(source, Some(digest), Some(size));
    let copied = (|| {
        let mut decoder = stream::decompress(BufReader::new(&mut verifying), compression)?;
        let mut out = HashingWriter::new(BufWriter::new(&mut spool));
        io::copy(&mut decoder, &mut out)?;
        out.flush()?;
        Ok::<_, io::Error>(out.hash)
    })();
    common::check_verdict(
        &verifying,
        OUTPUT,
        &format!("blob {digest}"),
        Some(digest),
        Some(size),
    )?;
    let hash = copied.map_err(tmp_err)?;
    // The decoder may stop at the end of the compressed stream before the blob's last bytes.
    verifying.drain().map_err(blob_err)?;
    common::check_verdict(
        &verifying,
        OUTPUT,
        &format!("blob {digest}"),
        Some(digest),
        Some(size),
    )?;
    let len = hash.len();
    let actual = hash.finish();
    if actual != *diff_id {
        return Err(ArchiveError::DigestMismatch {
            file: OUTPUT.to_string(),
            entry: format!("uncompressed content of layer {digest}"),
            expected: diff_id.clone(),
            actual,
        });
    }
    spool.rewind().map_err(tmp_err)?;
    common::append(builder, path, len, BufReader::new(spool))
        .map_err(|e| ArchiveError::io(OUTPUT, format!("writing {path}"), e))
}

/// A layer as stored: blob digest, size and the media type the built manifest gives it.
#[derive(Clone)]
struct StoredLayer {
    digest: Digest,
    size: u64,
    compression: Compression,
    diff_id: Digest,
}

/// Reads `manifest.json`'s entries.
pub(crate) fn entries(index: &ArchiveIndex<'_>) -> Result<Vec<Entry>, ArchiveError> {
    let bytes = index.read_small(MANIFEST_JSON, "the archive")?;
    model::parse(&bytes, &index.display, MANIFEST_JSON)
}

/// Parses RepoTags into references.
pub(crate) fn names(file: &str, entry: &Entry) -> Result<Vec<ImageRef>, ArchiveError> {
    let tags = entry.repo_tags.as_deref().unwrap_or_default();
    tags.iter()
        .map(|t| {
            ImageRef::parse(t)
                .map_err(|e| ArchiveError::invalid(file, MANIFEST_JSON, e.to_string()))
        })
        .collect()
}

/// Loads every image of a docker-archive.
pub(crate) fn load(
    index: &ArchiveIndex<'_>,
    sink: &mut dyn ImageSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let file = index.display.as_str();
    let mut stored: HashMap<String, StoredLayer> = HashMap::new();
    let mut loaded = Vec::new();
    for entry in entries(index)? {
        let config_bytes = index.read_small(&entry.config, MANIFEST_JSON)?;
        let config_digest = Digest::sha256_of(&config_bytes);
        // Docker and Podman name the config after its digest; a name that looks like one must be.
        let stem = entry.config.rsplit('/').next().unwrap_or_default();
        let stem = stem.strip_suffix(".json").unwrap_or(stem);
        if stem.len() == 64
            && stem.bytes().all(|b| b.is_ascii_hexdigit())
            && stem != config_digest.hex()
        {
            return Err(ArchiveError::DigestMismatch {
                file: file.to_string(),
                entry: entry.config.clone(),
                expected: format!("sha256:{stem}").parse().map_err(|_| {
                    ArchiveError::invalid(file, &entry.config, "name is not a digest")
                })?,
                actual: config_digest,
            });
        }
        let config: Config = model::parse(&config_bytes, file, &entry.config)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(ArchiveError::invalid(
                file,
                &entry.config,
                format!(
                    "{} diff_ids for {} layers listed in manifest.json",
                    diff_ids.len(),
                    entry.layers.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
            let layer = match stored.get(path) {
                Some(l) if l.diff_id == *diff_id => l.clone(),
                _ => put_layer(index, sink, path, diff_id)?,
            };
            stored.insert(path.clone(), layer.clone());
            layers.push(layer);
        }
        common::put_bytes(sink, file, &entry.config, &config_bytes)?;
        let (manifest, media_type) = build_manifest(&config_bytes, &layers);
        let manifest_digest = common::put_bytes(sink, file, "built manifest", &manifest)?;
        let image = LoadedImage {
            manifest_digest,
            manifest_media_type: media_type.to_string(),
            config: config_digest,
            names: names(file, &entry)?,
        };
        sink.add_image(image.clone())
            .map_err(|e| ArchiveError::sink(file, format!("image {}", image.manifest_digest), e))?;
        loaded.push(image);
    }
    Ok(loaded)
}

/// Stores one layer member as it is, after checking its uncompressed form against `diff_id`.
fn put_layer(
    index: &ArchiveIndex<'_>,
    sink: &mut dyn ImageSink,
    path: &str,
    diff_id: &Digest,
) -> Result<StoredLayer, ArchiveError> {
    let file = index.display.as_str();
    let read_err = |e| ArchiveError::io(file, format!("reading entry {path}"), e);
    let (reader, _) = index.open(path, MANIFEST_JSON)?;
    let (compression, reader) = stream::sniff(reader).map_err(read_err)?;
    let (digest, size) = if compression == Compression::None {
        // Uncompressed: the blob digest is the diff id, checked while it streams to the store.
        common::put_entry(index, sink, path, MANIFEST_JSON, Some(diff_id), None)?
    } else {
        // A separate pass to check the diff id first, so a wrong layer is never stored; compressed
        // layers are rare in this format and the file is local.
        let mut decoder =
            stream::decompress(BufReader::new(reader), compression).map_err(read_err)?;
        let mut hash = diff_id.writer();
        io::copy(&mut decoder, &mut hash).map_err(read_err)?;
        let actual = hash.finish();
        if actual != *diff_id {
            return Err(ArchiveError::DigestMismatch {
                file: file.to_string(),
                entry: format!("{path} (uncompressed)"),
                expected: diff_id.clone(),
                actual,
            });
        }
        common::put_entry(index, sink, path, MANIFEST_JSON, None, None)?
    };
    Ok(StoredLayer {
        digest,
        size,
        compression,
        diff_id: diff_id.clone(),
    })
}

/// A manifest for a config and its stored layers: Docker schema 2, the format's own type,
/// unless a layer is zstd, which only the OCI media types can describe.
fn build_manifest(config: &[u8], layers: &[StoredLayer]) -> (Vec<u8>, &'static str) {
    let oci = layers.iter().any(|l| l.compression == Compression::Zstd);
    let layer_type = |c: Compression| match (oci, c) {
        (false, Compression::None) => MediaType::Other(model::DOCKER_LAYER.into()),
        (false, _) => MediaType::Other(model::DOCKER_LAYER_GZIP.into()),
        (true, Compression::None) => MediaType::ImageLayer,
        (true, Compression::Gzip) => MediaType::ImageLayerGzip,
        (true, Compression::Zstd) => MediaType::ImageLayerZstd,
    };
    let (manifest_type, config_type) = if oci {
        (MediaType::ImageManifest, MediaType::ImageConfig)
    } else {
        (
            MediaType::Other(model::DOCKER_MANIFEST.into()),
            MediaType::Other(model::DOCKER_CONFIG.into()),
        )
    };
    let descriptor = |media: MediaType, size: u64, digest: &Digest| {
        let digest: oci_spec::image::Digest = digest
            .to_string()
            .parse()
            .expect("a berth digest is an oci digest");
        OciDescriptor::new(media, size, digest)
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(manifest_type)
        .config(descriptor(
            config_type,
            config.len() as u64,
            &Digest::sha256_of(config),
        ))
        .layers(
            layers
                .iter()
                .map(|l| descriptor(layer_type(l.compression), l.size, &l.digest))
                .collect::<Vec<_>>(),
        )
        .build()
        .expect("every required manifest field is set");
    let media = if oci {
        model::OCI_MANIFEST
    } else {
        model::DOCKER_MANIFEST
    };
    (
        serde_json::to_vec(&manifest).expect("manifest serialises"),
        media,
    )
}
