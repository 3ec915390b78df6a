//! `pull`: resolve the manifest, fetch config and layers in parallel with resume, unpack each
//! layer once, and only then publish the image's names. A pull killed at any point leaves
//! blobs that are either complete and verified or merely partial files to resume from.

use std::io;

use anyhow::{Context, Result};
use berth_registry::{Client, RegistryError};
use berth_store::{Ingest, NewImage, Store};
use berth_types::{Digest, ImageRef, Platform};

use crate::printer::{Bar, Counting, Printer};

/// Attempts per blob; later attempts resume where the previous one stopped.
const ATTEMPTS: usize = 4;

pub struct Pulled {
    pub digest: Digest,
    pub up_to_date: bool,
}

pub fn pull(
    store: &Store,
    client: &Client,
    r: &ImageRef,
    platform: &Platform,
    p: &Printer,
) -> Result<Pulled> {
    p.status(format!(
        "{}: Pulling from {}",
        r.reference(),
        r.familiar_name()
    ));
    let resolved = client.resolve(r, platform)?;
    let top = resolved
        .index
        .as_ref()
        .map(|i| i.digest.clone())
        .unwrap_or_else(|| resolved.manifest.digest.clone());
    // Already here under this name and digest: an image record is only written once all its
    // layers are in place, so there is nothing to fetch, verify or rewrite (and no lock).
    let repo_digest = r.with_digest(top.clone());
    let images = store.images()?;
    let named_here = |i: &&berth_store::ImageRecord| {
        i.manifest == resolved.manifest.digest && r.tag().is_none_or(|_| i.repo_tags.contains(r))
    };
    if images
        .iter()
        .filter(named_here)
        .any(|i| i.repo_digests.contains(&repo_digest))
    {
        return Ok(Pulled {
            digest: top,
            up_to_date: true,
        });
    }
    let up_to_date = images.iter().any(|i| named_here(&i));
    // Blobs stored before the image record names them must survive a concurrent prune.
    let _gc = store.hold_gc()?;

    let config_digest: Digest = resolved.parsed.config().digest().to_string().parse()?;
    let config_size = resolved.parsed.config().size();
    fetch_blob(store, client, r, &config_digest, config_size, None)?;
    let config = store.read_blob(&config_digest)?;
    let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(&config)
        .with_context(|| format!("invalid image config {config_digest}"))?;
    let diff_ids: Vec<Digest> = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse())
        .collect::<Result<_, _>>()?;
    let layers = resolved.parsed.layers();
    if layers.len() != diff_ids.len() {
        anyhow::bail!(
            "image {r}: manifest has {} layers but config {config_digest} lists {} diff_ids",
            layers.len(),
            diff_ids.len()
        );
    }
    let warnings = std::sync::Mutex::new(Vec::new());
    super::parallel(layers, |i, layer| {
        let digest: Digest = layer.digest().to_string().parse()?;
        let bar = p.bar(digest.short(), Some(layer.size()));
        if store.has_layer(&diff_ids[i]) {
            bar.finish("Already exists");
            return Ok(());
        }
        bar.message("Downloading");
        let report = fetch_and_unpack(store, client, r, &digest, layer.size(), &diff_ids[i], &bar)?;
        warnings.lock().expect("poisoned").extend(report.warnings);
        bar.finish("Pull complete");
        Ok(())
    })?;
    for w in warnings.into_inner().expect("poisoned") {
        p.warn(w);
    }

    for f in resolved
        .index
        .iter()
        .chain(std::iter::once(&resolved.manifest))
    {
        let d = store.put_blob(&f.bytes)?;
        debug_assert_eq!(d, f.digest);
    }
    let names = match r.digest() {
        Some(_) => Vec::new(),
        None => vec![r.clone()],
    };
    store.commit_image(&NewImage {
        manifest: resolved.manifest.digest.clone(),
        manifest_media_type: resolved.manifest.media_type.clone(),
        index: resolved.index.as_ref().map(|i| i.digest.clone()),
        config: config_digest,
        names,
        repo_digest_names: vec![r.with_digest(top.clone())],
    })?;
    Ok(Pulled {
        digest: top,
        up_to_date,
    })
}

