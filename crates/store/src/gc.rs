//! Removing images and collecting what no image or container references.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use berth_types::{Digest, ImageRef};
use serde::Deserialize;

use crate::error::{IoContext, StoreError};
use crate::images::{resolve, Found};
use crate::lock::{self, LockGuard};
use crate::Store;

/// Temps younger than this may belong to a live writer that holds no lock on them.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// What [`Store::remove`] did, in Docker's `Untagged:` / `Deleted:` terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// References removed.
    pub untagged: Vec<ImageRef>,
    /// Image ids deleted.
    pub deleted: Vec<Digest>,
}

/// What [`Store::prune`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Image ids deleted.
    pub images_deleted: Vec<Digest>,
    /// Bytes freed on disk (blobs, layers, stale temps).
    pub space_reclaimed: u64,
}

/// `docker system df` for images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Images in the index.
    pub images: usize,
    /// Images some container record uses.
    pub active_images: usize,
    /// Bytes of all images, each layer counted once (unpacked size, else compressed).
    pub images_size: u64,
    /// Of `images_size`, bytes referenced only by images no container uses.
    pub reclaimable: u64,
    /// Unpacked layers on disk.
    pub layers: usize,
    /// Bytes of file content in unpacked layers.
    pub layers_size: u64,
    /// Blobs on disk.
    pub blobs: usize,
    /// Bytes of blobs on disk.
    pub blobs_size: u64,
    /// Container records.
    pub containers: usize,
}

/// Held by a writer that adds content before an image references it (a pull between its
/// first blob and [`Store::commit_image`]); garbage collection does not sweep meanwhile.
#[derive(Debug)]
pub struct GcGuard {
    _lock: LockGuard,
}

#[derive(Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Image")]
    image: String,
}

impl Store {
    /// Keeps garbage collection away until the guard is dropped. Shared: any number of
    /// writers hold it at once.
    pub fn hold_gc(&self) -> Result<GcGuard, StoreError> {
        Ok(GcGuard {
            _lock: lock::shared(&self.paths.gc_lock())?,
        })
    }

