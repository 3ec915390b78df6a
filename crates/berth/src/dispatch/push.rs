//! `push`: every blob the registry lacks is mounted from a sibling repository when possible,
//! else uploaded; the manifest goes last, byte for byte as stored, so its digest is unchanged.

use anyhow::{Context, Result};
use berth_registry::Client;
use berth_store::{ImageRecord, NewImage, Store};
use berth_types::{Digest, ImageRef};

use crate::printer::{Counting, Printer};

pub fn push(
    store: &Store,
    client: &Client,
    img: &ImageRecord,
    r: &ImageRef,
    p: &Printer,
) -> Result<Digest> {
    p.status(format!(
        "The push refers to repository [{}]",
        r.familiar_name()
    ));
    let manifest = store.manifest(img)?;
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    for l in manifest.layers() {
        blobs.push((l.digest().to_string().parse()?, l.size()));
    }
    blobs.push((
        manifest.config().digest().to_string().parse()?,
        manifest.config().size(),
    ));
    // A sibling repository on the same registry that already holds this image's blobs.
    let mount_from: Option<String> = img
        .repo_digests
        .iter()
        .chain(img.repo_tags.iter())
        .find(|n| n.registry() == r.registry() && n.repository() != r.repository())
        .map(|n| n.repository().to_string());

    super::parallel(&blobs, |_, (digest, size)| {
        let bar = p.bar(digest.short(), Some(*size));
        if client.blob_exists(r, digest)? {
            bar.finish("Layer already exists");
            return Ok(());
        }
        if let Some(from) = &mount_from {
            if client.mount_blob(r, digest, from)? {
                bar.finish("Mounted from another repository");
                return Ok(());
            }
        }
        bar.message("Pushing");
        let file = store.open_blob(digest)?;
        let data = Counting {
            inner: file,
            bar: bar.clone(),
        };
        client
            .push_blob(r, digest, *size, Box::new(data))
            .with_context(|| format!("pushing blob {digest} to {r}"))?;
        bar.finish("Pushed");
        Ok(())
    })?;

    let bytes = store.read_blob(&img.manifest)?;
    let digest = client.put_manifest(r, &img.manifest_media_type, &bytes)?;
    p.status(format!(
        "{}: digest: {digest} size: {}",
        r.tag().unwrap_or("latest"),
        bytes.len()
    ));
    // Remember where the image now lives, as Docker records RepoDigests after a push.
    let mut digests = img.repo_digests.clone();
    digests.push(r.with_digest(digest.clone()));
    store.commit_image(&NewImage {
        manifest: img.manifest.clone(),
        manifest_media_type: img.manifest_media_type.clone(),
        index: img.index.clone(),
        config: img.id.clone(),
        names: img.repo_tags.clone(),
        repo_digest_names: digests,
    })?;
    Ok(digest)
}