/// An image's blobs fetched into the store without unpacking or recording it (for `convert`,
/// which reads the compressed layers themselves). The guard keeps a concurrent prune from
/// removing the blobs, which no image names, until it is dropped.
pub struct FetchedBlobs {
    /// Layer blobs, bottom first, with their sizes.
    pub layers: Vec<(Digest, u64)>,
    /// The image config as stored.
    pub config: Vec<u8>,
    pub _gc: berth_store::GcGuard,
}

/// Fetches the config and layer blobs of `r` for `platform`, verified, with progress bars.
pub fn fetch_blobs(
    store: &Store,
    client: &Client,
    r: &ImageRef,
    platform: &Platform,
    p: &Printer,
) -> Result<FetchedBlobs> {
    let resolved = client.resolve(r, platform)?;
    let gc = store.hold_gc()?;
    let config_digest: Digest = resolved.parsed.config().digest().to_string().parse()?;
    fetch_blob(
        store,
        client,
        r,
        &config_digest,
        resolved.parsed.config().size(),
        None,
    )?;
    let layers: Vec<(Digest, u64)> = resolved
        .parsed
        .layers()
        .iter()
        .map(|l| Ok((l.digest().to_string().parse()?, l.size())))
        .collect::<Result<_>>()?;
    super::parallel(resolved.parsed.layers(), |i, _| {
        let (digest, size) = &layers[i];
        let bar = p.bar(digest.short(), Some(*size));
        bar.message("Downloading");
        fetch_blob(store, client, r, digest, *size, Some(&bar))?;
        bar.finish("Download complete");
        Ok(())
    })?;
    Ok(FetchedBlobs {
        layers,
        config: store.read_blob(&config_digest)?,
        _gc: gc,
    })
}

/// Makes `digest` present in the store: skipped when there, resumed when partial, verified.
pub fn fetch_blob(
    store: &Store,
    client: &Client,
    r: &ImageRef,
    digest: &Digest,
    size: u64,
    bar: Option<&Bar>,
) -> Result<()> {
    fetch_blob_tapped(store, client, r, digest, size, bar, None)
}

/// Fetches a layer blob and unpacks it at the same time, when this process unpacks and the
/// blob is fetched whole from its first byte: the unpacking thread reads the bytes as they
/// arrive through a pipe, and publishes the layer only once the blob is complete and verified. Anything else
/// (a resumed download, a retry, a layer unpacked by a helper in a user namespace) fetches
/// first and unpacks from the stored blob, as does a streamed unpack that failed, so that its
/// error is the one the blob itself gives.
fn fetch_and_unpack(
    store: &Store,
    client: &Client,
    r: &ImageRef,
    digest: &Digest,
    size: u64,
    diff_id: &Digest,
    bar: &Bar,
) -> Result<berth_store::UnpackReport> {
    let fresh = fs_len(&store.paths().partial_blob(digest)) == 0 && !store.has_blob(digest);
    if !fresh || !super::delegate::unpacks_here() {
        fetch_blob(store, client, r, digest, size, Some(bar))?;
        bar.message("Extracting");
        return super::delegate::unpack_layer(store, digest, diff_id);
    }
    let (mut src, tap) = io::pipe()?;
    let (fetched, streamed) = std::thread::scope(|s| {
        let download = std::cell::RefCell::new(None);
        let mut tap = Some(tap);
        let mut start = || {
            let tap = tap.take();
            *download.borrow_mut() =
                Some(s.spawn(move || {
                    fetch_blob_tapped(store, client, r, digest, size, Some(bar), tap)
                }));
        };
        let fetched = std::cell::RefCell::new(None);
        let mut ready = || {
            let d = download.borrow_mut().take().expect("started");
            let result = join(d);
            let ok = result.is_ok();
            *fetched.borrow_mut() = Some(result);
            if ok {
                bar.message("Extracting");
                Ok(())
            } else {
                Err(berth_store::StoreError::CorruptLayer {
                    blob: digest.clone(),
                    reason: "the download failed".into(),
                })
            }
        };
        let opts = berth_store::UnpackOptions::default();
        let streamed =
            store.unpack_layer_from(&mut src, digest, diff_id, &opts, &mut start, &mut ready);
        drop(src);
        let pending = download.borrow_mut().take();
        let fetched = match (pending, fetched.into_inner()) {
            (Some(d), _) => join(d),
            (None, Some(f)) => f,
            // The layer was there already (another pull unpacked it): the blob is still wanted.
            (None, None) => fetch_blob(store, client, r, digest, size, Some(bar)),
        };
        (fetched, streamed)
    });
    fetched?;
    match streamed {
        Ok(report) => Ok(report),
        Err(_) => {
            bar.message("Extracting");
            super::delegate::unpack_layer(store, digest, diff_id)
        }
    }
}

