//! The image index, `images.json`: which images exist and which names point at them.

use std::fs;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_types::{Digest, ImageRef};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::error::StoreError;
use crate::lock;
use crate::Store;

/// What [`Store::commit_image`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewImage {
    /// The image manifest blob.
    pub manifest: Digest,
    /// Its media type (OCI or Docker schema 2).
    pub manifest_media_type: String,
    /// The index (manifest list) the manifest was chosen from, when there was one.
    pub index: Option<Digest>,
    /// The image config blob; its digest is the image id.
    pub config: Digest,
    /// Tags to point at this image, moved away from any image that had them.
    pub names: Vec<ImageRef>,
    /// `name@digest` references to record (Docker's RepoDigests).
    pub repo_digest_names: Vec<ImageRef>,
}

/// One image of the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    /// The config digest: Docker's image id.
    pub id: Digest,
    /// The manifest blob.
    pub manifest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The index the manifest came from, if any.
    pub index: Option<Digest>,
    /// Tags pointing at this image; empty for a dangling image.
    pub repo_tags: Vec<ImageRef>,
    /// `name@digest` references.
    pub repo_digests: Vec<ImageRef>,
    /// The layers' diff_ids, bottom first.
    pub layers: Vec<Digest>,
    /// Creation time from the config (RFC 3339), empty when the config has none.
    pub created: String,
    /// When the image was stored, in seconds since the Unix epoch.
    pub added: u64,
}

impl ImageRecord {
    /// An image without tags, as `docker images` shows `<none>:<none>`.
    pub fn is_dangling(&self) -> bool {
        self.repo_tags.is_empty()
    }
}

const INDEX_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    images: Vec<StoredImage>,
}

/// The on-disk form: references as strings, since `ImageRef` has no serde form of its own.
#[derive(Serialize, Deserialize)]
struct StoredImage {
    id: Digest,
    manifest: Digest,
    manifest_media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<Digest>,
    #[serde(default)]
    repo_tags: Vec<String>,
    #[serde(default)]
    repo_digests: Vec<String>,
    #[serde(default)]
    layers: Vec<Digest>,
    #[serde(default)]
    created: String,
    #[serde(default)]
    added: u64,
}

