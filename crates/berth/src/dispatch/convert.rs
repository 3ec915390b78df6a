//! `berth convert`: an image from the store as one squashfs file that nodes mount in place.
//!
//! The layers are never unpacked for this: their compressed blobs are merged into one tar
//! stream (`berth_archive::flatten`, whiteouts applied, upper layers first) that `mksquashfs
//! -tar` (squashfs-tools) turns into the file system, compressing on every CPU. The image
//! config follows the file system as a trailer, so `berth run FILE` needs no store and no
//! registry. The output appears only when complete: it is written under a temporary name in
//! the same directory and renamed.

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use berth_archive::{flatten, root_mode, write_config_trailer, Flattened};
use berth_store::{ImageRecord, Store};
use berth_types::Digest;

use super::archive::StoreBlobs;
use super::pull::FetchedBlobs;
use crate::printer::Printer;

/// The levels a compressor takes: lowest, highest and default.
type Levels = Option<(u32, u32, u32)>;

/// Compressors `mksquashfs` knows, by the names `--compression` takes, with the levels each
/// accepts and the one used when none is given. zstd's is zstd's own default, not the 15 that
/// `mksquashfs` picks: on the Debian minbase tree level 15 takes 13 times as long (9.6 s
/// against 0.73 s on two cores) for a file 11% smaller, and reading is as fast at either.
const COMPRESSORS: &[(&str, Levels)] = &[
    ("zstd", Some((1, 22, 3))),
    ("lz4", None),
    ("gzip", Some((1, 9, 9))),
    ("xz", None),
];

/// How the file system is compressed: `--compression` and `--compression-level`.
#[derive(Debug, Clone)]
pub struct Squash {
    args: Vec<String>,
    /// For messages: `zstd level 3`, `lz4`.
    pub label: String,
}

impl Squash {
    /// Checks the compressor and level against what `mksquashfs` accepts.
    pub fn new(compression: &str, level: Option<u32>) -> Result<Squash> {
        let Some((_, levels)) = COMPRESSORS.iter().find(|(c, _)| *c == compression) else {
            let names: Vec<&str> = COMPRESSORS.iter().map(|(c, _)| *c).collect();
            bail!(
                "invalid --compression {compression:?}: expected one of {}",
                names.join(", ")
            );
        };
        let mut args = vec!["-comp".to_string(), compression.to_string()];
        let label = match (levels, level) {
            (None, None) => compression.to_string(),
            (None, Some(_)) => bail!("--compression-level: {compression} takes no level"),
            (Some((lo, hi, _)), Some(l)) if l < *lo || l > *hi => {
                bail!("invalid --compression-level {l}: {compression} takes {lo} to {hi}")
            }
            (Some((_, _, default)), l) => {
                let l = l.unwrap_or(*default);
                args.extend(["-Xcompression-level".to_string(), l.to_string()]);
                format!("{compression} level {l}")
            }
        };
        Ok(Squash { args, label })
    }
}

/// What a conversion produced.
pub struct Converted {
    pub bytes: u64,
    pub flattened: Flattened,
}

/// Writes `img`, an image of the store, to `output` as a squashfs image compressed with
/// `compression`.
pub fn convert(
    store: &Store,
    img: &ImageRecord,
    output: &Path,
    squash: &Squash,
    p: &Printer,
) -> Result<Converted> {
    let manifest = store.manifest(img)?;
    let layers: Vec<_> = manifest
        .layers()
        .iter()
        .map(|l| Ok((l.digest().to_string().parse::<Digest>()?, l.size())))
        .collect::<Result<_>>()?;
    let config = store.read_blob(&img.id)?;
    let dir = single_layer_dir(store, img);
    write_output(output, &config, |tmp| {
        if let Some(dir) = &dir {
            if let Some(flat) = squashfs_of_dir(dir, tmp, squash, p)? {
                return Ok(flat);
            }
        }
        write_squashfs(store, &layers, tmp, squash, p)
    })
}

/// Writes an image whose blobs were just fetched (and never unpacked) to `output`.
pub fn convert_fetched(
    store: &Store,
    fetched: &FetchedBlobs,
    output: &Path,
    squash: &Squash,
    p: &Printer,
) -> Result<Converted> {
    write_output(output, &fetched.config, |tmp| {
        write_squashfs(store, &fetched.layers, tmp, squash, p)
    })
}

/// Builds the file system under a temporary name beside `output` with `build`, appends the
/// config and renames it into place; on any failure nothing is left.
fn write_output(
    output: &Path,
    config: &[u8],
    build: impl FnOnce(&Path) -> Result<Flattened>,
) -> Result<Converted> {
    let tmp = temp_beside(output)?;
    let writeback = Writeback::start(&tmp);
    let built = build(&tmp);
    writeback.stop();
    let result = built.and_then(|flat| {
        let mut f = OpenOptions::new()
            .append(true)
            .open(&tmp)
            .with_context(|| format!("cannot reopen {}", tmp.display()))?;
        write_config_trailer(&mut f, config)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let bytes = f.metadata()?.len();
        fs::rename(&tmp, output)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), output.display()))?;
        Ok(Converted {
            bytes,
            flattened: flat,
        })
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes the output's data to disk while `mksquashfs` is still producing it, so the `fsync`
/// that makes the finished file durable has only the last moments' data left to wait for
/// (on a fast compressor that wait was as long as a tenth of the whole conversion).
struct Writeback {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Writeback {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(25);

