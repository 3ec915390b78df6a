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

use super::archive::StoreBlobs;
use crate::printer::Printer;

/// Compressors `mksquashfs` knows, by the names `--compression` takes.
const COMPRESSORS: &[&str] = &["zstd", "lz4", "gzip", "xz"];

/// What a conversion produced.
pub struct Converted {
    pub bytes: u64,
    pub flattened: Flattened,
}

/// Writes `img` to `output` as a squashfs image compressed with `compression`.
pub fn convert(
    store: &Store,
    img: &ImageRecord,
    output: &Path,
    compression: &str,
    p: &Printer,
) -> Result<Converted> {
    if !COMPRESSORS.contains(&compression) {
        bail!(
            "invalid --compression {compression:?}: expected one of {}",
            COMPRESSORS.join(", ")
        );
    }
    let manifest = store.manifest(img)?;
    let layers: Vec<_> = manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string().parse::<berth_types::Digest>())
        .collect::<Result<_, _>>()?;
    let total: u64 = manifest.layers().iter().map(|l| l.size()).sum();
    let config = store.read_blob(&img.id)?;

    let tmp = temp_beside(output)?;
    let result = write_squashfs(store, &layers, total, &tmp, compression, p).and_then(|flat| {
        let mut f = OpenOptions::new()
            .append(true)
            .open(&tmp)
            .with_context(|| format!("cannot reopen {}", tmp.display()))?;
        write_config_trailer(&mut f, &config)
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
    layers: &[berth_types::Digest],
    total: u64,
    tmp: &Path,
    compression: &str,
    p: &Printer,
) -> Result<Flattened> {
    // mksquashfs takes the root directory's mode as an option, before it reads the tar.
    let root_mode = root_mode(&StoreBlobs(store), layers).unwrap_or(0o755);
    let mut child = Command::new("mksquashfs")
        .arg("-")
        .arg(tmp)
        .args([
            "-tar",
            "-noappend",
            "-quiet",
            "-no-progress",
            "-comp",
            compression,
        ])
        .arg("-root-mode")
        .arg(format!("{root_mode:o}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!("mksquashfs not found: berth convert needs squashfs-tools")
            } else {
                anyhow::anyhow!("cannot start mksquashfs: {e}")
            }
        })?;
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
        let last = errors
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        bail!(
            "mksquashfs failed ({status}) writing {}: {last}",
            tmp.display()
        );
    }
    let flat = flat?;
    flushed.context("writing to mksquashfs")?;
    bar.finish("Converted");
    Ok(flat)
}
