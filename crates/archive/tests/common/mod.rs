//! Test doubles: an in-memory store that is both blob source and image sink, and tiny images.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};

use berth_archive::{BlobSource, ImageSink, LoadedImage, SaveImage, SinkError};
use berth_types::{Digest, DigestWriter, ImageRef};
use serde_json::json;

/// Blobs by digest and the images recorded.
#[derive(Default)]
pub struct MemStore {
    pub blobs: HashMap<Digest, Vec<u8>>,
    pub images: Vec<LoadedImage>,
    /// When false, `put_blob` stores whatever it is given, to show the archive code verifies on
    /// its own.
    pub trusting: bool,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        self.blobs.insert(d.clone(), data.to_vec());
        d
    }

    pub fn get(&self, d: &Digest) -> &[u8] {
        self.blobs
            .get(d)
            .unwrap_or_else(|| panic!("blob {d} not stored"))
    }

    pub fn json(&self, d: &Digest) -> serde_json::Value {
        serde_json::from_slice(self.get(d)).unwrap()
    }
}

impl BlobSource for MemStore {
    fn open(&self, d: &Digest) -> io::Result<Box<dyn Read>> {
        let data = self
            .blobs
            .get(d)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no blob {d}")))?;
        Ok(Box::new(io::Cursor::new(data.clone())))
    }
    fn size(&self, d: &Digest) -> io::Result<u64> {
        self.blobs
            .get(d)
            .map(|b| b.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no blob {d}")))
    }
}

impl ImageSink for MemStore {
    fn put_blob(
        &mut self,
        data: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), SinkError> {
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)?;
        let mut w = expected.map_or_else(DigestWriter::sha256, Digest::writer);
        w.write_all(&buf)?;
        let d = w.finish();
        if !self.trusting {
            if let Some(e) = expected {
                if *e != d {
                    return Err(format!("store: expected {e}, got {d}").into());
                }
            }
        }
        let len = buf.len() as u64;
        self.blobs.insert(d.clone(), buf);
        Ok((d, len))
    }
    fn add_image(&mut self, img: LoadedImage) -> Result<(), SinkError> {
        self.images.push(img);
        Ok(())
    }
}

/// A layer tar holding the given files.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// One stored layer: blob digest (as stored), size, diff id, media type.
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub media_type: &'static str,
}

/// Stores `tar` as a layer, gzip-compressed when asked.
pub fn add_layer(store: &mut MemStore, tar: &[u8], compress: bool) -> Layer {
    let diff_id = Digest::sha256_of(tar);
    let (blob, media_type) = if compress {
        (gzip(tar), "application/vnd.oci.image.layer.v1.tar+gzip")
    } else {
        (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar")
    };
    let digest = store.add(&blob);
    Layer {
        digest,
        size: blob.len() as u64,
        diff_id,
        media_type,
    }
}

/// Builds and stores a config and an OCI manifest for `layers`; returns what `save` takes.
pub fn make_image(store: &mut MemStore, layers: &[Layer], names: &[&str]) -> SaveImage {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
    }))
    .unwrap();
    let config_digest = store.add(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest_digest = store.add(&manifest);
    SaveImage {
        manifest,
        manifest_digest,
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config,
        names: names.iter().map(|n| ImageRef::parse(n).unwrap()).collect(),
    }
}

/// The members of a tar: name → bytes (directories and links left out).
pub fn members(archive: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut a = tar::Archive::new(archive);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

/// A tar whose members are written with raw names, bypassing the tar crate's own checks, so
/// hostile names can be built. Each member is (name, kind, link target, data).
pub fn raw_tar(members: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in members {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes `data` to a fresh file in `dir`.
pub fn write_file(dir: &std::path::Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}
