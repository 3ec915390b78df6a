//! OCI image layout tarballs (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`).
//!
//! Blobs are copied byte for byte in both directions, so an image keeps its manifest digest
//! through a save and a load. Docker 25 and later write this layout too, with a `manifest.json`
//! beside it; its `RepoTags` name images whose index entries carry no name.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use berth_types::{Digest, ImageRef, Platform};
use serde_json::json;

use crate::common::{self, OUTPUT};
use crate::docker;
use crate::error::ArchiveError;
use crate::index::ArchiveIndex;
use crate::model::{self, Descriptor, Index, Manifest};
use crate::{BlobSource, ImageSink, LoadedImage, SaveImage};

const INDEX_JSON: &str = "index.json";
const OCI_LAYOUT: &str = "oci-layout";
/// Indexes nested deeper than this are refused; real images nest at most one level.
const MAX_INDEX_DEPTH: usize = 4;

/// Writes `images` as an OCI layout tarball.
pub(crate) fn save(
    out: &mut dyn Write,
    images: &[SaveImage],
    blobs: &dyn BlobSource,
) -> Result<(), ArchiveError> {
    let mut builder = tar::Builder::new(out);
    common::append_bytes(
        &mut builder,
        OCI_LAYOUT,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut dirs: HashSet<String> = HashSet::new();
    let mut written: HashSet<Digest> = HashSet::new();
    let mut entries = Vec::new();
    for image in images {
        let what = format!("manifest {}", image.manifest_digest);
        let mut hash = image.manifest_digest.writer();
        hash.update(&image.manifest);
        let actual = hash.finish();
        if actual != image.manifest_digest {
            return Err(ArchiveError::DigestMismatch {
                file: OUTPUT.to_string(),
                entry: what,
                expected: image.manifest_digest.clone(),
                actual,
            });
        }
        let manifest: Manifest = model::parse(&image.manifest, OUTPUT, &what)?;
        if model::is_index(
            manifest
                .media_type
                .as_deref()
                .unwrap_or(&image.manifest_media_type),
        ) {
            return Err(ArchiveError::invalid(
                OUTPUT,
                &what,
                "is an index; only single-platform images can be saved",
            ));
        }
        let mut hash = manifest.config.digest.writer();
        hash.update(&image.config);
        let actual = hash.finish();
        if actual != manifest.config.digest {
            return Err(ArchiveError::DigestMismatch {
                file: OUTPUT.to_string(),
                entry: format!("config of {what}"),
                expected: manifest.config.digest.clone(),
                actual,
            });
        }
        for layer in &manifest.layers {
            let digest = &layer.digest;
            if !written.insert(digest.clone()) {
                continue;
            }
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
            blob_dirs(&mut builder, &mut dirs, digest)?;
            let source = blobs.open(digest).map_err(blob_err)?;
            common::append_verified(
                &mut builder,
                &common::blob_path(digest),
                source,
                digest,
                size,
            )?;
        }
        for (digest, bytes) in [
            (&manifest.config.digest, &image.config),
            (&image.manifest_digest, &image.manifest),
        ] {
            if written.insert(digest.clone()) {
                blob_dirs(&mut builder, &mut dirs, digest)?;
                common::append_bytes(&mut builder, &common::blob_path(digest), bytes)?;
            }
        }
        let descriptor = |annotations: Option<serde_json::Value>| {
            let mut d = json!({
                "mediaType": image.manifest_media_type,
                "digest": image.manifest_digest.to_string(),
                "size": image.manifest.len(),
            });
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        };
        let before = entries.len();
        for name in &image.names {
            let Some(tag) = name.tag() else { continue };
            entries.push(descriptor(Some(json!({
                model::ANNOTATION_IMAGE_NAME: name.with_tag(tag).to_string(),
                model::ANNOTATION_REF_NAME: tag,
            }))));
        }
        if entries.len() == before {
            entries.push(descriptor(None));
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": model::OCI_INDEX,
        "manifests": entries,
    });
    let index = serde_json::to_vec(&index).expect("index.json serialises");
    common::append_bytes(&mut builder, INDEX_JSON, &index)?;
    builder
        .into_inner()
        .and_then(|out| out.flush())
        .map_err(|e| ArchiveError::io(OUTPUT, "finishing the archive", e))
}

/// Writes `blobs/` and `blobs/<alg>/` once each, for tools that extract without creating parents.
fn blob_dirs<W: Write>(
    builder: &mut tar::Builder<W>,
    dirs: &mut HashSet<String>,
    digest: &Digest,
) -> Result<(), ArchiveError> {
    for dir in [
        "blobs/".to_string(),
        format!("blobs/{}/", digest.algorithm()),
    ] {
        if dirs.insert(dir.clone()) {
            common::append_dir(builder, &dir)?;
        }
    }
    Ok(())
}

/// Whether the archive is an OCI layout.
pub(crate) fn detect(index: &ArchiveIndex<'_>) -> Result<bool, ArchiveError> {
    Ok(index.contains(INDEX_JSON)? && index.contains(OCI_LAYOUT)?)
}

/// Loads the images `index.json` lists.
pub(crate) fn load(
    index: &ArchiveIndex<'_>,
    sink: &mut dyn ImageSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let file = index.display.as_str();
    let layout: serde_json::Value = model::parse(
        &index.read_small(OCI_LAYOUT, "the archive")?,
        file,
        OCI_LAYOUT,
    )?;
    if !layout["imageLayoutVersion"].is_string() {
        return Err(ArchiveError::invalid(
            file,
            OCI_LAYOUT,
            "no imageLayoutVersion",
        ));
    }
    let top: Index = model::parse(
        &index.read_small(INDEX_JSON, "the archive")?,
        file,
        INDEX_JSON,
    )?;
    let fallback = docker_names(index)?;

    // One image per manifest digest, whatever number of names the index gives it.
    let mut order: Vec<Digest> = Vec::new();
    let mut wanted: HashMap<Digest, (Descriptor, Vec<ImageRef>)> = HashMap::new();
    for desc in &top.manifests {
        let names = annotation_names(file, desc)?;
        let slot = wanted.entry(desc.digest.clone()).or_insert_with(|| {
            order.push(desc.digest.clone());
            (desc.clone(), Vec::new())
        });
        for n in names {
            if !slot.1.contains(&n) {
                slot.1.push(n);
            }
        }
    }

    let mut stored: HashSet<Digest> = HashSet::new();
    let mut loaded = Vec::new();
    for digest in order {
        let (desc, mut names) = wanted
            .remove(&digest)
            .expect("every ordered digest is wanted");
        let (chosen, bytes) = pick_manifest(index, &desc, INDEX_JSON, 0)?;
        let by = format!("manifest {}", chosen.digest);
        let manifest: Manifest = model::parse(&bytes, file, &common::blob_path(&chosen.digest))?;
        for blob in manifest.layers.iter().chain([&manifest.config]) {
            if stored.insert(blob.digest.clone()) {
                let path = common::blob_path(&blob.digest);
                common::put_entry(index, sink, &path, &by, Some(&blob.digest), Some(blob.size))?;
            }
        }
        if stored.insert(chosen.digest.clone()) {
            let path = common::blob_path(&chosen.digest);
            common::put_entry(
                index,
                sink,
                &path,
                INDEX_JSON,
                Some(&chosen.digest),
                Some(chosen.size),
            )?;
        }
        if names.is_empty() {
            names = fallback
                .get(&manifest.config.digest)
                .cloned()
                .unwrap_or_default();
        }
        let media_type = [
            Some(chosen.media_type.as_str()),
            manifest.media_type.as_deref(),
        ]
        .into_iter()
        .flatten()
        .find(|m| !m.is_empty())
        .unwrap_or(model::OCI_MANIFEST)
        .to_string();
        let image = LoadedImage {
            manifest_digest: chosen.digest.clone(),
            manifest_media_type: media_type,
            config: manifest.config.digest.clone(),
            names,
        };
        sink.add_image(image.clone())
            .map_err(|e| ArchiveError::sink(file, format!("image {}", image.manifest_digest), e))?;
        loaded.push(image);
    }
    Ok(loaded)
}

/// Names an index entry gives its image.
///
/// `io.containerd.image.name` is a full reference. `org.opencontainers.image.ref.name` is a tag
/// for Docker and containerd but a whole reference for some tools; a bare word is taken as a
/// tag, and a tag alone names no repository, so it gives no name.
fn annotation_names(file: &str, desc: &Descriptor) -> Result<Vec<ImageRef>, ArchiveError> {
    let full = desc
        .annotations
        .get(model::ANNOTATION_IMAGE_NAME)
        .or_else(|| {
            desc.annotations
                .get(model::ANNOTATION_REF_NAME)
                .filter(|r| r.contains('/') || r.contains(':'))
        });
    match full {
        None => Ok(Vec::new()),
        Some(name) => ImageRef::parse(name)
            .map(|r| vec![r])
            .map_err(|e| ArchiveError::invalid(file, INDEX_JSON, e.to_string())),
    }
}

/// RepoTags of a `manifest.json` beside the layout, by config digest.
fn docker_names(index: &ArchiveIndex<'_>) -> Result<HashMap<Digest, Vec<ImageRef>>, ArchiveError> {
    let mut out = HashMap::new();
    if !index.contains("manifest.json")? {
        return Ok(out);
    }
    for entry in docker::entries(index)? {
        // Docker 25 names the config `blobs/sha256/<hex>`.
        let Some(hex) = entry.config.strip_prefix("blobs/sha256/") else {
            continue;
        };
        let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
            continue;
        };
        out.insert(digest, docker::names(&index.display, &entry)?);
    }
    Ok(out)
}