    /// Container records as (container id, image id). Records without a readable image are
    /// skipped: the runtime writes them atomically, so such a record is not a container's.
    pub fn container_images(&self) -> Result<Vec<(String, Digest)>, StoreError> {
        let dir = self.paths.containers_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.at(&dir)?;
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(bytes) = fs::read(self.paths.container_config(&id)) else {
                continue;
            };
            let Ok(cfg) = serde_json::from_slice::<ContainerConfig>(&bytes) else {
                continue;
            };
            if let Ok(d) = cfg.image.parse::<Digest>() {
                out.push((id, d));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Docker's `rmi`: a name that is one of several tags is only untagged; an image removed by
    /// id with tags in several repositories, or used by a container, needs `force`.
    pub fn remove(&self, s: &str, force: bool) -> Result<RemoveReport, StoreError> {
        let containers = self.container_images()?;
        let report = self.update_images(|images| {
            let (idx, found) = resolve(images, s)?;
            let id = images[idx].id.clone();
            let mut report = RemoveReport::default();
            let delete = match &found {
                Found::Tag(r) => images[idx].repo_tags.len() == 1 && &images[idx].repo_tags[0] == r,
                Found::RepoDigest(r) => {
                    images[idx].repo_tags.is_empty()
                        && images[idx].repo_digests.iter().all(|d| d == r)
                }
                Found::Id => {
                    let repos: BTreeSet<String> =
                        images[idx].repo_tags.iter().map(|t| t.name()).collect();
                    if repos.len() > 1 && !force {
                        return Err(StoreError::MustForce {
                            image: id,
                            reason: "image is referenced in multiple repositories".into(),
                        });
                    }
                    true
                }
            };
            if !delete {
                let img = &mut images[idx];
                match found {
                    Found::Tag(r) => {
                        img.repo_tags.retain(|t| t != &r);
                        report.untagged.push(r);
                    }
                    Found::RepoDigest(r) => {
                        img.repo_digests.retain(|t| t != &r);
                        report.untagged.push(r);
                    }
                    Found::Id => {}
                }
                return Ok(report);
            }
            if !force {
                if let Some((container, _)) = containers.iter().find(|(_, img)| img == &id) {
                    return Err(StoreError::ImageInUse {
                        image: id,
                        container: container.clone(),
                    });
                }
            }
            let img = images.remove(idx);
            report.untagged.extend(img.repo_tags);
            report.untagged.extend(img.repo_digests);
            report.deleted.push(id);
            Ok(report)
        })?;
        if !report.deleted.is_empty() {
            self.collect_garbage()?;
        }
        Ok(report)
    }

    /// Deletes dangling images (with `all`, every image no container uses), then everything
    /// no image or container references and temps older than an hour that no writer holds.
    pub fn prune(&self, all: bool) -> Result<PruneReport, StoreError> {
        self.prune_selected(all, &|_| true)
    }

    /// [`Store::prune`] of only the images `selected` accepts (by config digest).
    pub fn prune_selected(
        &self,
        all: bool,
        selected: &dyn Fn(&Digest) -> bool,
    ) -> Result<PruneReport, StoreError> {
        let used: HashSet<Digest> = self
            .container_images()?
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        let images_deleted = self.update_images(|images| {
            let mut deleted = Vec::new();
            images.retain(|i| {
                let drop = (all || i.is_dangling()) && !used.contains(&i.id) && selected(&i.id);
                if drop {
                    deleted.push(i.id.clone());
                }
                !drop
            });
            Ok(deleted)
        })?;
        let space_reclaimed = self.collect_garbage()?;
        Ok(PruneReport {
            images_deleted,
            space_reclaimed,
        })
    }

    /// Removes unreferenced blobs and layers and stale temps; returns the bytes freed. Skipped
    /// (0) while a writer holds [`Store::hold_gc`].
    pub fn collect_garbage(&self) -> Result<u64, StoreError> {
        let Some(_gc) = lock::try_exclusive(&self.paths.gc_lock())? else {
            return Ok(0);
        };
        // Holding the index lock keeps commit_image from recording content being swept.
        let _images = lock::exclusive(&self.paths.images_lock())?;
        let mut blobs: HashSet<PathBuf> = HashSet::new();
        let mut layers: HashSet<String> = HashSet::new();
        let mut configs: Vec<Digest> = Vec::new();
        for img in self.images()? {
            for d in [Some(&img.manifest), img.index.as_ref(), Some(&img.id)]
                .into_iter()
                .flatten()
            {
                blobs.insert(self.paths.blob(d));
            }
            if let Ok(m) = self.manifest_lite(&img.manifest) {
                blobs.extend(m.layers.iter().map(|l| self.paths.blob(&l.digest)));
            }
            layers.extend(img.layers.iter().map(|l| l.hex().to_string()));
            configs.push(img.id);
        }
        // A container keeps its image's config and layers even after `rmi --force`.
        for (_, config) in self.container_images()? {
            blobs.insert(self.paths.blob(&config));
            if let Ok(c) = self.config_lite(&config) {
                layers.extend(c.diff_ids().iter().map(|l| l.hex().to_string()));
            }
        }
        let mut freed = self.sweep_blobs(&blobs)?;
        freed += self.sweep_layers(&layers)?;
        freed += self.sweep_temps()?;
        self.sweep_spares(SystemTime::now() - STALE_TEMP)
            .at(self.paths.spare_dir())?;
        Ok(freed)
    }

    fn sweep_blobs(&self, keep: &HashSet<PathBuf>) -> Result<u64, StoreError> {
        let mut freed = 0;
        for alg_dir in list(&self.paths.blobs_dir())? {
            for path in list(&alg_dir)? {
                if keep.contains(&path) {
                    continue;
                }
                let Some(d) = digest_of(&alg_dir, &path) else {
                    continue;
                };
                let Some(_lock) = lock::try_exclusive(&self.paths.blob_lock(&d))? else {
                    continue;
                };
                let size = fs::symlink_metadata(&path).map_or(0, |m| m.len());
                fs::remove_file(&path).at(&path)?;
                freed += size;
            }
        }
        Ok(freed)
    }

    fn sweep_layers(&self, keep: &HashSet<String>) -> Result<u64, StoreError> {
        let mut freed = 0;
        for path in list(&self.paths.layers_dir())? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let hex = name.strip_suffix(".json").unwrap_or(name);
            if keep.contains(hex) {
                continue;
            }
            let Ok(diff_id) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            let Some(_lock) = lock::try_exclusive(&self.paths.layer_lock(&diff_id))? else {
                continue;
            };
            if name.ends_with(".json") {
                if !self.has_layer(&diff_id) {
                    remove_file_if_present(&path)?;
                }
                continue;
            }
            freed += self.layer_size(&diff_id).ok().flatten().unwrap_or(0);
            // Unpublish first, so no reader ever sees a half-deleted layer under its name.
            let doomed = self.paths.temp(&format!("gc-{hex}"));
            fs::rename(&path, &doomed).at(&path)?;
            remove_file_if_present(&self.paths.layer_record(&diff_id))?;
            self.remove_tree(&doomed).at(&doomed)?;
        }
        Ok(freed)
    }

    fn sweep_temps(&self) -> Result<u64, StoreError> {
        let mut freed = 0;
        let cutoff = SystemTime::now() - STALE_TEMP;
        for path in list(&self.paths.tmp_dir())? {
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // gc- directories are already unpublished: finish deleting them whatever their age.
            let gc_leftover = name.starts_with("gc-");
            if !gc_leftover && meta.modified().is_ok_and(|m| m > cutoff) {
                continue;
            }
            let lock_path = temp_lock(&self.paths, name);
            let _lock = match lock_path {
                Some(p) => match lock::try_exclusive(&p)? {
                    Some(l) => Some(l),
                    None => continue,
                },
                None => None,
            };
            freed += if meta.is_dir() { 0 } else { meta.len() };
            if meta.is_dir() {
                self.remove_tree(&path).at(&path)?;
            } else {
                fs::remove_file(&path).at(&path)?;
            }
        }
        Ok(freed)
    }

    /// Space used by images, layers, blobs and containers.
    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        let images = self.images()?;
        let used: HashSet<Digest> = self
            .container_images()?
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        let containers = self.container_images()?.len();
        let mut sizes: HashMap<Digest, u64> = HashMap::new();
        let mut active_layers: HashSet<Digest> = HashSet::new();
        for img in &images {
            let manifest = self.manifest_lite(&img.manifest).ok();
            for (i, diff_id) in img.layers.iter().enumerate() {
                let size = match self.layer_size(diff_id)? {
                    Some(s) => s,
                    None => manifest
                        .as_ref()
                        .and_then(|m| m.layers.get(i))
                        .map_or(0, |l| l.size),
                };
                sizes.insert(diff_id.clone(), size);
                if used.contains(&img.id) {
                    active_layers.insert(diff_id.clone());
                }
            }
        }
        let images_size = sizes.values().sum();
        let reclaimable = sizes
            .iter()
            .filter(|(d, _)| !active_layers.contains(*d))
            .map(|(_, s)| s)
            .sum();
        let mut du = DiskUsage {
            images: images.len(),
            active_images: images.iter().filter(|i| used.contains(&i.id)).count(),
            images_size,
            reclaimable,
            containers,
            ..DiskUsage::default()
        };
        for path in list(&self.paths.layers_dir())? {
            let Some(hex) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Ok(d) = format!("sha256:{hex}").parse::<Digest>() {
                if let Some(size) = self.layer_size(&d)? {
                    du.layers += 1;
                    du.layers_size += size;
                }
            }
        }
        for alg_dir in list(&self.paths.blobs_dir())? {
            for path in list(&alg_dir)? {
                du.blobs += 1;
                du.blobs_size += fs::symlink_metadata(&path).map_or(0, |m| m.len());
            }
        }
        Ok(du)
    }
}

/// The lock that guards a temp, when its writer takes one.
fn temp_lock(paths: &crate::Paths, name: &str) -> Option<PathBuf> {
    let digest = |hex: &str| format!("sha256:{hex}").parse::<Digest>().ok();
    if let Some(hex) = name
        .strip_prefix("blob-")
        .and_then(|n| n.strip_suffix(".partial"))
    {
        return digest(hex).map(|d| paths.blob_lock(&d));
    }
    if let Some(rest) = name.strip_prefix("layer-") {
        return digest(rest.get(..64)?).map(|d| paths.layer_lock(&d));
    }
    None
}

fn remove_file_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(path, e)),
        _ => Ok(()),
    }
}

fn digest_of(alg_dir: &Path, path: &Path) -> Option<Digest> {
    let alg = alg_dir.file_name()?.to_str()?;
    let hex = path.file_name()?.to_str()?;
    format!("{alg}:{hex}").parse().ok()
}

/// Entries of `dir`, sorted; nothing when it does not exist.
fn list(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        out.push(e.at(dir)?.path());
    }
    out.sort();
    Ok(out)
}
