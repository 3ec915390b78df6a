//! Layers: a blob unpacked into `layers/<diff_id hex>/`, in overlayfs's native format.

mod entry;
mod fsutil;
mod pipe;

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;

use berth_types::Digest;
use serde::{Deserialize, Serialize};

use crate::atomic::{sync_dir, write_atomic};
use crate::error::{IoContext, StoreError};
use crate::lock;
use crate::Store;
use entry::Unpacker;
pub use fsutil::remove_tree;

/// How to unpack a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackOptions {
    /// The caller is not root: files stay owned by the caller (no chown), setuid/setgid bits
    /// are dropped and device nodes skipped, each with a warning. Fifos are still created.
    pub rootless: bool,
}

impl Default for UnpackOptions {
    /// Rootless unless the effective uid is 0.
    fn default() -> Self {
        UnpackOptions {
            rootless: !rustix::process::geteuid().is_root(),
        }
    }
}

/// What an unpack did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Entries skipped or changed, one line each, naming the tar entry.
    pub warnings: Vec<String>,
    /// Bytes of regular-file content in the layer.
    pub size: u64,
}

/// `layers/<hex>.json`.
#[derive(Serialize, Deserialize)]
struct LayerRecord {
    size: u64,
    blob: Digest,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Store {
    /// True when the layer is unpacked. Takes no lock: a published layer is immutable.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        fs::symlink_metadata(self.paths.layer(diff_id)).is_ok_and(|m| m.is_dir())
    }

    /// Where the layer is (or would be) unpacked; usable as an overlayfs lowerdir.
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.paths.layer(diff_id)
    }

    /// Bytes of file content in an unpacked layer, `None` when it is not unpacked.
    pub fn layer_size(&self, diff_id: &Digest) -> Result<Option<u64>, StoreError> {
        if !self.has_layer(diff_id) {
            return Ok(None);
        }
        let path = self.paths.layer_record(diff_id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let rec: LayerRecord = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(rec.size))
    }

    /// Unpacks the blob (gzip, zstd or plain tar, told apart by magic bytes) into
    /// `layers/<diff_id>`, verifying that the uncompressed stream hashes to `diff_id`. Nothing
    /// is published unless the whole stream was read and verified.
    pub fn unpack_layer(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        opts: &UnpackOptions,
    ) -> Result<UnpackReport, StoreError> {
        self.unpack_layer_with(blob, diff_id, opts, None, &mut || Ok(()))
    }

    /// [`Store::unpack_layer`] reading the blob's bytes from `src` as they arrive (a download
    /// in progress) instead of from the store. `start` is called once the layer's lock is held
    /// and the layer found missing, and should start whatever feeds `src`: started earlier, a
    /// download could hold its blob's lock while waiting for this reader, which could be
    /// waiting for the layer's lock held by another process waiting for that blob. Once the
    /// layer is unpacked and its diff_id verified, `ready` is called, and the layer is
    /// published only if it returns `Ok`: the caller's word that the blob itself was complete
    /// and verified.
    pub fn unpack_layer_from(
        &self,
        src: &mut (dyn io::Read + Send),
        blob: &Digest,
        diff_id: &Digest,
        opts: &UnpackOptions,
        start: &mut dyn FnMut(),
        ready: &mut dyn FnMut() -> Result<(), StoreError>,
    ) -> Result<UnpackReport, StoreError> {
        self.unpack_layer_with(blob, diff_id, opts, Some((src, start)), ready)
    }

    fn unpack_layer_with(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        opts: &UnpackOptions,
        src: Option<(&mut (dyn io::Read + Send), &mut dyn FnMut())>,
        ready: &mut dyn FnMut() -> Result<(), StoreError>,
    ) -> Result<UnpackReport, StoreError> {
        if let Some(size) = self.layer_size(diff_id)? {
            return Ok(UnpackReport {
                warnings: Vec::new(),
                size,
            });
        }
        let _lock = lock::exclusive(&self.paths.layer_lock(diff_id))?;
        if let Some(size) = self.layer_size(diff_id)? {
            return Ok(UnpackReport {
                warnings: Vec::new(),
                size,
            });
        }
        let src: Box<dyn Read + Send + '_> = match src {
            Some((src, start)) => {
                start();
                Box::new(src)
            }
            None => Box::new(self.open_blob(blob)?),
        };
        let tmp = self.paths.temp(&format!("layer-{}", diff_id.hex()));
        fs::create_dir(&tmp).at(&tmp)?;
        let result = self
            .unpack_into(src, blob, diff_id, opts, &tmp)
            .and_then(|r| ready().map(|()| r));
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = self.remove_tree(&tmp);
                return Err(e);
            }
        };
        let published = (|| {
            let record = LayerRecord {
                size: report.size,
                blob: blob.clone(),
            };
            let json = serde_json::to_vec(&record).expect("layer record serialises");
            write_atomic(&self.paths, &self.paths.layer_record(diff_id), &json)?;
            let dest = self.paths.layer(diff_id);
            // A leftover from an interrupted removal; the lock says nobody else uses it.
            self.remove_tree(&dest).at(&dest)?;
            fs::rename(&tmp, &dest).at(&dest)?;
            sync_dir(&self.paths.layers_dir())
        })();
        if let Err(e) = published {
            let _ = self.remove_tree(&tmp);
            return Err(e);
        }
        Ok(report)
    }

    fn unpack_into(
        &self,
        file: Box<dyn Read + Send + '_>,
        blob: &Digest,
        diff_id: &Digest,
        opts: &UnpackOptions,
        tmp: &std::path::Path,
    ) -> Result<UnpackReport, StoreError> {
        let corrupt = |e: io::Error| StoreError::CorruptLayer {
            blob: blob.clone(),
            reason: e.to_string(),
        };
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let magic = reader.fill_buf().map_err(corrupt)?.to_vec();
        let decoded: Box<dyn Read + Send> = if magic.starts_with(GZIP_MAGIC) {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else if magic.starts_with(ZSTD_MAGIC) {
            Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(corrupt)?)
        } else {
            Box::new(reader)
        };
        let mut unpacker = Unpacker::new(tmp.to_path_buf(), blob.clone(), opts.rootless);
        let actual = std::thread::scope(|s| {
            let (decoded, hashed) = pipe::decode_in_background(s, decoded, diff_id.writer());
            let mut archive = tar::Archive::new(decoded);
            for entry in archive.entries().map_err(corrupt)? {
                let mut entry = entry.map_err(corrupt)?;
                unpacker.entry(&mut entry)?;
            }
            // Zero blocks after the end-of-archive marker are part of the diff_id too.
            io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(corrupt)?;
            Ok::<_, StoreError>(hashed.join().expect("the decoding thread does not panic"))
        })?;
        if &actual != diff_id {
            return Err(StoreError::DiffIdMismatch {
                blob: blob.clone(),
                expected: diff_id.clone(),
                actual,
            });
        }
        unpacker.finish_dirs()?;
        // One syncfs instead of an fsync per file: the layer must be on disk before the rename
        // makes it visible, or a power loss could publish empty files.
        let dir = fs::File::open(tmp).at(tmp)?;
        rustix::fs::syncfs(&dir).map_err(io::Error::from).at(tmp)?;
        Ok(UnpackReport {
            warnings: unpacker.warnings,
            size: unpacker.size,
        })
    }
}