/// Reads a blob that is a JSON document, checked against its descriptor.
fn read_blob(
    index: &ArchiveIndex<'_>,
    desc: &Descriptor,
    by: &str,
) -> Result<Vec<u8>, ArchiveError> {
    let path = common::blob_path(&desc.digest);
    let bytes = index.read_small(&path, by)?;
    let mut hash = desc.digest.writer();
    hash.update(&bytes);
    let actual = hash.finish();
    if actual != desc.digest {
        return Err(ArchiveError::DigestMismatch {
            file: index.display.clone(),
            entry: path,
            expected: desc.digest.clone(),
            actual,
        });
    }
    if bytes.len() as u64 != desc.size {
        return Err(ArchiveError::SizeMismatch {
            file: index.display.clone(),
            entry: path,
            expected: desc.size,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Follows indexes down to one image manifest: the host platform's, else the first that is not
/// an attestation (platform `unknown/unknown`), else the first.
fn pick_manifest(
    index: &ArchiveIndex<'_>,
    desc: &Descriptor,
    by: &str,
    depth: usize,
) -> Result<(Descriptor, Vec<u8>), ArchiveError> {
    let file = index.display.as_str();
    let path = common::blob_path(&desc.digest);
    let bytes = read_blob(index, desc, by)?;
    let nested = if desc.media_type.is_empty() {
        // No media type in the descriptor: an index is what has `manifests`.
        let probe: serde_json::Value = model::parse(&bytes, file, &path)?;
        probe.get("manifests").is_some()
    } else {
        model::is_index(&desc.media_type)
    };
    if !nested {
        return Ok((desc.clone(), bytes));
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(ArchiveError::invalid(
            file,
            &path,
            "indexes nested too deep",
        ));
    }
    let inner: Index = model::parse(&bytes, file, &path)?;
    let host = Platform::host();
    let fits = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| host.matches(&p.os, &p.architecture, p.variant.as_deref()))
    };
    let usable = |d: &&Descriptor| d.platform.as_ref().is_none_or(|p| p.os != "unknown");
    let chosen = inner
        .manifests
        .iter()
        .find(fits)
        .or_else(|| inner.manifests.iter().find(usable))
        .or_else(|| inner.manifests.first())
        .ok_or_else(|| ArchiveError::invalid(file, &path, "index lists no manifests"))?;
    pick_manifest(index, chosen, &path, depth + 1)
}
