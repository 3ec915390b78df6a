//! Content-addressed blobs: `blobs/<algorithm>/<hex>`, verified before they appear.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use berth_types::{Digest, DigestWriter};

use crate::atomic::{sync_dir, write_atomic};
use crate::error::{IoContext, StoreError};
use crate::lock::{self, LockGuard};
use crate::Store;

const COPY_BUF: usize = 256 * 1024;

/// What [`Store::begin_blob`] found.
#[derive(Debug)]
pub enum Ingest {
    /// The blob is already stored (perhaps written meanwhile by another process).
    Present,
    /// The caller should write the blob's bytes from [`BlobWriter::offset`] on.
    Write(BlobWriter),
}

/// Writes one blob into `tmp/blob-<hex>.partial` while holding the blob's lock.
///
/// Dropping it without [`BlobWriter::commit`] keeps the partial file, so a later writer
/// resumes from [`BlobWriter::offset`] instead of downloading everything again.
pub struct BlobWriter {
    file: File,
    partial: PathBuf,
    dest: PathBuf,
    // Boxed: the hash state is large and `Ingest::Present` is the common case.
    hasher: Box<DigestWriter>,
    expected: Digest,
    size: Option<u64>,
    _lock: LockGuard,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("digest", &self.expected)
            .field("offset", &self.hasher.len())
            .field("size", &self.size)
            .finish()
    }
}