fn join(h: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    h.join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the download thread panicked")))
}

fn fs_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Writes to the blob and the same bytes to the tap, a pipe to the unpacking thread (whose
/// fill bounds what is in flight); a tap whose reader is gone is dropped and the download
/// goes on.
struct Tee<'a, W> {
    inner: &'a mut W,
    tap: Option<io::PipeWriter>,
}

impl<W: io::Write> io::Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(tap) = &mut self.tap {
            if tap.write_all(&buf[..n]).is_err() {
                self.tap = None;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// [`fetch_blob`], copying the bytes of a download that starts at the blob's first byte to
/// `tap` as well; the tap is dropped (its reader sees the end) when the download ends, fails
/// or has to be resumed.
fn fetch_blob_tapped(
    store: &Store,
    client: &Client,
    r: &ImageRef,
    digest: &Digest,
    size: u64,
    bar: Option<&Bar>,
    mut tap: Option<io::PipeWriter>,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut w = match store.begin_blob(digest, Some(size))? {
            Ingest::Present => return Ok(()),
            Ingest::Write(w) => w,
        };
        // Only a first attempt from byte 0 feeds the tap: the reader has seen nothing else.
        let tap_now = if attempt == 1 && w.offset() == 0 {
            tap.take()
        } else {
            drop(tap.take());
            None
        };
        let result: Result<()> = (|| {
            let offset = w.offset();
            let mut stream = client.blob(r, digest, offset)?;
            if stream.start != offset {
                // Not the range asked for: keep nothing and take the blob from its start (a
                // reply from another offset than 0 cannot be joined to what is on disk).
                w.restart()?;
                if stream.start != 0 {
                    stream = client.blob(r, digest, 0)?;
                }
            }
            let mut tee = Tee {
                inner: &mut w,
                tap: tap_now,
            };
            match bar {
                Some(bar) => {
                    bar.set_position(stream.start);
                    let mut c = Counting {
                        inner: stream,
                        bar: bar.clone(),
                    };
                    io::copy(&mut c, &mut tee)?;
                }
                None => {
                    let mut s = stream;
                    io::copy(&mut s, &mut tee)?;
                }
            }
            drop(tee);
            w.commit()?;
            Ok(())
        })();
        match result {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                std::thread::sleep(std::time::Duration::from_millis(200 * attempt as u64));
                continue;
            }
            other => return other.with_context(|| format!("fetching blob {digest} of {r}")),
        }
    }
}

/// Network trouble is worth another try (resuming); a wrong digest or a refusal is not.
fn transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if let Some(r) = c.downcast_ref::<RegistryError>() {
            return matches!(r, RegistryError::Unreachable { .. });
        }
        c.downcast_ref::<io::Error>().is_some_and(|io| {
            !matches!(
                io.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::PermissionDenied
            )
        })
    })
}
