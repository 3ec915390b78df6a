//! The store seen through the archive crate's traits: blobs come out for `save`, and `load` /
//! `import` put blobs in, unpack layers, and publish the image last.

use std::io::Read;

use anyhow::Result;
use berth_archive::{BlobSource, ImageSink, LoadedImage};
use berth_store::{NewImage, Store};
use berth_types::Digest;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct StoreBlobs<'a>(pub &'a Store);

impl BlobSource for StoreBlobs<'_> {
    fn open(&self, d: &Digest) -> std::io::Result<Box<dyn Read>> {
        let f = self.0.open_blob(d).map_err(std::io::Error::other)?;
        Ok(Box::new(f))
    }
    fn size(&self, d: &Digest) -> std::io::Result<u64> {
        self.0.blob_size(d).map_err(std::io::Error::other)
    }
}

pub struct StoreSink<'a> {
    pub store: &'a Store,
    pub warnings: Vec<String>,
}

impl ImageSink for StoreSink<'_> {
    fn put_blob(
        &mut self,
        data: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), BoxError> {
        Ok(self.store.put_blob_from(data, expected)?)
    }

    fn add_image(&mut self, img: LoadedImage) -> Result<(), BoxError> {
        let manifest: oci_spec::image::ImageManifest =
            serde_json::from_slice(&self.store.read_blob(&img.manifest_digest)?)?;
        let config: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&self.store.read_blob(&img.config)?)?;
        for (layer, diff_id) in manifest.layers().iter().zip(config.rootfs().diff_ids()) {
            let diff_id: Digest = diff_id.parse()?;
            if !self.store.has_layer(&diff_id) {
                let blob: Digest = layer.digest().to_string().parse()?;
                let report = super::delegate::unpack_layer(self.store, &blob, &diff_id)?;
                self.warnings.extend(report.warnings);
            }
        }
        self.store.commit_image(&NewImage {
            manifest: img.manifest_digest,
            manifest_media_type: img.manifest_media_type,
            index: None,
            config: img.config,
            names: img.names,
            repo_digest_names: Vec::new(),
        })?;
        Ok(())
    }
}