    fn start(path: &Path) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let path = path.to_path_buf();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Self::EVERY)
            {
                if let Ok(f) = fs::File::open(&path) {
                    let _ = f.sync_data();
                }
            }
        });
        Writeback { stop, thread }
    }

    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// The unpacked directory of a one-layer image, when `mksquashfs` may read it as it is: as
/// root (the files carry the image's owners; a rootless store holds them under the caller's
/// or shifted ids). Reading files the pull already inflated is cheaper than inflating the blob
/// again. Whether the layer holds a whiteout is checked while `mksquashfs` runs.
fn single_layer_dir(store: &Store, img: &ImageRecord) -> Option<PathBuf> {
    if super::euid() != 0 || img.layers.len() != 1 || !store.has_layer(&img.layers[0]) {
        return None;
    }
    Some(store.layer_path(&img.layers[0]))
}

/// How many entries the tree holds, or `None` when it holds a whiteout (a 0:0 character
/// device, meaningless in a bottom layer but not to be copied) or cannot be read.
fn count_plain_entries(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut entries = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).ok()? {
            let e = e.ok()?;
            let t = e.file_type().ok()?;
            if t.is_char_device() && e.metadata().ok()?.rdev() == 0 {
                return None;
            }
            if t.is_dir() {
                stack.push(e.path());
            }
            entries += 1;
        }
    }
    Some(entries)
}

/// `mksquashfs DIR`: the tree as it is, hard links, owners, modes and extended attributes kept.
/// `None` (and no file) when the tree turns out to hold a whiteout: the caller then flattens
/// the layer instead. The check walks the tree beside `mksquashfs` rather than before it.
fn squashfs_of_dir(
    dir: &Path,
    tmp: &Path,
    squash: &Squash,
    p: &Printer,
) -> Result<Option<Flattened>> {
    let bar = p.bar("convert", None);
    bar.message("Compressing");
    let mut child = Command::new("mksquashfs")
        .arg(dir)
        .arg(tmp)
        .args(["-noappend", "-quiet", "-no-progress"])
        .args(&squash.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let Some(entries) = count_plain_entries(dir) else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = errors.join();
        let _ = fs::remove_file(tmp);
        return Ok(None);
    };
    let status = child.wait().context("waiting for mksquashfs")?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(failed(status, tmp, &errors));
    }
    bar.finish("Converted");
    Ok(Some(Flattened {
        entries,
        hidden: 0,
        root_mode: None,
    }))
}

/// A fresh name in the output's directory, so the final rename stays on one file system.
fn temp_beside(output: &Path) -> Result<PathBuf> {
    let name = output
        .file_name()
        .with_context(|| format!("invalid output file {}", output.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "cannot write {}: directory {} does not exist",
            output.display(),
            dir.display()
        );
    }
    Ok(dir.join(format!(".{name}.partial-{}", std::process::id())))
}

fn write_squashfs(
    store: &Store,
    layers: &[(Digest, u64)],
    tmp: &Path,
    squash: &Squash,
    p: &Printer,
) -> Result<Flattened> {
    let total = layers.iter().map(|(_, size)| size).sum();
    let layers: Vec<Digest> = layers.iter().map(|(d, _)| d.clone()).collect();
    let layers = &layers[..];
    // mksquashfs takes the root directory's mode as an option, before it reads the tar.
    let root_mode = root_mode(&StoreBlobs(store), layers).unwrap_or(0o755);
    let mut child = Command::new("mksquashfs")
        .arg("-")
        .arg(tmp)
        .args(["-tar", "-noappend", "-quiet", "-no-progress"])
        .args(&squash.args)
        .arg("-root-mode")
        .arg(format!("{root_mode:o}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let bar = p.bar("convert", Some(total));
    bar.message("Flattening");
    let mut stdin = BufWriter::with_capacity(1 << 20, child.stdin.take().expect("piped"));
    let flat = flatten(&StoreBlobs(store), layers, &mut stdin, &mut |n| bar.inc(n));
    let flushed = stdin.flush();
    drop(stdin);
    let status = child.wait().context("waiting for mksquashfs")?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(failed(status, tmp, &errors));
    }
    let flat = flat?;
    flushed.context("writing to mksquashfs")?;
    bar.finish("Converted");
    Ok(flat)
}

fn spawn_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!("mksquashfs not found: berth convert needs squashfs-tools")
    } else {
        anyhow::anyhow!("cannot start mksquashfs: {e}")
    }
}

/// One line for a failed mksquashfs: its status and the last thing it said.
fn failed(status: std::process::ExitStatus, tmp: &Path, stderr: &str) -> anyhow::Error {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    anyhow::anyhow!(
        "mksquashfs failed ({status}) writing {}: {last}",
        tmp.display()
    )
}
