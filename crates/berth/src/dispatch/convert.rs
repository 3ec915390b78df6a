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
    let dir = single_unpacked_layer(store, img);
    write_output(output, &config, |tmp| match dir {
        Some((dir, entries)) => squashfs_of_dir(&dir, entries, tmp, squash, p),
        None => write_squashfs(store, &layers, tmp, squash, p),
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
    let result = build(&tmp).and_then(|flat| {
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

/// The unpacked directory of a one-layer image, when `mksquashfs` may read it as it is: as
/// root (the files carry the image's owners; a rootless store holds them under the caller's
/// or shifted ids) and with no whiteout in it (a 0:0 character device, meaningless in a
/// bottom layer but not to be copied). Reading files the pull already inflated is cheaper
/// than inflating the blob again.
fn single_unpacked_layer(store: &Store, img: &ImageRecord) -> Option<(PathBuf, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if super::euid() != 0 || img.layers.len() != 1 || !store.has_layer(&img.layers[0]) {
        return None;
    }
    let dir = store.layer_path(&img.layers[0]);
    let mut entries = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).ok()? {
            let e = e.ok()?;
            let m = e.metadata().ok()?;
            if m.file_type().is_char_device() && m.rdev() == 0 {
                return None;
            }
            if m.is_dir() {
                stack.push(e.path());
            }
            entries += 1;
        }
    }
    Some((dir, entries))
}

/// `mksquashfs DIR`: the tree as it is, hard links, owners, modes and extended attributes kept.
fn squashfs_of_dir(
    dir: &Path,
    entries: u64,
    tmp: &Path,
    squash: &Squash,
    p: &Printer,
) -> Result<Flattened> {
    let bar = p.bar("convert", None);
    bar.message("Compressing");
    let out = Command::new("mksquashfs")
        .arg(dir)
        .arg(tmp)
        .args(["-noappend", "-quiet", "-no-progress"])
        .args(&squash.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(spawn_error)?;
    if !out.status.success() {
        return Err(failed(
            out.status,
            tmp,
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    bar.finish("Converted");
    Ok(Flattened {
        entries,
        hidden: 0,
        root_mode: None,
    })
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