impl BlobWriter {
    /// Bytes already in the partial file: ask the server for the rest (HTTP `Range`).
    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    /// Discards the partial bytes, for a server that answered a range request with the whole
    /// blob.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0).at(&self.partial)?;
        self.file.seek(SeekFrom::Start(0)).at(&self.partial)?;
        *self.hasher = self.expected.writer();
        Ok(())
    }

    /// Verifies digest and size, then publishes the blob. On a mismatch the partial file is
    /// deleted, since resuming from bad bytes could never succeed.
    pub fn commit(self) -> Result<(), StoreError> {
        let BlobWriter {
            file,
            partial,
            dest,
            hasher,
            expected,
            size,
            _lock,
        } = self;
        let len = hasher.len();
        let actual = hasher.finish();
        let discard = |e: StoreError| {
            let _ = fs::remove_file(&partial);
            Err(e)
        };
        if let Some(size) = size {
            if size != len {
                return discard(StoreError::SizeMismatch {
                    digest: expected,
                    expected: size,
                    actual: len,
                });
            }
        }
        if actual != expected {
            return discard(StoreError::DigestMismatch { expected, actual });
        }
        file.sync_all().at(&partial)?;
        drop(file);
        fs::rename(&partial, &dest).at(&dest)?;
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Store {
    /// True when the blob is stored. Takes no lock: a stored blob is complete and immutable.
    pub fn has_blob(&self, d: &Digest) -> bool {
        fs::symlink_metadata(self.paths.blob(d)).is_ok_and(|m| m.is_file())
    }

    /// Where the blob is (or would be) stored.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.paths.blob(d)
    }

    /// The stored blob's length in bytes.
    pub fn blob_size(&self, d: &Digest) -> Result<u64, StoreError> {
        match fs::metadata(self.paths.blob(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(d.clone()))
            }
            Err(e) => Err(StoreError::io(self.paths.blob(d), e)),
        }
    }

    /// Opens the stored blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, StoreError> {
        let path = self.paths.blob(d);
        match File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(d.clone()))
            }
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    /// Reads a small blob (manifest, config) whole and re-verifies its digest, so that a
    /// damaged file is reported rather than parsed.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut f = self.open_blob(d)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).at(self.paths.blob(d))?;
        let mut w = d.writer();
        w.update(&bytes);
        let actual = w.finish();
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Stores `bytes` under their sha256 digest; a no-op when already present.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::sha256_of(bytes);
        if !self.has_blob(&d) {
            self.ensure_blob_dir(&d)?;
            write_atomic(&self.paths, &self.paths.blob(&d), bytes)?;
        }
        Ok(d)
    }

    /// Streams `r` into the store, hashing as it goes. With `expected`, the content must hash
    /// to it (else [`StoreError::DigestMismatch`] and nothing is stored) and a present blob is
    /// not read again.
    pub fn put_blob_from(
        &self,
        r: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        if let Some(d) = expected {
            if self.has_blob(d) {
                return Ok((d.clone(), self.blob_size(d)?));
            }
        }
        let tmp = self.paths.temp("put");
        let result = (|| {
            let mut file = File::create(&tmp).at(&tmp)?;
            let mut hasher = match expected {
                Some(d) => d.writer(),
                None => DigestWriter::sha256(),
            };
            let mut buf = vec![0u8; COPY_BUF];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(StoreError::io(&tmp, e)),
                };
                file.write_all(&buf[..n]).at(&tmp)?;
                hasher.update(&buf[..n]);
            }
            let len = hasher.len();
            let actual = hasher.finish();
            if let Some(d) = expected {
                if &actual != d {
                    return Err(StoreError::DigestMismatch {
                        expected: d.clone(),
                        actual,
                    });
                }
            }
            file.sync_all().at(&tmp)?;
            drop(file);
            self.ensure_blob_dir(&actual)?;
            let dest = self.paths.blob(&actual);
            // Identical content may race in from another process; renaming over it is harmless.
            fs::rename(&tmp, &dest).at(&dest)?;
            sync_dir(&self.paths.blob_algorithm_dir(actual.algorithm()))?;
            Ok((actual, len))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Moves `file`, a complete and synced blob that the caller wrote under this store's
    /// temporary directory and hashed to `d` itself, into place without reading it again (a
    /// build's own layers). Returns its size; an already present blob is kept and `file`
    /// removed.
    pub fn adopt_blob(&self, file: &Path, d: &Digest) -> Result<u64, StoreError> {
        let size = fs::metadata(file).at(file)?.len();
        if self.has_blob(d) {
            fs::remove_file(file).at(file)?;
            return Ok(size);
        }
        self.ensure_blob_dir(d)?;
        let dest = self.paths.blob(d);
        fs::rename(file, &dest).at(&dest)?;
        sync_dir(&self.paths.blob_algorithm_dir(d.algorithm()))?;
        Ok(size)
    }

    /// Takes the blob's lock (blocking while another process writes it), then reports it
    /// [`Ingest::Present`] or hands out a writer that resumes any partial download.
    pub fn begin_blob(&self, d: &Digest, size: Option<u64>) -> Result<Ingest, StoreError> {
        if self.has_blob(d) {
            return Ok(Ingest::Present);
        }
        let lock = lock::exclusive(&self.paths.blob_lock(d))?;
        if self.has_blob(d) {
            return Ok(Ingest::Present);
        }
        self.ensure_blob_dir(d)?;
        let partial = self.paths.partial_blob(d);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .at(&partial)?;
        let mut hasher = d.writer();
        let existing = file.metadata().at(&partial)?.len();
        if size.is_some_and(|s| existing > s) {
            file.set_len(0).at(&partial)?;
        } else {
            // The hash state cannot be saved across processes, so the kept bytes are hashed
            // again; reading is far cheaper than downloading them.
            io::copy(&mut (&file).take(existing), &mut hasher).at(&partial)?;
        }
        file.seek(SeekFrom::Start(hasher.len())).at(&partial)?;
        Ok(Ingest::Write(BlobWriter {
            file,
            partial,
            dest: self.paths.blob(d),
            hasher: Box::new(hasher),
            expected: d.clone(),
            size,
            _lock: lock,
        }))
    }

    fn ensure_blob_dir(&self, d: &Digest) -> Result<(), StoreError> {
        let dir = self.paths.blob_algorithm_dir(d.algorithm());
        fs::create_dir_all(&dir).at(&dir)
    }
}