/// The fields of a manifest the store needs; lenient so Docker schema 2 parses too.
#[derive(Deserialize)]
pub(crate) struct ManifestLite {
    pub(crate) config: Descriptor,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
pub(crate) struct Descriptor {
    pub(crate) digest: Digest,
    #[serde(default)]
    pub(crate) size: u64,
}

#[derive(Deserialize)]
pub(crate) struct ConfigLite {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    rootfs: Option<RootFsLite>,
}

#[derive(Deserialize)]
struct RootFsLite {
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

impl ConfigLite {
    pub(crate) fn diff_ids(&self) -> &[Digest] {
        self.rootfs.as_ref().map_or(&[], |r| &r.diff_ids)
    }
}

/// How a user's string found its image.
pub(crate) enum Found {
    Tag(ImageRef),
    RepoDigest(ImageRef),
    Id,
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn not_found(s: &str) -> StoreError {
    StoreError::ImageNotFound(s.to_string())
}

/// Finds `s` among `images`: a name (Docker-normalised), `name@digest`, a full id, or an id
/// prefix of at least 4 hex digits.
pub(crate) fn resolve(images: &[ImageRecord], s: &str) -> Result<(usize, Found), StoreError> {
    if let Ok(d) = s.parse::<Digest>() {
        return match images.iter().position(|i| i.id == d) {
            Some(i) => Ok((i, Found::Id)),
            None => Err(not_found(s)),
        };
    }
    let by_hex = |hex: &str| images.iter().position(|i| i.id.hex() == hex);
    if s.len() == 64 && is_hex(s) {
        if let Some(i) = by_hex(s) {
            return Ok((i, Found::Id));
        }
    }
    if let Ok(r) = ImageRef::parse(s) {
        if let Some(d) = r.digest() {
            let pinned = r.with_digest(d.clone());
            if let Some(i) = images.iter().position(|i| i.repo_digests.contains(&pinned)) {
                return Ok((i, Found::RepoDigest(pinned)));
            }
            let same_name = |i: &ImageRecord| {
                i.repo_tags
                    .iter()
                    .chain(&i.repo_digests)
                    .any(|t| t.name() == r.name())
            };
            if let Some(i) = images
                .iter()
                .position(|i| (&i.manifest == d || i.index.as_ref() == Some(d)) && same_name(i))
            {
                return Ok((i, Found::RepoDigest(pinned)));
            }
        } else if let Some(i) = images.iter().position(|i| i.repo_tags.contains(&r)) {
            return Ok((i, Found::Tag(r)));
        }
    }
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    if hex.len() >= 4 && is_hex(hex) {
        let matches: Vec<usize> = (0..images.len())
            .filter(|&i| images[i].id.hex().starts_with(hex))
            .collect();
        match matches.len() {
            0 => {}
            1 => return Ok((matches[0], Found::Id)),
            count => {
                return Err(StoreError::AmbiguousId {
                    input: s.to_string(),
                    count,
                })
            }
        }
    }
    Err(not_found(s))
}

/// A tag as stored: with a tag and without a digest.
fn as_tag(r: &ImageRef) -> ImageRef {
    r.with_tag(r.tag().unwrap_or(berth_types::DEFAULT_TAG))
}

/// Points `name` at `images[idx]`, taking it from whichever image had it.
fn move_tag(images: &mut [ImageRecord], idx: usize, name: &ImageRef) {
    if name.tag().is_none() {
        if let Some(d) = name.digest() {
            let pinned = name.with_digest(d.clone());
            if !images[idx].repo_digests.contains(&pinned) {
                images[idx].repo_digests.push(pinned);
            }
            return;
        }
    }
    let tag = as_tag(name);
    for img in images.iter_mut() {
        img.repo_tags.retain(|t| t != &tag);
    }
    images[idx].repo_tags.push(tag);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Every image, read without a lock: `images.json` is only ever replaced by rename.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let path = self.paths.images_file();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let file: IndexFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version > INDEX_VERSION {
            return Err(corrupt(format!(
                "index version {} is newer than the supported version {INDEX_VERSION}",
                file.version
            )));
        }
        let refs = |v: Vec<String>| -> Result<Vec<ImageRef>, StoreError> {
            v.iter()
                .map(|s| ImageRef::parse(s).map_err(|e| corrupt(e.to_string())))
                .collect()
        };
        file.images
            .into_iter()
            .map(|s| {
                Ok(ImageRecord {
                    id: s.id,
                    manifest: s.manifest,
                    manifest_media_type: s.manifest_media_type,
                    index: s.index,
                    repo_tags: refs(s.repo_tags)?,
                    repo_digests: refs(s.repo_digests)?,
                    layers: s.layers,
                    created: s.created,
                    added: s.added,
                })
            })
            .collect()
    }

