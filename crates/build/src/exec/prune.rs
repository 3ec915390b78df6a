//! The build cache index on disk: where source digests are kept, and pruning.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use berth_types::{BuildBackend, LayerRef};

use super::CacheEntry;

/// Where digests of source files are remembered: beside the cache index.
pub(super) fn file_digests_path(backend: &dyn BuildBackend) -> PathBuf {
    backend
        .cache_index()
        .with_file_name("build-file-digests.json")
}

/// Removes entries from the build cache index at `index`: every entry with `all`, else those
/// whose layer `present` reports gone (entries that made no layer stay: they cost nothing and
/// keep the configs, and so the ids, of cached rebuilds stable). Returns how many went.
pub fn prune_cache(
    index: &std::path::Path,
    all: bool,
    present: &dyn Fn(&LayerRef) -> bool,
) -> std::io::Result<usize> {
    if all {
        let digests = index.with_file_name("build-file-digests.json");
        if let Err(e) = fs::remove_file(&digests) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e);
            }
        }
    }
    let mut cache: BTreeMap<String, CacheEntry> = match fs::read(index) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let before = cache.len();
    if all {
        cache.clear();
    } else {
        cache.retain(|_, e| e.layer.as_ref().is_none_or(present));
    }
    let removed = before - cache.len();
    if cache.is_empty() {
        fs::remove_file(index)?;
    } else {
        let tmp = index.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, serde_json::to_vec(&cache)?)?;
        fs::rename(&tmp, index)?;
    }
    Ok(removed)
}