    /// Read-modify-write of the index under `locks/images`; nothing is written when `f` fails.
    pub(crate) fn update_images<T>(
        &self,
        f: impl FnOnce(&mut Vec<ImageRecord>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _lock = lock::exclusive(&self.paths.images_lock())?;
        let mut images = self.images()?;
        let out = f(&mut images)?;
        let file = IndexFile {
            version: INDEX_VERSION,
            images: images
                .into_iter()
                .map(|i| StoredImage {
                    id: i.id,
                    manifest: i.manifest,
                    manifest_media_type: i.manifest_media_type,
                    index: i.index,
                    repo_tags: i.repo_tags.iter().map(|r| r.to_string()).collect(),
                    repo_digests: i.repo_digests.iter().map(|r| r.to_string()).collect(),
                    layers: i.layers,
                    created: i.created,
                    added: i.added,
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("image index serialises");
        write_atomic(&self.paths, &self.paths.images_file(), &json)?;
        Ok(out)
    }

    pub(crate) fn manifest_lite(&self, d: &Digest) -> Result<ManifestLite, StoreError> {
        let bytes = self.read_blob(d)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidContent {
            what: "manifest",
            digest: d.clone(),
            reason: e.to_string(),
        })
    }

    pub(crate) fn config_lite(&self, d: &Digest) -> Result<ConfigLite, StoreError> {
        let bytes = self.read_blob(d)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidContent {
            what: "image config",
            digest: d.clone(),
            reason: e.to_string(),
        })
    }

    /// Records an image whose manifest, config and layer blobs are all stored, and moves the
    /// given names to it. An image left without names becomes dangling.
    pub fn commit_image(&self, img: &NewImage) -> Result<ImageRecord, StoreError> {
        // Checked under the index lock, which garbage collection also holds, so content cannot
        // vanish between the check and the record.
        self.update_images(|images| {
            if let Some(index) = &img.index {
                if !self.has_blob(index) {
                    return Err(StoreError::BlobNotFound(index.clone()));
                }
            }
            let manifest = self.manifest_lite(&img.manifest)?;
            if manifest.config.digest != img.config {
                return Err(StoreError::InvalidContent {
                    what: "manifest",
                    digest: img.manifest.clone(),
                    reason: format!(
                        "names config {}, not {}",
                        manifest.config.digest, img.config
                    ),
                });
            }
            if let Some(missing) = manifest.layers.iter().find(|l| !self.has_blob(&l.digest)) {
                return Err(StoreError::BlobNotFound(missing.digest.clone()));
            }
            let config = self.config_lite(&img.config)?;
            if config.diff_ids().len() != manifest.layers.len() {
                return Err(StoreError::InvalidContent {
                    what: "image config",
                    digest: img.config.clone(),
                    reason: format!(
                        "{} diff_ids for {} manifest layers",
                        config.diff_ids().len(),
                        manifest.layers.len()
                    ),
                });
            }
            let idx = match images.iter().position(|i| i.id == img.config) {
                Some(i) => i,
                None => {
                    images.push(ImageRecord {
                        id: img.config.clone(),
                        manifest: img.manifest.clone(),
                        manifest_media_type: String::new(),
                        index: None,
                        repo_tags: Vec::new(),
                        repo_digests: Vec::new(),
                        layers: Vec::new(),
                        created: String::new(),
                        added: now(),
                    });
                    images.len() - 1
                }
            };
            let rec = &mut images[idx];
            rec.manifest = img.manifest.clone();
            rec.manifest_media_type = img.manifest_media_type.clone();
            rec.index = img.index.clone();
            rec.layers = config.diff_ids().to_vec();
            rec.created = config.created.clone().unwrap_or_default();
            for name in &img.names {
                move_tag(images, idx, name);
            }
            for name in &img.repo_digest_names {
                let pinned = match name.digest() {
                    Some(d) => name.with_digest(d.clone()),
                    None => name.with_digest(img.index.clone().unwrap_or(img.manifest.clone())),
                };
                move_tag(images, idx, &pinned);
            }
            Ok(images[idx].clone())
        })
    }

    /// Finds an image by name (`alpine` is `docker.io/library/alpine:latest`), `name@digest`,
    /// full id, or unique id prefix of at least 4 hex digits.
    pub fn lookup(&self, s: &str) -> Result<ImageRecord, StoreError> {
        let images = self.images()?;
        let (i, _) = resolve(&images, s)?;
        Ok(images[i].clone())
    }

    /// Points `name` at the image with id `image`, moving it from any other image.
    pub fn tag(&self, image: &Digest, name: &ImageRef) -> Result<(), StoreError> {
        self.update_images(|images| {
            let idx = images
                .iter()
                .position(|i| &i.id == image)
                .ok_or_else(|| not_found(&image.to_string()))?;
            move_tag(images, idx, name);
            Ok(())
        })
    }

    /// The image's manifest as OCI types.
    pub fn manifest(
        &self,
        img: &ImageRecord,
    ) -> Result<oci_spec::image::ImageManifest, StoreError> {
        let bytes = self.read_blob(&img.manifest)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidContent {
            what: "manifest",
            digest: img.manifest.clone(),
            reason: e.to_string(),
        })
    }

    /// The image's config as OCI types.
    pub fn config(
        &self,
        img: &ImageRecord,
    ) -> Result<oci_spec::image::ImageConfiguration, StoreError> {
        let bytes = self.read_blob(&img.id)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidContent {
            what: "image config",
            digest: img.id.clone(),
            reason: e.to_string(),
        })
    }

    /// Docker's image "Size": unpacked layer sizes, or a layer's compressed blob size where it
    /// is not unpacked.
    pub fn image_size(&self, img: &ImageRecord) -> Result<u64, StoreError> {
        let manifest = self.manifest_lite(&img.manifest)?;
        let mut total = 0;
        for (i, diff_id) in img.layers.iter().enumerate() {
            total += match self.layer_size(diff_id)? {
                Some(s) => s,
                None => manifest.layers.get(i).map_or(0, |l| l.size),
            };
        }
        Ok(total)
    }
}
